//! A simulated AWS on tokio's virtual clock: CloudFormation whose operations take realistic,
//! seeded-random times, the tenants table, the re-check queue into the completion consumer,
//! EventBridge carrying stack status changes, and the fixed-wait loop. Every call costs
//! virtual time as its AWS counterpart would; nothing here sleeps for real.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use controlplane::ports::{
    Recheck, RecheckError, Snapshot, StackError, StackRequest, StackTarget, Stacks, StatusSummary,
    StoreError, TenantStore, UpdateStarted,
};
use controlplane::reconcile::Reconciler;
use controlplane::testing::{Behaviour, FakeStacks, InMemoryStore};
use controlplane::triggers::completion::{
    CLOUDFORMATION_SOURCE, STACK_STATUS_CHANGE, handle_rechecks,
};
use controlplane::triggers::stream::StreamSettings;
use controlplane::triggers::{Medium, reconcile_in, reconcile_now};
use model::audit::AuditEntry;
use model::spec::TenantKey;
use model::stack::{ObservedStack, StackPhase, StackStatus};
use model::status::{StackLocation, Status, TenantStatus};
use model::time::rfc3339;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, sleep_until};

pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// SplitMix64: small, fast, and the same numbers on every machine for a seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// An independent stream for (`key`, `n`): a stack's n-th operation takes the same time in
    /// every design, whatever order the stacks drew in.
    pub fn keyed(seed: u64, key: &str, n: u64) -> Self {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325; // FNV-1a
        for byte in key.bytes() {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        let mut rng = Self(seed ^ hash ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        rng.next_u64();
        rng
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn within(&mut self, span: Span) -> Duration {
        span.low + (span.high - span.low).mul_f64(self.unit())
    }

    pub fn chance(&mut self, probability: f64) -> bool {
        self.unit() < probability
    }
}

/// A uniform range of durations.
#[derive(Clone, Copy, Debug)]
pub struct Span {
    pub low: Duration,
    pub high: Duration,
}

pub const fn millis(low: u64, high: u64) -> Span {
    Span {
        low: Duration::from_millis(low),
        high: Duration::from_millis(high),
    }
}

pub const fn seconds(low: u64, high: u64) -> Span {
    Span {
        low: Duration::from_secs(low),
        high: Duration::from_secs(high),
    }
}

/// How long things take. Call latencies are what a Lambda function in the same region sees;
/// operation times are CloudFormation's for a small stack (an SSM parameter and an SQS queue
/// grow into these with real resources: VPCs, databases, clusters).
#[derive(Clone, Copy, Debug)]
pub struct Model {
    /// DynamoDB Query / PutItem.
    pub table_call: Span,
    /// DescribeStacks, DescribeStackEvents.
    pub describe_call: Span,
    /// CreateStack, UpdateStack, DeleteStack (with UpdateTerminationProtection).
    pub operation_call: Span,
    /// SQS SendMessage.
    pub queue_send: Span,
    /// A visible message reaching the completion function (Lambda's SQS poller, no batching
    /// window: template.yaml).
    pub queue_to_function: Span,
    /// CloudFormation's status change reaching the control plane's queue: the tenant account's
    /// default bus, its rule, the cross-account bus, its rule, SQS.
    pub eventbridge: Span,
    /// A SPEC write reaching the stream handler (DynamoDB Streams to Lambda).
    pub stream_to_function: Span,
    /// An invocation on a new function instance: Lambda's init, the SDK clients, the ExternalId
    /// key from SSM.
    pub cold_start: Span,
    pub cold_start_rate: f64,
    /// AssumeRole into the tenant's account, when the instance holds no credentials for it yet
    /// (they are cached per instance for about an hour).
    pub assume_role: Span,
    pub uncached_credentials_rate: f64,
    pub create: Span,
    pub update: Span,
    pub delete: Span,
    /// The rollback after a failed create or update.
    pub rollback: Span,
    pub create_failure_rate: f64,
    pub update_failure_rate: f64,
    pub delete_failure_rate: f64,
    /// The re-check queue's visibility timeout (template.yaml): when a failed message returns.
    pub visibility_timeout: Duration,
}

impl Model {
    pub const REALISTIC: Model = Model {
        table_call: millis(5, 15),
        describe_call: millis(100, 300),
        operation_call: millis(200, 500),
        queue_send: millis(10, 30),
        queue_to_function: millis(20, 200),
        eventbridge: millis(500, 2000),
        stream_to_function: millis(200, 1000),
        cold_start: millis(250, 800),
        cold_start_rate: 0.02,
        assume_role: millis(100, 300),
        uncached_credentials_rate: 0.25,
        create: seconds(60, 600),
        update: seconds(30, 300),
        delete: seconds(30, 240),
        rollback: seconds(30, 180),
        create_failure_rate: 0.05,
        update_failure_rate: 0.05,
        delete_failure_rate: 0.02,
        visibility_timeout: Duration::from_secs(360),
    };
}

impl Model {
    /// What an invocation costs before the reconcile's first call: sometimes a cold start,
    /// sometimes an AssumeRole.
    pub fn invocation_overhead(&self, rng: &mut Rng) -> Duration {
        let mut overhead = Duration::ZERO;
        if rng.chance(self.cold_start_rate) {
            overhead += rng.within(self.cold_start);
        }
        if rng.chance(self.uncached_credentials_rate) {
            overhead += rng.within(self.assume_role);
        }
        overhead
    }
}

/// Counts of what happened in one simulated world.
#[derive(Default, Debug)]
pub struct Counters {
    pub stack_operations: AtomicU64,
    pub failed_operations: AtomicU64,
    pub rechecks_sent: AtomicU64,
    pub events_delivered: AtomicU64,
    pub invocations: AtomicU64,
    pub redeliveries: AtomicU64,
    pub stream_retries: AtomicU64,
}

impl Counters {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A successful STATUS write, and the virtual instant it landed.
#[derive(Clone, Debug)]
pub struct StatusWrite {
    pub tenant: TenantKey,
    pub status: Status,
    pub retryable: bool,
    pub at: Instant,
}

impl StatusWrite {
    /// Whether the write ends the tenant's story until its SPEC changes.
    pub fn is_terminal(&self) -> bool {
        is_terminal(self.status, self.retryable)
    }
}

pub fn is_terminal(status: Status, retryable: bool) -> bool {
    match status {
        Status::Ready | Status::Deleted => true,
        Status::Failed => !retryable,
        Status::Creating | Status::Updating | Status::Deleting => false,
    }
}

/// The tenants table with DynamoDB's latency, noting when each STATUS write landed.
pub struct SimulatedTable {
    pub rows: InMemoryStore,
    latency: Mutex<Rng>,
    model: Model,
    writes: Mutex<Vec<StatusWrite>>,
}

impl SimulatedTable {
    pub fn new(model: Model, seed: u64) -> Self {
        Self {
            rows: InMemoryStore::default(),
            latency: Mutex::new(Rng::new(seed)),
            model,
            writes: Mutex::new(Vec::new()),
        }
    }

    async fn call(&self) {
        let latency = lock(&self.latency).within(self.model.table_call);
        sleep(latency).await;
    }

    pub fn writes_since(&self, from: usize) -> Vec<StatusWrite> {
        lock(&self.writes).get(from..).unwrap_or_default().to_vec()
    }

    pub fn write_count(&self) -> usize {
        lock(&self.writes).len()
    }
}

#[async_trait]
impl TenantStore for SimulatedTable {
    async fn load(&self, tenant: &TenantKey) -> Result<Snapshot, StoreError> {
        self.call().await;
        self.rows.load(tenant).await
    }

    async fn list_tenants(
        &self,
        page_token: Option<String>,
    ) -> Result<(Vec<TenantKey>, Option<String>), StoreError> {
        self.call().await;
        self.rows.list_tenants(page_token).await
    }

    async fn put_status(
        &self,
        tenant: &TenantKey,
        status: &TenantStatus,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        self.call().await;
        self.rows
            .put_status(tenant, status, expected_version)
            .await?;
        lock(&self.writes).push(StatusWrite {
            tenant: tenant.clone(),
            status: status.status,
            retryable: status.retryable,
            at: Instant::now(),
        });
        Ok(())
    }

    async fn list_in_status(
        &self,
        status: Status,
        page_token: Option<String>,
    ) -> Result<(Vec<StatusSummary>, Option<String>), StoreError> {
        self.call().await;
        self.rows.list_in_status(status, page_token).await
    }

    async fn append_audit(&self, tenant: &TenantKey, entry: &AuditEntry) -> Result<(), StoreError> {
        self.call().await;
        self.rows.append_audit(tenant, entry).await
    }

    async fn append_request(
        &self,
        tenant: &TenantKey,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        self.call().await;
        self.rows.append_request(tenant, entry).await
    }

    async fn audit_trail(
        &self,
        tenant: &TenantKey,
        page_token: Option<String>,
        limit: usize,
    ) -> Result<(Vec<AuditEntry>, Option<String>), StoreError> {
        self.call().await;
        self.rows.audit_trail(tenant, page_token, limit).await
    }

    async fn remove_spec_for_decommission(
        &self,
        tenant: &TenantKey,
        decommission_date: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        self.call().await;
        self.rows
            .remove_spec_for_decommission(tenant, decommission_date, audit)
            .await
    }
}

/// A stack operation's end, as CloudFormation recorded it.
#[derive(Clone, Debug)]
pub struct StackEnd {
    pub location: StackLocation,
    pub stack_id: String,
    pub status: StackStatus,
    pub at: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OperationKind {
    Create,
    Update,
    Delete,
    ContinueRollback,
}

struct CloudFormationState {
    stacks: FakeStacks,
    ends: Mutex<Vec<StackEnd>>,
    /// Accepted operations per stack name: the key of each operation's random draw.
    operations: Mutex<HashMap<String, u64>>,
    /// Where ends go as EventBridge events; none: CloudFormation's events reach no one.
    events: Option<mpsc::UnboundedSender<StackEnd>>,
    counters: Arc<Counters>,
}

/// CloudFormation with CloudFormation's rules (the fake's), whose calls take API latency and
/// whose operations run for a seeded-random time before ending (some in a rollback or failure).
pub struct SimulatedCloudFormation {
    state: Arc<CloudFormationState>,
    model: Model,
    seed: u64,
    latency: Mutex<Rng>,
}

impl SimulatedCloudFormation {
    pub fn new(
        model: Model,
        seed: u64,
        events: Option<mpsc::UnboundedSender<StackEnd>>,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            state: Arc::new(CloudFormationState {
                stacks: FakeStacks::default(),
                ends: Mutex::new(Vec::new()),
                operations: Mutex::new(HashMap::new()),
                events,
                counters,
            }),
            model,
            seed,
            latency: Mutex::new(Rng::new(seed ^ 0x5eed)),
        }
    }

    pub fn ends_since(&self, from: usize) -> Vec<StackEnd> {
        lock(&self.state.ends)
            .get(from..)
            .unwrap_or_default()
            .to_vec()
    }

    pub fn end_count(&self) -> usize {
        lock(&self.state.ends).len()
    }

    pub fn stack(&self, location: &StackLocation) -> Option<ObservedStack> {
        self.state.stacks.stack(location).map(|s| s.observed)
    }

    pub fn is_running(&self, location: &StackLocation) -> bool {
        self.stack(location)
            .is_some_and(|s| s.status.phase() == StackPhase::InProgress)
    }

    pub fn live_stacks(&self) -> Vec<StackLocation> {
        self.state.stacks.live_stacks()
    }

    /// Half a call's latency: the request reaches CloudFormation half-way through.
    fn half_call(&self, span: Span) -> Duration {
        lock(&self.latency).within(span) / 2
    }

    /// How the next operation on this stack ends and how long it runs.
    fn plan(&self, at: &StackTarget, kind: OperationKind) -> (Behaviour, Duration) {
        let name = &at.location.stack_name;
        let n = lock(&self.state.operations)
            .get(name)
            .copied()
            .unwrap_or_default();
        let mut rng = Rng::keyed(self.seed, name, n);
        let m = &self.model;
        let reason = || "Resource handler returned message: simulated failure".to_owned();
        match kind {
            OperationKind::Create if rng.chance(m.create_failure_rate) => (
                Behaviour::FailCreate {
                    resource_reason: reason(),
                },
                rng.within(m.create).mul_f64(rng.unit()) + rng.within(m.rollback),
            ),
            OperationKind::Create => (Behaviour::Succeed, rng.within(m.create)),
            OperationKind::Update if rng.chance(m.update_failure_rate) => (
                Behaviour::FailUpdate {
                    resource_reason: reason(),
                },
                rng.within(m.update).mul_f64(rng.unit()) + rng.within(m.rollback),
            ),
            OperationKind::Update => (Behaviour::Succeed, rng.within(m.update)),
            OperationKind::Delete if rng.chance(m.delete_failure_rate) => (
                Behaviour::FailDelete {
                    resource_reason: reason(),
                },
                rng.within(m.delete),
            ),
            OperationKind::Delete => (Behaviour::Succeed, rng.within(m.delete)),
            OperationKind::ContinueRollback => (Behaviour::Succeed, rng.within(m.rollback)),
        }
    }

    /// Before a mutating call: how it will end, set on the fake, which holds it in progress.
    fn prepare(&self, at: &StackTarget, kind: OperationKind) -> Duration {
        let (behaviour, duration) = self.plan(at, kind);
        let name = &at.location.stack_name;
        self.state.stacks.set_behaviour(name, behaviour);
        self.state.stacks.set_hanging(name, true);
        duration
    }

    /// After an accepted call: the operation runs for `duration`, then ends (and, with events,
    /// CloudFormation emits its status change).
    fn follow(&self, at: &StackTarget, duration: Duration) {
        let location = at.location.clone();
        if !self.is_running(&location) {
            return; // Nothing started (no changes, or no stack to delete).
        }
        *lock(&self.state.operations)
            .entry(location.stack_name.clone())
            .or_default() += 1;
        Counters::bump(&self.state.counters.stack_operations);
        let state = self.state.clone();
        tokio::spawn(async move {
            sleep(duration).await;
            let Some(status) = state.stacks.finish(&location) else {
                return;
            };
            if matches!(
                status.phase(),
                StackPhase::CreateFailed | StackPhase::UpdateRolledBack | StackPhase::DeleteFailed
            ) {
                Counters::bump(&state.counters.failed_operations);
            }
            let end = StackEnd {
                stack_id: state
                    .stacks
                    .stack(&location)
                    .map(|s| s.observed.stack_id)
                    .unwrap_or_default(),
                location,
                status,
                at: Instant::now(),
            };
            lock(&state.ends).push(end.clone());
            if let Some(events) = &state.events {
                let _ = events.send(end);
            }
        });
    }
}

#[async_trait]
impl Stacks for SimulatedCloudFormation {
    async fn describe(&self, at: &StackTarget) -> Result<Option<ObservedStack>, StackError> {
        let half = self.half_call(self.model.describe_call);
        sleep(half).await;
        let seen = self.state.stacks.describe(at).await;
        sleep(half).await;
        seen
    }

    async fn create(&self, at: &StackTarget, request: &StackRequest) -> Result<(), StackError> {
        let half = self.half_call(self.model.operation_call);
        sleep(half).await;
        let duration = self.prepare(at, OperationKind::Create);
        let result = self.state.stacks.create(at, request).await;
        if result.is_ok() {
            self.follow(at, duration);
        }
        sleep(half).await;
        result
    }

    async fn update(
        &self,
        at: &StackTarget,
        request: &StackRequest,
    ) -> Result<UpdateStarted, StackError> {
        let half = self.half_call(self.model.operation_call);
        sleep(half).await;
        let duration = self.prepare(at, OperationKind::Update);
        let result = self.state.stacks.update(at, request).await;
        if result.is_ok() {
            self.follow(at, duration);
        }
        sleep(half).await;
        result
    }

    async fn delete(&self, at: &StackTarget, client_request_token: &str) -> Result<(), StackError> {
        let half = self.half_call(self.model.operation_call);
        sleep(half).await;
        let duration = self.prepare(at, OperationKind::Delete);
        let result = self.state.stacks.delete(at, client_request_token).await;
        if result.is_ok() {
            self.follow(at, duration);
        }
        sleep(half).await;
        result
    }

    async fn continue_update_rollback(
        &self,
        at: &StackTarget,
        client_request_token: &str,
    ) -> Result<(), StackError> {
        let half = self.half_call(self.model.operation_call);
        sleep(half).await;
        let duration = self.prepare(at, OperationKind::ContinueRollback);
        let result = self
            .state
            .stacks
            .continue_update_rollback(at, client_request_token)
            .await;
        if result.is_ok() {
            self.follow(at, duration);
        }
        sleep(half).await;
        result
    }

    async fn failure_reason(&self, at: &StackTarget) -> Result<Option<String>, StackError> {
        let half = self.half_call(self.model.describe_call);
        sleep(half).await;
        let reason = self.state.stacks.failure_reason(at).await;
        sleep(half).await;
        reason
    }
}

/// Work for a world's function invocations.
pub enum Work {
    /// An SQS message on the re-check queue (a re-check or an EventBridge event), visible from
    /// `visible_at`: the completion function receives it.
    Message { body: String, visible_at: Instant },
    /// The fixed-wait loop: after its fixed wait, the same execution looks again.
    LookAgain { tenant: TenantKey, at: Instant },
}

/// The re-check queue as SQS delays messages: whole seconds (DelaySeconds), at most 15 minutes.
pub struct SimulatedRecheckQueue {
    work: mpsc::UnboundedSender<Work>,
    latency: Mutex<Rng>,
    model: Model,
    counters: Arc<Counters>,
}

impl SimulatedRecheckQueue {
    pub fn new(
        work: mpsc::UnboundedSender<Work>,
        model: Model,
        seed: u64,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            work,
            latency: Mutex::new(Rng::new(seed ^ 0x0005_9c0e)),
            model,
            counters,
        }
    }
}

#[async_trait]
impl Recheck for SimulatedRecheckQueue {
    async fn schedule(&self, tenant: &TenantKey, after: Duration) -> Result<(), RecheckError> {
        let latency = lock(&self.latency).within(self.model.queue_send);
        sleep(latency).await;
        let delay = Duration::from_secs(after.min(Duration::from_secs(900)).as_secs());
        let body = json!({ "tenant_id": tenant.as_str() }).to_string();
        Counters::bump(&self.counters.rechecks_sent);
        self.work
            .send(Work::Message {
                body,
                visible_at: Instant::now() + delay,
            })
            .map_err(|_| RecheckError("the simulated queue is gone".into()))
    }
}

/// The fixed-wait design: Trigger, then Wait (a fixed 120 s) and Check, looping within one
/// execution; no queue in between.
pub struct FixedWaitLoop {
    work: mpsc::UnboundedSender<Work>,
    wait: Duration,
}

impl FixedWaitLoop {
    pub fn new(work: mpsc::UnboundedSender<Work>, wait: Duration) -> Self {
        Self { work, wait }
    }
}

#[async_trait]
impl Recheck for FixedWaitLoop {
    async fn schedule(&self, tenant: &TenantKey, _after: Duration) -> Result<(), RecheckError> {
        self.work
            .send(Work::LookAgain {
                tenant: tenant.clone(),
                at: Instant::now() + self.wait,
            })
            .map_err(|_| RecheckError("the simulated loop is gone".into()))
    }
}

/// Lambda for the re-check queue (and the fixed-wait loop): each piece of work becomes an
/// invocation when due. A message the function reports failed comes back after the queue's
/// visibility timeout, as SQS would return it.
pub async fn run_functions(
    mut work: mpsc::UnboundedReceiver<Work>,
    sender: mpsc::UnboundedSender<Work>,
    reconciler: Arc<Reconciler>,
    model: Model,
    seed: u64,
    counters: Arc<Counters>,
) {
    let mut latency = Rng::new(seed ^ 0x1a3bda);
    let mut next_id: u64 = 0;
    while let Some(item) = work.recv().await {
        let reconciler = reconciler.clone();
        let counters = counters.clone();
        let sender = sender.clone();
        match item {
            Work::Message { body, visible_at } => {
                next_id += 1;
                let id = format!("m{next_id}");
                let pickup = latency.within(model.queue_to_function)
                    + model.invocation_overhead(&mut latency);
                tokio::spawn(async move {
                    sleep_until(visible_at + pickup).await;
                    Counters::bump(&counters.invocations);
                    let event = json!({"Records": [{
                        "messageId": id, "receiptHandle": "simulated", "body": body,
                        "eventSource": "aws:sqs", "awsRegion": "us-east-1"}]});
                    let response =
                        handle_rechecks(&reconciler, &StreamSettings::default(), &event).await;
                    if !response.batch_item_failures.is_empty() {
                        Counters::bump(&counters.redeliveries);
                        let _ = sender.send(Work::Message {
                            body,
                            visible_at: Instant::now() + model.visibility_timeout,
                        });
                    }
                });
            }
            Work::LookAgain { tenant, at } => {
                let overhead = model.invocation_overhead(&mut latency);
                tokio::spawn(async move {
                    sleep_until(at + overhead).await;
                    Counters::bump(&counters.invocations);
                    if reconcile_now(&reconciler, &tenant).await.is_err() {
                        // The execution's retry of the Check step.
                        let _ = sender.send(Work::LookAgain {
                            tenant,
                            at: Instant::now() + Duration::from_secs(1),
                        });
                    }
                });
            }
        }
    }
}

/// EventBridge: each stack end reaches the re-check queue as the event CloudFormation emits,
/// after the cross-account delivery time.
pub async fn run_eventbridge(
    mut ends: mpsc::UnboundedReceiver<StackEnd>,
    queue: mpsc::UnboundedSender<Work>,
    clock: controlplane::reconcile::Clock,
    model: Model,
    seed: u64,
    counters: Arc<Counters>,
) {
    let mut latency = Rng::new(seed ^ 0xeb);
    while let Some(end) = ends.recv().await {
        let delay = latency.within(model.eventbridge);
        let queue = queue.clone();
        let counters = counters.clone();
        let time = rfc3339(clock());
        tokio::spawn(async move {
            sleep(delay).await;
            let event = json!({
                "version": "0", "id": format!("sim-{}", end.stack_id),
                "detail-type": STACK_STATUS_CHANGE, "source": CLOUDFORMATION_SOURCE,
                "account": end.location.account_id, "time": time,
                "region": end.location.region, "resources": [end.stack_id],
                "detail": {"stack-id": end.stack_id,
                           "status-details": {"status": end.status.as_str(), "status-reason": ""}}
            });
            Counters::bump(&counters.events_delivered);
            let _ = queue.send(Work::Message {
                body: event.to_string(),
                visible_at: Instant::now(),
            });
        });
    }
}

/// The stream handler for one SPEC write: delivered after the stream's latency, retried by
/// Lambda while the reconcile asks for a quick retry or fails.
pub async fn stream_trigger(
    reconciler: Arc<Reconciler>,
    tenant: TenantKey,
    model: Model,
    mut rng: Rng,
    counters: Arc<Counters>,
) {
    sleep(rng.within(model.stream_to_function)).await;
    for _ in 0..10 {
        sleep(model.invocation_overhead(&mut rng)).await;
        Counters::bump(&counters.invocations);
        // Reported back to Lambda: a quick retry, or a failure that could not be recorded.
        if !reconcile_in(&reconciler, Medium::Stream, &tenant)
            .await
            .redeliver
        {
            return;
        }
        Counters::bump(&counters.stream_retries);
        sleep(Duration::from_secs(1)).await;
    }
}
