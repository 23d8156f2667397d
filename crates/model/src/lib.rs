//! The tenant control plane's pure domain. Everything here is a plain function of its inputs:
//! no clock read, no I/O, no async. The crate has no dependency that could do I/O (no tokio, no
//! AWS SDK), so "pure" is a promise the compiler keeps, not a comment.

pub mod audit;
pub mod decide;
pub mod decommission;
pub mod deploy_policy;
pub mod drift;
pub mod dynamo_rules;
pub mod item_json;
pub mod next_status;
pub mod retry;
pub mod rollout;
pub mod spec;
pub mod stack;
pub mod status;
pub mod table_lint;
pub mod template;
pub mod time;
