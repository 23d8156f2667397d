//! The API over the in-memory table, with locally signed tokens: one harness for the route
//! tests.
#![allow(dead_code)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use api::auth::LocalTokens;
use api::{ApiState, router, with_local_tokens};
use controlplane::reconcile::Reconciler;
use controlplane::testing::{FakeTemplateValidator, InMemoryStore, World};
use model::spec::TenantKey;

/// A request as a client sends it: a bearer token, a JSON body, and any other headers.
pub fn request(
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Request<Body> {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap()
}

pub struct Api {
    pub app: Router,
    pub store: Arc<InMemoryStore>,
    pub reconciler: Reconciler,
    pub tokens: LocalTokens,
}

pub struct Reply {
    pub status: StatusCode,
    pub etag: Option<String>,
    pub content_type: String,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
}

pub fn api() -> Api {
    api_with(|_| {})
}

/// The API with its state set as a deployment would (`configure`).
pub fn api_with(configure: impl FnOnce(&mut ApiState)) -> Api {
    let store = Arc::new(InMemoryStore::default());
    let tokens = LocalTokens::new("test-key");
    let mut state = ApiState::on_table(
        store.clone(),
        Arc::new(FakeTemplateValidator::default()),
        Arc::new(controlplane::testing::FakeTemplateObjects::default()),
        "us-east-1",
    )
    .expect("the shipped template");
    configure(&mut state);
    let reconciler = World::builder()
        .store(store.clone())
        .templates(state.templates.clone())
        .build()
        .reconciler;
    Api {
        app: with_local_tokens(router(state), tokens.clone()),
        store,
        reconciler,
        tokens,
    }
}

impl Api {
    pub fn admin(&self) -> String {
        self.tokens.mint("ops@example.com", None, 1).unwrap()
    }

    pub fn tenant(&self, tenant: &str) -> String {
        self.tokens
            .mint(&format!("user@{tenant}"), Some(tenant), 1)
            .unwrap()
    }

    pub async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        self.send(request(method, uri, token, body, headers)).await
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let etag = headers
            .get(header::ETAG)
            .map(|v| v.to_str().unwrap().to_owned());
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            etag,
            content_type,
            headers,
            body,
        }
    }

    pub async fn create(&self, tenant: &str, account: &str) -> Reply {
        let token = self.admin();
        self.call(
            "POST",
            "/tenants",
            Some(&token),
            Some(json!({
                "tenant_id": tenant, "account_id": account,
                "config": {"difficulty": "peaceful", "player_count": 5}
            })),
            &[],
        )
        .await
    }

    pub async fn reconcile(&self, tenant: &str) {
        self.reconciler
            .reconcile(&TenantKey::new(tenant))
            .await
            .expect("reconcile");
    }
}

pub fn assert_problem(reply: &Reply, status: StatusCode) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.content_type, "application/problem+json");
    assert_eq!(reply.body["status"], status.as_u16());
    assert!(reply.body["type"].is_string() && reply.body["detail"].is_string());
}
