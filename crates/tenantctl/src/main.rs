//! tenantctl: the operator's command line for the tenant control plane.

mod backend;
mod doctor;
mod failure;
mod fleet;
mod follow;
mod output;
mod plan;
mod progress;
mod request;
mod watch;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use api::ApiState;
use api::auth::{LOCAL_API_TOKEN_KEY, LocalTokens};
use api::tenants::{EventsQuery, ListQuery, Page, Tenant};
use clap::{Args, CommandFactory, Parser, Subcommand};
use controlplane::aws::dynamodb::{DynamoStore, Tables};
use controlplane::aws::sts::ExternalIds;
use controlplane::runtime::{ApiConfig, KeySource, external_ids, missing_aws_settings, sdk_config};
use serde_json::{Map, Value};

use crate::backend::{ApiClient, Backend, Direct};
use crate::failure::{EXIT_CODES_HELP, Exit, Failure};
use crate::fleet::{RolloutCommand, TemplateCommand};
use crate::output::Format;
use crate::request::{
    CreateRequest, UpdateRequest, config_of, parse_account, parse_config_json, parse_config_pair,
};

#[derive(Parser)]
#[command(
    version,
    about = "Operate the tenant control plane",
    after_help = EXIT_CODES_HELP
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
#[command(next_help_heading = "Global options")]
struct Global {
    /// The tenants API to talk to (optional: the local system's by default; set it for
    /// another port or a deployed API).
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "TENANTCTL_API_URL",
        hide_env_values = true,
        default_value = "http://127.0.0.1:3000"
    )]
    api_url: String,
    /// Bearer token for the API (optional: none is sent without it; locally: `tenantctl
    /// token`).
    #[arg(
        long,
        global = true,
        value_name = "TOKEN",
        env = "TENANTCTL_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// Talk to the tenants table instead of the API, through the API's own operations, as an
    /// admin (AWS credentials from the environment; AWS_ENDPOINT_URL for an emulator).
    #[arg(long, global = true)]
    direct: bool,
    /// The SPEC table (with --direct).
    #[arg(long, global = true, env = "TABLE_NAME", default_value = "tenants")]
    table: String,
    /// The control-plane table (with --direct; default: the SPEC table's name and `-control`,
    /// as template.yaml names it).
    #[arg(long, global = true, env = "CONTROL_TABLE_NAME")]
    control_table: Option<String>,
    /// Who is acting (with --direct): recorded as `updated_by` and in the timeline.
    #[arg(
        long = "as",
        global = true,
        env = "USER",
        default_value = "tenantctl",
        value_name = "ACTOR"
    )]
    actor: String,
    /// How to print results.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Format::Table)]
    output: Format,
}

