//! The IAM policies in template.yaml and the tenant-account bootstrap name their resources: no
//! `*` resource anywhere; the table, its indexes and stream, the queues and topics by reference;
//! `arn:aws:iam::*:role/<TenantRoleName>` as the one account wildcard, and only for
//! sts:AssumeRole; the tenant role trusted only with the account's ExternalId and only from the
//! control plane's own roles.

use serde_yaml_ng::Value;

fn template(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(name);
    serde_yaml_ng::from_str(&std::fs::read_to_string(&path).expect("template"))
        .expect("the template parses")
}

/// A value as text, intrinsic tags kept (`!Sub arn:...`, `!GetAtt TenantsTable.Arn`).
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Tagged(tagged) => format!("{} {}", tagged.tag, text(&tagged.value)),
        Value::Sequence(items) => items.iter().map(text).collect::<Vec<_>>().join(" "),
        other => serde_yaml_ng::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_owned(),
    }
}

fn list(value: &Value) -> Vec<&Value> {
    match value {
        Value::Sequence(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        one => vec![one],
    }
}

struct Statement {
    role: String,
    sid: String,
    actions: Vec<String>,
    resources: Vec<String>,
}

/// Every permission statement of every IAM role in the template.
fn statements(template: &Value) -> Vec<Statement> {
    let mut found = Vec::new();
    let Some(resources) = template["Resources"].as_mapping() else {
        return found;
    };
    for (name, resource) in resources {
        if resource["Type"].as_str() != Some("AWS::IAM::Role") {
            continue;
        }
        for policy in list(&resource["Properties"]["Policies"]) {
            for statement in list(&policy["PolicyDocument"]["Statement"]) {
                found.push(Statement {
                    role: text(name),
                    sid: text(&statement["Sid"]),
                    actions: list(&statement["Action"]).into_iter().map(text).collect(),
                    resources: list(&statement["Resource"]).into_iter().map(text).collect(),
                });
            }
        }
    }
    found
}

const TENANT_ROLE: &str = "!Sub arn:${AWS::Partition}:iam::*:role/${TenantRoleName}";

/// Actions IAM cannot scope to a resource (the Service Authorization Reference lists none for
/// them): the only ones allowed on `*`.
const NO_RESOURCE_LEVEL_PERMISSIONS: &[&str] = &["cloudformation:ValidateTemplate"];

#[test]
fn the_control_planes_roles_name_their_resources() {
    let statements = statements(&template("template.yaml"));
    assert!(statements.len() > 20, "the template's roles were read");
    for s in &statements {
        let at = format!("{}.{}", s.role, s.sid);
        assert!(!s.resources.is_empty(), "{at}: no Resource");
        let unscopable = s
            .actions
            .iter()
            .all(|a| NO_RESOURCE_LEVEL_PERMISSIONS.contains(&a.as_str()));
        if unscopable {
            assert_eq!(s.resources, ["*"], "{at}");
            continue;
        }
        for resource in &s.resources {
            assert_ne!(resource.trim(), "*", "{at}: Resource *");
            if resource.contains("iam::*") {
                assert_eq!(
                    resource, TENANT_ROLE,
                    "{at}: an account wildcard other than the tenant role"
                );
            }
        }
        for action in &s.actions {
            assert!(!action.contains('*'), "{at}: wildcard action {action}");
            let service = action.split(':').next().unwrap_or_default();
            let named = |r: &String| match service {
                "dynamodb" => r.contains("TenantsTable"),
                "sqs" => r.contains("Queue"),
                "sns" => r.contains("Topic"),
                "logs" => r.contains("LogGroup"),
                "ssm" => r.contains("${ExternalIdKeyParameter}"),
                "sts" => r == TENANT_ROLE,
                _ => !r.contains('*'),
            };
            assert!(
                s.resources.iter().all(named),
                "{at}: {action} on {:?} is not scoped to the resource it needs",
                s.resources
            );
        }
    }
    // The roles that never reach a tenant account cannot assume its role.
    for role in ["MetricsRole", "DecommissionRole", "ApiRole", "RolloutRole"] {
        assert!(
            statements
                .iter()
                .filter(|s| s.role == role)
                .all(|s| !s.actions.iter().any(|a| a.starts_with("sts:"))),
            "{role} can assume roles"
        );
    }
}

#[test]
fn the_tenant_role_trusts_only_the_control_plane_with_the_accounts_external_id() {
    let bootstrap = template("templates/tenant-account-bootstrap.yaml");
    let role = &bootstrap["Resources"]["ControlPlaneRole"];
    assert_eq!(role["Type"].as_str(), Some("AWS::IAM::Role"));
    let trust = list(&role["Properties"]["AssumeRolePolicyDocument"]["Statement"]);
    assert!(!trust.is_empty());
    for statement in trust {
        let principal = text(&statement["Principal"]["AWS"]);
        assert!(
            principal.contains("${ControlPlaneAccountId}"),
            "principal {principal}"
        );
        assert_ne!(principal.trim(), "*");
        assert_eq!(
            text(&statement["Condition"]["StringEquals"]["sts:ExternalId"]),
            "!Ref ExternalId",
            "every trust statement requires the ExternalId"
        );
        let principal_arn = text(&statement["Condition"]["ArnLike"]["aws:PrincipalArn"]);
        assert!(
            principal_arn.contains("${ControlPlaneAccountId}:role/${ControlPlaneRolePrefix}"),
            "only the control plane's roles: {principal_arn}"
        );
    }
    for s in statements(&bootstrap) {
        let at = format!("{}.{}", s.role, s.sid);
        for resource in &s.resources {
            assert_ne!(resource.trim(), "*", "{at}: Resource *");
            assert!(
                resource.contains("${AWS::AccountId}") || resource.contains("EventBus"),
                "{at}: {resource} is not limited to this account"
            );
        }
        if s.actions.iter().any(|a| a.starts_with("cloudformation:")) {
            assert!(
                s.resources
                    .iter()
                    .all(|r| r.contains("stack/${StackNamePrefix}")),
                "{at}: stacks other than the control plane's"
            );
        }
    }
}
