//! Tenants' stacks on CloudFormation, each reached through the tenant account's role.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::config::Region;
use aws_sdk_cloudformation::config::interceptors::InterceptorContext;
use aws_sdk_cloudformation::config::retry::{ClassifyRetry, RetryAction};
use aws_sdk_cloudformation::error::SdkError;
use aws_sdk_cloudformation::types::{Capability, Parameter, Stack, Tag};
use lru::LruCache;

use super::sts::RoleCredentials;
use super::{AwsFailure, QUOTA_ERRORS};
use crate::ports::{
    Healing, StackError, StackRequest, StackTarget, Stacks, TemplateLocation, UpdateStarted,
};
use model::stack::{ObservedStack, StackStatus};

/// The calls of [`CloudFormationStacks`]' `Stacks`, made through the tenant role. CreateStack
/// and UpdateStack with tags also need `cloudformation:TagResource` (CloudFormation checks it on
/// the caller's behalf).
pub const STACK_CALLS: &[super::Call] = &{
    use super::{Call, Resource::TenantStack};
    [
        Call::new("cloudformation:DescribeStacks", TenantStack),
        Call::new("cloudformation:CreateStack", TenantStack),
        Call::new("cloudformation:UpdateStack", TenantStack),
        Call::new("cloudformation:DeleteStack", TenantStack),
        Call::new("cloudformation:UpdateTerminationProtection", TenantStack),
        Call::new("cloudformation:ContinueUpdateRollback", TenantStack),
        Call::new("cloudformation:DescribeStackEvents", TenantStack),
        Call::new("cloudformation:TagResource", TenantStack),
        // CloudFormation reads a TemplateURL with the caller's credentials.
        Call::new("s3:GetObject", super::Resource::TemplateCopies),
        // Stacks are created and updated with the account's deploy role.
        Call::new("iam:PassRole", super::Resource::TenantDeployRole),
    ]
};

/// The calls of [`CloudFormationStacks`]' `ChangePreviews`, through the tenant role.
pub const PREVIEW_CALLS: &[super::Call] = &{
    use super::{Call, Resource::TenantStack};
    [
        Call::new("cloudformation:CreateChangeSet", TenantStack),
        Call::new("cloudformation:DescribeChangeSet", TenantStack),
        Call::new("cloudformation:DeleteChangeSet", TenantStack),
        Call::new("s3:GetObject", super::Resource::TemplateCopies),
    ]
};

/// The calls of [`CloudFormationValidator`], in the control plane's own account.
pub const VALIDATOR_CALLS: &[super::Call] = &[
    super::Call::new("cloudformation:ValidateTemplate", super::Resource::Unscoped),
    // A version is validated through its URL in the home region's bucket.
    super::Call::new("s3:GetObject", super::Resource::TemplateObjects),
];

/// (account, region, tenant)
type ClientKey = (String, String, String);
type AccessKeyId = String;

pub struct CloudFormationStacks {
    /// Every tenant's client starts from this; its region and credentials are the tenant's.
    base: aws_sdk_cloudformation::config::Builder,
    credentials: Arc<RoleCredentials>,
    /// Create stacks with termination protection (lifted only by the control plane's own delete).
    /// Off only for emulators that do not implement UpdateTerminationProtection (moto).
    termination_protection: bool,
    /// Clients per (account, region, tenant), rebuilt when the credentials change. Bounded:
    /// a warm instance that meets every tenant of a large fleet must not keep a client for each.
    clients: Mutex<LruCache<ClientKey, (AccessKeyId, Client)>>,
}

/// Tenants whose CloudFormation client a warm instance keeps (~13 KiB each).
pub const CLIENTS_KEPT: NonZeroUsize = NonZeroUsize::new(256).unwrap();

impl CloudFormationStacks {
    pub fn new(
        base: SdkConfig,
        credentials: Arc<RoleCredentials>,
        termination_protection: bool,
    ) -> Self {
        Self::with_client_config(
            aws_sdk_cloudformation::config::Builder::from(&base),
            credentials,
            termination_protection,
        )
    }

