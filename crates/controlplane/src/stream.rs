//! The DynamoDB stream handler: each record only names a tenant; the tenant is reconciled once
//! per batch, whatever the records said, so duplicates, late and out-of-order records are harmless.
//!
//! Records are decoded one by one: a record that does not decode never fails the others. Every
//! failure ends on the tenant's STATUS with its reason. Only failures that may heal are reported
//! as batch item failures (Lambda then retries from the lowest reported SequenceNumber), and only
//! for their first quick retries; after that the tenant waits, `failed` and retryable, for its
//! next attempt, and the shard moves on.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_lambda_events::event::dynamodb::EventRecord;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Deserialize;
use serde_dynamo::{AttributeValue, Item};
use tracing::{Instrument, error, info, info_span, warn};

use crate::audit::{AuditEntry, UNKNOWN_ACTOR};
use crate::reconcile::{Outcome, Reconciler, rfc3339};
use crate::spec::{SPEC_SK, TenantKey};

/// Time kept free before an invocation's deadline: one tenant's reconcile (a few AWS calls).
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(20);

/// How the stream handler treats a batch.
#[derive(Clone, Debug)]
pub struct StreamSettings {
    /// Tenants reconciled at the same time within one batch.
    pub concurrency: usize,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self { concurrency: 8 }
    }
}

/// The part of a record the handler needs: which tenant, where in the shard, and when; and for
/// the audit timeline, which write it was and by whom.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordRef {
    pub tenant: TenantKey,
    pub sequence_number: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub event_id: Option<String>,
    /// INSERT, MODIFY or REMOVE.
    pub event_name: Option<String>,
    /// The SPEC's `updated_by` as written (REMOVE records carry none of the remover).
    pub updated_by: Option<String>,
}

impl RecordRef {
    /// The writer's action this record reports, for the tenant's timeline, placed at `seen`:
    /// a record's own time is whole seconds, which would order it before the control plane's
    /// reactions within the same second. A redelivered record may add a line with the same id.
    pub fn audit_entry(&self, seen: DateTime<Utc>) -> Option<AuditEntry> {
        let id = self.event_id.as_ref().or(self.sequence_number.as_ref())?;
        let removed = self.event_name.as_deref() == Some("REMOVE");
        Some(AuditEntry {
            at: rfc3339(seen),
            id: format!("spec-{id}"),
            action: if removed {
                "spec-removed"
            } else {
                "spec-written"
            }
            .to_owned(),
            actor: match (&self.updated_by, removed) {
                (Some(who), false) => who.clone(),
                _ => UNKNOWN_ACTOR.to_owned(),
            },
            requested_by: None,
            result: "accepted".to_owned(),
            reason: None,
        })
    }
}

/// Why a record was passed over without reconciling anything.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SkippedRecord {
    #[error("record {index} is not a DynamoDB stream record: {reason}")]
    Undecodable { index: usize, reason: String },
    #[error("record {index} is not a tenant SPEC item (pk {pk:?}, sk {sk:?})")]
    NotASpec {
        index: usize,
        pk: String,
        sk: String,
    },
}

/// What one batch did, for logs and tests.
#[derive(Debug, Default)]
pub struct BatchReport {
    pub response: DynamoDbEventResponse,
    pub outcomes: BTreeMap<TenantKey, Result<Outcome, String>>,
    pub skipped: Vec<SkippedRecord>,
}

/// The fallback when a record's images do not decode: only its keys, sequence and time matter.
#[derive(Deserialize)]
struct MinimalRecord {
    dynamodb: MinimalChange,
}

