//! The drift job with fakes: drift found, recorded, counted, announced; reverted when the policy
//! says so, recording what could not be; and every way a check cannot finish ends `not_checked`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use controlplane::ports::{StackDrift, StackError};
use controlplane::reconcile::Settings;
use controlplane::testing::World;
use controlplane::triggers::drift::{DriftSettings, drift_sweep};
use controlplane::triggers::sweep::sweep;
use model::drift::{DriftPolicy, DriftStatus, NotReverted, PropertyDifference, ResourceDrift};
use model::spec::TenantKey;
use model::status::{LifecycleKind, StackLocation, Status};

use common::seed_image;

fn queue_changed_by_hand() -> ResourceDrift {
    ResourceDrift {
        logical_id: "Queue".into(),
        resource_type: "AWS::SQS::Queue".into(),
        physical_id: Some("https://sqs.us-east-1.amazonaws.com/111111111111/q".into()),
        status: "MODIFIED".into(),
        differences: vec![
            PropertyDifference {
                path: "/VisibilityTimeout".into(),
                kind: "NOT_EQUAL".into(),
                expected: "30".into(),
                actual: "600".into(),
            },
            PropertyDifference {
                path: "/Tags/0/Value".into(),
                kind: "NOT_EQUAL".into(),
                expected: "prod".into(),
                actual: "changed-by-hand".into(),
            },
        ],
    }
}

struct Provisioned {
    world: World,
    tenant: TenantKey,
    location: StackLocation,
}

async fn provisioned(settings: Settings) -> Provisioned {
    let world = World::builder()
        .settings(settings)
        .starting_at(Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap())
        .with_events()
        .with_rechecks()
        .build();
    let tenant = TenantKey::new("gs1234");
    world.store.put_spec(&tenant, seed_image());
    sweep(world.store.as_ref(), &world.reconciler, 4)
        .await
        .expect("sweep");
    let status = world.store.status(&tenant).expect("a STATUS");
    assert_eq!(status.status, Status::Ready);
    let location = status.location.expect("a location");
    Provisioned {
        world,
        tenant,
        location,
    }
}

fn fast() -> DriftSettings {
    DriftSettings {
        poll_every: Duration::from_millis(1),
        backoff_min: Duration::from_millis(1),
        backoff_max: Duration::from_millis(4),
        ..DriftSettings::default()
    }
}

async fn run(
    p: &Provisioned,
    settings: &DriftSettings,
) -> controlplane::triggers::drift::DriftReport {
    let drift: Arc<dyn StackDrift> = p.world.stacks.clone();
    drift_sweep(p.world.store.as_ref(), drift, &p.world.reconciler, settings)
        .await
        .expect("drift job")
}

