//! `tenantctl template` and `tenantctl rollout`: template versions and fleet rollouts, through
//! the API or `--direct` through the same operations. (`rollout plan` always runs directly: see
//! `plan.rs`.)

use std::path::PathBuf;
use std::time::Duration;

use api::rollouts::RolloutDetails;
use clap::{Args, Subcommand};
use model::rollout::{Amount, Command as RolloutCommandKind, RolloutState};
use serde_json::{Map, Value, json};

use crate::backend::Backend;
use crate::failure::{Exit, Failure, ProblemDoc};
use crate::output::{self, Format};
use crate::print;

#[derive(Subcommand)]
pub enum TemplateCommand {
    /// Publish a tenant template version (checked by CloudFormation's ValidateTemplate and
    /// against every tenant's config first). Versions never change once published.
    ///
    /// FILE is a template (YAML or JSON; `sam package` output too), or a CDK cloud assembly
    /// folder (`cdk.out`): its stack's template is published (--stack names it when the
    /// assembly has several). Synthesise with the BootstraplessSynthesizer: tenant accounts are
    /// not CDK-bootstrapped, so asset parameters, the BootstrapVersion parameter and the
    /// CheckBootstrapVersion rule are refused.
    Publish {
        /// The CloudFormation template, or a CDK cloud assembly folder.
        file: PathBuf,
        /// The stack of the cloud assembly to publish (FILE a `cdk.out` folder).
        #[arg(long, value_name = "STACK")]
        stack: Option<String>,
        /// Its version name (letters, digits, '-', '_', '.').
        #[arg(long = "version", value_name = "VERSION")]
        version: String,
        /// What changed, for the listing.
        #[arg(long)]
        description: Option<String>,
        /// The deploy policy of the tenant accounts (an IAM policy document, JSON: the one
        /// their bootstrap's DeployPolicyArn names). A warning lists every action the
        /// template's resource types need (CloudFormation's resource schemas, as cfn-lint ships
        /// them) that it does not allow. Default: the bootstrap's DefaultDeployPolicy.
        #[arg(long, value_name = "FILE")]
        deploy_policy: Option<PathBuf>,
    },
    /// Every version, and the fleet's current one (marked *).
    List,
    /// Print a version's template body (--output json: the whole record).
    Get {
        /// The version (`template list` shows them).
        version: String,
    },
}

/// Which tenants a rollout (or its plan) takes; none given: the whole fleet.
#[derive(Args, Clone, Debug, Default)]
pub struct SelectionArgs {
    /// Only these tenants (comma-separated, or repeat the flag).
    #[arg(long, value_delimiter = ',', value_name = "ID,...")]
    pub tenants: Vec<String>,
    /// Only tenants whose config has KEY=VALUE (repeatable; all must hold; compared as the
    /// stack parameter renders the value).
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_selection_pair)]
    pub config: Vec<(String, String)>,
    /// Only this percentage of those tenants (1-100), picked by a stable hash.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub percent: Option<u8>,
}

impl SelectionArgs {
    /// The selection as the API takes it (only what was given).
    pub fn json(&self) -> Map<String, Value> {
        let mut selection = Map::new();
        if !self.tenants.is_empty() {
            selection.insert("tenants".into(), json!(self.tenants));
        }
        if !self.config.is_empty() {
            let config: Map<String, Value> = self
                .config
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            selection.insert("config".into(), Value::Object(config));
        }
        if let Some(percent) = self.percent {
            selection.insert("percent".into(), json!(percent));
        }
        selection
    }

    #[cfg(test)]
    pub fn selection(&self) -> model::rollout::Selection {
        model::rollout::Selection {
            tenants: self.tenants.clone(),
            config: self.config.iter().cloned().collect(),
            percent: self.percent,
        }
    }
}

