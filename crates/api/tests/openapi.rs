//! The API answers as openapi.yaml says: every operation in the document is exercised, and every
//! response's status is declared for its operation and its body validates against the declared
//! schema (JSON Schema, through the `jsonschema` crate).

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::http::header;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use api::auth::LocalTokens;
use api::{ApiState, router, with_local_tokens};
use controlplane::template_source::SAMPLE_TEMPLATE;
use controlplane::testing::{FakeTemplateValidator, InMemoryStore};

const BASE: &str = "https://tenant-api.invalid/openapi";

fn document() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../openapi.yaml");
    let text = std::fs::read_to_string(&path).expect("openapi.yaml");
    serde_yaml_ng::from_str(&text).expect("openapi.yaml parses")
}

/// Follows a local `$ref` within the document.
fn resolve<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.trim_start_matches('#');
            resolve(
                document,
                document.pointer(pointer).expect("a $ref that resolves"),
            )
        }
        None => value,
    }
}

/// Local references made absolute, so the validator resolves them in the registered document.
fn absolute(schema: &Value) -> Value {
    serde_json::from_str(
        &schema
            .to_string()
            .replace("\"#/components", &format!("\"{BASE}#/components")),
    )
    .expect("still JSON")
}

struct Checker {
    document: Value,
    app: axum::Router,
    admin: String,
    tenant: String,
    exercised: BTreeSet<(String, String)>,
}

impl Checker {
    /// Sends a request for `operation` (method, path template), checks the answer against the
    /// document, and returns its status, ETag and body.
    async fn call(
        &mut self,
        (method, template): (&str, &str),
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Option<String>, Value) {
        let request = support::request(method, uri, token, body, headers);
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let etag = response
            .headers()
            .get(header::ETAG)
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);

        let operation = &self.document["paths"][template][method.to_lowercase()];
        assert!(
            operation.is_object(),
            "{method} {template} is not in openapi.yaml"
        );
        self.exercised
            .insert((method.to_owned(), template.to_owned()));
        let declared = operation["responses"]
            .get(status.to_string())
            .unwrap_or_else(|| {
                panic!("{method} {template} answered {status}, not declared: {body}")
            });
        let declared = resolve(&self.document, declared);
        let schema = declared["content"].get(&content_type).unwrap_or_else(|| {
            panic!("{method} {template} {status}: undeclared content type {content_type:?}")
        })["schema"]
            .clone();
        let registry = jsonschema::Registry::new()
            .add(BASE, self.document.clone())
            .expect("document registers")
            .prepare()
            .expect("registry");
        let validator = jsonschema::options()
            .with_registry(&registry)
            .build(&absolute(&schema))
            .expect("a valid schema");
        let errors: Vec<String> = validator
            .iter_errors(&body)
            .map(|e| e.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {template} {status}: {errors:?} in {body}"
        );
        (status, etag, body)
    }
}

