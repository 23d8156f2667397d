//! A local stand-in for Lambda's DynamoDB event source mapping: reads the table's stream with
//! DescribeStream / GetShardIterator / GetRecords, builds the exact event Lambda sends
//! (`eventSourceARN` included, which the emulator leaves out), applies the FilterCriteria, and
//! follows the mapping's rules: resume from the lowest reported batch item failure, bisect on a
//! function error, give up after MaximumRetryAttempts or MaximumRecordAgeInSeconds and send the
//! OnFailure message. The settings come from template.yaml (see `event_source`).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use aws_lambda_events::event::dynamodb::{EventRecord, StreamRecord};
use aws_sdk_dynamodbstreams::Client;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tracing::{debug, warn};

use crate::event_source::EventSourceSettings;
use crate::filter::passes;

#[derive(Debug, thiserror::Error)]
#[error("stream {stream_arn}: {reason}")]
pub struct PollError {
    pub stream_arn: String,
    pub reason: String,
}

/// What the function returned for one invocation.
#[derive(Clone, Debug)]
pub enum Invocation {
    /// The function's JSON response (`{"batchItemFailures": [...]}`).
    Response(Value),
    /// The function failed as a whole (error or crash).
    FunctionError(String),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PollerStats {
    pub records_read: usize,
    pub records_delivered: usize,
    pub invocations: usize,
    pub retries: usize,
    pub records_sent_to_on_failure: usize,
}

/// One delivered record: its Lambda JSON and what the mapping needs to track it.
#[derive(Clone, Debug)]
struct Delivered {
    json: Value,
    sequence_number: String,
    created_at: DateTime<Utc>,
}

pub struct StreamPoller {
    client: Client,
    stream_arn: String,
    region: String,
    settings: EventSourceSettings,
    /// Per shard: the last sequence number handled (or skipped by the filter).
    checkpoints: BTreeMap<String, String>,
    retry_delay: Duration,
    on_failure: Vec<Value>,
    stats: PollerStats,
}

impl StreamPoller {
    pub fn new(
        client: Client,
        stream_arn: impl Into<String>,
        region: impl Into<String>,
        settings: EventSourceSettings,
    ) -> Self {
        Self {
            client,
            stream_arn: stream_arn.into(),
            region: region.into(),
            settings,
            checkpoints: BTreeMap::new(),
            retry_delay: Duration::from_millis(0),
            on_failure: Vec::new(),
            stats: PollerStats::default(),
        }
    }

    /// Pause between retries of a failed batch (Lambda backs off too).
    pub fn with_retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    pub fn stats(&self) -> &PollerStats {
        &self.stats
    }

    /// The OnFailure messages sent so far (the local system forwards them to the queue).
    pub fn take_on_failure_messages(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.on_failure)
    }

    fn error(&self, reason: impl std::fmt::Display) -> PollError {
        PollError {
            stream_arn: self.stream_arn.clone(),
            reason: reason.to_string(),
        }
    }