#[derive(Deserialize)]
struct MinimalChange {
    #[serde(rename = "Keys")]
    keys: Item,
    #[serde(rename = "SequenceNumber", default)]
    sequence_number: Option<String>,
    /// Read leniently: without it a record would count as young forever.
    #[serde(rename = "ApproximateCreationDateTime", default)]
    created_at: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct MinimalIdentity {
    #[serde(rename = "eventID", default)]
    event_id: Option<String>,
    #[serde(rename = "eventName", default)]
    event_name: Option<String>,
}

fn key_text(keys: &Item, name: &str) -> String {
    match keys.get(name) {
        Some(AttributeValue::S(s)) => s.clone(),
        _ => String::new(),
    }
}

/// Picks the tenant out of one raw record of the Lambda event.
pub fn record_ref(index: usize, raw: &serde_json::Value) -> Result<RecordRef, SkippedRecord> {
    let mut updated_by = None;
    let (keys, sequence_number, created_at) =
        match serde_json::from_value::<EventRecord>(raw.clone()) {
            Ok(record) => {
                if let Some(AttributeValue::S(who)) = record.change.new_image.get("updated_by") {
                    updated_by = Some(who.clone());
                }
                (
                    record.change.keys,
                    record.change.sequence_number,
                    Some(record.change.approximate_creation_date_time),
                )
            }
            Err(full_error) => match serde_json::from_value::<MinimalRecord>(raw.clone()) {
                // The images may be what is malformed: the keys are all a reconcile needs.
                Ok(minimal) => (
                    minimal.dynamodb.keys,
                    minimal.dynamodb.sequence_number,
                    minimal
                        .dynamodb
                        .created_at
                        .as_ref()
                        .and_then(serde_json::Value::as_f64)
                        .and_then(|seconds| DateTime::from_timestamp(seconds as i64, 0)),
                ),
                Err(_) => {
                    return Err(SkippedRecord::Undecodable {
                        index,
                        reason: full_error.to_string(),
                    });
                }
            },
        };
    let pk = key_text(&keys, "pk");
    let sk = key_text(&keys, "sk");
    let identity = serde_json::from_value::<MinimalIdentity>(raw.clone()).ok();
    let (event_id, event_name) = identity.map_or((None, None), |i| (i.event_id, i.event_name));
    match TenantKey::from_pk(&pk) {
        Some(tenant) if sk == SPEC_SK => Ok(RecordRef {
            tenant,
            sequence_number,
            created_at,
            event_id: event_id.filter(|id| !id.is_empty()),
            event_name,
            updated_by,
        }),
        _ => Err(SkippedRecord::NotASpec { index, pk, sk }),
    }
}

/// Handles one Lambda invocation's event (`{"Records": [...]}`).
pub async fn handle_batch(
    reconciler: &Reconciler,
    settings: &StreamSettings,
    event: &serde_json::Value,
) -> BatchReport {
    handle_batch_until(reconciler, settings, event, None).await
}

/// As [`handle_batch`], but starts no tenant once less than `DEADLINE_MARGIN` is left before
/// `deadline` (the invocation's): those tenants' records are reported back to Lambda, which
/// retries them, instead of the whole batch timing out and being replayed.
pub async fn handle_batch_until(
    reconciler: &Reconciler,
    settings: &StreamSettings,
    event: &serde_json::Value,
    deadline: Option<SystemTime>,
) -> BatchReport {
    let mut report = BatchReport::default();
    let records = match event.get("Records").and_then(serde_json::Value::as_array) {
        Some(records) => records.as_slice(),
        None => {
            // Retrying cannot make an event without records readable.
            error!("event has no Records array; nothing to do");
            return report;
        }
    };

    // One reconcile per tenant, remembering its first (lowest) sequence number and oldest record,
    // and the writes its records report for its audit timeline.
    let mut tenants: BTreeMap<TenantKey, (Option<String>, Option<DateTime<Utc>>)> = BTreeMap::new();
    let mut writes: BTreeMap<TenantKey, Vec<AuditEntry>> = BTreeMap::new();
    for (index, raw) in records.iter().enumerate() {
        match record_ref(index, raw) {
            Ok(record) => {
                if let Some(audit) = record.audit_entry(reconciler.now()) {
                    writes.entry(record.tenant.clone()).or_default().push(audit);
                }
                let entry = tenants
                    .entry(record.tenant)
                    .or_insert((None, record.created_at));
                // The first record with a sequence number is where a retry must resume.
                if entry.0.is_none() {
                    entry.0 = record.sequence_number;
                }
                entry.1 = match (entry.1, record.created_at) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            Err(skipped) => {
                warn!(%skipped, "record skipped");
                report.skipped.push(skipped);
            }
        }
    }

    let results = futures::stream::iter(tenants)
        .map(|(tenant, (sequence_number, _))| {
            let span = info_span!("tenant", tenant_id = %tenant);
            let audit = writes.remove(&tenant).unwrap_or_default();
            async move {
                for entry in &audit {
                    reconciler.append_audit(&tenant, entry).await;
                }
                let out_of_time = deadline.is_some_and(|d| {
                    d.duration_since(SystemTime::now()).unwrap_or_default() < DEADLINE_MARGIN
                });
                if out_of_time {
                    warn!("too close to the invocation deadline; leaving the tenant to the retry");
                    let result =
                        Err("not started: too close to the invocation deadline".to_owned());
                    return (tenant, result, sequence_number);
                }
                let result = reconciler.reconcile(&tenant).await;
                // Reported back to Lambda, which retries from the lowest such record: a quick
                // retry the STATUS row already shows, or a failure that could not even be recorded.
                let failure = match &result {
                    Ok(Outcome::Retrying {
                        retry_now: true, ..
                    })
                    | Err(_) => {
                        warn!(outcome = ?result, "reporting the record for Lambda to retry");
                        sequence_number.clone()
                    }
                    Ok(_) => None,
                };
                info!(outcome = ?result, "tenant reconciled");
                (tenant, result.map_err(|e| e.to_string()), failure)
            }
            .instrument(span)
        })
        .buffer_unordered(settings.concurrency.max(1))
        .collect::<Vec<_>>()
        .await;

    for (tenant, result, failure) in results {
        if let Some(sequence_number) = failure {
            let mut item = DynamoDbBatchItemFailure::default();
            item.item_identifier = Some(sequence_number);
            report.response.batch_item_failures.push(item);
        }
        report.outcomes.insert(tenant, result);
    }
    report
}
