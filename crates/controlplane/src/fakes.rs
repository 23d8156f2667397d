//! In-memory fakes of the ports, for unit tests of the domain and for the faults the emulator
//! cannot produce (moto never fails a stack the way CloudFormation does).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use serde_dynamo::Item;

use crate::aws::dynamodb as items;
use crate::ports::{
    CurrentTemplate, RolloutStore, Snapshot, StackError, StackRequest, StackTarget, Stacks,
    StatusSummary, StoreError, TemplateRecord, TemplateStore, TenantStore, UpdateStarted,
};
use model::audit::AuditEntry;
use model::rollout::{Member, MemberState, Rollout};
use model::spec::TenantKey;
use model::stack::{MANAGED_BY, ObservedStack, StackStatus, TAG_MANAGED_BY, TAG_TENANT_ID};
use model::status::{StackLocation, Status, TenantStatus};

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A test that panicked while holding the lock already failed; keep going for its report.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Default)]
struct StoreState {
    specs: HashMap<TenantKey, Item>,
    statuses: HashMap<TenantKey, TenantStatus>,
    write_faults: VecDeque<StoreError>,
    load_faults: VecDeque<StoreError>,
    status_writes: usize,
    loads: usize,
    audit: HashMap<TenantKey, BTreeMap<String, AuditEntry>>,
    idempotency: HashMap<(String, String), crate::ports::IdempotencyRecord>,
    templates: BTreeMap<String, TemplateRecord>,
    current_template: Option<CurrentTemplate>,
    rollouts: BTreeMap<String, Rollout>,
    members: HashMap<String, BTreeMap<String, Member>>,
    active_rollout: Option<String>,
    previews: BTreeMap<String, crate::rollout::preview::PreviewJob>,
    preview_results: HashMap<String, BTreeMap<String, crate::rollout::preview::TenantPreview>>,
    /// The rollout driver's lease: holder, and when it ends (epoch seconds).
    driver_lease: Option<(String, i64)>,
    /// Writes left before the store "crashes" (every later write fails), if set.
    writes_before_crash: Option<usize>,
    writes: usize,
}

impl StoreState {
    /// Every write passes here: counts it, and fails it once the crash point is reached.
    fn write(&mut self) -> Result<(), StoreError> {
        if let Some(left) = self.writes_before_crash.as_mut() {
            if *left == 0 {
                return Err(StoreError::Unavailable("simulated crash".into()));
            }
            *left -= 1;
        }
        self.writes += 1;
        Ok(())
    }
}

/// The tenant table in memory, with conditional STATUS writes and injectable faults. Every write
/// builds the item the DynamoDB adapter would send and refuses it as DynamoDB would
/// (`StoreError::Unstorable`), before anything is stored or counted.
#[derive(Default)]
pub struct InMemoryStore {
    state: Mutex<StoreState>,
}

impl InMemoryStore {
    pub fn put_spec(&self, tenant: &TenantKey, item: Item) {
        lock(&self.state).specs.insert(tenant.clone(), item);
    }

    pub fn spec(&self, tenant: &TenantKey) -> Option<Item> {
        lock(&self.state).specs.get(tenant).cloned()
    }

    /// Drops every queued read and write fault.
    pub fn clear_faults(&self) {
        let mut state = lock(&self.state);
        state.write_faults.clear();
        state.load_faults.clear();
    }

    pub fn delete_spec(&self, tenant: &TenantKey) {
        lock(&self.state).specs.remove(tenant);
    }

    pub fn status(&self, tenant: &TenantKey) -> Option<TenantStatus> {
        lock(&self.state).statuses.get(tenant).cloned()
    }

    /// Loses the tenant's STATUS (a hand delete, a table restored without it).
    pub fn remove_status(&self, tenant: &TenantKey) {
        lock(&self.state).statuses.remove(tenant);
    }

    /// Changes a published version's body in place, as a hand edit of the table would.
    pub fn tamper_template(&self, version: &str, body: &str) {
        if let Some(record) = lock(&self.state).templates.get_mut(version) {
            record.body = body.to_owned();
        }
    }

    pub fn set_status(&self, tenant: &TenantKey, status: TenantStatus) {
        lock(&self.state).statuses.insert(tenant.clone(), status);
    }

    /// The next STATUS writes fail with these errors, in order.
    pub fn fail_next_writes(&self, errors: impl IntoIterator<Item = StoreError>) {
        lock(&self.state).write_faults.extend(errors);
    }

    pub fn fail_next_loads(&self, errors: impl IntoIterator<Item = StoreError>) {
        lock(&self.state).load_faults.extend(errors);
    }

    /// Every write from now on fails after `writes` more succeed (`None`: never): a process
    /// that dies at that point, as far as the table can tell.
    pub fn crash_after_writes(&self, writes: Option<usize>) {
        lock(&self.state).writes_before_crash = writes;
    }

    /// Writes of any kind made so far (STATUS, audit, rollouts, templates).
    pub fn writes(&self) -> usize {
        lock(&self.state).writes
    }

    /// Reads of a tenant's SPEC and STATUS (`TenantStore::load`).
    pub fn loads(&self) -> usize {
        lock(&self.state).loads
    }

    pub fn status_writes(&self) -> usize {
        lock(&self.state).status_writes
    }

    /// The tenant's whole audit timeline, oldest first.
    pub fn audit(&self, tenant: &TenantKey) -> Vec<AuditEntry> {
        lock(&self.state)
            .audit
            .get(tenant)
            .map(|entries| entries.values().cloned().collect())
            .unwrap_or_default()
    }
}

