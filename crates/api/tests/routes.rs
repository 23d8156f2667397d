//! The API route by route, over the in-memory table, with locally signed tokens: bodies good and
//! bad, ETags and If-Match, idempotency replays, paging, and every route across tenants.

mod support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};

use api::ApiState;
use api::auth::LocalTokens;
use controlplane::testing::{FakeTemplateValidator, InMemoryStore};
use model::spec::TenantKey;
use support::{Api, Reply, api, assert_problem};

#[tokio::test]
async fn health_needs_no_token_and_everything_else_does() {
    let api = api();
    let health = api.call("GET", "/health", None, None, &[]).await;
    assert_eq!(health.status, StatusCode::OK);
    for (method, uri) in [
        ("GET", "/tenants"),
        ("POST", "/tenants"),
        ("GET", "/tenants/acme"),
        ("PATCH", "/tenants/acme"),
        ("DELETE", "/tenants/acme"),
        ("POST", "/tenants/acme/retry"),
        ("GET", "/tenants/acme/events"),
    ] {
        let reply = api.call(method, uri, None, None, &[]).await;
        assert_problem(&reply, StatusCode::UNAUTHORIZED);
        let forged = LocalTokens::new("another-key").mint("x", None, 1).unwrap();
        let reply = api.call(method, uri, Some(&forged), None, &[]).await;
        assert_problem(&reply, StatusCode::UNAUTHORIZED);
    }
    let unknown = api
        .call("GET", "/nowhere", Some(&api.admin()), None, &[])
        .await;
    assert_problem(&unknown, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn create_is_accepted_pending_and_a_second_create_conflicts() {
    let api = api();
    let created = api.create("acme", "111111111111").await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.body);
    assert_eq!(created.body["status"], "pending");
    assert_eq!(created.body["updated_by"], "ops@example.com");
    assert_eq!(created.body["config"]["player_count"], 5);
    assert_eq!(created.headers[header::LOCATION], "/tenants/acme");
    let etag = created.etag.clone().expect("an ETag");
    // The API wrote the SPEC only; STATUS is the control plane's.
    assert!(api.store.status(&TenantKey::new("acme")).is_none());

    let again = api.create("acme", "222222222222").await;
    assert_problem(&again, StatusCode::CONFLICT);

    // Once the control plane acts, a read shows its status and outputs, under a new ETag: the
    // representation changed, though the SPEC did not.
    api.reconcile("acme").await;
    let read = api
        .call("GET", "/tenants/acme", Some(&api.admin()), None, &[])
        .await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body["status"], "ready");
    assert!(
        read.body["outputs"]
            .as_object()
            .is_some_and(|o| !o.is_empty())
    );
    assert_ne!(read.etag, Some(etag.clone()));
    let stale = api
        .call(
            "PATCH",
            "/tenants/acme",
            Some(&api.admin()),
            Some(json!({"config": {"player_count": 6}})),
            &[("if-match", &etag)],
        )
        .await;
    assert_problem(&stale, StatusCode::PRECONDITION_FAILED);
}

