//! The SDK adapters against the error answers real AWS sends. Each test answers the SDK with
//! the HTTP response the service returns (status, protocol shape, code and message, taken from
//! AWS documentation, the services' models and errors seen from the real services), so the
//! SDK's own deserializer parses the wire shape; each asserts what the adapter makes of it,
//! which is what the reconcile loop acts on.

use std::sync::Arc;

use aws_sdk_cloudformation::config::http::HttpResponse;
use aws_sdk_cloudformation::config::retry::RetryConfig;
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};
use aws_smithy_types::body::SdkBody;
use controlplane::aws::cloudformation::{CloudFormationStacks, CloudFormationValidator};
use controlplane::aws::dynamodb::{DynamoStore, Tables};
use controlplane::aws::sts::{ExternalIds, RoleCredentials};
use controlplane::ports::{
    Healing, StackError, StackRequest, StackTarget, Stacks, StoreError, TemplateLocation,
    TemplateValidator, TenantStore, UpdateStarted,
};
use model::spec::TenantKey;
use model::stack::StackStatus;
use model::status::{StackLocation, Status, TenantStatus};

const ACCOUNT: &str = "111111111111";
const ROLE_ARN: &str = "arn:aws:iam::111111111111:role/TenantControlRole";
const STACK_ARN: &str = "arn:aws:cloudformation:eu-west-1:111111111111:stack/tenant-x/5f3a2b10-6c1d-11ef-9a2e-0a1b2c3d4e5f";

fn response(status: u16, content_type: &str, body: &str) -> HttpResponse {
    let mut response = HttpResponse::new(
        status.try_into().expect("a valid status"),
        SdkBody::from(body.to_owned()),
    );
    response
        .headers_mut()
        .insert("content-type", content_type.to_owned());
    response
        .headers_mut()
        .insert("x-amzn-requestid", "6d0f2b5e-1c2a-4e8b-9f3d-7a6b5c4d3e2f");
    response
}

/// An error of a query-protocol service (CloudFormation, STS), as it is sent.
fn query_error(namespace: &str, status: u16, code: &str, message: &str) -> HttpResponse {
    let fault = if status >= 500 { "Receiver" } else { "Sender" };
    response(
        status,
        "text/xml",
        &format!(
            "<ErrorResponse xmlns=\"{namespace}\">\n  <Error>\n    <Type>{fault}</Type>\n    \
             <Code>{code}</Code>\n    <Message>{message}</Message>\n  </Error>\n  \
             <RequestId>6d0f2b5e-1c2a-4e8b-9f3d-7a6b5c4d3e2f</RequestId>\n</ErrorResponse>\n"
        ),
    )
}

fn cloudformation_error(status: u16, code: &str, message: &str) -> HttpResponse {
    query_error(
        "http://cloudformation.amazonaws.com/doc/2010-05-15/",
        status,
        code,
        message,
    )
}

fn sts_error(status: u16, code: &str, message: &str) -> HttpResponse {
    query_error(
        "https://sts.amazonaws.com/doc/2011-06-15/",
        status,
        code,
        message,
    )
}

/// An error of DynamoDB (JSON 1.0), as it is sent.
fn dynamodb_error(status: u16, code: &str, message: &str) -> HttpResponse {
    response(
        status,
        "application/x-amz-json-1.0",
        &format!(
            "{{\"__type\":\"com.amazonaws.dynamodb.v20120810#{code}\",\"message\":\"{message}\"}}"
        ),
    )
}

fn interceptor(rules: &[&Rule]) -> MockResponseInterceptor {
    rules.iter().fold(
        MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny),
        |interceptor, rule| interceptor.with_rule(rule),
    )
}

/// The SDK's own retries are off unless a test is about them: these tests are about what the
/// adapter makes of the answer the SDK finally gives up on.
fn sts_client(rules: &[&Rule]) -> aws_sdk_sts::Client {
    let config = aws_sdk_sts::Config::builder()
        .with_test_defaults_v2()
        .region(aws_sdk_sts::config::Region::new("eu-west-1"))
        .http_client(create_mock_http_client())
        .interceptor(interceptor(rules))
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_sts::Client::from_conf(config)
}

fn credentials(rules: &[&Rule]) -> Arc<RoleCredentials> {
    Arc::new(RoleCredentials::new(
        sts_client(rules),
        "TenantControlRole",
        ExternalIds::new(b"test-key".to_vec()),
    ))
}

fn role_assumed() -> Rule {
    use aws_sdk_sts::operation::assume_role::AssumeRoleOutput;
    use aws_sdk_sts::primitives::DateTime;
    use aws_sdk_sts::types::Credentials;
    mock!(aws_sdk_sts::Client::assume_role)
        .match_requests(|request| request.role_arn() == Some(ROLE_ARN))
        .then_output(|| {
            AssumeRoleOutput::builder()
                .credentials(
                    Credentials::builder()
                        .access_key_id("ASIAEXAMPLETENANTKEY")
                        .secret_access_key("tenant-secret")
                        .session_token("tenant-session")
                        // 2100-01-01: never near expiry in a test.
                        .expiration(DateTime::from_secs(4_102_444_800))
                        .build()
                        .expect("all credential fields are set"),
                )
                .build()
        })
}

fn cloudformation_config(
    retries: RetryConfig,
    rules: &[&Rule],
) -> aws_sdk_cloudformation::config::Builder {
    aws_sdk_cloudformation::Config::builder()
        .with_test_defaults_v2()
        .http_client(create_mock_http_client())
        .interceptor(interceptor(rules))
        .retry_config(retries)
}

/// Tenant stacks reached through an assumed tenant role, CloudFormation answering by `rules`.
fn stacks(rules: &[&Rule]) -> CloudFormationStacks {
    stacks_with_retries(RetryConfig::disabled(), rules)
}

fn stacks_with_retries(retries: RetryConfig, rules: &[&Rule]) -> CloudFormationStacks {
    CloudFormationStacks::with_client_config(
        cloudformation_config(retries, rules),
        credentials(&[&role_assumed()]),
        true,
    )
}

fn target() -> StackTarget {
    StackTarget {
        tenant_id: "x".into(),
        location: StackLocation {
            account_id: ACCOUNT.into(),
            region: "eu-west-1".into(),
            stack_name: "tenant-x".into(),
        },
    }
}

/// The tenant account's deploy role, passed to CloudFormation.
const DEPLOY_ROLE_ARN: &str = "arn:aws:iam::111111111111:role/TenantControlDeployRole";

/// A published version's copy in the stack's region (eu-west-1).
const TEMPLATE_URL: &str = "https://tenant-templates-123456789012-eu-west-1.s3.eu-west-1.amazonaws.com/templates/0a1b2c3d.json";

fn request() -> StackRequest {
    StackRequest {
        template: TemplateLocation::Url(TEMPLATE_URL.into()),
        role_arn: Some(DEPLOY_ROLE_ARN.into()),
        auto_expand: false,
        parameters: vec![("Plan".into(), "standard".into())],
        tags: vec![("tenant_id".into(), "x".into())],
        client_request_token: "x-update-3".into(),
    }
}

fn does_not_exist() -> HttpResponse {
    cloudformation_error(
        400,
        "ValidationError",
        "Stack with id tenant-x does not exist",
    )
}

// CloudFormation -------------------------------------------------------------------------------