#[tokio::test]
async fn a_resource_changed_by_hand_is_found_recorded_and_announced_once() {
    let p = provisioned(Settings::new("us-east-1")).await;
    p.world.stacks.set_detection_polls(2);
    let report = run(&p, &fast()).await;
    assert_eq!((report.checked, report.in_sync), (1, 1), "{report:?}");
    let in_sync = p.world.store.status(&p.tenant).unwrap().drift.unwrap();
    assert_eq!(in_sync.status, DriftStatus::InSync);
    assert_eq!(in_sync.checked_at, "2026-12-01T00:00:00.000Z");

    // Checked within the interval: not again.
    let report = run(&p, &fast()).await;
    assert_eq!(report.not_due, 1, "{report:?}");

    p.world.stacks.drift(&p.location, queue_changed_by_hand());
    p.world.clock.advance(chrono::Duration::days(1));
    let report = run(&p, &fast()).await;
    assert_eq!(
        (report.drifted, report.newly_drifted, report.reverts_started),
        (1, 1, 0),
        "{report:?}"
    );
    let status = p.world.store.status(&p.tenant).unwrap();
    assert_eq!(status.status, Status::Ready, "report only: nothing changed");
    let drift = status.drift.unwrap();
    assert_eq!(drift.status, DriftStatus::Drifted);
    assert_eq!(drift.resources, vec![queue_changed_by_hand()]);
    assert_eq!(drift.summary(), "1 resource drifted: Queue (MODIFIED)");
    let announced: Vec<_> = p
        .world
        .events
        .published()
        .into_iter()
        .filter(|e| e.kind == LifecycleKind::Drifted)
        .collect();
    assert_eq!(announced.len(), 1, "{announced:?}");
    assert_eq!(
        announced[0].reason.as_deref(),
        Some("1 resource drifted: Queue (MODIFIED)")
    );
    assert!(
        p.world
            .store
            .audit(&p.tenant)
            .iter()
            .any(|e| e.action == "drift-checked" && e.result == "drifted"),
        "a line in the timeline"
    );
    assert_eq!(p.world.stacks.count_calls("revert_drift"), 0);

    // The same drift the next day: recorded as checked again, not announced again.
    p.world.clock.advance(chrono::Duration::days(1));
    let lines = p.world.store.audit(&p.tenant).len();
    let report = run(&p, &fast()).await;
    assert_eq!((report.drifted, report.newly_drifted), (1, 0), "{report:?}");
    assert_eq!(
        p.world.store.audit(&p.tenant).len(),
        lines,
        "no repeated line"
    );
    assert_eq!(
        p.world
            .events
            .published()
            .iter()
            .filter(|e| e.kind == LifecycleKind::Drifted)
            .count(),
        1
    );
}

#[tokio::test]
async fn the_revert_policy_reverts_once_and_records_what_it_could_not() {
    let p = provisioned(Settings {
        drift_policy: DriftPolicy::Revert,
        ..Settings::new("us-east-1")
    })
    .await;
    p.world.stacks.drift(&p.location, queue_changed_by_hand());
    let unrevertable = NotReverted {
        logical_id: "Queue".into(),
        path: "/Tags/0/Value".into(),
        reason: "MANAGED_BY_AWS".into(),
    };
    p.world
        .stacks
        .unrevertable(&p.location, unrevertable.clone());
    let stack_before = p.world.stacks.stack(&p.location).unwrap();

    let report = run(&p, &fast()).await;
    assert_eq!(
        (report.drifted, report.reverts_started),
        (1, 1),
        "{report:?}"
    );
    assert_eq!(p.world.stacks.count_calls("revert_drift"), 1);
    let reverted = p.world.stacks.stack(&p.location).unwrap();
    assert_eq!(
        reverted.role_arn, stack_before.role_arn,
        "with the deploy role"
    );
    // The revert fixed what it could; the property it cannot stays drifted.
    let left = p.world.stacks.drifted(&p.location);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].differences.len(), 1);
    assert_eq!(left[0].differences[0].path, "/Tags/0/Value");

    let status = p.world.store.status(&p.tenant).unwrap();
    assert_eq!(status.status, Status::Ready);
    assert_eq!(status.attempts, 0, "a revert uses up no attempts");
    let revert = status
        .drift
        .as_ref()
        .unwrap()
        .revert
        .clone()
        .expect("a revert");
    assert_eq!(revert.not_reverted, vec![unrevertable]);
    assert!(
        p.world
            .store
            .audit(&p.tenant)
            .iter()
            .any(|e| e.action == "revert-drift"),
        "the revert is in the timeline"
    );

    // Once per detection: another reconcile does not revert again.
    p.world
        .reconciler
        .reconcile(&p.tenant)
        .await
        .expect("reconcile");
    sweep(p.world.store.as_ref(), &p.world.reconciler, 4)
        .await
        .expect("sweep");
    assert_eq!(p.world.stacks.count_calls("revert_drift"), 1);

    // The next check sees only what is left.
    p.world.clock.advance(chrono::Duration::days(1));
    run(&p, &fast()).await;
    let drift = p.world.store.status(&p.tenant).unwrap().drift.unwrap();
    assert_eq!(drift.resources[0].differences.len(), 1);
}

