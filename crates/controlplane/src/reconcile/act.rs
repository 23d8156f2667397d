//! Act: write the intent (so the stack can always be found again), call CloudFormation, and
//! record what came of it. Every write goes through the status writer, conditional on the
//! version this look read (or this reconcile just wrote).

use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use model::decide::{Decision, Desired, Terminal};
use model::next_status;
use model::spec::SpecRow;
use model::stack::{TAG_MANAGED_BY, TAG_SPEC_FINGERPRINT, TAG_TEMPLATE_VERSION, TAG_TENANT_ID};
use model::status::{Operation, Status, TenantStatus};
use tracing::{debug, info, warn};

use super::failure::TransientFailure;
use super::observe::View;
use super::{
    ASSIGNED_AT_CREATION, ASSIGNED_FROM_STACK_TAG, MANAGED_BY, Outcome, Reconciler, TransientError,
};
use crate::ports::{
    Healing, Snapshot, StackError, StackRequest, StoreError, TemplateLocation, UpdateStarted,
};
use crate::status_writer::{Change, Over, Written};

/// How a step that did not finish the reconcile ends.
pub(super) enum Step {
    /// Look again and decide anew (a write lost to a newer one, or the table is not known).
    Again,
    /// A stack operation was started: look again at the stack, the table being as given.
    Started(Box<Snapshot>),
    Transient(TransientFailure),
    /// CloudFormation refused for good; already recorded as failed.
    Rejected(Outcome),
    /// Finished without waiting for the stack; already recorded.
    Done(Outcome),
}

