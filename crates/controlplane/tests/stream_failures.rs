//! The OnFailure consumer with fakes: batches Lambda gave up on are re-read from the stream and
//! their tenants reconciled; a tenant that still cannot be processed ends failed with a reason
//! saying its records were exhausted; nothing is dropped silently.

mod common;

use controlplane::ports::{ShardRange, StackError, StoreError};
use controlplane::testing::{FakeStreamRecords, World};
use controlplane::triggers::stream::StreamSettings;
use controlplane::triggers::stream_failures::handle_stream_failures;
use model::spec::TenantKey;
use model::status::Status;

use common::{event, seed_image};

/// The reconciler's fakes, and the stream the consumer re-reads.
struct Consumer {
    fakes: World,
    stream: FakeStreamRecords,
}

impl std::ops::Deref for Consumer {
    type Target = World;

    fn deref(&self) -> &World {
        &self.fakes
    }
}

fn world() -> Consumer {
    Consumer {
        fakes: World::builder().with_rechecks().build(),
        stream: FakeStreamRecords::default(),
    }
}

/// The range the sample event names.
fn sample_range() -> ShardRange {
    ShardRange {
        stream_arn:
            "arn:aws:dynamodb:us-east-1:123456789012:table/tenants/stream/2026-11-01T00:00:00.000"
                .into(),
        shard_id: "shardId-00000001700000000000-5f3a2b1c".into(),
        start_sequence_number: "4200000000000000000001".into(),
        end_sequence_number: "4200000000000000000001".into(),
    }
}

async fn handle(world: &Consumer, event: &serde_json::Value) -> Vec<String> {
    handle_stream_failures(
        &world.reconciler,
        &world.stream,
        &StreamSettings::default(),
        event,
    )
    .await
    .batch_item_failures
    .into_iter()
    .map(|f| f.item_identifier)
    .collect()
}

#[tokio::test]
async fn a_given_up_batch_is_re_read_and_its_tenant_provisioned() {
    let world = world();
    let tenant = TenantKey::new("gs1234");
    world.store.put_spec(&tenant, seed_image());
    world.stream.holds(sample_range(), vec![tenant.clone()]);
    let failures = handle(&world, &event("sqs-stream-failure.json")).await;
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(world.store.status(&tenant).unwrap().status, Status::Ready);
}

#[tokio::test]
async fn a_tenant_that_still_cannot_be_processed_ends_failed_saying_its_records_were_exhausted() {
    let world = world();
    let tenant = TenantKey::new("gs1234");
    world.store.put_spec(&tenant, seed_image());
    world.stream.holds(sample_range(), vec![tenant.clone()]);
    // The table fails the reconcile and its own attempt to record the failure, then recovers.
    world.store.fail_next_loads([
        StoreError::Unavailable("ProvisionedThroughputExceededException".into()),
        StoreError::Unavailable("ProvisionedThroughputExceededException".into()),
    ]);
    let failures = handle(&world, &event("sqs-stream-failure.json")).await;
    assert!(
        failures.is_empty(),
        "recorded, so the message is done: {failures:?}"
    );
    let status = world.store.status(&tenant).expect("a STATUS row");
    assert_eq!(status.status, Status::Failed);
    assert!(status.retryable);
    let reason = status.reason.unwrap_or_default();
    assert!(
        reason.contains("exhausted the trigger's retries"),
        "{reason}"
    );
    assert!(reason.contains("RetryAttemptsExhausted"), "{reason}");
    assert!(
        reason.contains("ProvisionedThroughputExceededException"),
        "{reason}"
    );
    // The retry is not left to chance: it is scheduled.
    assert!(world.recheck.requests().iter().any(|(t, _)| t == &tenant));
}

#[tokio::test]
async fn nothing_is_dropped_silently() {
    let world = world();
    let tenant = TenantKey::new("gs1234");
    world.store.put_spec(&tenant, seed_image());

    // The records are gone from the stream: back to the queue (then its dead-letter queue).
    let failures = handle(&world, &event("sqs-stream-failure.json")).await;
    assert_eq!(failures, vec!["3f2c1b8e-7d4a-4e0f-9a53-2b1c0e6f5a10"]);

    // The stream cannot be read now: back to the queue, to be tried again.
    world.stream.holds(sample_range(), vec![tenant.clone()]);
    world.stream.set_unavailable(true);
    assert_eq!(
        handle(&world, &event("sqs-stream-failure.json"))
            .await
            .len(),
        1
    );

    // Not an OnFailure record at all.
    let mut garbled = event("sqs-stream-failure.json");
    garbled["Records"][0]["body"] = "{\"DDBStreamBatchInfo\": 7}".into();
    assert_eq!(handle(&world, &garbled).await.len(), 1);

    // The tenant cannot even be recorded: back to the queue.
    world.stream.set_unavailable(false);
    world.store.fail_next_loads(std::iter::repeat_n(
        StoreError::Unavailable("table unavailable".into()),
        20,
    ));
    assert_eq!(
        handle(&world, &event("sqs-stream-failure.json"))
            .await
            .len(),
        1
    );
    assert!(world.store.status(&tenant).is_none());
}

#[tokio::test]
async fn a_tenant_still_failing_says_its_records_were_exhausted_and_why() {
    let world = world();
    let tenant = TenantKey::new("gs1234");
    world.store.put_spec(&tenant, seed_image());
    world.stream.holds(sample_range(), vec![tenant.clone()]);
    world.stacks.fail_next(
        "create",
        StackError::Transient("AccessDenied: the role is still propagating".into()),
    );
    let failures = handle(&world, &event("sqs-stream-failure.json")).await;
    assert!(failures.is_empty(), "{failures:?}");
    let status = world.store.status(&tenant).expect("a STATUS row");
    assert_eq!(status.status, Status::Failed);
    assert!(status.retryable);
    let reason = status.reason.unwrap_or_default();
    assert!(
        reason.starts_with("its stream records (RetryAttemptsExhausted"),
        "{reason}"
    );
    assert!(
        reason.contains("still failing: create of stack tenant-gs1234: AccessDenied"),
        "{reason}"
    );
    // Its next attempt is scheduled through the completion loop.
    assert!(world.recheck.requests().iter().any(|(t, _)| t == &tenant));
}
