//! A tenant's CloudFormation stack, reached through its account's role.

use async_trait::async_trait;

use model::stack::ObservedStack;
use model::status::StackLocation;
pub use model::template::TemplateLocation;

use super::Healing;

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

    /// CloudFormation (or STS) throttled the call: worth backing off and trying again.
    pub fn is_throttle(&self) -> bool {
        matches!(self, Self::Transient(message) if crate::aws::is_throttle_message(message))
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
    /// A published version's URL in the stack's region, or a shipped version's body.
    pub template: TemplateLocation,
    /// The CloudFormation service role the stack's resources are made with (the tenant account's
    /// deploy role); `None`: the caller's credentials.
    pub role_arn: Option<String>,
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
