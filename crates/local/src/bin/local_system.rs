//! `make up`: the whole control plane on moto server, until Ctrl-C, or until moto server is
//! gone (it exited, or was reset): then it says why and exits with status 1.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Parser;
use controlplane::metrics::{DEFAULT_STUCK_AFTER, count_fleet, describe};
use controlplane::ports::TenantStore;
use local::backoff::IdleBackoff;
use local::system::{LocalConfig, RunningSystem, demo_rows, put_spec, status_line};
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(about = "Run the tenant control plane locally on moto server")]
struct Args {
    /// Also write demo tenants (acme, globex and gs1234, the sample row of docs/table-contract.md).
    #[arg(long)]
    demo: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    // Human-readable warnings only: the live view below is the output.
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("LOG_LEVEL").unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = LocalConfig::from_env()?;
    // From the start: Ctrl-C or SIGTERM while starting stops it too, cleanly.
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    println!("starting moto server on 127.0.0.1:{} ...", config.aws_port);
    let system = tokio::select! {
        started = RunningSystem::start(config) => started?,
        _ = interrupt.recv() => return Ok(()),
        _ = terminate.recv() => return Ok(()),
    };
    let endpoint = system.emulator.endpoint.clone();
    // LOCAL_DIR: where the identities' keys and the metrics go (tests keep theirs apart).
    let local_dir = std::env::var_os("LOCAL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| local::emulator::workspace_root().join(".local"));
    let writer_env = local_dir.join("writer.env");
    let operator_env = local_dir.join("operator.env");
    for (who, path) in [("writer", &writer_env), ("operator", &operator_env)] {
        system
            .identities
            .write_env(who, path, &system.config.table, &system.preview_queue_url)?;
    }
    // Each reconciling function's own role and environment, for running it by hand
    // (docs/testing.md: Invoking a function by hand; `cargo lambda watch --env-file`).
    for (function, file) in [
        ("StreamHandlerFunction", "roles/stream-handler.env"),
        ("CompletionFunction", "roles/completion.env"),
    ] {
        system
            .identities
            .write_function_env(
                function,
                &local_dir.join(file),
                &system.function_env(function)?,
            )
            .await?;
    }
    println!();
    println!("tenant control plane is up");
    println!(
        "  AWS emulator   {endpoint}   (region {}; IAM {})",
        system.config.region,
        if system.identities.enforced() {
            "enforced: every function runs with its own role"
        } else {
            "not enforced (LOCAL_IAM=off)"
        }
    );
    println!(
        "  writer keys    {}   (`source` it: put-item as automation; TenantWriterPolicy)",
        writer_env.display()
    );
    println!(
        "  operator keys  {}   (`source` it: tenantctl --direct; TenantOperatorPolicy)",
        operator_env.display()
    );
    println!(
        "  tenants API    http://{0}   (health: http://{0}/health)",
        system.api_addr
    );
    // tenantctl's default is port 3000: on another port (a second instance on a shared
    // machine) it would talk to someone else's system.
    // `make up` builds tenantctl beside this binary: the line puts that one on PATH.
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(std::path::Path::to_path_buf))
        .filter(|dir| dir.join("tenantctl").is_file());
    let path = beside
        .map(|dir| format!("export PATH=\"{}:$PATH\"; ", dir.display()))
        .unwrap_or_default();
    println!(
        "  tenantctl      {path}export TENANTCTL_API_URL=http://{}; export TENANTCTL_TOKEN=$(tenantctl token)",
        system.api_addr
    );
    println!(
        "  table          {}   stream {}",
        system.config.table, system.stream_arn
    );
    println!("  on-failure     {}", system.failure_queue_url);
    let metrics_file = local_dir.join("metrics.emf");
    println!(
        "  metrics (EMF)  {}   (every {}s)",
        metrics_file.display(),
        METRICS_INTERVAL.as_secs()
    );
    println!("  lifecycle      {}", system.lifecycle_topic_arn);
    println!(
        "  tenant accts   {}   (role {}, bootstrapped)",
        system.config.tenant_accounts.join(", "),
        system.config.role_name
    );
    println!();
    println!(
        "state lives only in this emulator: tenants, template versions and rollouts are gone \
         when it stops (the next run starts empty)"
    );
    println!();
    println!("write a tenant (as the writer identity; the AWS CLI is .venv/bin/aws):");
    println!(
        "  export PATH=\"$PWD/.venv/bin:$PATH\"; source {}",
        writer_env.display()
    );
    println!(
        "  aws dynamodb put-item --table-name {} --item \\",
        system.config.table
    );
    println!(
        "    '{{\"pk\":{{\"S\":\"TENANT#trial1\"}},\"sk\":{{\"S\":\"SPEC\"}},\"tenant_id\":{{\"S\":\"trial1\"}},\"account_id\":{{\"S\":\"111111111111\"}}}}'"
    );
    println!();
    if args.demo {
        let writer = system.writer_dynamo().await;
        for row in demo_rows() {
            put_spec(&writer, &system.config.table, row).await?;
        }
        println!("demo: wrote {} tenants", demo_rows().len());
    }
    println!("Ctrl-C stops it all.");
    println!(
        "{:<16} {:<9} {:<12} {:<10} detail",
        "TENANT", "STATUS", "ACCOUNT", "REGION"
    );

