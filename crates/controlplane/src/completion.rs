//! The completion loop's consumer: each re-check message names a tenant whose operation was in
//! flight; reconciling it records the end (or schedules the next look). Messages are triggers,
//! not truth: duplicates are harmless, and a message that does not decode is dropped with a log
//! (it cannot heal; the reconciler's schedule is the fallback).

use std::collections::BTreeMap;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsMessage};
use futures::StreamExt;
use tracing::{Instrument, info, info_span, warn};

use crate::aws::sqs::Recheck;
use crate::reconcile::{Outcome, Reconciler};
use crate::spec::TenantKey;
use crate::stream::StreamSettings;

/// Handles one SQS event of re-check messages; failed ones are reported for redelivery.
pub async fn handle_rechecks(
    reconciler: &Reconciler,
    settings: &StreamSettings,
    event: &serde_json::Value,
) -> SqsBatchResponse {
    let mut tenants: BTreeMap<TenantKey, Vec<String>> = BTreeMap::new();
    let records = event
        .get("Records")
        .and_then(serde_json::Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (index, raw) in records.iter().enumerate() {
        let message: SqsMessage = match serde_json::from_value(raw.clone()) {
            Ok(message) => message,
            Err(e) => {
                warn!(index, error = %e, "not an SQS message; dropped");
                continue;
            }
        };
        let id = message.message_id.clone().unwrap_or_default();
        match message.body.as_deref().map(serde_json::from_str::<Recheck>) {
            Some(Ok(recheck)) => tenants
                .entry(TenantKey::new(recheck.tenant_id))
                .or_default()
                .push(id),
            other => {
                warn!(index, message_id = %id, body = ?other.map(|r| r.err()), "not a re-check message; dropped")
            }
        }
    }

    let failed = futures::stream::iter(tenants)
        .map(|(tenant, message_ids)| {
            let span = info_span!("tenant", tenant_id = %tenant);
            async move {
                let result = reconciler.reconcile(&tenant).await;
                info!(outcome = ?result, "re-checked");
                match result {
                    // A quick retry through the queue itself: a redelivered message would only
                    // come back after the visibility timeout.
                    Ok(Outcome::Retrying {
                        retry_now: true, ..
                    }) => match reconciler
                        .schedule_recheck(&tenant, reconciler.settings().requeue_min)
                        .await
                    {
                        Ok(()) => Vec::new(),
                        Err(_) => message_ids,
                    },
                    Err(_) => message_ids,
                    Ok(_) => Vec::new(),
                }
            }
            .instrument(span)
        })
        .buffer_unordered(settings.concurrency.max(1))
        .collect::<Vec<_>>()
        .await;

    let mut response = SqsBatchResponse::default();
    for id in failed.into_iter().flatten().filter(|id| !id.is_empty()) {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id;
        response.batch_item_failures.push(failure);
    }
    response
}
