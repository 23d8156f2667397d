//! The one reconcile loop: observe (SPEC, STATUS, stack), decide (pure), act, record.
//!
//! Every trigger (stream record, completion re-check, sweep, retry) only names a tenant and
//! calls [`Reconciler::reconcile`]; the truth is always re-read. Status writes are conditional on
//! the version read, so a decision made on stale data loses and is made again on fresh data.
//!
//! Like kube's controller contract, a reconcile never touches a queue: it returns an
//! [`Outcome`], whose [`Action`] the trigger carries out in its own medium
//! (`triggers::fan_out`). The parts: [`observe`] (reads), `act` (the stack call and the writes
//! around it), `failure` (failures that may heal, through `model::retry`), and the
//! [`StatusWriter`](crate::status_writer::StatusWriter) that makes every STATUS write.

mod act;
mod action;
mod failure;
mod observe;
mod revert;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{debug, info, warn};

use crate::ports::{LifecycleEvents, Recheck, StackDrift, Stacks, TemplateSource, TenantStore};
use crate::status_writer::StatusWriter;
use model::decide::{Decision, Observation, decide};
use model::next_status;
use model::retry::RetryPolicy;
use model::spec::{TenantKey, check_tenant_id};
use model::status::{Status, TenantStatus};

pub use act::client_request_token;
pub use action::{Action, Outcome, TransientError, action_of, error_policy};
pub use model::stack::MANAGED_BY;

use act::Step;
use failure::TransientFailure;

/// `assigned_by` of a tenant given the current version when it was first written.
pub const ASSIGNED_AT_CREATION: &str = "created";
/// `assigned_by` of a tenant whose STATUS was rebuilt with the version its stack's tag names.
pub const ASSIGNED_FROM_STACK_TAG: &str = "stack-tag";

/// How the reconcile loop behaves; defaults suit production.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The region of a tenant whose SPEC names none.
    pub default_region: String,
    pub stack_name_prefix: String,
    /// Stack operations tried for one SPEC before it stays `failed`; also the most failures
    /// that may heal tolerated in a row.
    pub max_attempts: u32,
    /// Of those, how many are retried at once by the trigger (Lambda's stream retry) before
    /// exponential backoff; keep it below the event source's MaximumRetryAttempts.
    pub quick_retries: u32,
    /// Observe-decide-act rounds in one reconcile (each act is followed by a fresh look).
    pub max_steps: u32,
    /// When an operation is in flight, look again after an eighth of the time it has run so far,
    /// between `requeue_min` and `requeue_after`: quick for short operations, bounded polling
    /// for long ones.
    pub requeue_min: Duration,
    pub requeue_after: Duration,
    /// An operation still in flight after this long is recorded `failed` (retryable).
    pub operation_timeout: Duration,
    /// Backoff for retryable failures after the quick ones: base * 2^(n-1), capped.
    pub retry_backoff_base: Duration,
    pub retry_backoff_max: Duration,
    /// The CloudFormation service role each tenant account's bootstrap creates: stacks are
    /// created and updated with it (RoleARN), so their resources are made with its permissions.
    pub deploy_role_name: String,
    /// What to do with a stack the drift job found drifted, unless its SPEC says
    /// (`drift_policy`): report only, or revert it.
    pub drift_policy: model::drift::DriftPolicy,
}

/// The bootstrap's default DeployRoleName.
pub const DEFAULT_DEPLOY_ROLE: &str = "TenantControlDeployRole";

impl Settings {
    pub fn new(default_region: impl Into<String>) -> Self {
        Self {
            default_region: default_region.into(),
            stack_name_prefix: "tenant-".into(),
            max_attempts: 5,
            quick_retries: 2,
            max_steps: 6,
            requeue_min: Duration::from_secs(2),
            // 9 s keeps the polling fallback alone within a 10 s p99 completion lag (BENCHMARKS.md).
            requeue_after: Duration::from_secs(9),
            operation_timeout: Duration::from_secs(3 * 3600),
            retry_backoff_base: Duration::from_secs(30),
            retry_backoff_max: Duration::from_secs(3600),
            deploy_role_name: DEFAULT_DEPLOY_ROLE.into(),
            drift_policy: model::drift::DriftPolicy::Report,
        }
    }

    /// The retry arithmetic these settings give (`model::retry`).
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts,
            quick_retries: self.quick_retries,
            backoff_base: self.retry_backoff_base,
            backoff_max: self.retry_backoff_max,
        }
    }

    pub fn stack_name(&self, tenant: &TenantKey) -> String {
        format!("{}{}", self.stack_name_prefix, tenant.as_str())
    }

    /// The tenant whose stack is named `stack_name` (the inverse of [`Self::stack_name`]);
    /// `None` for a stack the control plane would never make: another prefix, or no valid
    /// tenant id after it (a SPEC with such an id never gets a stack).
    pub fn tenant_of_stack(&self, stack_name: &str) -> Option<TenantKey> {
        stack_name
            .strip_prefix(self.stack_name_prefix.as_str())
            .filter(|id| check_tenant_id(id).is_ok())
            .map(TenantKey::new)
    }
}

pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

pub struct Reconciler {
    store: Arc<dyn TenantStore>,
    stacks: Arc<dyn Stacks>,
    /// Drift reverts (REVERT_DRIFT change sets); none: a tenant whose policy is `revert` is
    /// only reported.
    drift: Option<Arc<dyn StackDrift>>,
    templates: Arc<dyn TemplateSource>,
    /// Where the triggers send the looks an [`Action::RequeueAfter`] asks for (the completion
    /// loop); none: the caller follows up itself. The reconcile itself never uses it.
    recheck: Option<Arc<dyn Recheck>>,
    /// Where lifecycle events go (through the writer's outbox); none: no events are recorded.
    events: Option<Arc<dyn LifecycleEvents>>,
    settings: Settings,
    clock: Clock,
    writer: StatusWriter,
}

impl Reconciler {
    pub fn new(
        store: Arc<dyn TenantStore>,
        stacks: Arc<dyn Stacks>,
        templates: Arc<dyn TemplateSource>,
        settings: Settings,
    ) -> Self {
        let clock: Clock = Arc::new(Utc::now);
        Self {
            writer: StatusWriter::new(store.clone(), clock.clone()),
            store,
            stacks,
            drift: None,
            templates,
            recheck: None,
            events: None,
            settings,
            clock,
        }
    }

    fn rebuild_writer(&mut self) {
        self.writer = StatusWriter::new(self.store.clone(), self.clock.clone())
            .with_events(self.events.clone());
    }

    /// Publishes a lifecycle event for every transition (provisioned, updated, failed, deleted).
    pub fn with_events(mut self, events: Arc<dyn LifecycleEvents>) -> Self {
        self.events = Some(events);
        self.rebuild_writer();
        self
    }

    /// Reverts the drift of tenants whose drift policy is `revert`.
    pub fn with_drift(mut self, drift: Arc<dyn StackDrift>) -> Self {
        self.drift = Some(drift);
        self
    }

