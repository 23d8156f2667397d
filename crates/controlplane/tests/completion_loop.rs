//! The completion loop with fakes: an operation in flight is re-checked through the queue until
//! its end is recorded; re-check messages (the sample event included) drive the same reconcile.

mod common;

use std::time::Duration;

use controlplane::ports::StackError;
use controlplane::reconcile::{Action, Outcome, Settings, action_of};
use controlplane::testing::{Behaviour, World};
use controlplane::triggers::completion::handle_rechecks;
use controlplane::triggers::reconcile_now;
use controlplane::triggers::stream::{StreamSettings, handle_batch};
use model::spec::TenantKey;
use model::status::Status;
use serde_json::{Value, json};

use common::{event, seed_image};

fn setup() -> World {
    World::builder().with_rechecks().with_events().build()
}

fn put_seed(l: &World) {
    l.store.put_spec(&TenantKey::new("gs1234"), seed_image());
}

fn recheck(tenant: &str, id: &str) -> Value {
    json!({"messageId": id, "receiptHandle": "h", "body": json!({"tenant_id": tenant}).to_string(),
           "eventSource": "aws:sqs", "awsRegion": "us-east-1"})
}

#[tokio::test]
async fn an_operation_in_flight_is_followed_to_its_end() {
    let l = setup();
    put_seed(&l);
    l.stacks.set_behaviour("tenant-gs1234", Behaviour::Hang);
    let report = handle_batch(
        &l.reconciler,
        &StreamSettings::default(),
        &event("stream-insert.json"),
    )
    .await;
    assert!(report.response.batch_item_failures.is_empty());
    let tenant = TenantKey::new("gs1234");
    assert_eq!(
        l.store.status(&tenant).map(|s| s.status),
        Some(Status::Creating)
    );
    // A re-check is scheduled, soon (the operation has only just started).
    let requests = l.recheck.requests();
    assert_eq!(requests, [(tenant.clone(), Duration::from_secs(2))]);

    // Still running at the re-check: another is scheduled; nothing is recorded.
    let writes = l.store.status_writes();
    let response = handle_rechecks(
        &l.reconciler,
        &StreamSettings::default(),
        &json!({"Records": [recheck("gs1234", "m1")]}),
    )
    .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(l.recheck.requests().len(), 2);
    assert_eq!(l.store.status_writes(), writes);

    // CloudFormation finishes: the next re-check records ready with the outputs.
    l.stacks.finish_in_progress();
    let response = handle_rechecks(
        &l.reconciler,
        &StreamSettings::default(),
        &json!({"Records": [recheck("gs1234", "m2"), recheck("gs1234", "m3")]}),
    )
    .await;
    assert!(response.batch_item_failures.is_empty());
    let status = l.store.status(&tenant).expect("status");
    assert_eq!(status.status, Status::Ready);
    assert!(!status.outputs.is_empty());
    // Converged: no more re-checks.
    assert_eq!(l.recheck.requests().len(), 2);
}

/// The message EventBridge puts on the re-check queue when a stack changes status.
fn stack_status_change(stack_id: &str, status: &str, id: &str) -> Value {
    let event = json!({
        "version": "0", "id": "ev-1", "detail-type": "CloudFormation Stack Status Change",
        "source": "aws.cloudformation", "account": "111111111111",
        "time": "2026-11-23T10:04:12Z", "region": "us-east-1", "resources": [stack_id],
        "detail": {"stack-id": stack_id,
                   "status-details": {"status": status, "status-reason": ""}}
    });
    json!({"messageId": id, "receiptHandle": "h", "body": event.to_string(),
           "eventSource": "aws:sqs", "awsRegion": "us-east-1"})
}

