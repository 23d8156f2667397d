//! Benchmarks against a Python handler written the usual way (the peer, `bench/peer/`) and the emulator's
//! own limit: the input both sides get, the metered emulator (`bench/moto_meter.py`), and the
//! emulator setup. See BENCHMARKS.md; `make bench` runs them.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use aws_config::{Region, SdkConfig};
use aws_lambda_events::event::dynamodb::{EventRecord, StreamRecord, StreamViewType};
use aws_sdk_dynamodb::config::Credentials;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

pub const TABLE: &str = "tenants";
/// The control-plane table, named as template.yaml names it.
pub const CONTROL_TABLE: &str = "tenants-control";
pub const REGION: &str = "us-east-1";
pub const ROLE_NAME: &str = "TenantControlRole";
/// The local ExternalId key (`make up`'s).
pub const EXTERNAL_ID_KEY: &str = "local-development-key";
/// Access keys the meter tells apart: the function under test (ours or the peer; keys issued by
/// AssumeRole count as the function's too), the stream poller standing in for Lambda's event
/// source mapping, and the harness's own writes and checks.
pub const FUNCTION_KEY: &str = "testing";
pub const EVENTSOURCE_KEY: &str = "eventsource";
pub const HARNESS_KEY: &str = "harness";

const DIFFICULTIES: [&str; 4] = ["peaceful", "easy", "normal", "hard"];

pub fn tenant_id(n: usize) -> String {
    format!("bench-{n:05}")
}

/// Every tenant in its own account, as the control plane is meant for.
pub fn account_id(n: usize) -> String {
    (200_000_000_000u64 + n as u64).to_string()
}

/// The SPEC row of tenant `n`, shaped as the demo's sample row (docs/table-contract.md) (a config of three
/// entries), valid for the shipped template.
pub fn spec_row(n: usize) -> Value {
    let id = tenant_id(n);
    json!({
        "pk": format!("TENANT#{id}"), "sk": "SPEC", "tenant_id": id, "account_id": account_id(n),
        "config": {
            "difficulty": DIFFICULTIES[n % DIFFICULTIES.len()],
            "player_count": 1 + n % 100,
            "seed": format!("seed{n:06}x{:08x}", (n as u64).wrapping_mul(2_654_435_761) as u32),
        },
        "updated_by": "automation@bench",
        "created_at": "2023-05-13T14:06:33Z",
    })
}

/// The DynamoDB stream event Lambda delivers for the INSERTs of `rows` (one batch), built with
/// the same types as the local stream poller's events.
pub fn insert_event(rows: &[Value]) -> Result<Value> {
    let stream_arn = format!(
        "arn:aws:dynamodb:{REGION}:123456789012:table/{TABLE}/stream/2026-11-01T00:00:00.000"
    );
    let created_at = DateTime::<Utc>::from_timestamp(1_795_000_000, 0).unwrap_or_default();
    let records = rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let image: serde_dynamo::Item = model::item_json::item_of_json(row);
            let mut keys =
                serde_dynamo::Item::from(HashMap::<String, serde_dynamo::AttributeValue>::new());
            for key in ["pk", "sk"] {
                if let Some(value) = image.get(key) {
                    keys.insert(key.to_owned(), value.clone());
                }
            }
            let mut change = StreamRecord::default();
            change.approximate_creation_date_time = created_at;
            change.keys = keys;
            change.new_image = image;
            change.sequence_number =
                Some(format!("{}", 4_100_000_000_000_000_000_000u128 + i as u128));
            change.size_bytes = row.to_string().len() as i64;
            change.stream_view_type = Some(StreamViewType::NewAndOldImages);
            let mut record = EventRecord::default();
            record.aws_region = REGION.into();
            record.change = change;
            record.event_id = format!("bench{i:016x}");
            record.event_name = "INSERT".into();
            record.event_source = Some("aws:dynamodb".into());
            record.event_version = Some("1.1".into());
            record.event_source_arn = Some(stream_arn.clone());
            let mut json = serde_json::to_value(&record)?;
            // Lambda omits absent images rather than sending empty ones.
            if let Some(change) = json.get_mut("dynamodb").and_then(Value::as_object_mut) {
                change.remove("OldImage");
            }
            Ok(json)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(json!({ "Records": records }))
}

/// The event of `count` INSERTs of tenants `first..first + count`, as bytes.
pub fn insert_event_bytes(first: usize, count: usize) -> Result<Vec<u8>> {
    let rows: Vec<Value> = (first..first + count).map(spec_row).collect();
    Ok(serde_json::to_vec(&insert_event(&rows)?)?)
}

/// The plain JSON rows of an event's INSERT images (what the harness writes to the table).
pub fn rows_of_event(event: &Value) -> Result<Vec<Value>> {
    event["Records"]
        .as_array()
        .ok_or_else(|| anyhow!("the event has no Records"))?
        .iter()
        .map(|record| {
            let image: serde_dynamo::Item =
                serde_json::from_value(record["dynamodb"]["NewImage"].clone())?;
            Ok(serde_dynamo::from_item(image)?)
        })
        .collect()
}

pub fn workspace_root() -> PathBuf {
    local::emulator::workspace_root()
}

/// The project venv's python (PYTHON overrides it).
pub fn python() -> PathBuf {
    std::env::var_os("PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/python"))
}

/// SDK configuration for the emulator, signing with `access_key` (the meter's classes).
pub async fn sdk_for(endpoint: &str, access_key: &str) -> SdkConfig {
    controlplane::wiring::sdk_loader()
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(access_key, "testing", None, None, "bench"))
        .load()
        .await
}

