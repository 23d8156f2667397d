//! Errors as `application/problem+json` (RFC 9457), with a field-level list for validation.
//!
//! Every problem type is declared once in [`PROBLEM_TYPES`], with its status, its one title and
//! what it means: the constructors take their title from there, and `GET /problems/{name}`
//! serves the description, so a type URI resolves to the page that explains it.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use model::spec::FieldError;
use serde::Serialize;
use serde_json::json;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// One kind of problem: its URI path, its status, its title and what it means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ProblemType {
    #[serde(rename = "type")]
    pub uri: &'static str,
    pub status: u16,
    pub title: &'static str,
    pub description: &'static str,
}

macro_rules! problem_types {
    ($($name:ident = ($uri:literal, $status:literal, $title:literal, $description:literal);)*) => {
        $(pub const $name: ProblemType = ProblemType {
            uri: $uri,
            status: $status,
            title: $title,
            description: $description,
        };)*
        /// Every problem type the API answers with.
        pub const PROBLEM_TYPES: &[ProblemType] = &[$($name),*];
    };
}

problem_types! {
    BAD_REQUEST = ("/problems/bad-request", 400, "The request is malformed",
        "The request cannot be read: a body that is not JSON (or has a key twice), a query \
         that is not in the form the operation takes, a page token this API did not give out \
         for this listing, or a malformed header. Fix the request; sending it again changes \
         nothing.");
    UNAUTHENTICATED = ("/problems/unauthenticated", 401, "No valid credentials",
        "Send `Authorization: Bearer <token>` with a token that verifies (signature, issuer, \
         audience, `exp` and `nbf`).");
    FORBIDDEN = ("/problems/forbidden", 403, "Not allowed",
        "The token verifies, but its role may not do this: fleet operations (template \
         versions, rollouts, previews, creating tenants, changing account_id or region) are \
         for admins, and a tenant deletes itself only where the deployment allows it.");
    NOT_FOUND = ("/problems/not-found", 404, "Not found",
        "No such route, tenant, template version, rollout or preview; another tenant's \
         resources are answered the same way, never hinting that they exist.");
    METHOD_NOT_ALLOWED = ("/problems/method-not-allowed", 405, "Method not allowed",
        "The path exists but does not take this method: the `Allow` header lists those it \
         takes.");
    CONFLICT = ("/problems/conflict", 409, "The resource already exists",
        "A create named a tenant that already exists: GET it, or choose another tenant_id.");
    IDEMPOTENCY_IN_FLIGHT = ("/problems/idempotency-key-in-flight", 409, "Idempotency-Key in use",
        "A request with this Idempotency-Key is still being processed: retry after the \
         `Retry-After` seconds to get its answer.");
    TEMPLATE_EXISTS = ("/problems/template-version-exists", 409, "The template version exists",
        "Template versions never change: this name is published with another body or \
         description. Publish a new version name.");
    ROLLOUT_BUSY = ("/problems/rollout-busy", 409, "Another rollout is running",
        "One rollout holds the fleet at a time: wait for it, or pause, cancel or roll it back.");
    ROLLOUT_STATE = ("/problems/rollout-state", 409, "Not possible in the rollout's state",
        "The command does not apply to the rollout's current state (resuming one that is not \
         paused, say).");
    STALE_ETAG = ("/problems/stale-etag", 412, "The resource changed",
        "`If-Match` names none of the resource's current ETag: GET it again and reapply the \
         change.");
    TOO_LARGE = ("/problems/too-large", 413, "The body is too large",
        "Bodies are at most 64 KiB (256 KiB for POST /template-versions).");
    UNSUPPORTED_MEDIA_TYPE = ("/problems/unsupported-media-type", 415, "Unsupported media type",
        "The body's Content-Type is not one this operation takes: `Accept-Post` or \
         `Accept-Patch` lists those it does.");
    INVALID_TENANT = ("/problems/invalid-tenant", 422, "The tenant is not valid",
        "The tenant's desired state breaks a rule: every field at fault is in `errors`, by \
         its path.");
    INVALID_QUERY = ("/problems/invalid-query", 422, "The query is not valid",
        "A query parameter is out of its range (`limit`) or not one of its values \
         (`status`): each is in `errors`.");
    IDEMPOTENCY_REUSED = ("/problems/idempotency-key-reused", 422, "Idempotency-Key reused",
        "This Idempotency-Key was used with another request (method, path or body): use a new \
         key for a new request.");
    INVALID_TEMPLATE = ("/problems/invalid-template", 422, "The template version is not valid",
        "The template version breaks a rule (its name, its body, CloudFormation's \
         ValidateTemplate): each problem is in `errors`, under `version`, `body` or \
         `description`.");
    TEMPLATE_BREAKS_TENANTS = ("/problems/template-breaks-tenants", 422,
        "Tenants' config would not fit the template",
        "Tenants following the fleet have config the template cannot take: each is in \
         `errors` as `tenants.<id>`. Fix their config or pin them first.");
    INVALID_ROLLOUT = ("/problems/invalid-rollout", 422, "The rollout is not valid",
        "The rollout request breaks a rule: each field at fault is in `errors`.");
    IF_MATCH_REQUIRED = ("/problems/if-match-required", 428, "If-Match is required",
        "This change must name the ETag it was based on (RFC 6585): GET the resource and send \
         its ETag in `If-Match`.");
    INTERNAL = ("/problems/internal", 500, "The request could not be completed",
        "The control plane's own request was refused; the reason is in its log, under the \
         `request_id` given.");
    CORRUPT_RECORD = ("/problems/corrupt-record", 500, "A stored record failed its integrity check",
        "A stored record (a template version whose body was changed in place) fails its own \
         check: the same request fails until an operator repairs it.");
    UNAVAILABLE = ("/problems/unavailable", 503, "Try again",
        "The control plane's store could not be reached or the resource kept changing: retry \
         after the `Retry-After` seconds. What the store said is logged under the \
         `request_id` given.");
}

