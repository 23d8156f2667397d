//! tenantctl: the operator's command line for the tenant control plane.

use anyhow::{Context, Result};
use api::auth::{LOCAL_API_TOKEN_KEY, LocalTokens};
use clap::{Parser, Subcommand};
use controlplane::aws::sts::ExternalIds;
use controlplane::runtime::{ExternalIdKeySource, external_ids, sdk_config};

#[derive(Parser)]
#[command(version, about = "Operate the tenant control plane")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::ExternalId {
            account_id,
            key_parameter,
            key,
        } => {
            if !(account_id.len() == 12 && account_id.bytes().all(|b| b.is_ascii_digit())) {
                anyhow::bail!("account id must be 12 digits, got {account_id:?}");
            }
            let source = match (key_parameter, key) {
                (Some(name), _) => ExternalIdKeySource::SsmParameter(name),
                (None, Some(key)) => ExternalIdKeySource::Inline(key),
                (None, None) => anyhow::bail!("give --key-parameter (SSM) or --key"),
            };
            let ids: ExternalIds = external_ids(&sdk_config().await, &source)
                .await
                .context("reading the ExternalId key")?;
            println!("{}", ids.for_account(&account_id));
        }
        Command::Token {
            tenant,
            subject,
            hours,
            key,
        } => {
            let token = LocalTokens::new(key.into_bytes())
                .mint(&subject, tenant.as_deref(), hours)
                .map_err(|e| anyhow::anyhow!("cannot sign the token: {e}"))?;
            println!("{token}");
        }
    }
    Ok(())
}
