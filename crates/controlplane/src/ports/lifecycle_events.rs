//! Lifecycle events (SNS).

use async_trait::async_trait;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot publish a lifecycle event: {0}")]
pub struct EventPublishError(pub String);

/// Where lifecycle events go (SNS).
#[async_trait]
pub trait LifecycleEvents: Send + Sync {
    async fn publish(&self, event: &model::status::LifecycleEvent)
    -> Result<(), EventPublishError>;
}
