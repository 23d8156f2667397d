//! Errors as `application/problem+json` (RFC 9457), with a field-level list for validation.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use controlplane::spec::FieldError;
use serde::Serialize;

pub const PROBLEM_JSON: &str = "application/problem+json";
const IN_FLIGHT: &str = "/problems/idempotency-key-in-flight";

#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    /// A URI naming the kind of problem (relative to the API's documentation).
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// Every field at fault, for validation problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl Problem {
    fn new(
        status: StatusCode,
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            title,
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "/problems/bad-request",
            "The request is malformed",
            detail,
        )
    }

    pub fn invalid(errors: Vec<FieldError>) -> Self {
        let detail = joined(&errors);
        Self {
            errors,
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "/problems/invalid-tenant",
                "The tenant is not valid",
                detail,
            )
        }
    }

    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "/problems/unauthenticated",
            "No valid credentials",
            detail,
        )
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "/problems/forbidden",
            "Not allowed",
            detail,
        )
    }

    /// Also what a caller gets for another tenant's resources: never a hint that they exist.
    pub fn not_found(tenant: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "/problems/not-found",
            "No such tenant",
            format!("there is no tenant {tenant:?}"),
        )
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "/problems/conflict",
            "The tenant already exists",
            detail,
        )
    }

    pub fn precondition_required() -> Self {
        Self::new(
            StatusCode::PRECONDITION_REQUIRED,
            "/problems/if-match-required",
            "If-Match is required",
            "send the tenant's ETag (from GET /tenants/{id}) in If-Match",
        )
    }

    pub fn precondition_failed() -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "/problems/stale-etag",
            "The tenant changed",
            "the tenant changed since that ETag was read: GET it again and reapply the change",
        )
    }

    pub fn idempotency_mismatch() -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "/problems/idempotency-key-reused",
            "Idempotency-Key reused",
            "this Idempotency-Key was used with another request; use a new key",
        )
    }

    /// The first request with this Idempotency-Key is still running: retry after a moment.
    pub fn idempotency_in_flight() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            IN_FLIGHT,
            "Idempotency-Key in use",
            "a request with this Idempotency-Key is still being processed; retry it shortly",
        )
    }

    pub fn too_large(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "/problems/too-large",
            "The body is too large",
            detail,
        )
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "/problems/unsupported-media-type",
            "JSON expected",
            "send Content-Type: application/json",
        )
    }

    /// The table could not be reached: the client may retry.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "/problems/unavailable",
            "Try again",
            detail,
        )
    }

    /// A stored record failed its own integrity check (a template version whose body was
    /// changed in place): the same request fails until an operator repairs it, so it is not
    /// "try again". The detail is the control plane's own text, naming the record.
    pub fn corrupt_record(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "/problems/corrupt-record",
            "A stored record failed its integrity check",
            detail,
        )
    }

    /// The table refused the control plane's own request for good: not the caller's to retry.
    /// What DynamoDB said is logged, not returned.
    pub fn internal(reason: &str) -> Self {
        tracing::error!(%reason, "the table refused the request");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "/problems/internal",
            "The request could not be completed",
            "the control plane's request was refused; the reason is in its log",
        )
    }

    /// A template version that breaks a rule: each problem in `errors`, under the field at
    /// fault (`version` or `body`).
    pub fn invalid_template(errors: Vec<FieldError>) -> Self {
        Self {
            detail: joined(&errors),
            errors,
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "/problems/invalid-template",
                "The template version is not valid",
                "",
            )
        }
    }

    /// Tenants following the fleet whose config the template cannot take: one entry each
    /// (`tenants.<id>`), the first few of `count`.
    pub fn template_breaks_tenants(count: usize, errors: Vec<FieldError>) -> Self {
        Self {
            errors,
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "/problems/template-breaks-tenants",
                "Tenants' config would not fit the template",
                format!(
                    "the config of {count} tenant(s) following the fleet does not fit this \
                     template; fix their config (or pin them) first, or change the template"
                ),
            )
        }
    }

    pub fn template_exists(version: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "/problems/template-version-exists",
            "The template version exists",
            format!(
                "template version {version:?} is already published with another body; \
                 versions never change: publish a new version"
            ),
        )
    }

    pub fn no_template(version: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "/problems/not-found",
            "No such template version",
            format!("there is no template version {version:?}"),
        )
    }

    /// A rollout request that breaks a rule, every field at fault listed.
    pub fn invalid_rollout(errors: Vec<FieldError>) -> Self {
        Self {
            detail: joined(&errors),
            errors,
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "/problems/invalid-rollout",
                "The rollout is not valid",
                "",
            )
        }
    }

    pub fn no_rollout(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "/problems/not-found",
            "No such rollout",
            format!("there is no rollout {id:?}"),
        )
    }

    /// Another rollout holds the fleet (one runs at a time).
    pub fn no_preview(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "/problems/not-found",
            "No such rollout preview",
            format!("there is no rollout preview {id:?} (previews are kept 7 days)"),
        )
    }

    pub fn rollout_busy(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "/problems/rollout-busy",
            "Another rollout is running",
            detail,
        )
    }

    /// A command the rollout's state does not allow (`cannot resume a rollout that is ...`).
    pub fn rollout_refused(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "/problems/rollout-state",
            "Not possible in the rollout's state",
            detail,
        )
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

fn joined(errors: &[FieldError]) -> String {
    controlplane::spec::joined(errors)
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if status == StatusCode::SERVICE_UNAVAILABLE || self.kind == IN_FLIGHT {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<controlplane::ports::StoreError> for Problem {
    fn from(error: controlplane::ports::StoreError) -> Self {
        match error {
            // The request would make an item DynamoDB refuses: a retry would be refused too.
            controlplane::ports::StoreError::Unstorable(errors) => Self::invalid(errors),
            controlplane::ports::StoreError::Corrupt(reason) => Self::corrupt_record(reason),
            controlplane::ports::StoreError::Rejected(reason) => Self::internal(&reason),
            other => Self::unavailable(other.to_string()),
        }
    }
}

impl From<controlplane::ports::TemplateSourceError> for Problem {
    fn from(error: controlplane::ports::TemplateSourceError) -> Self {
        match error {
            controlplane::ports::TemplateSourceError::Corrupt(reason) => {
                Self::corrupt_record(reason)
            }
            other => Self::unavailable(other.to_string()),
        }
    }
}
