//! Fleet rollout of a tenant template version: what a rollout is, how its tenants are split into
//! waves, and, at every step, what to do next. Pure: the driver (`rollout_driver`) reads the
//! table, asks [`next_step`], acts, and records.
//!
//! A rollout never touches a stack. It moves each tenant's *assigned* template version (on
//! STATUS) in waves; the reconcile does the stack work, as for any other change.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::spec::ConfigValue;
use crate::template::render_value;

/// A count of tenants, or a percentage of the rollout's tenants (as StackSets takes them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Amount {
    Count(u32),
    Percent(u8),
}

impl Amount {
    /// `"10"` or `"5%"` (a percentage from 0 to 100).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Some(percent) = text.strip_suffix('%') {
            match percent.trim().parse::<u8>() {
                Ok(p) if p <= 100 => Ok(Self::Percent(p)),
                _ => Err(format!("{text:?} is not a percentage from 0% to 100%")),
            }
        } else {
            text.parse::<u32>()
                .map(Self::Count)
                .map_err(|_| format!("{text:?} is neither a count (10) nor a percentage (5%)"))
        }
    }

    /// The amount out of `total` tenants, rounded down (StackSets' rule).
    pub fn of(self, total: usize) -> usize {
        match self {
            Self::Count(n) => n as usize,
            Self::Percent(p) => total.saturating_mul(p as usize) / 100,
        }
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Count(n) => write!(f, "{n}"),
            Self::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl TryFrom<String> for Amount {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Self::parse(&text)
    }
}

impl From<Amount> for String {
    fn from(amount: Amount) -> Self {
        amount.to_string()
    }
}

/// The most alarms a rollout names (the deployment's are added to them).
pub const MAX_ALARMS: usize = 100;

/// What the watched alarms said, as the driver read them before a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// No alarm watched, or none in ALARM.
    Healthy,
    /// An alarm in ALARM: its name and CloudWatch's reason.
    Breached { alarm: String, reason: String },
    /// The alarms could not be read (the reason): the rollout goes no further until they can.
    Unknown(String),
    /// A watched alarm no longer exists (deleted or renamed): the signal is gone for good.
    Gone { alarm: String },
}

/// How a rollout proceeds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutOptions {
    /// The first wave; a failure in it halts the rollout whatever the tolerance.
    pub canary: Amount,
    /// How long the canary must stay healthy before the next wave starts.
    pub bake_seconds: u64,
    /// Each wave after the canary is this many times the one before.
    pub growth: u32,
    /// A bake between later waves too; 0: they flow into one another under `max_concurrency`.
    #[serde(default)]
    pub wave_bake_seconds: u64,
    /// Tenants whose update runs at once (a percentage rounds down, but at least 1).
    pub max_concurrency: Amount,
    /// Failed tenants tolerated; one more halts the rollout (a percentage rounds down).
    pub failure_tolerance: Amount,
    /// Move the tenants already updated back to their previous version when the rollout halts.
    pub auto_rollback: bool,
    /// CloudWatch alarms watched while the rollout runs (its bakes included): any in ALARM
    /// halts it, and rolls it back when `auto_rollback` says so. The deployment's own alarms
    /// (ROLLOUT_ALARMS) are added when the rollout starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alarms: Vec<String>,
}

impl Default for RolloutOptions {
    fn default() -> Self {
        Self {
            canary: Amount::Count(1),
            bake_seconds: 600,
            growth: 2,
            wave_bake_seconds: 0,
            max_concurrency: Amount::Count(10),
            failure_tolerance: Amount::Count(0),
            auto_rollback: true,
            alarms: Vec::new(),
        }
    }
}

