//! The preview queue, recorded.

use std::sync::Mutex;

use async_trait::async_trait;

use super::lock;

/// Records every preview queued; can be made to fail.
#[derive(Default)]
pub struct RecordingPreviewQueue {
    queued: Mutex<Vec<String>>,
    failing: Mutex<bool>,
}

impl RecordingPreviewQueue {
    pub fn queued(&self) -> Vec<String> {
        lock(&self.queued).clone()
    }

    pub fn set_failing(&self, failing: bool) {
        *lock(&self.failing) = failing;
    }
}

#[async_trait]
impl crate::rollout::preview::PreviewQueue for RecordingPreviewQueue {
    async fn queue(&self, preview_id: &str) -> Result<(), crate::ports::RecheckError> {
        if *lock(&self.failing) {
            return Err(crate::ports::RecheckError("queue unavailable".into()));
        }
        lock(&self.queued).push(preview_id.to_owned());
        Ok(())
    }
}
