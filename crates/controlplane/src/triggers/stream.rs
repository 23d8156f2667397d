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

use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;
use tracing::{error, warn};

use super::{Medium, fan_out};
use crate::reconcile::{Outcome, Reconciler, TransientError};
use model::audit::{AuditAction, AuditEntry, UNKNOWN_ACTOR};
use model::spec::{SPEC_SK, TenantKey};
use model::time::rfc3339;

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
    /// reactions within the same second. The records of one batch are seen at one time, so the
    /// id carries the sequence number, padded to its 40 digits: within equal times the lines
    /// sort as the writes happened (a random event id would sort them by chance). A redelivered
    /// record may add a line with the same id.
    pub fn audit_entry(&self, seen: DateTime<Utc>) -> Option<AuditEntry> {
        let id = match (&self.sequence_number, &self.event_id) {
            (Some(sequence), _) => format!("spec-{sequence:0>40}"),
            (None, Some(event)) => format!("spec-{event}"),
            (None, None) => return None,
        };
        let removed = self.event_name.as_deref() == Some("REMOVE");
        Some(AuditEntry {
            at: rfc3339(seen),
            id,
            action: if removed {
                AuditAction::SpecRemoved
            } else {
                AuditAction::SpecWritten
            },
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

// A record is read by reference from the event's text, once: its keys strictly (without them
// there is no tenant), everything else leniently (a malformed image or id never hides the tenant
// the keys name). The images are not decoded: the reconcile reads the SPEC from the table.

/// One record of the event, each part kept as its raw JSON until it is read. `Image` is the
/// new image: read in the same pass ([`RawImage`]), or, when it is not even an object, kept raw.
#[derive(Deserialize)]
#[serde(bound(deserialize = "Image: Deserialize<'de>"))]
struct RawRecord<'a, Image> {
    #[serde(rename = "eventID", borrow, default)]
    event_id: Option<&'a RawValue>,
    #[serde(rename = "eventName", borrow, default)]
    event_name: Option<&'a RawValue>,
    #[serde(borrow)]
    dynamodb: RawChange<'a, Image>,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "Image: Deserialize<'de>"))]
struct RawChange<'a, Image> {
    #[serde(rename = "Keys", borrow)]
    keys: RawKeys<'a>,
    #[serde(rename = "SequenceNumber", borrow, default)]
    sequence_number: Option<&'a RawValue>,
    /// Epoch seconds; without it a record would count as young forever.
    #[serde(rename = "ApproximateCreationDateTime", borrow, default)]
    created_at: Option<&'a RawValue>,
    #[serde(rename = "NewImage", default = "none")]
    new_image: Option<Image>,
}

fn none<T>() -> Option<T> {
    None
}

#[derive(Deserialize)]
struct RawKeys<'a> {
    #[serde(borrow, default)]
    pk: Option<&'a RawValue>,
    #[serde(borrow, default)]
    sk: Option<&'a RawValue>,
}

/// The one attribute of the new image the audit timeline wants.
#[derive(Deserialize)]
struct RawImage<'a> {
    #[serde(borrow, default)]
    updated_by: Option<&'a RawValue>,
}

/// A DynamoDB string attribute (`{"S": "..."}`).
#[derive(Deserialize)]
struct StringAttribute {
    #[serde(rename = "S")]
    s: String,
}

fn text(raw: Option<&RawValue>) -> Option<String> {
    serde_json::from_str(raw?.get()).ok()
}

fn string_attribute(raw: Option<&RawValue>) -> Option<String> {
    serde_json::from_str::<StringAttribute>(raw?.get())
        .ok()
        .map(|a| a.s)
}

fn epoch_seconds(raw: Option<&RawValue>) -> Option<DateTime<Utc>> {
    let seconds: f64 = serde_json::from_str(raw?.get()).ok()?;
    // Out of range (or not finite) reads as absent rather than wrapping.
    DateTime::from_timestamp_micros((seconds * 1e6) as i64)
}

/// Picks the tenant out of one record of the Lambda event (its JSON text).
pub fn record_ref(index: usize, record: &str) -> Result<RecordRef, SkippedRecord> {
    // One pass; a second, keeping the image raw, only when the image is what is malformed.
    match serde_json::from_str::<RawRecord<RawImage>>(record) {
        Ok(raw) => {
            let updated_by = raw
                .dynamodb
                .new_image
                .as_ref()
                .and_then(|image| string_attribute(image.updated_by));
            tenant_of(index, raw, updated_by)
        }
        Err(error) => match serde_json::from_str::<RawRecord<&RawValue>>(record) {
            Ok(raw) => tenant_of(index, raw, None),
            Err(_) => Err(SkippedRecord::Undecodable {
                index,
                reason: error.to_string(),
            }),
        },
    }
}