impl RolloutOptions {
    /// Every rule broken, as readable reasons.
    pub fn check(&self) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        if self.canary == Amount::Count(0) || self.canary == Amount::Percent(0) {
            errors.push("canary must be at least one tenant".to_owned());
        }
        if self.growth < 1 {
            errors.push("growth must be at least 1".to_owned());
        }
        if self.max_concurrency == Amount::Count(0) {
            errors.push("max_concurrency must be at least 1".to_owned());
        }
        const WEEK: u64 = 7 * 24 * 3600;
        if self.bake_seconds > WEEK || self.wave_bake_seconds > WEEK {
            errors.push("bake times are at most 7 days".to_owned());
        }
        if self.alarms.len() > MAX_ALARMS {
            errors.push(format!("at most {MAX_ALARMS} alarms are watched"));
        }
        // CloudWatch's own rule for an alarm name: 1 to 255 characters, no control characters.
        if let Some(bad) = self
            .alarms
            .iter()
            .find(|a| a.is_empty() || a.chars().count() > 255 || a.chars().any(char::is_control))
        {
            errors.push(format!(
                "alarm name {bad:?} is not a CloudWatch alarm name (1 to 255 characters, no control characters)"
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// Which tenants a rollout moves; every given criterion must hold. Empty: the whole fleet.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    /// Only these tenants.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<String>,
    /// Only tenants whose config has each of these values (as the stack parameter renders it).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// Only this share of the tenants, picked by a hash of the rollout and the tenant, so a
    /// re-run of the same rollout picks the same ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
}

impl Selection {
    /// The whole fleet: when it completes, the target becomes the fleet's current version.
    pub fn is_whole_fleet(&self) -> bool {
        self.tenants.is_empty() && self.config.is_empty() && self.percent.is_none_or(|p| p >= 100)
    }

    pub fn selects(
        &self,
        rollout_id: &str,
        tenant_id: &str,
        config: &BTreeMap<String, ConfigValue>,
    ) -> bool {
        let named = self.tenants.is_empty() || self.tenants.iter().any(|t| t == tenant_id);
        let configured = self.config.iter().all(|(key, wanted)| {
            config
                .get(key)
                .is_some_and(|value| render_value(value) == *wanted)
        });
        let sampled = self
            .percent
            .is_none_or(|p| bucket(rollout_id, tenant_id) < u64::from(p));
        named && configured && sampled
    }
}

/// A stable number from 0 to 99 for a tenant within a rollout.
fn bucket(rollout_id: &str, tenant_id: &str) -> u64 {
    let digest = Sha256::digest(format!("{rollout_id}/{tenant_id}/sample"));
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) % 100
}

/// Where a member sorts in its rollout: a hash spreads each wave over the fleet (not the
/// alphabetically first tenants); the same rollout always gives the same order.
pub fn member_order(rollout_id: &str, tenant_id: &str) -> String {
    let digest = Sha256::digest(format!("{rollout_id}/{tenant_id}"));
    format!("{}#{tenant_id}", hex::encode(&digest[..6]))
}

/// The order of a tenant found by the final catch-up scan: after every planned member.
pub fn catch_up_order(tenant_id: &str) -> String {
    format!("~#{tenant_id}")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    /// Paging through the fleet to find the tenants it moves.
    Planning,
    Running,
    /// No new tenant is moved; those in flight finish.
    Paused,
    /// Stopped on failures past the tolerance, waiting for `rollback`, `resume` or `cancel`.
    Halted,
    /// Moving the tenants already updated back to their previous version.
    RollingBack,
    RolledBack,
    Completed,
    /// Stopped for good; tenants already moved stay on the target.
    Cancelled,
}

impl RolloutState {
    pub fn is_finished(self) -> bool {
        matches!(self, Self::RolledBack | Self::Completed | Self::Cancelled)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Planning => "planning",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Halted => "halted",
            Self::RollingBack => "rolling_back",
            Self::RolledBack => "rolled_back",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for RolloutState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rollout as stored (one row; its members are rows of their own).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    pub id: String,
    pub target_version: String,
    /// The fleet's current version when the rollout started (restored by a rollback of a
    /// completed whole-fleet rollout).
    pub previous_version: String,
    #[serde(default)]
    pub selection: Selection,
    pub options: RolloutOptions,
    pub state: RolloutState,
    /// Why it halted, was cancelled or rolled back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub created_by: String,
    /// RFC 3339.
    pub created_at: String,
    pub updated_at: String,
    /// Planning: the page of the fleet to read next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planning_cursor: Option<String>,
    /// The members found by planning (the waves are cut from this number).
    #[serde(default)]
    pub planned: u32,
    /// Planning has read the whole fleet (a paused planning resumes planning).
    #[serde(default)]
    pub planning_done: bool,
    /// Failures an operator accepted by resuming a halted rollout: the tolerance counts only
    /// the failures after them.
    #[serde(default)]
    pub accepted_failures: u32,
    /// Whole-fleet only: the target has been made the fleet's current version.
    #[serde(default)]
    pub current_set: bool,
    /// Whole-fleet only: the final scan for tenants created during the rollout is done.
    #[serde(default)]
    pub catch_up_done: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up_cursor: Option<String>,
    /// The last counts the driver saw (for status; the members are the truth).
    #[serde(default)]
    pub counts: Counts,
    /// Bumped on every write; writes are conditional on the version read.
    pub version: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberState {
    /// Not moved yet.
    Pending,
    /// Assigned the target; its update runs (or is about to).
    Moving,
    /// Ready on the target.
    Done,
    /// Its update failed for good.
    Failed,
    /// Left alone: pinned, removed, or no longer selected when its turn came.
    Skipped,
    /// Assigned its previous version again; that update runs.
    RollingBack,
    RolledBack,
    /// Its rollback update failed for good: an operator must look.
    RollbackFailed,
}

impl MemberState {
    /// Possibly assigned the target by this rollout, so a rollback must look at it (a skipped
    /// tenant may have been moved before it was pinned or removed).
    pub fn needs_rollback(self) -> bool {
        matches!(
            self,
            Self::Moving | Self::Done | Self::Failed | Self::Skipped
        )
    }

    /// Nothing more will happen to it in a forward rollout.
    pub fn is_settled(self) -> bool {
        matches!(self, Self::Done | Self::Failed | Self::Skipped)
    }
}

/// One tenant of a rollout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub tenant_id: String,
    /// Its place in the rollout ([`member_order`]).
    pub order: String,
    /// The version the tenant was assigned before (where a rollback takes it).
    pub from_version: String,
    pub state: MemberState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// RFC 3339: the last change of `state`.
    pub updated_at: String,
}

/// How many members are in each state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub total: u32,
    pub pending: u32,
    pub moving: u32,
    pub done: u32,
    pub failed: u32,
    pub skipped: u32,
    pub rolling_back: u32,
    pub rolled_back: u32,
    pub rollback_failed: u32,
}

impl Counts {
    pub fn of<'a>(members: impl IntoIterator<Item = &'a Member>) -> Self {
        let mut counts = Self::default();
        for member in members {
            counts.total += 1;
            let slot = match member.state {
                MemberState::Pending => &mut counts.pending,
                MemberState::Moving => &mut counts.moving,
                MemberState::Done => &mut counts.done,
                MemberState::Failed => &mut counts.failed,
                MemberState::Skipped => &mut counts.skipped,
                MemberState::RollingBack => &mut counts.rolling_back,
                MemberState::RolledBack => &mut counts.rolled_back,
                MemberState::RollbackFailed => &mut counts.rollback_failed,
            };
            *slot += 1;
        }
        counts
    }
}

/// The waves of a rollout of `planned` tenants: their sizes, in order, and the limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub waves: Vec<usize>,
    pub max_concurrency: usize,
    pub failure_tolerance: usize,
}

