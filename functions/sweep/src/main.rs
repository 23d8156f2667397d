//! Lambda: the sweep (deployed as the scheduled `reconciler`). Every tenant is reconciled on a
//! schedule, catching whatever the stream and the completion loop missed, and running retries
//! that are due. Its second schedule (input `{"job": "drift"}`) runs the drift job instead:
//! drift detection on every settled stack not checked within the interval.

use std::time::Duration;

use controlplane::triggers::drift::drift_sweep;
use controlplane::triggers::sweep::sweep;
use controlplane::wiring::{ControlPlane, init_metrics, run_with_metrics};
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

/// Checks still running when the invocation ends are lost; none starts this close to the end.
const DRIFT_STOP_BEFORE_END: Duration = Duration::from_secs(6 * 60);

#[tokio::main]
async fn main() -> Result<(), Error> {
    let plane = &ControlPlane::from_env().await?;
    run_with_metrics(
        init_metrics()?,
        move |event: LambdaEvent<Value>| async move {
            if event.payload.get("job").and_then(Value::as_str) == Some("drift") {
                let mut settings = plane.drift_settings.clone();
                let left = event
                    .context
                    .deadline()
                    .duration_since(std::time::SystemTime::now())
                    .unwrap_or_default();
                settings.stop_at =
                    Some(tokio::time::Instant::now() + left.saturating_sub(DRIFT_STOP_BEFORE_END));
                let report = drift_sweep(
                    plane.store.as_ref(),
                    plane.drift.clone(),
                    &plane.reconciler,
                    &settings,
                )
                .await?;
                return Ok::<_, Error>(serde_json::to_value(report)?);
            }
            let report = sweep(
                plane.store.as_ref(),
                &plane.reconciler,
                plane.stream.concurrency,
            )
            .await?;
            Ok(serde_json::to_value(report)?)
        },
    )
    .await
}