#[derive(Subcommand)]
enum Command {
    /// Create, change, remove, retry and inspect tenants.
    #[command(subcommand)]
    Tenants(TenantsCommand),
    /// Publish and read tenant template versions (admins).
    #[command(subcommand)]
    Template(TemplateCommand),
    /// Roll a template version out to the fleet in waves, follow it, steer it (admins).
    #[command(subcommand)]
    Rollout(RolloutCommand),
    /// Print a shell completion script, or write it into a folder (made if missing).
    ///
    /// e.g. `tenantctl completions bash --output-dir ~/.local/share/bash-completion/completions`
    /// or `tenantctl completions zsh > ~/.zfunc/_tenantctl`.
    Completions {
        shell: clap_complete::Shell,
        /// Write the script into this folder, under the name the shell looks for
        /// (`tenantctl.bash`, `_tenantctl`, `tenantctl.fish`...), making the folder first.
        #[arg(long, value_name = "DIR")]
        output_dir: Option<std::path::PathBuf>,
    },
    /// Print the ExternalId a tenant account's bootstrap role must require.
    ///
    /// Give it to the account owner: it is derived from the account id with the control plane's
    /// key, distinct for every account.
    ExternalId {
        /// The tenant's 12-digit AWS account id.
        account_id: String,
        /// SSM SecureString holding the key (as deployed).
        #[arg(long, env = "EXTERNAL_ID_KEY_PARAMETER", conflicts_with = "key")]
        key_parameter: Option<String>,
        /// The key itself (local runs).
        #[arg(long, env = "EXTERNAL_ID_KEY", hide_env_values = true)]
        key: Option<String>,
    },
    /// Find rows of the SPEC table that look like a tenant's but break the key contract.
    ///
    /// A lowercase `tenant#acme`, an sk other than `SPEC`, a SPEC without its `tenant_id` or
    /// with another one, a key with whitespace, tenant fields under a pk without `TENANT#`: the
    /// control plane never answers such a write. Reads the table itself, always (as --direct:
    /// AWS settings from the environment; an admin's, with dynamodb:Scan on the table). Exit 0:
    /// none found; 1: each is printed with its fix.
    Doctor,
    /// Deploy the tenant-account bootstrap across an AWS Organization.
    #[command(subcommand)]
    Bootstrap(BootstrapCommand),
    /// Mint a bearer token for the local API (`make up`): as admin, or as one tenant.
    ///
    /// Deployed, tokens come from your identity provider and API Gateway verifies them.
    Token {
        /// Act as this tenant (only its own tenant, no account changes); default: admin.
        #[arg(long)]
        tenant: Option<String>,
        /// Who the token names (recorded as `updated_by`); default: `local-operator` for an
        /// admin, `user@<tenant>` for a tenant (never an admin's: a tenant is shown its own
        /// identity, and `operator` for an admin's).
        #[arg(long)]
        subject: Option<String>,
        /// Hours the token is valid.
        #[arg(long, default_value_t = 12)]
        hours: i64,
        /// The local system's token key.
        #[arg(long, env = "LOCAL_API_TOKEN_KEY", default_value = LOCAL_API_TOKEN_KEY, hide_env_values = true)]
        key: String,
    },
}

#[derive(Subcommand)]
enum BootstrapCommand {
    /// Print, for each account, the stack instance of a service-managed StackSet of
    /// templates/tenant-account-bootstrap.yaml with that account's own ExternalId.
    ///
    /// A StackSet cannot compute an ExternalId per account, so each account gets its instances
    /// with parameter overrides: one `aws cloudformation create-stack-instances` per account and
    /// region, limited to it within its OU (`AccountFilterType=INTERSECTION`). Run them as the
    /// organization's management (or delegated administrator) account, on a StackSet made with
    /// managed execution (so they queue instead of failing while one runs).
    StacksetOverrides {
        /// The tenant accounts (12-digit ids).
        #[arg(long = "account", required = true, num_args = 1..)]
        accounts: Vec<String>,
        /// The organizational unit the accounts are in.
        #[arg(long)]
        ou: String,
        /// The regions to deploy the bootstrap in; the first holds the account's roles (IAM is
        /// global), the others only forward stack events.
        #[arg(long = "region", default_value = "us-east-1", num_args = 1..)]
        regions: Vec<String>,
        /// The StackSet's name.
        #[arg(long, default_value = "tenant-control-plane-access")]
        stack_set: String,
        /// SSM SecureString holding the key (as deployed).
        #[arg(long, env = "EXTERNAL_ID_KEY_PARAMETER", conflicts_with = "key")]
        key_parameter: Option<String>,
        /// The key itself (local runs).
        #[arg(long, env = "EXTERNAL_ID_KEY", hide_env_values = true)]
        key: Option<String>,
    },
}

/// `--wait` and its `--timeout`.
#[derive(Args, Clone, Copy)]
struct Wait {
    /// Follow the tenant until it is ready, failed or deleted (spinner on stderr), then print
    /// the final status and reason; exit 1 if it failed.
    #[arg(long)]
    wait: bool,
    /// How long --wait waits (e.g. 90s, 10m).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10m", requires = "wait")]
    timeout: Duration,
}

