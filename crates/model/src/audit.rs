//! The audit timeline: every action on a tenant (what, by whom, when, with what result), kept as
//! items under the tenant's pk (`sk = "EVENT#<time>#<id>"`), read in order, expired by TTL.
//!
//! Audit items carry neither `tenant_id` nor `status`, so the sparse `tenants` and `by-status`
//! indexes (listing, the reconciler, metrics, decommission) never see them, and a tenant's
//! `load` reads `sk BETWEEN "SPEC" AND "STATUS"`, which no `EVENT#` key falls into.

use serde::{Deserialize, Serialize};

use crate::status::{Operation, Status, TenantStatus};

pub const EVENT_SK_PREFIX: &str = "EVENT#";
/// Who the control plane acts as: the reconciler, the completion loop, decommission.
pub const SYSTEM_ACTOR: &str = "system";
/// The actor of a write that named none (`updated_by` unset, or a DeleteItem, which carries none).
pub const UNKNOWN_ACTOR: &str = "unknown";
/// How long audit items are kept by default (the table's TTL removes them afterwards).
pub const DEFAULT_RETENTION_DAYS: u32 = 90;

/// One line of a tenant's timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// RFC 3339; the timeline's order.
    pub at: String,
    /// Unique per action within the tenant (with `at`, the item's key: writing the same entry
    /// again replaces it). Lines from stream records may repeat under redelivery, same `id`.
    pub id: String,
    /// What was done.
    pub action: AuditAction,
    /// Who did it: the writer's `updated_by`, or `system` for the control plane.
    pub actor: String,
    /// For the control plane's actions: who wrote the SPEC it acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// `accepted`, `started`, `ready`, `deleted`, `failed`, `retrying`, `scheduled`.
    pub result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What an audit line says was done. Stored and shown as its text (`spec-written`, ...); a text
/// this build does not name (written by a newer one) is kept as it is, never refused.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum AuditAction {
    /// A writer wrote the SPEC (from its stream record).
    SpecWritten,
    /// A writer, or decommission's request, removed the SPEC.
    SpecRemoved,
    /// A stack operation started or ended.
    Operation(Operation),
    /// A STATUS change that follows no operation (a SPEC that failed validation, a stack
    /// already gone).
    Reconcile,
    DecommissionScheduled,
    DecommissionWithdrawn,
    /// Decommission removed the SPEC once the grace period was over.
    Decommission,
    /// A rollout assigned the tenant a template version.
    TemplateAssigned,
    /// The drift job found the stack drifted, or back in sync.
    DriftChecked,
    /// A text this build does not name.
    Other(String),
}

impl AuditAction {
    const NAMED: [Self; 13] = [
        Self::SpecWritten,
        Self::SpecRemoved,
        Self::Operation(Operation::Create),
        Self::Operation(Operation::Update),
        Self::Operation(Operation::Delete),
        Self::Operation(Operation::ContinueUpdateRollback),
        Self::Operation(Operation::RevertDrift),
        Self::Reconcile,
        Self::DecommissionScheduled,
        Self::DecommissionWithdrawn,
        Self::Decommission,
        Self::TemplateAssigned,
        Self::DriftChecked,
    ];

    pub fn as_str(&self) -> &str {
        match self {
            Self::SpecWritten => "spec-written",
            Self::SpecRemoved => "spec-removed",
            Self::Operation(operation) => operation.as_str(),
            Self::Reconcile => "reconcile",
            Self::DecommissionScheduled => "decommission-scheduled",
            Self::DecommissionWithdrawn => "decommission-withdrawn",
            Self::Decommission => "decommission",
            Self::TemplateAssigned => "template-assigned",
            Self::DriftChecked => "drift-checked",
            Self::Other(text) => text,
        }
    }
}

impl From<String> for AuditAction {
    fn from(text: String) -> Self {
        Self::NAMED
            .into_iter()
            .find(|named| named.as_str() == text)
            .unwrap_or(Self::Other(text))
    }
}

