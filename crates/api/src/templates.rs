//! Template versions (admins only): published once and never changed; the fleet's current
//! version is what tenants without a pin get, and only a rollout moves it. Publishing checks a
//! version (CloudFormation's ValidateTemplate in the control plane's own account, and every
//! tenant's config) before it is stored; no tenant account is reached.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use controlplane::ports::{TemplateRecord, TemplateSource};
use controlplane::template_source::TemplateVersion;
use controlplane::template_source::{self, NewTemplate, TemplatePublishError};
use model::spec::{FieldError, check_template_version};
use model::time::rfc3339;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ApiState;
use crate::auth::{Admin, Caller};
use crate::body::JsonBody;
use crate::idempotency::{Once, post_once};
use crate::problem::Problem;
use crate::tenants::created_response;

/// A published version without its body (listings stay small).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateSummary {
    pub version: String,
    /// Hex SHA-256 of the body.
    pub sha256: String,
    /// The body's size in bytes.
    #[serde(default)]
    pub size: usize,
    /// The body's key in the template buckets (none for a shipped version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub published_by: String,
    /// RFC 3339.
    pub published_at: String,
    /// What this publish started by itself (the deployment's PublishStartsRollout); only on
    /// the answer to the publish that stored the version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<PublishStarted>,
}

/// A rollout or preview a publish started by itself, or why it could not (the version is
/// published either way).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PublishStarted {
    /// `rollout` (a canary, then waves, with the default policy) or `preview`.
    pub kind: String,
    /// Its id (`GET /rollouts/{id}` or `GET /rollout-previews/{id}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Why it was not started (another rollout is active, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_started: Option<String>,
}

impl From<&TemplateRecord> for TemplateSummary {
    fn from(record: &TemplateRecord) -> Self {
        Self {
            version: record.version.clone(),
            sha256: record.sha256.clone(),
            size: record.size,
            key: record.key.clone(),
            description: record.description.clone(),
            published_by: record.published_by.clone(),
            published_at: record.published_at.clone(),
            started: None,
        }
    }
}

/// `GET /template-versions`: the fleet's current version and every version, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateVersions {
    pub current: String,
    pub versions: Vec<TemplateSummary>,
}

/// What a publish answers; `already` when the same version and body were published before.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishedTemplate {
    pub template: TemplateSummary,
    pub already: bool,
}

const PUBLISH_FIELDS: &[&str] = &["version", "body", "description"];
/// A description is a line or a paragraph, not a changelog.
pub const DESCRIPTION_MAX: usize = 1024;

/// A version to publish, read from a `POST /template-versions` body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishRequest {
    pub version: String,
    pub body: String,
    pub description: Option<String>,
}

impl PublishRequest {
    /// Every field at fault, or the request.
    pub fn from_json(body: &Value) -> Result<Self, Problem> {
        let Value::Object(fields) = body else {
            return Err(Problem::bad_request("the body must be a JSON object"));
        };
        let mut errors = unknown_fields(fields, PUBLISH_FIELDS, "");
        let mut text = |name: &str, required: bool| match fields.get(name) {
            None | Some(Value::Null) if required => {
                errors.push(FieldError::new(name, "is required"));
                None
            }
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(_) => {
                errors.push(FieldError::new(name, "must be a string"));
                None
            }
        };
        let version = text("version", true);
        let template_body = text("body", true);
        let description = text("description", false).filter(|d| !d.trim().is_empty());
        if template_body
            .as_deref()
            .is_some_and(|b| b.trim().is_empty())
        {
            errors.push(FieldError::new("body", "is empty"));
        }
        if description
            .as_deref()
            .is_some_and(|d| d.chars().count() > DESCRIPTION_MAX)
        {
            errors.push(FieldError::new(
                "description",
                format!("must be at most {DESCRIPTION_MAX} characters"),
            ));
        }
        match (version, template_body) {
            (Some(version), Some(body)) if errors.is_empty() => Ok(Self {
                version,
                body,
                description,
            }),
            _ => Err(Problem::invalid_template(errors)),
        }
    }
}

