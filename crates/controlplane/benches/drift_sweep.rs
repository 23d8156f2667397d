//! The drift job over a whole fleet on tokio's paused clock: the real `drift_sweep` (its
//! concurrency, its polling, its jittered backoff on throttles) and the real STATUS writes,
//! over the in-memory table and a simulated CloudFormation drift API with per-call latency,
//! detections that take time, and token-bucket throttling. Prints how long one pass takes, the
//! calls and throttles by API, the job's report, and what that means for the deployed schedule.
//! `-- --help` lists the knobs.
//!
//! # Drift sweep
//!
//! **What is measured:** one pass of the drift job (`DriftSettings::default()`: poll every 5 s,
//! 6 tries per throttled call with 1–60 s jittered exponential backoff, 300 s detection timeout;
//! `concurrency` from `--concurrency`; no deadline) over 10,000 ready tenants, 100 per account.
//! The fleet is provisioned first by the real `sweep` over the fakes (not measured). The tenants
//! of one account are consecutive in the table's listing (`t00000`–`t00099` in account 0, ...),
//! so the checks in flight at once mostly share one account: the worst case for a per-account
//! throttle.
//!
//! **The simulated drift API** (all uniform in the range, seeded; FakeStacks holds the truth):
//!
//! - latency: DetectStackDrift 150–400 ms, DescribeStackDriftDetectionStatus 100–300 ms,
//!   DescribeStackResourceDrifts 150–400 ms (a throttled call costs its latency too);
//! - a detection completes 5–60 s after it started (drawn per stack); until then the status
//!   call answers DETECTION_IN_PROGRESS;
//! - 3 % of the stacks drifted (drawn per tenant): 1–2 resources (the tenant template has two,
//!   JobsQueue and SettingsParameter), each with one property difference;
//! - throttling: a token bucket per (account, region) for DetectStackDrift (5 calls/s, burst 10;
//!   `--detect-rate`, `--detect-burst`) and one per account shared by both Describe* calls
//!   (20 calls/s, burst 20; `--describe-rate`); a call finding its bucket empty answers
//!   `Throttling: Rate exceeded` after its latency.
//!
//! **Assumptions, and which way they err:** AWS publishes no per-call rate for the drift APIs
//! (CloudFormation's quotas page gives none for DetectStackDrift or the Describe* calls; they
//! share the account's API request rate). The rates above are assumptions in the range of
//! CloudFormation's observed control-plane throttling; they err low (stricter than what accounts
//! usually see), and the account-consecutive listing errs towards contention. Detection times are
//! from small stacks (two resources: a few seconds to a minute); bigger stacks take longer, which
//! makes a pass proportionally longer. Not modelled: a limit on detections running at once per
//! account, STS AssumeRole per call (the adapters cache sessions), DynamoDB latency of the
//! job's own reads and writes (milliseconds, against tens of seconds per check).
//!
//! **Last run** (seed 42, dev profile; about 13 s of real time, 10 s of it provisioning):
//!
//! ```text
//! | C  | one pass (virtual) | Detect / Status / Resources calls | throttled      | checked / in_sync / drifted / not_checked |
//! | 5  | 71,198 s (19.78 h) | 10,000 / 77,497 / 319             | 0 / 0 / 0      | 10,000 / 9,681 / 319 / 0                  |
//! | 20 | 17,837 s (4.95 h)  | 10,009 / 77,522 / 319             | 9 / 0 / 0      | 10,000 / 9,681 / 319 / 0                  |
//! | 30 | 11,904 s (3.31 h)  | 10,028 / 77,513 / 319             | 28 / 0 / 0     | 10,000 / 9,681 / 319 / 0                  |
//! | 40 | 8,932 s (2.48 h)   | 10,047 / 77,482 / 319             | 47 / 0 / 0     | 10,000 / 9,681 / 319 / 0                  |
//! | 200| 1,846 s (0.51 h)   | 12,173 / 77,510 / 319             | 2,173 / 0 / 0  | 10,000 / 9,681 / 319 / 0                  |
//! ```
//!
//! **Reading it:** a check takes 37 s at the median (the detection, rounded up to the 5 s poll),
//! so a pass is about N/C × 36 s: throttling is not what bounds the job, the concurrency is. At
//! C = 5 one uninterrupted pass fits the 24 h interval (0.82×), but as deployed (hourly
//! invocations starting checks for 480 s: none in the last `CHECK_MARGIN`, 420 s) it checks
//! about 1,600 tenants a day: each tenant every 6 days. Hence the default C = 40: about 537
//! checks per run, 12,900 a day, the fleet in 0.8 days. At C = 200 18 % of DetectStackDrift calls are throttled and all of them succeed after
//! backing off.
//!
//! **Re-run:** `cargo bench -p controlplane --bench drift_sweep --profile dev` (append
//! `-- --concurrency 20`, `--tenants N`, `--tenants-per-account N`, `--detect-rate R`,
//! `--detect-burst B`, `--describe-rate R`, `--seed S`). Virtual time: the same figures on any
//! machine for the same options while nothing is throttled; backon's jitter is not seeded, so a
//! run with throttles varies by a few seconds and calls.