pub fn plan(planned: usize, options: &RolloutOptions) -> Plan {
    let mut waves = Vec::new();
    let mut remaining = planned;
    let mut size = options.canary.of(planned).max(1);
    while remaining > 0 {
        let wave = size.min(remaining);
        waves.push(wave);
        remaining -= wave;
        size = size.saturating_mul(options.growth.max(1) as usize);
    }
    Plan {
        waves,
        max_concurrency: options.max_concurrency.of(planned).max(1),
        failure_tolerance: options.failure_tolerance.of(planned),
    }
}

impl Plan {
    /// The wave of the member at `position` (members beyond the plan, found by the catch-up
    /// scan, form one last wave).
    pub fn wave_of(&self, position: usize) -> usize {
        let mut end = 0;
        for (wave, size) in self.waves.iter().enumerate() {
            end += size;
            if position < end {
                return wave;
            }
        }
        self.waves.len()
    }

    /// Where wave `wave` starts and ends among the members.
    fn bounds(&self, wave: usize, members: usize) -> (usize, usize) {
        let start: usize = self.waves.iter().take(wave).sum();
        let end = if wave >= self.waves.len() {
            members
        } else {
            start + self.waves[wave]
        };
        (start.min(members), end.min(members))
    }
}

/// What the driver does next with a rollout, given its members in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Read the next page of the fleet for members.
    Plan,
    /// Move up to `slots` of these pending members (positions, in order) to the target: a busy
    /// tenant is waited for (left pending), the next one tried.
    Move {
        candidates: Vec<usize>,
        slots: usize,
    },
    /// Move up to `slots` of these members back to their previous version.
    MoveBack {
        candidates: Vec<usize>,
        slots: usize,
    },
    /// Stop on failures: roll back or halt, with the reason.
    Halt {
        reason: String,
    },
    /// Every planned member settled: (whole fleet) make the target current, then look for
    /// tenants created meanwhile.
    SetCurrent,
    CatchUp,
    /// Done forward.
    Complete,
    /// Rolling back after the target was made current (whole fleet): the previous version is
    /// made current again first, so a tenant created while the fleet rolls back starts on it,
    /// not on the version being taken away.
    RestoreCurrent,
    /// Done backward.
    RolledBack,
    /// Nothing to do until members in flight settle, or the bake ends (`until`).
    Wait {
        until: Option<DateTime<Utc>>,
    },
    /// Finished, paused, halted or cancelled: nothing moves.
    Idle,
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    crate::time::parse(text)
}

