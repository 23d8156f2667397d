//! Drift detection and revert on a tenant's stack, through its account's role.

use async_trait::async_trait;

pub use model::drift::{NotReverted, ResourceDrift};

use super::{StackError, StackRequest, StackTarget};

/// Where a drift detection stands (DescribeStackDriftDetectionStatus).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DetectionProgress {
    InProgress,
    /// Finished; `drifted`: the stack is DRIFTED (else IN_SYNC). `reason`: CloudFormation's
    /// words when some resources could not be checked (a partial detection).
    Complete {
        drifted: bool,
        reason: Option<String>,
    },
    /// DETECTION_FAILED, in CloudFormation's words.
    Failed {
        reason: String,
    },
}

/// What a revert started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RevertStarted {
    /// The drift-aware change set is executing: the stack is UPDATE_IN_PROGRESS. `not_reverted`:
    /// what it said it leaves as it is.
    Executing { not_reverted: Vec<NotReverted> },
    /// The change set had nothing to change.
    NothingToRevert,
}

#[async_trait]
pub trait StackDrift: Send + Sync {
    /// Starts DetectStackDrift; the detection's id.
    async fn detect(&self, at: &StackTarget) -> Result<String, StackError>;
    async fn progress(
        &self,
        at: &StackTarget,
        detection_id: &str,
    ) -> Result<DetectionProgress, StackError>;
    /// The resources that are MODIFIED or DELETED, with their property differences (every page).
    async fn drifted_resources(&self, at: &StackTarget) -> Result<Vec<ResourceDrift>, StackError>;
    /// A drift-aware change set (CreateChangeSet with DeploymentMode REVERT_DRIFT) from the
    /// stack's own template and parameters, waited for, then executed. A plain UpdateStack
    /// reverts nothing ("No updates are to be performed").
    async fn revert(
        &self,
        at: &StackTarget,
        request: &StackRequest,
    ) -> Result<RevertStarted, StackError>;
}
