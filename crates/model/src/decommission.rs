//! What decommission does with one tenant now, decided from its SPEC's `decommission_date`
//! and its STATUS: pure. The grace period runs from the announcement, not from the date: a job
//! that ran late never removes a tenant its subscribers were not told about. The job that acts
//! on it is controlplane's `triggers::decommission`.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::spec::decommission_instant;
use crate::status::{DecommissionNotice, TenantStatus};
use crate::time::rfc3339;

/// What decommission does with one tenant now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// No date, or a date still ahead.
    NotDue,
    /// Never reconciled yet: nothing to announce from; picked up next time.
    NotProvisioned,
    /// An operation is in flight: picked up next time.
    Busy,
    /// The date passed: announce it and start the grace period.
    Announce(DecommissionNotice),
    /// A decommission was announced but the SPEC no longer names a passed date (the writer
    /// cleared or moved it): withdraw the notice, so a date set again is announced again.
    Withdraw,
    /// Announced; the grace period runs until this instant.
    InGrace { remove_after: String },
    /// The grace period is over: remove the SPEC.
    Remove,
}

/// Decides what to do with one tenant: pure.
pub fn plan(
    decommission_date: Option<&str>,
    status: Option<&TenantStatus>,
    now: DateTime<Utc>,
    grace: Duration,
) -> Step {
    let due = decommission_date
        .and_then(|d| Some((d, decommission_instant(d)?)))
        .filter(|(_, when)| *when <= now);
    let Some((date, _)) = due else {
        return match status {
            Some(s) if s.decommission_notice.is_some() && !s.status.is_in_flight() => {
                Step::Withdraw
            }
            _ => Step::NotDue,
        };
    };
    let Some(status) = status else {
        return Step::NotProvisioned;
    };
    if status.status.is_in_flight() {
        return Step::Busy;
    }
    match &status.decommission_notice {
        Some(notice) if notice.date == date => {
            let ends = crate::time::parse(&notice.remove_after);
            // The announced end is a promise: never removed a moment before it (the hourly
            // schedule removes it within the hour after).
            match ends {
                Some(ends) if ends > now => Step::InGrace {
                    remove_after: notice.remove_after.clone(),
                },
                // An unreadable end cannot hold a removal forever: the notice was given.
                _ => Step::Remove,
            }
        }
        // Never announced, or announced for another date (the writer moved it).
        _ => {
            let ends = chrono::Duration::from_std(grace)
                .ok()
                .and_then(|grace| now.checked_add_signed(grace))
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
            Step::Announce(DecommissionNotice {
                date: date.to_owned(),
                announced_at: rfc3339(now),
                remove_after: rfc3339(ends),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{Operation, Status};

    const DAY: Duration = Duration::from_secs(86_400);

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn status(status: Status, notice: Option<DecommissionNotice>) -> TenantStatus {
        TenantStatus {
            operation: Some(Operation::Create),
            version: 3,
            decommission_notice: notice,
            ..TenantStatus::new("gs1234", status, "2026-11-01T00:00:00.000Z")
        }
    }

    fn notice(date: &str, remove_after: &str) -> DecommissionNotice {
        DecommissionNotice {
            date: date.into(),
            announced_at: "2026-11-20T00:00:00.000Z".into(),
            remove_after: remove_after.into(),
        }
    }

    #[test]
    fn future_missing_and_unreadable_dates_are_not_due() {
        let ready = status(Status::Ready, None);
        for date in [
            None,
            Some("2026-12-01"),
            Some("2026-11-23T12:00:01Z"),
            Some("soon"),
        ] {
            assert_eq!(
                plan(date, Some(&ready), now(), DAY),
                Step::NotDue,
                "{date:?}"
            );
        }
    }

    #[test]
    fn a_passed_date_is_announced_with_the_grace_period_from_now() {
        let ready = status(Status::Ready, None);
        for date in ["2026-11-23", "2026-11-23T12:00:00Z", "2020-01-01"] {
            let Step::Announce(notice) = plan(Some(date), Some(&ready), now(), DAY) else {
                panic!("{date} should be announced");
            };
            assert_eq!(notice.date, date);
            assert_eq!(notice.announced_at, "2026-11-23T12:00:00.000Z");
            assert_eq!(notice.remove_after, "2026-11-24T12:00:00.000Z");
        }
        // Failed tenants are decommissioned too.
        let failed = status(Status::Failed, None);
        assert!(matches!(
            plan(Some("2026-11-01"), Some(&failed), now(), DAY),
            Step::Announce(_)
        ));
    }

    #[test]
    fn tenants_mid_operation_or_never_reconciled_are_skipped() {
        for in_flight in [Status::Creating, Status::Updating, Status::Deleting] {
            let busy = status(in_flight, None);
            assert_eq!(
                plan(Some("2026-11-01"), Some(&busy), now(), DAY),
                Step::Busy
            );
        }
        assert_eq!(
            plan(Some("2026-11-01"), None, now(), DAY),
            Step::NotProvisioned
        );
    }

    #[test]
    fn removal_waits_for_the_end_of_the_announced_grace_period() {
        let waiting = status(
            Status::Ready,
            Some(notice("2026-11-01", "2026-11-23T12:30:00.000Z")),
        );
        assert_eq!(
            plan(Some("2026-11-01"), Some(&waiting), now(), DAY),
            Step::InGrace {
                remove_after: "2026-11-23T12:30:00.000Z".into()
            }
        );
    }

    /// A grace period of any length is kept whole, to the millisecond: a run one second before
    /// the announced end removes nothing (not even a run early by the schedule's jitter), a
    /// run at the end removes the SPEC.
    #[test]
    fn a_grace_period_is_kept_whole_to_its_announced_end() {
        for grace in [Duration::from_secs(120), DAY, Duration::ZERO] {
            let ends_in_a_second = status(
                Status::Ready,
                Some(notice("2026-11-01", "2026-11-23T12:00:01.000Z")),
            );
            assert_eq!(
                plan(Some("2026-11-01"), Some(&ends_in_a_second), now(), grace),
                Step::InGrace {
                    remove_after: "2026-11-23T12:00:01.000Z".into()
                },
                "{grace:?}"
            );
            let ends_now = status(
                Status::Ready,
                Some(notice("2026-11-01", "2026-11-23T12:00:00.000Z")),
            );
            assert_eq!(
                plan(Some("2026-11-01"), Some(&ends_now), now(), grace),
                Step::Remove,
                "{grace:?}"
            );
        }
    }

    #[test]
    fn a_moved_date_is_announced_again() {
        let announced = status(
            Status::Ready,
            Some(notice("2026-11-01", "2026-11-02T00:00:00.000Z")),
        );
        assert!(matches!(
            plan(Some("2026-11-20"), Some(&announced), now(), DAY),
            Step::Announce(n) if n.date == "2026-11-20"
        ));
        // Moved into the future, or cleared: the notice is withdrawn, so the date is announced
        // afresh if it is ever set again.
        assert_eq!(
            plan(Some("2027-01-01"), Some(&announced), now(), DAY),
            Step::Withdraw
        );
        assert_eq!(plan(None, Some(&announced), now(), DAY), Step::Withdraw);
        // ...but not in the middle of an operation.
        let mut busy = announced.clone();
        busy.status = Status::Updating;
        assert_eq!(plan(None, Some(&busy), now(), DAY), Step::NotDue);
    }

    #[test]
    fn an_enormous_grace_period_never_overflows() {
        let ready = status(Status::Ready, None);
        let step = plan(Some("2026-11-01"), Some(&ready), now(), Duration::MAX);
        let Step::Announce(notice) = step else {
            panic!("announced, got {step:?}");
        };
        assert_ne!(notice.remove_after, notice.announced_at);
    }
}