/// How a rollout proceeds; what is not given keeps the control plane's default.
#[derive(Args, Clone, Debug, Default)]
pub struct OptionArgs {
    /// The first wave, a count or a percentage (default 1). A failure in it halts the rollout.
    #[arg(long, value_parser = parse_amount, value_name = "N|P%")]
    pub canary: Option<Amount>,
    /// How long the canary must stay healthy before the next wave (default 10m).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub bake: Option<Duration>,
    /// Each later wave is this many times the one before (default 2).
    #[arg(long, value_name = "N")]
    pub growth: Option<u32>,
    /// A bake between later waves too (default 0s).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub wave_bake: Option<Duration>,
    /// Tenants updated at once, a count or a percentage (default 10).
    #[arg(long, value_parser = parse_amount, value_name = "N|P%")]
    pub max_concurrency: Option<Amount>,
    /// Failed tenants tolerated before the rollout halts (default 0).
    #[arg(long, value_parser = parse_amount, value_name = "N|P%")]
    pub failure_tolerance: Option<Amount>,
    /// Halt without moving the updated tenants back (default: roll back on halt).
    #[arg(long)]
    pub no_auto_rollback: bool,
    /// A CloudWatch alarm to watch (repeatable): in ALARM, it halts the rollout (the
    /// deployment's RolloutAlarms are watched too).
    #[arg(long = "alarm", value_name = "NAME")]
    pub alarms: Vec<String>,
}

impl OptionArgs {
    pub fn json(&self) -> Map<String, Value> {
        let mut options = Map::new();
        let mut amount = |name: &str, value: Option<Amount>| {
            if let Some(value) = value {
                options.insert(name.into(), Value::String(value.to_string()));
            }
        };
        amount("canary", self.canary);
        amount("max_concurrency", self.max_concurrency);
        amount("failure_tolerance", self.failure_tolerance);
        if let Some(bake) = self.bake {
            options.insert("bake_seconds".into(), json!(bake.as_secs()));
        }
        if let Some(bake) = self.wave_bake {
            options.insert("wave_bake_seconds".into(), json!(bake.as_secs()));
        }
        if let Some(growth) = self.growth {
            options.insert("growth".into(), json!(growth));
        }
        if self.no_auto_rollback {
            options.insert("auto_rollback".into(), json!(false));
        }
        if !self.alarms.is_empty() {
            options.insert("alarms".into(), json!(self.alarms));
        }
        options
    }
}

#[derive(Subcommand)]
pub enum RolloutCommand {
    /// Start a rollout of a published version to the fleet (or a selection of it).
    Start {
        /// A published template version.
        version: String,
        #[command(flatten)]
        selection: SelectionArgs,
        #[command(flatten)]
        options: OptionArgs,
        /// Follow it with a progress bar until it completes or stops (exit 1 unless completed).
        #[arg(long)]
        wait: bool,
        /// Give up following after this long (exit 5); default: follow until it ends.
        #[arg(long, value_parser = humantime::parse_duration, requires = "wait", value_name = "DURATION")]
        timeout: Option<Duration>,
    },
    /// A rollout's state and counts, per wave too (default: the running one, else the newest).
    Status {
        /// The rollout's id (r-...).
        id: Option<String>,
        /// Follow it with a progress bar until it completes or stops (exit 1 unless completed).
        #[arg(long)]
        watch: bool,
        /// Also list every member (tenant, state, previous version, reason).
        #[arg(long)]
        members: bool,
    },
    /// Every rollout, newest first.
    List,
    /// Stop moving tenants (those in flight finish).
    Pause {
        /// The rollout's id (r-...).
        id: String,
    },
    /// Continue a paused or halted rollout.
    Resume {
        /// The rollout's id (r-...).
        id: String,
    },
    /// Stop for good; tenants already moved stay on the new version.
    Cancel {
        /// The rollout's id (r-...).
        id: String,
    },
    /// Move the tenants already moved back to their previous version.
    Rollback {
        /// The rollout's id (r-...).
        id: String,
    },
    /// Preview what a rollout would change, per tenant, with change sets (nothing is updated).
    ///
    /// The control plane's preview function computes it (in the tenants' accounts, through the
    /// role they trust it with); this records the request, follows it with a spinner on stderr
    /// until it is done, and prints each tenant's changes.
    Plan {
        /// A published template version.
        version: String,
        #[command(flatten)]
        selection: SelectionArgs,
        /// Preview at most this many tenants, spread over the fleet.
        #[arg(long, default_value_t = 10, conflicts_with = "all")]
        sample: usize,
        /// Preview every tenant the rollout would move.
        #[arg(long)]
        all: bool,
        /// Give up following it after this long (it goes on server-side: `--output json`
        /// prints its id).
        #[arg(long, value_parser = humantime::parse_duration, default_value = "10m")]
        timeout: std::time::Duration,
    },
}

