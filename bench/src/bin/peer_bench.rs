//! The harness of the benchmarks against the Python peer and the emulator's limit
//! (BENCHMARKS.md). Every figure of a row comes from one run of one subcommand, both sides
//! timed by this same harness on the same metered emulator (`bench/moto_meter.py`):
//!
//! - `cold`: process start → first batch handled, ours (`cold-start`) vs the peer
//!   (`bench/peer/cold_start.py`), by hyperfine, the emulator reset before every run; then the
//!   peak memory of each handling a 1,000-record batch, by `/usr/bin/time -v`.
//! - `e2e`: N tenants written directly → all handled, ours and the peer behind the same stream
//!   poller, and N raw CreateStack calls as the floor, each on a fresh emulator; the emulator's
//!   calls counted by type and its busy time measured inside it.
//! - `size`: the arm64 Lambda artefacts beside the peer's.
//! - `report`: the table of every result file.
//!
//! `make bench-peer` runs them all (`make bench` too).
//!
//! The method and the last run's figures (BENCHMARKS.md keeps the summary table):
//!
//! # Against the Python peer and the emulator's limit
//!
//! **The peer** (`bench/peer/`, its README lists every completion and fix): a Python/boto3 stream handler
//! written the usual way (`bench/peer`), completed only as far as it needs to run against
//! the same emulator and template as ours: `TypeDeserializer`, one AssumeRole per account in a
//! batch, CreateStack with the row's config as parameters (UpdateStack on MODIFY, DeleteStack on
//! REMOVE). Its finish line is CreateStack returning (moto completes stacks synchronously); it
//! validates nothing and records nothing. Ours is the real control plane: per tenant it re-reads
//! SPEC and STATUS, validates the SPEC against the template, records its intent before the stack
//! call, records the result, keeps the audit timeline and publishes the lifecycle event.
//!
//! **One harness for both sides** (`bench/src/bin/peer_bench.rs`, crate `peer-bench`): the same
//! input (`peer-bench events`: INSERTs of SPEC rows shaped as the demo's sample row (`docs/table-contract.md`), every
//! tenant in its own account), the same **metered emulator** (`bench/moto_meter.py`: moto server
//! as `moto_server` runs it, with a WSGI middleware inside moto's process that records every
//! request's service, action, caller class and handling interval; the caller class comes from the
//! access key: the function under test, the stream poller, the harness, or unsigned), the same
//! clocks (hyperfine, `/usr/bin/time -v`, the harness's `Instant`), and every ratio from one run.
//!
//!
//! ## End to end on the local emulator
//!
//! **What:** 500 SPEC rows written directly (PutItem, one after the other, by the harness) → all
//! 500 tenants handled, on a fresh metered moto per run, after moto's warm-up:
//!
//! - **ours**: the stream handler (`handle_batch`, wired as `make up` wires it: STATUS, audit,
//!   lifecycle topic, re-check queue, JSON logs at `info` written to a sink) behind the local
//!   stream poller that `make up` uses (`crates/local`, the event source settings of
//!   `template.yaml`: FilterCriteria, BatchSize 100, ReportBatchItemFailures, ...), polling every
//!   200 ms once caught up; done when every tenant's reconcile ended `ready` (STATUS written);
//! - **the peer**: the same poller, the same events, handed to one warm `python3
//!   bench/peer/runner.py` process over a pipe (one JSON line per event); done when every record
//!   was in a batch the peer returned from;
//! - **the floor**: 500 CreateStack calls, one after the other, from the harness, each in its
//!   tenant's account with the same template and parameters (credentials obtained before the
//!   window).
//!
//! After each run, outside the window, every stack is checked (CREATE_COMPLETE, the row's
//! parameters) and for ours every STATUS row (`ready`). The emulator's busy time is the union of
//! its requests' handling intervals inside moto; "outside the emulator" is the rest of the window.
//!
//! ```text
//! | run | wall | emulator busy | outside the emulator | function CPU | function calls / tenant | event source calls | writes |
//! |---|---|---|---|---|---|---|---|
//! | ours | 73.59 s | 73.44 s | 0.3 % | 5.93 s | 13.00 | 63 | 24.04 s |
//! | peer | 22.66 s | 14.64 s | 35.5 % | 9.45 s | 2.00 | 18 | 4.33 s |
//! | floor | 9.81 s | 9.09 s | 7.4 % | 0.60 s | 1.00 | 0 | 0.00 s |
//!
//! wall ratios: ours / peer 3.248; ours / floor 7.499; peer / floor 2.309
//!
//! function calls per tenant, by type
//!
//! | call | ours | peer | floor |
//! |---|---|---|---|
//! | cloudformation:CreateStack | 1.00 | 1.00 | 1.00 |
//! | cloudformation:DescribeStacks | 2.00 | - | - |
//! | dynamodb:GetItem | 1.00 | - | - |
//! | dynamodb:PutItem | 6.00 | - | - |
//! | dynamodb:Query | 1.00 | - | - |
//! | sns:Publish | 1.00 | - | - |
//! | sts:AssumeRole | 1.00 | 1.00 | - |
//! ```
//!
//! **Reading it:** the goal "≤ 10 % of the wall time outside the emulator" is **met**: 0.3 %; ours
//! spends its time waiting for the emulator (the peer spends 35 % of its wall time in Python, and
//! more CPU than ours in total: 9.45 s against 5.93 s for 6.5 times fewer calls). The price is
//! calls: ours makes 13 emulator calls per tenant, the peer 2, so on moto (~11 ms of moto's time
//! per call here, slower as the table grows) ours takes 3.2× the peer's wall and 7.5× the
//! floor's. The calls beyond the minimum (AssumeRole + CreateStack), each:
//!
//! | call / tenant | why |
//! |---|---|
//! | Query ×1 (now BatchGetItem ×1) | the SPEC and STATUS rows, consistently, before deciding (since this run: one BatchGetItem of exactly the two keys, SPEC from the SPEC table and STATUS from the control-plane table; still one call, not yet re-measured): the record only names the tenant, so a late or duplicate record never acts on stale data. After the stack call the reconcile carries what it wrote (conditionally) instead of reading it back (the second Query of the previous run) |
//! | GetItem ×1 | the fleet's current template version, which a new tenant is assigned at its first write (a tenant already assigned does not read it) |
//! | DescribeStacks ×2 | one before acting (a stack may already exist: redelivered records, a create that timed out, a stranger's stack of that name, which is never touched), one after (moto finishes at once, so the tenant is `ready` in the same invocation; on AWS this look finds the stack in progress and schedules the re-check) |
//! | PutItem ×6 | STATUS twice (the intent `creating` before the stack call, so the stack can always be found again; then `ready` with the event in its outbox), the audit timeline three times (the SPEC write, each transition), and the outbox emptied once the event is published. The three audit lines could be one BatchWriteItem (see Cold start, in `cold_start.rs`) |
//! | SNS Publish ×1 | the `provisioned` lifecycle event |
//!
//! The event source's own calls (DescribeStream, GetShardIterator, GetRecords per poll) are the
//! poller's, not the function's. The writes themselves took longer during ours (24.0 s against
//! 4.3 s): they share the single-process emulator with ours' calls.
//!
//!
//! ## Build: the Lambda artefact
//!
//! `cargo lambda build --release --arm64 --output-format zip --bin control-plane` (cargo-lambda and
//! zig from PyPI, `make build-tools`): the `bootstrap` is 13.57 MiB (14,225,696 bytes; an aarch64 ELF, checked in the zip), 5.67 MiB zipped. The peer's package (`bench/peer/package_size.py`):
//! `handler.py` alone, zipped, 1.8 KiB (the Python runtime provides boto3), or
//! 16.11 MiB zipped (22.1 MiB unzipped, boto3 1.43.108) with boto3 and its dependencies vendored (pinning the SDK, as AWS advises).
//! Both far under Lambda's 50 MB zipped / 250 MB unzipped limits.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use aws_sdk_cloudformation::types::Parameter;
use clap::{Parser, Subcommand, ValueEnum};
use controlplane::config::{ControlPlaneConfig, KeySource};
use controlplane::reconcile::Outcome;
use controlplane::triggers::stream::handle_batch;
use controlplane::wiring::ControlPlane;
use local::event_source::EventSourceSettings;
use local::stream_poller::{Invocation, StreamPoller};
use model::status::Status;
use peer_bench::*;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[derive(Parser)]
#[command(about = "Benchmarks against the Python peer and the emulator's limit")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Writes the Lambda event of `records` INSERTs (tenants `first..`) to `out`.
    Events {
        #[arg(long, default_value_t = 0)]
        first: usize,
        #[arg(long)]
        records: usize,
        #[arg(long)]
        out: PathBuf,
    },
    /// Resets the emulator at `endpoint` and sets up the table (with the event's rows), the
    /// queue and the topic: the state before a function's first batch.
    Prepare {
        #[arg(long)]
        endpoint: String,
        #[arg(long)]
        event: PathBuf,
    },
    /// Cold start (hyperfine) and peak memory (`/usr/bin/time -v`), ours vs the peer.
    Cold {
        #[arg(long, default_value_t = 20)]
        runs: usize,
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        /// Records in the batch whose peak memory is measured.
        #[arg(long, default_value_t = 1000)]
        memory_records: usize,
        #[arg(long)]
        out: PathBuf,
    },
    /// End to end: tenants written directly → all handled; ours, the peer and the floor.
    E2e {
        #[arg(long, default_value_t = 500)]
        tenants: usize,
        /// Which runs, in this order (each on a fresh emulator).
        #[arg(long, value_delimiter = ',', default_value = "ours,peer,floor")]
        sides: Vec<Side>,
        #[arg(long)]
        out: PathBuf,
    },
    /// The arm64 Lambda artefacts (built by `cargo lambda build --release --arm64`) and the
    /// peer's package.
    Size {
        #[arg(long)]
        out: PathBuf,
    },
    /// The table of every result in `dir`.
    Report {
        #[arg(long)]
        dir: PathBuf,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
enum Side {
    Ours,
    Peer,
    Floor,
}

fn write_json(path: &Path, value: &Value) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_vec_pretty(value)?)
        .with_context(|| format!("writing {}", path.display()))
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn sibling_binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe
        .parent()
        .ok_or_else(|| anyhow!("no directory for {}", exe.display()))?
        .join(name);
    if !path.exists() {
        bail!(
            "{} is not built (cargo build --release -p peer-bench)",
            path.display()
        );
    }
    Ok(path)
}