#[tokio::test]
async fn bad_bodies_get_problem_documents_naming_the_fields() {
    let api = api();
    let admin = api.admin();
    let post = |body: Value| {
        let admin = admin.clone();
        let api = &api;
        async move {
            api.call("POST", "/tenants", Some(&admin), Some(body), &[])
                .await
        }
    };
    // Wrong types, in one answer, with the same words the stream path records.
    let reply = post(json!({"tenant_id": "acme", "account_id": 12, "region": "mars"})).await;
    assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = reply.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert!(
        fields.contains(&"account_id") && fields.contains(&"region"),
        "{fields:?}"
    );
    // Config checked against the template.
    let reply = post(json!({"tenant_id": "acme", "account_id": "111111111111",
                            "config": {"colour": "red", "player_count": 500}}))
    .await;
    assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .contains("config.colour")
    );
    // Unknown fields, including ones only the control plane writes.
    let reply =
        post(json!({"tenant_id": "acme", "account_id": "111111111111", "status": "ready"})).await;
    assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.body["errors"][0]["field"], "status");
    // Not an object; not JSON; not declared JSON; too large.
    assert_problem(&post(json!([1, 2])).await, StatusCode::BAD_REQUEST);
    let garbled = Request::builder()
        .method("POST")
        .uri("/tenants")
        .header(header::AUTHORIZATION, format!("Bearer {admin}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"tenant_id\": "))
        .unwrap();
    assert_problem(&api.send(garbled).await, StatusCode::BAD_REQUEST);
    let form = Request::builder()
        .method("POST")
        .uri("/tenants")
        .header(header::AUTHORIZATION, format!("Bearer {admin}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("tenant_id=acme"))
        .unwrap();
    assert_problem(&api.send(form).await, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = json!({"tenant_id": "acme", "account_id": "111111111111",
                      "config": {"seed": "x".repeat(100_000)}});
    assert_problem(&post(huge).await, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(api.store.audit(&TenantKey::new("acme")).is_empty());
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_response_and_refuses_another_body() {
    let api = api();
    let admin = api.admin();
    let body = json!({"tenant_id": "acme", "account_id": "111111111111"});
    let first = api
        .call(
            "POST",
            "/tenants",
            Some(&admin),
            Some(body.clone()),
            &[("idempotency-key", "k-1")],
        )
        .await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    let replay = api
        .call(
            "POST",
            "/tenants",
            Some(&admin),
            Some(body.clone()),
            // A Structured Field string: the same key as the bare one.
            &[("idempotency-key", "\"k-1\"")],
        )
        .await;
    assert_eq!(replay.status, StatusCode::ACCEPTED, "a replay, not a 409");
    assert_eq!(replay.body, first.body);
    assert_eq!(replay.etag, first.etag);
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(replay.headers[header::LOCATION], "/tenants/acme");
    let other = api
        .call(
            "POST",
            "/tenants",
            Some(&admin),
            Some(json!({"tenant_id": "acme", "account_id": "222222222222"})),
            &[("idempotency-key", "k-1")],
        )
        .await;
    assert_problem(&other, StatusCode::UNPROCESSABLE_ENTITY);
    // Without the key, a second create is the conflict it is.
    let plain = api
        .call("POST", "/tenants", Some(&admin), Some(body), &[])
        .await;
    assert_problem(&plain, StatusCode::CONFLICT);
}

/// The key is claimed before the write: while that request runs, the same request is told to
/// retry (409, Retry-After) and another is refused (422); a claim whose request died is taken
/// over once it lapses; a write that fails gives the key back.
#[tokio::test]
async fn an_idempotency_key_is_claimed_before_the_write_and_given_back_when_it_fails() {
    use controlplane::ports::{IdempotencyRecord, SpecStore};
    let api = api();
    let admin = api.admin();
    let body = json!({"tenant_id": "acme", "account_id": "111111111111"});
    let hash = api::idempotency::request_hash("POST", "/tenants", &body);
    let running = IdempotencyRecord::claim(hash.clone(), chrono::Utc::now());
    api.store
        .claim_idempotency_key("ops@example.com", "k-running", &running)
        .await
        .unwrap();
    let same = api
        .call(
            "POST",
            "/tenants",
            Some(&admin),
            Some(body.clone()),
            &[("idempotency-key", "k-running")],
        )
        .await;
    assert_problem(&same, StatusCode::CONFLICT);
    assert_eq!(same.body["type"], "/problems/idempotency-key-in-flight");
    assert_eq!(same.headers["retry-after"], "1");
    let other = api
        .call(
            "POST",
            "/tenants",
            Some(&admin),
            Some(json!({"tenant_id": "other", "account_id": "111111111111"})),
            &[("idempotency-key", "k-running")],
        )
        .await;
    assert_problem(&other, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        api.store.spec(&TenantKey::new("acme")).is_none(),
        "nothing acted"
    );

    // A claim from a request that died a while ago.
    let died = IdempotencyRecord::claim(hash, chrono::Utc::now() - chrono::Duration::minutes(5));
    api.store
        .claim_idempotency_key("ops@example.com", "k-died", &died)
        .await
        .unwrap();
    let taken_over = api
        .call(
            "POST",
            "/tenants",
            Some(&admin),
            Some(body.clone()),
            &[("idempotency-key", "k-died")],
        )
        .await;
    assert_eq!(
        taken_over.status,
        StatusCode::ACCEPTED,
        "{}",
        taken_over.body
    );

    // A refused write leaves the key free for the corrected request.
    let refused = api
        .call(
            "POST",
            "/tenants",
            Some(&admin),
            Some(json!({"tenant_id": "beta", "account_id": "not-an-account"})),
            &[("idempotency-key", "k-fix")],
        )
        .await;
    assert_problem(&refused, StatusCode::UNPROCESSABLE_ENTITY);
    let fixed = api
        .call(
            "POST",
            "/tenants",
            Some(&admin),
            Some(json!({"tenant_id": "beta", "account_id": "111111111111"})),
            &[("idempotency-key", "k-fix")],
        )
        .await;
    assert_eq!(fixed.status, StatusCode::ACCEPTED, "{}", fixed.body);
}

#[tokio::test]
async fn patch_needs_a_current_etag_and_merges_the_change() {
    let api = api();
    let admin = api.admin();
    let etag = api.create("acme", "111111111111").await.etag.unwrap();
    let change = json!({"config": {"player_count": 8, "difficulty": null}});

    let missing = api
        .call(
            "PATCH",
            "/tenants/acme",
            Some(&admin),
            Some(change.clone()),
            &[],
        )
        .await;
    assert_problem(&missing, StatusCode::PRECONDITION_REQUIRED);
    let stale = api
        .call(
            "PATCH",
            "/tenants/acme",
            Some(&admin),
            Some(change.clone()),
            &[("if-match", "\"0000\"")],
        )
        .await;
    assert_problem(&stale, StatusCode::PRECONDITION_FAILED);

    let patched = api
        .call(
            "PATCH",
            "/tenants/acme",
            Some(&admin),
            Some(change.clone()),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(patched.status, StatusCode::ACCEPTED, "{}", patched.body);
    assert_eq!(patched.body["config"], json!({"player_count": 8}));
    let new_etag = patched.etag.unwrap();
    assert_ne!(new_etag, etag);
    // The old ETag is stale now.
    let again = api
        .call(
            "PATCH",
            "/tenants/acme",
            Some(&admin),
            Some(change),
            &[("if-match", &etag)],
        )
        .await;
    assert_problem(&again, StatusCode::PRECONDITION_FAILED);

    // Automation rewrites the row directly: the ETag changes, so an API PATCH does not clobber it.
    let direct: serde_dynamo::Item = serde_json::from_value(json!({
        "pk": {"S": "TENANT#acme"}, "sk": {"S": "SPEC"}, "tenant_id": {"S": "acme"},
        "account_id": {"S": "111111111111"}, "config": {"M": {}}, "updated_by": {"S": "terraform"}
    }))
    .unwrap();
    api.store.put_spec(&TenantKey::new("acme"), direct);
    let after_direct = api
        .call(
            "PATCH",
            "/tenants/acme",
            Some(&admin),
            Some(json!({"decommission_date": "2027-01-31"})),
            &[("if-match", &new_etag)],
        )
        .await;
    assert_problem(&after_direct, StatusCode::PRECONDITION_FAILED);

    // Validation is the same as on create.
    let current = api
        .call("GET", "/tenants/acme", Some(&admin), None, &[])
        .await
        .etag
        .unwrap();
    let bad = api
        .call(
            "PATCH",
            "/tenants/acme",
            Some(&admin),
            Some(json!({"decommission_date": "soon"})),
            &[("if-match", &current)],
        )
        .await;
    assert_problem(&bad, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.body["errors"][0]["field"], "decommission_date");
    let unknown = api
        .call(
            "PATCH",
            "/tenants/acme",
            Some(&admin),
            Some(json!({"tenant_id": "other"})),
            &[("if-match", &current)],
        )
        .await;
    assert_problem(&unknown, StatusCode::UNPROCESSABLE_ENTITY);
}

/// A retry at the largest counter still changes the SPEC (so it is retried): it starts again.
#[tokio::test]
async fn a_retry_at_the_largest_counter_still_retries() {
    let api = api();
    let admin = api.admin();
    // As a writer put it, straight into the table.
    api.store.put_spec(
        &TenantKey::new("rmax"),
        model::item_json::item_of_json(&json!({
            "pk": "TENANT#rmax", "sk": "SPEC", "tenant_id": "rmax",
            "account_id": "111111111111", "retry": 18446744073709551615u64,
        })),
    );
    let retried = api
        .call("POST", "/tenants/rmax/retry", Some(&admin), None, &[])
        .await;
    assert_eq!(retried.status, StatusCode::ACCEPTED, "{}", retried.body);
    assert_eq!(retried.body["retry"], 0);
}

/// Two removals of the same content, by two admins, are two lines of the timeline.
#[tokio::test]
async fn each_removal_is_a_line_of_its_own() {
    let api = api();
    let admin = api.admin();
    for _ in 0..2 {
        api.create("acme", "111111111111").await;
        let deleted = api
            .call("DELETE", "/tenants/acme", Some(&admin), None, &[])
            .await;
        assert_eq!(deleted.status, StatusCode::ACCEPTED, "{}", deleted.body);
    }
    api.create("acme", "111111111111").await;
    let events = api
        .call("GET", "/tenants/acme/events", Some(&admin), None, &[])
        .await;
    let removals: Vec<&Value> = events.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "spec-removed")
        .collect();
    assert_eq!(removals.len(), 2, "{removals:?}");
    assert_ne!(removals[0]["id"], removals[1]["id"]);
}

#[tokio::test]
async fn retry_bumps_the_counter_and_delete_records_who_removed_it() {
    let api = api();
    let admin = api.admin();
    api.create("acme", "111111111111").await;
    for expected in [1, 2] {
        let retried = api
            .call("POST", "/tenants/acme/retry", Some(&admin), None, &[])
            .await;
        assert_eq!(retried.status, StatusCode::ACCEPTED);
        assert_eq!(retried.body["retry"], expected);
    }
    api.reconcile("acme").await;

    let deleted = api
        .call("DELETE", "/tenants/acme", Some(&admin), None, &[])
        .await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED, "{}", deleted.body);
    assert_eq!(deleted.body["status"], "pending");
    api.reconcile("acme").await;
    let read = api
        .call("GET", "/tenants/acme", Some(&admin), None, &[])
        .await;
    assert_eq!(read.body["status"], "deleted");
    assert_eq!(read.etag, None);
    let events = api
        .call("GET", "/tenants/acme/events", Some(&admin), None, &[])
        .await;
    let items = events.body["items"].as_array().unwrap();
    let removal = items
        .iter()
        .find(|e| e["action"] == "spec-removed")
        .expect("the removal is on the timeline");
    assert_eq!(removal["actor"], "ops@example.com");
    assert!(
        items
            .iter()
            .any(|e| e["action"] == "delete" && e["result"] == "deleted")
    );
    // Gone: deleting again is a 404.
    let again = api
        .call("DELETE", "/tenants/acme", Some(&admin), None, &[])
        .await;
    assert_problem(&again, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn listing_pages_through_more_tenants_than_one_page_and_filters_by_status() {
    let api = api();
    let admin = api.admin();
    let mut expected = Vec::new();
    for n in 0..7 {
        let tenant = format!("tenant-{n}");
        api.create(&tenant, "111111111111").await;
        expected.push(tenant);
    }
    for tenant in &expected[..3] {
        api.reconcile(tenant).await;
    }
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    let mut pages = 0;
    loop {
        let uri = match &next {
            Some(token) => format!("/tenants?limit=3&next={token}"),
            None => "/tenants?limit=3".into(),
        };
        let page = api.call("GET", &uri, Some(&admin), None, &[]).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        pages += 1;
        seen.extend(
            page.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["tenant_id"].as_str().unwrap().to_owned()),
        );
        match page.body["next"].as_str() {
            Some(token) => next = Some(token.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, expected);

    let ready = api
        .call(
            "GET",
            "/tenants?status=ready&limit=2",
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert_eq!(ready.body["items"].as_array().unwrap().len(), 2);
    assert!(ready.body["next"].is_string());
    let rest = api
        .call(
            "GET",
            &format!(
                "/tenants?status=ready&limit=2&next={}",
                ready.body["next"].as_str().unwrap()
            ),
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert_eq!(rest.body["items"].as_array().unwrap().len(), 1);

    // Bad queries: contract.rs (`limits_and_filters_are_validated_alike_with_a_query_problem`).
}

#[tokio::test]
async fn a_tenant_reaches_only_itself_and_never_sets_its_account() {
    let api = api();
    api.create("acme", "111111111111").await;
    let globex_etag = api.create("globex", "222222222222").await.etag.unwrap();
    let acme = api.tenant("acme");

    // Its own tenant: read, change its config, retry, see its events. (Its ETag is its own:
    // the representation it is served names no admin.)
    let own = api
        .call("GET", "/tenants/acme", Some(&acme), None, &[])
        .await;
    assert_eq!(own.status, StatusCode::OK);
    assert_eq!(own.body["updated_by"], "operator");
    let acme_etag = own.etag.clone().unwrap();
    let patched = api
        .call(
            "PATCH",
            "/tenants/acme",
            Some(&acme),
            Some(json!({"config": {"player_count": 9}})),
            &[("if-match", &acme_etag)],
        )
        .await;
    assert_eq!(patched.status, StatusCode::ACCEPTED, "{}", patched.body);
    assert_eq!(patched.body["updated_by"], "user@acme");
    let acme_etag = patched.etag.unwrap();
    let moved = api
        .call(
            "PATCH",
            "/tenants/acme",
            Some(&acme),
            Some(json!({"account_id": "333333333333"})),
            &[("if-match", &acme_etag)],
        )
        .await;
    assert_problem(&moved, StatusCode::FORBIDDEN);
    let create_self = api
        .call(
            "POST",
            "/tenants",
            Some(&acme),
            Some(json!({"tenant_id": "acme", "account_id": "111111111111"})),
            &[],
        )
        .await;
    assert_problem(&create_self, StatusCode::FORBIDDEN);

    // The listing shows only itself.
    let list = api.call("GET", "/tenants", Some(&acme), None, &[]).await;
    let ids: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["tenant_id"].as_str())
        .collect();
    assert_eq!(ids, vec!["acme"]);

    // Every route on another tenant: 404, as for a tenant that does not exist, and nothing changes.
    let body = json!({"config": {"player_count": 1}});
    for (method, uri, body, headers) in [
        ("GET", "/tenants/globex", None, vec![]),
        (
            "PATCH",
            "/tenants/globex",
            Some(body.clone()),
            vec![("if-match", globex_etag.as_str())],
        ),
        ("DELETE", "/tenants/globex", None, vec![]),
        ("POST", "/tenants/globex/retry", None, vec![]),
        ("GET", "/tenants/globex/events", None, vec![]),
    ] {
        let reply = api.call(method, uri, Some(&acme), body, &headers).await;
        assert_problem(&reply, StatusCode::NOT_FOUND);
        assert!(
            !reply.body.to_string().contains("222222222222"),
            "{method} {uri} leaked"
        );
    }
    // Creating is for admins: 403 whatever the body names, before the body is read.
    let create_other = api
        .call(
            "POST",
            "/tenants",
            Some(&acme),
            Some(json!({"tenant_id": "globex", "account_id": "111111111111"})),
            &[],
        )
        .await;
    assert_problem(&create_other, StatusCode::FORBIDDEN);
    assert!(!create_other.body.to_string().contains("222222222222"));
    let globex = api
        .call("GET", "/tenants/globex", Some(&api.admin()), None, &[])
        .await;
    assert_eq!(globex.etag.as_deref(), Some(globex_etag.as_str()));
}

fn error_fields(reply: &Reply) -> Vec<String> {
    reply.body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["field"].as_str().map(str::to_owned))
        .collect()
}

/// A request that would make an item DynamoDB refuses gets a 422 naming the field, and nothing
/// is stored (moto would have stored it, and broken every later read of it).
#[tokio::test]
async fn requests_whose_item_dynamodb_would_refuse_get_422_naming_the_field() {
    let api = api();
    let admin = api.admin();

    // The probe's case: an empty key in a rollout's selection.config.
    let reply = api
        .call(
            "POST",
            "/rollouts",
            Some(&admin),
            Some(json!({"target_version": "v1", "selection": {"config": {"": "hard"}}})),
            &[],
        )
        .await;
    assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.body["type"], "/problems/invalid-rollout");
    assert_eq!(error_fields(&reply), ["selection.config.\"\""]);
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("DynamoDB refuses an empty map key"),
        "{}",
        reply.body
    );
    // The contract tester's case: the same in a rollout preview (it was a 503).
    let previewing = support::api_with(|state| {
        state.preview_queue = Some(Arc::new(
            controlplane::testing::RecordingPreviewQueue::default(),
        ));
    });
    let preview = previewing
        .call(
            "POST",
            "/rollout-previews",
            Some(&previewing.admin()),
            Some(json!({"target_version": "v1", "selection": {"config": {"": ""}}})),
            &[],
        )
        .await;
    assert_problem(&preview, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(preview.body["type"], "/problems/invalid-rollout");
    assert_eq!(error_fields(&preview), ["selection.config.\"\""]);

    // Nothing was stored: the rollout routes answer as before.
    let listed = api.call("GET", "/rollouts", Some(&admin), None, &[]).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(listed.body["items"], json!([]));

    // A tenant's config: an empty key; a number beyond DynamoDB's range.
    for (config, field) in [
        (json!({"": "x"}), "config.\"\""),
        (json!({"player_count": 1e200}), "config.player_count"),
        (json!({"player_count": -1e-200}), "config.player_count"),
    ] {
        let reply = api
            .call(
                "POST",
                "/tenants",
                Some(&admin),
                Some(json!({"tenant_id": "acme", "account_id": "111111111111", "config": config})),
                &[],
            )
            .await;
        assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(reply.body["type"], "/problems/invalid-tenant");
        assert_eq!(error_fields(&reply), [field], "{config}");
    }
    assert!(api.store.spec(&TenantKey::new("acme")).is_none());

    // A PATCH too.
    let created = api.create("acme", "111111111111").await;
    let etag = created.etag.clone().unwrap_or_default();
    let reply = api
        .call(
            "PATCH",
            "/tenants/acme",
            Some(&admin),
            Some(json!({"config": {"": "x"}})),
            &[("if-match", &etag)],
        )
        .await;
    assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_fields(&reply), ["config.\"\""]);
}

/// `tenantctl --direct` runs the same operations without the HTTP body limit: an item over
/// DynamoDB's 400 KB is refused naming its largest field.
#[tokio::test]
async fn a_direct_write_over_400_kb_is_refused_naming_the_field() {
    let store = Arc::new(InMemoryStore::default());
    let state = ApiState::on_table(
        store.clone(),
        Arc::new(FakeTemplateValidator::default()),
        Arc::new(controlplane::testing::FakeTemplateObjects::default()),
        "us-east-1",
    )
    .expect("the shipped template");
    let caller = api::auth::Caller {
        subject: "terraform".into(),
        role: api::auth::Role::Admin,
    };
    let body = json!({"tenant_id": "acme", "account_id": "111111111111",
                      "config": {"seed": "x".repeat(410 * 1024)}});
    let problem = state
        .create_tenant(&caller, &body, &Default::default())
        .await
        .expect_err("over 400 KB");
    assert_eq!(problem.status, 422);
    let fields: Vec<&str> = problem.errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["config.seed"]);
    assert!(
        problem.detail.contains("over its 400 KB limit"),
        "{}",
        problem.detail
    );
    assert!(store.spec(&TenantKey::new("acme")).is_none());
}

/// Reconciles `tenant`, then reads it as an admin: `failed`, its reason containing `part`.
async fn reconciled_failed_with(api: &Api, tenant: &str, part: &str) -> Reply {
    api.reconcile(tenant).await;
    let read = api
        .call(
            "GET",
            &format!("/tenants/{tenant}"),
            Some(&api.admin()),
            None,
            &[],
        )
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.body["status"], "failed", "{}", read.body);
    assert!(
        read.body["reason"]
            .as_str()
            .unwrap_or_default()
            .contains(part),
        "{}",
        read.body
    );
    read
}

/// A SPEC real DynamoDB could never have stored (written straight to the emulator) is readable,
/// refused where the API would write it back unchanged, and can be repaired or removed.
#[tokio::test]
async fn a_stored_spec_dynamodb_would_refuse_is_named_and_can_be_repaired() {
    let api = api();
    let admin = api.admin();
    let created = api.create("acme", "111111111111").await;
    assert_eq!(created.status, StatusCode::ACCEPTED);
    let key = TenantKey::new("acme");
    let mut stored = api.store.spec(&key).expect("stored");
    if let Some(serde_dynamo::AttributeValue::M(config)) = stored.get_mut("config") {
        config.insert(
            "player_count".into(),
            serde_dynamo::AttributeValue::N("1".repeat(39)),
        );
    }
    api.store.put_spec(&key, stored);
    let read = reconciled_failed_with(
        &api,
        "acme",
        "config.player_count: \"111111111111111111111111111111111111111\" has 39 significant digits",
    )
    .await;
    let retry = api
        .call("POST", "/tenants/acme/retry", Some(&admin), None, &[])
        .await;
    assert_problem(&retry, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_fields(&retry), ["config.player_count"]);

    let etag = read.etag.clone().unwrap_or_default();
    let fixed = api
        .call(
            "PATCH",
            "/tenants/acme",
            Some(&admin),
            Some(json!({"config": {"player_count": 6}})),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(fixed.status, StatusCode::ACCEPTED, "{}", fixed.body);
    api.reconcile("acme").await;
    let read = api
        .call("GET", "/tenants/acme", Some(&admin), None, &[])
        .await;
    assert_eq!(read.body["status"], "ready", "{}", read.body);
}

/// A SPEC written around the API with an id the API refuses (`t1`: too short) is still a
/// tenant: it is read, listed and removed by that id.
#[tokio::test]
async fn a_tenant_recorded_under_an_invalid_id_is_read_listed_and_removed() {
    let api = api();
    let admin = api.admin();
    api.store.put_spec(
        &TenantKey::new("t1"),
        model::item_json::item_of_json(&json!({
            "pk": "TENANT#t1", "sk": "SPEC", "tenant_id": "t1", "account_id": "111111111111",
        })),
    );
    reconciled_failed_with(&api, "t1", "tenant_id: must be 3-40").await;
    let listed = api.call("GET", "/tenants", Some(&admin), None, &[]).await;
    assert!(
        listed.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["tenant_id"] == "t1" && t["status"] == "failed"),
        "{}",
        listed.body
    );

    let deleted = api
        .call("DELETE", "/tenants/t1", Some(&admin), None, &[])
        .await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED, "{}", deleted.body);
    api.reconcile("t1").await;
    let read = api
        .call("GET", "/tenants/t1", Some(&admin), None, &[])
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.body["status"], "deleted");
    // An id no row could have is still no tenant.
    let nothing = api
        .call("GET", "/tenants/t2", Some(&admin), None, &[])
        .await;
    assert_problem(&nothing, StatusCode::NOT_FOUND);
}

