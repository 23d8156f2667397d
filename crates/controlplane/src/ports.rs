//! The small traits AWS sits behind. One SDK adapter each (`crate::aws`), one fake each
//! (`crate::fakes`).

use std::sync::Arc;

use async_trait::async_trait;
use serde_dynamo::Item;

use model::audit::AuditEntry;
use model::spec::TenantKey;
use model::stack::ObservedStack;
use model::status::{StackLocation, Status, TenantStatus};
use model::template::Template;

/// Whether an error may heal by itself. Decides retry versus `failed` with the reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Healing {
    /// Throttling, network, a role still propagating, a busy stack: try again later.
    Transient,
    /// Bad input or a rejection that the same request will always get.
    Permanent,
}

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

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StackError {
    /// An operation is in progress on the stack (CloudFormation refuses another).
    #[error("the stack is busy: {0}")]
    Busy(String),
    /// CreateStack raced with another create of the same stack.
    #[error("the stack already exists")]
    AlreadyExists,
    /// CloudFormation (or STS) refused the request for good: its words are kept.
    #[error("{0}")]
    Rejected(String),
    /// May heal: throttling, network, AccessDenied while a new role propagates.
    #[error("{0}")]
    Transient(String),
}

impl StackError {
    pub fn healing(&self) -> Healing {
        match self {
            Self::Busy(_) | Self::AlreadyExists | Self::Transient(_) => Healing::Transient,
            Self::Rejected(_) => Healing::Permanent,
        }
    }
}

/// Where and as whom a stack call runs: the tenant's account and region, through its role.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StackTarget {
    pub tenant_id: String,
    pub location: StackLocation,
}

/// A create or update request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackRequest {
    pub template_body: String,
    /// The template uses CloudFormation's transforms: acknowledged with CAPABILITY_AUTO_EXPAND
    /// (without it CloudFormation refuses the call with InsufficientCapabilities).
    pub auto_expand: bool,
    pub parameters: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
    /// Derived from the operation, so a retried call is idempotent.
    pub client_request_token: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateStarted {
    Started,
    /// "No updates are to be performed": the stack already matches.
    NoChanges,
}

#[async_trait]
pub trait Stacks: Send + Sync {
    /// The stack by name; `None` when there is none (or it is DELETE_COMPLETE).
    async fn describe(&self, at: &StackTarget) -> Result<Option<ObservedStack>, StackError>;
    /// Creates with termination protection on.
    async fn create(&self, at: &StackTarget, request: &StackRequest) -> Result<(), StackError>;
    async fn update(
        &self,
        at: &StackTarget,
        request: &StackRequest,
    ) -> Result<UpdateStarted, StackError>;
    /// Turns termination protection off, then deletes.
    async fn delete(&self, at: &StackTarget, client_request_token: &str) -> Result<(), StackError>;
    async fn continue_update_rollback(
        &self,
        at: &StackTarget,
        client_request_token: &str,
    ) -> Result<(), StackError>;
    /// The first failing resource's reason, from the stack events.
    async fn failure_reason(&self, at: &StackTarget) -> Result<Option<String>, StackError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateSourceError {
    /// The versions could not be read; may heal.
    #[error("templates: {0}")]
    Unavailable(String),
    /// The version is stored but refused for good (its body changed after it was published):
    /// a tenant on it fails with this reason instead of retrying forever.
    #[error("{0}")]
    Corrupt(String),
}

impl From<StoreError> for TemplateSourceError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Corrupt(reason) => Self::Corrupt(reason),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

/// Where tenant template versions come from.
#[async_trait]
pub trait TemplateSource: Send + Sync {
    /// The version a tenant without a pin gets.
    async fn current_version(&self) -> Result<String, TemplateSourceError>;
    /// `None` when there is no such version.
    async fn get(&self, version: &str) -> Result<Option<Arc<Template>>, TemplateSourceError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot schedule a re-check: {0}")]
pub struct RequeueError(pub String);

/// Schedules another reconcile of a tenant after a delay: how an operation in flight is followed
/// to its end (the completion loop).
#[async_trait]
pub trait Requeue: Send + Sync {
    async fn requeue(
        &self,
        tenant: &TenantKey,
        after: std::time::Duration,
    ) -> Result<(), RequeueError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot publish a lifecycle event: {0}")]
pub struct PublishError(pub String);

/// Where lifecycle events go (SNS).
#[async_trait]
pub trait LifecycleEvents: Send + Sync {
    async fn publish(&self, event: &model::status::LifecycleEvent) -> Result<(), PublishError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamReadError {
    /// The records are no longer in the stream (past its 24-hour retention, or the shard or
    /// stream is gone): retrying cannot bring them back.
    #[error("the records are gone from the stream: {0}")]
    Gone(String),
    #[error("cannot read the stream: {0}")]
    Transient(String),
}

/// A range of a DynamoDB stream shard, as Lambda's OnFailure record names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardRange {
    pub stream_arn: String,
    pub shard_id: String,
    pub start_sequence_number: String,
    pub end_sequence_number: String,
}

/// Re-reads stream records (the on-failure consumer).
#[async_trait]
pub trait StreamRecords: Send + Sync {
    /// The tenants whose SPEC the records in `range` (inclusive) name, in stream order.
    async fn tenants_in(&self, range: &ShardRange) -> Result<Vec<TenantKey>, StreamReadError>;
}

/// A write made with an `Idempotency-Key`: first its claim, taken before the write runs, then
/// the stored response. The same key and request get the response again (or, while the claim
/// holds, are told to retry); the same key with another request is refused.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdempotencyRecord {
    /// A hash of the request (method, path, body) the key was first used with.
    pub request_hash: String,
    /// The response's status; 0 while the claim's request runs. Stored as `response_status`: an
    /// attribute named `status` would enter the `by-status` index.
    #[serde(rename = "response_status")]
    pub status: u16,
    pub body: String,
    /// The response's ETag, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// While in flight: until when (Unix seconds) the claim holds. A request that died while
    /// holding it leaves it behind; past this time another request with the key takes it over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_until: Option<i64>,
}

impl IdempotencyRecord {
    /// How long a claim holds: longer than the API function's timeout, so a claim is taken over
    /// only from a request that can no longer be running.
    pub const CLAIM: chrono::Duration = chrono::Duration::seconds(60);

