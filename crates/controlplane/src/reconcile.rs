//! The one reconcile loop: observe (SPEC, STATUS, stack), decide (pure), act, record.
//!
//! Every trigger (stream record, completion re-check, reconciler, retry) only names a tenant and
//! calls [`Reconciler::reconcile`]; the truth is always re-read. Status writes are conditional on
//! the version read, so a decision made on stale data loses and is made again on fresh data.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use tracing::{debug, info, warn};

use crate::ports::{
    Healing, LifecycleEvents, Requeue, Snapshot, StackError, StackRequest, StackTarget, Stacks,
    StoreError, TemplateSource, TemplateSourceError, TenantStore, UpdateStarted,
};
use crate::validation::{Validation, validate};
use model::audit;
use model::decide::{Decision, Desired, Observation, REMOVED_FINGERPRINT, Terminal, decide};
use model::spec::{TenantKey, check_tenant_id, describe_errors};
use model::stack::{
    ObservedStack, TAG_MANAGED_BY, TAG_SPEC_FINGERPRINT, TAG_TEMPLATE_VERSION, TAG_TENANT_ID,
};
use model::status::{
    DecommissionNotice, LifecycleEvent, Operation, StackLocation, Status, TenantStatus,
};
use model::template::Template;

pub use model::stack::MANAGED_BY;

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
}

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
    /// trigger should try again at once (the stream reports the record back to Lambda); else
    /// the next attempt is due at STATUS `next_attempt_at`.
    Retrying {
        reason: String,
        retry_now: bool,
        /// When the next attempt is due (zero for a quick retry).
        after: Duration,
    },
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

/// A failure that may heal, and whether it came after the intent of an operation was recorded
/// (then that operation was never accepted and must not count as an attempt).
#[derive(Debug)]
struct TransientFailure {
    error: TransientError,
    after_intent: bool,
}

impl TransientFailure {
    fn before_any_call(error: TransientError) -> Self {
        Self {
            error,
            after_intent: false,
        }
    }
}

/// The version after `current`; saturates rather than overflow on a hand-edited row.
fn next_version(current: Option<u64>) -> u64 {
    current.map_or(1, |v| v.saturating_add(1))
}

pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

pub struct Reconciler {
    store: Arc<dyn TenantStore>,
    stacks: Arc<dyn Stacks>,
    templates: Arc<dyn TemplateSource>,
    /// Where re-checks of operations in flight go (the completion loop); none: the caller
    /// follows up itself.
    requeue: Option<Arc<dyn Requeue>>,
    /// Where lifecycle events go; none: no events are recorded.
    events: Option<Arc<dyn LifecycleEvents>>,
    settings: Settings,
    clock: Clock,
}

#[derive(Clone, Debug, Default)]
struct Versions {
    template_version: Option<String>,
    assigned_version: Option<String>,
    /// The assigned version was read from the stack's tag (no STATUS recorded one).
    from_stack_tag: bool,
}

/// One look at a tenant.
struct View {
    key: TenantKey,
    snapshot: Snapshot,
    desired: Desired,
    template: Option<Arc<Template>>,
    /// The template version the SPEC resolves to, even when it is invalid (then: its pin, else
    /// the assigned one), and the version the fleet assigns the tenant.
    versions: Versions,
    stack: Option<ObservedStack>,
    location: Option<StackLocation>,
}

impl View {
    fn target(&self) -> Option<StackTarget> {
        self.location.clone().map(|location| StackTarget {
            tenant_id: self.key.as_str().to_owned(),
            location,
        })
    }

    fn fingerprint(&self) -> Option<&str> {
        match &self.desired {
            Desired::Present(d) => Some(&d.fingerprint),
            Desired::Absent => Some(REMOVED_FINGERPRINT),
            Desired::Invalid { .. } => None,
        }
    }
}

impl Reconciler {
    pub fn new(
        store: Arc<dyn TenantStore>,
        stacks: Arc<dyn Stacks>,
        templates: Arc<dyn TemplateSource>,
        settings: Settings,
    ) -> Self {
        Self {
            store,
            stacks,
            templates,
            requeue: None,
            events: None,
            settings,
            clock: Arc::new(Utc::now),
        }
    }

    /// Publishes a lifecycle event for every transition (provisioned, updated, failed, deleted).
    pub fn with_events(mut self, events: Arc<dyn LifecycleEvents>) -> Self {
        self.events = Some(events);
        self
    }

    /// Adds the lifecycle event of the transition `status` records, if any, to its outbox.
    fn stamp_event(&self, status: &mut TenantStatus) {
        if self.events.is_some()
            && let Some(event) = LifecycleEvent::of(status)
        {
            status.pending_events.push(event);
        }
    }