#[tokio::test]
async fn a_tenant_policy_overrides_the_deployment_and_a_refused_revert_leaves_it_ready() {
    let p = provisioned(Settings::new("us-east-1")).await;
    let mut spec = seed_image();
    spec.insert(
        "drift_policy".into(),
        serde_dynamo::AttributeValue::S("revert".into()),
    );
    p.world.store.put_spec(&p.tenant, spec);
    p.world.stacks.drift(&p.location, queue_changed_by_hand());
    p.world.stacks.fail_next(
        "revert_drift",
        StackError::Rejected(
            "ValidationError: Drift-aware change sets are not supported for this stack".into(),
        ),
    );
    let report = run(&p, &fast()).await;
    assert_eq!(report.drifted, 1, "{report:?}");
    let status = p.world.store.status(&p.tenant).unwrap();
    assert_eq!(status.status, Status::Ready, "{:?}", status.reason);
    let revert = status
        .drift
        .unwrap()
        .revert
        .expect("the revert is recorded");
    assert!(
        revert
            .failed
            .as_deref()
            .is_some_and(|r| r.contains("not supported")),
        "{revert:?}"
    );
    // Not tried again for this detection.
    p.world
        .reconciler
        .reconcile(&p.tenant)
        .await
        .expect("reconcile");
    assert_eq!(
        p.world
            .stacks
            .calls()
            .iter()
            .filter(|(op, _)| op == "revert_drift")
            .count(),
        0,
        "the refused call never reached the stack"
    );
}

#[tokio::test(start_paused = true)]
async fn throttled_calls_back_off_and_then_succeed() {
    let p = provisioned(Settings::new("us-east-1")).await;
    for _ in 0..3 {
        p.world.stacks.fail_next(
            "detect_drift",
            StackError::Transient("Throttling: Rate exceeded".into()),
        );
    }
    let started = tokio::time::Instant::now();
    let report = run(&p, &DriftSettings::default()).await;
    assert_eq!(report.in_sync, 1, "{report:?}");
    // Three backoffs from 1 s, doubling, jittered: at least a second of (virtual) waiting.
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn every_check_that_cannot_finish_is_recorded_not_checked_and_keeps_the_last_finding() {
    let p = provisioned(Settings::new("us-east-1")).await;
    p.world.stacks.drift(&p.location, queue_changed_by_hand());
    run(&p, &fast()).await;

    // What moto answers: HTTP 500 (after the SDK's own retries). One try, no backoff.
    p.world.clock.advance(chrono::Duration::days(1));
    p.world.stacks.fail_next(
        "detect_drift",
        StackError::Transient("InternalFailure (HTTP 500, no message)".into()),
    );
    let report = run(&p, &fast()).await;
    assert_eq!(report.not_checked, 1, "{report:?}");
    let drift = p.world.store.status(&p.tenant).unwrap().drift.unwrap();
    assert_eq!(drift.status, DriftStatus::NotChecked);
    assert_eq!(
        drift.reason.as_deref(),
        Some("DetectStackDrift failed: InternalFailure (HTTP 500, no message)")
    );
    assert_eq!(drift.resources, vec![queue_changed_by_hand()], "kept");

    // Throttled past its budget: bounded tries, then not checked.
    p.world.clock.advance(chrono::Duration::days(1));
    for _ in 0..10 {
        p.world.stacks.fail_next(
            "detect_drift",
            StackError::Transient("Throttling: Rate exceeded".into()),
        );
    }
    let settings = fast();
    run(&p, &settings).await;
    let drift = p.world.store.status(&p.tenant).unwrap().drift.unwrap();
    assert!(
        drift
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("throttled 6 times")),
        "{drift:?}"
    );

    // A detection that never ends.
    p.world.clock.advance(chrono::Duration::days(1));
    p.world.stacks.set_detection_polls(usize::MAX);
    let report = run(
        &p,
        &DriftSettings {
            detection_timeout: Duration::from_secs(60),
            ..fast()
        },
    )
    .await;
    assert_eq!(report.not_checked, 1);
    let drift = p.world.store.status(&p.tenant).unwrap().drift.unwrap();
    assert!(
        drift
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("did not finish within 60 s")),
        "{drift:?}"
    );
}

