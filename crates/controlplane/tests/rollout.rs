//! Fleet rollouts with fakes: the driver, the reconcile and CloudFormation together, on a
//! settable clock. Halts, rollbacks, busy and pinned tenants, tenants created mid-rollout, and
//! a crash at every write of a whole rollout.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_dynamo::{AttributeValue, Item};

use controlplane::ports::{RolloutStore, TemplateStore};
use controlplane::rollout::driver::{RolloutDriver, RolloutError, StartRollout};
use controlplane::rollout::preview::{
    PreviewProgress, PreviewRunner, PreviewState, TenantPreview, new_job,
};
use controlplane::template_source::{
    BundledTemplates, NewTemplate, SAMPLE_TEMPLATE, TableTemplates, TemplatePublishError, publish,
};
use controlplane::testing::{
    self, Behaviour, FakeTemplateValidator, InMemoryStore, RecordingRecheck, TestClock,
};
use model::rollout::{Amount, Command, MemberState, RolloutOptions, RolloutState, Selection};
use model::spec::TenantKey;
use model::stack::TAG_TEMPLATE_VERSION;
use model::status::{StackLocation, Status};

use common::seed_image;

fn v2_body() -> String {
    SAMPLE_TEMPLATE.replace(
        "MessageRetentionPeriod: 345600",
        "MessageRetentionPeriod: 1209600",
    )
}

fn spec(tenant: &str, extra: &[(&str, &str)]) -> Item {
    let mut item = seed_image();
    item.insert("pk".into(), AttributeValue::S(format!("TENANT#{tenant}")));
    item.insert("tenant_id".into(), AttributeValue::S(tenant.into()));
    // Each tenant in its own account, as in production.
    let account = format!(
        "{:012}",
        100_000_000_000u64 + tenant.len() as u64 * 7 + tenant.bytes().map(u64::from).sum::<u64>()
    );
    item.insert("account_id".into(), AttributeValue::S(account));
    for (key, value) in extra {
        item.insert((*key).into(), AttributeValue::S((*value).into()));
    }
    item
}

/// The driver's clock: the reconciler's.
fn clock_of(clock: &TestClock) -> controlplane::reconcile::Clock {
    let clock = clock.clone();
    Arc::new(move || clock.now())
}

/// The fakes, on the table's template versions, with the rollout driver beside the reconciler.
struct World {
    fakes: testing::World,
    templates: Arc<TableTemplates>,
    /// The template buckets the published versions' bodies are in.
    objects: Arc<testing::FakeTemplateObjects>,
    /// The CloudWatch alarms rollouts watch.
    alarms: Arc<testing::FakeAlarms>,
    driver: RolloutDriver,
    tenants: Vec<TenantKey>,
}

impl std::ops::Deref for World {
    type Target = testing::World;

    fn deref(&self) -> &testing::World {
        &self.fakes
    }
}

impl World {
    /// `count` tenants, all provisioned on v1; v2 published.
    async fn new(count: usize) -> Self {
        let store = Arc::new(InMemoryStore::default());
        let objects = Arc::new(testing::FakeTemplateObjects::default());
        let templates = Arc::new(TableTemplates::new(
            store.clone(),
            objects.clone(),
            BundledTemplates::sample().unwrap(),
        ));
        let fakes = testing::World::builder()
            .store(store.clone())
            .templates(templates.clone())
            .starting_at(
                DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
                    .unwrap()
                    .with_timezone(&Utc),
            )
            .build();
        let driver = RolloutDriver::new(
            store.clone(),
            store.clone(),
            store.clone(),
            templates.clone(),
        )
        .with_recheck(Arc::new(RecordingRecheck::default()))
        .with_clock(clock_of(&fakes.clock));
        let alarms = Arc::new(testing::FakeAlarms::default());
        let driver = driver.with_alarms(alarms.clone(), Vec::new());
        let mut world = Self {
            fakes,
            templates,
            objects,
            alarms,
            driver,
            tenants: Vec::new(),
        };
        for i in 0..count {
            world.add_tenant(&format!("t{i:03}"), &[]).await;
        }
        world.publish("v2", &v2_body()).await.expect("publish v2");
        world
    }

    /// Overwrites a published version's object in the buckets, as a hand edit would.
    fn tamper(&self, version: &str, body: &str) {
        let key = self
            .store
            .template_key(version)
            .expect("a published version");
        self.objects.overwrite(&key, body);
    }

    async fn add_tenant(&mut self, id: &str, extra: &[(&str, &str)]) -> TenantKey {
        let key = TenantKey::new(id);
        self.store.put_spec(&key, spec(id, extra));
        self.reconciler.reconcile(&key).await.expect("reconcile");
        self.tenants.push(key.clone());
        key
    }

    async fn publish(&self, version: &str, body: &str) -> Result<(), TemplatePublishError> {
        publish(
            NewTemplate {
                version: version.into(),
                body: body.into(),
                description: None,
                published_by: "ops".into(),
                published_at: "2026-11-23T09:00:00.000Z".into(),
            },
            &self.templates,
            self.store.as_ref(),
            self.store.as_ref(),
            &FakeTemplateValidator::default(),
        )
        .await
        .map(|_| ())
    }

    fn advance(&self, seconds: i64) {
        self.clock.advance(Duration::seconds(seconds));
    }

    async fn start(&self, options: RolloutOptions, selection: Selection) -> String {
        self.driver
            .start(StartRollout {
                target_version: "v2".into(),
                selection,
                options,
                created_by: "ops".into(),
            })
            .await
            .expect("start")
            .id
    }

    /// The reconcile of every tenant (what the completion loop and the sweep do).
    async fn reconcile_all(&self) {
        for key in &self.tenants {
            // A failure that may heal is recorded; only a store outage comes back.
            let _ = self.reconciler.reconcile(key).await;
        }
    }