fn peer_script(name: &str) -> PathBuf {
    workspace_root().join("bench/peer").join(name)
}

async fn prepare(endpoint: &str, event: &Path) -> Result<Setup> {
    let event: Value = serde_json::from_slice(&std::fs::read(event)?)?;
    reset(endpoint).await?;
    let setup = setup_emulator(endpoint).await?;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk_for(endpoint, HARNESS_KEY).await);
    put_rows(&dynamo, &rows_of_event(&event)?).await?;
    Ok(setup)
}

// ---- cold start and memory --------------------------------------------------------------------

/// One `/usr/bin/time -v` run: the figures it prints.
#[derive(Debug, serde::Serialize)]
struct TimeV {
    max_rss_kib: u64,
    wall_seconds: f64,
    user_seconds: f64,
    system_seconds: f64,
    exit_ok: bool,
}

fn parse_time_v(stderr: &str) -> Result<TimeV> {
    let field = |name: &str| -> Option<&str> {
        stderr
            .lines()
            .find_map(|line| line.trim().strip_prefix(name).map(str::trim))
    };
    let number = |name: &str| -> Result<f64> {
        field(name)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("/usr/bin/time -v printed no {name}"))
    };
    let wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss):")
        .ok_or_else(|| anyhow!("/usr/bin/time -v printed no wall time"))?;
    let wall_seconds = wall
        .split(':')
        .try_fold(0.0, |acc, part| part.parse::<f64>().map(|v| acc * 60.0 + v))?;
    Ok(TimeV {
        max_rss_kib: number("Maximum resident set size (kbytes):")? as u64,
        wall_seconds,
        user_seconds: number("User time (seconds):")?,
        system_seconds: number("System time (seconds):")?,
        exit_ok: field("Exit status:") == Some("0"),
    })
}

async fn time_v(command: &[PathBuf], env: &[(String, String)]) -> Result<(TimeV, String)> {
    let output = tokio::process::Command::new("/usr/bin/time")
        .arg("-v")
        .args(command)
        .envs(env.iter().cloned())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await
        .context("running /usr/bin/time (apt-get install time)")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let parsed = parse_time_v(&stderr)?;
    if !parsed.exit_ok {
        bail!(
            "{:?} failed:\n{}",
            command,
            stderr.lines().take(40).collect::<Vec<_>>().join("\n")
        );
    }
    Ok((parsed, stderr.into_owned()))
}

