//! CloudFormation stack state, modelled exhaustively, and what the control plane may do in each.

use std::collections::BTreeMap;

/// Every CloudFormation stack status, plus any future one we do not know yet. Stored (on STATUS)
/// as CloudFormation's own text; a text this build does not know reads back as `Unknown`, kept.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(from = "String", into = "String")]
pub enum StackStatus {
    CreateInProgress,
    CreateFailed,
    CreateComplete,
    RollbackInProgress,
    RollbackFailed,
    RollbackComplete,
    DeleteInProgress,
    DeleteFailed,
    DeleteComplete,
    UpdateInProgress,
    UpdateCompleteCleanupInProgress,
    UpdateComplete,
    UpdateFailed,
    UpdateRollbackInProgress,
    UpdateRollbackFailed,
    UpdateRollbackCompleteCleanupInProgress,
    UpdateRollbackComplete,
    ReviewInProgress,
    ImportInProgress,
    ImportComplete,
    ImportRollbackInProgress,
    ImportRollbackFailed,
    ImportRollbackComplete,
    Unknown(String),
}

/// What a stack status means for the control plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StackPhase {
    /// An operation runs: never call another one (retry later).
    InProgress,
    /// Made by a change set and never executed: it holds no resources.
    Review,
    /// Stable, and the last operation succeeded.
    Healthy,
    /// Stable, the last update failed and was rolled back.
    UpdateRolledBack,
    /// Stable with rollback disabled: the last update failed.
    UpdateFailed,
    /// A failed create: the stack must be deleted before it is created again.
    CreateFailed,
    /// Needs ContinueUpdateRollback before anything else.
    UpdateRollbackFailed,
    /// A create whose rollback failed: only a delete can clear it.
    RollbackFailed,
    DeleteFailed,
    /// Needs an operator in the tenant account.
    ImportRollbackFailed,
    /// Gone (DescribeStacks by name no longer shows it).
    Deleted,
    Unknown,
}

impl StackStatus {
    pub const ALL_KNOWN: [StackStatus; 23] = [
        Self::CreateInProgress,
        Self::CreateFailed,
        Self::CreateComplete,
        Self::RollbackInProgress,
        Self::RollbackFailed,
        Self::RollbackComplete,
        Self::DeleteInProgress,
        Self::DeleteFailed,
        Self::DeleteComplete,
        Self::UpdateInProgress,
        Self::UpdateCompleteCleanupInProgress,
        Self::UpdateComplete,
        Self::UpdateFailed,
        Self::UpdateRollbackInProgress,
        Self::UpdateRollbackFailed,
        Self::UpdateRollbackCompleteCleanupInProgress,
        Self::UpdateRollbackComplete,
        Self::ReviewInProgress,
        Self::ImportInProgress,
        Self::ImportComplete,
        Self::ImportRollbackInProgress,
        Self::ImportRollbackFailed,
        Self::ImportRollbackComplete,
    ];

