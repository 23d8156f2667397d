//! tenantctl: the operator's command line for the tenant control plane.

mod backend;
mod failure;
mod follow;
mod output;
mod request;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use api::ApiState;
use api::auth::{LOCAL_API_TOKEN_KEY, LocalTokens};
use api::tenants::{EventsQuery, ListQuery, Page, Tenant};
use clap::{Args, CommandFactory, Parser, Subcommand};
use controlplane::aws::sts::ExternalIds;
use controlplane::runtime::{ApiConfig, ExternalIdKeySource, external_ids, sdk_config};
use serde_json::{Map, Value};

use crate::backend::{ApiClient, Backend, Direct};
use crate::failure::{EXIT_CODES_HELP, Exit, Failure};
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
    /// The tenants API.
    #[arg(
        long,
        global = true,
        env = "TENANTCTL_API_URL",
        default_value = "http://127.0.0.1:3000"
    )]
    api_url: String,
    /// Bearer token for the API (locally: `tenantctl token`).
    #[arg(long, global = true, env = "TENANTCTL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Talk to the tenants table instead of the API, through the API's own operations, as an
    /// admin (AWS credentials from the environment; AWS_ENDPOINT_URL for an emulator).
    #[arg(long, global = true)]
    direct: bool,
    /// The tenants table (with --direct).
    #[arg(long, global = true, env = "TABLE_NAME", default_value = "tenants")]
    table: String,
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
    /// Print a shell completion script (e.g. `tenantctl completions bash > /etc/bash_completion.d/tenantctl`).
    Completions { shell: clap_complete::Shell },
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
    /// Mint a bearer token for the local API (`make up`): as admin, or as one tenant.
    ///
    /// Deployed, tokens come from your identity provider and API Gateway verifies them.
    Token {
        /// Act as this tenant (only its own tenant, no account changes); default: admin.
        #[arg(long)]
        tenant: Option<String>,
        /// Who the token names (recorded as `updated_by`).
        #[arg(long, default_value = "local-operator")]
        subject: String,
        /// Hours the token is valid.
        #[arg(long, default_value_t = 12)]
        hours: i64,
        /// The local system's token key.
        #[arg(long, env = "LOCAL_API_TOKEN_KEY", default_value = LOCAL_API_TOKEN_KEY, hide_env_values = true)]
        key: String,
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
    let had_token = cli.global.token.is_some() || cli.global.direct;
    match run(cli).await {
        Ok(exit) => exit.into(),
        Err(failure) => {
            report(&failure, format, had_token);
            failure.exit().into()
        }
    }
}

fn report(failure: &Failure, format: Format, had_token: bool) {
    match (failure, format) {
        (Failure::Problem(problem), Format::Json) => eprintln!("{}", output::json(problem)),
        _ => eprintln!("{failure}"),
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
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "tenantctl",
                &mut std::io::stdout(),
            );
            Ok(Exit::Ok)
        }
        Command::ExternalId {
            account_id,
            key_parameter,
            key,
        } => {
            let account_id = parse_account(&account_id).map_err(Failure::Usage)?;
            let source = match (key_parameter, key) {
                (Some(name), _) => ExternalIdKeySource::SsmParameter(name),
                (None, Some(key)) => ExternalIdKeySource::Inline(key),
                (None, None) => {
                    return Err(Failure::Usage("give --key-parameter (SSM) or --key".into()));
                }
            };
            let ids: ExternalIds = external_ids(&sdk_config().await, &source)
                .await
                .map_err(|e| Failure::Unreachable(format!("reading the ExternalId key: {e}")))?;
            println!("{}", ids.for_account(&account_id));
            Ok(Exit::Ok)
        }
        Command::Token {
            tenant,
            subject,
            hours,
            key,
        } => {
            let token = LocalTokens::new(key.into_bytes())
                .mint(&subject, tenant.as_deref(), hours)
                .map_err(|e| Failure::Other(format!("cannot sign the token: {e}")))?;
            println!("{token}");
            Ok(Exit::Ok)
        }
    }
}

async fn backend(global: &Global) -> Result<Backend, Failure> {
    if global.direct {
        let config = ApiConfig::for_table(&sdk_config().await, &global.table)
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

fn print(text: &str) {
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
            let etag = match if_match {
                Some(etag) => etag,
                None => backend
                    .get(&tenant)
                    .await?
                    .etag
                    .ok_or_else(|| Failure::from(api::problem::Problem::not_found(&tenant)))?,
            };
            let updated = backend.patch(&tenant, &patch, &etag).await?;
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use controlplane::fakes::{FakeStacks, FakeTemplateValidator, InMemoryStore};
    use controlplane::ports::StackError;
    use controlplane::reconcile::{Reconciler, Settings};
    use controlplane::spec::TenantKey;

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
}
