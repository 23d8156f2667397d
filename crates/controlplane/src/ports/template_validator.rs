//! CloudFormation's ValidateTemplate.

use async_trait::async_trait;

use super::StackError;

/// CloudFormation's own check of a template body (ValidateTemplate, in the control plane's
/// account: no tenant is reached).
#[async_trait]
pub trait TemplateValidator: Send + Sync {
    /// `Rejected` with CloudFormation's words when the template is invalid.
    async fn validate_template(&self, body: &str) -> Result<(), StackError>;
}
