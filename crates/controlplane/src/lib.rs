//! The tenant control plane: the one reconcile loop every trigger calls, the triggers, the
//! rollout driver, and the AWS adapters of its ports. The pure domain is the `model` crate.

pub mod aws;
pub mod config;
pub mod deadline;
pub mod metrics;
pub mod ports;
pub mod reconcile;
pub mod rollout;
pub mod status_writer;
pub mod template_source;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
pub mod triggers;
pub mod validation;
pub mod wiring;
