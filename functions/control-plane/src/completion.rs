//! Lambda: the completion loop. Each delayed re-check message names a tenant whose stack
//! operation was in flight; reconciling it records the end or schedules the next look.

use controlplane::triggers::completion::handle_rechecks;
use controlplane::wiring::{ControlPlane, init_metrics, run_with_metrics};
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

pub async fn run() -> Result<(), Error> {
    let plane = &ControlPlane::from_env().await?;
    run_with_metrics(
        init_metrics()?,
        move |event: LambdaEvent<Value>| async move {
            Ok::<_, Error>(handle_rechecks(&plane.reconciler, &plane.stream, &event.payload).await)
        },
    )
    .await
}
