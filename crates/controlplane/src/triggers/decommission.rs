//! Decommission: a tenant whose `decommission_date` has passed is announced (a
//! `decommission_scheduled` lifecycle event; its grace period starts), and once the grace period
//! is over its SPEC is removed as the system actor. The normal removal path does the rest: the
//! stream's REMOVE record (or the reconciler) deletes the stack and records `deleted`.
//!
//! The grace period runs from the announcement, not from the date: a job that ran late never
//! removes a tenant its subscribers were not told about.

use std::time::Duration;

use serde::Serialize;
use tracing::{info, warn};

use super::sweep::for_each_tenant;
use crate::ports::{Snapshot, StoreError, TenantStore};
use crate::reconcile::Reconciler;
use crate::status_writer::{Change, Over};
use model::audit::{AuditAction, AuditEntry, SYSTEM_ACTOR};
use model::decommission::{Step, plan};
use model::spec::{SpecRow, TenantKey};
use model::status::{DecommissionNotice, LifecycleEvent};
use model::time::rfc3339;

/// What one decommission run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DecommissionReport {
    pub tenants: usize,
    pub not_due: usize,
    pub announced: usize,
    /// Announced decommissions whose date the writer cleared or moved.
    pub withdrawn: usize,
    pub in_grace: usize,
    pub removed: usize,
    /// Mid-operation or not provisioned yet: picked up next time.
    pub skipped: usize,
    /// The SPEC or STATUS changed while deciding: picked up next time.
    pub changed: usize,
    pub errors: usize,
}

#[derive(Debug)]
enum Done {
    NotDue,
    Announced,
    Withdrawn,
    InGrace,
    Removed,
    Skipped,
    Changed,
    Error,
}

/// Records on STATUS that the tenant's decommission was announced and its grace period runs,
/// with the `decommission_scheduled` lifecycle event in the outbox; or, with `None`, that an
/// announced decommission was withdrawn (the writer cleared or moved the date). Conditional on
/// the STATUS `snapshot` read: `Conflict` if it changed meanwhile.
async fn record_notice(
    reconciler: &Reconciler,
    key: &TenantKey,
    snapshot: &Snapshot,
    notice: Option<DecommissionNotice>,
) -> Result<(), StoreError> {
    let Some(previous) = &snapshot.status else {
        return Err(StoreError::Conflict);
    };
    let mut status = previous.clone();
    let (entry, event) = match &notice {
        Some(notice) => (
            AuditEntry {
                at: notice.announced_at.clone(),
                id: format!("decommission-{}", notice.date),
                action: AuditAction::DecommissionScheduled,
                actor: SYSTEM_ACTOR.into(),
                requested_by: None,
                result: "scheduled".into(),
                reason: Some(format!(
                    "decommission_date {} has passed; removal after {}",
                    notice.date, notice.remove_after
                )),
            },
            Some(LifecycleEvent::decommission_scheduled(&status, notice)),
        ),
        None => (
            AuditEntry {
                id: format!(
                    "decommission-withdrawn-{}",
                    model::next_status::next_version(snapshot.status_version)
                ),
                at: rfc3339(reconciler.now()),
                action: AuditAction::DecommissionWithdrawn,
                actor: SYSTEM_ACTOR.into(),
                requested_by: None,
                result: "withdrawn".into(),
                reason: previous
                    .decommission_notice
                    .as_ref()
                    .map(|n| format!("decommission_date {} is no longer the SPEC's", n.date)),
            },
            None,
        ),
    };
    status.decommission_notice = notice;
    let written = reconciler
        .writer()
        .write(
            key,
            Over::read(snapshot),
            status,
            Change::Note {
                entry: Some(Box::new(entry)),
                event: event.map(Box::new),
            },
        )
        .await?;
    // The notice stays in the outbox; a look again soon publishes it (not the next sweep).
    if written.outbox.unpublished
        && let Some(recheck) = reconciler.recheck()
        && let Err(e) = recheck
            .schedule(key, reconciler.settings().requeue_after)
            .await
    {
        warn!(error = %e, "no re-check for the unpublished notice; the sweep publishes it");
    }
    Ok(())
}

