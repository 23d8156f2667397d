//! What a reconcile ends in, and what the trigger does next (kube's `Action`). The reconcile
//! never touches a queue: it returns an [`Outcome`], whose [`Action`] each trigger carries out
//! in its own medium (`triggers::fan_out`).

use std::time::Duration;

use model::status::Status;

use crate::ports::StoreError;

/// Where a reconcile left the tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing left to do; the tenant is in this recorded state (`None`: no tenant at all).
    Converged(Option<Status>),
    /// A stack operation is running: reconcile again after `requeue_after`.
    InFlight { requeue_after: Duration },
    /// Recorded `failed` with this reason; waits for a new write (or a due retry).
    Failed { reason: String },
    /// A failure that may heal, recorded on STATUS (`failed`, retryable). `retry_now`: the
    /// trigger should try again at once; else the next attempt is due after `after` (STATUS
    /// `next_attempt_at`).
    Retrying {
        reason: String,
        retry_now: bool,
        /// When the next attempt is due (zero for a quick retry).
        after: Duration,
    },
    /// Ended as `outcome`, but a lifecycle event could not be published: it waits in the
    /// row's outbox, and the tenant is looked at again after `retry_after` to publish it.
    Unpublished {
        outcome: Box<Outcome>,
        retry_after: Duration,
    },
}

/// What the trigger does next with the tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing until something changes (a new write, the next sweep).
    Done,
    /// A recorded failure's quick retry, due now (STATUS counts it, so it is bounded).
    RetryNow,
    /// Look again after this long: an operation in flight, or a retry that backs off.
    RequeueAfter(Duration),
    /// Nothing could be recorded: the medium's own redelivery retries it (the stream's batch
    /// item failure, the queue's receive, the next sweep), which the medium bounds.
    Redeliver,
}

impl Outcome {
    pub fn action(&self) -> Action {
        match self {
            Outcome::Converged(_) | Outcome::Failed { .. } => Action::Done,
            Outcome::InFlight { requeue_after } => Action::RequeueAfter(*requeue_after),
            Outcome::Retrying {
                retry_now: true, ..
            } => Action::RetryNow,
            Outcome::Retrying { after, .. } => Action::RequeueAfter(*after),
            Outcome::Unpublished { retry_after, .. } => Action::RequeueAfter(*retry_after),
        }
    }
}

/// Only errors that may heal leave `reconcile`; everything else ends on STATUS as `failed`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TransientError(pub String);

impl From<StoreError> for TransientError {
    fn from(e: StoreError) -> Self {
        Self(e.to_string())
    }
}

/// The one error policy: a reconcile that could not even record its failure is redelivered.
pub fn error_policy(_error: &TransientError) -> Action {
    Action::Redeliver
}

/// The action a reconcile's result asks for.
pub fn action_of(result: &Result<Outcome, TransientError>) -> Action {
    match result {
        Ok(outcome) => outcome.action(),
        Err(error) => error_policy(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_maps_to_the_action_its_trigger_carries_out() {
        let wait = Duration::from_secs(9);
        for (outcome, action) in [
            (Outcome::Converged(Some(Status::Ready)), Action::Done),
            (Outcome::Converged(None), Action::Done),
            (Outcome::Failed { reason: "x".into() }, Action::Done),
            (
                Outcome::InFlight {
                    requeue_after: wait,
                },
                Action::RequeueAfter(wait),
            ),
            (
                Outcome::Retrying {
                    reason: "x".into(),
                    retry_now: true,
                    after: Duration::ZERO,
                },
                Action::RetryNow,
            ),
            (
                Outcome::Retrying {
                    reason: "x".into(),
                    retry_now: false,
                    after: wait,
                },
                Action::RequeueAfter(wait),
            ),
            (
                Outcome::Unpublished {
                    outcome: Box::new(Outcome::Converged(Some(Status::Ready))),
                    retry_after: wait,
                },
                Action::RequeueAfter(wait),
            ),
        ] {
            assert_eq!(action_of(&Ok(outcome.clone())), action, "{outcome:?}");
        }
        assert_eq!(
            action_of(&Err(TransientError("table unavailable".into()))),
            Action::Redeliver
        );
    }
}
