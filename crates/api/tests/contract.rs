//! The HTTP contract, finding by finding of the contract tester (issue 17): page tokens,
//! duplicate keys, who may delete, what tenants see of operators, tokens and the Bearer
//! scheme, conditional requests, query validation, 405 and 415, authorisation before the body,
//! idempotency keys, republishing, and CloudFormation's limits on config.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use controlplane::ports::StoreError;
use model::spec::TenantKey;
use model::status::Status;
use support::{Api, Reply, api, api_with, assert_problem};

fn raw(method: &str, uri: &str, token: &str, content_type: &str, body: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body.to_owned()))
        .unwrap()
}

async fn events_page(api: &Api, tenant: &str, token: &str, query: &str) -> Reply {
    api.call(
        "GET",
        &format!("/tenants/{tenant}/events?{query}"),
        Some(token),
        None,
        &[],
    )
    .await
}

#[tokio::test]
async fn page_tokens_are_signed_and_bound_to_their_listing() {
    let api = api();
    let admin = api.admin();
    for tenant in ["acme", "globex", "initech"] {
        api.create(tenant, "111111111111").await;
        api.reconcile(tenant).await;
    }
    let first = api
        .call("GET", "/tenants?limit=1", Some(&admin), None, &[])
        .await;
    let tenants_next = first.body["next"].as_str().unwrap().to_owned();
    let ready = api
        .call(
            "GET",
            "/tenants?limit=1&status=ready",
            Some(&admin),
            None,
            &[],
        )
        .await;
    let ready_next = ready.body["next"].as_str().unwrap().to_owned();
    let events = events_page(&api, "acme", &admin, "limit=1").await;
    let events_next = events.body["next"].as_str().unwrap().to_owned();
    // Each works where it was given out.
    let second = api
        .call(
            "GET",
            &format!("/tenants?limit=1&next={tenants_next}"),
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_eq!(second.body["items"][0]["tenant_id"], "globex");
    assert_eq!(
        events_page(&api, "acme", &admin, &format!("limit=1&next={events_next}"))
            .await
            .status,
        StatusCode::OK
    );

    // Forged, edited, or used in another listing: 400 bad-request, with nothing of the store's.
    let mut edited = URL_SAFE_NO_PAD.decode(&tenants_next).unwrap();
    let last = edited.len() - 3;
    edited[last] ^= 0x20;
    let forged = URL_SAFE_NO_PAD.encode(br#"{"page":"{\"pk\":\"TENANT#zzz\"}"}"#);
    for uri in [
        format!("/tenants?next={forged}"),
        format!("/tenants?next={}", URL_SAFE_NO_PAD.encode(edited)),
        format!("/tenants?next={events_next}"),
        format!("/tenants?next={ready_next}"),
        format!("/tenants?status=failed&next={ready_next}"),
        format!("/tenants?status=ready&next={tenants_next}"),
        format!("/tenants/globex/events?next={events_next}"),
        format!("/tenants/acme/events?next={tenants_next}"),
    ] {
        let reply = api.call("GET", &uri, Some(&admin), None, &[]).await;
        assert_problem(&reply, StatusCode::BAD_REQUEST);
        assert_eq!(reply.body["type"], "/problems/bad-request", "{uri}");
        assert!(reply.headers.get(header::RETRY_AFTER).is_none(), "{uri}");
        let text = reply.body.to_string();
        assert!(
            !text.contains("TENANT#") && !text.contains("pk"),
            "{uri}: {text}"
        );
    }
}

#[tokio::test]
async fn a_store_failure_answers_with_a_request_id_and_never_the_backends_words() {
    let api = api();
    api.create("acme", "111111111111").await;
    api.store.fail_next_loads([StoreError::Unavailable(
        "HTTP 500 <html><body>Internal Server Error</body></html> x-amzn-requestid: ABC".into(),
    )]);
    let reply = api
        .call("GET", "/tenants/acme", Some(&api.admin()), None, &[])
        .await;
    assert_problem(&reply, StatusCode::SERVICE_UNAVAILABLE);
    let text = reply.body.to_string();
    assert!(!text.contains("html") && !text.contains("x-amzn"), "{text}");
    let id = reply.body["request_id"].as_str().expect("a request id");
    assert_eq!(reply.headers["x-request-id"], id);
    assert_eq!(reply.headers[header::RETRY_AFTER], "1");
}

#[tokio::test]
async fn a_body_naming_a_key_twice_is_refused() {
    let api = api();
    let admin = api.admin();
    let body =
        r#"{"tenant_id":"acme","account_id":"111111111111","config":{},"tenant_id":"globex"}"#;
    let reply = api
        .send(raw("POST", "/tenants", &admin, "application/json", body))
        .await;
    assert_problem(&reply, StatusCode::BAD_REQUEST);
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .contains("\"tenant_id\" appears more than once")
    );
    assert!(api.store.spec(&TenantKey::new("globex")).is_none());
    assert!(api.store.spec(&TenantKey::new("acme")).is_none());
    let created = api.create("acme", "111111111111").await;
    let etag = created.etag.unwrap();
    let mut patch = raw(
        "PATCH",
        "/tenants/acme",
        &admin,
        "application/merge-patch+json",
        r#"{"config":{"player_count":1,"player_count":2}}"#,
    );
    patch
        .headers_mut()
        .insert(header::IF_MATCH, etag.parse().unwrap());
    assert_problem(&api.send(patch).await, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_tenant_deletes_itself_only_where_the_deployment_allows_it() {
    let api = api();
    api.create("acme", "111111111111").await;
    let refused = api
        .call(
            "DELETE",
            "/tenants/acme",
            Some(&api.tenant("acme")),
            None,
            &[],
        )
        .await;
    assert_problem(&refused, StatusCode::FORBIDDEN);
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("TenantSelfServiceDelete")
    );
    assert!(api.store.spec(&TenantKey::new("acme")).is_some());
    // Another tenant's: still 404, never a hint it exists.
    assert_problem(
        &api.call(
            "DELETE",
            "/tenants/acme",
            Some(&api.tenant("globex")),
            None,
            &[],
        )
        .await,
        StatusCode::NOT_FOUND,
    );

    let allowing = api_with(|state| state.tenant_self_delete = true);
    allowing.create("acme", "111111111111").await;
    let deleted = allowing
        .call(
            "DELETE",
            "/tenants/acme",
            Some(&allowing.tenant("acme")),
            None,
            &[],
        )
        .await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED, "{}", deleted.body);
    assert!(allowing.store.spec(&TenantKey::new("acme")).is_none());
}

#[tokio::test]
async fn tenants_see_operator_for_admins_and_their_own_identity() {
    let api = api();
    api.create("acme", "111111111111").await;
    api.reconcile("acme").await;
    let acme = api.tenant("acme");
    let admin_sub = "ops@example.com";
    let read = api
        .call("GET", "/tenants/acme", Some(&acme), None, &[])
        .await;
    assert_eq!(read.body["updated_by"], "operator");
    let events = events_page(&api, "acme", &acme, "").await;
    let text = events.body.to_string();
    assert!(!text.contains(admin_sub), "{text}");
    let actors: Vec<&str> = events.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| [e["actor"].as_str(), e["requested_by"].as_str()])
        .flatten()
        .collect();
    assert!(actors.contains(&"operator"), "{actors:?}");
    assert!(actors.contains(&"system"), "{actors:?}");
    // Admins see who it was.
    let as_admin = events_page(&api, "acme", &api.admin(), "").await;
    assert!(as_admin.body.to_string().contains(admin_sub));

    // The tenant's own change is shown as its own.
    let patched = api
        .call(
            "PATCH",
            "/tenants/acme",
            Some(&acme),
            Some(json!({"config": {"player_count": 7}})),
            &[("if-match", read.etag.as_deref().unwrap())],
        )
        .await;
    assert_eq!(patched.status, StatusCode::ACCEPTED, "{}", patched.body);
    assert_eq!(patched.body["updated_by"], "user@acme");
}