#[tokio::test]
async fn describe_reads_the_stack_through_the_tenant_role() {
    use aws_sdk_cloudformation::operation::describe_stacks::DescribeStacksOutput;
    use aws_sdk_cloudformation::types::{Output, Stack, StackStatus as Sdk};
    let described = mock!(aws_sdk_cloudformation::Client::describe_stacks)
        .match_requests(|request| request.stack_name() == Some("tenant-x"))
        .then_output(|| {
            DescribeStacksOutput::builder()
                .stacks(
                    Stack::builder()
                        .stack_id(STACK_ARN)
                        .stack_name("tenant-x")
                        .stack_status(Sdk::UpdateComplete)
                        .outputs(
                            Output::builder()
                                .output_key("BucketName")
                                .output_value("tenant-x-data")
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
    let stack = stacks(&[&described])
        .describe(&target())
        .await
        .expect("described")
        .expect("a stack");
    assert_eq!(stack.stack_id, STACK_ARN);
    assert_eq!(stack.status, StackStatus::UpdateComplete);
    assert_eq!(
        stack.outputs.get("BucketName").map(String::as_str),
        Some("tenant-x-data")
    );
}

#[tokio::test]
async fn describe_of_a_stack_that_does_not_exist_is_none() {
    let missing =
        mock!(aws_sdk_cloudformation::Client::describe_stacks).then_http_response(does_not_exist);
    assert_eq!(stacks(&[&missing]).describe(&target()).await, Ok(None));
}

#[tokio::test]
async fn delete_of_a_stack_that_does_not_exist_is_done_without_a_delete_call() {
    let missing =
        mock!(aws_sdk_cloudformation::Client::describe_stacks).then_http_response(does_not_exist);
    let deleted = mock!(aws_sdk_cloudformation::Client::delete_stack).then_output(|| {
        aws_sdk_cloudformation::operation::delete_stack::DeleteStackOutput::builder().build()
    });
    let result = stacks(&[&missing, &deleted])
        .delete(&target(), "x-delete-1")
        .await;
    assert_eq!(result, Ok(()));
    assert_eq!(deleted.num_calls(), 0);
}

/// moto takes a 200 KB inline TemplateBody, so only the request itself can show that a
/// published version goes to CloudFormation as a TemplateURL: CreateStack, UpdateStack and
/// ValidateTemplate carry the URL and no TemplateBody (AWS refuses a body over 51,200 bytes).
/// Stacks are created and updated with the account's deploy role (RoleARN).
#[tokio::test]
async fn published_versions_go_to_cloudformation_as_a_template_url_never_a_body() {
    use aws_sdk_cloudformation::operation::create_stack::CreateStackOutput;
    use aws_sdk_cloudformation::operation::update_stack::UpdateStackOutput;
    use aws_sdk_cloudformation::operation::validate_template::ValidateTemplateOutput;
    let created = mock!(aws_sdk_cloudformation::Client::create_stack)
        .match_requests(|r| {
            r.template_url() == Some(TEMPLATE_URL)
                && r.template_body().is_none()
                && r.role_arn() == Some(DEPLOY_ROLE_ARN)
        })
        .then_output(|| CreateStackOutput::builder().stack_id(STACK_ARN).build());
    let updated = mock!(aws_sdk_cloudformation::Client::update_stack)
        .match_requests(|r| {
            r.template_url() == Some(TEMPLATE_URL)
                && r.template_body().is_none()
                && r.role_arn() == Some(DEPLOY_ROLE_ARN)
        })
        .then_output(|| UpdateStackOutput::builder().stack_id(STACK_ARN).build());
    let stacks = stacks(&[&created, &updated]);
    stacks
        .create(&target(), &request())
        .await
        .expect("created from the URL");
    assert_eq!(
        stacks.update(&target(), &request()).await,
        Ok(UpdateStarted::Started)
    );
    assert_eq!((created.num_calls(), updated.num_calls()), (1, 1));

    let validated = mock!(aws_sdk_cloudformation::Client::validate_template)
        .match_requests(|r| r.template_url() == Some(TEMPLATE_URL) && r.template_body().is_none())
        .then_output(|| ValidateTemplateOutput::builder().build());
    let client = aws_sdk_cloudformation::Client::from_conf(
        cloudformation_config(RetryConfig::disabled(), &[&validated]).build(),
    );
    CloudFormationValidator::with_client(client)
        .validate_template(&TemplateLocation::Url(TEMPLATE_URL.into()))
        .await
        .expect("validated through the URL");
    assert_eq!(validated.num_calls(), 1);

    // A shipped version (no object) still goes inline, and never with a URL.
    let inline = mock!(aws_sdk_cloudformation::Client::create_stack)
        .match_requests(|r| {
            r.template_url().is_none() && r.template_body() == Some("Resources: {}")
        })
        .then_output(|| CreateStackOutput::builder().stack_id(STACK_ARN).build());
    let shipped = StackRequest {
        template: TemplateLocation::Body("Resources: {}".into()),
        ..request()
    };
    stacks_with_retries(RetryConfig::disabled(), &[&inline])
        .create(&target(), &shipped)
        .await
        .expect("created inline");
    assert_eq!(inline.num_calls(), 1);
}

/// CloudFormation's answer when the caller cannot read the TemplateURL (the bucket policy or
/// the tenant role lacks s3:GetObject): refused for good, in its words, so the tenant fails
/// with the reason the operator needs.
#[tokio::test]
async fn a_template_url_the_tenant_role_cannot_read_is_rejected_in_cloudformations_words() {
    let denied = mock!(aws_sdk_cloudformation::Client::create_stack).then_http_response(|| {
        cloudformation_error(
            400,
            "ValidationError",
            "S3 error: Access Denied For more information check http://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html",
        )
    });
    let result = stacks(&[&denied]).create(&target(), &request()).await;
    match result {
        Err(StackError::Rejected(reason)) => {
            assert!(reason.contains("S3 error: Access Denied"), "{reason}")
        }
        other => panic!("rejected, got {other:?}"),
    }
}

#[tokio::test]
async fn update_with_nothing_to_change_is_no_changes() {
    let unchanged = mock!(aws_sdk_cloudformation::Client::update_stack).then_http_response(|| {
        cloudformation_error(400, "ValidationError", "No updates are to be performed.")
    });
    let result = stacks(&[&unchanged]).update(&target(), &request()).await;
    assert_eq!(result, Ok(UpdateStarted::NoChanges));
}

#[tokio::test]
async fn update_while_an_operation_runs_is_busy() {
    for state in [
        "UPDATE_IN_PROGRESS",
        "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
        "CREATE_IN_PROGRESS",
    ] {
        let message = format!("Stack:{STACK_ARN} is in {state} state and can not be updated.");
        let refused = {
            let message = message.clone();
            mock!(aws_sdk_cloudformation::Client::update_stack)
                .then_http_response(move || cloudformation_error(400, "ValidationError", &message))
        };
        let result = stacks(&[&refused]).update(&target(), &request()).await;
        assert_eq!(
            result,
            Err(StackError::Busy(format!("ValidationError: {message}"))),
            "{state}"
        );
    }
}

#[tokio::test]
async fn update_of_a_stack_that_rolled_back_its_creation_is_rejected_not_busy() {
    // ROLLBACK_COMPLETE is terminal: no operation runs, waiting changes nothing.
    let message =
        format!("Stack:{STACK_ARN} is in ROLLBACK_COMPLETE state and can not be updated.");
    let refused = {
        let message = message.clone();
        mock!(aws_sdk_cloudformation::Client::update_stack)
            .then_http_response(move || cloudformation_error(400, "ValidationError", &message))
    };
    let result = stacks(&[&refused]).update(&target(), &request()).await;
    assert_eq!(
        result,
        Err(StackError::Rejected(format!("ValidationError: {message}")))
    );
}

#[tokio::test]
async fn create_without_a_needed_capability_is_rejected_in_cloudformations_words() {
    let refused = mock!(aws_sdk_cloudformation::Client::create_stack).then_http_response(|| {
        cloudformation_error(
            400,
            "InsufficientCapabilitiesException",
            "Requires capabilities : [CAPABILITY_AUTO_EXPAND]",
        )
    });
    let result = stacks(&[&refused]).create(&target(), &request()).await;
    assert_eq!(
        result,
        Err(StackError::Rejected(
            "InsufficientCapabilitiesException: Requires capabilities : [CAPABILITY_AUTO_EXPAND]"
                .into()
        ))
    );
}

#[tokio::test]
async fn create_that_races_another_create_is_already_exists() {
    let raced = mock!(aws_sdk_cloudformation::Client::create_stack).then_http_response(|| {
        cloudformation_error(
            400,
            "AlreadyExistsException",
            "Stack [tenant-x] already exists",
        )
    });
    let result = stacks(&[&raced]).create(&target(), &request()).await;
    assert_eq!(result, Err(StackError::AlreadyExists));
}

#[tokio::test(start_paused = true)]
async fn throttling_is_transient_once_the_sdk_has_retried_it() {
    // Retries as deployed (standard mode, 3 attempts); paused time makes the backoff instant.
    let throttled = mock!(aws_sdk_cloudformation::Client::describe_stacks)
        .then_http_response(|| cloudformation_error(400, "Throttling", "Rate exceeded"));
    let result = stacks_with_retries(RetryConfig::standard(), &[&throttled])
        .describe(&target())
        .await;
    assert_eq!(
        result,
        Err(StackError::Transient("Throttling: Rate exceeded".into()))
    );
    assert_eq!(
        throttled.num_calls(),
        3,
        "the SDK retries a throttle itself"
    );
}

#[tokio::test(start_paused = true)]
async fn limit_exceeded_is_a_quota_rejected_at_once_not_a_throttle() {
    let quota = mock!(aws_sdk_cloudformation::Client::create_stack).then_http_response(|| {
        cloudformation_error(
            400,
            "LimitExceededException",
            "Limit for stacks has been exceeded",
        )
    });
    let result = stacks_with_retries(RetryConfig::standard(), &[&quota])
        .create(&target(), &request())
        .await;
    let Err(StackError::Rejected(reason)) = result else {
        panic!("a quota is rejected, got {result:?}");
    };
    assert!(
        reason.starts_with("LimitExceededException: Limit for stacks has been exceeded"),
        "{reason}"
    );
    assert!(
        reason.contains("quota") && reason.contains("retrying will not help"),
        "{reason}"
    );
    assert_eq!(
        quota.num_calls(),
        1,
        "the SDK must not retry a quota as a throttle"
    );
}

#[tokio::test]
async fn a_server_fault_is_transient() {
    let failed = mock!(aws_sdk_cloudformation::Client::describe_stacks).then_http_response(|| {
        cloudformation_error(
            500,
            "InternalFailure",
            "The request processing has failed because of an unknown error, exception or failure.",
        )
    });
    let result = stacks(&[&failed]).describe(&target()).await;
    assert_eq!(
        result,
        Err(StackError::Transient(
            "InternalFailure: The request processing has failed because of an unknown error, \
             exception or failure."
                .into()
        ))
    );
}

#[tokio::test]
async fn an_answer_the_sdk_cannot_parse_is_a_short_reason_not_its_body() {
    // A load balancer's page, not CloudFormation's XML.
    let gateway = mock!(aws_sdk_cloudformation::Client::describe_stacks).then_http_response(|| {
        response(
            502,
            "text/html",
            "<html><head><title>502 Bad Gateway</title></head><body>Bad Gateway</body></html>",
        )
    });
    let result = stacks(&[&gateway]).describe(&target()).await;
    assert_eq!(
        result,
        Err(StackError::Transient("HTTP 502 with no error code".into()))
    );
}

#[tokio::test]
async fn validate_template_rejects_a_malformed_template_in_cloudformations_words() {
    let invalid =
        mock!(aws_sdk_cloudformation::Client::validate_template).then_http_response(|| {
            cloudformation_error(
                400,
                "ValidationError",
                "Template format error: YAML not well-formed. (line 3, column 5)",
            )
        });
    let client = aws_sdk_cloudformation::Client::from_conf(
        cloudformation_config(RetryConfig::disabled(), &[&invalid]).build(),
    );
    let result = CloudFormationValidator::with_client(client)
        .validate_template(&TemplateLocation::Body("Resources:\n  - [".into()))
        .await;
    assert_eq!(
        result,
        Err(StackError::Rejected(
            "ValidationError: Template format error: YAML not well-formed. (line 3, column 5)"
                .into()
        ))
    );
}

// STS ------------------------------------------------------------------------------------------

fn assume_role_answering(answer: fn() -> HttpResponse) -> Rule {
    mock!(aws_sdk_sts::Client::assume_role).then_http_response(answer)
}

#[tokio::test]
async fn access_denied_while_a_new_role_propagates_is_transient_naming_the_role() {
    let denied = assume_role_answering(|| {
        sts_error(
            403,
            "AccessDenied",
            "User: arn:aws:sts::222222222222:assumed-role/tcp-reconciler/1a2b3c is not \
             authorized to perform: sts:AssumeRole on resource: \
             arn:aws:iam::111111111111:role/TenantControlRole",
        )
    });
    let result = credentials(&[&denied]).for_tenant(ACCOUNT, "x").await;
    assert_eq!(
        result.map(|_| ()),
        Err(StackError::Transient(format!(
            "cannot assume {ROLE_ARN}: AccessDenied: User: \
             arn:aws:sts::222222222222:assumed-role/tcp-reconciler/1a2b3c is not authorized to \
             perform: sts:AssumeRole on resource: {ROLE_ARN}"
        )))
    );
}

#[tokio::test]
async fn access_denied_reaches_the_stack_call_as_transient() {
    let denied = assume_role_answering(|| {
        sts_error(
            403,
            "AccessDenied",
            "User: arn:aws:sts::222222222222:assumed-role/tcp-reconciler/1a2b3c is not \
             authorized to perform: sts:AssumeRole on resource: \
             arn:aws:iam::111111111111:role/TenantControlRole",
        )
    });
    let described =
        mock!(aws_sdk_cloudformation::Client::describe_stacks).then_http_response(does_not_exist);
    let stacks = CloudFormationStacks::with_client_config(
        cloudformation_config(RetryConfig::disabled(), &[&described]),
        credentials(&[&denied]),
        true,
    );
    let result = stacks.describe(&target()).await;
    assert!(
        matches!(&result, Err(e @ StackError::Transient(m)) if e.healing() == Healing::Transient && m.contains(ROLE_ARN)),
        "{result:?}"
    );
    assert_eq!(
        described.num_calls(),
        0,
        "no stack call without the tenant's credentials"
    );
}

#[tokio::test]
async fn region_disabled_is_permanent_and_names_the_region() {
    let disabled = assume_role_answering(|| {
        sts_error(
            403,
            "RegionDisabledException",
            "STS is not activated in this region for account:222222222222. Your account \
             administrator can activate STS in this region using the IAM Console.",
        )
    });
    let result = credentials(&[&disabled]).for_tenant(ACCOUNT, "x").await;
    assert_eq!(
        result.map(|_| ()),
        Err(StackError::Rejected(format!(
            "cannot assume {ROLE_ARN}: RegionDisabledException: STS is not activated in this \
             region for account:222222222222. Your account administrator can activate STS in \
             this region using the IAM Console. (the control plane calls STS in eu-west-1)"
        )))
    );
}

#[tokio::test]
async fn an_expired_session_token_is_transient() {
    let expired = assume_role_answering(|| {
        sts_error(
            403,
            "ExpiredToken",
            "The security token included in the request is expired",
        )
    });
    let result = credentials(&[&expired]).for_tenant(ACCOUNT, "x").await;
    assert_eq!(
        result.map(|_| ()),
        Err(StackError::Transient(format!(
            "cannot assume {ROLE_ARN}: ExpiredToken: The security token included in the request \
             is expired"
        )))
    );
}

// DynamoDB -------------------------------------------------------------------------------------

fn store(rules: &[&Rule]) -> DynamoStore {
    let config = aws_sdk_dynamodb::Config::builder()
        .with_test_defaults_v2()
        .http_client(create_mock_http_client())
        .interceptor(interceptor(rules))
        .retry_config(RetryConfig::disabled())
        .build();
    DynamoStore::new(
        aws_sdk_dynamodb::Client::from_conf(config),
        Tables::of("tenants"),
    )
}

fn tenant() -> TenantKey {
    TenantKey::new("x")
}

fn status() -> TenantStatus {
    TenantStatus::new("x", Status::Ready, "2025-01-01T00:00:00Z")
}

#[tokio::test]
async fn a_failed_condition_is_a_conflict() {
    let lost = mock!(aws_sdk_dynamodb::Client::put_item).then_http_response(|| {
        dynamodb_error(
            400,
            "ConditionalCheckFailedException",
            "The conditional request failed",
        )
    });
    let result = store(&[&lost])
        .put_status(&tenant(), &status(), Some(4))
        .await;
    assert_eq!(result, Err(StoreError::Conflict));
}

#[tokio::test]
async fn throughput_exceeded_and_throttling_are_unavailable_and_may_heal() {
    for (code, message) in [
        (
            "ProvisionedThroughputExceededException",
            "The level of configured provisioned throughput for the table was exceeded. \
             Consider increasing your provisioning level with the UpdateTable API.",
        ),
        (
            "ThrottlingException",
            "Rate of requests exceeds the allowed throughput.",
        ),
    ] {
        let throttled = mock!(aws_sdk_dynamodb::Client::batch_get_item)
            .then_http_response(move || dynamodb_error(400, code, message));
        let result = store(&[&throttled]).load(&tenant()).await;
        let error = result.expect_err("throttled");
        assert_eq!(error, StoreError::Unavailable(format!("{code}: {message}")));
        assert_eq!(error.healing(), Healing::Transient);
    }
}

#[tokio::test]
async fn a_conditional_write_throttled_is_unavailable_not_a_conflict() {
    let throttled = mock!(aws_sdk_dynamodb::Client::put_item).then_http_response(|| {
        dynamodb_error(
            400,
            "ThrottlingException",
            "Rate of requests exceeds the allowed throughput.",
        )
    });
    let result = store(&[&throttled])
        .put_status(&tenant(), &status(), None)
        .await;
    assert_eq!(
        result,
        Err(StoreError::Unavailable(
            "ThrottlingException: Rate of requests exceeds the allowed throughput.".into()
        ))
    );
}

#[tokio::test]
async fn a_validation_exception_is_rejected_not_retried() {
    let too_large = mock!(aws_sdk_dynamodb::Client::put_item).then_http_response(|| {
        dynamodb_error(
            400,
            "ValidationException",
            "Item size has exceeded the maximum allowed size",
        )
    });
    let result = store(&[&too_large])
        .put_status(&tenant(), &status(), Some(4))
        .await;
    let error = result.expect_err("refused");
    assert_eq!(
        error,
        StoreError::Rejected(
            "ValidationException: Item size has exceeded the maximum allowed size".into()
        )
    );
    assert_eq!(error.healing(), Healing::Permanent);
}

#[tokio::test]
async fn a_dynamodb_server_fault_is_unavailable() {
    let failed = mock!(aws_sdk_dynamodb::Client::batch_get_item)
        .then_http_response(|| dynamodb_error(500, "InternalServerError", "Internal server error"));
    let result = store(&[&failed]).load(&tenant()).await;
    assert_eq!(
        result,
        Err(StoreError::Unavailable(
            "InternalServerError: Internal server error".into()
        ))
    );
}

/// The read of a tenant, as DynamoDB answers it: each row from its own table. A STATUS-looking
/// row from the SPEC table (a writer's forgery) is not taken for STATUS, and a STATUS key left in
/// `UnprocessedKeys` (throttling by another name) is a transient failure, not "no STATUS".
#[tokio::test]
async fn a_tenant_is_read_from_its_two_tables_and_nothing_else_counts() {
    use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput;
    use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
    use std::collections::HashMap;

    let row = |sk: &str, extra: &[(&str, &str)]| {
        let mut item = HashMap::from([
            ("pk".to_owned(), AttributeValue::S("TENANT#acme".into())),
            ("sk".to_owned(), AttributeValue::S(sk.into())),
            ("tenant_id".to_owned(), AttributeValue::S("acme".into())),
        ]);
        for (k, v) in extra {
            item.insert((*k).to_owned(), AttributeValue::S((*v).into()));
        }
        item
    };
    let forged = mock!(aws_sdk_dynamodb::Client::batch_get_item).then_output(move || {
        BatchGetItemOutput::builder()
            .responses(
                "tenants",
                vec![
                    row("SPEC", &[("account_id", "111111111111")]),
                    row("STATUS", &[("status", "failed")]),
                ],
            )
            .responses("tenants-control", Vec::new())
            .build()
    });
    let snapshot = store(&[&forged]).load(&tenant()).await.expect("read");
    assert!(snapshot.spec.is_some());
    assert_eq!(
        snapshot.status, None,
        "a STATUS from the SPEC table is never read"
    );

    let left = mock!(aws_sdk_dynamodb::Client::batch_get_item).then_output(move || {
        BatchGetItemOutput::builder()
            .responses(
                "tenants",
                vec![row("SPEC", &[("account_id", "111111111111")])],
            )
            .unprocessed_keys(
                "tenants-control",
                KeysAndAttributes::builder()
                    .keys(HashMap::from([
                        ("pk".to_owned(), AttributeValue::S("TENANT#acme".into())),
                        ("sk".to_owned(), AttributeValue::S("STATUS".into())),
                    ]))
                    .consistent_read(true)
                    .build()
                    .expect("keys"),
            )
            .build()
    });
    let error = store(&[&left])
        .load(&tenant())
        .await
        .expect_err("throttled");
    assert_eq!(error.healing(), Healing::Transient, "{error}");
}

/// A published version is written once: one whose body no longer hashes to the sha256 recorded
/// when it was published (an item written before bodies moved to S3, its inline body changed in
/// place in the table) is refused, never deployed.
#[tokio::test]
async fn a_template_version_changed_after_publishing_is_refused() {
    use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
    use aws_sdk_dynamodb::types::AttributeValue;

    let record = |body: &str| {
        let body = body.to_owned();
        mock!(aws_sdk_dynamodb::Client::get_item).then_output(move || {
            let text = |v: &str| AttributeValue::S(v.into());
            GetItemOutput::builder()
                .item("pk", text("TEMPLATES"))
                .item("sk", text("VERSION#v2"))
                .item("version", text("v2"))
                .item("body", text(&body))
                .item(
                    "sha256",
                    text(&controlplane::template_source::sha256_hex("Resources: {}")),
                )
                .item("published_by", text("ops"))
                .item("published_at", text("2026-12-02T00:00:00Z"))
                .build()
        })
    };
    let templates = |rule: &aws_smithy_mocks::Rule| {
        controlplane::template_source::TableTemplates::new(
            Arc::new(store(&[rule])),
            Arc::new(controlplane::testing::FakeTemplateObjects::default()),
            controlplane::template_source::BundledTemplates::sample().unwrap(),
        )
    };
    let kept = record("Resources: {}");
    let read = templates(&kept).version("v2").await.unwrap().expect("kept");
    assert_eq!(read.body, "Resources: {}");
    let swapped = record("Resources: {Evil: {}}");
    let refused = templates(&swapped).version("v2").await.unwrap_err();
    assert!(
        matches!(&refused, controlplane::ports::TemplateSourceError::Corrupt(reason) if reason.contains("changed after it was published")),
        "{refused}"
    );
    // Nor is it deployed: a tenant on it fails with that reason (never "try again").
    let swapped = record("Resources: {Evil: {}}");
    let refused = controlplane::ports::TemplateSource::get(&templates(&swapped), "v2")
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, controlplane::ports::TemplateSourceError::Corrupt(reason) if reason.contains("sha256")),
        "{refused}"
    );
}

/// A STATUS `version` written by hand as a number that is no counter (`1.5`, 39 digits) reads
/// as no version; the write over it is then conditioned on the exact value DynamoDB shows in
/// its refusal (ALL_OLD), so the row is rewritten instead of every write being refused for
/// good. A real counter in the refusal stays a conflict (someone wrote meanwhile).
#[tokio::test]
async fn a_status_version_that_is_no_counter_is_written_over_exactly() {
    use aws_sdk_dynamodb::operation::put_item::PutItemOutput;
    use aws_sdk_dynamodb::types::AttributeValue;
    let refused_showing = |stored: &'static str| {
        mock!(aws_sdk_dynamodb::Client::put_item)
            .match_requests(|r| {
                r.condition_expression()
                    .is_some_and(|c| c.starts_with("attribute_not_exists"))
                    && r.return_values_on_condition_check_failure()
                        == Some(&aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld)
            })
            .then_http_response(move || {
                response(
                    400,
                    "application/x-amz-json-1.0",
                    &format!(
                        "{{\"__type\":\"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException\",\
                         \"message\":\"The conditional request failed\",\
                         \"Item\":{{\"pk\":{{\"S\":\"TENANT#x\"}},\"version\":{{\"N\":\"{stored}\"}}}}}}"
                    ),
                )
            })
    };
    let over_exactly = |stored: &'static str| {
        mock!(aws_sdk_dynamodb::Client::put_item)
            .match_requests(move |r| {
                r.condition_expression() == Some("#version = :expected")
                    && r.expression_attribute_values()
                        .and_then(|v| v.get(":expected"))
                        == Some(&AttributeValue::N(stored.into()))
            })
            .then_output(|| PutItemOutput::builder().build())
    };
    for stored in ["1.5", "99999999999999999999999999999999999999"] {
        let refused = refused_showing(stored);
        let written = over_exactly(stored);
        store(&[&refused, &written])
            .put_status(&tenant(), &status(), None)
            .await
            .unwrap_or_else(|e| panic!("{stored}: {e}"));
    }
    let refused = refused_showing("7");
    let written = over_exactly("7");
    assert_eq!(
        store(&[&refused, &written])
            .put_status(&tenant(), &status(), None)
            .await,
        Err(StoreError::Conflict)
    );
}

