//! The `local-system` binary (what `make up` runs) as a process: what happens to its moto server
//! when it is killed with `kill -9`, and what it does when its moto server dies. Each run on
//! free ports, its keys and metrics in a directory of its own (LOCAL_DIR).

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use local::emulator::{free_port, port_holder};

const START_LIMIT: Duration = Duration::from_secs(120);

/// One local system at a time: a port `free_port` gave one run must not be taken by another
/// run's server before it binds it.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Run {
    child: Child,
    aws_port: u16,
    api_port: u16,
    /// Its LOCAL_DIR, with its output: removed afterwards unless the test failed.
    dir: PathBuf,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn local_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("local-system-{name}-{}", std::process::id()))
}

/// Starts the binary on `aws_port` and a free API port; returns once `/health` answers 200
/// and it has printed its live view's header (the last of its start).
async fn start(name: &str, aws_port: u16) -> Result<Run> {
    let dir = local_dir(name);
    let mut command = Command::new(env!("CARGO_BIN_EXE_local-system"));
    command.env("LOCAL_DIR", &dir);
    start_command(command, dir, aws_port).await
}

/// Starts `command` (the binary, its LOCAL_DIR or working directory set) as `start` does, in a
/// process group of its own, as a shell runs `make up` in a terminal.
async fn start_command(mut command: Command, dir: PathBuf, aws_port: u16) -> Result<Run> {
    use std::os::unix::process::CommandExt;
    let api_port = free_port()?;
    std::fs::create_dir_all(&dir)?;
    let stdout = dir.join("stdout.log");
    let stderr = dir.join("stderr.log");
    let child = command
        .env("LOCAL_AWS_PORT", aws_port.to_string())
        .env("LOCAL_API_PORT", api_port.to_string())
        .process_group(0)
        .stdout(std::fs::File::create(&stdout)?)
        .stderr(std::fs::File::create(&stderr)?)
        .spawn()
        .context("starting local-system")?;
    let mut run = Run {
        child,
        aws_port,
        api_port,
        dir,
        stdout,
        stderr,
    };
    let started = Instant::now();
    loop {
        if let Some(status) = run.child.try_wait()? {
            bail!("local-system exited ({status}): {}", run.stderr_text());
        }
        let header = std::fs::read_to_string(&run.stdout)
            .is_ok_and(|out| out.lines().any(|l| l.starts_with("TENANT ")));
        if header && run.health().await.is_ok_and(|code| code == 200) {
            return Ok(run);
        }
        ensure!(
            started.elapsed() < START_LIMIT,
            "local-system never answered /health: {}",
            run.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

impl Run {
    async fn health(&self) -> Result<u16> {
        let url = format!("http://127.0.0.1:{}/health", self.api_port);
        Ok(reqwest::get(url).await?.status().as_u16())
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The moto server it started: the process on its AWS port.
    fn moto_pid(&self) -> Result<u32> {
        let holder = port_holder(self.aws_port).context("nothing listens on the AWS port")?;
        ensure!(
            holder.command.contains("moto_server.py"),
            "not moto server: {holder:?}"
        );
        Ok(holder.pid)
    }

    fn wait_exit(&mut self, limit: Duration) -> Result<Option<ExitStatus>> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(None)
    }
}

fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Alive and not a zombie.
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .next()?
                .to_owned();
            Some(state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

/// `kill -9` of the local system takes its moto server with it: the port is free again within
/// seconds, and the next run on the same port starts (it failed with `Table already exists`, the
/// old server answering its readiness check).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_local_system_takes_its_moto_server_with_it() -> Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let aws_port = free_port()?;
    let mut first = start("kill-9", aws_port).await?;
    let moto = first.moto_pid()?;
    first.child.kill()?; // SIGKILL
    first.child.wait()?;

    let started = Instant::now();
    while (running(moto) || !port_is_free(aws_port)) && started.elapsed() < Duration::from_secs(15)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !running(moto),
        "moto server (pid {moto}) outlived the local system"
    );
    assert!(port_is_free(aws_port), "port {aws_port} is still held");

    let mut second = start("kill-9-again", aws_port).await?;
    assert_eq!(second.health().await?, 200);
    // Ctrl-C's way out (SIGTERM): a clean exit.
    let status = Command::new("kill")
        .args(["-TERM", &second.child.id().to_string()])
        .status()?;
    ensure!(status.success());
    let exit = second.wait_exit(Duration::from_secs(30))?;
    assert!(
        exit.is_some_and(|s| s.success()),
        "{exit:?}: {}",
        second.stderr_text()
    );
    Ok(())
}

/// When its moto server dies, the local system says so and exits with status 1 (everything it
/// made lived in moto), rather than serving on with `/health` 200 and nothing working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_its_moto_server_dies_the_local_system_exits_saying_why() -> Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut run = start("moto-dies", free_port()?).await?;
    let moto = run.moto_pid()?;
    let status = Command::new("kill")
        .args(["-KILL", &moto.to_string()])
        .status()?;
    ensure!(status.success());

    let exit = run.wait_exit(Duration::from_secs(30))?;
    let stderr = run.stderr_text();
    assert_eq!(exit.and_then(|s| s.code()), Some(1), "{exit:?}: {stderr}");
    assert!(
        stderr.contains(&format!("moto server (pid {moto}) exited"))
            && stderr.contains("run `make up` again"),
        "{stderr}"
    );
    Ok(())
}

/// The writer identity's DynamoDB client, from the `writer.env` the run wrote (as a user's
/// `source .local/writer.env` would give it).
async fn writer_dynamo(env_file: &std::path::Path) -> Result<aws_sdk_dynamodb::Client> {
    let text = std::fs::read_to_string(env_file)?;
    let vars: std::collections::BTreeMap<&str, &str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("export ")?.split_once('='))
        .collect();
    let var = |name: &str| {
        vars.get(name)
            .map(|v| (*v).to_owned())
            .with_context(|| format!("{name} missing from {}", env_file.display()))
    };
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(var("AWS_DEFAULT_REGION")?))
        .endpoint_url(var("AWS_ENDPOINT_URL")?)
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            var("AWS_ACCESS_KEY_ID")?,
            var("AWS_SECRET_ACCESS_KEY")?,
            None,
            None,
            "writer.env",
        ))
        .load()
        .await;
    Ok(aws_sdk_dynamodb::Client::new(&config))
}

