//! Load on the local system (`make up`'s wiring on moto): N tenants written concurrently (half by
//! put-item as automation would, half through the API), then all updated, then all deleted.
//! Nothing lost, no duplicate stacks, every tenant terminal after each phase; the time each
//! phase took and the emulator's share of it (its CPU time over the wall time).
//!
//! `make test` runs it with LOAD_TENANTS=60 (default); `make soak` with 1,000. Figures are printed
//! with --nocapture (RELIABILITY.md quotes the last soak).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use futures::StreamExt;
use integration_tests::tenant_cloudformation;
use local::emulator::free_port;
use local::system::{LocalConfig, RunningSystem, put_spec};
use serde_json::{Value, json};

const ACCOUNTS: [&str; 3] = ["111111111111", "222222222222", "333333333333"];

fn tenants() -> usize {
    std::env::var("LOAD_TENANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
}

/// The i-th tenant: its id, its account, and whether it goes through the API.
fn tenant(i: usize) -> (String, &'static str, bool) {
    let api = i % 2 == 1;
    let id = format!("{}-{i:04}", if api { "api" } else { "put" });
    (id, ACCOUNTS[i % ACCOUNTS.len()], api)
}

struct Phase {
    name: &'static str,
    wall: Duration,
    emulator_cpu: Duration,
}

/// Waits (polling every 5 s: each poll scans the table, which the emulator does slowly) until
/// every tenant's STATUS satisfies `done`.
async fn wait_all(
    system: &RunningSystem,
    count: usize,
    limit: Duration,
    done: impl Fn(&str, &Value) -> bool,
) -> Result<BTreeMap<String, Value>> {
    let started = Instant::now();
    loop {
        let statuses = system.statuses().await?;
        let finished = (0..count)
            .filter(|i| {
                let (id, _, _) = tenant(*i);
                statuses.get(&id).is_some_and(|row| done(&id, row))
            })
            .count();
        if finished == count {
            return Ok(statuses);
        }
        ensure!(
            started.elapsed() < limit,
            "{finished} of {count} tenants finished within {} s",
            limit.as_secs()
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// Live stacks of the control plane's tenants, per stack name, across the tenant accounts.
async fn live_stacks(system: &RunningSystem) -> Result<BTreeMap<String, usize>> {
    let mut stacks = BTreeMap::new();
    for account in ACCOUNTS {
        let cfn = tenant_cloudformation(&system.identities, account).await?;
        let mut pages = cfn.list_stacks().into_paginator().items().send();
        while let Some(summary) = pages.next().await {
            let summary = summary?;
            let deleted = summary
                .stack_status()
                .is_some_and(|s| s.as_str() == "DELETE_COMPLETE");
            let name = summary.stack_name().unwrap_or_default();
            if !deleted && (name.starts_with("tenant-put-") || name.starts_with("tenant-api-")) {
                *stacks.entry(name.to_owned()).or_insert(0) += 1;
            }
        }
    }
    Ok(stacks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_tenants_created_updated_and_deleted_concurrently_lose_nothing() -> Result<()> {
    let count = tenants();
    let system = RunningSystem::start(LocalConfig {
        aws_port: free_port()?,
        api_port: 0,
        // The stream does the work under test; the scheduled reconciler (deployed: every 5
        // minutes on DynamoDB) would here re-read every tenant through the single-threaded
        // emulator, whose every call slows as the table grows, and crowd out the load itself.
        sweep_interval: Duration::from_secs(3600),
        ..LocalConfig::default()
    })
    .await?;
    let base = format!("http://{}", system.api_addr);
    let http = reqwest::Client::new();
    let admin = system
        .tokens
        .mint("load@example.com", None, 1)
        .map_err(anyhow::Error::msg)?;
    let dynamo = system.writer_dynamo().await;
    let table = system.config.table.clone();
    // The emulator's every call slows as the table grows: the time a phase needs grows with
    // the square of the tenants (measured: 250 tenants' deletes take 30× 60 tenants').
    let limit = Duration::from_secs(600 + (count * count) as u64 / 100);
    let mut phases = Vec::new();

    // Phase 1: create, concurrently.
    let cpu = system.emulator.cpu_time().unwrap_or_default();
    let started = Instant::now();
    let writes = futures::stream::iter(0..count).map(|i| {
        let (id, account, api) = tenant(i);
        let (http, base, admin, dynamo, table) = (&http, &base, &admin, &dynamo, &table);
        async move {
            let config = json!({"player_count": 2});
            if api {
                let response = http
                    .post(format!("{base}/tenants"))
                    .bearer_auth(admin)
                    .json(&json!({"tenant_id": id, "account_id": account, "config": config}))
                    .send()
                    .await?;
                ensure!(response.status() == 202, "POST {id}: {}", response.status());
            } else {
                put_spec(
                    dynamo,
                    table,
                    json!({"pk": format!("TENANT#{id}"), "sk": "SPEC", "tenant_id": id,
                           "account_id": account, "config": config, "updated_by": "load"}),
                )
                .await?;
            }
            Ok(())
        }
    });
    let results: Vec<Result<()>> = writes.buffer_unordered(32).collect().await;
    results.into_iter().collect::<Result<()>>()?;
    let created = wait_all(&system, count, limit, |_, row| row["status"] == "ready").await?;
    phases.push(Phase {
        name: "create",
        wall: started.elapsed(),
        emulator_cpu: system.emulator.cpu_time().unwrap_or_default() - cpu,
    });
    let stacks = live_stacks(&system).await?;
    ensure!(
        stacks.len() == count,
        "{} stacks for {count} tenants",
        stacks.len()
    );
    ensure!(
        stacks.values().all(|n| *n == 1),
        "a stack name twice: {stacks:?}"
    );
    let fingerprints: BTreeMap<String, Value> = created
        .iter()
        .map(|(id, row)| (id.clone(), row["spec_fingerprint"].clone()))
        .collect();

    // Phase 2: update every tenant (the API's half through PATCH with If-Match).
    let cpu = system.emulator.cpu_time().unwrap_or_default();
    let started = Instant::now();
    let updates = futures::stream::iter(0..count).map(|i| {
        let (id, account, api) = tenant(i);
        let (http, base, admin, dynamo, table) = (&http, &base, &admin, &dynamo, &table);
        async move {
            if api {
                let read = http
                    .get(format!("{base}/tenants/{id}"))
                    .bearer_auth(admin)
                    .send()
                    .await?;
                let etag = read
                    .headers()
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let response = http
                    .patch(format!("{base}/tenants/{id}"))
                    .bearer_auth(admin)
                    .header("if-match", etag)
                    .header("content-type", "application/merge-patch+json")
                    .body(json!({"config": {"player_count": 9}}).to_string())
                    .send()
                    .await?;
                ensure!(
                    response.status().is_success(),
                    "PATCH {id}: {}",
                    response.status()
                );
            } else {
                put_spec(
                    dynamo,
                    table,
                    json!({"pk": format!("TENANT#{id}"), "sk": "SPEC", "tenant_id": id,
                           "account_id": account, "config": {"player_count": 9},
                           "updated_by": "load"}),
                )
                .await?;
            }
            Ok(())
        }
    });
    let results: Vec<Result<()>> = updates.buffer_unordered(32).collect().await;
    results.into_iter().collect::<Result<()>>()?;
    wait_all(&system, count, limit, |id, row| {
        row["status"] == "ready" && fingerprints.get(id) != Some(&row["spec_fingerprint"])
    })
    .await?;
    phases.push(Phase {
        name: "update",
        wall: started.elapsed(),
        emulator_cpu: system.emulator.cpu_time().unwrap_or_default() - cpu,
    });
    let stacks = live_stacks(&system).await?;
    ensure!(
        stacks.len() == count,
        "{} stacks after the updates",
        stacks.len()
    );

    // Phase 3: delete every tenant.
    let cpu = system.emulator.cpu_time().unwrap_or_default();
    let started = Instant::now();
    let deletes = futures::stream::iter(0..count).map(|i| {
        let (id, _, api) = tenant(i);
        let (http, base, admin, dynamo, table) = (&http, &base, &admin, &dynamo, &table);
        async move {
            if api {
                let response = http
                    .delete(format!("{base}/tenants/{id}"))
                    .bearer_auth(admin)
                    .send()
                    .await?;
                ensure!(
                    response.status().is_success(),
                    "DELETE {id}: {}",
                    response.status()
                );
            } else {
                dynamo
                    .delete_item()
                    .table_name(table)
                    .key(
                        "pk",
                        aws_sdk_dynamodb::types::AttributeValue::S(format!("TENANT#{id}")),
                    )
                    .key(
                        "sk",
                        aws_sdk_dynamodb::types::AttributeValue::S("SPEC".into()),
                    )
                    .send()
                    .await?;
            }
            Ok(())
        }
    });
    let results: Vec<Result<()>> = deletes.buffer_unordered(32).collect().await;
    results.into_iter().collect::<Result<()>>()?;
    wait_all(&system, count, limit, |_, row| row["status"] == "deleted").await?;
    phases.push(Phase {
        name: "delete",
        wall: started.elapsed(),
        emulator_cpu: system.emulator.cpu_time().unwrap_or_default() - cpu,
    });
    let stacks = live_stacks(&system).await?;
    ensure!(stacks.is_empty(), "stacks left behind: {stacks:?}");

    eprintln!("load: {count} tenants (half put-item, half API), lost 0, duplicate stacks 0");
    eprintln!("| phase | wall time | emulator CPU | emulator share |");
    eprintln!("|---|---|---|---|");
    for phase in &phases {
        eprintln!(
            "| {} | {:.1} s | {:.1} s | {:.0} % |",
            phase.name,
            phase.wall.as_secs_f64(),
            phase.emulator_cpu.as_secs_f64(),
            100.0 * phase.emulator_cpu.as_secs_f64() / phase.wall.as_secs_f64()
        );
    }
    system.shutdown().await;
    Ok(())
}
