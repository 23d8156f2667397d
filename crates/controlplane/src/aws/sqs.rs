//! The completion loop's re-check queue on SQS: a delayed message per tenant in flight.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use serde::{Deserialize, Serialize};

use super::AwsFailure;
use crate::ports::{Recheck, RecheckError};
use model::spec::TenantKey;

/// The calls of [`SqsRecheck`].
pub const RECHECK_CALLS: &[super::Call] = &[super::Call::new(
    "sqs:SendMessage",
    super::Resource::RecheckQueue,
)];

/// The calls of [`SqsPreviewQueue`].
pub const PREVIEW_QUEUE_CALLS: &[super::Call] = &[super::Call::new(
    "sqs:SendMessage",
    super::Resource::PreviewQueue,
)];

/// SQS delays a message by at most 15 minutes.
pub const MAX_DELAY: Duration = Duration::from_secs(900);

/// The body of a re-check message: only the tenant (the truth is re-read).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecheckMessage {
    pub tenant_id: String,
}

pub struct SqsRecheck {
    client: Client,
    queue_url: String,
}

impl SqsRecheck {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

#[async_trait]
impl Recheck for SqsRecheck {
    async fn schedule(&self, tenant: &TenantKey, after: Duration) -> Result<(), RecheckError> {
        let body = serde_json::to_string(&RecheckMessage {
            tenant_id: tenant.as_str().to_owned(),
        })
        .map_err(|e| RecheckError(e.to_string()))?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .delay_seconds(after.min(MAX_DELAY).as_secs() as i32)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| RecheckError(AwsFailure::from_sdk(&e).message))
    }
}

/// The preview function's queue: one message per run of a preview job.
pub struct SqsPreviewQueue {
    client: Client,
    queue_url: String,
}

impl SqsPreviewQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

#[async_trait]
impl crate::rollout::preview::PreviewQueue for SqsPreviewQueue {
    async fn queue(&self, preview_id: &str) -> Result<(), RecheckError> {
        let body = serde_json::to_string(&crate::rollout::preview::PreviewMessage {
            preview_id: preview_id.to_owned(),
        })
        .map_err(|e| RecheckError(e.to_string()))?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| RecheckError(AwsFailure::from_sdk(&e).message))
    }
}
