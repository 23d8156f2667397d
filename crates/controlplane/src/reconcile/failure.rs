//! Failures that may heal: recorded on STATUS (`failed`, retryable, with the reason and when to
//! try again), never over newer state nor over a permanent failure of the same SPEC. When the
//! next attempt is due is `model::retry`'s arithmetic; the trigger carries it out.

use model::decide::{Desired, REMOVED_FINGERPRINT};
use model::next_status;
use model::retry::Retry;
use model::spec::{SpecRow, TenantKey};
use model::status::Status;
use model::time::rfc3339;
use tracing::info;

use super::{Action, Outcome, Reconciler, TransientError};
use crate::ports::{Snapshot, StoreError};
use crate::status_writer::{Change, Over, Written};

/// A failure that may heal, and whether it came after the intent of an operation was recorded
/// (then that operation was never accepted and must not count as an attempt).
#[derive(Debug)]
pub(super) struct TransientFailure {
    pub(super) error: TransientError,
    pub(super) after_intent: bool,
}

impl TransientFailure {
    pub(super) fn before_any_call(error: TransientError) -> Self {
        Self {
            error,
            after_intent: false,
        }
    }
}

impl Reconciler {
    /// Records a failure that may heal on STATUS: `failed`, retryable, with the reason and when
    /// to try again (the retry policy's: at once, after a backoff, or, past `max_attempts` in a
    /// row, never by itself). Never overwrites newer state (conditional write), nor a permanent
    /// failure of this same SPEC.
    pub(super) async fn record_transient(
        &self,
        key: &TenantKey,
        failure: &TransientFailure,
    ) -> Result<Outcome, TransientError> {
        let policy = self.settings.retry_policy();
        // The version this failure records may become the tenant's (a row with no assignment
        // falls back on it): read the fleet's current one afresh, not from the warm cache
        // (this write carries no guard).
        self.templates.forget_current();
        for _ in 0..self.settings.max_steps {
            let snapshot = self.store.load(key).await?;
            let now = self.now();
            let mut failed_version = None;
            let desired = match &snapshot.spec {
                None => Some(REMOVED_FINGERPRINT.to_owned()),
                Some(_) => match self.desire(key, &snapshot, None).await {
                    Ok((desired, _, versions)) => {
                        failed_version = versions.template_version;
                        match desired {
                            Desired::Present(d) => Some(d.fingerprint),
                            _ => None,
                        }
                    }
                    Err(_) => None,
                },
            };
            let previous = snapshot.status.as_ref();
            let same = previous.and_then(|s| s.spec_fingerprint.clone()) == desired;
            if let Some(kept) =
                previous.filter(|s| same && s.status == Status::Failed && !s.retryable)
            {
                info!("keeping the recorded permanent failure of this SPEC");
                return Ok(Outcome::Failed {
                    reason: kept.reason.clone().unwrap_or_default(),
                });
            }
            // A look that failed while an operation of ours runs must not erase it: the
            // operation (and its start) stay recorded, with the reason and the next look.
            let in_flight =
                !failure.after_intent && previous.is_some_and(|s| s.status.is_in_flight());
            // Every attempt counts: a failure of the same SPEC, or of a look at the operation
            // still recorded (whatever the SPEC now says: a delete written meanwhile does not
            // start the count again).
            let retries = if same || in_flight {
                previous.map_or(0, |s| s.retries).saturating_add(1)
            } else {
                1
            };
            let removed = desired.as_deref() == Some(REMOVED_FINGERPRINT);
            let retry = policy.after_failure(retries, removed);
            // Past the bound a SPEC's failure is recorded for good (a `retry` bump runs it
            // again), and the operation no look could follow with it.
            let in_flight = in_flight && retry != Retry::GiveUp;
            let mut status = match (previous, in_flight) {
                (Some(previous), true) => previous.clone(),
                _ => {
                    let mut status = next_status::carried(key.as_str(), previous, now);
                    status.status = Status::Failed;
                    status
                }
            };
            status.retries = retries;
            if failure.after_intent {
                // The operation was never accepted: it does not count as an attempt.
                status.attempts = status.attempts.saturating_sub(1);
            }
            if desired.is_some() && !in_flight {
                status.spec_fingerprint = desired;
            }
            // The version it failed to reach, even before any stack call (a rollout tells its
            // failures by it).
            if let (Some(version), false) = (failed_version, in_flight) {
                status.template_version = Some(version);
            }
            let (outcome, reason) = match retry {
                Retry::GiveUp => {
                    status.retryable = false;
                    let reason = format!(
                        "gave up after {retries} failures that should have healed: {}; \
                         bump `retry` to try again",
                        failure.error
                    );
                    (
                        Outcome::Failed {
                            reason: reason.clone(),
                        },
                        reason,
                    )
                }
                Retry::Now | Retry::After(_) => {
                    let wait = match retry {
                        Retry::After(wait) => wait,
                        _ => std::time::Duration::ZERO,
                    };
                    let next = rfc3339(now + chrono::Duration::from_std(wait).unwrap_or_default());
                    status.retryable = true;
                    let reason = format!("{}; will retry after {next}", failure.error);
                    status.next_attempt_at = Some(next);
                    (
                        Outcome::Retrying {
                            reason: reason.clone(),
                            retry_now: retry == Retry::Now,
                            after: wait,
                        },
                        reason,
                    )
                }
            };
            status.reason = Some(reason);
            match self.write_transition(key, &snapshot, status).await {
                Ok(written) if written.outbox.unpublished && outcome.action() == Action::Done => {
                    return Ok(Outcome::Unpublished {
                        outcome: Box::new(outcome),
                        retry_after: self.settings.requeue_after,
                    });
                }
                Ok(_) => return Ok(outcome),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(TransientError(
            "STATUS kept changing while recording a failure".into(),
        ))
    }

    /// After a reconcile of a tenant whose stream records Lambda gave up on (`records`
    /// describes them): if it still cannot be processed, STATUS says so. A reconcile that could
    /// not even record its failure is recorded now (`failed`, retryable); one that recorded a
    /// failure that may heal gets that reason prefixed. Conditional: never over newer state.
    pub async fn record_exhausted(
        &self,
        key: &TenantKey,
        records: &str,
        reconciled: Result<Outcome, TransientError>,
    ) -> Result<Outcome, TransientError> {
        let exhausted = format!("its stream records ({records}) exhausted the trigger's retries");
        match reconciled {
            Err(error) => {
                let failure = TransientFailure::before_any_call(TransientError(format!(
                    "{exhausted} and it still cannot be processed: {error}"
                )));
                self.record_transient(key, &failure).await
            }
            Ok(Outcome::Retrying { .. }) => {
                let outcome = reconciled;
                let snapshot = self.store.load(key).await?;
                let Some(previous) = snapshot.status.as_ref().filter(|s| s.retryable) else {
                    return outcome;
                };
                let mut status = previous.clone();
                status.reason = Some(format!(
                    "{exhausted}; still failing: {}",
                    previous.reason.as_deref().unwrap_or("no reason recorded")
                ));
                match self.write_transition(key, &snapshot, status).await {
                    // A newer state was written meanwhile: it says more than this note would.
                    Ok(_) | Err(StoreError::Conflict) => outcome,
                    Err(e) => Err(e.into()),
                }
            }
            other => other,
        }
    }

    /// Writes `status` over the STATUS `snapshot` read, as a transition the SPEC's writer asked
    /// for.
    async fn write_transition(
        &self,
        key: &TenantKey,
        snapshot: &Snapshot,
        status: model::status::TenantStatus,
    ) -> Result<Written, StoreError> {
        let requested_by = snapshot
            .spec
            .as_ref()
            .and_then(|spec| SpecRow(spec).updated_by());
        self.writer
            .write(
                key,
                Over::read(snapshot),
                status,
                Change::Transition { requested_by },
            )
            .await
    }
}
