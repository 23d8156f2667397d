//! Lambda: the tenants table's stream (SPEC items only, by FilterCriteria) → reconcile each tenant
//! named in the batch; transient failures come back as batch item failures.

use std::time::{Duration, SystemTime};

use controlplane::runtime::{ControlPlane, init_metrics, run_with_metrics};
use controlplane::stream::handle_batch_until;
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let plane = &ControlPlane::from_env().await?;
    run_with_metrics(
        init_metrics()?,
        move |event: LambdaEvent<Value>| async move {
            let deadline = SystemTime::UNIX_EPOCH + Duration::from_millis(event.context.deadline);
            let report = handle_batch_until(
                &plane.reconciler,
                &plane.stream,
                &event.payload,
                Some(deadline),
            )
            .await;
            Ok::<_, Error>(report.response)
        },
    )
    .await
}