#[tokio::test]
async fn a_401_names_the_bearer_scheme_and_the_scheme_is_case_insensitive() {
    let api = api();
    let reply = api.call("GET", "/tenants", None, None, &[]).await;
    assert_problem(&reply, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.headers[header::WWW_AUTHENTICATE], "Bearer");
    // Every answer names its request, this one too.
    assert!(reply.headers.contains_key("x-request-id"));
    for scheme in ["bearer", "BEARER"] {
        let request = Request::builder()
            .uri("/tenants")
            .header(header::AUTHORIZATION, format!("{scheme} {}", api.admin()))
            .body(Body::empty())
            .unwrap();
        assert_eq!(api.send(request).await.status, StatusCode::OK, "{scheme}");
    }
}

#[tokio::test]
async fn conditional_requests_take_star_lists_and_if_none_match() {
    let api = api();
    let admin = api.admin();
    api.create("acme", "111111111111").await;
    let read = api
        .call("GET", "/tenants/acme", Some(&admin), None, &[])
        .await;
    let etag = read.etag.clone().unwrap();

    // If-None-Match on GET: 304 with the ETag and no body while it is current.
    let unchanged = api
        .call(
            "GET",
            "/tenants/acme",
            Some(&admin),
            None,
            &[("if-none-match", &format!("\"x\", W/{etag}"))],
        )
        .await;
    assert_eq!(unchanged.status, StatusCode::NOT_MODIFIED);
    assert_eq!(unchanged.etag.as_deref(), Some(etag.as_str()));
    assert_eq!(unchanged.body, Value::Null);

    // The ETag changes with what the control plane records, not only with the SPEC.
    api.reconcile("acme").await;
    let after = api
        .call(
            "GET",
            "/tenants/acme",
            Some(&admin),
            None,
            &[("if-none-match", &etag)],
        )
        .await;
    assert_eq!(after.status, StatusCode::OK);
    assert_eq!(after.body["status"], "ready");
    let etag = after.etag.unwrap();

    // If-Match: a list naming the current ETag passes, `*` passes, a stale one is refused.
    let patch = |if_match: String| {
        let api = &api;
        let admin = admin.clone();
        async move {
            api.call(
                "PATCH",
                "/tenants/acme",
                Some(&admin),
                Some(json!({"config": {"player_count": 8}})),
                &[("if-match", &if_match)],
            )
            .await
        }
    };
    let listed = patch(format!("\"stale\", {etag}")).await;
    assert_eq!(listed.status, StatusCode::ACCEPTED, "{}", listed.body);
    let star = patch("*".into()).await;
    assert_eq!(star.status, StatusCode::ACCEPTED, "{}", star.body);
    assert_problem(&patch(etag.clone()).await, StatusCode::PRECONDITION_FAILED);
    assert_problem(
        &patch(format!("W/{}", star.etag.clone().unwrap())).await,
        StatusCode::PRECONDITION_FAILED,
    );

    // POST /retry honours If-Match.
    let retry = |if_match: String| {
        let api = &api;
        let admin = admin.clone();
        async move {
            api.call(
                "POST",
                "/tenants/acme/retry",
                Some(&admin),
                None,
                &[("if-match", &if_match)],
            )
            .await
        }
    };
    assert_problem(&retry(etag).await, StatusCode::PRECONDITION_FAILED);
    let retried = retry(star.etag.clone().unwrap()).await;
    assert_eq!(retried.status, StatusCode::ACCEPTED, "{}", retried.body);
    assert_eq!(retried.body["retry"], 1);
}