#[tokio::test]
async fn a_stack_status_change_event_records_the_end_without_waiting_for_the_re_check() {
    let l = setup();
    put_seed(&l);
    l.stacks.set_hanging("tenant-gs1234", true);
    let tenant = TenantKey::new("gs1234");
    reconcile_now(&l.reconciler, &tenant)
        .await
        .expect("started");
    let started = l.store.status(&tenant).expect("status");
    assert_eq!(started.status, Status::Creating);
    let location = started.location.clone().expect("location");
    let stack_id = l.stacks.stack(&location).expect("stack").observed.stack_id;
    assert_eq!(
        l.recheck.requests().len(),
        1,
        "the polling fallback is armed"
    );

    // CloudFormation finishes; its event arrives before the scheduled re-check.
    assert_eq!(
        l.stacks.finish(&location),
        Some(model::stack::StackStatus::CreateComplete)
    );
    let response = handle_rechecks(
        &l.reconciler,
        &StreamSettings::default(),
        &json!({"Records": [stack_status_change(&stack_id, "CREATE_COMPLETE", "e1")]}),
    )
    .await;
    assert!(response.batch_item_failures.is_empty());
    let status = l.store.status(&tenant).expect("status");
    assert_eq!(status.status, Status::Ready);
    assert_eq!(
        status.stack_status.as_ref().map(|s| s.as_str()),
        Some("CREATE_COMPLETE")
    );
    assert!(!status.outputs.is_empty());
    // Converged: the event scheduled no further look; the fallback re-check, when it comes,
    // finds nothing to do.
    assert_eq!(l.recheck.requests().len(), 1);
    let writes = l.store.status_writes();
    handle_rechecks(
        &l.reconciler,
        &StreamSettings::default(),
        &json!({"Records": [recheck("gs1234", "m1")]}),
    )
    .await;
    assert_eq!(l.store.status_writes(), writes);
}

#[tokio::test]
async fn a_stack_status_change_event_is_a_trigger_not_the_truth() {
    let l = setup();
    put_seed(&l);
    l.stacks.set_hanging("tenant-gs1234", true);
    let tenant = TenantKey::new("gs1234");
    reconcile_now(&l.reconciler, &tenant)
        .await
        .expect("started");
    let location = l
        .store
        .status(&tenant)
        .and_then(|s| s.location)
        .expect("location");
    let stack_id = l.stacks.stack(&location).expect("stack").observed.stack_id;
    let writes = l.store.status_writes();

    // An event claiming the create ended, while the stack still runs: the stack is read, the
    // operation stays in flight and the next look is scheduled.
    let response = handle_rechecks(
        &l.reconciler,
        &StreamSettings::default(),
        &json!({"Records": [stack_status_change(&stack_id, "CREATE_COMPLETE", "e1")]}),
    )
    .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        l.store.status(&tenant).map(|s| s.status),
        Some(Status::Creating)
    );
    assert_eq!(l.store.status_writes(), writes);
    assert_eq!(l.recheck.requests().len(), 2);

    // An event about another stack (not the control plane's prefix) reconciles no one.
    let foreign = stack_id.replace("tenant-gs1234", "billing-db");
    let response = handle_rechecks(
        &l.reconciler,
        &StreamSettings::default(),
        &json!({"Records": [stack_status_change(&foreign, "UPDATE_COMPLETE", "e2")]}),
    )
    .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(l.recheck.requests().len(), 2);

    // An event whose status disagrees with the stack: the stack's own status is recorded.
    l.stacks.finish(&location);
    handle_rechecks(
        &l.reconciler,
        &StreamSettings::default(),
        &json!({"Records": [stack_status_change(&stack_id, "ROLLBACK_COMPLETE", "e3")]}),
    )
    .await;
    let status = l.store.status(&tenant).expect("status");
    assert_eq!(status.status, Status::Ready);
    assert_eq!(
        status.stack_status.as_ref().map(|s| s.as_str()),
        Some("CREATE_COMPLETE")
    );
}

#[tokio::test]
async fn a_re_check_that_cannot_be_scheduled_is_retried_by_the_trigger() {
    let l = setup();
    put_seed(&l);
    l.stacks.set_behaviour("tenant-gs1234", Behaviour::Hang);
    l.recheck.set_failing(true);
    let report = handle_batch(
        &l.reconciler,
        &StreamSettings::default(),
        &event("stream-insert.json"),
    )
    .await;
    // Nothing would ever look again: Lambda must retry the record.
    assert_eq!(report.response.batch_item_failures.len(), 1);
    let tenant = TenantKey::new("gs1234");
    assert!(matches!(
        reconcile_now(&l.reconciler, &tenant).await,
        Err(e) if e.0.contains("could not be scheduled")
    ));
    l.recheck.set_failing(false);
    assert!(matches!(
        reconcile_now(&l.reconciler, &tenant).await,
        Ok(Outcome::InFlight { .. })
    ));
}