/// The next step of `rollout`, whose members are `members` sorted by `order`.
pub fn next_step(rollout: &Rollout, members: &[Member], now: DateTime<Utc>) -> Step {
    let plan = plan(rollout.planned as usize, &rollout.options);
    match rollout.state {
        RolloutState::Planning => Step::Plan,
        RolloutState::Paused
        | RolloutState::Halted
        | RolloutState::Completed
        | RolloutState::Cancelled
        | RolloutState::RolledBack => Step::Idle,
        RolloutState::RollingBack if rollout.current_set => Step::RestoreCurrent,
        RolloutState::RollingBack => roll_back(members, &plan),
        RolloutState::Running => run(rollout, members, &plan, now),
    }
}

/// [`next_step`], watching the rollout's alarms: a running rollout halts on an alarm in ALARM
/// (or one deleted), and goes no further while the alarms cannot be read (failures still halt
/// it).
pub fn next_step_watching(
    rollout: &Rollout,
    members: &[Member],
    now: DateTime<Utc>,
    health: &Health,
) -> Step {
    let step = next_step(rollout, members, now);
    if rollout.state != RolloutState::Running {
        return step;
    }
    match (health, step) {
        (Health::Breached { alarm, reason }, _) => Step::Halt {
            reason: format!("alarm {alarm} is in ALARM: {reason}"),
        },
        (Health::Gone { alarm }, _) => Step::Halt {
            reason: format!("alarm {alarm} no longer exists: the rollout cannot watch it"),
        },
        // Failures still halt; nothing goes forward unwatched (no tenant moves, the version is
        // not made current, the rollout does not complete).
        (Health::Unknown(_), step @ Step::Halt { .. }) => step,
        (Health::Unknown(_), _) => Step::Wait { until: None },
        (_, step) => step,
    }
}