/// Fields of `fields` not in `allowed`, named under `prefix` (`options.` for nested objects).
pub(crate) fn unknown_fields(
    fields: &Map<String, Value>,
    allowed: &[&str],
    prefix: &str,
) -> Vec<FieldError> {
    fields
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .map(|k| {
            FieldError::new(
                format!("{prefix}{k}"),
                format!("unknown field; allowed: {}", allowed.join(", ")),
            )
        })
        .collect()
}

/// Why publishing failed, as the problem the API answers.
fn publish_problem(error: TemplatePublishError) -> Problem {
    match error {
        TemplatePublishError::Invalid(problems) => Problem::invalid_template(
            problems
                .into_iter()
                .map(|problem| match problem.strip_prefix("version ") {
                    Some(rest) => FieldError::new("version", rest),
                    None => FieldError::new("body", problem),
                })
                .collect(),
        ),
        TemplatePublishError::BreaksTenants { count, named } => Problem::template_breaks_tenants(
            count,
            named
                .into_iter()
                .map(|entry| match entry.split_once(": ") {
                    // "<tenant>: <why>"; the last entry may be "and N more".
                    Some((tenant, why)) => FieldError::new(format!("tenants.{tenant}"), why),
                    None => FieldError::new("tenants", entry),
                })
                .collect(),
        ),
        exists @ TemplatePublishError::Exists(..) => Problem::template_exists(exists.to_string()),
        TemplatePublishError::Unavailable(reason) => Problem::store_unreachable(reason),
        TemplatePublishError::Unstorable(errors) => Problem::invalid_template(errors),
    }
}

// ------------------------------------------------------------------------------------------------
// Operations (the routes below and `tenantctl --direct` call these).

impl ApiState {
    /// Publishes a version from a `POST /template-versions` body, as `caller`.
    pub async fn publish_template(
        &self,
        caller: &Caller,
        body: &Value,
    ) -> Result<PublishedTemplate, Problem> {
        caller.require_admin("publishes template versions")?;
        let request = PublishRequest::from_json(body)?;
        let new = NewTemplate {
            version: request.version,
            body: request.body,
            description: request.description,
            published_by: caller.subject.clone(),
            published_at: rfc3339(chrono::Utc::now()),
        };
        let published = template_source::publish(
            new,
            &self.templates,
            self.template_store.as_ref(),
            self.store.as_ref(),
            self.validator.as_ref(),
        )
        .await
        .map_err(publish_problem)?;
        let mut template = TemplateSummary::from(&published.record);
        // A repeat of a publish starts nothing again.
        if !published.already {
            template.started = self.start_on_publish(caller, &template.version).await;
        }
        Ok(PublishedTemplate {
            template,
            already: published.already,
        })
    }

    /// What the deployment has a publish start (`on_publish`), for the version just published.
    async fn start_on_publish(&self, caller: &Caller, version: &str) -> Option<PublishStarted> {
        use model::rollout::OnPublish;
        let (kind, started) = match self.on_publish {
            OnPublish::Off => return None,
            OnPublish::Plan => (
                "preview",
                self.start_preview(
                    caller,
                    &serde_json::json!({"target_version": version, "sample": 10}),
                )
                .await
                .map(|p| p.id),
            ),
            OnPublish::Canary => (
                "rollout",
                self.start_rollout(caller, &serde_json::json!({"target_version": version}))
                    .await
                    .map(|r| r.id),
            ),
        };
        Some(match started {
            Ok(id) => PublishStarted {
                kind: kind.into(),
                id: Some(id),
                not_started: None,
            },
            Err(problem) => {
                tracing::warn!(version, detail = %problem.detail, "published; its {kind} not started");
                PublishStarted {
                    kind: kind.into(),
                    id: None,
                    not_started: Some(problem.detail),
                }
            }
        })
    }