/// moto does not serve the Rust CloudWatch client (rpc-v2-CBOR: HTTP 404), so the adapter is
/// held here against DescribeAlarms' answers: metric and composite alarms read in one call, the
/// first in ALARM (by name) with CloudWatch's reason, a name CloudWatch does not know an error.
#[tokio::test]
async fn the_rollouts_alarms_are_read_from_describe_alarms() {
    use aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput;
    use aws_sdk_cloudwatch::types::{AlarmType, CompositeAlarm, MetricAlarm, StateValue};
    use controlplane::aws::cloudwatch::CloudWatchAlarms;
    use controlplane::ports::{Alarms, Breach};

    let client = |rules: &[&Rule]| {
        let mut config = aws_sdk_cloudwatch::Config::builder()
            .with_test_defaults_v2()
            .http_client(create_mock_http_client())
            .retry_config(aws_sdk_cloudwatch::config::retry::RetryConfig::disabled());
        let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
        for rule in rules {
            interceptor = interceptor.with_rule(rule);
        }
        config = config.interceptor(interceptor);
        CloudWatchAlarms::new(aws_sdk_cloudwatch::Client::from_conf(config.build()))
    };
    let metric = |name: &str, state: StateValue, reason: &str| {
        MetricAlarm::builder()
            .alarm_name(name)
            .state_value(state)
            .state_reason(reason)
            .build()
    };
    let answered = mock!(aws_sdk_cloudwatch::Client::describe_alarms)
        .match_requests(|r| {
            r.alarm_names() == ["api-5xx", "checkout-latency", "fleet-health"]
                && r.alarm_types() == [AlarmType::MetricAlarm, AlarmType::CompositeAlarm]
        })
        .then_output(move || {
            DescribeAlarmsOutput::builder()
                .metric_alarms(metric(
                    "checkout-latency",
                    StateValue::Alarm,
                    "Threshold Crossed: p99 2.1s",
                ))
                .metric_alarms(metric(
                    "api-5xx",
                    StateValue::Ok,
                    "Threshold Crossed: no datapoints were breaching",
                ))
                .composite_alarms(
                    CompositeAlarm::builder()
                        .alarm_name("fleet-health")
                        .state_value(StateValue::Alarm)
                        .state_reason(
                            "arn:aws:cloudwatch:...:alarm:checkout-latency transitioned to ALARM",
                        )
                        .build(),
                )
                .build()
        });
    let names: Vec<String> = ["api-5xx", "checkout-latency", "fleet-health"]
        .map(str::to_owned)
        .to_vec();
    assert_eq!(
        client(&[&answered]).breached(&names).await,
        Ok(Some(Breach {
            alarm: "checkout-latency".into(),
            reason: "Threshold Crossed: p99 2.1s".into()
        }))
    );

    let healthy = mock!(aws_sdk_cloudwatch::Client::describe_alarms).then_output(move || {
        DescribeAlarmsOutput::builder()
            .metric_alarms(metric(
                "api-5xx",
                StateValue::InsufficientData,
                "Unchecked: Initial alarm creation",
            ))
            .build()
    });
    assert_eq!(
        client(&[&healthy]).breached(&["api-5xx".to_owned()]).await,
        Ok(None),
        "INSUFFICIENT_DATA is not a breach"
    );

    let unknown = mock!(aws_sdk_cloudwatch::Client::describe_alarms)
        .then_output(|| DescribeAlarmsOutput::builder().build());
    let missing = client(&[&unknown])
        .breached(&["api-5xx".to_owned()])
        .await
        .unwrap_err();
    assert_eq!(
        missing,
        controlplane::ports::AlarmError::Missing(vec!["api-5xx".into()])
    );

    let throttled = mock!(aws_sdk_cloudwatch::Client::describe_alarms).then_error(|| {
        aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsError::generic(
            aws_sdk_cloudwatch::error::ErrorMetadata::builder()
                .code("Throttling")
                .message("Rate exceeded")
                .build(),
        )
    });
    let error = client(&[&throttled])
        .breached(&["api-5xx".to_owned()])
        .await
        .unwrap_err();
    assert!(
        matches!(&error, controlplane::ports::AlarmError::Unavailable(m) if m.contains("Throttling: Rate exceeded")),
        "{error}"
    );
}

