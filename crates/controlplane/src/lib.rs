//! The tenant control plane: the one reconcile loop every trigger calls, the triggers, the
//! rollout driver, and the AWS adapters of its ports. The pure domain is the `model` crate.

pub mod aws;
pub mod completion;
pub mod deadline;
pub mod decommission;
pub mod fakes;
pub mod metrics;
pub mod on_failure;
pub mod ports;
pub mod reconcile;
pub mod rollout;
pub mod runtime;
pub mod stream;
pub mod sweep;
pub mod template_source;
pub mod validation;