/// The function process's own peak RSS, as `lambda-once` reports it (KiB).
fn function_peak_kib(stderr: &str) -> Option<u64> {
    stderr.lines().find_map(|line| {
        line.strip_prefix("function peak RSS: ")?
            .strip_suffix(" kB")?
            .parse()
            .ok()
    })
}

async fn cold(runs: usize, warmup: usize, memory_records: usize, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out)?;
    let ours = sibling_binary("cold-start")?;
    // The deployed binary, as Lambda runs it: through the runtime API, `_HANDLER` choosing.
    let lambda_once = sibling_binary("lambda-once")?;
    let deployed = sibling_binary("control-plane")?;
    let this = std::env::current_exe()?;
    let python = python();
    let one = out.join("event-1.json");
    let many = out.join(format!("event-{memory_records}.json"));
    // template.yaml's BatchSize: the most one invocation gets.
    let hundred = out.join("event-100.json");
    std::fs::write(&one, insert_event_bytes(0, 1)?)?;
    std::fs::write(&many, insert_event_bytes(0, memory_records)?)?;
    std::fs::write(&hundred, insert_event_bytes(0, 100)?)?;

    let emulator = MeteredEmulator::start().await?;
    warm_up(&emulator.endpoint).await?;
    let setup = prepare(&emulator.endpoint, &one).await?;
    let env = function_env(&emulator.endpoint, &setup);
    let deployed_env = |timeout: &str| {
        let mut env = env.clone();
        env.push(("_HANDLER".into(), "stream-handler".into()));
        env.push(("FUNCTION_TIMEOUT_SECONDS".into(), timeout.into()));
        env
    };

    // Cold start: hyperfine, one side at a time inside a meter window (so the emulator's time
    // for each side's calls is known), the emulator reset and set up again before every run.
    let prepare_command = format!(
        "{} prepare --endpoint {} --event {}",
        this.display(),
        emulator.endpoint,
        one.display()
    );
    let mut cold_results = BTreeMap::new();
    for side in ["ours", "lambda", "peer"] {
        let command = match side {
            "ours" => format!("{} {}", ours.display(), one.display()),
            "lambda" => format!(
                "{} {} {}",
                lambda_once.display(),
                one.display(),
                deployed.display()
            ),
            _ => format!(
                "{} {} {}",
                python.display(),
                peer_script("cold_start.py").display(),
                one.display()
            ),
        };
        let hyperfine_json = out.join(format!("hyperfine-cold-{side}.json"));
        emulator.start_window().await?;
        let status = tokio::process::Command::new("hyperfine")
            .args(["-N", "--style", "basic"])
            .args(["--warmup", &warmup.to_string(), "--runs", &runs.to_string()])
            .args(["--prepare", &prepare_command])
            .arg("--export-json")
            .arg(&hyperfine_json)
            .args(["-n", side, &command])
            .envs(deployed_env("300"))
            .status()
            .await
            .context("running hyperfine (apt-get install hyperfine)")?;
        let meter = emulator.stop_window().await?;
        if !status.success() {
            bail!("hyperfine failed ({status})");
        }
        let hyperfine: Value = read_json(&hyperfine_json)
            .ok_or_else(|| anyhow!("hyperfine wrote no {}", hyperfine_json.display()))?;
        let mut result = hyperfine["results"][0].clone();
        // The function's own calls (the prepare steps are the harness's), per run; one tenant's
        // calls are sequential, so their summed time is the time the emulator spent on them.
        let invocations = (runs + warmup) as f64;
        let function: Vec<&CallStats> = meter
            .calls
            .iter()
            .filter(|(key, _)| key.starts_with("function|"))
            .map(|(_, stats)| stats)
            .collect();
        result["emulator_seconds_per_run"] =
            json!(function.iter().map(|c| c.seconds).sum::<f64>() / invocations);
        result["emulator_calls_per_run"] =
            json!(function.iter().map(|c| c.count).sum::<u64>() as f64 / invocations);
        result["meter"] = json!(meter);
        cold_results.insert(side, result);
    }
    let (ours_cold, lambda_cold, peer_cold) = (
        cold_results["ours"].clone(),
        cold_results["lambda"].clone(),
        cold_results["peer"].clone(),
    );

    // Peak memory: one batch of `memory_records`, and the one-record batch for reference.
    let mut memory = BTreeMap::new();
    for (label, event) in [("batch", &many), ("hundred", &hundred), ("one", &one)] {
        for side in ["ours", "lambda", "peer"] {
            let command = match side {
                "ours" => vec![ours.clone(), event.clone()],
                "lambda" => vec![
                    lambda_once.clone(),
                    "--timeout-seconds".into(),
                    "900".into(),
                    event.clone(),
                    deployed.clone(),
                ],
                _ => vec![python.clone(), peer_script("cold_start.py"), event.clone()],
            };
            prepare(&emulator.endpoint, event).await?;
            let mut env = deployed_env("900");
            env.push(("COLD_START_TIMEOUT_SECONDS".into(), "900".into()));
            emulator.start_window().await?;
            let (mut figures, stderr) = time_v(&command, &env).await?;
            if side == "lambda" {
                // /usr/bin/time's figure is the larger of lambda-once and the function: the
                // function's own.
                figures.max_rss_kib = function_peak_kib(&stderr)
                    .ok_or_else(|| anyhow!("lambda-once reported no peak RSS: {stderr}"))?;
            }
            let meter = emulator.stop_window().await?;
            eprintln!(
                "{side} {label}: max RSS {:.1} MiB, {:.2} s wall ({:.2} s busy in the emulator)",
                figures.max_rss_kib as f64 / 1024.0,
                figures.wall_seconds,
                meter.busy_seconds
            );
            memory.insert(
                format!("{side}_{label}"),
                json!({"time": figures, "emulator_busy_seconds": meter.busy_seconds,
                       "function_calls": meter.total_of("function")}),
            );
        }
    }
    emulator.stop().await;

    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let ratio = f(&ours_cold["median"]) / f(&peer_cold["median"]);
    let outside = |x: &Value| f(&x["median"]) - f(&x["emulator_seconds_per_run"]);
    let result = json!({
        "runs": runs,
        "cold_start": {"ours": ours_cold, "lambda": lambda_cold, "peer": peer_cold,
                       "ratio_median": ratio,
                       "ratio_outside_emulator": outside(&ours_cold) / outside(&peer_cold)},
        "memory_records": memory_records,
        "memory": memory,
    });
    write_json(&out.join("cold.json"), &result)?;
    println!("{}", cold_table(&result));
    Ok(())
}

