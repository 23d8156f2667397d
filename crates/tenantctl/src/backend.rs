//! Where requests go: the tenants API over HTTP, or (`--direct`) the tenants table through the
//! API's own operations, so both validate, write and answer alike.

use api::ApiState;
use api::auth::{Caller, Role};
use api::previews::PreviewDetails;
use api::rollouts::RolloutDetails;
use api::templates::{PublishedTemplate, TemplateVersions};
use api::tenants::{EventsQuery, ListQuery, Page, Tenant, TenantView};
use controlplane::template_source::TemplateVersion;
use model::audit::AuditEntry;
use model::rollout::Command;
use reqwest::header::{CONTENT_TYPE, ETAG, IF_MATCH};
use reqwest::{Method, RequestBuilder, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::failure::{Failure, ProblemDoc};

pub enum Backend {
    Api(ApiClient),
    Direct(Direct),
}

pub struct ApiClient {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

/// The table itself, as an admin named `actor` (recorded as `updated_by` and in the timeline).
pub struct Direct {
    state: ApiState,
    caller: Caller,
}

impl Direct {
    pub fn new(state: ApiState, actor: &str) -> Self {
        Self {
            state,
            caller: Caller {
                subject: actor.to_owned(),
                role: Role::Admin,
            },
        }
    }
}

impl ApiClient {
    pub fn new(base: &str, token: Option<String>) -> Result<Self, Failure> {
        let base = Url::parse(base)
            .map_err(|e| Failure::Other(format!("--api-url {base:?} is not a URL: {e}")))?;
        if base.cannot_be_a_base() {
            return Err(Failure::Other(format!(
                "--api-url {base} cannot be a base URL"
            )));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("tenantctl/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| Failure::Other(format!("cannot set up HTTP: {e}")))?;
        Ok(Self { http, base, token })
    }

    /// The base URL with `segments` appended (each one escaped).
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn request(&self, method: Method, segments: &[&str]) -> RequestBuilder {
        let request = self.http.request(method, self.url(segments));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends; a 2xx body as `T` with its ETag, anything else as the problem it is.
    async fn send<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<(T, Option<String>), Failure> {
        let (body, etag, _) = self.send_for_status(request).await?;
        Ok((body, etag))
    }

    /// As `send`, with the 2xx status too (a publish answers 201 or, repeated, 200).
    async fn send_for_status<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<(T, Option<String>, reqwest::StatusCode), Failure> {
        let response = request
            .send()
            .await
            .map_err(|e| Failure::Unreachable(error_chain(&e)))?;
        let status = response.status();
        let etag = response
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let is_problem = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(api::problem::PROBLEM_JSON));
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Failure::Unreachable(error_chain(&e)))?;
        if status.is_success() {
            let body = serde_json::from_slice(&bytes).map_err(|e| {
                Failure::Unreachable(format!("the answer is not the API's ({status}): {e}"))
            })?;
            return Ok((body, etag, status));
        }
        let problem = if is_problem {
            serde_json::from_slice::<ProblemDoc>(&bytes).ok()
        } else {
            None
        };
        Err(Failure::Problem(problem.unwrap_or_else(|| {
            ProblemDoc {
                kind: None,
                title: status
                    .canonical_reason()
                    .unwrap_or("Unexpected answer")
                    .to_owned(),
                status: status.as_u16(),
                detail: String::from_utf8_lossy(&bytes).chars().take(300).collect(),
                errors: Vec::new(),
            }
        })))
    }

    async fn tenant(&self, request: RequestBuilder) -> Result<Tenant, Failure> {
        let (view, etag) = self.send::<TenantView>(request).await?;
        Ok(Tenant { view, etag })
    }
}

/// An error with its causes: reqwest's top-level message alone hides "connection refused".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn query_pairs(
    limit: Option<usize>,
    next: Option<&str>,
    status: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut pairs = Vec::new();
    if let Some(limit) = limit {
        pairs.push(("limit", limit.to_string()));
    }
    if let Some(next) = next {
        pairs.push(("next", next.to_owned()));
    }
    if let Some(status) = status {
        pairs.push(("status", status.to_owned()));
    }
    pairs
}

impl Backend {
    pub async fn create(
        &self,
        body: &Value,
        idempotency_key: Option<&str>,
    ) -> Result<Tenant, Failure> {
        match self {
            Self::Api(api) => {
                let mut request = api.request(Method::POST, &["tenants"]).json(body);
                if let Some(key) = idempotency_key {
                    request = request.header("idempotency-key", key);
                }
                api.tenant(request).await
            }
            Self::Direct(d) => Ok(d
                .state
                .create_tenant(
                    &d.caller,
                    body,
                    &api::idempotency::IdempotencyKey::parse(idempotency_key)?,
                )
                .await?
                .tenant),
        }
    }

    pub async fn get(&self, tenant: &str) -> Result<Tenant, Failure> {
        match self {
            Self::Api(api) => {
                api.tenant(api.request(Method::GET, &["tenants", tenant]))
                    .await
            }
            Self::Direct(d) => Ok(d.state.get_tenant(&d.caller, tenant).await?),
        }
    }

    pub async fn list(&self, query: &ListQuery) -> Result<Page<TenantView>, Failure> {
        match self {
            Self::Api(api) => {
                let pairs =
                    query_pairs(query.limit, query.next.as_deref(), query.status.as_deref());
                let request = api.request(Method::GET, &["tenants"]).query(&pairs);
                Ok(api.send(request).await?.0)
            }
            Self::Direct(d) => Ok(d.state.list_tenants(&d.caller, query).await?),
        }
    }

    pub async fn patch(
        &self,
        tenant: &str,
        patch: &Value,
        if_match: &str,
    ) -> Result<Tenant, Failure> {
        match self {
            Self::Api(api) => {
                let request = api
                    .request(Method::PATCH, &["tenants", tenant])
                    .header(IF_MATCH, if_match)
                    .json(patch);
                api.tenant(request).await
            }
            Self::Direct(d) => Ok(d
                .state
                .patch_tenant(
                    &d.caller,
                    tenant,
                    patch,
                    &api::conditional::IfMatch::header(Some(if_match)),
                )
                .await?),
        }
    }

    pub async fn retry(&self, tenant: &str) -> Result<Tenant, Failure> {
        match self {
            Self::Api(api) => {
                api.tenant(api.request(Method::POST, &["tenants", tenant, "retry"]))
                    .await
            }
            Self::Direct(d) => Ok(d
                .state
                .retry_tenant(&d.caller, tenant, &api::conditional::IfMatch::default())
                .await?),
        }
    }

    pub async fn delete(&self, tenant: &str, if_match: Option<&str>) -> Result<Tenant, Failure> {
        match self {
            Self::Api(api) => {
                let mut request = api.request(Method::DELETE, &["tenants", tenant]);
                if let Some(etag) = if_match {
                    request = request.header(IF_MATCH, etag);
                }
                api.tenant(request).await
            }
            Self::Direct(d) => Ok(d
                .state
                .delete_tenant(
                    &d.caller,
                    tenant,
                    &api::conditional::IfMatch::header(if_match),
                    "tenantctl tenants delete --direct",
                )
                .await?),
        }
    }

    pub async fn events(
        &self,
        tenant: &str,
        query: &EventsQuery,
    ) -> Result<Page<AuditEntry>, Failure> {
        match self {
            Self::Api(api) => {
                let pairs = query_pairs(query.limit, query.next.as_deref(), None);
                let request = api
                    .request(Method::GET, &["tenants", tenant, "events"])
                    .query(&pairs);
                Ok(api.send(request).await?.0)
            }
            Self::Direct(d) => Ok(d.state.tenant_events(&d.caller, tenant, query).await?),
        }
    }
}

/// Template versions and rollouts.
impl Backend {
    pub async fn publish_template(&self, body: &Value) -> Result<PublishedTemplate, Failure> {
        match self {
            Self::Api(api) => {
                let request = api.request(Method::POST, &["template-versions"]).json(body);
                let (template, _, status) = api.send_for_status(request).await?;
                Ok(PublishedTemplate {
                    template,
                    // 201 stored now; 200 the very same version and body were stored before.
                    already: status == reqwest::StatusCode::OK,
                })
            }
            Self::Direct(d) => Ok(d.state.publish_template(&d.caller, body).await?),
        }
    }

    pub async fn template_versions(&self) -> Result<TemplateVersions, Failure> {
        match self {
            Self::Api(api) => Ok(api
                .send(api.request(Method::GET, &["template-versions"]))
                .await?
                .0),
            Self::Direct(d) => Ok(d.state.template_versions(&d.caller).await?),
        }
    }

    pub async fn template_version(&self, version: &str) -> Result<TemplateVersion, Failure> {
        match self {
            Self::Api(api) => Ok(api
                .send(api.request(Method::GET, &["template-versions", version]))
                .await?
                .0),
            Self::Direct(d) => Ok(d.state.template_version(&d.caller, version).await?),
        }
    }

    pub async fn start_rollout(&self, body: &Value) -> Result<RolloutDetails, Failure> {
        match self {
            Self::Api(api) => {
                let request = api.request(Method::POST, &["rollouts"]).json(body);
                Ok(api.send(request).await?.0)
            }
            Self::Direct(d) => Ok(d.state.start_rollout(&d.caller, body).await?),
        }
    }

    /// Every rollout, newest first.
    pub async fn rollouts(&self) -> Result<Vec<RolloutDetails>, Failure> {
        match self {
            Self::Api(api) => {
                let page: Page<RolloutDetails> =
                    api.send(api.request(Method::GET, &["rollouts"])).await?.0;
                Ok(page.items)
            }
            Self::Direct(d) => Ok(d.state.list_rollouts(&d.caller).await?.items),
        }
    }

    pub async fn rollout(&self, id: &str, members: bool) -> Result<RolloutDetails, Failure> {
        match self {
            Self::Api(api) => {
                let mut request = api.request(Method::GET, &["rollouts", id]);
                if members {
                    request = request.query(&[("members", "true")]);
                }
                Ok(api.send(request).await?.0)
            }
            Self::Direct(d) => Ok(d.state.get_rollout(&d.caller, id, members).await?),
        }
    }

    pub async fn command_rollout(
        &self,
        id: &str,
        command: Command,
    ) -> Result<RolloutDetails, Failure> {
        match self {
            Self::Api(api) => {
                let request = api.request(Method::POST, &["rollouts", id, command.as_str()]);
                Ok(api.send(request).await?.0)
            }
            Self::Direct(d) => Ok(d.state.command_rollout(&d.caller, id, command).await?),
        }
    }
}

impl Backend {
    /// Records a rollout preview (the preview function computes it).
    pub async fn start_preview(&self, body: &Value) -> Result<PreviewDetails, Failure> {
        match self {
            Self::Api(api) => {
                let request = api.request(Method::POST, &["rollout-previews"]).json(body);
                Ok(api.send(request).await?.0)
            }
            Self::Direct(d) => Ok(d.state.start_preview(&d.caller, body).await?),
        }
    }

    /// A preview with one page of its tenants (`next`: the page token of the one before).
    pub async fn preview(&self, id: &str, next: Option<&str>) -> Result<PreviewDetails, Failure> {
        match self {
            Self::Api(api) => {
                let mut request = api.request(Method::GET, &["rollout-previews", id]);
                if let Some(next) = next {
                    request = request.query(&[("next", next)]);
                }
                Ok(api.send(request).await?.0)
            }
            Self::Direct(d) => Ok(d
                .state
                .get_preview(&d.caller, id, next.map(str::to_owned))
                .await?),
        }
    }
}

impl From<api::problem::Problem> for Failure {
    fn from(problem: api::problem::Problem) -> Self {
        Self::Problem(problem.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_the_base_path_and_escape_segments() {
        let api = ApiClient::new("https://api.example.com/prod/", None).unwrap();
        assert_eq!(
            api.url(&["tenants", "acme", "events"]).as_str(),
            "https://api.example.com/prod/tenants/acme/events"
        );
        assert_eq!(
            api.url(&["tenants", "a/b?c"]).as_str(),
            "https://api.example.com/prod/tenants/a%2Fb%3Fc"
        );
        let root = ApiClient::new("http://127.0.0.1:3000", None).unwrap();
        assert_eq!(
            root.url(&["tenants"]).as_str(),
            "http://127.0.0.1:3000/tenants"
        );
        assert!(ApiClient::new("not a url", None).is_err());
    }

    #[test]
    fn only_given_query_parameters_are_sent() {
        assert_eq!(
            query_pairs(Some(2), None, Some("ready")),
            vec![("limit", "2".to_owned()), ("status", "ready".to_owned())]
        );
        assert!(query_pairs(None, None, None).is_empty());
    }
}
