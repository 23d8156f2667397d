//! One invocation of a Lambda function binary as Lambda runs it: this process serves the Lambda
//! Runtime API (`AWS_LAMBDA_RUNTIME_API`) on loopback, starts the binary, hands it the event file
//! on its first `next`, and exits once the binary posts its response, with the response on stdout
//! and the function process's own peak memory (its VmHWM) on stderr. For the cold-start and
//! memory rows of the deployed binary (`peer-bench cold`), the runtime client's loop included.
//!
//! Usage: lambda-once EVENT.json BINARY (the function's environment, `_HANDLER` among it, is
//! passed through).

use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use clap::Parser;
use tokio::sync::mpsc;

#[derive(Parser)]
struct Args {
    /// The event the function is invoked with.
    event: PathBuf,
    /// The function's binary (a Lambda runtime client: lambda_runtime or lambda_http).
    binary: PathBuf,
    /// The invocation's timeout (its deadline, as Lambda states it).
    #[arg(long, default_value_t = 300)]
    timeout_seconds: u64,
}

/// What the function posted for its invocation.
enum Outcome {
    Response(Bytes),
    Error(Bytes),
}

#[derive(Clone)]
struct Runtime {
    event: Bytes,
    deadline_ms: u128,
    handed_over: Arc<Mutex<bool>>,
    outcome: mpsc::Sender<Outcome>,
}

const REQUEST_ID: &str = "00000000-0000-4000-8000-000000000001";

async fn next(State(runtime): State<Runtime>) -> (HeaderMap, Bytes) {
    let first = {
        let mut handed = runtime
            .handed_over
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        !std::mem::replace(&mut *handed, true)
    };
    if !first {
        // One invocation only: the function waits here until this process stops it.
        std::future::pending::<()>().await;
    }
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("lambda-runtime-aws-request-id", REQUEST_ID.to_owned());
    set(
        "lambda-runtime-deadline-ms",
        runtime.deadline_ms.to_string(),
    );
    set(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:lambda-once".to_owned(),
    );
    set(
        "lambda-runtime-trace-id",
        "Root=1-00000000-000000000000000000000001;Sampled=0".to_owned(),
    );
    (headers, runtime.event.clone())
}

async fn response(
    State(runtime): State<Runtime>,
    Path(_id): Path<String>,
    body: Bytes,
) -> StatusCode {
    let _ = runtime.outcome.send(Outcome::Response(body)).await;
    StatusCode::ACCEPTED
}

async fn error(State(runtime): State<Runtime>, body: Bytes) -> StatusCode {
    let _ = runtime.outcome.send(Outcome::Error(body)).await;
    StatusCode::ACCEPTED
}

async fn invocation_error(
    state: State<Runtime>,
    Path(_id): Path<String>,
    body: Bytes,
) -> StatusCode {
    error(state, body).await
}

/// The process's peak resident set (VmHWM, KiB), read before it is stopped.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

async fn run(args: Args) -> Result<Bytes> {
    let event =
        std::fs::read(&args.event).with_context(|| format!("reading {}", args.event.display()))?;
    let deadline = SystemTime::now() + Duration::from_secs(args.timeout_seconds);
    let (outcome, mut outcomes) = mpsc::channel(1);
    let runtime = Runtime {
        event: event.into(),
        deadline_ms: deadline.duration_since(UNIX_EPOCH)?.as_millis(),
        handed_over: Arc::default(),
        outcome,
    };
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/error",
            post(invocation_error),
        )
        .route("/2018-06-01/runtime/init/error", post(error))
        .with_state(runtime);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut function = tokio::process::Command::new(&args.binary)
        .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "lambda-once")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/lambda-once")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "lambda-once")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", args.binary.display()))?;
    let pid = function
        .id()
        .ok_or_else(|| anyhow!("the function has no pid"))?;
    let outcome = tokio::select! {
        outcome = outcomes.recv() => outcome.ok_or_else(|| anyhow!("the runtime API stopped"))?,
        exited = function.wait() => bail!("the function exited before it answered ({})", exited?),
    };
    let peak = peak_rss_kib(pid);
    function.kill().await.ok();
    if let Some(kib) = peak {
        eprintln!("function peak RSS: {kib} kB");
    }
    match outcome {
        Outcome::Response(body) => Ok(body),
        Outcome::Error(body) => bail!("the function failed: {}", String::from_utf8_lossy(&body)),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(body) => {
            println!("{}", String::from_utf8_lossy(&body));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lambda-once: {e:#}");
            ExitCode::FAILURE
        }
    }
}