/// The template buckets against S3's answers: a publish writes every region's copy (a bucket
/// that is missing is refused for good, naming it), a key S3 does not have is no version body,
/// a throttled read may heal.
#[tokio::test]
async fn the_template_buckets_answer_as_s3_answers() {
    use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
    use aws_sdk_s3::operation::put_object::{PutObjectError, PutObjectOutput};
    use controlplane::aws::s3::{S3TemplateObjects, TemplateBuckets};
    use controlplane::ports::{ObjectError, TemplateObjects};
    use std::collections::BTreeMap;

    let client = |rules: &[&Rule]| {
        let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
        for rule in rules {
            interceptor = interceptor.with_rule(rule);
        }
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::Config::builder()
                .with_test_defaults_v2()
                .http_client(create_mock_http_client())
                .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
                .interceptor(interceptor)
                .build(),
        )
    };
    let buckets =
        TemplateBuckets::new("tenant-templates-123456789012-", "us-east-1", ["eu-west-1"]);
    let key = "templates/0a1b.json";
    let stored_in = |bucket: &'static str| {
        mock!(aws_sdk_s3::Client::put_object)
            .match_requests(move |r| r.bucket() == Some(bucket) && r.key() == Some(key))
            .then_output(|| {
                PutObjectOutput::builder()
                    .version_id("3HL4kqtJlcpXroDTDmJ")
                    .build()
            })
    };
    // The home bucket's client answered by `home`, the eu-west-1 copy's by `copy`.
    let in_both = |home: &Rule, copy: &Rule| {
        S3TemplateObjects::with_clients(
            buckets.clone(),
            BTreeMap::from([
                ("us-east-1".to_owned(), client(&[home])),
                ("eu-west-1".to_owned(), client(&[copy])),
            ]),
        )
    };
    let home = stored_in("tenant-templates-123456789012-us-east-1");
    let copy = stored_in("tenant-templates-123456789012-eu-west-1");
    let objects = in_both(&home, &copy);
    objects
        .put(key, "{\"Resources\": {}}")
        .await
        .expect("stored");
    assert_eq!(
        (home.num_calls(), copy.num_calls()),
        (1, 1),
        "a copy per region"
    );

    let no_bucket = mock!(aws_sdk_s3::Client::put_object).then_error(|| {
        PutObjectError::generic(
            aws_sdk_s3::error::ErrorMetadata::builder()
                .code("NoSuchBucket")
                .message("The specified bucket does not exist")
                .build(),
        )
    });
    let home = stored_in("tenant-templates-123456789012-us-east-1");
    let missing_copy = in_both(&home, &no_bucket);
    match missing_copy.put(key, "{}").await {
        Err(ObjectError::Rejected(reason)) => assert!(
            reason.contains("tenant-templates-123456789012-eu-west-1")
                && reason.contains("NoSuchBucket"),
            "{reason}"
        ),
        other => panic!("refused for good, got {other:?}"),
    }

    let body = mock!(aws_sdk_s3::Client::get_object).then_output(|| {
        GetObjectOutput::builder()
            .body(aws_sdk_s3::primitives::ByteStream::from_static(
                b"{\"Resources\": {}}",
            ))
            .build()
    });
    let no_key = mock!(aws_sdk_s3::Client::get_object).then_error(|| {
        GetObjectError::NoSuchKey(aws_sdk_s3::types::error::NoSuchKey::builder().build())
    });
    let throttled = mock!(aws_sdk_s3::Client::get_object).then_error(|| {
        GetObjectError::generic(
            aws_sdk_s3::error::ErrorMetadata::builder()
                .code("SlowDown")
                .message("Please reduce your request rate.")
                .build(),
        )
    });
    let reading = |rule: &Rule| {
        S3TemplateObjects::with_clients(
            buckets.clone(),
            BTreeMap::from([("us-east-1".to_owned(), client(&[rule]))]),
        )
    };
    assert_eq!(
        reading(&body).get(key).await,
        Ok(Some("{\"Resources\": {}}".into()))
    );
    assert_eq!(reading(&no_key).get(key).await, Ok(None));
    match reading(&throttled).get(key).await {
        Err(e @ ObjectError::Unavailable(_)) => assert!(e.to_string().contains("SlowDown"), "{e}"),
        other => panic!("may heal, got {other:?}"),
    }
    assert_eq!(
        objects.urls(key)["eu-west-1"],
        "https://tenant-templates-123456789012-eu-west-1.s3.eu-west-1.amazonaws.com/templates/0a1b.json"
    );
}

