//! The small traits AWS sits behind, one file per port. One SDK adapter each (`crate::aws`),
//! one fake each (`crate::testing`, behind the `test-util` feature).

mod alarms;
mod change_previews;
mod drift;
mod lifecycle_events;
mod preview_store;
mod recheck;
mod rollout_store;
mod spec_store;
mod stacks;
mod stream_records;
mod template_objects;
mod template_source;
mod template_store;
mod template_validator;
mod tenant_store;

pub use alarms::*;
pub use change_previews::*;
pub use drift::*;
pub use lifecycle_events::*;
pub use preview_store::*;
pub use recheck::*;
pub use rollout_store::*;
pub use spec_store::*;
pub use stacks::*;
pub use stream_records::*;
pub use template_objects::*;
pub use template_source::*;
pub use template_store::*;
pub use template_validator::*;
pub use tenant_store::*;

/// Whether an error may heal by itself. Decides retry versus `failed` with the reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Healing {
    /// Throttling, network, a role still propagating, a busy stack: try again later.
    Transient,
    /// Bad input or a rejection that the same request will always get.
    Permanent,
}
