//! The completion loop's re-check queue, recorded.

use std::sync::Mutex;

use async_trait::async_trait;

use super::lock;
use model::spec::TenantKey;

/// Records every re-check asked for; can be made to fail.
#[derive(Default)]
pub struct RecordingRecheck {
    requests: Mutex<Vec<(TenantKey, std::time::Duration)>>,
    failing: Mutex<bool>,
}

impl RecordingRecheck {
    pub fn requests(&self) -> Vec<(TenantKey, std::time::Duration)> {
        lock(&self.requests).clone()
    }

    pub fn set_failing(&self, failing: bool) {
        *lock(&self.failing) = failing;
    }
}

#[async_trait]
impl crate::ports::Recheck for RecordingRecheck {
    async fn schedule(
        &self,
        tenant: &TenantKey,
        after: std::time::Duration,
    ) -> Result<(), crate::ports::RecheckError> {
        if *lock(&self.failing) {
            return Err(crate::ports::RecheckError("queue unavailable".into()));
        }
        lock(&self.requests).push((tenant.clone(), after));
        Ok(())
    }
}
