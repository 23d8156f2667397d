//! The STATUS rows the reconcile records, built from what it saw. Pure: the version bump, the
//! event stamp and the write itself are the status writer's (controlplane `status_writer`).

use chrono::{DateTime, Utc};

use crate::decide::Terminal;
use crate::stack::{ObservedStack, StackStatus};
use crate::status::{StackLocation, Status, TenantStatus};
use crate::time::rfc3339;

/// The version after `current`; saturates rather than overflow on a hand-edited row.
pub fn next_version(current: Option<u64>) -> u64 {
    current.map_or(1, |v| v.saturating_add(1))
}

/// What one look at a tenant saw, as far as the next STATUS needs it.
#[derive(Clone, Copy, Debug)]
pub struct Seen<'a> {
    pub tenant_id: &'a str,
    /// STATUS as read.
    pub previous: Option<&'a TenantStatus>,
    /// The fingerprint of what the SPEC asks for (`None`: it failed validation).
    pub fingerprint: Option<&'a str>,
    /// The template version the SPEC resolves to, even when it is invalid.
    pub resolved_version: Option<&'a str>,
    /// The version of a valid, present SPEC.
    pub desired_version: Option<&'a str>,
    pub location: Option<&'a StackLocation>,
    pub stack: Option<&'a ObservedStack>,
    pub now: DateTime<Utc>,
}

/// The next STATUS, carrying over what stays true (location, stack, outputs, fingerprint, the
/// outbox); a transition's own fields (reason, retry) start empty.
pub fn carried(
    tenant_id: &str,
    previous: Option<&TenantStatus>,
    now: DateTime<Utc>,
) -> TenantStatus {
    TenantStatus {
        tenant_id: tenant_id.to_owned(),
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
        drift: previous.and_then(|s| s.drift.clone()),
    }
}

/// `failed` as the decision gave it.
pub fn failed(seen: &Seen, reason: String, retryable: bool) -> TenantStatus {
    let mut status = carried(seen.tenant_id, seen.previous, seen.now);
    status.status = Status::Failed;
    status.reason = Some(reason);
    status.retryable = retryable;
    // A SPEC that failed validation reflects no stack shape: restoring the previous SPEC must
    // count as a change.
    status.spec_fingerprint = seen.fingerprint.map(str::to_owned);
    // The version it failed to reach (a rollout tells its failures by it).
    if let Some(version) = seen.resolved_version {
        status.template_version = Some(version.to_owned());
    }
    if let Some(stack) = seen.stack {
        status.stack_status = Some(stack.status.clone());
    }
    status
}