    /// Reads and handles one batch per shard; returns how many records were read (0: caught up).
    pub async fn poll_once<F, Fut>(&mut self, invoke: &F) -> Result<usize, PollError>
    where
        F: Fn(Value) -> Fut,
        Fut: Future<Output = Invocation>,
    {
        let description = self
            .client
            .describe_stream()
            .stream_arn(&self.stream_arn)
            .send()
            .await
            .map_err(|e| self.error(controlplane::aws::AwsFailure::from_sdk(&e).message))?;
        let shards: Vec<String> = description
            .stream_description()
            .map(|d| {
                d.shards()
                    .iter()
                    .filter_map(|s| s.shard_id().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let mut read = 0;
        for shard in shards {
            read += self.poll_shard(&shard, invoke).await?;
        }
        Ok(read)
    }

    /// Polls until every shard is caught up.
    pub async fn drain<F, Fut>(&mut self, invoke: &F) -> Result<PollerStats, PollError>
    where
        F: Fn(Value) -> Fut,
        Fut: Future<Output = Invocation>,
    {
        while self.poll_once(invoke).await? > 0 {}
        Ok(self.stats.clone())
    }

    async fn poll_shard<F, Fut>(&mut self, shard: &str, invoke: &F) -> Result<usize, PollError>
    where
        F: Fn(Value) -> Fut,
        Fut: Future<Output = Invocation>,
    {
        let request = self
            .client
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(shard);
        let request = match self.checkpoints.get(shard) {
            Some(sequence) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .sequence_number(sequence),
            None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        let iterator = request
            .send()
            .await
            .map_err(|e| self.error(controlplane::aws::AwsFailure::from_sdk(&e).message))?
            .shard_iterator
            .ok_or_else(|| self.error("GetShardIterator returned no iterator"))?;
        let output = self
            .client
            .get_records()
            .shard_iterator(iterator)
            // GetRecords returns at most 1,000 records a call.
            .limit(self.settings.batch_size.clamp(1, 1000) as i32)
            .send()
            .await
            .map_err(|e| self.error(controlplane::aws::AwsFailure::from_sdk(&e).message))?;
        let records = output.records.unwrap_or_default();
        let Some(last) = records
            .last()
            .and_then(|r| r.dynamodb()?.sequence_number().map(str::to_owned))
        else {
            return Ok(0);
        };
        self.stats.records_read += records.len();
        let delivered: Vec<Delivered> = records
            .iter()
            .filter_map(|record| lambda_record(record, &self.stream_arn, &self.region))
            .filter(|d| passes(&self.settings.filters, &d.json))
            .collect();
        // Lambda never delivers a record older than MaximumRecordAgeInSeconds.
        let (delivered, expired): (Vec<Delivered>, Vec<Delivered>) =
            delivered.into_iter().partition(|d| {
                self.settings.maximum_record_age.is_none_or(|max| {
                    (Utc::now() - d.created_at).to_std().unwrap_or_default() <= max
                })
            });
        if !expired.is_empty() {
            self.send_on_failure(shard, &expired, "RecordAgeExceeded", 0, None);
        }
        self.stats.records_delivered += delivered.len();
        if !delivered.is_empty() {
            self.deliver(shard, delivered, invoke).await;
        }
        self.checkpoints.insert(shard.to_owned(), last);
        Ok(records.len())
    }

    /// Invokes until every delivered record is handled or given up on.
    async fn deliver<F, Fut>(&mut self, shard: &str, mut pending: Vec<Delivered>, invoke: &F)
    where
        F: Fn(Value) -> Fut,
        Fut: Future<Output = Invocation>,
    {
        let mut size = pending.len();
        let mut retries: u32 = 0;
        let mut function_error: Option<String>;
        while !pending.is_empty() {
            size = size.clamp(1, pending.len());
            let batch = &pending[..size];
            let event =
                json!({ "Records": batch.iter().map(|d| d.json.clone()).collect::<Vec<_>>() });
            self.stats.invocations += 1;
            let handled = match invoke(event).await {
                Invocation::Response(response) => {
                    function_error = None;
                    let failed = self.first_failed(batch, &response);
                    match failed {
                        None => size,
                        Some(index) => {
                            debug!(
                                index,
                                "batch item failure: retrying from its sequence number"
                            );
                            index
                        }
                    }
                }
                Invocation::FunctionError(error) => {
                    warn!(%error, "function error");
                    function_error = Some(error);
                    if self.settings.bisect_on_function_error && size > 1 {
                        size = size.div_ceil(2);
                    }
                    0
                }
            };
            if handled == size {
                pending.drain(..handled);
                size = pending.len();
                retries = 0;
                continue;
            }
            // Records before the first failure succeeded: the retry starts at the failure.
            pending.drain(..handled);
            size = size.saturating_sub(handled).max(1);
            retries += 1;
            self.stats.retries += 1;
            let oldest = pending[0].created_at;
            let age = (Utc::now() - oldest).to_std().unwrap_or_default();
            let condition = if self
                .settings
                .maximum_retry_attempts
                .is_some_and(|max| retries > max)
            {
                Some("RetryAttemptsExhausted")
            } else if self
                .settings
                .maximum_record_age
                .is_some_and(|max| age > max)
            {
                Some("RecordAgeExceeded")
            } else {
                None
            };
            if let Some(condition) = condition {
                let size_now = size.min(pending.len());
                let dropped: Vec<Delivered> = pending.drain(..size_now).collect();
                self.send_on_failure(
                    shard,
                    &dropped,
                    condition,
                    retries,
                    function_error.as_deref(),
                );
                size = pending.len();
                retries = 0;
            } else if !self.retry_delay.is_zero() {
                tokio::time::sleep(self.retry_delay).await;
            }
        }
    }

    /// The index of the lowest reported failure in the batch; a report naming no record of the
    /// batch fails the whole batch, as Lambda does.
    fn first_failed(&self, batch: &[Delivered], response: &Value) -> Option<usize> {
        if !self.settings.report_batch_item_failures {
            return None;
        }
        let failures = response
            .get("batchItemFailures")
            .and_then(Value::as_array)?;
        if failures.is_empty() {
            return None;
        }
        let indexes: Vec<Option<usize>> = failures
            .iter()
            .map(|f| {
                let id = f.get("itemIdentifier").and_then(Value::as_str)?;
                batch.iter().position(|d| d.sequence_number == id)
            })
            .collect();
        if indexes.iter().any(Option::is_none) {
            return Some(0);
        }
        indexes.into_iter().flatten().min()
    }

    fn send_on_failure(
        &mut self,
        shard: &str,
        dropped: &[Delivered],
        condition: &str,
        retries: u32,
        function_error: Option<&str>,
    ) {
        let (Some(first), Some(last)) = (dropped.first(), dropped.last()) else {
            return;
        };
        if !self.settings.has_on_failure_destination {
            warn!(
                condition,
                records = dropped.len(),
                "batch given up and discarded: no OnFailure destination"
            );
            return;
        }
        warn!(
            condition,
            records = dropped.len(),
            "batch given up: sending it to the OnFailure destination"
        );
        self.stats.records_sent_to_on_failure += dropped.len();
        self.on_failure.push(json!({
            "requestContext": {
                "requestId": format!("local-{}", first.sequence_number),
                "functionArn": format!("arn:aws:lambda:{}:123456789012:function:{}", self.region, self.settings.function),
                "condition": condition,
                "approximateInvokeCount": if retries == 0 { 0 } else { retries + 1 },
            },
            "responseContext": match function_error {
                Some(_) => json!({"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}),
                None => json!({"statusCode": 200, "executedVersion": "$LATEST"}),
            },
            "version": "1.0",
            "timestamp": Utc::now().to_rfc3339(),
            "DDBStreamBatchInfo": {
                "shardId": shard,
                "startSequenceNumber": first.sequence_number,
                "endSequenceNumber": last.sequence_number,
                "approximateArrivalOfFirstRecord": first.created_at.to_rfc3339(),
                "approximateArrivalOfLastRecord": last.created_at.to_rfc3339(),
                "batchSize": dropped.len(),
                "streamArn": self.stream_arn,
            }
        }));
    }
}

/// The record exactly as Lambda delivers it (the emulator's GetRecords lacks `eventSourceARN`).
fn lambda_record(record: &Record, stream_arn: &str, region: &str) -> Option<Delivered> {
    let change = record.dynamodb()?;
    let sequence_number = change.sequence_number()?.to_owned();
    let created_at = change
        .approximate_creation_date_time()
        .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
        .unwrap_or_else(Utc::now);
    let mut stream_record = StreamRecord::default();
    stream_record.approximate_creation_date_time = created_at;
    stream_record.keys = change.keys().cloned().unwrap_or_default().into();
    stream_record.new_image = change.new_image().cloned().unwrap_or_default().into();
    stream_record.old_image = change.old_image().cloned().unwrap_or_default().into();
    stream_record.sequence_number = Some(sequence_number.clone());
    stream_record.size_bytes = change.size_bytes().unwrap_or_default();
    stream_record.stream_view_type = change
        .stream_view_type()
        .and_then(|v| serde_json::from_value(Value::String(v.as_str().to_owned())).ok());
    let mut event = EventRecord::default();
    event.aws_region = record.aws_region().unwrap_or(region).to_owned();
    event.change = stream_record;
    event.event_id = record.event_id().unwrap_or_default().to_owned();
    event.event_name = record
        .event_name()
        .map(|n| n.as_str().to_owned())
        .unwrap_or_default();
    event.event_source = Some(record.event_source().unwrap_or("aws:dynamodb").to_owned());
    event.event_version = Some(record.event_version().unwrap_or("1.1").to_owned());
    event.event_source_arn = Some(stream_arn.to_owned());
    let mut json = serde_json::to_value(&event).ok()?;
    // Lambda omits absent images rather than sending empty ones.
    if let Some(change) = json.get_mut("dynamodb").and_then(Value::as_object_mut) {
        for image in ["NewImage", "OldImage"] {
            if change
                .get(image)
                .and_then(Value::as_object)
                .is_some_and(|m| m.is_empty())
            {
                change.remove(image);
            }
        }
    }
    Some(Delivered {
        json,
        sequence_number,
        created_at,
    })
}