    /// As [`Self::new`], from a client configuration the caller shaped (tests answer the calls
    /// with the responses CloudFormation sends).
    pub fn with_client_config(
        base: aws_sdk_cloudformation::config::Builder,
        credentials: Arc<RoleCredentials>,
        termination_protection: bool,
    ) -> Self {
        Self {
            base,
            credentials,
            termination_protection,
            clients: Mutex::new(LruCache::new(CLIENTS_KEPT)),
        }
    }

    async fn client(&self, at: &StackTarget) -> Result<Client, StackError> {
        let credentials = self
            .credentials
            .for_tenant(&at.location.account_id, &at.tenant_id)
            .await?;
        // Per account and region: its tenants share the session, so they share the client.
        let key = (
            at.location.account_id.clone(),
            at.location.region.clone(),
            String::new(),
        );
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((access_key, client)) = clients.get(&key)
            && access_key == credentials.access_key_id()
        {
            return Ok(client.clone());
        }
        let access_key = credentials.access_key_id().to_owned();
        let config = self
            .base
            .clone()
            .region(Region::new(at.location.region.clone()))
            .credentials_provider(credentials)
            .retry_classifier(QuotasAreNotRetried)
            .build();
        let client = Client::from_conf(config);
        clients.put(key, (access_key, client.clone()));
        Ok(client)
    }
}

/// Keeps the SDK from retrying a quota (see `QUOTA_ERRORS`) as the throttle its own classifier
/// takes it for: more attempts, with backoff, that cannot succeed. A classifier's
/// `RetryForbidden` overrides every other classifier's verdict.
#[derive(Debug)]
struct QuotasAreNotRetried;

impl ClassifyRetry for QuotasAreNotRetried {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        use aws_sdk_cloudformation::error::ProvideErrorMetadata;
        use aws_sdk_cloudformation::operation::create_change_set::CreateChangeSetError;
        use aws_sdk_cloudformation::operation::create_stack::CreateStackError;
        use aws_sdk_cloudformation::operation::update_stack::UpdateStackError;
        let Some(Err(error)) = ctx.output_or_error() else {
            return RetryAction::NoActionIndicated;
        };
        let Some(error) = error.as_operation_error() else {
            return RetryAction::NoActionIndicated;
        };
        // The calls that create or grow stacks: where CloudFormation answers with a quota.
        let code = error
            .downcast_ref::<CreateStackError>()
            .and_then(|e| ProvideErrorMetadata::code(e))
            .or_else(|| {
                error
                    .downcast_ref::<UpdateStackError>()
                    .and_then(|e| ProvideErrorMetadata::code(e))
            })
            .or_else(|| {
                error
                    .downcast_ref::<CreateChangeSetError>()
                    .and_then(|e| ProvideErrorMetadata::code(e))
            });
        if code.is_some_and(|c| QUOTA_ERRORS.contains(&c)) {
            RetryAction::RetryForbidden
        } else {
            RetryAction::NoActionIndicated
        }
    }

    fn name(&self) -> &'static str {
        "QuotasAreNotRetried"
    }
}

/// A stack's outputs, by key.
pub fn outputs_of(stack: &Stack) -> BTreeMap<String, String> {
    stack
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
        .collect()
}

/// The parameters a stack runs with, by name.
pub fn parameters_of(stack: &Stack) -> BTreeMap<String, String> {
    stack
        .parameters()
        .iter()
        .filter_map(|p| {
            Some((
                p.parameter_key()?.to_owned(),
                p.parameter_value()?.to_owned(),
            ))
        })
        .collect()
}

/// Maps a CloudFormation error onto what the reconcile loop does with it.
fn classify<E, R>(error: &SdkError<E, R>) -> StackError
where
    E: aws_sdk_cloudformation::error::ProvideErrorMetadata
        + aws_smithy_types::retry::ProvideErrorKind
        + std::error::Error
        + 'static,
    R: std::fmt::Debug + super::HttpStatus,
{
    let failure = AwsFailure::from_sdk(error);
    let message = failure.message;
    match failure.code.as_deref() {
        Some("AlreadyExistsException" | "TokenAlreadyExistsException") => StackError::AlreadyExists,
        // "Stack:arn:... is in UPDATE_IN_PROGRESS state and can not be updated." (or any other
        // operation in flight, UPDATE_COMPLETE_CLEANUP_IN_PROGRESS included).
        Some("ValidationError") if message.contains("_IN_PROGRESS state") => {
            StackError::Busy(message)
        }
        Some(code) if QUOTA_ERRORS.contains(&code) => StackError::Rejected(format!(
            "{message} (a CloudFormation quota of the tenant account, not a throttle: retrying \
             will not help until the quota is raised or stacks are deleted)"
        )),
        _ => match failure.healing {
            Healing::Transient => StackError::Transient(message),
            Healing::Permanent => StackError::Rejected(message),
        },
    }
}

