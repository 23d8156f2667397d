//! The API under arbitrary request bodies: arbitrary JSON and arbitrary bytes to the writes.
//! Never a panic or a 5xx; every refusal is a problem document with a readable detail.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, header};
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::{Value, json};
use tower::ServiceExt;

use api::auth::LocalTokens;
use api::{ApiState, router, with_local_tokens};
use controlplane::testing::{FakeTemplateValidator, InMemoryStore};

/// Cases per property: 512, or `PROPTEST_CASES` (e.g. a long soak).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,24}".prop_map(Value::from),
        Just(json!("111111111111")),
        Just(json!("acme")),
        Just(json!("2027-01-31")),
    ];
    let fields = prop::sample::select(vec![
        "tenant_id",
        "account_id",
        "region",
        "config",
        "template_version",
        "decommission_date",
        "drift_policy",
        "retry",
        "status",
        "player_count",
        "difficulty",
        "seed",
    ]);
    leaf.prop_recursive(3, 32, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
            prop::collection::btree_map(fields.clone().prop_map(str::to_owned), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

struct Fixture {
    app: axum::Router,
    token: String,
    runtime: tokio::runtime::Runtime,
}

fn fixture() -> Fixture {
    let store = Arc::new(InMemoryStore::default());
    let tokens = LocalTokens::new("fuzz");
    let token = tokens.mint("fuzzer", None, 1).unwrap();
    let app = with_local_tokens(
        router(
            ApiState::on_table(
                store,
                Arc::new(FakeTemplateValidator::default()),
                Arc::new(controlplane::testing::FakeTemplateObjects::default()),
                "us-east-1",
            )
            .unwrap(),
        ),
        tokens,
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    Fixture {
        app,
        token,
        runtime,
    }
}

impl Fixture {
    fn send(
        &self,
        method: &str,
        uri: &str,
        body: Vec<u8>,
        extra: &[(&str, &str)],
    ) -> (u16, String, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::CONTENT_TYPE, "application/json");
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        let request = request.body(Body::from(body)).unwrap();
        self.runtime.block_on(async {
            let response = self.app.clone().oneshot(request).await.unwrap();
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            (
                status,
                content_type,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            )
        })
    }

    fn etag(&self) -> String {
        let request = Request::get("/tenants/acme")
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .body(Body::empty())
            .unwrap();
        self.runtime.block_on(async {
            let response = self.app.clone().oneshot(request).await.unwrap();
            response.headers()[header::ETAG]
                .to_str()
                .unwrap()
                .to_owned()
        })
    }
}

fn check(
    status: u16,
    content_type: &str,
    body: &Value,
    allowed: &[u16],
) -> Result<(), TestCaseError> {
    prop_assert!(
        allowed.contains(&status),
        "unexpected status {status}: {body}"
    );
    if status >= 400 {
        prop_assert_eq!(content_type, "application/problem+json");
        prop_assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "no detail: {}",
            body
        );
        prop_assert_eq!(body["status"].as_u64(), Some(u64::from(status)));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn any_json_to_create_is_accepted_or_refused_with_a_reason(body in any_json()) {
        let api = fixture();
        let (status, content_type, reply) = api.send("POST", "/tenants", body.to_string().into_bytes(), &[]);
        check(status, &content_type, &reply, &[202, 400, 409, 422])?;
        if status == 202 {
            prop_assert!(reply["tenant_id"].is_string());
        }
    }

    #[test]
    fn any_bytes_to_create_are_refused_with_a_reason(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let api = fixture();
        let (status, content_type, reply) = api.send("POST", "/tenants", bytes, &[]);
        check(status, &content_type, &reply, &[202, 400, 409, 422])?;
    }

    #[test]
    fn any_json_merge_patch_is_applied_or_refused_with_a_reason(patch in any_json()) {
        let api = fixture();
        let seed = json!({"tenant_id": "acme", "account_id": "111111111111"});
        let (created, _, _) = api.send("POST", "/tenants", seed.to_string().into_bytes(), &[]);
        prop_assert_eq!(created, 202);
        let etag = api.etag();
        let (status, content_type, reply) =
            api.send("PATCH", "/tenants/acme", patch.to_string().into_bytes(), &[("if-match", &etag)]);
        check(status, &content_type, &reply, &[202, 400, 403, 412, 422])?;
    }
}
