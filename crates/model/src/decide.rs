//! The decision: from what a tenant should be (SPEC), what was recorded (STATUS) and what exists
//! (the stack), the one next step. Pure: no I/O, no clock but the one passed in.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::drift::{DriftPolicy, revert_due};
use crate::spec::{ConfigValue, TenantSpec};
use crate::stack::{ObservedStack, StackPhase};
use crate::status::{Operation, StackLocation, Status, TenantStatus};
use crate::template::same_parameter_value;

/// The fingerprint recorded while a tenant whose SPEC is gone is being removed.
pub const REMOVED_FINGERPRINT: &str = "removed";

/// The stack a valid SPEC asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredStack {
    pub location: StackLocation,
    pub template_version: String,
    pub parameters: Vec<(String, String)>,
    /// The parameters the template types `Number`: compared as numbers, not as text.
    pub number_parameters: BTreeSet<String>,
    pub fingerprint: String,
    /// What to do when the drift job finds the stack drifted (SPEC `drift_policy`, else the
    /// deployment's). Not in the fingerprint: it shapes no stack.
    pub drift_policy: DriftPolicy,
}

/// What the SPEC row says, after validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Desired {
    /// No SPEC: the tenant must not have a stack.
    Absent,
    /// A SPEC that breaks the contract; the reason names the fields.
    Invalid {
        reason: String,
    },
    Present(DesiredStack),
}

/// Everything `decide` looks at.
#[derive(Clone, Debug)]
pub struct Observation<'a> {
    /// The tenant, as its partition key names it.
    pub tenant_id: &'a str,
    pub desired: &'a Desired,
    pub status: Option<&'a TenantStatus>,
    /// The stack at `stack_location`; `None` when there is none.
    pub stack: Option<&'a ObservedStack>,
    pub stack_location: Option<&'a StackLocation>,
    pub now: DateTime<Utc>,
    pub max_attempts: u32,
    /// How long an operation may stay in flight before it is recorded `failed`.
    pub operation_timeout: std::time::Duration,
}

/// The terminal state to record from what the stack shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Terminal {
    Ready,
    Deleted,
    /// The stack operation failed; `what` says which, the stack events say why.
    FailedFromStack {
        what: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Converged: nothing to do or record.
    Nothing,
    /// An operation is in flight: look again later.
    Wait,
    Create,
    Update,
    Delete,
    ContinueUpdateRollback,
    /// Bring drifted resources back to the template (a REVERT_DRIFT change set).
    RevertDrift,
    Finalize(Terminal),
    /// Record `failed` and leave the stack alone.
    Fail {
        reason: String,
        retryable: bool,
    },
}

impl Decision {
    /// The stack operation this decision starts, if any.
    pub fn operation(&self) -> Option<Operation> {
        match self {
            Self::Create => Some(Operation::Create),
            Self::Update => Some(Operation::Update),
            Self::Delete => Some(Operation::Delete),
            Self::ContinueUpdateRollback => Some(Operation::ContinueUpdateRollback),
            Self::RevertDrift => Some(Operation::RevertDrift),
            _ => None,
        }
    }
}

/// The fingerprint of what shapes a tenant's stack: account, region, template version, config
/// and the retry counter. Writers set no version, so content is the version.
pub fn fingerprint(spec: &TenantSpec, region: &str, template_version: &str) -> String {
    #[derive(Serialize)]
    struct Shape<'a> {
        account_id: &'a str,
        region: &'a str,
        template_version: &'a str,
        config: &'a BTreeMap<String, ConfigValue>,
        retry: Option<&'a str>,
    }
    let shape = Shape {
        account_id: &spec.account_id,
        region,
        template_version,
        config: &spec.config,
        retry: spec.retry.as_deref(),
    };
    // BTreeMap keeps the JSON canonical; serializing plain data cannot fail. Hashed as it is
    // written, with no buffer.
    let mut hasher = Sha256::new();
    let _ = serde_json::to_writer(&mut hasher, &shape);
    hex::encode(&hasher.finalize()[..16])
}

