//! The built `tenantctl` binary against the local system (`make up`'s): through the API with
//! locally signed tokens, and `--direct` against the table on moto server.

use std::time::Duration;

use anyhow::Result;
use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::tenant_cloudformation;
use local::emulator::free_port;
use local::system::{LocalConfig, RunningSystem};
use serde_json::Value;

const WAIT: &str = "90s";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }
}

struct Ctl<'a> {
    system: &'a RunningSystem,
}

impl Ctl<'_> {
    /// tenantctl with `args`, its environment set for the local system and nothing inherited
    /// that could point it elsewhere.
    async fn run(&self, token: Option<&str>, args: &[&str]) -> Result<Run> {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tenantctl"));
        command
            .args(args)
            .env(
                "TENANTCTL_API_URL",
                format!("http://{}", self.system.api_addr),
            )
            .env("AWS_ENDPOINT_URL", &self.system.emulator.endpoint)
            .env("AWS_REGION", &self.system.config.region)
            // The documented operator identity (`.local/operator.env`): the emulator enforces
            // IAM, and --direct runs the API's operations.
            .env("AWS_ACCESS_KEY_ID", &self.system.identities.operator.id)
            .env(
                "AWS_SECRET_ACCESS_KEY",
                &self.system.identities.operator.secret,
            )
            .env("PREVIEW_QUEUE_URL", &self.system.preview_queue_url)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("TABLE_NAME", &self.system.config.table)
            .env_remove("TENANTCTL_TOKEN")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .kill_on_drop(true);
        if let Some(token) = token {
            command.env("TENANTCTL_TOKEN", token);
        }
        let output = tokio::time::timeout(Duration::from_secs(180), command.output()).await??;
        Ok(Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

fn ids(listing: &Value) -> Vec<String> {
    let mut ids: Vec<String> = listing["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["tenant_id"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

async fn stack_parameter(
    system: &RunningSystem,
    account: &str,
    tenant: &str,
    name: &str,
) -> Result<Option<String>> {
    let cfn = tenant_cloudformation(&system.identities, account).await?;
    let stacks = cfn
        .describe_stacks()
        .stack_name(format!("tenant-{tenant}"))
        .send()
        .await?;
    Ok(stacks.stacks().first().and_then(|s| {
        s.parameters()
            .iter()
            .find(|p| p.parameter_key() == Some(name))
            .and_then(|p| p.parameter_value().map(str::to_owned))
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenantctl_drives_the_local_system_through_the_api_and_directly() -> Result<()> {
    let system = RunningSystem::start(LocalConfig {
        aws_port: free_port()?,
        api_port: 0,
        ..LocalConfig::default()
    })
    .await?;
    let ctl = Ctl { system: &system };
    let admin = system
        .tokens
        .mint("ops@example.com", None, 1)
        .map_err(anyhow::Error::msg)?;
    let acme_user = system
        .tokens
        .mint("user@acme", Some("acme"), 1)
        .map_err(anyhow::Error::msg)?;
    let admin = Some(admin.as_str());

    // Through the API: create and follow it to ready.
    let created = ctl
        .run(
            admin,
            &[
                "tenants",
                "create",
                "acme",
                "--account",
                "222222222222",
                "--config",
                "player_count=12",
                "--config",
                "difficulty=hard",
                "--wait",
                "--timeout",
                WAIT,
            ],
        )
        .await?;
    assert_eq!(created.code, 0, "{created:?}");
    assert_eq!(created.stdout.trim(), "acme: ready", "{created:?}");

    // Update a config entry; it is ready with the new stack parameter.
    let updated = ctl
        .run(
            admin,
            &[
                "tenants",
                "update",
                "acme",
                "--config",
                "player_count=20",
                "--wait",
                "--timeout",
                WAIT,
                "--output",
                "json",
            ],
        )
        .await?;
    assert_eq!(updated.code, 0, "{updated:?}");
    let view = updated.json();
    assert_eq!(view["status"], "ready", "{updated:?}");
    assert_eq!(view["config"]["player_count"], 20);
    assert_eq!(view["config"]["difficulty"], "hard");
    assert_eq!(
        stack_parameter(&system, "222222222222", "acme", "PlayerCount")
            .await?
            .as_deref(),
        Some("20")
    );

    let got = ctl
        .run(
            Some(&acme_user),
            &["tenants", "get", "acme", "--output", "json"],
        )
        .await?;
    assert_eq!(got.code, 0, "{got:?}");
    let view = got.json();
    assert_eq!(view["tenant_id"], "acme");
    assert_eq!(view["status"], "ready");
    // An admin wrote it: its tenant is shown "operator", never the admin's identity.
    assert_eq!(view["updated_by"], "operator");
    assert!(
        view["outputs"].as_object().is_some_and(|o| !o.is_empty()),
        "{got:?}"
    );
    let table = ctl.run(admin, &["tenants", "get", "acme"]).await?;
    assert!(
        table.stdout.contains("player_count=20") && table.stdout.contains("etag"),
        "{table:?}"
    );

    // Directly against the table, as automation does, naming its actor.
    for tenant in ["extra-0", "extra-1", "extra-2"] {
        let direct = ctl
            .run(
                None,
                &[
                    "--direct",
                    "--as",
                    "automation@ci",
                    "tenants",
                    "create",
                    tenant,
                    "--account",
                    "111111111111",
                    "--config-json",
                    r#"{"seed": "s-1"}"#,
                ],
            )
            .await?;
        assert_eq!(direct.code, 0, "{direct:?}");
        assert!(
            direct.stdout.starts_with(&format!("{tenant}: ")),
            "{direct:?}"
        );
    }
    let again = ctl
        .run(
            None,
            &[
                "--direct",
                "tenants",
                "create",
                "extra-0",
                "--account",
                "111111111111",
            ],
        )
        .await?;
    assert_eq!(again.code, 4, "{again:?}");
    assert!(again.stderr.contains("already exists"), "{again:?}");

    // Template versions: v2 (an extra output) published directly, as automation does, checked
    // by the emulator's ValidateTemplate; listed through the API; a repeat is harmless.
    let v2_file =
        std::env::temp_dir().join(format!("tenantctl-e2e-v2-{}.yaml", std::process::id()));
    std::fs::write(
        &v2_file,
        format!(
            "{}  TemplateVersion:\n    Value: v2\n",
            controlplane::template_source::SAMPLE_TEMPLATE
        ),
    )?;
    let v2_path = v2_file.to_string_lossy().into_owned();
    let publish = [
        "template",
        "publish",
        v2_path.as_str(),
        "--version",
        "v2",
        "--description",
        "an extra output",
    ];
    let published = ctl
        .run(
            None,
            &[&["--direct", "--as", "automation@ci"][..], &publish[..]].concat(),
        )
        .await?;
    assert_eq!(published.code, 0, "{published:?}");
    assert!(
        published.stdout.starts_with("v2: published"),
        "{published:?}"
    );
    let repeated = ctl.run(admin, &publish).await?;
    assert_eq!(repeated.code, 0, "{repeated:?}");
    assert!(
        repeated.stdout.contains("already published"),
        "{repeated:?}"
    );
    let listed = ctl.run(admin, &["template", "list", "-o", "json"]).await?;
    assert_eq!(listed.code, 0, "{listed:?}");
    let versions = listed.json();
    assert_eq!(versions["current"], "v1", "{listed:?}");
    let v2 = versions["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["version"] == "v2")
        .cloned()
        .unwrap_or_default();
    assert_eq!(v2["published_by"], "automation@ci", "{listed:?}");
    let table = ctl.run(None, &["--direct", "template", "list"]).await?;
    assert!(
        table.stdout.lines().any(|l| l.starts_with("v2 ")),
        "{table:?}"
    );
    let _ = std::fs::remove_file(&v2_file);

    // Previewed by the preview function (the API records and queues it; tenantctl follows it):
    // every tenant on v1 gets a change set (v2 adds only an output: no resource changes).
    let planned = ctl
        .run(admin, &["rollout", "plan", "v2", "--all", "-o", "json"])
        .await?;
    assert_eq!(planned.code, 0, "{planned:?}");
    let plan = planned.json();
    assert_eq!(plan["state"], "done", "{planned:?}");
    let previews = plan["previews"].as_array().cloned().unwrap_or_default();
    assert!(!previews.is_empty(), "{planned:?}");
    for preview in &previews {
        assert_eq!(preview["from_version"], "v1", "{planned:?}");
    }
    assert!(
        previews
            .iter()
            .any(|p| p["tenant_id"] == "acme" && p.get("error").is_none()),
        "{planned:?}"
    );
    // The same as automation, straight to the table (as the operator identity): a sample.
    let sampled = ctl
        .run(
            None,
            &[
                "--direct", "rollout", "plan", "v2", "--sample", "1", "-o", "json",
            ],
        )
        .await?;
    assert_eq!(sampled.code, 0, "{sampled:?}");
    assert_eq!(sampled.json()["previewed"], 1, "{sampled:?}");

    // Rolled out to the whole fleet by the local rollout driver, followed to completion.
    let rolled = ctl
        .run(
            admin,
            &[
                "rollout",
                "start",
                "v2",
                "--bake",
                "0s",
                "--wait",
                "--timeout",
                WAIT,
                "-o",
                "json",
            ],
        )
        .await?;
    assert_eq!(rolled.code, 0, "{rolled:?}");
    let rollout = rolled.json();
    assert_eq!(rollout["state"], "completed", "{rolled:?}");
    assert_eq!(rollout["counts"]["done"], 4, "{rolled:?}");
    // stderr is no terminal here: plain progress lines, one per change, ending completed.
    let progress: Vec<&str> = rolled
        .stderr
        .lines()
        .filter(|l| l.contains(" · state "))
        .collect();
    assert!(
        progress
            .last()
            .is_some_and(|l| l.contains("done 4") && l.ends_with("state completed")),
        "{rolled:?}"
    );
    assert!(progress.windows(2).all(|w| w[0] != w[1]), "{rolled:?}");
    let status = ctl.run(None, &["--direct", "rollout", "status"]).await?;
    assert_eq!(status.code, 0, "{status:?}");
    assert!(
        status.stdout.contains("completed") && status.stdout.contains("v1 -> v2"),
        "{status:?}"
    );
    let listed = ctl.run(admin, &["template", "list", "-o", "json"]).await?;
    assert_eq!(listed.json()["current"], "v2", "{listed:?}");

    // The same validation either way: refused, every field named.
    for direct in [false, true] {
        let mut args = vec![
            "tenants",
            "create",
            "broken",
            "--account",
            "111111111111",
            "--config",
            "player_count=lots",
        ];
        if direct {
            args.insert(0, "--direct");
        }
        let refused = ctl.run(admin, &args).await?;
        assert_eq!(refused.code, 1, "{refused:?}");
        assert!(
            refused.stderr.contains("The tenant is not valid")
                && refused.stderr.contains("config.player_count"),
            "{refused:?}"
        );
    }

    // Paging, two at a time, through the API and directly.
    for direct in [false, true] {
        let mut args = vec![
            "tenants", "list", "--limit", "2", "--all", "--output", "json",
        ];
        if direct {
            args.insert(0, "--direct");
        }
        let listed = ctl.run(admin, &args).await?;
        assert_eq!(listed.code, 0, "{listed:?}");
        assert_eq!(
            ids(&listed.json()),
            vec!["acme", "extra-0", "extra-1", "extra-2"],
            "{listed:?}"
        );
    }
    let first = ctl
        .run(
            admin,
            &["tenants", "list", "--limit", "2", "--output", "json"],
        )
        .await?;
    assert_eq!(first.json()["items"].as_array().map(Vec::len), Some(2));
    assert!(first.json()["next"].is_string(), "{first:?}");

    // A tenant's token on another tenant: not found, exit 3.
    let other = ctl
        .run(Some(&acme_user), &["tenants", "get", "extra-0"])
        .await?;
    assert_eq!(other.code, 3, "{other:?}");
    assert!(
        other.stderr.contains("Not found (404)")
            && other.stderr.contains("there is no tenant \"extra-0\""),
        "{other:?}"
    );

    // Direct update, followed to ready, recorded as the actor.
    let direct_update = ctl
        .run(
            None,
            &[
                "--direct",
                "--as",
                "automation@ci",
                "tenants",
                "update",
                "extra-1",
                "--config",
                "player_count=3",
                "--wait",
                "--timeout",
                WAIT,
                "-o",
                "json",
            ],
        )
        .await?;
    assert_eq!(direct_update.code, 0, "{direct_update:?}");
    let view = direct_update.json();
    assert_eq!(view["status"], "ready", "{direct_update:?}");
    assert_eq!(view["updated_by"], "automation@ci");
    assert_eq!(
        view["config"],
        serde_json::json!({"seed": "s-1", "player_count": 3})
    );

    // Delete through the API and directly; both followed to deleted.
    let deleted = ctl
        .run(
            admin,
            &["tenants", "delete", "acme", "--wait", "--timeout", WAIT],
        )
        .await?;
    assert_eq!(deleted.code, 0, "{deleted:?}");
    assert_eq!(deleted.stdout.trim(), "acme: deleted", "{deleted:?}");
    let deleted = ctl
        .run(
            None,
            &[
                "--direct",
                "--as",
                "automation@ci",
                "tenants",
                "delete",
                "extra-0",
                "--wait",
                "--timeout",
                WAIT,
            ],
        )
        .await?;
    assert_eq!(deleted.code, 0, "{deleted:?}");
    assert_eq!(deleted.stdout.trim(), "extra-0: deleted", "{deleted:?}");
    assert_eq!(
        stack_parameter(&system, "222222222222", "acme", "PlayerCount")
            .await
            .ok()
            .flatten(),
        None
    );

    // The timeline names who asked.
    let events = ctl.run(admin, &["tenants", "events", "acme"]).await?;
    assert_eq!(events.code, 0, "{events:?}");
    assert!(
        events
            .stdout
            .lines()
            .any(|l| l.contains("spec-removed") && l.contains("ops@example.com")),
        "{events:?}"
    );
    let events = ctl
        .run(
            None,
            &[
                "--direct", "tenants", "events", "extra-0", "--all", "-o", "json",
            ],
        )
        .await?;
    assert_eq!(events.code, 0, "{events:?}");
    let removal = events.json()["items"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|e| e["action"] == "spec-removed" && e["actor"] == "automation@ci");
    assert!(removal, "{events:?}");

    // Usage errors, and an API that is not there.
    let nothing = ctl.run(admin, &["tenants", "update", "extra-2"]).await?;
    assert_eq!(nothing.code, 2, "{nothing:?}");
    let bad_account = ctl
        .run(admin, &["tenants", "create", "x", "--account", "12"])
        .await?;
    assert_eq!(bad_account.code, 2, "{bad_account:?}");
    let unreachable = ctl
        .run(
            admin,
            &[
                "--api-url",
                &format!("http://127.0.0.1:{}", free_port()?),
                "tenants",
                "list",
            ],
        )
        .await?;
    assert_eq!(unreachable.code, 6, "{unreachable:?}");
    let unauthenticated = ctl.run(None, &["tenants", "list"]).await?;
    assert_eq!(unauthenticated.code, 1, "{unauthenticated:?}");
    assert!(
        unauthenticated.stderr.contains("tenantctl token"),
        "{unauthenticated:?}"
    );

    let completions = ctl.run(None, &["completions", "bash"]).await?;
    assert_eq!(completions.code, 0, "{completions:?}");
    assert!(completions.stdout.contains("tenantctl"), "{completions:?}");

    system.shutdown().await;
    Ok(())
}

/// A row of string attributes, as a writer puts it.
fn row(attributes: &[(&str, &str)]) -> std::collections::HashMap<String, AttributeValue> {
    attributes
        .iter()
        .map(|(name, value)| ((*name).to_owned(), AttributeValue::S((*value).to_owned())))
        .collect()
}

/// Writes that break the key contract get no answer from the control plane: `doctor` names
/// each (exit 1); and a SPEC under an id the API refuses (`t1`) is still a tenant, read, listed
/// and removed by that id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_broken_keys_and_a_tenant_under_a_bad_id_is_still_reachable() -> Result<()> {
    let system = RunningSystem::start(LocalConfig {
        aws_port: free_port()?,
        api_port: 0,
        ..LocalConfig::default()
    })
    .await?;
    let ctl = Ctl { system: &system };
    let admin = system
        .tokens
        .mint("ops@example.com", None, 1)
        .map_err(anyhow::Error::msg)?;
    let admin = Some(admin.as_str());
    let clean = ctl.run(None, &["doctor"]).await?;
    assert_eq!(clean.code, 0, "{clean:?}");
    assert!(clean.stdout.contains("keeps the key contract"), "{clean:?}");

    // Put as an administrator would (the writer identity reaches `TENANT#*` partitions only).
    let table = &system.config.table;
    let dynamo = aws_sdk_dynamodb::Client::new(&system.sdk);
    let account = ("account_id", "111111111111");
    for item in [
        row(&[
            ("pk", "tenant#lower"),
            ("sk", "SPEC"),
            ("tenant_id", "lower"),
            account,
        ]),
        row(&[
            ("pk", "TENANT#lowsk"),
            ("sk", "spec"),
            ("tenant_id", "lowsk"),
            account,
        ]),
        row(&[("pk", "TENANT#noid"), ("sk", "SPEC"), account]),
        row(&[
            ("pk", "TENANT#other"),
            ("sk", "SPEC"),
            ("tenant_id", "globex"),
            account,
        ]),
        row(&[
            ("pk", "TENANT#spaced "),
            ("sk", "SPEC"),
            ("tenant_id", "spaced"),
            account,
        ]),
        row(&[
            ("pk", "TENANT#oddsk"),
            ("sk", "CONFIG"),
            ("tenant_id", "oddsk"),
            account,
        ]),
        row(&[
            ("pk", "bare"),
            ("sk", "SPEC"),
            ("tenant_id", "bare"),
            account,
        ]),
        row(&[
            ("pk", "TENANT#t1"),
            ("sk", "SPEC"),
            ("tenant_id", "t1"),
            account,
        ]),
    ] {
        dynamo
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .send()
            .await?;
    }
    let found = ctl.run(None, &["doctor"]).await?;
    assert_eq!(found.code, 1, "{found:?}");
    for expected in [
        "pk \"tenant#lower\" sk \"SPEC\": pk \"tenant#lower\" must start with \"TENANT#\" exactly",
        "sk \"spec\" must be exactly \"SPEC\"",
        "pk \"TENANT#noid\" sk \"SPEC\": tenant_id: is required",
        "tenant_id: must equal the pk suffix",
        "pk \"TENANT#spaced \" holds whitespace",
        "sk \"CONFIG\" is unknown",
        "pk \"bare\" lacks the \"TENANT#\" prefix",
        "pk \"TENANT#t1\" sk \"SPEC\": tenant_id: must be 3-40",
        "fix: put the row again under pk \"TENANT#lower\", sk \"SPEC\"",
        "9 problem(s)",
    ] {
        assert!(found.stdout.contains(expected), "{expected:?} in {found:?}");
    }
    let json = ctl.run(None, &["doctor", "-o", "json"]).await?;
    assert_eq!(json.code, 1, "{json:?}");
    assert_eq!(json.json()["problems"].as_array().map(Vec::len), Some(9));

    // t1's SPEC is invalid: the control plane records it failed, under its own id.
    let mut read = ctl
        .run(admin, &["tenants", "get", "t1", "-o", "json"])
        .await?;
    for _ in 0..60 {
        if read.code == 0 && read.json()["status"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        read = ctl
            .run(admin, &["tenants", "get", "t1", "-o", "json"])
            .await?;
    }
    assert_eq!(read.code, 0, "{read:?}");
    assert_eq!(read.json()["status"], "failed", "{read:?}");
    let direct = ctl.run(None, &["--direct", "tenants", "get", "t1"]).await?;
    assert_eq!(direct.code, 0, "{direct:?}");
    assert!(
        direct.stdout.contains("tenant_id: must be 3-40"),
        "{direct:?}"
    );
    // Listed, and so is the SPEC without a tenant_id (no index holds it), once recorded.
    for _ in 0..60 {
        let noid = ctl
            .run(admin, &["tenants", "get", "noid", "-o", "json"])
            .await?;
        if noid.code == 0 && noid.json()["status"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    for direct in [false, true] {
        let args: &[&str] = if direct {
            &["--direct", "tenants", "list", "-o", "json"]
        } else {
            &["tenants", "list", "-o", "json"]
        };
        let listed = ctl.run(admin, args).await?;
        let listed_ids = ids(&listed.json());
        assert!(
            listed_ids.contains(&"t1".to_owned()) && listed_ids.contains(&"noid".to_owned()),
            "{listed:?}"
        );
    }
    let deleted = ctl
        .run(
            admin,
            &["tenants", "delete", "t1", "--wait", "--timeout", WAIT],
        )
        .await?;
    assert_eq!(deleted.code, 0, "{deleted:?}");
    Ok(())
}

/// `tenantctl tenants drift` shows the drift job's last check, per tenant and across the fleet;
/// the drift policy is set on create. moto cannot detect drift, so the check shows why not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_drift_shows_each_tenants_last_drift_check() -> Result<()> {
    let system = RunningSystem::start(LocalConfig {
        aws_port: free_port()?,
        api_port: 0,
        drift_interval: Duration::from_secs(2),
        ..LocalConfig::default()
    })
    .await?;
    let ctl = Ctl { system: &system };
    let admin = system
        .tokens
        .mint("ops@example.com", None, 1)
        .map_err(anyhow::Error::msg)?;
    let admin = Some(admin.as_str());
    let created = ctl
        .run(
            admin,
            &[
                "tenants",
                "create",
                "acme",
                "--account",
                "222222222222",
                "--drift-policy",
                "revert",
                "--wait",
                "--timeout",
                WAIT,
                "--output",
                "json",
            ],
        )
        .await?;
    assert_eq!(created.code, 0, "{created:?}");
    assert_eq!(created.json()["drift_policy"], "revert", "{created:?}");

    let mut drift = Value::Null;
    for _ in 0..60 {
        let shown = ctl
            .run(admin, &["tenants", "drift", "acme", "--output", "json"])
            .await?;
        assert_eq!(shown.code, 0, "{shown:?}");
        drift = shown.json();
        if drift["status"] == "not_checked" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(drift["status"], "not_checked", "{drift}");
    let text = ctl.run(admin, &["tenants", "drift", "acme"]).await?;
    assert!(
        text.stdout
            .contains("acme: not checked: DetectStackDrift failed"),
        "{text:?}"
    );
    let fleet = ctl.run(admin, &["tenants", "drift"]).await?;
    assert_eq!(fleet.code, 0, "{fleet:?}");
    assert!(
        fleet.stdout.contains("acme") && fleet.stdout.contains("not_checked"),
        "{fleet:?}"
    );
    let drifted_only = ctl
        .run(
            admin,
            &["tenants", "drift", "--drifted", "--output", "json"],
        )
        .await?;
    assert_eq!(
        drifted_only.json(),
        serde_json::json!([]),
        "{drifted_only:?}"
    );
    Ok(())
}