#[tokio::test]
async fn only_settled_stacks_are_checked_and_the_deadline_defers_the_rest() {
    let p = provisioned(Settings::new("us-east-1")).await;
    let report = run(
        &p,
        &DriftSettings {
            stop_at: Some(tokio::time::Instant::now()),
            ..fast()
        },
    )
    .await;
    assert_eq!(report.deferred, 1, "{report:?}");
    assert!(p.world.store.status(&p.tenant).unwrap().drift.is_none());

    // An operation in flight: not checked (CloudFormation refuses drift detection then).
    p.world.stacks.set_hanging(&p.location.stack_name, true);
    let mut spec = seed_image();
    spec.insert("retry".into(), serde_dynamo::AttributeValue::N("1".into()));
    p.world.store.put_spec(&p.tenant, spec);
    p.world
        .reconciler
        .reconcile(&p.tenant)
        .await
        .expect("reconcile");
    assert_eq!(
        p.world.store.status(&p.tenant).unwrap().status,
        Status::Updating
    );
    let report = run(&p, &fast()).await;
    assert_eq!(report.not_due, 1, "{report:?}");
    assert_eq!(p.world.stacks.count_calls("detect_drift"), 0);
}

fn revert_policy() -> Settings {
    Settings {
        drift_policy: DriftPolicy::Revert,
        ..Settings::new("us-east-1")
    }
}

/// The change set is made before any intent: one CloudFormation refuses (or cannot compute in
/// time) changes nothing, and the tenant stays ready, the reason on its drift record.
#[tokio::test]
async fn a_change_set_that_cannot_be_made_leaves_the_tenant_ready_and_says_why() {
    let p = provisioned(revert_policy()).await;
    p.world.stacks.drift(&p.location, queue_changed_by_hand());
    p.world.stacks.fail_next(
        "prepare_revert",
        StackError::Transient("the change set was not computed in time".into()),
    );
    let report = run(&p, &fast()).await;
    assert_eq!(
        (report.drifted, report.reverts_started),
        (1, 1),
        "{report:?}"
    );
    let status = p.world.store.status(&p.tenant).unwrap();
    assert_eq!(status.status, Status::Ready);
    // No `updating` was ever recorded: only the note that the revert did not run.
    let lines = p.world.store.audit(&p.tenant);
    let reverts: Vec<_> = lines
        .iter()
        .filter(|e| e.action == "revert-drift")
        .collect();
    assert_eq!(reverts.len(), 1, "{lines:?}");
    assert_eq!(reverts[0].result, "not reverted");
    let revert = status.drift.unwrap().revert.expect("recorded");
    assert!(
        revert
            .failed
            .as_deref()
            .is_some_and(|r| r.contains("was not made") && r.contains("not computed in time")),
        "{revert:?}"
    );
    assert_eq!(
        p.world.stacks.count_calls("revert_drift"),
        0,
        "never executed"
    );
    assert_eq!(p.world.stacks.open_revert_change_sets(), 0);
    // Not tried again for this detection; the next one does.
    sweep(p.world.store.as_ref(), &p.world.reconciler, 4)
        .await
        .expect("sweep");
    assert_eq!(
        p.world.stacks.count_calls("prepare_revert"),
        0,
        "the fault took the only call"
    );
    p.world.clock.advance(chrono::Duration::days(1));
    run(&p, &fast()).await;
    assert_eq!(p.world.stacks.count_calls("revert_drift"), 1);
    assert!(p.world.stacks.drifted(&p.location).is_empty(), "reverted");
}

