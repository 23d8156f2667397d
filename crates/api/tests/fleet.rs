//! Template versions and rollouts through the API, over the in-memory table with locally signed
//! tokens: publishing (new, repeated, conflicting, invalid, breaking tenants), starting a rollout
//! (and a second one while it runs), its commands and an illegal one, members, and the tenant
//! role refused everywhere.

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
use controlplane::rollout::driver::RolloutDriver;
use controlplane::template_source::SAMPLE_TEMPLATE;
use controlplane::testing::{FakeStacks, FakeTemplateValidator, InMemoryStore, World};
use model::spec::TenantKey;

/// ValidateTemplate (faked) refuses bodies holding this.
const REJECTED_MARKER: &str = "Fn::NoSuchFunction";

struct Fleet {
    app: Router,
    store: Arc<InMemoryStore>,
    reconciler: Reconciler,
    stacks: Arc<FakeStacks>,
    /// The template buckets published versions' bodies are in.
    objects: Arc<controlplane::testing::FakeTemplateObjects>,
    driver: Arc<RolloutDriver>,
    tokens: LocalTokens,
}

struct Reply {
    status: StatusCode,
    content_type: String,
    location: Option<String>,
    body: Value,
}

fn fleet() -> Fleet {
    fleet_with(|_| {})
}

/// The fleet with its API set as a deployment would (`configure`).
fn fleet_with(configure: impl FnOnce(&mut ApiState)) -> Fleet {
    let store = Arc::new(InMemoryStore::default());
    let validator = FakeTemplateValidator {
        rejects: Some(REJECTED_MARKER.into()),
    };
    let objects = Arc::new(controlplane::testing::FakeTemplateObjects::default());
    let mut state = ApiState::on_table(
        store.clone(),
        Arc::new(validator),
        objects.clone(),
        "us-east-1",
    )
    .expect("the shipped template");
    configure(&mut state);
    let World {
        stacks, reconciler, ..
    } = World::builder()
        .store(store.clone())
        .templates(state.templates.clone())
        .build();
    let tokens = LocalTokens::new("test-key");
    Fleet {
        store,
        objects,
        driver: state.rollouts.clone(),
        app: with_local_tokens(router(state), tokens.clone()),
        reconciler,
        stacks,
        tokens,
    }
}

/// The sample template with a longer message retention: an in-place change for every tenant.
fn v2_body() -> String {
    SAMPLE_TEMPLATE.replace(
        "MessageRetentionPeriod: 345600",
        "MessageRetentionPeriod: 1209600",
    )
}

impl Fleet {
    fn admin(&self) -> String {
        self.tokens.mint("ops@example.com", None, 1).unwrap()
    }

    fn tenant(&self, tenant: &str) -> String {
        self.tokens
            .mint(&format!("user@{tenant}"), Some(tenant), 1)
            .unwrap()
    }

    async fn call(&self, method: &str, uri: &str, token: &str, body: Option<Value>) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let response = self
            .app
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let header_text = |name| {
            response
                .headers()
                .get(name)
                .map(|v: &header::HeaderValue| v.to_str().unwrap().to_owned())
        };
        let status = response.status();
        let content_type = header_text(header::CONTENT_TYPE).unwrap_or_default();
        let location = header_text(header::LOCATION);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            content_type,
            location,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    async fn publish(&self, version: &str, body: &str) -> Reply {
        self.call(
            "POST",
            "/template-versions",
            &self.admin(),
            Some(json!({"version": version, "body": body, "description": "longer retention"})),
        )
        .await
    }

    async fn start_rollout(&self, body: Value) -> Reply {
        self.call("POST", "/rollouts", &self.admin(), Some(body))
            .await
    }

    /// A tenant created through the API and provisioned by the control plane (ready on v1).
    async fn ready_tenant(&self, tenant: &str, account: &str) {
        let created = self
            .call(
                "POST",
                "/tenants",
                &self.admin(),
                Some(json!({"tenant_id": tenant, "account_id": account,
                            "config": {"difficulty": "hard", "player_count": 5}})),
            )
            .await;
        assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.body);
        for _ in 0..3 {
            self.reconciler
                .reconcile(&TenantKey::new(tenant))
                .await
                .expect("reconcile");
            self.stacks.finish_in_progress();
        }
    }
}

fn assert_problem(reply: &Reply, status: StatusCode) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.content_type, "application/problem+json");
    assert_eq!(reply.body["status"], status.as_u16());
}

fn assert_detail(reply: &Reply, text: &str) {
    assert!(
        reply.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains(text)),
        "{text:?} in {}",
        reply.body
    );
}