    /// The claim of a request about to run.
    pub fn claim(request_hash: String, now: chrono::DateTime<chrono::Utc>) -> Self {
        Self {
            request_hash,
            status: 0,
            body: String::new(),
            etag: None,
            claimed_until: Some((now + Self::CLAIM).timestamp()),
        }
    }

    /// Whether this is a claim whose request is still running (or died, not yet past its hold).
    pub fn in_flight(&self) -> bool {
        self.status == 0
    }
}

/// How writers (the API, `tenantctl --direct`) write desired state: SPEC rows, conditionally.
#[async_trait]
pub trait SpecStore: Send + Sync {
    /// Creates the SPEC; `Conflict` when the tenant already has one.
    async fn create_spec(&self, tenant: &TenantKey, item: &Item) -> Result<(), StoreError>;
    /// Replaces the SPEC only if it is still `expected` (every attribute as read); `Conflict`
    /// when it changed or is gone.
    async fn replace_spec(
        &self,
        tenant: &TenantKey,
        item: &Item,
        expected: &Item,
    ) -> Result<(), StoreError>;
    /// Deletes the SPEC only if it is still `expected`; `Conflict` when it changed or is gone.
    async fn delete_spec(&self, tenant: &TenantKey, expected: &Item) -> Result<(), StoreError>;
    /// One page of tenants that have a SPEC, at most `limit`, and the token of the next page.
    async fn list_specs(
        &self,
        page_token: Option<String>,
        limit: usize,
    ) -> Result<(Vec<TenantKey>, Option<String>), StoreError>;
    /// The page token that resumes a `list_specs` listing just after `tenant` (for a page cut
    /// short: the API keeps each answer within Lambda's response size).
    fn resume_after(&self, tenant: &TenantKey) -> String;
    /// One page of the tenants `list_specs` leaves out though they have a STATUS: their SPEC is
    /// gone (deleted, or being deleted), or holds no string `tenant_id` (an invalid SPEC, which
    /// the `tenants` index does not hold). At most `limit`, each with the page token that
    /// resumes just after it, and the token of the next page.
    async fn list_unindexed(
        &self,
        page_token: Option<String>,
        limit: usize,
    ) -> Result<(Vec<(TenantKey, String)>, Option<String>), StoreError>;
    /// The claim or response stored for `key` in `scope` (a caller), if any and not expired.
    async fn idempotency_record(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError>;
    /// Takes `key` in `scope` for the request of `claim`, before it runs: `Conflict` when a
    /// response is stored or another claim still holds.
    async fn claim_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        claim: &IdempotencyRecord,
    ) -> Result<(), StoreError>;
    /// Stores the response over the claim of the same request (`Conflict` when the claim was
    /// taken over).
    async fn finish_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        record: &IdempotencyRecord,
    ) -> Result<(), StoreError>;
    /// Gives up the claim of the request with `request_hash` (it failed, and changed nothing):
    /// the key can be used again. Nothing happens when the claim is no longer that request's.
    async fn release_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        request_hash: &str,
    ) -> Result<(), StoreError>;
}

/// A published tenant template version, as stored: immutable once written.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TemplateRecord {
    pub version: String,
    pub body: String,
    /// Hex SHA-256 of `body`: a publish of the same version and body is a harmless repeat.
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub published_by: String,
    /// RFC 3339.
    pub published_at: String,
}

/// The fleet's current template version, with the row version its conditional writes check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrentTemplate {
    pub version: String,
    pub row_version: u64,
}