#[async_trait]
impl TenantStore for InMemoryStore {
    async fn load(&self, tenant: &TenantKey) -> Result<Snapshot, StoreError> {
        let mut state = lock(&self.state);
        state.loads += 1;
        if let Some(fault) = state.load_faults.pop_front() {
            return Err(fault);
        }
        let status = state.statuses.get(tenant).cloned();
        Ok(Snapshot {
            spec: state.specs.get(tenant).cloned(),
            status_version: status.as_ref().map(|s| s.version),
            status,
        })
    }

    async fn list_tenants(
        &self,
        _page_token: Option<String>,
    ) -> Result<(Vec<TenantKey>, Option<String>), StoreError> {
        let state = lock(&self.state);
        let mut tenants: Vec<TenantKey> = state
            .specs
            .keys()
            .chain(state.statuses.keys())
            .cloned()
            .collect();
        tenants.sort();
        tenants.dedup();
        Ok((tenants, None))
    }

    async fn list_in_status(
        &self,
        status: Status,
        _page_token: Option<String>,
    ) -> Result<(Vec<StatusSummary>, Option<String>), StoreError> {
        let state = lock(&self.state);
        let mut found: Vec<StatusSummary> = state
            .statuses
            .iter()
            .filter(|(_, s)| s.status == status)
            .map(|(tenant, s)| StatusSummary {
                tenant: tenant.clone(),
                updated_at: s.updated_at.clone(),
            })
            .collect();
        found.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        Ok((found, None))
    }

    async fn put_status(
        &self,
        tenant: &TenantKey,
        status: &TenantStatus,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        if let Some(fault) = state.write_faults.pop_front() {
            return Err(fault);
        }
        items::status_item(tenant, status)?;
        state.write()?;
        let stored = state.statuses.get(tenant).map(|s| s.version);
        if stored != expected_version {
            return Err(StoreError::Conflict);
        }
        state.status_writes += 1;
        state.statuses.insert(tenant.clone(), status.clone());
        Ok(())
    }

    async fn append_audit(&self, tenant: &TenantKey, entry: &AuditEntry) -> Result<(), StoreError> {
        let retention = chrono::Duration::days(model::audit::DEFAULT_RETENTION_DAYS.into());
        items::audit_item(tenant, entry, retention)?;
        let mut state = lock(&self.state);
        state.write()?;
        state
            .audit
            .entry(tenant.clone())
            .or_default()
            .insert(entry.sort_key(), entry.clone());
        Ok(())
    }

    /// The same timeline as the control plane's lines: a reader sees them merged.
    async fn append_request(
        &self,
        tenant: &TenantKey,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        self.append_audit(tenant, entry).await
    }

    async fn audit_trail(
        &self,
        tenant: &TenantKey,
        page_token: Option<String>,
        limit: usize,
    ) -> Result<(Vec<AuditEntry>, Option<String>), StoreError> {
        let state = lock(&self.state);
        let Some(entries) = state.audit.get(tenant) else {
            return Ok((Vec::new(), None));
        };
        let after = page_token.unwrap_or_default();
        let page: Vec<(&String, &AuditEntry)> = entries
            .iter()
            .filter(|(sk, _)| sk.as_str() > after.as_str())
            .take(limit.max(1))
            .collect();
        let next = (page.len() == limit.max(1))
            .then(|| page.last().map(|(sk, _)| (*sk).clone()))
            .flatten();
        Ok((page.into_iter().map(|(_, e)| e.clone()).collect(), next))
    }

    async fn remove_spec_for_decommission(
        &self,
        tenant: &TenantKey,
        decommission_date: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        self.append_audit(tenant, audit).await?;
        let mut state = lock(&self.state);
        let date_now = state
            .specs
            .get(tenant)
            .and_then(|spec| model::spec::SpecRow(spec).decommission_date());
        if date_now != Some(decommission_date) {
            return Err(StoreError::Conflict);
        }
        state.specs.remove(tenant);
        Ok(())
    }
}

/// How the simulated CloudFormation treats operations on one stack.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Behaviour {
    /// Operations complete at once.
    #[default]
    Succeed,
    /// Operations start and stay *_IN_PROGRESS until [`FakeStacks::finish_in_progress`].
    Hang,
    /// Creates fail on a resource and roll back: ROLLBACK_COMPLETE.
    FailCreate { resource_reason: String },
    /// Updates fail and roll back: UPDATE_ROLLBACK_COMPLETE.
    FailUpdate { resource_reason: String },
    /// Updates fail and so does their rollback: UPDATE_ROLLBACK_FAILED.
    FailUpdateRollback { resource_reason: String },
    /// Deletes fail: DELETE_FAILED.
    FailDelete { resource_reason: String },
}

#[derive(Clone, Debug)]
pub struct FakeStack {
    pub observed: ObservedStack,
    pub termination_protection: bool,
    pub template_body: String,
    pub tags: Vec<(String, String)>,
    /// The status an in-progress operation ends in when finished.
    pending: Option<StackStatus>,
    failure_reason: Option<String>,
}

#[derive(Default)]
struct CfnState {
    stacks: HashMap<StackLocation, FakeStack>,
    behaviours: HashMap<String, Behaviour>,
    /// Stack names whose operations stay in progress until finished.
    hanging: HashSet<String>,
    faults: VecDeque<(String, StackError)>,
    calls: Vec<(String, StackLocation)>,
    next_id: u64,
    open_change_sets: usize,
}

/// A simulated CloudFormation across accounts and regions, with CloudFormation's rules
/// (no operation on a busy stack, no update of a failed create, termination protection).
#[derive(Default)]
pub struct FakeStacks {
    state: Mutex<CfnState>,
}

impl FakeStacks {
    pub fn set_behaviour(&self, stack_name: &str, behaviour: Behaviour) {
        lock(&self.state)
            .behaviours
            .insert(stack_name.to_owned(), behaviour);
    }