fn is_missing_stack(error: &StackError) -> bool {
    matches!(error, StackError::Rejected(m) if m.contains("does not exist"))
}

fn parameters(request: &StackRequest) -> Vec<Parameter> {
    request
        .parameters
        .iter()
        .map(|(key, value)| {
            Parameter::builder()
                .parameter_key(key)
                .parameter_value(value)
                .build()
        })
        .collect()
}

/// What the stack calls acknowledge: IAM resources (named or not) the tenant template may
/// create, and the expansion of CloudFormation's transforms when the template uses them.
pub fn capabilities(request: &StackRequest) -> Vec<Capability> {
    let mut capabilities = vec![Capability::CapabilityIam, Capability::CapabilityNamedIam];
    if request.auto_expand {
        capabilities.push(Capability::CapabilityAutoExpand);
    }
    capabilities
}

fn tags(request: &StackRequest) -> Vec<Tag> {
    request
        .tags
        .iter()
        .map(|(key, value)| Tag::builder().key(key).value(value).build())
        .collect()
}

#[async_trait]
impl Stacks for CloudFormationStacks {
    async fn describe(&self, at: &StackTarget) -> Result<Option<ObservedStack>, StackError> {
        let client = self.client(at).await?;
        let output = match client
            .describe_stacks()
            .stack_name(&at.location.stack_name)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) => {
                let error = classify(&e);
                return if is_missing_stack(&error) {
                    Ok(None)
                } else {
                    Err(error)
                };
            }
        };
        let Some(stack) = output.stacks().first() else {
            return Ok(None);
        };
        let status = StackStatus::parse(stack.stack_status().map_or("", |s| s.as_str()));
        if status == StackStatus::DeleteComplete {
            return Ok(None);
        }
        Ok(Some(ObservedStack {
            stack_id: stack.stack_id().unwrap_or_default().to_owned(),
            status,
            status_reason: stack.stack_status_reason().map(str::to_owned),
            outputs: outputs_of(stack),
            parameters: parameters_of(stack),
            tags: stack
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
                .collect(),
        }))
    }

    async fn create(&self, at: &StackTarget, request: &StackRequest) -> Result<(), StackError> {
        let client = self.client(at).await?;
        client
            .create_stack()
            .stack_name(&at.location.stack_name)
            .set_template_body(inline_body(&request.template))
            .set_template_url(template_url(&request.template))
            .set_role_arn(request.role_arn.clone())
            .set_parameters(Some(parameters(request)))
            .set_tags(Some(tags(request)))
            .set_capabilities(Some(capabilities(request)))
            .enable_termination_protection(self.termination_protection)
            .client_request_token(&request.client_request_token)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }

    async fn update(
        &self,
        at: &StackTarget,
        request: &StackRequest,
    ) -> Result<UpdateStarted, StackError> {
        let client = self.client(at).await?;
        match client
            .update_stack()
            .stack_name(&at.location.stack_name)
            .set_template_body(inline_body(&request.template))
            .set_template_url(template_url(&request.template))
            .set_role_arn(request.role_arn.clone())
            .set_parameters(Some(parameters(request)))
            .set_tags(Some(tags(request)))
            .set_capabilities(Some(capabilities(request)))
            .client_request_token(&request.client_request_token)
            .send()
            .await
        {
            Ok(_) => Ok(UpdateStarted::Started),
            Err(e) => match classify(&e) {
                StackError::Rejected(m) if m.contains("No updates are to be performed") => {
                    Ok(UpdateStarted::NoChanges)
                }
                other => Err(other),
            },
        }
    }

    async fn delete(&self, at: &StackTarget, client_request_token: &str) -> Result<(), StackError> {
        let client = self.client(at).await?;
        let protected = match client
            .describe_stacks()
            .stack_name(&at.location.stack_name)
            .send()
            .await
        {
            Ok(output) => output
                .stacks()
                .first()
                .and_then(|s| s.enable_termination_protection())
                .unwrap_or(false),
            Err(e) => {
                let error = classify(&e);
                return if is_missing_stack(&error) {
                    Ok(())
                } else {
                    Err(error)
                };
            }
        };
        // Termination protection guards tenants from everyone but the control plane's own delete.
        if protected
            && let Err(e) = client
                .update_termination_protection()
                .stack_name(&at.location.stack_name)
                .enable_termination_protection(false)
                .send()
                .await
        {
            return Err(classify(&e));
        }
        client
            .delete_stack()
            .stack_name(&at.location.stack_name)
            .client_request_token(client_request_token)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }

    async fn continue_update_rollback(
        &self,
        at: &StackTarget,
        client_request_token: &str,
    ) -> Result<(), StackError> {
        let client = self.client(at).await?;
        client
            .continue_update_rollback()
            .stack_name(&at.location.stack_name)
            .client_request_token(client_request_token)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }

    async fn failure_reason(&self, at: &StackTarget) -> Result<Option<String>, StackError> {
        let client = self.client(at).await?;
        let output = client
            .describe_stack_events()
            .stack_name(&at.location.stack_name)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        // Events come newest first: the earliest failure of the latest operation is the cause;
        // later ones are usually "Resource creation cancelled".
        let cause = output
            .stack_events()
            .iter()
            .take_while(|event| {
                !(event.logical_resource_id() == Some(at.location.stack_name.as_str())
                    && event.resource_status().is_some_and(|s| {
                        let s = s.as_str();
                        s == "CREATE_IN_PROGRESS"
                            || s == "UPDATE_IN_PROGRESS"
                            || s == "DELETE_IN_PROGRESS"
                    })
                    && event
                        .resource_status_reason()
                        .is_some_and(|r| r.starts_with("User Initiated")))
            })
            .filter(|event| {
                event
                    .resource_status()
                    .is_some_and(|s| s.as_str().ends_with("_FAILED"))
                    && event.logical_resource_id() != Some(at.location.stack_name.as_str())
            })
            .filter_map(|event| {
                Some(format!(
                    "{} ({}): {}",
                    event.logical_resource_id()?,
                    event.resource_type().unwrap_or("resource"),
                    event.resource_status_reason()?
                ))
            })
            .last();
        Ok(cause)
    }
}

