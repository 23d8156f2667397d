//! Lambda: the rollout driver. Each scheduled run steps the active rollout (plan, move a wave,
//! watch, halt, roll back) every few seconds until its time is up; the next run continues from
//! the table. One driver at a time: each run holds the lease in the table while it steps (a run
//! that finds another holding it stops at once); every write is conditional anyway.

use controlplane::wiring::{RolloutJob, init_metrics, run_with_metrics};
use lambda_runtime::{Error, LambdaEvent};
use serde_json::{Value, json};

pub async fn run() -> Result<(), Error> {
    let job = &RolloutJob::from_env().await?;
    run_with_metrics(init_metrics()?, move |_: LambdaEvent<Value>| async move {
        let last = job.driver.drive(job.run_for, job.step_every).await;
        Ok::<_, Error>(match last {
            Some(tick) => json!({
                "rollout": tick.rollout.id,
                "state": tick.rollout.state,
                "step": tick.step,
                "counts": tick.rollout.counts,
            }),
            None => json!({ "rollout": null }),
        })
    })
    .await
}
