//! ValidateTemplate, faked.

use async_trait::async_trait;

use crate::ports::StackError;
use model::template::TemplateLocation;

/// CloudFormation's template check, faked: a body is accepted unless it holds `rejects`; a URL
/// must name an object of a fake template bucket.
#[derive(Default)]
pub struct FakeTemplateValidator {
    pub rejects: Option<String>,
}

#[async_trait]
impl crate::ports::TemplateValidator for FakeTemplateValidator {
    async fn validate_template(&self, template: &TemplateLocation) -> Result<(), StackError> {
        let body = match template {
            TemplateLocation::Body(body) => body.clone(),
            TemplateLocation::Url(url) => super::object_at(url).ok_or_else(|| {
                StackError::Rejected(format!(
                    "ValidationError: TemplateURL must be a supported URL: {url} names no object"
                ))
            })?,
        };
        match &self.rejects {
            Some(marker) if body.contains(marker.as_str()) => Err(StackError::Rejected(format!(
                "ValidationError: Template format error: unsupported construct {marker}"
            ))),
            _ => Ok(()),
        }
    }
}
