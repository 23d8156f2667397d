//! The drift job (scheduled): runs CloudFormation's drift detection on every settled tenant stack
//! not checked within the interval, records what it found on STATUS (`drift`), counts it, and
//! announces a tenant that drifted. A tenant whose drift policy is `revert` is then reconciled:
//! the reconcile itself decides the revert (one decision path).
//!
//! Bounded everywhere: detections in flight (`concurrency`), throttled calls (jittered
//! exponential backoff, a few tries), the wait for one detection, and the invocation's own
//! deadline (checks not started by then wait for the next run; the record's `checked_at`
//! makes the job resumable). A check that cannot finish records `not_checked` with the reason
//! and keeps what the last finished one found.

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use serde::Serialize;
use tracing::{info, warn};

use super::sweep::for_each_tenant;
use crate::ports::{
    DetectionProgress, StackDrift, StackError, StackTarget, StoreError, TenantStore,
};
use crate::reconcile::{Outcome, Reconciler};
use crate::status_writer::{Change, Over};
use model::audit::{AuditAction, AuditEntry};
use model::drift::{Detection, DriftRecord, DriftStatus, due_for_check, merged, newly_drifted};
use model::spec::TenantKey;
use model::status::{LifecycleEvent, Status};
use model::time::rfc3339;

/// The audit actor of the drift job's lines.
pub const DRIFT_ACTOR: &str = "control-plane:drift";

/// How the drift job paces itself; defaults suit production.
#[derive(Clone, Debug)]
pub struct DriftSettings {
    /// A stack is checked at most once per interval (DRIFT_CHECK_INTERVAL_HOURS).
    pub interval: Duration,
    /// Detections in flight at once (DRIFT_CONCURRENCY). A check takes about as long as the
    /// detection (tens of seconds), so this sets the job's pace: 40 checks about 12,900 stacks a
    /// day in hourly runs (BENCHMARKS.md, drift sweep); throttles are answered with backoff.
    pub concurrency: usize,
    /// How often a running detection is looked at.
    pub poll_every: Duration,
    /// A detection still running after this long is recorded `not_checked`.
    pub detection_timeout: Duration,
    /// Tries of a throttled call, with jittered exponential backoff between them.
    pub throttle_tries: usize,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// No check starts after this instant (the invocation's deadline, less [`CHECK_MARGIN`]).
    pub stop_at: Option<tokio::time::Instant>,
    /// No revert starts after this instant (the deadline, less [`REVERT_MARGIN`]): the sweep
    /// reverts what is left (the same reconcile decides it there).
    pub revert_until: Option<tokio::time::Instant>,
}

/// Left of an invocation when the drift job starts no more checks: one check's detection
/// timeout plus room for its throttled calls' backoff.
pub const CHECK_MARGIN: Duration = Duration::from_secs(300 + 120);
/// Left of an invocation when the drift job starts no more reverts: the change set's
/// computation (`CHANGE_SET_WAIT`) and its execution.
pub const REVERT_MARGIN: Duration =
    Duration::from_secs(crate::aws::cloudformation::CHANGE_SET_WAIT.as_secs() + 60);

impl DriftSettings {
    /// These settings for an invocation that must end at `deadline` (`left` from now).
    pub fn within(mut self, left: Duration) -> Self {
        let now = tokio::time::Instant::now();
        self.stop_at = Some(now + left.saturating_sub(CHECK_MARGIN));
        self.revert_until = Some(now + left.saturating_sub(REVERT_MARGIN));
        self
    }
}

impl Default for DriftSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(24 * 3600),
            concurrency: 40,
            poll_every: Duration::from_secs(5),
            detection_timeout: Duration::from_secs(300),
            throttle_tries: 6,
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            stop_at: None,
            revert_until: None,
        }
    }
}

/// What one run of the drift job did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DriftReport {
    pub tenants: usize,
    /// Checked and recorded.
    pub checked: usize,
    pub in_sync: usize,
    pub drifted: usize,
    pub not_checked: usize,
    /// Drifted and announced (a new drift, or other resources than last time).
    pub newly_drifted: usize,
    /// Reverts the reconcile started (tenants whose drift policy is `revert`).
    pub reverts_started: usize,
    /// Not due: no settled stack, or checked within the interval.
    pub not_due: usize,
    /// Not started: the run's deadline came first (the next run takes them).
    pub deferred: usize,
    /// The result could not be recorded (the next run tries again).
    pub errors: usize,
}

