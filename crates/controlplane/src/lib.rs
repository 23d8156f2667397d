//! The tenant control plane: the one reconcile loop every trigger calls, the triggers, the
//! rollout driver, and the AWS adapters of its ports. The pure domain is the `model` crate.

pub mod aws;
pub mod deadline;
#[cfg(any(test, feature = "test-util"))]
pub mod fakes;
pub mod metrics;
pub mod ports;
pub mod reconcile;
pub mod rollout;
pub mod runtime;
pub mod status_writer;
pub mod template_source;
pub mod triggers;
pub mod validation;
