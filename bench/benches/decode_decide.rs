//! decode + decide per record with AWS faked, on one 1,000-record batch of INSERTs (the bytes
//! Lambda hands the function), in one run:
//!
//! - `ours_decode_validate_decide` (against the peer and serde_json): the bytes checked and kept
//!   as text (`Box<RawValue>`, the stream handler's payload type, as lambda_runtime gives it),
//!   the records split out (`stream::batch_records`), each decoded (`stream::record_ref`), its
//!   SPEC row fetched from a faked table (a copy of the row, as the in-memory store gives it),
//!   validated against the template (`validation::validate`), fingerprinted, and the pure
//!   `decide` run;
//! - `ours_handler_fakes` (for scale): the whole stream handler (`handle_batch_until`) on the
//!   in-memory fakes of `controlplane::fakes`, whose simulation is part of the cost: every tenant
//!   reconciled (SPEC and STATUS read, intent and result written, audit lines, stack created and
//!   read back, event published);
//! - `serde_json_value`: `serde_json::from_slice` of the same bytes into a `Value`, the limit;
//! - the peer (`bench/peer/decode_decide.py`): `json.loads` of the same bytes and its
//!   `lambda_handler` with boto3 clients that answer at once, timed in Python with `timeit`.
//!
//! Prints the per-record costs and the ratios, and writes them to `$BENCH_OUT/decode_decide.json`
//! (default `$CARGO_TARGET_DIR/peer-bench`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use controlplane::decide::{Decision, Desired, DesiredStack, Observation, decide, fingerprint};
use controlplane::fakes::{FakeStacks, InMemoryStore, RecordingEvents, RecordingRequeue};
use controlplane::reconcile::{Outcome, Reconciler, Settings};
use controlplane::spec::TenantKey;
use controlplane::status::{StackLocation, Status};
use controlplane::stream::{StreamSettings, batch_records, handle_batch_until, record_ref};
use controlplane::template_source::BundledTemplates;
use controlplane::validation::{Validation, validate};
use criterion::{BatchSize, Criterion, Throughput};
use peer_bench::{insert_event_bytes, python, workspace_root};
use serde_json::value::RawValue;
use serde_json::{Value, json};

const RECORDS: usize = 1000;

const GROUP: &str = "decode_decide";

/// Ours without the reconcile's bookkeeping: what the handler must do per record at the least.
async fn decode_validate_decide(
    bytes: &[u8],
    table: &HashMap<TenantKey, serde_dynamo::Item>,
    templates: &BundledTemplates,
    settings: &Settings,
) -> usize {
    // As lambda_runtime hands the event to the stream handler: checked, kept as text.
    let event: Box<RawValue> = serde_json::from_slice(bytes).expect("the batch parses");
    let records = batch_records(event.get()).expect("Records");
    let now = Utc::now();
    let mut creates = 0;
    for (index, raw) in records.iter().enumerate() {
        let record = record_ref(index, raw.get()).expect("a SPEC record");
        // The SPEC as the table returns it to the reconcile, AWS faked: a copy of the row, as
        // the in-memory store's `load` gives it.
        let item = table.get(&record.tenant).cloned().expect("the SPEC row");
        let Ok(Validation::Valid(valid)) = validate(&record.tenant, &item, None, templates).await
        else {
            panic!("a valid SPEC");
        };
        // As `Reconciler::desire` builds it.
        let region = valid
            .spec
            .region
            .clone()
            .unwrap_or_else(|| settings.default_region.clone());
        let desired = Desired::Present(DesiredStack {
            fingerprint: fingerprint(&valid.spec, &region, &valid.template_version),
            location: StackLocation {
                account_id: valid.spec.account_id.clone(),
                region,
                stack_name: settings.stack_name(&record.tenant),
            },
            template_version: valid.template_version.clone(),
            parameters: valid.parameters.clone(),
        });
        let decision = decide(&Observation {
            tenant_id: record.tenant.as_str(),
            desired: &desired,
            status: None,
            stack: None,
            stack_location: None,
            now,
            max_attempts: settings.max_attempts,
            operation_timeout: settings.operation_timeout,
        });
        if decision == Decision::Create {
            creates += 1;
        }
    }
    creates
}

/// The table's SPEC rows for the batch: each record's new image.
fn spec_rows(bytes: &[u8]) -> HashMap<TenantKey, serde_dynamo::Item> {
    let event: Value = serde_json::from_slice(bytes).expect("the batch parses");
    event["Records"]
        .as_array()
        .expect("Records")
        .iter()
        .map(|record| {
            let pk = record["dynamodb"]["Keys"]["pk"]["S"].as_str().expect("pk");
            let item =
                serde_json::from_value(record["dynamodb"]["NewImage"].clone()).expect("an image");
            (TenantKey::from_pk(pk).expect("a tenant"), item)
        })
        .collect()
}

/// A reconciler on fresh fakes, the table holding every SPEC of the batch.
fn fresh_reconciler(bytes: &[u8]) -> Reconciler {
    let store = Arc::new(InMemoryStore::default());
    for (tenant, item) in spec_rows(bytes) {
        store.put_spec(&tenant, item);
    }
    Reconciler::new(
        store,
        Arc::new(FakeStacks::default()),
        Arc::new(BundledTemplates::sample().expect("the sample template")),
        Settings::new("us-east-1"),
    )
    .with_events(Arc::new(RecordingEvents::default()))
    .with_requeue(Arc::new(RecordingRequeue::default()))
}

