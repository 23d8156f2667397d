//! tenantctl: the operator's command line for the tenant control plane.

use anyhow::{Context, Result};
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
    }
    Ok(())
}
