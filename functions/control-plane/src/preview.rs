//! Lambda: rollout previews. Each message names a preview job the API recorded; the job goes on
//! from where it stopped (change sets created, read and deleted in the tenants' accounts, never
//! executed) until it is done or the invocation's time is nearly up, then queues its next run.

use std::time::{Duration, SystemTime};

use controlplane::aws::cloudformation::CHANGE_SET_WAIT;
use controlplane::deadline::{function_timeout_from_env, invocation_deadline};
use controlplane::rollout::preview::handle_preview_messages;
use controlplane::wiring::{PreviewWorker, init_metrics, run_with_metrics};
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

/// Left of the invocation's time when a job stops: a round of change sets started before it can
/// wait for them as long as the adapter does (CHANGE_SET_WAIT), then the job is saved and
/// queued again.
const MARGIN: Duration = Duration::from_secs(CHANGE_SET_WAIT.as_secs() + 60);

pub async fn run() -> Result<(), Error> {
    let worker = &PreviewWorker::from_env().await?;
    let timeout = function_timeout_from_env()?;
    run_with_metrics(
        init_metrics()?,
        move |event: LambdaEvent<Value>| async move {
            let deadline = invocation_deadline(event.context.deadline, timeout);
            let left = deadline
                .duration_since(SystemTime::now())
                .unwrap_or_default()
                .saturating_sub(MARGIN);
            let until = tokio::time::Instant::now() + left;
            Ok::<_, Error>(
                handle_preview_messages(
                    &worker.runner,
                    worker.queue.as_ref(),
                    &event.payload,
                    until,
                )
                .await,
            )
        },
    )
    .await
}
