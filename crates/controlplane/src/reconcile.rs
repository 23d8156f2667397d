//! The one reconcile loop: observe (SPEC, STATUS, stack), decide (pure), act, record.
//!
//! Every trigger (stream record, completion re-check, reconciler, retry) only names a tenant and
//! calls [`Reconciler::reconcile`]; the truth is always re-read. Status writes are conditional on
//! the version read, so a decision made on stale data loses and is made again on fresh data.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use tracing::{debug, info, warn};

use crate::decide::{
    Decision, Desired, DesiredStack, Observation, REMOVED_FINGERPRINT, Terminal, decide,
    fingerprint,
};
use crate::ports::{
    Healing, Snapshot, StackError, StackRequest, StackTarget, Stacks, StoreError, TemplateSource,
    TenantStore, UpdateStarted,
};
use crate::spec::{TenantKey, TenantSpec, describe_errors};
use crate::stack::ObservedStack;
use crate::status::{Operation, StackLocation, Status, TenantStatus};
use crate::template::stack_parameters;

pub const MANAGED_BY: &str = "tenant-control-plane";

/// How the reconcile loop behaves; defaults suit production.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The region of a tenant whose SPEC names none.
    pub default_region: String,
    pub stack_name_prefix: String,
    /// Stack operations tried for one SPEC before it stays `failed`.
    pub max_attempts: u32,
    /// Observe-decide-act rounds in one reconcile (each act is followed by a fresh look).
    pub max_steps: u32,
    /// When an operation is in flight, look again after this long.
    pub requeue_after: Duration,
    /// Backoff for retryable failures recorded on STATUS: base * 2^(retries-1), capped.
    pub retry_backoff_base: Duration,
    pub retry_backoff_max: Duration,
}

impl Settings {
    pub fn new(default_region: impl Into<String>) -> Self {
        Self {
            default_region: default_region.into(),
            stack_name_prefix: "tenant-".into(),
            max_attempts: 5,
            max_steps: 6,
            requeue_after: Duration::from_secs(15),
            retry_backoff_base: Duration::from_secs(30),
            retry_backoff_max: Duration::from_secs(3600),
        }
    }

    pub fn stack_name(&self, tenant: &TenantKey) -> String {
        format!("{}{}", self.stack_name_prefix, tenant.as_str())
    }
}

/// Where a reconcile left the tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing left to do; the tenant is in this recorded state (`None`: no tenant at all).
    Converged(Option<Status>),
    /// A stack operation is running: reconcile again after `requeue_after`.
    InFlight { requeue_after: Duration },
    /// Recorded `failed` with this reason; waits for a new write (or a due retry).
    Failed { reason: String },
}

/// Only errors that may heal leave `reconcile`; everything else ends on STATUS as `failed`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TransientError(pub String);

impl From<StoreError> for TransientError {
    fn from(e: StoreError) -> Self {
        Self(e.to_string())
    }
}

pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

pub struct Reconciler {
    store: Arc<dyn TenantStore>,
    stacks: Arc<dyn Stacks>,
    templates: Arc<dyn TemplateSource>,
    settings: Settings,
    clock: Clock,
}

/// One look at a tenant.
struct View {
    key: TenantKey,
    snapshot: Snapshot,
    desired: Desired,
    template_body: Option<String>,
    stack: Option<ObservedStack>,
    location: Option<StackLocation>,
}

impl View {
    fn target(&self) -> Option<StackTarget> {
        self.location.clone().map(|location| StackTarget {
            tenant_id: self.key.as_str().to_owned(),
            location,
        })
    }

    fn fingerprint(&self) -> Option<&str> {
        match &self.desired {
            Desired::Present(d) => Some(&d.fingerprint),
            Desired::Absent => Some(REMOVED_FINGERPRINT),
            Desired::Invalid { .. } => None,
        }
    }
}