/// A body with several faults, unknown fields among them, is answered with every one of them.
#[tokio::test]
async fn a_body_with_several_faults_names_every_one() {
    let api = api();
    let admin = api.admin();
    let created = api
        .call(
            "POST",
            "/tenants",
            Some(&admin),
            Some(
                json!({"tenant_id": "t1", "account_id": "12", "region": "mars",
                        "status": "ready", "owner": "me"}),
            ),
            &[],
        )
        .await;
    assert_problem(&created, StatusCode::UNPROCESSABLE_ENTITY);
    let mut fields = error_fields(&created);
    fields.sort();
    assert_eq!(
        fields,
        ["account_id", "owner", "region", "status", "tenant_id"],
        "{}",
        created.body
    );

    api.create("acme", "111111111111").await;
    let read = api
        .call("GET", "/tenants/acme", Some(&admin), None, &[])
        .await;
    let etag = read.etag.clone().unwrap_or_default();
    let patched = api
        .call(
            "PATCH",
            "/tenants/acme",
            Some(&admin),
            Some(json!({"region": "mars", "tenant_id": "other", "decommission_date": "soon"})),
            &[("if-match", &etag)],
        )
        .await;
    assert_problem(&patched, StatusCode::UNPROCESSABLE_ENTITY);
    let mut fields = error_fields(&patched);
    fields.sort();
    assert_eq!(
        fields,
        ["decommission_date", "region", "tenant_id"],
        "{}",
        patched.body
    );
}