pub fn decide(o: &Observation<'_>) -> Decision {
    match o.desired {
        // An invalid SPEC reflects no stack shape: its failure is recorded with no fingerprint.
        Desired::Invalid { reason } => fail_once(o.status, None, reason.clone()),
        Desired::Present(desired) => bounded(o, decide_present(o, desired), &desired.fingerprint),
        Desired::Absent => bounded(o, decide_absent(o), REMOVED_FINGERPRINT),
    }
}

/// Stops an operation repeated for the same SPEC more than `max_attempts` times.
fn bounded(o: &Observation<'_>, decision: Decision, fingerprint: &str) -> Decision {
    let Some(status) = o.status else {
        return decision;
    };
    let same = status.spec_fingerprint.as_deref() == Some(fingerprint);
    if decision.operation().is_some() && same && status.attempts >= o.max_attempts {
        let last = status
            .reason
            .as_deref()
            .unwrap_or("the stack never reached the desired state");
        return Decision::Fail {
            reason: format!(
                "gave up after {} attempts for this SPEC: {last}; bump `retry` to try again",
                status.attempts
            ),
            retryable: false,
        };
    }
    decision
}

fn retry_due(status: &TenantStatus, now: DateTime<Utc>) -> bool {
    status.status == Status::Failed
        && status.retryable
        && status
            .next_attempt_at
            .as_deref()
            .and_then(crate::time::parse)
            .is_none_or(|t| t <= now)
}

