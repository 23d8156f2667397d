//! Lifecycle events, recorded.

use std::sync::Mutex;

use async_trait::async_trait;

use super::lock;

/// Records every lifecycle event published; can be made to fail.
#[derive(Default)]
pub struct RecordingEvents {
    published: Mutex<Vec<model::status::LifecycleEvent>>,
    failing: Mutex<bool>,
}

impl RecordingEvents {
    pub fn published(&self) -> Vec<model::status::LifecycleEvent> {
        lock(&self.published).clone()
    }

    pub fn set_failing(&self, failing: bool) {
        *lock(&self.failing) = failing;
    }
}

#[async_trait]
impl crate::ports::LifecycleEvents for RecordingEvents {
    async fn publish(
        &self,
        event: &model::status::LifecycleEvent,
    ) -> Result<(), crate::ports::EventPublishError> {
        if *lock(&self.failing) {
            return Err(crate::ports::EventPublishError("topic unavailable".into()));
        }
        lock(&self.published).push(event.clone());
        Ok(())
    }
}