#[tokio::test]
async fn limits_and_filters_are_validated_alike_with_a_query_problem() {
    let api = api();
    let admin = api.admin();
    api.create("acme", "111111111111").await;
    for uri in [
        "/tenants?limit=0",
        "/tenants?limit=101",
        "/tenants?status=sleeping",
        "/tenants/acme/events?limit=0",
        "/tenants/acme/events?limit=100000",
        // The contract tester's: any integer out of range is the same 422.
        "/tenants?limit=-1",
        "/tenants?limit=99999999999999999999999",
        "/tenants/acme/events?limit=-1",
    ] {
        let reply = api.call("GET", uri, Some(&admin), None, &[]).await;
        assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(reply.body["type"], "/problems/invalid-query", "{uri}");
        assert_eq!(reply.body["title"], "The query is not valid", "{uri}");
    }
    for uri in [
        "/tenants?limit=x",
        "/tenants?next=garbage",
        "/tenants?colour=red",
        "/tenants/acme/events?page=2",
    ] {
        assert_problem(
            &api.call("GET", uri, Some(&admin), None, &[]).await,
            StatusCode::BAD_REQUEST,
        );
    }
}

#[tokio::test]
async fn every_problem_type_resolves_to_its_description() {
    let api = api();
    let problem = api
        .call("GET", "/tenants/nobody", Some(&api.admin()), None, &[])
        .await;
    let kind = problem.body["type"].as_str().unwrap();
    // No token needed: the type URI is documentation.
    let described = api.call("GET", kind, None, None, &[]).await;
    assert_eq!(described.status, StatusCode::OK, "{}", described.body);
    assert_eq!(described.body["type"], kind);
    assert_eq!(described.body["title"], problem.body["title"]);
    assert!(described.body["description"].as_str().unwrap().len() > 20);
    let all = api.call("GET", "/problems", None, None, &[]).await;
    assert!(all.body["items"].as_array().unwrap().len() >= 20);
    assert_problem(
        &api.call("GET", "/problems/no-such-kind", None, None, &[])
            .await,
        StatusCode::NOT_FOUND,
    );
}