enum Checked {
    NotDue,
    Deferred,
    Recorded {
        status: DriftStatus,
        news: bool,
        reverting: bool,
    },
    Error,
}

/// Runs one pass of the drift job over every tenant.
pub async fn drift_sweep(
    store: &dyn TenantStore,
    drift: Arc<dyn StackDrift>,
    reconciler: &Reconciler,
    settings: &DriftSettings,
) -> Result<DriftReport, StoreError> {
    let mut report = DriftReport::default();
    for_each_tenant(
        store,
        settings.concurrency,
        |tenant| {
            let drift = drift.clone();
            async move { check_tenant(store, drift.as_ref(), reconciler, settings, &tenant).await }
        },
        |checked| {
            report.tenants += 1;
            match checked {
                Checked::NotDue => report.not_due += 1,
                Checked::Deferred => report.deferred += 1,
                Checked::Error => report.errors += 1,
                Checked::Recorded {
                    status,
                    news,
                    reverting,
                } => {
                    report.checked += 1;
                    match status {
                        DriftStatus::InSync => report.in_sync += 1,
                        DriftStatus::Drifted => report.drifted += 1,
                        DriftStatus::NotChecked => report.not_checked += 1,
                    }
                    report.newly_drifted += usize::from(news);
                    report.reverts_started += usize::from(reverting);
                }
            }
        },
    )
    .await?;
    info!(?report, "drift job done");
    Ok(report)
}

async fn check_tenant(
    store: &dyn TenantStore,
    drift: &dyn StackDrift,
    reconciler: &Reconciler,
    settings: &DriftSettings,
    key: &TenantKey,
) -> Checked {
    // Past the run's last start, not even read: the next run takes it.
    if past(settings.stop_at) {
        return Checked::Deferred;
    }
    let snapshot = match store.load(key).await {
        Ok(snapshot) => snapshot,
        Err(error) => {
            warn!(%error, "tenant not read; the next drift run tries again");
            return Checked::Error;
        }
    };
    let Some(status) = snapshot
        .status
        .as_ref()
        .filter(|s| due_for_check(s, reconciler.now(), settings.interval))
    else {
        return Checked::NotDue;
    };
    let Some(location) = status.location.clone() else {
        return Checked::NotDue;
    };
    let target = StackTarget {
        tenant_id: key.as_str().to_owned(),
        location,
    };
    let checked = status.clone();
    let detection = detect(drift, &target, settings).await;
    let mut snapshot = snapshot.clone();
    // A write that loses to a newer one reads again. What was found is recorded only while the
    // stack is still the one detected: no operation started or ended meanwhile (a finding that
    // predates an update would be announced, and reverted, on the new stack).
    for _ in 0..3 {
        let Some(previous) = snapshot
            .status
            .as_ref()
            .filter(|s| s.status == Status::Ready && same_stack(s, &checked))
        else {
            return Checked::NotDue;
        };
        let now = reconciler.now();
        let record = merged(
            previous.drift.as_ref(),
            DriftRecord::of(detection.clone(), now),
        );
        let news = newly_drifted(previous.drift.as_ref(), &record);
        let changed = previous.drift.as_ref().map(|d| d.status) != Some(record.status);
        let mut next = previous.clone();
        next.updated_at = rfc3339(now);
        next.drift = Some(record.clone());
        // A line in the timeline when the finding changes, never for a repeat of it.
        let entry = (news || changed).then(|| AuditEntry {
            at: record.checked_at.clone(),
            id: format!("drift-{}", record.checked_at),
            action: AuditAction::DriftChecked,
            actor: DRIFT_ACTOR.into(),
            requested_by: None,
            result: record.status.as_str().into(),
            reason: Some(record.summary()),
        });
        let event = news.then(|| Box::new(LifecycleEvent::drifted(&next, &record)));
        match reconciler
            .writer()
            .write(
                key,
                Over::read(&snapshot),
                next,
                Change::Note {
                    entry: entry.map(Box::new),
                    event,
                },
            )
            .await
        {
            Ok(_) => {
                crate::metrics::record_drift(record.status);
                info!(drift = record.status.as_str(), summary = %record.summary(), "drift recorded");
                // The reconcile decides whether to revert (the tenant's policy); a revert it
                // starts is followed to its end like any operation.
                let mut reverting = false;
                let policy = snapshot
                    .spec
                    .as_ref()
                    .and_then(|spec| model::spec::SpecRow(spec).drift_policy())
                    .unwrap_or(reconciler.settings().drift_policy);
                if policy == model::drift::DriftPolicy::Revert
                    && record.status == DriftStatus::Drifted
                    && record.revert.is_none()
                    && !past(settings.revert_until)
                {
                    let outcome = reconciler.reconcile(key).await;
                    if let Ok(Outcome::InFlight { requeue_after }) = outcome
                        && let Some(recheck) = reconciler.recheck()
                        && let Err(error) = recheck.schedule(key, requeue_after).await
                    {
                        warn!(%error, "revert started; its re-check not scheduled (the sweep follows it)");
                    }
                    reverting = store.load(key).await.is_ok_and(|after| {
                        after.status.and_then(|s| s.drift).is_some_and(|d| {
                            d.checked_at == record.checked_at && d.revert.is_some()
                        })
                    });
                }
                return Checked::Recorded {
                    status: record.status,
                    news,
                    reverting,
                };
            }
            Err(StoreError::Conflict) => match store.load(key).await {
                Ok(fresh) => snapshot = fresh,
                Err(_) => return Checked::Error,
            },
            Err(error) => {
                warn!(%error, "drift not recorded; the next drift run tries again");
                return Checked::Error;
            }
        }
    }
    Checked::Error
}

