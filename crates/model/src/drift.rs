//! Drift: what a tenant's resources look like next to what its stack says they should be.
//!
//! The drift job runs CloudFormation's drift detection on every settled stack and records the
//! result on STATUS (`drift`); the reconcile reads it and, when the tenant's drift policy says
//! `revert`, reverts it once per detection with a drift-aware change set. Everything here is
//! pure: what to record, what fits in the row, when a tenant is due, whether to revert.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::status::{Status, TenantStatus};

/// What the control plane does with a drifted stack: a deployment's default (DRIFT_POLICY),
/// overridden per tenant by SPEC `drift_policy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftPolicy {
    /// Record it, count it, announce it; change nothing.
    #[default]
    Report,
    /// Also bring the resources back to the template (a REVERT_DRIFT change set), once per
    /// detection.
    Revert,
}

impl DriftPolicy {
    pub const NAMES: [&'static str; 2] = ["report", "revert"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Report => "report",
            Self::Revert => "revert",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "report" => Some(Self::Report),
            "revert" => Some(Self::Revert),
            _ => None,
        }
    }
}

/// A stack's drift, as the last check found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftStatus {
    InSync,
    Drifted,
    /// The check did not finish (refused, failed, throttled past its budget, or timed out):
    /// `reason` says why.
    NotChecked,
}

impl DriftStatus {
    pub const ALL: [DriftStatus; 3] = [Self::InSync, Self::Drifted, Self::NotChecked];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InSync => "in_sync",
            Self::Drifted => "drifted",
            Self::NotChecked => "not_checked",
        }
    }
}

/// How one property differs (CloudFormation's PropertyDifference).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PropertyDifference {
    /// The property's JSON path, e.g. `/VisibilityTimeout`.
    pub path: String,
    /// `ADD`, `REMOVE` or `NOT_EQUAL`.
    pub kind: String,
    pub expected: String,
    pub actual: String,
}

/// A resource that is not as its template says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceDrift {
    pub logical_id: String,
    pub resource_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_id: Option<String>,
    /// `MODIFIED` or `DELETED`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<PropertyDifference>,
}

/// A property a revert leaves as it is (CloudFormation's ResourceDriftIgnoredAttribute).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotReverted {
    pub logical_id: String,
    pub path: String,
    /// `WRITE_ONLY_PROPERTY`, `MANAGED_BY_AWS`, `SENSITIVE_PROPERTY`.
    pub reason: String,
}

/// A revert started for one detection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftRevert {
    /// RFC 3339.
    pub started_at: String,
    /// What the drift-aware change set said it cannot bring back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_reverted: Vec<NotReverted>,
    /// The change set had nothing to revert (CloudFormation saw no drift to act on).
    #[serde(default)]
    pub nothing_to_revert: bool,
    /// CloudFormation refused the revert, in its words (the stack was left as it was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

/// STATUS `drift`: the last check of the tenant's stack.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftRecord {
    pub status: DriftStatus,
    /// RFC 3339: when the check ended.
    pub checked_at: String,
    /// The drifted resources (MODIFIED or DELETED), as many as fit in the row.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ResourceDrift>,
    /// How many drifted resources there were in all (more than `resources` when some did not fit).
    #[serde(default)]
    pub drifted_count: usize,
    /// Property differences left out to keep the row within DynamoDB's item limit.
    #[serde(default)]
    pub omitted_differences: usize,
    /// Why the check did not finish, or CloudFormation's reason for a partial detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The revert started for this detection, if any (at most one per detection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert: Option<DriftRevert>,
}

/// What one check found, before it is shaped into a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Detection {
    InSync,
    Drifted {
        resources: Vec<ResourceDrift>,
        /// CloudFormation's reason when some resources could not be checked.
        reason: Option<String>,
    },
    NotChecked {
        reason: String,
    },
}

/// The longest property value kept (expected or actual); longer ones end in "…".
pub const VALUE_MAX: usize = 512;
/// The bytes of resource detail a record may hold: well inside DynamoDB's 400 KB item, with
/// room for the rest of STATUS (outputs, outbox).
pub const DETAIL_BUDGET: usize = 64 * 1024;
/// The longest reason kept.
pub const REASON_MAX: usize = 1024;