    /// Driver steps and reconciles, a minute apart, until the rollout is finished or halted.
    async fn run(&self, id: &str) -> RolloutState {
        for _ in 0..500 {
            let tick = self.driver.tick(id).await.expect("tick");
            if tick.rollout.state.is_finished() || tick.rollout.state == RolloutState::Halted {
                return tick.rollout.state;
            }
            self.reconcile_all().await;
            self.advance(60);
        }
        panic!("rollout {id} never finished");
    }

    fn version_of(&self, key: &TenantKey) -> Option<String> {
        let status = self.store.status(key)?;
        let stack = self.stacks.stack(status.location.as_ref()?)?;
        stack
            .tags
            .iter()
            .find(|(k, _)| k == TAG_TEMPLATE_VERSION)
            .map(|(_, v)| v.clone())
    }

    fn location(&self, key: &TenantKey) -> StackLocation {
        self.store.status(key).unwrap().location.unwrap()
    }

    /// Update calls per tenant that changed the stack's template.
    fn template_updates(&self) -> BTreeMap<String, usize> {
        let mut updates = BTreeMap::new();
        for key in &self.tenants {
            let location = self.location(key);
            let count = self
                .stacks
                .calls()
                .iter()
                .filter(|(op, at)| op == "update" && *at == location)
                .count();
            updates.insert(key.as_str().to_owned(), count);
        }
        updates
    }
}

fn options(canary: u32, concurrency: u32, tolerance: u32) -> RolloutOptions {
    RolloutOptions {
        canary: Amount::Count(canary),
        bake_seconds: 300,
        growth: 2,
        wave_bake_seconds: 0,
        max_concurrency: Amount::Count(concurrency),
        failure_tolerance: Amount::Count(tolerance),
        auto_rollback: true,
        alarms: Vec::new(),
    }
}

#[tokio::test]
async fn a_rollout_moves_every_unpinned_tenant_once_and_makes_the_version_current() {
    let mut world = World::new(8).await;
    let pinned = world
        .add_tenant("pinned", &[("template_version", "v1")])
        .await;
    let id = world.start(options(1, 3, 0), Selection::default()).await;
    assert_eq!(world.run(&id).await, RolloutState::Completed);

    for key in &world.tenants {
        let expected = if *key == pinned { "v1" } else { "v2" };
        assert_eq!(world.version_of(key).as_deref(), Some(expected), "{key:?}");
        let status = world.store.status(key).unwrap();
        assert_eq!(status.status, Status::Ready);
        if *key != pinned {
            assert_eq!(status.assigned_version.as_deref(), Some("v2"));
            assert_eq!(status.assigned_by.as_deref(), Some(id.as_str()));
            let audit = world.store.audit(key);
            assert!(
                audit
                    .iter()
                    .any(|e| e.action == "template-assigned" && e.result == "v2"),
                "{audit:?}"
            );
        }
    }
    for (tenant, updates) in world.template_updates() {
        let expected = usize::from(tenant != "pinned");
        assert_eq!(updates, expected, "{tenant}");
    }
    assert_eq!(
        world
            .store
            .current_template()
            .await
            .unwrap()
            .unwrap()
            .version,
        "v2"
    );
    assert_eq!(world.store.active_rollout().await.unwrap(), None);

    // Drift repair and a writer's put-item of the same SPEC never undo it.
    let key = world.tenants[0].clone();
    let mut rewritten = spec(key.as_str(), &[]);
    rewritten.insert("updated_by".into(), AttributeValue::S("terraform".into()));
    world.store.put_spec(&key, rewritten);
    world.reconcile_all().await;
    assert_eq!(world.version_of(&key).as_deref(), Some("v2"));
    assert_eq!(world.template_updates()[key.as_str()], 1);
}

#[tokio::test]
async fn the_canary_bakes_before_the_next_waves() {
    let world = World::new(6).await;
    let id = world.start(options(1, 10, 0), Selection::default()).await;
    world.driver.tick(&id).await.unwrap(); // plan
    let tick = world.driver.tick(&id).await.unwrap(); // the canary
    assert_eq!(tick.moved, 1);
    world.reconcile_all().await;
    world.driver.tick(&id).await.unwrap(); // canary done: the bake starts
    world.advance(120);
    let waiting = world.driver.tick(&id).await.unwrap();
    assert_eq!(waiting.step, "wait");
    assert!(waiting.wait_until.is_some());
    assert_eq!(world.driver.view(&id).await.unwrap().counts.done, 1);
    world.advance(200);
    let moved = world.driver.tick(&id).await.unwrap();
    assert_eq!(
        moved.moved, 5,
        "after the bake every remaining tenant moves"
    );
}

/// An alarm the rollout watches going into ALARM during the canary's bake halts the rollout and
/// rolls the canary back, with the alarm and CloudWatch's reason on the rollout; no later wave
/// ever moves.
#[tokio::test]
async fn a_breached_alarm_during_the_bake_halts_the_rollout_and_rolls_it_back() {
    let world = World::new(6).await;
    world.alarms.add("api-5xx");
    let watched = RolloutOptions {
        alarms: vec!["api-5xx".into()],
        ..options(1, 10, 0)
    };
    let id = world.start(watched, Selection::default()).await;
    world.driver.tick(&id).await.unwrap(); // plan
    assert_eq!(world.driver.tick(&id).await.unwrap().moved, 1, "the canary");
    world.reconcile_all().await;
    world.driver.tick(&id).await.unwrap(); // canary done: the bake starts
    world.advance(120);
    assert_eq!(world.driver.tick(&id).await.unwrap().step, "wait");
    world.alarms.breach(
        "api-5xx",
        "Threshold Crossed: 1 out of the last 1 datapoints [12.0] was greater than the threshold (5.0)",
    );
    let halted = world.driver.tick(&id).await.unwrap();
    assert_eq!(halted.step, "halt");
    assert_eq!(world.run(&id).await, RolloutState::RolledBack);
    let view = world.driver.view(&id).await.unwrap();
    let reason = view.rollout.reason.clone().unwrap_or_default();
    assert!(
        reason.starts_with("halted and rolling back: alarm api-5xx is in ALARM: Threshold Crossed"),
        "{reason}"
    );
    assert_eq!(view.counts.rolled_back, 1, "{:?}", view.counts);
    assert_eq!(view.counts.pending, 5, "no later wave moved");
    for key in &world.tenants {
        assert_eq!(world.version_of(key).as_deref(), Some("v1"), "{key:?}");
    }
}