/// The listing shows every tenant the control plane recorded, whatever its SPEC: one without a
/// `tenant_id` (which the SPEC index leaves out) and one whose SPEC is gone, page by page.
#[tokio::test]
async fn the_listing_shows_every_tenant_with_a_status_whatever_its_spec() {
    let api = api();
    let admin = api.admin();
    api.create("acme", "111111111111").await;
    api.store.put_spec(
        &TenantKey::new("noid"),
        model::item_json::item_of_json(&json!({
            "pk": "TENANT#noid", "sk": "SPEC", "account_id": "111111111111",
        })),
    );
    api.reconcile("noid").await;
    api.create("gone", "111111111111").await;
    api.reconcile("gone").await;
    let deleted = api
        .call("DELETE", "/tenants/gone", Some(&admin), None, &[])
        .await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED, "{}", deleted.body);
    api.reconcile("gone").await;

    let mut seen = Vec::new();
    let mut uri = "/tenants?limit=1".to_owned();
    for _ in 0..10 {
        let page = api.call("GET", &uri, Some(&admin), None, &[]).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        for tenant in page.body["items"].as_array().unwrap() {
            seen.push(format!("{} {}", tenant["tenant_id"], tenant["status"]));
        }
        match page.body["next"].as_str() {
            Some(next) => uri = format!("/tenants?limit=1&next={next}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [
            "\"acme\" \"pending\"",
            "\"gone\" \"deleted\"",
            "\"noid\" \"failed\""
        ]
    );
    // One page holds them all too.
    let all = api.call("GET", "/tenants", Some(&admin), None, &[]).await;
    assert_eq!(
        all.body["items"].as_array().map(Vec::len),
        Some(3),
        "{}",
        all.body
    );
}

