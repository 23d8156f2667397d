//! IAM enforced on the emulator, as AWS enforces it (moto checks identity policies when asked:
//! ../shared/notes/local-aws.md, "IAM enforcement").
//!
//! While moto still accepts unauthenticated calls, the local system creates, in the control
//! plane's account:
//! - one role per function of template.yaml, named as deployed (`<stack>-stream-handler`, ...),
//!   with **template.yaml's own statements**: the actions as declared, the resources widened to
//!   `*` for the services whose resources moto does not match (DynamoDB, CloudFormation, SNS,
//!   SSM, logs), the real ARNs kept for those it does (STS, SQS, IAM, S3). Each trusts the local
//!   launcher identity (moto cannot assume a role trusting `lambda.amazonaws.com`);
//! - the launcher (it may only assume those roles), the writer (template.yaml's
//!   `TenantWriterPolicy`: what automation and `tenantctl --direct` need) and the harness (an
//!   administrator for setting up and inspecting, which no function uses).
//!
//! Then enforcement is turned on, and every function runs with its own role's credentials.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use aws_config::SdkConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_sdk_dynamodb::config::Credentials;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use serde_json::{Value, json};

use crate::declared::{Declared, Statement};
use crate::emulator::EmulatorError;
use crate::strict::{Guard, Violations, strict_client};

/// The control plane's stack name locally: its roles are `<this>-<function>`, as deployed.
pub const LOCAL_STACK_NAME: &str = "tenant-control-plane-local";
/// The account moto gives the control plane (requests made with its own identities).
pub const CONTROL_PLANE_ACCOUNT: &str = "123456789012";

/// How long the session of a function's role written for running it by hand lasts.
const ROLE_SESSION: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

/// Services whose resource patterns moto's IAM matches: their statements keep their ARNs.
const RESOURCES_MATCHED: &[&str] = &["sts", "sqs", "iam", "s3"];

fn failed(context: &str, error: impl std::fmt::Display) -> EmulatorError {
    EmulatorError::Request(format!("{context}: {error}"))
}

fn service_of(action: &str) -> &str {
    action.split(':').next().unwrap_or_default()
}

/// The item actions a transaction needs on AWS; moto checks `dynamodb:TransactWriteItems`
/// instead, which IAM does not have.
const TRANSACTION_ITEM_ACTIONS: &[&str] = &[
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:ConditionCheckItem",
];

/// The statements as moto can enforce them: split by whether the service's resources are
/// matched, the others on `*`; `revoked` actions left out. A role that may write items may
/// also make transactions of them, as on AWS: moto's own action for those is added.
pub fn widened(statements: &[Statement], revoked: &BTreeSet<String>) -> Value {
    let mut out = Vec::new();
    let writes_items = statements.iter().any(|s| {
        s.effect == "Allow"
            && s.actions
                .iter()
                .any(|a| TRANSACTION_ITEM_ACTIONS.contains(&a.as_str()) && !revoked.contains(a))
    });
    if writes_items {
        out.push(
            json!({"Effect": "Allow", "Action": "dynamodb:TransactWriteItems", "Resource": "*"}),
        );
    }
    for statement in statements.iter().filter(|s| s.effect == "Allow") {
        let keep: Vec<&String> = statements_actions(statement, revoked, true);
        let widen: Vec<&String> = statements_actions(statement, revoked, false);
        if !keep.is_empty() {
            out.push(json!({"Effect": "Allow", "Action": keep, "Resource": statement.resources}));
        }
        if !widen.is_empty() {
            out.push(json!({"Effect": "Allow", "Action": widen, "Resource": "*"}));
        }
    }
    json!({"Version": "2012-10-17", "Statement": out})
}

fn statements_actions<'a>(
    statement: &'a Statement,
    revoked: &BTreeSet<String>,
    matched: bool,
) -> Vec<&'a String> {
    statement
        .actions
        .iter()
        .filter(|a| !revoked.contains(a.as_str()))
        .filter(|a| RESOURCES_MATCHED.contains(&service_of(a)) == matched)
        .collect()
}

/// An identity's access key, as moto issued it.
#[derive(Clone)]
pub struct AccessKey {
    pub id: String,
    pub secret: String,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AccessKey({}, <secret>)", self.id)
    }
}

impl AccessKey {
    pub fn credentials(&self, provider: &'static str) -> Credentials {
        Credentials::new(&self.id, &self.secret, None, None, provider)
    }
}

