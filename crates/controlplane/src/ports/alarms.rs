//! The health signals a rollout watches: CloudWatch alarms.

use async_trait::async_trait;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlarmError {
    /// CloudWatch has no alarm of these names (misspelt, deleted, or in another account or
    /// region): the signal will not come back by waiting.
    #[error("no such alarm: {} (DescribeAlarms answered without it)", .0.join(", "))]
    Missing(Vec<String>),
    /// The alarms could not be read (throttled, denied, unreachable): may heal.
    #[error("cannot read the rollout's alarms: {0}")]
    Unavailable(String),
}

/// An alarm in ALARM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Breach {
    pub alarm: String,
    /// CloudWatch's StateReason.
    pub reason: String,
}

#[async_trait]
pub trait Alarms: Send + Sync {
    /// The first of `names` in ALARM (sorted by name); `None`: none is. An alarm that does not
    /// exist is an error: a misspelt name must not pass for a healthy signal.
    async fn breached(&self, names: &[String]) -> Result<Option<Breach>, AlarmError>;
}
