//! The command line as clap reads it: every command, argument and help text. What each
//! command does is in `commands`.

use std::time::Duration;

use api::auth::LOCAL_API_TOKEN_KEY;
use clap::{Args, Parser, Subcommand};
use serde_json::{Map, Value};

use crate::failure::EXIT_CODES_HELP;
use crate::fleet::{RolloutCommand, TemplateCommand};
use crate::output::Format;
use crate::request::{config_of, parse_account, parse_config_json, parse_config_pair};

#[derive(Parser)]
#[command(
    version,
    about = "Operate the tenant control plane",
    after_help = EXIT_CODES_HELP
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Args)]
#[command(next_help_heading = "Global options")]
pub(crate) struct Global {
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
    pub(crate) api_url: String,
    /// Bearer token for the API (optional: none is sent without it; locally: `tenantctl
    /// token`).
    #[arg(
        long,
        global = true,
        value_name = "TOKEN",
        env = "TENANTCTL_TOKEN",
        hide_env_values = true
    )]
    pub(crate) token: Option<String>,
    /// Talk to the tenants table instead of the API, through the API's own operations, as an
    /// admin (AWS credentials from the environment; AWS_ENDPOINT_URL for an emulator).
    #[arg(long, global = true)]
    pub(crate) direct: bool,
    /// The SPEC table (with --direct).
    #[arg(long, global = true, env = "TABLE_NAME", default_value = "tenants")]
    pub(crate) table: String,
    /// The control-plane table (with --direct; default: the SPEC table's name and `-control`,
    /// as template.yaml names it).
    #[arg(long, global = true, env = "CONTROL_TABLE_NAME")]
    pub(crate) control_table: Option<String>,
    /// The template buckets' names before their region (with --direct; template.yaml's
    /// TEMPLATE_BUCKET_PREFIX, `<TemplateBucketPrefix><account>-`; default: the local system's).
    #[arg(
        long = "bucket-prefix",
        global = true,
        env = "TEMPLATE_BUCKET_PREFIX",
        value_name = "PREFIX"
    )]
    pub(crate) template_bucket_prefix: Option<String>,
    /// The regions with a template bucket besides the control plane's (with --direct;
    /// comma-separated, template.yaml's TEMPLATE_REGIONS; default: the local system's).
    #[arg(
        long = "bucket-regions",
        global = true,
        env = "TEMPLATE_REGIONS",
        value_name = "REGIONS"
    )]
    pub(crate) template_regions: Option<String>,
    /// Who is acting (with --direct): recorded as `updated_by` and in the timeline.
    #[arg(
        long = "as",
        global = true,
        env = "USER",
        default_value = "tenantctl",
        value_name = "ACTOR"
    )]
    pub(crate) actor: String,
    /// How to print results.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Format::Table)]
    pub(crate) output: Format,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
pub(crate) enum BootstrapCommand {
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
pub(crate) struct Wait {
    /// Follow the tenant until it is ready, failed or deleted (spinner on stderr), then print
    /// the final status and reason; exit 1 if it failed.
    #[arg(long)]
    pub(crate) wait: bool,
    /// How long --wait waits (e.g. 90s, 10m).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10m", requires = "wait")]
    pub(crate) timeout: Duration,
}

/// Config given on the command line.
#[derive(Args, Clone)]
pub(crate) struct ConfigArgs {
    /// A config entry, KEY=VALUE (repeatable). VALUE is typed: a JSON number (5, 2.5) becomes a
    /// number, true/false a boolean, anything else a string; use --config-json for exact types.
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_config_pair)]
    pub(crate) pairs: Vec<(String, Value)>,
    /// Config entries as a JSON object, e.g. '{"seed": "123"}' (--config entries override it).
    #[arg(long, value_name = "JSON", value_parser = parse_config_json)]
    pub(crate) config_json: Option<Map<String, Value>>,
}

impl ConfigArgs {
    pub(crate) fn config(&self) -> Map<String, Value> {
        config_of(self.config_json.clone(), &self.pairs)
    }
}

#[derive(Subcommand)]
pub(crate) enum TenantsCommand {
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
    /// Drift: one tenant's drifted resources and their property differences (and any revert),
    /// or, without a tenant, every tenant's last drift check.
    Drift {
        tenant: Option<String>,
        /// Only tenants whose stack drifted (without a tenant).
        #[arg(long, conflicts_with = "tenant")]
        drifted: bool,
    },
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
        /// What to do when its stack drifts (default: the deployment's DriftPolicy).
        #[arg(long, value_parser = ["report", "revert"])]
        drift_policy: Option<String>,
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
        /// What to do when its stack drifts: report, or revert it.
        #[arg(long, value_parser = ["report", "revert"], conflicts_with = "clear_drift_policy")]
        drift_policy: Option<String>,
        /// Back to the deployment's DriftPolicy.
        #[arg(long)]
        clear_drift_policy: bool,
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