#[tokio::test]
async fn a_method_a_path_lacks_gets_a_problem_with_allow() {
    let api = api();
    let reply = api
        .call("PUT", "/tenants/acme", Some(&api.admin()), None, &[])
        .await;
    assert_problem(&reply, StatusCode::METHOD_NOT_ALLOWED);
    let allow = reply.headers[header::ALLOW].to_str().unwrap().to_owned();
    for method in ["GET", "PATCH", "DELETE"] {
        assert!(allow.contains(method), "{allow}");
    }
    assert!(reply.body["detail"].as_str().unwrap().contains("PUT"));
}

#[tokio::test]
async fn media_types_are_matched_without_case_and_a_415_says_what_is_taken() {
    let api = api();
    let admin = api.admin();
    let body = json!({"tenant_id": "acme", "account_id": "111111111111", "config": {}}).to_string();
    let upper = api
        .send(raw(
            "POST",
            "/tenants",
            &admin,
            "Application/JSON; charset=UTF-8",
            &body,
        ))
        .await;
    assert_eq!(upper.status, StatusCode::ACCEPTED, "{}", upper.body);

    // POST takes application/json only (merge-patch is PATCH's).
    let merge = api
        .send(raw(
            "POST",
            "/tenants",
            &admin,
            "application/merge-patch+json",
            &body,
        ))
        .await;
    assert_problem(&merge, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(merge.headers["accept-post"], "application/json");
    assert!(
        merge.body["detail"]
            .as_str()
            .unwrap()
            .contains("application/json")
    );

    let patch = api
        .send(raw("PATCH", "/tenants/acme", &admin, "text/plain", "{}"))
        .await;
    assert_problem(&patch, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        patch.headers["accept-patch"],
        "application/merge-patch+json, application/json"
    );
}

#[tokio::test]
async fn a_tenant_token_on_an_admin_route_gets_403_before_the_body_is_read() {
    let api = api();
    let acme = api.tenant("acme");
    let huge = "x".repeat(api::body::MAX_TEMPLATE_BODY_BYTES + 10);
    for uri in [
        "/tenants",
        "/template-versions",
        "/rollouts",
        "/rollout-previews",
    ] {
        for (content_type, body) in [
            ("application/json", huge.as_str()),
            ("text/plain", "{}"),
            ("application/json", "not json"),
        ] {
            let reply = api.send(raw("POST", uri, &acme, content_type, body)).await;
            assert_problem(&reply, StatusCode::FORBIDDEN);
        }
    }
    for uri in ["/rollouts/r-1/pause", "/rollouts/r-1/cancel"] {
        let reply = api.send(raw("POST", uri, &acme, "text/plain", "")).await;
        assert_problem(&reply, StatusCode::FORBIDDEN);
    }
}

/// Every POST that makes something takes a key (the tenant's case is in routes.rs): a template
/// version and a rollout are made once for two sends, and the replay says where they are.
#[tokio::test]
async fn every_creating_post_takes_an_idempotency_key() {
    let api = api();
    let admin = api.admin();
    api.create("acme", "111111111111").await;
    api.reconcile("acme").await;
    let publish = json!({"version": "v2", "body": controlplane::template_source::SAMPLE_TEMPLATE});
    let published = api
        .call(
            "POST",
            "/template-versions",
            Some(&admin),
            Some(publish.clone()),
            &[("idempotency-key", "publish-v2")],
        )
        .await;
    assert_eq!(published.status, StatusCode::CREATED, "{}", published.body);
    let republished = api
        .call(
            "POST",
            "/template-versions",
            Some(&admin),
            Some(publish),
            &[("idempotency-key", "publish-v2")],
        )
        .await;
    assert_eq!(republished.status, StatusCode::CREATED);
    assert_eq!(republished.headers["idempotent-replayed"], "true");
    assert_eq!(
        republished.headers[header::LOCATION],
        "/template-versions/v2"
    );
    let rollout = json!({"target_version": "v2"});
    let started = api
        .call(
            "POST",
            "/rollouts",
            Some(&admin),
            Some(rollout.clone()),
            &[("idempotency-key", "roll-v2")],
        )
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    let again = api
        .call(
            "POST",
            "/rollouts",
            Some(&admin),
            Some(rollout),
            &[("idempotency-key", "\"roll-v2\"")],
        )
        .await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.body);
    assert_eq!(again.body["id"], started.body["id"]);
    assert_eq!(
        again.headers[header::LOCATION],
        started.headers[header::LOCATION]
    );
    let listed = api.call("GET", "/rollouts", Some(&admin), None, &[]).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);

    // One key per request: two header lines are refused, not read as the first.
    let mut twice = support::request(
        "POST",
        "/tenants",
        Some(&admin),
        Some(json!({"tenant_id": "globex", "account_id": "111111111111", "config": {}})),
        &[("idempotency-key", "a1")],
    );
    twice
        .headers_mut()
        .append("idempotency-key", "a2".parse().unwrap());
    assert_problem(&api.send(twice).await, StatusCode::BAD_REQUEST);
    assert!(api.store.spec(&TenantKey::new("globex")).is_none());
}

