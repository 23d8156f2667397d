//! Change sets: what an update would change.

use async_trait::async_trait;

use super::{StackError, StackRequest, StackTarget};

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