/// `--canary 5%`, `--max-concurrency 10`.
pub fn parse_amount(text: &str) -> Result<Amount, String> {
    Amount::parse(text)
}

/// `--config key=value` of a selection: the value is compared as text.
pub fn parse_selection_pair(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected key=value, got {text:?}"))?;
    let key = key.trim();
    if key.is_empty() {
        return Err(format!("the key is empty in {text:?}"));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// The body of `POST /rollouts`.
pub fn start_body(version: &str, selection: &SelectionArgs, options: &OptionArgs) -> Value {
    let mut body = Map::new();
    body.insert("target_version".into(), json!(version));
    let selection = selection.json();
    if !selection.is_empty() {
        body.insert("selection".into(), Value::Object(selection));
    }
    let options = options.json();
    if !options.is_empty() {
        body.insert("options".into(), Value::Object(options));
    }
    Value::Object(body)
}

pub async fn template(
    backend: &Backend,
    command: TemplateCommand,
    format: Format,
) -> Result<Exit, Failure> {
    match command {
        TemplateCommand::Publish {
            file,
            stack,
            version,
            description,
            deploy_policy,
        } => {
            let file = template_file(&file, stack.as_deref())?;
            let body = std::fs::read_to_string(&file).map_err(|e| {
                Failure::Other(format!("cannot read the template {}: {e}", file.display()))
            })?;
            for line in deploy_policy_gaps(&body, deploy_policy.as_deref())?.lines() {
                eprintln!("warning: {line}");
            }
            let mut request = json!({"version": version, "body": body});
            if let Some(description) = description {
                request["description"] = Value::String(description);
            }
            let published = backend.publish_template(&request).await?;
            match format {
                Format::Json => print(&output::json(&published.template)),
                Format::Table => {
                    print(&format!(
                        "{}: {} (sha256 {})",
                        published.template.version,
                        if published.already {
                            "already published with this body"
                        } else {
                            "published"
                        },
                        published.template.sha256
                    ));
                    // What the deployment has a publish start by itself.
                    match &published.template.started {
                        Some(api::templates::PublishStarted {
                            kind, id: Some(id), ..
                        }) => print(&if kind == "preview" {
                            format!(
                                "preview {id} started (its changes: GET /rollout-previews/{id})"
                            )
                        } else {
                            format!(
                                "{kind} {id} started (follow it: tenantctl rollout status {id} --watch)"
                            )
                        }),
                        Some(api::templates::PublishStarted {
                            kind,
                            not_started: Some(why),
                            ..
                        }) => eprintln!(
                            "warning: the {kind} this publish starts was not started: {why}"
                        ),
                        _ => {}
                    }
                }
            }
            Ok(Exit::Ok)
        }
        TemplateCommand::List => {
            let versions = backend.template_versions().await?;
            match format {
                Format::Json => print(&output::json(&versions)),
                Format::Table => print(&output::template_versions(&versions)),
            }
            Ok(Exit::Ok)
        }
        TemplateCommand::Get { version } => {
            let record = backend.template_version(&version).await?;
            match format {
                Format::Json => print(&output::json(&record)),
                // The body alone, so `template get v2 > v2.yaml` gives the file back.
                Format::Table => print(record.body.trim_end_matches('\n')),
            }
            Ok(Exit::Ok)
        }
    }
}

/// The tenant template's resource handler permissions (resource type → actions), from
/// CloudFormation's registry schemas as cfn-lint ships them (`tests/iam_policies.rs` keeps the
/// file in step with the project's cfn-lint).
const RESOURCE_HANDLER_PERMISSIONS: &str =
    include_str!("../data/resource-handler-permissions.json");

/// The bootstrap, for its DefaultDeployPolicy (what a tenant account grants by default).
const BOOTSTRAP: &str = include_str!("../../../templates/tenant-account-bootstrap.yaml");

/// What the template's resources need that the deploy policy (`policy_file`, else the
/// bootstrap's DefaultDeployPolicy) does not allow.
pub(crate) fn deploy_policy_gaps(
    body: &str,
    policy_file: Option<&std::path::Path>,
) -> Result<model::deploy_policy::PolicyGaps, Failure> {
    let policy: Value = match policy_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Failure::Other(format!(
                    "cannot read the deploy policy {}: {e}",
                    path.display()
                ))
            })?;
            serde_json::from_str(&text).map_err(|e| {
                Failure::Other(format!(
                    "the deploy policy {} is not an IAM policy document (JSON): {e}",
                    path.display()
                ))
            })?
        }
        None => default_deploy_policy()?,
    };
    let permissions: std::collections::BTreeMap<String, Vec<String>> =
        serde_json::from_str(RESOURCE_HANDLER_PERMISSIONS)
            .map_err(|e| Failure::Other(format!("the shipped resource permissions: {e}")))?;
    Ok(model::deploy_policy::gaps(
        &model::deploy_policy::resource_types(body),
        &permissions,
        &policy,
    ))
}

