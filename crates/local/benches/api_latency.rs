//! API latency: `GET /tenants/{id}` and `POST /tenants` over HTTP on the local system (moto
//! behind the API), beside the same router over the in-memory table (the handler alone) and
//! the emulator's own time for the table calls each request makes. Sequential requests, one run,
//! so the ratios compare like with like on this shared machine.
//!
//! `make bench` (or `cargo bench -p local --bench api_latency --profile dev -- --requests N`).
//!
//! The method and the last run's figures (BENCHMARKS.md keeps the summary table):
//!
//! # API latency
//!
//! **What is measured:** `GET /tenants/{id}` and `POST /tenants`, 200 sequential requests of each,
//! over HTTP on the local system (`make up`'s API on moto, the stream handler provisioning the new
//! tenants meanwhile), beside the same router over the in-memory table (the handler alone: routing,
//! token check, validation, ETag, serialization), and the emulator's floor for the table call each
//! request makes (a consistent Query for a GET, a conditional PutItem for a POST), timed straight
//! from the SDK. POSTs are timed while the stream handler provisions them (it shares the
//! single-threaded emulator); GETs and the floors once every tenant is ready. The scheduled sweeps
//! are paused for the run. Debug build (the handler's share would only shrink in release).
//!
//! ```text
//! | request | on the local system p50 | p99 | handler alone p50 | p99 | emulator floor p50 | p99 | handler / local (p99) |
//! |---|---|---|---|---|---|---|---|
//! | GET /tenants/{id} | 62.08 ms | 148.20 ms | 0.33 ms | 0.56 ms | 68.75 ms | 112.63 ms | 0.004 |
//! | POST /tenants | 69.96 ms | 179.01 ms | 0.51 ms | 0.61 ms | 13.36 ms | 33.64 ms | 0.003 |
//! ```
//!
//! **Reading it:** the handler is under 1 % of a request's time on the local system; the rest is the
//! emulator (a GET's one consistent Query costs as much on its own, since moto's Query grows with the
//! table) and, for POSTs, the emulator's work for the stream handler running at the same time.
//! Deployed, DynamoDB answers in single-digit milliseconds, so the same handler would be well within
//! a 50 ms p99. **Re-run:** `make bench` (= also `cargo bench -p local --bench api_latency --profile
//! dev -- --requests N`), about 2 minutes.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::auth::LocalTokens;
use api::{ApiState, router, with_local_tokens};
use aws_sdk_dynamodb::types::AttributeValue;
use axum::body::Body;
use axum::http::{Request, header};
use clap::Parser;
use controlplane::testing::{FakeTemplateValidator, InMemoryStore};
use http_body_util::BodyExt;
use local::emulator::free_port;
use local::system::{LocalConfig, RunningSystem};
use serde_json::{Value, json};
use tower::ServiceExt;

