//! Where the reconcile gets tenant template versions.

use std::sync::Arc;

use async_trait::async_trait;

use model::template::Template;

use super::StoreError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateSourceError {
    /// The versions could not be read; may heal.
    #[error("templates: {0}")]
    Unavailable(String),
    /// The version is stored but refused for good (its body changed after it was published):
    /// a tenant on it fails with this reason instead of retrying forever.
    #[error("{0}")]
    Corrupt(String),
}

impl From<StoreError> for TemplateSourceError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Corrupt(reason) => Self::Corrupt(reason),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

/// Where tenant template versions come from.
#[async_trait]
pub trait TemplateSource: Send + Sync {
    /// The version a tenant without a pin gets.
    async fn current_version(&self) -> Result<String, TemplateSourceError>;
    /// The same, with the CURRENT row as read, for a write that assigns it to hold only while
    /// the row is still so (`None`: nothing to guard, as for versions shipped alone).
    async fn current(&self) -> Result<(String, Option<super::CurrentGuard>), TemplateSourceError> {
        Ok((self.current_version().await?, None))
    }
    /// A write guarded by [`Self::current`] lost: read the row afresh next time.
    fn forget_current(&self) {}
    /// `None` when there is no such version.
    async fn get(&self, version: &str) -> Result<Option<Arc<Template>>, TemplateSourceError>;
}