    /// Publishes the events in `status`'s outbox, then empties it (conditionally: a newer write
    /// carries them on and publishes them itself). On a failed publish the events stay and a
    /// re-check is scheduled to try again; the state is never touched by a publish failure.
    ///
    /// Returns the STATUS as stored afterwards, or `None` when that is not known (the outbox
    /// write failed).
    pub async fn publish_pending(
        &self,
        key: &TenantKey,
        status: &TenantStatus,
    ) -> Option<TenantStatus> {
        let Some(events) = &self.events else {
            return Some(status.clone());
        };
        if status.pending_events.is_empty() {
            return Some(status.clone());
        }
        for event in &status.pending_events {
            if let Err(e) = events.publish(event).await {
                warn!(error = %e, event_id = %event.id, "lifecycle event not published; will retry");
                let _ = self
                    .schedule_recheck(key, self.settings.requeue_after)
                    .await;
                return Some(status.clone());
            }
            info!(event_id = %event.id, kind = ?event.kind, "lifecycle event published");
        }
        let mut published = status.clone();
        published.pending_events.clear();
        published.version = next_version(Some(status.version));
        match self
            .store
            .put_status(key, &published, Some(status.version))
            .await
        {
            Ok(()) => Some(published),
            Err(e) => {
                // Published but still listed: a later pass publishes them again under the same
                // ids, which subscribers drop as duplicates.
                debug!(error = %e, "outbox not emptied");
                None
            }
        }
    }

    /// Appends what a STATUS write changed to the tenant's audit timeline, and records its
    /// metrics. After the write, not with it: STATUS is the truth, and a lost audit line must
    /// never block a transition.
    async fn note_transition(
        &self,
        key: &TenantKey,
        previous: Option<&TenantStatus>,
        next: &TenantStatus,
        spec: Option<&serde_dynamo::Item>,
    ) {
        let requested_by = spec.and_then(|item| match item.get("updated_by") {
            Some(serde_dynamo::AttributeValue::S(who)) => Some(who.as_str()),
            _ => None,
        });
        let now = self.now();
        crate::metrics::record_transition(previous, next, now);
        let at = rfc3339(now);
        let Some(entry) = audit::status_transition(previous, next, requested_by, &at) else {
            return;
        };
        self.append_audit(key, &entry).await;
    }

    /// Appends one entry to the tenant's timeline; a failure is logged, never raised.
    pub async fn append_audit(&self, key: &TenantKey, entry: &audit::AuditEntry) {
        if let Err(e) = self.store.append_audit(key, entry).await {
            warn!(error = %e, action = %entry.action, "audit entry not written");
        }
    }

    /// Records on STATUS that the tenant's decommission was announced and its grace period
    /// runs, with the `decommission_scheduled` lifecycle event in the outbox, then publishes it;
    /// or, with `None`, that an announced decommission was withdrawn (the writer cleared or moved
    /// the date). Conditional on the STATUS `snapshot` read: `Conflict` if it changed meanwhile.
    pub async fn record_decommission_notice(
        &self,
        key: &TenantKey,
        snapshot: &Snapshot,
        notice: Option<DecommissionNotice>,
    ) -> Result<(), StoreError> {
        let Some(previous) = &snapshot.status else {
            return Err(StoreError::Conflict);
        };
        let mut status = previous.clone();
        status.version = next_version(snapshot.status_version);
        let at = rfc3339(self.now());
        let entry = match &notice {
            Some(notice) => {
                if self.events.is_some() {
                    status
                        .pending_events
                        .push(LifecycleEvent::decommission_scheduled(&status, notice));
                }
                audit::AuditEntry {
                    at: notice.announced_at.clone(),
                    id: format!("decommission-{}", notice.date),
                    action: "decommission-scheduled".into(),
                    actor: audit::SYSTEM_ACTOR.into(),
                    requested_by: None,
                    result: "scheduled".into(),
                    reason: Some(format!(
                        "decommission_date {} has passed; removal after {}",
                        notice.date, notice.remove_after
                    )),
                }
            }
            None => audit::AuditEntry {
                id: format!("decommission-withdrawn-{}", status.version),
                at,
                action: "decommission-withdrawn".into(),
                actor: audit::SYSTEM_ACTOR.into(),
                requested_by: None,
                result: "withdrawn".into(),
                reason: previous
                    .decommission_notice
                    .as_ref()
                    .map(|n| format!("decommission_date {} is no longer the SPEC's", n.date)),
            },
        };
        status.decommission_notice = notice;
        self.store
            .put_status(key, &status, snapshot.status_version)
            .await?;
        self.append_audit(key, &entry).await;
        self.publish_pending(key, &status).await;
        Ok(())
    }