/// What the identities are made from.
pub struct IamPlan<'a> {
    /// template.yaml, resolved for the local deployment.
    pub declared: &'a Declared,
    /// Actions taken out of a function's role (negative controls), by function logical id.
    pub revoked: &'a BTreeMap<String, BTreeSet<String>>,
}

/// The local identities, and how each function's SDK configuration is made.
#[derive(Clone)]
pub struct Identities {
    endpoint: String,
    region: String,
    launcher: AccessKey,
    /// Sets up and inspects (tests, `make up`'s live view); no function runs with it.
    pub harness: AccessKey,
    /// The documented writer identity (template.yaml's `TenantWriterPolicy`): automation,
    /// `aws dynamodb put-item`.
    pub writer: AccessKey,
    /// The documented operator identity (`TenantOperatorPolicy`): `tenantctl --direct`.
    pub operator: AccessKey,
    /// Role ARNs by function logical id.
    roles: BTreeMap<String, String>,
    /// Calls refused for not being declared, by any function.
    pub violations: Violations,
    /// Every call the functions (and the event sources acting for them) sent.
    pub counts: crate::strict::CallCounts,
    enforced: bool,
}

async fn create_user(
    iam: &aws_sdk_iam::Client,
    name: &str,
    policy: &Value,
) -> Result<AccessKey, EmulatorError> {
    let context = format!("creating local identity {name}");
    iam.create_user()
        .user_name(name)
        .send()
        .await
        .map_err(|e| failed(&context, aws_sdk_iam::error::DisplayErrorContext(&e)))?;
    iam.put_user_policy()
        .user_name(name)
        .policy_name(name)
        .policy_document(policy.to_string())
        .send()
        .await
        .map_err(|e| failed(&context, aws_sdk_iam::error::DisplayErrorContext(&e)))?;
    let key = iam
        .create_access_key()
        .user_name(name)
        .send()
        .await
        .map_err(|e| failed(&context, aws_sdk_iam::error::DisplayErrorContext(&e)))?
        .access_key
        .ok_or_else(|| failed(&context, "no access key"))?;
    Ok(AccessKey {
        id: key.access_key_id,
        secret: key.secret_access_key,
    })
}

/// The HTTP client every local SDK client uses: AWS's answers where moto's differ, and the
/// guard of a function's calls.
fn http_client(guard: Option<Guard>) -> SharedHttpClient {
    strict_client(controlplane::wiring::https_client(), guard)
}

