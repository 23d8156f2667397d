//! Convergence under any interleaving: random SPEC writes, deletes and re-creates across
//! tenants, delivered by a simulated stream at least once (batched, duplicated, redelivered
//! late, with poison records), with faults injected everywhere (throttling, AccessDenied,
//! timeouts whose call went through, crashes between the CloudFormation call and the STATUS
//! write, busy and hanging stacks, failed creates and updates, a table that fails reads and
//! writes, a topic that refuses publishes).
//!
//! Checked after every step: never two live stacks for one tenant, every `failed` STATUS has a
//! reason, no STATUS version ever goes back. Checked once the faults stop and the reconciler
//! has run: every STATUS answers its tenant's last SPEC (none is left `pending`), and every
//! tenant matches that SPEC (ready with the SPEC's parameters; deleted with
//! no stack; failed with the reason for an invalid one or a blocked move), with the documented
//! remedy (a `retry` bump) for stack failures.
//!
//! `PROPTEST_CASES` raises the number of cases (`make soak`); each case prints nothing, the
//! totals are printed at the end with `--nocapture`.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_dynamo::Item;
use serde_json::{Value, json};

use controlplane::ports::{
    StackError, StackRequest, StackTarget, Stacks, StoreError, UpdateStarted,
};
use controlplane::reconcile::Settings;
use controlplane::template_source::BundledTemplates;
use controlplane::testing::{self, Behaviour, FakeStacks, InMemoryStore};
use controlplane::triggers::stream::{StreamSettings, handle_batch};
use controlplane::triggers::sweep::sweep;
use controlplane::validation::answering_fingerprint;
use model::spec::TenantKey;
use model::stack::ObservedStack;
use model::status::Status;

const TENANTS: [&str; 4] = ["alpha", "bravo", "charlie", "delta"];
const ACCOUNTS: [&str; 2] = ["111111111111", "222222222222"];

static CASES: AtomicU64 = AtomicU64::new(0);
static STEPS: AtomicU64 = AtomicU64::new(0);
static FAULTS: AtomicU64 = AtomicU64::new(0);
static RECORDS: AtomicU64 = AtomicU64::new(0);

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

/// A fault the next call of one kind meets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// Throttling before the call: nothing happened.
    Throttled,
    /// A role still propagating (or an STS hiccup): nothing happened.
    AccessDenied,
    /// The call went through but its answer was lost (a timeout).
    LostResponse,
    /// The call went through, then the process died: nothing more is recorded.
    CrashAfterCall,
}

#[derive(Clone, Debug)]
enum Op {
    /// A writer's put-item: `variant` picks the config (3 valid, 1 invalid), `account` the account.
    Write {
        tenant: usize,
        variant: u8,
        account: usize,
    },
    Delete {
        tenant: usize,
    },
    /// Lambda delivers the next `size` records (in order), optionally with a poison record.
    Deliver {
        size: usize,
        poison: bool,
    },
    /// A record delivered before comes again, late (a retry, a duplicate).
    Redeliver {
        index: usize,
    },
    StackFault {
        operation: usize,
        fault: Fault,
    },
    /// The next create or update of a tenant fails in CloudFormation and rolls back.
    StackFails {
        tenant: usize,
        update: bool,
    },
    /// A tenant's stack operations stay in progress until `Finish`.
    Hang {
        tenant: usize,
    },
    Finish,
    TableFails {
        reads: bool,
    },
    TopicDown(bool),
    /// The scheduled reconciler.
    Sweep,
    Advance {
        seconds: u16,
    },
}

const OPERATIONS: [&str; 4] = ["describe", "create", "update", "delete"];

fn op() -> impl Strategy<Value = Op> {
    let tenant = 0..TENANTS.len();
    prop_oneof![
        6 => (tenant.clone(), 0u8..4, 0..ACCOUNTS.len())
            .prop_map(|(tenant, variant, account)| Op::Write { tenant, variant, account }),
        2 => tenant.clone().prop_map(|tenant| Op::Delete { tenant }),
        6 => (1usize..4, prop::bool::weighted(0.15))
            .prop_map(|(size, poison)| Op::Deliver { size, poison }),
        2 => any::<usize>().prop_map(|index| Op::Redeliver { index }),
        3 => (0..OPERATIONS.len(), prop_oneof![
                Just(Fault::Throttled),
                Just(Fault::AccessDenied),
                Just(Fault::LostResponse),
                Just(Fault::CrashAfterCall),
            ])
            .prop_map(|(operation, fault)| Op::StackFault { operation, fault }),
        1 => (tenant.clone(), any::<bool>())
            .prop_map(|(tenant, update)| Op::StackFails { tenant, update }),
        1 => tenant.prop_map(|tenant| Op::Hang { tenant }),
        2 => Just(Op::Finish),
        1 => any::<bool>().prop_map(|reads| Op::TableFails { reads }),
        1 => any::<bool>().prop_map(Op::TopicDown),
        2 => Just(Op::Sweep),
        1 => (1u16..600).prop_map(|seconds| Op::Advance { seconds }),
    ]
}