/// Config given on the command line.
#[derive(Args, Clone)]
struct ConfigArgs {
    /// A config entry, KEY=VALUE (repeatable). VALUE is typed: a JSON number (5, 2.5) becomes a
    /// number, true/false a boolean, anything else a string; use --config-json for exact types.
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_config_pair)]
    pairs: Vec<(String, Value)>,
    /// Config entries as a JSON object, e.g. '{"seed": "123"}' (--config entries override it).
    #[arg(long, value_name = "JSON", value_parser = parse_config_json)]
    config_json: Option<Map<String, Value>>,
}

impl ConfigArgs {
    fn config(&self) -> Map<String, Value> {
        config_of(self.config_json.clone(), &self.pairs)
    }
}

#[derive(Subcommand)]
enum TenantsCommand {
    /// List tenants (a page; --all for every page).
    List {
        /// Only tenants in this status (creating, updating, deleting, ready, failed, deleted).
        #[arg(long)]
        status: Option<String>,
        /// Tenants per page (1-100).
        #[arg(long)]
        limit: Option<usize>,
        /// Resume from a previous page's token.
        #[arg(long, conflicts_with = "all")]
        next: Option<String>,
        /// Follow every page.
        #[arg(long)]
        all: bool,
    },
    /// Show one tenant: desired state, status, reason, outputs, ETag.
    Get { tenant: String },
    /// Create a tenant (admins).
    Create {
        tenant: String,
        /// The 12-digit AWS account the tenant's stack goes to.
        #[arg(long, value_parser = parse_account)]
        account: String,
        /// Region of the stack (default: the control plane's).
        #[arg(long)]
        region: Option<String>,
        #[command(flatten)]
        config: ConfigArgs,
        /// Pin a template version (default: the current one).
        #[arg(long)]
        template_version: Option<String>,
        /// YYYY-MM-DD: when the tenant is removed.
        #[arg(long)]
        decommission_date: Option<String>,
        /// Makes a retried create answer as the first one did (same key, same request).
        #[arg(long)]
        idempotency_key: Option<String>,
        #[command(flatten)]
        wait: Wait,
    },
    /// Change a tenant (a JSON Merge Patch of what is given; config keys merge).
    Update {
        tenant: String,
        #[command(flatten)]
        config: ConfigArgs,
        /// Remove a config entry (repeatable).
        #[arg(long, value_name = "KEY")]
        unset_config: Vec<String>,
        #[arg(long)]
        template_version: Option<String>,
        /// YYYY-MM-DD: when the tenant is removed.
        #[arg(long, conflicts_with = "clear_decommission_date")]
        decommission_date: Option<String>,
        /// Cancel a scheduled decommission.
        #[arg(long)]
        clear_decommission_date: bool,
        /// Move the tenant to another account (admins).
        #[arg(long, value_parser = parse_account)]
        account: Option<String>,
        /// Move the tenant to another region (admins).
        #[arg(long)]
        region: Option<String>,
        /// Change only if the tenant still has this ETag (default: the ETag read just before).
        #[arg(long, value_name = "ETAG")]
        if_match: Option<String>,
        #[command(flatten)]
        wait: Wait,
    },
    /// Remove a tenant: its stack is deleted.
    Delete {
        tenant: String,
        /// Remove only if the tenant still has this ETag.
        #[arg(long, value_name = "ETAG")]
        if_match: Option<String>,
        #[command(flatten)]
        wait: Wait,
    },
    /// Run a failed tenant's operation again.
    Retry {
        tenant: String,
        #[command(flatten)]
        wait: Wait,
    },
    /// The tenant's audit timeline: who asked for what, and what the control plane did.
    Events {
        tenant: String,
        /// Entries per page (1-100).
        #[arg(long)]
        limit: Option<usize>,
        /// Resume from a previous page's token.
        #[arg(long, conflicts_with = "all")]
        next: Option<String>,
        /// Follow every page.
        #[arg(long)]
        all: bool,
    },
}

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