fn run(rollout: &Rollout, members: &[Member], plan: &Plan, now: DateTime<Utc>) -> Step {
    let failed = members
        .iter()
        .filter(|m| m.state == MemberState::Failed)
        .count();
    let accepted = rollout.accepted_failures as usize;
    let canary_end = plan.waves.first().copied().unwrap_or(0).min(members.len());
    let canary_failed = members[..canary_end]
        .iter()
        .filter(|m| m.state == MemberState::Failed)
        .count();
    if canary_failed > 0 && accepted == 0 {
        return Step::Halt {
            reason: format!(
                "{canary_failed} of the {canary_end} canary tenants failed to update to {}",
                rollout.target_version
            ),
        };
    }
    if failed.saturating_sub(accepted) > plan.failure_tolerance {
        let since = if accepted > 0 {
            format!(
                " ({} since the {accepted} accepted on resume)",
                failed - accepted
            )
        } else {
            String::new()
        };
        return Step::Halt {
            reason: format!(
                "{failed} tenants failed to update to {}{since}, more than the tolerance of {}",
                rollout.target_version, plan.failure_tolerance
            ),
        };
    }
    // The waves released so far: a wave starts once the one before it is released and, when
    // a bake follows that one, has settled and baked.
    let mut released_end = 0;
    let mut until = None;
    let waves = plan.waves.len() + 1;
    for wave in 0..waves {
        let (start, end) = plan.bounds(wave, members.len());
        if start >= end && wave < plan.waves.len() {
            continue;
        }
        released_end = end;
        let bake = if wave == 0 {
            rollout.options.bake_seconds
        } else {
            rollout.options.wave_bake_seconds
        };
        // The canary always settles before anything else moves (a bake of 0 only means no
        // extra wait); later waves wait only when a wave bake is set.
        if (bake == 0 && wave != 0) || wave + 1 >= waves {
            continue;
        }
        let wave_members = &members[start..end];
        if !wave_members.iter().all(|m| m.state.is_settled()) {
            break;
        }
        let settled_at = wave_members
            .iter()
            .filter_map(|m| parse_time(&m.updated_at))
            .max();
        let baked_at = settled_at.map(|t| t + Duration::seconds(bake as i64));
        match baked_at {
            Some(at) if at > now => {
                until = Some(at);
                break;
            }
            _ => continue,
        }
    }
    let moving = members
        .iter()
        .filter(|m| m.state == MemberState::Moving)
        .count();
    let slots = plan.max_concurrency.saturating_sub(moving);
    let candidates: Vec<usize> = members[..released_end]
        .iter()
        .enumerate()
        .filter(|(_, m)| m.state == MemberState::Pending)
        .map(|(position, _)| position)
        .collect();
    if !candidates.is_empty() {
        return if slots > 0 {
            Step::Move { candidates, slots }
        } else {
            Step::Wait { until: None }
        };
    }
    if released_end < members.len() || moving > 0 {
        return Step::Wait { until };
    }
    // Every member settled.
    if !rollout.selection.is_whole_fleet() {
        return Step::Complete;
    }
    if !rollout.current_set {
        Step::SetCurrent
    } else if !rollout.catch_up_done {
        Step::CatchUp
    } else {
        Step::Complete
    }
}

fn roll_back(members: &[Member], plan: &Plan) -> Step {
    let rolling = members
        .iter()
        .filter(|m| m.state == MemberState::RollingBack)
        .count();
    let candidates: Vec<usize> = members
        .iter()
        .enumerate()
        .filter(|(_, m)| m.state.needs_rollback())
        .map(|(position, _)| position)
        .collect();
    if candidates.is_empty() {
        return if rolling == 0 {
            Step::RolledBack
        } else {
            Step::Wait { until: None }
        };
    }
    let slots = plan.max_concurrency.saturating_sub(rolling);
    if slots == 0 {
        return Step::Wait { until: None };
    }
    Step::MoveBack { candidates, slots }
}

/// A command on a rollout, and the state it leads to from `state` (an error says why not).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    Pause,
    Resume,
    Cancel,
    Rollback,
}

impl Command {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pause" => Some(Self::Pause),
            "resume" => Some(Self::Resume),
            "cancel" => Some(Self::Cancel),
            "rollback" => Some(Self::Rollback),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Cancel => "cancel",
            Self::Rollback => "rollback",
        }
    }

    pub fn apply(self, state: RolloutState) -> Result<RolloutState, String> {
        use RolloutState::*;
        let next = match (self, state) {
            (Self::Pause, Running | Planning) => Paused,
            (Self::Pause, Paused) => Paused,
            // A resumed halt runs on with the failures it has: the tolerance still counts them.
            (Self::Resume, Paused | Halted) => Running,
            (Self::Resume, Running) => Running,
            // Also a rollback: it stops moving tenants back (those in flight finish).
            (Self::Cancel, Planning | Running | Paused | Halted | RollingBack) => Cancelled,
            (Self::Cancel, Cancelled) => Cancelled,
            (Self::Rollback, Planning | Running | Paused | Halted | Completed | Cancelled) => {
                RollingBack
            }
            (Self::Rollback, RollingBack | RolledBack) => state,
            (command, state) => {
                return Err(format!(
                    "cannot {} a rollout that is {state}",
                    command.as_str()
                ));
            }
        };
        Ok(next)
    }
}

#[cfg(test)]
mod tests;

/// What publishing a new template version starts by itself (the deployment's
/// `PublishStartsRollout`): nothing, a preview of the rollout to it, or a rollout to it with the
/// default policy (a canary, then waves).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnPublish {
    #[default]
    Off,
    Plan,
    Canary,
}

impl OnPublish {
    pub const NAMES: [&'static str; 3] = ["off", "plan", "canary"];

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "off" => Some(Self::Off),
            "plan" => Some(Self::Plan),
            "canary" => Some(Self::Canary),
            _ => None,
        }
    }
}
