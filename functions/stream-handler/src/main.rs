//! Lambda: the tenants table's stream (SPEC items only, by FilterCriteria) → reconcile each tenant
//! named in the batch; transient failures come back as batch item failures.

use controlplane::runtime::{ControlPlane, ControlPlaneConfig, init_logs, sdk_config};
use std::time::{Duration, SystemTime};

use controlplane::stream::handle_batch_until;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logs();
    let sdk = sdk_config().await;
    let config = ControlPlaneConfig::from_env(&sdk)?;
    let plane = ControlPlane::build(&sdk, &config).await?;
    let plane = &plane;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = SystemTime::UNIX_EPOCH + Duration::from_millis(event.context.deadline);
        let report = handle_batch_until(
            &plane.reconciler,
            &plane.stream,
            &event.payload,
            Some(deadline),
        )
        .await;
        Ok::<_, Error>(report.response)
    }))
    .await
}
