//! The docs' examples, run as a user runs them: every ```sh and ```bash block of README.md and
//! docs/*.md (found with a markdown parser, pulldown-cmark), against a fresh local system
//! started as `make up DEMO=1` starts it (the `local-system` binary, demo tenants included) on
//! free ports, with a LOCAL_DIR of its own.
//!
//! - The documented defaults are replaced by the harness's own: `127.0.0.1:4566` /
//!   `localhost:4566` (the emulator) and `:3000` (the API) by its ports, `.local/` by its
//!   LOCAL_DIR. Nothing else of a block is changed.
//! - Each block runs with `bash -euo pipefail` in a scratch directory that holds the clone's
//!   files (symlinked) and nothing the user would not have: `tenantctl` is the workspace's own
//!   build, `aws` the project venv's (CLI v1, `requirements-docs.txt`, installed by `make
//!   test`), `HOME` a scratch directory. No AWS_* or TENANTCTL_* variable is inherited: what a
//!   block needs, a block before it in the same file must set.
//! - The blocks of one file are one shell session: the variables a block sets are there in the
//!   next block of that file (as when a user pastes them into one terminal), not in other files.
//!   Files run in order, README.md first, over one local system.
//! - A block preceded by `<!-- docs-test: skip (reason) -->` is not run; the skipped blocks and
//!   their reasons are printed. A skip without a reason fails the test.
//! - A block fails the test when it exits non-zero (the file, the block's line and its stderr
//!   are reported), or when a line of it shows an outcome (`# <tenant>: ready|deleted|failed`)
//!   that its output does not contain.
//! - `tenantctl` and `local-system` are this target directory's: `cargo test --workspace` builds
//!   them; `cargo test -p integration-tests --test docs_examples` alone needs
//!   `cargo build -p tenantctl -p local` first.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use local::emulator::free_port;
use pulldown_cmark::{CodeBlockKind, Event, Parser, Tag, TagEnd};
use regex::Regex;

const SKIP_MARKER: &str = "docs-test: skip";
const START_LIMIT: Duration = Duration::from_secs(180);
const BLOCK_LIMIT: Duration = Duration::from_secs(240);

/// A shell block of a markdown file.
#[derive(Debug)]
struct Block {
    file: String,
    /// The line of its opening fence, from 1.
    line: usize,
    code: String,
    /// The reason given in a skip marker just before it.
    skip: Option<String>,
}

/// The ```sh and ```bash blocks of `text`, with the skip marker of the HTML comment just
/// before each (nothing but blank lines between them).
fn shell_blocks(file: &str, text: &str) -> Result<Vec<Block>> {
    let mut blocks = Vec::new();
    let mut marker: Option<(String, usize)> = None;
    let mut current: Option<Block> = None;
    for (event, range) in Parser::new(text).into_offset_iter() {
        match event {
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) => {
                let lang = info.split_whitespace().next().unwrap_or("");
                let line = text[..range.start].matches('\n').count() + 1;
                let skip = match marker.take() {
                    // The marker counts only for the block right after it.
                    Some((reason, end)) if text[end..range.start].trim().is_empty() => Some(reason),
                    _ => None,
                };
                if lang == "sh" || lang == "bash" {
                    current = Some(Block {
                        file: file.to_owned(),
                        line,
                        code: String::new(),
                        skip,
                    });
                }
            }
            Event::Text(code) => {
                if let Some(block) = current.as_mut() {
                    block.code.push_str(&code);
                }
            }
            Event::End(TagEnd::CodeBlock) => blocks.extend(current.take()),
            Event::Html(html) | Event::InlineHtml(html) if html.contains(SKIP_MARKER) => {
                let rest = html.split_once(SKIP_MARKER).map(|(_, r)| r).unwrap_or("");
                let reason = rest
                    .trim()
                    .strip_prefix('(')
                    .and_then(|r| r.rsplit_once(')'))
                    .map(|(reason, _)| reason.trim().to_owned())
                    .filter(|r| !r.is_empty());
                let Some(reason) = reason else {
                    bail!(
                        "{file}:{}: a skip marker needs a reason: `<!-- {SKIP_MARKER} (why) -->`",
                        text[..range.start].matches('\n').count() + 1
                    );
                };
                marker = Some((reason, range.end));
            }
            _ => {}
        }
    }
    Ok(blocks)
}

/// The clone's root.
fn workspace_root() -> PathBuf {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    root.canonicalize().unwrap_or(root)
}