impl Reconciler {
    /// Writes the intent (so the stack can always be found again), then calls CloudFormation.
    pub(super) async fn start(&self, view: &View, decision: &Decision, now: DateTime<Utc>) -> Step {
        let (Some(operation), Some(target)) = (decision.operation(), view.target()) else {
            return Step::Again;
        };
        if operation == Operation::RevertDrift {
            return self.revert_drift(view, &target, now).await;
        }
        let previous = view.snapshot.status.as_ref();
        let fingerprint = view.fingerprint().map(str::to_owned);
        let same = previous.and_then(|s| s.spec_fingerprint.as_deref()) == fingerprint.as_deref();
        let mut intent = next_status::carried(view.key.as_str(), previous, now);
        intent.status = match (&view.desired, operation) {
            // Deleting a failed create or a change-set stack is a step towards a new stack.
            (Desired::Present(_), Operation::Create | Operation::Delete) => Status::Creating,
            (Desired::Present(_), _) => Status::Updating,
            _ => Status::Deleting,
        };
        intent.operation = Some(operation);
        intent.attempts = if same {
            previous.map_or(0, |s| s.attempts).saturating_add(1)
        } else {
            1
        };
        if !same {
            intent.retries = 0;
        }
        intent.spec_fingerprint = match (operation, previous) {
            // Continuing a rollback finishes the failed update's story, not this SPEC's: keep its
            // fingerprint, so a SPEC written meanwhile is still applied afterwards.
            (Operation::ContinueUpdateRollback, Some(previous))
                if previous.spec_fingerprint.is_some() =>
            {
                previous.spec_fingerprint.clone()
            }
            _ => fingerprint.clone(),
        };
        intent.location = Some(target.location.clone());
        if let Desired::Present(d) = &view.desired {
            intent.template_version = Some(d.template_version.clone());
        }
        if let Some(stack) = &view.stack {
            intent.stack_id = Some(stack.stack_id.clone());
            intent.stack_status = Some(stack.status.clone());
        }
        let written = match self.record(view, intent, Over::read(&view.snapshot)).await {
            Ok(written) => written,
            Err(step) => return step,
        };
        let intent = &written.status;

        let token = client_request_token(
            operation,
            fingerprint.as_deref().unwrap_or("x"),
            intent.version,
        );
        info!(
            ?operation,
            stack = %target.location.stack_name,
            account = %target.location.account_id,
            region = %target.location.region,
            "starting stack operation"
        );
        let mut no_changes = false;
        let result = match (operation, &view.desired) {
            (Operation::Create | Operation::Update, Desired::Present(d)) => {
                match self.stack_request(view, &target, d, token) {
                    Err(e) => Err(e),
                    Ok(request) if operation == Operation::Create => {
                        self.stacks.create(&target, &request).await
                    }
                    Ok(request) => self.stacks.update(&target, &request).await.map(|started| {
                        if started == UpdateStarted::NoChanges {
                            debug!("no updates are to be performed");
                            no_changes = true;
                        }
                    }),
                }
            }
            (Operation::Delete, _) => self.stacks.delete(&target, &token).await,
            (Operation::ContinueUpdateRollback, _) => {
                self.stacks.continue_update_rollback(&target, &token).await
            }
            // Create and update are only decided for a present SPEC (a revert is not here).
            _ => Ok(()),
        };
        // The next write goes over the intent, as stored now; it is not a transition from the
        // intent (a call that changed nothing or was refused took no operation's time).
        let intent_now = written.over();
        let over = Over {
            status: None,
            version: intent_now.version,
        };
        match result {
            // The stack already runs this SPEC and its status will not move (it may still show
            // an earlier failed update's UPDATE_ROLLBACK_COMPLETE): ready now, or a look again
            // would take that old failure for this update's.
            Ok(()) if no_changes => {
                let mut ready = self.finalized(view, &Terminal::Ready, now).await;
                ready.operation = intent.operation;
                let state = ready.status;
                match self.record(view, ready, over).await {
                    Ok(_) => Step::Done(Outcome::Converged(Some(state))),
                    Err(step) => step,
                }
            }
            // The table is as this reconcile just wrote it (conditionally): the next look reads
            // only the stack.
            Ok(()) | Err(StackError::AlreadyExists) => match &written.outbox.current {
                Some(status) => Step::Started(Box::new(Snapshot {
                    spec: view.snapshot.spec.clone(),
                    status_version: Some(status.version),
                    status: Some(status.clone()),
                })),
                None => Step::Again,
            },
            Err(e) if e.healing() == Healing::Transient => Step::Transient(TransientFailure {
                error: TransientError(format!(
                    "{} of stack {}: {e}",
                    operation.as_str(),
                    target.location.stack_name
                )),
                after_intent: true,
            }),
            Err(e) => {
                let reason = format!("CloudFormation rejected the {}: {e}", operation.as_str());
                warn!(%reason, "stack operation rejected");
                // From the intent as stored now: its outbox is already published.
                let mut failed = intent_now.status.cloned().unwrap_or_else(|| intent.clone());
                failed.status = Status::Failed;
                failed.reason = Some(reason.clone());
                match self.record(view, failed, over).await {
                    Ok(_) => Step::Rejected(Outcome::Failed { reason }),
                    Err(step) => step,
                }
            }
        }
    }

    /// The create, update or revert request for the stack `d` asks for: the template in the
    /// stack's region, the account's deploy role, the tags that mark it the control plane's.
    pub(super) fn stack_request(
        &self,
        view: &View,
        target: &crate::ports::StackTarget,
        d: &model::decide::DesiredStack,
        token: String,
    ) -> Result<StackRequest, StackError> {
        let template = match view.template.as_ref() {
            // No copy of the version in the stack's region: a deployment setting only the
            // operator can change.
            Some(template) => template
                .location(&target.location.region)
                .map_err(StackError::Rejected)?,
            None => TemplateLocation::Body(String::new()),
        };
        Ok(StackRequest {
            template,
            role_arn: Some(crate::aws::sts::role_arn(
                crate::aws::sts::partition(&target.location.region),
                &target.location.account_id,
                &self.settings.deploy_role_name,
            )),
            auto_expand: view
                .template
                .as_ref()
                .is_some_and(|t| t.expands_transforms()),
            parameters: d.parameters.clone(),
            tags: vec![
                (TAG_TENANT_ID.into(), view.key.as_str().to_owned()),
                (TAG_MANAGED_BY.into(), MANAGED_BY.into()),
                (TAG_TEMPLATE_VERSION.into(), d.template_version.clone()),
                (TAG_SPEC_FINGERPRINT.into(), d.fingerprint.clone()),
            ],
            client_request_token: token,
        })
    }