/// FakeStacks behind a fault plan: faults before the call, lost answers and crashes after it.
struct FaultyStacks {
    inner: Arc<FakeStacks>,
    store: Arc<InMemoryStore>,
    plan: Mutex<HashMap<&'static str, Vec<Fault>>>,
}

impl FaultyStacks {
    fn next_fault(&self, operation: &'static str) -> Option<Fault> {
        let mut plan = self.plan.lock().unwrap();
        let faults = plan.get_mut(operation)?;
        if faults.is_empty() {
            None
        } else {
            Some(faults.remove(0))
        }
    }

    fn clear(&self) {
        self.plan.lock().unwrap().clear();
    }

    /// Applies `fault` around a call: before it, or after it went through.
    async fn around<T>(
        &self,
        operation: &'static str,
        call: impl std::future::Future<Output = Result<T, StackError>>,
    ) -> Result<T, StackError> {
        let fault = self.next_fault(operation);
        match fault {
            Some(Fault::Throttled) => {
                return Err(StackError::Transient("Throttling: Rate exceeded".into()));
            }
            Some(Fault::AccessDenied) => {
                return Err(StackError::Transient(
                    "AccessDenied: not authorized to perform sts:AssumeRole".into(),
                ));
            }
            _ => {}
        }
        let result = call.await;
        match fault {
            Some(Fault::LostResponse) if result.is_ok() => Err(StackError::Transient(
                "dispatch failure: operation timed out".into(),
            )),
            Some(Fault::CrashAfterCall) if result.is_ok() => {
                // The process dies: its next reads and writes never happen.
                let down = || StoreError::Unavailable("crashed".into());
                self.store.fail_next_loads([down(), down(), down()]);
                self.store.fail_next_writes([down(), down(), down()]);
                Err(StackError::Transient("crashed after the call".into()))
            }
            _ => result,
        }
    }
}

#[async_trait]
impl Stacks for FaultyStacks {
    async fn describe(&self, at: &StackTarget) -> Result<Option<ObservedStack>, StackError> {
        self.around("describe", self.inner.describe(at)).await
    }
    async fn create(&self, at: &StackTarget, request: &StackRequest) -> Result<(), StackError> {
        self.around("create", self.inner.create(at, request)).await
    }
    async fn update(
        &self,
        at: &StackTarget,
        request: &StackRequest,
    ) -> Result<UpdateStarted, StackError> {
        self.around("update", self.inner.update(at, request)).await
    }
    async fn delete(&self, at: &StackTarget, token: &str) -> Result<(), StackError> {
        self.around("delete", self.inner.delete(at, token)).await
    }
    async fn continue_update_rollback(
        &self,
        at: &StackTarget,
        token: &str,
    ) -> Result<(), StackError> {
        self.inner.continue_update_rollback(at, token).await
    }
    async fn failure_reason(&self, at: &StackTarget) -> Result<Option<String>, StackError> {
        self.inner.failure_reason(at).await
    }
}

fn spec_item(tenant: &str, variant: u8, account: usize, retry: u32) -> Item {
    let config = match variant {
        0 => json!({"player_count": 2}),
        1 => json!({"player_count": 7, "difficulty": "hard"}),
        2 => json!({"difficulty": "easy", "seed": "s"}),
        // Invalid: out of the template's range.
        _ => json!({"player_count": 500}),
    };
    let mut row = json!({
        "pk": format!("TENANT#{tenant}"), "sk": "SPEC", "tenant_id": tenant,
        "account_id": ACCOUNTS[account], "config": config, "updated_by": "writer"
    });
    if retry > 0 {
        row["retry"] = json!(retry);
    }
    model::item_json::item_of_json(&row)
}

