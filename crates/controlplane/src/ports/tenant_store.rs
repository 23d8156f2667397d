//! The tenant table as the reconcile sees it: SPEC and STATUS rows, the audit timeline.

use async_trait::async_trait;
use serde_dynamo::Item;

use model::audit::AuditEntry;
use model::spec::TenantKey;
use model::status::{Status, TenantStatus};

use super::Healing;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The conditional write lost to a newer one: re-read and decide again.
    #[error("the STATUS row changed since it was read")]
    Conflict,
    /// May heal: throttling, a network failure, a server fault.
    #[error("tenant table: {0}")]
    Unavailable(String),
    /// The table refused the request for good (a ValidationException, a missing table): the
    /// same request fails the same way, so retrying it cannot help.
    #[error("tenant table refused the request: {0}")]
    Rejected(String),
    /// DynamoDB would refuse the item (each rule broken, under its attribute path): nothing was
    /// sent, and the same write will always be refused, so it is never retried.
    #[error("DynamoDB would refuse this item: {}", model::spec::joined(.0))]
    Unstorable(Vec<model::spec::FieldError>),
    /// A stored record fails its own integrity check (a published template version whose body
    /// was changed in place): it is never used, and reading it again cannot help. The text is
    /// the control plane's own, meant for the operator who can repair it.
    #[error("{0}")]
    Corrupt(String),
}

impl StoreError {
    pub fn healing(&self) -> Healing {
        match self {
            Self::Conflict | Self::Unavailable(_) => Healing::Transient,
            Self::Rejected(_) | Self::Unstorable(_) | Self::Corrupt(_) => Healing::Permanent,
        }
    }
}

/// STATUS, then its lines one by one, where they cannot share its request: a failed line is
/// logged, never raised (the timeline is a record, not the state).
pub async fn put_status_then_lines<S: TenantStore + ?Sized>(
    store: &S,
    tenant: &TenantKey,
    status: &TenantStatus,
    expected_version: Option<u64>,
    entries: &[AuditEntry],
) -> Result<(), StoreError> {
    store.put_status(tenant, status, expected_version).await?;
    for entry in entries {
        if let Err(e) = store.append_audit(tenant, entry).await {
            tracing::warn!(error = %e, action = %entry.action, "audit entry not written");
        }
    }
    Ok(())
}

/// The fleet's CURRENT template row as a write that assigns its version read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CurrentGuard {
    /// The row names this version current.
    Names(String),
    /// No row: the shipped version is current.
    NoRow,
}

/// What the table holds for one tenant, read consistently.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub spec: Option<Item>,
    pub status: Option<TenantStatus>,
    /// The `version` of the STATUS row as stored, even when the row itself could not be decoded.
    pub status_version: Option<u64>,
}

/// A tenant as the `by-status` index shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusSummary {
    pub tenant: TenantKey,
    /// RFC 3339: the last STATUS write (for an operation in flight: when it started).
    pub updated_at: String,
}

#[async_trait]
pub trait TenantStore: Send + Sync {
    /// The SPEC and STATUS rows, with a consistent read.
    async fn load(&self, tenant: &TenantKey) -> Result<Snapshot, StoreError>;
    /// One page of every tenant that has a SPEC, or a STATUS that is not `deleted` (audit items
    /// are never read), each once, and the token of the next page.
    async fn list_tenants(
        &self,
        page_token: Option<String>,
    ) -> Result<(Vec<TenantKey>, Option<String>), StoreError>;
    /// One page of the tenants whose STATUS is `status` (the sparse `by-status` index), and the
    /// token of the next page.
    async fn list_in_status(
        &self,
        status: Status,
        page_token: Option<String>,
    ) -> Result<(Vec<StatusSummary>, Option<String>), StoreError>;
    /// Writes STATUS only if its stored version is still `expected_version` (`None`: no row).
    async fn put_status(
        &self,
        tenant: &TenantKey,
        status: &TenantStatus,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError>;
    /// As [`Self::put_status`], with `entries` appended to the tenant's timeline in the same
    /// request where the store can (DynamoDB: one TransactWriteItems), so a STATUS write and the
    /// lines that tell of it cost one call and never land apart. The lines are written only if
    /// STATUS is; where they cannot ride along, they follow it (a failed line is logged, never
    /// raised: the timeline is a record, not the state).
    ///
    /// `current`: the write assigns the fleet's current template version as read (perhaps from
    /// a cache): it holds only if the CURRENT row is still as read (`Conflict` otherwise).
    async fn put_status_noting(
        &self,
        tenant: &TenantKey,
        status: &TenantStatus,
        expected_version: Option<u64>,
        entries: &[AuditEntry],
        current: Option<CurrentGuard>,
    ) -> Result<(), StoreError> {
        let _ = current;
        put_status_then_lines(self, tenant, status, expected_version, entries).await
    }
    /// Appends to the tenant's audit timeline; an entry with the same `at` and `id` as a stored
    /// one replaces it.
    async fn append_audit(&self, tenant: &TenantKey, entry: &AuditEntry) -> Result<(), StoreError>;
    /// Records the API's (or `tenantctl --direct`'s) line about a request it answered (who
    /// asked to remove the tenant: a DeleteItem carries no actor). Kept apart from the
    /// timeline the control plane writes, which the API cannot write; `audit_trail` shows both.
    async fn append_request(
        &self,
        tenant: &TenantKey,
        entry: &AuditEntry,
    ) -> Result<(), StoreError>;
    /// One page of the tenant's audit timeline (the control plane's lines and the API's
    /// request lines, in one order), oldest first, and the token of the next page.
    async fn audit_trail(
        &self,
        tenant: &TenantKey,
        page_token: Option<String>,
        limit: usize,
    ) -> Result<(Vec<AuditEntry>, Option<String>), StoreError>;
    /// Removes the SPEC as decommission does: the audit entry first (a DeleteItem carries no
    /// actor), then the SPEC, only if its `decommission_date` is still `decommission_date`
    /// (`Conflict` otherwise: the writer moved or cleared it meanwhile).
    async fn remove_spec_for_decommission(
        &self,
        tenant: &TenantKey,
        decommission_date: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError>;
}