/// The bootstrap's DefaultDeployPolicy document, as JSON.
fn default_deploy_policy() -> Result<Value, Failure> {
    let bootstrap: serde_yaml_ng::Value = serde_yaml_ng::from_str(BOOTSTRAP)
        .map_err(|e| Failure::Other(format!("the shipped bootstrap: {e}")))?;
    let document = bootstrap
        .get("Resources")
        .and_then(|r| r.get("DefaultDeployPolicy"))
        .and_then(|p| p.get("Properties"))
        .and_then(|p| p.get("PolicyDocument"))
        .ok_or_else(|| Failure::Other("the shipped bootstrap has no DefaultDeployPolicy".into()))?;
    serde_json::to_value(document)
        .map_err(|e| Failure::Other(format!("the shipped bootstrap's DefaultDeployPolicy: {e}")))
}

/// The template to publish: `path` itself, or the template of a cloud assembly's stack when
/// `path` is a CDK cloud assembly folder (its `manifest.json` lists the stacks).
fn template_file(path: &std::path::Path, stack: Option<&str>) -> Result<PathBuf, Failure> {
    if !path.is_dir() {
        if let Some(stack) = stack {
            return Err(Failure::Other(format!(
                "--stack {stack} names a stack of a CDK cloud assembly, and {} is a file",
                path.display()
            )));
        }
        return Ok(path.to_owned());
    }
    let manifest_path = path.join("manifest.json");
    let manifest: Value = std::fs::read_to_string(&manifest_path)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))
        .map_err(|e| {
            Failure::Other(format!(
                "{} is a folder but not a CDK cloud assembly ({}: {e})",
                path.display(),
                manifest_path.display()
            ))
        })?;
    let stacks: Vec<(&String, &str)> = manifest["artifacts"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, artifact)| artifact["type"] == "aws:cloudformation:stack")
        .filter_map(|(name, artifact)| {
            Some((name, artifact["properties"]["templateFile"].as_str()?))
        })
        .collect();
    let names = || {
        stacks
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let chosen = match stack {
        Some(wanted) => stacks
            .iter()
            .find(|(name, _)| name.as_str() == wanted)
            .ok_or_else(|| {
                Failure::Other(format!(
                    "the cloud assembly {} has no stack {wanted} (it has: {})",
                    path.display(),
                    names()
                ))
            })?,
        None => match stacks.as_slice() {
            [only] => only,
            [] => {
                return Err(Failure::Other(format!(
                    "the cloud assembly {} has no stack",
                    path.display()
                )));
            }
            _ => {
                return Err(Failure::Other(format!(
                    "the cloud assembly {} has several stacks ({}): name one with --stack",
                    path.display(),
                    names()
                )));
            }
        },
    };
    Ok(path.join(chosen.1))
}