/// While the alarms cannot be read, no tenant moves (the rollout waits, it does not halt); once
/// they are read again it goes on. An alarm that does not exist is refused at the start.
#[tokio::test]
async fn unreadable_alarms_move_nobody_and_a_missing_alarm_is_refused_at_the_start() {
    let world = World::new(3).await;
    // A start of `version` watching `alarm`, refused.
    let refused_start = |version: &str, alarm: &str| {
        world.driver.start(StartRollout {
            target_version: version.into(),
            selection: Selection::default(),
            options: RolloutOptions {
                alarms: vec![alarm.into()],
                ..options(1, 10, 0)
            },
            created_by: "ops".into(),
        })
    };
    let missing = refused_start("v2", "no-such-alarm")
        .await
        .expect_err("refused");
    assert!(
        missing.to_string().contains("no such alarm: no-such-alarm"),
        "{missing}"
    );

    world.alarms.add("api-5xx");
    let id = world
        .start(
            RolloutOptions {
                alarms: vec!["api-5xx".into()],
                bake_seconds: 0,
                ..options(1, 10, 0)
            },
            Selection::default(),
        )
        .await;
    world.driver.tick(&id).await.unwrap(); // plan
    world
        .alarms
        .set_unreadable(Some("Throttling: Rate exceeded"));
    let waiting = world.driver.tick(&id).await.unwrap();
    assert_eq!((waiting.step, waiting.moved), ("wait", 0));
    world.alarms.set_unreadable(None);
    assert_eq!(world.run(&id).await, RolloutState::Completed);

    // One already in ALARM is refused too (the rollout would halt on its first step).
    world.alarms.breach("api-5xx", "Threshold Crossed");
    let breached = refused_start("v1", "api-5xx").await.expect_err("refused");
    assert!(
        breached.to_string().contains("api-5xx is in ALARM now"),
        "{breached}"
    );
}

/// An alarm deleted while the rollout runs halts it: its signal is gone for good, and the
/// rollout says which.
#[tokio::test]
async fn an_alarm_deleted_mid_rollout_halts_it_naming_the_alarm() {
    let world = World::new(4).await;
    world.alarms.add("api-5xx");
    let id = world
        .start(
            RolloutOptions {
                alarms: vec!["api-5xx".into()],
                ..options(1, 10, 0)
            },
            Selection::default(),
        )
        .await;
    world.driver.tick(&id).await.unwrap(); // plan
    world.alarms.delete("api-5xx");
    assert_eq!(world.run(&id).await, RolloutState::RolledBack);
    let reason = world.driver.view(&id).await.unwrap().rollout.reason;
    assert!(
        reason
            .as_deref()
            .is_some_and(|r| r.contains("alarm api-5xx no longer exists")),
        "{reason:?}"
    );
}

#[tokio::test]
async fn failures_past_the_tolerance_halt_and_roll_back_the_tenants_moved() {
    let world = World::new(8).await;
    let id = world.start(options(1, 2, 1), Selection::default()).await;
    world.driver.tick(&id).await.unwrap(); // plan
    let members = world.store.members(&id).await.unwrap();
    // Two tenants after the canary fail their update: one more than the tolerance.
    for member in &members[1..3] {
        world.stacks.set_behaviour(
            &format!("tenant-{}", member.tenant_id),
            Behaviour::FailUpdate {
                resource_reason: "JobsQueue: MessageRetentionPeriod too long".into(),
            },
        );
    }
    assert_eq!(world.run(&id).await, RolloutState::RolledBack);
    let view = world.driver.view(&id).await.unwrap();
    assert!(
        view.rollout
            .reason
            .as_deref()
            .unwrap()
            .contains("more than the tolerance of 1"),
        "{:?}",
        view.rollout.reason
    );
    assert_eq!(
        view.counts.done + view.counts.moving + view.counts.failed,
        0
    );
    assert!(view.counts.rolled_back >= 3, "{:?}", view.counts);
    assert!(
        view.counts.pending > 0,
        "the halt stopped the rollout early"
    );
    for key in &world.tenants {
        assert_eq!(world.version_of(key).as_deref(), Some("v1"), "{key:?}");
        let status = world.store.status(key).unwrap();
        assert_eq!(status.status, Status::Ready, "{key:?}: {:?}", status.reason);
    }
    // Never made current.
    assert_eq!(world.store.current_template().await.unwrap(), None);
}

#[tokio::test]
async fn a_canary_failure_halts_whatever_the_tolerance_and_waits_without_auto_rollback() {
    let world = World::new(5).await;
    let mut o = options(1, 5, 3);
    o.auto_rollback = false;
    let id = world.start(o, Selection::default()).await;
    world.driver.tick(&id).await.unwrap();
    let canary = world.store.members(&id).await.unwrap()[0].tenant_id.clone();
    world.stacks.set_behaviour(
        &format!("tenant-{canary}"),
        Behaviour::FailUpdate {
            resource_reason: "boom".into(),
        },
    );
    assert_eq!(world.run(&id).await, RolloutState::Halted);
    let view = world.driver.view(&id).await.unwrap();
    assert_eq!((view.counts.failed, view.counts.pending), (1, 4));
    // An operator rolls it back by command.
    world
        .driver
        .command(&id, Command::Rollback, "ops")
        .await
        .unwrap();
    assert_eq!(world.run(&id).await, RolloutState::RolledBack);
    assert_eq!(
        world.version_of(&TenantKey::new(&canary)).as_deref(),
        Some("v1")
    );
}

