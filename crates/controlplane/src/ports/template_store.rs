//! Published template versions and the fleet's current one.

use async_trait::async_trait;

use super::StoreError;

/// A published tenant template version, as stored: immutable once written. The body itself is an
/// S3 object ([`super::TemplateObjects`]) under `key`; the item holds no body.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TemplateRecord {
    pub version: String,
    /// The body's content-addressed key in the template buckets (`templates/<sha256>.<ext>`);
    /// `None` for a version shipped with the control plane, whose body is built in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The body's size in bytes.
    #[serde(default)]
    pub size: usize,
    /// Hex SHA-256 of the body: checked on every read, and a publish of the same version and
    /// body is a harmless repeat.
    pub sha256: String,
    /// The body, in an item written before bodies moved to S3 (read, never written again).
    #[serde(default, rename = "body", skip_serializing)]
    pub inline_body: Option<String>,
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
    /// Every published version, oldest first.
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
