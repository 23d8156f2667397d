//! The reconcile loop and the stream handler against the in-memory fakes: the table
//! (`InMemoryStore`), CloudFormation (`FakeStacks`) and the shipped sample template.
//!
//! Records are built exactly as Lambda delivers DynamoDB stream records. The handler re-reads the
//! table, so each test puts the SPEC row in the store as it would be when the batch is handled;
//! the records only name the tenant.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use serde_dynamo::Item;
use serde_json::{Value, json};

use controlplane::ports::{
    StackError, StackRequest, StackTarget, Stacks, StoreError, UpdateStarted,
};
use controlplane::reconcile::{Outcome, Settings};
use controlplane::template_source::SAMPLE_TEMPLATE;
use controlplane::testing::{self, Behaviour, FakeStacks};
use controlplane::triggers::stream::{BatchReport, SkippedRecord, StreamSettings, handle_batch};
use model::decide::{REMOVED_FINGERPRINT, fingerprint};
use model::spec::{TenantKey, TenantSpec};
use model::stack::{ObservedStack, StackStatus};
use model::status::{Operation, StackLocation, Status, TenantStatus};
use model::time::rfc3339;

const REGION: &str = "eu-west-1";
const ACCOUNT: &str = "111111111111";
/// The `ApproximateCreationDateTime` of records unless a test says otherwise.
const RECORD_TIME: i64 = 1_700_000_000;
const SEED: &str = "gs1234";

// ------------------------------------------------------------------------------------------------
// Harness
// ------------------------------------------------------------------------------------------------

/// Every call the reconciler makes on the stacks port, describe and failure_reason included,
/// passed on to the fake CloudFormation.
struct Spy {
    inner: Arc<FakeStacks>,
    calls: Mutex<Vec<(String, StackLocation)>>,
}

impl Spy {
    fn note(&self, operation: &str, at: &StackTarget) {
        self.calls
            .lock()
            .unwrap()
            .push((operation.to_owned(), at.location.clone()));
    }
}

#[async_trait]
impl Stacks for Spy {
    async fn describe(&self, at: &StackTarget) -> Result<Option<ObservedStack>, StackError> {
        self.note("describe", at);
        self.inner.describe(at).await
    }
    async fn create(&self, at: &StackTarget, request: &StackRequest) -> Result<(), StackError> {
        self.note("create", at);
        self.inner.create(at, request).await
    }
    async fn update(
        &self,
        at: &StackTarget,
        request: &StackRequest,
    ) -> Result<UpdateStarted, StackError> {
        self.note("update", at);
        self.inner.update(at, request).await
    }
    async fn delete(&self, at: &StackTarget, token: &str) -> Result<(), StackError> {
        self.note("delete", at);
        self.inner.delete(at, token).await
    }
    async fn continue_update_rollback(
        &self,
        at: &StackTarget,
        token: &str,
    ) -> Result<(), StackError> {
        self.note("continue_update_rollback", at);
        self.inner.continue_update_rollback(at, token).await
    }
    async fn failure_reason(&self, at: &StackTarget) -> Result<Option<String>, StackError> {
        self.note("failure_reason", at);
        self.inner.failure_reason(at).await
    }
}

/// The fakes, reached through the spy, with the clock at ten seconds after the records were
/// written (young records).
struct World {
    fakes: testing::World,
    spy: Arc<Spy>,
    stream: StreamSettings,
}

impl std::ops::Deref for World {
    type Target = testing::World;

    fn deref(&self) -> &testing::World {
        &self.fakes
    }
}

impl World {
    fn new() -> Self {
        let stacks = Arc::new(FakeStacks::default());
        let spy = Arc::new(Spy {
            inner: stacks.clone(),
            calls: Mutex::new(Vec::new()),
        });
        let fakes = testing::World::builder()
            .settings(Settings::new(REGION))
            .starting_at(at(RECORD_TIME + 10))
            .stacks(stacks)
            .reached_through(spy.clone())
            .build();
        Self {
            fakes,
            spy,
            stream: StreamSettings::default(),
        }
    }

    fn set_now(&self, time: DateTime<Utc>) {
        self.clock.set(time);
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Writes a SPEC row to the table (what the writer did before the batch is handled).
    fn put(&self, image: &Value) {
        let pk = image["pk"]["S"].as_str().expect("pk");
        let item: Item = serde_json::from_value(image.clone()).expect("a DynamoDB item");
        self.store
            .put_spec(&TenantKey::from_pk(pk).expect("tenant pk"), item);
    }

    fn remove(&self, tenant: &str) {
        self.store.delete_spec(&key(tenant));
    }

    async fn handle(&self, records: Vec<Value>) -> BatchReport {
        handle_batch(
            &self.reconciler,
            &self.stream,
            &json!({ "Records": records }),
        )
        .await
    }

    async fn reconcile(&self, tenant: &str) -> Outcome {
        self.reconciler
            .reconcile(&key(tenant))
            .await
            .expect("no transient error")
    }

    fn status(&self, tenant: &str) -> TenantStatus {
        self.store
            .status(&key(tenant))
            .unwrap_or_else(|| panic!("{tenant} has no STATUS"))
    }

    fn stack(&self, tenant: &str) -> controlplane::testing::FakeStack {
        self.stacks
            .stack(&location(ACCOUNT, tenant))
            .unwrap_or_else(|| panic!("{tenant} has no stack"))
    }

    /// Every stacks-port call made for a tenant's stack (any account), in order.
    fn calls_for(&self, tenant: &str) -> Vec<String> {
        let name = format!("tenant-{tenant}");
        self.spy
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, l)| l.stack_name == name)
            .map(|(op, _)| op.clone())
            .collect()
    }

    /// The calls of one kind for a tenant (attempts included, even those the fake refused).
    fn count(&self, tenant: &str, operation: &str) -> usize {
        self.calls_for(tenant)
            .iter()
            .filter(|op| *op == operation)
            .count()
    }

    fn mutating_calls(&self, tenant: &str) -> Vec<String> {
        self.calls_for(tenant)
            .into_iter()
            .filter(|op| op != "describe" && op != "failure_reason")
            .collect()
    }

    /// Reconciles `times` times, each look at the stack failing with `reason`; the retry count
    /// STATUS shows after each.
    async fn reconcile_with_failing_looks(
        &self,
        tenant: &str,
        reason: &str,
        times: u32,
    ) -> Vec<u32> {
        let mut counted = Vec::new();
        for _ in 0..times {
            self.stacks
                .fail_next("describe", StackError::Transient(reason.to_owned()));
            self.reconcile(tenant).await;
            counted.push(self.status(tenant).retries);
        }
        counted
    }

    /// Brings a tenant to `ready` with the seed row (or the given image).
    async fn ready_with(&self, image: &Value) {
        let tenant = image["tenant_id"]["S"].as_str().unwrap().to_owned();
        self.put(image);
        let report = self.handle(vec![insert(&tenant, "100", image)]).await;
        assert!(report.response.batch_item_failures.is_empty());
        assert_eq!(self.status(&tenant).status, Status::Ready, "{tenant} ready");
    }
}

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(seconds, 0).unwrap()
}

fn key(tenant: &str) -> TenantKey {
    TenantKey::new(tenant)
}

fn location(account: &str, tenant: &str) -> StackLocation {
    StackLocation {
        account_id: account.into(),
        region: REGION.into(),
        stack_name: format!("tenant-{tenant}"),
    }
}

/// A SPEC item in DynamoDB JSON, as in the table and in a record's images.
fn spec_image(tenant: &str, account: &str, config: Value) -> Value {
    json!({
        "pk": {"S": format!("TENANT#{tenant}")},
        "sk": {"S": "SPEC"},
        "tenant_id": {"S": tenant},
        "account_id": {"S": account},
        "config": {"M": config},
        "created_at": {"S": "2023-05-13T14:06:33Z"},
    })
}

fn seed_config(player_count: &str) -> Value {
    json!({
        "difficulty": {"S": "peaceful"},
        "player_count": {"N": player_count},
        "seed": {"S": "bailao9SheeSi1i"},
    })
}

/// The seed row: tenant gs1234, difficulty=peaceful, player_count=5, seed=bailao9SheeSi1i.
fn seed_image() -> Value {
    spec_image(SEED, ACCOUNT, seed_config("5"))
}

fn with_attr(mut image: Value, name: &str, value: Value) -> Value {
    image[name] = value;
    image
}

/// One stream record exactly as Lambda delivers it.
fn record_at(
    event_name: &str,
    tenant: &str,
    sk: &str,
    sequence: &str,
    created: i64,
    new_image: Option<&Value>,
    old_image: Option<&Value>,
) -> Value {
    let mut change = json!({
        "ApproximateCreationDateTime": created as f64,
        "Keys": {"pk": {"S": format!("TENANT#{tenant}")}, "sk": {"S": sk}},
        "SequenceNumber": sequence,
        "SizeBytes": 100,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    });
    if let Some(image) = new_image {
        change["NewImage"] = image.clone();
    }
    if let Some(image) = old_image {
        change["OldImage"] = image.clone();
    }
    json!({
        "eventID": format!("event-{tenant}-{sequence}"),
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "dynamodb": change,
        "eventSourceARN": "arn:aws:dynamodb:eu-west-1:123456789012:table/tenants/stream/2024-01-01T00:00:00.000",
    })
}

fn insert(tenant: &str, sequence: &str, image: &Value) -> Value {
    record_at(
        "INSERT",
        tenant,
        "SPEC",
        sequence,
        RECORD_TIME,
        Some(image),
        None,
    )
}