/// What the table's stream carries for a write.
fn record(sequence: u64, tenant: &str, new: Option<&Item>, old: Option<&Item>) -> Value {
    let event_name = match (new, old) {
        (Some(_), None) => "INSERT",
        (Some(_), Some(_)) => "MODIFY",
        _ => "REMOVE",
    };
    let mut dynamodb = json!({
        "Keys": {"pk": {"S": format!("TENANT#{tenant}")}, "sk": {"S": "SPEC"}},
        "SequenceNumber": format!("{sequence:021}"),
        "ApproximateCreationDateTime": 1_763_900_000 + sequence,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    });
    if let Some(new) = new {
        dynamodb["NewImage"] = serde_json::to_value(new).unwrap_or_default();
    }
    if let Some(old) = old {
        dynamodb["OldImage"] = serde_json::to_value(old).unwrap_or_default();
    }
    json!({
        "eventID": format!("event-{sequence}"),
        "eventName": event_name,
        "eventSource": "aws:dynamodb",
        "dynamodb": dynamodb,
    })
}

/// The fakes, reached through the fault injector, and the model of what was written.
struct World {
    fakes: testing::World,
    faulty: Arc<FaultyStacks>,
    /// The stream: every record written, and how many were delivered.
    records: Vec<Value>,
    delivered: usize,
    /// The last SPEC written per tenant (None: deleted), and its account.
    specs: BTreeMap<String, Option<(u8, usize)>>,
    retries: BTreeMap<String, u32>,
    versions: BTreeMap<String, u64>,
    sequence: u64,
}

impl std::ops::Deref for World {
    type Target = testing::World;

    fn deref(&self) -> &testing::World {
        &self.fakes
    }
}

impl World {
    fn new() -> Self {
        let store = Arc::new(InMemoryStore::default());
        let stacks = Arc::new(FakeStacks::default());
        let faulty = Arc::new(FaultyStacks {
            inner: stacks.clone(),
            store: store.clone(),
            plan: Mutex::new(HashMap::new()),
        });
        let mut settings = Settings::new("us-east-1");
        // Enough attempts that the injected faults never exhaust them.
        settings.max_attempts = 40;
        let fakes = testing::World::builder()
            .settings(settings)
            .with_events()
            .starting_at(
                DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
                    .unwrap()
                    .with_timezone(&Utc),
            )
            .store(store)
            .stacks(stacks)
            .reached_through(faulty.clone())
            .build();
        Self {
            fakes,
            faulty,
            records: Vec::new(),
            delivered: 0,
            specs: BTreeMap::new(),
            retries: BTreeMap::new(),
            versions: BTreeMap::new(),
            sequence: 0,
        }
    }

    fn write(&mut self, tenant: &str, variant: u8, account: usize) {
        let key = TenantKey::new(tenant);
        let old = self.store.spec(&key);
        let retry = self.retries.get(tenant).copied().unwrap_or(0);
        let new = spec_item(tenant, variant, account, retry);
        self.store.put_spec(&key, new.clone());
        self.sequence += 1;
        self.records
            .push(record(self.sequence, tenant, Some(&new), old.as_ref()));
        self.specs
            .insert(tenant.to_owned(), Some((variant, account)));
    }

    fn delete(&mut self, tenant: &str) {
        let key = TenantKey::new(tenant);
        let Some(old) = self.store.spec(&key) else {
            return;
        };
        self.store.delete_spec(&key);
        self.sequence += 1;
        self.records
            .push(record(self.sequence, tenant, None, Some(&old)));
        self.specs.insert(tenant.to_owned(), None);
    }

    async fn deliver(&mut self, batch: Vec<Value>) {
        RECORDS.fetch_add(batch.len() as u64, Ordering::Relaxed);
        let report = handle_batch(
            &self.reconciler,
            &StreamSettings::default(),
            &json!({ "Records": batch }),
        )
        .await;
        // Lambda retries what was reported back (at least once), from the first failure on.
        if !report.response.batch_item_failures.is_empty() {
            let retried = handle_batch(
                &self.reconciler,
                &StreamSettings::default(),
                &json!({ "Records": batch }),
            )
            .await;
            let _ = retried;
        }
    }

