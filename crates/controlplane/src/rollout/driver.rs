//! The rollout driver: starts rollouts, takes commands, and steps the active rollout.
//!
//! Each step re-reads the rollout and its members from the table, looks at the tenants in
//! flight, asks the pure [`next_step`], acts, and records. Every write is conditional and every
//! act is idempotent, so a driver that dies anywhere is simply run again: it continues where
//! the table says it stopped, and never moves a tenant twice.
//!
//! Moving a tenant is one STATUS write (its `assigned_version`) and a re-check on the
//! completion loop: the reconcile does the stack work, as for any change.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_dynamo::Item;
use tracing::{info, warn};

use super::rollout_id;
use crate::ports::{
    AlarmError, Alarms, Breach, Recheck, RolloutStore, Snapshot, StoreError, TemplateSource,
    TemplateStore, TenantStore,
};
use crate::reconcile::Clock;
use crate::status_writer::{Change, Over, StatusWriter};
use crate::validation::{Validation, validate};
use model::audit::{self, AuditAction, AuditEntry};
use model::rollout::{
    Command, Counts, Health, Member, MemberState, Rollout, RolloutOptions, RolloutState, Selection,
    Step, catch_up_order, member_order, next_step_watching,
};
use model::spec::{SpecRow, TenantKey, TenantSpec, describe_errors};
use model::status::{Status, TenantStatus};
use model::time::rfc3339;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RolloutError {
    #[error("no rollout {0}")]
    NotFound(String),
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    #[error(
        "rollout {0} is still running: one rollout runs at a time (pause, cancel or wait for it)"
    )]
    Busy(String),
    #[error("{0}")]
    Refused(String),
    /// Another driver or command wrote meanwhile: run the step again.
    #[error("the rollout changed meanwhile")]
    Conflict,
    #[error("{0}")]
    Unavailable(String),
    /// DynamoDB would refuse the rollout's item (e.g. an empty key in `selection.config`): each
    /// field at fault, by its path in the rollout. Nothing was stored.
    #[error("DynamoDB would refuse the rollout: {}", model::spec::joined(.0))]
    Unstorable(Vec<model::spec::FieldError>),
}

impl From<crate::ports::TemplateSourceError> for RolloutError {
    fn from(e: crate::ports::TemplateSourceError) -> Self {
        match e {
            // A version refused for good is no target: say why, as for one never published.
            crate::ports::TemplateSourceError::Corrupt(reason) => Self::Invalid(vec![reason]),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

impl From<StoreError> for RolloutError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => Self::Conflict,
            // Not the caller's fault either way: the rollout cannot be stepped now.
            StoreError::Unavailable(reason)
            | StoreError::Rejected(reason)
            | StoreError::Corrupt(reason) => Self::Unavailable(reason),
            StoreError::Unstorable(errors) => Self::Unstorable(errors),
        }
    }
}

/// What a rollout is asked to do.
#[derive(Clone, Debug)]
pub struct StartRollout {
    pub target_version: String,
    pub selection: Selection,
    pub options: RolloutOptions,
    pub created_by: String,
}

/// What one step did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tick {
    pub rollout: Rollout,
    /// The step taken (`plan`, `move`, `wait`, ...).
    pub step: &'static str,
    /// Tenants moved (forward or back) by this step.
    pub moved: usize,
    /// When a bake ends, if the rollout waits for one.
    pub wait_until: Option<DateTime<Utc>>,
}

/// A rollout as the CLI and the API show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutView {
    pub rollout: Rollout,
    pub members: Vec<Member>,
    pub counts: Counts,
}

/// How long a driver's lease lasts past its last renewal, before each step (at least three step
/// intervals): longer than any one step takes (a planning page, a wave), so no other driver
/// takes over mid-step; a driver that crashed holds the rollouts no longer than this.
pub const DRIVER_LEASE: Duration = Duration::from_secs(120);

