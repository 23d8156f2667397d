//! The observed state of a tenant (its STATUS row), written only by the control plane.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where a tenant's stack lives. Recorded on STATUS before any stack call, so the stack can be
/// found again (and removed) even when the SPEC is gone or was never valid afterwards.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StackLocation {
    pub account_id: String,
    pub region: String,
    pub stack_name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Creating,
    Updating,
    Deleting,
    Ready,
    Failed,
    Deleted,
}

impl Status {
    pub fn is_in_flight(self) -> bool {
        matches!(self, Self::Creating | Self::Updating | Self::Deleting)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "creating",
            Self::Updating => "updating",
            Self::Deleting => "deleting",
            Self::Ready => "ready",
            Self::Failed => "failed",
            Self::Deleted => "deleted",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The stack operation a STATUS row last started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Create,
    Update,
    Delete,
    ContinueUpdateRollback,
    /// A drift-aware change set (REVERT_DRIFT) bringing drifted resources back to the template.
    RevertDrift,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::ContinueUpdateRollback => "continue-update-rollback",
            Self::RevertDrift => "revert-drift",
        }
    }
}

/// The STATUS row (`sk = "STATUS"`), stored attribute by attribute with serde_dynamo.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TenantStatus {
    pub tenant_id: String,
    pub status: Status,
    /// Why it failed: the SPEC field at fault or CloudFormation's own words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A failure that may heal (throttling, a role still propagating, a busy stack).
    #[serde(default)]
    pub retryable: bool,
    /// RFC 3339; when a retryable failure may be tried again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    /// Stack operations started for this `spec_fingerprint`; bounds repeated operations.
    #[serde(default)]
    pub attempts: u32,
    /// Failures that may heal recorded in a row; sets the backoff and bounds automatic retries.
    #[serde(default)]
    pub retries: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Operation>,
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<StackLocation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// CloudFormation's status of the stack when last seen.
    pub stack_status: Option<crate::stack::StackStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_version: Option<String>,
    /// The template version the fleet assigned this tenant: the current version when it was
    /// created, then what rollouts move it to. A pin (SPEC `template_version`) overrides it.
    /// Kept here, not on SPEC, so a writer's put-item can never lose it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_version: Option<String>,
    /// Who assigned it: `created`, or the rollout (`r-...`, `r-... rollback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_by: Option<String>,
    /// The fingerprint of the SPEC this row reflects (content is the version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_fingerprint: Option<String>,
    /// RFC 3339.
    pub updated_at: String,
    /// Bumped on every write; writes are conditional on the version read.
    pub version: u64,
    /// Lifecycle events of transitions recorded here and not yet published (an outbox: written
    /// with the state, so a failed publish is retried and never lost).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_events: Vec<LifecycleEvent>,
    /// The decommission announced for this tenant (its grace period runs until `remove_after`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decommission_notice: Option<DecommissionNotice>,
    /// The last drift check of the stack (the drift job's), and the revert started for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<crate::drift::DriftRecord>,
}

impl TenantStatus {
    /// A row for `tenant_id` in `status`, written at `updated_at`, with nothing else known yet.
    pub fn new(
        tenant_id: impl Into<String>,
        status: Status,
        updated_at: impl Into<String>,
    ) -> Self {
        Self {
            tenant_id: tenant_id.into(),
            status,
            reason: None,
            retryable: false,
            next_attempt_at: None,
            attempts: 0,
            retries: 0,
            operation: None,
            outputs: BTreeMap::new(),
            location: None,
            stack_id: None,
            stack_status: None,
            template_version: None,
            assigned_version: None,
            assigned_by: None,
            spec_fingerprint: None,
            updated_at: updated_at.into(),
            version: 0,
            pending_events: Vec::new(),
            decommission_notice: None,
            drift: None,
        }
    }
}

impl TenantStatus {
    /// The version the fleet gives this tenant when it has no pin: its assignment, or for a row
    /// written before assignments existed, the version its stack was built with.
    pub fn fleet_version(&self) -> Option<&str> {
        // A deleted tenant created again starts from the fleet's current version.
        if self.status == Status::Deleted {
            return self.assigned_version.as_deref();
        }
        self.assigned_version
            .as_deref()
            .or(self.template_version.as_deref())
    }
}