    /// The end of an operation, with the stack events' own words for a failure.
    pub(super) async fn finalized(
        &self,
        view: &View,
        terminal: &Terminal,
        now: DateTime<Utc>,
    ) -> TenantStatus {
        let cause = match (terminal, view.target()) {
            (Terminal::FailedFromStack { .. }, Some(target)) => {
                self.stacks.failure_reason(&target).await.ok().flatten()
            }
            _ => None,
        };
        let mut status = next_status::finalized(&view.seen(now), terminal, cause);
        // A drift revert that rolled back: the tenant is ready (its stack is as it was), and
        // the revert's record says why it failed.
        let reverting = view.snapshot.status.as_ref().is_some_and(|p| {
            p.status == Status::Updating && p.operation == Some(Operation::RevertDrift)
        });
        let rolled_back = view
            .stack
            .as_ref()
            .is_some_and(|s| s.status == model::stack::StackStatus::UpdateRollbackComplete);
        if *terminal == Terminal::Ready
            && reverting
            && rolled_back
            && let (Some(drift), Some(target)) = (status.drift.as_ref(), view.target())
        {
            let why = self
                .stacks
                .failure_reason(&target)
                .await
                .ok()
                .flatten()
                .unwrap_or_else(|| "CloudFormation gave no reason".into());
            status.drift = Some(model::drift::revert_failed(
                drift,
                &format!("the revert failed and was rolled back: {why}"),
            ));
        }
        status
    }

    /// Writes STATUS over the version this view read.
    pub(super) async fn record_read(&self, view: &View, status: TenantStatus) -> Result<(), Step> {
        self.record(view, status, Over::read(&view.snapshot))
            .await
            .map(|_| ())
    }

    /// Writes `status` over `over` (conditionally), as a transition of the tenant.
    pub(super) async fn record(
        &self,
        view: &View,
        mut status: TenantStatus,
        over: Over<'_>,
    ) -> Result<Written, Step> {
        // A tenant's first write fixes the version the fleet gives it; from then on only a
        // rollout moves it, never the passing of time. Assigned from the fleet's current
        // version, the write holds only while that is still current.
        let mut current_guard = None;
        if status.assigned_version.is_none()
            && !matches!(view.desired, Desired::Absent)
            && let Some(assigned) = &view.versions.assigned_version
        {
            status.assigned_version = Some(assigned.clone());
            if !view.versions.from_stack_tag {
                current_guard = view.versions.current_guard.clone();
            }
            status.assigned_by = Some(
                if view.versions.from_stack_tag {
                    ASSIGNED_FROM_STACK_TAG
                } else {
                    ASSIGNED_AT_CREATION
                }
                .into(),
            );
        }
        let requested_by = view
            .snapshot
            .spec
            .as_ref()
            .and_then(|spec| SpecRow(spec).updated_by());
        let lines = view
            .lines
            .lock()
            .map(|lines| lines.clone())
            .unwrap_or_default();
        match self
            .writer
            .write_noting(
                &view.key,
                over,
                status,
                Change::Transition { requested_by },
                lines,
                current_guard.clone(),
            )
            .await
        {
            Ok(written) => {
                // Written with this STATUS: not again.
                if let Ok(mut lines) = view.lines.lock() {
                    lines.clear();
                }
                if written.outbox.unpublished {
                    view.unpublished.store(true, Ordering::Relaxed);
                }
                Ok(written)
            }
            Err(StoreError::Conflict) => {
                if current_guard.is_some() {
                    // Perhaps the fleet's current version moved: read it afresh.
                    self.templates.forget_current();
                }
                debug!("status changed concurrently; deciding again");
                Err(Step::Again)
            }
            Err(e) => Err(Step::Transient(TransientFailure::before_any_call(e.into()))),
        }
    }
}

/// One token per recorded intent: the SDK's retries of that call are idempotent, and no two
/// intents (even for the same SPEC after a revert) share a token.
pub fn client_request_token(
    operation: Operation,
    fingerprint: &str,
    intent_version: u64,
) -> String {
    let short = fingerprint.get(..16).unwrap_or(fingerprint);
    format!("{}-{short}-{intent_version}", operation.as_str())
}
