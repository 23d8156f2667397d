//! CloudFormation's ValidateTemplate.

use async_trait::async_trait;

use super::StackError;
use model::template::TemplateLocation;

/// CloudFormation's own check of a template (a published version is checked through its URL) (ValidateTemplate, in the control plane's
/// account: no tenant is reached).
#[async_trait]
pub trait TemplateValidator: Send + Sync {
    /// `Rejected` with CloudFormation's words when the template is invalid.
    async fn validate_template(&self, template: &TemplateLocation) -> Result<(), StackError>;
}
