//! Every API Gateway sample in events/ (HTTP API payload 2.0, claims from the JWT authorizer)
//! goes through the Lambda function's router as the function receives it.

use std::sync::Arc;

use axum::body::Body;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use api::lambda::with_authorizer_claims;
use api::{ApiState, router};
use controlplane::fakes::InMemoryStore;
use controlplane::template_source::BundledTemplates;

fn sample(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../events")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

async fn invoke(
    app: &axum::Router,
    name: &str,
    etag: Option<&str>,
) -> (u16, Option<String>, Value) {
    let mut text = sample(name);
    if let Some(etag) = etag {
        text = text.replace("\\\"REPLACE-WITH-ETAG\\\"", &etag.replace('"', "\\\""));
    }
    let request = lambda_http::request::from_str(&text)
        .unwrap_or_else(|e| panic!("{name} is not an API Gateway event: {e}"))
        .map(|body| Body::from(body.to_vec()));
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let etag = response
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        etag,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn every_api_sample_is_served_by_the_function() {
    let store = Arc::new(InMemoryStore::default());
    let app = with_authorizer_claims(router(ApiState {
        store: store.clone(),
        specs: store,
        templates: Arc::new(BundledTemplates::sample().expect("sample")),
        default_region: "us-east-1".into(),
    }));
    assert_eq!(invoke(&app, "api-health.json", None).await.0, 200);
    let (status, etag, body) = invoke(&app, "api-create-tenant.json", None).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["updated_by"], "8d2f6c1e-5b7a-4a39-9c1d-2e4f6a8b0c3d");
    // Replayed by its Idempotency-Key.
    assert_eq!(invoke(&app, "api-create-tenant.json", None).await.0, 202);
    assert_eq!(invoke(&app, "api-list-tenants.json", None).await.0, 200);
    let (status, read_etag, _) = invoke(&app, "api-get-tenant.json", None).await;
    assert_eq!((status, read_etag.as_deref()), (200, etag.as_deref()));
    let (status, _, body) = invoke(&app, "api-patch-tenant.json", etag.as_deref()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["config"]["player_count"], 8);
    assert_eq!(invoke(&app, "api-retry-tenant.json", None).await.0, 202);
    // The events sample carries a tenant's claims: its own timeline.
    let (status, _, body) = invoke(&app, "api-tenant-events.json", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(invoke(&app, "api-delete-tenant.json", None).await.0, 202);
}
