//! Published template versions and the fleet's current one.

use async_trait::async_trait;

use super::StoreError;

/// A published tenant template version, as stored: immutable once written.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TemplateRecord {
    pub version: String,
    pub body: String,
    /// Hex SHA-256 of `body`: a publish of the same version and body is a harmless repeat.
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub published_by: String,
    /// RFC 3339.
    pub published_at: String,
}

/// The fleet's current template version, with the row version its conditional writes check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrentTemplate {
    pub version: String,
    pub row_version: u64,
}

/// Where published template versions and the fleet's current version live (the table).
#[async_trait]
pub trait TemplateStore: Send + Sync {
    /// Stores a new version; `Conflict` when the version exists (whatever its body).
    async fn put_template(&self, record: &TemplateRecord) -> Result<(), StoreError>;
    async fn template(&self, version: &str) -> Result<Option<TemplateRecord>, StoreError>;
    /// Every published version (bodies included), oldest first.
    async fn list_templates(&self) -> Result<Vec<TemplateRecord>, StoreError>;
    /// `None` until a rollout first makes a published version current.
    async fn current_template(&self) -> Result<Option<CurrentTemplate>, StoreError>;
    /// Makes `version` current if the row is still at `expected` (`None`: no row yet).
    async fn set_current_template(
        &self,
        version: &str,
        expected: Option<u64>,
    ) -> Result<(), StoreError>;
}
