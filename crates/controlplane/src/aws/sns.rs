//! Lifecycle events on SNS: the event as JSON, with its kind and tenant as message attributes
//! (so subscriptions can filter without parsing the body).

use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;

use super::AwsFailure;
use crate::ports::{EventPublishError, LifecycleEvents};
use model::status::LifecycleEvent;

/// The calls of [`SnsEvents`].
pub const CALLS: &[super::Call] = &[super::Call::new(
    "sns:Publish",
    super::Resource::LifecycleTopic,
)];

pub struct SnsEvents {
    client: Client,
    topic_arn: String,
}

impl SnsEvents {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

fn attribute(value: &str) -> Result<MessageAttributeValue, EventPublishError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| EventPublishError(e.to_string()))
}

#[async_trait]
impl LifecycleEvents for SnsEvents {
    async fn publish(&self, event: &LifecycleEvent) -> Result<(), EventPublishError> {
        let body = serde_json::to_string(event).map_err(|e| EventPublishError(e.to_string()))?;
        let kind = serde_json::to_value(event.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .message(body)
            .message_attributes("event", attribute(&kind)?)
            .message_attributes("tenant_id", attribute(&event.tenant_id)?)
            .message_attributes("event_id", attribute(&event.id)?)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| EventPublishError(AwsFailure::from_sdk(&e).message))
    }
}
