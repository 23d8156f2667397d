//! Lambda does not tell a function its timeout, so template.yaml states it a second time, as
//! FUNCTION_TIMEOUT_SECONDS (controlplane::deadline): the two agree for every function, with
//! Globals applied as SAM applies them (a function's own values over the global ones, its
//! variables merged into the global ones).

use std::time::Duration;

use controlplane::deadline::{FUNCTION_TIMEOUT_VAR, MAX_FUNCTION_TIMEOUT};
use serde_yaml_ng::Value;

fn template() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).expect("template.yaml"))
        .expect("template.yaml parses")
}

/// A number as YAML gives it: an integer, or a string of one.
fn seconds(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

#[test]
fn every_functions_stated_timeout_is_its_configured_timeout() {
    let template = template();
    let globals = &template["Globals"]["Function"];
    let mut functions = 0;
    for (id, resource) in template["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
    {
        let id = id.as_str().unwrap_or_default();
        let properties = &resource["Properties"];
        let timeout = properties
            .get("Timeout")
            .or_else(|| globals.get("Timeout"))
            .and_then(seconds)
            .unwrap_or_else(|| panic!("{id}: no Timeout"));
        let stated = properties["Environment"]["Variables"]
            .get(FUNCTION_TIMEOUT_VAR)
            .or_else(|| globals["Environment"]["Variables"].get(FUNCTION_TIMEOUT_VAR))
            .and_then(seconds)
            .unwrap_or_else(|| panic!("{id}: no {FUNCTION_TIMEOUT_VAR}"));
        assert_eq!(
            stated, timeout,
            "{id}: {FUNCTION_TIMEOUT_VAR} against Timeout"
        );
        assert!(
            Duration::from_secs(timeout) <= MAX_FUNCTION_TIMEOUT,
            "{id}: Timeout {timeout} is over Lambda's longest"
        );
        functions += 1;
    }
    assert!(functions >= 9, "only {functions} functions found");
}
