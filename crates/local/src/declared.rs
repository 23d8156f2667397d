//! What template.yaml (and the tenant-account bootstrap) declare about permissions, read from
//! the files themselves: each IAM role and managed policy with its statements, intrinsics
//! resolved for one deployment. The local system creates its roles from these, and the
//! permission check (tests/iam_policies.rs) holds the code's declared calls against them, so no
//! second copy of a policy exists anywhere.

use std::collections::BTreeMap;

use serde_yaml_ng::Value;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{at}: {reason}")]
pub struct DeclaredError {
    pub at: String,
    pub reason: String,
}

fn error(at: impl Into<String>, reason: impl Into<String>) -> DeclaredError {
    DeclaredError {
        at: at.into(),
        reason: reason.into(),
    }
}

/// Where a template is deployed: its pseudo parameters, its parameters' values and the names
/// its resources get. What it does not set follows the template (parameter defaults; resources
/// named by their name property, else after their logical id).
#[derive(Clone, Debug)]
pub struct Deployment {
    pub partition: String,
    pub region: String,
    pub account: String,
    pub stack_name: String,
    /// Parameter values over the template's defaults.
    pub parameters: BTreeMap<String, String>,
    /// Physical names of resources, by logical id, over the template's.
    pub names: BTreeMap<String, String>,
    /// `Ref` values of resources, by logical id, where they are not derived from the name
    /// (a queue's URL).
    pub refs: BTreeMap<String, String>,
    /// Attributes (`!GetAtt X.Attr`) by `X.Attr`, over the derived ones (a table's StreamArn).
    pub attributes: BTreeMap<String, String>,
}

impl Deployment {
    pub fn new(region: &str, account: &str, stack_name: &str) -> Self {
        Self {
            partition: "aws".into(),
            region: region.into(),
            account: account.into(),
            stack_name: stack_name.into(),
            parameters: BTreeMap::new(),
            names: BTreeMap::new(),
            refs: BTreeMap::new(),
            attributes: BTreeMap::new(),
        }
    }
}

/// A parsed template with what it declares.
pub struct Declared {
    document: Value,
    deployment: Deployment,
}

/// One IAM policy statement, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    pub sid: String,
    pub effect: String,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
    /// The statement's Condition, as JSON (trust policies).
    pub condition: serde_json::Value,
    /// The statement's Principal, as JSON (trust policies).
    pub principal: serde_json::Value,
}

/// An `AWS::IAM::Role`: its name, trust and inline policies (and `AWS::IAM::RolePolicy`
/// resources attached to it), resolved.
#[derive(Clone, Debug)]
pub struct Role {
    pub logical_id: String,
    pub name: String,
    pub trust: Vec<Statement>,
    /// Every statement of its policies.
    pub statements: Vec<Statement>,
    /// Its inline policies by name, with their statements.
    pub policies: Vec<(String, Vec<Statement>)>,
}

fn text_of(value: &Value) -> Option<&str> {
    match value {
        Value::String(s) => Some(s),
        _ => None,
    }
}

fn list(value: Option<&Value>) -> Vec<&Value> {
    match value {
        Some(Value::Sequence(items)) => items.iter().collect(),
        None | Some(Value::Null) => Vec::new(),
        Some(one) => vec![one],
    }
}

impl Declared {
    pub fn parse(text: &str, deployment: Deployment) -> Result<Self, DeclaredError> {
        let document: Value =
            serde_yaml_ng::from_str(text).map_err(|e| error("template", e.to_string()))?;
        Ok(Self {
            document,
            deployment,
        })
    }

    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    fn resources(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.document
            .get("Resources")
            .and_then(Value::as_mapping)
            .into_iter()
            .flatten()
            .filter_map(|(id, resource)| Some((id.as_str()?, resource)))
    }

    pub fn resource(&self, logical_id: &str) -> Option<&Value> {
        self.document.get("Resources")?.get(logical_id)
    }

    /// The resource's `Type`.
    pub fn type_of(&self, logical_id: &str) -> Option<&str> {
        self.resource(logical_id)?
            .get("Type")
            .and_then(Value::as_str)
    }

