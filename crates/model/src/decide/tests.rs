//! Table-driven tests of `decide`: every combination of SPEC, STATUS and stack is checked against
//! the invariants, and the rows that matter are checked against their expected decision.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::*;
use crate::stack::StackStatus;

const MAX_ATTEMPTS: u32 = 5;
const DESIRED_FP: &str = "fp-desired";
const OLD_FP: &str = "fp-old";
const ACCOUNT: &str = "111111111111";
const OTHER_ACCOUNT: &str = "222222222222";
const REGION: &str = "eu-west-1";
const OTHER_REGION: &str = "us-east-1";
const STACK_NAME: &str = "tenant-gs1234";
const INVALID_REASON: &str = "invalid SPEC: account_id: must be exactly 12 digits, got \"12\"";

/// Longer than any status row below has been in flight (they were written an hour ago).
const OPERATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3 * 3600);

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 12, 0, 0).unwrap()
}

fn location(account: &str, region: &str) -> StackLocation {
    StackLocation {
        account_id: account.into(),
        region: region.into(),
        stack_name: STACK_NAME.into(),
    }
}

fn here() -> StackLocation {
    location(ACCOUNT, REGION)
}

fn desired_parameters() -> Vec<(String, String)> {
    vec![
        ("Difficulty".into(), "peaceful".into()),
        ("PlayerCount".into(), "5".into()),
        ("TenantId".into(), "gs1234".into()),
    ]
}

fn present() -> Desired {
    Desired::Present(DesiredStack {
        location: here(),
        template_version: "v1".into(),
        parameters: desired_parameters(),
        number_parameters: ["PlayerCount".to_owned()].into(),
        fingerprint: DESIRED_FP.into(),
        drift_policy: DriftPolicy::Report,
    })
}

fn invalid() -> Desired {
    Desired::Invalid {
        reason: INVALID_REASON.into(),
    }
}

fn stack(status: StackStatus) -> ObservedStack {
    ObservedStack {
        stack_id: format!("arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{STACK_NAME}/1"),
        status,
        status_reason: None,
        outputs: BTreeMap::new(),
        parameters: desired_parameters().into_iter().collect(),
        // Made by the control plane for this tenant; no fingerprint tag (an older stack).
        tags: BTreeMap::from([
            ("managed-by".to_owned(), "tenant-control-plane".to_owned()),
            ("tenant-id".to_owned(), "gs1234".to_owned()),
        ]),
    }
}

fn status_row(
    status: Status,
    operation: Option<Operation>,
    fingerprint: Option<&str>,
) -> TenantStatus {
    TenantStatus {
        tenant_id: "gs1234".into(),
        status,
        reason: None,
        retryable: false,
        next_attempt_at: None,
        attempts: 1,
        retries: 0,
        operation,
        outputs: BTreeMap::new(),
        location: Some(here()),
        stack_id: None,
        stack_status: None,
        template_version: Some("v1".into()),
        assigned_version: Some("v1".into()),
        assigned_by: None,
        spec_fingerprint: fingerprint.map(str::to_owned),
        updated_at: "2024-01-01T11:00:00.000Z".into(),
        version: 3,
        pending_events: Vec::new(),
        decommission_notice: None,
        drift: None,
    }
}

fn failed(fingerprint: Option<&str>, reason: &str) -> TenantStatus {
    TenantStatus {
        reason: Some(reason.into()),
        ..status_row(Status::Failed, Some(Operation::Create), fingerprint)
    }
}

fn failed_retryable(
    fingerprint: Option<&str>,
    next_attempt_at: Option<DateTime<Utc>>,
) -> TenantStatus {
    TenantStatus {
        retryable: true,
        next_attempt_at: next_attempt_at.map(crate::time::rfc3339),
        ..failed(fingerprint, "Rate exceeded; will retry")
    }
}

fn run(
    desired: &Desired,
    status: Option<&TenantStatus>,
    stack: Option<&ObservedStack>,
    at: Option<&StackLocation>,
) -> Decision {
    decide(&Observation {
        tenant_id: "gs1234",
        desired,
        status,
        stack,
        stack_location: at,
        now: now(),
        max_attempts: MAX_ATTEMPTS,
        operation_timeout: OPERATION_TIMEOUT,
    })
}

/// The STATUS the reconciler records for a terminal decision (as `finalized` / `failed` do):
/// same fingerprint as the SPEC asks for, the new status, the reason.
fn recorded_after(
    decision: &Decision,
    desired: &Desired,
    previous: Option<&TenantStatus>,
) -> Option<TenantStatus> {
    let fingerprint = match desired {
        Desired::Present(d) => Some(d.fingerprint.clone()),
        Desired::Absent => Some(REMOVED_FINGERPRINT.to_owned()),
        Desired::Invalid { .. } => None,
    };
    let mut next = previous
        .cloned()
        .unwrap_or_else(|| status_row(Status::Failed, None, None));
    next.reason = None;
    next.retryable = false;
    next.next_attempt_at = None;
    next.spec_fingerprint = fingerprint;
    next.version += 1;
    match decision {
        Decision::Finalize(Terminal::Ready) => next.status = Status::Ready,
        Decision::Finalize(Terminal::Deleted) => next.status = Status::Deleted,
        Decision::Finalize(Terminal::FailedFromStack { what }) => {
            next.status = Status::Failed;
            next.reason = Some(format!("{what}: CloudFormation gave no reason"));
        }
        Decision::Fail { reason, retryable } => {
            next.status = Status::Failed;
            next.reason = Some(reason.clone());
            next.retryable = *retryable;
        }
        _ => return None,
    }
    Some(next)
}

// ------------------------------------------------------------------------------------------------
// Exhaustive combinations
// ------------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SpecCase {
    /// No SPEC, and STATUS already records the removal (fingerprint "removed").
    AbsentRemoving,
    /// No SPEC, STATUS still records the last SPEC's fingerprint.
    AbsentAfterSpec,
    /// A valid SPEC; STATUS records no fingerprint (e.g. after an invalid SPEC).
    New,
    /// A valid SPEC; STATUS records an older SPEC's fingerprint.
    Changed,
    /// A valid SPEC; STATUS records this very fingerprint.
    Unchanged,
    Invalid,
}

const SPEC_CASES: [SpecCase; 6] = [
    SpecCase::AbsentRemoving,
    SpecCase::AbsentAfterSpec,
    SpecCase::New,
    SpecCase::Changed,
    SpecCase::Unchanged,
    SpecCase::Invalid,
];