/// The problem type of a path name (`not-found`), for `GET /problems/{name}`.
pub fn problem_type(name: &str) -> Option<&'static ProblemType> {
    PROBLEM_TYPES
        .iter()
        .find(|t| t.uri.strip_prefix("/problems/") == Some(name))
}

/// `GET /problems/{name}`: what a problem type means (no token needed).
pub async fn describe(Path(name): Path<String>) -> Response {
    match problem_type(&name) {
        Some(kind) => axum::Json(json!({
            "type": kind.uri,
            "status": kind.status,
            "title": kind.title,
            "description": kind.description,
        }))
        .into_response(),
        None => Problem::new(
            NOT_FOUND,
            format!("there is no problem type {name:?}; GET /problems lists them"),
        )
        .into_response(),
    }
}

/// `GET /problems`: every problem type.
pub async fn describe_all() -> Response {
    axum::Json(json!({ "items": PROBLEM_TYPES })).into_response()
}

tokio::task_local! {
    /// The id of the request being served (API Gateway's, or one made up locally): a 5xx
    /// answers with it, and the log line saying what went wrong carries it.
    pub static REQUEST_ID: String;
}

fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    /// A URI naming the kind of problem (relative to the API: `GET` it for its description).
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// Every field at fault, for validation problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// For a 5xx: the request's id, under which the log says what went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<Box<str>>,
    /// A header the problem needs (`WWW-Authenticate`, `Retry-After`, `Accept-Post`, ...).
    #[serde(skip)]
    pub header: Option<Box<(header::HeaderName, String)>>,
}

impl Problem {
    pub fn new(kind: ProblemType, detail: impl Into<String>) -> Self {
        Self {
            kind: kind.uri,
            title: kind.title,
            status: kind.status,
            detail: detail.into(),
            errors: Vec::new(),
            request_id: (kind.status >= 500)
                .then(current_request_id)
                .flatten()
                .map(String::into_boxed_str),
            header: None,
        }
    }

    fn with_errors(kind: ProblemType, errors: Vec<FieldError>) -> Self {
        Self {
            errors,
            ..Self::new(kind, String::new())
        }
        .detail_from_errors()
    }