impl Reconciler {
    pub fn new(
        store: Arc<dyn TenantStore>,
        stacks: Arc<dyn Stacks>,
        templates: Arc<dyn TemplateSource>,
        settings: Settings,
    ) -> Self {
        Self {
            store,
            stacks,
            templates,
            settings,
            clock: Arc::new(Utc::now),
        }
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// Brings one tenant one step closer to its SPEC, as far as it can go without waiting.
    pub async fn reconcile(&self, key: &TenantKey) -> Result<Outcome, TransientError> {
        for _ in 0..self.settings.max_steps {
            let view = self.observe(key).await?;
            let now = self.now();
            let decision = decide(&Observation {
                desired: &view.desired,
                status: view.snapshot.status.as_ref(),
                stack: view.stack.as_ref(),
                stack_location: view.location.as_ref(),
                now,
                max_attempts: self.settings.max_attempts,
            });
            debug!(?decision, stack_status = ?view.stack.as_ref().map(|s| s.status.as_str()), "decided");
            let recorded = match decision {
                Decision::Nothing => {
                    return Ok(Outcome::Converged(
                        view.snapshot.status.as_ref().map(|s| s.status),
                    ));
                }
                Decision::Wait => {
                    return Ok(Outcome::InFlight {
                        requeue_after: self.settings.requeue_after,
                    });
                }
                Decision::Fail { reason, retryable } => {
                    let status = self.failed(&view, reason.clone(), retryable, now);
                    self.record_read(&view, &status)
                        .await
                        .map(|()| Outcome::Failed { reason })
                }
                Decision::Finalize(terminal) => {
                    let status = self.finalized(&view, terminal, now).await;
                    let outcome = match status.status {
                        Status::Failed => Outcome::Failed {
                            reason: status.reason.clone().unwrap_or_default(),
                        },
                        other => Outcome::Converged(Some(other)),
                    };
                    self.record_read(&view, &status).await.map(|()| outcome)
                }
                // After an act, look again: it may be done already, or the next step due.
                operation => Err(self.start(&view, &operation, now).await),
            };
            match recorded {
                Ok(outcome) => {
                    info!(?outcome, "recorded");
                    return Ok(outcome);
                }
                Err(Step::Again) => continue,
                Err(Step::Transient(e)) => return Err(e),
                Err(Step::Rejected(outcome) | Step::Done(outcome)) => return Ok(outcome),
            }
        }
        Ok(Outcome::InFlight {
            requeue_after: self.settings.requeue_after,
        })
    }

    /// Records a failure that may heal as `failed`, retryable, with the next attempt's time
    /// (exponential backoff); after `max_attempts` such failures in a row it stays `failed`.
    /// Used once the trigger's own retries are spent; never overwrites newer state, nor a
    /// permanent failure (whose reason matters more than a passing error).
    pub async fn record_retryable_failure(
        &self,
        key: &TenantKey,
        error: &TransientError,
    ) -> Result<(), TransientError> {
        for _ in 0..self.settings.max_steps {
            let snapshot = self.store.load(key).await?;
            let now = self.now();
            let previous = snapshot.status.clone();
            if previous
                .as_ref()
                .is_some_and(|s| s.status == Status::Failed && !s.retryable)
            {
                info!(%error, "keeping the recorded permanent failure");
                return Ok(());
            }
            let retries = previous.as_ref().map_or(0, |s| s.retries).saturating_add(1);
            let mut status = self.carried(key, previous.as_ref(), now);
            status.status = Status::Failed;
            status.retries = retries;
            if retries > self.settings.max_attempts {
                status.retryable = false;
                status.reason = Some(format!(
                    "gave up after {retries} failures that should have healed: {error}; \
                     bump `retry` to try again"
                ));
            } else {
                let next =
                    now + chrono::Duration::from_std(self.backoff(retries)).unwrap_or_default();
                status.retryable = true;
                status.next_attempt_at = Some(rfc3339(next));
                status.reason = Some(format!("{error}; will retry after {}", rfc3339(next)));
            }
            status.version = snapshot.status_version.unwrap_or(0) + 1;
            match self
                .store
                .put_status(key, &status, snapshot.status_version)
                .await
            {
                Ok(()) => return Ok(()),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(TransientError(
            "STATUS kept changing while recording a failure".into(),
        ))
    }

    fn backoff(&self, retries: u32) -> Duration {
        let factor = 2u32.saturating_pow(retries.saturating_sub(1).min(16));
        self.settings
            .retry_backoff_base
            .saturating_mul(factor)
            .min(self.settings.retry_backoff_max)
    }

    async fn observe(&self, key: &TenantKey) -> Result<View, TransientError> {
        let snapshot = self.store.load(key).await?;
        let (desired, template_body) = match &snapshot.spec {
            None => (Desired::Absent, None),
            Some(item) => match TenantSpec::parse(key, item) {
                Err(errors) => (
                    Desired::Invalid {
                        reason: describe_errors(&errors),
                    },
                    None,
                ),
                Ok(spec) => self.desired_stack(key, &spec).await?,
            },
        };
        let recorded = snapshot.status.as_ref().and_then(|s| s.location.clone());
        let wanted = match &desired {
            Desired::Present(d) => Some(d.location.clone()),
            _ => None,
        };
        let mut view = View {
            key: key.clone(),
            snapshot,
            desired,
            template_body,
            stack: None,
            location: recorded.clone().or_else(|| wanted.clone()),
        };
        if matches!(view.desired, Desired::Invalid { .. }) {
            // Nothing will be done to the stack: no need to reach the tenant's account.
            return Ok(view);
        }
        if let Some(target) = view.target() {
            view.stack = self.describe(&target).await?;
        }
        // The recorded stack is gone and the SPEC wants one elsewhere: look there instead.
        if view.stack.is_none()
            && let Some(wanted) = wanted
            && Some(&wanted) != recorded.as_ref()
        {
            view.location = Some(wanted);
            if let Some(target) = view.target() {
                view.stack = self.describe(&target).await?;
            }
        }
        Ok(view)
    }

    async fn describe(
        &self,
        target: &StackTarget,
    ) -> Result<Option<ObservedStack>, TransientError> {
        match self.stacks.describe(target).await {
            Ok(stack) => Ok(stack),
            Err(e) => Err(TransientError(format!(
                "cannot read stack {} in account {} region {}: {e}",
                target.location.stack_name, target.location.account_id, target.location.region
            ))),
        }
    }

    async fn desired_stack(
        &self,
        key: &TenantKey,
        spec: &TenantSpec,
    ) -> Result<(Desired, Option<String>), TransientError> {
        let version = match &spec.template_version {
            Some(pin) => pin.clone(),
            None => self
                .templates
                .current_version()
                .await
                .map_err(|e| TransientError(e.to_string()))?,
        };
        let template = match self.templates.get(&version).await {
            Ok(Some(template)) => template,
            Ok(None) => {
                return Ok((
                    Desired::Invalid {
                        reason: format!(
                            "invalid SPEC: template_version: no template version {version:?} exists"
                        ),
                    },
                    None,
                ));
            }
            Err(e) => return Err(TransientError(e.to_string())),
        };
        let parameters = match stack_parameters(spec, &template) {
            Ok(parameters) => parameters,
            Err(errors) => {
                return Ok((
                    Desired::Invalid {
                        reason: describe_errors(&errors),
                    },
                    None,
                ));
            }
        };
        let region = spec
            .region
            .clone()
            .unwrap_or_else(|| self.settings.default_region.clone());
        let desired = DesiredStack {
            fingerprint: fingerprint(spec, &region, &version),
            location: StackLocation {
                account_id: spec.account_id.clone(),
                region,
                stack_name: self.settings.stack_name(key),
            },
            template_version: version,
            parameters,
        };
        Ok((Desired::Present(desired), Some(template.body.clone())))
    }

    /// Writes the intent (so the stack can always be found again), then calls CloudFormation.
    async fn start(&self, view: &View, decision: &Decision, now: DateTime<Utc>) -> Step {
        let (Some(operation), Some(target)) = (decision.operation(), view.target()) else {
            return Step::Again;
        };
        let previous = view.snapshot.status.as_ref();
        let fingerprint = view.fingerprint().map(str::to_owned);
        let same = previous.and_then(|s| s.spec_fingerprint.as_deref()) == fingerprint.as_deref();
        let mut intent = self.carried(&view.key, previous, now);
        intent.status = match (&view.desired, operation) {
            // Deleting a failed create or a change-set stack is a step towards a new stack.
            (Desired::Present(_), Operation::Create | Operation::Delete) => Status::Creating,
            (Desired::Present(_), _) => Status::Updating,
            _ => Status::Deleting,
        };
        intent.operation = Some(operation);
        intent.attempts = if same {
            previous.map_or(0, |s| s.attempts) + 1
        } else {
            1
        };
        if !same {
            intent.retries = 0;
        }
        intent.spec_fingerprint = fingerprint.clone();
        intent.location = Some(target.location.clone());
        if let Desired::Present(d) = &view.desired {
            intent.template_version = Some(d.template_version.clone());
        }
        if let Some(stack) = &view.stack {
            intent.stack_id = Some(stack.stack_id.clone());
            intent.stack_status = Some(stack.status.as_str().to_owned());
        }
        intent.version = view.snapshot.status_version.unwrap_or(0) + 1;
        if let Err(step) = self
            .record(view, &intent, view.snapshot.status_version)
            .await
        {
            return step;
        }

        let token = client_request_token(
            operation,
            fingerprint.as_deref().unwrap_or("x"),
            intent.attempts,
        );
        info!(
            ?operation,
            stack = %target.location.stack_name,
            account = %target.location.account_id,
            region = %target.location.region,
            "starting stack operation"
        );
        let mut no_changes = false;
        let result = match (operation, &view.desired) {
            (Operation::Create | Operation::Update, Desired::Present(d)) => {
                let request = StackRequest {
                    template_body: view.template_body.clone().unwrap_or_default(),
                    parameters: d.parameters.clone(),
                    tags: vec![
                        ("tenant-id".into(), view.key.as_str().to_owned()),
                        ("managed-by".into(), MANAGED_BY.into()),
                        ("template-version".into(), d.template_version.clone()),
                    ],
                    client_request_token: token,
                };
                if operation == Operation::Create {
                    self.stacks.create(&target, &request).await
                } else {
                    self.stacks.update(&target, &request).await.map(|started| {
                        if started == UpdateStarted::NoChanges {
                            debug!("no updates are to be performed");
                            no_changes = true;
                        }
                    })
                }
            }
            (Operation::Delete, _) => self.stacks.delete(&target, &token).await,
            (Operation::ContinueUpdateRollback, _) => {
                self.stacks.continue_update_rollback(&target, &token).await
            }
            // Create and update are only decided for a present SPEC.
            _ => Ok(()),
        };
        match result {
            // The stack already runs this SPEC and its status will not move (it may still show
            // an earlier failed update's UPDATE_ROLLBACK_COMPLETE): ready now, or a look again
            // would take that old failure for this update's.
            Ok(()) if no_changes => {
                let mut ready = self.finalized(view, Terminal::Ready, now).await;
                ready.operation = intent.operation;
                ready.version = intent.version + 1;
                match self.record(view, &ready, Some(intent.version)).await {
                    Ok(()) => Step::Done(Outcome::Converged(Some(ready.status))),
                    Err(step) => step,
                }
            }
            Ok(()) | Err(StackError::AlreadyExists) => Step::Again,
            Err(e) if e.healing() == Healing::Transient => {
                Step::Transient(TransientError(format!(
                    "{} of stack {}: {e}",
                    operation_name(operation),
                    target.location.stack_name
                )))
            }
            Err(e) => {
                let reason = format!(
                    "CloudFormation rejected the {}: {e}",
                    operation_name(operation)
                );
                warn!(%reason, "stack operation rejected");
                let mut failed = intent.clone();
                failed.status = Status::Failed;
                failed.reason = Some(reason.clone());
                failed.version = intent.version + 1;
                match self.record(view, &failed, Some(intent.version)).await {
                    Ok(()) => Step::Rejected(Outcome::Failed { reason }),
                    Err(step) => step,
                }
            }
        }
    }

    /// The next STATUS, carrying over what stays true (location, stack, outputs, fingerprint).
    fn carried(
        &self,
        key: &TenantKey,
        previous: Option<&TenantStatus>,
        now: DateTime<Utc>,
    ) -> TenantStatus {
        TenantStatus {
            tenant_id: key.as_str().to_owned(),
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
            spec_fingerprint: previous.and_then(|s| s.spec_fingerprint.clone()),
            updated_at: rfc3339(now),
            version: 0,
        }
    }

    fn failed(
        &self,
        view: &View,
        reason: String,
        retryable: bool,
        now: DateTime<Utc>,
    ) -> TenantStatus {
        let mut status = self.carried(&view.key, view.snapshot.status.as_ref(), now);
        status.status = Status::Failed;
        status.reason = Some(reason);
        status.retryable = retryable;
        // A SPEC that failed validation reflects no stack shape: restoring the previous SPEC
        // must count as a change.
        status.spec_fingerprint = view.fingerprint().map(str::to_owned);
        if let Some(stack) = &view.stack {
            status.stack_status = Some(stack.status.as_str().to_owned());
        }
        status.version = view.snapshot.status_version.unwrap_or(0) + 1;
        status
    }

    async fn finalized(&self, view: &View, terminal: Terminal, now: DateTime<Utc>) -> TenantStatus {
        let mut status = self.carried(&view.key, view.snapshot.status.as_ref(), now);
        status.spec_fingerprint = view.fingerprint().map(str::to_owned);
        if let Some(location) = &view.location {
            status.location = Some(location.clone());
        }
        if let Desired::Present(d) = &view.desired {
            status.template_version = Some(d.template_version.clone());
        }
        match (&terminal, &view.stack) {
            (Terminal::Ready, Some(stack)) => {
                // Success ends the counting: a later drift repair starts afresh.
                status.attempts = 0;
                status.retries = 0;
                status.status = Status::Ready;
                status.outputs = stack.outputs.clone();
                status.stack_id = Some(stack.stack_id.clone());
                status.stack_status = Some(stack.status.as_str().to_owned());
            }
            (Terminal::Deleted, _) | (Terminal::Ready, None) => {
                status.attempts = 0;
                status.retries = 0;
                status.status = Status::Deleted;
                status.outputs.clear();
                status.stack_status = Some("DELETE_COMPLETE".into());
            }
            (Terminal::FailedFromStack { what }, stack) => {
                status.status = Status::Failed;
                let cause = match view.target() {
                    Some(target) => self.stacks.failure_reason(&target).await.ok().flatten(),
                    None => None,
                };
                let cause = cause
                    .or_else(|| stack.as_ref().and_then(|s| s.status_reason.clone()))
                    .unwrap_or_else(|| "CloudFormation gave no reason".into());
                status.reason = Some(format!("{what}: {cause}"));
                if let Some(stack) = stack {
                    status.stack_status = Some(stack.status.as_str().to_owned());
                    status.stack_id = Some(stack.stack_id.clone());
                }
            }
        }
        status.version = view.snapshot.status_version.unwrap_or(0) + 1;
        status
    }

    /// Writes STATUS over the version this view read.
    async fn record_read(&self, view: &View, status: &TenantStatus) -> Result<(), Step> {
        self.record(view, status, view.snapshot.status_version)
            .await
    }

    async fn record(
        &self,
        view: &View,
        status: &TenantStatus,
        expected_version: Option<u64>,
    ) -> Result<(), Step> {
        match self
            .store
            .put_status(&view.key, status, expected_version)
            .await
        {
            Ok(()) => {
                debug!(status = %status.status, version = status.version, "status written");
                Ok(())
            }
            Err(StoreError::Conflict) => {
                debug!("status changed concurrently; deciding again");
                Err(Step::Again)
            }
            Err(e) => Err(Step::Transient(e.into())),
        }
    }
}

/// How a step that did not finish the reconcile ends.
enum Step {
    /// Look again and decide anew (an act was made, or a write lost to a newer one).
    Again,
    Transient(TransientError),
    /// CloudFormation refused for good; already recorded as failed.
    Rejected(Outcome),
    /// Finished without waiting for the stack; already recorded.
    Done(Outcome),
}

fn operation_name(operation: Operation) -> &'static str {
    match operation {
        Operation::Create => "create",
        Operation::Update => "update",
        Operation::Delete => "delete",
        Operation::ContinueUpdateRollback => "continue-update-rollback",
    }
}

/// Same operation, same SPEC, same attempt: the same token, so a retried call is idempotent.
pub fn client_request_token(operation: Operation, fingerprint: &str, attempt: u32) -> String {
    format!("{}-{fingerprint}-{attempt}", operation_name(operation))
}

pub fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}
