//! moto server, a real AWS wire-protocol emulator, started from the project's venv on a loopback
//! port and stopped when dropped (or when the process that started it dies, however it dies:
//! `moto_server.py`); and the tenants table as template.yaml declares it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
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
    #[error(
        "127.0.0.1:{port} is already in use{holder}: perhaps an emulator left running by an \
         earlier run. Stop it{kill}, or {other_port}"
    )]
    PortInUse {
        port: u16,
        /// ` by pid N (command line)`, when the holder could be found.
        holder: String,
        /// ` (`kill N`)`, when the holder could be found.
        kill: String,
        /// How to choose another port (`set LOCAL_AWS_PORT to another port`).
        other_port: &'static str,
    },
    #[error("moto server exited while starting ({status}); its log {log} ends: {tail}")]
    ExitedWhileStarting {
        status: String,
        log: String,
        tail: String,
    },
    #[error("emulator request failed: {0}")]
    Request(String),
}

/// The checkout the local system runs from: the working directory, or the nearest directory
/// above it holding the project's `template.yaml` and `crates/local/moto_server.py` (`make up`
/// runs at the root; cargo runs tests from their package's directory). Never the checkout the
/// binary was built from: with a shared CARGO_TARGET_DIR, that may be another clone.
pub fn workspace_root() -> PathBuf {
    let here = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    project_root_above(&here).unwrap_or(here)
}

/// The nearest of `start` and the directories above it that is the project's root.
pub fn project_root_above(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|dir| {
            dir.join("template.yaml").is_file() && dir.join("crates/local/moto_server.py").is_file()
        })
        .map(Path::to_path_buf)
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

/// Starts `command` (moto server, or a wrapper taking its arguments) on loopback `port`, its
/// output in `<temp>/<log_name>-<port>.log`; killed when the child is dropped. `moto_server.py`
/// also stops when this process dies (MOTO_PARENT_PID); on Linux, strictly, when the thread
/// that called this ends, so call it from one that lives as long as the server should (the
/// main thread, a test's, or a runtime worker: never a short-lived blocking thread).
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
        // moto_server.py stops when this process is gone (even after `kill -9`).
        .env("MOTO_PARENT_PID", std::process::id().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log_file))
        .kill_on_drop(true)
        .spawn()?;
    Ok((child, log))
}

/// A free loopback port, chosen by the OS.
pub fn free_port() -> Result<u16, EmulatorError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| EmulatorError::Spawn(format!("no free port: {e}")))
}

/// Fails with [`EmulatorError::PortInUse`] (naming the process that holds it, when it can be
/// found) if something already listens on loopback `port`; `other_port` says how to choose
/// another (`set LOCAL_AWS_PORT to another port`).
///
/// Checked before moto server is started: otherwise ours fails to bind, and whatever already
/// answers there (an emulator left behind, with an earlier run's table) answers the readiness
/// check. That server is not reset or stopped: it may be another run's, still in use, or not
/// moto at all (LocalStack's port is 4566 too); what to do about it is the user's call.
pub fn ensure_port_free(port: u16, other_port: &'static str) -> Result<(), EmulatorError> {
    match std::net::TcpListener::bind(("127.0.0.1", port)) {
        Ok(listener) => {
            drop(listener);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let (holder, kill) = match port_holder(port) {
                Some(holder) => (
                    format!(" by pid {} ({})", holder.pid, holder.command),
                    format!(" (`kill {}`)", holder.pid),
                ),
                None => (String::new(), String::new()),
            };
            Err(EmulatorError::PortInUse {
                port,
                holder,
                kill,
                other_port,
            })
        }
        Err(e) => Err(EmulatorError::Spawn(format!("cannot use port {port}: {e}"))),
    }
}

/// A process listening on a TCP port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortHolder {
    pub pid: u32,
    /// Its command line, shortened.
    pub command: String,
}