    /// Operations on this stack stay *_IN_PROGRESS until [`FakeStacks::finish`] (or
    /// [`FakeStacks::finish_in_progress`]), then end as its behaviour says: with `FailCreate`, a
    /// create runs and only then rolls back.
    pub fn set_hanging(&self, stack_name: &str, hanging: bool) {
        let mut state = lock(&self.state);
        if hanging {
            state.hanging.insert(stack_name.to_owned());
        } else {
            state.hanging.remove(stack_name);
        }
    }

    /// The next call of `operation` ("describe", "create", "update", "delete",
    /// "continue_update_rollback") fails with `error`.
    pub fn fail_next(&self, operation: &str, error: StackError) {
        lock(&self.state)
            .faults
            .push_back((operation.to_owned(), error));
    }

    /// Puts a stack of the control plane's (tagged for the tenant its name says) in any state,
    /// as if an earlier operation had left it there.
    pub fn seed(&self, location: &StackLocation, status: StackStatus) {
        let tenant = location
            .stack_name
            .strip_prefix("tenant-")
            .unwrap_or(&location.stack_name);
        let tags = vec![
            (TAG_MANAGED_BY.to_owned(), MANAGED_BY.to_owned()),
            (TAG_TENANT_ID.to_owned(), tenant.to_owned()),
        ];
        self.seed_with_tags(location, status, tags);
    }

    /// Puts a stack someone else made (no control-plane tags) under a tenant's stack name.
    pub fn seed_foreign(&self, location: &StackLocation, status: StackStatus) {
        self.seed_with_tags(location, status, Vec::new());
    }

    fn seed_with_tags(
        &self,
        location: &StackLocation,
        status: StackStatus,
        tags: Vec<(String, String)>,
    ) {
        let mut state = lock(&self.state);
        state.next_id += 1;
        let id = format!(
            "arn:aws:cloudformation:{}:{}:stack/{}/{}",
            location.region, location.account_id, location.stack_name, state.next_id
        );
        state.stacks.insert(
            location.clone(),
            FakeStack {
                observed: ObservedStack {
                    stack_id: id,
                    status,
                    status_reason: Some("seeded".into()),
                    outputs: BTreeMap::new(),
                    parameters: BTreeMap::new(),
                    tags: tags.iter().cloned().collect(),
                },
                termination_protection: true,
                template_body: String::new(),
                tags,
                pending: None,
                failure_reason: Some("seeded failure".into()),
            },
        );
    }

    /// Sets a tag on a stack, as anyone who may tag it in the tenant's account can.
    pub fn set_tag(&self, location: &StackLocation, key: &str, value: &str) {
        let mut state = lock(&self.state);
        if let Some(stack) = state.stacks.get_mut(location) {
            stack.tags.retain(|(k, _)| k != key);
            stack.tags.push((key.to_owned(), value.to_owned()));
            stack.observed.tags.insert(key.to_owned(), value.to_owned());
        }
    }

    pub fn stack(&self, location: &StackLocation) -> Option<FakeStack> {
        lock(&self.state).stacks.get(location).cloned()
    }

    /// Stacks that exist (not DELETE_COMPLETE), by location.
    pub fn live_stacks(&self) -> Vec<StackLocation> {
        let state = lock(&self.state);
        let mut live: Vec<_> = state
            .stacks
            .iter()
            .filter(|(_, s)| s.observed.status != StackStatus::DeleteComplete)
            .map(|(l, _)| l.clone())
            .collect();
        live.sort_by(|a, b| (&a.account_id, &a.stack_name).cmp(&(&b.account_id, &b.stack_name)));
        live
    }

    /// The mutating calls made, in order ("create", "update", "delete", ...).
    pub fn calls(&self) -> Vec<(String, StackLocation)> {
        lock(&self.state).calls.clone()
    }

    pub fn count_calls(&self, operation: &str) -> usize {
        lock(&self.state)
            .calls
            .iter()
            .filter(|(op, _)| op == operation)
            .count()
    }

    /// Ends the operation in progress on the stack at `location` the way its behaviour says;
    /// the status it ended in, or `None` when none was in progress.
    pub fn finish(&self, location: &StackLocation) -> Option<StackStatus> {
        let mut state = lock(&self.state);
        let stack = state.stacks.get_mut(location)?;
        let status = stack.pending.take()?;
        stack.observed.status = status.clone();
        Some(status)
    }

    /// Ends every in-progress operation the way its behaviour says.
    pub fn finish_in_progress(&self) {
        let mut state = lock(&self.state);
        for stack in state.stacks.values_mut() {
            if let Some(status) = stack.pending.take() {
                stack.observed.status = status;
            }
        }
    }

    fn take_fault(state: &mut CfnState, operation: &str) -> Option<StackError> {
        let position = state.faults.iter().position(|(op, _)| op == operation)?;
        state.faults.remove(position).map(|(_, e)| e)
    }

    /// Checks a mutating call against CloudFormation's rules; the stack's behaviour and whether
    /// its operations hang.
    fn begin(
        state: &mut CfnState,
        operation: &str,
        at: &StackTarget,
    ) -> Result<(Behaviour, bool), StackError> {
        if let Some(fault) = Self::take_fault(state, operation) {
            return Err(fault);
        }
        state
            .calls
            .push((operation.to_owned(), at.location.clone()));
        if let Some(stack) = state.stacks.get(&at.location)
            && stack.observed.status.as_str().ends_with("_IN_PROGRESS")
            && stack.observed.status != StackStatus::ReviewInProgress
        {
            return Err(StackError::Busy(format!(
                "Stack:{} is in {} state and can not be updated.",
                stack.observed.stack_id, stack.observed.status
            )));
        }
        let behaviour = state
            .behaviours
            .get(&at.location.stack_name)
            .cloned()
            .unwrap_or_default();
        let hang = behaviour == Behaviour::Hang || state.hanging.contains(&at.location.stack_name);
        Ok((behaviour, hang))
    }