    /// Follows every operation in flight to its end through `requeue`.
    pub fn with_requeue(mut self, requeue: Arc<dyn Requeue>) -> Self {
        self.requeue = Some(requeue);
        self
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// Brings one tenant one step closer to its SPEC, as far as it can go without waiting.
    /// A failure that may heal is recorded on STATUS (as `Outcome::Retrying`); only when even
    /// that write fails does an error come back, for the trigger to retry.
    pub async fn reconcile(&self, key: &TenantKey) -> Result<Outcome, TransientError> {
        match self.converge(key).await {
            Ok(Outcome::InFlight { requeue_after }) => {
                // An operation runs: schedule the look that will record its end. If that cannot
                // be scheduled, the trigger must retry (nothing else would come back).
                self.schedule_recheck(key, requeue_after).await?;
                Ok(Outcome::InFlight { requeue_after })
            }
            Ok(outcome) => Ok(outcome),
            Err(failure) => {
                warn!(error = %failure.error, "failure that may heal");
                self.record_and_schedule(key, &failure).await
            }
        }
    }

    /// After a reconcile of a tenant whose stream records Lambda gave up on (`records`
    /// describes them): if it still cannot be processed, STATUS says so. A reconcile that could
    /// not even record its failure is recorded now (`failed`, retryable, its retry scheduled);
    /// one that recorded a failure that may heal gets that reason prefixed. Conditional: never
    /// over newer state.
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
                self.record_and_schedule(key, &failure).await
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
                status.version = next_version(snapshot.status_version);
                match self
                    .store
                    .put_status(key, &status, snapshot.status_version)
                    .await
                {
                    Ok(()) => {
                        self.note_transition(key, Some(previous), &status, snapshot.spec.as_ref())
                            .await;
                    }
                    // A newer state was written meanwhile: it says more than this note would.
                    Err(StoreError::Conflict) => {}
                    Err(e) => return Err(e.into()),
                }
                outcome
            }
            other => other,
        }
    }

    async fn record_and_schedule(
        &self,
        key: &TenantKey,
        failure: &TransientFailure,
    ) -> Result<Outcome, TransientError> {
        let outcome = self.record_transient(key, failure).await?;
        // A retry that backs off is due at `next_attempt_at`: schedule that look, or nothing
        // would come back (quick retries are the trigger's own).
        if let Outcome::Retrying {
            retry_now: false,
            after,
            ..
        } = &outcome
        {
            self.schedule_recheck(key, *after).await?;
        }
        Ok(outcome)
    }

    /// Asks the completion loop to look at the tenant again after `after` (no-op without one).
    pub async fn schedule_recheck(
        &self,
        key: &TenantKey,
        after: Duration,
    ) -> Result<(), TransientError> {
        if let Some(requeue) = &self.requeue {
            requeue
                .requeue(key, after)
                .await
                .map_err(|e| TransientError(e.to_string()))?;
            debug!(after_s = after.as_secs(), "re-check scheduled");
        }
        Ok(())
    }

    /// How long to wait before looking again at an operation that started at `since`.
    fn recheck_delay(&self, status: Option<&TenantStatus>, now: DateTime<Utc>) -> Duration {
        let started = status
            .and_then(|s| DateTime::parse_from_rfc3339(&s.updated_at).ok())
            .map(|t| t.with_timezone(&Utc));
        let elapsed = started
            .and_then(|t| (now - t).to_std().ok())
            .unwrap_or_default();
        (elapsed / 8).clamp(self.settings.requeue_min, self.settings.requeue_after)
    }

    async fn converge(&self, key: &TenantKey) -> Result<Outcome, TransientFailure> {
        let mut outbox_tried = false;
        let mut known = None;
        for _ in 0..self.settings.max_steps {
            let view = self
                .observe(key, known.take())
                .await
                .map_err(TransientFailure::before_any_call)?;
            // Events a crash or a failed publish left behind go out first (once per reconcile).
            if !outbox_tried
                && let Some(status) = view
                    .snapshot
                    .status
                    .as_ref()
                    .filter(|s| !s.pending_events.is_empty())
            {
                outbox_tried = true;
                self.publish_pending(key, status).await;
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
            debug!(?decision, stack_status = ?view.stack.as_ref().map(|s| s.status.as_str()), "decided");
            let recorded = match decision {
                Decision::Nothing => {
                    return Ok(Outcome::Converged(
                        view.snapshot.status.as_ref().map(|s| s.status),
                    ));
                }
                Decision::Wait => {
                    return Ok(Outcome::InFlight {
                        requeue_after: self.recheck_delay(view.snapshot.status.as_ref(), now),
                    });
                }
                Decision::Fail { reason, retryable } => {
                    let status = self.failed(&view, reason.clone(), retryable, now);
                    self.record_read(&view, &status)
                        .await
                        .map(|()| Outcome::Failed { reason })
                }
                Decision::Finalize(terminal) => {
                    let status = self.finalized(&view, terminal, now).await;
                    let outcome = match status.status {
                        Status::Failed => Outcome::Failed {
                            reason: status.reason.clone().unwrap_or_default(),
                        },
                        other => Outcome::Converged(Some(other)),
                    };
                    self.record_read(&view, &status).await.map(|()| outcome)
                }
                // After an act, look again: it may be done already, or the next step due.
                operation => Err(self.start(&view, &operation, now).await),
            };
            match recorded {
                Ok(outcome) => {
                    info!(?outcome, "recorded");
                    return Ok(outcome);
                }
                Err(Step::Again) => continue,
                Err(Step::Started(snapshot)) => {
                    known = Some(*snapshot);
                    continue;
                }
                Err(Step::Transient(failure)) => return Err(failure),
                Err(Step::Rejected(outcome) | Step::Done(outcome)) => return Ok(outcome),
            }
        }
        // Every round lost to a concurrent write or needed another act: let the trigger retry
        // (bounded by its own retries) rather than loop here.
        Err(TransientFailure::before_any_call(TransientError(format!(
            "no decision held after {} rounds (STATUS kept changing)",
            self.settings.max_steps
        ))))
    }

    /// Records a failure that may heal on STATUS: `failed`, retryable, with the reason and when
    /// to try again. The first `quick_retries` are due at once (the trigger retries); later ones
    /// back off exponentially; past `max_attempts` in a row it stays `failed`. Never overwrites
    /// newer state (conditional write), nor a permanent failure of this same SPEC.
    async fn record_transient(
        &self,
        key: &TenantKey,
        failure: &TransientFailure,
    ) -> Result<Outcome, TransientError> {
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
            let previous = snapshot.status.clone();
            let same = previous.as_ref().and_then(|s| s.spec_fingerprint.clone()) == desired;
            if let Some(kept) = previous
                .as_ref()
                .filter(|s| same && s.status == Status::Failed && !s.retryable)
            {
                info!("keeping the recorded permanent failure of this SPEC");
                return Ok(Outcome::Failed {
                    reason: kept.reason.clone().unwrap_or_default(),
                });
            }
            // A look that failed while an operation of ours runs must not erase it: the
            // operation (and its start) stay recorded, with the reason and the next look.
            let in_flight =
                !failure.after_intent && previous.as_ref().is_some_and(|s| s.status.is_in_flight());
            // Every attempt counts: a failure of the same SPEC, or of a look at the operation
            // still recorded (whatever the SPEC now says: a delete written meanwhile does not
            // start the count again).
            let retries = if same || in_flight {
                previous.as_ref().map_or(0, |s| s.retries).saturating_add(1)
            } else {
                1
            };
            let removed = desired.as_deref() == Some(REMOVED_FINGERPRINT);
            // Past the bound a SPEC's failure is recorded for good (a `retry` bump runs it
            // again), and the operation no look could follow with it. A removed SPEC has no
            // `retry` to bump, so its delete keeps being tried, at the slowest pace.
            let giving_up = retries > self.settings.max_attempts && !removed;
            let in_flight = in_flight && !giving_up;
            let mut status = match (&previous, in_flight) {
                (Some(previous), true) => previous.clone(),
                _ => {
                    let mut status = self.carried(key, previous.as_ref(), now);
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
            let (outcome, reason) = if giving_up {
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
            } else {
                let quick = retries <= self.settings.quick_retries;
                let wait = if quick {
                    Duration::ZERO
                } else if retries > self.settings.max_attempts {
                    self.settings.retry_backoff_max
                } else {
                    self.backoff(retries - self.settings.quick_retries)
                };
                let next = rfc3339(now + chrono::Duration::from_std(wait).unwrap_or_default());
                status.retryable = true;
                let reason = format!("{}; will retry after {next}", failure.error);
                status.next_attempt_at = Some(next);
                (
                    Outcome::Retrying {
                        reason: reason.clone(),
                        retry_now: quick,
                        after: wait,
                    },
                    reason,
                )
            };
            status.reason = Some(reason);
            status.version = next_version(snapshot.status_version);
            self.stamp_event(&mut status);
            match self
                .store
                .put_status(key, &status, snapshot.status_version)
                .await
            {
                Ok(()) => {
                    self.note_transition(
                        key,
                        snapshot.status.as_ref(),
                        &status,
                        snapshot.spec.as_ref(),
                    )
                    .await;
                    self.publish_pending(key, &status).await;
                    return Ok(outcome);
                }
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(TransientError(
            "STATUS kept changing while recording a failure".into(),
        ))
    }

    fn backoff(&self, retries: u32) -> Duration {
        let factor = 2u32.saturating_pow(retries.saturating_sub(1).min(16));
        self.settings
            .retry_backoff_base
            .saturating_mul(factor)
            .min(self.settings.retry_backoff_max)
    }

    /// What the SPEC asks for (and the template body), without looking at the stack.
    async fn desire(
        &self,
        key: &TenantKey,
        snapshot: &Snapshot,
        running: Option<&str>,
    ) -> Result<(Desired, Option<Arc<Template>>, Versions), TransientError> {
        let Some(item) = &snapshot.spec else {
            return Ok((Desired::Absent, None, Versions::default()));
        };
        // The version the fleet gave the tenant, as STATUS records it, else (`running`) as its
        // stack's tag shows it.
        let assigned = snapshot
            .status
            .as_ref()
            .and_then(TenantStatus::fleet_version)
            .or(running);
        let valid = match validate(key, item, assigned, self.templates.as_ref())
            .await
            .map_err(|e| TransientError(e.to_string()))?
        {
            Validation::Valid(valid) => valid,
            Validation::Invalid(errors) => {
                // Still say which version it failed for (a rollout counts that failure).
                let assigned_version = match assigned {
                    Some(version) => version.to_owned(),
                    None => self
                        .templates
                        .current_version()
                        .await
                        .map_err(|e| TransientError(e.to_string()))?,
                };
                // Only a pin that could name a version: an invalid one (of any length) is not
                // copied onto STATUS.
                let pin = match item.get("template_version") {
                    Some(serde_dynamo::AttributeValue::S(pin))
                        if model::spec::check_template_version(pin).is_ok() =>
                    {
                        Some(pin.clone())
                    }
                    _ => None,
                };
                return Ok((
                    Desired::Invalid {
                        reason: describe_errors(&errors),
                    },
                    None,
                    Versions {
                        template_version: Some(pin.unwrap_or_else(|| assigned_version.clone())),
                        assigned_version: Some(assigned_version),
                        from_stack_tag: false,
                    },
                ));
            }
        };
        let desired =
            valid.desired_stack(&self.settings.default_region, self.settings.stack_name(key));
        let versions = Versions {
            template_version: Some(valid.template_version),
            assigned_version: Some(valid.assigned_version),
            from_stack_tag: false,
        };
        let template = valid.template;
        Ok((Desired::Present(desired), Some(template), versions))
    }

    /// Reads the tenant's rows (unless `known`: what this reconcile just wrote) and looks at
    /// its stack.
    async fn observe(
        &self,
        key: &TenantKey,
        known: Option<Snapshot>,
    ) -> Result<View, TransientError> {
        let snapshot = match known {
            Some(snapshot) => snapshot,
            None => self.store.load(key).await?,
        };
        let (desired, template, versions) = self.desire(key, &snapshot, None).await?;
        let recorded = snapshot.status.as_ref().and_then(|s| s.location.clone());
        let wanted = match &desired {
            Desired::Present(d) => Some(d.location.clone()),
            _ => None,
        };
        let mut view = View {
            key: key.clone(),
            snapshot,
            desired,
            template,
            versions,
            stack: None,
            location: recorded.clone().or_else(|| wanted.clone()),
        };
        if matches!(view.desired, Desired::Invalid { .. }) {
            // Nothing will be done to the stack: no need to reach the tenant's account.
            return Ok(view);
        }

        self.locate(&mut view, recorded, wanted).await?;
        // No version recorded for the tenant (its STATUS lost or unreadable, or from before the
        // control-plane table): its own stack's tag says which version it runs. Keep that one
        // instead of moving an unpinned tenant to the fleet's current version behind the
        // rollouts' back.
        let unrecorded = view
            .snapshot
            .status
            .as_ref()
            .and_then(TenantStatus::fleet_version)
            .is_none();
        let unpinned = view
            .snapshot
            .spec
            .as_ref()
            .is_some_and(|spec| spec.get("template_version").is_none());
        let running = view
            .stack
            .as_ref()
            .filter(|s| s.is_managed_for(key.as_str()))
            .and_then(|s| s.tags.get(TAG_TEMPLATE_VERSION))
            .cloned();
        if unrecorded
            && unpinned
            && let Some(running) = running
            && view.versions.assigned_version.as_deref() != Some(running.as_str())
            && self.adoptable(&running).await?
        {
            info!(version = %running, "no version recorded: keeping the one the stack runs");
            let (desired, template, versions) =
                self.desire(key, &view.snapshot, Some(&running)).await?;
            view.desired = desired;
            view.template = template;
            view.versions = Versions {
                from_stack_tag: true,
                ..versions
            };
        }
        Ok(view)
    }

    /// Whether a stack's `template-version` tag names a version that can be kept: one that
    /// exists and is not refused. Anyone who can tag the stack can write the tag, so a version
    /// never published (or changed since) is not adopted: the tenant takes the fleet's current
    /// version instead of failing on a version it was never given.
    async fn adoptable(&self, version: &str) -> Result<bool, TransientError> {
        if model::spec::check_template_version(version).is_err() {
            warn!(
                version,
                "the stack's template-version tag is not a version name: not kept"
            );
            return Ok(false);
        }
        match self.templates.get(version).await {
            Ok(Some(_)) => Ok(true),
            Ok(None) => {
                warn!(
                    version,
                    "the stack's template-version tag names no published version: not kept"
                );
                Ok(false)
            }
            Err(TemplateSourceError::Corrupt(reason)) => {
                warn!(version, %reason, "the version the stack's tag names is refused: not kept");
                Ok(false)
            }
            Err(e) => Err(TransientError(e.to_string())),
        }
    }

    /// Finds the tenant's stack. Where it was recorded, else where the SPEC wants it. A stack
    /// there counts as the tenant's only if its own tags say so (read by the same
    /// DescribeStacks: no call added), so a wrong location is never acted on.
    async fn locate(
        &self,
        view: &mut View,
        recorded: Option<StackLocation>,
        wanted: Option<StackLocation>,
    ) -> Result<(), TransientError> {
        // Where the stack is: where it was recorded, else where the SPEC wants it. A stack
        // there counts as the tenant's only if its own tags say so (read by the same
        // DescribeStacks: no call added), so a wrong location is never acted on.
        let target_at = |location: &StackLocation| StackTarget {
            tenant_id: view.key.as_str().to_owned(),
            location: location.clone(),
        };
        let mut places: Vec<StackLocation> =
            recorded.iter().chain(wanted.iter()).cloned().collect();
        places.dedup();
        let mut someone_elses: Option<(StackLocation, ObservedStack)> = None;
        let looked = places.clone();
        for location in places {
            match self.describe(&target_at(&location)).await? {
                Some(stack) if stack.is_managed_for(view.key.as_str()) => {
                    view.location = Some(location);
                    view.stack = Some(stack);
                    return Ok(());
                }
                Some(stack) => {
                    someone_elses.get_or_insert((location, stack));
                }
                None => {}
            }
        }
        // None of the tenant's where it was recorded: before anything is recorded `deleted`
        // (or a second stack made), look in the recorded account and region under the name
        // the tenant's stack is given, confirmed by its tags (a tenant already recorded
        // deleted is not looked for again).
        let recorded_deleted = view
            .snapshot
            .status
            .as_ref()
            .is_some_and(|s| s.status == Status::Deleted);
        if let Some(recorded) = recorded.as_ref().filter(|_| !recorded_deleted) {
            let named = StackLocation {
                stack_name: self.settings.stack_name(&view.key),
                ..recorded.clone()
            };
            if !looked.contains(&named)
                && let Some(stack) = self.describe(&target_at(&named)).await?
            {
                if stack.is_managed_for(view.key.as_str()) {
                    warn!(
                        recorded = %recorded.stack_name,
                        found = %named.stack_name,
                        "the tenant's stack is not where STATUS recorded it; found by its name and tags"
                    );
                    view.location = Some(named);
                    view.stack = Some(stack);
                    return Ok(());
                }
                someone_elses.get_or_insert((named, stack));
            }
        }
        match someone_elses {
            // Left untouched: the decision says whose it is not.
            Some((location, stack)) => {
                view.location = Some(location);
                view.stack = Some(stack);
            }
            None => view.location = wanted.or(recorded),
        }
        Ok(())
    }

    async fn describe(
        &self,
        target: &StackTarget,
    ) -> Result<Option<ObservedStack>, TransientError> {
        match self.stacks.describe(target).await {
            Ok(stack) => Ok(stack),
            Err(e) => Err(TransientError(format!(
                "cannot read stack {} in account {} region {}: {e}",
                target.location.stack_name, target.location.account_id, target.location.region
            ))),
        }
    }

    /// Writes the intent (so the stack can always be found again), then calls CloudFormation.
    async fn start(&self, view: &View, decision: &Decision, now: DateTime<Utc>) -> Step {
        let (Some(operation), Some(target)) = (decision.operation(), view.target()) else {
            return Step::Again;
        };
        let previous = view.snapshot.status.as_ref();
        let fingerprint = view.fingerprint().map(str::to_owned);
        let same = previous.and_then(|s| s.spec_fingerprint.as_deref()) == fingerprint.as_deref();
        let mut intent = self.carried(&view.key, previous, now);
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
            intent.stack_status = Some(stack.status.as_str().to_owned());
        }
        intent.version = next_version(view.snapshot.status_version);
        let written = match self
            .record(view, &intent, view.snapshot.status_version)
            .await
        {
            Ok(written) => written,
            Err(step) => return step,
        };

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
                let request = StackRequest {
                    template_body: view
                        .template
                        .as_ref()
                        .map(|t| t.body.clone())
                        .unwrap_or_default(),
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
                };
                if operation == Operation::Create {
                    self.stacks.create(&target, &request).await
                } else {
                    self.stacks.update(&target, &request).await.map(|started| {
                        if started == UpdateStarted::NoChanges {
                            debug!("no updates are to be performed");
                            no_changes = true;
                        }
                    })
                }
            }
            (Operation::Delete, _) => self.stacks.delete(&target, &token).await,
            (Operation::ContinueUpdateRollback, _) => {
                self.stacks.continue_update_rollback(&target, &token).await
            }
            // Create and update are only decided for a present SPEC.
            _ => Ok(()),
        };
        match result {
            // The stack already runs this SPEC and its status will not move (it may still show
            // an earlier failed update's UPDATE_ROLLBACK_COMPLETE): ready now, or a look again
            // would take that old failure for this update's.
            Ok(()) if no_changes => {
                let mut ready = self.finalized(view, Terminal::Ready, now).await;
                ready.operation = intent.operation;
                ready.version = next_version(Some(intent.version));
                match self.record(view, &ready, Some(intent.version)).await {
                    Ok(_) => Step::Done(Outcome::Converged(Some(ready.status))),
                    Err(step) => step,
                }
            }
            // The table is as this reconcile just wrote it (conditionally): the next look reads
            // only the stack.
            Ok(()) | Err(StackError::AlreadyExists) => match written {
                Some(status) => Step::Started(Box::new(Snapshot {
                    spec: view.snapshot.spec.clone(),
                    status_version: Some(status.version),
                    status: Some(status),
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
                let mut failed = intent.clone();
                failed.status = Status::Failed;
                failed.reason = Some(reason.clone());
                failed.version = next_version(Some(intent.version));
                match self.record(view, &failed, Some(intent.version)).await {
                    Ok(_) => Step::Rejected(Outcome::Failed { reason }),
                    Err(step) => step,
                }
            }
        }
    }

    /// The next STATUS, carrying over what stays true (location, stack, outputs, fingerprint).
    fn carried(
        &self,
        key: &TenantKey,
        previous: Option<&TenantStatus>,
        now: DateTime<Utc>,
    ) -> TenantStatus {
        TenantStatus {
            tenant_id: key.as_str().to_owned(),
            status: previous.map_or(Status::Failed, |s| s.status),
            reason: None,
            retryable: false,
            next_attempt_at: None,
            attempts: previous.map_or(0, |s| s.attempts),
            retries: previous.map_or(0, |s| s.retries),
            operation: previous.and_then(|s| s.operation),
            outputs: previous.map(|s| s.outputs.clone()).unwrap_or_default(),
            location: previous.and_then(|s| s.location.clone()),
            stack_id: previous.and_then(|s| s.stack_id.clone()),
            stack_status: previous.and_then(|s| s.stack_status.clone()),
            template_version: previous.and_then(|s| s.template_version.clone()),
            assigned_version: previous.and_then(|s| s.assigned_version.clone()),
            assigned_by: previous.and_then(|s| s.assigned_by.clone()),
            spec_fingerprint: previous.and_then(|s| s.spec_fingerprint.clone()),
            updated_at: rfc3339(now),
            version: 0,
            // Unpublished events stay until published, whatever else changes.
            pending_events: previous
                .map(|s| s.pending_events.clone())
                .unwrap_or_default(),
            decommission_notice: previous.and_then(|s| s.decommission_notice.clone()),
        }
    }

    fn failed(
        &self,
        view: &View,
        reason: String,
        retryable: bool,
        now: DateTime<Utc>,
    ) -> TenantStatus {
        let mut status = self.carried(&view.key, view.snapshot.status.as_ref(), now);
        status.status = Status::Failed;
        status.reason = Some(reason);
        status.retryable = retryable;
        // A SPEC that failed validation reflects no stack shape: restoring the previous SPEC
        // must count as a change.
        status.spec_fingerprint = view.fingerprint().map(str::to_owned);
        // The version it failed to reach (a rollout tells its failures by it).
        if let Some(version) = &view.versions.template_version {
            status.template_version = Some(version.clone());
        }
        if let Some(stack) = &view.stack {
            status.stack_status = Some(stack.status.as_str().to_owned());
        }
        status.version = next_version(view.snapshot.status_version);
        status
    }

    async fn finalized(&self, view: &View, terminal: Terminal, now: DateTime<Utc>) -> TenantStatus {
        let mut status = self.carried(&view.key, view.snapshot.status.as_ref(), now);
        status.spec_fingerprint = view.fingerprint().map(str::to_owned);
        if let Some(location) = &view.location {
            status.location = Some(location.clone());
        }
        if let Desired::Present(d) = &view.desired {
            status.template_version = Some(d.template_version.clone());
        }
        match (&terminal, &view.stack) {
            (Terminal::Ready, Some(stack)) => {
                // Success ends the counting: a later drift repair starts afresh.
                status.attempts = 0;
                status.retries = 0;
                status.status = Status::Ready;
                status.outputs = stack.outputs.clone();
                status.stack_id = Some(stack.stack_id.clone());
                status.stack_status = Some(stack.status.as_str().to_owned());
            }
            (Terminal::Deleted, _) | (Terminal::Ready, None) => {
                status.attempts = 0;
                status.retries = 0;
                status.status = Status::Deleted;
                // A tenant created again later starts afresh: no decommission announced, and
                // the fleet's current version.
                status.decommission_notice = None;
                status.assigned_version = None;
                status.assigned_by = None;
                status.outputs.clear();
                // Only a stack that existed was deleted.
                status.stack_status = status
                    .stack_id
                    .as_ref()
                    .map(|_| "DELETE_COMPLETE".to_owned());
            }
            (Terminal::FailedFromStack { what }, stack) => {
                status.status = Status::Failed;
                let cause = match view.target() {
                    Some(target) => self.stacks.failure_reason(&target).await.ok().flatten(),
                    None => None,
                };
                let cause = cause
                    .or_else(|| stack.as_ref().and_then(|s| s.status_reason.clone()))
                    .unwrap_or_else(|| "CloudFormation gave no reason".into());
                status.reason = Some(format!("{what}: {cause}"));
                if let Some(stack) = stack {
                    status.stack_status = Some(stack.status.as_str().to_owned());
                    status.stack_id = Some(stack.stack_id.clone());
                }
            }
        }
        status.version = next_version(view.snapshot.status_version);
        status
    }

    /// Writes STATUS over the version this view read.
    async fn record_read(&self, view: &View, status: &TenantStatus) -> Result<(), Step> {
        self.record(view, status, view.snapshot.status_version)
            .await
            .map(|_| ())
    }

    /// Writes `status` if STATUS is still at `expected_version`; returns STATUS as it is
    /// stored afterwards (`None` if that is not known).
    async fn record(
        &self,
        view: &View,
        status: &TenantStatus,
        expected_version: Option<u64>,
    ) -> Result<Option<TenantStatus>, Step> {
        let mut status = status.clone();
        // A tenant's first write fixes the version the fleet gives it; from then on only a
        // rollout moves it, never the passing of time.
        if status.assigned_version.is_none()
            && !matches!(view.desired, Desired::Absent)
            && let Some(assigned) = &view.versions.assigned_version
        {
            status.assigned_version = Some(assigned.clone());
            status.assigned_by = Some(
                if view.versions.from_stack_tag {
                    ASSIGNED_FROM_STACK_TAG
                } else {
                    ASSIGNED_AT_CREATION
                }
                .into(),
            );
        }
        self.stamp_event(&mut status);
        match self
            .store
            .put_status(&view.key, &status, expected_version)
            .await
        {
            Ok(()) => {
                debug!(status = %status.status, version = status.version, "status written");
                let previous = view
                    .snapshot
                    .status
                    .as_ref()
                    .filter(|s| Some(s.version) == expected_version);
                self.note_transition(&view.key, previous, &status, view.snapshot.spec.as_ref())
                    .await;
                // What is stored now, when known: the next look needs not read it back.
                Ok(self.publish_pending(&view.key, &status).await)
            }
            Err(StoreError::Conflict) => {
                debug!("status changed concurrently; deciding again");
                Err(Step::Again)
            }
            Err(e) => Err(Step::Transient(TransientFailure::before_any_call(e.into()))),
        }
    }
}

/// How a step that did not finish the reconcile ends.
enum Step {
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

pub fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
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
}
