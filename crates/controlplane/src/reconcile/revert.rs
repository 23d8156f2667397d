//! Reverting drift: decided by `decide` (`RevertDrift`, once per detection, under the tenant's
//! `revert` policy) and carried out here. The drift-aware change set is made and computed
//! *before* any intent is written (that changes no stack, and may take minutes), so STATUS
//! says `updating` only once the stack really is: from ExecuteChangeSet on, the completion
//! loop follows it like any update. Whatever does not get that far (nothing to revert, a
//! change set refused or not computed, an execute refused) leaves the tenant `ready`, and the
//! drift record says what happened; the next detection may try again.

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::act::{Step, client_request_token};
use super::observe::View;
use super::{Outcome, Reconciler};
use crate::ports::{RevertPlan, Snapshot, StackTarget, StoreError};
use crate::status_writer::{Change, Over};
use model::audit::{AuditAction, AuditEntry, SYSTEM_ACTOR};
use model::decide::Desired;
use model::drift::{DriftRecord, RevertOutcome, reverted};
use model::next_status;
use model::status::{Operation, Status};
use model::time::rfc3339;

impl Reconciler {
    pub(super) async fn revert_drift(
        &self,
        view: &View,
        target: &StackTarget,
        now: DateTime<Utc>,
    ) -> Step {
        let (Desired::Present(desired), Some(previous), Some(port)) = (
            &view.desired,
            view.snapshot.status.as_ref(),
            self.drift.as_ref(),
        ) else {
            return Step::Again;
        };
        let Some(drift) = previous.drift.as_ref() else {
            return Step::Again;
        };
        // The token of the intent this revert writes (the version after the one read), so a
        // retried revert of the same intent finds its change set made.
        let intent_version = next_status::next_version(view.snapshot.status_version);
        let token =
            client_request_token(Operation::RevertDrift, &desired.fingerprint, intent_version);
        let plan = match self.stack_request(view, target, desired, token.clone()) {
            Ok(request) => port.prepare_revert(target, &request).await,
            Err(e) => Err(e),
        };
        let (change_set, not_reverted) = match plan {
            Ok(RevertPlan::Ready {
                change_set,
                not_reverted,
            }) => (change_set, not_reverted),
            Ok(RevertPlan::NothingToRevert) => {
                info!("the drift-aware change set had nothing to revert");
                let record = reverted(drift, now, Vec::new(), RevertOutcome::NothingToRevert);
                return self.note_revert(view, record, "nothing to revert").await;
            }
            Err(e) => {
                let reason = format!("the drift-aware change set was not made: {e}");
                warn!(%reason, "drift not reverted");
                let record = reverted(drift, now, Vec::new(), RevertOutcome::Failed(reason));
                return self.note_revert(view, record, "not reverted").await;
            }
        };

        let mut intent = next_status::carried(view.key.as_str(), Some(previous), now);
        intent.status = Status::Updating;
        intent.operation = Some(Operation::RevertDrift);
        // Not another try at this SPEC: a revert never uses up its attempts.
        intent.drift = Some(reverted(drift, now, not_reverted, RevertOutcome::Started));
        if let Some(stack) = &view.stack {
            intent.stack_status = Some(stack.status.clone());
        }
        let written = match self.record(view, intent, Over::read(&view.snapshot)).await {
            Ok(written) => written,
            Err(step) => {
                port.discard_revert(target, &change_set).await;
                return step;
            }
        };
        info!(%change_set, stack = %target.location.stack_name, "reverting drift");
        match port.execute_revert(target, &change_set, &token).await {
            Ok(()) => match &written.outbox.current {
                Some(status) => Step::Started(Box::new(Snapshot {
                    spec: view.snapshot.spec.clone(),
                    status_version: Some(status.version),
                    status: Some(status.clone()),
                })),
                None => Step::Again,
            },
            // The stack did not move: ready again, the revert's record saying why.
            Err(e) => {
                let reason = format!("CloudFormation did not execute the drift revert: {e}");
                warn!(%reason, "drift not reverted");
                port.discard_revert(target, &change_set).await;
                let stored = written.over();
                let mut back = stored.status.cloned().unwrap_or(written.status.clone());
                back.status = Status::Ready;
                back.operation = previous.operation;
                back.stack_status = previous.stack_status.clone();
                back.drift = back
                    .drift
                    .as_ref()
                    .map(|d| model::drift::revert_failed(d, &reason));
                let over = Over {
                    status: None,
                    version: stored.version,
                };
                match self.record(view, back, over).await {
                    Ok(_) => Step::Done(Outcome::Converged(Some(Status::Ready))),
                    Err(step) => step,
                }
            }
        }
    }

    /// Records a revert that changed no stack: the tenant stays as it is, ready.
    async fn note_revert(&self, view: &View, record: DriftRecord, result: &str) -> Step {
        let Some(previous) = view.snapshot.status.as_ref() else {
            return Step::Again;
        };
        let now = self.now();
        let mut next = next_status::carried(view.key.as_str(), Some(previous), now);
        let reason = record
            .revert
            .as_ref()
            .and_then(|r| r.failed.clone())
            .unwrap_or_else(|| record.summary());
        next.drift = Some(record);
        let entry = AuditEntry {
            at: rfc3339(now),
            id: format!(
                "revert-drift-{}",
                next_status::next_version(view.snapshot.status_version)
            ),
            action: AuditAction::Operation(Operation::RevertDrift),
            actor: SYSTEM_ACTOR.into(),
            requested_by: None,
            result: result.into(),
            reason: Some(reason),
        };
        match self
            .writer()
            .write(
                &view.key,
                Over::read(&view.snapshot),
                next,
                Change::Note {
                    entry: Some(Box::new(entry)),
                    event: None,
                },
            )
            .await
        {
            Ok(_) => Step::Done(Outcome::Converged(Some(Status::Ready))),
            Err(StoreError::Conflict) => Step::Again,
            Err(e) => Step::Transient(super::failure::TransientFailure::before_any_call(e.into())),
        }
    }
}
