//! Lambda does not tell a function its timeout, so template.yaml states it a second time, as
//! FUNCTION_TIMEOUT_SECONDS (controlplane::deadline): the two agree for every function.

use std::time::Duration;

use controlplane::deadline::{
    DeclaredTimeout, FUNCTION_TIMEOUT_VAR, MAX_FUNCTION_TIMEOUT, declared_timeout,
};
use serde_yaml_ng::Value;

fn template() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).expect("template.yaml"))
        .expect("template.yaml parses")
}

#[test]
fn every_functions_stated_timeout_is_its_configured_timeout() {
    let template = template();
    let functions: Vec<&str> = template["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .filter_map(|(id, _)| id.as_str())
        .collect();
    assert!(functions.len() >= 9, "only {functions:?}");
    for id in functions {
        let DeclaredTimeout { timeout, stated } = declared_timeout(&template, id);
        let timeout = timeout.unwrap_or_else(|| panic!("{id}: no Timeout"));
        assert_eq!(
            stated,
            Some(timeout),
            "{id}: {FUNCTION_TIMEOUT_VAR} against Timeout"
        );
        assert!(
            Duration::from_secs(timeout) <= MAX_FUNCTION_TIMEOUT,
            "{id}: Timeout {timeout} is over Lambda's longest"
        );
    }
}

/// Globals as SAM applies them: a function's own Timeout and variables over the global ones.
#[test]
fn a_functions_own_timeout_and_variables_win_over_the_globals() {
    let template: Value = serde_yaml_ng::from_str(
        "Globals:
  Function:
    Timeout: 300
    Environment:
      Variables:
        FUNCTION_TIMEOUT_SECONDS: \"300\"
        OTHER: x
Resources:
  Plain:
    Type: AWS::Serverless::Function
    Properties: {}
  Own:
    Type: AWS::Serverless::Function
    Properties:
      Timeout: 60
      Environment:
        Variables:
          FUNCTION_TIMEOUT_SECONDS: 60
  Disagreeing:
    Type: AWS::Serverless::Function
    Properties:
      Timeout: 900
",
    )
    .expect("yaml");
    let declared = |id| declared_timeout(&template, id);
    assert_eq!(
        declared("Plain"),
        DeclaredTimeout {
            timeout: Some(300),
            stated: Some(300)
        }
    );
    assert_eq!(
        declared("Own"),
        DeclaredTimeout {
            timeout: Some(60),
            stated: Some(60)
        }
    );
    assert_eq!(
        declared("Disagreeing"),
        DeclaredTimeout {
            timeout: Some(900),
            stated: Some(300)
        }
    );
}
