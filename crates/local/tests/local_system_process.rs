//! The `local-system` binary (what `make up` runs) as a process: what happens to its moto server
//! when it is killed with `kill -9`, and what it does when its moto server dies. Each run on
//! free ports, its keys and metrics in a directory of its own (LOCAL_DIR).

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use local::emulator::{free_port, port_holder};

const START_LIMIT: Duration = Duration::from_secs(120);

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
    let api_port = free_port()?;
    let dir = local_dir(name);
    std::fs::create_dir_all(&dir)?;
    let stdout = dir.join("stdout.log");
    let stderr = dir.join("stderr.log");
    let child = Command::new(env!("CARGO_BIN_EXE_local-system"))
        .env("LOCAL_AWS_PORT", aws_port.to_string())
        .env("LOCAL_API_PORT", api_port.to_string())
        .env("LOCAL_DIR", &dir)
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