#[tokio::test]
async fn every_operation_answers_as_the_document_declares() {
    let store = Arc::new(InMemoryStore::default());
    let tokens = LocalTokens::new("k");
    let mut state = ApiState::on_table(
        store.clone(),
        Arc::new(FakeTemplateValidator::default()),
        Arc::new(controlplane::testing::FakeTemplateObjects::default()),
        "us-east-1",
    )
    .expect("the shipped template");
    state.preview_queue = Some(Arc::new(
        controlplane::testing::RecordingPreviewQueue::default(),
    ));
    let templates = state.templates.clone();
    let mut api = Checker {
        document: document(),
        app: with_local_tokens(router(state), tokens.clone()),
        admin: tokens.mint("ops", None, 1).unwrap(),
        tenant: tokens.mint("user", Some("globex"), 1).unwrap(),
        exercised: BTreeSet::new(),
    };
    let admin = api.admin.clone();
    let tenant = api.tenant.clone();
    let create = ("POST", "/tenants");
    let list = ("GET", "/tenants");
    let get = ("GET", "/tenants/{id}");
    let patch = ("PATCH", "/tenants/{id}");
    let delete = ("DELETE", "/tenants/{id}");
    let retry = ("POST", "/tenants/{id}/retry");
    let events = ("GET", "/tenants/{id}/events");
    let good = json!({"tenant_id": "acme", "account_id": "111111111111", "config": {"player_count": 5, "difficulty": "hard"}});

    assert_eq!(
        api.call(("GET", "/health"), "/health", None, None, &[])
            .await
            .0,
        200
    );
    assert_eq!(
        api.call(create, "/tenants", None, Some(good.clone()), &[])
            .await
            .0,
        401
    );
    let (status, etag, _) = api
        .call(
            create,
            "/tenants",
            Some(&admin),
            Some(good.clone()),
            &[("idempotency-key", "a")],
        )
        .await;
    assert_eq!(status, 202);
    let etag = etag.unwrap();
    assert_eq!(
        api.call(create, "/tenants", Some(&admin), Some(good.clone()), &[])
            .await
            .0,
        409
    );
    assert_eq!(
        api.call(
            create,
            "/tenants",
            Some(&admin),
            Some(json!({"tenant_id": "b"})),
            &[]
        )
        .await
        .0,
        422
    );
    assert_eq!(
        api.call(create, "/tenants", Some(&admin), Some(json!("text")), &[])
            .await
            .0,
        400
    );
    assert_eq!(
        api.call(
            create,
            "/tenants",
            Some(&tenant),
            Some(json!({"tenant_id": "globex", "account_id": "111111111111"})),
            &[]
        )
        .await
        .0,
        403
    );
    assert_eq!(
        api.call(create, "/tenants", Some(&tenant), Some(good.clone()), &[])
            .await
            .0,
        403
    );
    let big = json!({"tenant_id": "big", "account_id": "111111111111", "config": {"seed": "x".repeat(70_000)}});
    assert_eq!(
        api.call(create, "/tenants", Some(&admin), Some(big), &[])
            .await
            .0,
        413
    );

    assert_eq!(
        api.call(list, "/tenants", Some(&admin), None, &[]).await.0,
        200
    );
    assert_eq!(
        api.call(list, "/tenants?limit=0", Some(&admin), None, &[])
            .await
            .0,
        422
    );
    assert_eq!(
        api.call(list, "/tenants?next=x", Some(&admin), None, &[])
            .await
            .0,
        400
    );
    assert_eq!(
        api.call(get, "/tenants/acme", Some(&admin), None, &[])
            .await
            .0,
        200
    );
    assert_eq!(
        api.call(get, "/tenants/acme", Some(&tenant), None, &[])
            .await
            .0,
        404
    );

    let change = json!({"config": {"player_count": 6}});
    assert_eq!(
        api.call(
            patch,
            "/tenants/acme",
            Some(&admin),
            Some(change.clone()),
            &[]
        )
        .await
        .0,
        428
    );
    assert_eq!(
        api.call(
            patch,
            "/tenants/acme",
            Some(&admin),
            Some(change.clone()),
            &[("if-match", "\"x\"")]
        )
        .await
        .0,
        412
    );
    assert_eq!(
        api.call(
            patch,
            "/tenants/acme",
            Some(&admin),
            Some(json!({"config": {"player_count": 0}})),
            &[("if-match", &etag)]
        )
        .await
        .0,
        422
    );
    assert_eq!(
        api.call(
            patch,
            "/tenants/acme",
            Some(&admin),
            Some(change),
            &[("if-match", &etag)]
        )
        .await
        .0,
        202
    );
    assert_eq!(
        api.call(retry, "/tenants/acme/retry", Some(&admin), None, &[])
            .await
            .0,
        202
    );
    assert_eq!(
        api.call(events, "/tenants/acme/events", Some(&admin), None, &[])
            .await
            .0,
        200
    );
    assert_eq!(
        api.call(
            delete,
            "/tenants/acme",
            Some(&admin),
            None,
            &[("if-match", "\"x\"")]
        )
        .await
        .0,
        412
    );
    assert_eq!(
        api.call(delete, "/tenants/acme", Some(&admin), None, &[])
            .await
            .0,
        202
    );
    // Never provisioned, now removed: no such tenant any more.
    assert_eq!(
        api.call(events, "/tenants/acme/events", Some(&admin), None, &[])
            .await
            .0,
        404
    );
    assert_eq!(
        api.call(get, "/tenants/acme", Some(&admin), None, &[])
            .await
            .0,
        404
    );
    assert_eq!(
        api.call(delete, "/tenants/acme", Some(&admin), None, &[])
            .await
            .0,
        404
    );

    // Template versions: published, repeated, conflicting, invalid, breaking a tenant.
    let publish = ("POST", "/template-versions");
    let versions = ("GET", "/template-versions");
    let version = ("GET", "/template-versions/{version}");
    assert_eq!(
        api.call(
            create,
            "/tenants",
            Some(&admin),
            Some(json!({"tenant_id": "initech", "account_id": "111111111111", "config": {"player_count": 5}})),
            &[]
        )
        .await
        .0,
        202
    );
    let v2 = SAMPLE_TEMPLATE.replace(
        "MessageRetentionPeriod: 345600",
        "MessageRetentionPeriod: 1209600",
    );
    let new_version =
        |version: &str, body: &str| json!({"version": version, "body": body, "description": "d"});
    for (body, token, expected) in [
        (new_version("v2", &v2), &admin, 201),
        (new_version("v2", &v2), &admin, 200),
        (new_version("v2", "Resources: {}"), &admin, 409),
        (new_version("v 2", &v2), &admin, 422),
        (
            new_version("v3", &v2.replace("MaxValue: 100", "MaxValue: 3")),
            &admin,
            422,
        ),
        (json!(["not an object"]), &admin, 400),
        (new_version("v4", &v2), &tenant, 403),
    ] {
        let (status, _, _) = api
            .call(publish, "/template-versions", Some(token), Some(body), &[])
            .await;
        assert_eq!(status, expected);
    }
    assert_eq!(
        api.call(publish, "/template-versions", None, None, &[])
            .await
            .0,
        401
    );
    let huge = new_version("v5", &"#".repeat(5 * 1024 * 1024));
    assert_eq!(
        api.call(publish, "/template-versions", Some(&admin), Some(huge), &[])
            .await
            .0,
        413
    );
    for (uri, token, expected) in [
        ("/template-versions", &admin, 200),
        ("/template-versions", &tenant, 403),
    ] {
        assert_eq!(
            api.call(versions, uri, Some(token), None, &[]).await.0,
            expected
        );
    }
    for (uri, token, expected) in [
        ("/template-versions/v2", &admin, 200),
        ("/template-versions/v1", &admin, 200),
        ("/template-versions/v9", &admin, 404),
        ("/template-versions/v2", &tenant, 403),
    ] {
        assert_eq!(
            api.call(version, uri, Some(token), None, &[]).await.0,
            expected
        );
    }

    // Rollouts: started, busy, invalid, read, listed, steered.
    let start = ("POST", "/rollouts");
    let rollouts = ("GET", "/rollouts");
    let rollout = ("GET", "/rollouts/{id}");
    let (status, _, started) = api
        .call(
            start,
            "/rollouts",
            Some(&admin),
            Some(json!({"target_version": "v2", "selection": {"percent": 50, "config": {"player_count": 5}},
                        "options": {"canary": "5%", "bake_seconds": 60}})),
            &[],
        )
        .await;
    assert_eq!(status, 202);
    let id = started["id"].as_str().unwrap().to_owned();
    for (body, token, expected) in [
        (json!({"target_version": "v2"}), &admin, 409),
        (json!({"target_version": "v9"}), &admin, 422),
        (
            json!({"target_version": "v2", "options": {"canary": "x"}}),
            &admin,
            422,
        ),
        (json!(3), &admin, 400),
        (json!({"target_version": "v2"}), &tenant, 403),
    ] {
        let (status, _, _) = api
            .call(start, "/rollouts", Some(token), Some(body), &[])
            .await;
        assert_eq!(status, expected);
    }
    assert_eq!(
        api.call(rollouts, "/rollouts", Some(&admin), None, &[])
            .await
            .0,
        200
    );
    assert_eq!(
        api.call(rollouts, "/rollouts", Some(&tenant), None, &[])
            .await
            .0,
        403
    );
    for (uri, token, expected) in [
        (format!("/rollouts/{id}"), &admin, 200),
        (format!("/rollouts/{id}?members=true"), &admin, 200),
        (format!("/rollouts/{id}?members=maybe"), &admin, 400),
        ("/rollouts/r-none".to_owned(), &admin, 404),
        (format!("/rollouts/{id}"), &tenant, 403),
    ] {
        assert_eq!(
            api.call(rollout, &uri, Some(token), None, &[]).await.0,
            expected
        );
    }
    for (command, expected) in [
        ("pause", 200),
        ("resume", 200),
        ("cancel", 200),
        ("pause", 409),
        ("rollback", 200),
    ] {
        let operation = match command {
            "pause" => ("POST", "/rollouts/{id}/pause"),
            "resume" => ("POST", "/rollouts/{id}/resume"),
            "cancel" => ("POST", "/rollouts/{id}/cancel"),
            _ => ("POST", "/rollouts/{id}/rollback"),
        };
        let uri = format!("/rollouts/{id}/{command}");
        assert_eq!(
            api.call(operation, &uri, Some(&admin), None, &[]).await.0,
            expected
        );
        let other = format!("/rollouts/r-none/{command}");
        assert_eq!(
            api.call(operation, &other, Some(&admin), None, &[]).await.0,
            404
        );
        assert_eq!(
            api.call(operation, &uri, Some(&tenant), None, &[]).await.0,
            403
        );
    }

    // Rollout previews: recorded and queued, run by the preview function, read a page at a time.
    let start_preview = ("POST", "/rollout-previews");
    let get_preview = ("GET", "/rollout-previews/{id}");
    for (body, token, expected) in [
        (json!({"target_version": "v9", "sample": 5}), &admin, 422),
        (json!({"target_version": "v1", "sample": 0}), &admin, 422),
        (json!({"target_version": "v1"}), &tenant, 403),
    ] {
        let uri = "/rollout-previews";
        assert_eq!(
            api.call(start_preview, uri, Some(token), Some(body), &[])
                .await
                .0,
            expected
        );
    }
    let (status, _, started) = api
        .call(
            start_preview,
            "/rollout-previews",
            Some(&admin),
            Some(json!({"target_version": "v1", "sample": 5})),
            &[],
        )
        .await;
    assert_eq!(status, 202, "{started}");
    let id = started["id"].as_str().unwrap().to_owned();
    let runner = controlplane::rollout::preview::PreviewRunner::new(
        store.clone(),
        store.clone(),
        Arc::new(controlplane::testing::FakeStacks::default()),
        templates,
    );
    runner
        .run(
            &id,
            tokio::time::Instant::now() + std::time::Duration::from_secs(30),
        )
        .await
        .expect("the preview runs");
    for (uri, token, expected) in [
        (format!("/rollout-previews/{id}"), &admin, 200),
        // A page token this API did not give out (the store's own form): refused.
        (format!("/rollout-previews/{id}?next=acme"), &admin, 400),
        (format!("/rollout-previews/{id}?page=2"), &admin, 400),
        ("/rollout-previews/p-none".to_owned(), &admin, 404),
        (format!("/rollout-previews/{id}"), &tenant, 403),
    ] {
        assert_eq!(
            api.call(get_preview, &uri, Some(token), None, &[]).await.0,
            expected,
            "{uri}"
        );
    }

    // A problem type's description needs no token; a name that is no problem type is 404.
    for (uri, operation) in [
        ("/problems", ("GET", "/problems")),
        ("/problems/not-found", ("GET", "/problems/{name}")),
    ] {
        assert_eq!(
            api.call(operation, uri, None, None, &[]).await.0,
            200,
            "{uri}"
        );
    }
    assert_eq!(
        api.call(
            ("GET", "/problems/{name}"),
            "/problems/no-such-problem",
            Some(&admin),
            None,
            &[]
        )
        .await
        .0,
        404
    );

    // Every operation the document declares was exercised.
    let declared: BTreeSet<(String, String)> = api.document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| ["get", "post", "patch", "delete", "put"].contains(&k.as_str()))
                .map(|method| (method.to_uppercase(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(api.exercised, declared);
}

/// Every operation of the document is routed to the API function by template.yaml (and nothing
/// else is), so a deployed API answers what the document promises.
#[test]
fn template_yaml_routes_every_operation_of_the_document() {
    let document = document();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
    // A YAML value: CloudFormation's tags (!Ref, !Sub) have no JSON form.
    let template: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(path).expect("template.yaml"))
            .expect("template.yaml parses");
    let mut documented = std::collections::BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let mut routed = std::collections::BTreeSet::new();
    let events = template["Resources"]["ApiFunction"]["Properties"]["Events"]
        .as_mapping()
        .expect("ApiFunction events");
    for event in events.values() {
        if event["Type"].as_str() == Some("HttpApi") {
            let properties = &event["Properties"];
            routed.insert((
                properties["Method"].as_str().unwrap_or_default().to_owned(),
                properties["Path"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    assert_eq!(documented, routed);
}