#[tokio::test]
async fn the_sample_re_check_event_is_handled_and_its_bad_message_dropped() {
    let l = setup();
    put_seed(&l);
    let response = handle_rechecks(
        &l.reconciler,
        &StreamSettings::default(),
        &event("sqs-recheck.json"),
    )
    .await;
    // The good message reconciles the tenant; the other cannot heal and is not redelivered.
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        l.store.status(&TenantKey::new("gs1234")).map(|s| s.status),
        Some(Status::Ready)
    );
    let garbage = handle_rechecks(
        &l.reconciler,
        &StreamSettings::default(),
        &json!({"Records": [42, {"messageId": "x"}]}),
    )
    .await;
    assert!(garbage.batch_item_failures.is_empty());
}

#[tokio::test]
async fn a_retry_that_backs_off_is_scheduled_through_the_queue() {
    use controlplane::ports::StackError;
    let l = setup();
    put_seed(&l);
    let tenant = TenantKey::new("gs1234");
    let quick = Settings::new("us-east-1").quick_retries;
    for _ in 0..=quick {
        l.stacks
            .fail_next("create", StackError::Transient("Rate exceeded".into()));
        reconcile_now(&l.reconciler, &tenant)
            .await
            .expect("recorded");
    }
    // Through the queue, a quick retry is a re-check at the shortest delay; the first
    // backed-off one is due in 30 s, and the completion loop is asked to look then.
    let quick_look = (tenant.clone(), Settings::new("us-east-1").requeue_min);
    let mut expected = vec![quick_look; quick as usize];
    expected.push((tenant.clone(), Duration::from_secs(30)));
    assert_eq!(l.recheck.requests(), expected);
    let status = l.store.status(&tenant).expect("status");
    assert_eq!((status.status, status.retryable), (Status::Failed, true));
}

#[tokio::test]
async fn a_failed_look_at_an_operation_in_flight_keeps_the_operation() {
    use controlplane::ports::StackError;
    let l = setup();
    put_seed(&l);
    l.stacks.set_behaviour("tenant-gs1234", Behaviour::Hang);
    let tenant = TenantKey::new("gs1234");
    reconcile_now(&l.reconciler, &tenant)
        .await
        .expect("started");
    let started = l.store.status(&tenant).expect("status");
    assert_eq!(started.status, Status::Creating);

    l.stacks
        .fail_next("describe", StackError::Transient("Rate exceeded".into()));
    reconcile_now(&l.reconciler, &tenant)
        .await
        .expect("recorded");
    let status = l.store.status(&tenant).expect("status");
    // Still our create in flight, with the reason of the failed look.
    assert_eq!(status.status, Status::Creating);
    assert_eq!(status.updated_at, started.updated_at);
    assert!(status.reason.unwrap_or_default().contains("Rate exceeded"));

    // When CloudFormation ends, the create's end is recorded as such.
    l.stacks.finish_in_progress();
    assert_eq!(
        reconcile_now(&l.reconciler, &tenant).await,
        Ok(Outcome::Converged(Some(Status::Ready)))
    );
}

#[tokio::test]
async fn each_transition_publishes_one_lifecycle_event() {
    use model::status::LifecycleKind;
    let l = setup();
    put_seed(&l);
    let tenant = TenantKey::new("gs1234");
    let stream = StreamSettings::default();
    handle_batch(&l.reconciler, &stream, &event("stream-insert.json")).await;
    // A duplicate delivery changes nothing and publishes nothing.
    handle_batch(&l.reconciler, &stream, &event("stream-insert.json")).await;
    let published = l.events.published();
    assert_eq!(published.len(), 1, "{published:?}");
    let provisioned = &published[0];
    assert_eq!(provisioned.kind, LifecycleKind::Provisioned);
    assert_eq!(provisioned.tenant_id, "gs1234");
    assert_eq!(provisioned.account_id.as_deref(), Some("111111111111"));
    assert!(!provisioned.outputs.is_empty());
    // Published after the state was written, and the outbox emptied.
    let status = l.store.status(&tenant).expect("status");
    assert_eq!(status.status, Status::Ready);
    assert!(status.pending_events.is_empty());

    // Update, then removal.
    let modify = event("stream-modify.json");
    let image = modify["Records"][0]["dynamodb"]["NewImage"].clone();
    l.store
        .put_spec(&tenant, serde_json::from_value(image).expect("image"));
    handle_batch(&l.reconciler, &stream, &modify).await;
    l.store.delete_spec(&tenant);
    handle_batch(&l.reconciler, &stream, &event("stream-remove.json")).await;
    let kinds: Vec<_> = l.events.published().iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            LifecycleKind::Provisioned,
            LifecycleKind::Updated,
            LifecycleKind::Deleted
        ]
    );
    let ids: std::collections::BTreeSet<_> =
        l.events.published().iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids.len(), 3, "one id per transition");
}

