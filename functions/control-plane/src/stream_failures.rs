//! Lambda: the stream trigger's OnFailure queue. Each message names a batch Lambda gave up on;
//! its records are re-read from the stream and every tenant they name is reconciled (or recorded
//! failed, saying its records were exhausted). Unhandled messages go back to the queue.

use controlplane::triggers::stream_failures::handle_stream_failures;
use controlplane::wiring::{ControlPlane, init_metrics, run_with_metrics};
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

pub async fn run() -> Result<(), Error> {
    let plane = &ControlPlane::from_env().await?;
    run_with_metrics(
        init_metrics()?,
        move |event: LambdaEvent<Value>| async move {
            Ok::<_, Error>(
                handle_stream_failures(
                    &plane.reconciler,
                    plane.stream_records.as_ref(),
                    &plane.stream,
                    &event.payload,
                )
                .await,
            )
        },
    )
    .await
}