#[tokio::test]
async fn busy_tenants_are_waited_for_not_failed() {
    let mut world = World::new(3).await;
    // A tenant mid-update (its stack hangs) when the rollout reaches it.
    let busy = world.add_tenant("busy", &[]).await;
    world.stacks.set_hanging("tenant-busy", true);
    let mut bumped = spec("busy", &[]);
    bumped.insert("retry".into(), AttributeValue::N("1".into()));
    world.store.put_spec(&busy, bumped);
    world.reconciler.reconcile(&busy).await.unwrap();
    assert_eq!(world.store.status(&busy).unwrap().status, Status::Updating);

    let mut o = options(1, 10, 0);
    o.bake_seconds = 0;
    let id = world.start(o, Selection::default()).await;
    for _ in 0..6 {
        world.driver.tick(&id).await.unwrap();
        world.reconcile_all().await;
    }
    let view = world.driver.view(&id).await.unwrap();
    let busy_member = view.members.iter().find(|m| m.tenant_id == "busy").unwrap();
    assert_eq!(busy_member.state, MemberState::Pending);
    assert_eq!(view.rollout.state, RolloutState::Running);
    // Its update ends; then it is moved like the others.
    world.stacks.set_hanging("tenant-busy", false);
    world.stacks.finish_in_progress();
    assert_eq!(world.run(&id).await, RolloutState::Completed);
    assert_eq!(world.version_of(&busy).as_deref(), Some("v2"));
}

#[tokio::test]
async fn a_tenant_created_mid_rollout_gets_a_defined_version_then_is_caught_up() {
    let mut world = World::new(4).await;
    let mut o = options(1, 10, 0);
    o.bake_seconds = 0;
    let id = world.start(o, Selection::default()).await;
    world.driver.tick(&id).await.unwrap(); // planned without it
    let late = world.add_tenant("late", &[]).await;
    let status = world.store.status(&late).unwrap();
    assert_eq!(status.assigned_version.as_deref(), Some("v1"));
    assert_eq!(status.assigned_by.as_deref(), Some("created"));
    assert_eq!(world.run(&id).await, RolloutState::Completed);
    assert_eq!(world.version_of(&late).as_deref(), Some("v2"));
    let members = world.store.members(&id).await.unwrap();
    assert_eq!(members.last().unwrap().tenant_id, "late");
    // Created after: the fleet's current version at once.
    let after = world.add_tenant("after", &[]).await;
    assert_eq!(
        world
            .store
            .status(&after)
            .unwrap()
            .assigned_version
            .as_deref(),
        Some("v2")
    );
    assert_eq!(world.version_of(&after).as_deref(), Some("v2"));
}

#[tokio::test]
async fn pause_resume_cancel_and_a_selection() {
    let mut world = World::new(6).await;
    world.add_tenant("gold1", &[]).await;
    let mut o = options(1, 1, 0);
    o.bake_seconds = 0;
    let selection = Selection {
        tenants: vec!["t001".into(), "t002".into(), "t003".into(), "gold1".into()],
        ..Selection::default()
    };
    let id = world.start(o, selection).await;
    world.driver.tick(&id).await.unwrap();
    world.driver.tick(&id).await.unwrap();
    world
        .driver
        .command(&id, Command::Pause, "ops")
        .await
        .unwrap();
    world.reconcile_all().await;
    for _ in 0..3 {
        let tick = world.driver.tick(&id).await.unwrap();
        assert_eq!(tick.moved, 0);
    }
    assert_eq!(world.driver.view(&id).await.unwrap().counts.done, 1);
    // A second rollout cannot start while this one holds the fleet.
    let busy = world
        .driver
        .start(StartRollout {
            target_version: "v2".into(),
            selection: Selection::default(),
            options: RolloutOptions::default(),
            created_by: "ops".into(),
        })
        .await;
    assert!(matches!(busy, Err(RolloutError::Busy(_))), "{busy:?}");
    world
        .driver
        .command(&id, Command::Resume, "ops")
        .await
        .unwrap();
    world.driver.tick(&id).await.unwrap();
    world
        .driver
        .command(&id, Command::Cancel, "ops")
        .await
        .unwrap();
    assert!(matches!(
        world.driver.command(&id, Command::Resume, "ops").await,
        Err(RolloutError::Refused(_))
    ));
    world.reconcile_all().await;
    let on_v2 = world
        .tenants
        .iter()
        .filter(|k| world.version_of(k).as_deref() == Some("v2"))
        .count();
    assert_eq!(on_v2, 2, "the canary and one more; the rest never moved");
    for untouched in ["t000", "t004", "t005"] {
        assert_eq!(
            world.version_of(&TenantKey::new(untouched)).as_deref(),
            Some("v1")
        );
    }
    // A selection never changes the fleet's current version.
    assert_eq!(world.store.current_template().await.unwrap(), None);
    // The fleet is free again.
    assert_eq!(world.store.active_rollout().await.unwrap(), None);
}

