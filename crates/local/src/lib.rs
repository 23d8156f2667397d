//! Runs the control plane against a local AWS emulator (moto server): the emulator's lifecycle,
//! the table it needs, and a stream poller that stands in for Lambda's event source mapping.

pub mod backoff;
pub mod declared;
pub mod emulator;
pub mod event_source;
pub mod filter;
pub mod iam;
pub mod sqs_poller;
pub mod stream_poller;
pub mod strict;
pub mod system;
