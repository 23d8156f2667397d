//! The triggers: each turns what woke it (stream records, queue messages, a schedule) into
//! tenants, and [`fan_out`] reconciles them and carries out each reconcile's [`Action`] in the
//! trigger's own medium. The reconcile itself never touches a queue (kube's contract).
//!
//! | action            | stream                | queue (re-checks, stream failures) | sweep            |
//! |-------------------|-----------------------|------------------------------------|------------------|
//! | `Done`            | -                     | -                                  | -                |
//! | `RequeueAfter(d)` | re-check after `d`    | re-check after `d`                 | re-check after `d` |
//! | `RetryNow`        | batch item failure    | re-check after `requeue_min`       | the next pass    |
//! | `Redeliver`       | batch item failure    | message back to the queue          | the next sweep   |
//!
//! A re-check that cannot be sent is redelivered instead: nothing else would come back.

pub mod completion;
pub mod decommission;
pub mod drift;
pub mod stream;
pub mod stream_failures;
pub mod sweep;

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::reconcile::{Action, Outcome, Reconciler, TransientError, action_of};
use model::spec::TenantKey;

/// Where a trigger's work came from, which decides how a retry is carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Medium {
    /// A DynamoDB stream batch: Lambda retries what is reported back, from its lowest record.
    Stream,
    /// An SQS queue: a delayed message comes back by itself; a failed one after the
    /// visibility timeout.
    Queue,
    /// The scheduled sweep: a quick retry runs in its next pass; anything else in the next sweep.
    Sweep,
}

/// One tenant a trigger handed to [`fan_out`], and what came of it.
#[derive(Debug)]
pub struct Handled<T> {
    pub tenant: TenantKey,
    /// What the trigger keeps with the tenant (its records' sequence number, its message ids).
    pub payload: T,
    pub result: Result<Outcome, TransientError>,
    pub action: Action,
    /// The medium must deliver this tenant's trigger again (Stream, Queue: report it back;
    /// Sweep: its next pass, for a quick retry, or the next sweep).
    pub redeliver: bool,
}

/// Reconciles every tenant of `work` through `visit` (normally [`Reconciler::reconcile`]),
/// `concurrency` at a time, each in its tenant's log span, and carries out each result's
/// action in `medium`.
pub async fn fan_out<T, F, Fut>(
    reconciler: &Reconciler,
    medium: Medium,
    concurrency: usize,
    work: impl IntoIterator<Item = (TenantKey, T)>,
    visit: F,
) -> Vec<Handled<T>>
where
    F: Fn(TenantKey) -> Fut,
    Fut: Future<Output = Result<Outcome, TransientError>>,
{
    let visit = &visit;
    futures::stream::iter(work)
        .map(|(tenant, payload)| {
            let span = info_span!("tenant", tenant_id = %tenant);
            async move {
                let result = visit(tenant.clone()).await;
                let action = action_of(&result);
                info!(outcome = ?result, ?action, "tenant reconciled");
                let redeliver = carry_out(reconciler, medium, &tenant, action).await;
                Handled {
                    tenant,
                    payload,
                    result,
                    action,
                    redeliver,
                }
            }
            .instrument(span)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await
}

/// Carries out `action` for `tenant` in `medium`; whether the medium must deliver it again.
async fn carry_out(
    reconciler: &Reconciler,
    medium: Medium,
    tenant: &TenantKey,
    action: Action,
) -> bool {
    match (action, medium) {
        (Action::Done, _) => false,
        (Action::Redeliver, _) | (Action::RetryNow, Medium::Stream | Medium::Sweep) => {
            debug!(?action, ?medium, "to be delivered again");
            true
        }
        // A quick retry through the queue itself: a redelivered message would only come back
        // after the visibility timeout.
        (Action::RetryNow, Medium::Queue) => {
            !schedule_recheck(reconciler, tenant, reconciler.settings().requeue_min).await
        }
        (Action::RequeueAfter(after), _) => !schedule_recheck(reconciler, tenant, after).await,
    }
}

/// Schedules a re-check of `tenant` after `after` (nothing to do without a queue: the caller
/// follows up itself); whether it was scheduled.
async fn schedule_recheck(reconciler: &Reconciler, tenant: &TenantKey, after: Duration) -> bool {
    let Some(recheck) = reconciler.recheck() else {
        return true;
    };
    match recheck.schedule(tenant, after).await {
        Ok(()) => {
            debug!(after_s = after.as_secs(), "re-check scheduled");
            true
        }
        Err(e) => {
            warn!(error = %e, "re-check not scheduled; to be delivered again");
            false
        }
    }
}

/// Reconciles one tenant and carries out its action in `medium`, as a trigger of that medium
/// would: for callers outside a trigger (simulations, the CLI, tests).
pub async fn reconcile_in(
    reconciler: &Reconciler,
    medium: Medium,
    tenant: &TenantKey,
) -> Handled<()> {
    let mut handled = fan_out(
        reconciler,
        medium,
        1,
        [(tenant.clone(), ())],
        |tenant| async move { reconciler.reconcile(&tenant).await },
    )
    .await;
    handled.pop().unwrap_or_else(|| Handled {
        tenant: tenant.clone(),
        payload: (),
        result: Err(TransientError("the tenant was not reconciled".into())),
        action: Action::Redeliver,
        redeliver: true,
    })
}

/// [`reconcile_in`] the queue medium: a re-check is scheduled for an operation in flight or a
/// retry. Returns the reconcile's result; a re-check that could not be sent is an error.
pub async fn reconcile_now(
    reconciler: &Reconciler,
    tenant: &TenantKey,
) -> Result<Outcome, TransientError> {
    let handled = reconcile_in(reconciler, Medium::Queue, tenant).await;
    match (handled.result, handled.redeliver) {
        (Ok(_), true) => Err(TransientError(
            "the tenant's re-check could not be scheduled".into(),
        )),
        (result, _) => result,
    }
}