async fn handler_on_fakes(reconciler: &Reconciler, stream: &StreamSettings, bytes: &[u8]) -> usize {
    let event: Box<RawValue> = serde_json::from_slice(bytes).expect("the batch parses");
    let report = handle_batch_until(reconciler, stream, event.get(), None).await;
    report
        .outcomes
        .values()
        .filter(|o| matches!(o, Ok(Outcome::Converged(Some(Status::Ready)))))
        .count()
}

fn criterion_home() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("criterion")
}

/// Criterion's median estimate of one benchmark of the group, in seconds per batch.
fn criterion_median(id: &str) -> f64 {
    let path = criterion_home()
        .join(GROUP)
        .join(id)
        .join("new/estimates.json");
    let estimates: Value = serde_json::from_slice(
        &std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .expect("criterion's estimates");
    estimates["median"]["point_estimate"]
        .as_f64()
        .expect("a median")
        / 1e9
}

fn main() {
    let bytes = insert_event_bytes(0, RECORDS).expect("the batch");
    let out = std::env::var_os("BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace_root().join("target"))
                .join("peer-bench")
        });
    std::fs::create_dir_all(&out).expect("the output directory");
    let event_file = out.join(format!("event-{RECORDS}.json"));
    std::fs::write(&event_file, &bytes).expect("the event file");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let templates = BundledTemplates::sample().expect("the sample template");
    let table = spec_rows(&bytes);
    let settings = Settings::new("us-east-1");
    let stream = StreamSettings::default();
    // Both of ours do the whole job before they are timed.
    assert_eq!(
        runtime.block_on(decode_validate_decide(
            &bytes, &table, &templates, &settings
        )),
        RECORDS
    );
    assert_eq!(
        runtime.block_on(handler_on_fakes(&fresh_reconciler(&bytes), &stream, &bytes)),
        RECORDS
    );

    let mut criterion = Criterion::default()
        .sample_size(30)
        .measurement_time(Duration::from_secs(10))
        .configure_from_args();
    {
        let mut group = criterion.benchmark_group(GROUP);
        group.throughput(Throughput::Elements(RECORDS as u64));
        group.bench_function("serde_json_value", |b| {
            b.iter(|| {
                serde_json::from_slice::<Value>(std::hint::black_box(&bytes)).expect("parses")
            })
        });
        group.bench_function("ours_decode_validate_decide", |b| {
            b.iter(|| {
                runtime.block_on(decode_validate_decide(
                    std::hint::black_box(&bytes),
                    &table,
                    &templates,
                    &settings,
                ))
            })
        });
        group.bench_function("ours_handler_fakes", |b| {
            // By reference: dropping the fakes' 1,000 tenants is not the handler's time.
            b.iter_batched_ref(
                || fresh_reconciler(&bytes),
                |reconciler| {
                    runtime.block_on(handler_on_fakes(
                        reconciler,
                        &stream,
                        std::hint::black_box(&bytes),
                    ))
                },
                BatchSize::PerIteration,
            )
        });
        group.finish();
    }
    criterion.final_summary();

    // The peer, on the same bytes, right after.
    let output = Command::new(python())
        .arg(workspace_root().join("bench/peer/decode_decide.py"))
        .arg(&event_file)
        .args(["--samples", "30"])
        .current_dir(workspace_root().join("bench/peer"))
        .output()
        .expect("running bench/peer/decode_decide.py");
    assert!(
        output.status.success(),
        "decode_decide.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let peer: Value = serde_json::from_slice(&output.stdout).expect("the peer's figures");
    let peer_batch = peer["median_seconds"].as_f64().expect("a median");

    let per = |seconds: f64| seconds / RECORDS as f64;
    let figures = [
        ("serde_json_value", criterion_median("serde_json_value")),
        (
            "ours_decode_validate_decide",
            criterion_median("ours_decode_validate_decide"),
        ),
        ("ours_handler_fakes", criterion_median("ours_handler_fakes")),
        ("peer_handler_fakes", peer_batch),
    ];
    let mut result = json!({"records": RECORDS, "bytes": bytes.len(), "statistic": "median of the samples, per batch / records"});
    println!(
        "\ndecode + decide, {RECORDS}-record batch ({} bytes), median per record\n",
        bytes.len()
    );
    println!("| what | per record | records/s |");
    println!("|---|---|---|");
    for (name, batch) in figures {
        println!(
            "| {name} | {:.2} µs | {:.0} |",
            per(batch) * 1e6,
            1.0 / per(batch)
        );
        result[name] = json!({"batch_seconds": batch, "per_record_seconds": per(batch)});
    }
    let ours = per(figures[1].1);
    println!(
        "\nours (decode + validate + decide) vs the peer: {:.1}x faster (goal >= 5x)",
        per(peer_batch) / ours
    );
    println!(
        "ours (decode + validate + decide) vs serde_json alone: {:.2}x of its speed (goal >= 0.5x)",
        per(figures[0].1) / ours
    );
    println!(
        "ours (the whole reconcile on the in-memory fakes) vs the peer: {:.2}x its time",
        per(figures[2].1) / per(peer_batch)
    );
    result["peer"] = peer;
    std::fs::write(
        out.join("decode_decide.json"),
        serde_json::to_vec_pretty(&result).expect("JSON"),
    )
    .expect("writing decode_decide.json");
}
