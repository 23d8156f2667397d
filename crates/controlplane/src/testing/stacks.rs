//! A simulated CloudFormation: stacks, change-set previews, CloudFormation's rules.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;

use super::lock;
use crate::ports::{
    StackError, StackRequest, StackTarget, Stacks, TemplateLocation, UpdateStarted,
};
use model::stack::{MANAGED_BY, ObservedStack, StackStatus, TAG_MANAGED_BY, TAG_TENANT_ID};
use model::status::StackLocation;

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
    /// The TemplateURL the stack was last created or updated from (`None`: a body inline).
    pub template_url: Option<String>,
    /// The service role associated with the stack (RoleARN of its last create or update).
    pub role_arn: Option<String>,
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
    /// Faults that wait for that many good calls of their operation first.
    later_faults: Vec<(String, usize, StackError)>,
    calls: Vec<(String, StackLocation)>,
    next_id: u64,
    open_change_sets: usize,
    /// Resources changed by hand, per stack (what drift detection finds).
    drifted: HashMap<StackLocation, Vec<model::drift::ResourceDrift>>,
    /// Properties a revert cannot bring back, per stack (they stay drifted after it).
    unrevertable: HashMap<StackLocation, Vec<model::drift::NotReverted>>,
    /// Detections started, by id: the stack, and how many looks stay DETECTION_IN_PROGRESS.
    detections: HashMap<String, (StackLocation, usize)>,
    /// How many looks each new detection stays in progress.
    detection_polls: usize,
    /// Drift-aware change sets made and not executed yet: the stack, the body, the URL and
    /// the role they were made with.
    revert_change_sets: HashMap<String, (StackLocation, String, Option<String>, Option<String>)>,
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

    /// Faults set by [`Self::fail_after`] that have not struck yet.
    pub fn later_faults_left(&self) -> usize {
        lock(&self.state).later_faults.len()
    }

    /// The call of `operation` after `good` more good ones fails with `error` (a later look
    /// failing, say, where the first one in a reconcile must succeed).
    pub fn fail_after(&self, operation: &str, good: usize, error: StackError) {
        lock(&self.state)
            .later_faults
            .push((operation.to_owned(), good, error));
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
                template_url: None,
                role_arn: None,
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
        if let Some(position) = state
            .later_faults
            .iter()
            .position(|(op, _, _)| op == operation)
        {
            match &mut state.later_faults[position] {
                (_, 0, _) => return Some(state.later_faults.remove(position).2),
                (_, good, _) => *good -= 1,
            }
        }
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
        let body = acknowledged(request)?;
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
            template_body: body,
            template_url: url_of(request),
            role_arn: request.role_arn.clone(),
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
        let body = acknowledged(request)?;
        let mut state = lock(&self.state);
        let (behaviour, hang) = Self::begin(&mut state, "update", at)?;
        let stack = Self::live_stack(&mut state, at)?;
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
            && body == stack.template_body
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
            stack.template_body = body;
            stack.template_url = url_of(request);
            if request.role_arn.is_some() {
                stack.role_arn = request.role_arn.clone();
            }
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

/// The template a call passes, as CloudFormation reads it: inline, or the object its URL names.
fn template_of(request: &StackRequest) -> Result<String, StackError> {
    match &request.template {
        TemplateLocation::Body(body) => Ok(body.clone()),
        TemplateLocation::Url(url) => super::object_at(url).ok_or_else(|| {
            StackError::Rejected(format!(
                "ValidationError: TemplateURL must reference a valid S3 object to which you have \
                 access: {url}"
            ))
        }),
    }
}

fn url_of(request: &StackRequest) -> Option<String> {
    match &request.template {
        TemplateLocation::Url(url) => Some(url.clone()),
        TemplateLocation::Body(_) => None,
    }
}

/// As CloudFormation: a template that uses transforms is refused unless the call acknowledges
/// CAPABILITY_AUTO_EXPAND (moto accepts it either way). The template read, when it may be used.
fn acknowledged(request: &StackRequest) -> Result<String, StackError> {
    let body = template_of(request)?;
    let expands =
        model::template::Template::parse("fake", &body).is_ok_and(|t| t.expands_transforms());
    if expands && !request.auto_expand {
        return Err(StackError::Rejected(
            "InsufficientCapabilitiesException: Requires capabilities : [CAPABILITY_AUTO_EXPAND]"
                .into(),
        ));
    }
    Ok(body)
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
        let body = acknowledged(request)?;
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
        let after = resources_of(&body);
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

impl FakeStacks {
    /// Someone changed a resource of this stack by hand: drift detection finds it.
    pub fn drift(&self, location: &StackLocation, resource: model::drift::ResourceDrift) {
        lock(&self.state)
            .drifted
            .entry(location.clone())
            .or_default()
            .push(resource);
    }

    /// A revert of this stack's drift leaves this property as it is (CloudFormation's
    /// ResourceDriftIgnoredAttribute): it stays drifted.
    pub fn unrevertable(&self, location: &StackLocation, property: model::drift::NotReverted) {
        lock(&self.state)
            .unrevertable
            .entry(location.clone())
            .or_default()
            .push(property);
    }

    /// Each new detection answers DETECTION_IN_PROGRESS this many times first.
    pub fn set_detection_polls(&self, polls: usize) {
        lock(&self.state).detection_polls = polls;
    }

    /// Drift-aware change sets made and neither executed nor removed.
    pub fn open_revert_change_sets(&self) -> usize {
        lock(&self.state).revert_change_sets.len()
    }

    /// The resources drift detection would find now.
    pub fn drifted(&self, location: &StackLocation) -> Vec<model::drift::ResourceDrift> {
        lock(&self.state)
            .drifted
            .get(location)
            .cloned()
            .unwrap_or_default()
    }

    /// The stack at `at`, as CloudFormation refuses a call on one that does not exist.
    fn live_stack<'a>(
        state: &'a mut CfnState,
        at: &StackTarget,
    ) -> Result<&'a mut FakeStack, StackError> {
        state
            .stacks
            .get_mut(&at.location)
            .filter(|s| s.observed.status != StackStatus::DeleteComplete)
            .ok_or_else(|| {
                StackError::Rejected(format!(
                    "Stack with id {} does not exist",
                    at.location.stack_name
                ))
            })
    }

    fn drift_call(
        state: &mut CfnState,
        operation: &str,
        at: &StackTarget,
    ) -> Result<(), StackError> {
        if let Some(fault) = Self::take_fault(state, operation) {
            return Err(fault);
        }
        state
            .calls
            .push((operation.to_owned(), at.location.clone()));
        Ok(())
    }
}