async fn run(cli: Cli) -> Result<Exit, Failure> {
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

const DIRECT_UNREACHABLE_HINT: &str = "  with --direct, check AWS_ENDPOINT_URL (for the local \
    system: the emulator's URL), AWS_REGION or AWS_DEFAULT_REGION, the credentials, and \
    --table (`source .local/operator.env` sets them all for `make up`)";

/// The completion script for `shell`, written into `dir` (made first, with its parents).
fn write_completions(
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
async fn direct_setup_problem(sdk: &controlplane::runtime::SdkConfig) -> Option<String> {
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
fn tables(global: &Global) -> Tables {
    let mut tables = Tables::of(&global.table);
    if let Some(control) = &global.control_table {
        tables.control.clone_from(control);
    }
    tables
}

/// The SDK's configuration for reaching the table itself, once it has what that takes.
async fn direct_sdk() -> Result<controlplane::runtime::SdkConfig, Failure> {
    let sdk = sdk_config().await;
    match direct_setup_problem(&sdk).await {
        Some(problem) => Err(Failure::Setup(problem)),
        None => Ok(sdk),
    }
}

async fn backend(global: &Global) -> Result<Backend, Failure> {
    if global.direct {
        let config = ApiConfig::for_tables(&direct_sdk().await?, tables(global))
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

async fn tenants(
    backend: &Backend,
    command: TenantsCommand,
    format: Format,
) -> Result<Exit, Failure> {
    match command {
        TenantsCommand::List {
            status,
            limit,
            next,
            all,
        } => {
            let page = pages(all, next, |next| {
                let query = ListQuery {
                    limit,
                    next,
                    status: status.clone(),
                };
                async move { backend.list(&query).await }
            })
            .await?;
            show_page(&page, format, output::tenants);
            Ok(Exit::Ok)
        }
        TenantsCommand::Get { tenant } => {
            let found = backend.get(&tenant).await?;
            match format {
                Format::Json => print(&output::json(&found.view)),
                Format::Table => print(&output::tenant(&found)),
            }
            Ok(Exit::Ok)
        }
        TenantsCommand::Create {
            tenant,
            account,
            region,
            config,
            template_version,
            decommission_date,
            idempotency_key,
            wait,
        } => {
            let request = CreateRequest {
                tenant_id: tenant,
                account_id: account,
                region,
                config: config.config(),
                template_version,
                decommission_date,
            };
            let created = backend
                .create(&request.body(), idempotency_key.as_deref())
                .await?;
            written(backend, created, wait, format, false).await
        }
        TenantsCommand::Update {
            tenant,
            config,
            unset_config,
            template_version,
            decommission_date,
            clear_decommission_date,
            account,
            region,
            if_match,
            wait,
        } => {
            let request = UpdateRequest {
                set_config: config.config(),
                unset_config,
                template_version,
                decommission_date: if clear_decommission_date {
                    Some(None)
                } else {
                    decommission_date.map(Some)
                },
                account_id: account,
                region,
            };
            let patch = request.patch().map_err(Failure::Usage)?;
            let updated = match if_match {
                Some(etag) => backend.patch(&tenant, &patch, &etag).await?,
                // Read just before: the ETag covers what the control plane records too, so a
                // status written between the read and the change makes it stale (412). The
                // change does not depend on what was read, so it is read and sent again.
                None => {
                    let mut attempt = 0;
                    loop {
                        let etag = backend.get(&tenant).await?.etag.ok_or_else(|| {
                            Failure::from(api::problem::Problem::not_found(&tenant))
                        })?;
                        match backend.patch(&tenant, &patch, &etag).await {
                            Err(Failure::Problem(p)) if p.status == 412 && attempt < 3 => {
                                attempt += 1;
                            }
                            other => break other?,
                        }
                    }
                }
            };
            written(backend, updated, wait, format, false).await
        }
        TenantsCommand::Delete {
            tenant,
            if_match,
            wait,
        } => {
            let deleted = backend.delete(&tenant, if_match.as_deref()).await?;
            written(backend, deleted, wait, format, true).await
        }
        TenantsCommand::Retry { tenant, wait } => {
            let retried = backend.retry(&tenant).await?;
            written(backend, retried, wait, format, false).await
        }
        TenantsCommand::Events {
            tenant,
            limit,
            next,
            all,
        } => {
            let tenant = tenant.as_str();
            let page = pages(all, next, |next| {
                let query = EventsQuery { limit, next };
                async move { backend.events(tenant, &query).await }
            })
            .await?;
            show_page(&page, format, output::events);
            Ok(Exit::Ok)
        }
    }
}

/// One page from `first`, or (`all`) every page from there on, as one.
async fn pages<T, F, Fut>(all: bool, first: Option<String>, fetch: F) -> Result<Page<T>, Failure>
where
    F: Fn(Option<String>) -> Fut,
    Fut: Future<Output = Result<Page<T>, Failure>>,
{
    let page = fetch(first).await?;
    if !all {
        return Ok(page);
    }
    let mut items = page.items;
    let mut next = page.next;
    while let Some(token) = next {
        let more = fetch(Some(token)).await?;
        items.extend(more.items);
        next = more.next;
    }
    Ok(Page { items, next: None })
}

fn show_page<T: serde::Serialize>(page: &Page<T>, format: Format, table: fn(&[T]) -> String) {
    match format {
        Format::Json => print(&output::json(page)),
        Format::Table => {
            print(&table(&page.items));
            if let Some(next) = &page.next {
                eprintln!("more: add --next {next} (or --all)");
            }
        }
    }
}

/// After a write: the answer, or (`--wait`) the final status and reason.
async fn written(
    backend: &Backend,
    tenant: Tenant,
    wait: Wait,
    format: Format,
    deleting: bool,
) -> Result<Exit, Failure> {
    let view = if wait.wait {
        follow::follow(backend, &tenant.view.tenant_id, wait.timeout, deleting).await?
    } else {
        tenant.view
    };
    match format {
        Format::Json => print(&output::json(&view)),
        Format::Table => print(&output::summary(&view)),
    }
    Ok(if wait.wait && view.status == "failed" {
        Exit::Refused
    } else {
        Exit::Ok
    })
}

/// The ExternalId key from SSM (`--key-parameter`) or given inline (`--key`), as the ids of
/// every account.
async fn read_external_ids(
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
#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use controlplane::fakes::{FakeStacks, FakeTemplateValidator, InMemoryStore};
    use controlplane::ports::StackError;
    use controlplane::reconcile::{Reconciler, Settings};
    use model::spec::TenantKey;

    use super::*;

    /// `--direct` over the in-memory table, and the control plane acting on it.
    fn world() -> (Backend, Reconciler, Arc<FakeStacks>) {
        let store = Arc::new(InMemoryStore::default());
        let stacks = Arc::new(FakeStacks::default());
        let state = ApiState::on_table(
            store.clone(),
            Arc::new(FakeTemplateValidator::default()),
            "us-east-1",
        )
        .expect("the shipped template");
        let reconciler = Reconciler::new(
            store,
            stacks.clone(),
            state.templates.clone(),
            Settings::new("us-east-1"),
        );
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
            "us-east-1",
        )
        .expect("the shipped template");
        let reconciler = Reconciler::new(
            store.clone(),
            stacks.clone(),
            state.templates.clone(),
            Settings::new("us-east-1"),
        );
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
        use controlplane::fakes::RecordingPreviewQueue;
        use controlplane::rollout::preview::{PreviewProgress, PreviewRunner};

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
