//! The tenants API: thin writers of desired state. It validates (the control plane's own
//! validation), writes SPEC rows conditionally and returns at once with a status; it reads
//! STATUS and the audit timeline; it never writes STATUS and never calls CloudFormation or STS.
//!
//! One axum router serves both the Lambda function (behind API Gateway's HTTP API, whose JWT
//! authorizer verifies tokens) and the local system (which verifies locally signed tokens).

pub mod auth;
pub mod body;
pub mod lambda;
pub mod problem;
pub mod tenants;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use controlplane::ports::{SpecStore, TemplateSource, TenantStore};

use crate::auth::LocalTokens;
use crate::problem::Problem;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<dyn TenantStore>,
    pub specs: Arc<dyn SpecStore>,
    pub templates: Arc<dyn TemplateSource>,
    /// The region of a tenant whose SPEC names none (the control plane's).
    pub default_region: String,
}

impl From<controlplane::runtime::ApiConfig> for ApiState {
    fn from(config: controlplane::runtime::ApiConfig) -> Self {
        Self {
            store: config.store,
            specs: config.specs,
            templates: config.templates,
            default_region: config.default_region,
        }
    }
}

/// Every route. Callers must carry verified `auth::Claims` (see `with_local_tokens` and
/// `lambda::claims_from_context`), except `/health`.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/tenants", post(tenants::create).get(tenants::list))
        .route(
            "/tenants/{id}",
            get(tenants::get_one)
                .patch(tenants::patch)
                .delete(tenants::delete),
        )
        .route("/tenants/{id}/retry", post(tenants::retry))
        .route("/tenants/{id}/events", get(tenants::events))
        .route("/health", get(tenants::health))
        .fallback(|| async {
            Problem {
                kind: "/problems/not-found",
                title: "No such route",
                status: 404,
                detail: "see the OpenAPI document (openapi.yaml)".into(),
                errors: Vec::new(),
            }
        })
        .layer(DefaultBodyLimit::max(body::MAX_BODY_BYTES))
        .with_state(state)
}

/// The router with locally signed bearer tokens verified into claims (the local system).
pub fn with_local_tokens(router: Router, tokens: LocalTokens) -> Router {
    router.layer(middleware::from_fn_with_state(tokens, verify_local_token))
}

async fn verify_local_token(
    State(tokens): State<LocalTokens>,
    mut request: Request,
    next: Next,
) -> Response {
    if request.uri().path() == "/health" {
        return next.run(request).await;
    }
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match tokens.verify(authorization) {
        Ok(claims) => {
            request.extensions_mut().insert(claims);
            next.run(request).await
        }
        Err(problem) => problem.into_response(),
    }
}