#[derive(Parser)]
#[command(about = "API latency on the local system beside the handler alone")]
struct Options {
    /// Requests of each kind.
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn body(n: usize) -> Value {
    json!({"tenant_id": format!("bench-{n}"), "account_id": "111111111111",
           "config": {"difficulty": "hard", "player_count": 12}})
}

async fn in_process(requests: usize) -> Result<(Vec<Duration>, Vec<Duration>), String> {
    let store = Arc::new(InMemoryStore::default());
    let tokens = LocalTokens::new("bench");
    let token = tokens.mint("bench", None, 1)?;
    let app = with_local_tokens(
        router(
            ApiState::on_table(
                store,
                Arc::new(FakeTemplateValidator::default()),
                Arc::new(controlplane::testing::FakeTemplateObjects::default()),
                "us-east-1",
            )
            .map_err(|e| e.to_string())?,
        ),
        tokens,
    );
    let call = |request: Request<Body>| {
        let app = app.clone();
        async move {
            let started = Instant::now();
            let response = app.oneshot(request).await.map_err(|e| e.to_string())?;
            let status = response.status();
            response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?;
            if !status.is_success() {
                return Err(format!("in-process request failed: {status}"));
            }
            Ok::<_, String>(started.elapsed())
        }
    };
    let (mut posts, mut gets) = (Vec::new(), Vec::new());
    for n in 0..requests {
        let request = Request::post("/tenants")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body(n).to_string()))
            .map_err(|e| e.to_string())?;
        posts.push(call(request).await?);
    }
    for n in 0..requests {
        let request = Request::get(format!("/tenants/bench-{n}"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .map_err(|e| e.to_string())?;
        gets.push(call(request).await?);
    }
    Ok((posts, gets))
}

struct OnEmulator {
    posts: Vec<Duration>,
    gets: Vec<Duration>,
    /// The table calls a GET makes (one consistent Query), timed against moto directly.
    query_floor: Vec<Duration>,
    /// The table calls a POST makes (one conditional PutItem).
    put_floor: Vec<Duration>,
}

async fn on_emulator(requests: usize) -> Result<OnEmulator, String> {
    // The schedules stay out of the way: a sweep over hundreds of tenants would share the
    // single-threaded emulator with the requests being timed.
    let config = LocalConfig {
        aws_port: free_port().map_err(|e| e.to_string())?,
        api_port: 0,
        sweep_interval: Duration::from_secs(3600),
        decommission_interval: Duration::from_secs(3600),
        ..LocalConfig::default()
    };
    let system = RunningSystem::start(config)
        .await
        .map_err(|e| e.to_string())?;
    let token = system.tokens.mint("bench", None, 1)?;
    let base = format!("http://{}", system.api_addr);
    let http = reqwest::Client::new();
    let (mut posts, mut gets) = (Vec::new(), Vec::new());
    for n in 0..requests {
        let started = Instant::now();
        let response = http
            .post(format!("{base}/tenants"))
            .bearer_auth(&token)
            .json(&body(n))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        response.bytes().await.map_err(|e| e.to_string())?;
        posts.push(started.elapsed());
        if status != 202 {
            return Err(format!("POST answered {status}"));
        }
    }
    // Every tenant provisioned (the stream handler shares the emulator while POSTs run): the
    // reads are then timed on a quiet system.
    let statuses = system
        .wait_for(Duration::from_secs(600), |s| {
            (0..requests).all(|n| {
                s.get(&format!("bench-{n}"))
                    .is_some_and(|row| row["status"] == "ready")
            })
        })
        .await
        .map_err(|e| e.to_string())?;
    let ready = statuses
        .values()
        .filter(|row| row["status"] == "ready")
        .count();
    if ready < requests {
        return Err(format!("only {ready} of {requests} tenants became ready"));
    }
    for n in 0..requests {
        let started = Instant::now();
        let response = http
            .get(format!("{base}/tenants/bench-{n}"))
            .bearer_auth(&token)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        response.bytes().await.map_err(|e| e.to_string())?;
        gets.push(started.elapsed());
        if status != 200 {
            return Err(format!("GET answered {status}"));
        }
    }
    // The emulator's floor: the same table calls, straight from the SDK.
    let dynamo = system.dynamo();
    let table = system.config.table.clone();
    let (mut query_floor, mut put_floor) = (Vec::new(), Vec::new());
    for n in 0..requests {
        let started = Instant::now();
        dynamo
            .query()
            .table_name(&table)
            .consistent_read(true)
            .key_condition_expression("pk = :pk AND sk BETWEEN :a AND :b")
            .expression_attribute_values(":pk", AttributeValue::S(format!("TENANT#bench-{n}")))
            .expression_attribute_values(":a", AttributeValue::S("SPEC".into()))
            .expression_attribute_values(":b", AttributeValue::S("STATUS".into()))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        query_floor.push(started.elapsed());
        let started = Instant::now();
        dynamo
            .put_item()
            .table_name(&table)
            .item("pk", AttributeValue::S(format!("FLOOR#{n}")))
            .item("sk", AttributeValue::S("FLOOR".into()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| e.to_string())?;
        put_floor.push(started.elapsed());
    }
    system.shutdown().await;
    Ok(OnEmulator {
        posts,
        gets,
        query_floor,
        put_floor,
    })
}

async fn run(options: Options) -> Result<(), String> {
    let requests = options.requests.max(10);
    let (mut handler_posts, mut handler_gets) = in_process(requests).await?;
    let mut local = on_emulator(requests).await?;
    println!(
        "API latency ({requests} sequential requests of each kind; debug build; local system on moto: \
         POSTs while the stream handler provisions them, GETs and floors once all are ready)\n"
    );
    println!(
        "| request | on the local system p50 | p99 | handler alone p50 | p99 | emulator floor p50 | p99 | handler / local (p99) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, local_samples, handler, floor) in [
        (
            "GET /tenants/{id}",
            &mut local.gets,
            &mut handler_gets,
            &mut local.query_floor,
        ),
        (
            "POST /tenants",
            &mut local.posts,
            &mut handler_posts,
            &mut local.put_floor,
        ),
    ] {
        let (l50, l99) = (
            percentile(local_samples, 50.0),
            percentile(local_samples, 99.0),
        );
        let (h50, h99) = (percentile(handler, 50.0), percentile(handler, 99.0));
        let (f50, f99) = (percentile(floor, 50.0), percentile(floor, 99.0));
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} | {:.3} |",
            ms(l50),
            ms(l99),
            ms(h50),
            ms(h99),
            ms(f50),
            ms(f99),
            h99.as_secs_f64() / l99.as_secs_f64()
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let options = Options::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("api_latency: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("api_latency: {e}");
            ExitCode::FAILURE
        }
    }
}