fn clipped(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn resource_cost(r: &ResourceDrift) -> usize {
    r.logical_id.len()
        + r.resource_type.len()
        + r.physical_id.as_ref().map_or(0, String::len)
        + r.status.len()
        + 64
}

fn difference_cost(d: &PropertyDifference) -> usize {
    d.path.len() + d.kind.len() + d.expected.len() + d.actual.len() + 48
}

impl DriftRecord {
    /// The record of `detection`, ended at `now`, clipped to fit STATUS: values to
    /// [`VALUE_MAX`], resource detail to [`DETAIL_BUDGET`] (what is left out is counted, and
    /// the resources are kept in logical-id order so the same drift records the same way).
    pub fn of(detection: Detection, now: DateTime<Utc>) -> Self {
        let checked_at = crate::time::rfc3339(now);
        let (status, mut resources, reason) = match detection {
            Detection::InSync => (DriftStatus::InSync, Vec::new(), None),
            Detection::Drifted { resources, reason } => (DriftStatus::Drifted, resources, reason),
            Detection::NotChecked { reason } => (DriftStatus::NotChecked, Vec::new(), Some(reason)),
        };
        resources.sort_by(|a, b| a.logical_id.cmp(&b.logical_id));
        let drifted_count = resources.len();
        let mut budget = DETAIL_BUDGET;
        let mut omitted_differences = 0;
        let mut kept = Vec::new();
        for mut resource in resources {
            let cost = resource_cost(&resource);
            if cost > budget {
                omitted_differences += resource.differences.len();
                continue;
            }
            budget -= cost;
            let differences = std::mem::take(&mut resource.differences);
            for mut difference in differences {
                difference.expected = clipped(&difference.expected, VALUE_MAX);
                difference.actual = clipped(&difference.actual, VALUE_MAX);
                difference.path = clipped(&difference.path, VALUE_MAX);
                let cost = difference_cost(&difference);
                if cost > budget {
                    omitted_differences += 1;
                    continue;
                }
                budget -= cost;
                resource.differences.push(difference);
            }
            kept.push(resource);
        }
        Self {
            status,
            checked_at,
            resources: kept,
            drifted_count,
            omitted_differences,
            reason: reason.map(|r| clipped(&r, REASON_MAX)),
            revert: None,
        }
    }

    /// One line for people: `drifted: Queue (MODIFIED), Topic (DELETED)`.
    pub fn summary(&self) -> String {
        match self.status {
            DriftStatus::Drifted => {
                let mut names: Vec<String> = self
                    .resources
                    .iter()
                    .map(|r| format!("{} ({})", r.logical_id, r.status))
                    .collect();
                if self.drifted_count > self.resources.len() {
                    names.push(format!(
                        "{} more",
                        self.drifted_count - self.resources.len()
                    ));
                }
                format!(
                    "{} resource{} drifted: {}",
                    self.drifted_count,
                    if self.drifted_count == 1 { "" } else { "s" },
                    names.join(", ")
                )
            }
            DriftStatus::InSync => "in sync".into(),
            DriftStatus::NotChecked => format!(
                "not checked: {}",
                self.reason.as_deref().unwrap_or("no reason given")
            ),
        }
    }

    fn drifted_set(&self) -> BTreeSet<(&str, &str)> {
        self.resources
            .iter()
            .map(|r| (r.logical_id.as_str(), r.status.as_str()))
            .collect()
    }
}

/// Whether `next` is news subscribers hear of: the stack drifted when it was not, or other
/// resources drifted than before. A not-checked look in between changes nothing.
pub fn newly_drifted(previous: Option<&DriftRecord>, next: &DriftRecord) -> bool {
    if next.status != DriftStatus::Drifted {
        return false;
    }
    match previous {
        Some(p) if p.status == DriftStatus::Drifted => p.drifted_set() != next.drifted_set(),
        _ => true,
    }
}

/// The record to store after a check: `next`, except that a check that did not finish keeps
/// what the last finished one found (and its revert), and says why this one did not.
pub fn merged(previous: Option<&DriftRecord>, next: DriftRecord) -> DriftRecord {
    match previous {
        Some(p)
            if next.status == DriftStatus::NotChecked && p.status != DriftStatus::NotChecked =>
        {
            DriftRecord {
                reason: next.reason,
                checked_at: next.checked_at,
                status: DriftStatus::NotChecked,
                ..p.clone()
            }
        }
        _ => next,
    }
}

/// Whether the drift job should look at this tenant now: a settled stack (ready), not looked
/// at within `interval`.
pub fn due_for_check(status: &TenantStatus, now: DateTime<Utc>, interval: Duration) -> bool {
    if status.status != Status::Ready || status.stack_id.is_none() || status.location.is_none() {
        return false;
    }
    let Some(last) = status
        .drift
        .as_ref()
        .and_then(|d| crate::time::parse(&d.checked_at))
    else {
        return true;
    };
    let interval = chrono::Duration::from_std(interval).unwrap_or(chrono::Duration::MAX);
    now - last >= interval
}

/// Whether the reconcile should revert this tenant's drift: its policy says so, the last check
/// found drift, and no revert was started for that check yet (one per detection, so a revert
/// that cannot bring something back is not repeated until the next check sees it again).
pub fn revert_due(policy: DriftPolicy, status: &TenantStatus) -> bool {
    policy == DriftPolicy::Revert
        && status.status == Status::Ready
        && status
            .drift
            .as_ref()
            .is_some_and(|d| d.status == DriftStatus::Drifted && d.revert.is_none())
}

/// The revert's own record: the drift it acts on, with when it started.
pub fn reverting(record: &DriftRecord, now: DateTime<Utc>) -> DriftRecord {
    DriftRecord {
        revert: Some(DriftRevert {
            started_at: crate::time::rfc3339(now),
            not_reverted: Vec::new(),
            nothing_to_revert: false,
            failed: None,
        }),
        ..record.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::StackLocation;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn modified(id: &str, differences: usize, value_len: usize) -> ResourceDrift {
        ResourceDrift {
            logical_id: id.into(),
            resource_type: "AWS::SQS::Queue".into(),
            physical_id: Some(format!("https://sqs/{id}")),
            status: "MODIFIED".into(),
            differences: (0..differences)
                .map(|i| PropertyDifference {
                    path: format!("/Prop{i}"),
                    kind: "NOT_EQUAL".into(),
                    expected: "x".repeat(value_len),
                    actual: "y".repeat(value_len),
                })
                .collect(),
        }
    }

    fn queue_drifted(now: DateTime<Utc>) -> DriftRecord {
        DriftRecord::of(
            Detection::Drifted {
                resources: vec![modified("Queue", 1, 1)],
                reason: None,
            },
            now,
        )
    }

    fn ready(drift: Option<DriftRecord>) -> TenantStatus {
        TenantStatus {
            stack_id: Some("arn:stack".into()),
            location: Some(StackLocation {
                account_id: "111111111111".into(),
                region: "us-east-1".into(),
                stack_name: "tenant-gs1234".into(),
            }),
            drift,
            ..TenantStatus::new("gs1234", Status::Ready, "2026-12-01T00:00:00.000Z")
        }
    }

    #[test]
    fn a_drifted_detection_records_its_resources_in_order() {
        let record = DriftRecord::of(
            Detection::Drifted {
                resources: vec![modified("Queue", 1, 4), modified("Alpha", 0, 0)],
                reason: None,
            },
            at("2026-12-04T00:00:00Z"),
        );
        assert_eq!(record.status, DriftStatus::Drifted);
        assert_eq!(record.drifted_count, 2);
        assert_eq!(record.resources[0].logical_id, "Alpha");
        assert_eq!(record.omitted_differences, 0);
        assert_eq!(record.checked_at, "2026-12-04T00:00:00.000Z");
        assert_eq!(
            record.summary(),
            "2 resources drifted: Alpha (MODIFIED), Queue (MODIFIED)"
        );
    }

    #[test]
    fn huge_drift_is_clipped_to_fit_the_row_and_what_is_left_out_is_counted() {
        let resources: Vec<_> = (0..500)
            .map(|i| modified(&format!("R{i:03}"), 10, 4000))
            .collect();
        let record = DriftRecord::of(
            Detection::Drifted {
                resources,
                reason: None,
            },
            at("2026-12-04T00:00:00Z"),
        );
        let bytes = serde_json::to_vec(&record).unwrap().len();
        assert!(bytes < DETAIL_BUDGET + 16 * 1024, "{bytes} bytes");
        assert_eq!(record.drifted_count, 500);
        assert!(record.omitted_differences > 0);
        let kept: usize = record.resources.iter().map(|r| r.differences.len()).sum();
        assert_eq!(kept + record.omitted_differences, 5000);
        assert!(
            record
                .resources
                .iter()
                .flat_map(|r| &r.differences)
                .all(|d| d.expected.chars().count() <= VALUE_MAX + 1)
        );
        assert!(record.summary().contains("more"), "{}", record.summary());
    }

    #[test]
    fn clipping_never_splits_a_character() {
        assert_eq!(clipped("ééé", 3), "é…");
        assert_eq!(clipped("abc", 3), "abc");
    }

    #[test]
    fn news_is_a_new_drift_or_other_resources_drifting() {
        let now = at("2026-12-04T00:00:00Z");
        let drifted = |ids: &[&str]| {
            DriftRecord::of(
                Detection::Drifted {
                    resources: ids.iter().map(|id| modified(id, 1, 1)).collect(),
                    reason: None,
                },
                now,
            )
        };
        let in_sync = DriftRecord::of(Detection::InSync, now);
        assert!(newly_drifted(None, &drifted(&["A"])));
        assert!(newly_drifted(Some(&in_sync), &drifted(&["A"])));
        assert!(!newly_drifted(Some(&drifted(&["A"])), &drifted(&["A"])));
        assert!(newly_drifted(Some(&drifted(&["A"])), &drifted(&["A", "B"])));
        assert!(!newly_drifted(Some(&drifted(&["A"])), &in_sync));
    }

    #[test]
    fn a_check_that_did_not_finish_keeps_the_last_finding() {
        let now = at("2026-12-04T00:00:00Z");
        let drifted = queue_drifted(now);
        let later = at("2026-12-05T00:00:00Z");
        let not_checked = DriftRecord::of(
            Detection::NotChecked {
                reason: "throttled".into(),
            },
            later,
        );
        let kept = merged(Some(&drifted), not_checked.clone());
        assert_eq!(kept.status, DriftStatus::NotChecked);
        assert_eq!(kept.resources, drifted.resources);
        assert_eq!(kept.reason.as_deref(), Some("throttled"));
        assert_eq!(kept.checked_at, "2026-12-05T00:00:00.000Z");
        assert_eq!(merged(None, not_checked.clone()), not_checked);
    }

    #[test]
    fn only_settled_stacks_not_checked_lately_are_due() {
        let now = at("2026-12-04T12:00:00Z");
        let day = Duration::from_secs(86_400);
        assert!(due_for_check(&ready(None), now, day));
        let checked = |when: &str| ready(Some(DriftRecord::of(Detection::InSync, at(when))));
        assert!(!due_for_check(&checked("2026-12-04T00:00:00Z"), now, day));
        assert!(due_for_check(&checked("2026-12-03T12:00:00Z"), now, day));
        let mut updating = ready(None);
        updating.status = Status::Updating;
        assert!(!due_for_check(&updating, now, day));
        let mut no_stack = ready(None);
        no_stack.stack_id = None;
        assert!(!due_for_check(&no_stack, now, day));
    }

    #[test]
    fn a_revert_is_due_once_per_detection_and_only_by_policy() {
        let now = at("2026-12-04T00:00:00Z");
        let drifted = queue_drifted(now);
        let status = ready(Some(drifted.clone()));
        assert!(revert_due(DriftPolicy::Revert, &status));
        assert!(!revert_due(DriftPolicy::Report, &status));
        let started = ready(Some(reverting(&drifted, now)));
        assert!(!revert_due(DriftPolicy::Revert, &started));
        let in_sync = ready(Some(DriftRecord::of(Detection::InSync, now)));
        assert!(!revert_due(DriftPolicy::Revert, &in_sync));
        let mut failed = status.clone();
        failed.status = Status::Failed;
        assert!(!revert_due(DriftPolicy::Revert, &failed));
    }

    #[test]
    fn policies_read_back_from_their_names() {
        for name in DriftPolicy::NAMES {
            assert_eq!(DriftPolicy::parse(name).unwrap().as_str(), name);
        }
        assert_eq!(DriftPolicy::parse("Revert"), None);
        assert_eq!(DriftPolicy::default(), DriftPolicy::Report);
    }
}
