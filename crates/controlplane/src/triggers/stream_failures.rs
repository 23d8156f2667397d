//! The stream trigger's OnFailure destination, consumed: each message is Lambda's record of a
//! batch it gave up on (shard and sequence range, not the records). The consumer re-reads that
//! range from the stream and reconciles every tenant it names, through the same reconcile as
//! every trigger. A tenant that still cannot be processed is recorded `failed` (retryable,
//! conditional on the version read) with a reason saying its records were exhausted.
//!
//! Nothing is dropped silently: a message that does not decode, or whose records are gone from
//! the stream, or whose tenants cannot even be recorded, is reported back to SQS; after its
//! receives it lands in the queue's dead-letter queue, which has an alarm. The scheduled
//! reconciler converges those tenants meanwhile.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};
use serde::Deserialize;
use tracing::{Instrument, error, info, info_span, warn};

use super::stream::StreamSettings;
use super::{Medium, fan_out};
use crate::ports::{ShardRange, StreamReadError, StreamRecords};
use crate::reconcile::Reconciler;

/// Lambda's OnFailure record for a DynamoDB stream batch (the parts the consumer needs).
#[derive(Debug, Deserialize)]
struct OnFailureRecord {
    #[serde(rename = "DDBStreamBatchInfo")]
    batch: BatchInfo,
    #[serde(rename = "requestContext", default)]
    request_context: Option<RequestContext>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchInfo {
    shard_id: String,
    start_sequence_number: String,
    end_sequence_number: String,
    stream_arn: String,
}

#[derive(Debug, Deserialize)]
struct RequestContext {
    #[serde(default)]
    condition: Option<String>,
}

/// Why a whole message could not be handled (it goes back to the queue).
#[derive(Debug, thiserror::Error)]
pub enum StreamFailuresError {
    #[error("not a Lambda OnFailure record for a DynamoDB stream: {0}")]
    Undecodable(String),
    #[error(transparent)]
    Stream(#[from] StreamReadError),
    #[error("tenant {tenant} could not be recorded: {error}")]
    Unrecorded { tenant: String, error: String },
}

/// Handles one SQS event of OnFailure messages; messages not fully handled are reported back.
pub async fn handle_stream_failures(
    reconciler: &Reconciler,
    stream: &dyn StreamRecords,
    settings: &StreamSettings,
    event: &serde_json::Value,
) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for message in super::completion::sqs_messages(event) {
        let id = message.message_id.clone().unwrap_or_default();
        let span = info_span!("stream_failure_message", message_id = %id);
        let result = handle_message(reconciler, stream, settings, message.body.as_deref())
            .instrument(span)
            .await;
        if let Err(e) = result {
            error!(message_id = %id, error = %e, "OnFailure message not handled; back to the queue");
            if !id.is_empty() {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
        }
    }
    response
}

async fn handle_message(
    reconciler: &Reconciler,
    stream: &dyn StreamRecords,
    settings: &StreamSettings,
    body: Option<&str>,
) -> Result<(), StreamFailuresError> {
    let record: OnFailureRecord = serde_json::from_str(body.unwrap_or_default())
        .map_err(|e| StreamFailuresError::Undecodable(e.to_string()))?;
    let condition = record
        .request_context
        .and_then(|c| c.condition)
        .unwrap_or_else(|| "given up".into());
    let range = ShardRange {
        stream_arn: record.batch.stream_arn,
        shard_id: record.batch.shard_id,
        start_sequence_number: record.batch.start_sequence_number,
        end_sequence_number: record.batch.end_sequence_number,
    };
    let described = format!(
        "{condition}; shard {}, sequence {} to {}",
        range.shard_id, range.start_sequence_number, range.end_sequence_number
    );
    let tenants = stream.tenants_in(&range).await?;
    info!(tenants = tenants.len(), records = %described, "re-reading a batch Lambda gave up on");

    let described = described.as_str();
    let handled = fan_out(
        reconciler,
        Medium::Queue,
        settings.concurrency,
        tenants.into_iter().map(|tenant| (tenant, ())),
        |tenant| async move {
            let reconciled = reconciler.reconcile(&tenant).await;
            if let Err(e) = &reconciled {
                warn!(error = %e, "still cannot be processed; recording it");
            }
            reconciler
                .record_exhausted(&tenant, described, reconciled)
                .await
        },
    )
    .await;
    let mut unrecorded = handled
        .into_iter()
        .filter(|handled| handled.redeliver)
        .map(|handled| StreamFailuresError::Unrecorded {
            tenant: handled.tenant.to_string(),
            error: match handled.result {
                Err(e) => e.to_string(),
                Ok(_) => "its re-check could not be scheduled".to_owned(),
            },
        });
    match unrecorded.next() {
        Some(first) => Err(first),
        None => Ok(()),
    }
}
