//! The stream, re-read by the stream-failures consumer.

use async_trait::async_trait;

use model::spec::TenantKey;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamReadError {
    /// The records are no longer in the stream (past its 24-hour retention, or the shard or
    /// stream is gone): retrying cannot bring them back.
    #[error("the records are gone from the stream: {0}")]
    Gone(String),
    #[error("cannot read the stream: {0}")]
    Transient(String),
}

/// A range of a DynamoDB stream shard, as Lambda's OnFailure record names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardRange {
    pub stream_arn: String,
    pub shard_id: String,
    pub start_sequence_number: String,
    pub end_sequence_number: String,
}

/// Re-reads stream records (the on-failure consumer).
#[async_trait]
pub trait StreamRecords: Send + Sync {
    /// The tenants whose SPEC the records in `range` (inclusive) name, in stream order.
    async fn tenants_in(&self, range: &ShardRange) -> Result<Vec<TenantKey>, StreamReadError>;
}