pub async fn rollout(
    backend: &Backend,
    command: RolloutCommand,
    format: Format,
) -> Result<Exit, Failure> {
    match command {
        RolloutCommand::Start {
            version,
            selection,
            options,
            wait,
            timeout,
        } => {
            let started = backend
                .start_rollout(&start_body(&version, &selection, &options))
                .await?;
            if !wait {
                show_line(&started, format);
                return Ok(Exit::Ok);
            }
            let finished = crate::watch::watch(backend, &started.id, timeout).await?;
            show_full(&finished, format);
            Ok(exit_of(finished.state))
        }
        RolloutCommand::Status { id, watch, members } => {
            let id = match id {
                Some(id) => id,
                None => default_rollout(backend).await?,
            };
            if watch {
                crate::watch::watch(backend, &id, None).await?;
            }
            let rollout = backend.rollout(&id, members).await?;
            show_full(&rollout, format);
            Ok(if watch {
                exit_of(rollout.state)
            } else {
                Exit::Ok
            })
        }
        RolloutCommand::List => {
            let rollouts = backend.rollouts().await?;
            match format {
                Format::Json => print(&output::json(&json!({"items": rollouts}))),
                Format::Table => print(&output::rollouts(&rollouts)),
            }
            Ok(Exit::Ok)
        }
        RolloutCommand::Pause { id } => {
            steer(backend, &id, RolloutCommandKind::Pause, format).await
        }
        RolloutCommand::Resume { id } => {
            steer(backend, &id, RolloutCommandKind::Resume, format).await
        }
        RolloutCommand::Cancel { id } => {
            steer(backend, &id, RolloutCommandKind::Cancel, format).await
        }
        RolloutCommand::Rollback { id } => {
            steer(backend, &id, RolloutCommandKind::Rollback, format).await
        }
        RolloutCommand::Plan {
            version,
            selection,
            sample,
            all,
            timeout,
        } => {
            let mut body = start_body(&version, &selection, &OptionArgs::default());
            if !all {
                body["sample"] = json!(sample);
            }
            let started = backend.start_preview(&body).await?;
            let previews = crate::plan::follow(backend, &started.id, timeout).await?;
            match format {
                Format::Json => print(&output::json(&previews)),
                Format::Table => {
                    print(&output::previews(&previews.previews, &version));
                    if let Some(reason) = &previews.reason {
                        eprintln!("{}: {reason}", previews.id);
                    }
                    if !all && previews.previewed >= sample {
                        eprintln!("a sample of {sample} tenants: --sample N or --all for more");
                    }
                }
            }
            Ok(match previews.state {
                controlplane::rollout::preview::PreviewState::Done => Exit::Ok,
                _ => Exit::Refused,
            })
        }
    }
}

/// Pause, resume, cancel or roll back, and print the rollout.
async fn steer(
    backend: &Backend,
    id: &str,
    command: RolloutCommandKind,
    format: Format,
) -> Result<Exit, Failure> {
    let rollout = backend.command_rollout(id, command).await?;
    show_line(&rollout, format);
    Ok(Exit::Ok)
}