fn fields(reply: &Reply) -> Vec<String> {
    reply.body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["field"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_version_is_published_once_and_a_repeat_is_harmless() {
    let fleet = fleet();
    let admin = fleet.admin();
    let published = fleet.publish("v2", &v2_body()).await;
    assert_eq!(published.status, StatusCode::CREATED, "{}", published.body);
    assert_eq!(published.location.as_deref(), Some("/template-versions/v2"));
    assert_eq!(published.body["version"], "v2");
    assert_eq!(published.body["published_by"], "ops@example.com");
    assert_eq!(published.body["description"], "longer retention");
    assert_eq!(published.body["sha256"].as_str().map(str::len), Some(64));
    assert!(published.body.get("body").is_none());

    // The same version and body again: 200, the first record.
    let again = fleet.publish("v2", &v2_body()).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body["published_at"], published.body["published_at"]);

    // Another body under the same name: versions never change.
    let conflict = fleet
        .publish("v2", &format!("{}\n# edited\n", v2_body()))
        .await;
    assert_problem(&conflict, StatusCode::CONFLICT);
    assert_detail(&conflict, "publish a new version");
    // v1 is shipped: it cannot be replaced either.
    assert_problem(&fleet.publish("v1", &v2_body()).await, StatusCode::CONFLICT);

    let listed = fleet.call("GET", "/template-versions", &admin, None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(listed.body["current"], "v1");
    let versions: Vec<&str> = listed.body["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["version"].as_str())
        .collect();
    assert_eq!(versions, ["v1", "v2"]);
    assert!(listed.body["versions"][1].get("body").is_none());

    let one = fleet
        .call("GET", "/template-versions/v2", &admin, None)
        .await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.body);
    assert_eq!(one.body["body"], v2_body());
    assert_problem(
        &fleet
            .call("GET", "/template-versions/v9", &admin, None)
            .await,
        StatusCode::NOT_FOUND,
    );
    assert_problem(
        &fleet
            .call("GET", "/template-versions/not%20a%20version", &admin, None)
            .await,
        StatusCode::NOT_FOUND,
    );
}

/// A published version whose body was changed in place in the table (its sha256 no longer
/// matches) is refused for good with the reason, never "try again": reading it is a 500 of its
/// own type, a tenant or rollout naming it is a 422, and its name stays taken.
#[tokio::test]
async fn a_version_changed_after_publishing_is_refused_for_good() {
    let fleet = fleet();
    let admin = fleet.admin();
    assert_eq!(
        fleet.publish("v2", &v2_body()).await.status,
        StatusCode::CREATED
    );
    let key = fleet.store.template_key("v2").expect("published");
    fleet
        .objects
        .overwrite(&key, "Resources: {Evil: {Type: AWS::SQS::Queue}}");

    let read = fleet
        .call("GET", "/template-versions/v2", &admin, None)
        .await;
    assert_problem(&read, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        read.body["type"], "/problems/corrupt-record",
        "{}",
        read.body
    );
    assert_detail(&read, "changed after it was published");

    let created = fleet
        .call(
            "POST",
            "/tenants",
            &admin,
            Some(json!({"tenant_id": "acme", "account_id": "111111111111",
                        "template_version": "v2",
                        "config": {"difficulty": "hard", "player_count": 5}})),
        )
        .await;
    assert_problem(&created, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields(&created), ["template_version"]);

    let rollout = fleet.start_rollout(json!({"target_version": "v2"})).await;
    assert_problem(&rollout, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        rollout
            .body
            .to_string()
            .contains("changed after it was published"),
        "{}",
        rollout.body
    );

    // The version stays taken by its body; publishing that very body again repairs the
    // buckets, and the version reads again.
    assert_problem(
        &fleet
            .publish("v2", "Resources: {Other: {Type: AWS::SQS::Queue}}")
            .await,
        StatusCode::CONFLICT,
    );
    assert_eq!(fleet.publish("v2", &v2_body()).await.status, StatusCode::OK);
    let repaired = fleet
        .call("GET", "/template-versions/v2", &admin, None)
        .await;
    assert_eq!(repaired.status, StatusCode::OK, "{}", repaired.body);
    assert_eq!(repaired.body["body"], v2_body());
}

#[tokio::test]
async fn an_invalid_version_or_one_that_breaks_tenants_is_refused_with_the_reasons() {
    let fleet = fleet();
    let bad_name = fleet.publish("v 2!", &v2_body()).await;
    assert_problem(&bad_name, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields(&bad_name), ["version"]);

    let not_yaml = fleet.publish("v2", "Resources: [unclosed").await;
    assert_problem(&not_yaml, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields(&not_yaml), ["body"]);

    let rejected = fleet
        .publish(
            "v2",
            &v2_body().replace(
                "Description: Game server settings for this tenant.",
                &format!("Description: {{\"{REJECTED_MARKER}\": []}}"),
            ),
        )
        .await;
    assert_problem(&rejected, StatusCode::UNPROCESSABLE_ENTITY);
    assert_detail(&rejected, "ValidateTemplate");

    let missing = fleet
        .call(
            "POST",
            "/template-versions",
            &fleet.admin(),
            Some(json!({"body": 5, "extra": true})),
        )
        .await;
    assert_problem(&missing, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields(&missing), ["extra", "version", "body"]);

    // A tenant with 5 players does not fit a template allowing at most 3.
    fleet.ready_tenant("acme", "111111111111").await;
    let fewer = fleet
        .publish("v3", &v2_body().replace("MaxValue: 100", "MaxValue: 3"))
        .await;
    assert_problem(&fewer, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        fewer.body["type"], "/problems/template-breaks-tenants",
        "{}",
        fewer.body
    );
    assert_eq!(fields(&fewer), ["tenants.acme"]);
    // Nothing was stored.
    assert_problem(
        &fleet
            .call("GET", "/template-versions/v3", &fleet.admin(), None)
            .await,
        StatusCode::NOT_FOUND,
    );
}

/// A template of any size CloudFormation reads from a TemplateURL (1 MB) is published: the body
/// goes to every region's bucket, the item keeps its key, size and sha256, and a tenant's stack
/// is created from the URL of its region's copy, never with the body inline.
#[tokio::test]
async fn a_template_past_the_inline_limit_is_published_to_the_buckets_and_deployed_by_url() {
    let fleet = fleet();
    let admin = fleet.admin();
    let body = controlplane::testing::cdk_style_template(1_209_600, 200_000);
    assert!(body.len() > 200_000 && body.len() > 51_200);
    let published = fleet.publish("v2", &body).await;
    assert_eq!(published.status, StatusCode::CREATED, "{}", published.body);
    assert_eq!(published.body["size"], body.len());
    let key = published.body["key"].as_str().expect("a key").to_owned();
    assert_eq!(
        key,
        format!(
            "templates/{}.json",
            published.body["sha256"].as_str().unwrap()
        )
    );
    for region in ["us-east-1", "eu-west-1"] {
        assert_eq!(
            fleet.objects.keys_in(region),
            std::slice::from_ref(&key),
            "{region}"
        );
    }
    let item = controlplane::ports::TemplateStore::template(fleet.store.as_ref(), "v2")
        .await
        .unwrap()
        .expect("the item");
    assert_eq!(item.inline_body, None, "no body in the item");
    let shown = fleet
        .call("GET", "/template-versions/v2", &admin, None)
        .await;
    assert_eq!(shown.body["body"], body.as_str());

    let created = fleet
        .call(
            "POST",
            "/tenants",
            &admin,
            Some(json!({"tenant_id": "acme", "account_id": "111111111111",
                        "region": "eu-west-1", "template_version": "v2"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.body);
    let key_of = TenantKey::new("acme");
    fleet.reconciler.reconcile(&key_of).await.unwrap();
    let location = fleet
        .stacks
        .live_stacks()
        .into_iter()
        .find(|l| l.region == "eu-west-1")
        .expect("the stack");
    let stack = fleet.stacks.stack(&location).expect("the stack");
    let url = stack.template_url.expect("created from a TemplateURL");
    assert!(url.contains("eu-west-1") && url.ends_with(&key), "{url}");
    assert_eq!(stack.template_body, body);

    let too_big = fleet.publish("v3", &"#".repeat(1_048_577)).await;
    assert_problem(&too_big, StatusCode::UNPROCESSABLE_ENTITY);
    assert_detail(&too_big, "at most 1048576 (1 MB)");
}

#[tokio::test]
async fn a_rollout_starts_runs_alone_and_takes_commands() {
    let fleet = fleet();
    let admin = fleet.admin();
    fleet.ready_tenant("acme", "111111111111").await;
    fleet.ready_tenant("globex", "222222222222").await;

    let unpublished = fleet.start_rollout(json!({"target_version": "v2"})).await;
    assert_problem(&unpublished, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields(&unpublished), ["target_version"]);

    assert_eq!(
        fleet.publish("v2", &v2_body()).await.status,
        StatusCode::CREATED
    );
    let bad_options = fleet
        .start_rollout(json!({"target_version": "v2", "options": {"canary": "0", "growth": 0}}))
        .await;
    assert_problem(&bad_options, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fields(&bad_options), ["options.canary", "options.growth"]);

    let started = fleet
        .start_rollout(json!({
            "target_version": "v2",
            "options": {"canary": 1, "bake_seconds": 0, "max_concurrency": "50%"}
        }))
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    let id = started.body["id"].as_str().expect("an id").to_owned();
    assert_eq!(started.location, Some(format!("/rollouts/{id}")));
    assert_eq!(started.body["state"], "planning");
    assert_eq!(started.body["created_by"], "ops@example.com");
    assert_eq!(started.body["previous_version"], "v1");
    // Given options as given, the rest defaulted; amounts always as text.
    assert_eq!(started.body["options"]["canary"], "1");
    assert_eq!(started.body["options"]["max_concurrency"], "50%");
    assert_eq!(started.body["options"]["growth"], 2);
    assert_eq!(started.body["options"]["auto_rollback"], true);

    // One rollout at a time.
    let second = fleet.start_rollout(json!({"target_version": "v2"})).await;
    assert_problem(&second, StatusCode::CONFLICT);
    assert_eq!(second.body["type"], "/problems/rollout-busy");

    // The driver plans it: both tenants are members, still on v1.
    let tick = fleet.driver.tick(&id).await.expect("plan");
    assert_eq!(tick.step, "plan");
    let read = fleet
        .call("GET", &format!("/rollouts/{id}?members=true"), &admin, None)
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.body["state"], "running");
    assert_eq!(read.body["counts"]["total"], 2);
    assert_eq!(read.body["counts"]["pending"], 2);
    assert_eq!(read.body["waves"][0]["wave"], 0);
    assert_eq!(read.body["waves"][0]["counts"]["total"], 1);
    let mut members: Vec<&str> = read.body["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["tenant_id"].as_str())
        .collect();
    members.sort_unstable();
    assert_eq!(members, ["acme", "globex"]);
    assert_eq!(read.body["members"][0]["from_version"], "v1");
    assert_eq!(read.body["members"][0]["state"], "pending");
    let without = fleet
        .call("GET", &format!("/rollouts/{id}"), &admin, None)
        .await;
    assert!(without.body.get("members").is_none(), "{}", without.body);
    assert_problem(
        &fleet
            .call(
                "GET",
                &format!("/rollouts/{id}?members=perhaps"),
                &admin,
                None,
            )
            .await,
        StatusCode::BAD_REQUEST,
    );

    // Commands; a repeat is a no-op; an illegal transition is refused with the reason.
    let command = |name: &'static str| {
        let uri = format!("/rollouts/{id}/{name}");
        let admin = admin.clone();
        let fleet = &fleet;
        async move { fleet.call("POST", &uri, &admin, None).await }
    };
    let paused = command("pause").await;
    assert_eq!(paused.status, StatusCode::OK, "{}", paused.body);
    assert_eq!(paused.body["state"], "paused");
    assert_eq!(paused.body["reason"], "pause by ops@example.com");
    assert_eq!(paused.body["counts"]["total"], 2);
    assert_eq!(command("pause").await.body["state"], "paused");
    assert_eq!(command("resume").await.body["state"], "running");
    assert_eq!(command("cancel").await.body["state"], "cancelled");
    let refused = command("resume").await;
    assert_problem(&refused, StatusCode::CONFLICT);
    assert_eq!(refused.body["type"], "/problems/rollout-state");
    assert_detail(&refused, "cannot resume a rollout that is cancelled");
    assert_eq!(command("rollback").await.body["state"], "rolling_back");

    assert_problem(
        &fleet
            .call("POST", "/rollouts/r-none/pause", &admin, None)
            .await,
        StatusCode::NOT_FOUND,
    );
    assert_problem(
        &fleet.call("GET", "/rollouts/r-none", &admin, None).await,
        StatusCode::NOT_FOUND,
    );

    let listed = fleet.call("GET", "/rollouts", &admin, None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(listed.body["items"][0]["id"], id.as_str());
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_tenant_token_is_refused_on_every_fleet_route() {
    let fleet = fleet();
    let tenant = fleet.tenant("acme");
    for (method, uri, body) in [
        (
            "POST",
            "/template-versions",
            Some(json!({"version": "v2", "body": v2_body()})),
        ),
        ("GET", "/template-versions", None),
        ("GET", "/template-versions/v1", None),
        ("POST", "/rollouts", Some(json!({"target_version": "v1"}))),
        ("GET", "/rollouts", None),
        ("GET", "/rollouts/r-1", None),
        ("POST", "/rollouts/r-1/pause", None),
        ("POST", "/rollouts/r-1/resume", None),
        ("POST", "/rollouts/r-1/cancel", None),
        ("POST", "/rollouts/r-1/rollback", None),
    ] {
        let reply = fleet.call(method, uri, &tenant, body).await;
        assert_problem(&reply, StatusCode::FORBIDDEN);
        assert!(
            reply.body["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("only an admin")),
            "{method} {uri}: {}",
            reply.body
        );
    }
}

/// With PublishStartsRollout `canary`, the publish that stores a version starts a rollout to it
/// with the default policy; a repeat starts nothing, and a publish while a rollout runs is
/// still published, saying why its rollout did not start. With `plan`, a preview (here not set
/// up, which the answer says).
#[tokio::test]
async fn a_publish_starts_the_rollout_the_deployment_asks_for() {
    let fleet = fleet_with(|state| state.on_publish = model::rollout::OnPublish::Canary);
    let admin = fleet.admin();
    let publish = |version: &'static str, body: String| {
        let admin = admin.clone();
        let fleet = &fleet;
        async move {
            fleet
                .call(
                    "POST",
                    "/template-versions",
                    &admin,
                    Some(json!({"version": version, "body": body})),
                )
                .await
        }
    };
    let first = publish("v2", v2_body()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(first.body["started"]["kind"], "rollout", "{}", first.body);
    let id = first.body["started"]["id"]
        .as_str()
        .expect("a rollout id")
        .to_owned();
    let rollout = fleet
        .call("GET", &format!("/rollouts/{id}"), &admin, None)
        .await;
    assert_eq!(rollout.body["target_version"], "v2", "{}", rollout.body);
    assert_eq!(
        rollout.body["options"]["canary"], "1",
        "the default policy: {}",
        rollout.body
    );

    let repeat = publish("v2", v2_body()).await;
    assert_eq!(repeat.status, StatusCode::OK);
    assert!(repeat.body.get("started").is_none(), "{}", repeat.body);

    let v3 = publish("v3", v2_body().replace("1209600", "1209000")).await;
    assert_eq!(
        v3.status,
        StatusCode::CREATED,
        "published regardless: {}",
        v3.body
    );
    assert_eq!(v3.body["started"]["kind"], "rollout");
    assert!(v3.body["started"].get("id").is_none(), "{}", v3.body);
    assert!(
        v3.body["started"]["not_started"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{}",
        v3.body
    );

    let planned = fleet_with(|state| state.on_publish = model::rollout::OnPublish::Plan);
    let admin = planned.admin();
    let reply = planned
        .call(
            "POST",
            "/template-versions",
            &admin,
            Some(json!({"version": "v2", "body": v2_body()})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.body["started"]["kind"], "preview");
    assert!(
        reply.body["started"]["not_started"]
            .as_str()
            .is_some_and(|r| r.contains("PREVIEW_QUEUE_URL")),
        "{}",
        reply.body
    );
}

/// A warm instance assigns new tenants the current version it read in the last seconds, but the
/// write that assigns it holds only while the CURRENT row is unchanged: once the current
/// version moves, a new tenant gets the new one, never the cached one.
#[tokio::test]
async fn a_cached_current_version_never_assigns_a_stale_one() {
    use controlplane::ports::TemplateStore;
    let fleet = fleet();
    fleet.ready_tenant("first", "111111111111").await;
    let first = fleet.store.status(&TenantKey::new("first")).unwrap();
    assert_eq!(first.assigned_version.as_deref(), Some("v1"));
    let published = fleet
        .call(
            "POST",
            "/template-versions",
            &fleet.admin(),
            Some(json!({"version": "v2", "body": v2_body()})),
        )
        .await;
    assert_eq!(published.status, StatusCode::CREATED, "{}", published.body);
    // The fleet's current version moves (as a completed rollout moves it), within the
    // seconds the reconciler's instance keeps v1 as current.
    fleet
        .store
        .set_current_template("v2", None)
        .await
        .expect("current moved");
    fleet.ready_tenant("second", "111111111111").await;
    let second = fleet.store.status(&TenantKey::new("second")).unwrap();
    assert_eq!(second.assigned_version.as_deref(), Some("v2"), "{second:?}");
    assert_eq!(second.template_version.as_deref(), Some("v2"));
}