fn decide_present(o: &Observation<'_>, desired: &DesiredStack) -> Decision {
    let this_spec = Some(desired.fingerprint.as_str());
    if let (Some(stack), Some(at)) = (o.stack, o.stack_location)
        && !stack.is_managed_for(o.tenant_id)
    {
        return blocked(
            o.status,
            this_spec,
            format!(
                "a stack named {} exists in account {} region {} but was not made by the \
                 control plane for this tenant; it is left untouched: remove or rename it",
                at.stack_name, at.account_id, at.region
            ),
        );
    }
    if let (Some(_), Some(at)) = (o.stack, o.stack_location)
        && (at.account_id != desired.location.account_id || at.region != desired.location.region)
    {
        let mut changes = Vec::new();
        if at.account_id != desired.location.account_id {
            changes.push(format!(
                "account_id {} -> {}",
                at.account_id, desired.location.account_id
            ));
        }
        if at.region != desired.location.region {
            changes.push(format!(
                "region {} -> {}",
                at.region, desired.location.region
            ));
        }
        return blocked(
            o.status,
            this_spec,
            format!(
                "account_id and region cannot change while the tenant's stack exists \
                 (asked: {}; stack {} in account {} region {}); the stack is left untouched: \
                 to move the tenant, remove it, wait for `deleted`, and create it again",
                changes.join(", "),
                at.stack_name,
                at.account_id,
                at.region
            ),
        );
    }
    let status = o.status;
    let same = status.is_some_and(|s| s.spec_fingerprint.as_deref() == Some(&desired.fingerprint));
    let recorded = status.map(|s| s.status);
    let operation = status.and_then(|s| s.operation);
    // A failure recorded for this very SPEC stays until a new write, a retry bump, or a due retry.
    let settled_failure =
        same && recorded == Some(Status::Failed) && !status.is_some_and(|s| retry_due(s, o.now));
    let ours_in_flight = same && recorded.is_some_and(Status::is_in_flight);
    // STATUS recorded the stack somewhere else than where it was found (by its tags): a ready
    // tenant records where it really is.
    let found_elsewhere = status
        .and_then(|s| s.location.as_ref())
        .is_some_and(|recorded| Some(recorded) != o.stack_location);

    let Some(stack) = o.stack else {
        return if settled_failure {
            Decision::Nothing
        } else {
            Decision::Create
        };
    };
    // The stack carries the fingerprint of the last create or update CloudFormation accepted:
    // a recorded intent whose call never went through does not pass for done.
    let stack_is_current = stack.fingerprint().is_none_or(|f| f == desired.fingerprint);
    // NoEcho parameters read back as "****": they cannot be compared, so never count as drift.
    // The rest are compared as CloudFormation echoes them (a Number in any form of its value).
    let params_drifted = !stack.parameters.is_empty()
        && desired.parameters.iter().any(|(name, value)| {
            let number = desired.number_parameters.contains(name);
            stack.parameters.get(name).is_none_or(|actual| {
                actual != "****" && !same_parameter_value(number, value, actual)
            })
        });

    // The drift job found the stack's resources changed by hand; the policy says bring them back.
    let drift_to_revert =
        stack_is_current && status.is_some_and(|s| revert_due(desired.drift_policy, s));

    match stack.status.phase() {
        StackPhase::InProgress => wait_or_time_out(o, stack),
        StackPhase::Deleted => {
            if settled_failure {
                Decision::Nothing
            } else {
                Decision::Create
            }
        }
        StackPhase::Review => {
            if settled_failure {
                Decision::Nothing
            } else {
                Decision::Delete
            }
        }
        StackPhase::Healthy => {
            if !same {
                Decision::Update
            } else {
                match recorded {
                    // Not what this SPEC's accepted call left: the call never went through,
                    // or someone else updated the stack since.
                    Some(Status::Ready | Status::Creating | Status::Updating)
                        if !stack_is_current =>
                    {
                        Decision::Update
                    }
                    Some(Status::Ready) if params_drifted => Decision::Update,
                    Some(Status::Ready) if found_elsewhere => Decision::Finalize(Terminal::Ready),
                    Some(Status::Ready) if drift_to_revert => Decision::RevertDrift,
                    Some(Status::Ready) => Decision::Nothing,
                    Some(Status::Creating | Status::Updating) => {
                        Decision::Finalize(Terminal::Ready)
                    }
                    Some(Status::Failed) if settled_failure => Decision::Nothing,
                    // A retry is due but the stack already is exactly this SPEC's: done.
                    Some(Status::Failed) if stack.fingerprint().is_some() && !params_drifted => {
                        Decision::Finalize(Terminal::Ready)
                    }
                    _ => Decision::Update,
                }
            }
        }
        StackPhase::UpdateRolledBack => {
            if !same {
                Decision::Update
            } else {
                match recorded {
                    // A drift revert that rolled back left the stack as it was, which is this
                    // SPEC's: ready (the revert's record says it failed, and why).
                    Some(Status::Updating) if operation == Some(Operation::RevertDrift) => {
                        Decision::Finalize(Terminal::Ready)
                    }
                    Some(Status::Updating) => Decision::Finalize(Terminal::FailedFromStack {
                        what: "the update failed and was rolled back".into(),
                    }),
                    Some(Status::Ready | Status::Creating) if params_drifted => Decision::Update,
                    Some(Status::Ready) if drift_to_revert => Decision::RevertDrift,
                    Some(Status::Ready) => Decision::Nothing,
                    Some(Status::Creating) => Decision::Finalize(Terminal::Ready),
                    Some(Status::Failed) if settled_failure => Decision::Nothing,
                    _ => Decision::Update,
                }
            }
        }
        StackPhase::UpdateFailed => {
            if ours_in_flight {
                Decision::Finalize(Terminal::FailedFromStack {
                    what: "the update failed".into(),
                })
            } else if settled_failure {
                Decision::Nothing
            } else {
                Decision::Update
            }
        }
        StackPhase::CreateFailed => {
            if ours_in_flight && operation == Some(Operation::Create) {
                Decision::Finalize(Terminal::FailedFromStack {
                    what: "the create failed and was rolled back".into(),
                })
            } else if settled_failure {
                Decision::Nothing
            } else {
                // A failed create cannot be updated: delete it, then create it again.
                Decision::Delete
            }
        }
        StackPhase::UpdateRollbackFailed => {
            if settled_failure {
                Decision::Nothing
            } else {
                Decision::ContinueUpdateRollback
            }
        }
        StackPhase::RollbackFailed | StackPhase::DeleteFailed => {
            if ours_in_flight && matches!(operation, Some(Operation::Create | Operation::Delete)) {
                Decision::Finalize(Terminal::FailedFromStack {
                    what: format!("the stack is {}", stack.status),
                })
            } else if settled_failure {
                Decision::Nothing
            } else {
                Decision::Delete
            }
        }
        StackPhase::ImportRollbackFailed | StackPhase::Unknown => {
            operator_needed(o.status, this_spec, stack)
        }
    }
}