#[tokio::test]
async fn a_completed_rollout_rolled_back_restores_the_previous_current_version() {
    let mut world = World::new(3).await;
    let mut o = options(1, 3, 0);
    o.bake_seconds = 0;
    let id = world.start(o, Selection::default()).await;
    assert_eq!(world.run(&id).await, RolloutState::Completed);
    world
        .driver
        .command(&id, Command::Rollback, "ops")
        .await
        .unwrap();
    // The first step back makes v1 current again: a tenant created while the fleet rolls back
    // starts on v1, and is not left on the version taken away (it is no member of the rollout).
    world.driver.tick(&id).await.expect("tick");
    world.add_tenant("t-during", &[]).await;
    assert_eq!(world.run(&id).await, RolloutState::RolledBack);
    for key in &world.tenants {
        assert_eq!(world.version_of(key).as_deref(), Some("v1"), "{key:?}");
    }
    assert_eq!(
        world
            .store
            .current_template()
            .await
            .unwrap()
            .unwrap()
            .version,
        "v1"
    );
}

/// The whole rollout once, counting every write; then, for every write, the same rollout with
/// the process dying at that write and started again: no tenant updated twice, none skipped.
#[tokio::test]
async fn a_crash_at_any_write_resumes_without_updating_a_tenant_twice_or_skipping_one() {
    let mut o = options(1, 2, 0);
    o.bake_seconds = 0;
    let baseline = World::new(4).await;
    let before = baseline.store.writes();
    let id = baseline.start(o.clone(), Selection::default()).await;
    assert_eq!(baseline.run(&id).await, RolloutState::Completed);
    let writes = baseline.store.writes() - before;
    assert!(writes > 20, "{writes}");

    for crash_at in 0..writes {
        let world = World::new(4).await;
        world.store.crash_after_writes(Some(crash_at));
        let started = world
            .driver
            .start(StartRollout {
                target_version: "v2".into(),
                selection: Selection::default(),
                options: o.clone(),
                created_by: "ops".into(),
            })
            .await;
        // Run until the "process" dies.
        if started.is_ok() {
            for _ in 0..200 {
                if world.driver.tick_active().await.is_err() {
                    break;
                }
                world.reconcile_all().await;
                world.advance(60);
            }
        }
        // Restarted: the table as the crash left it, and the operator starts again if the
        // start itself never landed.
        world.store.crash_after_writes(None);
        let id = match world.store.active_rollout().await.unwrap() {
            Some(id) if world.store.rollout(&id).await.unwrap().is_some() => id,
            _ => match world.store.list_rollouts().await.unwrap().first() {
                Some(r) => r.id.clone(),
                None => world.start(o.clone(), Selection::default()).await,
            },
        };
        let state = world.run(&id).await;
        assert_eq!(state, RolloutState::Completed, "crash at write {crash_at}");
        for key in &world.tenants {
            assert_eq!(
                world.version_of(key).as_deref(),
                Some("v2"),
                "crash at write {crash_at}: {key:?}"
            );
        }
        for (tenant, updates) in world.template_updates() {
            assert_eq!(
                updates, 1,
                "crash at write {crash_at}: {tenant} updated {updates} times"
            );
        }
    }
}

#[tokio::test]
async fn publishing_checks_the_template_and_every_following_tenant() {
    let world = World::new(2).await;
    // The same version and body again: a harmless repeat. Another body: refused.
    world.publish("v2", &v2_body()).await.expect("repeat");
    assert_eq!(
        world.publish("v2", SAMPLE_TEMPLATE).await,
        Err(TemplatePublishError::Exists("v2".into(), "body"))
    );
    assert!(matches!(
        world.publish("v1", "Resources: {}").await,
        Err(TemplatePublishError::Exists(..) | TemplatePublishError::Invalid(_))
    ));
    // A version without the parameter the tenants' config sets.
    let without = SAMPLE_TEMPLATE.replace(
        "  PlayerCount:\n    Type: Number\n    Default: 4\n    MinValue: 1\n    MaxValue: 100\n",
        "",
    );
    assert_ne!(without, SAMPLE_TEMPLATE);
    let Err(TemplatePublishError::BreaksTenants { count, named }) =
        world.publish("v3", &without).await
    else {
        panic!("expected the tenants to be named");
    };
    assert_eq!(count, 2);
    assert!(
        named[0].contains("t000") && named[0].contains("player_count"),
        "{named:?}"
    );
    // A tenant that already fails on the version it is on (a key no template has) holds
    // nothing back: it stays failed whatever is published, with its own reason.
    let mut world = world;
    let mut broken = spec("t-broken", &[]);
    broken.insert(
        "config".into(),
        AttributeValue::M(
            [("colour".to_owned(), AttributeValue::S("red".into()))]
                .into_iter()
                .collect(),
        ),
    );
    let key = TenantKey::new("t-broken");
    world.store.put_spec(&key, broken);
    world.reconciler.reconcile(&key).await.expect("reconcile");
    let status = world.store.status(&key).expect("recorded");
    assert!(
        status
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("colour")),
        "{status:?}"
    );
    world
        .publish(
            "v2b",
            &v2_body().replace("Description: Game", "Description: A game"),
        )
        .await
        .expect("a tenant failing on its own version does not block a publish");
    world.tenants.push(key);
    // Bad names, bodies and CloudFormation's own rejection.
    assert!(matches!(
        world.publish("v 4", &v2_body()).await,
        Err(TemplatePublishError::Invalid(_))
    ));
    assert!(matches!(
        world.publish("v4", "not: [yaml").await,
        Err(TemplatePublishError::Invalid(_))
    ));
    let rejected = publish(
        NewTemplate {
            version: "v5".into(),
            body: v2_body().replace("Description: Game", "Description: FORBIDDEN Game"),
            description: None,
            published_by: "ops".into(),
            published_at: "2026-11-23T09:00:00.000Z".into(),
        },
        &world.templates,
        world.store.as_ref(),
        world.store.as_ref(),
        &FakeTemplateValidator {
            rejects: Some("FORBIDDEN".into()),
        },
    )
    .await;
    let Err(TemplatePublishError::Invalid(problems)) = rejected else {
        panic!("{rejected:?}");
    };
    assert!(problems[0].contains("ValidateTemplate"), "{problems:?}");
    assert_eq!(world.store.template("v5").await.unwrap(), None);
}