// Drift ----------------------------------------------------------------------------------------

#[tokio::test]
async fn drift_detection_is_started_followed_and_its_drifted_resources_read() {
    use aws_sdk_cloudformation::operation::describe_stack_drift_detection_status::DescribeStackDriftDetectionStatusOutput;
    use aws_sdk_cloudformation::operation::describe_stack_resource_drifts::DescribeStackResourceDriftsOutput;
    use aws_sdk_cloudformation::operation::detect_stack_drift::DetectStackDriftOutput;
    use aws_sdk_cloudformation::types::{
        DifferenceType, PropertyDifference, StackDriftDetectionStatus, StackDriftStatus,
        StackResourceDrift, StackResourceDriftStatus,
    };
    use controlplane::ports::{DetectionProgress, StackDrift};
    let detect = mock!(aws_sdk_cloudformation::Client::detect_stack_drift)
        .match_requests(|r| r.stack_name() == Some("tenant-x"))
        .then_output(|| {
            DetectStackDriftOutput::builder()
                .stack_drift_detection_id("b78ac9b0-dec1-11e7-a451-503a3example")
                .build()
        });
    let looks = mock!(aws_sdk_cloudformation::Client::describe_stack_drift_detection_status)
        .match_requests(|r| {
            r.stack_drift_detection_id() == Some("b78ac9b0-dec1-11e7-a451-503a3example")
        })
        .sequence()
        .output(|| {
            DescribeStackDriftDetectionStatusOutput::builder()
                .stack_id(STACK_ARN)
                .stack_drift_detection_id("b78ac9b0-dec1-11e7-a451-503a3example")
                .detection_status(StackDriftDetectionStatus::DetectionInProgress)
                .build()
        })
        .output(|| {
            DescribeStackDriftDetectionStatusOutput::builder()
                .stack_id(STACK_ARN)
                .stack_drift_detection_id("b78ac9b0-dec1-11e7-a451-503a3example")
                .detection_status(StackDriftDetectionStatus::DetectionComplete)
                .stack_drift_status(StackDriftStatus::Drifted)
                .drifted_stack_resource_count(1)
                .build()
        })
        .build();
    // Two pages, as CloudFormation pages them; only MODIFIED and DELETED are asked for.
    let page = |token: Option<&str>, id: &str| {
        let mut output = DescribeStackResourceDriftsOutput::builder().stack_resource_drifts(
            StackResourceDrift::builder()
                .stack_id(STACK_ARN)
                .logical_resource_id(id)
                .physical_resource_id(format!("https://sqs/{id}"))
                .resource_type("AWS::SQS::Queue")
                .stack_resource_drift_status(StackResourceDriftStatus::Modified)
                .property_differences(
                    PropertyDifference::builder()
                        .property_path("/VisibilityTimeout")
                        .expected_value("30")
                        .actual_value("600")
                        .difference_type(DifferenceType::NotEqual)
                        .build(),
                )
                .build(),
        );
        if let Some(token) = token {
            output = output.next_token(token);
        }
        output.build()
    };
    let first = mock!(aws_sdk_cloudformation::Client::describe_stack_resource_drifts)
        .match_requests(|r| {
            r.next_token().is_none()
                && r.stack_resource_drift_status_filters()
                    == [
                        StackResourceDriftStatus::Modified,
                        StackResourceDriftStatus::Deleted,
                    ]
        })
        .then_output(move || page(Some("page-2"), "Queue"));
    let second = mock!(aws_sdk_cloudformation::Client::describe_stack_resource_drifts)
        .match_requests(|r| r.next_token() == Some("page-2"))
        .then_output(move || page(None, "OtherQueue"));
    let stacks = stacks(&[&detect, &looks, &first, &second]);
    let id = stacks.detect(&target()).await.expect("started");
    assert_eq!(
        stacks.progress(&target(), &id).await,
        Ok(DetectionProgress::InProgress)
    );
    assert_eq!(
        stacks.progress(&target(), &id).await,
        Ok(DetectionProgress::Complete {
            drifted: true,
            reason: None
        })
    );
    let drifted = stacks.drifted_resources(&target()).await.expect("read");
    let ids: Vec<&str> = drifted.iter().map(|d| d.logical_id.as_str()).collect();
    assert_eq!(ids, ["Queue", "OtherQueue"]);
    assert_eq!(drifted[0].status, "MODIFIED");
    assert_eq!(drifted[0].differences[0].path, "/VisibilityTimeout");
    assert_eq!(drifted[0].differences[0].kind, "NOT_EQUAL");
    assert_eq!(
        (
            drifted[0].differences[0].expected.as_str(),
            drifted[0].differences[0].actual.as_str()
        ),
        ("30", "600")
    );
}