fn ms(seconds: f64) -> String {
    format!("{:.1} ms", seconds * 1000.0)
}

fn mib(kib: f64) -> String {
    format!("{:.1} MiB", kib / 1024.0)
}

fn cold_table(r: &Value) -> String {
    let c = &r["cold_start"];
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let mut s = format!(
        "\ncold start: process start -> first batch (1 record) handled, {} runs each, emulator reset before each\n\n\
         | | median | mean ± σ | min | max | emulator calls / run | emulator time / run | median outside the emulator |\n|---|---|---|---|---|---|---|---|\n",
        r["runs"]
    );
    for side in ["ours", "lambda", "peer"] {
        let x = &c[side];
        s += &format!(
            "| {side} | {} | {} ± {} | {} | {} | {:.1} | {} | {} |\n",
            ms(f(&x["median"])),
            ms(f(&x["mean"])),
            ms(f(&x["stddev"])),
            ms(f(&x["min"])),
            ms(f(&x["max"])),
            f(&x["emulator_calls_per_run"]),
            ms(f(&x["emulator_seconds_per_run"])),
            ms(f(&x["median"]) - f(&x["emulator_seconds_per_run"])),
        );
    }
    s += &format!(
        "\nratio ours / peer (median): {:.3}; outside the emulator: {:.3}\n",
        f(&c["ratio_median"]),
        f(&c["ratio_outside_emulator"])
    );
    let m = &r["memory"];
    s += &format!(
        "\npeak memory (max RSS, /usr/bin/time -v)\n\n| | {} records | 100 records | 1 record | wall ({} records) |\n|---|---|---|---|---|\n",
        r["memory_records"], r["memory_records"]
    );
    for side in ["ours", "lambda", "peer"] {
        s += &format!(
            "| {side} | {} | {} | {} | {:.2} s |\n",
            mib(f(&m[format!("{side}_batch")]["time"]["max_rss_kib"])),
            mib(f(&m[format!("{side}_hundred")]["time"]["max_rss_kib"])),
            mib(f(&m[format!("{side}_one")]["time"]["max_rss_kib"])),
            f(&m[format!("{side}_batch")]["time"]["wall_seconds"]),
        );
    }
    s
}

// ---- end to end -------------------------------------------------------------------------------

/// The JSON-lines pipe to the peer's runner (`bench/peer/runner.py`), one warm instance.
struct PeerProcess {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: BufReader<tokio::process::ChildStdout>,
}

impl PeerProcess {
    async fn start(env: &[(String, String)]) -> Result<Self> {
        let mut child = tokio::process::Command::new(python())
            .arg("-u")
            .arg(peer_script("runner.py"))
            .current_dir(workspace_root().join("bench/peer"))
            .envs(env.iter().cloned())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting the peer's runner")?;
        let stdin = child.stdin.take().ok_or_else(|| anyhow!("no stdin"))?;
        let stdout = BufReader::new(child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?);
        Ok(Self {
            child,
            stdin,
            stdout,
        })
    }

    async fn invoke(&mut self, event: &Value) -> Result<Value> {
        let mut line = serde_json::to_vec(event)?;
        line.push(b'\n');
        self.stdin.write_all(&line).await?;
        self.stdin.flush().await?;
        let mut answer = String::new();
        if self.stdout.read_line(&mut answer).await? == 0 {
            bail!("the peer's runner exited");
        }
        Ok(serde_json::from_str(&answer)?)
    }
}

fn cpu_seconds_of(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / per_second)
}

fn tenant_of(record: &Value) -> Option<String> {
    record["dynamodb"]["Keys"]["pk"]["S"]
        .as_str()
        .and_then(|pk| pk.strip_prefix("TENANT#"))
        .map(str::to_owned)
}

#[derive(Default)]
struct Progress {
    done: BTreeSet<String>,
    /// Tenants whose handling ended anywhere but ready (ours) or in a function error (peer).
    problems: Vec<String>,
    invocations: usize,
}

/// JSON logs at the deployed level (info), as `controlplane::wiring::init_logs` sets them up,
/// written nowhere: their cost is counted, the terminal is spared.
fn init_sink_logs() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .without_time()
        .with_writer(std::io::sink)
        .try_init();
}

async fn credentials_for(
    sts: &aws_sdk_sts::Client,
    account: &str,
) -> Result<aws_sdk_cloudformation::config::Credentials> {
    let issued = sts
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/{ROLE_NAME}"))
        .role_session_name("bench-harness")
        .send()
        .await
        .map_err(|e| anyhow!("{}", aws_sdk_sts::error::DisplayErrorContext(&e)))?
        .credentials
        .ok_or_else(|| anyhow!("no credentials"))?;
    Ok(aws_sdk_cloudformation::config::Credentials::new(
        issued.access_key_id(),
        issued.secret_access_key(),
        Some(issued.session_token().to_owned()),
        None,
        "bench",
    ))
}

fn cloudformation_as(
    sdk: &aws_config::SdkConfig,
    credentials: aws_sdk_cloudformation::config::Credentials,
) -> aws_sdk_cloudformation::Client {
    aws_sdk_cloudformation::Client::from_conf(
        aws_sdk_cloudformation::config::Builder::from(sdk)
            .credentials_provider(credentials)
            .build(),
    )
}

/// The stack parameters of row `n`, as both sides derive them (checked in `verify`).
fn parameters_of(n: usize) -> Vec<Parameter> {
    let row = spec_row(n);
    let mut parameters = vec![("TenantId".to_owned(), tenant_id(n))];
    if let Some(config) = row["config"].as_object() {
        for (key, value) in config {
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            parameters.push((model::template::parameter_name(key), text));
        }
    }
    parameters
        .into_iter()
        .map(|(k, v)| {
            Parameter::builder()
                .parameter_key(k)
                .parameter_value(v)
                .build()
        })
        .collect()
}