/// Where published template versions and the fleet's current version live (the table).
#[async_trait]
pub trait TemplateStore: Send + Sync {
    /// Stores a new version; `Conflict` when the version exists (whatever its body).
    async fn put_template(&self, record: &TemplateRecord) -> Result<(), StoreError>;
    async fn template(&self, version: &str) -> Result<Option<TemplateRecord>, StoreError>;
    /// Every published version (bodies included), oldest first.
    async fn list_templates(&self) -> Result<Vec<TemplateRecord>, StoreError>;
    /// `None` until a rollout first makes a published version current.
    async fn current_template(&self) -> Result<Option<CurrentTemplate>, StoreError>;
    /// Makes `version` current if the row is still at `expected` (`None`: no row yet).
    async fn set_current_template(
        &self,
        version: &str,
        expected: Option<u64>,
    ) -> Result<(), StoreError>;
}

/// Where rollouts and their members live (the table).
#[async_trait]
pub trait RolloutStore: Send + Sync {
    /// Stores a new rollout; `Conflict` when the id exists.
    async fn create_rollout(&self, rollout: &model::rollout::Rollout) -> Result<(), StoreError>;
    async fn rollout(&self, id: &str) -> Result<Option<model::rollout::Rollout>, StoreError>;
    /// Every rollout, newest first.
    async fn list_rollouts(&self) -> Result<Vec<model::rollout::Rollout>, StoreError>;
    /// Writes the rollout if its stored `version` is still `expected`.
    async fn put_rollout(
        &self,
        rollout: &model::rollout::Rollout,
        expected: u64,
    ) -> Result<(), StoreError>;
    /// The rollout that holds the fleet (at most one runs at a time).
    async fn active_rollout(&self) -> Result<Option<String>, StoreError>;
    /// Makes `id` the active rollout if none is, or if `replacing` is (a finished one);
    /// `Conflict` otherwise.
    async fn claim_active(&self, id: &str, replacing: Option<&str>) -> Result<(), StoreError>;
    /// Frees the fleet if `id` holds it (a no-op otherwise).
    async fn release_active(&self, id: &str) -> Result<(), StoreError>;
    /// Every member of the rollout, sorted by `order`.
    async fn members(&self, id: &str) -> Result<Vec<model::rollout::Member>, StoreError>;
    /// Adds members; one already stored is kept as it is (planning a page twice is harmless).
    async fn add_members(
        &self,
        id: &str,
        members: &[model::rollout::Member],
    ) -> Result<(), StoreError>;
    /// Writes a member if its stored state is still `expected`.
    async fn put_member(
        &self,
        id: &str,
        member: &model::rollout::Member,
        expected: model::rollout::MemberState,
    ) -> Result<(), StoreError>;
    /// Takes or renews the driver lease for `holder` until `until` (epoch seconds): granted when
    /// no lease is stored, `holder` has it, or the stored one ended before `now`; `Conflict`
    /// while another driver's lease runs. One driver steps the rollouts at a time.
    async fn hold_driver_lease(&self, holder: &str, now: i64, until: i64)
    -> Result<(), StoreError>;
    /// Gives the lease up if `holder` has it (a no-op otherwise).
    async fn release_driver_lease(&self, holder: &str) -> Result<(), StoreError>;
}

/// Where rollout previews live (the table): the job, and one item per tenant previewed.
#[async_trait]
pub trait PreviewStore: Send + Sync {
    /// Stores a new preview job; `Conflict` when the id exists.
    async fn create_preview(
        &self,
        job: &crate::rollout::preview::PreviewJob,
    ) -> Result<(), StoreError>;
    async fn preview(
        &self,
        id: &str,
    ) -> Result<Option<crate::rollout::preview::PreviewJob>, StoreError>;
    /// Writes the job if its stored `version` is still `expected`.
    async fn put_preview(
        &self,
        job: &crate::rollout::preview::PreviewJob,
        expected: u64,
    ) -> Result<(), StoreError>;
    /// Stores tenants' previews (one written again replaces the earlier one).
    async fn put_preview_results(
        &self,
        id: &str,
        results: &[crate::rollout::preview::TenantPreview],
    ) -> Result<(), StoreError>;
    /// A page of the job's tenant previews, by tenant id, and the token of the next page.
    async fn preview_results(
        &self,
        id: &str,
        page_token: Option<String>,
        limit: usize,
    ) -> Result<(Vec<crate::rollout::preview::TenantPreview>, Option<String>), StoreError>;
}

/// CloudFormation's own check of a template body (ValidateTemplate, in the control plane's
/// account: no tenant is reached).
#[async_trait]
pub trait TemplateValidator: Send + Sync {
    /// `Rejected` with CloudFormation's words when the template is invalid.
    async fn validate_template(&self, body: &str) -> Result<(), StackError>;
}

/// One resource change a stack update would make, as a change set reports it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResourceChange {
    /// `Add`, `Modify`, `Remove` (CloudFormation's words).
    pub action: String,
    pub logical_id: String,
    pub resource_type: String,
    /// For `Modify`: `True`, `False` or `Conditional` (whether the resource is replaced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
}

/// What an update would change, without changing anything: a change set, created, read and
/// deleted.
#[async_trait]
pub trait ChangePreviews: Send + Sync {
    async fn preview(
        &self,
        at: &StackTarget,
        request: &StackRequest,
    ) -> Result<Vec<ResourceChange>, StackError>;
}
