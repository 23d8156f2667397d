//! The sweep (the scheduled reconciler): pages through every tenant and calls the same reconcile as every
//! other trigger. It catches what the others missed (records lost or given up, re-checks in the
//! dead-letter queue, SPECs written while the trigger was off, orphaned stacks, drift) and runs
//! retries that are due. Two reconciles of one tenant never both act: every act is preceded by a
//! conditional STATUS write, and the loser decides again on fresh data.

use futures::StreamExt;
use serde::Serialize;
use tracing::{Instrument, info, info_span, warn};

use super::{Medium, fan_out};
use crate::ports::{StoreError, TenantStore};
use crate::reconcile::{Action, Outcome, Reconciler};
use model::spec::TenantKey;

/// What one sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    pub tenants: usize,
    pub converged: usize,
    pub in_flight: usize,
    pub failed: usize,
    pub retrying: usize,
    pub errors: usize,
}

/// Reconciles every tenant, `concurrency` at a time, page by page. A tenant whose reconcile
/// asks for a quick retry gets it in the next pass over its page, up to `quick_retries` more
/// passes (STATUS counts each, so the retry policy moves it to backoff after them); it does
/// not wait for the next sweep.
pub async fn sweep(
    store: &dyn TenantStore,
    reconciler: &Reconciler,
    concurrency: usize,
) -> Result<SweepReport, StoreError> {
    let mut report = SweepReport::default();
    let mut token = None;
    loop {
        let (page, next) = store.list_tenants(token).await?;
        report.tenants += page.len();
        let mut work: Vec<(TenantKey, ())> = page.into_iter().map(|t| (t, ())).collect();
        for pass in 0..=reconciler.settings().quick_retries {
            let last = pass == reconciler.settings().quick_retries;
            let handled = fan_out(
                reconciler,
                Medium::Sweep,
                concurrency,
                work,
                |tenant| async move { reconciler.reconcile(&tenant).await },
            )
            .await;
            work = Vec::new();
            for handled in handled {
                if handled.action == Action::RetryNow && !last {
                    work.push((handled.tenant, ()));
                    continue;
                }
                match handled.result {
                    Ok(Outcome::Converged(_)) => report.converged += 1,
                    // Its re-check could not be scheduled: only the next sweep looks again.
                    Ok(Outcome::InFlight { .. }) if handled.redeliver => report.errors += 1,
                    Ok(Outcome::InFlight { .. }) => report.in_flight += 1,
                    Ok(Outcome::Failed { .. }) => report.failed += 1,
                    Ok(Outcome::Retrying { .. }) => report.retrying += 1,
                    Ok(Outcome::Unpublished { outcome, .. }) => match *outcome {
                        Outcome::Failed { .. } => report.failed += 1,
                        _ => report.converged += 1,
                    },
                    Err(error) => {
                        warn!(%error, "reconcile failed; the next sweep tries again");
                        report.errors += 1;
                    }
                }
            }
            if work.is_empty() {
                break;
            }
        }
        match next {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    info!(?report, "sweep done");
    Ok(report)
}

/// Runs `visit` on every tenant (SPEC or STATUS row), `concurrency` at a time, page by page
/// through the sparse `tenants` index, each in its tenant's log span; `tally` sees each result.
pub async fn for_each_tenant<T, F, Fut>(
    store: &dyn TenantStore,
    concurrency: usize,
    visit: F,
    mut tally: impl FnMut(T),
) -> Result<(), StoreError>
where
    F: Fn(TenantKey) -> Fut,
    Fut: Future<Output = T>,
{
    let mut token = None;
    loop {
        let (tenants, next) = store.list_tenants(token).await?;
        let results = futures::stream::iter(tenants)
            .map(|tenant| {
                let span = info_span!("tenant", tenant_id = %tenant);
                visit(tenant).instrument(span)
            })
            .buffer_unordered(concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        results.into_iter().for_each(&mut tally);
        match next {
            Some(next) => token = Some(next),
            None => return Ok(()),
        }
    }
}

/// Every tenant (SPEC or STATUS row), all pages read.
pub async fn all_tenants(store: &dyn TenantStore) -> Result<Vec<TenantKey>, StoreError> {
    let mut tenants = Vec::new();
    let mut token = None;
    loop {
        let (page, next) = store.list_tenants(token).await?;
        tenants.extend(page);
        match next {
            Some(next) => token = Some(next),
            None => return Ok(tenants),
        }
    }
}
