//! Where published template versions' bodies live: one S3 bucket per region tenants use, since
//! CloudFormation reads a TemplateURL from a bucket in the stack's region.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::{Healing, TemplateSourceError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    /// May heal: throttling, a network failure, a server fault, a policy still propagating.
    #[error("template bucket: {0}")]
    Unavailable(String),
    /// Refused for good (no such bucket, a request S3 will always refuse).
    #[error("template bucket refused the request: {0}")]
    Rejected(String),
}

impl ObjectError {
    pub fn healing(&self) -> Healing {
        match self {
            Self::Unavailable(_) => Healing::Transient,
            Self::Rejected(_) => Healing::Permanent,
        }
    }
}

impl From<ObjectError> for TemplateSourceError {
    fn from(error: ObjectError) -> Self {
        match error {
            ObjectError::Unavailable(_) => Self::Unavailable(error.to_string()),
            ObjectError::Rejected(_) => Self::Corrupt(error.to_string()),
        }
    }
}

/// The content-addressed key of a template body: a body is stored once, whatever its version.
pub fn template_object_key(sha256: &str, body: &str) -> String {
    let extension = if body.trim_start().starts_with('{') {
        "json"
    } else {
        "yaml"
    };
    format!("templates/{sha256}.{extension}")
}

#[async_trait]
pub trait TemplateObjects: Send + Sync {
    /// Stores `body` under `key` in every region's bucket. A repeat is harmless: the key is the
    /// body's hash.
    async fn put(&self, key: &str, body: &str) -> Result<(), ObjectError>;
    /// The body under `key` in the home region's bucket; `None` when there is no such object.
    async fn get(&self, key: &str) -> Result<Option<String>, ObjectError>;
    /// The URL CloudFormation reads `key` from, per region that has a bucket.
    fn urls(&self, key: &str) -> BTreeMap<String, String>;
    /// The region of the bucket [`get`](Self::get) reads (the control plane's own).
    fn home_region(&self) -> &str;
}