    /// Logical ids of every resource of type `kind`.
    pub fn of_type<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.resources()
            .filter(move |(_, r)| r.get("Type").and_then(Value::as_str) == Some(kind))
            .map(|(id, _)| id)
    }

    /// A parameter's value: the deployment's, else its default.
    pub fn parameter(&self, name: &str) -> Option<String> {
        if let Some(value) = self.deployment.parameters.get(name) {
            return Some(value.clone());
        }
        let default = self.document.get("Parameters")?.get(name)?.get("Default")?;
        match default {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// A resource's physical name: the deployment's, else its name property, else
    /// `<stack>-<logical id>`.
    pub fn name_of(&self, logical_id: &str) -> Result<String, DeclaredError> {
        if let Some(name) = self.deployment.names.get(logical_id) {
            return Ok(name.clone());
        }
        let resource = self
            .resource(logical_id)
            .ok_or_else(|| error(logical_id, "no such resource"))?;
        const NAME_PROPERTIES: &[&str] = &[
            "TableName",
            "QueueName",
            "TopicName",
            "LogGroupName",
            "RoleName",
            "FunctionName",
            "ManagedPolicyName",
            "BucketName",
            "Name",
        ];
        let properties = resource.get("Properties");
        for property in NAME_PROPERTIES {
            if let Some(value) = properties.and_then(|p| p.get(*property)) {
                return self.resolve_text(value, logical_id);
            }
        }
        Ok(format!("{}-{logical_id}", self.deployment.stack_name))
    }

    /// `!Ref logical_id` of a resource or parameter.
    pub fn reference(&self, name: &str, at: &str) -> Result<String, DeclaredError> {
        let d = &self.deployment;
        match name {
            "AWS::Partition" => return Ok(d.partition.clone()),
            "AWS::Region" => return Ok(d.region.clone()),
            "AWS::AccountId" => return Ok(d.account.clone()),
            "AWS::StackName" => return Ok(d.stack_name.clone()),
            "AWS::URLSuffix" => return Ok("amazonaws.com".into()),
            _ => {}
        }
        if let Some(value) = d.refs.get(name) {
            return Ok(value.clone());
        }
        if self.resource(name).is_none() {
            return self
                .parameter(name)
                .ok_or_else(|| error(at, format!("!Ref {name}: no such parameter or resource")));
        }
        let physical = self.name_of(name)?;
        Ok(match self.type_of(name).unwrap_or_default() {
            "AWS::SQS::Queue" => format!(
                "https://sqs.{}.amazonaws.com/{}/{physical}",
                d.region, d.account
            ),
            "AWS::SNS::Topic" => self.arn(name)?,
            _ => physical,
        })
    }

    /// A resource's `Arn` attribute, as CloudFormation gives it.
    pub fn arn(&self, logical_id: &str) -> Result<String, DeclaredError> {
        let d = &self.deployment;
        let (p, r, a) = (&d.partition, &d.region, &d.account);
        let name = self.name_of(logical_id)?;
        Ok(match self.type_of(logical_id).unwrap_or_default() {
            "AWS::DynamoDB::Table" => format!("arn:{p}:dynamodb:{r}:{a}:table/{name}"),
            "AWS::SQS::Queue" => format!("arn:{p}:sqs:{r}:{a}:{name}"),
            "AWS::SNS::Topic" => format!("arn:{p}:sns:{r}:{a}:{name}"),
            // The log group's ARN ends with `:*`: it names every stream of the group.
            "AWS::Logs::LogGroup" => format!("arn:{p}:logs:{r}:{a}:log-group:{name}:*"),
            "AWS::Events::EventBus" => format!("arn:{p}:events:{r}:{a}:event-bus/{name}"),
            "AWS::Events::Rule" => format!("arn:{p}:events:{r}:{a}:rule/{name}"),
            "AWS::IAM::Role" => format!("arn:{p}:iam::{a}:role/{name}"),
            "AWS::IAM::ManagedPolicy" => format!("arn:{p}:iam::{a}:policy/{name}"),
            "AWS::S3::Bucket" => format!("arn:{p}:s3:::{name}"),
            "AWS::Serverless::Function" | "AWS::Lambda::Function" => {
                format!("arn:{p}:lambda:{r}:{a}:function:{name}")
            }
            other => {
                return Err(error(
                    logical_id,
                    format!("no ARN format for {other} (add it to local::declared)"),
                ));
            }
        })
    }

    /// `!GetAtt logical_id.attribute`.
    pub fn attribute(&self, path: &str, at: &str) -> Result<String, DeclaredError> {
        if let Some(value) = self.deployment.attributes.get(path) {
            return Ok(value.clone());
        }
        let (id, attribute) = path
            .split_once('.')
            .ok_or_else(|| error(at, format!("!GetAtt {path}: no attribute")))?;
        match attribute {
            "Arn" => self.arn(id),
            "StreamArn" => Ok(format!("{}/stream/2026-01-01T00:00:00.000", self.arn(id)?)),
            "QueueName" | "TopicName" | "Name" => self.name_of(id),
            _ => Err(error(at, format!("!GetAtt {path}: not resolved locally"))),
        }
    }

    /// A string value with its intrinsics resolved (`!Sub`, `!Ref`, `!GetAtt`, `!Join`).
    pub fn resolve_text(&self, value: &Value, at: &str) -> Result<String, DeclaredError> {
        match value {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            Value::Tagged(tagged) => {
                let tag = tagged.tag.to_string();
                match (tag.as_str(), &tagged.value) {
                    ("!Ref", Value::String(name)) => self.reference(name, at),
                    ("!GetAtt", Value::String(path)) => self.attribute(path, at),
                    ("!GetAtt", Value::Sequence(parts)) if parts.len() == 2 => {
                        let id = text_of(&parts[0]).unwrap_or_default();
                        let attr = text_of(&parts[1]).unwrap_or_default();
                        self.attribute(&format!("{id}.{attr}"), at)
                    }
                    ("!Sub", Value::String(text)) => self.substitute(text, &BTreeMap::new(), at),
                    ("!Sub", Value::Sequence(parts)) if parts.len() == 2 => {
                        let text = text_of(&parts[0])
                            .ok_or_else(|| error(at, "!Sub: the first item is not a string"))?;
                        let mut variables = BTreeMap::new();
                        for (name, v) in parts[1].as_mapping().into_iter().flatten() {
                            if let Some(name) = name.as_str() {
                                variables.insert(name.to_owned(), self.resolve_text(v, at)?);
                            }
                        }
                        self.substitute(text, &variables, at)
                    }
                    ("!Join", Value::Sequence(parts)) if parts.len() == 2 => {
                        let separator = text_of(&parts[0]).unwrap_or_default();
                        let items = list(Some(&parts[1]))
                            .into_iter()
                            .map(|v| self.resolve_text(v, at))
                            .collect::<Result<Vec<_>, _>>()?;
                        Ok(items.join(separator))
                    }
                    _ => Err(error(at, format!("{tag} is not resolved locally"))),
                }
            }
            _ => Err(error(at, "not a string")),
        }
    }

    fn substitute(
        &self,
        text: &str,
        variables: &BTreeMap<String, String>,
        at: &str,
    ) -> Result<String, DeclaredError> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| error(at, format!("!Sub {text:?}: an unclosed ${{")))?;
            let name = &after[..end];
            let value = match variables.get(name) {
                Some(value) => value.clone(),
                None if name.contains('.') && !name.starts_with("AWS::") => {
                    self.attribute(name, at)?
                }
                None => self.reference(name, at)?,
            };
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn statements_of(
        &self,
        document: Option<&Value>,
        at: &str,
    ) -> Result<Vec<Statement>, DeclaredError> {
        let mut found = Vec::new();
        for (index, statement) in list(document.and_then(|d| d.get("Statement")))
            .into_iter()
            .enumerate()
        {
            let sid = statement
                .get("Sid")
                .and_then(Value::as_str)
                .map_or_else(|| format!("#{index}"), str::to_owned);
            let at = format!("{at}.{sid}");
            let strings = |field: &str| -> Result<Vec<String>, DeclaredError> {
                list(statement.get(field))
                    .into_iter()
                    .map(|v| self.resolve_text(v, &at))
                    .collect()
            };
            let json = |field: &str| -> Result<serde_json::Value, DeclaredError> {
                match statement.get(field) {
                    None => Ok(serde_json::Value::Null),
                    Some(v) => self.resolve_json(v, &at),
                }
            };
            found.push(Statement {
                effect: statement
                    .get("Effect")
                    .and_then(Value::as_str)
                    .unwrap_or("Allow")
                    .to_owned(),
                actions: strings("Action")?,
                resources: strings("Resource")?,
                condition: json("Condition")?,
                principal: json("Principal")?,
                sid,
            });
        }
        Ok(found)
    }

    /// Any value as JSON, strings resolved.
    fn resolve_json(&self, value: &Value, at: &str) -> Result<serde_json::Value, DeclaredError> {
        Ok(match value {
            Value::Mapping(map) => {
                let mut object = serde_json::Map::new();
                for (key, v) in map {
                    let key = key.as_str().unwrap_or_default().to_owned();
                    object.insert(key, self.resolve_json(v, at)?);
                }
                serde_json::Value::Object(object)
            }
            Value::Sequence(items) => serde_json::Value::Array(
                items
                    .iter()
                    .map(|v| self.resolve_json(v, at))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Null => serde_json::Value::Null,
            other => serde_json::Value::String(self.resolve_text(other, at)?),
        })
    }

    /// Whether the template's condition `name` holds in this deployment (`!Equals`, `!Not`,
    /// `!And`, `!Or` over parameters).
    pub fn condition(&self, name: &str) -> Result<bool, DeclaredError> {
        let condition = self
            .document
            .get("Conditions")
            .and_then(|c| c.get(name))
            .ok_or_else(|| error(name, "no such condition"))?;
        self.evaluate(condition, name)
    }

    fn evaluate(&self, value: &Value, at: &str) -> Result<bool, DeclaredError> {
        let Value::Tagged(tagged) = value else {
            return Err(error(
                at,
                "a condition is !Equals, !Not, !And, !Or or !Condition",
            ));
        };
        let items = list(Some(&tagged.value));
        match tagged.tag.to_string().as_str() {
            "!Equals" if items.len() == 2 => {
                Ok(self.resolve_text(items[0], at)? == self.resolve_text(items[1], at)?)
            }
            "!Not" if items.len() == 1 => Ok(!self.evaluate(items[0], at)?),
            "!And" => items
                .into_iter()
                .try_fold(true, |all, c| Ok(all && self.evaluate(c, at)?)),
            "!Or" => items
                .into_iter()
                .try_fold(false, |any, c| Ok(any || self.evaluate(c, at)?)),
            "!Condition" => self.condition(text_of(&tagged.value).unwrap_or_default()),
            other => Err(error(at, format!("{other} is not evaluated locally"))),
        }
    }

    /// Whether the resource is created in this deployment (its `Condition`, if any, holds).
    pub fn is_created(&self, logical_id: &str) -> Result<bool, DeclaredError> {
        match self
            .resource(logical_id)
            .and_then(|r| r.get("Condition"))
            .and_then(Value::as_str)
        {
            None => Ok(true),
            Some(condition) => self.condition(condition),
        }
    }

    /// Every `AWS::IAM::Role` created in this deployment, with the `AWS::IAM::RolePolicy`
    /// resources that name it.
    pub fn roles(&self) -> Result<Vec<Role>, DeclaredError> {
        let mut roles = Vec::new();
        for id in self.of_type("AWS::IAM::Role") {
            if !self.is_created(id)? {
                continue;
            }
            let properties = self.resource(id).and_then(|r| r.get("Properties"));
            let mut policies = Vec::new();
            for policy in list(properties.and_then(|p| p.get("Policies"))) {
                let name = policy
                    .get("PolicyName")
                    .map(|n| self.resolve_text(n, id))
                    .transpose()?
                    .unwrap_or_default();
                policies.push((name, self.statements_of(policy.get("PolicyDocument"), id)?));
            }
            let attached_policies = self
                .of_type("AWS::IAM::RolePolicy")
                .chain(self.of_type("AWS::IAM::Policy"));
            for attached in attached_policies {
                if !self.is_created(attached)? {
                    continue;
                }
                let policy = self.resource(attached).and_then(|r| r.get("Properties"));
                let is_this_role =
                    |r: &Value| matches!(r, Value::Tagged(t) if t.value.as_str() == Some(id));
                // A RolePolicy names one role (`RoleName`), a Policy several (`Roles`).
                let names_role = policy.is_some_and(|p| {
                    p.get("RoleName").is_some_and(is_this_role)
                        || list(p.get("Roles")).into_iter().any(is_this_role)
                });
                if names_role {
                    let name = policy
                        .and_then(|p| p.get("PolicyName"))
                        .map(|n| self.resolve_text(n, attached))
                        .transpose()?
                        .unwrap_or_default();
                    policies.push((
                        name,
                        self.statements_of(policy.and_then(|p| p.get("PolicyDocument")), attached)?,
                    ));
                }
            }
            roles.push(Role {
                logical_id: id.to_owned(),
                name: self.name_of(id)?,
                trust: self.statements_of(
                    properties.and_then(|p| p.get("AssumeRolePolicyDocument")),
                    &format!("{id}.trust"),
                )?,
                statements: policies.iter().flat_map(|(_, s)| s.clone()).collect(),
                policies,
            });
        }
        Ok(roles)
    }

    /// The statements of the `AWS::IAM::ManagedPolicy` `logical_id`.
    pub fn managed_policy(&self, logical_id: &str) -> Result<Vec<Statement>, DeclaredError> {
        let document = self
            .resource(logical_id)
            .filter(|_| self.type_of(logical_id) == Some("AWS::IAM::ManagedPolicy"))
            .and_then(|r| r.get("Properties"))
            .and_then(|p| p.get("PolicyDocument"))
            .ok_or_else(|| error(logical_id, "no such managed policy"))?;
        self.statements_of(Some(document), logical_id)
    }

    /// The role (logical id) a function runs with: its `Role: !GetAtt X.Arn`.
    pub fn role_of_function(&self, function: &str) -> Result<String, DeclaredError> {
        let role = self
            .resource(function)
            .and_then(|f| f.get("Properties"))
            .and_then(|p| p.get("Role"))
            .ok_or_else(|| error(function, "no Role"))?;
        match role {
            Value::Tagged(tagged) if tagged.tag == "!GetAtt" => tagged
                .value
                .as_str()
                .and_then(|path| path.strip_suffix(".Arn"))
                .map(str::to_owned)
                .ok_or_else(|| error(function, "Role is not !GetAtt <role>.Arn")),
            _ => Err(error(function, "Role is not !GetAtt <role>.Arn")),
        }
    }

    /// The raw YAML of the template (what is not read here, read there).
    pub fn document(&self) -> &Value {
        &self.document
    }
}

/// IAM's wildcard match of `pattern` (`*` any run of characters, `?` one) against `text`.
pub fn iam_matches(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // The classic two-pointer glob match with backtracking to the last star.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < t.len() {
        if i < p.len() && (p[i] == '?' || p[i] == t[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = include_str!("../../../template.yaml");

    fn declared() -> Declared {
        let mut deployment = Deployment::new("us-east-1", "123456789012", "tcp");
        deployment
            .parameters
            .insert("JwtIssuer".into(), "https://issuer".into());
        Declared::parse(TEMPLATE, deployment).unwrap()
    }

    #[test]
    fn roles_are_read_with_their_statements_resolved() {
        let declared = declared();
        let roles = declared.roles().unwrap();
        let handler = roles
            .iter()
            .find(|r| r.logical_id == "StreamHandlerRole")
            .expect("the stream handler's role");
        assert_eq!(handler.name, "tcp-stream-handler");
        let reads = handler
            .statements
            .iter()
            .find(|s| s.actions.iter().any(|a| a == "dynamodb:Query"))
            .unwrap();
        assert_eq!(
            reads.resources,
            ["arn:aws:dynamodb:us-east-1:123456789012:table/tenants-control"]
        );
        let assume = handler
            .statements
            .iter()
            .find(|s| s.actions == ["sts:AssumeRole"])
            .unwrap();
        assert_eq!(assume.resources, ["arn:aws:iam::*:role/TenantControlRole"]);
        assert_eq!(
            declared.role_of_function("StreamHandlerFunction").unwrap(),
            "StreamHandlerRole"
        );
    }

    #[test]
    fn iam_wildcards_match_as_iam_does() {
        assert!(iam_matches(
            "arn:aws:iam::*:role/R",
            "arn:aws:iam::111111111111:role/R"
        ));
        assert!(iam_matches("*", ""));
        assert!(iam_matches("a?c*", "abcdef"));
        assert!(!iam_matches(
            "arn:aws:sqs:*:1:tenant-*",
            "arn:aws:sqs:us-east-1:1:acme-x"
        ));
        assert!(iam_matches("a*b*c", "aXbYbZc"));
        assert!(!iam_matches("a*b", "aXbc"));
    }
}