/// A partial detection (some resources could not be read: the role lacks their read actions)
/// still reports the drift it found, with CloudFormation's reason; one that found nothing fails.
#[tokio::test]
async fn a_failed_detection_keeps_its_reason_and_any_drift_it_found() {
    use aws_sdk_cloudformation::operation::describe_stack_drift_detection_status::DescribeStackDriftDetectionStatusOutput;
    use aws_sdk_cloudformation::types::{StackDriftDetectionStatus, StackDriftStatus};
    use controlplane::ports::{DetectionProgress, StackDrift};
    const WHY: &str = "Failed to detect drift on resource [Queue]: User is not authorized to perform: sqs:GetQueueAttributes";
    let looks = mock!(aws_sdk_cloudformation::Client::describe_stack_drift_detection_status)
        .sequence()
        .output(|| {
            DescribeStackDriftDetectionStatusOutput::builder()
                .stack_id(STACK_ARN)
                .stack_drift_detection_id("d1")
                .detection_status(StackDriftDetectionStatus::DetectionFailed)
                .detection_status_reason(WHY)
                .stack_drift_status(StackDriftStatus::Drifted)
                .build()
        })
        .output(|| {
            DescribeStackDriftDetectionStatusOutput::builder()
                .stack_id(STACK_ARN)
                .stack_drift_detection_id("d1")
                .detection_status(StackDriftDetectionStatus::DetectionFailed)
                .detection_status_reason(WHY)
                .stack_drift_status(StackDriftStatus::from("UNKNOWN"))
                .build()
        })
        .output(|| {
            DescribeStackDriftDetectionStatusOutput::builder()
                .stack_id(STACK_ARN)
                .stack_drift_detection_id("d1")
                .detection_status(StackDriftDetectionStatus::DetectionComplete)
                .stack_drift_status(StackDriftStatus::NotChecked)
                .build()
        })
        .build();
    let stacks = stacks(&[&looks]);
    assert_eq!(
        stacks.progress(&target(), "d1").await,
        Ok(DetectionProgress::Complete {
            drifted: true,
            reason: Some(WHY.into())
        })
    );
    assert_eq!(
        stacks.progress(&target(), "d1").await,
        Ok(DetectionProgress::Failed { reason: WHY.into() })
    );
    // Complete, yet NOT_CHECKED: nothing was learnt, never taken for in sync.
    assert!(matches!(
        stacks.progress(&target(), "d1").await,
        Ok(DetectionProgress::Failed { reason }) if reason.contains("NOT_CHECKED")
    ));
}