#[async_trait]
impl crate::ports::StackDrift for FakeStacks {
    async fn detect(&self, at: &StackTarget) -> Result<String, StackError> {
        let mut state = lock(&self.state);
        Self::drift_call(&mut state, "detect_drift", at)?;
        match state.stacks.get(&at.location) {
            Some(stack) if stack.observed.status.as_str().ends_with("_IN_PROGRESS") => {
                return Err(StackError::Rejected(format!(
                    "Drift detection cannot be performed on stack {} while it is in {} state",
                    stack.observed.stack_id, stack.observed.status
                )));
            }
            Some(stack) if stack.observed.status != StackStatus::DeleteComplete => {}
            _ => {
                return Err(StackError::Rejected(format!(
                    "Stack with id {} does not exist",
                    at.location.stack_name
                )));
            }
        }
        state.next_id += 1;
        let id = format!("detection-{}", state.next_id);
        let polls = state.detection_polls;
        state
            .detections
            .insert(id.clone(), (at.location.clone(), polls));
        Ok(id)
    }

    async fn progress(
        &self,
        at: &StackTarget,
        detection_id: &str,
    ) -> Result<crate::ports::DetectionProgress, StackError> {
        use crate::ports::DetectionProgress;
        let mut state = lock(&self.state);
        Self::drift_call(&mut state, "drift_progress", at)?;
        let Some((location, polls)) = state.detections.get_mut(detection_id) else {
            return Err(StackError::Rejected(format!(
                "no drift detection with id {detection_id}"
            )));
        };
        if *polls > 0 {
            *polls -= 1;
            return Ok(DetectionProgress::InProgress);
        }
        let location = location.clone();
        let drifted = state.drifted.get(&location).is_some_and(|d| !d.is_empty());
        Ok(DetectionProgress::Complete {
            drifted,
            reason: None,
        })
    }

