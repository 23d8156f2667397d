//! ValidateTemplate, faked.

use async_trait::async_trait;

use crate::ports::StackError;

/// CloudFormation's template check, faked: a body is accepted unless it holds `rejects`.
#[derive(Default)]
pub struct FakeTemplateValidator {
    pub rejects: Option<String>,
}

#[async_trait]
impl crate::ports::TemplateValidator for FakeTemplateValidator {
    async fn validate_template(&self, body: &str) -> Result<(), StackError> {
        match &self.rejects {
            Some(marker) if body.contains(marker.as_str()) => Err(StackError::Rejected(format!(
                "ValidationError: Template format error: unsupported construct {marker}"
            ))),
            _ => Ok(()),
        }
    }
}