    /// Applies an operation's end state, or leaves it in progress when it hangs.
    fn settle(
        stack: &mut FakeStack,
        hang: bool,
        in_progress: StackStatus,
        done: StackStatus,
        failure: Option<(StackStatus, &String)>,
    ) {
        let (end, reason) = match failure {
            Some((failed, reason)) => (failed, Some(reason.clone())),
            None => (done, None),
        };
        stack.failure_reason = reason;
        if hang {
            stack.observed.status = in_progress;
            stack.pending = Some(end);
        } else {
            stack.observed.status = end;
        }
    }
}

fn outputs_for(
    location: &StackLocation,
    parameters: &[(String, String)],
) -> BTreeMap<String, String> {
    let mut outputs: BTreeMap<String, String> = parameters
        .iter()
        .map(|(k, v)| (format!("{k}Echo"), v.clone()))
        .collect();
    outputs.insert("StackName".into(), location.stack_name.clone());
    outputs
}

#[async_trait]
impl Stacks for FakeStacks {
    async fn describe(&self, at: &StackTarget) -> Result<Option<ObservedStack>, StackError> {
        let mut state = lock(&self.state);
        if let Some(fault) = Self::take_fault(&mut state, "describe") {
            return Err(fault);
        }
        Ok(state
            .stacks
            .get(&at.location)
            .filter(|s| s.observed.status != StackStatus::DeleteComplete)
            .map(|s| s.observed.clone()))
    }

    async fn create(&self, at: &StackTarget, request: &StackRequest) -> Result<(), StackError> {
        acknowledged(request)?;
        let mut state = lock(&self.state);
        let (behaviour, hang) = Self::begin(&mut state, "create", at)?;
        if state
            .stacks
            .get(&at.location)
            .is_some_and(|s| s.observed.status != StackStatus::DeleteComplete)
        {
            return Err(StackError::AlreadyExists);
        }
        state.next_id += 1;
        let location = &at.location;
        let mut stack = FakeStack {
            observed: ObservedStack {
                stack_id: format!(
                    "arn:aws:cloudformation:{}:{}:stack/{}/{}",
                    location.region, location.account_id, location.stack_name, state.next_id
                ),
                status: StackStatus::CreateInProgress,
                status_reason: None,
                outputs: BTreeMap::new(),
                parameters: request.parameters.iter().cloned().collect(),
                tags: request.tags.iter().cloned().collect(),
            },
            termination_protection: true,
            template_body: request.template_body.clone(),
            tags: request.tags.clone(),
            pending: None,
            failure_reason: None,
        };
        let failure = match &behaviour {
            Behaviour::FailCreate { resource_reason } => {
                Some((StackStatus::RollbackComplete, resource_reason))
            }
            _ => None,
        };
        if failure.is_none() {
            stack.observed.outputs = outputs_for(location, &request.parameters);
        }
        Self::settle(
            &mut stack,
            hang,
            StackStatus::CreateInProgress,
            StackStatus::CreateComplete,
            failure,
        );
        state.stacks.insert(location.clone(), stack);
        Ok(())
    }

    async fn update(
        &self,
        at: &StackTarget,
        request: &StackRequest,
    ) -> Result<UpdateStarted, StackError> {
        acknowledged(request)?;
        let mut state = lock(&self.state);
        let (behaviour, hang) = Self::begin(&mut state, "update", at)?;
        let Some(stack) = state
            .stacks
            .get_mut(&at.location)
            .filter(|s| s.observed.status != StackStatus::DeleteComplete)
        else {
            return Err(StackError::Rejected(format!(
                "Stack with id {} does not exist",
                at.location.stack_name
            )));
        };
        use model::stack::StackPhase as P;
        if !matches!(
            stack.observed.status.phase(),
            P::Healthy | P::UpdateRolledBack | P::UpdateFailed
        ) {
            return Err(StackError::Rejected(format!(
                "Stack:{} is in {} state and can not be updated.",
                stack.observed.stack_id, stack.observed.status
            )));
        }
        let parameters: BTreeMap<String, String> = request.parameters.iter().cloned().collect();
        let tags: BTreeMap<String, String> = request.tags.iter().cloned().collect();
        // As CloudFormation: new tags alone are an update.
        if parameters == stack.observed.parameters
            && request.template_body == stack.template_body
            && tags == stack.observed.tags
        {
            return Ok(UpdateStarted::NoChanges);
        }
        let failure = match &behaviour {
            Behaviour::FailUpdate { resource_reason } => {
                Some((StackStatus::UpdateRollbackComplete, resource_reason))
            }
            Behaviour::FailUpdateRollback { resource_reason } => {
                Some((StackStatus::UpdateRollbackFailed, resource_reason))
            }
            _ => None,
        };
        if failure.is_none() {
            stack.observed.parameters = parameters;
            stack.observed.outputs = outputs_for(&at.location, &request.parameters);
            stack.observed.tags = request.tags.iter().cloned().collect();
            stack.template_body = request.template_body.clone();
            stack.tags = request.tags.clone();
        }
        Self::settle(
            stack,
            hang,
            StackStatus::UpdateInProgress,
            StackStatus::UpdateComplete,
            failure,
        );
        Ok(UpdateStarted::Started)
    }

    async fn delete(&self, at: &StackTarget, _token: &str) -> Result<(), StackError> {
        let mut state = lock(&self.state);
        let (behaviour, hang) = Self::begin(&mut state, "delete", at)?;
        let Some(stack) = state.stacks.get_mut(&at.location) else {
            return Ok(());
        };
        // The control plane turns protection off just before its own delete.
        stack.termination_protection = false;
        let failure = match &behaviour {
            Behaviour::FailDelete { resource_reason } => {
                Some((StackStatus::DeleteFailed, resource_reason))
            }
            _ => None,
        };
        Self::settle(
            stack,
            hang,
            StackStatus::DeleteInProgress,
            StackStatus::DeleteComplete,
            failure,
        );
        Ok(())
    }

