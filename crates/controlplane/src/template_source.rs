//! The template source shipped with the control plane: the sample tenant template as `v1`.
//! A later version adds published versions (stored immutably) behind the same port.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::ports::{TemplateSource, TemplateSourceError};
use crate::template::{Template, TemplateError};

pub const SAMPLE_TEMPLATE: &str = include_str!("../../../templates/tenant-template.yaml");
pub const SAMPLE_VERSION: &str = "v1";

/// Template versions held in memory; the current one is what unpinned tenants get.
pub struct BundledTemplates {
    versions: BTreeMap<String, Arc<Template>>,
    current: String,
}

impl BundledTemplates {
    /// The shipped sample template as `v1`, the current version.
    pub fn sample() -> Result<Self, TemplateError> {
        Self::from_versions([(SAMPLE_VERSION, SAMPLE_TEMPLATE)], SAMPLE_VERSION)
    }

    pub fn from_versions<'a>(
        versions: impl IntoIterator<Item = (&'a str, &'a str)>,
        current: &str,
    ) -> Result<Self, TemplateError> {
        let versions = versions
            .into_iter()
            .map(|(version, body)| {
                Ok((
                    version.to_owned(),
                    Arc::new(Template::parse(version, body)?),
                ))
            })
            .collect::<Result<BTreeMap<_, _>, TemplateError>>()?;
        if !versions.contains_key(current) {
            return Err(TemplateError {
                version: current.to_owned(),
                message: "the current version is not among the versions given".into(),
            });
        }
        Ok(Self {
            versions,
            current: current.to_owned(),
        })
    }
}

#[async_trait]
impl TemplateSource for BundledTemplates {
    async fn current_version(&self) -> Result<String, TemplateSourceError> {
        Ok(self.current.clone())
    }

    async fn get(&self, version: &str) -> Result<Option<Arc<Template>>, TemplateSourceError> {
        Ok(self.versions.get(version).cloned())
    }
}