impl Identities {
    /// Creates the identities and roles, while moto accepts unauthenticated calls (`admin`).
    pub async fn create(admin: &SdkConfig, plan: IamPlan<'_>) -> Result<Self, EmulatorError> {
        let iam = aws_sdk_iam::Client::new(admin);
        let deployment = plan.declared.deployment();
        let account = &deployment.account;
        let stack = &deployment.stack_name;
        let launcher = create_user(
            &iam,
            "local-launcher",
            &json!({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Action": "sts:AssumeRole",
                "Resource": format!("arn:aws:iam::{account}:role/{stack}-*")
            }]}),
        )
        .await?;
        let harness = create_user(
            &iam,
            "local-harness",
            &json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}),
        )
        .await?;
        let policy = |name: &str| {
            plan.declared
                .managed_policy(name)
                .map(|statements| widened(&statements, &BTreeSet::new()))
                .map_err(|e| failed("template.yaml", e))
        };
        let writer = create_user(&iam, "local-writer", &policy("TenantWriterPolicy")?).await?;
        let operator =
            create_user(&iam, "local-operator", &policy("TenantOperatorPolicy")?).await?;
        let trust = json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"AWS": format!("arn:aws:iam::{account}:user/local-launcher")}
        }]});
        let roles_by_id: BTreeMap<String, crate::declared::Role> = plan
            .declared
            .roles()
            .map_err(|e| failed("template.yaml", e))?
            .into_iter()
            .map(|role| (role.logical_id.clone(), role))
            .collect();
        let mut roles = BTreeMap::new();
        for function in plan.declared.of_type("AWS::Serverless::Function") {
            let role_id = plan
                .declared
                .role_of_function(function)
                .map_err(|e| failed("template.yaml", e))?;
            let role = roles_by_id
                .get(&role_id)
                .ok_or_else(|| failed("template.yaml", format!("no role {role_id}")))?;
            let context = format!("creating role {}", role.name);
            let created = iam
                .create_role()
                .role_name(&role.name)
                .assume_role_policy_document(trust.to_string())
                // Sessions for running a function by hand last a working day.
                .max_session_duration(ROLE_SESSION.as_secs() as i32)
                .send()
                .await
                .map_err(|e| failed(&context, aws_sdk_iam::error::DisplayErrorContext(&e)))?;
            let revoked = plan.revoked.get(function).cloned().unwrap_or_default();
            iam.put_role_policy()
                .role_name(&role.name)
                .policy_name(&role_id)
                .policy_document(widened(&role.statements, &revoked).to_string())
                .send()
                .await
                .map_err(|e| failed(&context, aws_sdk_iam::error::DisplayErrorContext(&e)))?;
            let arn = created
                .role
                .map(|r| r.arn)
                .ok_or_else(|| failed(&context, "no role"))?;
            roles.insert(function.to_owned(), arn);
        }
        Ok(Self {
            endpoint: admin
                .endpoint_url()
                .map(str::to_owned)
                .ok_or_else(|| failed("the emulator", "no endpoint"))?,
            region: admin
                .region()
                .map(|r| r.to_string())
                .ok_or_else(|| failed("the emulator", "no region"))?,
            launcher,
            harness,
            writer,
            operator,
            roles,
            violations: Violations::default(),
            counts: Default::default(),
            enforced: false,
        })
    }

    /// From now on moto checks every request against its identity's policies.
    pub async fn enforce(&mut self) -> Result<(), EmulatorError> {
        let response = reqwest::Client::new()
            .post(format!("{}/moto-api/reset-auth", self.endpoint))
            // A form content type leaves the body empty (HTTP 500).
            .header("content-type", "text/plain")
            .body("0")
            .send()
            .await
            .map_err(|e| failed("turning IAM enforcement on", e))?;
        if !response.status().is_success() {
            return Err(failed(
                "turning IAM enforcement on",
                format!("HTTP {}", response.status()),
            ));
        }
        self.enforced = true;
        Ok(())
    }

    pub fn enforced(&self) -> bool {
        self.enforced
    }

    async fn config(
        &self,
        credentials: impl aws_sdk_dynamodb::config::ProvideCredentials + 'static,
        guard: Option<Guard>,
    ) -> SdkConfig {
        controlplane::wiring::sdk_loader_with(http_client(guard))
            .region(aws_config::Region::new(self.region.clone()))
            .endpoint_url(&self.endpoint)
            .credentials_provider(credentials)
            .load()
            .await
    }

    /// An SDK configuration with `key`'s static credentials (no guard).
    pub async fn sdk_for(&self, key: &AccessKey) -> SdkConfig {
        self.config(key.credentials("local"), None).await
    }

    /// The harness's SDK configuration: an administrator, for setup and inspection.
    pub async fn harness_sdk(&self) -> SdkConfig {
        self.sdk_for(&self.harness).await
    }

    /// The writer's SDK configuration.
    pub async fn writer_sdk(&self) -> SdkConfig {
        self.sdk_for(&self.writer).await
    }

    /// The operator's SDK configuration.
    pub async fn operator_sdk(&self) -> SdkConfig {
        self.sdk_for(&self.operator).await
    }

    /// A tenant account as its owner sees it (its administrator role, assumed by the harness):
    /// for inspecting what the control plane made there.
    pub async fn tenant_account_owner_sdk(&self, account: &str) -> SdkConfig {
        let harness = self.harness_sdk().await;
        let owner = AssumeRoleProvider::builder(format!(
            "arn:aws:iam::{account}:role/{}",
            crate::system::OWNER_ROLE
        ))
        .session_name("local-harness")
        .configure(&harness)
        .build()
        .await;
        self.config(owner, None).await
    }

    /// The credentials of `function`'s role (refreshed before they expire).
    async fn role_credentials(&self, function: &str) -> Result<AssumeRoleProvider, EmulatorError> {
        let role = self
            .roles
            .get(function)
            .ok_or_else(|| failed("local identities", format!("no role for {function}")))?;
        let launcher = self.sdk_for(&self.launcher).await;
        Ok(AssumeRoleProvider::builder(role)
            .session_name(function)
            .configure(&launcher)
            .build()
            .await)
    }

    /// What `function`'s code runs with: its role's credentials, and only its declared calls.
    pub async fn function_sdk(&self, function: &str) -> Result<SdkConfig, EmulatorError> {
        let declared = controlplane::wiring::FunctionCalls::of(function).ok_or_else(|| {
            failed(
                "local identities",
                format!("{function} has no declared calls (controlplane::wiring::FUNCTION_CALLS)"),
            )
        })?;
        let guard = Guard {
            function: function.to_owned(),
            allowed: Some(declared.calls().map(|c| c.action.to_owned()).collect()),
            violations: self.violations.clone(),
            counts: self.counts.clone(),
        };
        Ok(self
            .config(self.role_credentials(function).await?, Some(guard))
            .await)
    }

    /// What `function`'s event source runs with (Lambda polls and sends with the function's
    /// role): its role's credentials, without the guard of the function's own calls.
    pub async fn event_source_sdk(&self, function: &str) -> Result<SdkConfig, EmulatorError> {
        Ok(self
            .config(self.role_credentials(function).await?, None)
            .await)
    }

    /// Writes a session of `function`'s role for running it by hand, valid for 12 hours, with
    /// the function's own environment `env` (template.yaml's names): `source` it, or pass it to
    /// `cargo lambda watch --env-file`, and the function runs with its own role as deployed.
    /// Values are quoted, so both read them whole (a session token may end in `=`).
    pub async fn write_function_env(
        &self,
        function: &str,
        path: &Path,
        env: &[(&str, String)],
    ) -> Result<(), EmulatorError> {
        let role = self
            .roles
            .get(function)
            .ok_or_else(|| failed("local identities", format!("no role for {function}")))?;
        let issued = aws_sdk_sts::Client::new(&self.sdk_for(&self.launcher).await)
            .assume_role()
            .role_arn(role)
            .role_session_name(function)
            .duration_seconds(ROLE_SESSION.as_secs() as i32)
            .send()
            .await
            .map_err(|e| failed(&format!("a session of {function}'s role"), e))?
            .credentials
            .ok_or_else(|| failed(&format!("a session of {function}'s role"), "none"))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| failed("writing .local", e))?;
        }
        let mut text = format!(
            "# A session of {function}'s role (valid 12 hours) and its environment, written by `make up`.\n"
        );
        let session = [
            ("AWS_ACCESS_KEY_ID", issued.access_key_id()),
            ("AWS_SECRET_ACCESS_KEY", issued.secret_access_key()),
            ("AWS_SESSION_TOKEN", issued.session_token()),
            ("AWS_REGION", &self.region),
            ("AWS_DEFAULT_REGION", &self.region),
            ("AWS_ENDPOINT_URL", &self.endpoint),
        ];
        for (name, value) in session
            .into_iter()
            .chain(env.iter().map(|(name, value)| (*name, value.as_str())))
        {
            if value.contains(['"', '\\', '$', '`', '\n']) {
                return Err(failed(
                    "writing .local",
                    format!("{name} cannot be written quoted: {value:?}"),
                ));
            }
            text.push_str(&format!("export {name}=\"{value}\"\n"));
        }
        std::fs::write(path, text).map_err(|e| failed("writing .local", e))
    }

    /// Writes an identity's settings for people and scripts (`make up`): `source` them.
    /// `who` is `writer` (automation's SPEC rows) or `operator` (`tenantctl --direct`).
    pub fn write_env(
        &self,
        who: &str,
        path: &Path,
        table: &str,
        preview_queue_url: &str,
    ) -> std::io::Result<()> {
        let (key, policy) = match who {
            "operator" => (&self.operator, "TenantOperatorPolicy"),
            _ => (&self.writer, "TenantWriterPolicy"),
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let text = format!(
            "# The local {who} identity (template.yaml's {policy}), written by `make up`.\n\
             # The emulator enforces IAM: keys of no identity are refused. `source` this file.\n\
             export AWS_ACCESS_KEY_ID={id}\n\
             export AWS_SECRET_ACCESS_KEY={secret}\n\
             export AWS_REGION={region}\n\
             export AWS_DEFAULT_REGION={region}\n\
             export AWS_ENDPOINT_URL={endpoint}\n\
             export TABLE_NAME={table}\n\
             export CONTROL_TABLE_NAME={table}-control\n\
             export PREVIEW_QUEUE_URL={preview_queue_url}\n",
            id = key.id,
            secret = key.secret,
            region = self.region,
            endpoint = self.endpoint,
        );
        std::fs::write(path, text)
    }
}
