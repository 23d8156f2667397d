//! The completion loop's consumer. Two kinds of message arrive on the re-check queue, and both
//! only name a tenant to reconcile:
//! - a delayed re-check (`{"tenant_id": ...}`), the polling fallback the reconcile schedules
//!   while an operation is in flight;
//! - a CloudFormation "Stack Status Change" event, forwarded from the tenant account's default
//!   bus through the control plane's bus (the body is the EventBridge event): the fast path.
//!
//! Messages are triggers, not truth: the status an event carries is never used (the reconcile
//! reads the stack itself), duplicates are harmless, and a message that names no tenant of ours
//! is dropped with a log (it cannot heal; the reconciler's schedule is the fallback).

use std::collections::BTreeMap;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsMessage};
use serde::Deserialize;
use tracing::{info, warn};

use super::stream::StreamSettings;
use super::{Medium, fan_out};
use crate::aws::sqs::RecheckMessage;
use crate::reconcile::{Reconciler, Settings};
use model::spec::TenantKey;
use model::stack::stack_name_of_id;

/// The `source` of CloudFormation's events.
pub const CLOUDFORMATION_SOURCE: &str = "aws.cloudformation";
/// The `detail-type` of a stack's status change.
pub const STACK_STATUS_CHANGE: &str = "CloudFormation Stack Status Change";

/// The `detail` of a "CloudFormation Stack Status Change" event (only what is read).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct StackStatusChange {
    stack_id: String,
    #[serde(default)]
    status_details: Option<StatusDetails>,
}

#[derive(Clone, Debug, Deserialize)]
struct StatusDetails {
    #[serde(default)]
    status: Option<String>,
}

/// Why a message on the re-check queue names no tenant of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnknownMessage {
    #[error("the message has no body")]
    NoBody,
    #[error("neither a re-check nor an EventBridge event: {0}")]
    Undecodable(String),
    #[error(
        "an event of {event_source:?} / {detail_type:?}, not a CloudFormation stack status change"
    )]
    OtherEvent {
        event_source: String,
        detail_type: String,
    },
    #[error("{0:?} is not a CloudFormation stack id")]
    NotAStackId(String),
    #[error("stack {0:?} is not one of the control plane's")]
    ForeignStack(String),
}

/// The tenant a re-check queue message body names: a re-check's tenant, or the owner of the stack
/// a stack status change event is about (through the stack name prefix in `settings`).
pub fn tenant_of_message(settings: &Settings, body: &str) -> Result<TenantKey, UnknownMessage> {
    if let Ok(recheck) = serde_json::from_str::<RecheckMessage>(body) {
        return Ok(TenantKey::new(recheck.tenant_id));
    }
    let event: EventBridgeEvent<serde_json::Value> =
        serde_json::from_str(body).map_err(|e| UnknownMessage::Undecodable(e.to_string()))?;
    if event.source != CLOUDFORMATION_SOURCE || event.detail_type != STACK_STATUS_CHANGE {
        return Err(UnknownMessage::OtherEvent {
            event_source: event.source,
            detail_type: event.detail_type,
        });
    }
    let change: StackStatusChange = serde_json::from_value(event.detail)
        .map_err(|e| UnknownMessage::Undecodable(format!("detail: {e}")))?;
    let name = stack_name_of_id(&change.stack_id)
        .ok_or_else(|| UnknownMessage::NotAStackId(change.stack_id.clone()))?;
    let tenant = settings
        .tenant_of_stack(name)
        .ok_or_else(|| UnknownMessage::ForeignStack(name.to_owned()))?;
    // Logged for tracing only: the reconcile reads the stack's status itself.
    let status = change.status_details.and_then(|d| d.status);
    info!(tenant_id = %tenant, stack = name, ?status, "stack status change event");
    Ok(tenant)
}

/// The messages of an SQS event, as Lambda's SQS event source sends them. A record that is not
/// a message is logged and left out: without its id there is nothing to report back (SQS
/// redelivers a whole batch only on a function error, which would repeat the others).
pub fn sqs_messages(event: &serde_json::Value) -> Vec<SqsMessage> {
    event
        .get("Records")
        .and_then(serde_json::Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(index, raw)| match serde_json::from_value(raw.clone()) {
            Ok(message) => Some(message),
            Err(e) => {
                warn!(index, error = %e, "not an SQS message; dropped");
                None
            }
        })
        .collect()
}