/// README.md, then docs/*.md in name order: (path relative to the root, text).
fn documents(root: &Path) -> Result<Vec<(String, String)>> {
    let mut names = vec!["README.md".to_owned()];
    let mut docs: Vec<String> = std::fs::read_dir(root.join("docs"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    docs.sort();
    names.extend(docs);
    names
        .into_iter()
        .map(|n| {
            let text = std::fs::read_to_string(root.join(&n)).with_context(|| n.clone())?;
            Ok((n, text))
        })
        .collect()
}

/// The directory of the workspace's debug binaries: this test's own target directory.
fn binaries() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/debug/deps/docs_examples-<hash>
    Ok(exe
        .parent()
        .and_then(Path::parent)
        .context("the test binary's directory")?
        .to_owned())
}

/// `tenantctl` and `local-system` of this build. This package cannot depend on another
/// package's binaries, and a `cargo build` from inside `cargo test` waits for the lock the
/// running `cargo test` holds: `cargo test --workspace` (make test) builds both before any test
/// runs; run alone, build them first.
fn check_binaries(bin: &Path) -> Result<()> {
    for name in ["tenantctl", "local-system"] {
        ensure!(
            bin.join(name).exists(),
            "no {name} in {}: `cargo build -p tenantctl -p local` first (cargo test --workspace builds it)",
            bin.display()
        );
    }
    Ok(())
}

/// The local system, as `make up` runs it, in `scratch`.
struct System {
    child: Child,
    aws_port: u16,
    api_port: u16,
    local_dir: PathBuf,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Drop for System {
    fn drop(&mut self) {
        // SIGINT, as Ctrl-C: it stops its moto server; then make sure.
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl System {
    async fn start(bin: &Path, scratch: &Path) -> Result<Self> {
        let aws_port = free_port()?;
        let api_port = free_port()?;
        let local_dir = scratch.join(".local");
        let stdout = scratch.join("local-system.out");
        let stderr = scratch.join("local-system.err");
        // With `make up DEMO=1`'s tenants (acme, globex, gs1234): an example that takes one of
        // their ids clashes here as it would for a user who ran the demo.
        let child = Command::new(bin.join("local-system"))
            .arg("--demo")
            .current_dir(scratch)
            .env("LOCAL_AWS_PORT", aws_port.to_string())
            .env("LOCAL_API_PORT", api_port.to_string())
            .env("LOCAL_DIR", &local_dir)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout)?)
            .stderr(std::fs::File::create(&stderr)?)
            .spawn()
            .context("starting local-system")?;
        let mut system = System {
            child,
            aws_port,
            api_port,
            local_dir,
            stdout,
            stderr,
        };
        let started = Instant::now();
        let health = format!("http://127.0.0.1:{api_port}/health");
        loop {
            if let Some(status) = system.child.try_wait()? {
                bail!("local-system exited ({status}): {}", system.stderr_text());
            }
            let header = std::fs::read_to_string(&system.stdout)
                .is_ok_and(|out| out.lines().any(|l| l.starts_with("TENANT ")));
            let up = match reqwest::get(&health).await {
                Ok(answer) => answer.status().as_u16() == 200,
                Err(_) => false,
            };
            if header && up {
                return Ok(system);
            }
            ensure!(
                started.elapsed() < START_LIMIT,
                "local-system never answered /health: {}",
                system.stderr_text()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

/// The block as it runs here: the documented ports and `.local/` replaced by the harness's.
fn substitute(code: &str, aws_port: u16, api_port: u16, local_dir: &Path) -> String {
    let aws = Regex::new(r"\b(127\.0\.0\.1|localhost):4566\b").expect("regex");
    let api = Regex::new(r"\b(127\.0\.0\.1|localhost):3000\b").expect("regex");
    // `.local/` as a path of its own (not `~/.local/`, not `x.local/`).
    let local = Regex::new(r"(^|[^\w/~.])\.local/").expect("regex");
    let code = aws.replace_all(code, format!("${{1}}:{aws_port}"));
    let code = api.replace_all(&code, format!("${{1}}:{api_port}"));
    local
        .replace_all(&code, format!("${{1}}{}/", local_dir.display()).as_str())
        .into_owned()
}

/// The outcomes a block shows (`# umbrella: ready`), which its output must contain.
fn shown_outcomes(code: &str) -> Vec<String> {
    let shown =
        Regex::new(r"(?m)^# ([a-z][a-z0-9-]{2,39}: (?:ready|deleted|failed))\s*$").expect("regex");
    shown.captures_iter(code).map(|c| c[1].to_owned()).collect()
}

/// Bash's own variables (and the ones every shell has), never carried from block to block.
fn shell_variables() -> Result<BTreeSet<String>> {
    let out = Command::new("env")
        .args(["-i", "bash", "-c", "compgen -v"])
        .output()?;
    let mut names: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    // Still carried: what a user's shell keeps between pastes.
    names.remove("PATH");
    names.remove("HOME");
    for name in [
        "PWD",
        "OLDPWD",
        "SHLVL",
        "_",
        "BASH_REMATCH",
        "PIPESTATUS",
        "IFS",
    ] {
        names.insert(name.to_owned());
    }
    Ok(names)
}

struct Outcome {
    ok: bool,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// Runs one block in the file's session: the variables of the blocks before it loaded from
/// `state`, and saved there again after it.
async fn run_block(
    code: &str,
    scratch: &Path,
    state: &Path,
    env_path: &str,
    internal: &BTreeSet<String>,
) -> Result<Outcome> {
    let skip = internal
        .iter()
        .map(|n| regex::escape(n))
        .collect::<Vec<_>>()
        .join("|");
    let script = format!(
        "if [ -f {state} ]; then source {state}; fi\n\
         {code}\n\
         {{ for __v in $(compgen -v | grep -vxE '{skip}|__v'); do declare -p \"$__v\" 2>/dev/null; done; }} > {state}.new\n\
         mv {state}.new {state}\n",
        state = shell_quote(&state.display().to_string()),
    );
    let started = Instant::now();
    let mut command = tokio::process::Command::new("bash");
    command
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(scratch)
        .env_clear()
        .env("PATH", env_path)
        .env("HOME", scratch.join("home"))
        .env("USER", "docs-reader")
        .env("LANG", "C.UTF-8")
        .env("TERM", "dumb")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for keep in ["CARGO_TARGET_DIR", "MOTO_PYTHON", "TMPDIR"] {
        if let Some(value) = std::env::var_os(keep) {
            command.env(keep, value);
        }
    }
    let output = tokio::time::timeout(BLOCK_LIMIT, command.output())
        .await
        .map_err(|_| anyhow::anyhow!("timed out after {BLOCK_LIMIT:?}"))??;
    Ok(Outcome {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        took: started.elapsed(),
    })
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A scratch copy of the clone: every top-level entry symlinked (but `.local`, `target`),
/// a `bin/` with the workspace's `tenantctl`, and an empty `home/`.
fn scratch_dir(root: &Path, bin: &Path) -> Result<PathBuf> {
    let scratch = std::env::temp_dir().join(format!("docs-examples-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(scratch.join("home"))?;
    std::fs::create_dir_all(scratch.join("bin"))?;
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == ".local" || name == "target" {
            continue;
        }
        std::os::unix::fs::symlink(entry.path(), scratch.join(&name))?;
    }
    std::os::unix::fs::symlink(bin.join("tenantctl"), scratch.join("bin/tenantctl"))?;
    Ok(scratch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shell_block_of_the_docs_runs_as_written() -> Result<()> {
    let root = workspace_root();
    let mut blocks = Vec::new();
    for (name, text) in documents(&root)? {
        blocks.extend(shell_blocks(&name, &text)?);
    }
    ensure!(!blocks.is_empty(), "no shell blocks found");

    let venv_bin = root.join(".venv/bin");
    ensure!(
        venv_bin.join("aws").exists(),
        "no AWS CLI in {}: run `make docs-tools` (make test does)",
        venv_bin.display()
    );
    for tool in ["curl", "jq"] {
        ensure!(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()?
                .success(),
            "the examples need {tool} on PATH (make docs-tools installs it)"
        );
    }
    let bin = binaries()?;
    check_binaries(&bin)?;
    let scratch = scratch_dir(&root, &bin)?;
    let started = Instant::now();
    let system = System::start(&bin, &scratch).await?;
    println!(
        "local system up in {:.1?}: emulator :{}, API :{}, LOCAL_DIR {}",
        started.elapsed(),
        system.aws_port,
        system.api_port,
        system.local_dir.display()
    );

    let env_path = format!(
        "{}:{}:{}",
        scratch.join("bin").display(),
        venv_bin.display(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".to_owned())
    );
    let internal = shell_variables()?;
    let mut failures = Vec::new();
    let mut skipped = Vec::new();
    let mut ran = 0;
    for block in &blocks {
        let place = format!("{}:{}", block.file, block.line);
        if let Some(reason) = &block.skip {
            println!("skip {place}: {reason}");
            skipped.push(format!("{place}: {reason}"));
            continue;
        }
        let state = scratch.join(format!("session-{}.sh", block.file.replace('/', "-")));
        let code = substitute(
            &block.code,
            system.aws_port,
            system.api_port,
            &system.local_dir,
        );
        let outcome = match run_block(&code, &scratch, &state, &env_path, &internal).await {
            Ok(outcome) => outcome,
            Err(e) => {
                failures.push(format!("{place}: {e}"));
                continue;
            }
        };
        ran += 1;
        let missing: Vec<String> = shown_outcomes(&block.code)
            .into_iter()
            .filter(|shown| !outcome.stdout.contains(shown.as_str()))
            .collect();
        if outcome.ok && missing.is_empty() {
            println!("ok   {place} ({:.1?})", outcome.took);
        } else {
            println!("FAIL {place} ({:.1?})", outcome.took);
            let mut why = if outcome.ok {
                format!("printed none of: {}", missing.join(", "))
            } else {
                "exited non-zero".to_owned()
            };
            why.push_str(&format!(
                "\n--- block\n{}--- stdout\n{}--- stderr\n{}",
                block.code, outcome.stdout, outcome.stderr
            ));
            failures.push(format!("{place}: {why}"));
        }
    }
    println!(
        "\n{ran} blocks run, {} skipped, {} failed, in {:.1?}",
        skipped.len(),
        failures.len(),
        started.elapsed()
    );
    println!("skipped blocks:");
    for skip in &skipped {
        println!("  {skip}");
    }
    if !failures.is_empty() {
        let log = system.stderr_text();
        drop(system);
        bail!(
            "{} docs example(s) failed (the scratch directory, kept: {}):\n\n{}\n\n--- local-system stderr\n{log}",
            failures.len(),
            scratch.display(),
            failures.join("\n\n")
        );
    }
    drop(system);
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}

#[test]
fn the_parser_finds_shell_blocks_and_their_skip_markers() -> Result<()> {
    let text = "intro\n\n<!-- docs-test: skip (needs AWS) -->\n```sh\naws s3 ls\n```\n\n\
                ```bash\necho hi\n```\n\n```\nnot shell\n```\n\n\
                <!-- docs-test: skip (far away) -->\n\ntext between\n\n```sh\necho run\n```\n";
    let blocks = shell_blocks("x.md", text)?;
    let seen: Vec<(usize, &str, Option<&str>)> = blocks
        .iter()
        .map(|b| (b.line, b.code.as_str(), b.skip.as_deref()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (4, "aws s3 ls\n", Some("needs AWS")),
            (8, "echo hi\n", None),
            (20, "echo run\n", None),
        ]
    );
    assert!(shell_blocks("y.md", "<!-- docs-test: skip -->\n```sh\nx\n```\n").is_err());
    Ok(())
}

#[test]
fn the_documented_defaults_become_the_harness_ports() {
    let code = "source .local/writer.env\n\
                curl -s localhost:3000/tenants http://127.0.0.1:4566/x\n\
                export TENANTCTL_API_URL=http://127.0.0.1:3000\n\
                tenantctl completions bash > ~/.local/share/x; echo :30001 4566\n";
    let ran = substitute(code, 41000, 42000, Path::new("/tmp/h/.local"));
    assert_eq!(
        ran,
        "source /tmp/h/.local/writer.env\n\
         curl -s localhost:42000/tenants http://127.0.0.1:41000/x\n\
         export TENANTCTL_API_URL=http://127.0.0.1:42000\n\
         tenantctl completions bash > ~/.local/share/x; echo :30001 4566\n"
    );
    let shown =
        shown_outcomes("tenantctl tenants create x1 --wait\n# umbrella: ready\n# not: this one\n");
    assert_eq!(shown, vec!["umbrella: ready"]);
}

#[tokio::test]
async fn a_failing_command_fails_its_block_and_a_files_blocks_share_one_session() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("docs-examples-unit-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("home"))?;
    let state = dir.join("session.sh");
    let path = std::env::var("PATH").unwrap_or_default();
    let internal = shell_variables()?;
    let run = |code: &'static str| run_block(code, &dir, &state, &path, &internal);

    let set = run("ADMIN=token-1\nexport REGION=eu-west-1\nJSON='{\n  \"a\": 1\n}'\n").await?;
    assert!(set.ok, "{}", set.stderr);
    let read = run("test \"$ADMIN\" = token-1\ntest \"$REGION\" = eu-west-1\nsh -c 'test \"$REGION\" = eu-west-1'\necho \"$JSON\" | grep -q '\"a\": 1'\n").await?;
    assert!(read.ok, "{}", read.stderr);
    let failed = run("echo before\nfalse\necho after\n").await?;
    assert!(!failed.ok);
    assert_eq!(failed.stdout, "before\n");
    let unset = run("echo \"$NOT_SET_ANYWHERE\"\n").await?;
    assert!(!unset.ok, "set -u");
    let piped = run("false | cat\n").await?;
    assert!(!piped.ok, "pipefail");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
