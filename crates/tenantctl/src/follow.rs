//! `--wait`: follow a tenant to a terminal status, with a spinner on stderr.

use std::time::{Duration, Instant};

use api::tenants::TenantView;

use crate::backend::Backend;
use crate::failure::Failure;
use crate::progress::Progress;

/// The statuses nothing moves on from by itself.
pub const TERMINAL: &[&str] = &["ready", "failed", "deleted"];

const POLL: Duration = Duration::from_millis(500);

/// Polls the tenant until its status is terminal, showing the status meanwhile. A tenant that
/// disappears entirely while `gone_is_deleted` (it never had a stack) counts as deleted.
pub async fn follow(
    backend: &Backend,
    tenant: &str,
    timeout: Duration,
    gone_is_deleted: bool,
) -> Result<TenantView, Failure> {
    let mut spinner = Progress::on_stderr("{spinner} {msg} ({elapsed})");
    spinner.set_message(format!("{tenant}: waiting"));
    let started = Instant::now();
    let mut last = String::from("pending");
    let result = loop {
        match backend.get(tenant).await {
            Ok(found) => {
                last.clone_from(&found.view.status);
                spinner.set_message(format!("{tenant}: {last}"));
                if TERMINAL.contains(&last.as_str()) {
                    break Ok(found.view);
                }
            }
            Err(failure) if gone_is_deleted && failure.is_not_found() => {
                break Ok(gone(tenant));
            }
            Err(failure) => break Err(failure),
        }
        let elapsed = started.elapsed();
        if elapsed >= timeout {
            break Err(Failure::Timeout(format!(
                "{tenant} is still {last} after {}",
                humantime::format_duration(timeout)
            )));
        }
        tokio::time::sleep(POLL.min(timeout - elapsed)).await;
    };
    spinner.finish();
    result
}

/// A tenant that is no longer known at all.
fn gone(tenant: &str) -> TenantView {
    TenantView {
        tenant_id: tenant.to_owned(),
        account_id: None,
        region: None,
        config: serde_json::Map::new(),
        template_version: None,
        assigned_version: None,
        stack_template_version: None,
        decommission_date: None,
        retry: None,
        drift_policy: None,
        updated_by: None,
        status: "deleted".into(),
        reason: Some("no longer known: it had no stack".into()),
        retryable: false,
        next_attempt_at: None,
        outputs: Default::default(),
        stack_status: None,
        status_updated_at: None,
        drift: None,
    }
}