impl From<AuditAction> for String {
    fn from(action: AuditAction) -> Self {
        match action {
            AuditAction::Other(text) => text,
            named => named.as_str().to_owned(),
        }
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for AuditAction {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl AuditEntry {
    pub fn sort_key(&self) -> String {
        format!("{EVENT_SK_PREFIX}{}#{}", self.at, self.id)
    }
}

/// The entry a STATUS write records, if it changed what a reader of the timeline cares about
/// (not, say, an emptied event outbox). `at` is when the control plane acted.
pub fn status_transition(
    previous: Option<&TenantStatus>,
    next: &TenantStatus,
    requested_by: Option<&str>,
    at: &str,
) -> Option<AuditEntry> {
    let shape = |s: &TenantStatus| {
        (
            s.status,
            s.operation,
            s.reason.clone(),
            s.retryable,
            s.spec_fingerprint.clone(),
        )
    };
    if previous.map(shape) == Some(shape(next)) {
        return None;
    }
    let result = match next.status {
        _ if next.retryable => "retrying",
        Status::Creating | Status::Updating | Status::Deleting => "started",
        Status::Ready => "ready",
        Status::Deleted => "deleted",
        Status::Failed => "failed",
    };
    // An operation's start and its end name it; anything else (a SPEC that failed validation,
    // a stack already gone) is a plain reconcile.
    let following_operation =
        next.status.is_in_flight() || previous.is_some_and(|p| p.status.is_in_flight());
    let action = match next.operation {
        Some(operation) if following_operation => AuditAction::Operation(operation),
        _ => AuditAction::Reconcile,
    };
    Some(AuditEntry {
        at: at.to_owned(),
        // Padded: within equal times, version 10 sorts after version 9.
        id: format!("status-{:020}", next.version),
        action,
        actor: SYSTEM_ACTOR.to_owned(),
        requested_by: requested_by.map(str::to_owned),
        result: result.to_owned(),
        reason: next.reason.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: Status, operation: Option<Operation>, version: u64) -> TenantStatus {
        TenantStatus {
            operation,
            spec_fingerprint: Some("f1".into()),
            version,
            ..TenantStatus::new("gs1234", status, "2026-11-23T10:00:00.000Z")
        }
    }

    #[test]
    fn an_operation_start_and_end_are_named_by_the_operation() {
        let started = status(Status::Creating, Some(Operation::Create), 1);
        let entry = status_transition(None, &started, Some("alice"), "t1").unwrap();
        assert_eq!(
            (
                entry.action.as_str(),
                entry.result.as_str(),
                entry.actor.as_str()
            ),
            ("create", "started", "system")
        );
        assert_eq!(entry.requested_by.as_deref(), Some("alice"));
        assert_eq!(entry.sort_key(), "EVENT#t1#status-00000000000000000001");

        let ready = status(Status::Ready, Some(Operation::Create), 2);
        let entry = status_transition(Some(&started), &ready, None, "t2").unwrap();
        assert_eq!(
            (entry.action.as_str(), entry.result.as_str()),
            ("create", "ready")
        );
    }

    #[test]
    fn every_action_reads_back_as_itself_and_unknown_text_is_kept() {
        for named in AuditAction::NAMED {
            let text = String::from(named.clone());
            assert_eq!(AuditAction::from(text), named);
        }
        let later = AuditAction::from("quarantined".to_owned());
        assert_eq!(later, AuditAction::Other("quarantined".into()));
        assert_eq!(String::from(later), "quarantined");
        let json =
            serde_json::to_string(&AuditAction::Operation(Operation::ContinueUpdateRollback));
        assert_eq!(json.ok().as_deref(), Some("\"continue-update-rollback\""));
    }

    #[test]
    fn a_write_that_changes_nothing_a_reader_sees_is_not_recorded() {
        let ready = status(Status::Ready, Some(Operation::Create), 2);
        let mut outbox_emptied = ready.clone();
        outbox_emptied.version = 3;
        assert_eq!(
            status_transition(Some(&ready), &outbox_emptied, None, "t"),
            None
        );
    }

    #[test]
    fn failures_say_whether_they_will_be_retried_and_why() {
        let ready = status(Status::Ready, Some(Operation::Create), 2);
        let mut invalid = ready.clone();
        invalid.status = Status::Failed;
        invalid.reason = Some("invalid SPEC: account_id: must be exactly 12 digits".into());
        invalid.version = 3;
        let entry = status_transition(Some(&ready), &invalid, None, "t").unwrap();
        assert_eq!(
            (entry.action.as_str(), entry.result.as_str()),
            ("reconcile", "failed")
        );
        assert_eq!(entry.reason, invalid.reason);

        let mut throttled = invalid.clone();
        throttled.retryable = true;
        throttled.reason = Some("Throttling; will retry".into());
        throttled.version = 4;
        let entry = status_transition(Some(&invalid), &throttled, None, "t").unwrap();
        assert_eq!(entry.result, "retrying");
    }
}
