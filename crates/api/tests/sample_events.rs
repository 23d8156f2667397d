//! Every API Gateway sample in events/ (`api-*.json`: HTTP API payload 2.0, claims from the JWT
//! authorizer) goes through the Lambda function's router as the function receives it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use api::lambda::with_authorizer_claims;
use api::{ApiState, router};
use controlplane::testing::{FakeTemplateValidator, InMemoryStore};

fn sample(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../events")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The samples invoked so far (every `events/api-*.json` must be).
static INVOKED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Sends sample `name`, with its placeholders replaced: `"REPLACE-WITH-ETAG"` by `etag` and
/// `REPLACE-WITH-ROLLOUT-ID` by `rollout`.
async fn invoke_with(
    app: &axum::Router,
    name: &str,
    etag: Option<&str>,
    rollout: Option<&str>,
) -> (u16, Option<String>, Value) {
    INVOKED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(name.to_owned());
    let mut text = sample(name);
    if let Some(etag) = etag {
        text = text.replace("\\\"REPLACE-WITH-ETAG\\\"", &etag.replace('"', "\\\""));
    }
    if let Some(rollout) = rollout {
        text = text.replace("REPLACE-WITH-ROLLOUT-ID", rollout);
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

async fn invoke(
    app: &axum::Router,
    name: &str,
    etag: Option<&str>,
) -> (u16, Option<String>, Value) {
    invoke_with(app, name, etag, None).await
}

#[tokio::test]
async fn every_api_sample_is_served_by_the_function() {
    let store = Arc::new(InMemoryStore::default());
    let state = ApiState::on_table(
        store.clone(),
        Arc::new(FakeTemplateValidator::default()),
        Arc::new(controlplane::testing::FakeTemplateObjects::default()),
        "us-east-1",
    )
    .expect("the shipped template");
    let app = with_authorizer_claims(router(state));
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

    // Template versions and rollouts (the tenant above is gone; the fleet is empty).
    let (status, _, body) = invoke(&app, "api-publish-template.json", None).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["published_by"], "8d2f6c1e-5b7a-4a39-9c1d-2e4f6a8b0c3d");
    // A repeat of the same version and body.
    assert_eq!(invoke(&app, "api-publish-template.json", None).await.0, 200);
    let (status, _, body) = invoke(&app, "api-list-template-versions.json", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["versions"].as_array().map(Vec::len), Some(2));
    let (status, _, body) = invoke(&app, "api-start-rollout.json", None).await;
    assert_eq!(status, 202, "{body}");
    let rollout = body["id"].as_str().expect("a rollout id").to_owned();
    let (status, _, body) = invoke_with(&app, "api-get-rollout.json", None, Some(&rollout)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["members"].is_array(), "{body}");
    let (status, _, body) = invoke_with(&app, "api-pause-rollout.json", None, Some(&rollout)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "paused");

    let samples: BTreeSet<String> =
        std::fs::read_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events"))
            .expect("events/")
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| name.starts_with("api-") && name.ends_with(".json"))
            .collect();
    let invoked = INVOKED.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(invoked, samples, "every events/api-*.json sample is served");
}
