//! The tenant control plane: a pure domain (spec, template mapping, stack states, decision), the
//! one reconcile loop every trigger calls, the stream handler, and the AWS adapters of its ports.

pub mod audit;
pub mod aws;
pub mod completion;
pub mod deadline;
pub mod decide;
pub mod decommission;
pub mod dynamo_rules;
pub mod fakes;
pub mod item_json;
pub mod metrics;
pub mod on_failure;
pub mod ports;
pub mod reconcile;
pub mod rollout;
pub mod rollout_driver;
pub mod rollout_preview;
pub mod runtime;
pub mod spec;
pub mod stack;
pub mod status;
pub mod stream;
pub mod sweep;
pub mod table_lint;
pub mod template;
pub mod template_source;
pub mod validation;