/// A decommission announced to subscribers: the SPEC is removed once the grace period is over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecommissionNotice {
    /// The SPEC's `decommission_date` this notice is for (a moved date is announced again).
    pub date: String,
    /// RFC 3339: when the grace period started.
    pub announced_at: String,
    /// RFC 3339: when the grace period ends.
    pub remove_after: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LifecycleKind {
    Provisioned,
    Updated,
    Failed,
    Deleted,
    /// The tenant's decommission date passed: it is removed after the grace period.
    DecommissionScheduled,
    /// A drift check found the stack's resources changed outside CloudFormation (or other
    /// resources than the last check did).
    Drifted,
}

/// A lifecycle event, as published on the topic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LifecycleEvent {
    /// The same for every delivery of one transition (tenant and STATUS version): subscribers
    /// drop duplicates by it.
    pub id: String,
    pub kind: LifecycleKind,
    pub tenant_id: String,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_version: Option<String>,
    pub occurred_at: String,
    /// For `decommission_scheduled`: when the tenant will be removed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_after: Option<String>,
}

impl LifecycleEvent {
    /// The event a STATUS row records, if it is a transition subscribers hear of: ready,
    /// deleted, or failed for good (not a failure that is being retried).
    pub fn of(status: &TenantStatus) -> Option<Self> {
        let kind = match status.status {
            Status::Ready if status.operation == Some(Operation::Create) => {
                LifecycleKind::Provisioned
            }
            Status::Ready => LifecycleKind::Updated,
            Status::Deleted => LifecycleKind::Deleted,
            Status::Failed if status.next_attempt_at.is_none() => LifecycleKind::Failed,
            _ => return None,
        };
        Some(Self {
            id: format!("{}:{}", status.tenant_id, status.version),
            kind,
            tenant_id: status.tenant_id.clone(),
            status: status.status,
            account_id: status.location.as_ref().map(|l| l.account_id.clone()),
            region: status.location.as_ref().map(|l| l.region.clone()),
            outputs: status.outputs.clone(),
            reason: status.reason.clone(),
            template_version: status.template_version.clone(),
            occurred_at: status.updated_at.clone(),
            remove_after: None,
        })
    }

    /// The announcement that `status`'s tenant will be removed after its grace period; one id
    /// per tenant and date, so a repeated announcement is a duplicate subscribers drop.
    pub fn decommission_scheduled(status: &TenantStatus, notice: &DecommissionNotice) -> Self {
        Self {
            remove_after: Some(notice.remove_after.clone()),
            ..Self::about(
                status,
                LifecycleKind::DecommissionScheduled,
                format!("{}:decommission:{}", status.tenant_id, notice.date),
                format!(
                    "decommission_date {} has passed; the tenant is removed after {}",
                    notice.date, notice.remove_after
                ),
                &notice.announced_at,
            )
        }
    }

    /// The announcement that `status`'s stack drifted, as `drift` found it; one id per tenant
    /// and check, so a repeated announcement is a duplicate subscribers drop.
    pub fn drifted(status: &TenantStatus, drift: &crate::drift::DriftRecord) -> Self {
        Self::about(
            status,
            LifecycleKind::Drifted,
            format!("{}:drift:{}", status.tenant_id, drift.checked_at),
            drift.summary(),
            &drift.checked_at,
        )
    }

    /// An announcement about `status`'s tenant that is no transition of it.
    fn about(
        status: &TenantStatus,
        kind: LifecycleKind,
        id: String,
        reason: String,
        occurred_at: &str,
    ) -> Self {
        Self {
            id,
            kind,
            tenant_id: status.tenant_id.clone(),
            status: status.status,
            account_id: status.location.as_ref().map(|l| l.account_id.clone()),
            region: status.location.as_ref().map(|l| l.region.clone()),
            outputs: status.outputs.clone(),
            reason: Some(reason),
            template_version: status.template_version.clone(),
            occurred_at: occurred_at.to_owned(),
            remove_after: None,
        }
    }
}
