//! The completion loop's delayed re-check.

use async_trait::async_trait;

use model::spec::TenantKey;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot schedule a re-check: {0}")]
pub struct RecheckError(pub String);

/// Schedules another reconcile of a tenant after a delay: how an operation in flight is followed
/// to its end (the completion loop).
#[async_trait]
pub trait Recheck: Send + Sync {
    async fn schedule(
        &self,
        tenant: &TenantKey,
        after: std::time::Duration,
    ) -> Result<(), RecheckError>;
}
