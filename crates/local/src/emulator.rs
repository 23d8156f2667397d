//! moto server, a real AWS wire-protocol emulator, started from the project's venv on a loopback
//! port and stopped when dropped; and the tenants table as template.yaml declares it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use aws_config::{Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
};
use tokio::process::{Child, Command};

#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("moto server's Python is not installed at {0} (run `make venv`, or set MOTO_PYTHON)")]
    NotInstalled(String),
    #[error("cannot start moto server: {0}")]
    Spawn(String),
    #[error("moto server did not answer on {endpoint} within {seconds}s (log: {log})")]
    NotReady {
        endpoint: String,
        seconds: u64,
        log: String,
    },
    #[error("emulator request failed: {0}")]
    Request(String),
}

/// The repository root (this crate lives in crates/local).
pub fn workspace_root() -> PathBuf {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    // Shown to people (paths in `make up`'s banner): without the `..`s when it can be.
    root.canonicalize().unwrap_or(root)
}

/// `MOTO_PYTHON`, else the project venv's Python: it runs moto server (`moto_server.py`).
pub fn moto_python() -> PathBuf {
    std::env::var_os("MOTO_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/python"))
}

/// moto server as the local system runs it (see the script's own words for what it changes).
pub fn moto_server_script() -> PathBuf {
    workspace_root().join("crates/local/moto_server.py")
}

/// A free loopback port, chosen by the OS.
/// Starts `command` (moto server, or a wrapper taking its arguments) on loopback `port`, its
/// output in `<temp>/<log_name>-<port>.log`; killed when the child is dropped.
pub fn spawn_moto(
    mut command: Command,
    port: u16,
    log_name: &str,
) -> std::io::Result<(Child, PathBuf)> {
    let log = std::env::temp_dir().join(format!("{log_name}-{port}.log"));
    let log_file = std::fs::File::create(&log)?;
    let child = command
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        // A fixed account here would override the per-request account of assumed roles.
        .env_remove("MOTO_ACCOUNT_ID")
        .stdout(Stdio::null())
        .stderr(Stdio::from(log_file))
        .kill_on_drop(true)
        .spawn()?;
    Ok((child, log))
}

pub fn free_port() -> Result<u16, EmulatorError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| EmulatorError::Spawn(format!("no free port: {e}")))
}

/// A running moto server; killed on drop.
pub struct Emulator {
    child: Child,
    pub endpoint: String,
    pub log: PathBuf,
}

impl Emulator {
    /// Starts on a free port (tests), each test with its own server so none resets another's.
    pub async fn start() -> Result<Self, EmulatorError> {
        Self::start_on(free_port()?).await
    }