fn tenant_of<Image>(
    index: usize,
    raw: RawRecord<Image>,
    updated_by: Option<String>,
) -> Result<RecordRef, SkippedRecord> {
    let change = raw.dynamodb;
    let pk = string_attribute(change.keys.pk).unwrap_or_default();
    let sk = string_attribute(change.keys.sk).unwrap_or_default();
    match TenantKey::from_pk(&pk) {
        Some(tenant) if sk == SPEC_SK => Ok(RecordRef {
            tenant,
            sequence_number: text(change.sequence_number),
            created_at: epoch_seconds(change.created_at),
            event_id: text(raw.event_id).filter(|id| !id.is_empty()),
            event_name: text(raw.event_name),
            updated_by,
        }),
        _ => Err(SkippedRecord::NotASpec { index, pk, sk }),
    }
}

/// The event as Lambda sends it: `{"Records": [...]}`, each record kept as its raw JSON.
#[derive(Deserialize)]
struct RawBatch<'a> {
    #[serde(rename = "Records", borrow)]
    records: Vec<&'a RawValue>,
}

/// The records of an event (its JSON text), each as its raw JSON, for [`record_ref`].
pub fn batch_records(event: &str) -> Result<Vec<&RawValue>, serde_json::Error> {
    serde_json::from_str::<RawBatch>(event).map(|batch| batch.records)
}

/// Handles one Lambda invocation's event (`{"Records": [...]}`).
/// Tests and the local system hold events as a `Value`; Lambda hands over the text, which
/// [`handle_batch_until`] reads.
pub async fn handle_batch(
    reconciler: &Reconciler,
    settings: &StreamSettings,
    event: &serde_json::Value,
) -> BatchReport {
    handle_batch_until(reconciler, settings, &event.to_string(), None).await
}

