//! Test doubles, behind the `test-util` feature: one in-memory fake per port, for unit tests of
//! the domain and for the faults the emulator cannot produce (moto never fails a stack the way
//! CloudFormation does). Never part of a Lambda's build.

mod alarms;
mod lifecycle_events;
mod preview_queue;
mod recheck;
mod stacks;
mod store;
mod stream_records;
mod template_objects;
mod template_validator;
mod world;

pub use alarms::*;
pub use lifecycle_events::*;
pub use preview_queue::*;
pub use recheck::*;
pub use stacks::*;
pub use store::*;
pub use stream_records::*;
pub use template_objects::*;
pub use template_validator::*;
pub use world::*;

use std::sync::Mutex;

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A test that panicked while holding the lock already failed; keep going for its report.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
