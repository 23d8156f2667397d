//! Decommission with fakes: past-date tenants are announced, then removed after the grace period
//! through the normal removal path; future and mid-operation tenants are untouched.

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_dynamo::{AttributeValue, Item};

use controlplane::reconcile::Settings;
use controlplane::testing::{Behaviour, World};
use controlplane::triggers::decommission::decommission;
use controlplane::triggers::sweep::sweep;
use model::spec::TenantKey;
use model::status::{LifecycleKind, Status};

use common::seed_image;

const GRACE: Duration = Duration::from_secs(7 * 86_400);

fn spec(tenant: &str, decommission_date: Option<&str>) -> Item {
    let mut item = seed_image();
    item.insert("pk".into(), AttributeValue::S(format!("TENANT#{tenant}")));
    item.insert("tenant_id".into(), AttributeValue::S(tenant.into()));
    if let Some(date) = decommission_date {
        item.insert("decommission_date".into(), AttributeValue::S(date.into()));
    }
    item
}

fn time(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// The table, CloudFormation, the lifecycle topic and a settable clock, all in memory.
fn world(settings: Settings) -> World {
    World::builder()
        .settings(settings)
        .with_events()
        .starting_at(time("2026-11-20T09:00:00Z"))
        .build()
}

#[tokio::test]
async fn past_date_tenants_are_announced_then_removed_and_the_others_untouched() {
    let mut settings = Settings::new("us-east-1");
    // The hanging create must outlast this week-long test rather than time out.
    settings.operation_timeout = Duration::from_secs(30 * 86_400);
    let World {
        store,
        stacks,
        events,
        clock,
        reconciler,
        ..
    } = world(settings);

    let past = TenantKey::new("past-date");
    let future = TenantKey::new("future-date");
    let busy = TenantKey::new("mid-flow");
    let undated = TenantKey::new("no-date");
    store.put_spec(&past, spec("past-date", Some("2026-11-20")));
    store.put_spec(&future, spec("future-date", Some("2027-06-30T00:00:00Z")));
    store.put_spec(&undated, spec("no-date", None));
    stacks.set_behaviour("tenant-mid-flow", Behaviour::Hang);
    store.put_spec(&busy, spec("mid-flow", Some("2026-11-01")));
    sweep(store.as_ref(), &reconciler, 4).await.expect("sweep");
    assert_eq!(store.status(&busy).unwrap().status, Status::Creating);
    let status_of = |t: &TenantKey| store.status(t).map(|s| s.status);

    // Day one: the passed date is announced; the grace period starts.
    let report = decommission(store.as_ref(), &reconciler, GRACE, 4)
        .await
        .expect("decommission");
    assert_eq!(
        (
            report.tenants,
            report.announced,
            report.not_due,
            report.skipped,
            report.removed
        ),
        (4, 1, 2, 1, 0)
    );
    let scheduled: Vec<_> = events
        .published()
        .into_iter()
        .filter(|e| e.kind == LifecycleKind::DecommissionScheduled)
        .collect();
    assert_eq!(scheduled.len(), 1);
    assert_eq!(scheduled[0].tenant_id, "past-date");
    assert_eq!(
        scheduled[0].remove_after.as_deref(),
        Some("2026-11-27T09:00:00.000Z")
    );
    assert_eq!(scheduled[0].id, "past-date:decommission:2026-11-20");
    assert_eq!(status_of(&past), Some(Status::Ready));

    // The next days: still in grace; nothing is announced twice.
    clock.set(time("2026-11-26T09:00:00Z"));
    let report = decommission(store.as_ref(), &reconciler, GRACE, 4)
        .await
        .expect("decommission");
    assert_eq!(
        (report.announced, report.in_grace, report.removed),
        (0, 1, 0)
    );
    assert_eq!(events.published().len(), scheduled.len() + 3); // + the three provisioned

    // Grace over: the SPEC is removed as the system actor; the normal path deletes the stack.
    clock.set(time("2026-11-27T09:00:00Z"));
    let report = decommission(store.as_ref(), &reconciler, GRACE, 4)
        .await
        .expect("decommission");
    assert_eq!((report.removed, report.skipped), (1, 1));
    let removal = store
        .audit(&past)
        .into_iter()
        .find(|e| e.action == "decommission")
        .expect("the removal is on the timeline");
    assert_eq!(
        (removal.actor.as_str(), removal.result.as_str()),
        ("system", "accepted")
    );
    sweep(store.as_ref(), &reconciler, 4).await.expect("sweep");
    assert_eq!(status_of(&past), Some(Status::Deleted));
    assert!(
        events
            .published()
            .iter()
            .any(|e| e.tenant_id == "past-date" && e.kind == LifecycleKind::Deleted)
    );

    // Untouched: the future-dated, the undated, and the one mid-operation.
    assert_eq!(status_of(&future), Some(Status::Ready));
    assert_eq!(status_of(&undated), Some(Status::Ready));
    assert_eq!(status_of(&busy), Some(Status::Creating));
    assert_eq!(stacks.live_stacks().len(), 3);
}

#[tokio::test]
async fn a_date_moved_during_the_grace_period_is_not_removed() {
    let World {
        store,
        clock,
        reconciler,
        ..
    } = world(Settings::new("us-east-1"));
    let tenant = TenantKey::new("extended");
    store.put_spec(&tenant, spec("extended", Some("2026-11-19")));
    sweep(store.as_ref(), &reconciler, 1).await.expect("sweep");
    decommission(store.as_ref(), &reconciler, GRACE, 1)
        .await
        .expect("announce");

    // The customer extends: the writer moves the date past the end of the grace period.
    store.put_spec(&tenant, spec("extended", Some("2027-01-31")));
    clock.set(time("2026-12-01T09:00:00Z"));
    let report = decommission(store.as_ref(), &reconciler, GRACE, 1)
        .await
        .expect("decommission");
    // The notice for the old date is withdrawn; the new date will be announced when it comes.
    assert_eq!((report.removed, report.withdrawn), (0, 1));
    let status = store.status(&tenant).unwrap();
    assert_eq!(status.status, Status::Ready);
    assert_eq!(status.decommission_notice, None);
}

#[tokio::test]
async fn a_cleared_date_withdraws_the_notice_and_a_recreated_tenant_is_announced_afresh() {
    let World {
        store,
        events,
        clock,
        reconciler,
        ..
    } = world(Settings::new("us-east-1"));
    let tenant = TenantKey::new("cancelled");
    let announcements = || {
        events
            .published()
            .iter()
            .filter(|e| e.kind == LifecycleKind::DecommissionScheduled)
            .count()
    };
    let run = || decommission(store.as_ref(), &reconciler, GRACE, 1);
    store.put_spec(&tenant, spec("cancelled", Some("2026-11-19")));
    sweep(store.as_ref(), &reconciler, 1).await.expect("sweep");
    run().await.expect("announce");
    assert_eq!(announcements(), 1);

    // The writer cancels: the notice is withdrawn.
    store.put_spec(&tenant, spec("cancelled", None));
    assert_eq!(run().await.expect("run").withdrawn, 1);
    assert_eq!(store.status(&tenant).unwrap().decommission_notice, None);

    // Weeks later the same date is set again: announced again with a new grace period; nothing
    // is removed on the spot.
    clock.set(time("2026-12-20T09:00:00Z"));
    store.put_spec(&tenant, spec("cancelled", Some("2026-11-19")));
    let report = run().await.expect("run");
    assert_eq!((report.announced, report.removed), (1, 0));
    assert_eq!(announcements(), 2);

    // Removed after that grace, then created again with the same (copied) SPEC: the deleted
    // tenant kept no notice, so it is announced afresh rather than removed at once.
    clock.set(time("2026-12-27T09:00:00Z"));
    assert_eq!(run().await.expect("run").removed, 1);
    sweep(store.as_ref(), &reconciler, 1).await.expect("sweep");
    assert_eq!(store.status(&tenant).unwrap().status, Status::Deleted);
    store.put_spec(&tenant, spec("cancelled", Some("2026-11-19")));
    sweep(store.as_ref(), &reconciler, 1).await.expect("sweep");
    let report = run().await.expect("run");
    assert_eq!((report.announced, report.removed), (1, 0));
    assert_eq!(store.status(&tenant).unwrap().status, Status::Ready);
}

/// A notice whose event the topic refused stays in the outbox, and the tenant is looked at
/// again within seconds to publish it, not at the next sweep.
#[tokio::test]
async fn an_unpublished_notice_is_looked_at_again_soon() {
    let World {
        store,
        events,
        recheck,
        reconciler,
        ..
    } = World::builder()
        .with_events()
        .with_rechecks()
        .starting_at(time("2026-11-20T09:00:00Z"))
        .build();
    let tenant = TenantKey::new("past-date");
    store.put_spec(&tenant, spec("past-date", Some("2026-11-20")));
    sweep(store.as_ref(), &reconciler, 1).await.expect("sweep");
    events.set_failing(true);
    let before = recheck.requests().len();
    let report = decommission(store.as_ref(), &reconciler, GRACE, 1)
        .await
        .expect("decommission");
    assert_eq!(report.announced, 1);
    let status = store.status(&tenant).unwrap();
    assert!(status.decommission_notice.is_some());
    assert_eq!(
        status.pending_events.len(),
        1,
        "{:?}",
        status.pending_events
    );
    let asked: Vec<_> = recheck.requests().into_iter().skip(before).collect();
    assert_eq!(
        asked,
        vec![(tenant.clone(), reconciler.settings().requeue_after)]
    );

    // The look publishes it.
    events.set_failing(false);
    reconciler.reconcile(&tenant).await.expect("reconciled");
    assert!(store.status(&tenant).unwrap().pending_events.is_empty());
    assert!(
        events
            .published()
            .iter()
            .any(|e| e.kind == LifecycleKind::DecommissionScheduled)
    );
}