/// After the window: every tenant's stack exists in its account with the row's parameters, and
/// (ours) its STATUS row says ready.
async fn verify(endpoint: &str, tenants: usize, side: Side) -> Result<()> {
    let sdk = sdk_for(endpoint, HARNESS_KEY).await;
    let sts = aws_sdk_sts::Client::new(&sdk);
    for n in 0..tenants {
        let cfn = cloudformation_as(&sdk, credentials_for(&sts, &account_id(n)).await?);
        let stacks = cfn
            .describe_stacks()
            .stack_name(format!("tenant-{}", tenant_id(n)))
            .send()
            .await
            .map_err(|e| anyhow!("{}", aws_sdk_cloudformation::error::DisplayErrorContext(&e)))?;
        let stack = stacks
            .stacks()
            .first()
            .ok_or_else(|| anyhow!("tenant {n}: no stack"))?;
        let status = stack.stack_status().map(|s| s.as_str()).unwrap_or("?");
        if status != "CREATE_COMPLETE" {
            bail!("tenant {n}: stack {status}");
        }
        let mut got: Vec<(String, String)> = stack
            .parameters()
            .iter()
            .map(|p| {
                (
                    p.parameter_key().unwrap_or("").to_owned(),
                    p.parameter_value().unwrap_or("").to_owned(),
                )
            })
            .collect();
        let mut want: Vec<(String, String)> = parameters_of(n)
            .iter()
            .map(|p| {
                (
                    p.parameter_key().unwrap_or("").to_owned(),
                    p.parameter_value().unwrap_or("").to_owned(),
                )
            })
            .collect();
        got.sort();
        want.sort();
        if got != want {
            bail!("tenant {n}: parameters {got:?}, expected {want:?}");
        }
    }
    if side == Side::Ours {
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let mut ready = 0;
        let mut pages = dynamo
            .scan()
            .table_name(CONTROL_TABLE)
            .filter_expression("sk = :s AND #st = :ready")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(
                ":s",
                aws_sdk_dynamodb::types::AttributeValue::S("STATUS".into()),
            )
            .expression_attribute_values(
                ":ready",
                aws_sdk_dynamodb::types::AttributeValue::S("ready".into()),
            )
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            item.map_err(|e| anyhow!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)))?;
            ready += 1;
        }
        if ready != tenants {
            bail!("{ready} STATUS rows ready, expected {tenants}");
        }
    }
    Ok(())
}

fn self_cpu_seconds() -> f64 {
    cpu_seconds_of(std::process::id()).unwrap_or(f64::NAN)
}

/// moto imports most of its code on first use (CloudFormation's resource models above all):
/// one stack of the sample template in a spare account, then a reset, so that no run pays it.
async fn warm_up(endpoint: &str) -> Result<()> {
    let sdk = sdk_for(endpoint, HARNESS_KEY).await;
    let cfn = cloudformation_as(
        &sdk,
        credentials_for(&aws_sdk_sts::Client::new(&sdk), "999999999999").await?,
    );
    cfn.create_stack()
        .stack_name("warm-up")
        .template_body(controlplane::template_source::SAMPLE_TEMPLATE)
        .set_parameters(Some(parameters_of(0)))
        .send()
        .await
        .map_err(|e| anyhow!("{}", aws_sdk_cloudformation::error::DisplayErrorContext(&e)))?;
    reset(endpoint).await
}