#[tokio::test]
async fn republishing_a_version_with_another_description_is_refused() {
    let api = api();
    let admin = api.admin();
    let body = controlplane::template_source::SAMPLE_TEMPLATE;
    let publish = |description: &str| {
        api.call(
            "POST",
            "/template-versions",
            Some(&admin),
            Some(json!({"version": "v2", "body": body, "description": description})),
            &[],
        )
    };
    assert_eq!(publish("first").await.status, StatusCode::CREATED);
    assert_eq!(publish("first").await.status, StatusCode::OK);
    let other = publish("second").await;
    assert_problem(&other, StatusCode::CONFLICT);
    assert_eq!(other.body["type"], "/problems/template-version-exists");
    assert!(
        other.body["detail"]
            .as_str()
            .unwrap()
            .contains("another description")
    );
    let stored = api
        .call("GET", "/template-versions/v2", Some(&admin), None, &[])
        .await;
    assert_eq!(stored.body["description"], "first");
}

#[tokio::test]
async fn config_values_are_held_to_cloudformations_limits_naming_the_field() {
    let api = api();
    let reply = api
        .call(
            "POST",
            "/tenants",
            Some(&api.admin()),
            Some(json!({
                "tenant_id": "acme", "account_id": "111111111111",
                "config": {"seed": "x".repeat(65_456)}
            })),
            &[],
        )
        .await;
    assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.body["errors"][0]["field"], "config.seed");
    assert!(
        reply.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("at most 4096 bytes")
    );
    assert!(api.store.spec(&TenantKey::new("acme")).is_none());
}