    async fn step(&mut self, op: &Op) {
        match op {
            Op::Write {
                tenant,
                variant,
                account,
            } => self.write(TENANTS[*tenant], *variant, *account),
            Op::Delete { tenant } => self.delete(TENANTS[*tenant]),
            Op::Deliver { size, poison } => {
                let end = (self.delivered + size).min(self.records.len());
                let mut batch: Vec<Value> = self.records[self.delivered..end].to_vec();
                self.delivered = end;
                if *poison {
                    batch.insert(
                        0,
                        json!({"eventName": "MODIFY", "dynamodb": {"Keys": {"pk": {"N": "x"}}}}),
                    );
                }
                if !batch.is_empty() {
                    self.deliver(batch).await;
                }
            }
            Op::Redeliver { index } => {
                if self.delivered > 0 {
                    let record = self.records[index % self.delivered].clone();
                    self.deliver(vec![record]).await;
                }
            }
            Op::StackFault { operation, fault } => {
                FAULTS.fetch_add(1, Ordering::Relaxed);
                self.faulty
                    .plan
                    .lock()
                    .unwrap()
                    .entry(OPERATIONS[*operation])
                    .or_default()
                    .push(*fault);
            }
            Op::StackFails { tenant, update } => {
                FAULTS.fetch_add(1, Ordering::Relaxed);
                let reason = "Resource handler returned message: injected".to_owned();
                self.stacks.set_behaviour(
                    &format!("tenant-{}", TENANTS[*tenant]),
                    if *update {
                        Behaviour::FailUpdate {
                            resource_reason: reason,
                        }
                    } else {
                        Behaviour::FailCreate {
                            resource_reason: reason,
                        }
                    },
                );
            }
            Op::Hang { tenant } => {
                self.stacks
                    .set_hanging(&format!("tenant-{}", TENANTS[*tenant]), true);
            }
            Op::Finish => {
                for tenant in TENANTS {
                    self.stacks.set_hanging(&format!("tenant-{tenant}"), false);
                }
                self.stacks.finish_in_progress();
            }
            Op::TableFails { reads } => {
                FAULTS.fetch_add(1, Ordering::Relaxed);
                let throttled =
                    || StoreError::Unavailable("ProvisionedThroughputExceededException".into());
                if *reads {
                    self.store.fail_next_loads([throttled()]);
                } else {
                    self.store.fail_next_writes([throttled()]);
                }
            }
            Op::TopicDown(down) => {
                FAULTS.fetch_add(u64::from(*down), Ordering::Relaxed);
                self.events.set_failing(*down);
            }
            Op::Sweep => {
                let _ = sweep(self.store.as_ref(), &self.reconciler, 4).await;
            }
            Op::Advance { seconds } => {
                self.clock
                    .advance(chrono::Duration::seconds(i64::from(*seconds)));
            }
        }
    }

    /// The invariants that hold after every step.
    fn check_invariants(&mut self, step: usize) -> Result<(), TestCaseError> {
        let mut stacks_per_tenant: BTreeMap<String, usize> = BTreeMap::new();
        for location in self.stacks.live_stacks() {
            *stacks_per_tenant.entry(location.stack_name).or_default() += 1;
        }
        for (stack, count) in &stacks_per_tenant {
            prop_assert!(
                *count <= 1,
                "step {step}: {count} live stacks named {stack}"
            );
        }
        for tenant in TENANTS {
            let Some(status) = self.store.status(&TenantKey::new(tenant)) else {
                continue;
            };
            if status.status == Status::Failed {
                prop_assert!(
                    status.reason.as_deref().is_some_and(|r| !r.is_empty()),
                    "step {step}: {tenant} failed without a reason"
                );
            }
            let seen = self.versions.entry(tenant.to_owned()).or_insert(0);
            prop_assert!(
                status.version >= *seen,
                "step {step}: {tenant}'s STATUS went back from version {seen} to {}",
                status.version
            );
            *seen = status.version;
        }
        Ok(())
    }

    /// Faults stop; the stream drains; the reconciler runs until nothing changes.
    async fn settle(&mut self) {
        self.faulty.clear();
        self.store.clear_faults();
        self.events.set_failing(false);
        for tenant in TENANTS {
            let name = format!("tenant-{tenant}");
            self.stacks.set_behaviour(&name, Behaviour::Succeed);
            self.stacks.set_hanging(&name, false);
        }
        // Queued table faults are used up by calls that are allowed to fail.
        for _ in 0..4 {
            let _ = sweep(self.store.as_ref(), &self.reconciler, 4).await;
        }
        let rest: Vec<Value> = self.records[self.delivered..].to_vec();
        self.delivered = self.records.len();
        if !rest.is_empty() {
            self.deliver(rest).await;
        }
        for round in 0..12 {
            self.stacks.finish_in_progress();
            self.clock.advance(chrono::Duration::hours(2));
            let _ = sweep(self.store.as_ref(), &self.reconciler, 4).await;
            if round == 5 {
                // The documented remedy for a failure of CloudFormation's own: bump `retry`.
                for tenant in TENANTS {
                    let key = TenantKey::new(tenant);
                    let permanent = self
                        .store
                        .status(&key)
                        .is_some_and(|s| s.status == Status::Failed && !s.retryable);
                    if let (true, Some(Some((variant, account)))) =
                        (permanent, self.specs.get(tenant).cloned())
                        && variant < 3
                    {
                        *self.retries.entry(tenant.to_owned()).or_default() += 1;
                        self.write(tenant, variant, account);
                    }
                }
            }
        }
    }