    pub fn parse(text: &str) -> Self {
        Self::ALL_KNOWN
            .iter()
            .find(|status| status.as_str() == text)
            .cloned()
            .unwrap_or_else(|| Self::Unknown(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::CreateInProgress => "CREATE_IN_PROGRESS",
            Self::CreateFailed => "CREATE_FAILED",
            Self::CreateComplete => "CREATE_COMPLETE",
            Self::RollbackInProgress => "ROLLBACK_IN_PROGRESS",
            Self::RollbackFailed => "ROLLBACK_FAILED",
            Self::RollbackComplete => "ROLLBACK_COMPLETE",
            Self::DeleteInProgress => "DELETE_IN_PROGRESS",
            Self::DeleteFailed => "DELETE_FAILED",
            Self::DeleteComplete => "DELETE_COMPLETE",
            Self::UpdateInProgress => "UPDATE_IN_PROGRESS",
            Self::UpdateCompleteCleanupInProgress => "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
            Self::UpdateComplete => "UPDATE_COMPLETE",
            Self::UpdateFailed => "UPDATE_FAILED",
            Self::UpdateRollbackInProgress => "UPDATE_ROLLBACK_IN_PROGRESS",
            Self::UpdateRollbackFailed => "UPDATE_ROLLBACK_FAILED",
            Self::UpdateRollbackCompleteCleanupInProgress => {
                "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS"
            }
            Self::UpdateRollbackComplete => "UPDATE_ROLLBACK_COMPLETE",
            Self::ReviewInProgress => "REVIEW_IN_PROGRESS",
            Self::ImportInProgress => "IMPORT_IN_PROGRESS",
            Self::ImportComplete => "IMPORT_COMPLETE",
            Self::ImportRollbackInProgress => "IMPORT_ROLLBACK_IN_PROGRESS",
            Self::ImportRollbackFailed => "IMPORT_ROLLBACK_FAILED",
            Self::ImportRollbackComplete => "IMPORT_ROLLBACK_COMPLETE",
            Self::Unknown(text) => text,
        }
    }

    pub fn phase(&self) -> StackPhase {
        use StackPhase as P;
        match self {
            Self::CreateInProgress
            | Self::RollbackInProgress
            | Self::DeleteInProgress
            | Self::UpdateInProgress
            | Self::UpdateCompleteCleanupInProgress
            | Self::UpdateRollbackInProgress
            | Self::UpdateRollbackCompleteCleanupInProgress
            | Self::ImportInProgress
            | Self::ImportRollbackInProgress => P::InProgress,
            Self::ReviewInProgress => P::Review,
            Self::CreateComplete | Self::UpdateComplete | Self::ImportComplete => P::Healthy,
            Self::UpdateRollbackComplete | Self::ImportRollbackComplete => P::UpdateRolledBack,
            Self::UpdateFailed => P::UpdateFailed,
            Self::CreateFailed | Self::RollbackComplete => P::CreateFailed,
            Self::UpdateRollbackFailed => P::UpdateRollbackFailed,
            Self::RollbackFailed => P::RollbackFailed,
            Self::DeleteFailed => P::DeleteFailed,
            Self::ImportRollbackFailed => P::ImportRollbackFailed,
            Self::DeleteComplete => P::Deleted,
            // A status newer than this code: if it says an operation runs, wait it out.
            Self::Unknown(text) if text.ends_with("_IN_PROGRESS") => P::InProgress,
            Self::Unknown(_) => P::Unknown,
        }
    }
}

impl From<String> for StackStatus {
    fn from(text: String) -> Self {
        Self::parse(&text)
    }
}

impl From<&str> for StackStatus {
    fn from(text: &str) -> Self {
        Self::parse(text)
    }
}

impl From<StackStatus> for String {
    fn from(status: StackStatus) -> Self {
        match status {
            StackStatus::Unknown(text) => text,
            known => known.as_str().to_owned(),
        }
    }
}

impl std::fmt::Display for StackStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stack as DescribeStacks shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedStack {
    pub stack_id: String,
    pub status: StackStatus,
    pub status_reason: Option<String>,
    pub outputs: BTreeMap<String, String>,
    /// The parameters the stack runs with (to see drift from the SPEC).
    pub parameters: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
}

/// The stack name in a stack id (`arn:<partition>:cloudformation:<region>:<account>:stack/<name>/<guid>`);
/// `None` when the id is not a CloudFormation stack ARN.
pub fn stack_name_of_id(stack_id: &str) -> Option<&str> {
    let mut parts = stack_id.splitn(6, ':');
    let (arn, _partition, service, _region, _account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if arn != "arn" || service != "cloudformation" {
        return None;
    }
    let (name, _guid) = resource.strip_prefix("stack/")?.split_once('/')?;
    Some(name).filter(|n| !n.is_empty())
}

/// Tags the control plane puts on every stack it creates.
pub const TAG_MANAGED_BY: &str = "managed-by";
pub const TAG_TENANT_ID: &str = "tenant-id";
pub const TAG_TEMPLATE_VERSION: &str = "template-version";
/// The fingerprint of the SPEC the stack's last accepted create or update carried.
pub const TAG_SPEC_FINGERPRINT: &str = "spec-fingerprint";
pub const MANAGED_BY: &str = "tenant-control-plane";

impl ObservedStack {
    /// Whether the control plane made this stack for this tenant (it never touches another's).
    pub fn is_managed_for(&self, tenant_id: &str) -> bool {
        self.tags.get(TAG_MANAGED_BY).map(String::as_str) == Some(MANAGED_BY)
            && self.tags.get(TAG_TENANT_ID).map(String::as_str) == Some(tenant_id)
    }

    /// The SPEC fingerprint the stack was last created or updated with, if tagged.
    pub fn fingerprint(&self) -> Option<&str> {
        self.tags.get(TAG_SPEC_FINGERPRINT).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips_through_its_text() {
        for status in StackStatus::ALL_KNOWN {
            assert_eq!(StackStatus::parse(status.as_str()), status);
            assert_ne!(status.phase(), StackPhase::Unknown, "{status}");
        }
        let future = StackStatus::parse("TELEPORT_COMPLETE");
        assert_eq!(future, StackStatus::Unknown("TELEPORT_COMPLETE".into()));
        assert_eq!(future.phase(), StackPhase::Unknown);
        let running = StackStatus::parse("TELEPORT_IN_PROGRESS");
        assert_eq!(running.phase(), StackPhase::InProgress);
    }

    #[test]
    fn a_stack_id_names_its_stack() {
        let id = "arn:aws:cloudformation:eu-west-1:111111111111:stack/tenant-gs1234/4c1d6a30-b2f1-11ef-9d2e-0a8b5c3e1f21";
        assert_eq!(stack_name_of_id(id), Some("tenant-gs1234"));
        let china = "arn:aws-cn:cloudformation:cn-north-1:111111111111:stack/tenant-a1b/guid";
        assert_eq!(stack_name_of_id(china), Some("tenant-a1b"));
        for not_a_stack in [
            "",
            "tenant-gs1234",
            "arn:aws:sqs:us-east-1:111111111111:stack/tenant-gs1234/guid",
            "arn:aws:cloudformation:us-east-1:111111111111:stackset/tenant-gs1234:guid",
            "arn:aws:cloudformation:us-east-1:111111111111:stack/tenant-gs1234",
            "arn:aws:cloudformation:us-east-1:111111111111:stack//guid",
        ] {
            assert_eq!(stack_name_of_id(not_a_stack), None, "{not_a_stack}");
        }
    }

    #[test]
    fn every_in_progress_status_is_in_progress() {
        for status in StackStatus::ALL_KNOWN {
            let text = status.as_str();
            let in_progress = text.ends_with("_IN_PROGRESS") && text != "REVIEW_IN_PROGRESS";
            assert_eq!(
                status.phase() == StackPhase::InProgress,
                in_progress,
                "{text}"
            );
        }
    }
}
