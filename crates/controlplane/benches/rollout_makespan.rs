//! A fleet rollout to many simulated tenants on tokio's paused clock: the real rollout driver
//! and the real reconcile, over the in-memory table and a CloudFormation whose updates take a
//! fixed time L. Prints the makespan against the ideal for the same plan
//! (canary wave + bake + ⌈remaining / C⌉ · L), the driver's own CPU time and the process's peak
//! memory. `make bench` runs it; `--help` lists the knobs.
//!
//! The method and the last run's figures (BENCHMARKS.md keeps the summary table):
//!
//! # Rollout makespan
//!
//! **What is measured:** a whole-fleet rollout of template `v2` to 10,000 simulated tenants, each in
//! its own account, on tokio's paused clock: the real rollout driver (`RolloutDriver::tick`, stepping
//! every 5 s as the deployed function does) and the real reconcile, over the in-memory table and the
//! fake CloudFormation, whose every update takes exactly L = 120 s. The driver's re-check request
//! starts the reconcile (which starts the update); L later the stack settles and the reconcile
//! records it, as the completion loop would. 1 % of the tenants after the canary (103) fail their
//! update (injected, chosen by a hash of the seed and the tenant; a canary failure halts by design and
//! is covered by the tests) under a 2 % tolerance (200). The makespan runs from `start` to
//! `completed`; the ideal for the same plan is the canary wave (L) + the bake + ⌈remaining/C⌉·L.
//!
//! ```text
//! | measure | value |
//! |---|---|
//! | state | completed |
//! | tenants done / failed (injected) / other | 9897 / 103 (103) / 0 |
//! | tenants ready on v2 | 9897 |
//! | updated twice / never updated | 0 / 0 |
//! | makespan (virtual) | 6975 s (1.94 h) |
//! | ideal: L + bake + ⌈(N − canary)/C⌉·L | 6720 s = 120 + 600 + 50·120 |
//! | makespan / ideal | **1.038** (goal ≤ 1.05) |
//! | driver CPU time (all 1450 steps) | 12.29 s (8.47 ms per step) |
//! | peak memory of the process (table, stacks and driver) | 147 MiB |
//! ```
//!
//! **Reading it:**
//!
//! - The 3.8 % over the ideal is the driver's step interval: every update of a batch ends at the
//!   same instant (L is fixed), and the freed slots are refilled at the driver's next step, up to 5 s
//!   later: ⌈remaining/C⌉ + 2 steps ≈ 52 × 5 s = 260 s. With varied update times (real
//!   CloudFormation) slots free one by one and the wait averages half a step. A shorter step
//!   (`ROLLOUT_STEP_SECONDS`) trades table reads for makespan: `-- --step-seconds 2` gives
//!   1.015× for the same plan.
//! - Driver CPU is measured in the debug build (the dev profile, as for every row here), so it is an
//!   upper bound: 8.5 ms per step, most of it reading and counting all 10,000 member rows, which
//!   each step re-reads from the table (on DynamoDB: one paged Query of about 1 MB per step).
//! - Peak memory is the whole process: the in-memory table (10,000 SPEC, STATUS and member rows
//!   and their audit lines), the fake CloudFormation's 10,000 stacks and call log, and the driver.
//! - No tenant was updated twice or skipped (the run fails otherwise), and every tenant that did
//!   not fail ends `ready` on v2.
//!
//! **Re-run:** `make bench` (= `cargo bench -p controlplane --bench rollout_makespan --profile dev`;
//! `-- --help` lists `--tenants`, `--update-seconds`, `--concurrency`, `--canary`, `--bake-seconds`,
//! `--failure-percent`, `--tolerance-percent`, `--step-seconds`, `--seed`). Virtual time: the same
//! output on any machine for the same options; about 25 s of real time.