/// The end of an operation: `ready`, `deleted`, or `failed` with the stack's own words
/// (`cause`: the stack events' first failure, when they gave one).
pub fn finalized(seen: &Seen, terminal: &Terminal, cause: Option<String>) -> TenantStatus {
    let mut status = carried(seen.tenant_id, seen.previous, seen.now);
    status.spec_fingerprint = seen.fingerprint.map(str::to_owned);
    if let Some(location) = seen.location {
        status.location = Some(location.clone());
    }
    if let Some(version) = seen.desired_version {
        status.template_version = Some(version.to_owned());
    }
    match (terminal, seen.stack) {
        (Terminal::Ready, Some(stack)) => {
            // Success ends the counting: a later drift repair starts afresh.
            status.attempts = 0;
            status.retries = 0;
            status.status = Status::Ready;
            status.outputs = stack.outputs.clone();
            status.stack_id = Some(stack.stack_id.clone());
            status.stack_status = Some(stack.status.clone());
        }
        (Terminal::Deleted, _) | (Terminal::Ready, None) => {
            status.attempts = 0;
            status.retries = 0;
            status.status = Status::Deleted;
            // A tenant created again later starts afresh: no decommission announced, and the
            // fleet's current version.
            status.decommission_notice = None;
            status.drift = None;
            status.assigned_version = None;
            status.assigned_by = None;
            status.outputs.clear();
            // Only a stack that existed was deleted.
            status.stack_status = status
                .stack_id
                .as_ref()
                .map(|_| StackStatus::DeleteComplete);
        }
        (Terminal::FailedFromStack { what }, stack) => {
            status.status = Status::Failed;
            let cause = cause
                .or_else(|| stack.and_then(|s| s.status_reason.clone()))
                .unwrap_or_else(|| "CloudFormation gave no reason".into());
            status.reason = Some(format!("{what}: {cause}"));
            if let Some(stack) = stack {
                status.stack_status = Some(stack.status.clone());
                status.stack_id = Some(stack.stack_id.clone());
            }
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::status::Operation;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
            .expect("a time")
            .with_timezone(&Utc)
    }

    fn running() -> TenantStatus {
        let mut status = carried("acme", None, now());
        status.status = Status::Updating;
        status.operation = Some(Operation::Update);
        status.attempts = 2;
        status.retries = 1;
        status.assigned_version = Some("v1".into());
        status.outputs.insert("Url".into(), "https://old".into());
        status.stack_id = Some("arn:aws:cloudformation:eu-west-1:1:stack/tenant-acme/1".into());
        status
    }

    fn stack(status: StackStatus) -> ObservedStack {
        ObservedStack {
            stack_id: "arn:aws:cloudformation:eu-west-1:1:stack/tenant-acme/1".into(),
            status,
            status_reason: Some("the stack's reason".into()),
            outputs: [("Url".to_owned(), "https://new".to_owned())].into(),
            parameters: Default::default(),
            tags: Default::default(),
        }
    }

    fn seen<'a>(previous: &'a TenantStatus, stack: Option<&'a ObservedStack>) -> Seen<'a> {
        Seen {
            tenant_id: "acme",
            previous: Some(previous),
            fingerprint: Some("f2"),
            resolved_version: Some("v2"),
            desired_version: Some("v2"),
            location: None,
            stack,
            now: now(),
        }
    }

    #[test]
    fn a_transition_carries_what_stays_true_and_starts_its_own_fields_empty() {
        let mut previous = running();
        previous.reason = Some("old".into());
        previous.next_attempt_at = Some("later".into());
        let next = carried("acme", Some(&previous), now());
        assert_eq!(next.reason, None);
        assert_eq!(next.next_attempt_at, None);
        assert_eq!((next.attempts, next.retries), (2, 1));
        assert_eq!(next.outputs, previous.outputs);
        assert_eq!(next.assigned_version.as_deref(), Some("v1"));
        assert_eq!(next.updated_at, "2026-12-01T10:00:00.000Z");
        assert_eq!(next.version, 0, "the writer bumps the version");
    }

    #[test]
    fn ready_ends_the_counting_and_takes_the_stacks_outputs() {
        let previous = running();
        let complete = stack(StackStatus::UpdateComplete);
        let ready = finalized(&seen(&previous, Some(&complete)), &Terminal::Ready, None);
        assert_eq!(ready.status, Status::Ready);
        assert_eq!((ready.attempts, ready.retries), (0, 0));
        assert_eq!(ready.outputs["Url"], "https://new");
        assert_eq!(ready.template_version.as_deref(), Some("v2"));
        assert_eq!(ready.spec_fingerprint.as_deref(), Some("f2"));
        assert_eq!(
            ready.stack_status.as_ref().map(StackStatus::as_str),
            Some("UPDATE_COMPLETE")
        );
    }

    #[test]
    fn deleted_forgets_the_assignment_and_the_outputs() {
        let previous = running();
        let deleted = finalized(&seen(&previous, None), &Terminal::Deleted, None);
        assert_eq!(deleted.status, Status::Deleted);
        assert!(deleted.outputs.is_empty());
        assert_eq!(deleted.assigned_version, None);
        assert_eq!(
            deleted.stack_status.as_ref().map(StackStatus::as_str),
            Some("DELETE_COMPLETE")
        );
        let never = finalized(
            &Seen {
                previous: None,
                ..seen(&previous, None)
            },
            &Terminal::Deleted,
            None,
        );
        assert_eq!(
            never.stack_status, None,
            "only a stack that existed was deleted"
        );
    }

    #[test]
    fn a_stack_failure_says_what_failed_and_why_in_the_stacks_words() {
        let previous = running();
        let failed_stack = stack(StackStatus::UpdateRollbackComplete);
        let terminal = Terminal::FailedFromStack {
            what: "the update failed".into(),
        };
        let seen = seen(&previous, Some(&failed_stack));
        let from_events = finalized(&seen, &terminal, Some("Queue: limit exceeded".into()));
        assert_eq!(
            from_events.reason.as_deref(),
            Some("the update failed: Queue: limit exceeded")
        );
        let from_stack = finalized(&seen, &terminal, None);
        assert_eq!(
            from_stack.reason.as_deref(),
            Some("the update failed: the stack's reason")
        );
        let no_stack = finalized(
            &Seen {
                stack: None,
                ..seen
            },
            &terminal,
            None,
        );
        assert_eq!(
            no_stack.reason.as_deref(),
            Some("the update failed: CloudFormation gave no reason")
        );
    }

    #[test]
    fn a_decided_failure_records_the_version_it_failed_to_reach() {
        let previous = running();
        let invalid = Seen {
            fingerprint: None,
            desired_version: None,
            ..seen(&previous, None)
        };
        let status = failed(&invalid, "config.x: unknown".into(), false);
        assert_eq!(status.status, Status::Failed);
        assert_eq!(status.template_version.as_deref(), Some("v2"));
        assert_eq!(status.spec_fingerprint, None);
        assert!(!status.retryable);
    }

    #[test]
    fn the_version_after_a_hand_edited_maximum_saturates() {
        assert_eq!(next_version(None), 1);
        assert_eq!(next_version(Some(4)), 5);
        assert_eq!(next_version(Some(u64::MAX)), u64::MAX);
    }
}
