//! Lambda: the fleet metrics job. Counts tenants per status (every status, zeros included) and
//! operations stuck in flight through the `by-status` index, emitted as CloudWatch EMF lines.

use controlplane::metrics::{FleetCounts, count_fleet};
use controlplane::wiring::{MetricsJob, init_metrics, run_with_metrics};
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

pub async fn run() -> Result<(), Error> {
    let job = &MetricsJob::from_env().await?;
    run_with_metrics(init_metrics()?, move |_: LambdaEvent<Value>| async move {
        let counts: FleetCounts =
            count_fleet(job.store.as_ref(), chrono::Utc::now(), job.stuck_after).await?;
        counts.record();
        Ok::<_, Error>(counts)
    })
    .await
}
