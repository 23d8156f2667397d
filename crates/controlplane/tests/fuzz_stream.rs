//! The stream handler under arbitrary input: arbitrary JSON records, real records with one part
//! replaced by arbitrary JSON, and arbitrary bytes. Never a panic; every record either reconciles
//! its tenant or is skipped with a readable reason; every failed tenant has a reason.

mod common;

use proptest::prelude::*;
use serde_json::{Value, json};

use controlplane::testing::World;
use controlplane::triggers::stream::{
    StreamSettings, handle_batch, handle_batch_until, record_ref,
};
use model::status::Status;

use common::event;

/// Cases per property: 1024, or `PROPTEST_CASES` (e.g. a long soak).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,24}".prop_map(Value::from),
        // Shapes the decoder looks for, so mutations reach deep.
        Just(json!({"S": "TENANT#gs1234"})),
        Just(json!({"S": "SPEC"})),
        Just(json!({"N": "not-a-number"})),
        Just(json!({"M": {"config": {"NULL": true}}})),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Parts of a real record a mutation replaces.
const POINTERS: &[&str] = &[
    "/eventName",
    "/eventID",
    "/dynamodb",
    "/dynamodb/Keys",
    "/dynamodb/Keys/pk",
    "/dynamodb/Keys/sk",
    "/dynamodb/NewImage",
    "/dynamodb/NewImage/config",
    "/dynamodb/NewImage/account_id",
    "/dynamodb/NewImage/tenant_id",
    "/dynamodb/SequenceNumber",
    "/dynamodb/ApproximateCreationDateTime",
];

fn mutated_record() -> impl Strategy<Value = Value> {
    (0..POINTERS.len(), any_json()).prop_map(|(which, replacement)| {
        let mut record = event("stream-insert.json")["Records"][0].clone();
        if let Some(slot) = record.pointer_mut(POINTERS[which]) {
            *slot = replacement;
        }
        record
    })
}

fn check_batch(records: Vec<Value>) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let World {
        store, reconciler, ..
    } = World::builder().build();
    // The table holds whatever SPEC the records carry, as the writer left it.
    for record in &records {
        if let (Ok(found), Some(image)) = (
            record_ref(0, &record.to_string()),
            record.pointer("/dynamodb/NewImage"),
        ) && let Ok(item) = serde_json::from_value(image.clone())
        {
            store.put_spec(&found.tenant, item);
        }
    }
    let event = json!({ "Records": records });
    let report = runtime.block_on(handle_batch(
        &reconciler,
        &StreamSettings::default(),
        &event,
    ));
    for (index, raw) in records.iter().enumerate() {
        match record_ref(index, &raw.to_string()) {
            Ok(found) => prop_assert!(
                report.outcomes.contains_key(&found.tenant),
                "record {index} names {} but it was not reconciled",
                found.tenant
            ),
            Err(skipped) => {
                prop_assert!(!skipped.to_string().is_empty());
                prop_assert!(
                    report.skipped.contains(&skipped),
                    "record {index} skipped silently"
                );
            }
        }
    }
    for tenant in report.outcomes.keys() {
        if let Some(status) = store.status(tenant)
            && status.status == Status::Failed
        {
            prop_assert!(
                status.reason.as_deref().is_some_and(|r| !r.is_empty()),
                "{tenant} failed without a reason"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn arbitrary_records_never_crash_a_batch(records in prop::collection::vec(any_json(), 0..6)) {
        check_batch(records)?;
    }

    #[test]
    fn real_records_with_any_part_replaced_are_handled(
        records in prop::collection::vec(mutated_record(), 1..6)
    ) {
        check_batch(records)?;
    }

    #[test]
    fn arbitrary_bytes_are_refused_or_handled(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        // As Lambda hands the event over: text, read by reference.
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            let reconciler = World::builder().build().reconciler;
            let report = runtime.block_on(handle_batch_until(&reconciler, &StreamSettings::default(), text, None));
            for skipped in &report.skipped {
                prop_assert!(!skipped.to_string().is_empty());
            }
        }
        if let Ok(Value::Object(event)) = serde_json::from_slice::<Value>(&bytes) {
            let records = event.get("Records").and_then(Value::as_array).cloned().unwrap_or_default();
            check_batch(records)?;
        }
    }
}