    /// Every version (shipped first, then published, oldest first) and the current one.
    pub async fn template_versions(&self, caller: &Caller) -> Result<TemplateVersions, Problem> {
        caller.require_admin("reads template versions")?;
        let current = self.templates.current_version().await?;
        let versions = self
            .templates
            .records()
            .await?
            .iter()
            .map(TemplateSummary::from)
            .collect();
        Ok(TemplateVersions { current, versions })
    }

    /// One version, with its body.
    pub async fn template_version(
        &self,
        caller: &Caller,
        version: &str,
    ) -> Result<TemplateVersion, Problem> {
        caller.require_admin("reads template versions")?;
        if check_template_version(version).is_err() {
            return Err(Problem::no_template(version));
        }
        self.templates
            .version(version)
            .await?
            .ok_or_else(|| Problem::no_template(version))
    }
}

// ------------------------------------------------------------------------------------------------
// Routes

pub async fn publish(
    State(state): State<ApiState>,
    Admin(caller): Admin,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    let once = post_once(
        &state,
        &caller,
        &headers,
        "/template-versions",
        &body,
        || async {
            let published = state.publish_template(&caller, &body).await?;
            let status = if published.already {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            Ok(Once::new(published.template, status.as_u16(), None))
        },
    )
    .await?;
    let location = format!("/template-versions/{}", once.value.version);
    Ok(created_response(once, &location))
}

pub async fn list(State(state): State<ApiState>, caller: Caller) -> Result<Response, Problem> {
    Ok(Json(state.template_versions(&caller).await?).into_response())
}

pub async fn get_one(
    State(state): State<ApiState>,
    caller: Caller,
    Path(version): Path<String>,
) -> Result<Response, Problem> {
    Ok(Json(state.template_version(&caller, &version).await?).into_response())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_publish_body_names_every_field_at_fault() {
        let ok = PublishRequest::from_json(&json!({"version": "v2", "body": "Resources: {}"}))
            .expect("valid");
        assert_eq!((ok.version.as_str(), ok.description), ("v2", None));
        let bad = PublishRequest::from_json(
            &json!({"version": 2, "body": " ", "description": "x".repeat(2000), "extra": 1}),
        )
        .expect_err("invalid");
        let fields: Vec<&str> = bad.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(bad.status, 422);
        for field in ["version", "body", "description", "extra"] {
            assert!(fields.contains(&field), "{field} in {fields:?}");
        }
        assert_eq!(
            PublishRequest::from_json(&json!("text"))
                .expect_err("not an object")
                .status,
            400
        );
    }

    #[test]
    fn publish_errors_become_field_level_problems() {
        let invalid = publish_problem(TemplatePublishError::Invalid(vec![
            "version must be 1-64 of letters".into(),
            "CloudFormation ValidateTemplate: nope".into(),
        ]));
        assert_eq!(invalid.status, 422);
        assert_eq!(invalid.errors[0].field, "version");
        assert_eq!(invalid.errors[0].message, "must be 1-64 of letters");
        assert_eq!(invalid.errors[1].field, "body");
        let breaks = publish_problem(TemplatePublishError::BreaksTenants {
            count: 30,
            named: vec!["acme: config.x: unknown".into(), "and 10 more".into()],
        });
        assert_eq!(breaks.kind, "/problems/template-breaks-tenants");
        assert_eq!(breaks.errors[0].field, "tenants.acme");
        assert_eq!(breaks.errors[0].message, "config.x: unknown");
        assert_eq!(breaks.errors[1].field, "tenants");
        assert!(breaks.detail.contains("30"));
        assert_eq!(
            publish_problem(TemplatePublishError::Exists("v2".into(), "body")).status,
            409
        );
        assert_eq!(
            publish_problem(TemplatePublishError::Unavailable("down".into())).status,
            503
        );
    }
}
