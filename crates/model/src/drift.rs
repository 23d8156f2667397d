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
    /// Why the revert did not run or did not finish, in CloudFormation's words (the change set
    /// was refused or could not be made, or the update rolled back): the stack is as it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

impl DriftRevert {
    /// A revert that did what a revert can for this drift: nothing was left to revert, or what
    /// is left is what it said it cannot bring back. The same drift found again is not
    /// reverted again.
    pub fn settled(&self) -> bool {
        self.failed.is_none() && (self.nothing_to_revert || !self.not_reverted.is_empty())
    }
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
    /// For a `not_checked` check: what the last finished check found (its resources are kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub found: Option<DriftStatus>,
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
            found: None,
            revert: None,
        }
    }

    /// What the last finished check found: this one's status, or for a check that did not
    /// finish, the one before it (`None`: none finished yet).
    pub fn finding(&self) -> Option<DriftStatus> {
        match self.status {
            DriftStatus::NotChecked => self.found,
            finished => Some(finished),
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
                clipped(
                    &format!(
                        "{} resource{} drifted: {}",
                        self.drifted_count,
                        if self.drifted_count == 1 { "" } else { "s" },
                        names.join(", ")
                    ),
                    REASON_MAX,
                )
            }
            DriftStatus::InSync => "in sync".into(),
            DriftStatus::NotChecked => clipped(
                &format!(
                    "not checked: {}",
                    self.reason.as_deref().unwrap_or("no reason given")
                ),
                REASON_MAX,
            ),
        }
    }

    /// What drifted, property by property: two records with the same set found the same drift.
    fn drifted_set(&self) -> BTreeSet<(&str, &str, &str)> {
        self.resources
            .iter()
            .flat_map(|r| {
                let paths: Vec<&str> = if r.differences.is_empty() {
                    vec![""]
                } else {
                    r.differences.iter().map(|d| d.path.as_str()).collect()
                };
                paths
                    .into_iter()
                    .map(move |path| (r.logical_id.as_str(), r.status.as_str(), path))
            })
            .collect()
    }
}

/// Whether `next` is news subscribers hear of: the stack drifted when the last finished check
/// found it in sync (or none finished), or other resources or properties drifted than it found.
/// A check that did not finish, in between, changes nothing.
pub fn newly_drifted(previous: Option<&DriftRecord>, next: &DriftRecord) -> bool {
    if next.status != DriftStatus::Drifted {
        return false;
    }
    match previous {
        Some(p) if p.finding() == Some(DriftStatus::Drifted) => {
            p.drifted_set() != next.drifted_set()
        }
        _ => true,
    }
}

/// The record to store after a check: `next`, except that
/// - a check that did not finish keeps what the last finished one found (its resources, its
///   revert) and says why this one did not;
/// - the same drift found again after a revert that did what it could (`DriftRevert::settled`)
///   keeps that revert, so it is not reverted again and again.
pub fn merged(previous: Option<&DriftRecord>, mut next: DriftRecord) -> DriftRecord {
    match previous {
        Some(p) if next.status == DriftStatus::NotChecked => DriftRecord {
            status: DriftStatus::NotChecked,
            checked_at: next.checked_at,
            reason: next.reason,
            found: p.finding(),
            ..p.clone()
        },
        Some(p)
            if next.status == DriftStatus::Drifted
                && p.finding() == Some(DriftStatus::Drifted)
                && p.drifted_set() == next.drifted_set()
                && p.revert.as_ref().is_some_and(DriftRevert::settled) =>
        {
            next.revert = p.revert.clone();
            next
        }
        _ => next,
    }
}

/// How soon a check that did not finish is tried again (at most: the interval, if shorter).
pub const RETRY_NOT_CHECKED: Duration = Duration::from_secs(3600);

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
    let not_checked = status
        .drift
        .as_ref()
        .is_some_and(|d| d.status == DriftStatus::NotChecked);
    let interval = if not_checked {
        interval.min(RETRY_NOT_CHECKED)
    } else {
        interval
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

/// The most properties a revert records it could not bring back.
pub const NOT_REVERTED_MAX: usize = 100;

/// How a revert went, as far as its record says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RevertOutcome {
    /// Executing (or done).
    Started,
    NothingToRevert,
    Failed(String),
}

/// The record with the revert started at `now` for it: what the change set said it cannot
/// bring back (at most [`NOT_REVERTED_MAX`], each field clipped), and how it went.
pub fn reverted(
    record: &DriftRecord,
    now: DateTime<Utc>,
    not_reverted: Vec<NotReverted>,
    outcome: RevertOutcome,
) -> DriftRecord {
    let not_reverted = not_reverted
        .into_iter()
        .take(NOT_REVERTED_MAX)
        .map(|n| NotReverted {
            logical_id: clipped(&n.logical_id, VALUE_MAX),
            path: clipped(&n.path, VALUE_MAX),
            reason: clipped(&n.reason, VALUE_MAX),
        })
        .collect();
    DriftRecord {
        revert: Some(DriftRevert {
            started_at: crate::time::rfc3339(now),
            not_reverted,
            nothing_to_revert: outcome == RevertOutcome::NothingToRevert,
            failed: match outcome {
                RevertOutcome::Failed(reason) => Some(clipped(&reason, REASON_MAX)),
                _ => None,
            },
        }),
        ..record.clone()
    }
}

