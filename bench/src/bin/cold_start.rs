//! Ours as a function process, for the cold start and memory rows: the stream handler's own
//! wiring, as `functions/stream-handler` runs it (logs, metrics recorder, SDK configuration and
//! settings from the environment: `ControlPlane::from_env`), on one batch read from an event
//! file, then the batch's response on stdout and exit. Only the Lambda runtime client's loop is
//! left out: the event comes from the file instead of the runtime API.
//!
//! Usage: cold-start EVENT.json (the environment of a stream-handler function: TABLE_NAME, ...)

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use controlplane::reconcile::Outcome;
use controlplane::runtime::{ControlPlane, init_metrics};
use controlplane::status::Status;
use controlplane::stream::handle_batch_until;
use serde_json::value::RawValue;

/// The function's timeout in template.yaml (Globals): the deadline of its invocation.
/// `COLD_START_TIMEOUT_SECONDS` overrides it (the memory row's 1,000-record batch takes longer
/// than that on moto, so it gets Lambda's maximum, 900 s).
const TIMEOUT: Duration = Duration::from_secs(300);

#[tokio::main]
async fn main() -> ExitCode {
    let started = SystemTime::now();
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: cold-start EVENT.json");
        return ExitCode::from(2);
    };
    let plane = match ControlPlane::from_env().await {
        Ok(plane) => plane,
        Err(e) => {
            eprintln!("cold-start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let metrics = match init_metrics() {
        Ok(metrics) => metrics,
        Err(e) => {
            eprintln!("cold-start: {e}");
            return ExitCode::FAILURE;
        }
    };
    // As lambda_runtime hands it over: the event checked and kept as text.
    let event: Box<RawValue> = match std::fs::read(&path)
        .map_err(|e| e.to_string())
        .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()))
    {
        Ok(event) => event,
        Err(e) => {
            eprintln!("cold-start: {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let timeout = std::env::var("COLD_START_TIMEOUT_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(TIMEOUT, Duration::from_secs);
    let report = handle_batch_until(
        &plane.reconciler,
        &plane.stream,
        event.get(),
        Some(started + timeout),
    )
    .await;
    let _ = metrics.flush(std::io::stdout());
    println!(
        "{}",
        serde_json::to_string(&report.response).unwrap_or_default()
    );
    // A run that did not do the whole job must not pass for a measurement.
    let failed = report
        .outcomes
        .values()
        .filter(|o| !matches!(o, Ok(Outcome::Converged(Some(Status::Ready)))))
        .count()
        + report.response.batch_item_failures.len()
        + report.skipped.len();
    if failed > 0 {
        eprintln!(
            "cold-start: {failed} records or tenants not ready: {:?}",
            report.outcomes
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