fn past(instant: Option<tokio::time::Instant>) -> bool {
    instant.is_some_and(|at| tokio::time::Instant::now() >= at)
}

/// Whether `now` is still the stack `then` was: the same SPEC answered, the same stack, no
/// operation since.
fn same_stack(now: &model::status::TenantStatus, then: &model::status::TenantStatus) -> bool {
    now.spec_fingerprint == then.spec_fingerprint
        && now.stack_id == then.stack_id
        && now.operation == then.operation
        && now.stack_status == then.stack_status
        && now.template_version == then.template_version
        && now.attempts == then.attempts
}

/// One detection, to its end: started, waited for, its drifted resources read. Throttled calls
/// back off and try again a few times; anything else that fails ends it `not_checked` at once
/// (the SDK already retried what may heal), so the job never waits forever.
pub async fn detect(
    drift: &dyn StackDrift,
    at: &StackTarget,
    settings: &DriftSettings,
) -> Detection {
    let backoff = ExponentialBuilder::default()
        .with_min_delay(settings.backoff_min)
        .with_max_delay(settings.backoff_max)
        .with_max_times(settings.throttle_tries.saturating_sub(1))
        .with_jitter();
    let not_checked = |call: &str, error: StackError| Detection::NotChecked {
        reason: if error.is_throttle() {
            format!(
                "{call} was throttled {} times: {error}; the next run tries again",
                settings.throttle_tries
            )
        } else {
            format!("{call} failed: {error}")
        },
    };
    let id = match (|| drift.detect(at))
        .retry(backoff)
        .when(StackError::is_throttle)
        .await
    {
        Ok(id) => id,
        Err(error) => return not_checked("DetectStackDrift", error),
    };
    let started = tokio::time::Instant::now();
    loop {
        match (|| drift.progress(at, &id))
            .retry(backoff)
            .when(StackError::is_throttle)
            .await
        {
            Ok(DetectionProgress::InProgress) => {
                if started.elapsed() >= settings.detection_timeout {
                    return Detection::NotChecked {
                        reason: format!(
                            "drift detection {id} did not finish within {} s",
                            settings.detection_timeout.as_secs()
                        ),
                    };
                }
                tokio::time::sleep(settings.poll_every).await;
            }
            Ok(DetectionProgress::Complete {
                drifted: false,
                reason: _,
            }) => return Detection::InSync,
            Ok(DetectionProgress::Complete {
                drifted: true,
                reason,
            }) => {
                return match (|| drift.drifted_resources(at))
                    .retry(backoff)
                    .when(StackError::is_throttle)
                    .await
                {
                    Ok(resources) => Detection::Drifted { resources, reason },
                    Err(error) => not_checked("DescribeStackResourceDrifts", error),
                };
            }
            Ok(DetectionProgress::Failed { reason }) => {
                return Detection::NotChecked {
                    reason: format!("drift detection failed: {reason}"),
                };
            }
            Err(error) => return not_checked("DescribeStackDriftDetectionStatus", error),
        }
    }
}