impl SpecCase {
    fn desired(self) -> Desired {
        match self {
            Self::AbsentRemoving | Self::AbsentAfterSpec => Desired::Absent,
            Self::New | Self::Changed | Self::Unchanged => present(),
            Self::Invalid => invalid(),
        }
    }

    fn status_fingerprint(self) -> Option<&'static str> {
        match self {
            Self::AbsentRemoving => Some(REMOVED_FINGERPRINT),
            Self::AbsentAfterSpec | Self::Changed | Self::Invalid => Some(OLD_FP),
            Self::New => None,
            Self::Unchanged => Some(DESIRED_FP),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StatusCase {
    None,
    Creating(Operation),
    Updating(Operation),
    Deleting,
    Ready,
    FailedPermanent,
    FailedRetryDue,
    FailedRetryLater,
    FailedRetryUnscheduled,
    /// Failed with exactly the reason `decide` gives this world (a stack in the way, an invalid
    /// SPEC...), recorded for the fingerprint of the SPEC case: the same obstacle met again by
    /// a newer SPEC must still be answered.
    FailedAsDecided,
    Deleted,
}

const STATUS_CASES: [StatusCase; 13] = [
    StatusCase::None,
    StatusCase::Creating(Operation::Create),
    StatusCase::Creating(Operation::Delete),
    StatusCase::Updating(Operation::Update),
    StatusCase::Updating(Operation::ContinueUpdateRollback),
    StatusCase::Deleting,
    StatusCase::Ready,
    StatusCase::FailedPermanent,
    StatusCase::FailedRetryDue,
    StatusCase::FailedRetryLater,
    StatusCase::FailedRetryUnscheduled,
    StatusCase::FailedAsDecided,
    StatusCase::Deleted,
];

impl StatusCase {
    fn build(self, fingerprint: Option<&str>, attempts: u32) -> Option<TenantStatus> {
        let mut status = match self {
            Self::None => return None,
            Self::Creating(op) => status_row(Status::Creating, Some(op), fingerprint),
            Self::Updating(op) => status_row(Status::Updating, Some(op), fingerprint),
            Self::Deleting => status_row(Status::Deleting, Some(Operation::Delete), fingerprint),
            Self::Ready => status_row(Status::Ready, Some(Operation::Create), fingerprint),
            Self::FailedPermanent => {
                failed(fingerprint, "the create failed and was rolled back: boom")
            }
            Self::FailedRetryDue => {
                failed_retryable(fingerprint, Some(now() - Duration::minutes(1)))
            }
            Self::FailedRetryLater => {
                failed_retryable(fingerprint, Some(now() + Duration::minutes(1)))
            }
            Self::FailedRetryUnscheduled => failed_retryable(fingerprint, None),
            // Its reason is filled in by `check_invariants`, which knows the world.
            Self::FailedAsDecided => failed(fingerprint, "placeholder"),
            Self::Deleted => status_row(Status::Deleted, Some(Operation::Delete), fingerprint),
        };
        status.attempts = attempts;
        Some(status)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Where {
    /// Where the SPEC wants it.
    Desired,
    OtherAccount,
    OtherRegion,
}

const WHERES: [Where; 3] = [Where::Desired, Where::OtherAccount, Where::OtherRegion];

impl Where {
    fn location(self) -> StackLocation {
        match self {
            Self::Desired => here(),
            Self::OtherAccount => location(OTHER_ACCOUNT, REGION),
            Self::OtherRegion => location(ACCOUNT, OTHER_REGION),
        }
    }
}

fn stack_cases() -> Vec<Option<StackStatus>> {
    let mut cases = vec![None];
    cases.extend(StackStatus::ALL_KNOWN.iter().cloned().map(Some));
    cases.push(Some(StackStatus::Unknown("FUTURE_STATUS".into())));
    cases
}

const ATTEMPTS: [u32; 2] = [1, MAX_ATTEMPTS];

struct Case {
    spec: SpecCase,
    status_case: StatusCase,
    attempts: u32,
    stack_status: Option<StackStatus>,
    at: Where,
}

fn check_invariants(case: &Case) -> Decision {
    let desired = case.spec.desired();
    let mut status = case
        .status_case
        .build(case.spec.status_fingerprint(), case.attempts);
    if let Some(status) = &mut status {
        status.location = Some(case.at.location());
    }
    let observed = case.stack_status.clone().map(stack);
    let at = case.at.location();
    if case.status_case == StatusCase::FailedAsDecided
        && let Some(status) = &mut status
        && let Decision::Fail { reason, retryable } =
            run(&desired, None, observed.as_ref(), Some(&at))
    {
        status.reason = Some(reason);
        status.retryable = retryable;
    }
    let decision = run(&desired, status.as_ref(), observed.as_ref(), Some(&at));
    let ctx = format!(
        "spec {:?}, status {:?} (attempts {}), stack {:?} at {:?} => {decision:?}",
        case.spec, case.status_case, case.attempts, case.stack_status, case.at
    );
    let phase = case.stack_status.as_ref().map(StackStatus::phase);
    let operation = decision.operation();

    // Deterministic.
    assert_eq!(
        decision,
        run(&desired, status.as_ref(), observed.as_ref(), Some(&at)),
        "not deterministic: {ctx}"
    );

    // Never act on a stack while an operation runs.
    if phase == Some(StackPhase::InProgress) {
        assert!(operation.is_none(), "operation on a busy stack: {ctx}");
        match (&desired, case.at) {
            (Desired::Invalid { .. }, _) => {
                assert!(
                    matches!(decision, Decision::Nothing | Decision::Fail { .. }),
                    "{ctx}"
                )
            }
            (Desired::Present(_), Where::OtherAccount | Where::OtherRegion) => {
                assert!(
                    matches!(decision, Decision::Nothing | Decision::Fail { .. }),
                    "{ctx}"
                )
            }
            // Without STATUS nothing was ever started for a removed tenant.
            (Desired::Absent, _) if status.is_none() => {
                assert_eq!(decision, Decision::Nothing, "{ctx}")
            }
            _ => assert_eq!(decision, Decision::Wait, "{ctx}"),
        }
    }

    match &desired {
        Desired::Invalid { .. } => {
            assert!(operation.is_none(), "operation for an invalid SPEC: {ctx}");
            assert!(
                matches!(&decision, Decision::Nothing | Decision::Fail { .. }),
                "an invalid SPEC only fails: {ctx}"
            );
            if let Decision::Fail { reason, .. } = &decision {
                assert_eq!(reason, INVALID_REASON, "{ctx}");
            }
        }
        Desired::Absent => {
            assert!(
                !matches!(
                    decision,
                    Decision::Create | Decision::Update | Decision::ContinueUpdateRollback
                ),
                "an absent SPEC only deletes: {ctx}"
            );
            if status.is_none() {
                assert_eq!(decision, Decision::Nothing, "no STATUS, no SPEC: {ctx}");
            }
            assert_ne!(decision, Decision::Finalize(Terminal::Ready), "{ctx}");
        }
        Desired::Present(_) => {
            assert_ne!(decision, Decision::Finalize(Terminal::Deleted), "{ctx}");
            if observed.is_some() && case.at != Where::Desired {
                assert!(operation.is_none(), "operation on a stack elsewhere: {ctx}");
                match &decision {
                    Decision::Fail { reason, retryable } => {
                        assert!(reason.contains("cannot change"), "{ctx}");
                        // Blocked, not settled: it clears once the old stack is gone.
                        assert!(retryable, "{ctx}");
                    }
                    Decision::Nothing => {
                        // Only when that very failure is recorded already.
                        assert!(status.is_some(), "{ctx}");
                    }
                    other => panic!("stack elsewhere must fail, got {other:?}: {ctx}"),
                }
            }
        }
    }

    match &decision {
        Decision::Create => assert!(
            matches!(phase, None | Some(StackPhase::Deleted)),
            "Create over an existing stack: {ctx}"
        ),
        Decision::Update => assert!(
            matches!(
                phase,
                Some(StackPhase::Healthy | StackPhase::UpdateRolledBack | StackPhase::UpdateFailed)
            ),
            "Update on a stack that cannot be updated: {ctx}"
        ),
        Decision::ContinueUpdateRollback => {
            assert_eq!(phase, Some(StackPhase::UpdateRollbackFailed), "{ctx}")
        }
        Decision::Delete => assert!(
            observed.is_some()
                && !matches!(phase, Some(StackPhase::InProgress | StackPhase::Deleted)),
            "Delete without a deletable stack: {ctx}"
        ),
        Decision::Finalize(Terminal::Ready) => assert!(
            matches!(
                phase,
                Some(StackPhase::Healthy | StackPhase::UpdateRolledBack)
            ),
            "Ready without a healthy stack: {ctx}"
        ),
        Decision::Finalize(Terminal::Deleted) => assert!(
            matches!(phase, None | Some(StackPhase::Deleted)),
            "Deleted while the stack exists: {ctx}"
        ),
        Decision::Fail { reason, .. } => assert!(!reason.trim().is_empty(), "empty reason: {ctx}"),
        Decision::Finalize(Terminal::FailedFromStack { what }) => {
            assert!(!what.trim().is_empty(), "{ctx}")
        }
        Decision::RevertDrift => assert!(
            matches!(
                phase,
                Some(StackPhase::Healthy | StackPhase::UpdateRolledBack)
            ) && status.as_ref().is_some_and(|s| s.status == Status::Ready),
            "RevertDrift on a stack that is not settled and ready: {ctx}"
        ),
        Decision::Nothing | Decision::Wait => {}
    }

    // A Fail from decide is retryable only when something outside the SPEC blocks it (a stack
    // in the way or needing an operator), so it clears once that is gone.
    if let Decision::Fail { retryable, reason } = &decision {
        let blocked = reason.contains("cannot change")
            || reason.contains("not made by the control plane")
            || reason.contains("cannot act on");
        assert_eq!(*retryable, blocked, "{ctx}");
    }

    // Idempotence: once a terminal decision is recorded, the same world is converged.
    if let Some(next) = recorded_after(&decision, &desired, status.as_ref()) {
        let again = run(&desired, Some(&next), observed.as_ref(), Some(&at));
        assert_eq!(
            again,
            Decision::Nothing,
            "not idempotent after recording {next:?}: {ctx}"
        );
    }

    // A retry bound: an operation is never decided again once `max_attempts` were spent on the
    // very SPEC (or removal) the STATUS records.
    let target_fp = match &desired {
        Desired::Present(d) => Some(d.fingerprint.as_str()),
        Desired::Absent => Some(REMOVED_FINGERPRINT),
        Desired::Invalid { .. } => None,
    };
    if status
        .as_ref()
        .is_some_and(|s| s.attempts >= MAX_ATTEMPTS && s.spec_fingerprint.as_deref() == target_fp)
    {
        assert!(operation.is_none(), "retries not bounded: {ctx}");
    }

    // A SPEC that STATUS does not answer yet (readers see it `pending`) is never left alone:
    // it is acted on, waited on while the stack is busy, or answered with its own failure.
    if status
        .as_ref()
        .is_some_and(|s| s.spec_fingerprint.as_deref() != target_fp)
    {
        assert_ne!(
            decision,
            Decision::Nothing,
            "a new SPEC left pending: {ctx}"
        );
    }
    decision
}

#[test]
fn every_combination_keeps_the_invariants() {
    let stacks = stack_cases();
    assert_eq!(stacks.len(), 1 + 23 + 1);
    let mut count = 0usize;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for spec in SPEC_CASES {
        for status_case in STATUS_CASES {
            for attempts in ATTEMPTS {
                for stack_status in &stacks {
                    for at in WHERES {
                        let decision = check_invariants(&Case {
                            spec,
                            status_case,
                            attempts,
                            stack_status: stack_status.clone(),
                            at,
                        });
                        let kind = match decision {
                            Decision::Fail { .. } => "Fail".to_owned(),
                            Decision::Finalize(Terminal::FailedFromStack { .. }) => {
                                "Finalize(FailedFromStack)".to_owned()
                            }
                            other => format!("{other:?}"),
                        };
                        *seen.entry(kind).or_default() += 1;
                        count += 1;
                    }
                }
            }
        }
    }
    // 6 SPEC cases x 13 STATUS cases x 2 attempt counts x 25 stacks x 3 locations.
    assert_eq!(count, 6 * 13 * 2 * 25 * 3);
    assert_eq!(count, 11_700);
    // The table reaches every decision there is.
    for kind in [
        "Nothing",
        "Wait",
        "Create",
        "Update",
        "Delete",
        "ContinueUpdateRollback",
        "Finalize(Ready)",
        "Finalize(Deleted)",
        "Finalize(FailedFromStack)",
        "Fail",
    ] {
        assert!(
            seen.get(kind).copied().unwrap_or(0) > 0,
            "{kind} never decided: {seen:?}"
        );
    }
}

// ------------------------------------------------------------------------------------------------
// Expected decisions for the rows that matter
// ------------------------------------------------------------------------------------------------

#[derive(Debug)]
enum Expect {
    Is(Decision),
    FailWith(&'static str),
    /// A failure held up by something outside the SPEC: retryable, looked at again each time.
    BlockedWith(&'static str),
    FailedFromStack(&'static str),
}

fn ready(fp: &str) -> TenantStatus {
    status_row(Status::Ready, Some(Operation::Create), Some(fp))
}

fn in_flight(status: Status, op: Operation, fp: &str) -> TenantStatus {
    status_row(status, Some(op), Some(fp))
}

struct Row {
    name: &'static str,
    desired: Desired,
    status: Option<TenantStatus>,
    stack: Option<ObservedStack>,
    at: StackLocation,
    expect: Expect,
}

fn row(
    name: &'static str,
    desired: Desired,
    status: Option<TenantStatus>,
    stack_status: Option<StackStatus>,
    expect: Expect,
) -> Row {
    Row {
        name,
        desired,
        status,
        stack: stack_status.map(stack),
        at: here(),
        expect,
    }
}

fn expected_rows() -> Vec<Row> {
    use Decision as D;
    use Expect::{BlockedWith, FailWith, FailedFromStack, Is};
    use StackStatus as S;
    use Status as St;
    let removed = REMOVED_FINGERPRINT;
    let drifted = {
        let mut s = stack(S::UpdateComplete);
        s.parameters.insert("PlayerCount".into(), "9".into());
        s
    };
    let gave_up = TenantStatus {
        attempts: MAX_ATTEMPTS,
        reason: Some("Rate exceeded".into()),
        ..failed_retryable(Some(DESIRED_FP), Some(now() - Duration::minutes(1)))
    };
    let gave_up_creating = TenantStatus {
        attempts: MAX_ATTEMPTS,
        ..in_flight(St::Creating, Operation::Create, DESIRED_FP)
    };
    let operator_reason = "the stack is IMPORT_ROLLBACK_FAILED, which the control plane cannot act on; \
                           resolve it in the tenant account, then bump `retry`";
    let mut rows = vec![
        // A new tenant.
        row(
            "new SPEC, no STATUS, no stack",
            present(),
            None,
            None,
            Is(D::Create),
        ),
        row(
            "new SPEC, STATUS of an invalid SPEC, no stack",
            present(),
            Some(failed(None, INVALID_REASON)),
            None,
            Is(D::Create),
        ),
        row(
            "new SPEC, stack DELETE_COMPLETE",
            present(),
            None,
            Some(S::DeleteComplete),
            Is(D::Create),
        ),
        row(
            "new SPEC after a removal, deleted, no stack",
            present(),
            Some(status_row(
                St::Deleted,
                Some(Operation::Delete),
                Some(removed),
            )),
            None,
            Is(D::Create),
        ),
        // Steady state and changes.
        row(
            "unchanged, ready, CREATE_COMPLETE",
            present(),
            Some(ready(DESIRED_FP)),
            Some(S::CreateComplete),
            Is(D::Nothing),
        ),
        row(
            "unchanged, ready, UPDATE_COMPLETE",
            present(),
            Some(ready(DESIRED_FP)),
            Some(S::UpdateComplete),
            Is(D::Nothing),
        ),
        row(
            "changed, ready, UPDATE_COMPLETE",
            present(),
            Some(ready(OLD_FP)),
            Some(S::UpdateComplete),
            Is(D::Update),
        ),
        row(
            "changed, ready, CREATE_COMPLETE",
            present(),
            Some(ready(OLD_FP)),
            Some(S::CreateComplete),
            Is(D::Update),
        ),
        row(
            "changed, ready, UPDATE_ROLLBACK_COMPLETE",
            present(),
            Some(ready(OLD_FP)),
            Some(S::UpdateRollbackComplete),
            Is(D::Update),
        ),
        row(
            "unchanged, ready, stack vanished",
            present(),
            Some(ready(DESIRED_FP)),
            None,
            Is(D::Create),
        ),
        // Operations finishing.
        row(
            "unchanged, creating, CREATE_IN_PROGRESS",
            present(),
            Some(in_flight(St::Creating, Operation::Create, DESIRED_FP)),
            Some(S::CreateInProgress),
            Is(D::Wait),
        ),
        row(
            "unchanged, creating, CREATE_COMPLETE",
            present(),
            Some(in_flight(St::Creating, Operation::Create, DESIRED_FP)),
            Some(S::CreateComplete),
            Is(D::Finalize(Terminal::Ready)),
        ),
        row(
            "unchanged, updating, UPDATE_COMPLETE",
            present(),
            Some(in_flight(St::Updating, Operation::Update, DESIRED_FP)),
            Some(S::UpdateComplete),
            Is(D::Finalize(Terminal::Ready)),
        ),
        row(
            "unchanged, updating, UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
            present(),
            Some(in_flight(St::Updating, Operation::Update, DESIRED_FP)),
            Some(S::UpdateCompleteCleanupInProgress),
            Is(D::Wait),
        ),
        row(
            "unchanged, creating(op Create), ROLLBACK_COMPLETE",
            present(),
            Some(in_flight(St::Creating, Operation::Create, DESIRED_FP)),
            Some(S::RollbackComplete),
            FailedFromStack("the create failed and was rolled back"),
        ),
        row(
            "unchanged, creating(op Create), CREATE_FAILED",
            present(),
            Some(in_flight(St::Creating, Operation::Create, DESIRED_FP)),
            Some(S::CreateFailed),
            FailedFromStack("the create failed and was rolled back"),
        ),
        row(
            "unchanged, creating(op Create), ROLLBACK_FAILED",
            present(),
            Some(in_flight(St::Creating, Operation::Create, DESIRED_FP)),
            Some(S::RollbackFailed),
            FailedFromStack("the stack is ROLLBACK_FAILED"),
        ),
        row(
            "unchanged, creating(op Delete), DELETE_FAILED",
            present(),
            Some(in_flight(St::Creating, Operation::Delete, DESIRED_FP)),
            Some(S::DeleteFailed),
            FailedFromStack("the stack is DELETE_FAILED"),
        ),
        row(
            "unchanged, creating(op Delete), stack gone",
            present(),
            Some(in_flight(St::Creating, Operation::Delete, DESIRED_FP)),
            None,
            Is(D::Create),
        ),
        row(
            "unchanged, updating, UPDATE_ROLLBACK_COMPLETE",
            present(),
            Some(in_flight(St::Updating, Operation::Update, DESIRED_FP)),
            Some(S::UpdateRollbackComplete),
            FailedFromStack("the update failed and was rolled back"),
        ),
        row(
            "unchanged, updating, UPDATE_FAILED",
            present(),
            Some(in_flight(St::Updating, Operation::Update, DESIRED_FP)),
            Some(S::UpdateFailed),
            FailedFromStack("the update failed"),
        ),
        row(
            "unchanged, updating(op CUR), UPDATE_ROLLBACK_COMPLETE",
            present(),
            Some(in_flight(
                St::Updating,
                Operation::ContinueUpdateRollback,
                DESIRED_FP,
            )),
            Some(S::UpdateRollbackComplete),
            FailedFromStack("the update failed and was rolled back"),
        ),
        // Failed stacks.
        row(
            "changed, failed, ROLLBACK_COMPLETE",
            present(),
            Some(failed(Some(OLD_FP), "boom")),
            Some(S::RollbackComplete),
            Is(D::Delete),
        ),
        row(
            "unchanged, failed(non-retryable), ROLLBACK_COMPLETE",
            present(),
            Some(failed(Some(DESIRED_FP), "boom")),
            Some(S::RollbackComplete),
            Is(D::Nothing),
        ),
        row(
            "unchanged, failed(non-retryable), no stack",
            present(),
            Some(failed(Some(DESIRED_FP), "boom")),
            None,
            Is(D::Nothing),
        ),
        row(
            "unchanged, failed(non-retryable), UPDATE_ROLLBACK_COMPLETE",
            present(),
            Some(failed(Some(DESIRED_FP), "boom")),
            Some(S::UpdateRollbackComplete),
            Is(D::Nothing),
        ),
        row(
            "unchanged, failed(retry due), ROLLBACK_COMPLETE",
            present(),
            Some(failed_retryable(
                Some(DESIRED_FP),
                Some(now() - Duration::seconds(1)),
            )),
            Some(S::RollbackComplete),
            Is(D::Delete),
        ),
        row(
            "unchanged, failed(retry due), no stack",
            present(),
            Some(failed_retryable(
                Some(DESIRED_FP),
                Some(now() - Duration::seconds(1)),
            )),
            None,
            Is(D::Create),
        ),
        row(
            "unchanged, failed(retry due now), no stack",
            present(),
            Some(failed_retryable(Some(DESIRED_FP), Some(now()))),
            None,
            Is(D::Create),
        ),
        row(
            "unchanged, failed(retry due), UPDATE_ROLLBACK_COMPLETE",
            present(),
            Some(failed_retryable(
                Some(DESIRED_FP),
                Some(now() - Duration::seconds(1)),
            )),
            Some(S::UpdateRollbackComplete),
            Is(D::Update),
        ),
        row(
            "unchanged, failed(retry later), no stack",
            present(),
            Some(failed_retryable(
                Some(DESIRED_FP),
                Some(now() + Duration::seconds(1)),
            )),
            None,
            Is(D::Nothing),
        ),
        row(
            "unchanged, failed(retry later), ROLLBACK_COMPLETE",
            present(),
            Some(failed_retryable(
                Some(DESIRED_FP),
                Some(now() + Duration::seconds(1)),
            )),
            Some(S::RollbackComplete),
            Is(D::Nothing),
        ),
        row(
            "unchanged, failed(retry, unparsable time), no stack",
            present(),
            Some(TenantStatus {
                next_attempt_at: Some("soon".into()),
                ..failed_retryable(Some(DESIRED_FP), None)
            }),
            None,
            Is(D::Create),
        ),
        row(
            "changed, ready, UPDATE_ROLLBACK_FAILED",
            present(),
            Some(ready(OLD_FP)),
            Some(S::UpdateRollbackFailed),
            Is(D::ContinueUpdateRollback),
        ),
        row(
            "unchanged, updating, UPDATE_ROLLBACK_FAILED",
            present(),
            Some(in_flight(St::Updating, Operation::Update, DESIRED_FP)),
            Some(S::UpdateRollbackFailed),
            Is(D::ContinueUpdateRollback),
        ),
        row(
            "unchanged, failed, UPDATE_ROLLBACK_FAILED",
            present(),
            Some(failed(Some(DESIRED_FP), "boom")),
            Some(S::UpdateRollbackFailed),
            Is(D::Nothing),
        ),
        row(
            "changed, ready, UPDATE_FAILED",
            present(),
            Some(ready(OLD_FP)),
            Some(S::UpdateFailed),
            Is(D::Update),
        ),
        row(
            "changed, failed, DELETE_FAILED",
            present(),
            Some(failed(Some(OLD_FP), "boom")),
            Some(S::DeleteFailed),
            Is(D::Delete),
        ),
        row(
            "changed, failed, ROLLBACK_FAILED",
            present(),
            Some(failed(Some(OLD_FP), "boom")),
            Some(S::RollbackFailed),
            Is(D::Delete),
        ),
        row(
            "new SPEC, REVIEW_IN_PROGRESS",
            present(),
            None,
            Some(S::ReviewInProgress),
            Is(D::Delete),
        ),
        row(
            "unchanged, creating, REVIEW_IN_PROGRESS",
            present(),
            Some(in_flight(St::Creating, Operation::Create, DESIRED_FP)),
            Some(S::ReviewInProgress),
            Is(D::Delete),
        ),
        row(
            "new SPEC, IMPORT_ROLLBACK_FAILED",
            present(),
            None,
            Some(S::ImportRollbackFailed),
            BlockedWith("IMPORT_ROLLBACK_FAILED"),
        ),
        row(
            "unchanged, that operator failure recorded, IMPORT_ROLLBACK_FAILED",
            present(),
            Some(failed(Some(DESIRED_FP), operator_reason)),
            Some(S::ImportRollbackFailed),
            Is(D::Nothing),
        ),
        row(
            "changed, ready, unknown stack status",
            present(),
            Some(ready(OLD_FP)),
            Some(S::Unknown("TELEPORT_COMPLETE".into())),
            BlockedWith("TELEPORT_COMPLETE"),
        ),
        // Bounded retries and drift.
        row(
            "gave up: attempts spent on this SPEC",
            present(),
            Some(gave_up.clone()),
            None,
            FailWith("gave up after 5 attempts"),
        ),
        row(
            "gave up: attempts spent, still creating",
            present(),
            Some(gave_up_creating),
            None,
            FailWith("gave up after 5 attempts"),
        ),
        row(
            "attempts spent on an older SPEC do not count",
            present(),
            Some(TenantStatus {
                spec_fingerprint: Some(OLD_FP.into()),
                ..gave_up
            }),
            None,
            Is(D::Create),
        ),
        Row {
            name: "parameter drift on a ready stack",
            desired: present(),
            status: Some(ready(DESIRED_FP)),
            stack: Some(drifted.clone()),
            at: here(),
            expect: Is(D::Update),
        },
        // CloudFormation may echo a Number in another form than it was sent; a String never.
        Row {
            name: "no drift when a Number reads back in another form of its value",
            desired: present(),
            status: Some(ready(DESIRED_FP)),
            stack: Some({
                let mut s = stack(S::UpdateComplete);
                s.parameters.insert("PlayerCount".into(), "5.0".into());
                s
            }),
            at: here(),
            expect: Is(D::Nothing),
        },
        Row {
            name: "drift when a String reads back in another form of a number",
            desired: Desired::Present(DesiredStack {
                parameters: vec![("Seed".into(), "7".into())],
                ..match present() {
                    Desired::Present(d) => d,
                    _ => unreachable!(),
                }
            }),
            status: Some(ready(DESIRED_FP)),
            stack: Some({
                let mut s = stack(S::UpdateComplete);
                s.parameters.insert("Seed".into(), "007".into());
                s
            }),
            at: here(),
            expect: Is(D::Update),
        },
        Row {
            name: "no drift when the stack reports no parameters",
            desired: present(),
            status: Some(ready(DESIRED_FP)),
            stack: Some(ObservedStack {
                parameters: BTreeMap::new(),
                ..drifted
            }),
            at: here(),
            expect: Is(D::Nothing),
        },
        // Account and region are fixed while the stack exists.
        Row {
            name: "account changed while the stack exists",
            desired: present(),
            status: Some(ready(OLD_FP)),
            stack: Some(stack(S::CreateComplete)),
            at: location(OTHER_ACCOUNT, REGION),
            expect: BlockedWith("cannot change"),
        },
        Row {
            name: "region changed while the stack is busy",
            desired: present(),
            status: Some(ready(OLD_FP)),
            stack: Some(stack(S::UpdateInProgress)),
            at: location(ACCOUNT, OTHER_REGION),
            expect: BlockedWith("cannot change"),
        },
        Row {
            name: "account changed, old stack gone",
            desired: present(),
            status: Some(ready(OLD_FP)),
            stack: None,
            at: location(OTHER_ACCOUNT, REGION),
            expect: Is(D::Create),
        },
        // Invalid SPECs.
        row(
            "invalid, no STATUS",
            invalid(),
            None,
            None,
            FailWith("invalid SPEC: account_id"),
        ),
        row(
            "invalid, ready, CREATE_COMPLETE",
            invalid(),
            Some(ready(OLD_FP)),
            Some(S::CreateComplete),
            FailWith("invalid SPEC: account_id"),
        ),
        row(
            "invalid, that failure recorded",
            invalid(),
            Some(failed(None, INVALID_REASON)),
            Some(S::CreateComplete),
            Is(D::Nothing),
        ),
        // Removal.
        row(
            "absent, no STATUS",
            Desired::Absent,
            None,
            None,
            Is(D::Nothing),
        ),
        row(
            "absent, no STATUS, a stack",
            Desired::Absent,
            None,
            Some(S::CreateComplete),
            Is(D::Nothing),
        ),
        row(
            "absent, ready, CREATE_COMPLETE",
            Desired::Absent,
            Some(ready(OLD_FP)),
            Some(S::CreateComplete),
            Is(D::Delete),
        ),
        row(
            "absent, failed, ROLLBACK_COMPLETE",
            Desired::Absent,
            Some(failed(Some(OLD_FP), "boom")),
            Some(S::RollbackComplete),
            Is(D::Delete),
        ),
        row(
            "absent, ready, UPDATE_ROLLBACK_FAILED",
            Desired::Absent,
            Some(ready(OLD_FP)),
            Some(S::UpdateRollbackFailed),
            Is(D::Delete),
        ),
        row(
            "absent, deleting, DELETE_IN_PROGRESS",
            Desired::Absent,
            Some(in_flight(St::Deleting, Operation::Delete, removed)),
            Some(S::DeleteInProgress),
            Is(D::Wait),
        ),
        row(
            "absent, deleting, no stack",
            Desired::Absent,
            Some(in_flight(St::Deleting, Operation::Delete, removed)),
            None,
            Is(D::Finalize(Terminal::Deleted)),
        ),
        row(
            "absent, deleting, DELETE_COMPLETE",
            Desired::Absent,
            Some(in_flight(St::Deleting, Operation::Delete, removed)),
            Some(S::DeleteComplete),
            Is(D::Finalize(Terminal::Deleted)),
        ),
        row(
            "absent, failed (invalid SPEC), no stack",
            Desired::Absent,
            Some(failed(None, INVALID_REASON)),
            None,
            Is(D::Finalize(Terminal::Deleted)),
        ),
        row(
            "absent, deleted, no stack",
            Desired::Absent,
            Some(status_row(
                St::Deleted,
                Some(Operation::Delete),
                Some(removed),
            )),
            None,
            Is(D::Nothing),
        ),
        row(
            "absent, deleted, DELETE_COMPLETE",
            Desired::Absent,
            Some(status_row(
                St::Deleted,
                Some(Operation::Delete),
                Some(removed),
            )),
            Some(S::DeleteComplete),
            Is(D::Nothing),
        ),
        row(
            "absent, deleting(op Delete, removed), DELETE_FAILED",
            Desired::Absent,
            Some(in_flight(St::Deleting, Operation::Delete, removed)),
            Some(S::DeleteFailed),
            FailedFromStack("the delete failed"),
        ),
        row(
            "absent, that delete failure recorded, DELETE_FAILED",
            Desired::Absent,
            Some(failed(Some(removed), "the delete failed: boom")),
            Some(S::DeleteFailed),
            Is(D::Nothing),
        ),
        row(
            "absent, delete failure retry due, DELETE_FAILED",
            Desired::Absent,
            Some(failed_retryable(
                Some(removed),
                Some(now() - Duration::minutes(1)),
            )),
            Some(S::DeleteFailed),
            Is(D::Delete),
        ),
        row(
            "absent, ready (old SPEC), DELETE_FAILED",
            Desired::Absent,
            Some(ready(OLD_FP)),
            Some(S::DeleteFailed),
            Is(D::Delete),
        ),
        row(
            "absent, ready, IMPORT_ROLLBACK_FAILED",
            Desired::Absent,
            Some(ready(OLD_FP)),
            Some(S::ImportRollbackFailed),
            BlockedWith("IMPORT_ROLLBACK_FAILED"),
        ),
        row(
            "absent, deleting, attempts spent",
            Desired::Absent,
            Some(TenantStatus {
                attempts: MAX_ATTEMPTS,
                ..in_flight(St::Deleting, Operation::Delete, removed)
            }),
            Some(S::CreateComplete),
            FailWith("gave up after 5 attempts"),
        ),
    ];
    rows.push(row(
        "unchanged, ready, stack elsewhere recorded as failed",
        present(),
        Some(failed(
            Some(DESIRED_FP),
            "account_id and region cannot change while the tenant's stack exists \
             (asked: account_id 222222222222 -> 111111111111; stack tenant-gs1234 in account \
             222222222222 region eu-west-1); the stack is left untouched: to move the tenant, \
             remove it, wait for `deleted`, and create it again",
        )),
        Some(S::CreateComplete),
        Is(D::Nothing),
    ));
    // The same failure recorded for the SPEC before (a config change after the account change
    // that blocked it): the new SPEC is answered, with the same words, for itself.
    let blocked_before = rows
        .last()
        .and_then(|r| r.status.clone())
        .map(|s| TenantStatus {
            spec_fingerprint: Some(OLD_FP.into()),
            retryable: true,
            ..s
        });
    rows.push(row(
        "new SPEC, stack elsewhere, the same failure recorded for the SPEC before",
        present(),
        blocked_before,
        Some(S::CreateComplete),
        BlockedWith("cannot change"),
    ));
    // Those last rows are only meaningful with the stack elsewhere.
    for last in rows.iter_mut().rev().take(2) {
        last.at = location(OTHER_ACCOUNT, REGION);
    }
    rows
}

#[test]
fn expected_decisions() {
    let rows = expected_rows();
    assert!(rows.len() >= 30, "{}", rows.len());
    let mut failures = Vec::new();
    for r in &rows {
        let decision = run(&r.desired, r.status.as_ref(), r.stack.as_ref(), Some(&r.at));
        let ok = match &r.expect {
            Expect::Is(expected) => &decision == expected,
            Expect::FailWith(part) => matches!(
                &decision,
                Decision::Fail { reason, retryable: false } if reason.contains(part)
            ),
            Expect::BlockedWith(part) => matches!(
                &decision,
                Decision::Fail { reason, retryable: true } if reason.contains(part)
            ),
            Expect::FailedFromStack(what) => {
                decision
                    == Decision::Finalize(Terminal::FailedFromStack {
                        what: (*what).into(),
                    })
            }
        };
        if !ok {
            failures.push(format!(
                "{}: expected {:?}, got {decision:?}",
                r.name, r.expect
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn an_operator_failure_is_recorded_once() {
    let observed = stack(StackStatus::ImportRollbackFailed);
    let first = run(
        &present(),
        Some(&ready(OLD_FP)),
        Some(&observed),
        Some(&here()),
    );
    let Decision::Fail { reason, retryable } = first.clone() else {
        panic!("{first:?}");
    };
    assert!(retryable);
    assert!(reason.contains("IMPORT_ROLLBACK_FAILED"), "{reason}");
    assert!(
        reason.contains("resolve it in the tenant account"),
        "{reason}"
    );
    let recorded = recorded_after(&first, &present(), Some(&ready(OLD_FP))).unwrap();
    assert_eq!(
        run(&present(), Some(&recorded), Some(&observed), Some(&here())),
        Decision::Nothing
    );
    // Same for an absent SPEC.
    let first = run(
        &Desired::Absent,
        Some(&ready(OLD_FP)),
        Some(&observed),
        Some(&here()),
    );
    let recorded = recorded_after(&first, &Desired::Absent, Some(&ready(OLD_FP))).unwrap();
    assert_eq!(
        run(
            &Desired::Absent,
            Some(&recorded),
            Some(&observed),
            Some(&here())
        ),
        Decision::Nothing
    );
}

#[test]
fn gave_up_names_the_last_reason_and_how_to_retry() {
    let status = TenantStatus {
        attempts: 7,
        reason: Some("Rate exceeded".into()),
        ..failed_retryable(Some(DESIRED_FP), None)
    };
    let Decision::Fail { reason, retryable } = run(&present(), Some(&status), None, Some(&here()))
    else {
        panic!("expected a Fail");
    };
    assert!(!retryable);
    assert_eq!(
        reason,
        "gave up after 7 attempts for this SPEC: Rate exceeded; bump `retry` to try again"
    );
    // Recorded, it stays failed: no further operation until the SPEC changes.
    let recorded = recorded_after(
        &Decision::Fail { reason, retryable },
        &present(),
        Some(&status),
    )
    .unwrap();
    assert_eq!(
        run(&present(), Some(&recorded), None, Some(&here())),
        Decision::Nothing
    );
    let bumped = Desired::Present(DesiredStack {
        fingerprint: "fp-bumped".into(),
        ..match present() {
            Desired::Present(d) => d,
            _ => unreachable!(),
        }
    });
    assert_eq!(
        run(&bumped, Some(&recorded), None, Some(&here())),
        Decision::Create
    );
}

#[test]
fn the_fingerprint_covers_what_shapes_the_stack() {
    let spec = TenantSpec {
        tenant_id: "gs1234".into(),
        account_id: ACCOUNT.into(),
        region: None,
        config: [("player_count".to_owned(), ConfigValue::Number("5".into()))].into(),
        template_version: None,
        decommission_date: None,
        retry: None,
        drift_policy: None,
        updated_by: Some("alice".into()),
    };
    let base = fingerprint(&spec, REGION, "v1");
    assert_eq!(base, fingerprint(&spec.clone(), REGION, "v1"), "stable");
    assert_eq!(base.len(), 32);
    // Who wrote it and when to decommission do not shape the stack.
    let same = TenantSpec {
        updated_by: Some("bob".into()),
        decommission_date: Some("2027-01-31".into()),
        ..spec.clone()
    };
    assert_eq!(fingerprint(&same, REGION, "v1"), base);
    let variants = [
        fingerprint(
            &TenantSpec {
                account_id: OTHER_ACCOUNT.into(),
                ..spec.clone()
            },
            REGION,
            "v1",
        ),
        fingerprint(&spec, OTHER_REGION, "v1"),
        fingerprint(&spec, REGION, "v2"),
        fingerprint(
            &TenantSpec {
                retry: Some("1".into()),
                ..spec.clone()
            },
            REGION,
            "v1",
        ),
        fingerprint(
            &TenantSpec {
                config: [("player_count".to_owned(), ConfigValue::Number("6".into()))].into(),
                ..spec.clone()
            },
            REGION,
            "v1",
        ),
        fingerprint(
            &TenantSpec {
                config: [("player_count".to_owned(), ConfigValue::String("5".into()))].into(),
                ..spec.clone()
            },
            REGION,
            "v1",
        ),
    ];
    for (i, variant) in variants.iter().enumerate() {
        assert_ne!(variant, &base, "variant {i}");
        assert_ne!(variant, REMOVED_FINGERPRINT);
    }
}

#[test]
fn only_operations_have_an_operation() {
    assert_eq!(Decision::Create.operation(), Some(Operation::Create));
    assert_eq!(Decision::Update.operation(), Some(Operation::Update));
    assert_eq!(Decision::Delete.operation(), Some(Operation::Delete));
    assert_eq!(
        Decision::ContinueUpdateRollback.operation(),
        Some(Operation::ContinueUpdateRollback)
    );
    for d in [
        Decision::Nothing,
        Decision::Wait,
        Decision::Finalize(Terminal::Ready),
        Decision::Finalize(Terminal::Deleted),
        Decision::Fail {
            reason: "x".into(),
            retryable: false,
        },
    ] {
        assert_eq!(d.operation(), None, "{d:?}");
    }
}

#[test]
fn an_operation_in_flight_past_the_time_limit_fails_and_heals() {
    let creating = in_flight(Status::Creating, Operation::Create, DESIRED_FP);
    let observed = stack(StackStatus::CreateInProgress);
    let decide_after = |limit_s: u64| {
        decide(&Observation {
            tenant_id: "gs1234",
            desired: &present(),
            status: Some(&creating),
            stack: Some(&observed),
            stack_location: Some(&here()),
            now: now(),
            max_attempts: MAX_ATTEMPTS,
            operation_timeout: std::time::Duration::from_secs(limit_s),
        })
    };
    // Written an hour ago: within three hours it waits, past thirty minutes it fails.
    assert_eq!(decide_after(3 * 3600), Decision::Wait);
    let Decision::Fail { reason, retryable } = decide_after(1800) else {
        panic!("must fail");
    };
    assert!(retryable);
    assert_eq!(
        reason,
        "the create did not finish within 30 minutes: the stack is still CREATE_IN_PROGRESS"
    );
}

/// A ready tenant whose stack was found elsewhere than STATUS recorded (by its name and tags)
/// records where it really is; found where recorded, nothing is done.
#[test]
fn a_ready_stack_found_elsewhere_than_recorded_is_recorded_where_it_is() {
    let found = stack(StackStatus::CreateComplete);
    let recorded_elsewhere = TenantStatus {
        location: Some(StackLocation {
            stack_name: "someone-elses".into(),
            ..here()
        }),
        ..ready(DESIRED_FP)
    };
    assert_eq!(
        run(
            &present(),
            Some(&recorded_elsewhere),
            Some(&found),
            Some(&here())
        ),
        Decision::Finalize(Terminal::Ready)
    );
    assert_eq!(
        run(
            &present(),
            Some(&ready(DESIRED_FP)),
            Some(&found),
            Some(&here())
        ),
        Decision::Nothing
    );
}

fn drifted_record() -> crate::drift::DriftRecord {
    crate::drift::DriftRecord::of(
        crate::drift::Detection::Drifted {
            resources: vec![crate::drift::ResourceDrift {
                logical_id: "Queue".into(),
                resource_type: "AWS::SQS::Queue".into(),
                physical_id: None,
                status: "MODIFIED".into(),
                differences: Vec::new(),
            }],
            reason: None,
        },
        Utc.with_ymd_and_hms(2024, 1, 1, 12, 0, 0).unwrap(),
    )
}

fn with_policy(policy: DriftPolicy) -> Desired {
    match present() {
        Desired::Present(d) => Desired::Present(DesiredStack {
            drift_policy: policy,
            ..d
        }),
        _ => unreachable!(),
    }
}

#[test]
fn a_drifted_ready_stack_is_reverted_only_when_its_policy_says_so() {
    let mut status = ready(DESIRED_FP);
    status.drift = Some(drifted_record());
    let healthy = stack(StackStatus::UpdateComplete);
    let rolled_back = stack(StackStatus::UpdateRollbackComplete);
    for observed in [&healthy, &rolled_back] {
        assert_eq!(
            run(
                &with_policy(DriftPolicy::Revert),
                Some(&status),
                Some(observed),
                Some(&here())
            ),
            Decision::RevertDrift
        );
        assert_eq!(
            run(
                &with_policy(DriftPolicy::Report),
                Some(&status),
                Some(observed),
                Some(&here())
            ),
            Decision::Nothing
        );
    }
    // Once per detection: a revert already started for it is not started again.
    status.drift = Some(crate::drift::reverted(
        &drifted_record(),
        Utc.with_ymd_and_hms(2024, 1, 2, 0, 0, 0).unwrap(),
        Vec::new(),
        crate::drift::RevertOutcome::Started,
    ));
    assert_eq!(
        run(
            &with_policy(DriftPolicy::Revert),
            Some(&status),
            Some(&healthy),
            Some(&here())
        ),
        Decision::Nothing
    );
}

#[test]
fn a_new_spec_wins_over_a_drift_revert() {
    let mut status = ready("an-older-spec");
    status.drift = Some(drifted_record());
    assert_eq!(
        run(
            &with_policy(DriftPolicy::Revert),
            Some(&status),
            Some(&stack(StackStatus::UpdateComplete)),
            Some(&here())
        ),
        Decision::Update
    );
}

#[test]
fn a_drift_revert_that_rolled_back_leaves_the_tenant_ready() {
    let mut status = in_flight(Status::Updating, Operation::RevertDrift, DESIRED_FP);
    status.drift = Some(drifted_record());
    assert_eq!(
        run(
            &with_policy(DriftPolicy::Revert),
            Some(&status),
            Some(&stack(StackStatus::UpdateRollbackComplete)),
            Some(&here())
        ),
        Decision::Finalize(Terminal::Ready)
    );
    // An update of the SPEC that rolled back is still a failure.
    let update = in_flight(Status::Updating, Operation::Update, DESIRED_FP);
    assert!(matches!(
        run(
            &present(),
            Some(&update),
            Some(&stack(StackStatus::UpdateRollbackComplete)),
            Some(&here())
        ),
        Decision::Finalize(Terminal::FailedFromStack { .. })
    ));
}