    async fn continue_update_rollback(
        &self,
        at: &StackTarget,
        _token: &str,
    ) -> Result<(), StackError> {
        let mut state = lock(&self.state);
        let (_, hang) = Self::begin(&mut state, "continue_update_rollback", at)?;
        let Some(stack) = state.stacks.get_mut(&at.location) else {
            return Err(StackError::Rejected("stack does not exist".into()));
        };
        if stack.observed.status != StackStatus::UpdateRollbackFailed {
            return Err(StackError::Rejected(format!(
                "Stack is in {} state and can not continue rollback",
                stack.observed.status
            )));
        }
        let keep = stack.failure_reason.clone();
        Self::settle(
            stack,
            hang,
            StackStatus::UpdateRollbackInProgress,
            StackStatus::UpdateRollbackComplete,
            None,
        );
        stack.failure_reason = keep;
        Ok(())
    }

    async fn failure_reason(&self, at: &StackTarget) -> Result<Option<String>, StackError> {
        let state = lock(&self.state);
        Ok(state
            .stacks
            .get(&at.location)
            .and_then(|s| s.failure_reason.clone()))
    }
}

/// Records every preview queued; can be made to fail.
#[derive(Default)]
pub struct RecordingPreviewQueue {
    queued: Mutex<Vec<String>>,
    failing: Mutex<bool>,
}

impl RecordingPreviewQueue {
    pub fn queued(&self) -> Vec<String> {
        lock(&self.queued).clone()
    }

    pub fn set_failing(&self, failing: bool) {
        *lock(&self.failing) = failing;
    }
}

#[async_trait]
impl crate::rollout::preview::PreviewQueue for RecordingPreviewQueue {
    async fn queue(&self, preview_id: &str) -> Result<(), crate::ports::RequeueError> {
        if *lock(&self.failing) {
            return Err(crate::ports::RequeueError("queue unavailable".into()));
        }
        lock(&self.queued).push(preview_id.to_owned());
        Ok(())
    }
}

/// Records every re-check asked for; can be made to fail.
#[derive(Default)]
pub struct RecordingRequeue {
    requests: Mutex<Vec<(TenantKey, std::time::Duration)>>,
    failing: Mutex<bool>,
}

impl RecordingRequeue {
    pub fn requests(&self) -> Vec<(TenantKey, std::time::Duration)> {
        lock(&self.requests).clone()
    }

    pub fn set_failing(&self, failing: bool) {
        *lock(&self.failing) = failing;
    }
}

#[async_trait]
impl crate::ports::Requeue for RecordingRequeue {
    async fn requeue(
        &self,
        tenant: &TenantKey,
        after: std::time::Duration,
    ) -> Result<(), crate::ports::RequeueError> {
        if *lock(&self.failing) {
            return Err(crate::ports::RequeueError("queue unavailable".into()));
        }
        lock(&self.requests).push((tenant.clone(), after));
        Ok(())
    }
}

/// Records every lifecycle event published; can be made to fail.
#[derive(Default)]
pub struct RecordingEvents {
    published: Mutex<Vec<model::status::LifecycleEvent>>,
    failing: Mutex<bool>,
}

impl RecordingEvents {
    pub fn published(&self) -> Vec<model::status::LifecycleEvent> {
        lock(&self.published).clone()
    }

    pub fn set_failing(&self, failing: bool) {
        *lock(&self.failing) = failing;
    }
}

#[async_trait]
impl crate::ports::LifecycleEvents for RecordingEvents {
    async fn publish(
        &self,
        event: &model::status::LifecycleEvent,
    ) -> Result<(), crate::ports::PublishError> {
        if *lock(&self.failing) {
            return Err(crate::ports::PublishError("topic unavailable".into()));
        }
        lock(&self.published).push(event.clone());
        Ok(())
    }
}

/// A stream whose ranges name the given tenants; unknown ranges are gone (trimmed).
#[derive(Default)]
pub struct FakeStreamRecords {
    ranges: Mutex<Vec<(crate::ports::ShardRange, Vec<TenantKey>)>>,
    transient: Mutex<bool>,
}

impl FakeStreamRecords {
    pub fn holds(&self, range: crate::ports::ShardRange, tenants: Vec<TenantKey>) {
        lock(&self.ranges).push((range, tenants));
    }

    pub fn set_unavailable(&self, unavailable: bool) {
        *lock(&self.transient) = unavailable;
    }
}

#[async_trait]
impl crate::ports::StreamRecords for FakeStreamRecords {
    async fn tenants_in(
        &self,
        range: &crate::ports::ShardRange,
    ) -> Result<Vec<TenantKey>, crate::ports::StreamReadError> {
        if *lock(&self.transient) {
            return Err(crate::ports::StreamReadError::Transient(
                "ThrottlingException: rate exceeded".into(),
            ));
        }
        lock(&self.ranges)
            .iter()
            .find(|(held, _)| held == range)
            .map(|(_, tenants)| tenants.clone())
            .ok_or_else(|| {
                crate::ports::StreamReadError::Gone(
                    "TrimmedDataAccessException: records past the retention period".into(),
                )
            })
    }
}