/// The process listening on TCP `port`, from /proc (Linux; `None` elsewhere, or when the
/// process is not this user's to see).
pub fn port_holder(port: u16) -> Option<PortHolder> {
    let inodes: Vec<u64> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|table| listening_inodes(&table, port))
        .collect();
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for process in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = process
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(process.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|target| wanted.iter().any(|w| Path::new(w) == target))
        });
        if holds {
            let command = std::fs::read(process.path().join("cmdline"))
                .map(|raw| command_line(&raw))
                .unwrap_or_default();
            return Some(PortHolder { pid, command });
        }
    }
    None
}

/// The inodes of the sockets listening on `port` in a /proc/net/tcp{,6} table.
pub fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    const LISTEN: &str = "0A";
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = fields.get(1)?;
            let state = fields.get(3)?;
            let inode = fields.get(9)?;
            let local_port = u16::from_str_radix(local.rsplit_once(':')?.1, 16).ok()?;
            (local_port == port && *state == LISTEN)
                .then(|| inode.parse().ok())
                .flatten()
        })
        .collect()
}

/// A /proc cmdline (arguments separated by NULs) as one line, at most 160 characters.
fn command_line(raw: &[u8]) -> String {
    let line = String::from_utf8_lossy(raw)
        .split('\0')
        .filter(|a| !a.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    match line.char_indices().nth(160) {
        Some((cut, _)) => format!("{}...", &line[..cut]),
        None => line,
    }
}

/// The last `lines` lines of a log, on one line (for an error message).
fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..].join(" | ")
}

/// The moto server process, shared with whoever watches it (the local system's emulator
/// watch): whether it still runs.
#[derive(Clone)]
pub struct EmulatorProcess {
    child: Arc<Mutex<Child>>,
    pid: Option<u32>,
}

impl EmulatorProcess {
    /// How the server ended (`exit status: 1`, `signal: 9 (SIGKILL)`), or `None` while it runs.
    pub fn exited(&self) -> Option<String> {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        match child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("cannot be waited for: {e}")),
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    fn kill(&self) {
        let _ = self
            .child
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .start_kill();
    }
}

/// A running moto server; killed on drop.
pub struct Emulator {
    process: EmulatorProcess,
    pub endpoint: String,
    pub log: PathBuf,
}

impl Emulator {
    /// Starts on a free port (tests), each test with its own server so none resets another's.
    pub async fn start() -> Result<Self, EmulatorError> {
        Self::start_on(free_port()?).await
    }

    pub async fn start_on(port: u16) -> Result<Self, EmulatorError> {
        Self::start_on_port(port, "choose another port").await
    }

    /// On `port`; `other_port` says how to choose another, should it be taken.
    pub async fn start_on_port(port: u16, other_port: &'static str) -> Result<Self, EmulatorError> {
        let python = moto_python();
        if !python.exists() {
            return Err(EmulatorError::NotInstalled(python.display().to_string()));
        }
        ensure_port_free(port, other_port)?;
        let mut command = Command::new(&python);
        command.arg(moto_server_script());
        let (child, log) = spawn_moto(command, port, "moto")
            .map_err(|e| EmulatorError::Spawn(format!("{}: {e}", python.display())))?;
        let pid = child.id();
        let emulator = Self {
            process: EmulatorProcess {
                child: Arc::new(Mutex::new(child)),
                pid,
            },
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
            // Ours, not another server that took the port meanwhile.
            if let Some(status) = self.process.exited() {
                return Err(EmulatorError::ExitedWhileStarting {
                    status,
                    log: self.log.display().to_string(),
                    tail: log_tail(&self.log, 3),
                });
            }
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
        self.process.pid
    }

    /// The process, for watching whether it still runs.
    pub fn process(&self) -> EmulatorProcess {
        self.process.clone()
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
        self.process.kill();
    }
}

/// SDK configuration for an emulator endpoint, with placeholder credentials (moto maps them to
/// its default account 123456789012).
pub async fn sdk_config_for(endpoint: &str, region: &str) -> SdkConfig {
    controlplane::wiring::sdk_loader()
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "local"))
        .load()
        .await
}