/// The drift policy is part of the SPEC (create and PATCH, validated like the rest), and the
/// drift job's last check shows on the tenant.
#[tokio::test]
async fn a_tenant_shows_its_drift_and_its_drift_policy_can_be_set_and_cleared() {
    use controlplane::ports::TenantStore;
    let api = api();
    let admin = api.admin();
    let created = api
        .call(
            "POST",
            "/tenants",
            Some(&admin),
            Some(json!({"tenant_id": "acme", "account_id": "111111111111", "drift_policy": "revert"})),
            &[],
        )
        .await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.body);
    assert_eq!(created.body["drift_policy"], "revert");
    let bad = api
        .call(
            "POST",
            "/tenants",
            Some(&admin),
            Some(
                json!({"tenant_id": "other", "account_id": "111111111111", "drift_policy": "fix"}),
            ),
            &[],
        )
        .await;
    assert_problem(&bad, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_fields(&bad), ["drift_policy"]);

    api.reconcile("acme").await;
    let key = TenantKey::new("acme");
    let mut status = api.store.status(&key).expect("a STATUS");
    assert!(status.drift.is_none());
    status.drift = Some(model::drift::DriftRecord::of(
        model::drift::Detection::Drifted {
            resources: vec![model::drift::ResourceDrift {
                logical_id: "Queue".into(),
                resource_type: "AWS::SQS::Queue".into(),
                physical_id: None,
                status: "MODIFIED".into(),
                differences: vec![model::drift::PropertyDifference {
                    path: "/VisibilityTimeout".into(),
                    kind: "NOT_EQUAL".into(),
                    expected: "30".into(),
                    actual: "600".into(),
                }],
            }],
            reason: None,
        },
        chrono::Utc::now(),
    ));
    let version = status.version;
    status.version += 1;
    api.store
        .put_status(&key, &status, Some(version))
        .await
        .expect("written");
    let read = api
        .call("GET", "/tenants/acme", Some(&admin), None, &[])
        .await;
    assert_eq!(read.body["drift"]["status"], "drifted", "{}", read.body);
    assert_eq!(
        read.body["drift"]["resources"][0]["differences"][0]["actual"],
        "600"
    );
    let listed = api.call("GET", "/tenants", Some(&admin), None, &[]).await;
    assert_eq!(listed.body["items"][0]["drift"]["status"], "drifted");

    let cleared = api
        .call(
            "PATCH",
            "/tenants/acme",
            Some(&admin),
            Some(json!({"drift_policy": null})),
            &[("if-match", read.etag.as_deref().unwrap())],
        )
        .await;
    assert_eq!(cleared.status, StatusCode::ACCEPTED, "{}", cleared.body);
    assert!(
        cleared.body.get("drift_policy").is_none(),
        "{}",
        cleared.body
    );
}