#[async_trait]
impl crate::ports::SpecStore for InMemoryStore {
    async fn create_spec(&self, tenant: &TenantKey, item: &Item) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        if let Some(fault) = state.write_faults.pop_front() {
            return Err(fault);
        }
        items::spec_item(tenant, item)?;
        if state.specs.contains_key(tenant) {
            return Err(StoreError::Conflict);
        }
        state.specs.insert(tenant.clone(), item.clone());
        Ok(())
    }

    async fn replace_spec(
        &self,
        tenant: &TenantKey,
        item: &Item,
        expected: &Item,
    ) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        if let Some(fault) = state.write_faults.pop_front() {
            return Err(fault);
        }
        items::spec_item(tenant, item)?;
        if state.specs.get(tenant) != Some(expected) {
            return Err(StoreError::Conflict);
        }
        state.specs.insert(tenant.clone(), item.clone());
        Ok(())
    }

    async fn delete_spec(&self, tenant: &TenantKey, expected: &Item) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        if let Some(fault) = state.write_faults.pop_front() {
            return Err(fault);
        }
        if state.specs.get(tenant) != Some(expected) {
            return Err(StoreError::Conflict);
        }
        state.specs.remove(tenant);
        Ok(())
    }

    async fn list_specs(
        &self,
        page_token: Option<String>,
        limit: usize,
    ) -> Result<(Vec<TenantKey>, Option<String>), StoreError> {
        let state = lock(&self.state);
        // As the `tenants` index: SPECs with a string tenant_id.
        let mut tenants: Vec<&TenantKey> = state
            .specs
            .iter()
            .filter(|(_, spec)| {
                matches!(
                    spec.get("tenant_id"),
                    Some(serde_dynamo::AttributeValue::S(_))
                )
            })
            .map(|(tenant, _)| tenant)
            .collect();
        tenants.sort();
        let after = page_token.unwrap_or_default();
        let page: Vec<TenantKey> = tenants
            .into_iter()
            .filter(|t| t.as_str() > after.as_str())
            .take(limit.max(1) + 1)
            .cloned()
            .collect();
        if page.len() > limit.max(1) {
            let page = page[..limit.max(1)].to_vec();
            let next = page.last().map(|t| t.as_str().to_owned());
            Ok((page, next))
        } else {
            Ok((page, None))
        }
    }

    fn resume_after(&self, tenant: &TenantKey) -> String {
        tenant.as_str().to_owned()
    }

    async fn list_unindexed(
        &self,
        page_token: Option<String>,
        limit: usize,
    ) -> Result<(Vec<(TenantKey, String)>, Option<String>), StoreError> {
        let state = lock(&self.state);
        let after = page_token.unwrap_or_default();
        let mut tenants: Vec<&TenantKey> = state
            .statuses
            .keys()
            .filter(|tenant| {
                !state.specs.get(*tenant).is_some_and(|spec| {
                    matches!(
                        spec.get("tenant_id"),
                        Some(serde_dynamo::AttributeValue::S(_))
                    )
                })
            })
            .filter(|tenant| tenant.as_str() > after.as_str())
            .collect();
        tenants.sort();
        let limit = limit.max(1);
        let next = (tenants.len() > limit).then(|| tenants[limit - 1].as_str().to_owned());
        let page = tenants
            .into_iter()
            .take(limit)
            .map(|tenant| (tenant.clone(), tenant.as_str().to_owned()))
            .collect();
        Ok((page, next))
    }

    async fn idempotency_record(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<crate::ports::IdempotencyRecord>, StoreError> {
        Ok(lock(&self.state)
            .idempotency
            .get(&(scope.to_owned(), key.to_owned()))
            .cloned())
    }

    async fn claim_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        claim: &crate::ports::IdempotencyRecord,
    ) -> Result<(), StoreError> {
        items::idempotency_item(scope, key, claim)?;
        let now = chrono::Utc::now().timestamp();
        let mut state = lock(&self.state);
        let slot = (scope.to_owned(), key.to_owned());
        let free = state.idempotency.get(&slot).is_none_or(|held| {
            held.in_flight() && held.claimed_until.is_some_and(|until| until <= now)
        });
        if !free {
            return Err(StoreError::Conflict);
        }
        state.idempotency.insert(slot, claim.clone());
        Ok(())
    }

    async fn finish_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        record: &crate::ports::IdempotencyRecord,
    ) -> Result<(), StoreError> {
        items::idempotency_item(scope, key, record)?;
        let mut state = lock(&self.state);
        let slot = (scope.to_owned(), key.to_owned());
        match state.idempotency.get(&slot) {
            Some(held) if held.in_flight() && held.request_hash == record.request_hash => {
                state.idempotency.insert(slot, record.clone());
                Ok(())
            }
            _ => Err(StoreError::Conflict),
        }
    }

    async fn release_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        request_hash: &str,
    ) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        let slot = (scope.to_owned(), key.to_owned());
        if state
            .idempotency
            .get(&slot)
            .is_some_and(|held| held.in_flight() && held.request_hash == request_hash)
        {
            state.idempotency.remove(&slot);
        }
        Ok(())
    }
}

#[async_trait]
impl TemplateStore for InMemoryStore {
    async fn put_template(&self, record: &TemplateRecord) -> Result<(), StoreError> {
        items::template_item(record)?;
        let mut state = lock(&self.state);
        state.write()?;
        if state.templates.contains_key(&record.version) {
            return Err(StoreError::Conflict);
        }
        state
            .templates
            .insert(record.version.clone(), record.clone());
        Ok(())
    }

    async fn template(&self, version: &str) -> Result<Option<TemplateRecord>, StoreError> {
        Ok(lock(&self.state).templates.get(version).cloned())
    }

    async fn list_templates(&self) -> Result<Vec<TemplateRecord>, StoreError> {
        let mut records: Vec<TemplateRecord> =
            lock(&self.state).templates.values().cloned().collect();
        records.sort_by(|a, b| a.published_at.cmp(&b.published_at));
        Ok(records)
    }

    async fn current_template(&self) -> Result<Option<CurrentTemplate>, StoreError> {
        Ok(lock(&self.state).current_template.clone())
    }