/// A revert whose update fails and rolls back leaves the stack as it was, which is this SPEC's:
/// the tenant is ready (not failed for good), and the record says the revert failed and why.
#[tokio::test]
async fn a_revert_that_rolls_back_leaves_the_tenant_ready_with_the_reason() {
    use controlplane::testing::Behaviour;
    let p = provisioned(revert_policy()).await;
    p.world.stacks.drift(&p.location, queue_changed_by_hand());
    p.world.stacks.set_behaviour(
        &p.location.stack_name,
        Behaviour::FailUpdate {
            resource_reason: "Resource handler returned message: Access Denied".into(),
        },
    );
    run(&p, &fast()).await;
    assert_eq!(p.world.stacks.count_calls("revert_drift"), 1);
    let status = p.world.store.status(&p.tenant).unwrap();
    assert_eq!(status.status, Status::Ready, "{:?}", status.reason);
    let revert = status.drift.unwrap().revert.expect("recorded");
    assert!(
        revert
            .failed
            .as_deref()
            .is_some_and(|r| r.contains("rolled back") && r.contains("Access Denied")),
        "{revert:?}"
    );
    // Still checked by the drift job: it is ready.
    p.world.clock.advance(chrono::Duration::days(1));
    let report = run(&p, &fast()).await;
    assert_eq!(report.checked, 1, "{report:?}");
}

/// A drift port that, while the detection runs, has the tenant's stack updated (another
/// operation started and ended meanwhile).
struct UpdatedMeanwhile {
    stacks: Arc<controlplane::testing::FakeStacks>,
    store: Arc<controlplane::testing::InMemoryStore>,
    tenant: TenantKey,
}

#[async_trait::async_trait]
impl StackDrift for UpdatedMeanwhile {
    async fn detect(&self, at: &controlplane::ports::StackTarget) -> Result<String, StackError> {
        use controlplane::ports::TenantStore;
        let id = self.stacks.detect(at).await?;
        let mut status = self.store.status(&self.tenant).expect("a STATUS");
        let version = status.version;
        status.version += 1;
        status.operation = Some(model::status::Operation::Update);
        status.template_version = Some("v2".into());
        self.store
            .put_status(&self.tenant, &status, Some(version))
            .await
            .expect("written");
        Ok(id)
    }
    async fn progress(
        &self,
        at: &controlplane::ports::StackTarget,
        id: &str,
    ) -> Result<controlplane::ports::DetectionProgress, StackError> {
        self.stacks.progress(at, id).await
    }
    async fn drifted_resources(
        &self,
        at: &controlplane::ports::StackTarget,
    ) -> Result<Vec<ResourceDrift>, StackError> {
        self.stacks.drifted_resources(at).await
    }
    async fn prepare_revert(
        &self,
        at: &controlplane::ports::StackTarget,
        request: &controlplane::ports::StackRequest,
    ) -> Result<controlplane::ports::RevertPlan, StackError> {
        self.stacks.prepare_revert(at, request).await
    }
    async fn execute_revert(
        &self,
        at: &controlplane::ports::StackTarget,
        change_set: &str,
        token: &str,
    ) -> Result<(), StackError> {
        self.stacks.execute_revert(at, change_set, token).await
    }
    async fn discard_revert(&self, at: &controlplane::ports::StackTarget, change_set: &str) {
        self.stacks.discard_revert(at, change_set).await
    }
}

#[tokio::test]
async fn a_finding_that_predates_an_operation_is_not_recorded() {
    let p = provisioned(revert_policy()).await;
    p.world.stacks.drift(&p.location, queue_changed_by_hand());
    let drift: Arc<dyn StackDrift> = Arc::new(UpdatedMeanwhile {
        stacks: p.world.stacks.clone(),
        store: p.world.store.clone(),
        tenant: p.tenant.clone(),
    });
    let report = drift_sweep(p.world.store.as_ref(), drift, &p.world.reconciler, &fast())
        .await
        .expect("drift job");
    assert_eq!((report.checked, report.not_due), (0, 1), "{report:?}");
    assert!(p.world.store.status(&p.tenant).unwrap().drift.is_none());
    assert!(
        p.world
            .events
            .published()
            .iter()
            .all(|e| e.kind != LifecycleKind::Drifted)
    );
    assert_eq!(p.world.stacks.count_calls("revert_drift"), 0);
}
