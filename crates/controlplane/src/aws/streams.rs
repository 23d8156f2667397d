//! Re-reading a range of the tenants table's stream (DynamoDB Streams), for the on-failure
//! consumer.

use async_trait::async_trait;
use aws_sdk_dynamodbstreams::Client;
use aws_sdk_dynamodbstreams::types::{AttributeValue, ShardIteratorType};

use super::AwsFailure;
use crate::ports::{Healing, ShardRange, StreamReadError, StreamRecords};
use model::spec::{SPEC_SK, TenantKey};

/// Pages read for one range at most: Lambda batches hold at most 10,000 records, a page 1,000.
const MAX_PAGES: usize = 20;

/// The calls of [`DynamoStreams`] (DynamoDB Streams' operations are `dynamodb:` actions).
pub const CALLS: &[super::Call] = &[
    super::Call::new("dynamodb:GetShardIterator", super::Resource::TableStream),
    super::Call::new("dynamodb:GetRecords", super::Resource::TableStream),
];

pub struct DynamoStreams {
    client: Client,
}

impl DynamoStreams {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

/// Sequence numbers are decimal strings of varying length: compare them as numbers.
fn sequence_after(sequence: &str, end: &str) -> bool {
    (sequence.len(), sequence) > (end.len(), end)
}

fn classify(failure: AwsFailure) -> StreamReadError {
    const GONE: &[&str] = &[
        "TrimmedDataAccessException",
        "ResourceNotFoundException",
        "ExpiredIteratorException",
    ];
    if failure.code.as_deref().is_some_and(|c| GONE.contains(&c))
        || failure.healing == Healing::Permanent
    {
        StreamReadError::Gone(failure.message)
    } else {
        StreamReadError::Transient(failure.message)
    }
}

fn text(value: Option<&AttributeValue>) -> Option<&str> {
    match value {
        Some(AttributeValue::S(s)) => Some(s),
        _ => None,
    }
}

#[async_trait]
impl StreamRecords for DynamoStreams {
    async fn tenants_in(&self, range: &ShardRange) -> Result<Vec<TenantKey>, StreamReadError> {
        let mut iterator = self
            .client
            .get_shard_iterator()
            .stream_arn(&range.stream_arn)
            .shard_id(&range.shard_id)
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .sequence_number(&range.start_sequence_number)
            .send()
            .await
            .map_err(|e| classify(AwsFailure::from_sdk(&e)))?
            .shard_iterator;
        let mut tenants: Vec<TenantKey> = Vec::new();
        // Empty pages can come before the range's end on an open shard: keep reading them.
        for _ in 0..MAX_PAGES {
            let Some(current) = iterator.take() else {
                break;
            };
            let page = self
                .client
                .get_records()
                .shard_iterator(current)
                .limit(1000)
                .send()
                .await
                .map_err(|e| classify(AwsFailure::from_sdk(&e)))?;
            for record in page.records.as_deref().unwrap_or_default() {
                let Some(change) = record.dynamodb() else {
                    continue;
                };
                let sequence = change.sequence_number().unwrap_or_default();
                if sequence_after(sequence, &range.end_sequence_number) {
                    return Ok(tenants);
                }
                let keys = change.keys();
                let pk = keys.and_then(|k| text(k.get("pk")));
                let sk = keys.and_then(|k| text(k.get("sk")));
                if let (Some(tenant), Some(SPEC_SK)) = (pk.and_then(TenantKey::from_pk), sk)
                    && !tenants.contains(&tenant)
                {
                    tenants.push(tenant);
                }
                if sequence == range.end_sequence_number {
                    return Ok(tenants);
                }
            }
            iterator = page.next_shard_iterator;
        }
        // Never reached the end: the range may name more tenants than were read. Not done.
        Err(StreamReadError::Transient(format!(
            "read {} tenant(s) but not up to sequence {} of shard {}",
            tenants.len(),
            range.end_sequence_number,
            range.shard_id
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::sequence_after;

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert!(sequence_after("100", "99"));
        assert!(!sequence_after("99", "100"));
        assert!(!sequence_after("100", "100"));
        assert!(sequence_after(
            "49668245740000000000000000000000000000000002",
            "49668245740000000000000000000000000000000001"
        ));
    }
}
