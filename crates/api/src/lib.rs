//! The tenants API: thin writers of desired state. It validates (the control plane's own
//! validation), writes SPEC rows conditionally and returns at once with a status; it reads
//! STATUS and the audit timeline; it never writes STATUS and never reaches a tenant account.
//! Admins also publish template versions (checked with CloudFormation's ValidateTemplate in the
//! control plane's own account) and start and steer fleet rollouts, which the rollout driver
//! function carries out.
//!
//! One axum router serves both the Lambda function (behind API Gateway's HTTP API, whose JWT
//! authorizer verifies tokens) and the local system (which verifies locally signed tokens).

pub mod auth;
pub mod body;
pub mod conditional;
pub mod idempotency;
pub mod lambda;
pub mod paging;
pub mod previews;
pub mod problem;
pub mod rollouts;
pub mod templates;
pub mod tenants;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use controlplane::ports::{
    PreviewStore, RolloutStore, SpecStore, TemplateStore, TemplateValidator, TenantStore,
};
use controlplane::rollout::driver::RolloutDriver;
use controlplane::template_source::{BundledTemplates, TableTemplates};
use model::template::TemplateError;

use crate::auth::LocalTokens;
use crate::paging::PageTokens;
use crate::problem::{Problem, REQUEST_ID};

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<dyn TenantStore>,
    pub specs: Arc<dyn SpecStore>,
    /// Every template version, shipped and published, and the fleet's current one: tenants
    /// are validated against these.
    pub templates: Arc<TableTemplates>,
    /// Where published versions are stored.
    pub template_store: Arc<dyn TemplateStore>,
    /// CloudFormation's ValidateTemplate (the control plane's account), for publishing.
    pub validator: Arc<dyn TemplateValidator>,
    /// Starts rollouts and takes their commands; the rollout driver function steps them.
    pub rollouts: Arc<RolloutDriver>,
    /// Rollout previews, as stored (the preview function computes them).
    pub previews: Arc<dyn PreviewStore>,
    /// The preview function's queue; none: previews cannot be made here.
    pub preview_queue: Option<Arc<dyn controlplane::rollout::preview::PreviewQueue>>,
    /// The region of a tenant whose SPEC names none (the control plane's).
    pub default_region: String,
    /// Signs and opens the listings' page tokens.
    pub page_tokens: PageTokens,
    /// Whether a tenant token may delete its own tenant, and with it the stack (the
    /// deployment's `TenantSelfServiceDelete`; off unless enabled).
    pub tenant_self_delete: bool,
    /// A listing's page is cut short before its items' JSON passes this many bytes.
    pub max_page_bytes: usize,
    /// What publishing a new version starts by itself (PUBLISH_STARTS_ROLLOUT).
    pub on_publish: model::rollout::OnPublish,
}

impl From<controlplane::wiring::ApiConfig> for ApiState {
    fn from(config: controlplane::wiring::ApiConfig) -> Self {
        Self {
            store: config.store,
            specs: config.specs,
            templates: config.templates,
            template_store: config.template_store,
            validator: config.validator,
            rollouts: config.rollouts,
            previews: config.previews,
            preview_queue: config.preview_queue,
            default_region: config.default_region,
            page_tokens: config
                .page_token_key
                .map_or_else(PageTokens::ephemeral, PageTokens::new),
            tenant_self_delete: config.tenant_self_delete,
            max_page_bytes: tenants::MAX_PAGE_BYTES,
            on_publish: config.on_publish,
        }
    }
}

impl ApiState {
    /// Everything on one table (the in-memory fake in tests, or any store that is all four),
    /// with the shipped template as `v1` and published bodies in `objects`: the same wiring as
    /// `ApiConfig`, without AWS.
    pub fn on_table<T>(
        table: Arc<T>,
        validator: Arc<dyn TemplateValidator>,
        objects: Arc<dyn controlplane::ports::TemplateObjects>,
        default_region: impl Into<String>,
    ) -> Result<Self, TemplateError>
    where
        T: TenantStore + SpecStore + TemplateStore + RolloutStore + PreviewStore + 'static,
    {
        let templates = Arc::new(TableTemplates::new(
            table.clone(),
            objects,
            BundledTemplates::sample()?,
        ));
        let rollouts = Arc::new(RolloutDriver::new(
            table.clone(),
            table.clone(),
            table.clone(),
            templates.clone(),
        ));
        Ok(Self {
            store: table.clone(),
            specs: table.clone(),
            templates,
            template_store: table.clone(),
            validator,
            rollouts,
            previews: table,
            preview_queue: None,
            default_region: default_region.into(),
            page_tokens: PageTokens::ephemeral(),
            tenant_self_delete: false,
            max_page_bytes: tenants::MAX_PAGE_BYTES,
            on_publish: Default::default(),
        })
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
        .route(
            "/template-versions",
            post(templates::publish)
                // A template body (up to 51,200 bytes) grows when escaped into JSON.
                .layer(DefaultBodyLimit::max(body::MAX_TEMPLATE_BODY_BYTES))
                .get(templates::list),
        )
        .route("/template-versions/{version}", get(templates::get_one))
        .route("/rollouts", post(rollouts::start).get(rollouts::list))
        .route("/rollouts/{id}", get(rollouts::get_one))
        .route("/rollouts/{id}/pause", post(rollouts::pause))
        .route("/rollouts/{id}/resume", post(rollouts::resume))
        .route("/rollouts/{id}/cancel", post(rollouts::cancel))
        .route("/rollouts/{id}/rollback", post(rollouts::rollback))
        .route("/rollout-previews", post(previews::start))
        .route("/rollout-previews/{id}", get(previews::get_one))
        .route("/health", get(tenants::health))
        .route("/problems", get(problem::describe_all))
        .route("/problems/{name}", get(problem::describe))
        .fallback(|| async { Problem::no_route() })
        // axum adds the `Allow` header to this answer.
        .method_not_allowed_fallback(|method: axum::http::Method| async move {
            Problem::method_not_allowed(&method)
        })
        .layer(DefaultBodyLimit::max(body::MAX_BODY_BYTES))
        .with_state(state)
}

/// Paths answered without a token: the health check and the problem types' descriptions.
fn is_public(path: &str) -> bool {
    path == "/health" || path == "/problems" || path.starts_with("/problems/")
}

/// Every request runs with an id: API Gateway's when deployed, a new one locally (the outermost
/// layer of both wrappers, so a 401 has one too). A 5xx names
/// it, the log lines of the request carry it, and the response's `X-Request-Id` says it.
pub(crate) async fn with_request_id(request: Request, next: Next) -> Response {
    let id = match request
        .extensions()
        .get::<lambda_http::request::RequestContext>()
    {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(context)) => {
            context.request_id.clone()
        }
        _ => None,
    }
    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let span = tracing::info_span!("request", request_id = %id);
    let mut response = REQUEST_ID
        .scope(
            id.clone(),
            tracing::Instrument::instrument(next.run(request), span),
        )
        .await;
    if let Ok(value) = header::HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// The router with locally signed bearer tokens verified into claims (the local system).
pub fn with_local_tokens(router: Router, tokens: LocalTokens) -> Router {
    router
        .layer(middleware::from_fn_with_state(tokens, verify_local_token))
        .layer(middleware::from_fn(with_request_id))
}

async fn verify_local_token(
    State(tokens): State<LocalTokens>,
    mut request: Request,
    next: Next,
) -> Response {
    if is_public(request.uri().path()) {
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