/// CloudFormation's ValidateTemplate in the control plane's own account (publishing a tenant
/// template version reaches no tenant).
pub struct CloudFormationValidator {
    client: Client,
}

impl CloudFormationValidator {
    pub fn new(sdk: &SdkConfig) -> Self {
        Self::with_client(Client::new(sdk))
    }

    pub fn with_client(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl crate::ports::TemplateValidator for CloudFormationValidator {
    async fn validate_template(&self, template: &TemplateLocation) -> Result<(), StackError> {
        match self
            .client
            .validate_template()
            .set_template_body(inline_body(template))
            .set_template_url(template_url(template))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let failure = AwsFailure::from_sdk(&e);
                Err(match failure.healing {
                    Healing::Transient => StackError::Transient(failure.message),
                    Healing::Permanent => StackError::Rejected(failure.message),
                })
            }
        }
    }
}

/// The TemplateBody a call passes: a shipped version's (never with a TemplateURL).
fn inline_body(template: &TemplateLocation) -> Option<String> {
    match template {
        TemplateLocation::Body(body) => Some(body.clone()),
        TemplateLocation::Url(_) => None,
    }
}

/// The TemplateURL a call passes: a published version's copy in the stack's region.
fn template_url(template: &TemplateLocation) -> Option<String> {
    match template {
        TemplateLocation::Url(url) => Some(url.clone()),
        TemplateLocation::Body(_) => None,
    }
}

/// How long a preview waits for its change set to be computed.
pub const CHANGE_SET_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

