//! The health signals a rollout watches: CloudWatch alarms.

use async_trait::async_trait;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read the rollout's alarms: {0}")]
pub struct AlarmError(pub String);

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