#[path = "support/virtual_time.rs"]
mod virtual_time;
use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use clap::Parser;
use serde_dynamo::Item;
use tokio::time::Instant;

use controlplane::ports::{
    DetectionProgress, RevertPlan, StackDrift, StackError, StackRequest, StackTarget,
};
use controlplane::reconcile::{Clock, Reconciler, Settings};
use controlplane::template_source::BundledTemplates;
use controlplane::testing::{FakeStacks, InMemoryStore};
use controlplane::triggers::drift::{DriftReport, DriftSettings, drift_sweep};
use controlplane::triggers::sweep::sweep;
use model::drift::{DriftStatus, PropertyDifference, ResourceDrift};
use model::spec::TenantKey;
use model::status::{StackLocation, Status};

const REGION: &str = "us-east-1";
/// The deployed drift job (template.yaml, the `sweep` handler): an invocation every hour, of at most
/// 900 s, starting no check in its last `CHECK_MARGIN`.
const INVOCATIONS_PER_DAY: f64 = 24.0;
const STARTING_CHECKS_FOR: f64 =
    (900 - controlplane::triggers::drift::CHECK_MARGIN.as_secs()) as f64;

#[derive(Parser, Debug)]
#[command(about = "The drift job over a fleet on a virtual clock, under throttling")]
struct Options {
    /// Tenants in the fleet.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    tenants: u64,
    /// Tenants per account (consecutive in the listing).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    tenants_per_account: u64,
    /// Detections in flight at once (DRIFT_CONCURRENCY; the default is DriftSettings').
    #[arg(long, default_value_t = DriftSettings::default().concurrency)]
    concurrency: usize,
    /// DetectStackDrift calls per second per account and region (the token bucket's rate).
    #[arg(long, default_value_t = 5.0)]
    detect_rate: f64,
    /// DetectStackDrift's bucket size.
    #[arg(long, default_value_t = 10.0)]
    detect_burst: f64,
    /// Describe* calls per second per account (one bucket, burst of one second's worth).
    #[arg(long, default_value_t = 20.0)]
    describe_rate: f64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    // `cargo bench` passes --bench.
    #[arg(long, hide = true)]
    bench: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// SplitMix64: small, fast, and the same numbers on every machine for a seed.
struct Rng(u64);

impl Rng {
    /// An independent stream for `key`: a stack's draws do not depend on the order of calls.
    fn keyed(seed: u64, key: &str, n: u64) -> Self {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325; // FNV-1a
        for byte in key.bytes() {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        let mut rng = Self(seed ^ hash ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        rng.next_u64();
        rng
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn millis(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(low) + Duration::from_millis(high - low).mul_f64(self.unit())
    }
}

/// The three drift-detection calls.
#[derive(Clone, Copy)]
enum Call {
    Detect,
    Status,
    Resources,
}

impl Call {
    const ALL: [Call; 3] = [Call::Detect, Call::Status, Call::Resources];

    fn name(self) -> &'static str {
        match self {
            Self::Detect => "DetectStackDrift",
            Self::Status => "DescribeStackDriftDetectionStatus",
            Self::Resources => "DescribeStackResourceDrifts",
        }
    }

    /// The latency range, in ms.
    fn latency(self) -> (u64, u64) {
        match self {
            Self::Detect | Self::Resources => (150, 400),
            Self::Status => (100, 300),
        }
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self, now: Instant, rate: f64, burst: f64) -> bool {
        self.tokens = (self.tokens + rate * (now - self.at).as_secs_f64()).min(burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Default)]
struct SimState {
    /// DetectStackDrift's buckets, per (account, region).
    detect_buckets: HashMap<(String, String), Bucket>,
    /// The Describe* calls' bucket, per account.
    describe_buckets: HashMap<String, Bucket>,
    /// When each running detection completes.
    completes_at: HashMap<String, Instant>,
    /// Per stack: the first DetectStackDrift call, and when its result was last read.
    checks: HashMap<String, (Instant, Option<Instant>)>,
    calls: [u64; 3],
    throttles: [u64; 3],
}

/// CloudFormation's drift-detection API in a simulated account: latency, detections that take
/// time, and throttling; FakeStacks says what is drifted.
struct SimulatedDriftApi {
    stacks: Arc<FakeStacks>,
    options: SimOptions,
    latencies: Mutex<Rng>,
    state: Mutex<SimState>,
}

#[derive(Clone, Copy)]
struct SimOptions {
    seed: u64,
    detect_rate: f64,
    detect_burst: f64,
    describe_rate: f64,
}

const THROTTLED: &str = "Throttling: Rate exceeded";

impl SimulatedDriftApi {
    /// The call's latency, then whether its bucket had a token (counted either way).
    async fn call(&self, call: Call, at: &StackLocation) -> Result<(), StackError> {
        let (low, high) = call.latency();
        let latency = lock(&self.latencies).millis(low, high);
        tokio::time::sleep(latency).await;
        let now = Instant::now();
        let o = self.options;
        let mut state = lock(&self.state);
        let admitted = match call {
            Call::Detect => state
                .detect_buckets
                .entry((at.account_id.clone(), at.region.clone()))
                .or_insert(Bucket {
                    tokens: o.detect_burst,
                    at: now,
                })
                .take(now, o.detect_rate, o.detect_burst),
            Call::Status | Call::Resources => state
                .describe_buckets
                .entry(at.account_id.clone())
                .or_insert(Bucket {
                    tokens: o.describe_rate,
                    at: now,
                })
                .take(now, o.describe_rate, o.describe_rate),
        };
        state.calls[call as usize] += 1;
        if admitted {
            Ok(())
        } else {
            state.throttles[call as usize] += 1;
            Err(StackError::Transient(THROTTLED.into()))
        }
    }

    fn read(&self, at: &StackLocation) {
        if let Some(check) = lock(&self.state).checks.get_mut(&at.stack_name) {
            check.1 = Some(Instant::now());
        }
    }
}

#[async_trait]
impl StackDrift for SimulatedDriftApi {
    async fn detect(&self, at: &StackTarget) -> Result<String, StackError> {
        lock(&self.state)
            .checks
            .entry(at.location.stack_name.clone())
            .or_insert((Instant::now(), None));
        self.call(Call::Detect, &at.location).await?;
        let id = self.stacks.detect(at).await?;
        let mut takes = Rng::keyed(self.options.seed, &at.location.stack_name, 1);
        let takes = Duration::from_secs(5) + Duration::from_secs(55).mul_f64(takes.unit());
        lock(&self.state)
            .completes_at
            .insert(id.clone(), Instant::now() + takes);
        Ok(id)
    }

    async fn progress(
        &self,
        at: &StackTarget,
        detection_id: &str,
    ) -> Result<DetectionProgress, StackError> {
        self.call(Call::Status, &at.location).await?;
        let done = lock(&self.state)
            .completes_at
            .get(detection_id)
            .is_none_or(|at| Instant::now() >= *at);
        if !done {
            return Ok(DetectionProgress::InProgress);
        }
        let progress = self.stacks.progress(at, detection_id).await?;
        if matches!(progress, DetectionProgress::Complete { .. }) {
            self.read(&at.location);
        }
        Ok(progress)
    }

    async fn drifted_resources(&self, at: &StackTarget) -> Result<Vec<ResourceDrift>, StackError> {
        self.call(Call::Resources, &at.location).await?;
        let resources = self.stacks.drifted_resources(at).await?;
        self.read(&at.location);
        Ok(resources)
    }

    async fn prepare_revert(
        &self,
        at: &StackTarget,
        request: &StackRequest,
    ) -> Result<RevertPlan, StackError> {
        self.stacks.prepare_revert(at, request).await
    }

    async fn execute_revert(
        &self,
        at: &StackTarget,
        change_set: &str,
        client_request_token: &str,
    ) -> Result<(), StackError> {
        self.stacks
            .execute_revert(at, change_set, client_request_token)
            .await
    }

    async fn discard_revert(&self, at: &StackTarget, change_set: &str) {
        self.stacks.discard_revert(at, change_set).await
    }
}

fn spec(tenant: &str, account: &str) -> Item {
    let json = serde_json::json!({
        "pk": format!("TENANT#{tenant}"), "sk": "SPEC", "tenant_id": tenant,
        "account_id": account, "config": {"player_count": 4}, "updated_by": "bench"
    });
    model::item_json::item_of_json(&json)
}

/// What someone changed by hand on a drifted stack: 1–2 of the template's resources.
fn hand_changes(rng: &mut Rng, account: &str) -> Vec<ResourceDrift> {
    let queue = ResourceDrift {
        logical_id: "JobsQueue".into(),
        resource_type: "AWS::SQS::Queue".into(),
        physical_id: Some(format!("https://sqs.{REGION}.amazonaws.com/{account}/jobs")),
        status: "MODIFIED".into(),
        differences: vec![PropertyDifference {
            path: "/VisibilityTimeout".into(),
            kind: "NOT_EQUAL".into(),
            expected: "30".into(),
            actual: "600".into(),
        }],
    };
    let parameter = ResourceDrift {
        logical_id: "SettingsParameter".into(),
        resource_type: "AWS::SSM::Parameter".into(),
        physical_id: Some("/tenant/settings".into()),
        status: "MODIFIED".into(),
        differences: vec![PropertyDifference {
            path: "/Value".into(),
            kind: "NOT_EQUAL".into(),
            expected: "{\"player_count\":4}".into(),
            actual: "{\"player_count\":64}".into(),
        }],
    };
    match rng.next_u64() % 3 {
        0 => vec![queue],
        1 => vec![parameter],
        _ => vec![queue, parameter],
    }
}

fn hours(d: Duration) -> String {
    format!(
        "{:.0} s ({:.2} h)",
        d.as_secs_f64(),
        d.as_secs_f64() / 3600.0
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn run(options: Options, wall: std::time::Instant) -> Result<(), String> {
    let store = Arc::new(InMemoryStore::default());
    let stacks = Arc::new(FakeStacks::default());
    let start = Instant::now();
    let epoch = DateTime::parse_from_rfc3339("2026-11-23T00:00:00Z")
        .map_err(|e| e.to_string())?
        .with_timezone(&Utc);
    let clock: Clock = Arc::new(move || {
        epoch + chrono::TimeDelta::from_std(Instant::now() - start).unwrap_or_default()
    });
    let settings = Settings::new(REGION);
    let reconciler = Reconciler::new(
        store.clone(),
        stacks.clone(),
        Arc::new(BundledTemplates::sample().map_err(|e| e.to_string())?),
        settings.clone(),
    )
    .with_clock(clock.clone());

    // The fleet, provisioned by the real sweep; 3 % of the stacks then changed by hand.
    let setup = std::time::Instant::now();
    let tenants: Vec<(TenantKey, String)> = (0..options.tenants)
        .map(|i| {
            let account = format!(
                "{:012}",
                100_000_000_000u64 + i / options.tenants_per_account
            );
            (TenantKey::new(format!("t{i:05}")), account)
        })
        .collect();
    for (key, account) in &tenants {
        store.put_spec(key, spec(key.as_str(), account));
    }
    let provisioned = sweep(store.as_ref(), &reconciler, 64)
        .await
        .map_err(|e| e.to_string())?;
    let mut drifted_seeded = 0usize;
    for (key, account) in &tenants {
        let status = store
            .status(key)
            .filter(|s| s.status == Status::Ready)
            .ok_or_else(|| format!("{key} not ready after the sweep: {provisioned:?}"))?;
        let location = status
            .location
            .ok_or_else(|| format!("{key} has no location"))?;
        let mut rng = Rng::keyed(options.seed, key.as_str(), 2);
        if rng.unit() < 0.03 {
            drifted_seeded += 1;
            for resource in hand_changes(&mut rng, account) {
                stacks.drift(&location, resource);
            }
        }
    }
    let setup = setup.elapsed();

    let api = Arc::new(SimulatedDriftApi {
        stacks: stacks.clone(),
        options: SimOptions {
            seed: options.seed,
            detect_rate: options.detect_rate,
            detect_burst: options.detect_burst,
            describe_rate: options.describe_rate,
        },
        latencies: Mutex::new(Rng::keyed(options.seed, "latency", 0)),
        state: Mutex::new(SimState::default()),
    });
    let drift_settings = DriftSettings {
        concurrency: options.concurrency,
        stop_at: None,
        ..DriftSettings::default()
    };
    let job = std::time::Instant::now();
    let started = Instant::now();
    let report: DriftReport =
        drift_sweep(store.as_ref(), api.clone(), &reconciler, &drift_settings)
            .await
            .map_err(|e| e.to_string())?;
    let took = Instant::now() - started;
    let job = job.elapsed();

    // What the records say.
    let mut not_checked_throttled = 0usize;
    let mut checked_at: Vec<String> = Vec::new();
    for (key, _) in &tenants {
        if let Some(drift) = store.status(key).and_then(|s| s.drift) {
            if drift.status == DriftStatus::NotChecked
                && drift
                    .reason
                    .as_deref()
                    .is_some_and(|r| r.contains("throttled"))
            {
                not_checked_throttled += 1;
            }
            checked_at.push(drift.checked_at);
        }
    }
    checked_at.sort();
    let (calls, throttles, mut per_check) = {
        let state = lock(&api.state);
        let per_check: Vec<Duration> = state
            .checks
            .values()
            .filter_map(|(from, to)| to.map(|to| to - *from))
            .collect();
        (state.calls, state.throttles, per_check)
    };
    per_check.sort();

    let n = options.tenants as usize;
    let accounts = n.div_ceil(options.tenants_per_account as usize);
    let c = drift_settings.concurrency.max(1);
    let per_second = report.checked as f64 / took.as_secs_f64().max(f64::EPSILON);
    let interval = drift_settings.interval;
    let fits_at = (c as f64 * took.as_secs_f64() / interval.as_secs_f64()).ceil() as usize;
    let per_invocation = per_second * STARTING_CHECKS_FOR;
    let fleet_days = n as f64 / (per_invocation * INVOCATIONS_PER_DAY).max(f64::EPSILON);
    let daily_at = (c as f64 * fleet_days).ceil() as usize;

    println!(
        "drift sweep of {n} tenants in {accounts} accounts ({} per account, consecutive), seed {}",
        options.tenants_per_account, options.seed
    );
    println!(
        "concurrency {c}, poll every {} s, {} tries per throttled call (backoff {}–{} s, jittered); \
         buckets: DetectStackDrift {}/s burst {} per account+region, Describe* {}/s per account",
        drift_settings.poll_every.as_secs(),
        drift_settings.throttle_tries,
        drift_settings.backoff_min.as_secs(),
        drift_settings.backoff_max.as_secs(),
        options.detect_rate,
        options.detect_burst,
        options.describe_rate
    );
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!("| sweep duration (virtual) | **{}** |", hours(took));
    println!(
        "| throughput | {:.0} checks/h ({:.3}/s) |",
        per_second * 3600.0,
        per_second
    );
    println!(
        "| one check (first DetectStackDrift → result read), p50 / p90 / max | {:.1} s / {:.1} s / {:.1} s |",
        percentile(&per_check, 50.0).as_secs_f64(),
        percentile(&per_check, 90.0).as_secs_f64(),
        percentile(&per_check, 100.0).as_secs_f64()
    );
    for call in Call::ALL {
        let i = call as usize;
        println!(
            "| {} calls / throttled | {} / {} ({:.2} %) |",
            call.name(),
            calls[i],
            throttles[i],
            100.0 * throttles[i] as f64 / calls[i].max(1) as f64
        );
    }
    println!(
        "| report: checked / in_sync / drifted / not_checked | {} / {} / {} / {} (of {} tenants) |",
        report.checked, report.in_sync, report.drifted, report.not_checked, report.tenants
    );
    println!(
        "| drifted found / seeded; newly drifted; not_checked for throttling | {} / {drifted_seeded}; {}; {not_checked_throttled} |",
        report.drifted, report.newly_drifted
    );
    println!(
        "| not due / deferred / errors | {} / {} / {} |",
        report.not_due, report.deferred, report.errors
    );
    println!(
        "| checked_at first / last | {} / {} |",
        checked_at.first().map_or("-", String::as_str),
        checked_at.last().map_or("-", String::as_str)
    );
    println!(
        "| at C = {c}: one pass vs the {} h interval | {} ({:.2}× the interval; C ≥ {fits_at} to fit, if it scales linearly) |",
        interval.as_secs() / 3600,
        hours(took),
        took.as_secs_f64() / interval.as_secs_f64()
    );
    println!(
        "| at C = {c} as deployed (hourly, {STARTING_CHECKS_FOR:.0} s of starting checks each) | ≈ {per_invocation:.0} checks per invocation, {:.0} per day: the fleet in {fleet_days:.1} days (C ≥ {daily_at} for every tenant daily, if it scales linearly) |",
        per_invocation * INVOCATIONS_PER_DAY
    );
    println!(
        "| real wall time: setup (provisioning) / drift job / process | {:.1} s / {:.1} s / {:.1} s |",
        setup.as_secs_f64(),
        job.as_secs_f64(),
        wall.elapsed().as_secs_f64()
    );
    println!();
    println!(
        "BENCHMARKS.md: | drift job, one pass over {n} tenants ({} per account), C = {c}, simulated throttling ({}/s detect, {}/s describe) | {:.2} h; {} / {} / {} calls throttled | {} h: the check interval | {:.2} | ≤ 1× the interval: {} | `cargo bench -p controlplane --bench drift_sweep --profile dev{}` |",
        options.tenants_per_account,
        options.detect_rate,
        options.describe_rate,
        took.as_secs_f64() / 3600.0,
        throttles[0],
        throttles[1],
        throttles[2],
        interval.as_secs() / 3600,
        took.as_secs_f64() / interval.as_secs_f64(),
        if took <= interval {
            "**met**"
        } else {
            "missed"
        },
        if c == DriftSettings::default().concurrency {
            String::new()
        } else {
            format!(" -- --concurrency {c}")
        }
    );

    if report.checked != n {
        return Err(format!(
            "{} of {n} tenants checked ({report:?})",
            report.checked
        ));
    }
    Ok(())
}

fn main() -> ExitCode {
    let wall = std::time::Instant::now();
    let options = Options::parse();
    virtual_time::run_paused("drift_sweep", run(options, wall))
}