/// A name for one `drive` call, unique across processes and calls.
fn driver_holder() -> String {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!(
        "driver-{}-{started}-{}",
        std::process::id(),
        CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

pub struct RolloutDriver {
    tenants: Arc<dyn TenantStore>,
    rollouts: Arc<dyn RolloutStore>,
    template_store: Arc<dyn TemplateStore>,
    templates: Arc<dyn TemplateSource>,
    /// Where moved tenants' re-checks go (the completion loop); none: the reconciler's sweep
    /// picks them up.
    recheck: Option<Arc<dyn Recheck>>,
    clock: Clock,
    /// Writes the assignments (the one STATUS writer, without events: an assignment is no
    /// transition subscribers hear of).
    writer: StatusWriter,
    /// Tenants read per planning step.
    pub planning_page: usize,
    /// Where the rollouts' alarms are read (none: a rollout naming alarms is refused).
    alarms: Option<Arc<dyn Alarms>>,
    /// The deployment's alarms (ROLLOUT_ALARMS), watched by every rollout.
    default_alarms: Vec<String>,
}

impl RolloutDriver {
    pub fn new(
        tenants: Arc<dyn TenantStore>,
        rollouts: Arc<dyn RolloutStore>,
        template_store: Arc<dyn TemplateStore>,
        templates: Arc<dyn TemplateSource>,
    ) -> Self {
        let clock: Clock = Arc::new(Utc::now);
        Self {
            writer: StatusWriter::new(tenants.clone(), clock.clone()),
            tenants,
            rollouts,
            template_store,
            templates,
            recheck: None,
            clock,
            planning_page: 500,
            alarms: None,
            default_alarms: Vec::new(),
        }
    }

    /// Rollouts watch their alarms through `alarms`; every rollout watches `default_alarms`
    /// (the deployment's) besides its own.
    pub fn with_alarms(mut self, alarms: Arc<dyn Alarms>, default_alarms: Vec<String>) -> Self {
        self.alarms = Some(alarms);
        self.default_alarms = default_alarms;
        self
    }

    pub fn with_recheck(mut self, recheck: Arc<dyn Recheck>) -> Self {
        self.recheck = Some(recheck);
        self
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.writer = StatusWriter::new(self.tenants.clone(), clock.clone());
        self.clock = clock;
        self
    }

    fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// Starts a rollout of `request.target_version`: checked, then stored as `planning` and made
    /// the active one (the driver's next step plans it).
    pub async fn start(&self, mut request: StartRollout) -> Result<Rollout, RolloutError> {
        let mut problems = Vec::new();
        // The rollout's own options are checked as given; the deployment's alarms join after.
        if let Err(errors) = request.options.check() {
            problems.extend(errors);
        }
        let alarms = &mut request.options.alarms;
        alarms.extend(self.default_alarms.iter().cloned());
        alarms.sort();
        alarms.dedup();
        match (&self.alarms, alarms.is_empty() || !problems.is_empty()) {
            (_, true) => {}
            (None, false) => problems.push(format!(
                "alarm names {}: this deployment reads no CloudWatch alarms",
                alarms.join(", ")
            )),
            // Read once now: a misspelt alarm would otherwise halt the rollout at once, and
            // one already in ALARM would halt it on its first step.
            (Some(reader), false) => {
                match reader.breached(alarms).await {
                    Ok(None) => {}
                    Ok(Some(Breach { alarm, reason })) => problems.push(format!(
                        "alarm names: {alarm} is in ALARM now ({reason}); start the rollout once it is OK"
                    )),
                    Err(e @ AlarmError::Missing(_)) => problems.push(format!("alarm names: {e}")),
                    Err(e @ AlarmError::Unavailable(_)) => {
                        return Err(RolloutError::Unavailable(e.to_string()));
                    }
                }
            }
        }
        if request.selection.percent.is_some_and(|p| p == 0 || p > 100) {
            problems.push("selection percent must be from 1 to 100".into());
        }
        let target = self.templates.get(&request.target_version).await?;
        if target.is_none() {
            problems.push(format!(
                "no template version {:?} is published",
                request.target_version
            ));
        }
        if !problems.is_empty() {
            return Err(RolloutError::Invalid(problems));
        }
        let previous_version = self.templates.current_version().await?;
        let now = self.now();
        let id = rollout_id(now, &request.target_version, &request.created_by);
        let at = rfc3339(now);
        let rollout = Rollout {
            id: id.clone(),
            target_version: request.target_version,
            previous_version,
            selection: request.selection,
            options: request.options,
            state: RolloutState::Planning,
            reason: None,
            created_by: request.created_by,
            created_at: at.clone(),
            updated_at: at,
            planning_cursor: None,
            planned: 0,
            planning_done: false,
            accepted_failures: 0,
            current_set: false,
            catch_up_done: false,
            catch_up_cursor: None,
            counts: Counts::default(),
            version: 1,
        };
        if let Some(running) = self.unfinished().await? {
            return Err(RolloutError::Busy(running));
        }
        // The row first: a claimed slot always names a stored rollout. Two starts racing both
        // store theirs; the one that loses the slot is cancelled at once.
        self.rollouts.create_rollout(&rollout).await?;
        if let Err(e) = self.claim(&id).await {
            let mut lost = rollout.clone();
            lost.state = RolloutState::Cancelled;
            lost.reason = Some(format!("not started: {e}"));
            lost.version += 1;
            let _ = self.rollouts.put_rollout(&lost, rollout.version).await;
            return Err(e);
        }
        info!(rollout = %id, target = %rollout.target_version, "rollout started");
        Ok(rollout)
    }

    /// Makes `id` the active rollout, taking over from one that has finished (or whose row a
    /// crash never wrote).
    async fn claim(&self, id: &str) -> Result<(), RolloutError> {
        match self.rollouts.claim_active(id, None).await {
            Ok(()) => return Ok(()),
            Err(StoreError::Conflict) => {}
            Err(e) => return Err(e.into()),
        }
        let Some(holder) = self.rollouts.active_rollout().await? else {
            return Ok(self.rollouts.claim_active(id, None).await?);
        };
        match self.rollouts.rollout(&holder).await? {
            Some(running) if !running.state.is_finished() => Err(RolloutError::Busy(holder)),
            _ => Ok(self.rollouts.claim_active(id, Some(&holder)).await?),
        }
    }

    /// The oldest rollout that has not finished, if any (the slot's holder, or one a race or a
    /// crash left without it).
    async fn unfinished(&self) -> Result<Option<String>, RolloutError> {
        Ok(self
            .rollouts
            .list_rollouts()
            .await?
            .into_iter()
            .rev()
            .find(|r| !r.state.is_finished())
            .map(|r| r.id))
    }

    /// Pauses, resumes, cancels or rolls back a rollout. A repeated command is a no-op.
    pub async fn command(
        &self,
        id: &str,
        command: Command,
        by: &str,
    ) -> Result<Rollout, RolloutError> {
        for _ in 0..5 {
            let mut rollout = self.load(id).await?;
            let next = command
                .apply(rollout.state)
                .map_err(RolloutError::Refused)?;
            if next == rollout.state {
                return Ok(rollout);
            }
            if rollout.state.is_finished() {
                // A rollback of a finished rollout holds the fleet again while it runs.
                self.claim(id).await?;
            }
            let expected = rollout.version;
            // A rollout paused while planning plans on when resumed.
            let next = if next == RolloutState::Running && !rollout.planning_done {
                RolloutState::Planning
            } else {
                next
            };
            if command == Command::Resume && rollout.state == RolloutState::Halted {
                // Resuming a halt accepts the failures so far: the tolerance counts anew.
                rollout.accepted_failures = rollout.counts.failed;
            }
            rollout.state = next;
            rollout.reason = Some(format!("{} by {by}", command.as_str()));
            rollout.version += 1;
            rollout.updated_at = rfc3339(self.now());
            match self.rollouts.put_rollout(&rollout, expected).await {
                Ok(()) => {
                    if next.is_finished() {
                        self.rollouts.release_active(id).await?;
                    }
                    info!(rollout = %id, command = command.as_str(), state = %next, "rollout command");
                    return Ok(rollout);
                }
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(RolloutError::Conflict)
    }

    async fn load(&self, id: &str) -> Result<Rollout, RolloutError> {
        self.rollouts
            .rollout(id)
            .await?
            .ok_or_else(|| RolloutError::NotFound(id.to_owned()))
    }

    /// Every rollout, newest first (the API's and tenantctl's listing).
    pub async fn list(&self) -> Result<Vec<Rollout>, RolloutError> {
        Ok(self.rollouts.list_rollouts().await?)
    }

    /// The rollout with its members and their counts.
    pub async fn view(&self, id: &str) -> Result<RolloutView, RolloutError> {
        let rollout = self.load(id).await?;
        let members = self.rollouts.members(id).await?;
        let counts = Counts::of(&members);
        Ok(RolloutView {
            rollout,
            members,
            counts,
        })
    }

    /// One step of the active rollout, if there is one.
    pub async fn tick_active(&self) -> Result<Option<Tick>, RolloutError> {
        let id = match self.rollouts.active_rollout().await? {
            Some(id) => id,
            // A rollout left without the slot (a crash or a race between a start, a command
            // and a finishing step) is taken up again.
            None => match self.unfinished().await? {
                Some(id) => {
                    self.rollouts.claim_active(&id, None).await?;
                    id
                }
                None => return Ok(None),
            },
        };
        match self.rollouts.rollout(&id).await? {
            Some(rollout) if rollout.state.is_finished() => {
                self.rollouts.release_active(&id).await?;
                Ok(None)
            }
            Some(_) => self.tick(&id).await.map(Some),
            // Claimed by a start that died before storing the rollout.
            None => {
                self.rollouts.release_active(&id).await?;
                Ok(None)
            }
        }
    }

    /// Steps the active rollout every `interval` until `budget` is spent or nothing is active
    /// (a scheduled function's whole run). Errors are logged and the next step retries.
    pub async fn drive(&self, budget: Duration, interval: Duration) -> Option<Tick> {
        let holder = driver_holder();
        let last = self.drive_holding(&holder, budget, interval).await;
        if let Err(e) = self.rollouts.release_driver_lease(&holder).await {
            // It ends by itself within DRIVER_LEASE.
            warn!(error = %e, "the driver lease was not released");
        }
        last
    }

    /// Takes or renews the driver lease; false when another driver holds it.
    async fn hold_lease(&self, holder: &str, interval: Duration) -> Result<bool, StoreError> {
        let now = self.now().timestamp();
        let lease = DRIVER_LEASE.max(interval * 3).as_secs() as i64;
        match self
            .rollouts
            .hold_driver_lease(holder, now, now.saturating_add(lease))
            .await
        {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn drive_holding(
        &self,
        holder: &str,
        budget: Duration,
        interval: Duration,
    ) -> Option<Tick> {
        let started = tokio::time::Instant::now();
        let mut last = None;
        loop {
            // Renewed before every step: a driver never steps without the lease.
            match self.hold_lease(holder, interval).await {
                Ok(true) => {}
                Ok(false) => {
                    info!("another rollout driver holds the lease; this run stops");
                    return last;
                }
                Err(e) => {
                    warn!(error = %e, "cannot take the driver lease; retrying");
                    if started.elapsed() + interval > budget {
                        return last;
                    }
                    tokio::time::sleep(interval).await;
                    continue;
                }
            }
            match self.tick_active().await {
                Ok(None) => return last,
                Ok(Some(tick)) => {
                    let finished = tick.rollout.state.is_finished();
                    // A step that made progress is followed at once by the next one; a move
                    // that found every candidate busy waits like any other.
                    let progressed = match tick.step {
                        "move" | "move_back" => tick.moved > 0,
                        "wait" | "idle" => false,
                        _ => true,
                    };
                    last = Some(tick);
                    if finished {
                        return last;
                    }
                    if progressed && started.elapsed() < budget {
                        continue;
                    }
                }
                Err(e) => warn!(error = %e, "rollout step failed; retrying"),
            }
            if started.elapsed() + interval > budget {
                return last;
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// What the running rollout's alarms say now (read only while it runs and names alarms).
    async fn health(&self, rollout: &Rollout) -> Health {
        if rollout.state != RolloutState::Running || rollout.options.alarms.is_empty() {
            return Health::Healthy;
        }
        let Some(alarms) = &self.alarms else {
            return Health::Unknown("this deployment reads no CloudWatch alarms".into());
        };
        match alarms.breached(&rollout.options.alarms).await {
            Ok(None) => Health::Healthy,
            Ok(Some(Breach { alarm, reason })) => Health::Breached { alarm, reason },
            Err(AlarmError::Missing(names)) => Health::Gone {
                alarm: names.join(", "),
            },
            Err(e) => {
                warn!(rollout = %rollout.id, error = %e, "alarms unreadable: no tenant moves until they are read");
                Health::Unknown(e.to_string())
            }
        }
    }

    /// One step of rollout `id`.
    pub async fn tick(&self, id: &str) -> Result<Tick, RolloutError> {
        let mut rollout = self.load(id).await?;
        let mut members = self.rollouts.members(id).await?;
        if matches!(
            rollout.state,
            RolloutState::Running
                | RolloutState::Paused
                | RolloutState::Halted
                | RolloutState::RollingBack
        ) {
            self.observe_in_flight(&rollout, &mut members).await?;
        }
        let now = self.now();
        let health = self.health(&rollout).await;
        let step = next_step_watching(&rollout, &members, now, &health);
        let mut tick = Tick {
            rollout: rollout.clone(),
            step: step_name(&step),
            moved: 0,
            wait_until: None,
        };
        match step {
            Step::Plan => {
                self.plan_page(&mut rollout).await?;
            }
            Step::CatchUp => {
                self.catch_up_page(&mut rollout, &members).await?;
            }
            Step::Move { candidates, slots } => {
                tick.moved = self
                    .move_members(&rollout, &mut members, &candidates, slots, false)
                    .await?;
            }
            Step::MoveBack { candidates, slots } => {
                tick.moved = self
                    .move_members(&rollout, &mut members, &candidates, slots, true)
                    .await?;
            }
            Step::Halt { reason } => {
                warn!(rollout = %id, %reason, "rollout halted");
                rollout.state = if rollout.options.auto_rollback {
                    RolloutState::RollingBack
                } else {
                    RolloutState::Halted
                };
                rollout.reason = Some(if rollout.options.auto_rollback {
                    format!("halted and rolling back: {reason}")
                } else {
                    format!("halted: {reason}")
                });
            }
            Step::SetCurrent => {
                let current = self.template_store.current_template().await?;
                if current.as_ref().map(|c| c.version.as_str()) != Some(&rollout.target_version) {
                    self.template_store
                        .set_current_template(
                            &rollout.target_version,
                            current.map(|c| c.row_version),
                        )
                        .await?;
                }
                info!(rollout = %id, version = %rollout.target_version, "fleet current version set");
                rollout.current_set = true;
            }
            Step::Complete => {
                rollout.state = RolloutState::Completed;
            }
            Step::RestoreCurrent => {
                let current = self.template_store.current_template().await?;
                if let Some(current) = current.filter(|c| c.version == rollout.target_version) {
                    self.template_store
                        .set_current_template(&rollout.previous_version, Some(current.row_version))
                        .await?;
                }
                info!(rollout = %id, version = %rollout.previous_version, "fleet current version restored");
                rollout.current_set = false;
            }
            Step::RolledBack => {
                rollout.state = RolloutState::RolledBack;
                let failed_back = members
                    .iter()
                    .filter(|m| m.state == MemberState::RollbackFailed)
                    .count();
                if failed_back > 0 {
                    rollout.reason = Some(format!(
                        "{}; {failed_back} tenants failed to roll back (see their members)",
                        rollout.reason.as_deref().unwrap_or("rolled back")
                    ));
                }
            }
            Step::Wait { until } => tick.wait_until = until,
            Step::Idle => {}
        }
        // Members changed in place above; only planning adds new ones.
        if matches!(tick.step, "plan" | "catch_up") {
            members = self.rollouts.members(id).await?;
        }
        rollout.counts = Counts::of(&members);
        if rollout != tick.rollout {
            let expected = rollout.version;
            rollout.version += 1;
            rollout.updated_at = rfc3339(now);
            self.rollouts.put_rollout(&rollout, expected).await?;
            if rollout.state.is_finished() {
                self.rollouts.release_active(id).await?;
                info!(rollout = %id, state = %rollout.state, "rollout finished");
            }
        }
        tick.rollout = rollout;
        Ok(tick)
    }

    /// Reads the next page of the fleet and adds the tenants the rollout moves as members;
    /// after the last page, the rollout runs.
    async fn plan_page(&self, rollout: &mut Rollout) -> Result<(), RolloutError> {
        let (keys, next) = self
            .tenants
            .list_tenants(rollout.planning_cursor.clone())
            .await?;
        let mut found = Vec::new();
        for key in keys {
            let snapshot = self.tenants.load(&key).await?;
            if let Some(from_version) = self.follows(rollout, &key, &snapshot) {
                found.push(Member {
                    tenant_id: key.as_str().to_owned(),
                    order: member_order(&rollout.id, key.as_str()),
                    from_version,
                    state: MemberState::Pending,
                    reason: None,
                    updated_at: rfc3339(self.now()),
                });
            }
        }
        if !found.is_empty() {
            self.rollouts.add_members(&rollout.id, &found).await?;
        }
        match next {
            Some(next) => rollout.planning_cursor = Some(next),
            None => {
                rollout.planning_cursor = None;
                rollout.planned = u32::try_from(self.rollouts.members(&rollout.id).await?.len())
                    .unwrap_or(u32::MAX);
                rollout.planning_done = true;
                rollout.state = RolloutState::Running;
                info!(rollout = %rollout.id, planned = rollout.planned, "rollout planned");
            }
        }
        Ok(())
    }

    /// After the planned members (whole fleet, current version already set): adds the tenants
    /// created meanwhile on the previous version.
    async fn catch_up_page(
        &self,
        rollout: &mut Rollout,
        members: &[Member],
    ) -> Result<(), RolloutError> {
        let (keys, next) = self
            .tenants
            .list_tenants(rollout.catch_up_cursor.clone())
            .await?;
        let known: std::collections::HashSet<&str> =
            members.iter().map(|m| m.tenant_id.as_str()).collect();
        let mut found = Vec::new();
        for key in keys.iter().filter(|k| !known.contains(k.as_str())) {
            let snapshot = self.tenants.load(key).await?;
            if let Some(from_version) = self.follows(rollout, key, &snapshot) {
                found.push(Member {
                    tenant_id: key.as_str().to_owned(),
                    order: catch_up_order(key.as_str()),
                    from_version,
                    state: MemberState::Pending,
                    reason: None,
                    updated_at: rfc3339(self.now()),
                });
            }
        }
        if !found.is_empty() {
            info!(rollout = %rollout.id, found = found.len(), "tenants created during the rollout added");
            self.rollouts.add_members(&rollout.id, &found).await?;
        }
        match next {
            Some(next) => rollout.catch_up_cursor = Some(next),
            None => {
                rollout.catch_up_cursor = None;
                rollout.catch_up_done = true;
            }
        }
        Ok(())
    }

    /// The version a tenant would be moved from, if the rollout moves it: it has a valid SPEC
    /// with no pin, the selection takes it, and the fleet gives it another version.
    fn follows(&self, rollout: &Rollout, key: &TenantKey, snapshot: &Snapshot) -> Option<String> {
        let item = snapshot.spec.as_ref()?;
        let spec = TenantSpec::parse(key, item).ok()?;
        if spec.template_version.is_some()
            || !rollout
                .selection
                .selects(&rollout.id, key.as_str(), &spec.config)
        {
            return None;
        }
        let from = snapshot
            .status
            .as_ref()
            .and_then(TenantStatus::fleet_version)
            .unwrap_or(&rollout.previous_version);
        (from != rollout.target_version).then(|| from.to_owned())
    }

    /// Updates the members in flight from their tenants' STATUS.
    async fn observe_in_flight(
        &self,
        rollout: &Rollout,
        members: &mut [Member],
    ) -> Result<(), RolloutError> {
        let now = rfc3339(self.now());
        for member in members
            .iter_mut()
            .filter(|m| matches!(m.state, MemberState::Moving | MemberState::RollingBack))
        {
            let key = TenantKey::new(&member.tenant_id);
            let snapshot = self.tenants.load(&key).await?;
            if let Some((state, reason)) = observe(rollout, member, &snapshot) {
                let expected = member.state;
                let mut next = member.clone();
                next.state = state;
                next.reason = reason;
                next.updated_at = now.clone();
                self.rollouts
                    .put_member(&rollout.id, &next, expected)
                    .await?;
                *member = next;
            }
        }
        Ok(())
    }

    /// Moves up to `slots` of `candidates` (to the target, or `back` to their previous version):
    /// each its STATUS assignment, its audit line, its member row, then a re-check. A busy tenant
    /// stays pending and is tried again at the next step.
    async fn move_members(
        &self,
        rollout: &Rollout,
        members: &mut [Member],
        candidates: &[usize],
        slots: usize,
        back: bool,
    ) -> Result<usize, RolloutError> {
        let mut moved = 0;
        for &position in candidates {
            if moved >= slots {
                break;
            }
            let Some(member) = members.get(position).cloned() else {
                continue;
            };
            let key = TenantKey::new(&member.tenant_id);
            let snapshot = self.tenants.load(&key).await?;
            let outcome = if back {
                self.move_back(rollout, &member, &key, &snapshot).await?
            } else {
                self.move_forward(rollout, &key, &snapshot).await?
            };
            let Some((state, reason)) = outcome else {
                continue;
            };
            let mut next = member.clone();
            next.state = state;
            next.reason = reason;
            next.updated_at = rfc3339(self.now());
            self.rollouts
                .put_member(&rollout.id, &next, member.state)
                .await?;
            if matches!(state, MemberState::Moving | MemberState::RollingBack) {
                moved += 1;
                if let Some(recheck) = &self.recheck
                    && let Err(e) = recheck.schedule(&key, Duration::ZERO).await
                {
                    // The reconciler's sweep picks the tenant up anyway.
                    warn!(tenant_id = %key.as_str(), error = %e, "re-check not scheduled");
                }
            }
            members[position] = next;
        }
        Ok(moved)
    }

    async fn move_forward(
        &self,
        rollout: &Rollout,
        key: &TenantKey,
        snapshot: &Snapshot,
    ) -> Result<Option<(MemberState, Option<String>)>, RolloutError> {
        let Some(item) = &snapshot.spec else {
            return Ok(Some((
                MemberState::Skipped,
                Some("removed before its turn".into()),
            )));
        };
        if let Some(pin) = pinned(item) {
            return Ok(Some((
                MemberState::Skipped,
                Some(format!("pinned to {pin} before its turn")),
            )));
        }
        let Some(status) = &snapshot.status else {
            // Not provisioned yet: waited for.
            return Ok(None);
        };
        if status.assigned_version.as_deref() == Some(&rollout.target_version) {
            // Assigned by an earlier run of this step that died before recording it.
            return Ok(Some((MemberState::Moving, None)));
        }
        if status.status.is_in_flight() {
            return Ok(None);
        }
        // A SPEC the target cannot take fails here, unmoved: assigning it would only record
        // the same invalid SPEC again (and an unchanged failure is not written twice).
        match validate(
            key,
            item,
            Some(&rollout.target_version),
            self.templates.as_ref(),
        )
        .await
        {
            Ok(Validation::Valid(_)) => {}
            Ok(Validation::Invalid(errors)) => {
                return Ok(Some((
                    MemberState::Failed,
                    Some(format!(
                        "its SPEC does not fit {}: {}",
                        rollout.target_version,
                        describe_errors(&errors)
                    )),
                )));
            }
            // The template source may heal: tried again at the next step.
            Err(e) => {
                warn!(tenant_id = %key.as_str(), error = %e, "cannot validate; waiting");
                return Ok(None);
            }
        }
        self.assign(
            rollout,
            key,
            snapshot,
            status,
            &rollout.target_version,
            &rollout.id,
        )
        .await?;
        Ok(Some((MemberState::Moving, None)))
    }

    async fn move_back(
        &self,
        rollout: &Rollout,
        member: &Member,
        key: &TenantKey,
        snapshot: &Snapshot,
    ) -> Result<Option<(MemberState, Option<String>)>, RolloutError> {
        let Some(status) = &snapshot.status else {
            return Ok(Some((MemberState::RolledBack, None)));
        };
        if snapshot.spec.is_none() {
            return Ok(Some((
                MemberState::RolledBack,
                Some("removed; nothing to roll back".into()),
            )));
        }
        let by_rollback = format!("{} rollback", rollout.id);
        let assigned_by = status.assigned_by.as_deref();
        let pinned_to = snapshot.spec.as_ref().and_then(pinned).map(str::to_owned);
        if let Some(pin) = pinned_to {
            // Its stack follows the pin, not the assignment: restore the assignment (so a later
            // unpin does not bring the target back) and wait for nothing.
            if status.assigned_version.as_deref() == Some(&rollout.target_version)
                && assigned_by == Some(rollout.id.as_str())
            {
                self.assign(
                    rollout,
                    key,
                    snapshot,
                    status,
                    &member.from_version,
                    &by_rollback,
                )
                .await?;
            }
            return Ok(Some((
                MemberState::RolledBack,
                Some(format!("pinned to {pin}: its stack follows the pin")),
            )));
        }
        match status.assigned_version.as_deref() {
            // Moved back by an earlier run of this step that died before recording it.
            Some(v) if v == member.from_version && assigned_by == Some(by_rollback.as_str()) => {
                Ok(Some((MemberState::RollingBack, None)))
            }
            Some(v) if v == rollout.target_version && assigned_by == Some(rollout.id.as_str()) => {
                self.assign(
                    rollout,
                    key,
                    snapshot,
                    status,
                    &member.from_version,
                    &by_rollback,
                )
                .await?;
                Ok(Some((MemberState::RollingBack, None)))
            }
            // Failed before this rollout ever assigned it: nothing to move back.
            Some(v) if v == member.from_version => Ok(Some((
                MemberState::RolledBack,
                Some("never moved; nothing to roll back".into()),
            ))),
            other => Ok(Some((
                MemberState::RolledBack,
                Some(format!(
                    "assigned {} by someone else meanwhile; left alone",
                    other.unwrap_or("nothing")
                )),
            ))),
        }
    }

    /// Writes the tenant's new assignment (conditional on the STATUS read) and its audit line.
    async fn assign(
        &self,
        rollout: &Rollout,
        key: &TenantKey,
        snapshot: &Snapshot,
        status: &TenantStatus,
        version: &str,
        by: &str,
    ) -> Result<(), RolloutError> {
        let from = status.fleet_version().unwrap_or("none").to_owned();
        let mut next = status.clone();
        next.assigned_version = Some(version.to_owned());
        next.assigned_by = Some(by.to_owned());
        let entry = AuditEntry {
            at: rfc3339(self.now()),
            id: format!(
                "assign-{}-{}",
                by.replace(' ', "-"),
                model::next_status::next_version(snapshot.status_version)
            ),
            action: AuditAction::TemplateAssigned,
            actor: audit::SYSTEM_ACTOR.into(),
            requested_by: Some(rollout.created_by.clone()),
            result: version.to_owned(),
            reason: Some(format!("{by}: template {from} -> {version}")),
        };
        self.writer
            .write(
                key,
                Over::read(snapshot),
                next,
                Change::Note {
                    entry: Some(Box::new(entry)),
                    event: None,
                },
            )
            .await?;
        info!(tenant_id = %key.as_str(), rollout = %rollout.id, %from, to = %version, "template assigned");
        Ok(())
    }
}

/// A SPEC's pin, read without validating the rest.
fn pinned(item: &Item) -> Option<&str> {
    SpecRow(item).pin()
}

/// What became of a member in flight, from its tenant's SPEC and STATUS (`None`: still on its
/// way). Its update is done when STATUS is `ready` on the version it was moved to, failed
/// when STATUS is `failed` for good on that version.
pub fn observe(
    rollout: &Rollout,
    member: &Member,
    snapshot: &Snapshot,
) -> Option<(MemberState, Option<String>)> {
    let back = member.state == MemberState::RollingBack;
    let (wanted, done, failed) = if back {
        (
            member.from_version.as_str(),
            MemberState::RolledBack,
            MemberState::RollbackFailed,
        )
    } else {
        (
            rollout.target_version.as_str(),
            MemberState::Done,
            MemberState::Failed,
        )
    };
    let Some(item) = &snapshot.spec else {
        return Some(if back {
            (MemberState::RolledBack, Some("removed".into()))
        } else {
            (
                MemberState::Skipped,
                Some("removed during the rollout".into()),
            )
        });
    };
    if let Some(pin) = pinned(item).filter(|pin| *pin != wanted) {
        return Some(if back {
            (
                MemberState::RolledBack,
                Some(format!("pinned to {pin}: its stack follows the pin")),
            )
        } else {
            (
                MemberState::Skipped,
                Some(format!("pinned to {pin} during the rollout")),
            )
        });
    }
    let status = snapshot.status.as_ref()?;
    if status.assigned_version.as_deref() != Some(wanted) && pinned(item).is_none() {
        return Some((
            if back {
                MemberState::RolledBack
            } else {
                MemberState::Skipped
            },
            Some(format!(
                "assigned {} by someone else meanwhile",
                status.assigned_version.as_deref().unwrap_or("nothing")
            )),
        ));
    }
    let on_wanted = status.template_version.as_deref() == Some(wanted);
    match status.status {
        Status::Ready if on_wanted => Some((done, None)),
        Status::Failed if on_wanted && !status.retryable => Some((
            failed,
            Some(
                status
                    .reason
                    .clone()
                    .unwrap_or_else(|| "failed with no reason recorded".into()),
            ),
        )),
        _ => None,
    }
}

fn step_name(step: &Step) -> &'static str {
    match step {
        Step::Plan => "plan",
        Step::Move { .. } => "move",
        Step::MoveBack { .. } => "move_back",
        Step::Halt { .. } => "halt",
        Step::SetCurrent => "set_current",
        Step::RestoreCurrent => "restore_current",
        Step::CatchUp => "catch_up",
        Step::Complete => "complete",
        Step::RolledBack => "rolled_back",
        Step::Wait { .. } => "wait",
        Step::Idle => "idle",
    }
}

/// Counts of a rollout's members per wave, for progress displays.
pub fn wave_counts(rollout: &Rollout, members: &[Member]) -> BTreeMap<usize, Counts> {
    let plan = model::rollout::plan(rollout.planned as usize, &rollout.options);
    let mut waves: BTreeMap<usize, Vec<&Member>> = BTreeMap::new();
    for (position, member) in members.iter().enumerate() {
        waves
            .entry(plan.wave_of(position))
            .or_default()
            .push(member);
    }
    waves
        .into_iter()
        .map(|(wave, members)| (wave, Counts::of(members)))
        .collect()
}