#[async_trait]
impl crate::ports::ChangePreviews for CloudFormationStacks {
    async fn preview(
        &self,
        at: &StackTarget,
        request: &StackRequest,
    ) -> Result<Vec<crate::ports::ResourceChange>, StackError> {
        use aws_sdk_cloudformation::types::ChangeSetType;
        let client = self.client(at).await?;
        let name = change_set_name("preview", &request.client_request_token);
        let created = client
            .create_change_set()
            .stack_name(&at.location.stack_name)
            .change_set_name(&name)
            .change_set_type(ChangeSetType::Update)
            .set_template_body(inline_body(&request.template))
            .set_template_url(template_url(&request.template))
            .set_parameters(Some(parameters(request)))
            .set_tags(Some(tags(request)))
            .set_capabilities(Some(capabilities(request)))
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let id = created.id().unwrap_or(&name).to_owned();
        let result = read_change_set(&client, &at.location.stack_name, &id).await;
        // Always cleaned up, whatever the reading gave.
        delete_change_set(&client, &at.location.stack_name, &id).await;
        result.map(|read| read.map(|read| read.changes).unwrap_or_default())
    }
}

/// A change set's name (letters, digits and hyphens, at most 128) from a prefix and a token.
fn change_set_name(prefix: &str, token: &str) -> String {
    format!("{prefix}-{token}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(128)
        .collect()
}

/// What a computed change set holds.
struct ChangeSetRead {
    changes: Vec<crate::ports::ResourceChange>,
    /// For a drift-aware change set: the properties it leaves as they are.
    not_reverted: Vec<model::drift::NotReverted>,
}

/// Waits for a change set to be computed (up to [`CHANGE_SET_WAIT`]) and reads every page;
/// `None`: it changes nothing (CloudFormation fails such a change set).
async fn read_change_set(
    client: &Client,
    stack: &str,
    id: &str,
) -> Result<Option<ChangeSetRead>, StackError> {
    use aws_sdk_cloudformation::types::ChangeSetStatus;
    let started = tokio::time::Instant::now();
    let mut read = ChangeSetRead {
        changes: Vec::new(),
        not_reverted: Vec::new(),
    };
    let mut token: Option<String> = None;
    loop {
        let output = client
            .describe_change_set()
            .stack_name(stack)
            .change_set_name(id)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| classify(&e))?;
        match output.status() {
            Some(ChangeSetStatus::CreateComplete) => {}
            Some(ChangeSetStatus::Failed) => {
                let reason = output.status_reason().unwrap_or_default();
                // An update that changes nothing: CloudFormation fails its change set.
                if reason.contains("didn't contain changes")
                    || reason.contains("No updates are to be performed")
                {
                    return Ok(None);
                }
                return Err(StackError::Rejected(format!(
                    "the change set failed: {reason}"
                )));
            }
            _ => {
                if started.elapsed() > CHANGE_SET_WAIT {
                    return Err(StackError::Transient(
                        "the change set was not computed in time".into(),
                    ));
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        }
        for change in output.changes() {
            let Some(resource) = change.resource_change() else {
                continue;
            };
            let logical_id = resource
                .logical_resource_id()
                .unwrap_or_default()
                .to_owned();
            for ignored in resource.resource_drift_ignored_attributes() {
                read.not_reverted.push(model::drift::NotReverted {
                    logical_id: logical_id.clone(),
                    path: ignored.path().unwrap_or_default().to_owned(),
                    reason: ignored
                        .reason()
                        .map(|r| r.as_str().to_owned())
                        .unwrap_or_default(),
                });
            }
            read.changes.push(crate::ports::ResourceChange {
                action: resource
                    .action()
                    .map(|a| a.as_str().to_owned())
                    .unwrap_or_default(),
                logical_id,
                resource_type: resource.resource_type().unwrap_or_default().to_owned(),
                replacement: resource.replacement().map(|r| r.as_str().to_owned()),
            });
        }
        match output.next_token() {
            Some(next) => token = Some(next.to_owned()),
            None => return Ok(Some(read)),
        }
    }
}

async fn delete_change_set(client: &Client, stack: &str, id: &str) {
    if let Err(e) = client
        .delete_change_set()
        .stack_name(stack)
        .change_set_name(id)
        .send()
        .await
    {
        tracing::warn!(change_set = %id, error = %classify(&e), "change set not deleted");
    }
}

/// The calls of [`CloudFormationStacks`]' drift detection, through the tenant role. Detection
/// reads every resource with the caller's credentials: the tenant role also needs the read
/// actions of the template's resource types (the bootstrap's `DriftReadPolicyArn`).
pub const DRIFT_DETECTION_CALLS: &[super::Call] = &{
    use super::{Call, Resource::TenantStack};
    [
        Call::new("cloudformation:DetectStackDrift", TenantStack),
        // CloudFormation's drift guide lists it beside DetectStackDrift (checked per resource).
        Call::new("cloudformation:DetectStackResourceDrift", TenantStack),
        // Takes no resource: the Service Authorization Reference lists none for it.
        Call::new(
            "cloudformation:DescribeStackDriftDetectionStatus",
            super::Resource::Unscoped,
        ),
        Call::new("cloudformation:DescribeStackResourceDrifts", TenantStack),
    ]
};

/// The calls of [`CloudFormationStacks`]' drift revert (a drift-aware change set, executed),
/// through the tenant role: CloudFormation reads the TemplateURL and passes the deploy role
/// on the caller's behalf.
pub const DRIFT_REVERT_CALLS: &[super::Call] = &{
    use super::{Call, Resource::TenantStack};
    [
        Call::new("cloudformation:CreateChangeSet", TenantStack),
        Call::new("cloudformation:DescribeChangeSet", TenantStack),
        Call::new("cloudformation:ExecuteChangeSet", TenantStack),
        Call::new("cloudformation:DeleteChangeSet", TenantStack),
        Call::new("cloudformation:TagResource", TenantStack),
        Call::new("s3:GetObject", super::Resource::TemplateCopies),
        Call::new("iam:PassRole", super::Resource::TenantDeployRole),
    ]
};

#[async_trait]
impl crate::ports::StackDrift for CloudFormationStacks {
    async fn detect(&self, at: &StackTarget) -> Result<String, StackError> {
        let client = self.client(at).await?;
        let output = client
            .detect_stack_drift()
            .stack_name(&at.location.stack_name)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        output
            .stack_drift_detection_id()
            .map(str::to_owned)
            .ok_or_else(|| {
                StackError::Transient("DetectStackDrift returned no detection id".into())
            })
    }

    async fn progress(
        &self,
        at: &StackTarget,
        detection_id: &str,
    ) -> Result<crate::ports::DetectionProgress, StackError> {
        use crate::ports::DetectionProgress;
        use aws_sdk_cloudformation::types::{StackDriftDetectionStatus, StackDriftStatus};
        let client = self.client(at).await?;
        let output = client
            .describe_stack_drift_detection_status()
            .stack_drift_detection_id(detection_id)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let reason = output.detection_status_reason().map(str::to_owned);
        let drifted = output.stack_drift_status() == Some(&StackDriftStatus::Drifted);
        Ok(match output.detection_status() {
            Some(StackDriftDetectionStatus::DetectionInProgress) => DetectionProgress::InProgress,
            Some(StackDriftDetectionStatus::DetectionComplete)
                if matches!(
                    output.stack_drift_status(),
                    Some(StackDriftStatus::Drifted | StackDriftStatus::InSync)
                ) =>
            {
                DetectionProgress::Complete {
                    drifted,
                    reason: None,
                }
            }
            // Complete, yet neither in sync nor drifted (NOT_CHECKED, UNKNOWN): nothing was
            // learnt about the resources.
            Some(StackDriftDetectionStatus::DetectionComplete) => DetectionProgress::Failed {
                reason: format!(
                    "the detection ended with the stack {}",
                    output
                        .stack_drift_status()
                        .map_or("without a drift status", |s| s.as_str())
                ),
            },
            // DETECTION_FAILED with DRIFTED: some resources could not be checked, the rest
            // drifted; the drift found is still news.
            Some(StackDriftDetectionStatus::DetectionFailed) if drifted => {
                DetectionProgress::Complete { drifted, reason }
            }
            Some(StackDriftDetectionStatus::DetectionFailed) => DetectionProgress::Failed {
                reason: reason.unwrap_or_else(|| "drift detection failed".into()),
            },
            other => DetectionProgress::Failed {
                reason: format!(
                    "drift detection ended {}",
                    other.map_or("with no status", |s| s.as_str())
                ),
            },
        })
    }

    async fn drifted_resources(
        &self,
        at: &StackTarget,
    ) -> Result<Vec<crate::ports::ResourceDrift>, StackError> {
        use aws_sdk_cloudformation::types::StackResourceDriftStatus;
        let client = self.client(at).await?;
        let mut pages = client
            .describe_stack_resource_drifts()
            .stack_name(&at.location.stack_name)
            .stack_resource_drift_status_filters(StackResourceDriftStatus::Modified)
            .stack_resource_drift_status_filters(StackResourceDriftStatus::Deleted)
            .into_paginator()
            .send();
        let mut resources = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(&e))?;
            for drift in page.stack_resource_drifts() {
                resources.push(model::drift::ResourceDrift {
                    logical_id: drift.logical_resource_id().unwrap_or_default().to_owned(),
                    resource_type: drift.resource_type().unwrap_or_default().to_owned(),
                    physical_id: drift.physical_resource_id().map(str::to_owned),
                    status: drift
                        .stack_resource_drift_status()
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_default(),
                    differences: drift
                        .property_differences()
                        .iter()
                        .map(|d| model::drift::PropertyDifference {
                            path: d.property_path().unwrap_or_default().to_owned(),
                            kind: d
                                .difference_type()
                                .map(|k| k.as_str().to_owned())
                                .unwrap_or_default(),
                            expected: d.expected_value().unwrap_or_default().to_owned(),
                            actual: d.actual_value().unwrap_or_default().to_owned(),
                        })
                        .collect(),
                });
            }
        }
        Ok(resources)
    }

    async fn prepare_revert(
        &self,
        at: &StackTarget,
        request: &StackRequest,
    ) -> Result<crate::ports::RevertPlan, StackError> {
        use crate::ports::RevertPlan;
        use aws_sdk_cloudformation::types::{ChangeSetType, DeploymentMode};
        let client = self.client(at).await?;
        let stack = &at.location.stack_name;
        let name = change_set_name("revert-drift", &request.client_request_token);
        // A retried revert (same intent, same token) finds its change set already made.
        let id = match client
            .create_change_set()
            .stack_name(stack)
            .change_set_name(&name)
            .change_set_type(ChangeSetType::Update)
            .deployment_mode(DeploymentMode::RevertDrift)
            .set_template_body(inline_body(&request.template))
            .set_template_url(template_url(&request.template))
            .set_role_arn(request.role_arn.clone())
            .set_parameters(Some(parameters(request)))
            .set_tags(Some(tags(request)))
            .set_capabilities(Some(capabilities(request)))
            .client_token(&request.client_request_token)
            .send()
            .await
        {
            Ok(created) => created.id().unwrap_or(&name).to_owned(),
            Err(e) => match classify(&e) {
                StackError::AlreadyExists => name.clone(),
                other => return Err(other),
            },
        };
        match read_change_set(&client, stack, &id).await {
            Ok(Some(read)) => Ok(RevertPlan::Ready {
                change_set: id,
                not_reverted: read.not_reverted,
            }),
            // Failed, not computed in time, or nothing to change: it will never be executed.
            other => {
                delete_change_set(&client, stack, &id).await;
                other.map(|_| RevertPlan::NothingToRevert)
            }
        }
    }

    async fn execute_revert(
        &self,
        at: &StackTarget,
        change_set: &str,
        client_request_token: &str,
    ) -> Result<(), StackError> {
        let client = self.client(at).await?;
        client
            .execute_change_set()
            .stack_name(&at.location.stack_name)
            .change_set_name(change_set)
            .client_request_token(client_request_token)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }

    async fn discard_revert(&self, at: &StackTarget, change_set: &str) {
        if let Ok(client) = self.client(at).await {
            delete_change_set(&client, &at.location.stack_name, change_set).await;
        }
    }
}
