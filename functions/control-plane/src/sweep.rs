//! Lambda: the sweep (deployed as the scheduled `reconciler`). Every tenant is reconciled on a
//! schedule, catching whatever the stream and the completion loop missed, and running retries
//! that are due. Its second schedule (input `{"job": "drift"}`) runs the drift job instead:
//! drift detection on every settled stack not checked within the interval.

use std::time::SystemTime;

use controlplane::deadline::{function_timeout_from_env, invocation_deadline};
use controlplane::triggers::drift::drift_sweep;
use controlplane::triggers::sweep::sweep;
use controlplane::wiring::{ControlPlane, init_metrics, run_with_metrics};
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

pub async fn run() -> Result<(), Error> {
    let plane = &ControlPlane::from_env().await?;
    let timeout = function_timeout_from_env()?;
    run_with_metrics(
        init_metrics()?,
        move |event: LambdaEvent<Value>| async move {
            if event.payload.get("job").and_then(Value::as_str) == Some("drift") {
                // Checks and reverts still running when the invocation ends are lost (nothing
                // is written for them; the next run checks again): none starts too close to it.
                let left = invocation_deadline(event.context.deadline, timeout)
                    .duration_since(SystemTime::now())
                    .unwrap_or_default();
                let settings = plane.drift_settings.clone().within(left);
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