/// A preview job of v3 run to its end by the preview function's runner; its tenants' previews.
async fn preview(world: &World, sample: Option<usize>) -> Vec<TenantPreview> {
    use controlplane::ports::PreviewStore;
    let job = new_job(Utc::now(), "v3", Selection::default(), sample, "ops").unwrap();
    world.store.create_preview(&job).await.unwrap();
    let runner = PreviewRunner::new(
        world.store.clone(),
        world.store.clone(),
        world.stacks.clone(),
        world.templates.clone(),
    );
    let later = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    match runner.run(&job.id, later).await.unwrap() {
        PreviewProgress::Finished(done) => assert_eq!(done.state, PreviewState::Done),
        other => panic!("{other:?}"),
    }
    world
        .store
        .preview_results(&job.id, None, 100)
        .await
        .unwrap()
        .0
}

#[tokio::test]
async fn a_preview_reports_added_modified_and_replaced_resources_and_cleans_up() {
    let world = World::new(3).await;
    let renamed = v2_body().replace(
        "QueueName: !Sub \"${AWS::StackName}-jobs\"",
        "QueueName: !Sub \"${AWS::StackName}-work\"",
    ) + "  AuditLog:\n    Type: AWS::Logs::LogGroup\n    Properties:\n      RetentionInDays: 30\n";
    let renamed = renamed.replace(
        "Outputs:",
        "  Extra:\n    Type: AWS::SNS::Topic\n\nOutputs:",
    );
    world.publish("v3", &renamed).await.expect("publish v3");
    let previews = preview(&world, Some(2)).await;
    assert_eq!(previews.len(), 2);
    for preview in &previews {
        assert_eq!(preview.error, None);
        assert_eq!(preview.from_version, "v1");
        let counts = preview.summary();
        assert_eq!(
            (
                counts.added,
                counts.modified,
                counts.replaced,
                counts.removed
            ),
            (1, 0, 1, 0),
            "{preview:?}"
        );
        assert_eq!(counts.may_replace, 0, "{preview:?}");
        let queue = preview
            .changes
            .iter()
            .find(|c| c.logical_id == "JobsQueue")
            .unwrap();
        assert_eq!(queue.replacement.as_deref(), Some("True"));
    }
    assert_eq!(world.stacks.open_change_sets(), 0);
    // Nothing was updated.
    assert_eq!(world.stacks.count_calls("update"), 0);
}

#[tokio::test]
async fn a_tenant_whose_spec_does_not_fit_the_target_fails_unmoved_and_the_rollout_goes_on() {
    let mut world = World::new(4).await;
    // v3 allows at most 10 players; a tenant written after publishing asks for 50.
    let smaller = SAMPLE_TEMPLATE.replace("    MaxValue: 100\n", "    MaxValue: 10\n");
    assert_ne!(smaller, SAMPLE_TEMPLATE);
    world.publish("v3", &smaller).await.expect("publish v3");
    let misfit = world.add_tenant("misfit", &[]).await;
    let mut crowded = spec("misfit", &[]);
    crowded.insert(
        "config".into(),
        AttributeValue::M([("player_count".to_owned(), AttributeValue::N("50".into()))].into()),
    );
    world.store.put_spec(&misfit, crowded);
    world.reconciler.reconcile(&misfit).await.unwrap();
    let mut o = options(1, 10, 1);
    o.bake_seconds = 0;
    let id = world
        .driver
        .start(StartRollout {
            target_version: "v3".into(),
            selection: Selection::default(),
            options: o,
            created_by: "ops".into(),
        })
        .await
        .unwrap()
        .id;
    world.driver.tick(&id).await.unwrap();
    let members = world.store.members(&id).await.unwrap();
    // The order is a hash of the (random) rollout id: the misfit may be the canary.
    if members[0].tenant_id == "misfit" {
        assert_eq!(world.run(&id).await, RolloutState::RolledBack);
        let view = world.driver.view(&id).await.unwrap();
        assert!(view.rollout.reason.as_deref().unwrap().contains("canary"));
        assert_eq!(world.version_of(&misfit).as_deref(), Some("v1"));
        return;
    }
    assert_eq!(world.run(&id).await, RolloutState::Completed);
    let view = world.driver.view(&id).await.unwrap();
    let member = view
        .members
        .iter()
        .find(|m| m.tenant_id == "misfit")
        .unwrap();
    assert_eq!(member.state, MemberState::Failed);
    assert!(
        member
            .reason
            .as_deref()
            .unwrap()
            .contains("does not fit v3"),
        "{:?}",
        member.reason
    );
    assert_eq!(view.counts.done, 4);
    assert_eq!(world.version_of(&misfit).as_deref(), Some("v1"));
}