#[path = "support/virtual_time.rs"]
mod virtual_time;
use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use clap::Parser;
use serde_dynamo::Item;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use controlplane::ports::{AlarmError, Alarms, Breach, Recheck, RecheckError, RolloutStore};
use controlplane::reconcile::{Clock, Reconciler, Settings};
use controlplane::rollout::driver::{RolloutDriver, StartRollout};
use controlplane::template_source::{
    BundledTemplates, NewTemplate, SAMPLE_TEMPLATE, TableTemplates, publish,
};
use controlplane::testing::{
    Behaviour, FakeAlarms, FakeStacks, FakeTemplateValidator, InMemoryStore,
};
use model::rollout::{Amount, MemberState, RolloutOptions, RolloutState, Selection};
use model::spec::TenantKey;
use model::status::Status;

#[derive(Parser, Debug)]
#[command(about = "Rollout makespan on a virtual clock (BENCHMARKS.md)")]
struct Options {
    /// Tenants in the fleet.
    #[arg(long, default_value_t = 10_000)]
    tenants: usize,
    /// L: how long every CloudFormation update takes (seconds).
    #[arg(long, default_value_t = 120)]
    update_seconds: u64,
    /// C: tenants updated at once.
    #[arg(long, default_value_t = 200)]
    concurrency: u32,
    /// The canary wave.
    #[arg(long, default_value_t = 10)]
    canary: u32,
    /// The bake after the canary (seconds).
    #[arg(long, default_value_t = 600)]
    bake_seconds: u64,
    /// Tenants (after the canary) whose update fails, in percent.
    #[arg(long, default_value_t = 1.0)]
    failure_percent: f64,
    /// The failure tolerance, in percent of the rollout.
    #[arg(long, default_value_t = 2)]
    tolerance_percent: u8,
    /// How often the driver steps (the deployed function: every 5 s).
    #[arg(long, default_value_t = 5)]
    step_seconds: u64,
    #[arg(long, default_value = "42")]
    seed: String,
    /// Watch a CloudWatch alarm (DescribeAlarms answering in 40 ms) and put it in ALARM this
    /// many seconds after the start: measures the time from the breach to the halt, and to the
    /// last tenant moved back (the run must end rolled back).
    #[arg(long)]
    breach_at_seconds: Option<u64>,
    // `cargo bench` passes --bench.
    #[arg(long, hide = true)]
    bench: bool,
}

/// CloudWatch's DescribeAlarms, answering after `latency`.
struct SimulatedCloudWatch {
    alarms: Arc<FakeAlarms>,
    latency: Duration,
}

#[async_trait]
impl Alarms for SimulatedCloudWatch {
    async fn breached(&self, names: &[String]) -> Result<Option<Breach>, AlarmError> {
        tokio::time::sleep(self.latency).await;
        self.alarms.breached(names).await
    }
}

/// A CloudFormation update that takes L: the driver's re-check request starts the reconcile
/// (which starts the update), L later the stack settles and the reconcile records it.
struct SimulatedCompletionLoop {
    reconciler: Arc<Reconciler>,
    stacks: Arc<FakeStacks>,
    store: Arc<InMemoryStore>,
    update_time: Duration,
}

#[async_trait]
impl Recheck for SimulatedCompletionLoop {
    async fn schedule(&self, tenant: &TenantKey, _after: Duration) -> Result<(), RecheckError> {
        let reconciler = self.reconciler.clone();
        let stacks = self.stacks.clone();
        let store = self.store.clone();
        let update_time = self.update_time;
        let tenant = tenant.clone();
        tokio::spawn(async move {
            let _ = reconciler.reconcile(&tenant).await;
            tokio::time::sleep(update_time).await;
            if let Some(location) = store.status(&tenant).and_then(|s| s.location) {
                stacks.finish(&location);
            }
            let _ = reconciler.reconcile(&tenant).await;
        });
        Ok(())
    }
}

fn spec(tenant: &str, account: usize) -> Item {
    let json = serde_json::json!({
        "pk": format!("TENANT#{tenant}"), "sk": "SPEC", "tenant_id": tenant,
        "account_id": format!("{:012}", 100_000_000_000usize + account),
        "config": {"player_count": 4}, "updated_by": "bench"
    });
    model::item_json::item_of_json(&json)
}