async fn run_side(side: Side, tenants: usize) -> Result<Value> {
    let emulator = MeteredEmulator::start().await?;
    let endpoint = emulator.endpoint.clone();
    warm_up(&endpoint).await?;
    let setup = setup_emulator(&endpoint).await?;
    let harness = sdk_for(&endpoint, HARNESS_KEY).await;
    let rows: Vec<Value> = (0..tenants).map(spec_row).collect();
    let mut extra = json!({});

    let (wall, writes, meter, cpu) = if side == Side::Floor {
        // The same CreateStack each side makes, in each tenant's account; the credentials are
        // obtained before the window, so only the CreateStack calls are timed.
        let sts = aws_sdk_sts::Client::new(&harness);
        let mut clients = Vec::with_capacity(tenants);
        for n in 0..tenants {
            clients.push(cloudformation_as(
                &harness,
                credentials_for(&sts, &account_id(n)).await?,
            ));
        }
        let template = controlplane::template_source::SAMPLE_TEMPLATE;
        emulator.start_window().await?;
        let cpu_before = self_cpu_seconds();
        let started = Instant::now();
        for (n, cfn) in clients.iter().enumerate() {
            cfn.create_stack()
                .stack_name(format!("tenant-{}", tenant_id(n)))
                .template_body(template)
                .set_parameters(Some(parameters_of(n)))
                .send()
                .await
                .map_err(|e| {
                    anyhow!("{}", aws_sdk_cloudformation::error::DisplayErrorContext(&e))
                })?;
        }
        let wall = started.elapsed();
        let cpu = self_cpu_seconds() - cpu_before;
        (wall, Duration::ZERO, emulator.stop_window().await?, cpu)
    } else {
        let progress = Arc::new(Mutex::new(Progress::default()));
        let settings = EventSourceSettings::from_template_file(
            &workspace_root().join("template.yaml"),
            "StreamHandlerFunction",
            "SpecChanges",
        )?;
        let mut poller = StreamPoller::new(
            aws_sdk_dynamodbstreams::Client::new(&sdk_for(&endpoint, EVENTSOURCE_KEY).await),
            &setup.stream_arn,
            REGION,
            settings,
        )
        .with_retry_delay(Duration::from_millis(500));
        // The function, warm (its init is the cold-start row's business).
        let (poll_task, peer_pid) = match side {
            Side::Ours => {
                init_sink_logs();
                let function = sdk_for(&endpoint, FUNCTION_KEY).await;
                let mut config = ControlPlaneConfig::new(
                    controlplane::aws::dynamodb::Tables::of(TABLE),
                    ROLE_NAME,
                    KeySource::Inline(EXTERNAL_ID_KEY.into()),
                    REGION,
                );
                config.termination_protection = false;
                config.recheck_queue_url = Some(setup.recheck_queue_url.clone());
                config.lifecycle_topic_arn = Some(setup.lifecycle_topic_arn.clone());
                let plane = Arc::new(ControlPlane::build(&function, &config).await?);
                let progress = progress.clone();
                let task = tokio::spawn(async move {
                    let invoke = |event: Value| {
                        let plane = plane.clone();
                        let progress = progress.clone();
                        async move {
                            // As Lambda runs a function: in its own task.
                            let handled = tokio::spawn(async move {
                                handle_batch(&plane.reconciler, &plane.stream, &event).await
                            })
                            .await;
                            let report = match handled {
                                Ok(report) => report,
                                Err(e) => return Invocation::FunctionError(e.to_string()),
                            };
                            let mut p = progress.lock().unwrap_or_else(|e| e.into_inner());
                            p.invocations += 1;
                            for (tenant, outcome) in &report.outcomes {
                                match outcome {
                                    Ok(Outcome::Converged(Some(Status::Ready))) => {
                                        p.done.insert(tenant.as_str().to_owned());
                                    }
                                    // Reported back: the poller retries it.
                                    Ok(Outcome::Retrying { .. }) | Err(_) => {}
                                    other => p.problems.push(format!("{tenant}: {other:?}")),
                                }
                            }
                            drop(p);
                            Invocation::Response(
                                serde_json::to_value(&report.response).unwrap_or_default(),
                            )
                        }
                    };
                    poll_forever(&mut poller, &invoke).await
                });
                (task, None)
            }
            _ => {
                let peer = PeerProcess::start(&function_env(&endpoint, &setup)).await?;
                let pid = peer.child.id();
                let peer = Arc::new(tokio::sync::Mutex::new(peer));
                let progress = progress.clone();
                let task = tokio::spawn(async move {
                    let invoke = |event: Value| {
                        let peer = peer.clone();
                        let progress = progress.clone();
                        async move {
                            let answer = peer.lock().await.invoke(&event).await;
                            let mut p = progress.lock().unwrap_or_else(|e| e.into_inner());
                            p.invocations += 1;
                            match answer {
                                Ok(answer) if answer.get("error").is_none() => {
                                    for record in event["Records"].as_array().into_iter().flatten()
                                    {
                                        if let Some(tenant) = tenant_of(record) {
                                            p.done.insert(tenant);
                                        }
                                    }
                                    Invocation::Response(answer["response"].clone())
                                }
                                Ok(answer) => {
                                    p.problems.push(answer["error"].to_string());
                                    Invocation::FunctionError(answer["error"].to_string())
                                }
                                Err(e) => {
                                    p.problems.push(e.to_string());
                                    Invocation::FunctionError(e.to_string())
                                }
                            }
                        }
                    };
                    poll_forever(&mut poller, &invoke).await
                });
                (task, pid)
            }
        };

        let dynamo = aws_sdk_dynamodb::Client::new(&harness);
        emulator.start_window().await?;
        let cpu_before = match peer_pid {
            Some(pid) => cpu_seconds_of(pid).unwrap_or(f64::NAN),
            None => self_cpu_seconds(),
        };
        let started = Instant::now();
        put_rows(&dynamo, &rows).await?;
        let writes = started.elapsed();
        let limit = Duration::from_secs(1800);
        loop {
            {
                let p = progress.lock().unwrap_or_else(|e| e.into_inner());
                if !p.problems.is_empty() {
                    bail!("{side:?}: {}", p.problems.join("; "));
                }
                if p.done.len() >= tenants {
                    break;
                }
            }
            if started.elapsed() > limit {
                bail!("{side:?}: not every tenant was handled within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let wall = started.elapsed();
        let cpu = match peer_pid {
            Some(pid) => cpu_seconds_of(pid).unwrap_or(f64::NAN),
            None => self_cpu_seconds(),
        } - cpu_before;
        let meter = emulator.stop_window().await?;
        poll_task.abort();
        extra =
            json!({"invocations": progress.lock().unwrap_or_else(|e| e.into_inner()).invocations});
        (wall, writes, meter, cpu)
    };
    verify(&endpoint, tenants, side).await?;
    emulator.stop().await;

    let wall_s = wall.as_secs_f64();
    let outside = (meter.window_seconds - meter.busy_seconds).max(0.0);
    let function_calls = meter.total_of("function");
    let result = json!({
        "side": side,
        "tenants": tenants,
        "wall_seconds": wall_s,
        "writes_seconds": writes.as_secs_f64(),
        "window_seconds": meter.window_seconds,
        "emulator_busy_seconds": meter.busy_seconds,
        "emulator_cpu_seconds": meter.cpu_seconds,
        "outside_share": outside / meter.window_seconds,
        "function_cpu_seconds": cpu,
        "calls": {
            "function": meter.calls_of("function"),
            "eventsource": meter.calls_of("eventsource"),
            "harness": meter.calls_of("harness"),
        },
        "meter": &meter,
        "extra": extra,
    });
    eprintln!(
        "{side:?}: {tenants} tenants in {wall_s:.2} s; emulator busy {:.2} s of a {:.2} s window ({:.1} % outside); {function_calls} function calls",
        meter.busy_seconds,
        meter.window_seconds,
        100.0 * outside / meter.window_seconds,
    );
    Ok(result)
}

async fn poll_forever<F, Fut>(poller: &mut StreamPoller, invoke: &F)
where
    F: Fn(Value) -> Fut,
    Fut: std::future::Future<Output = Invocation>,
{
    // As `make up`'s poller: a new look every 200 ms once caught up.
    loop {
        match poller.poll_once(invoke).await {
            Ok(0) => tokio::time::sleep(Duration::from_millis(200)).await,
            Ok(_) => {}
            Err(e) => {
                eprintln!("stream poll failed: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

async fn e2e(tenants: usize, sides: &[Side], out: &Path) -> Result<()> {
    let mut results = BTreeMap::new();
    for side in sides {
        let result = run_side(*side, tenants).await?;
        results.insert(format!("{side:?}").to_lowercase(), result);
    }
    let result = json!({"tenants": tenants, "results": results});
    write_json(&out.join("e2e.json"), &result)?;
    println!("{}", e2e_table(&result));
    Ok(())
}

fn e2e_table(r: &Value) -> String {
    let tenants = r["tenants"].as_f64().unwrap_or(f64::NAN);
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let results = &r["results"];
    let mut s = format!(
        "\nend to end: {tenants} tenants written directly (PutItem, one after the other) -> all handled\n\n\
         | run | wall | emulator busy | outside the emulator | function CPU | function calls / tenant | event source calls | writes |\n|---|---|---|---|---|---|---|---|\n"
    );
    for side in ["ours", "peer", "floor"] {
        let x = &results[side];
        if x.is_null() {
            continue;
        }
        let calls: u64 = x["calls"]["function"]
            .as_object()
            .map(|m| m.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0);
        let eventsource: u64 = x["calls"]["eventsource"]
            .as_object()
            .map(|m| m.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0);
        s += &format!(
            "| {side} | {:.2} s | {:.2} s | {:.1} % | {:.2} s | {:.2} | {eventsource} | {:.2} s |\n",
            f(&x["wall_seconds"]),
            f(&x["emulator_busy_seconds"]),
            100.0 * f(&x["outside_share"]),
            f(&x["function_cpu_seconds"]),
            calls as f64 / tenants,
            f(&x["writes_seconds"]),
        );
    }
    let wall = |side: &str| f(&results[side]["wall_seconds"]);
    s += &format!(
        "\nwall ratios: ours / peer {:.3}; ours / floor {:.3}; peer / floor {:.3}\n",
        wall("ours") / wall("peer"),
        wall("ours") / wall("floor"),
        wall("peer") / wall("floor")
    );
    s += "\nfunction calls per tenant, by type\n\n| call | ours | peer | floor |\n|---|---|---|---|\n";
    let mut kinds = BTreeSet::new();
    for side in ["ours", "peer", "floor"] {
        if let Some(m) = results[side]["calls"]["function"].as_object() {
            kinds.extend(m.keys().cloned());
        }
    }
    for kind in kinds {
        let per = |side: &str| {
            results[side]["calls"]["function"][&kind]
                .as_f64()
                .map(|c| format!("{:.2}", c / tenants))
                .unwrap_or_else(|| "-".into())
        };
        s += &format!(
            "| {kind} | {} | {} | {} |\n",
            per("ours"),
            per("peer"),
            per("floor")
        );
    }
    s
}

// ---- artefact size ----------------------------------------------------------------------------

const ZIP_LISTING: &str = "import json, sys, zipfile\n\
archive = zipfile.ZipFile(sys.argv[1])\n\
info = archive.getinfo('bootstrap')\n\
head = archive.open(info).read(20)\n\
print(json.dumps({'bootstrap_bytes': info.file_size, 'elf_machine': int.from_bytes(head[18:20], 'little')}))";

fn size(out: &Path) -> Result<()> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let mut ours = BTreeMap::new();
    let lambda = target.join("lambda");
    if let Ok(entries) = std::fs::read_dir(&lambda) {
        for entry in entries.flatten() {
            let dir = entry.path();
            let zip = dir.join("bootstrap.zip");
            // The zip's own listing: the bootstrap's size and its ELF machine (183: aarch64).
            let listing = std::process::Command::new(python())
                .args(["-c", ZIP_LISTING])
                .arg(&zip)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| serde_json::from_slice::<Value>(&o.stdout).ok())
                .unwrap_or(Value::Null);
            ours.insert(
                entry.file_name().to_string_lossy().into_owned(),
                json!({
                    "zip_bytes": std::fs::metadata(&zip).ok().map(|m| m.len()),
                    "bootstrap_bytes": listing["bootstrap_bytes"],
                    "arm64": listing["elf_machine"].as_u64().map(|m| m == 183),
                }),
            );
        }
    }
    let output = std::process::Command::new(python())
        .arg(peer_script("package_size.py"))
        .output()
        .context("measuring the peer's package")?;
    if !output.status.success() {
        bail!(
            "package_size.py failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let peer: Value = serde_json::from_slice(&output.stdout)?;
    let result = json!({"ours": ours, "peer": peer, "lambda_dir": lambda});
    write_json(&out.join("size.json"), &result)?;
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(())
}

// ---- the table --------------------------------------------------------------------------------

/// How a goal reads in the table.
fn met(ok: bool) -> &'static str {
    if ok { "**met**" } else { "missed" }
}

fn report(dir: &Path) -> Result<()> {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let mut rows: Vec<[String; 6]> = Vec::new();
    if let Some(c) = read_json(&dir.join("cold.json")) {
        let x = &c["cold_start"];
        let ratio = f(&x["ratio_median"]);
        rows.push([
            "cold start: process start → first stream batch (1 record) handled, on moto (median)"
                .into(),
            ms(f(&x["ours"]["median"])),
            format!(
                "{}: the peer (python3 + boto3)",
                ms(f(&x["peer"]["median"]))
            ),
            format!("{ratio:.3}"),
            format!("≤ 0.1×: {}", met(ratio <= 0.1)),
            "`make bench-peer` (cold)".into(),
        ]);
        let deployed = f(&x["lambda"]["median"]) / f(&x["ours"]["median"]);
        rows.push([
            "the same, the deployed binary (`functions/control-plane`, `_HANDLER=stream-handler`) through a Lambda runtime API (`lambda-once`), against `cold-start`"
                .into(),
            ms(f(&x["lambda"]["median"])),
            format!(
                "{}: `cold-start` (the stream handler's wiring alone); {}: the peer",
                ms(f(&x["ours"]["median"])),
                ms(f(&x["peer"]["median"]))
            ),
            format!("{deployed:.3}"),
            format!("no worse than `cold-start` (≤ 1.05×): {}", met(deployed <= 1.05)),
            "`make bench-peer` (cold)".into(),
        ]);
        let outside = |x: &Value| f(&x["median"]) - f(&x["emulator_seconds_per_run"]);
        let ratio = f(&x["ratio_outside_emulator"]);
        rows.push([
            "cold start, less the emulator's time for the function's own calls".into(),
            format!(
                "{} ({:.1} calls)",
                ms(outside(&x["ours"])),
                f(&x["ours"]["emulator_calls_per_run"])
            ),
            format!(
                "{}: the peer ({:.1} calls)",
                ms(outside(&x["peer"])),
                f(&x["peer"]["emulator_calls_per_run"])
            ),
            format!("{ratio:.3}"),
            format!("≤ 0.1×: {}", met(ratio <= 0.1)),
            "`make bench-peer` (cold)".into(),
        ]);
        let m = &c["memory"];
        let batches = [
            (
                "batch",
                format!(
                    "peak memory (max RSS) handling a {}-record batch",
                    c["memory_records"]
                ),
            ),
            (
                "hundred",
                "peak memory (max RSS) handling a 100-record batch (template.yaml's BatchSize)"
                    .to_owned(),
            ),
        ];
        for (size, what) in batches {
            let ours_kib = f(&m[format!("ours_{size}")]["time"]["max_rss_kib"]);
            let peer_kib = f(&m[format!("peer_{size}")]["time"]["max_rss_kib"]);
            rows.push([
                what,
                mib(ours_kib),
                format!("{}: the peer", mib(peer_kib)),
                format!("{:.3}", ours_kib / peer_kib),
                format!("≤ 40 MB: {}", met(ours_kib * 1024.0 <= 40e6)),
                "`make bench-peer` (cold)".into(),
            ]);
            let deployed_kib = f(&m[format!("lambda_{size}")]["time"]["max_rss_kib"]);
            rows.push([
                "the same, the deployed binary through the runtime API (the function process's VmHWM)"
                    .into(),
                mib(deployed_kib),
                format!("{}: `cold-start`", mib(ours_kib)),
                format!("{:.3}", deployed_kib / ours_kib),
                format!(
                    "no worse than `cold-start` (≤ 1.05×): {}",
                    met(deployed_kib <= ours_kib * 1.05)
                ),
                "`make bench-peer` (cold)".into(),
            ]);
        }
    }
    if let Some(d) = read_json(&dir.join("decode_decide.json")) {
        let per = |name: &str| f(&d[name]["per_record_seconds"]);
        let whole = per("ours_handler_fakes");
        let peer = per("peer_handler_fakes");
        let serde = per("serde_json_value");
        let ours = per("ours_decode_validate_decide");
        let us = |s: f64| format!("{:.2} µs/record", s * 1e6);
        let command = || "`make bench-peer` (decode_decide)".to_owned();
        rows.push([
            "decode + decide per record, AWS faked (1,000-record batch): ours decodes, validates \
             against the template and decides; the peer's handler with boto3 clients that answer \
             at once"
                .into(),
            us(ours),
            format!("{}: the peer", us(peer)),
            format!("{:.2} (ours {:.1}× faster)", ours / peer, peer / ours),
            format!("ours ≥ 5× faster: {}", met(peer / ours >= 5.0)),
            command(),
        ]);
        rows.push([
            "the same, against serde_json::from_slice of the same bytes into a Value".into(),
            us(ours),
            format!("{}: serde_json alone", us(serde)),
            format!("{:.2}× of that speed", serde / ours),
            format!("≥ 0.5×: {}", met(serde / ours >= 0.5)),
            command(),
        ]);
        rows.push([
            "the whole reconcile per record on the in-memory fakes (SPEC and STATUS read, intent \
             and result written, audit, event, the simulated stack created and read back)"
                .into(),
            us(whole),
            format!("{}: the peer", us(peer)),
            format!("{:.2}", whole / peer),
            "for scale: the fakes simulate more than the peer does (see below)".into(),
            command(),
        ]);
    }
    if let Some(e) = read_json(&dir.join("e2e.json")) {
        let r = &e["results"];
        let tenants = e["tenants"].clone();
        let wall = |side: &str| f(&r[side]["wall_seconds"]);
        rows.push([
            format!("end to end: {tenants} tenants written directly → all ready (wall)"),
            format!("{:.2} s", wall("ours")),
            format!(
                "{:.2} s: the peer; {:.2} s: {tenants} raw CreateStack calls (floor)",
                wall("peer"),
                wall("floor")
            ),
            format!(
                "{:.2} (peer); {:.2} (floor)",
                wall("ours") / wall("peer"),
                wall("ours") / wall("floor")
            ),
            "—".into(),
            "`make bench-peer` (e2e)".into(),
        ]);
        let share = f(&r["ours"]["outside_share"]);
        rows.push([
            "end to end: share of wall time outside the emulator".into(),
            format!("{:.1} %", share * 100.0),
            format!(
                "{:.1} %: the peer; {:.1} %: floor",
                100.0 * f(&r["peer"]["outside_share"]),
                100.0 * f(&r["floor"]["outside_share"])
            ),
            format!("{:.2}", share / f(&r["peer"]["outside_share"])),
            format!("≤ 10 %: {}", met(share <= 0.10)),
            "`make bench-peer` (e2e)".into(),
        ]);
        let per_tenant = |side: &str, class: &str| {
            r[side]["calls"][class]
                .as_object()
                .map(|m| m.values().filter_map(Value::as_u64).sum::<u64>())
                .unwrap_or(0) as f64
                / f(&tenants)
        };
        rows.push([
            "end to end: emulator calls per tenant (the function's)".into(),
            format!("{:.2}", per_tenant("ours", "function")),
            format!(
                "{:.2}: the peer; {:.2}: floor",
                per_tenant("peer", "function"),
                per_tenant("floor", "function")
            ),
            format!(
                "{:.1}",
                per_tenant("ours", "function") / per_tenant("peer", "function")
            ),
            "each beyond the minimum justified (below)".into(),
            "`make bench-peer` (e2e)".into(),
        ]);
    }
    if let Some(s) = read_json(&dir.join("size.json")) {
        let handler = &s["ours"]["control-plane"];
        let zip = f(&handler["zip_bytes"]);
        let bootstrap = f(&handler["bootstrap_bytes"]);
        let arm = handler["arm64"].as_bool() == Some(true);
        rows.push([
            format!(
                "build: the Lambda artefact, every function's ({}, release, zipped)",
                if arm { "arm64" } else { "NOT arm64" }
            ),
            format!(
                "{:.2} MiB ({:.2} MiB unzipped)",
                zip / 1048576.0,
                bootstrap / 1048576.0
            ),
            format!(
                "{:.1} KiB: the peer's handler.py zipped (boto3 from the runtime); {:.2} MiB with boto3 vendored",
                f(&s["peer"]["handler_zip_bytes"]) / 1024.0,
                f(&s["peer"]["vendored_zip_bytes"]) / 1048576.0
            ),
            format!("{:.2} (vendored)", zip / f(&s["peer"]["vendored_zip_bytes"])),
            "under Lambda's 50 MB zipped limit".into(),
            "`make bench-peer` (size)".into(),
        ]);
    }
    println!("| what | ours | peer or limit | ratio (ours / peer) | goal | command |");
    println!("|---|---|---|---|---|---|");
    for row in rows {
        println!("| {} |", row.join(" | "));
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Events {
            first,
            records,
            out,
        } => {
            std::fs::write(&out, insert_event_bytes(first, records)?)?;
        }
        Command::Prepare { endpoint, event } => {
            prepare(&endpoint, &event).await?;
        }
        Command::Cold {
            runs,
            warmup,
            memory_records,
            out,
        } => cold(runs, warmup, memory_records, &out).await?,
        Command::E2e {
            tenants,
            sides,
            out,
        } => e2e(tenants, &sides, &out).await?,
        Command::Size { out } => size(&out)?,
        Command::Report { dir } => report(&dir)?,
    }
    Ok(())
}