    /// Where the triggers follow every operation in flight to its end.
    pub fn with_recheck(mut self, recheck: Arc<dyn Recheck>) -> Self {
        self.recheck = Some(recheck);
        self
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self.rebuild_writer();
        self
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// Where [`Action::RequeueAfter`] goes, if anywhere.
    pub fn recheck(&self) -> Option<&Arc<dyn Recheck>> {
        self.recheck.as_ref()
    }

    /// The one writer of this reconciler's STATUS rows (its audit lines and outbox too).
    pub fn writer(&self) -> &StatusWriter {
        &self.writer
    }

    /// Brings one tenant one step closer to its SPEC, as far as it can go without waiting.
    /// A failure that may heal is recorded on STATUS (as `Outcome::Retrying`); only when even
    /// that write fails does an error come back ([`error_policy`]: the trigger redelivers).
    pub async fn reconcile(&self, key: &TenantKey) -> Result<Outcome, TransientError> {
        self.reconcile_noting(key, Vec::new()).await
    }

    /// As [`Self::reconcile`], with timeline lines the trigger brought (the SPEC write a stream
    /// record reports): they ride with the first STATUS write (one request), or are appended
    /// on their own when the reconcile writes none.
    pub async fn reconcile_noting(
        &self,
        key: &TenantKey,
        lines: Vec<model::audit::AuditEntry>,
    ) -> Result<Outcome, TransientError> {
        let lines = Arc::new(std::sync::Mutex::new(lines));
        // Some lifecycle event could not be published: the tenant is looked at again soon, to
        // publish it, even when nothing else is left to do (and when the converge then failed).
        let mut unpublished = false;
        let result = match self.converge(key, &mut unpublished, &lines).await {
            Ok(outcome) => Ok(self.publishing_later(outcome, unpublished)),
            Err(failure) => {
                warn!(error = %failure.error, "failure that may heal");
                match self.record_transient(key, &failure).await {
                    Ok(outcome) => Ok(self.publishing_later(outcome, unpublished)),
                    Err(e) => Err(e),
                }
            }
        };
        let left = lines
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default();
        for line in &left {
            self.writer.append_audit(key, line).await;
        }
        result
    }

    /// `outcome`, asking for a look again soon when an event is still to be published and
    /// nothing else would bring the tenant back.
    fn publishing_later(&self, outcome: Outcome, unpublished: bool) -> Outcome {
        match outcome {
            Outcome::Converged(_) | Outcome::Failed { .. } if unpublished => Outcome::Unpublished {
                outcome: Box::new(outcome),
                retry_after: self.settings.requeue_after,
            },
            outcome => outcome,
        }
    }

    /// How long to wait before looking again at an operation that started at `since`.
    fn recheck_delay(&self, status: Option<&TenantStatus>, now: DateTime<Utc>) -> Duration {
        let started = status.and_then(|s| model::time::parse(&s.updated_at));
        let elapsed = started
            .and_then(|t| (now - t).to_std().ok())
            .unwrap_or_default();
        (elapsed / 8).clamp(self.settings.requeue_min, self.settings.requeue_after)
    }

    async fn converge(
        &self,
        key: &TenantKey,
        unpublished: &mut bool,
        lines: &Arc<std::sync::Mutex<Vec<model::audit::AuditEntry>>>,
    ) -> Result<Outcome, TransientFailure> {
        let mut outbox_tried = false;
        let mut known = None;
        for _ in 0..self.settings.max_steps {
            let mut view = self
                .observe(key, known.take())
                .await
                .map_err(TransientFailure::before_any_call)?;
            view.lines = lines.clone();
            // Events a crash or a failed publish left behind go out first (once per reconcile).
            if !outbox_tried
                && let Some(status) = view
                    .snapshot
                    .status
                    .as_ref()
                    .filter(|s| !s.pending_events.is_empty())
            {
                outbox_tried = true;
                *unpublished |= self.writer.publish_pending(key, status).await.unpublished;
                continue;
            }
            let now = self.now();
            let decision = decide(&Observation {
                tenant_id: key.as_str(),
                desired: &view.desired,
                status: view.snapshot.status.as_ref(),
                stack: view.stack.as_ref(),
                stack_location: view.location.as_ref(),
                now,
                max_attempts: self.settings.max_attempts,
                operation_timeout: self.settings.operation_timeout,
            });
            // Without a drift adapter a `revert` policy can only be reported.
            let decision = match decision {
                Decision::RevertDrift if self.drift.is_none() => Decision::Nothing,
                decision => decision,
            };
            debug!(?decision, stack_status = ?view.stack.as_ref().map(|s| s.status.as_str()), "decided");
            let recorded = match decision {
                Decision::Nothing => Ok(Outcome::Converged(
                    view.snapshot.status.as_ref().map(|s| s.status),
                )),
                Decision::Wait => {
                    return Ok(Outcome::InFlight {
                        requeue_after: self.recheck_delay(view.snapshot.status.as_ref(), now),
                    });
                }
                Decision::Fail { reason, retryable } => {
                    let status = next_status::failed(&view.seen(now), reason.clone(), retryable);
                    self.record_read(&view, status)
                        .await
                        .map(|()| Outcome::Failed { reason })
                }
                Decision::Finalize(terminal) => {
                    let status = self.finalized(&view, &terminal, now).await;
                    let outcome = match status.status {
                        Status::Failed => Outcome::Failed {
                            reason: status.reason.clone().unwrap_or_default(),
                        },
                        other => Outcome::Converged(Some(other)),
                    };
                    self.record_read(&view, status).await.map(|()| outcome)
                }
                // After an act, look again: it may be done already, or the next step due.
                operation => Err(self.start(&view, &operation, now).await),
            };
            *unpublished |= view.unpublished.load(Ordering::Relaxed);
            return match recorded {
                Ok(outcome) => {
                    info!(?outcome, "recorded");
                    Ok(outcome)
                }
                Err(Step::Again) => continue,
                Err(Step::Started(snapshot)) => {
                    known = Some(*snapshot);
                    continue;
                }
                Err(Step::Transient(failure)) => Err(failure),
                Err(Step::Rejected(outcome) | Step::Done(outcome)) => Ok(outcome),
            };
        }
        // Every round lost to a concurrent write or needed another act: let the trigger retry
        // (bounded by its own retries) rather than loop here.
        Err(TransientFailure::before_any_call(TransientError(format!(
            "no decision held after {} rounds (STATUS kept changing)",
            self.settings.max_steps
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stack_name_maps_back_to_its_tenant() {
        let settings = Settings::new("us-east-1");
        let tenant = TenantKey::new("gs1234");
        assert_eq!(
            settings.tenant_of_stack(&settings.stack_name(&tenant)),
            Some(tenant)
        );
        for foreign in [
            "gs1234",
            "tenant-",
            "tenant-GS1234",
            "tenant-x",
            "other-gs1234",
        ] {
            assert_eq!(settings.tenant_of_stack(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn the_settings_give_the_retry_policy_they_name() {
        let settings = Settings::new("us-east-1");
        let policy = settings.retry_policy();
        assert_eq!(policy.max_attempts, settings.max_attempts);
        assert_eq!(policy.quick_retries, settings.quick_retries);
        assert_eq!(policy.backoff_base, settings.retry_backoff_base);
        assert_eq!(policy.backoff_max, settings.retry_backoff_max);
    }
}
