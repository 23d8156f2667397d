//! Rollout previews (admins only): what a rollout of a template version would change, tenant by
//! tenant, from change sets computed (and deleted) in the tenants' accounts. The API stores the
//! request and queues it; the preview function, whose role the tenant accounts trust, computes
//! it. `POST /rollout-previews` answers 202 with the preview's location; `GET` on it shows the
//! state and the tenants previewed so far, a page at a time.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use controlplane::ports::StoreError;
use controlplane::rollout::preview::{
    MAX_SAMPLE, PreviewJob, PreviewState, TenantPreview, new_job,
};
use model::rollout::Selection;
use model::spec::FieldError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::warn;

use crate::ApiState;
use crate::auth::{Admin, Caller};
use crate::body::JsonBody;
use crate::idempotency::{Once, post_once};
use crate::paging::Cursor;
use crate::problem::Problem;
use crate::rollouts::{object, rollout_problem, selection_of, target_version_of};
use crate::templates::unknown_fields;
use crate::tenants::{created_response, query};

/// Tenant previews per page of `GET /rollout-previews/{id}`.
pub const PREVIEWS_PAGE: usize = 100;

const PREVIEW_FIELDS: &[&str] = &["target_version", "selection", "sample"];

/// A preview as the API shows it: what was asked, how far it got, and a page of its tenants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewDetails {
    pub id: String,
    pub target_version: String,
    #[serde(default)]
    pub selection: Selection,
    /// At most this many tenants; absent: every tenant the rollout would move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<usize>,
    pub state: PreviewState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub requested_by: String,
    pub created_at: String,
    pub updated_at: String,
    /// Tenants previewed so far.
    pub previewed: usize,
    /// A page of them, by tenant id.
    #[serde(default)]
    pub previews: Vec<TenantPreview>,
    /// The next page's token (`?next=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

impl PreviewDetails {
    fn of(job: PreviewJob, previews: Vec<TenantPreview>, next: Option<String>) -> Self {
        Self {
            id: job.id,
            target_version: job.target_version,
            selection: job.selection,
            sample: job.sample,
            state: job.state,
            reason: job.reason,
            requested_by: job.requested_by,
            created_at: job.created_at,
            updated_at: job.updated_at,
            previewed: job.previewed,
            previews,
            next,
        }
    }
}

/// A preview to make, read from a `POST /rollout-previews` body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreviewRequest {
    pub target_version: String,
    pub selection: Selection,
    pub sample: Option<usize>,
}

impl PreviewRequest {
    /// Every field at fault, or the request.
    pub fn from_json(body: &Value) -> Result<Self, Problem> {
        let Value::Object(fields) = body else {
            return Err(Problem::bad_request("the body must be a JSON object"));
        };
        let mut errors = unknown_fields(fields, PREVIEW_FIELDS, "");
        let target_version = target_version_of(
            fields,
            &mut errors,
            "the published template version a rollout would move to",
        );
        let selection = fields
            .get("selection")
            .and_then(|v| object(v, "selection", &mut errors))
            .map(|s| selection_of(s, &mut errors))
            .unwrap_or_default();
        let sample = match fields.get("sample") {
            None | Some(Value::Null) => None,
            Some(value) => match value.as_u64().and_then(|n| usize::try_from(n).ok()) {
                Some(n @ 1..=MAX_SAMPLE) => Some(n),
                _ => {
                    errors.push(FieldError::new(
                        "sample",
                        format!(
                            "must be a whole number from 1 to {MAX_SAMPLE} (omit it for every tenant)"
                        ),
                    ));
                    None
                }
            },
        };
        match target_version {
            Some(target_version) if errors.is_empty() => Ok(Self {
                target_version,
                selection,
                sample,
            }),
            _ => Err(Problem::invalid_rollout(errors)),
        }
    }
}

/// `GET /rollout-previews/{id}`'s query.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewQuery {
    /// The page token of a previous answer.
    #[serde(default)]
    pub next: Option<String>,
}