async fn decommission_one(
    store: &dyn TenantStore,
    reconciler: &Reconciler,
    grace: Duration,
    key: TenantKey,
) -> Done {
    let snapshot = match store.load(&key).await {
        Ok(snapshot) => snapshot,
        Err(e) => {
            warn!(error = %e, "cannot read the tenant; next run tries again");
            return Done::Error;
        }
    };
    // No SPEC: nothing is left to decommission (the reconcile deletes the stack); its notice
    // is not withdrawn either.
    if snapshot.spec.is_none() {
        return Done::NotDue;
    }
    let date = snapshot
        .spec
        .as_ref()
        .and_then(|spec| SpecRow(spec).decommission_date());
    let now = reconciler.now();
    let step = plan(date, snapshot.status.as_ref(), now, grace);
    let result = match &step {
        Step::NotDue => return Done::NotDue,
        Step::NotProvisioned | Step::Busy => {
            info!(?step, "decommission due; skipped until the next run");
            return Done::Skipped;
        }
        Step::InGrace { remove_after } => {
            info!(%remove_after, "decommission announced; grace period runs");
            return Done::InGrace;
        }
        Step::Announce(notice) => {
            info!(remove_after = %notice.remove_after, "decommission due: announcing the grace period");
            record_notice(reconciler, &key, &snapshot, Some(notice.clone()))
                .await
                .map(|()| Done::Announced)
        }
        Step::Withdraw => {
            info!("decommission date cleared or moved: withdrawing the notice");
            record_notice(reconciler, &key, &snapshot, None)
                .await
                .map(|()| Done::Withdrawn)
        }
        Step::Remove => {
            let date = date.unwrap_or_default();
            let entry = AuditEntry {
                at: rfc3339(now),
                id: format!("decommission-remove-{date}"),
                action: AuditAction::Decommission,
                actor: SYSTEM_ACTOR.into(),
                requested_by: None,
                result: "accepted".into(),
                reason: Some(format!(
                    "decommission_date {date} passed and the grace period is over: SPEC removed"
                )),
            };
            info!(%date, "grace period over: removing the SPEC");
            let removed = store.remove_spec_for_decommission(&key, date, &entry).await;
            if removed == Err(StoreError::Conflict) {
                // The line was written first (a DeleteItem names no actor); say it did not happen.
                let skipped = AuditEntry {
                    result: "skipped".into(),
                    reason: Some("the SPEC changed meanwhile: not removed".into()),
                    ..entry
                };
                reconciler.writer().append_audit(&key, &skipped).await;
            }
            removed.map(|()| Done::Removed)
        }
    };
    match result {
        Ok(done) => done,
        Err(StoreError::Conflict) => {
            info!("the tenant changed meanwhile; next run decides again");
            Done::Changed
        }
        Err(e) => {
            warn!(error = %e, "decommission step failed; next run tries again");
            Done::Error
        }
    }
}

/// One decommission run over every tenant, `concurrency` at a time.
pub async fn decommission(
    store: &dyn TenantStore,
    reconciler: &Reconciler,
    grace: Duration,
    concurrency: usize,
) -> Result<DecommissionReport, StoreError> {
    let mut report = DecommissionReport::default();
    for_each_tenant(
        store,
        concurrency,
        |key| decommission_one(store, reconciler, grace, key),
        |done| {
            report.tenants += 1;
            match done {
                Done::NotDue => report.not_due += 1,
                Done::Announced => report.announced += 1,
                Done::Withdrawn => report.withdrawn += 1,
                Done::InGrace => report.in_grace += 1,
                Done::Removed => report.removed += 1,
                Done::Skipped => report.skipped += 1,
                Done::Changed => report.changed += 1,
                Done::Error => report.errors += 1,
            }
        },
    )
    .await?;
    info!(?report, "decommission run done");
    Ok(report)
}
