//! Every sample event in events/ goes through its handler, so none can rot (the re-check sample
//! in completion_loop.rs). The table is set up as it would be when the batch is handled (each
//! tenant's last image), since the handler re-reads the table rather than trusting the records.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use controlplane::reconcile::Outcome;
use controlplane::testing::{FakeStacks, InMemoryStore, World};
use controlplane::triggers::completion::handle_rechecks;
use controlplane::triggers::stream::{SkippedRecord, StreamSettings, handle_batch};
use model::spec::TenantKey;
use model::status::Status;
use serde_json::Value;

use common::event;

struct Handled {
    outcomes: BTreeMap<TenantKey, Result<Outcome, String>>,
    skipped: Vec<SkippedRecord>,
    failures: usize,
    store: Arc<InMemoryStore>,
    stacks: Arc<FakeStacks>,
}

/// Puts each tenant's last image in the table (none after a REMOVE), then handles the event.
async fn handle(name: &str, before: &[(&str, &str)]) -> Handled {
    let event = event(name);
    let World {
        store,
        stacks,
        reconciler,
        ..
    } = World::builder().build();
    // Tenants that existed before this batch (so MODIFY and REMOVE have something to act on).
    for (tenant, source) in before {
        let earlier = self::event(source);
        let image = earlier["Records"][0]["dynamodb"]["NewImage"].clone();
        store.put_spec(
            &TenantKey::new(*tenant),
            serde_json::from_value(image).expect("image"),
        );
        handle_batch(&reconciler, &StreamSettings::default(), &earlier).await;
    }
    let mut last: BTreeMap<String, Option<Value>> = BTreeMap::new();
    for record in event["Records"].as_array().into_iter().flatten() {
        let Some(pk) = record["dynamodb"]["Keys"]["pk"]["S"].as_str() else {
            continue;
        };
        let image = match record["eventName"].as_str() {
            Some("REMOVE") => None,
            _ => Some(record["dynamodb"]["NewImage"].clone()),
        };
        last.insert(pk.to_owned(), image);
    }
    for (pk, image) in last {
        let key = TenantKey::from_pk(&pk).expect("tenant pk");
        match image.and_then(|i| serde_json::from_value(i).ok()) {
            Some(item) => store.put_spec(&key, item),
            None => store.delete_spec(&key),
        }
    }
    let report = handle_batch(&reconciler, &StreamSettings::default(), &event).await;
    Handled {
        failures: report.response.batch_item_failures.len(),
        outcomes: report.outcomes,
        skipped: report.skipped,
        store,
        stacks,
    }
}

fn status(handled: &Handled, tenant: &str) -> Option<Status> {
    handled
        .store
        .status(&TenantKey::new(tenant))
        .map(|s| s.status)
}

#[tokio::test]
async fn insert_provisions_the_seed_row() {
    let h = handle("stream-insert.json", &[]).await;
    assert_eq!(h.failures, 0);
    assert_eq!(status(&h, "gs1234"), Some(Status::Ready));
    assert_eq!(h.stacks.count_calls("create"), 1);
}

#[tokio::test]
async fn modify_updates_the_stack() {
    let h = handle("stream-modify.json", &[("gs1234", "stream-insert.json")]).await;
    assert_eq!(h.failures, 0);
    assert_eq!(status(&h, "gs1234"), Some(Status::Ready));
    assert_eq!(h.stacks.count_calls("update"), 1);
}

#[tokio::test]
async fn remove_deletes_the_stack() {
    let h = handle("stream-remove.json", &[("gs1234", "stream-insert.json")]).await;
    assert_eq!(h.failures, 0);
    assert_eq!(status(&h, "gs1234"), Some(Status::Deleted));
    assert_eq!(h.stacks.count_calls("delete"), 1);
    assert!(h.stacks.live_stacks().is_empty());
}

#[tokio::test]
async fn a_mixed_batch_reconciles_each_tenant_once() {
    let h = handle("stream-mixed-batch.json", &[]).await;
    assert_eq!(h.failures, 0);
    // gs1234 has an INSERT and a MODIFY: one create with the latest config, no update.
    assert_eq!(status(&h, "gs1234"), Some(Status::Ready));
    assert_eq!(h.stacks.count_calls("create"), 1);
    assert_eq!(h.stacks.count_calls("update"), 0);
    // beta-co was inserted and removed in the same batch: never created.
    assert_eq!(status(&h, "beta-co"), None);
    let bad = h
        .store
        .status(&TenantKey::new("bad-account"))
        .expect("status");
    assert_eq!(bad.status, Status::Failed);
    assert!(bad.reason.unwrap_or_default().contains("account_id"));
    assert_eq!(h.outcomes.len(), 3);
}

#[tokio::test]
async fn a_malformed_record_never_fails_the_batch() {
    let h = handle("stream-malformed-record.json", &[]).await;
    assert_eq!(h.failures, 0);
    assert_eq!(status(&h, "gs1234"), Some(Status::Ready));
    assert_eq!(status(&h, "beta-co"), Some(Status::Ready));
    // The record with a bad image still names its tenant: it is reconciled from the table.
    assert!(h.outcomes.contains_key(&TenantKey::new("broken-img")));
    // The record that is not a stream record at all is skipped with its reason.
    assert_eq!(h.skipped.len(), 1);
    assert!(
        matches!(h.skipped[0], SkippedRecord::Undecodable { index: 2, .. }),
        "{:?}",
        h.skipped
    );
}

#[tokio::test]
async fn a_stack_status_change_event_records_the_end_of_the_operation() {
    let World {
        store,
        stacks,
        reconciler,
        ..
    } = World::builder().build();
    let tenant = TenantKey::new("gs1234");
    store.put_spec(&tenant, common::seed_image());
    stacks.set_hanging("tenant-gs1234", true);
    reconciler.reconcile(&tenant).await.expect("started");
    let location = store
        .status(&tenant)
        .and_then(|s| s.location)
        .expect("location");
    assert_eq!(status_of(&store, "gs1234"), Some(Status::Creating));
    stacks.finish(&location);

    // The sample: our stack's CREATE_COMPLETE, and another stack's event (dropped).
    let response = handle_rechecks(
        &reconciler,
        &StreamSettings::default(),
        &event("sqs-stack-status-change.json"),
    )
    .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(status_of(&store, "gs1234"), Some(Status::Ready));
    assert_eq!(stacks.count_calls("create"), 1);
}

fn status_of(store: &InMemoryStore, tenant: &str) -> Option<Status> {
    store.status(&TenantKey::new(tenant)).map(|s| s.status)
}