impl ApiState {
    /// Records a preview of a rollout and queues it for the preview function, as `caller`.
    pub async fn start_preview(
        &self,
        caller: &Caller,
        body: &Value,
    ) -> Result<PreviewDetails, Problem> {
        caller.require_admin("previews rollouts")?;
        let request = PreviewRequest::from_json(body)?;
        let Some(queue) = &self.preview_queue else {
            return Err(Problem::unavailable(
                "rollout previews are not set up here: PREVIEW_QUEUE_URL names the preview \
                 function's queue",
            ));
        };
        let published = self.templates.record(&request.target_version).await?;
        if published.is_none() {
            return Err(Problem::invalid_rollout(vec![FieldError::new(
                "target_version",
                format!(
                    "no template version {:?} is published",
                    request.target_version
                ),
            )]));
        }
        let job = new_job(
            chrono::Utc::now(),
            &request.target_version,
            request.selection,
            request.sample,
            &caller.subject,
        )
        .map_err(rollout_problem)?;
        self.previews
            .create_preview(&job)
            .await
            .map_err(|e| match e {
                // Its paths are the request's own (`selection.config."": ...`).
                StoreError::Unstorable(errors) => Problem::invalid_rollout(errors),
                other => other.into(),
            })?;
        if let Err(e) = queue.queue(&job.id).await {
            warn!(preview = %job.id, error = %e, "cannot queue a preview");
            // Not left pending for ever: recorded as failed, and the caller may ask again.
            let mut failed = job.clone();
            failed.state = PreviewState::Failed;
            failed.reason = Some("it could not be queued for the preview function".into());
            failed.version = job.version + 1;
            if let Err(e) = self.previews.put_preview(&failed, job.version).await {
                // It stays pending; nothing runs it, and a new request makes a new one.
                warn!(preview = %job.id, error = %e, "cannot record the preview failed");
            }
            return Err(Problem::unavailable(
                "the preview could not be queued; send the request again",
            ));
        }
        Ok(PreviewDetails::of(job, Vec::new(), None))
    }

    /// A preview with a page of its tenants' previews.
    pub async fn get_preview(
        &self,
        caller: &Caller,
        id: &str,
        next: Option<String>,
    ) -> Result<PreviewDetails, Problem> {
        caller.require_admin("reads rollout previews")?;
        let job = self
            .previews
            .preview(id)
            .await
            .map_err(Problem::store_unreachable)?
            .ok_or_else(|| Problem::no_preview(id))?;
        let listing = format!("GET /rollout-previews/{id}");
        let cursor = self.page_tokens.open(&listing, next.as_deref())?;
        let (previews, next) = self
            .previews
            .preview_results(id, cursor.page, PREVIEWS_PAGE)
            .await
            .map_err(Problem::store_unreachable)?;
        let next = next.map(|page| {
            self.page_tokens.issue(
                &listing,
                &Cursor {
                    page: Some(page),
                    ..Cursor::default()
                },
            )
        });
        Ok(PreviewDetails::of(job, previews, next))
    }
}

pub async fn start(
    State(state): State<ApiState>,
    Admin(caller): Admin,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    let once = post_once(
        &state,
        &caller,
        &headers,
        "/rollout-previews",
        &body,
        || async {
            let started = state.start_preview(&caller, &body).await?;
            Ok(Once::new(started, StatusCode::ACCEPTED.as_u16(), None))
        },
    )
    .await?;
    let location = format!("/rollout-previews/{}", once.value.id);
    Ok(created_response(once, &location))
}

pub async fn get_one(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    preview: Result<Query<PreviewQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    let preview = query(preview)?;
    Ok(Json(state.get_preview(&caller, &id, preview.next).await?).into_response())
}
#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_preview_body_takes_a_version_a_selection_and_a_sample() {
        let request = PreviewRequest::from_json(&json!({
            "target_version": "v2", "selection": {"percent": 50}, "sample": 10
        }))
        .expect("valid");
        assert_eq!(request.sample, Some(10));
        assert_eq!(request.selection.percent, Some(50));
        let all = PreviewRequest::from_json(&json!({"target_version": "v2"})).expect("valid");
        assert_eq!(all.sample, None);
        let problem = PreviewRequest::from_json(&json!({"sample": 0, "x": 1})).expect_err("bad");
        let fields: Vec<&str> = problem.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(problem.status, 422);
        for field in ["target_version", "sample", "x"] {
            assert!(fields.contains(&field), "{field} in {fields:?}");
        }
    }
}