/// The running rollout, else the newest.
async fn default_rollout(backend: &Backend) -> Result<String, Failure> {
    let rollouts = backend.rollouts().await?;
    rollouts
        .iter()
        .find(|r| !r.state.is_finished())
        .or_else(|| rollouts.first())
        .map(|r| r.id.clone())
        .ok_or_else(|| {
            Failure::Problem(ProblemDoc {
                kind: Some("/problems/not-found".into()),
                title: "No rollout yet".into(),
                status: 404,
                detail: "start one with `tenantctl rollout start VERSION`".into(),
                errors: Vec::new(),
            })
        })
}

/// 0 when the rollout completed; 1 when it ended any other way (halted, rolled back,
/// cancelled).
pub fn exit_of(state: RolloutState) -> Exit {
    if state == RolloutState::Completed {
        Exit::Ok
    } else {
        Exit::Refused
    }
}

fn show_line(rollout: &RolloutDetails, format: Format) {
    match format {
        Format::Json => print(&output::json(rollout)),
        Format::Table => print(&output::rollout_line(rollout)),
    }
}

fn show_full(rollout: &RolloutDetails, format: Format) {
    match format {
        Format::Json => print(&output::json(rollout)),
        Format::Table => print(&output::rollout(rollout)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_and_selection_pairs_parse() {
        assert_eq!(parse_amount("10"), Ok(Amount::Count(10)));
        assert_eq!(parse_amount("5%"), Ok(Amount::Percent(5)));
        assert_eq!(parse_amount(" 100% "), Ok(Amount::Percent(100)));
        for bad in ["101%", "-1", "ten", "5 %%", ""] {
            assert!(parse_amount(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_selection_pair("tier=gold"),
            Ok(("tier".into(), "gold".into()))
        );
        // Compared as text: kept exactly as written.
        assert_eq!(
            parse_selection_pair("player_count=007"),
            Ok(("player_count".into(), "007".into()))
        );
        assert!(parse_selection_pair("tier").is_err());
        assert!(parse_selection_pair("=gold").is_err());
    }

    #[test]
    fn a_start_body_carries_only_what_was_given() {
        assert_eq!(
            start_body("v2", &SelectionArgs::default(), &OptionArgs::default()),
            json!({"target_version": "v2"})
        );
        let selection = SelectionArgs {
            tenants: vec!["acme".into(), "globex".into()],
            config: vec![("tier".into(), "gold".into())],
            percent: Some(50),
        };
        let options = OptionArgs {
            canary: Some(Amount::Percent(5)),
            bake: Some(Duration::from_secs(600)),
            growth: Some(3),
            wave_bake: Some(Duration::ZERO),
            max_concurrency: Some(Amount::Count(10)),
            failure_tolerance: Some(Amount::Percent(2)),
            no_auto_rollback: true,
            alarms: vec!["api-5xx".into()],
        };
        assert_eq!(
            start_body("v2", &selection, &options),
            json!({
                "target_version": "v2",
                "selection": {"tenants": ["acme", "globex"], "config": {"tier": "gold"}, "percent": 50},
                "options": {"canary": "5%", "bake_seconds": 600, "growth": 3, "wave_bake_seconds": 0,
                            "max_concurrency": "10", "failure_tolerance": "2%", "auto_rollback": false,
                            "alarms": ["api-5xx"]}
            })
        );
        // The body is what the API reads back into the same rollout.
        let request =
            api::rollouts::RolloutRequest::from_json(&start_body("v2", &selection, &options))
                .expect("the API takes it");
        assert_eq!(request.selection, selection.selection());
        assert_eq!(request.options.growth, 3);
        assert!(!request.options.auto_rollback);
        assert_eq!(request.options.alarms, ["api-5xx"]);
    }

    #[test]
    fn only_a_completed_rollout_exits_0() {
        assert_eq!(exit_of(RolloutState::Completed), Exit::Ok);
        for state in [
            RolloutState::Halted,
            RolloutState::RolledBack,
            RolloutState::Cancelled,
        ] {
            assert_eq!(exit_of(state), Exit::Refused, "{state}");
        }
    }
}