fn decide_absent(o: &Observation<'_>) -> Decision {
    let Some(status) = o.status else {
        // Never recorded: no stack was ever started for this tenant.
        return Decision::Nothing;
    };
    let removing = status.spec_fingerprint.as_deref() == Some(REMOVED_FINGERPRINT);
    // Recorded once, for the removal itself (not for a SPEC that was there before).
    let recorded_deleted = removing && status.status == Status::Deleted;
    // Someone else's stack under the tenant's name is never deleted: the tenant is gone.
    let stack = o.stack.filter(|s| s.is_managed_for(o.tenant_id));
    let Some(stack) = stack else {
        return if recorded_deleted {
            Decision::Nothing
        } else {
            Decision::Finalize(Terminal::Deleted)
        };
    };
    let settled_failure = removing && status.status == Status::Failed && !retry_due(status, o.now);
    match stack.status.phase() {
        StackPhase::InProgress => wait_or_time_out(o, stack),
        // Like no stack at all.
        StackPhase::Deleted if recorded_deleted => Decision::Nothing,
        StackPhase::Deleted => Decision::Finalize(Terminal::Deleted),
        StackPhase::DeleteFailed => {
            if removing && status.status == Status::Deleting {
                Decision::Finalize(Terminal::FailedFromStack {
                    what: "the delete failed".into(),
                })
            } else if settled_failure {
                Decision::Nothing
            } else {
                Decision::Delete
            }
        }
        StackPhase::ImportRollbackFailed | StackPhase::Unknown => {
            operator_needed(Some(status), Some(REMOVED_FINGERPRINT), stack)
        }
        _ if settled_failure => Decision::Nothing,
        _ => Decision::Delete,
    }
}

/// Waits for a running operation, unless the one recorded has run past the time limit: then
/// every path still ends, `failed` with that reason. Retryable, so once CloudFormation does
/// finish, the next look records the truth.
fn wait_or_time_out(o: &Observation<'_>, stack: &ObservedStack) -> Decision {
    let Some(status) = o.status.filter(|s| s.status.is_in_flight()) else {
        return Decision::Wait;
    };
    let started = crate::time::parse(&status.updated_at);
    let limit = chrono::Duration::from_std(o.operation_timeout).unwrap_or(chrono::Duration::MAX);
    match started {
        Some(started) if o.now - started > limit => Decision::Fail {
            reason: format!(
                "the {} did not finish within {} minutes: the stack is still {}",
                status.operation.map_or("operation", Operation::as_str),
                o.operation_timeout.as_secs() / 60,
                stack.status
            ),
            retryable: true,
        },
        _ => Decision::Wait,
    }
}

fn operator_needed(
    status: Option<&TenantStatus>,
    fingerprint: Option<&str>,
    stack: &ObservedStack,
) -> Decision {
    blocked(
        status,
        fingerprint,
        format!(
            "the stack is {}, which the control plane cannot act on; \
             resolve it in the tenant account, then bump `retry`",
            stack.status
        ),
    )
}

/// A permanent failure, recorded once: the same reason already on STATUS for this very SPEC
/// means nothing to do.
fn fail_once(status: Option<&TenantStatus>, fingerprint: Option<&str>, reason: String) -> Decision {
    recorded_once(status, fingerprint, reason, false)
}

/// A failure that lasts as long as something outside the SPEC does (a stack in the way, one that
/// needs an operator): recorded once, retryable, and looked at again on every reconcile, so it
/// clears by itself once the obstacle is gone.
fn blocked(status: Option<&TenantStatus>, fingerprint: Option<&str>, reason: String) -> Decision {
    recorded_once(status, fingerprint, reason, true)
}

/// Nothing to do only when STATUS already answers this very SPEC (`fingerprint`, the one a
/// failure for it is recorded with) with this very reason: a new SPEC is always answered, even
/// when the obstacle and so the reason text are the same as for the one before.
fn recorded_once(
    status: Option<&TenantStatus>,
    fingerprint: Option<&str>,
    reason: String,
    retryable: bool,
) -> Decision {
    match status {
        Some(s)
            if s.status == Status::Failed
                && s.spec_fingerprint.as_deref() == fingerprint
                && s.reason.as_deref() == Some(reason.as_str()) =>
        {
            Decision::Nothing
        }
        _ => Decision::Fail { reason, retryable },
    }
}

#[cfg(test)]
mod tests;
