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

/// A drift-aware change set, made and computed: nothing has changed yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RevertPlan {
    /// CloudFormation found nothing to change (it fails such a change set; it was removed).
    NothingToRevert,
    /// Ready to execute; `not_reverted`: what it says it leaves as it is.
    Ready {
        change_set: String,
        not_reverted: Vec<NotReverted>,
    },
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
    /// Makes a drift-aware change set (CreateChangeSet with DeploymentMode REVERT_DRIFT) from
    /// the SPEC's template and parameters, and waits for it to be computed. Nothing changes
    /// until [`Self::execute_revert`]; a change set that failed or was not computed in time is
    /// removed. A plain UpdateStack reverts nothing ("No updates are to be performed").
    async fn prepare_revert(
        &self,
        at: &StackTarget,
        request: &StackRequest,
    ) -> Result<RevertPlan, StackError>;
    /// Executes a prepared change set: the stack goes UPDATE_IN_PROGRESS.
    async fn execute_revert(
        &self,
        at: &StackTarget,
        change_set: &str,
        client_request_token: &str,
    ) -> Result<(), StackError>;
    /// Removes a prepared change set that will not be executed (best effort: a leftover one
    /// goes when the stack's next change set is executed).
    async fn discard_revert(&self, at: &StackTarget, change_set: &str);
}
