//! tenantctl: the operator's command line for the tenant control plane.

mod backend;
mod cli;
mod commands;
mod doctor;
mod failure;
mod fleet;
mod follow;
mod output;
mod plan;
mod progress;
mod request;
mod watch;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::*;
use crate::commands::*;
use crate::failure::Failure;
use crate::output::Format;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = cli.global.output;
    let direct = cli.global.direct;
    let had_token = cli.global.token.is_some() || direct;
    match run(cli).await {
        Ok(exit) => exit.into(),
        Err(failure) => {
            report(&failure, format, had_token, direct);
            failure.exit().into()
        }
    }
}

fn report(failure: &Failure, format: Format, had_token: bool, direct: bool) {
    match (failure, format) {
        (Failure::Problem(problem), Format::Json) => eprintln!("{}", output::json(problem)),
        _ => eprintln!("{failure}"),
    }
    // The operations' 5xx point to the API's log, which --direct has not got.
    if let Failure::Problem(problem) = failure
        && problem.status >= 500
        && direct
    {
        eprintln!("{DIRECT_UNREACHABLE_HINT}");
    }
    if let Failure::Problem(problem) = failure
        && problem.status == 401
        && !had_token
    {
        eprintln!("  give --token or TENANTCTL_TOKEN (for the local system: `tenantctl token`)");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use controlplane::ports::StackError;
    use controlplane::reconcile::Reconciler;
    use controlplane::testing::{FakeStacks, FakeTemplateValidator, InMemoryStore, World};
    use model::spec::TenantKey;

    use std::time::Duration;

    use api::ApiState;
    use clap::CommandFactory;
    use serde_json::Value;

    use super::*;
    use crate::backend::{Backend, Direct};
    use crate::failure::Exit;
    use crate::fleet::{RolloutCommand, TemplateCommand};
    use crate::request::CreateRequest;

    /// `--direct` over the in-memory table, and the control plane acting on it.
    fn world() -> (Backend, Reconciler, Arc<FakeStacks>) {
        let store = Arc::new(InMemoryStore::default());
        let stacks = Arc::new(FakeStacks::default());
        let state = ApiState::on_table(
            store.clone(),
            Arc::new(FakeTemplateValidator::default()),
            Arc::new(controlplane::testing::FakeTemplateObjects::default()),
            "us-east-1",
        )
        .expect("the shipped template");
        let reconciler = World::builder()
            .store(store)
            .stacks(stacks.clone())
            .templates(state.templates.clone())
            .build()
            .reconciler;
        (
            Backend::Direct(Direct::new(state, "tester")),
            reconciler,
            stacks,
        )
    }

    fn waiting(millis: u64) -> Wait {
        Wait {
            wait: true,
            timeout: Duration::from_millis(millis),
        }
    }

    #[test]
    fn the_arguments_parse_as_documented() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "tenantctl",
            "tenants",
            "create",
            "acme",
            "--account",
            "222222222222",
            "--config",
            "player_count=5",
            "--wait",
            "--direct",
            "--as",
            "ci",
            "-o",
            "json",
        ])
        .expect("parses");
        assert!(cli.global.direct && cli.global.actor == "ci");
        assert_eq!(cli.global.output, Format::Json);
        let Command::Tenants(TenantsCommand::Create { config, wait, .. }) = cli.command else {
            panic!("not a create");
        };
        assert_eq!(
            Value::Object(config.config()),
            serde_json::json!({"player_count": 5})
        );
        assert!(wait.wait && wait.timeout == Duration::from_secs(600));
        // --timeout means nothing without --wait; a bad account is a usage error.
        for args in [
            &["tenantctl", "tenants", "retry", "acme", "--timeout", "5s"][..],
            &["tenantctl", "tenants", "create", "acme", "--account", "12"][..],
            &[
                "tenantctl",
                "tenants",
                "update",
                "acme",
                "--decommission-date",
                "2030-01-01",
                "--clear-decommission-date",
            ][..],
        ] {
            let error = Cli::try_parse_from(args).err().expect("refused");
            assert_eq!(error.exit_code(), Exit::Usage as i32, "{args:?}");
        }
    }

    #[test]
    fn the_help_shows_the_api_url_and_token_as_optional_with_env_and_default() {
        let mut command = Cli::command();
        // Global arguments reach subcommands when the command is built.
        command.build();
        let get = command
            .find_subcommand_mut("tenants")
            .and_then(|tenants| tenants.find_subcommand_mut("get"))
            .expect("tenants get");
        let help = get.render_help().to_string();
        let line = |flag: &str| {
            help.lines()
                .find(|l| l.trim_start().starts_with(flag))
                .unwrap_or_else(|| panic!("{flag} in\n{help}"))
                .to_owned()
        };
        let api_url = line("--api-url");
        assert!(api_url.contains("--api-url <URL>"), "{api_url}");
        assert!(api_url.contains("(optional"), "{api_url}");
        assert!(api_url.contains("[env: TENANTCTL_API_URL]"), "{api_url}");
        assert!(
            api_url.contains("[default: http://127.0.0.1:3000]"),
            "{api_url}"
        );
        let token = line("--token");
        assert!(token.contains("--token <TOKEN>"), "{token}");
        assert!(token.contains("(optional"), "{token}");
        assert!(token.contains("[env: TENANTCTL_TOKEN]"), "{token}");
        // Neither is in the usage line, where required arguments are.
        let usage = help.lines().find(|l| l.starts_with("Usage:")).unwrap();
        assert!(
            !usage.contains("--api-url") && !usage.contains("--token"),
            "{usage}"
        );
    }

    #[tokio::test]
    async fn wait_exits_by_the_final_status() {
        let (backend, reconciler, stacks) = world();
        let key = TenantKey::new("acme");
        let body = CreateRequest {
            tenant_id: "acme".into(),
            account_id: "222222222222".into(),
            ..CreateRequest::default()
        }
        .body();
        let created = backend.create(&body, None).await.expect("created");
        assert_eq!(created.view.status, "pending");
        assert_eq!(created.view.updated_by.as_deref(), Some("tester"));

        // Never picked up: timed out, exit 5.
        let timed_out = written(&backend, created.clone(), waiting(30), Format::Json, false)
            .await
            .expect_err("times out");
        assert_eq!(timed_out.exit(), Exit::Timeout);
        assert!(
            timed_out.to_string().contains("still pending"),
            "{timed_out}"
        );

        // CloudFormation refuses for good: failed, exit 1.
        stacks.fail_next(
            "create",
            StackError::Rejected("the template is wrong".into()),
        );
        reconciler.reconcile(&key).await.expect("reconcile");
        let failed = written(&backend, created, waiting(5_000), Format::Json, false).await;
        assert_eq!(failed.expect("followed"), Exit::Refused);

        // Retried and provisioned: ready, exit 0.
        let retried = backend.retry("acme").await.expect("retried");
        for _ in 0..3 {
            reconciler.reconcile(&key).await.expect("reconcile");
            stacks.finish_in_progress();
        }
        let ready = written(&backend, retried, waiting(5_000), Format::Json, false).await;
        assert_eq!(ready.expect("followed"), Exit::Ok);
        assert_eq!(
            backend.get("acme").await.expect("read").view.status,
            "ready"
        );
    }

    #[test]
    fn the_fleet_commands_parse_as_documented() {
        let cli = Cli::try_parse_from([
            "tenantctl",
            "rollout",
            "start",
            "v2",
            "--tenants",
            "acme,globex",
            "--config",
            "tier=gold",
            "--config",
            "region=eu",
            "--percent",
            "50",
            "--canary",
            "5%",
            "--bake",
            "10m",
            "--growth",
            "3",
            "--wave-bake",
            "30s",
            "--max-concurrency",
            "10%",
            "--failure-tolerance",
            "2",
            "--no-auto-rollback",
            "--wait",
            "-o",
            "json",
        ])
        .expect("parses");
        assert_eq!(cli.global.output, Format::Json);
        let Command::Rollout(RolloutCommand::Start {
            version,
            selection,
            options,
            wait,
            timeout,
        }) = cli.command
        else {
            panic!("not a rollout start");
        };
        assert_eq!(version, "v2");
        assert_eq!(selection.tenants, ["acme", "globex"]);
        assert_eq!(selection.config.len(), 2);
        assert_eq!(selection.percent, Some(50));
        assert_eq!(options.bake, Some(Duration::from_secs(600)));
        assert_eq!(options.wave_bake, Some(Duration::from_secs(30)));
        assert_eq!(
            options.max_concurrency,
            Some(model::rollout::Amount::Percent(10))
        );
        assert!(options.no_auto_rollback && wait && timeout.is_none());

        let cli = Cli::try_parse_from([
            "tenantctl",
            "template",
            "publish",
            "v2.yaml",
            "--version",
            "v2",
            "--description",
            "longer retention",
        ])
        .expect("parses");
        assert!(matches!(
            cli.command,
            Command::Template(TemplateCommand::Publish { ref version, .. }) if version == "v2"
        ));
        let cli =
            Cli::try_parse_from(["tenantctl", "rollout", "plan", "v2", "--all"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Rollout(RolloutCommand::Plan {
                all: true,
                sample: 10,
                ..
            })
        ));
        let cli =
            Cli::try_parse_from(["tenantctl", "rollout", "status", "--watch"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Rollout(RolloutCommand::Status {
                id: None,
                watch: true,
                ..
            })
        ));
        for args in [
            &["tenantctl", "rollout", "start", "v2", "--canary", "150%"][..],
            &["tenantctl", "rollout", "start", "v2", "--percent", "0"][..],
            &["tenantctl", "rollout", "start", "v2", "--bake", "soon"][..],
            &["tenantctl", "rollout", "start", "v2", "--timeout", "1h"][..],
            &[
                "tenantctl",
                "rollout",
                "plan",
                "v2",
                "--all",
                "--sample",
                "3",
            ][..],
            &["tenantctl", "rollout", "pause"][..],
            &["tenantctl", "template", "publish", "v2.yaml"][..],
        ] {
            let error = Cli::try_parse_from(args).err().expect("refused");
            assert_eq!(error.exit_code(), Exit::Usage as i32, "{args:?}");
        }
    }

    /// `--direct` with the rollout driver and template checks over the in-memory table.
    struct Fleet {
        backend: Backend,
        state: ApiState,
        store: Arc<InMemoryStore>,
        reconciler: Reconciler,
        stacks: Arc<FakeStacks>,
    }

    fn fleet() -> Fleet {
        let store = Arc::new(InMemoryStore::default());
        let stacks = Arc::new(FakeStacks::default());
        let state = ApiState::on_table(
            store.clone(),
            Arc::new(FakeTemplateValidator::default()),
            Arc::new(controlplane::testing::FakeTemplateObjects::default()),
            "us-east-1",
        )
        .expect("the shipped template");
        let reconciler = World::builder()
            .store(store.clone())
            .stacks(stacks.clone())
            .templates(state.templates.clone())
            .build()
            .reconciler;
        Fleet {
            backend: Backend::Direct(Direct::new(state.clone(), "tester")),
            state,
            store,
            reconciler,
            stacks,
        }
    }

    impl Fleet {
        async fn ready(&self, tenant: &str) {
            let body = CreateRequest {
                tenant_id: tenant.into(),
                account_id: "222222222222".into(),
                ..CreateRequest::default()
            }
            .body();
            self.backend.create(&body, None).await.expect("created");
            self.settle(tenant).await;
        }

        async fn settle(&self, tenant: &str) {
            for _ in 0..3 {
                self.reconciler
                    .reconcile(&TenantKey::new(tenant))
                    .await
                    .expect("reconcile");
                self.stacks.finish_in_progress();
            }
        }

        async fn publish(&self, version: &str, body: &str) {
            let published = self
                .backend
                .publish_template(&serde_json::json!({"version": version, "body": body}))
                .await
                .expect("published");
            assert!(!published.already);
        }
    }

    fn v2_body() -> String {
        controlplane::template_source::SAMPLE_TEMPLATE.replace(
            "MessageRetentionPeriod: 345600",
            "MessageRetentionPeriod: 1209600",
        )
    }

    /// A CDK cloud assembly, as `cdk synth` writes it: the manifest and each stack's template.
    fn cloud_assembly(name: &str, stacks: &[(&str, String)]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("tenantctl-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cdk.out");
        let mut artifacts = serde_json::Map::new();
        artifacts.insert("Tree".into(), serde_json::json!({"type": "cdk:tree"}));
        for (stack, template) in stacks {
            let file = format!("{stack}.template.json");
            std::fs::write(dir.join(&file), template).expect("template");
            artifacts.insert(
                (*stack).into(),
                serde_json::json!({"type": "aws:cloudformation:stack",
                                   "environment": "aws://unknown-account/unknown-region",
                                   "properties": {"templateFile": file}}),
            );
        }
        let manifest = serde_json::json!({"version": "36.0.0", "artifacts": artifacts});
        std::fs::write(dir.join("manifest.json"), manifest.to_string()).expect("manifest");
        dir
    }

    /// Publishing warns of every action the template's resource types need that the deploy
    /// policy does not allow: the bootstrap's DefaultDeployPolicy covers the shipped sample and
    /// nothing like a Lambda function; a policy given with --deploy-policy is read instead.
    #[test]
    fn publish_names_what_the_deploy_policy_does_not_allow() {
        let sample = controlplane::template_source::SAMPLE_TEMPLATE;
        let gaps = crate::fleet::deploy_policy_gaps(sample, None).expect("checked");
        assert!(gaps.is_empty(), "the default covers the sample: {gaps:?}");

        let with_function = "Resources:\n  Jobs:\n    Type: AWS::SQS::Queue\n  Worker:\n    Type: AWS::Lambda::Function\n";
        let gaps = crate::fleet::deploy_policy_gaps(with_function, None).expect("checked");
        let lambda = &gaps.missing["AWS::Lambda::Function"];
        assert!(lambda.contains("lambda:CreateFunction"), "{lambda:?}");
        assert!(lambda.contains("iam:PassRole"), "{lambda:?}");
        assert_eq!(gaps.missing.len(), 1, "{gaps:?}");

        let policy =
            std::env::temp_dir().join(format!("deploy-policy-{}.json", std::process::id()));
        std::fs::write(
            &policy,
            r#"{"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"},
                {"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"}]}"#,
        )
        .expect("written");
        let gaps = crate::fleet::deploy_policy_gaps(with_function, Some(&policy)).expect("checked");
        assert!(gaps.is_empty(), "{gaps:?}");
        std::fs::write(&policy, "not json").expect("written");
        assert!(crate::fleet::deploy_policy_gaps(sample, Some(&policy)).is_err());
    }

    /// `template publish cdk.out` publishes the assembly's stack template (over CloudFormation's
    /// inline limit too); a template synthesised with the default synthesizer is refused,
    /// naming the bootstrapless one; an assembly of several stacks needs --stack.
    #[tokio::test]
    async fn a_cdk_cloud_assembly_is_published_from_its_folder() {
        use crate::fleet::TemplateCommand;
        let fleet = fleet();
        let bootstrapless = controlplane::testing::cdk_style_template(1_209_600, 80_000);
        let mut default_synth: serde_json::Value =
            serde_json::from_str(&bootstrapless).expect("json");
        default_synth["Parameters"]["BootstrapVersion"] = serde_json::json!({
            "Type": "AWS::SSM::Parameter::Value<String>",
            "Default": "/cdk-bootstrap/hnb659fds/version"});
        default_synth["Rules"] = serde_json::json!({"CheckBootstrapVersion": {"Assertions": []}});
        let one = cloud_assembly("one", &[("TenantStack", bootstrapless.clone())]);
        let publish = |file: std::path::PathBuf, stack: Option<&str>, version: &str| {
            TemplateCommand::Publish {
                deploy_policy: None,
                file,
                stack: stack.map(str::to_owned),
                version: version.into(),
                description: None,
            }
        };
        fleet::template(&fleet.backend, publish(one, None, "v2"), Format::Json)
            .await
            .expect("published");
        let shown = fleet.backend.template_version("v2").await.expect("v2");
        assert_eq!(shown.body, bootstrapless);
        assert_eq!(shown.record.size, bootstrapless.len());

        let two = cloud_assembly(
            "two",
            &[
                ("TenantStack", bootstrapless.clone()),
                ("DefaultSynth", default_synth.to_string()),
            ],
        );
        let unnamed = fleet::template(
            &fleet.backend,
            publish(two.clone(), None, "v3"),
            Format::Json,
        )
        .await
        .expect_err("which stack?");
        assert!(
            unnamed.to_string().contains("name one with --stack"),
            "{unnamed}"
        );
        let refused = fleet::template(
            &fleet.backend,
            publish(two, Some("DefaultSynth"), "v3"),
            Format::Json,
        )
        .await
        .expect_err("needs a CDK bootstrap");
        let refused = format!("{refused:?}");
        for named in [
            "BootstrapVersion",
            "CheckBootstrapVersion",
            "BootstraplessSynthesizer",
        ] {
            assert!(refused.contains(named), "{named}: {refused}");
        }
    }

    #[tokio::test]
    async fn a_watched_rollout_exits_by_how_it_ended() {
        let fleet = fleet();
        fleet.ready("acme").await;
        fleet.publish("v2", &v2_body()).await;
        let listed = fleet.backend.template_versions().await.expect("listed");
        assert_eq!(listed.current, "v1");
        assert_eq!(listed.versions.len(), 2);
        assert_eq!(listed.versions[1].published_by, "tester");

        // Cancelled: at rest at once, exit 1.
        let body = fleet::start_body(
            "v2",
            &fleet::SelectionArgs::default(),
            &fleet::OptionArgs::default(),
        );
        let first = fleet.backend.start_rollout(&body).await.expect("started");
        assert_eq!(first.created_by, "tester");
        let busy = fleet.backend.start_rollout(&body).await.expect_err("busy");
        assert_eq!(busy.exit(), Exit::Conflict);
        fleet
            .backend
            .command_rollout(&first.id, model::rollout::Command::Cancel)
            .await
            .expect("cancelled");
        let illegal = fleet
            .backend
            .command_rollout(&first.id, model::rollout::Command::Resume)
            .await
            .expect_err("refused");
        assert_eq!(illegal.exit(), Exit::Conflict);
        let watched = watch::watch(&fleet.backend, &first.id, None)
            .await
            .expect("at rest");
        assert_eq!(fleet::exit_of(watched.state), Exit::Refused);

        // Run to completion by the driver and the reconciler: exit 0.
        let options = fleet::OptionArgs {
            bake: Some(Duration::ZERO),
            ..fleet::OptionArgs::default()
        };
        let body = fleet::start_body("v2", &fleet::SelectionArgs::default(), &options);
        let second = fleet.backend.start_rollout(&body).await.expect("started");
        for _ in 0..20 {
            let tick = fleet.state.rollouts.tick(&second.id).await.expect("step");
            if tick.rollout.state.is_finished() {
                break;
            }
            fleet.settle("acme").await;
        }
        let done = watch::watch(&fleet.backend, &second.id, Some(Duration::from_secs(5)))
            .await
            .expect("completed");
        assert_eq!(done.state, model::rollout::RolloutState::Completed);
        assert_eq!(done.counts.done, 1);
        assert_eq!(fleet::exit_of(done.state), Exit::Ok);
        let rollouts = fleet.backend.rollouts().await.expect("listed");
        assert_eq!(rollouts.len(), 2);
        assert!(rollouts[0].created_at >= rollouts[1].created_at);
        assert!(rollouts.iter().any(|r| r.id == second.id));
        assert_eq!(
            fleet
                .backend
                .template_versions()
                .await
                .expect("listed")
                .current,
            "v2"
        );
    }

    #[tokio::test]
    async fn a_plan_names_every_replaced_resource() {
        use controlplane::rollout::preview::{PreviewProgress, PreviewRunner};
        use controlplane::testing::RecordingPreviewQueue;

        let fleet = fleet();
        fleet.ready("acme").await;
        fleet.ready("globex").await;
        // A renamed queue is replaced; a longer retention modifies it in place.
        let renamed = v2_body().replace("-jobs\"", "-work\"");
        assert_ne!(renamed, v2_body());
        fleet.publish("v3", &renamed).await;
        // The preview is recorded and queued (as the API does), the preview function runs it,
        // and the plan follows it to its end.
        let queue = Arc::new(RecordingPreviewQueue::default());
        let mut state = fleet.state.clone();
        state.preview_queue = Some(queue.clone());
        let backend = Backend::Direct(Direct::new(state, "tester"));
        let started = backend
            .start_preview(&serde_json::json!({"target_version": "v3", "sample": 10}))
            .await
            .expect("recorded");
        assert_eq!(queue.queued(), std::slice::from_ref(&started.id));
        let runner = PreviewRunner::new(
            fleet.store.clone(),
            fleet.store.clone(),
            fleet.stacks.clone(),
            fleet.state.templates.clone(),
        );
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        assert!(matches!(
            runner.run(&started.id, deadline).await,
            Ok(PreviewProgress::Finished(_))
        ));
        let preview = plan::follow(&backend, &started.id, std::time::Duration::from_secs(10))
            .await
            .expect("followed");
        let previews = preview.previews;
        assert_eq!(previews.len(), 2);
        let text = output::previews(&previews, "v3");
        for expected in [
            "acme",
            "globex",
            "v1 -> v3",
            "+0 ~0 !1 ?0 -0",
            "! JobsQueue (AWS::SQS::Queue) replaced",
            "2 tenant(s) previewed; 2 would have resources replaced",
        ] {
            assert!(text.contains(expected), "{expected:?} in\n{text}");
        }
        let json: Value = serde_json::from_str(&output::json(&previews)).expect("JSON");
        assert_eq!(json[0]["tenant_id"], "acme");
        assert_eq!(json[0]["changes"][0]["replacement"], "True");
        assert_eq!(json[0]["changes"][0]["logical_id"], "JobsQueue");
    }
}
