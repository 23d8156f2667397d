//! Lambda: the tenants table's stream (SPEC items only, by FilterCriteria) → reconcile each tenant
//! named in the batch; transient failures come back as batch item failures.

use controlplane::deadline::{function_timeout_from_env, invocation_deadline};
use controlplane::triggers::stream::handle_batch_until;
use controlplane::wiring::{ControlPlane, init_metrics, run_with_metrics};
use lambda_runtime::{Error, LambdaEvent};
use serde_json::value::RawValue;

pub async fn run() -> Result<(), Error> {
    let plane = &ControlPlane::from_env().await?;
    let timeout = function_timeout_from_env()?;
    run_with_metrics(
        init_metrics()?,
        // The event stays text: each record is read once, by reference (`stream::record_ref`).
        move |event: LambdaEvent<Box<RawValue>>| async move {
            let deadline = invocation_deadline(event.context.deadline, timeout);
            let report = handle_batch_until(
                &plane.reconciler,
                &plane.stream,
                event.payload.get(),
                Some(deadline),
            )
            .await;
            Ok::<_, Error>(report.response)
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The payload type survives the runtime's own deserialization (serde_path_to_error over
    /// serde_json) with the event's text intact, escapes and all.
    #[test]
    fn the_runtime_hands_the_event_over_as_text() {
        let sample = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../events/stream-insert.json"
        ))
        .expect("the sample event");
        let payload: Box<RawValue> =
            serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&sample))
                .expect("the payload");
        let records =
            controlplane::triggers::stream::batch_records(payload.get()).expect("Records");
        assert_eq!(records.len(), 1);
        assert!(controlplane::triggers::stream::record_ref(0, records[0].get()).is_ok());
    }
}