/// `record` with its revert marked failed for `reason` (the update rolled back).
pub fn revert_failed(record: &DriftRecord, reason: &str) -> DriftRecord {
    let mut record = record.clone();
    if let Some(revert) = record.revert.as_mut() {
        revert.failed = Some(clipped(reason, REASON_MAX));
    }
    record
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
        let started = ready(Some(reverted(
            &drifted,
            now,
            Vec::new(),
            RevertOutcome::Started,
        )));
        assert!(!revert_due(DriftPolicy::Revert, &started));
        let in_sync = ready(Some(DriftRecord::of(Detection::InSync, now)));
        assert!(!revert_due(DriftPolicy::Revert, &in_sync));
        let mut failed = status.clone();
        failed.status = Status::Failed;
        assert!(!revert_due(DriftPolicy::Revert, &failed));
    }

    #[test]
    fn checks_that_do_not_finish_in_a_row_keep_the_finding_and_make_no_news() {
        let drifted = queue_drifted(at("2026-12-04T00:00:00Z"));
        let not_checked = |when: &str| {
            DriftRecord::of(
                Detection::NotChecked {
                    reason: "throttled".into(),
                },
                at(when),
            )
        };
        let once = merged(Some(&drifted), not_checked("2026-12-05T00:00:00Z"));
        let twice = merged(Some(&once), not_checked("2026-12-06T00:00:00Z"));
        assert_eq!(twice.status, DriftStatus::NotChecked);
        assert_eq!(twice.found, Some(DriftStatus::Drifted));
        assert_eq!(twice.resources, drifted.resources);
        assert_eq!(twice.finding(), Some(DriftStatus::Drifted));
        let again = queue_drifted(at("2026-12-07T00:00:00Z"));
        assert!(
            !newly_drifted(Some(&twice), &again),
            "the same drift is no news"
        );
        let none_yet = merged(None, not_checked("2026-12-05T00:00:00Z"));
        assert_eq!(none_yet.finding(), None);
        assert!(newly_drifted(Some(&none_yet), &again));
    }

    #[test]
    fn another_property_drifting_on_the_same_resource_is_news() {
        let one = queue_drifted(at("2026-12-04T00:00:00Z"));
        let two = DriftRecord::of(
            Detection::Drifted {
                resources: vec![modified("Queue", 2, 1)],
                reason: None,
            },
            at("2026-12-05T00:00:00Z"),
        );
        assert!(newly_drifted(Some(&one), &two));
    }

    #[test]
    fn a_check_that_did_not_finish_is_due_again_within_the_hour() {
        let now = at("2026-12-04T12:00:00Z");
        let day = Duration::from_secs(86_400);
        let record = DriftRecord::of(
            Detection::NotChecked {
                reason: "HTTP 500".into(),
            },
            at("2026-12-04T10:59:00Z"),
        );
        assert!(due_for_check(&ready(Some(record)), now, day));
        let recent = DriftRecord::of(
            Detection::NotChecked {
                reason: "HTTP 500".into(),
            },
            at("2026-12-04T11:30:00Z"),
        );
        assert!(!due_for_check(&ready(Some(recent)), now, day));
    }

    #[test]
    fn the_same_drift_after_a_revert_that_did_what_it_could_is_not_reverted_again() {
        let now = at("2026-12-04T00:00:00Z");
        let left = NotReverted {
            logical_id: "Queue".into(),
            path: "/Prop0".into(),
            reason: "MANAGED_BY_AWS".into(),
        };
        let settled = reverted(&queue_drifted(now), now, vec![left], RevertOutcome::Started);
        let again = merged(Some(&settled), queue_drifted(at("2026-12-05T00:00:00Z")));
        assert_eq!(again.revert, settled.revert);
        assert!(!revert_due(DriftPolicy::Revert, &ready(Some(again))));
        // A revert that failed is tried again at the next detection.
        let failed = reverted(
            &queue_drifted(now),
            now,
            Vec::new(),
            RevertOutcome::Failed("Rate exceeded".into()),
        );
        let again = merged(Some(&failed), queue_drifted(at("2026-12-05T00:00:00Z")));
        assert!(again.revert.is_none());
        assert!(revert_due(DriftPolicy::Revert, &ready(Some(again))));
    }

    #[test]
    fn a_revert_record_is_bounded() {
        let now = at("2026-12-04T00:00:00Z");
        let many = (0..1000)
            .map(|i| NotReverted {
                logical_id: format!("R{i}"),
                path: "/p".repeat(1000),
                reason: "WRITE_ONLY_PROPERTY".into(),
            })
            .collect();
        let record = reverted(&queue_drifted(now), now, many, RevertOutcome::Started);
        let revert = record.revert.unwrap();
        assert_eq!(revert.not_reverted.len(), NOT_REVERTED_MAX);
        assert!(
            revert
                .not_reverted
                .iter()
                .all(|n| n.path.len() <= VALUE_MAX + 3)
        );
        let long = DriftRecord::of(
            Detection::Drifted {
                resources: (0..300)
                    .map(|i| modified(&"L".repeat(200 + i), 0, 0))
                    .collect(),
                reason: None,
            },
            now,
        );
        assert!(long.summary().len() <= REASON_MAX + 3);
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
