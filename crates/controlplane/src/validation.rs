//! The one validation of a SPEC, for every path: the stream (through the reconcile), the API
//! and `tenantctl --direct`. The row's own fields first (`TenantSpec::parse`), then, once they
//! pass, the template version it names and every config entry against that template.

use std::sync::Arc;

use serde_dynamo::Item;

use crate::ports::{TemplateSource, TemplateSourceError};
use model::decide::{DesiredStack, REMOVED_FINGERPRINT, fingerprint};
use model::drift::DriftPolicy;
use model::spec::{FieldError, TenantKey, TenantSpec};
use model::status::StackLocation;
use model::template::{Template, stack_parameters};

/// A SPEC that passed every rule, with what the stack is built from.
#[derive(Clone, Debug)]
pub struct ValidSpec {
    pub spec: TenantSpec,
    /// The template version it resolves to: its pin, else `assigned_version`.
    pub template_version: String,
    /// The version the fleet gives it: the one it was assigned, else the current one.
    pub assigned_version: String,
    pub template: Arc<Template>,
    pub parameters: Vec<(String, String)>,
}

impl ValidSpec {
    /// The region the stack goes to: the SPEC's, else the deployment's default.
    pub fn region<'a>(&'a self, default_region: &'a str) -> &'a str {
        self.spec.region.as_deref().unwrap_or(default_region)
    }

    /// The fingerprint of the stack this SPEC asks for: what STATUS records once it answers it.
    pub fn fingerprint(&self, default_region: &str) -> String {
        fingerprint(
            &self.spec,
            self.region(default_region),
            &self.template_version,
        )
    }

    /// The stack this SPEC asks for, named `stack_name`: what `decide` compares with the one
    /// that exists.
    pub fn desired_stack(
        &self,
        default_region: &str,
        stack_name: String,
        default_drift_policy: DriftPolicy,
    ) -> DesiredStack {
        DesiredStack {
            drift_policy: self.spec.drift_policy.unwrap_or(default_drift_policy),
            fingerprint: self.fingerprint(default_region),
            location: StackLocation {
                account_id: self.spec.account_id.clone(),
                region: self.region(default_region).to_owned(),
                stack_name,
            },
            template_version: self.template_version.clone(),
            number_parameters: self.template.number_parameters(),
            parameters: self.parameters.clone(),
        }
    }
}

/// The fingerprint a STATUS row answering this SPEC carries: the stack's shape for a valid SPEC,
/// `REMOVED_FINGERPRINT` for no SPEC, none for an invalid one (it is recorded failed with none).
/// A STATUS carrying any other has not answered it yet: readers show the tenant `pending`, and
/// `decide` never leaves it so.
pub async fn answering_fingerprint(
    key: &TenantKey,
    spec: Option<&Item>,
    assigned_version: Option<&str>,
    default_region: &str,
    templates: &dyn TemplateSource,
) -> Result<Option<String>, TemplateSourceError> {
    let Some(item) = spec else {
        return Ok(Some(REMOVED_FINGERPRINT.to_owned()));
    };
    Ok(
        match validate(key, item, assigned_version, templates).await? {
            Validation::Valid(valid) => Some(valid.fingerprint(default_region)),
            Validation::Invalid(_) => None,
        },
    )
}

#[derive(Clone, Debug)]
pub enum Validation {
    Valid(Box<ValidSpec>),
    /// Every rule broken, each naming its field.
    Invalid(Vec<FieldError>),
}

/// Validates a SPEC item of `key` whose tenant the fleet assigned `assigned_version` (`None`:
/// none yet, so the current version). Only the template source's own failures are errors (they
/// may heal); everything about the item itself is a `Validation`.
pub async fn validate(
    key: &TenantKey,
    item: &Item,
    assigned_version: Option<&str>,
    templates: &dyn TemplateSource,
) -> Result<Validation, TemplateSourceError> {
    let spec = match TenantSpec::parse(key, item) {
        Ok(spec) => spec,
        Err(errors) => return Ok(Validation::Invalid(errors)),
    };
    let assigned_version = match assigned_version {
        Some(version) => version.to_owned(),
        None => templates.current_version().await?,
    };
    let version = spec
        .template_version
        .clone()
        .unwrap_or_else(|| assigned_version.clone());
    let template = match templates.get(&version).await {
        Ok(Some(template)) => template,
        Ok(None) => {
            return Ok(Validation::Invalid(vec![FieldError::new(
                "template_version",
                format!("no template version {version:?} exists"),
            )]));
        }
        // Refused for good: the tenant fails with the reason until the version is repaired
        // (each later reconcile reads it again), instead of retrying forever.
        Err(TemplateSourceError::Corrupt(reason)) => {
            return Ok(Validation::Invalid(vec![FieldError::new(
                "template_version",
                reason,
            )]));
        }
        Err(unavailable) => return Err(unavailable),
    };
    match stack_parameters(&spec, &template) {
        Ok(parameters) => Ok(Validation::Valid(Box::new(ValidSpec {
            spec,
            template_version: version,
            assigned_version,
            template,
            parameters,
        }))),
        Err(errors) => Ok(Validation::Invalid(errors)),
    }
}