/// As [`handle_batch`], but starts no tenant once less than `DEADLINE_MARGIN` is left before
/// `deadline` (the invocation's): those tenants' records are reported back to Lambda, which
/// retries them, instead of the whole batch timing out and being replayed.
pub async fn handle_batch_until(
    reconciler: &Reconciler,
    settings: &StreamSettings,
    event: &str,
    deadline: Option<SystemTime>,
) -> BatchReport {
    let mut report = BatchReport::default();
    let records = match batch_records(event) {
        Ok(records) => records,
        Err(e) => {
            // Retrying cannot make an event without records readable.
            error!(error = %e, "event has no Records array; nothing to do");
            return report;
        }
    };

    // One reconcile per tenant, remembering its first (lowest) sequence number and oldest record,
    // and the writes its records report for its audit timeline.
    let mut tenants: BTreeMap<TenantKey, (Option<String>, Option<DateTime<Utc>>)> = BTreeMap::new();
    let mut writes: BTreeMap<TenantKey, Vec<AuditEntry>> = BTreeMap::new();
    for (index, raw) in records.iter().enumerate() {
        match record_ref(index, raw.get()) {
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

    let now = SystemTime::now;
    let writes = &writes;
    let handled = fan_out(
        reconciler,
        Medium::Stream,
        settings.concurrency,
        tenants
            .into_iter()
            .map(|(tenant, (sequence_number, _))| (tenant, sequence_number)),
        |tenant| async move {
            let lines: Vec<_> = writes.get(&tenant).into_iter().flatten().cloned().collect();
            let out_of_time = deadline
                .is_some_and(|d| d.duration_since(now()).unwrap_or_default() < DEADLINE_MARGIN);
            if out_of_time {
                for entry in &lines {
                    reconciler.writer().append_audit(&tenant, entry).await;
                }
                warn!("too close to the invocation deadline; leaving the tenant to the retry");
                return Err(TransientError(
                    "not started: too close to the invocation deadline".to_owned(),
                ));
            }
            // The writer's line rides with the reconcile's first STATUS write.
            reconciler.reconcile_noting(&tenant, lines).await
        },
    )
    .await;

    for handled in handled {
        // Reported back to Lambda, which retries from the lowest such record: a quick retry
        // the STATUS row already shows, or a failure that could not even be recorded.
        if let (true, Some(sequence_number)) = (handled.redeliver, handled.payload) {
            warn!(tenant_id = %handled.tenant, "reporting the record for Lambda to retry");
            let mut item = DynamoDbBatchItemFailure::default();
            item.item_identifier = Some(sequence_number);
            report.response.batch_item_failures.push(item);
        }
        report
            .outcomes
            .insert(handled.tenant, handled.result.map_err(|e| e.to_string()));
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn insert() -> serde_json::Value {
        json!({
            "eventID": "e-1",
            "eventName": "INSERT",
            "dynamodb": {
                "ApproximateCreationDateTime": 1_700_000_000.5,
                "Keys": {"pk": {"S": "TENANT#acme"}, "sk": {"S": "SPEC"}},
                "NewImage": {"pk": {"S": "TENANT#acme"}, "updated_by": {"S": "ops\u{e9}\"x"}},
                "SequenceNumber": "100",
            }
        })
    }

    /// Three quick writes seen at one time: their lines sort by sequence number, not by their
    /// random event ids, and each has its own.
    #[test]
    fn lines_of_writes_seen_at_once_sort_as_the_writes_happened() {
        let seen = chrono::Utc::now();
        let mut lines: Vec<AuditEntry> = [
            ("9", "zz", "INSERT"),
            ("10", "aa", "MODIFY"),
            ("100", "mm", "REMOVE"),
        ]
        .into_iter()
        .map(|(sequence, event, name)| {
            let mut record = insert();
            record["eventID"] = json!(event);
            record["eventName"] = json!(name);
            record["dynamodb"]["SequenceNumber"] = json!(sequence);
            record_ref(0, &record.to_string())
                .expect("a SPEC record")
                .audit_entry(seen)
                .expect("a line")
        })
        .rev()
        .collect();
        lines.sort_by_key(AuditEntry::sort_key);
        lines.dedup_by_key(|line| line.sort_key());
        let actions: Vec<&str> = lines.iter().map(|l| l.action.as_str()).collect();
        assert_eq!(actions, ["spec-written", "spec-written", "spec-removed"]);
        assert!(
            lines[0].id.ends_with("0009") && lines[2].id.ends_with("0100"),
            "{lines:?}"
        );
    }

    #[test]
    fn a_record_is_read_by_reference_with_escapes_decoded() {
        let found = record_ref(0, &insert().to_string()).expect("a SPEC record");
        assert_eq!(found.tenant.as_str(), "acme");
        assert_eq!(found.sequence_number.as_deref(), Some("100"));
        assert_eq!(found.event_id.as_deref(), Some("e-1"));
        assert_eq!(found.event_name.as_deref(), Some("INSERT"));
        assert_eq!(found.updated_by.as_deref(), Some("ops\u{e9}\"x"));
        assert_eq!(
            found.created_at.map(|t| t.timestamp_millis()),
            Some(1_700_000_000_500)
        );
    }

    #[test]
    fn only_the_keys_are_required_everything_else_is_read_leniently() {
        for (pointer, replacement) in [
            ("/dynamodb/NewImage", json!("not an image")),
            ("/dynamodb/NewImage/updated_by", json!({"N": "1"})),
            ("/dynamodb/ApproximateCreationDateTime", json!("yesterday")),
            ("/dynamodb/ApproximateCreationDateTime", json!(1e300)),
            ("/dynamodb/SequenceNumber", json!(100)),
            ("/eventID", json!({"id": 1})),
            ("/eventName", json!(null)),
        ] {
            let mut record = insert();
            *record.pointer_mut(pointer).expect("a part of the record") = replacement;
            let found =
                record_ref(3, &record.to_string()).unwrap_or_else(|e| panic!("{pointer}: {e}"));
            assert_eq!(found.tenant.as_str(), "acme", "{pointer}");
        }
        let mut keyless = insert();
        keyless["dynamodb"]["Keys"] = json!(7);
        assert!(matches!(
            record_ref(3, &keyless.to_string()),
            Err(SkippedRecord::Undecodable { index: 3, .. })
        ));
        let mut status_row = insert();
        status_row["dynamodb"]["Keys"]["sk"] = json!({"S": "STATUS"});
        assert_eq!(
            record_ref(1, &status_row.to_string()),
            Err(SkippedRecord::NotASpec {
                index: 1,
                pk: "TENANT#acme".into(),
                sk: "STATUS".into()
            })
        );
        assert!(matches!(
            record_ref(0, "[1, 2"),
            Err(SkippedRecord::Undecodable { index: 0, .. })
        ));
    }

    #[test]
    fn an_event_without_a_records_array_has_no_records() {
        assert!(batch_records(r#"{"foo": []}"#).is_err());
        assert!(batch_records(r#"{"Records": 3}"#).is_err());
        let records = batch_records(r#"{"Records": [1, {"a": "b"}]}"#).expect("records");
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].get(), r#"{"a": "b"}"#);
    }
}
