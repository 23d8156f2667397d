//! Lambda: the hourly decommission. Tenants whose `decommission_date` has passed are announced
//! (their grace period starts); once it is over their SPEC is removed as the system actor, and
//! the normal removal path deletes the stack.

use controlplane::triggers::decommission::{DecommissionReport, decommission};
use controlplane::wiring::{ControlPlane, init_metrics, run_with_metrics};
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

pub async fn run() -> Result<(), Error> {
    let plane = &ControlPlane::from_env().await?;
    run_with_metrics(init_metrics()?, move |_: LambdaEvent<Value>| async move {
        let report: DecommissionReport = decommission(
            plane.store.as_ref(),
            &plane.reconciler,
            plane.decommission_grace,
            plane.stream.concurrency,
        )
        .await?;
        Ok::<_, Error>(report)
    })
    .await
}
