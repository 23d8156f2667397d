//! Metrics, recorded through the `metrics` facade and emitted by the functions as CloudWatch
//! Embedded Metric Format lines (`metrics_cloudwatch_embedded`, flushed after each invocation).
//!
//! - `TenantsByStatus` (dimension `Status`, every status, zeros included), `TenantsStuck`
//!   (an operation in flight longer than the stuck threshold) and `Tenants`: from the scheduled
//!   metrics job, which reads only the sparse `by-status` index.
//! - `OperationDuration` (ms, dimension `Operation`): a stack operation's start to its recorded end.
//! - `DriftChecks` (dimension `DriftStatus`: `in_sync`, `drifted`, `not_checked`): one per stack
//!   the drift job checked.
//! - `TenantFailures` (a tenant recorded failed for good) and `TransientFailures` (recorded
//!   failed, retryable): from every reconcile.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ports::{StoreError, TenantStore};
use model::status::{Status, TenantStatus};

pub const TENANTS_BY_STATUS: &str = "TenantsByStatus";
pub const TENANTS_STUCK: &str = "TenantsStuck";
pub const TENANTS: &str = "Tenants";
pub const OPERATION_DURATION: &str = "OperationDuration";
pub const TENANT_FAILURES: &str = "TenantFailures";
pub const TRANSIENT_FAILURES: &str = "TransientFailures";
pub const DRIFT_CHECKS: &str = "DriftChecks";

/// The namespace when METRICS_NAMESPACE is unset.
pub const DEFAULT_NAMESPACE: &str = "TenantControlPlane";
/// An operation in flight longer than this counts as stuck (STUCK_AFTER_MINUTES).
pub const DEFAULT_STUCK_AFTER: Duration = Duration::from_secs(3600);

pub const ALL_STATUSES: [Status; 6] = [
    Status::Creating,
    Status::Updating,
    Status::Deleting,
    Status::Ready,
    Status::Failed,
    Status::Deleted,
];

/// Units and descriptions, for the EMF recorder.
pub fn describe() {
    metrics::describe_gauge!(
        TENANTS_BY_STATUS,
        metrics::Unit::Count,
        "Tenants in each status"
    );
    metrics::describe_gauge!(
        TENANTS_STUCK,
        metrics::Unit::Count,
        "Operations in flight too long"
    );
    metrics::describe_gauge!(TENANTS, metrics::Unit::Count, "Tenants with a STATUS row");
    metrics::describe_histogram!(
        OPERATION_DURATION,
        metrics::Unit::Milliseconds,
        "Stack operation start to recorded end"
    );
    metrics::describe_counter!(
        TENANT_FAILURES,
        metrics::Unit::Count,
        "Tenants failed for good"
    );
    metrics::describe_counter!(
        DRIFT_CHECKS,
        metrics::Unit::Count,
        "Stacks the drift job checked, by what it found"
    );
    metrics::describe_counter!(
        TRANSIENT_FAILURES,
        metrics::Unit::Count,
        "Failures recorded that may heal"
    );
}

/// Tenants per status (every status present, zeros included), and those stuck in flight.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FleetCounts {
    pub by_status: BTreeMap<&'static str, u64>,
    pub stuck: u64,
    pub total: u64,
}

impl Default for FleetCounts {
    fn default() -> Self {
        Self {
            by_status: ALL_STATUSES.iter().map(|s| (s.as_str(), 0)).collect(),
            stuck: 0,
            total: 0,
        }
    }
}

impl FleetCounts {
    /// Counts one tenant in `status` whose STATUS was last written at `updated_at`.
    pub fn add(
        &mut self,
        status: Status,
        updated_at: &str,
        now: DateTime<Utc>,
        stuck_after: Duration,
    ) {
        *self.by_status.entry(status.as_str()).or_default() += 1;
        self.total += 1;
        if status.is_in_flight() {
            let started = model::time::parse(updated_at);
            // An unreadable start cannot prove the operation is young.
            let running = started.map_or(Duration::MAX, |t| (now - t).to_std().unwrap_or_default());
            if running > stuck_after {
                self.stuck += 1;
            }
        }
    }

    /// Sets the gauges the recorder emits.
    pub fn record(&self) {
        for (status, count) in &self.by_status {
            metrics::gauge!(TENANTS_BY_STATUS, "Status" => *status).set(*count as f64);
        }
        metrics::gauge!(TENANTS_STUCK).set(self.stuck as f64);
        metrics::gauge!(TENANTS).set(self.total as f64);
    }
}

/// Counts the fleet through the `by-status` index (no tenant is loaded, no audit item read).
pub async fn count_fleet(
    store: &dyn TenantStore,
    now: DateTime<Utc>,
    stuck_after: Duration,
) -> Result<FleetCounts, StoreError> {
    let mut counts = FleetCounts::default();
    for status in ALL_STATUSES {
        let mut token = None;
        loop {
            let (page, next) = store.list_in_status(status, token).await?;
            for tenant in &page {
                counts.add(status, &tenant.updated_at, now, stuck_after);
            }
            match next {
                Some(next) => token = Some(next),
                None => break,
            }
        }
    }
    Ok(counts)
}

/// Records what a STATUS write says about operations: how long one took, whether it failed.
/// One stack checked by the drift job, counted under what it found.
pub fn record_drift(status: model::drift::DriftStatus) {
    metrics::counter!(DRIFT_CHECKS, "DriftStatus" => status.as_str()).increment(1);
}

pub fn record_transition(previous: Option<&TenantStatus>, next: &TenantStatus, now: DateTime<Utc>) {
    if next.status == Status::Failed
        && previous.map(|p| (p.status, &p.reason)) != Some((next.status, &next.reason))
    {
        if next.retryable {
            metrics::counter!(TRANSIENT_FAILURES).increment(1);
        } else {
            metrics::counter!(TENANT_FAILURES).increment(1);
        }
    }
    let Some(previous) = previous.filter(|p| p.status.is_in_flight()) else {
        return;
    };
    if next.status.is_in_flight() {
        return;
    }
    let Some(operation) = previous.operation else {
        return;
    };
    if let Some(started) = model::time::parse(&previous.updated_at)
        && let Ok(took) = (now - started).to_std()
    {
        metrics::histogram!(OPERATION_DURATION, "Operation" => operation.as_str())
            .record(took.as_millis() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn every_status_is_counted_zeros_included() {
        let counts = FleetCounts::default();
        assert_eq!(counts.by_status.len(), 6);
        assert!(counts.by_status.values().all(|n| *n == 0));
    }

    #[test]
    fn only_operations_in_flight_past_the_threshold_are_stuck() {
        let mut counts = FleetCounts::default();
        let hour = Duration::from_secs(3600);
        counts.add(Status::Creating, "2026-11-23T11:30:00Z", now(), hour);
        counts.add(Status::Updating, "2026-11-23T10:00:00Z", now(), hour);
        counts.add(Status::Deleting, "not a time", now(), hour);
        // A tenant failed or ready for days is not stuck: it is where it was left.
        counts.add(Status::Failed, "2026-11-01T00:00:00Z", now(), hour);
        counts.add(Status::Ready, "2026-11-01T00:00:00Z", now(), hour);
        assert_eq!(counts.stuck, 2);
        assert_eq!(counts.total, 5);
        assert_eq!(counts.by_status["creating"], 1);
        assert_eq!(counts.by_status["deleted"], 0);
    }
}