    async fn set_current_template(
        &self,
        version: &str,
        expected: Option<u64>,
    ) -> Result<(), StoreError> {
        items::current_template_item(version, expected.map_or(1, |v| v + 1))?;
        let mut state = lock(&self.state);
        state.write()?;
        if state.current_template.as_ref().map(|c| c.row_version) != expected {
            return Err(StoreError::Conflict);
        }
        state.current_template = Some(CurrentTemplate {
            version: version.to_owned(),
            row_version: expected.map_or(1, |v| v + 1),
        });
        Ok(())
    }
}

#[async_trait]
impl RolloutStore for InMemoryStore {
    async fn create_rollout(&self, rollout: &Rollout) -> Result<(), StoreError> {
        items::rollout_item(rollout)?;
        let mut state = lock(&self.state);
        state.write()?;
        if state.rollouts.contains_key(&rollout.id) {
            return Err(StoreError::Conflict);
        }
        state.rollouts.insert(rollout.id.clone(), rollout.clone());
        Ok(())
    }

    async fn rollout(&self, id: &str) -> Result<Option<Rollout>, StoreError> {
        Ok(lock(&self.state).rollouts.get(id).cloned())
    }

    async fn list_rollouts(&self) -> Result<Vec<Rollout>, StoreError> {
        Ok(lock(&self.state).rollouts.values().rev().cloned().collect())
    }

    async fn put_rollout(&self, rollout: &Rollout, expected: u64) -> Result<(), StoreError> {
        items::rollout_item(rollout)?;
        let mut state = lock(&self.state);
        state.write()?;
        if state.rollouts.get(&rollout.id).map(|r| r.version) != Some(expected) {
            return Err(StoreError::Conflict);
        }
        state.rollouts.insert(rollout.id.clone(), rollout.clone());
        Ok(())
    }

    async fn active_rollout(&self) -> Result<Option<String>, StoreError> {
        Ok(lock(&self.state).active_rollout.clone())
    }

    async fn claim_active(&self, id: &str, replacing: Option<&str>) -> Result<(), StoreError> {
        items::active_rollout_item(id)?;
        let mut state = lock(&self.state);
        state.write()?;
        match state.active_rollout.as_deref() {
            None => {}
            Some(holder) if holder == id || Some(holder) == replacing => {}
            Some(_) => return Err(StoreError::Conflict),
        }
        state.active_rollout = Some(id.to_owned());
        Ok(())
    }

