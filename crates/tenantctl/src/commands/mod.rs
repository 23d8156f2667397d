//! What each command does: the backend it talks to (the API, or `--direct` the table itself),
//! and the commands that need no backend. The tenant commands are in `tenants`.

mod tenants;

use std::io::Write;

use api::ApiState;
use api::auth::LocalTokens;
use clap::CommandFactory;
use controlplane::aws::dynamodb::{DynamoStore, Tables};
use controlplane::aws::sts::ExternalIds;
use controlplane::config::KeySource;
use controlplane::wiring::{ApiConfig, external_ids, missing_aws_settings, sdk_config};

use crate::backend::{ApiClient, Backend, Direct};
use crate::cli::{BootstrapCommand, Cli, Command, Global};
use crate::failure::{Exit, Failure};
use crate::output::{self, Format};
use crate::request::parse_account;
use crate::{doctor, fleet};

pub(crate) use tenants::*;

pub(crate) async fn run(cli: Cli) -> Result<Exit, Failure> {
    match cli.command {
        Command::Tenants(command) => {
            let backend = backend(&cli.global).await?;
            tenants(&backend, command, cli.global.output).await
        }
        Command::Template(command) => {
            let backend = backend(&cli.global).await?;
            fleet::template(&backend, command, cli.global.output).await
        }
        Command::Rollout(command) => {
            let backend = backend(&cli.global).await?;
            fleet::rollout(&backend, command, cli.global.output).await
        }
        Command::Doctor => {
            let store = DynamoStore::for_sdk(&direct_sdk().await?, tables(&cli.global));
            let findings = doctor::scan(&store).await?;
            Ok(doctor::report(&findings, cli.global.output))
        }
        Command::Completions {
            shell,
            output_dir: None,
        } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "tenantctl",
                &mut std::io::stdout(),
            );
            Ok(Exit::Ok)
        }
        Command::Completions {
            shell,
            output_dir: Some(dir),
        } => {
            let written = write_completions(shell, &dir)?;
            println!("{}", written.display());
            Ok(Exit::Ok)
        }
        Command::ExternalId {
            account_id,
            key_parameter,
            key,
        } => {
            let account_id = parse_account(&account_id).map_err(Failure::Usage)?;
            let ids = read_external_ids(key_parameter, key).await?;
            println!("{}", ids.for_account(&account_id));
            Ok(Exit::Ok)
        }
        Command::Bootstrap(BootstrapCommand::StacksetOverrides {
            accounts,
            ou,
            regions,
            stack_set,
            key_parameter,
            key,
        }) => {
            let accounts = accounts
                .iter()
                .map(|a| parse_account(a))
                .collect::<Result<Vec<_>, _>>()
                .map_err(Failure::Usage)?;
            if !ou.starts_with("ou-") {
                return Err(Failure::Usage(format!(
                    "--ou {ou:?} is not an organizational unit id (ou-...)"
                )));
            }
            let ids = read_external_ids(key_parameter, key).await?;
            let instances = output::stack_instances(&ids, &accounts, &ou, &regions, &stack_set);
            match cli.global.output {
                Format::Json => print(&output::json(&instances)),
                Format::Table => print(&output::stack_instance_commands(&instances)),
            }
            Ok(Exit::Ok)
        }
        Command::Token {
            tenant,
            subject,
            hours,
            key,
        } => {
            let subject = subject.unwrap_or_else(|| match &tenant {
                None => "local-operator".to_owned(),
                Some(tenant) => format!("user@{tenant}"),
            });
            let token = LocalTokens::new(key.into_bytes())
                .mint(&subject, tenant.as_deref(), hours)
                .map_err(|e| Failure::Other(format!("cannot sign the token: {e}")))?;
            println!("{token}");
            Ok(Exit::Ok)
        }
    }
}

pub(crate) const DIRECT_UNREACHABLE_HINT: &str = "  with --direct, check AWS_ENDPOINT_URL (for the local \
    system: the emulator's URL), AWS_REGION or AWS_DEFAULT_REGION, the credentials, and \
    --table (`source .local/operator.env` sets them all for `make up`)";

