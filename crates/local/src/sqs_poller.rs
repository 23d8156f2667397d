//! A local stand-in for Lambda's SQS event source mapping: receives messages, invokes the
//! function with the event Lambda would build, deletes what succeeded, and leaves reported
//! failures to come back after their visibility timeout. It long-polls, as Lambda's SQS
//! pollers do: an empty queue costs one call every 20 seconds (moto waits on a condition, not
//! in a loop), and a message sent meanwhile is received at once.

use std::future::Future;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsMessage;
use aws_sdk_sqs::Client;
use serde_json::{Value, json};
use tracing::warn;

use crate::stream_poller::Invocation;

pub struct SqsPoller {
    client: Client,
    queue_url: String,
    queue_arn: String,
    region: String,
    batch_size: i32,
    wait: Duration,
}

/// How long a receive waits for a message (SQS's longest long poll).
pub const LONG_POLL: Duration = Duration::from_secs(20);

impl SqsPoller {
    pub fn new(
        client: Client,
        queue_url: impl Into<String>,
        queue_arn: impl Into<String>,
        region: impl Into<String>,
    ) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            queue_arn: queue_arn.into(),
            region: region.into(),
            batch_size: 10,
            wait: LONG_POLL,
        }
    }

    /// How long a receive waits for a message (at most 20 s; 0: short polling).
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = wait.min(LONG_POLL);
        self
    }

    /// Receives one batch (waiting for one up to the long poll's time) and handles it; returns
    /// how many messages.
    pub async fn poll_once<F, Fut>(&self, invoke: &F) -> Result<usize, String>
    where
        F: Fn(Value) -> Fut,
        Fut: Future<Output = Invocation>,
    {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(self.batch_size)
            // As Lambda's event carries them (ApproximateReceiveCount, SentTimestamp, ...).
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .wait_time_seconds(self.wait.as_secs() as i32)
            .send()
            .await
            .map_err(|e| controlplane::aws::AwsFailure::from_sdk(&e).message)?;
        let messages = output.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(0);
        }
        let records: Vec<Value> = messages
            .iter()
            .filter_map(|m| {
                let mut message = SqsMessage::default();
                message.message_id = m.message_id().map(str::to_owned);
                message.receipt_handle = m.receipt_handle().map(str::to_owned);
                message.body = m.body().map(str::to_owned);
                message.attributes = m
                    .attributes()
                    .into_iter()
                    .flatten()
                    .map(|(name, value)| (name.as_str().to_owned(), value.clone()))
                    .collect();
                message.event_source = Some("aws:sqs".into());
                message.event_source_arn = Some(self.queue_arn.clone());
                message.aws_region = Some(self.region.clone());
                serde_json::to_value(&message).ok()
            })
            .collect();
        let failed: Vec<String> = match invoke(json!({ "Records": records })).await {
            Invocation::Response(response) => response["batchItemFailures"]
                .as_array()
                .map(|f| {
                    f.iter()
                        .filter_map(|x| x["itemIdentifier"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            // The whole batch comes back after the visibility timeout.
            Invocation::FunctionError(error) => {
                warn!(%error, "function error on the re-check queue");
                return Ok(messages.len());
            }
        };
        for message in &messages {
            if message
                .message_id()
                .is_some_and(|id| failed.iter().any(|f| f == id))
            {
                continue;
            }
            if let Some(handle) = message.receipt_handle()
                && let Err(e) = self
                    .client
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
            {
                warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "cannot delete a handled message");
            }
        }
        Ok(messages.len())
    }
}