#[tokio::test]
async fn one_driver_steps_at_a_time_and_a_crashed_drivers_lease_runs_out() {
    use std::time::{Duration as Wall, Instant};
    let world = World::new(3).await;
    let id = world.start(options(1, 3, 0), Selection::default()).await;
    let version = |world: &World| {
        let id = id.clone();
        let store = world.store.clone();
        async move { store.rollout(&id).await.unwrap().unwrap().version }
    };
    // A driver that died holding the lease (it never released it).
    let now = world.clock.now().timestamp();
    world
        .store
        .hold_driver_lease("crashed", now, now + 120)
        .await
        .unwrap();
    let before = version(&world).await;
    let ran = world
        .driver
        .drive(Wall::from_secs(2), Wall::from_millis(10))
        .await;
    assert!(ran.is_none(), "stepped while another driver held the lease");
    assert_eq!(version(&world).await, before, "the rollout was written");

    // Once the lease has run out, the next run takes over.
    world.advance(121);
    let ran = world
        .driver
        .drive(Wall::from_millis(200), Wall::from_millis(10))
        .await;
    assert!(ran.is_some(), "the expired lease was not taken over");
    assert!(version(&world).await > before);

    // Two runs at once (a schedule's redelivery, a slow run overlapping the next): the second
    // stops at once, and the first keeps stepping; once it ends, the lease is free again.
    let second = RolloutDriver::new(
        world.store.clone(),
        world.store.clone(),
        world.store.clone(),
        world.templates.clone(),
    )
    .with_clock(clock_of(&world.clock));
    let first = world
        .driver
        .drive(Wall::from_millis(800), Wall::from_millis(20));
    let other = async {
        tokio::time::sleep(Wall::from_millis(100)).await;
        let started = Instant::now();
        let ran = second
            .drive(Wall::from_secs(5), Wall::from_millis(20))
            .await;
        (ran, started.elapsed())
    };
    let (first, (other, waited)) = tokio::join!(first, other);
    assert!(first.is_some());
    assert!(other.is_none(), "two drivers stepped at once");
    assert!(
        waited < Wall::from_secs(1),
        "the second run waited {waited:?}"
    );
    let now = world.clock.now().timestamp();
    world
        .store
        .hold_driver_lease("next", now, now + 30)
        .await
        .expect("the lease was released at the end of the run");
}

#[tokio::test]
async fn a_version_using_aws_transforms_deploys_with_auto_expand_and_a_macro_is_refused() {
    let mut world = World::new(0).await;
    // `sam package` output keeps its Transform; CloudFormation (like the fake) refuses such a
    // template unless the call acknowledges CAPABILITY_AUTO_EXPAND.
    let serverless = format!("Transform: AWS::Serverless-2016-10-31\n{}", v2_body());
    world
        .publish("v3", &serverless)
        .await
        .expect("an AWS transform is published");
    let key = world
        .add_tenant("sam-user", &[("template_version", "v3")])
        .await;
    let status = world.store.status(&key).expect("STATUS");
    assert_eq!(status.status, Status::Ready, "{:?}", status.reason);
    assert_eq!(world.version_of(&key).as_deref(), Some("v3"));

    let with_macro = format!("Transform: [AWS::Include, Acme::Expand]\n{}", v2_body());
    match world.publish("v4", &with_macro).await {
        Err(TemplatePublishError::Invalid(problems)) => assert!(
            problems
                .iter()
                .any(|p| p.contains("Transform Acme::Expand is a macro")),
            "{problems:?}"
        ),
        other => panic!("a custom macro was not refused: {other:?}"),
    }
}

#[tokio::test]
async fn a_preview_job_goes_on_from_its_cursor_run_after_run_and_a_finished_one_stays_done() {
    use controlplane::ports::PreviewStore;
    // More tenants than one round of change sets takes.
    let world = World::new(11).await;
    world
        .publish("v3", &v2_body().replace("-jobs\"", "-work\""))
        .await
        .unwrap();
    let job = new_job(Utc::now(), "v3", Selection::default(), None, "ops").unwrap();
    world.store.create_preview(&job).await.unwrap();
    let runner = PreviewRunner::new(
        world.store.clone(),
        world.store.clone(),
        world.stacks.clone(),
        world.templates.clone(),
    );
    // A run whose time is up at once does one round of change sets and asks to go on.
    let past = tokio::time::Instant::now();
    let mut runs = 0;
    let finished = loop {
        runs += 1;
        assert!(runs < 10, "the preview never finished");
        match runner.run(&job.id, past).await.unwrap() {
            PreviewProgress::Continue(job) => assert_eq!(job.state, PreviewState::Running),
            PreviewProgress::Finished(job) => break job,
        }
    };
    assert!(
        runs > 1,
        "every tenant was previewed in one run: the cursor was not used"
    );
    assert_eq!(finished.state, PreviewState::Done);
    assert_eq!(finished.previewed, 11);
    let (results, next) = world
        .store
        .preview_results(&job.id, None, 100)
        .await
        .unwrap();
    assert_eq!(next, None);
    let tenants: Vec<&str> = results.iter().map(|r| r.tenant_id.as_str()).collect();
    let every: Vec<String> = (0..11).map(|i| format!("t{i:03}")).collect();
    assert_eq!(tenants, every, "each tenant once");
    assert_eq!(world.stacks.open_change_sets(), 0);
    // A redelivered message finds it done: nothing more is previewed.
    let calls = world.stacks.count_calls("preview");
    let again = runner.run(
        &job.id,
        tokio::time::Instant::now() + std::time::Duration::from_secs(60),
    );
    assert!(matches!(again.await.unwrap(), PreviewProgress::Finished(j) if j == finished));
    assert_eq!(world.stacks.count_calls("preview"), calls);

    // A sample stops at its size; a version that is not published fails with the reason.
    let sampled = new_job(Utc::now(), "v3", Selection::default(), Some(2), "ops").unwrap();
    world.store.create_preview(&sampled).await.unwrap();
    let later = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    match runner.run(&sampled.id, later).await.unwrap() {
        PreviewProgress::Finished(job) => {
            assert_eq!((job.state, job.previewed), (PreviewState::Done, 2))
        }
        other => panic!("{other:?}"),
    }
    let missing = new_job(Utc::now(), "v9", Selection::default(), None, "ops").unwrap();
    world.store.create_preview(&missing).await.unwrap();
    match runner.run(&missing.id, later).await.unwrap() {
        PreviewProgress::Finished(job) => {
            assert_eq!(job.state, PreviewState::Failed);
            assert!(job.reason.unwrap_or_default().contains("v9"));
        }
        other => panic!("{other:?}"),
    }
}