fn failing(seed: &str, tenant: &str, percent: f64) -> bool {
    let digest = Sha256::digest(format!("{seed}/{tenant}"));
    let n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    (f64::from(n) / f64::from(u32::MAX)) * 100.0 < percent
}

/// The process's peak resident memory (VmHWM), in MiB.
fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

async fn run(options: Options) -> Result<(), String> {
    let store = Arc::new(InMemoryStore::default());
    let stacks = Arc::new(FakeStacks::default());
    let start = Instant::now();
    let epoch = DateTime::parse_from_rfc3339("2026-11-23T00:00:00Z")
        .map_err(|e| e.to_string())?
        .with_timezone(&Utc);
    let clock: Clock = Arc::new(move || {
        epoch + chrono::TimeDelta::from_std(Instant::now() - start).unwrap_or_default()
    });
    let templates = Arc::new(TableTemplates::new(
        store.clone(),
        Arc::new(controlplane::testing::FakeTemplateObjects::default()),
        BundledTemplates::sample().map_err(|e| e.to_string())?,
    ));
    let mut settings = Settings::new("us-east-1");
    // Failed updates are final here: the measured failures are the injected ones.
    settings.max_attempts = 1;
    let reconciler = Arc::new(
        Reconciler::new(store.clone(), stacks.clone(), templates.clone(), settings)
            .with_clock(clock.clone()),
    );

    // The fleet, provisioned on v1.
    let setup = std::time::Instant::now();
    let tenants: Vec<TenantKey> = (0..options.tenants)
        .map(|i| TenantKey::new(format!("t{i:05}")))
        .collect();
    for (i, key) in tenants.iter().enumerate() {
        store.put_spec(key, spec(key.as_str(), i));
        reconciler.reconcile(key).await.map_err(|e| e.to_string())?;
        stacks.set_hanging(&format!("tenant-{}", key.as_str()), true);
    }
    let v2 = SAMPLE_TEMPLATE.replace(
        "MessageRetentionPeriod: 345600",
        "MessageRetentionPeriod: 1209600",
    );
    publish(
        NewTemplate {
            version: "v2".into(),
            body: v2,
            description: None,
            published_by: "bench".into(),
            published_at: "2026-11-23T00:00:00.000Z".into(),
        },
        &templates,
        store.as_ref(),
        store.as_ref(),
        &FakeTemplateValidator::default(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let setup = setup.elapsed();

    let update_time = Duration::from_secs(options.update_seconds);
    let driver = RolloutDriver::new(
        store.clone(),
        store.clone(),
        store.clone(),
        templates.clone(),
    )
    .with_recheck(Arc::new(SimulatedCompletionLoop {
        reconciler: reconciler.clone(),
        stacks: stacks.clone(),
        store: store.clone(),
        update_time,
    }))
    .with_clock(clock.clone());
    let alarms = Arc::new(FakeAlarms::default());
    alarms.add(WATCHED_ALARM);
    let driver = match options.breach_at_seconds {
        // The deployment's alarm (ROLLOUT_ALARMS), watched by the rollout.
        Some(_) => driver.with_alarms(
            Arc::new(SimulatedCloudWatch {
                alarms: alarms.clone(),
                latency: Duration::from_millis(40),
            }),
            vec![WATCHED_ALARM.into()],
        ),
        None => driver,
    };
    let rollout_options = RolloutOptions {
        canary: Amount::Count(options.canary),
        bake_seconds: options.bake_seconds,
        growth: 2,
        wave_bake_seconds: 0,
        max_concurrency: Amount::Count(options.concurrency),
        failure_tolerance: Amount::Percent(options.tolerance_percent),
        auto_rollback: true,
        alarms: Vec::new(),
    };
    let started = Instant::now();
    let rollout = driver
        .start(StartRollout {
            target_version: "v2".into(),
            selection: Selection::default(),
            options: rollout_options.clone(),
            created_by: "bench".into(),
        })
        .await
        .map_err(|e| e.to_string())?;

    // The driver, stepping as the deployed function does; its CPU time is what its steps take
    // (the virtual clock never sleeps inside a step).
    let step = Duration::from_secs(options.step_seconds);
    let mut driver_cpu = Duration::ZERO;
    let mut steps = 0u64;
    let mut failures_injected = false;
    let mut failing_tenants = 0usize;
    let deadline = started + Duration::from_secs(30 * 86_400);
    // The alarm goes into ALARM on its own clock, between the driver's steps.
    let breach = Arc::new(std::sync::Mutex::new(None::<Instant>));
    if let Some(at) = options.breach_at_seconds {
        let (alarms, breach) = (alarms.clone(), breach.clone());
        tokio::spawn(async move {
            tokio::time::sleep_until(started + Duration::from_secs(at)).await;
            alarms.breach(WATCHED_ALARM, "Threshold Crossed: injected breach");
            *breach.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        });
    }
    let breached = || *breach.lock().unwrap_or_else(|p| p.into_inner());
    let mut halted_at = None;
    let mut moved_after_breach = 0usize;
    let last = loop {
        let cpu = std::time::Instant::now();
        let tick = driver.tick(&rollout.id).await.map_err(|e| e.to_string())?;
        driver_cpu += cpu.elapsed();
        steps += 1;
        if breached().is_some() {
            if halted_at.is_none() && tick.step == "halt" {
                halted_at = Some(Instant::now());
            }
            if halted_at.is_none() && tick.step == "move" {
                moved_after_breach += tick.moved;
            }
        }
        if !failures_injected && tick.rollout.state == RolloutState::Running {
            // Planned: 1 % of the tenants after the canary fail their update (a failure in
            // the canary halts by design, which the tests cover).
            let members = store
                .members(&rollout.id)
                .await
                .map_err(|e| e.to_string())?;
            for member in members.iter().skip(options.canary as usize) {
                if failing(&options.seed, &member.tenant_id, options.failure_percent) {
                    failing_tenants += 1;
                    stacks.set_behaviour(
                        &format!("tenant-{}", member.tenant_id),
                        Behaviour::FailUpdate {
                            resource_reason: "JobsQueue: injected failure".into(),
                        },
                    );
                }
            }
            failures_injected = true;
        }
        if tick.rollout.state.is_finished() || tick.rollout.state == RolloutState::Halted {
            break tick;
        }
        if Instant::now() > deadline {
            return Err("the rollout did not finish within 30 simulated days".into());
        }
        // A step that acted is followed at once by the next (as `drive` does).
        if tick.step == "wait" || tick.step == "idle" {
            tokio::time::sleep(step).await;
        }
    };
    let makespan = Instant::now() - started;

    let view = driver.view(&rollout.id).await.map_err(|e| e.to_string())?;
    let planned = view.rollout.planned as usize;
    let canary = (options.canary as usize).min(planned);
    let concurrency = options.concurrency.max(1) as usize;
    let batches = (planned - canary).div_ceil(concurrency) as u64;
    let canary_time = if canary > 0 {
        options.update_seconds
    } else {
        0
    };
    let ideal =
        Duration::from_secs(canary_time + options.bake_seconds + batches * options.update_seconds);
    let ratio = makespan.as_secs_f64() / ideal.as_secs_f64();

    // Every tenant updated exactly once, none skipped.
    let mut updates: HashMap<String, usize> = HashMap::new();
    for (operation, location) in stacks.calls() {
        if operation == "update" {
            *updates.entry(location.stack_name).or_default() += 1;
        }
    }
    let twice = updates.values().filter(|n| **n > 1).count();
    let never = tenants
        .iter()
        .filter(|t| !updates.contains_key(&format!("tenant-{}", t.as_str())))
        .count();
    let not_settled = view
        .members
        .iter()
        .filter(|m| !matches!(m.state, MemberState::Done | MemberState::Failed))
        .count();
    let ready_on_v2 = tenants
        .iter()
        .filter(|t| {
            store.status(t).is_some_and(|s| {
                s.status == Status::Ready && s.template_version.as_deref() == Some("v2")
            })
        })
        .count();

    println!(
        "rollout of {} tenants, seed {}",
        options.tenants, options.seed
    );
    println!(
        "plan: canary {canary}, bake {} s, concurrency C = {concurrency}, update time L = {} s, \
         failure tolerance {}% ({} tenants), driver step every {} s",
        options.bake_seconds,
        options.update_seconds,
        options.tolerance_percent,
        options.tenants * options.tolerance_percent as usize / 100,
        options.step_seconds
    );
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!("| state | {} |", last.rollout.state);
    println!(
        "| tenants done / failed (injected) / other | {} / {} ({failing_tenants}) / {not_settled} |",
        view.counts.done, view.counts.failed
    );
    println!("| tenants ready on v2 | {ready_on_v2} |");
    println!("| updated twice / never updated | {twice} / {never} |");
    println!(
        "| makespan (virtual) | {:.0} s ({:.2} h) |",
        makespan.as_secs_f64(),
        makespan.as_secs_f64() / 3600.0
    );
    if options.breach_at_seconds.is_none() {
        println!(
            "| ideal: L + bake + ⌈(N − canary)/C⌉·L | {} s = {} + {} + {batches}·{} |",
            ideal.as_secs(),
            canary_time,
            options.bake_seconds,
            options.update_seconds
        );
        println!("| makespan / ideal | **{ratio:.3}** (goal ≤ 1.05) |");
    }
    println!(
        "| driver CPU time (all {steps} steps) | {:.2} s ({:.2} ms per step) |",
        driver_cpu.as_secs_f64(),
        driver_cpu.as_secs_f64() * 1000.0 / steps as f64
    );
    println!(
        "| peak memory of the process (table, stacks and driver) | {} |",
        peak_memory_mib().map_or("unknown".into(), |m| format!("{m:.0} MiB"))
    );
    println!(
        "| setup (provisioning the fleet, real time) | {:.1} s |",
        setup.as_secs_f64()
    );

    if let (Some(breached), Some(at)) = (breached(), options.breach_at_seconds) {
        let to_halt = halted_at.map(|h| h - breached);
        let back = Instant::now() - breached;
        println!(
            "| alarm in ALARM at (virtual) | {at} s after the start (driver step {} s, DescribeAlarms 40 ms) |",
            options.step_seconds
        );
        println!(
            "| breach → halt (virtual) | **{}** |",
            to_halt.map_or("never".into(), |t| format!("{:.2} s", t.as_secs_f64()))
        );
        println!("| tenants moved between breach and halt | {moved_after_breach} |");
        println!(
            "| breach → every moved tenant back on v1 (virtual) | {:.0} s |",
            back.as_secs_f64()
        );
        let on_v1 = tenants
            .iter()
            .filter(|t| {
                store.status(t).is_some_and(|s| {
                    s.status == Status::Ready && s.template_version.as_deref() == Some("v1")
                })
            })
            .count();
        println!("| tenants ready on v1 after the rollback | {on_v1} |");
        if last.rollout.state != RolloutState::RolledBack || on_v1 != tenants.len() {
            return Err(format!(
                "the breached rollout ended {} with {on_v1} tenants on v1 ({:?})",
                last.rollout.state, last.rollout.reason
            ));
        }
        return match to_halt {
            Some(t) if t <= Duration::from_secs(options.step_seconds + 1) => Ok(()),
            _ => Err(format!("breach → halt {to_halt:?}, over one driver step")),
        };
    }
    if last.rollout.state != RolloutState::Completed {
        return Err(format!(
            "the rollout ended {} ({:?})",
            last.rollout.state, last.rollout.reason
        ));
    }
    if twice > 0 || never > 0 || not_settled > 0 {
        return Err(format!(
            "{twice} tenants updated twice, {never} never, {not_settled} not settled"
        ));
    }
    if ratio > 1.05 {
        return Err(format!(
            "makespan {ratio:.3}× the ideal, over the 1.05× goal"
        ));
    }
    Ok(())
}

/// The alarm a breach run watches.
const WATCHED_ALARM: &str = "tenant-fleet-errors";

fn main() -> ExitCode {
    let options = Options::parse();
    virtual_time::run_paused("rollout_makespan", run(options))
}