/// Ctrl-C in the terminal (SIGINT to the whole process group: the local system and its moto
/// server alike) while tenants are being written and provisioned stops everything, every
/// time: the process exits 0 within seconds, saying it stops, and the port is free. It once
/// kept running on with moto gone (a signal lost between loop turns).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_load_stops_the_local_system_and_its_moto_server() -> Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    for round in 0..3 {
        let mut run = start(&format!("ctrl-c-{round}"), free_port()?).await?;
        let moto = run.moto_pid()?;
        let dynamo = writer_dynamo(&run.dir.join("writer.env")).await?;
        let load = tokio::spawn(async move {
            for n in 0..200 {
                let tenant = format!("load{n:03}");
                let _ = dynamo
                    .put_item()
                    .table_name("tenants")
                    .item(
                        "pk",
                        aws_sdk_dynamodb::types::AttributeValue::S(format!("TENANT#{tenant}")),
                    )
                    .item(
                        "sk",
                        aws_sdk_dynamodb::types::AttributeValue::S("SPEC".into()),
                    )
                    .item(
                        "tenant_id",
                        aws_sdk_dynamodb::types::AttributeValue::S(tenant),
                    )
                    .item(
                        "account_id",
                        aws_sdk_dynamodb::types::AttributeValue::S("111111111111".into()),
                    )
                    .send()
                    .await;
            }
        });
        // Tenants are being provisioned: the interrupt lands while work is in flight (a
        // different moment each round).
        tokio::time::sleep(Duration::from_millis(1500 + 700 * round)).await;
        // The terminal's SIGINT reaches every process of the group at once. Each is named
        // (no negative process-group id: procps-ng's kill has read one as "every process").
        let local_system = run.child.id();
        let status = Command::new("kill")
            .args(["-s", "INT", &local_system.to_string(), &moto.to_string()])
            .status()?;
        ensure!(status.success(), "kill -s INT {local_system} {moto}");
        let exit = run.wait_exit(Duration::from_secs(20))?;
        load.abort();
        let stdout = std::fs::read_to_string(&run.stdout).unwrap_or_default();
        assert_eq!(
            exit.and_then(|s| s.code()),
            Some(0),
            "round {round}: {exit:?}: {}",
            run.stderr_text()
        );
        assert!(stdout.contains("stopping"), "round {round}: {stdout}");
        for _ in 0..50 {
            if !running(moto) && port_is_free(run.aws_port) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(!running(moto), "round {round}: moto server still runs");
        assert!(
            port_is_free(run.aws_port),
            "round {round}: the AWS port is held"
        );
    }
    Ok(())
}