    fn detail_from_errors(mut self) -> Self {
        self.detail = model::spec::joined(&self.errors);
        self
    }

    pub fn with_header(mut self, name: header::HeaderName, value: impl Into<String>) -> Self {
        self.header = Some(Box::new((name, value.into())));
        self
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(BAD_REQUEST, detail)
    }

    pub fn invalid(errors: Vec<FieldError>) -> Self {
        Self::with_errors(INVALID_TENANT, errors)
    }

    /// A query parameter out of its range or values.
    pub fn invalid_query(errors: Vec<FieldError>) -> Self {
        Self::with_errors(INVALID_QUERY, errors)
    }

    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        // RFC 9110 §11.6.1: a 401 names the scheme it takes.
        Self::new(UNAUTHENTICATED, detail).with_header(header::WWW_AUTHENTICATE, "Bearer")
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(FORBIDDEN, detail)
    }

    /// Also what a caller gets for another tenant's resources: never a hint that they exist.
    pub fn not_found(tenant: &str) -> Self {
        Self::new(NOT_FOUND, format!("there is no tenant {tenant:?}"))
    }

    pub fn no_route() -> Self {
        Self::new(
            NOT_FOUND,
            "no such route: see the OpenAPI document (openapi.yaml)",
        )
    }

    /// A method the path does not take (the router adds `Allow`, listing those it does).
    pub fn method_not_allowed(method: &axum::http::Method) -> Self {
        Self::new(
            METHOD_NOT_ALLOWED,
            format!(
                "this path does not take {method}: the Allow header lists the methods it takes"
            ),
        )
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(CONFLICT, detail)
    }

    pub fn precondition_required() -> Self {
        Self::new(
            IF_MATCH_REQUIRED,
            "send the tenant's ETag (from GET /tenants/{id}) in If-Match",
        )
    }

    pub fn precondition_failed() -> Self {
        Self::new(
            STALE_ETAG,
            "the tenant changed since that ETag was read: GET it again and reapply the change",
        )
    }

    pub fn idempotency_mismatch() -> Self {
        Self::new(
            IDEMPOTENCY_REUSED,
            "this Idempotency-Key was used with another request; use a new key",
        )
    }

    /// The first request with this Idempotency-Key is still running: retry after a moment.
    pub fn idempotency_in_flight() -> Self {
        Self::new(
            IDEMPOTENCY_IN_FLIGHT,
            "a request with this Idempotency-Key is still being processed; retry it shortly",
        )
        .with_header(header::RETRY_AFTER, "1")
    }

    pub fn too_large(detail: impl Into<String>) -> Self {
        Self::new(TOO_LARGE, detail)
    }

    /// A body in a media type the route does not take; `accepted` lists those it does, and
    /// `header` is where (`Accept-Post` or `Accept-Patch`).
    pub fn unsupported_media_type(header: header::HeaderName, accepted: &[&str]) -> Self {
        let list = accepted.join(", ");
        Self::new(
            UNSUPPORTED_MEDIA_TYPE,
            format!("send the body as {}", accepted.join(" or ")),
        )
        .with_header(header, list)
    }

    /// Not the store: a condition of the control plane's own that the client may retry past
    /// ("the tenant kept changing"). The detail is the control plane's own text.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(UNAVAILABLE, detail).with_header(header::RETRY_AFTER, "1")
    }

    /// The store (or another AWS service) could not be reached: the client may retry. What it
    /// said is logged under the request id, never answered (it can carry the backend's own
    /// headers and pages).
    pub fn store_unreachable(reason: impl std::fmt::Display) -> Self {
        let problem = Self::unavailable(
            "the control plane's store could not be reached; try again (the log has the \
             reason under request_id)",
        );
        tracing::warn!(request_id = ?problem.request_id, %reason, "the store could not be reached");
        problem
    }

    /// A stored record failed its own integrity check (a template version whose body was
    /// changed in place): the same request fails until an operator repairs it, so it is not
    /// "try again". The detail is the control plane's own text, naming the record.
    pub fn corrupt_record(detail: impl Into<String>) -> Self {
        Self::new(CORRUPT_RECORD, detail)
    }

    /// The table refused the control plane's own request for good: not the caller's to retry.
    /// What DynamoDB said is logged, not returned.
    pub fn internal(reason: &str) -> Self {
        let problem = Self::new(
            INTERNAL,
            "the control plane's request was refused; the reason is in its log under request_id",
        );
        tracing::error!(request_id = ?problem.request_id, %reason, "the table refused the request");
        problem
    }

    /// A template version that breaks a rule: each problem in `errors`, under the field at
    /// fault (`version` or `body`).
    pub fn invalid_template(errors: Vec<FieldError>) -> Self {
        Self::with_errors(INVALID_TEMPLATE, errors)
    }

    /// Tenants following the fleet whose config the template cannot take: one entry each
    /// (`tenants.<id>`), the first few of `count`.
    pub fn template_breaks_tenants(count: usize, errors: Vec<FieldError>) -> Self {
        Self {
            errors,
            ..Self::new(
                TEMPLATE_BREAKS_TENANTS,
                format!(
                    "the config of {count} tenant(s) following the fleet does not fit this \
                     template; fix their config (or pin them) first, or change the template"
                ),
            )
        }
    }

    pub fn template_exists(detail: impl Into<String>) -> Self {
        Self::new(TEMPLATE_EXISTS, detail)
    }

    pub fn no_template(version: &str) -> Self {
        Self::new(
            NOT_FOUND,
            format!("there is no template version {version:?}"),
        )
    }

    /// A rollout request that breaks a rule, every field at fault listed.
    pub fn invalid_rollout(errors: Vec<FieldError>) -> Self {
        Self::with_errors(INVALID_ROLLOUT, errors)
    }

    pub fn no_rollout(id: &str) -> Self {
        Self::new(NOT_FOUND, format!("there is no rollout {id:?}"))
    }

    pub fn no_preview(id: &str) -> Self {
        Self::new(
            NOT_FOUND,
            format!("there is no rollout preview {id:?} (previews are kept 7 days)"),
        )
    }

    /// Another rollout holds the fleet (one runs at a time).
    pub fn rollout_busy(detail: impl Into<String>) -> Self {
        Self::new(ROLLOUT_BUSY, detail)
    }

    /// A command the rollout's state does not allow (`cannot resume a rollout that is ...`).
    pub fn rollout_refused(detail: impl Into<String>) -> Self {
        Self::new(ROLLOUT_STATE, detail)
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some((name, value)) = self.header.map(|h| *h)
            && let Ok(value) = HeaderValue::from_str(&value)
        {
            headers.insert(name, value);
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
            other => Self::store_unreachable(other),
        }
    }
}