/// moto server with the meter (`bench/moto_meter.py`) on a free loopback port; killed on drop.
pub struct MeteredEmulator {
    child: Child,
    pub endpoint: String,
    pub log: PathBuf,
    http: reqwest::Client,
}

/// What the meter saw in its window.
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize)]
pub struct MeterReport {
    pub window_seconds: f64,
    /// The union of the intervals in which moto was handling at least one request.
    pub busy_seconds: f64,
    /// moto's CPU time (user + system) in the window.
    pub cpu_seconds: f64,
    /// `class|service|action` → count and summed seconds.
    pub calls: BTreeMap<String, CallStats>,
}

#[derive(Clone, Debug, Default, Deserialize, serde::Serialize)]
pub struct CallStats {
    pub count: u64,
    pub seconds: f64,
}

impl MeterReport {
    /// Calls of one class (`function`, `eventsource`, `harness`) by `service:action`.
    pub fn calls_of(&self, class: &str) -> BTreeMap<String, u64> {
        self.calls
            .iter()
            .filter_map(|(key, stats)| {
                let mut parts = key.splitn(3, '|');
                let (who, service, action) = (parts.next()?, parts.next()?, parts.next()?);
                (who == class).then(|| (format!("{service}:{action}"), stats.count))
            })
            .collect()
    }

    pub fn total_of(&self, class: &str) -> u64 {
        self.calls_of(class).values().sum()
    }
}

impl MeteredEmulator {
    pub async fn start() -> Result<Self> {
        let port = local::emulator::free_port()?;
        let script = workspace_root().join("bench/moto_meter.py");
        let mut command = Command::new(python());
        command.arg(&script);
        let (child, log) = local::emulator::spawn_moto(command, port, "moto-meter")
            .with_context(|| format!("starting {} {}", python().display(), script.display()))?;
        let emulator = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
            http: reqwest::Client::new(),
        };
        let started = Instant::now();
        while emulator.meter("start").await.is_err() {
            if started.elapsed() > Duration::from_secs(60) {
                bail!(
                    "the metered emulator did not answer within 60 s (log: {})",
                    emulator.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(emulator)
    }

    async fn meter(&self, what: &str) -> Result<Value> {
        Ok(self
            .http
            .get(format!("{}/__meter/{what}", self.endpoint))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// Forgets what was recorded: the window starts now.
    pub async fn start_window(&self) -> Result<()> {
        self.meter("start").await.map(|_| ())
    }

    pub async fn stop_window(&self) -> Result<MeterReport> {
        Ok(serde_json::from_value(self.meter("stop").await?)?)
    }

    /// Everything moto holds is forgotten (`POST /moto-api/reset`).
    pub async fn reset(&self) -> Result<()> {
        reset(&self.endpoint).await
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

pub async fn reset(endpoint: &str) -> Result<()> {
    reqwest::Client::new()
        .post(format!("{endpoint}/moto-api/reset"))
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

/// What the control plane's wiring needs on the emulator, as `make up` creates it.
#[derive(Clone, Debug)]
pub struct Setup {
    pub stream_arn: String,
    pub recheck_queue_url: String,
    pub lifecycle_topic_arn: String,
}

/// The tenants table as template.yaml declares it, the re-check queue and the lifecycle topic.
pub async fn setup_emulator(endpoint: &str) -> Result<Setup> {
    let sdk = sdk_for(endpoint, HARNESS_KEY).await;
    let stream_arn = local::emulator::create_tables(
        &aws_sdk_dynamodb::Client::new(&sdk),
        &controlplane::aws::dynamodb::Tables::of(TABLE),
    )
    .await?;
    let recheck_queue_url = aws_sdk_sqs::Client::new(&sdk)
        .create_queue()
        .queue_name(format!("{TABLE}-rechecks"))
        .send()
        .await
        .map_err(|e| anyhow!("{}", aws_sdk_sqs::error::DisplayErrorContext(&e)))?
        .queue_url
        .unwrap_or_default();
    let lifecycle_topic_arn = aws_sdk_sns::Client::new(&sdk)
        .create_topic()
        .name(format!("{TABLE}-lifecycle"))
        .send()
        .await
        .map_err(|e| anyhow!("{}", aws_sdk_sns::error::DisplayErrorContext(&e)))?
        .topic_arn
        .unwrap_or_default();
    Ok(Setup {
        stream_arn,
        recheck_queue_url,
        lifecycle_topic_arn,
    })
}

/// Writes SPEC rows with PutItem, one after the other, as automation writing directly would.
pub async fn put_rows(dynamo: &aws_sdk_dynamodb::Client, rows: &[Value]) -> Result<()> {
    for row in rows {
        local::system::put_spec(dynamo, TABLE, row.clone()).await?;
    }
    Ok(())
}

/// The environment a function process gets: ours reads the control plane's variables, the
/// peer only the standard AWS ones.
pub fn function_env(endpoint: &str, setup: &Setup) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", REGION),
        ("AWS_DEFAULT_REGION", REGION),
        ("AWS_ACCESS_KEY_ID", FUNCTION_KEY),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("TABLE_NAME", TABLE),
        ("CONTROL_TABLE_NAME", CONTROL_TABLE),
        ("TENANT_ROLE_NAME", ROLE_NAME),
        ("EXTERNAL_ID_KEY", EXTERNAL_ID_KEY),
        ("RECHECK_QUEUE_URL", &setup.recheck_queue_url),
        ("LIFECYCLE_TOPIC_ARN", &setup.lifecycle_topic_arn),
        // moto does not implement UpdateTerminationProtection.
        ("TERMINATION_PROTECTION", "false"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}
