//! `rollout start --wait` and `rollout status --watch`: follow a rollout with a progress bar on
//! stderr (off a terminal: a line per change of counts) until it finishes (completed, rolled
//! back, cancelled) or halts.

use std::time::{Duration, Instant};

use api::rollouts::{RolloutDetails, at_rest};
#[cfg(test)]
use indicatif::ProgressStyle;

use crate::backend::Backend;
use crate::failure::Failure;
use crate::output;
use crate::progress::Progress;

const POLL: Duration = Duration::from_secs(2);
const BAR: &str = "{spinner} [{bar:30}] {pos}/{len} {msg} (eta {eta})";
/// Reads that may fail in a row before following gives up: a rollout runs for hours, and one
/// network blip should not end the watch.
const UNREACHABLE_READS: u32 = 5;

/// Polls rollout `id` every 2 s until it is at rest (or `timeout`), showing settled/total
/// tenants, the counts and indicatif's ETA; returns the rollout as last read.
pub async fn watch(
    backend: &Backend,
    id: &str,
    timeout: Option<Duration>,
) -> Result<RolloutDetails, Failure> {
    let mut bar = Progress::on_stderr(BAR);
    bar.set_message(format!("{id}: reading"));
    let started = Instant::now();
    let mut failed_reads = 0;
    let result = loop {
        match backend.rollout(id, false).await {
            Ok(rollout) => {
                failed_reads = 0;
                bar.set_position(
                    u64::from(rollout.settled()),
                    u64::from(rollout.counts.total),
                );
                bar.set_message(format!("{id}: {}", output::progress_message(&rollout)));
                if at_rest(rollout.state) {
                    break Ok(rollout);
                }
            }
            Err(Failure::Unreachable(reason)) if failed_reads + 1 < UNREACHABLE_READS => {
                failed_reads += 1;
                bar.set_message(format!("{id}: cannot read it ({reason}); trying again"));
            }
            Err(failure) => break Err(failure),
        }
        let elapsed = started.elapsed();
        if let Some(timeout) = timeout {
            if elapsed >= timeout {
                break Err(Failure::Timeout(format!(
                    "rollout {id} is still running after {} (it goes on; \
                     `tenantctl rollout status {id} --watch` follows it again)",
                    humantime::format_duration(timeout)
                )));
            }
            tokio::time::sleep(POLL.min(timeout - elapsed)).await;
        } else {
            tokio::time::sleep(POLL).await;
        }
    };
    bar.finish();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_bar_template_is_valid() {
        assert!(ProgressStyle::with_template(BAR).is_ok());
    }
}