/// moto answers drift calls with HTTP 500: a server fault, transient, and no throttle (the
/// drift job records `not_checked` after one try instead of backing off); a throttle is one.
#[tokio::test]
async fn a_server_fault_on_drift_detection_is_transient_and_no_throttle() {
    use controlplane::ports::StackDrift;
    let answers = mock!(aws_sdk_cloudformation::Client::detect_stack_drift)
        .sequence()
        .http_response(|| response(500, "text/html", "<h1>Internal Server Error</h1>"))
        .http_response(|| cloudformation_error(400, "Throttling", "Rate exceeded"))
        .build();
    let stacks = stacks(&[&answers]);
    let error = stacks.detect(&target()).await.expect_err("a fault");
    assert_eq!(error.healing(), Healing::Transient, "{error}");
    assert!(!error.is_throttle(), "{error}");
    let error = stacks.detect(&target()).await.expect_err("a throttle");
    assert!(error.is_throttle(), "{error}");
}

/// The revert is a drift-aware change set (DeploymentMode REVERT_DRIFT) with the stack's own
/// template URL, parameters and deploy role, executed once computed; what it cannot revert is
/// read from the change set. A plain UpdateStack would revert nothing.
#[tokio::test]
async fn drift_is_reverted_with_a_revert_drift_change_set_that_is_executed() {
    use aws_sdk_cloudformation::operation::create_change_set::CreateChangeSetOutput;
    use aws_sdk_cloudformation::operation::describe_change_set::DescribeChangeSetOutput;
    use aws_sdk_cloudformation::operation::execute_change_set::ExecuteChangeSetOutput;
    use aws_sdk_cloudformation::types::{
        Change, ChangeAction, ChangeSetStatus, DeploymentMode, DriftIgnoredReason, ResourceChange,
        ResourceDriftIgnoredAttribute, StackResourceDriftStatus,
    };
    use controlplane::ports::{RevertPlan, StackDrift};
    const CHANGE_SET: &str =
        "arn:aws:cloudformation:eu-west-1:111111111111:changeSet/revert-drift-x-update-3/1";
    let created = mock!(aws_sdk_cloudformation::Client::create_change_set)
        .match_requests(|r| {
            r.deployment_mode() == Some(&DeploymentMode::RevertDrift)
                && r.template_url() == Some(TEMPLATE_URL)
                && r.template_body().is_none()
                && r.role_arn() == Some(DEPLOY_ROLE_ARN)
                && r.stack_name() == Some("tenant-x")
        })
        .then_output(|| {
            CreateChangeSetOutput::builder()
                .id(CHANGE_SET)
                .stack_id(STACK_ARN)
                .build()
        });
    let computed = mock!(aws_sdk_cloudformation::Client::describe_change_set)
        .match_requests(|r| r.change_set_name() == Some(CHANGE_SET))
        .then_output(|| {
            DescribeChangeSetOutput::builder()
                .status(ChangeSetStatus::CreateComplete)
                .changes(
                    Change::builder()
                        .resource_change(
                            ResourceChange::builder()
                                .action(ChangeAction::Modify)
                                .logical_resource_id("Queue")
                                .resource_type("AWS::SQS::Queue")
                                .resource_drift_status(StackResourceDriftStatus::Modified)
                                .resource_drift_ignored_attributes(
                                    ResourceDriftIgnoredAttribute::builder()
                                        .path("/Tags/0/Value")
                                        .reason(DriftIgnoredReason::ManagedByAws)
                                        .build(),
                                )
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
    let executed = mock!(aws_sdk_cloudformation::Client::execute_change_set)
        .match_requests(|r| {
            r.change_set_name() == Some(CHANGE_SET)
                && r.client_request_token() == Some("x-update-3")
        })
        .then_output(|| ExecuteChangeSetOutput::builder().build());
    let stacks = stacks(&[&created, &computed, &executed]);
    let plan = stacks
        .prepare_revert(&target(), &request())
        .await
        .expect("prepared");
    assert_eq!(
        plan,
        RevertPlan::Ready {
            change_set: CHANGE_SET.into(),
            not_reverted: vec![model::drift::NotReverted {
                logical_id: "Queue".into(),
                path: "/Tags/0/Value".into(),
                reason: "MANAGED_BY_AWS".into(),
            }]
        }
    );
    // Made and computed, nothing executed yet: the intent is written between the two.
    assert_eq!(
        (
            created.num_calls(),
            computed.num_calls(),
            executed.num_calls()
        ),
        (1, 1, 0)
    );
    stacks
        .execute_revert(&target(), CHANGE_SET, "x-update-3")
        .await
        .expect("executed");
    assert_eq!(executed.num_calls(), 1);

    // Nothing drifted by the time it runs: CloudFormation fails the change set; nothing is
    // executed and the change set is removed.
    let empty = mock!(aws_sdk_cloudformation::Client::describe_change_set).then_output(|| {
        DescribeChangeSetOutput::builder()
            .status(ChangeSetStatus::Failed)
            .status_reason("The submitted information didn't contain changes. Submit different information to create a change set.")
            .build()
    });
    let removed = mock!(aws_sdk_cloudformation::Client::delete_change_set).then_output(|| {
        aws_sdk_cloudformation::operation::delete_change_set::DeleteChangeSetOutput::builder()
            .build()
    });
    let stacks = stacks_with_retries(RetryConfig::disabled(), &[&created, &empty, &removed]);
    assert_eq!(
        stacks.prepare_revert(&target(), &request()).await,
        Ok(RevertPlan::NothingToRevert)
    );
    assert_eq!(removed.num_calls(), 1);

    // A change set CloudFormation fails for another reason is refused, and removed too.
    let refused = mock!(aws_sdk_cloudformation::Client::describe_change_set).then_output(|| {
        DescribeChangeSetOutput::builder()
            .status(ChangeSetStatus::Failed)
            .status_reason(
                "Drift-aware change sets are not supported for stacks with nested stacks",
            )
            .build()
    });
    let stacks = stacks_with_retries(RetryConfig::disabled(), &[&created, &refused, &removed]);
    let error = stacks
        .prepare_revert(&target(), &request())
        .await
        .expect_err("refused");
    assert!(
        matches!(&error, StackError::Rejected(m) if m.contains("nested stacks")),
        "{error}"
    );
    assert_eq!(removed.num_calls(), 2);
}

// One request per STATUS write ---------------------------------------------------------------

/// TransactionCanceledException as DynamoDB sends it: one reason per item, in order.
fn cancelled(reasons: &[&str]) -> HttpResponse {
    let reasons: Vec<String> = reasons
        .iter()
        .map(|code| {
            if *code == "None" {
                r#"{"Code":"None"}"#.to_owned()
            } else {
                format!(r#"{{"Code":"{code}","Message":"The conditional request failed"}}"#)
            }
        })
        .collect();
    response(
        400,
        "application/x-amz-json-1.0",
        &format!(
            r#"{{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","Message":"Transaction cancelled, please refer cancellation reasons for specific reasons [{}]","CancellationReasons":[{}]}}"#,
            reasons.iter().map(|_| "x").collect::<Vec<_>>().join(", "),
            reasons.join(",")
        ),
    )
}

fn line() -> model::audit::AuditEntry {
    model::audit::AuditEntry {
        at: "2025-01-01T00:00:00.000Z".into(),
        id: "spec-1".into(),
        action: model::audit::AuditAction::SpecWritten,
        actor: "ops".into(),
        requested_by: None,
        result: "accepted".into(),
        reason: None,
    }
}

/// STATUS and its lines go in one TransactWriteItems, STATUS conditional on its version, and a
/// write assigning the fleet's current version checks the CURRENT row; either condition
/// failing is a conflict (decide again), anything else what it is.
#[tokio::test]
async fn a_status_write_and_its_lines_are_one_transaction_and_a_lost_condition_a_conflict() {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput;
    use controlplane::ports::CurrentGuard;
    let written = mock!(aws_sdk_dynamodb::Client::transact_write_items)
        .match_requests(|r| {
            let items = r.transact_items();
            items.len() == 3
                && items[0].put().is_some_and(|p| {
                    p.condition_expression() == Some("#version = :expected")
                        && p.item()
                            .get("sk")
                            .and_then(|s| s.as_s().ok())
                            .map(String::as_str)
                            == Some("STATUS")
                })
                && items[1].put().is_some()
                && items[2].condition_check().is_some_and(|c| {
                    c.condition_expression() == "#current = :current"
                        && c.key()
                            .get("sk")
                            .and_then(|s| s.as_s().ok())
                            .map(String::as_str)
                            == Some("CURRENT")
                })
        })
        .then_output(|| TransactWriteItemsOutput::builder().build());
    store(&[&written])
        .put_status_noting(
            &tenant(),
            &status(),
            Some(4),
            &[line()],
            Some(CurrentGuard::Names("v7".into())),
        )
        .await
        .expect("one transaction");
    assert_eq!(written.num_calls(), 1);

    let answers = mock!(aws_sdk_dynamodb::Client::transact_write_items)
        .sequence()
        .http_response(|| cancelled(&["ConditionalCheckFailed", "None", "None"]))
        .http_response(|| cancelled(&["None", "None", "ConditionalCheckFailed"]))
        // Another transaction on the STATUS or CURRENT row was in flight.
        .http_response(|| cancelled(&["None", "None", "TransactionConflict"]))
        .http_response(|| cancelled(&["ThrottlingError", "None", "None"]))
        .http_response(|| {
            dynamodb_error(
                400,
                "ThrottlingException",
                "Rate of requests exceeds the allowed throughput.",
            )
        })
        .build();
    let store = store(&[&answers]);
    let (key, row, lines) = (tenant(), status(), [line()]);
    let write = || store.put_status_noting(&key, &row, Some(4), &lines, Some(CurrentGuard::NoRow));
    assert_eq!(write().await, Err(StoreError::Conflict), "STATUS moved");
    assert_eq!(write().await, Err(StoreError::Conflict), "CURRENT moved");
    assert_eq!(
        write().await,
        Err(StoreError::Conflict),
        "a transaction in flight"
    );
    let throttled = write().await.expect_err("an item throttled");
    assert_eq!(throttled.healing(), Healing::Transient, "{throttled}");
    let throttled = write().await.expect_err("throttled");
    assert_eq!(throttled.healing(), Healing::Transient, "{throttled}");
}