#[tokio::test]
async fn paging_by_status_skips_no_tenant_when_one_moves_out_meanwhile() {
    let api = api();
    let admin = api.admin();
    let names = ["t-a", "t-b", "t-c", "t-d", "t-e"];
    for name in names {
        api.create(name, "111111111111").await;
        api.reconcile(name).await;
    }
    let first = api
        .call(
            "GET",
            "/tenants?status=ready&limit=2",
            Some(&admin),
            None,
            &[],
        )
        .await;
    let ids = |reply: &Reply| -> Vec<String> {
        reply.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["tenant_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&first), ["t-a", "t-b"]);
    // t-a leaves `ready` before the next page is read.
    let key = TenantKey::new("t-a");
    let mut status = api.store.status(&key).unwrap();
    status.status = Status::Failed;
    api.store.set_status(&key, status);
    let next = first.body["next"].as_str().unwrap();
    let second = api
        .call(
            "GET",
            &format!("/tenants?status=ready&limit=2&next={next}"),
            Some(&admin),
            None,
            &[],
        )
        .await;
    assert_eq!(ids(&second), ["t-c", "t-d"]);

    // The contract tester's: a tenant whose SPEC changed shows `pending`, and a listing by
    // `ready` leaves it out (the index still has its last recorded status).
    let current = api
        .call("GET", "/tenants/t-c", Some(&admin), None, &[])
        .await;
    let patched = api
        .call(
            "PATCH",
            "/tenants/t-c",
            Some(&admin),
            Some(json!({"config": {"player_count": 9}})),
            &[("if-match", current.etag.as_deref().unwrap())],
        )
        .await;
    assert_eq!(patched.body["status"], "pending");
    let ready = api
        .call("GET", "/tenants?status=ready", Some(&admin), None, &[])
        .await;
    assert_eq!(ids(&ready), ["t-b", "t-d", "t-e"]);
    assert!(
        ready.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "ready")
    );
}

#[tokio::test]
async fn a_page_is_cut_short_to_stay_within_lambdas_response_size() {
    // A small budget stands for Lambda's 6 MB: each tenant's view is about 400 bytes.
    let api = api_with(|state| state.max_page_bytes = 1000);
    let admin = api.admin();
    let names = ["t-a", "t-b", "t-c", "t-d", "t-e", "t-f", "t-g"];
    for name in names {
        api.create(name, "111111111111").await;
        api.reconcile(name).await;
    }
    for filter in ["", "&status=ready"] {
        let mut seen = Vec::new();
        let mut next: Option<String> = None;
        let mut pages = 0;
        loop {
            let uri = match &next {
                None => format!("/tenants?limit=100{filter}"),
                Some(token) => format!("/tenants?limit=100{filter}&next={token}"),
            };
            let page = api.call("GET", &uri, Some(&admin), None, &[]).await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.body);
            let items = page.body["items"].as_array().unwrap();
            assert!(!items.is_empty() && items.len() < names.len());
            assert!(page.body["items"].to_string().len() <= 1000 + 600);
            seen.extend(
                items
                    .iter()
                    .map(|t| t["tenant_id"].as_str().unwrap().to_owned()),
            );
            pages += 1;
            match page.body["next"].as_str() {
                Some(token) => next = Some(token.to_owned()),
                None => break,
            }
        }
        assert!(pages > 1);
        assert_eq!(seen, names, "{filter}");
    }
}