    async fn drifted_resources(
        &self,
        at: &StackTarget,
    ) -> Result<Vec<model::drift::ResourceDrift>, StackError> {
        let mut state = lock(&self.state);
        Self::drift_call(&mut state, "drifted_resources", at)?;
        Ok(state.drifted.get(&at.location).cloned().unwrap_or_default())
    }

    async fn prepare_revert(
        &self,
        at: &StackTarget,
        request: &StackRequest,
    ) -> Result<crate::ports::RevertPlan, StackError> {
        use crate::ports::RevertPlan;
        let body = acknowledged(request)?;
        let mut state = lock(&self.state);
        Self::drift_call(&mut state, "prepare_revert", at)?;
        let unrevertable = state
            .unrevertable
            .get(&at.location)
            .cloned()
            .unwrap_or_default();
        let drifted = state
            .drifted
            .get(&at.location)
            .is_some_and(|d| !d.is_empty());
        let stack = Self::live_stack(&mut state, at)?;
        if stack.observed.status.as_str().ends_with("_IN_PROGRESS") {
            return Err(StackError::Busy(format!(
                "Stack:{} is in {} state and can not be updated.",
                stack.observed.stack_id, stack.observed.status
            )));
        }
        if !drifted {
            return Ok(RevertPlan::NothingToRevert);
        }
        state.next_id += 1;
        let change_set = format!("revert-drift-{}", state.next_id);
        state.revert_change_sets.insert(
            change_set.clone(),
            (
                at.location.clone(),
                body,
                url_of(request),
                request.role_arn.clone(),
            ),
        );
        Ok(RevertPlan::Ready {
            change_set,
            not_reverted: unrevertable,
        })
    }

    async fn execute_revert(
        &self,
        at: &StackTarget,
        change_set: &str,
        _client_request_token: &str,
    ) -> Result<(), StackError> {
        let mut state = lock(&self.state);
        let (behaviour, hang) = Self::begin(&mut state, "revert_drift", at)?;
        let Some((location, body, url, role_arn)) = state.revert_change_sets.remove(change_set)
        else {
            return Err(StackError::Rejected(format!(
                "ChangeSetNotFound: ChangeSet [{change_set}] does not exist"
            )));
        };
        let unrevertable = state
            .unrevertable
            .get(&location)
            .cloned()
            .unwrap_or_default();
        let drifted = state.drifted.get(&location).cloned().unwrap_or_default();
        let stack = Self::live_stack(&mut state, at)?;
        let failure = match &behaviour {
            Behaviour::FailUpdate { resource_reason } => {
                Some((StackStatus::UpdateRollbackComplete, resource_reason))
            }
            _ => None,
        };
        let reverted = failure.is_none();
        if reverted {
            stack.template_body = body;
            stack.template_url = url;
            if role_arn.is_some() {
                stack.role_arn = role_arn;
            }
        }
        Self::settle(
            stack,
            hang,
            StackStatus::UpdateInProgress,
            StackStatus::UpdateComplete,
            failure,
        );
        if reverted {
            // What the change set cannot bring back stays drifted; the rest is as the template says.
            let left: Vec<model::drift::ResourceDrift> = drifted
                .into_iter()
                .filter_map(|mut resource| {
                    resource.differences.retain(|d| {
                        unrevertable
                            .iter()
                            .any(|u| u.logical_id == resource.logical_id && u.path == d.path)
                    });
                    (!resource.differences.is_empty()).then_some(resource)
                })
                .collect();
            state.drifted.insert(location, left);
        }
        Ok(())
    }

    async fn discard_revert(&self, _at: &StackTarget, change_set: &str) {
        lock(&self.state).revert_change_sets.remove(change_set);
    }
}