/// The completion script for `shell`, written into `dir` (made first, with its parents).
pub(crate) fn write_completions(
    shell: clap_complete::Shell,
    dir: &std::path::Path,
) -> Result<std::path::PathBuf, Failure> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::Other(format!("cannot make {}: {e}", dir.display())))?;
    clap_complete::generate_to(shell, &mut Cli::command(), "tenantctl", dir)
        .map_err(|e| Failure::Other(format!("cannot write into {}: {e}", dir.display())))
}

/// Why `--direct` cannot reach the table with `sdk`, naming what to set; `None` when it has a
/// region and credentials. (Without them the SDK fails each call with a bare dispatch error.)
pub(crate) async fn direct_setup_problem(sdk: &controlplane::wiring::SdkConfig) -> Option<String> {
    let missing = missing_aws_settings(sdk).await;
    if missing.is_empty() {
        return None;
    }
    let mut text = String::from("--direct needs AWS settings it did not find:");
    for what in missing {
        text.push_str(&format!("\n  - {what}"));
    }
    if sdk.endpoint_url().is_none() {
        text.push_str(
            "\n  - for the local system (`make up`), AWS_ENDPOINT_URL: the emulator's URL, \
             which its banner prints",
        );
    }
    text.push_str("\n  (`source .local/operator.env` sets them all for the local system)");
    Some(text)
}

/// The two tables `--table` and `--control-table` name.
pub(crate) fn tables(global: &Global) -> Tables {
    let mut tables = Tables::of(&global.table);
    if let Some(control) = &global.control_table {
        tables.control.clone_from(control);
    }
    tables
}

/// The SDK's configuration for reaching the table itself, once it has what that takes.
pub(crate) async fn direct_sdk() -> Result<controlplane::wiring::SdkConfig, Failure> {
    let sdk = sdk_config().await;
    match direct_setup_problem(&sdk).await {
        Some(problem) => Err(Failure::Setup(problem)),
        None => Ok(sdk),
    }
}

pub(crate) async fn backend(global: &Global) -> Result<Backend, Failure> {
    if global.direct {
        let sdk = direct_sdk().await?;
        let home = sdk
            .region()
            .map(|r| r.as_ref().to_owned())
            .unwrap_or_default();
        let local = controlplane::aws::s3::TemplateBuckets::local(&home);
        // Bucket names are global: the local system's default is no guess to make on AWS.
        let prefix = match (&global.template_bucket_prefix, sdk.endpoint_url()) {
            (Some(prefix), _) => prefix.clone(),
            (None, Some(_)) => local.prefix,
            (None, None) => {
                return Err(Failure::Setup(
                    "--direct on AWS needs the template buckets: set TEMPLATE_BUCKET_PREFIX \
                     (or --bucket-prefix) to the control plane's `<TemplateBucketPrefix><account \
                     id>-`, and TEMPLATE_REGIONS to its TemplateCopyRegions"
                        .into(),
                ));
            }
        };
        let buckets = controlplane::aws::s3::TemplateBuckets::new(
            prefix,
            home,
            match &global.template_regions {
                Some(regions) => regions.split(',').map(str::to_owned).collect(),
                None => local.regions,
            },
        );
        let config = ApiConfig::for_tables(&sdk, tables(global), &buckets)
            .map_err(|e| Failure::Other(format!("--direct: {e}")))?;
        let actor = match global.actor.trim() {
            "" => "tenantctl",
            actor => actor,
        };
        Ok(Backend::Direct(Direct::new(ApiState::from(config), actor)))
    } else {
        Ok(Backend::Api(ApiClient::new(
            &global.api_url,
            global.token.clone(),
        )?))
    }
}

pub(crate) fn print(text: &str) {
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = writeln!(stdout, "{text}");
}

/// The ExternalId key from SSM (`--key-parameter`) or given inline (`--key`), as the ids of
/// every account.
pub(crate) async fn read_external_ids(
    key_parameter: Option<String>,
    key: Option<String>,
) -> Result<ExternalIds, Failure> {
    let source = match (key_parameter, key) {
        (Some(name), _) => KeySource::SsmParameter(name),
        (None, Some(key)) => KeySource::Inline(key),
        (None, None) => {
            return Err(Failure::Usage("give --key-parameter (SSM) or --key".into()));
        }
    };
    external_ids(&sdk_config().await, &source)
        .await
        .map_err(|e| Failure::Unreachable(format!("reading the ExternalId key: {e}")))
}
