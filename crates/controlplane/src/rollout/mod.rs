//! Fleet rollouts, the I/O half: the driver that moves members through the pure plan
//! (`model::rollout`), and the preview of what a version would change. Ids are made here, not
//! in the model: they read the wall clock and the process.

pub mod driver;
pub mod preview;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// A rollout id: time-ordered and unique (see [`unique_id`]).
pub fn rollout_id(now: DateTime<Utc>, target_version: &str, created_by: &str) -> String {
    unique_id("r", now, target_version, created_by)
}

/// An id `<prefix>-<time>-<hash>`: time-ordered and unique (two in the same second, even from
/// one process, differ: the wall clock's nanoseconds, the process and a counter are hashed in).
pub fn unique_id(prefix: &str, now: DateTime<Utc>, subject: &str, created_by: &str) -> String {
    static STARTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let start = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let digest = Sha256::digest(format!(
        "{now:?}/{subject}/{created_by}/{wall}/{}/{start}",
        std::process::id()
    ));
    format!(
        "{prefix}-{}-{}",
        // Milliseconds: ids sort by creation, newest last, even within a second.
        now.format("%Y%m%dT%H%M%S%.3fZ"),
        hex::encode(&digest[..3])
    )
}