/// Another checkout running this build (as a second clone does with the shared
/// CARGO_TARGET_DIR): the local system takes its files from the checkout it is run in (found
/// from the working directory, here a subdirectory of it), writes its keys and metrics there,
/// and names those paths; nothing of the checkout it was built from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_checkout_runs_on_its_own_files_and_writes_into_itself() -> Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let built_from =
        local::emulator::project_root_above(std::path::Path::new(env!("CARGO_MANIFEST_DIR")))
            .context("the checkout this test was built from")?;
    let clone = local_dir("second-checkout");
    let _ = std::fs::remove_dir_all(&clone);
    std::fs::create_dir_all(clone.join("crates/local"))?;
    std::fs::create_dir_all(clone.join("docs"))?;
    for file in ["template.yaml", "crates/local/moto_server.py"] {
        std::fs::copy(built_from.join(file), clone.join(file))?;
    }
    let mut command = Command::new(env!("CARGO_BIN_EXE_local-system"));
    command
        .current_dir(clone.join("docs"))
        .env_remove("LOCAL_DIR")
        .arg("--demo");
    if std::env::var_os("MOTO_PYTHON").is_none() {
        command.env("MOTO_PYTHON", built_from.join(".venv/bin/python"));
    }
    let before = std::fs::metadata(built_from.join(".local/writer.env"))
        .and_then(|m| m.modified())
        .ok();
    let run = start_command(command, clone.join(".local"), free_port()?).await?;
    let stdout = std::fs::read_to_string(&run.stdout)?;
    let ours = clone.join(".local");
    for file in ["writer.env", "operator.env"] {
        assert!(
            ours.join(file).is_file(),
            "{file} not in {}",
            ours.display()
        );
        assert!(
            stdout.contains(&ours.join(file).display().to_string()),
            "the banner names another {file}: {stdout}"
        );
    }
    // What a user needs from the banner: tenantctl pointed at this instance, and that its
    // state does not outlive it.
    assert!(
        stdout.contains(&format!(
            "export TENANTCTL_API_URL=http://127.0.0.1:{}",
            run.api_port
        )),
        "{stdout}"
    );
    assert!(stdout.contains("gone when it stops"), "{stdout}");
    // The banner's own example writes a tenant the contract accepts (it once used `t1`).
    let example = stdout
        .split("TENANT#")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("the banner's put-item example")?;
    assert!(
        model::spec::check_tenant_id(example).is_ok(),
        "the banner's example tenant {example:?} is invalid"
    );
    assert!(
        !stdout.contains(&built_from.display().to_string()),
        "the banner names the checkout the binary was built from: {stdout}"
    );
    // The demo tenants reach ready, each line printed once: a new STATUS version that shows
    // the same (its events published) prints nothing.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let out = std::fs::read_to_string(&run.stdout)?;
        if out.lines().filter(|l| l.contains(" ready ")).count() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Later STATUS writes (events published, the outbox cleared) come and show nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let view = std::fs::read_to_string(&run.stdout)?;
    let lines: Vec<&str> = view
        .lines()
        .skip_while(|l| !l.starts_with("TENANT "))
        .skip(1)
        .collect();
    for tenant in ["acme", "globex", "gs1234"] {
        let mine: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.split_whitespace().next() == Some(tenant))
            .collect();
        assert!(
            mine.last().is_some_and(|l| l.contains(" ready ")),
            "{tenant}: {view}"
        );
        assert!(
            mine.windows(2).all(|w| w[0] != w[1]),
            "{tenant} printed the same line twice: {view}"
        );
    }
    let after = std::fs::metadata(built_from.join(".local/writer.env"))
        .and_then(|m| m.modified())
        .ok();
    assert_eq!(before, after, "wrote into the checkout it was built from");
    drop(run);
    let _ = std::fs::remove_dir_all(&clone);
    Ok(())
}

#[test]
fn the_project_root_is_found_above_the_working_directory() -> Result<()> {
    let root =
        local::emulator::project_root_above(std::path::Path::new(env!("CARGO_MANIFEST_DIR")))
            .context("found from crates/local")?;
    assert!(root.join("template.yaml").is_file());
    assert_eq!(
        local::emulator::project_root_above(&root.join("crates/local/src")),
        Some(root.clone())
    );
    assert_eq!(
        local::emulator::project_root_above(&std::env::temp_dir()),
        None
    );
    Ok(())
}