    pub async fn start_on(port: u16) -> Result<Self, EmulatorError> {
        let python = moto_python();
        if !python.exists() {
            return Err(EmulatorError::NotInstalled(python.display().to_string()));
        }
        let mut command = Command::new(&python);
        command.arg(moto_server_script());
        let (child, log) = spawn_moto(command, port, "moto")
            .map_err(|e| EmulatorError::Spawn(format!("{}: {e}", python.display())))?;
        let emulator = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
        };
        emulator.wait_ready(Duration::from_secs(60)).await?;
        Ok(emulator)
    }

    async fn wait_ready(&self, limit: Duration) -> Result<(), EmulatorError> {
        let client = aws_sdk_dynamodb::Client::new(&self.sdk_config("us-east-1").await);
        let started = Instant::now();
        loop {
            if client.list_tables().send().await.is_ok() {
                return Ok(());
            }
            if started.elapsed() > limit {
                return Err(EmulatorError::NotReady {
                    endpoint: self.endpoint.clone(),
                    seconds: limit.as_secs(),
                    log: self.log.display().to_string(),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The emulator's process id (load tests read its CPU time).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// CPU time the emulator has used so far (user + system), from /proc; `None` off Linux.
    pub fn cpu_time(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()?)).ok()?;
        // Fields after the command name (which may hold spaces): utime and stime are the 12th
        // and 13th, in clock ticks (USER_HZ, 100 on Linux).
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(Duration::from_millis(ticks * 10))
    }

    /// SDK configuration for the control plane's own account on this emulator.
    pub async fn sdk_config(&self, region: &str) -> SdkConfig {
        sdk_config_for(&self.endpoint, region).await
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// SDK configuration for an emulator endpoint, with placeholder credentials (moto maps them to
/// its default account 123456789012).
pub async fn sdk_config_for(endpoint: &str, region: &str) -> SdkConfig {
    controlplane::runtime::sdk_loader()
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "local"))
        .load()
        .await
}

/// Creates the tenants table as template.yaml declares it (keys, indexes, stream); returns its
/// stream ARN. Reading the declaration keeps the local table and the deployed one the same.
pub async fn create_tenants_table(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<String, EmulatorError> {
    let template = std::fs::read_to_string(workspace_root().join("template.yaml"))
        .map_err(|e| EmulatorError::Request(format!("reading template.yaml: {e}")))?;
    create_table_from_template(client, table, &template, "TenantsTable").await
}

fn yaml_error(message: impl std::fmt::Display) -> EmulatorError {
    EmulatorError::Request(format!("template.yaml table: {message}"))
}

fn key_schema(keys: Option<&serde_yaml_ng::Value>) -> Result<Vec<KeySchemaElement>, EmulatorError> {
    keys.and_then(serde_yaml_ng::Value::as_sequence)
        .ok_or_else(|| yaml_error("KeySchema missing"))?
        .iter()
        .map(|key| {
            let name = key.get("AttributeName").and_then(|v| v.as_str());
            let kind = key.get("KeyType").and_then(|v| v.as_str());
            KeySchemaElement::builder()
                .set_attribute_name(name.map(str::to_owned))
                .set_key_type(kind.map(KeyType::from))
                .build()
                .map_err(yaml_error)
        })
        .collect()
}

/// Creates the `AWS::DynamoDB::Table` resource `resource` of a template, named `table`.
pub async fn create_table_from_template(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    template: &str,
    resource: &str,
) -> Result<String, EmulatorError> {
    let document: serde_yaml_ng::Value = serde_yaml_ng::from_str(template).map_err(yaml_error)?;
    let properties = document
        .get("Resources")
        .and_then(|r| r.get(resource))
        .and_then(|r| r.get("Properties"))
        .ok_or_else(|| yaml_error(format!("no resource {resource}")))?;
    let attributes = properties
        .get("AttributeDefinitions")
        .and_then(serde_yaml_ng::Value::as_sequence)
        .ok_or_else(|| yaml_error("AttributeDefinitions missing"))?
        .iter()
        .map(|a| {
            AttributeDefinition::builder()
                .set_attribute_name(
                    a.get("AttributeName")
                        .and_then(|v| v.as_str())
                        .map(str::to_owned),
                )
                .set_attribute_type(
                    a.get("AttributeType")
                        .and_then(|v| v.as_str())
                        .map(ScalarAttributeType::from),
                )
                .build()
                .map_err(yaml_error)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let indexes = properties
        .get("GlobalSecondaryIndexes")
        .and_then(serde_yaml_ng::Value::as_sequence)
        .map(|indexes| {
            indexes
                .iter()
                .map(|index| {
                    let projection = index
                        .get("Projection")
                        .and_then(|p| p.get("ProjectionType"))
                        .and_then(|v| v.as_str())
                        .unwrap_or("ALL");
                    GlobalSecondaryIndex::builder()
                        .set_index_name(
                            index
                                .get("IndexName")
                                .and_then(|v| v.as_str())
                                .map(str::to_owned),
                        )
                        .set_key_schema(Some(key_schema(index.get("KeySchema"))?))
                        .projection(
                            Projection::builder()
                                .projection_type(ProjectionType::from(projection))
                                .build(),
                        )
                        .build()
                        .map_err(yaml_error)
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let view = properties
        .get("StreamSpecification")
        .and_then(|s| s.get("StreamViewType"))
        .and_then(|v| v.as_str())
        .ok_or_else(|| yaml_error("the table has no stream"))?;
    let output = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(attributes))
        .set_key_schema(Some(key_schema(properties.get("KeySchema"))?))
        .set_global_secondary_indexes(indexes)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::from(view))
                .build()
                .map_err(yaml_error)?,
        )
        .send()
        .await
        .map_err(|e| {
            EmulatorError::Request(aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string())
        })?;
    output
        .table_description()
        .and_then(|t| t.latest_stream_arn())
        .map(str::to_owned)
        .ok_or_else(|| yaml_error("the table has no stream"))
}