/// Handles one SQS event of re-checks and stack status change events: each tenant named is
/// reconciled once; failed ones are reported for redelivery.
pub async fn handle_rechecks(
    reconciler: &Reconciler,
    settings: &StreamSettings,
    event: &serde_json::Value,
) -> SqsBatchResponse {
    let mut tenants: BTreeMap<TenantKey, Vec<String>> = BTreeMap::new();
    for (index, message) in sqs_messages(event).into_iter().enumerate() {
        let id = message.message_id.clone().unwrap_or_default();
        let named = message
            .body
            .as_deref()
            .ok_or(UnknownMessage::NoBody)
            .and_then(|body| tenant_of_message(reconciler.settings(), body));
        match named {
            Ok(tenant) => tenants.entry(tenant).or_default().push(id),
            Err(e) => {
                warn!(index, message_id = %id, reason = %e, "names no tenant of ours; dropped")
            }
        }
    }

    let handled = fan_out(
        reconciler,
        Medium::Queue,
        settings.concurrency,
        tenants,
        |tenant| async move { reconciler.reconcile(&tenant).await },
    )
    .await;
    let failed = handled
        .into_iter()
        .filter(|handled| handled.redeliver)
        .map(|handled| handled.payload);

    let mut response = SqsBatchResponse::default();
    for id in failed.into_iter().flatten().filter(|id| !id.is_empty()) {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id;
        response.batch_item_failures.push(failure);
    }
    response
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn status_change(stack_id: &str) -> serde_json::Value {
        json!({
            "version": "0", "id": "e1", "detail-type": STACK_STATUS_CHANGE,
            "source": CLOUDFORMATION_SOURCE, "account": "111111111111",
            "time": "2026-11-23T10:04:12Z", "region": "eu-west-1", "resources": [stack_id],
            "detail": {"stack-id": stack_id,
                       "status-details": {"status": "UPDATE_COMPLETE", "status-reason": ""}}
        })
    }

    #[test]
    fn a_message_names_the_tenant_of_a_re_check_or_of_a_stack_event() {
        let settings = Settings::new("us-east-1");
        assert_eq!(
            tenant_of_message(&settings, r#"{"tenant_id":"gs1234"}"#),
            Ok(TenantKey::new("gs1234"))
        );
        let ours = status_change(
            "arn:aws:cloudformation:eu-west-1:111111111111:stack/tenant-acme-eu/0a1b2c3d",
        );
        assert_eq!(
            tenant_of_message(&settings, &ours.to_string()),
            Ok(TenantKey::new("acme-eu"))
        );
        // The prefix is the configured one, not a constant.
        let mut staging = Settings::new("us-east-1");
        staging.stack_name_prefix = "stg-".into();
        assert_eq!(
            tenant_of_message(&staging, &ours.to_string()),
            Err(UnknownMessage::ForeignStack("tenant-acme-eu".into()))
        );
    }

    #[test]
    fn a_message_that_names_no_tenant_of_ours_says_why() {
        let settings = Settings::new("us-east-1");
        let foreign =
            status_change("arn:aws:cloudformation:eu-west-1:111111111111:stack/billing-db/0a1b");
        assert_eq!(
            tenant_of_message(&settings, &foreign.to_string()),
            Err(UnknownMessage::ForeignStack("billing-db".into()))
        );
        // The prefix alone, or a tenant id no SPEC could have, is no tenant's stack.
        for name in ["tenant-", "tenant-Upper", "tenant-9lives"] {
            let event = status_change(&format!(
                "arn:aws:cloudformation:eu-west-1:111111111111:stack/{name}/0a1b"
            ));
            assert_eq!(
                tenant_of_message(&settings, &event.to_string()),
                Err(UnknownMessage::ForeignStack(name.into()))
            );
        }
        let mut other = status_change("arn:aws:cloudformation:eu-west-1:1:stack/tenant-abc/1");
        other["detail-type"] = json!("CloudFormation Resource Status Change");
        assert!(matches!(
            tenant_of_message(&settings, &other.to_string()),
            Err(UnknownMessage::OtherEvent { .. })
        ));
        let not_an_arn = status_change("tenant-abc");
        assert_eq!(
            tenant_of_message(&settings, &not_an_arn.to_string()),
            Err(UnknownMessage::NotAStackId("tenant-abc".into()))
        );
        let mut no_stack = status_change("x");
        no_stack["detail"] = json!({"status-details": {}});
        assert!(matches!(
            tenant_of_message(&settings, &no_stack.to_string()),
            Err(UnknownMessage::Undecodable(_))
        ));
        for garbage in ["", "not json", "42", "{}", r#"{"tenant_id": 7}"#] {
            assert!(
                matches!(
                    tenant_of_message(&settings, garbage),
                    Err(UnknownMessage::Undecodable(_))
                ),
                "{garbage}"
            );
        }
    }
}