#[tokio::test]
async fn a_failed_publish_keeps_the_state_and_the_event_until_it_goes_out() {
    let l = setup();
    put_seed(&l);
    let tenant = TenantKey::new("gs1234");
    l.events.set_failing(true);
    handle_batch(
        &l.reconciler,
        &StreamSettings::default(),
        &event("stream-insert.json"),
    )
    .await;
    // The state is written and correct; the event waits in the outbox; a re-check is due.
    let status = l.store.status(&tenant).expect("status");
    assert_eq!(status.status, Status::Ready);
    assert_eq!(status.pending_events.len(), 1);
    let id = status.pending_events[0].id.clone();
    assert!(l.events.published().is_empty());
    assert_eq!(l.recheck.requests().len(), 1);

    // The re-check publishes it, under the same id, and empties the outbox.
    l.events.set_failing(false);
    let response = handle_rechecks(
        &l.reconciler,
        &StreamSettings::default(),
        &json!({"Records": [recheck("gs1234", "m1")]}),
    )
    .await;
    assert!(response.batch_item_failures.is_empty());
    let published = l.events.published();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].id, id);
    let status = l.store.status(&tenant).expect("status");
    assert_eq!(status.status, Status::Ready);
    assert!(status.pending_events.is_empty());
}

#[tokio::test]
async fn an_invalid_spec_publishes_a_failed_event_with_its_reason() {
    use model::status::LifecycleKind;
    let l = setup();
    let tenant = TenantKey::new("gs1234");
    let mut image = event("stream-insert.json")["Records"][0]["dynamodb"]["NewImage"].clone();
    image["account_id"] = json!({"S": "12"});
    l.store
        .put_spec(&tenant, serde_json::from_value(image).expect("image"));
    reconcile_now(&l.reconciler, &tenant)
        .await
        .expect("recorded");
    let published = l.events.published();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].kind, LifecycleKind::Failed);
    assert!(
        published[0]
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("account_id")
    );
}

/// A failure for good whose event could not be published asks for a look again soon, even when
/// the reconcile that tried to publish it then fails to look at the stack: the event waits
/// seconds, not until the next sweep.
#[tokio::test]
async fn an_unpublished_failure_is_looked_at_again_even_when_the_next_look_fails() {
    let l = setup();
    put_seed(&l);
    let tenant = TenantKey::new("gs1234");
    l.events.set_failing(true);
    l.stacks.fail_next(
        "create",
        StackError::Rejected("ValidationError: bad template".into()),
    );
    let first = l.reconciler.reconcile(&tenant).await.expect("recorded");
    assert!(matches!(first, Outcome::Unpublished { .. }), "{first:?}");

    // The look before the publish is good; the one after it fails.
    l.stacks.fail_after(
        "describe",
        1,
        StackError::Transient("Throttling: Rate exceeded".into()),
    );
    let second = l.reconciler.reconcile(&tenant).await.expect("recorded");
    assert_eq!(
        l.stacks.later_faults_left(),
        0,
        "the failing look was not reached"
    );
    let Outcome::Unpublished { outcome, .. } = &second else {
        panic!("the pending event was forgotten: {second:?}");
    };
    assert!(matches!(**outcome, Outcome::Failed { .. }), "{outcome:?}");
    assert_eq!(
        action_of(&Ok(second.clone())),
        Action::RequeueAfter(Settings::new("us-east-1").requeue_after)
    );

    l.events.set_failing(false);
    l.reconciler.reconcile(&tenant).await.expect("recorded");
    let status = l.store.status(&tenant).unwrap();
    assert_eq!(status.status, Status::Failed);
    assert!(status.pending_events.is_empty());
    assert_eq!(l.events.published().len(), 1, "{:?}", l.events.published());
}
