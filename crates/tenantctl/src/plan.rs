//! `tenantctl rollout plan`: what a rollout would change, tenant by tenant. The preview runs
//! server-side, in the control plane's preview function (the only place, besides the reconcile,
//! whose role tenant accounts trust); this follows it to its end and reads every page of it.

use std::time::{Duration, Instant};

use api::previews::PreviewDetails;

use crate::backend::Backend;
use crate::failure::Failure;
use crate::progress::Progress;

const POLL: Duration = Duration::from_secs(2);
/// Reads that may fail in a row before following gives up.
const UNREACHABLE_READS: u32 = 5;

/// Polls preview `id` until it is done or failed (or `timeout`), with a spinner on stderr;
/// returns it with every tenant's preview.
pub async fn follow(
    backend: &Backend,
    id: &str,
    timeout: Duration,
) -> Result<PreviewDetails, Failure> {
    let mut spinner = Progress::on_stderr("{spinner} {msg}");
    let started = Instant::now();
    let mut failed_reads = 0;
    let finished = loop {
        match backend.preview(id, None).await {
            Ok(preview) if preview.state.is_finished() => break Ok(preview),
            Ok(preview) => {
                failed_reads = 0;
                spinner.set_message(format!(
                    "{id}: {} tenants previewed ({:?})",
                    preview.previewed, preview.state
                ));
            }
            Err(Failure::Unreachable(reason)) if failed_reads + 1 < UNREACHABLE_READS => {
                failed_reads += 1;
                spinner.set_message(format!("{id}: cannot read it ({reason}); trying again"));
            }
            Err(failure) => break Err(failure),
        }
        let elapsed = started.elapsed();
        if elapsed >= timeout {
            break Err(Failure::Timeout(format!(
                "preview {id} is still running after {} (it goes on server-side; \
                 GET /rollout-previews/{id} reads it)",
                humantime::format_duration(timeout)
            )));
        }
        tokio::time::sleep(POLL.min(timeout - elapsed)).await;
    };
    spinner.finish();
    let mut preview = finished?;
    // Every page, in tenant order.
    let mut next = preview.next.take();
    while let Some(token) = next {
        let page = backend.preview(id, Some(&token)).await?;
        preview.previews.extend(page.previews);
        next = page.next;
    }
    Ok(preview)
}
