//! Whether a tenant account's deploy policy lets CloudFormation make what a template declares.
//!
//! CloudFormation creates a tenant stack's resources with the account's deploy role (RoleARN);
//! its resource handlers need the actions each resource type's registry schema lists
//! (`handlers.{create,read,update,delete}.permissions`, as cfn-lint ships the schemas). This
//! module compares the two, offline: which actions of which resource types the policy does not
//! allow. Resource scoping and conditions are not judged (the ARNs of resources a template has
//! yet to create are not known): an action is allowed when some Allow statement names it and no
//! Deny statement on every resource (`*`) does.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// What the resource types of a template need that a policy does not allow.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyGaps {
    /// Actions not allowed, by the resource type that needs them.
    pub missing: BTreeMap<String, BTreeSet<String>>,
    /// Resource types with no known schema (a third-party or private type, or one newer than
    /// the schemas): not checked.
    pub unknown: BTreeSet<String>,
}

impl PolicyGaps {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.unknown.is_empty()
    }

    /// One line per resource type, for people.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .missing
            .iter()
            .map(|(kind, actions)| {
                format!(
                    "{kind} needs {} the deploy policy does not allow: {}",
                    if actions.len() == 1 {
                        "an action"
                    } else {
                        "actions"
                    },
                    actions.iter().cloned().collect::<Vec<_>>().join(", ")
                )
            })
            .collect();
        lines.extend(self.unknown.iter().map(|kind| {
            format!("{kind}: no resource schema known, so its permissions were not checked")
        }));
        lines
    }
}

/// The resource types a template declares (`Resources.*.Type`), each once; a template that does
/// not parse declares none (its publish fails elsewhere, with the parser's reason).
pub fn resource_types(body: &str) -> BTreeSet<String> {
    let Ok(document) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(body) else {
        return BTreeSet::new();
    };
    document
        .get("Resources")
        .and_then(serde_yaml_ng::Value::as_mapping)
        .into_iter()
        .flat_map(|resources| resources.values())
        .filter_map(|resource| resource.get("Type").and_then(|t| t.as_str()))
        .map(str::to_owned)
        .collect()
}

/// What an `AWS::Serverless` resource (SAM's transform) becomes: the types CloudFormation then
/// makes. Its events and options may add more (an API's stage, a schedule's rule).
fn expanded(kind: &str) -> &'static [&'static str] {
    match kind {
        "AWS::Serverless::Function" => &["AWS::Lambda::Function", "AWS::IAM::Role"],
        "AWS::Serverless::Api" => &[
            "AWS::ApiGateway::RestApi",
            "AWS::ApiGateway::Deployment",
            "AWS::ApiGateway::Stage",
        ],
        "AWS::Serverless::HttpApi" => &["AWS::ApiGatewayV2::Api", "AWS::ApiGatewayV2::Stage"],
        "AWS::Serverless::SimpleTable" => &["AWS::DynamoDB::Table"],
        "AWS::Serverless::LayerVersion" => &["AWS::Lambda::LayerVersion"],
        "AWS::Serverless::StateMachine" => &["AWS::StepFunctions::StateMachine", "AWS::IAM::Role"],
        _ => &[],
    }
}

/// Whether an IAM action pattern (`sqs:*`, `ssm:Get*`, `*`) names `action`; case-insensitive,
/// as IAM compares actions.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    fn glob(p: &[u8], a: &[u8]) -> bool {
        match (p.first(), a.first()) {
            (None, None) => true,
            (Some(b'*'), _) => glob(&p[1..], a) || (!a.is_empty() && glob(p, &a[1..])),
            (Some(b'?'), Some(_)) => glob(&p[1..], &a[1..]),
            (Some(x), Some(y)) if x.eq_ignore_ascii_case(y) => glob(&p[1..], &a[1..]),
            _ => false,
        }
    }
    glob(pattern.as_bytes(), action.as_bytes())
}