/// Creates the two tables as template.yaml declares them (keys, indexes, the SPEC table's
/// stream); returns the SPEC table's stream ARN. Reading the declaration keeps the local tables
/// and the deployed ones the same.
pub async fn create_tables(
    client: &aws_sdk_dynamodb::Client,
    tables: &controlplane::aws::dynamodb::Tables,
) -> Result<String, EmulatorError> {
    let template = std::fs::read_to_string(workspace_root().join("template.yaml"))
        .map_err(|e| EmulatorError::Request(format!("reading template.yaml: {e}")))?;
    create_table_from_template(client, &tables.control, &template, "ControlTable").await?;
    create_table_from_template(client, &tables.specs, &template, "TenantsTable")
        .await?
        .ok_or_else(|| yaml_error("the SPEC table has no stream"))
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

/// Creates the `AWS::DynamoDB::Table` resource `resource` of a template, named `table`; returns
/// its stream's ARN if it declares one.
pub async fn create_table_from_template(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    template: &str,
    resource: &str,
) -> Result<Option<String>, EmulatorError> {
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
                                .set_non_key_attributes(
                                    index
                                        .get("Projection")
                                        .and_then(|p| p.get("NonKeyAttributes"))
                                        .and_then(serde_yaml_ng::Value::as_sequence)
                                        .map(|names| {
                                            names
                                                .iter()
                                                .filter_map(|n| n.as_str().map(str::to_owned))
                                                .collect()
                                        }),
                                )
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
        .and_then(|v| v.as_str());
    let stream = view
        .map(|view| {
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::from(view))
                .build()
                .map_err(yaml_error)
        })
        .transpose()?;
    let output = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(attributes))
        .set_key_schema(Some(key_schema(properties.get("KeySchema"))?))
        .set_global_secondary_indexes(indexes)
        .set_stream_specification(stream)
        .send()
        .await
        .map_err(|e| {
            EmulatorError::Request(aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string())
        })?;
    Ok(output
        .table_description()
        .and_then(|t| t.latest_stream_arn())
        .map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listening_socket_of_a_port_is_found_in_the_kernels_table() {
        // /proc/net/tcp: 127.0.0.1:4566 (0x11D6) listening (0A), and a connection from it.
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:11D6 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2912345 1 0000000000000000 100 0 0 10 0
   1: 0100007F:11D6 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2912999 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2900001 1 0000000000000000 100 0 0 10 0";
        assert_eq!(listening_inodes(table, 4566), [2912345]);
        assert_eq!(listening_inodes(table, 3000), [2900001]);
        assert!(listening_inodes(table, 9999).is_empty());
        assert!(listening_inodes("garbage\nnot a table line", 4566).is_empty());
    }

    #[test]
    fn a_command_line_is_one_short_line() {
        assert_eq!(
            command_line(b"python\0moto_server.py\0-p\x004566\0"),
            "python moto_server.py -p 4566"
        );
        let long = command_line("é".repeat(300).as_bytes());
        assert_eq!(long.chars().count(), 163);
    }

    #[test]
    fn a_port_held_by_this_process_is_found_and_refused() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let error = ensure_port_free(port, "set LOCAL_AWS_PORT to another port")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(&format!("127.0.0.1:{port} is already in use")),
            "{error}"
        );
        assert!(error.contains("set LOCAL_AWS_PORT"), "{error}");
        if cfg!(target_os = "linux") {
            let pid = std::process::id();
            assert!(error.contains(&format!("by pid {pid}")), "{error}");
            assert!(error.contains(&format!("`kill {pid}`")), "{error}");
        }
        drop(listener);
        assert!(ensure_port_free(port, "").is_ok());
    }
}