impl From<controlplane::ports::TemplateSourceError> for Problem {
    fn from(error: controlplane::ports::TemplateSourceError) -> Self {
        match error {
            controlplane::ports::TemplateSourceError::Corrupt(reason) => {
                Self::corrupt_record(reason)
            }
            other => Self::store_unreachable(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_problem_type_has_one_title_and_one_status() {
        let mut seen = std::collections::HashSet::new();
        for kind in PROBLEM_TYPES {
            assert!(seen.insert(kind.uri), "{} is declared twice", kind.uri);
            assert!(problem_type(kind.uri.trim_start_matches("/problems/")).is_some());
            assert!(!kind.description.is_empty());
        }
    }

    #[test]
    fn a_5xx_carries_the_request_id_and_never_the_backends_words() {
        let problem = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(REQUEST_ID.scope("req-1".into(), async {
                Problem::store_unreachable("<html>500 Internal Server Error</html> x-amz-id-2: abc")
            }));
        assert_eq!(problem.status, 503);
        assert_eq!(problem.request_id.as_deref(), Some("req-1"));
        let body = serde_json::to_string(&problem).unwrap();
        assert!(!body.contains("html") && !body.contains("amz"), "{body}");
        // A 4xx names no request id: the detail says what to fix.
        assert_eq!(Problem::bad_request("x").request_id, None);
    }
}