/// A tenant a selection rollout moved to v2 whose STATUS is then lost (a hand delete, or a
/// STATUS from before the control-plane table) keeps the version its stack runs, as the stack's
/// tag says: it is not moved back to the fleet's current version behind the rollouts' back.
#[tokio::test]
async fn a_tenant_whose_status_is_lost_keeps_the_version_its_stack_runs() {
    let world = World::new(2).await;
    let mut o = options(1, 1, 0);
    o.bake_seconds = 0;
    let selection = Selection {
        tenants: vec!["t001".into()],
        ..Selection::default()
    };
    let id = world.start(o, selection).await;
    world.run(&id).await;
    let moved = TenantKey::new("t001");
    assert_eq!(world.version_of(&moved).as_deref(), Some("v2"));

    world.store.remove_status(&moved);
    world.reconciler.reconcile(&moved).await.expect("reconcile");
    let status = world.store.status(&moved).expect("STATUS recorded again");
    assert_eq!(status.status, Status::Ready, "{status:?}");
    assert_eq!(status.assigned_version.as_deref(), Some("v2"));
    assert_eq!(
        status.assigned_by.as_deref(),
        Some("stack-tag"),
        "says where it came from"
    );
    assert_eq!(status.template_version.as_deref(), Some("v2"));
    assert_eq!(world.version_of(&moved).as_deref(), Some("v2"));
    // The other tenant, never moved, stays on v1.
    assert_eq!(
        world.version_of(&TenantKey::new("t000")).as_deref(),
        Some("v1")
    );
}

/// The stack's `template-version` tag is only a hint: anyone who may tag the stack can write
/// it. A tenant whose STATUS is lost and whose tag names a version never published (or no
/// version name at all) takes the fleet's current version; it does not fail on a version it was
/// never given (and `retry` or `update` are not refused for it).
#[tokio::test]
async fn a_forged_version_tag_is_not_adopted() {
    for forged in ["v9", "not a version!"] {
        let world = World::new(1).await;
        let key = TenantKey::new("t000");
        assert_eq!(world.version_of(&key).as_deref(), Some("v1"));
        let location = world.location(&key);
        world
            .stacks
            .set_tag(&location, TAG_TEMPLATE_VERSION, forged);
        world.store.remove_status(&key);

        world.reconciler.reconcile(&key).await.expect("reconcile");
        world.stacks.finish_in_progress();
        world.reconciler.reconcile(&key).await.expect("reconcile");
        let status = world.store.status(&key).expect("STATUS recorded again");
        assert_eq!(status.status, Status::Ready, "{forged}: {status:?}");
        assert_eq!(status.reason, None, "{forged}");
        assert_eq!(status.assigned_version.as_deref(), Some("v1"), "{forged}");
        assert_eq!(status.assigned_by.as_deref(), Some("created"), "{forged}");
        assert_eq!(status.template_version.as_deref(), Some("v1"), "{forged}");
        // The stack is tagged with the version it really runs again.
        assert_eq!(world.version_of(&key).as_deref(), Some("v1"), "{forged}");
    }
}

/// A version whose body was changed in place after it was published fails the tenants on it
/// with the reason (not a retry forever), and a cold instance never deploys it. Once the body
/// is repaired, the next reconcile goes on.
#[tokio::test]
async fn a_version_changed_after_publishing_fails_its_tenants_with_the_reason() {
    let mut world = World::new(0).await;
    world.tamper("v2", "Resources: {Evil: {Type: AWS::SQS::Queue}}");
    let key = world
        .add_tenant("t100", &[("template_version", "v2")])
        .await;
    let status = world.store.status(&key).expect("STATUS");
    assert_eq!(status.status, Status::Failed, "{status:?}");
    assert!(
        status
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("changed after it was published")),
        "{status:?}"
    );
    assert!(world.stacks.live_stacks().is_empty(), "nothing deployed");

    world.tamper("v2", &v2_body());
    world.reconciler.reconcile(&key).await.expect("reconcile");
    world.stacks.finish_in_progress();
    world.reconciler.reconcile(&key).await.expect("reconcile");
    let status = world.store.status(&key).expect("STATUS");
    assert_eq!(status.status, Status::Ready, "{status:?}");
    assert_eq!(world.version_of(&key).as_deref(), Some("v2"));
}

/// A warm instance does not go on deploying a version changed in place: a verified version is
/// checked against its record again once `recheck` has passed (a minute by default), so every
/// instance refuses it within that time and its tenants do not flap between instances.
#[tokio::test]
async fn a_version_changed_in_place_is_refused_by_a_warm_instance_too() {
    use controlplane::ports::{TemplateSource, TemplateSourceError};
    let world = World::new(0).await;
    let warm = |recheck| {
        TableTemplates::new(
            world.store.clone(),
            world.objects.clone(),
            BundledTemplates::sample().unwrap(),
        )
        .with_recheck(recheck)
    };
    let rechecking = warm(std::time::Duration::ZERO);
    let within_the_minute = warm(controlplane::template_source::TEMPLATE_RECHECK);
    for templates in [&rechecking, &within_the_minute] {
        assert!(
            templates.get("v2").await.unwrap().is_some(),
            "verified and kept"
        );
    }
    world.tamper("v2", "Resources: {Evil: {Type: AWS::SQS::Queue}}");
    match rechecking.get("v2").await {
        Err(TemplateSourceError::Corrupt(reason)) => {
            assert!(
                reason.contains("changed after it was published"),
                "{reason}"
            )
        }
        other => panic!("refused, got {other:?}"),
    }
    // Within the minute, the body this instance verified (the published one) is still used.
    let kept = within_the_minute.get("v2").await.unwrap().expect("kept");
    assert_eq!(kept.body, v2_body());

    world.tamper("v2", &v2_body());
    let repaired = rechecking.get("v2").await.unwrap().expect("repaired");
    assert_eq!(repaired.body, v2_body());
}