    async fn release_active(&self, id: &str) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        state.write()?;
        if state.active_rollout.as_deref() == Some(id) {
            state.active_rollout = None;
        }
        Ok(())
    }

    async fn members(&self, id: &str) -> Result<Vec<Member>, StoreError> {
        Ok(lock(&self.state)
            .members
            .get(id)
            .map(|members| members.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn add_members(&self, id: &str, members: &[Member]) -> Result<(), StoreError> {
        for member in members {
            items::member_item(id, member)?;
        }
        let mut state = lock(&self.state);
        state.write()?;
        let stored = state.members.entry(id.to_owned()).or_default();
        for member in members {
            stored
                .entry(member.order.clone())
                .or_insert_with(|| member.clone());
        }
        Ok(())
    }

    async fn put_member(
        &self,
        id: &str,
        member: &Member,
        expected: MemberState,
    ) -> Result<(), StoreError> {
        items::member_item(id, member)?;
        let mut state = lock(&self.state);
        state.write()?;
        let stored = state.members.entry(id.to_owned()).or_default();
        match stored.get(&member.order) {
            Some(current) if current.state == expected => {
                stored.insert(member.order.clone(), member.clone());
                Ok(())
            }
            _ => Err(StoreError::Conflict),
        }
    }

    async fn hold_driver_lease(
        &self,
        holder: &str,
        now: i64,
        until: i64,
    ) -> Result<(), StoreError> {
        items::driver_lease_item(holder, until)?;
        let mut state = lock(&self.state);
        state.write()?;
        match &state.driver_lease {
            Some((other, ends)) if other != holder && *ends >= now => Err(StoreError::Conflict),
            _ => {
                state.driver_lease = Some((holder.to_owned(), until));
                Ok(())
            }
        }
    }

    async fn release_driver_lease(&self, holder: &str) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        state.write()?;
        if state
            .driver_lease
            .as_ref()
            .is_some_and(|(other, _)| other == holder)
        {
            state.driver_lease = None;
        }
        Ok(())
    }
}

#[async_trait]
impl crate::ports::PreviewStore for InMemoryStore {
    async fn create_preview(
        &self,
        job: &crate::rollout::preview::PreviewJob,
    ) -> Result<(), StoreError> {
        items::preview_item(job)?;
        let mut state = lock(&self.state);
        state.write()?;
        if state.previews.contains_key(&job.id) {
            return Err(StoreError::Conflict);
        }
        state.previews.insert(job.id.clone(), job.clone());
        Ok(())
    }

    async fn preview(
        &self,
        id: &str,
    ) -> Result<Option<crate::rollout::preview::PreviewJob>, StoreError> {
        Ok(lock(&self.state).previews.get(id).cloned())
    }

    async fn put_preview(
        &self,
        job: &crate::rollout::preview::PreviewJob,
        expected: u64,
    ) -> Result<(), StoreError> {
        items::preview_item(job)?;
        let mut state = lock(&self.state);
        state.write()?;
        if state.previews.get(&job.id).map(|j| j.version) != Some(expected) {
            return Err(StoreError::Conflict);
        }
        state.previews.insert(job.id.clone(), job.clone());
        Ok(())
    }

    async fn put_preview_results(
        &self,
        id: &str,
        results: &[crate::rollout::preview::TenantPreview],
    ) -> Result<(), StoreError> {
        for result in results {
            items::preview_result_item(id, result)?;
        }
        let mut state = lock(&self.state);
        state.write()?;
        let stored = state.preview_results.entry(id.to_owned()).or_default();
        for result in results {
            stored.insert(result.tenant_id.clone(), result.clone());
        }
        Ok(())
    }

    async fn preview_results(
        &self,
        id: &str,
        page_token: Option<String>,
        limit: usize,
    ) -> Result<(Vec<crate::rollout::preview::TenantPreview>, Option<String>), StoreError> {
        let state = lock(&self.state);
        let Some(stored) = state.preview_results.get(id) else {
            return Ok((Vec::new(), None));
        };
        let after = |tenant: &String| page_token.as_ref().is_none_or(|last| tenant > last);
        let mut page: Vec<_> = stored
            .iter()
            .filter(|(tenant, _)| after(tenant))
            .take(limit.max(1) + 1)
            .map(|(_, result)| result.clone())
            .collect();
        let next = (page.len() > limit.max(1)).then(|| {
            page.truncate(limit.max(1));
            page.last().map(|r| r.tenant_id.clone()).unwrap_or_default()
        });
        Ok((page, next))
    }
}

/// As CloudFormation: a template that uses transforms is refused unless the call acknowledges
/// CAPABILITY_AUTO_EXPAND (moto accepts it either way).
fn acknowledged(request: &StackRequest) -> Result<(), StackError> {
    let expands = model::template::Template::parse("fake", &request.template_body)
        .is_ok_and(|t| t.expands_transforms());
    if expands && !request.auto_expand {
        return Err(StackError::Rejected(
            "InsufficientCapabilitiesException: Requires capabilities : [CAPABILITY_AUTO_EXPAND]"
                .into(),
        ));
    }
    Ok(())
}

/// CloudFormation's template check, faked: a body is accepted unless it holds `rejects`.
#[derive(Default)]
pub struct FakeTemplateValidator {
    pub rejects: Option<String>,
}

#[async_trait]
impl crate::ports::TemplateValidator for FakeTemplateValidator {
    async fn validate_template(&self, body: &str) -> Result<(), StackError> {
        match &self.rejects {
            Some(marker) if body.contains(marker.as_str()) => Err(StackError::Rejected(format!(
                "ValidationError: Template format error: unsupported construct {marker}"
            ))),
            _ => Ok(()),
        }
    }
}

/// The resources of a template body: logical id -> (type, properties).
fn resources_of(body: &str) -> BTreeMap<String, (String, serde_yaml_ng::Value)> {
    let document: serde_yaml_ng::Value = serde_yaml_ng::from_str(body).unwrap_or_default();
    document
        .get("Resources")
        .and_then(serde_yaml_ng::Value::as_mapping)
        .map(|resources| {
            resources
                .iter()
                .filter_map(|(id, resource)| {
                    let kind = resource.get("Type")?.as_str()?.to_owned();
                    let properties = resource.get("Properties").cloned().unwrap_or_default();
                    Some((id.as_str()?.to_owned(), (kind, properties)))
                })
                .collect()
        })
        .unwrap_or_default()
}

impl FakeStacks {
    /// Change sets created by previews and not deleted.
    pub fn open_change_sets(&self) -> usize {
        lock(&self.state).open_change_sets
    }
}

/// Previews as CloudFormation computes them, simplified: a resource whose type changes, or
/// whose name property (`*Name`) changes, is replaced; any other property change modifies it
/// in place. (moto never reports replacements: this is where that path is tested.)
#[async_trait]
impl crate::ports::ChangePreviews for FakeStacks {
    async fn preview(
        &self,
        at: &StackTarget,
        request: &StackRequest,
    ) -> Result<Vec<crate::ports::ResourceChange>, StackError> {
        acknowledged(request)?;
        let current = {
            let mut state = lock(&self.state);
            state.calls.push(("preview".into(), at.location.clone()));
            if let Some(fault) = Self::take_fault(&mut state, "preview") {
                return Err(fault);
            }
            let Some(stack) = state
                .stacks
                .get(&at.location)
                .filter(|s| s.observed.status != StackStatus::DeleteComplete)
            else {
                return Err(StackError::Rejected(format!(
                    "ValidationError: Stack [{}] does not exist",
                    at.location.stack_name
                )));
            };
            let body = stack.template_body.clone();
            state.open_change_sets += 1;
            body
        };
        let before = resources_of(&current);
        let after = resources_of(&request.template_body);
        let mut changes = Vec::new();
        for (id, (kind, properties)) in &after {
            let change = |action: &str, replacement: Option<&str>| crate::ports::ResourceChange {
                action: action.into(),
                logical_id: id.clone(),
                resource_type: kind.clone(),
                replacement: replacement.map(str::to_owned),
            };
            match before.get(id) {
                None => changes.push(change("Add", None)),
                Some((old_kind, _)) if old_kind != kind => {
                    changes.push(change("Modify", Some("True")))
                }
                Some((_, old)) if old != properties => {
                    let renamed = properties
                        .as_mapping()
                        .into_iter()
                        .flatten()
                        .filter_map(|(k, v)| Some((k.as_str()?, v)))
                        .any(|(k, v)| k.ends_with("Name") && old.get(k) != Some(v));
                    changes.push(change(
                        "Modify",
                        Some(if renamed { "True" } else { "False" }),
                    ));
                }
                Some(_) => {}
            }
        }
        for (id, (kind, _)) in &before {
            if !after.contains_key(id) {
                changes.push(crate::ports::ResourceChange {
                    action: "Remove".into(),
                    logical_id: id.clone(),
                    resource_type: kind.clone(),
                    replacement: None,
                });
            }
        }
        lock(&self.state).open_change_sets -= 1;
        Ok(changes)
    }
}
