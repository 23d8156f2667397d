//! Lambda: the sweep (deployed as the scheduled `reconciler`). Every tenant is reconciled on a schedule, catching whatever
//! the stream and the completion loop missed, and running retries that are due.

use controlplane::triggers::sweep::{SweepReport, sweep};
use controlplane::wiring::{ControlPlane, init_metrics, run_with_metrics};
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let plane = &ControlPlane::from_env().await?;
    run_with_metrics(init_metrics()?, move |_: LambdaEvent<Value>| async move {
        let report: SweepReport = sweep(
            plane.store.as_ref(),
            &plane.reconciler,
            plane.stream.concurrency,
        )
        .await?;
        Ok::<_, Error>(report)
    })
    .await
}