    /// Every tenant as its last SPEC says.
    async fn check_converged(&self) -> Result<(), TestCaseError> {
        let live = self.stacks.live_stacks();
        let templates = BundledTemplates::sample().expect("the sample templates");
        for tenant in TENANTS {
            let key = TenantKey::new(tenant);
            let status = self.store.status(&key);
            // STATUS answers the last SPEC (a reader never sees it `pending`), whatever it says.
            if let Some(status) = &status {
                let answering = answering_fingerprint(
                    &key,
                    self.store.spec(&key).as_ref(),
                    status.fleet_version(),
                    "us-east-1",
                    &templates,
                )
                .await
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(
                    &status.spec_fingerprint,
                    &answering,
                    "{} left pending: {:?} {:?}",
                    tenant,
                    status.status,
                    status.reason
                );
            }
            let stack_name = format!("tenant-{tenant}");
            let stacks: Vec<_> = live.iter().filter(|l| l.stack_name == stack_name).collect();
            match self.specs.get(tenant).cloned().flatten() {
                None => {
                    prop_assert!(
                        stacks.is_empty(),
                        "{tenant}: SPEC gone but stack {stacks:?}"
                    );
                    if let Some(status) = status {
                        prop_assert_eq!(status.status, Status::Deleted, "{}", tenant);
                    }
                }
                Some((3, _)) => {
                    let status = status.expect("an invalid SPEC is recorded");
                    prop_assert_eq!(status.status, Status::Failed);
                    prop_assert!(
                        status
                            .reason
                            .as_deref()
                            .unwrap_or("")
                            .contains("player_count"),
                        "{tenant}: {:?}",
                        status.reason
                    );
                }
                Some((variant, account)) => {
                    let status = status.expect("a valid SPEC is recorded");
                    let elsewhere = stacks.iter().any(|l| l.account_id != ACCOUNTS[account]);
                    if elsewhere {
                        // A move needs a delete first: blocked, with the reason, stack untouched.
                        prop_assert_eq!(status.status, Status::Failed);
                        prop_assert!(
                            status
                                .reason
                                .as_deref()
                                .unwrap_or("")
                                .contains("cannot change while the tenant's stack exists"),
                            "{tenant}: {:?}",
                            status.reason
                        );
                        continue;
                    }
                    prop_assert_eq!(
                        status.status,
                        Status::Ready,
                        "{} ({:?}): {:?}",
                        tenant,
                        (variant, account),
                        status.reason
                    );
                    prop_assert_eq!(stacks.len(), 1, "{}", tenant);
                    let stack = self.stacks.stack(stacks[0]).expect("the stack");
                    // Variant 2 sets no player_count: the template's default applies.
                    let players = match variant {
                        0 => Some("2"),
                        1 => Some("7"),
                        _ => None,
                    };
                    prop_assert_eq!(
                        stack
                            .observed
                            .parameters
                            .get("PlayerCount")
                            .map(String::as_str),
                        players,
                        "{}",
                        tenant
                    );
                }
            }
            if let Some(status) = self.store.status(&key) {
                prop_assert!(
                    status.pending_events.is_empty(),
                    "{tenant}: events never published"
                );
            }
        }
        Ok(())
    }
}

/// One case: the steps, then the faults stop and everything settles.
fn run_case(ops: &[Op]) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    runtime.block_on(async {
        let mut world = World::new();
        for (step, op) in ops.iter().enumerate() {
            world.step(op).await;
            world.check_invariants(step)?;
        }
        world.settle().await;
        world.check_invariants(ops.len())?;
        world.check_converged().await
    })?;
    CASES.fetch_add(1, Ordering::Relaxed);
    STEPS.fetch_add(ops.len() as u64, Ordering::Relaxed);
    Ok(())
}

#[test]
fn every_tenant_converges_to_its_last_spec_under_any_interleaving_of_faults() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&prop::collection::vec(op(), 1..80), |ops| run_case(&ops));
    // The figures RELIABILITY.md quotes (shown with --nocapture).
    eprintln!(
        "convergence: {} cases passed, {} steps, {} faults injected, {} stream records delivered",
        CASES.load(Ordering::Relaxed),
        STEPS.load(Ordering::Relaxed),
        FAULTS.load(Ordering::Relaxed),
        RECORDS.load(Ordering::Relaxed)
    );
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