    // The metrics job, with its own role.
    let metrics_task = tokio::spawn(emit_metrics(system.metrics.store.clone(), metrics_file));

    // The line last printed per tenant.
    let mut shown: BTreeMap<String, String> = BTreeMap::new();
    // The live view reads the table quickly while statuses change, and less often (up to once
    // a second) while nothing does.
    let mut pace = IdleBackoff::new(Duration::from_millis(300), system.config.idle_poll_cap);
    let next_look = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(next_look);
    let gone = loop {
        tokio::select! {
            // Ctrl-C reaches moto server too (one process group): a stop asked for wins over
            // the emulator's end it causes, whichever is noticed first.
            biased;
            _ = interrupt.recv() => break None,
            _ = terminate.recv() => break None,
            reason = system.emulator_gone() => break Some(reason),
            _ = &mut next_look => {
                match system.statuses().await {
                    Ok(statuses) => {
                        let mut any = false;
                        for (tenant, row) in &statuses {
                            // A new STATUS version that shows the same (its events published,
                            // say) is no news: printed only when the line itself changes.
                            let line = status_line(tenant, row);
                            if shown.get(tenant) != Some(&line) {
                                println!("{line}");
                                shown.insert(tenant.clone(), line);
                                any = true;
                            }
                        }
                        if any {
                            pace.busy();
                        }
                    }
                    Err(e) => eprintln!("cannot read statuses: {e}"),
                }
                next_look.as_mut().reset(tokio::time::Instant::now() + pace.idle());
            }
        }
    };
    metrics_task.abort();
    // moto server may die of the terminal's Ctrl-C a moment before this process is told.
    let interrupted = async {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    };
    let gone = match gone {
        Some(reason) => tokio::time::timeout(Duration::from_millis(500), interrupted)
            .await
            .is_err()
            .then_some(reason),
        None => None,
    };
    if let Some(reason) = gone {
        system.shutdown().await;
        bail!(
            "{reason}. The local system stops: run `make up` again (it starts a new emulator \
             and bootstraps everything anew)"
        );
    }
    println!("\nstopping ...");
    system.shutdown().await;
    println!("stopped: moto server and every function with it");
    Ok(())
}

/// How often the metrics job runs locally (deployed: every minute).
const METRICS_INTERVAL: Duration = Duration::from_secs(60);

/// The metrics job on its local schedule: the fleet counts and every operation metric recorded
/// meanwhile, as the EMF lines a function writes to CloudWatch, appended to `file`.
async fn emit_metrics(store: Arc<dyn TenantStore>, file: PathBuf) {
    let collector = match metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace("TenantControlPlane/local")
        .init()
    {
        Ok(collector) => collector,
        Err(e) => {
            eprintln!("metrics disabled: {e}");
            return;
        }
    };
    describe();
    let mut tick = tokio::time::interval(METRICS_INTERVAL);
    loop {
        tick.tick().await;
        match count_fleet(store.as_ref(), chrono::Utc::now(), DEFAULT_STUCK_AFTER).await {
            Ok(counts) => counts.record(),
            Err(e) => eprintln!("cannot count tenants: {e}"),
        }
        let mut lines = Vec::new();
        let written = collector.flush(&mut lines).and_then(|()| {
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&file)?
                .write_all(&lines)
        });
        if let Err(e) = written {
            eprintln!("cannot write {}: {e}", file.display());
        }
    }
}