fn strings(value: Option<&Value>) -> Vec<&str> {
    match value {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn statements(policy: &Value) -> Vec<&Value> {
    match policy.get("Statement") {
        Some(Value::Array(many)) => many.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => Vec::new(),
    }
}

/// Whether `policy` (an IAM policy document) allows `action` on some resource.
pub fn allows(policy: &Value, action: &str) -> bool {
    let names = |statement: &Value| {
        let listed = strings(statement.get("Action"));
        let excluded = strings(statement.get("NotAction"));
        if statement.get("NotAction").is_some() {
            !excluded.iter().any(|p| action_matches(p, action))
        } else {
            listed.iter().any(|p| action_matches(p, action))
        }
    };
    let effect = |statement: &Value, wanted: &str| {
        statement.get("Effect").and_then(Value::as_str) == Some(wanted)
    };
    let everywhere = |statement: &Value| strings(statement.get("Resource")).contains(&"*");
    let all = statements(policy);
    all.iter().any(|s| effect(s, "Allow") && names(s))
        && !all
            .iter()
            .any(|s| effect(s, "Deny") && everywhere(s) && names(s))
}

/// What `types` need (their resource handlers' actions, from `handler_permissions`: resource
/// type → actions) that `policy` does not allow.
pub fn gaps(
    types: &BTreeSet<String>,
    handler_permissions: &BTreeMap<String, Vec<String>>,
    policy: &Value,
) -> PolicyGaps {
    let mut found = PolicyGaps::default();
    let mut check = |kind: &str| match handler_permissions.get(kind) {
        Some(actions) => {
            let missing: BTreeSet<String> = actions
                .iter()
                .filter(|action| !allows(policy, action))
                .cloned()
                .collect();
            if !missing.is_empty() {
                found.missing.insert(kind.to_owned(), missing);
            }
        }
        None => {
            found.unknown.insert(kind.to_owned());
        }
    };
    for kind in types {
        let made = expanded(kind);
        if made.is_empty() {
            check(kind);
        } else {
            made.iter().for_each(|k| check(k));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn permissions() -> BTreeMap<String, Vec<String>> {
        BTreeMap::from([
            (
                "AWS::SQS::Queue".to_owned(),
                vec![
                    "sqs:CreateQueue".to_owned(),
                    "sqs:GetQueueAttributes".to_owned(),
                ],
            ),
            (
                "AWS::Lambda::Function".to_owned(),
                vec![
                    "lambda:CreateFunction".to_owned(),
                    "iam:PassRole".to_owned(),
                ],
            ),
            (
                "AWS::IAM::Role".to_owned(),
                vec!["iam:CreateRole".to_owned()],
            ),
        ])
    }

    #[test]
    fn action_patterns_match_as_iam_matches_them() {
        assert!(action_matches("sqs:*", "sqs:CreateQueue"));
        assert!(action_matches("SQS:createqueue", "sqs:CreateQueue"));
        assert!(action_matches("ssm:Get*", "ssm:GetParameters"));
        assert!(action_matches("*", "iam:PassRole"));
        assert!(action_matches("s3:?etObject", "s3:GetObject"));
        assert!(!action_matches("ssm:Get*", "ssm:PutParameter"));
        assert!(!action_matches("sqs:Create", "sqs:CreateQueue"));
    }

    #[test]
    fn allow_deny_and_not_action_are_read_as_iam_reads_them() {
        let policy = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["sqs:*", "lambda:CreateFunction"], "Resource": "arn:aws:sqs:*:1:tenant-*"},
            {"Effect": "Deny", "Action": "sqs:DeleteQueue", "Resource": "*"},
            {"Effect": "Deny", "Action": "lambda:CreateFunction", "Resource": "arn:aws:lambda:*:1:function:x"},
        ]});
        assert!(allows(&policy, "sqs:CreateQueue"));
        assert!(!allows(&policy, "sqs:DeleteQueue"), "denied everywhere");
        assert!(
            allows(&policy, "lambda:CreateFunction"),
            "denied on one resource only"
        );
        assert!(!allows(&policy, "iam:PassRole"));
        let everything_but_iam =
            json!({"Statement": {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}});
        assert!(allows(&everything_but_iam, "sqs:CreateQueue"));
        assert!(!allows(&everything_but_iam, "iam:CreateRole"));
    }

    #[test]
    fn a_template_needing_more_than_the_policy_allows_is_named_type_by_type() {
        let body = "Transform: AWS::Serverless-2016-10-31\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n  F:\n    Type: AWS::Serverless::Function\n  C:\n    Type: Acme::Widget::Thing\n";
        let types = resource_types(body);
        assert_eq!(types.len(), 3);
        let queues_only =
            json!({"Statement": [{"Effect": "Allow", "Action": "sqs:*", "Resource": "*"}]});
        let found = gaps(&types, &permissions(), &queues_only);
        assert_eq!(
            found.missing.keys().collect::<Vec<_>>(),
            ["AWS::IAM::Role", "AWS::Lambda::Function"],
            "the function's expansion is checked"
        );
        assert_eq!(
            found.missing["AWS::Lambda::Function"],
            BTreeSet::from([
                "iam:PassRole".to_owned(),
                "lambda:CreateFunction".to_owned()
            ])
        );
        assert_eq!(
            found.unknown,
            BTreeSet::from(["Acme::Widget::Thing".to_owned()])
        );
        assert_eq!(
            found.lines()[1],
            "AWS::Lambda::Function needs actions the deploy policy does not allow: iam:PassRole, lambda:CreateFunction"
        );
        let everything =
            json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]});
        let found = gaps(
            &resource_types("Resources:\n  Q:\n    Type: AWS::SQS::Queue\n"),
            &permissions(),
            &everything,
        );
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn a_template_that_does_not_parse_declares_no_types() {
        assert!(resource_types("Resources: [").is_empty());
        assert!(resource_types("{}").is_empty());
    }
}