fn modify(tenant: &str, sequence: &str, old: &Value, new: &Value) -> Value {
    record_at(
        "MODIFY",
        tenant,
        "SPEC",
        sequence,
        RECORD_TIME,
        Some(new),
        Some(old),
    )
}

fn remove(tenant: &str, sequence: &str, old: &Value) -> Value {
    record_at(
        "REMOVE",
        tenant,
        "SPEC",
        sequence,
        RECORD_TIME,
        None,
        Some(old),
    )
}

fn failures(report: &BatchReport) -> Vec<String> {
    report
        .response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone().unwrap_or_default())
        .collect()
}

/// The fingerprint the reconciler records for an image (unpinned: template v1, default region).
fn fingerprint_of(image: &Value) -> String {
    let tenant = image["tenant_id"]["S"].as_str().unwrap();
    let item: Item = serde_json::from_value(image.clone()).unwrap();
    let spec = TenantSpec::parse(&key(tenant), &item).expect("a valid SPEC");
    fingerprint(&spec, REGION, "v1")
}

fn params(stack: &ObservedStack) -> BTreeMap<&str, &str> {
    stack
        .parameters
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

// ------------------------------------------------------------------------------------------------
// Provisioning
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_seed_row_becomes_a_ready_stack() {
    let w = World::new();
    let image = seed_image();
    w.put(&image);
    let report = w.handle(vec![insert(SEED, "100", &image)]).await;

    assert!(failures(&report).is_empty());
    assert!(report.skipped.is_empty());
    assert_eq!(
        report.outcomes.get(&key(SEED)),
        Some(&Ok(Outcome::Converged(Some(Status::Ready))))
    );

    // The table is read once: after the create, the reconcile knows what it wrote and looks
    // again only at the stack.
    assert_eq!(w.store.loads(), 1);

    let stack = w.stack(SEED);
    assert_eq!(stack.observed.status, StackStatus::CreateComplete);
    assert_eq!(
        params(&stack.observed),
        BTreeMap::from([
            ("Difficulty", "peaceful"),
            ("PlayerCount", "5"),
            ("Seed", "bailao9SheeSi1i"),
            ("TenantId", SEED),
        ])
    );
    assert!(
        stack.termination_protection,
        "created with termination protection"
    );
    assert!(
        stack.tags.contains(&("tenant-id".into(), SEED.into())),
        "{:?}",
        stack.tags
    );
    assert!(
        stack
            .tags
            .contains(&("managed-by".into(), "tenant-control-plane".into())),
        "{:?}",
        stack.tags
    );
    assert!(
        stack
            .tags
            .contains(&("template-version".into(), "v1".into()))
    );
    assert_eq!(stack.template_body, SAMPLE_TEMPLATE);
    // Its resources are made by CloudFormation with the account's deploy role.
    assert_eq!(
        stack.role_arn,
        Some(format!(
            "arn:aws:iam::{ACCOUNT}:role/TenantControlDeployRole"
        ))
    );

    let status = w.status(SEED);
    assert_eq!(status.status, Status::Ready);
    assert_eq!(status.tenant_id, SEED);
    assert_eq!(status.reason, None);
    assert_eq!(status.spec_fingerprint, Some(fingerprint_of(&image)));
    assert_eq!(status.location, Some(location(ACCOUNT, SEED)));
    assert_eq!(
        status.stack_id.as_deref(),
        Some(stack.observed.stack_id.as_str())
    );
    assert_eq!(
        status.stack_status.as_ref().map(|s| s.as_str()),
        Some("CREATE_COMPLETE")
    );
    assert_eq!(status.template_version.as_deref(), Some("v1"));
    assert_eq!(status.operation, Some(Operation::Create));
    // Success resets the count of operations tried for this SPEC.
    assert_eq!(status.attempts, 0);
    assert_eq!(status.outputs, stack.observed.outputs);
    assert_eq!(
        status.outputs.get("PlayerCountEcho").map(String::as_str),
        Some("5")
    );
    assert_eq!(status.updated_at, rfc3339(w.now()));
    // The intent, then the terminal state.
    assert_eq!(w.store.status_writes(), 2);
    assert_eq!(w.mutating_calls(SEED), ["create"]);
}

#[tokio::test]
async fn a_region_in_the_spec_places_the_stack_there() {
    let w = World::new();
    let image = with_attr(seed_image(), "region", json!({"S": "us-west-2"}));
    w.put(&image);
    let report = w.handle(vec![insert(SEED, "100", &image)]).await;
    assert!(failures(&report).is_empty());
    let there = StackLocation {
        region: "us-west-2".into(),
        ..location(ACCOUNT, SEED)
    };
    assert_eq!(w.stacks.live_stacks(), std::slice::from_ref(&there));
    assert_eq!(w.status(SEED).location, Some(there));
    assert_eq!(w.status(SEED).status, Status::Ready);
}

#[tokio::test]
async fn duplicate_records_create_once() {
    let w = World::new();
    let image = seed_image();
    w.put(&image);
    let record = insert(SEED, "100", &image);

    // The same record twice in one batch: one reconcile.
    let report = w.handle(vec![record.clone(), record.clone()]).await;
    assert!(failures(&report).is_empty());
    assert_eq!(report.outcomes.len(), 1);
    assert_eq!(w.count(SEED, "create"), 1);
    let after_first = w.status(SEED);
    let writes = w.store.status_writes();

    // The same batch delivered again: converged, nothing called, nothing written.
    let report = w.handle(vec![record.clone(), record]).await;
    assert!(failures(&report).is_empty());
    assert_eq!(
        report.outcomes.get(&key(SEED)),
        Some(&Ok(Outcome::Converged(Some(Status::Ready))))
    );
    assert_eq!(w.mutating_calls(SEED), ["create"]);
    assert_eq!(w.store.status_writes(), writes);
    assert_eq!(w.status(SEED), after_first);
    assert_eq!(w.stacks.live_stacks().len(), 1);
}

#[tokio::test]
async fn out_of_order_and_stale_records_follow_the_latest_spec() {
    let w = World::new();
    let v1 = seed_image();
    w.ready_with(&v1).await;
    let v2 = spec_image(SEED, ACCOUNT, seed_config("6"));
    let v3 = spec_image(SEED, ACCOUNT, seed_config("7"));

    // By the time the batch is handled the table holds v3; the records arrive late, newest first.
    w.put(&v3);
    let report = w
        .handle(vec![
            modify(SEED, "300", &v2, &v3),
            modify(SEED, "200", &v1, &v2),
        ])
        .await;
    assert!(failures(&report).is_empty());
    assert_eq!(w.count(SEED, "update"), 1);
    assert_eq!(params(&w.stack(SEED).observed)["PlayerCount"], "7");
    let status = w.status(SEED);
    assert_eq!(status.status, Status::Ready);
    assert_eq!(status.spec_fingerprint, Some(fingerprint_of(&v3)));

    // A stale record (v1 -> v2) redelivered later changes nothing.
    let writes = w.store.status_writes();
    let report = w.handle(vec![modify(SEED, "200", &v1, &v2)]).await;
    assert!(failures(&report).is_empty());
    assert_eq!(w.count(SEED, "update"), 1);
    assert_eq!(w.store.status_writes(), writes);
    assert_eq!(params(&w.stack(SEED).observed)["PlayerCount"], "7");
    assert_eq!(w.status(SEED).spec_fingerprint, Some(fingerprint_of(&v3)));
}

#[tokio::test]
async fn remove_before_the_insert_is_handled_creates_nothing() {
    let w = World::new();
    let image = spec_image("beta-co", ACCOUNT, json!({}));
    // The SPEC was written and deleted before the batch with both records is handled.
    let report = w
        .handle(vec![
            insert("beta-co", "100", &image),
            remove("beta-co", "101", &image),
        ])
        .await;
    assert!(failures(&report).is_empty());
    assert_eq!(
        report.outcomes.get(&key("beta-co")),
        Some(&Ok(Outcome::Converged(None)))
    );
    assert!(
        w.calls_for("beta-co").is_empty(),
        "{:?}",
        w.calls_for("beta-co")
    );
    assert!(w.stacks.live_stacks().is_empty());
    assert!(w.store.status(&key("beta-co")).is_none());
    assert_eq!(w.store.status_writes(), 0);
}

// ------------------------------------------------------------------------------------------------
// Update and delete
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_config_change_updates_once_and_an_unchanged_rewrite_does_nothing() {
    let w = World::new();
    let v1 = seed_image();
    w.ready_with(&v1).await;
    let stack_id = w.stack(SEED).observed.stack_id;

    let v2 = spec_image(
        SEED,
        ACCOUNT,
        json!({"difficulty": {"S": "hard"}, "player_count": {"N": "8"}, "seed": {"S": "bailao9SheeSi1i"}}),
    );
    w.put(&v2);
    let report = w.handle(vec![modify(SEED, "200", &v1, &v2)]).await;
    assert!(failures(&report).is_empty());
    assert_eq!(w.count(SEED, "update"), 1);
    assert_eq!(w.count(SEED, "create"), 1);
    let stack = w.stack(SEED);
    assert_eq!(stack.observed.stack_id, stack_id, "updated in place");
    assert_eq!(stack.observed.status, StackStatus::UpdateComplete);
    assert_eq!(params(&stack.observed)["Difficulty"], "hard");
    assert_eq!(params(&stack.observed)["PlayerCount"], "8");
    let status = w.status(SEED);
    assert_eq!(status.status, Status::Ready);
    assert_eq!(status.spec_fingerprint, Some(fingerprint_of(&v2)));
    assert_ne!(status.spec_fingerprint, Some(fingerprint_of(&v1)));
    assert_eq!(status.operation, Some(Operation::Update));
    assert_eq!(
        status.stack_status.as_ref().map(|s| s.as_str()),
        Some("UPDATE_COMPLETE")
    );
    assert_eq!(status.outputs["DifficultyEcho"], "hard");

    // Rewritten with the same content (only who wrote it differs): no update, no write.
    let writes = w.store.status_writes();
    let rewrite = with_attr(v2.clone(), "updated_by", json!({"S": "alice"}));
    w.put(&rewrite);
    let report = w.handle(vec![modify(SEED, "300", &v2, &rewrite)]).await;
    assert!(failures(&report).is_empty());
    assert_eq!(w.count(SEED, "update"), 1);
    assert_eq!(w.store.status_writes(), writes);
    assert_eq!(w.status(SEED).spec_fingerprint, Some(fingerprint_of(&v2)));
}

#[tokio::test]
async fn removing_the_spec_deletes_the_stack() {
    let w = World::new();
    let image = seed_image();
    w.ready_with(&image).await;

    w.remove(SEED);
    let report = w.handle(vec![remove(SEED, "200", &image)]).await;
    assert!(failures(&report).is_empty());
    assert_eq!(
        report.outcomes.get(&key(SEED)),
        Some(&Ok(Outcome::Converged(Some(Status::Deleted))))
    );
    assert_eq!(w.mutating_calls(SEED), ["create", "delete"]);
    let stack = w.stack(SEED);
    assert_eq!(stack.observed.status, StackStatus::DeleteComplete);
    assert!(
        !stack.termination_protection,
        "protection turned off for the delete"
    );
    assert!(w.stacks.live_stacks().is_empty());

    let status = w.status(SEED);
    assert_eq!(status.status, Status::Deleted);
    assert_eq!(
        status.spec_fingerprint.as_deref(),
        Some(REMOVED_FINGERPRINT)
    );
    assert!(status.outputs.is_empty());
    assert_eq!(
        status.stack_status.as_ref().map(|s| s.as_str()),
        Some("DELETE_COMPLETE")
    );
    // Where the stack was stays recorded.
    assert_eq!(status.location, Some(location(ACCOUNT, SEED)));

    // The REMOVE delivered again: nothing more.
    let writes = w.store.status_writes();
    let report = w.handle(vec![remove(SEED, "200", &image)]).await;
    assert!(failures(&report).is_empty());
    assert_eq!(w.count(SEED, "delete"), 1);
    assert_eq!(w.store.status_writes(), writes);

    // The tenant comes back: a new stack.
    w.put(&image);
    let report = w.handle(vec![insert(SEED, "300", &image)]).await;
    assert!(failures(&report).is_empty());
    assert_eq!(w.status(SEED).status, Status::Ready);
    assert_eq!(w.count(SEED, "create"), 2);
    assert_eq!(w.stacks.live_stacks().len(), 1);
}

/// The seed tenant ready, and its STATUS then naming a place in its account that holds another
/// team's stack (not tagged for any tenant): that place.
async fn ready_but_recorded_at_someone_elses_stack(w: &World, image: &Value) -> StackLocation {
    w.ready_with(image).await;
    let elsewhere = StackLocation {
        stack_name: "someone-elses".into(),
        ..location(ACCOUNT, SEED)
    };
    someone_elses_stack(w, &elsewhere).await;
    let mut status = w.status(SEED);
    status.location = Some(elsewhere.clone());
    w.store.set_status(&key(SEED), status);
    elsewhere
}

/// A stack at `at` that is not the control plane's (another team's, untagged for any tenant).
async fn someone_elses_stack(w: &World, at: &StackLocation) {
    w.stacks
        .create(
            &StackTarget {
                tenant_id: "other".into(),
                location: at.clone(),
            },
            &StackRequest {
                template: controlplane::ports::TemplateLocation::Body(SAMPLE_TEMPLATE.into()),
                role_arn: None,
                auto_expand: false,
                parameters: Vec::new(),
                tags: vec![("owner".into(), "another team".into())],
                client_request_token: "theirs".into(),
            },
        )
        .await
        .expect("someone else's stack");
}

/// STATUS names a place that does not hold the tenant's stack (a hand edit of the control-plane
/// table, a bug, a name from another release): a stack there is trusted only if its own tags
/// say it is the tenant's, and the tenant's stack name is looked for in the recorded account and
/// region (confirmed by its tags) before anything is recorded `deleted`. So the delete reaches the real stack, and the one STATUS
/// named is left alone.
#[tokio::test]
async fn a_stack_not_where_status_says_is_found_by_its_tags_and_deleted_not_orphaned() {
    let w = World::new();
    let image = seed_image();
    let elsewhere = ready_but_recorded_at_someone_elses_stack(&w, &image).await;

    w.remove(SEED);
    let report = w.handle(vec![remove(SEED, "200", &image)]).await;
    assert!(failures(&report).is_empty(), "{report:?}");
    assert_eq!(
        w.count(SEED, "delete"),
        1,
        "the tenant's own stack is deleted"
    );
    assert_eq!(w.stack(SEED).observed.status, StackStatus::DeleteComplete);
    assert_eq!(
        w.stacks.live_stacks(),
        [elsewhere],
        "the stack STATUS named, not the tenant's, is untouched"
    );
    let status = w.status(SEED);
    assert_eq!(status.status, Status::Deleted);
    assert_eq!(status.location, Some(location(ACCOUNT, SEED)));
}

/// With a SPEC, a wrong recorded place holding someone else's stack does not block the tenant:
/// its own stack, where the SPEC wants it, is the one looked at.
#[tokio::test]
async fn someone_elses_stack_at_a_wrong_recorded_place_does_not_hide_the_tenants_own() {
    let w = World::new();
    let image = seed_image();
    ready_but_recorded_at_someone_elses_stack(&w, &image).await;

    w.reconcile(SEED).await;
    // Not blocked as someone else's stack, not created again: the tenant's own is the one
    // decided on, and STATUS records where it really is.
    let status = w.status(SEED);
    assert_eq!(status.status, Status::Ready, "{status:?}");
    assert_eq!(status.reason, None, "{status:?}");
    assert_eq!(status.location, Some(location(ACCOUNT, SEED)));
    assert_eq!(w.mutating_calls(SEED), ["create"]);
    assert_eq!(w.stacks.live_stacks().len(), 2);
}

// ------------------------------------------------------------------------------------------------
// Poison and invalid rows
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn poison_records_never_fail_the_batch() {
    let w = World::new();
    let seed = seed_image();
    let beta = spec_image("beta-co", ACCOUNT, json!({"player_count": {"N": "2"}}));
    let broken = spec_image("broken-img", ACCOUNT, json!({}));
    w.put(&seed);
    w.put(&beta);
    w.put(&broken);

    // A NewImage that is not DynamoDB JSON, under valid Keys.
    let bad_image = json!({"pk": {"S": "TENANT#broken-img"}, "config": {"WAT": [1, 2]}});
    let records = vec![
        json!({"garbage": true, "dynamodb": 42}),
        insert(SEED, "100", &seed),
        record_at(
            "INSERT",
            "broken-img",
            "SPEC",
            "101",
            RECORD_TIME,
            Some(&bad_image),
            None,
        ),
        record_at(
            "MODIFY",
            SEED,
            "STATUS",
            "102",
            RECORD_TIME,
            Some(&json!({"pk": {"S": "TENANT#gs1234"}})),
            None,
        ),
        json!("not even an object"),
        insert("beta-co", "103", &beta),
    ];
    let report = w.handle(records).await;

    assert!(failures(&report).is_empty(), "{:?}", failures(&report));
    assert_eq!(w.status(SEED).status, Status::Ready);
    assert_eq!(w.status("beta-co").status, Status::Ready);
    // The record with the bad image still names its tenant, reconciled from the table.
    assert_eq!(w.status("broken-img").status, Status::Ready);
    assert_eq!(report.outcomes.len(), 3);
    assert_eq!(w.count(SEED, "create"), 1);

    assert_eq!(report.skipped.len(), 3, "{:?}", report.skipped);
    assert!(matches!(
        report.skipped[0],
        SkippedRecord::Undecodable { index: 0, .. }
    ));
    assert_eq!(
        report.skipped[1],
        SkippedRecord::NotASpec {
            index: 3,
            pk: "TENANT#gs1234".into(),
            sk: "STATUS".into()
        }
    );
    assert!(matches!(
        report.skipped[2],
        SkippedRecord::Undecodable { index: 4, .. }
    ));
}

#[tokio::test]
async fn an_event_without_records_does_nothing() {
    let w = World::new();
    let report = handle_batch(&w.reconciler, &w.stream, &json!({"foo": []})).await;
    assert!(report.outcomes.is_empty());
    assert!(failures(&report).is_empty());
    let report = w.handle(vec![]).await;
    assert!(report.outcomes.is_empty());
    assert!(w.spy.calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn invalid_specs_fail_with_the_field_and_touch_no_stack() {
    let w = World::new();
    let good = seed_image();
    let bad_account = spec_image("bad-account", "12345", seed_config("5"));
    let bad_key = spec_image("bad-key", ACCOUNT, json!({"colour": {"S": "red"}}));
    let bad_value = spec_image(
        "bad-value",
        ACCOUNT,
        json!({"difficulty": {"S": "nightmare"}}),
    );
    for image in [&good, &bad_account, &bad_key, &bad_value] {
        w.put(image);
    }
    let records = vec![
        insert("bad-account", "100", &bad_account),
        insert(SEED, "101", &good),
        insert("bad-key", "102", &bad_key),
        insert("bad-value", "103", &bad_value),
    ];
    let report = w.handle(records.clone()).await;
    assert!(failures(&report).is_empty());

    assert_eq!(w.status(SEED).status, Status::Ready);
    for (tenant, field, words) in [
        ("bad-account", "account_id", "must be exactly 12 digits"),
        ("bad-key", "config.colour", "has no parameter Colour"),
        ("bad-value", "config.difficulty", "must be one of"),
    ] {
        let status = w.status(tenant);
        assert_eq!(status.status, Status::Failed, "{tenant}");
        let reason = status.reason.clone().unwrap_or_default();
        assert!(reason.starts_with("invalid SPEC: "), "{tenant}: {reason}");
        assert!(reason.contains(field), "{tenant}: {reason}");
        assert!(reason.contains(words), "{tenant}: {reason}");
        assert!(!status.retryable, "{tenant}");
        assert_eq!(status.spec_fingerprint, None, "{tenant}");
        assert!(
            w.calls_for(tenant).is_empty(),
            "{tenant}: {:?}",
            w.calls_for(tenant)
        );
        match report.outcomes.get(&key(tenant)) {
            Some(Ok(Outcome::Failed { reason: r })) => assert_eq!(r, &reason),
            other => panic!("{tenant}: {other:?}"),
        }
    }
    assert_eq!(w.stacks.live_stacks(), [location(ACCOUNT, SEED)]);

    // The same batch again: each failure is recorded once.
    let writes = w.store.status_writes();
    let report = w.handle(records).await;
    assert!(failures(&report).is_empty());
    assert_eq!(w.store.status_writes(), writes);

    // Fixing a row provisions it.
    let fixed = spec_image("bad-account", ACCOUNT, seed_config("5"));
    w.put(&fixed);
    let report = w
        .handle(vec![modify("bad-account", "200", &bad_account, &fixed)])
        .await;
    assert!(failures(&report).is_empty());
    assert_eq!(w.status("bad-account").status, Status::Ready);
    assert_eq!(w.status("bad-account").reason, None);
}

/// Rows only the emulator could hold (written around the control plane, e.g. with
/// `aws dynamodb put-item` against moto) fail like any other invalid SPEC, every field named,
/// and hold up no other tenant.
#[tokio::test]
async fn specs_dynamodb_would_refuse_fail_naming_every_field_and_block_no_one() {
    let w = World::new();
    let good = seed_image();
    let digits = "1".repeat(39);
    let too_precise = with_attr(
        spec_image("too-precise", ACCOUNT, seed_config(&digits)),
        "account_id",
        json!({"S": "12"}),
    );
    let empty_key = spec_image(
        "empty-key",
        ACCOUNT,
        json!({"": {"S": "x"}, "difficulty": {"S": "hard"}}),
    );
    let number_id = with_attr(
        spec_image("number-id", ACCOUNT, seed_config("5")),
        "tenant_id",
        json!({"N": "7"}),
    );
    // Attributes the contract ignores still obey DynamoDB.
    let ignored_but_refused = with_attr(
        spec_image("ignored-refused", ACCOUNT, seed_config("5")),
        "notes",
        json!({"M": {"tags": {"SS": []}, "big": {"N": "1e200"}}}),
    );
    let bad = [&too_precise, &empty_key, &number_id, &ignored_but_refused];
    let tenants = ["too-precise", "empty-key", "number-id", "ignored-refused"];
    w.put(&good);
    for image in bad {
        w.put(image);
    }
    let mut records: Vec<Value> = tenants
        .iter()
        .zip(bad)
        .enumerate()
        .map(|(i, (tenant, image))| insert(tenant, &format!("10{i}"), image))
        .collect();
    records.insert(2, insert(SEED, "200", &good));
    let report = w.handle(records).await;
    assert!(failures(&report).is_empty());
    assert_eq!(w.status(SEED).status, Status::Ready);

    for (tenant, expected) in [
        (
            "too-precise",
            format!(
                "invalid SPEC: config.player_count: \"{digits}\" has 39 significant digits: \
                 DynamoDB keeps at most 38; account_id: must be exactly 12 digits, got \"12\""
            ),
        ),
        (
            "empty-key",
            "invalid SPEC: config.\"\": DynamoDB refuses an empty map key".to_owned(),
        ),
        (
            "number-id",
            "invalid SPEC: tenant_id: must be a string (S), got N: DynamoDB requires it of the \
             partition key of index \"tenants\""
                .to_owned(),
        ),
        (
            "ignored-refused",
            "invalid SPEC: notes.big: \"1e200\" is beyond DynamoDB's number range (magnitude \
             1E-130 to 9.9999999999999999999999999999999999999E+125); notes.tags: DynamoDB \
             refuses an empty set (SS)"
                .to_owned(),
        ),
    ] {
        let status = w.status(tenant);
        assert_eq!(status.status, Status::Failed, "{tenant}");
        assert_eq!(
            status.reason.as_deref(),
            Some(expected.as_str()),
            "{tenant}"
        );
        assert!(!status.retryable, "{tenant}");
        assert!(w.calls_for(tenant).is_empty(), "{tenant}");
    }
    assert_eq!(w.stacks.live_stacks(), [location(ACCOUNT, SEED)]);
}

/// However large the faults of a SPEC, its reason fits the STATUS row (which the fake, like
/// DynamoDB, refuses over 400 KB): the tenant still ends failed, with the fields named.
#[tokio::test]
async fn a_huge_bad_value_still_ends_failed_with_a_bounded_reason() {
    let w = World::new();
    let huge = with_attr(
        spec_image("huge-value", ACCOUNT, seed_config("5")),
        "account_id",
        json!({"S": "9".repeat(300_000)}),
    );
    let huge = with_attr(huge, "region", json!({"S": "x".repeat(90_000)}));
    w.put(&huge);
    let report = w.handle(vec![insert("huge-value", "100", &huge)]).await;
    assert!(failures(&report).is_empty());
    let status = w.status("huge-value");
    assert_eq!(status.status, Status::Failed);
    let reason = status.reason.unwrap_or_default();
    assert!(reason.len() <= 8 * 1024 + 64, "{} bytes", reason.len());
    assert!(
        reason.contains("account_id: must be exactly 12 digits"),
        "{reason}"
    );
    assert!(
        reason.contains("; region: must be an AWS region name"),
        "{reason}"
    );
}

#[tokio::test]
async fn an_invalid_spec_over_a_ready_stack_leaves_the_stack_alone() {
    let w = World::new();
    let good = seed_image();
    w.ready_with(&good).await;
    let before = w.stack(SEED);
    let bad = spec_image(SEED, ACCOUNT, json!({"player_count": {"S": "many"}}));
    w.put(&bad);
    let report = w.handle(vec![modify(SEED, "200", &good, &bad)]).await;
    assert!(failures(&report).is_empty());
    let status = w.status(SEED);
    assert_eq!(status.status, Status::Failed);
    assert!(status.reason.unwrap().contains("config.player_count"));
    // The stack is still found later: its location stays on STATUS.
    assert_eq!(status.location, Some(location(ACCOUNT, SEED)));
    assert_eq!(w.mutating_calls(SEED), ["create"]);
    assert_eq!(w.stack(SEED).observed, before.observed);

    // Restoring the previous SPEC counts as a change and converges back to ready.
    w.put(&good);
    let report = w.handle(vec![modify(SEED, "300", &bad, &good)]).await;
    assert!(failures(&report).is_empty());
    assert_eq!(w.status(SEED).status, Status::Ready);
    assert_eq!(w.status(SEED).spec_fingerprint, Some(fingerprint_of(&good)));
    assert_eq!(w.count(SEED, "create"), 1);
}

// ------------------------------------------------------------------------------------------------
// Transient and permanent errors
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_transient_create_failure_is_recorded_and_reported_for_a_quick_retry() {
    let w = World::new();
    let image = seed_image();
    w.put(&image);
    w.stacks
        .fail_next("create", StackError::Transient("Rate exceeded".into()));
    // Two records for the tenant: the first (lowest) sequence number is reported.
    let batch = vec![
        insert(SEED, "100", &image),
        modify(SEED, "101", &image, &image),
    ];
    let report = w.handle(batch.clone()).await;
    assert_eq!(failures(&report), ["100"]);
    match report.outcomes.get(&key(SEED)) {
        Some(Ok(Outcome::Retrying {
            reason,
            retry_now: true,
            ..
        })) => assert!(reason.contains("Rate exceeded"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // The failure is on STATUS with its reason, due at once; the location stays recorded; the
    // call that was never accepted does not count as an attempt.
    let status = w.status(SEED);
    assert_eq!(status.status, Status::Failed);
    assert!(status.retryable);
    assert_eq!(status.retries, 1);
    assert_eq!(status.attempts, 0);
    assert_eq!(status.next_attempt_at, Some(rfc3339(w.now())));
    assert!(status.reason.unwrap_or_default().contains("Rate exceeded"));
    assert_eq!(status.location, Some(location(ACCOUNT, SEED)));
    assert!(w.stacks.live_stacks().is_empty());

    // Lambda retries the batch: it converges.
    let report = w.handle(batch).await;
    assert!(failures(&report).is_empty());
    let status = w.status(SEED);
    assert_eq!(status.status, Status::Ready);
    assert_eq!((status.retries, status.reason), (0, None));
    assert_eq!(w.count(SEED, "create"), 2);
    assert_eq!(w.stacks.live_stacks().len(), 1);
}

#[tokio::test]
async fn a_transient_describe_failure_is_recorded_and_reported_for_a_quick_retry() {
    let w = World::new();
    let good = seed_image();
    let other = spec_image("beta-co", ACCOUNT, json!({}));
    w.put(&good);
    w.put(&other);
    w.stacks.fail_next(
        "describe",
        StackError::Transient("AccessDenied: role still propagating".into()),
    );
    // Handled one after the other (so the injected fault hits the first tenant reconciled).
    let report = w.handle(vec![insert("beta-co", "100", &other)]).await;
    assert_eq!(failures(&report), ["100"]);
    // The writer sees why; nothing was started.
    let status = w.status("beta-co");
    assert_eq!(status.status, Status::Failed);
    assert!(status.retryable);
    assert!(
        status
            .reason
            .unwrap_or_default()
            .contains("role still propagating")
    );
    assert!(w.mutating_calls("beta-co").is_empty());

    let report = w
        .handle(vec![
            insert("beta-co", "100", &other),
            insert(SEED, "101", &good),
        ])
        .await;
    assert!(failures(&report).is_empty());
    assert_eq!(w.status("beta-co").status, Status::Ready);
    assert_eq!(w.status(SEED).status, Status::Ready);
}

#[tokio::test]
async fn after_the_quick_retries_a_transient_failure_waits_for_its_next_attempt() {
    let w = World::new();
    let image = seed_image();
    w.put(&image);
    let quick = Settings::new(REGION).quick_retries;
    for _ in 0..quick {
        w.stacks
            .fail_next("create", StackError::Transient("Rate exceeded".into()));
        let report = w.handle(vec![insert(SEED, "100", &image)]).await;
        assert_eq!(failures(&report), ["100"]);
    }
    // One more: no longer handed back to Lambda (the shard moves on); backed off on STATUS.
    let now = w.now();
    w.stacks
        .fail_next("create", StackError::Transient("Rate exceeded".into()));
    let report = w.handle(vec![insert(SEED, "100", &image)]).await;
    assert!(failures(&report).is_empty(), "{:?}", failures(&report));
    assert!(matches!(
        report.outcomes.get(&key(SEED)),
        Some(Ok(Outcome::Retrying {
            retry_now: false,
            ..
        }))
    ));
    let status = w.status(SEED);
    assert_eq!(status.status, Status::Failed);
    assert!(status.retryable);
    let next = status.next_attempt_at.clone().expect("next_attempt_at set");
    let next_time = DateTime::parse_from_rfc3339(&next)
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!((next_time - now).num_seconds(), 30);
    let reason = status.reason.clone().unwrap();
    assert!(reason.contains("Rate exceeded"), "{reason}");
    assert!(
        reason.contains(&format!("will retry after {next}")),
        "{reason}"
    );
    assert!(w.stacks.live_stacks().is_empty());

    // Before the next attempt is due, a reconcile leaves it be.
    let creates = w.count(SEED, "create");
    assert_eq!(
        w.reconcile(SEED).await,
        Outcome::Converged(Some(Status::Failed))
    );
    assert_eq!(w.count(SEED, "create"), creates);
    // Once due, it is tried again and converges.
    w.set_now(next_time + chrono::Duration::seconds(1));
    assert_eq!(
        w.reconcile(SEED).await,
        Outcome::Converged(Some(Status::Ready))
    );
    assert_eq!(w.count(SEED, "create"), creates + 1);
    let status = w.status(SEED);
    assert!(!status.retryable);
    assert_eq!(status.next_attempt_at, None);
    assert_eq!(status.reason, None);
}

#[tokio::test]
async fn a_record_with_an_undecodable_image_still_reconciles_its_tenant() {
    let w = World::new();
    let image = seed_image();
    w.put(&image);
    // Valid keys and creation time, an image that is not DynamoDB JSON.
    let bad_image = json!({"pk": {"S": "TENANT#gs1234"}, "config": {"WAT": 1}});
    let record = record_at(
        "INSERT",
        SEED,
        "SPEC",
        "100",
        RECORD_TIME,
        Some(&bad_image),
        None,
    );
    let report = w.handle(vec![record]).await;
    assert!(failures(&report).is_empty(), "{:?}", failures(&report));
    assert!(report.skipped.is_empty());
    assert_eq!(w.status(SEED).status, Status::Ready);
}

#[tokio::test]
async fn a_rejected_create_fails_with_cloudformations_words() {
    let w = World::new();
    let image = seed_image();
    w.put(&image);
    let message = "ValidationError: Template format error: Unresolved resource dependencies";
    w.stacks
        .fail_next("create", StackError::Rejected(message.into()));
    let report = w.handle(vec![insert(SEED, "100", &image)]).await;
    assert!(
        failures(&report).is_empty(),
        "a permanent failure is not retried by Lambda"
    );
    let status = w.status(SEED);
    assert_eq!(status.status, Status::Failed);
    assert!(!status.retryable);
    let reason = status.reason.clone().unwrap();
    assert_eq!(
        reason,
        format!("CloudFormation rejected the create: {message}")
    );
    assert_eq!(
        report.outcomes.get(&key(SEED)),
        Some(&Ok(Outcome::Failed { reason }))
    );
    assert!(w.stacks.live_stacks().is_empty());

    // Redelivered: the failure stands until the SPEC changes.
    let report = w.handle(vec![insert(SEED, "100", &image)]).await;
    assert!(failures(&report).is_empty());
    assert_eq!(w.count(SEED, "create"), 1);
    assert_eq!(w.status(SEED).status, Status::Failed);
}

#[tokio::test]
async fn a_store_conflict_is_retried_until_it_converges() {
    let w = World::new();
    let image = seed_image();
    w.put(&image);
    // The intent write loses twice, then the final write once.
    w.store
        .fail_next_writes([StoreError::Conflict, StoreError::Conflict]);
    assert_eq!(
        w.reconcile(SEED).await,
        Outcome::Converged(Some(Status::Ready))
    );
    assert_eq!(w.count(SEED, "create"), 1);
    assert_eq!(w.status(SEED).status, Status::Ready);

    // A conflict on the terminal write of an update (the intent went through while it ran).
    let v2 = spec_image(SEED, ACCOUNT, seed_config("9"));
    w.put(&v2);
    w.stacks.set_behaviour("tenant-gs1234", Behaviour::Hang);
    assert!(matches!(w.reconcile(SEED).await, Outcome::InFlight { .. }));
    assert_eq!(w.status(SEED).status, Status::Updating);
    w.stacks.finish_in_progress();
    let writes = w.store.status_writes();
    w.store.fail_next_writes([StoreError::Conflict]);
    assert_eq!(
        w.reconcile(SEED).await,
        Outcome::Converged(Some(Status::Ready))
    );
    assert_eq!(w.store.status_writes(), writes + 1);
    assert_eq!(w.count(SEED, "update"), 1);
    assert_eq!(params(&w.stack(SEED).observed)["PlayerCount"], "9");
    assert_eq!(w.status(SEED).spec_fingerprint, Some(fingerprint_of(&v2)));
}

#[tokio::test]
async fn a_concurrent_status_write_wins_and_the_reconcile_decides_again() {
    let w = World::new();
    let image = seed_image();
    w.put(&image);
    w.stacks.set_behaviour("tenant-gs1234", Behaviour::Hang);
    assert!(matches!(w.reconcile(SEED).await, Outcome::InFlight { .. }));
    // Someone else (another reconcile) moved STATUS on meanwhile: a stale view must lose.
    let mut newer = w.status(SEED);
    newer.version += 5;
    w.store.set_status(&key(SEED), newer.clone());
    w.stacks.finish_in_progress();
    assert_eq!(
        w.reconcile(SEED).await,
        Outcome::Converged(Some(Status::Ready))
    );
    let status = w.status(SEED);
    assert_eq!(status.version, newer.version + 1);
    assert_eq!(w.count(SEED, "create"), 1);
}

#[tokio::test]
async fn an_unavailable_store_is_a_transient_error() {
    let w = World::new();
    let image = seed_image();
    w.put(&image);
    // Unavailable both for the reconcile and for recording its failure: nothing can be recorded,
    // so the error goes back to the trigger.
    w.store.fail_next_loads([
        StoreError::Unavailable("throttled".into()),
        StoreError::Unavailable("throttled".into()),
    ]);
    let error = w.reconciler.reconcile(&key(SEED)).await.unwrap_err();
    assert!(error.0.contains("throttled"), "{error}");
    assert!(w.calls_for(SEED).is_empty());
    assert_eq!(
        w.reconcile(SEED).await,
        Outcome::Converged(Some(Status::Ready))
    );
}

// ------------------------------------------------------------------------------------------------
// CloudFormation failure states
// ------------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_failed_create_then_a_retry_bump_recreates_the_stack() {
    let w = World::new();
    let image = seed_image();
    w.put(&image);
    w.stacks.set_behaviour(
        "tenant-gs1234",
        Behaviour::FailCreate {
            resource_reason: "JobsQueue: Resource limit exceeded".into(),
        },
    );
    let report = w.handle(vec![insert(SEED, "100", &image)]).await;
    assert!(failures(&report).is_empty());
    let status = w.status(SEED);
    assert_eq!(status.status, Status::Failed);
    assert_eq!(
        status.reason.as_deref(),
        Some("the create failed and was rolled back: JobsQueue: Resource limit exceeded")
    );
    assert!(!status.retryable);
    assert_eq!(
        status.stack_status.as_ref().map(|s| s.as_str()),
        Some("ROLLBACK_COMPLETE")
    );
    assert!(matches!(
        report.outcomes.get(&key(SEED)),
        Some(Ok(Outcome::Failed { reason })) if reason.contains("Resource limit exceeded")
    ));
    assert_eq!(w.stack(SEED).observed.status, StackStatus::RollbackComplete);

    // Redelivered: the failure stands.
    let report = w.handle(vec![insert(SEED, "100", &image)]).await;
    assert!(failures(&report).is_empty());
    assert_eq!(w.mutating_calls(SEED), ["create"]);

    // The cause is fixed and `retry` bumped: delete the failed create, create again.
    w.stacks.set_behaviour("tenant-gs1234", Behaviour::Succeed);
    let bumped = with_attr(image.clone(), "retry", json!({"N": "1"}));
    w.put(&bumped);
    let report = w.handle(vec![modify(SEED, "200", &image, &bumped)]).await;
    assert!(failures(&report).is_empty());
    assert_eq!(w.mutating_calls(SEED), ["create", "delete", "create"]);
    let status = w.status(SEED);
    assert_eq!(status.status, Status::Ready);
    assert_eq!(status.reason, None);
    assert_eq!(status.spec_fingerprint, Some(fingerprint_of(&bumped)));
    assert_eq!(w.stack(SEED).observed.status, StackStatus::CreateComplete);
    assert_eq!(w.stacks.live_stacks().len(), 1);
}

#[tokio::test]
async fn a_failed_update_is_rolled_back_and_reported() {
    let w = World::new();
    let v1 = seed_image();
    w.ready_with(&v1).await;
    w.stacks.set_behaviour(
        "tenant-gs1234",
        Behaviour::FailUpdate {
            resource_reason: "SettingsParameter: value too long".into(),
        },
    );
    let v2 = spec_image(SEED, ACCOUNT, seed_config("50"));
    w.put(&v2);
    let report = w.handle(vec![modify(SEED, "200", &v1, &v2)]).await;
    assert!(failures(&report).is_empty());
    let status = w.status(SEED);
    assert_eq!(status.status, Status::Failed);
    assert_eq!(
        status.reason.as_deref(),
        Some("the update failed and was rolled back: SettingsParameter: value too long")
    );
    assert_eq!(status.spec_fingerprint, Some(fingerprint_of(&v2)));
    let stack = w.stack(SEED);
    assert_eq!(stack.observed.status, StackStatus::UpdateRollbackComplete);
    assert_eq!(params(&stack.observed)["PlayerCount"], "5", "rolled back");

    // Redelivered: no second update for the same SPEC.
    let report = w.handle(vec![modify(SEED, "200", &v1, &v2)]).await;
    assert!(failures(&report).is_empty());
    assert_eq!(w.count(SEED, "update"), 1);

    // Going back to the previous SPEC makes it ready again. The stack already runs it
    // ("no updates are to be performed") and still shows UPDATE_ROLLBACK_COMPLETE from the
    // failed update: that old failure must not be taken for this update's.
    w.stacks.set_behaviour("tenant-gs1234", Behaviour::Succeed);
    w.put(&v1);
    let report = w.handle(vec![modify(SEED, "300", &v2, &v1)]).await;
    assert!(failures(&report).is_empty());
    assert_eq!(
        report.outcomes.get(&key(SEED)),
        Some(&Ok(Outcome::Converged(Some(Status::Ready))))
    );
    let status = w.status(SEED);
    assert_eq!(status.status, Status::Ready);
    assert_eq!(status.reason, None);
    assert_eq!(status.spec_fingerprint, Some(fingerprint_of(&v1)));
    assert_eq!(w.count(SEED, "update"), 2);
    assert_eq!(
        w.stack(SEED).observed.status,
        StackStatus::UpdateRollbackComplete
    );
    // And it stays ready.
    let writes = w.store.status_writes();
    assert_eq!(
        w.reconcile(SEED).await,
        Outcome::Converged(Some(Status::Ready))
    );
    assert_eq!(w.store.status_writes(), writes);
}

#[tokio::test]
async fn a_retry_bump_after_a_failed_update_applies_it() {
    let w = World::new();
    let v1 = seed_image();
    w.ready_with(&v1).await;
    w.stacks.set_behaviour(
        "tenant-gs1234",
        Behaviour::FailUpdate {
            resource_reason: "JobsQueue: throttled".into(),
        },
    );
    let v2 = spec_image(SEED, ACCOUNT, seed_config("6"));
    w.put(&v2);
    assert!(matches!(w.reconcile(SEED).await, Outcome::Failed { .. }));
    // Fixed: the same config with `retry` bumped is tried again and, this time, applied.
    w.stacks.set_behaviour("tenant-gs1234", Behaviour::Succeed);
    let bumped = with_attr(v2, "retry", json!({"N": "1"}));
    w.put(&bumped);
    assert_eq!(
        w.reconcile(SEED).await,
        Outcome::Converged(Some(Status::Ready))
    );
    assert_eq!(params(&w.stack(SEED).observed)["PlayerCount"], "6");
    assert_eq!(w.count(SEED, "update"), 2);
}

#[tokio::test]
async fn a_spec_removed_while_its_create_runs_is_deleted_once_it_ends() {
    let w = World::new();
    let image = seed_image();
    w.put(&image);
    w.stacks.set_behaviour("tenant-gs1234", Behaviour::Hang);
    assert!(matches!(w.reconcile(SEED).await, Outcome::InFlight { .. }));
    w.remove(SEED);
    // Busy: no delete yet.
    assert!(matches!(w.reconcile(SEED).await, Outcome::InFlight { .. }));
    assert_eq!(w.mutating_calls(SEED), ["create"]);
    w.stacks.finish_in_progress();
    w.stacks.set_behaviour("tenant-gs1234", Behaviour::Succeed);
    assert_eq!(
        w.reconcile(SEED).await,
        Outcome::Converged(Some(Status::Deleted))
    );
    assert_eq!(w.mutating_calls(SEED), ["create", "delete"]);
    assert!(w.stacks.live_stacks().is_empty());
}

#[tokio::test]
async fn a_failed_update_rollback_is_continued_and_ends_failed() {
    let w = World::new();
    let v1 = seed_image();
    w.ready_with(&v1).await;
    w.stacks.set_behaviour(
        "tenant-gs1234",
        Behaviour::FailUpdateRollback {
            resource_reason: "JobsQueue: cannot restore".into(),
        },
    );
    let v2 = spec_image(SEED, ACCOUNT, seed_config("6"));
    w.put(&v2);
    let report = w.handle(vec![modify(SEED, "200", &v1, &v2)]).await;
    assert!(failures(&report).is_empty());
    assert_eq!(
        w.mutating_calls(SEED),
        ["create", "update", "continue_update_rollback"]
    );
    let status = w.status(SEED);
    assert_eq!(status.status, Status::Failed);
    assert_eq!(
        status.reason.as_deref(),
        Some("the update failed and was rolled back: JobsQueue: cannot restore")
    );
    assert_eq!(
        w.stack(SEED).observed.status,
        StackStatus::UpdateRollbackComplete
    );
    // Settled: redelivery does nothing more.
    let report = w.handle(vec![modify(SEED, "200", &v1, &v2)]).await;
    assert!(failures(&report).is_empty());
    assert_eq!(w.mutating_calls(SEED).len(), 3);
}

#[tokio::test]
async fn a_failed_delete_is_reported_and_not_repeated() {
    let w = World::new();
    let image = seed_image();
    w.ready_with(&image).await;
    w.stacks.set_behaviour(
        "tenant-gs1234",
        Behaviour::FailDelete {
            resource_reason: "JobsQueue: queue is not empty".into(),
        },
    );
    w.remove(SEED);
    let report = w.handle(vec![remove(SEED, "200", &image)]).await;
    assert!(failures(&report).is_empty());
    let status = w.status(SEED);
    assert_eq!(status.status, Status::Failed);
    assert_eq!(
        status.reason.as_deref(),
        Some("the delete failed: JobsQueue: queue is not empty")
    );
    assert_eq!(
        status.spec_fingerprint.as_deref(),
        Some(REMOVED_FINGERPRINT)
    );
    let stack = w.stack(SEED);
    assert_eq!(stack.observed.status, StackStatus::DeleteFailed);
    assert!(!stack.termination_protection);
    assert_eq!(w.stacks.live_stacks().len(), 1);

    let report = w.handle(vec![remove(SEED, "200", &image)]).await;
    assert!(failures(&report).is_empty());
    assert_eq!(w.count(SEED, "delete"), 1);
}

#[tokio::test]
async fn a_hanging_create_is_finalized_by_a_later_reconcile() {
    let w = World::new();
    let image = seed_image();
    w.put(&image);
    w.stacks.set_behaviour("tenant-gs1234", Behaviour::Hang);
    let report = w.handle(vec![insert(SEED, "100", &image)]).await;
    assert!(failures(&report).is_empty());
    assert_eq!(
        report.outcomes.get(&key(SEED)),
        // Just started: looked at again soon.
        Some(&Ok(Outcome::InFlight {
            requeue_after: Settings::new(REGION).requeue_min
        }))
    );
    assert_eq!(w.status(SEED).status, Status::Creating);
    assert_eq!(w.stack(SEED).observed.status, StackStatus::CreateInProgress);

    // Still running: wait, no second create.
    assert!(matches!(w.reconcile(SEED).await, Outcome::InFlight { .. }));
    assert_eq!(w.count(SEED, "create"), 1);

    w.stacks.finish_in_progress();
    assert_eq!(
        w.reconcile(SEED).await,
        Outcome::Converged(Some(Status::Ready))
    );
    let status = w.status(SEED);
    assert_eq!(status.status, Status::Ready);
    assert_eq!(
        status.stack_status.as_ref().map(|s| s.as_str()),
        Some("CREATE_COMPLETE")
    );
    assert_eq!(w.mutating_calls(SEED), ["create"]);
}

#[tokio::test]
async fn a_hanging_delete_is_finalized_by_a_later_reconcile() {
    let w = World::new();
    let image = seed_image();
    w.ready_with(&image).await;
    w.stacks.set_behaviour("tenant-gs1234", Behaviour::Hang);
    w.remove(SEED);
    assert!(matches!(w.reconcile(SEED).await, Outcome::InFlight { .. }));
    assert_eq!(w.status(SEED).status, Status::Deleting);
    assert_eq!(w.stack(SEED).observed.status, StackStatus::DeleteInProgress);
    w.stacks.finish_in_progress();
    assert_eq!(
        w.reconcile(SEED).await,
        Outcome::Converged(Some(Status::Deleted))
    );
    assert!(w.stacks.live_stacks().is_empty());
    assert_eq!(w.count(SEED, "delete"), 1);
}

#[tokio::test]
async fn a_stack_left_in_review_is_replaced() {
    let w = World::new();
    let image = seed_image();
    w.put(&image);
    w.stacks
        .seed(&location(ACCOUNT, SEED), StackStatus::ReviewInProgress);
    assert_eq!(
        w.reconcile(SEED).await,
        Outcome::Converged(Some(Status::Ready))
    );
    assert_eq!(w.mutating_calls(SEED), ["delete", "create"]);
    assert_eq!(w.stack(SEED).observed.status, StackStatus::CreateComplete);
}

#[tokio::test]
async fn a_stack_needing_an_operator_is_failed_once() {
    let w = World::new();
    let image = seed_image();
    w.put(&image);
    w.stacks
        .seed(&location(ACCOUNT, SEED), StackStatus::ImportRollbackFailed);
    let outcome = w.reconcile(SEED).await;
    assert!(
        matches!(&outcome, Outcome::Failed { reason } if reason.contains("IMPORT_ROLLBACK_FAILED")),
        "{outcome:?}"
    );
    let writes = w.store.status_writes();
    assert_eq!(
        w.reconcile(SEED).await,
        Outcome::Converged(Some(Status::Failed))
    );
    assert_eq!(w.store.status_writes(), writes);
    assert!(w.mutating_calls(SEED).is_empty());
}

#[tokio::test]
async fn moving_a_tenant_to_another_account_is_refused() {
    let w = World::new();
    let v1 = seed_image();
    w.ready_with(&v1).await;
    let before = w.stack(SEED);
    let calls_before = w.calls_for(SEED).len();

    let moved = spec_image(SEED, "222222222222", seed_config("5"));
    w.put(&moved);
    let report = w.handle(vec![modify(SEED, "200", &v1, &moved)]).await;
    assert!(failures(&report).is_empty());
    let status = w.status(SEED);
    assert_eq!(status.status, Status::Failed);
    let reason = status.reason.clone().unwrap();
    assert!(reason.contains("cannot change"), "{reason}");
    // Blocked by the old stack, not settled: it clears once that stack is gone.
    assert!(status.retryable);
    // Still pointing at the stack that exists.
    assert_eq!(status.location, Some(location(ACCOUNT, SEED)));

    // Only the recorded stack was looked at; nothing was called anywhere.
    let new_calls: Vec<_> = w.calls_for(SEED).split_off(calls_before);
    assert_eq!(new_calls, ["describe"]);
    assert_eq!(w.mutating_calls(SEED), ["create"]);
    let after = w.stack(SEED);
    assert_eq!(after.observed, before.observed);
    assert!(after.termination_protection);
    assert_eq!(w.stacks.live_stacks(), [location(ACCOUNT, SEED)]);

    // Recorded once.
    let writes = w.store.status_writes();
    let report = w.handle(vec![modify(SEED, "200", &v1, &moved)]).await;
    assert!(failures(&report).is_empty());
    assert_eq!(w.store.status_writes(), writes);

    // Back to the original account: ready again, on the same stack.
    w.put(&v1);
    let report = w.handle(vec![modify(SEED, "300", &moved, &v1)]).await;
    assert!(failures(&report).is_empty());
    assert_eq!(w.status(SEED).status, Status::Ready);
    assert_eq!(w.count(SEED, "create"), 1);
    assert_eq!(w.stack(SEED).observed.stack_id, before.observed.stack_id);
}

#[tokio::test]
async fn a_drifted_stack_is_updated_back() {
    let w = World::new();
    let image = seed_image();
    w.put(&image);
    // A stack someone else made at the tenant's location, with other parameters: adopted.
    let at_seed = location(ACCOUNT, SEED);
    w.stacks.seed(&at_seed, StackStatus::CreateComplete);
    assert_eq!(
        w.reconcile(SEED).await,
        Outcome::Converged(Some(Status::Ready))
    );
    assert_eq!(w.mutating_calls(SEED), ["update"]);
    assert_eq!(params(&w.stack(SEED).observed)["PlayerCount"], "5");
    // Converged: another look changes nothing.
    assert_eq!(
        w.reconcile(SEED).await,
        Outcome::Converged(Some(Status::Ready))
    );
    assert_eq!(w.mutating_calls(SEED), ["update"]);
}

#[tokio::test]
async fn the_retry_bound_stops_an_endless_loop() {
    let w = World::new();
    let image = seed_image();
    w.put(&image);
    let max = w.reconciler.settings().max_attempts;
    // CreateStack throttled every time: retried (quickly, then backing off), never forever.
    for _ in 0..max {
        w.stacks
            .fail_next("create", StackError::Transient("Rate exceeded".into()));
        let outcome = w.reconcile(SEED).await;
        assert!(matches!(outcome, Outcome::Retrying { .. }), "{outcome:?}");
        let next = w.status(SEED).next_attempt_at.expect("next attempt");
        w.set_now(
            DateTime::parse_from_rfc3339(&next)
                .unwrap()
                .with_timezone(&Utc),
        );
    }
    w.stacks
        .fail_next("create", StackError::Transient("Rate exceeded".into()));
    let outcome = w.reconcile(SEED).await;
    assert!(
        matches!(&outcome, Outcome::Failed { reason } if reason.contains("gave up after")),
        "{outcome:?}"
    );
    assert_eq!(w.count(SEED, "create"), max as usize + 1);
    let status = w.status(SEED);
    assert!(!status.retryable);
    // Calls that were never accepted are not attempts.
    assert_eq!(status.attempts, 0);
    // Bumping `retry` tries again.
    let bumped = with_attr(image, "retry", json!({"N": "1"}));
    w.put(&bumped);
    assert_eq!(
        w.reconcile(SEED).await,
        Outcome::Converged(Some(Status::Ready))
    );
}

#[tokio::test]
async fn transient_failures_back_off_exponentially_and_stop_at_the_limit() {
    let w = World::new();
    let image = seed_image();
    w.put(&image);
    let mut now = at(RECORD_TIME + 600);
    let mut waits = Vec::new();
    // A describe that keeps failing (a role that never propagates): no operation ever starts.
    for _ in 0..=Settings::new(REGION).max_attempts {
        w.set_now(now);
        w.stacks.fail_next(
            "describe",
            StackError::Transient("AccessDenied: not yet".into()),
        );
        let report = w.handle(vec![insert(SEED, "100", &image)]).await;
        let status = w.status(SEED);
        // The quick retries go back to Lambda; the others wait on STATUS.
        let quick = status.retries <= Settings::new(REGION).quick_retries;
        assert_eq!(failures(&report).is_empty(), !quick, "{status:?}");
        let Some(next) = status.next_attempt_at.clone() else {
            break;
        };
        let next = DateTime::parse_from_rfc3339(&next)
            .unwrap()
            .with_timezone(&Utc);
        waits.push((next - now).num_seconds());
        now = next + chrono::Duration::seconds(1);
    }
    assert_eq!(waits, [0, 0, 30, 60, 120]);
    let status = w.status(SEED);
    assert_eq!(status.status, Status::Failed);
    assert!(!status.retryable);
    assert_eq!(status.retries, 6);
    let reason = status.reason.unwrap_or_default();
    assert!(
        reason.starts_with("gave up after 6 failures that should have healed"),
        "{reason}"
    );
    assert!(w.stacks.live_stacks().is_empty());
}

#[tokio::test]
async fn a_passing_error_never_replaces_a_permanent_failure() {
    let w = World::new();
    let image = seed_image();
    w.put(&image);
    w.stacks.set_behaviour(
        &format!("tenant-{SEED}"),
        Behaviour::FailCreate {
            resource_reason: "JobsQueue: quota exceeded".into(),
        },
    );
    w.handle(vec![insert(SEED, "100", &image)]).await;
    let failed = w.status(SEED);
    assert!(!failed.retryable);
    let reason = failed.reason.clone().unwrap_or_default();
    assert!(reason.contains("quota exceeded"), "{reason}");

    // A late duplicate meets a transient error once the record is old.
    w.set_now(at(RECORD_TIME + 3600));
    w.stacks
        .fail_next("describe", StackError::Transient("Rate exceeded".into()));
    let report = w.handle(vec![insert(SEED, "100", &image)]).await;
    assert!(failures(&report).is_empty());
    assert_eq!(w.status(SEED), failed);
}

#[tokio::test]
async fn an_update_whose_call_never_went_through_is_not_taken_for_done() {
    let w = World::new();
    let v1 = seed_image();
    w.put(&v1);
    w.handle(vec![insert(SEED, "100", &v1)]).await;
    assert_eq!(w.status(SEED).status, Status::Ready);

    // The intent of an update was recorded, then the function died before UpdateStack.
    let v2 = spec_image(SEED, ACCOUNT, seed_config("9"));
    w.put(&v2);
    let mut intent = w.status(SEED);
    intent.status = Status::Updating;
    intent.operation = Some(Operation::Update);
    intent.spec_fingerprint = Some(fingerprint_of(&v2));
    intent.version += 1;
    w.store.set_status(&key(SEED), intent);

    // The stack still carries v1's fingerprint: the update is made, not assumed.
    assert_eq!(
        w.reconcile(SEED).await,
        Outcome::Converged(Some(Status::Ready))
    );
    assert_eq!(w.mutating_calls(SEED), ["create", "update"]);
    assert_eq!(params(&w.stack(SEED).observed)["PlayerCount"], "9");
}

#[tokio::test]
async fn a_stack_the_control_plane_did_not_make_is_never_touched() {
    let w = World::new();
    let image = seed_image();
    w.put(&image);
    w.stacks
        .seed_foreign(&location(ACCOUNT, SEED), StackStatus::CreateComplete);
    let report = w.handle(vec![insert(SEED, "100", &image)]).await;
    assert!(failures(&report).is_empty());
    let status = w.status(SEED);
    assert_eq!(status.status, Status::Failed);
    let reason = status.reason.clone().unwrap_or_default();
    assert!(reason.contains("not made by the control plane"), "{reason}");
    assert!(w.mutating_calls(SEED).is_empty());

    // Removing the tenant leaves the foreign stack alone too.
    w.remove(SEED);
    w.handle(vec![remove(SEED, "101", &image)]).await;
    assert_eq!(w.status(SEED).status, Status::Deleted);
    assert!(w.mutating_calls(SEED).is_empty());
    assert_eq!(w.stacks.live_stacks(), [location(ACCOUNT, SEED)]);
}

#[tokio::test]
async fn near_the_invocation_deadline_no_tenant_is_started() {
    let w = World::new();
    let image = seed_image();
    w.put(&image);
    let deadline = std::time::SystemTime::now() + Duration::from_secs(5);
    let report = controlplane::triggers::stream::handle_batch_until(
        &w.reconciler,
        &w.stream,
        &json!({ "Records": [insert(SEED, "100", &image)] }).to_string(),
        Some(deadline),
    )
    .await;
    // Handed back to Lambda untouched, rather than cut off halfway by the timeout.
    assert_eq!(failures(&report), ["100"]);
    assert!(w.calls_for(SEED).is_empty());
    assert!(w.store.status(&key(SEED)).is_none());
}

#[tokio::test]
async fn a_spec_written_while_a_rollback_is_stuck_is_applied_after_it() {
    let w = World::new();
    let v2 = spec_image(SEED, ACCOUNT, seed_config("6"));
    // The update to v2 failed and so did its rollback.
    w.stacks
        .seed(&location(ACCOUNT, SEED), StackStatus::UpdateRollbackFailed);
    let mut stuck = TenantStatus {
        attempts: 1,
        operation: Some(Operation::Update),
        location: Some(location(ACCOUNT, SEED)),
        template_version: Some("v1".into()),
        spec_fingerprint: Some(fingerprint_of(&v2)),
        version: 1,
        ..TenantStatus::new(SEED, Status::Updating, rfc3339(w.now()))
    };
    stuck.stack_status = Some("UPDATE_ROLLBACK_FAILED".into());
    w.store.set_status(&key(SEED), stuck);
    // Meanwhile the SPEC moves on to v3.
    let v3 = spec_image(SEED, ACCOUNT, seed_config("7"));
    w.put(&v3);
    assert_eq!(
        w.reconcile(SEED).await,
        Outcome::Converged(Some(Status::Ready))
    );
    assert_eq!(
        w.mutating_calls(SEED),
        ["continue_update_rollback", "update"]
    );
    assert_eq!(params(&w.stack(SEED).observed)["PlayerCount"], "7");
    assert_eq!(w.status(SEED).spec_fingerprint, Some(fingerprint_of(&v3)));
}

#[tokio::test]
async fn every_action_is_on_the_tenants_audit_timeline_in_order() {
    let world = World::new();
    let image = with_attr(
        seed_image(),
        "updated_by",
        json!({"S": "alice@example.com"}),
    );
    world.put(&image);
    world.handle(vec![insert(SEED, "100", &image)]).await;
    // Removed a minute later; handled ten seconds after that.
    world.set_now(at(RECORD_TIME + 70));
    world.remove(SEED);
    let removal = record_at(
        "REMOVE",
        SEED,
        "SPEC",
        "200",
        RECORD_TIME + 60,
        None,
        Some(&image),
    );
    world.handle(vec![removal]).await;

    let timeline: Vec<(String, String, String, Option<String>)> = world
        .store
        .audit(&key(SEED))
        .into_iter()
        .map(|e| (e.action.into(), e.actor, e.result, e.requested_by))
        .collect();
    let alice = Some("alice@example.com".to_owned());
    let line = |action: &str, actor: &str, result: &str, requested_by: &Option<String>| {
        (
            action.into(),
            actor.into(),
            result.into(),
            requested_by.clone(),
        )
    };
    assert_eq!(
        timeline,
        vec![
            line("spec-written", "alice@example.com", "accepted", &None),
            line("create", "system", "started", &alice),
            line("create", "system", "ready", &alice),
            // A DeleteItem names no remover; the delete acts for no SPEC.
            line("spec-removed", "unknown", "accepted", &None),
            line("delete", "system", "started", &None),
            line("delete", "system", "deleted", &None),
        ]
    );

    // Read page by page, the timeline is the same, in the same order.
    let mut paged = Vec::new();
    let mut token = None;
    loop {
        let (page, next) = controlplane::ports::TenantStore::audit_trail(
            world.store.as_ref(),
            &key(SEED),
            token,
            4,
        )
        .await
        .expect("audit trail");
        paged.extend(page.into_iter().map(|e| e.action));
        match next {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    assert_eq!(paged.len(), 6);
    assert_eq!(paged[0], "spec-written");
    assert_eq!(paged[5], "delete");
}

/// A look at the stack that keeps failing while its operation runs (an unreadable
/// DescribeStacks, an AssumeRole denied mid-operation) counts every time and ends `failed`
/// within `max_attempts`, instead of leaving the tenant `creating` for good.
#[tokio::test]
async fn a_look_that_keeps_failing_while_an_operation_runs_ends_failed_within_the_bound() {
    let w = World::new();
    w.stacks.set_behaviour("tenant-gs1234", Behaviour::Hang);
    let image = seed_image();
    w.put(&image);
    w.handle(vec![insert("gs1234", "100", &image)]).await;
    assert_eq!(w.status("gs1234").status, Status::Creating);
    let max = Settings::new(REGION).max_attempts;
    let counted = w
        .reconcile_with_failing_looks(
            "gs1234",
            "the DescribeStacks answer could not be read",
            max + 1,
        )
        .await;
    assert_eq!(
        counted,
        (1..=max + 1).collect::<Vec<_>>(),
        "every look counts"
    );
    let status = w.status("gs1234");
    assert_eq!(status.status, Status::Failed, "{status:?}");
    assert!(!status.retryable);
    let reason = status.reason.as_deref().unwrap_or_default();
    assert!(
        reason.starts_with(&format!(
            "gave up after {} failures that should have healed",
            max + 1
        )) && reason.contains("the DescribeStacks answer could not be read"),
        "{status:?}"
    );
}

/// The SPEC deleted while those looks fail: the count goes on (it does not start again at 1 on
/// every try), the tries slow to the slowest pace, and once the stack can be looked at again the
/// delete is acted on, whatever state the tenant was left in.
#[tokio::test]
async fn a_delete_written_while_looks_fail_is_still_acted_on() {
    let w = World::new();
    w.stacks.set_behaviour("tenant-gs1234", Behaviour::Hang);
    let image = seed_image();
    w.put(&image);
    w.handle(vec![insert("gs1234", "100", &image)]).await;
    w.remove("gs1234");
    let settings = Settings::new(REGION);
    let counted = w
        .reconcile_with_failing_looks(
            "gs1234",
            "AccessDenied: not authorized to perform sts:AssumeRole",
            settings.max_attempts + 3,
        )
        .await;
    assert_eq!(
        counted,
        (1..=settings.max_attempts + 3).collect::<Vec<_>>(),
        "every look counts"
    );
    let status = w.status("gs1234");
    assert!(
        status.retryable,
        "a removed SPEC has no retry to bump: {status:?}"
    );
    let next = DateTime::parse_from_rfc3339(status.next_attempt_at.as_deref().unwrap())
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(
        (next - w.now()).to_std().unwrap(),
        settings.retry_backoff_max,
        "past the bound, at the slowest pace"
    );

    // The account answers again: the operation is followed and the stack removed.
    w.stacks.finish_in_progress();
    w.set_now(next + chrono::Duration::seconds(1));
    for _ in 0..3 {
        w.reconcile("gs1234").await;
        w.stacks.finish_in_progress();
    }
    assert_eq!(
        w.status("gs1234").status,
        Status::Deleted,
        "{:?}",
        w.status("gs1234")
    );
    assert!(w.stacks.live_stacks().is_empty());
}
