//! The SDK adapters of the ports, and the classification of SDK errors.

pub mod cloudformation;
pub mod cloudwatch;
pub mod dynamodb;
pub mod s3;
pub mod sns;
pub mod sqs;
pub mod streams;
pub mod sts;

use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
use aws_sdk_cloudformation::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_types::retry::ProvideErrorKind;

use crate::ports::Healing;

/// One AWS call an adapter makes: the IAM action it needs and what it acts on. Each adapter
/// lists its calls beside its code; each function's calls are those of the adapters it is
/// wired with ([`crate::wiring::FUNCTION_CALLS`]). The permission check (tests/iam_policies.rs)
/// holds them against the function's role in template.yaml, and the local system refuses any
/// call a function makes that its list lacks, so the lists cannot drift from the code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Call {
    /// `service:Operation`, as IAM names it (DynamoDB Streams' calls are `dynamodb:` actions).
    pub action: &'static str,
    pub on: Resource,
}

/// What a call acts on, named as template.yaml and the tenant-account bootstrap name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resource {
    /// The SPEC table: writers' desired state, and nothing else (`TenantsTable`).
    SpecTable,
    /// The SPEC table's `tenants` index.
    TenantsIndex,
    /// The control-plane table: everything the control plane records (`ControlTable`); a write
    /// on it is a write of tenants' partitions (STATUS, the timeline).
    ControlTable,
    /// The control-plane table's partitions of records outside every tenant (template versions,
    /// rollouts, previews, idempotency records, the API's request lines: `API_PARTITIONS` of
    /// the DynamoDB adapter), which the API writes too.
    ControlRecords,
    /// The control-plane table's `statuses` index.
    StatusesIndex,
    /// The control-plane table's `by-status` index.
    ByStatusIndex,
    /// The SPEC table's stream.
    TableStream,
    /// The completion loop's re-check queue.
    RecheckQueue,
    /// The preview function's queue.
    PreviewQueue,
    /// The lifecycle events topic.
    LifecycleTopic,
    /// The SSM SecureString holding the ExternalId key.
    ExternalIdKey,
    /// The SSM SecureString holding the key the API signs page tokens with.
    PageTokenKey,
    /// The role every tenant account's bootstrap creates.
    TenantRole,
    /// The change-set-only role every tenant account's bootstrap creates for previews.
    TenantPreviewRole,
    /// The published template versions' objects in the home region's template bucket.
    TemplateObjects,
    /// The published template versions' objects in every region's template bucket (read by
    /// CloudFormation with the caller's credentials, through a TemplateURL).
    TemplateCopies,
    /// The CloudFormation service role every tenant account's bootstrap creates (passed by the
    /// tenant role).
    TenantDeployRole,
    /// The control plane's CloudWatch alarms (those rollouts watch).
    Alarms,
    /// A tenant's stack, reached through the tenant role or the preview role (the bootstrap's
    /// grants).
    TenantStack,
    /// An action that takes no resource (IAM grants it on `*` only).
    Unscoped,
}

impl Call {
    pub const fn new(action: &'static str, on: Resource) -> Self {
        Self { action, on }
    }
}

/// Whether an error's text (`AwsFailure::message`: "code: words") is a throttle's: its code is
/// one the SDK treats as throttling (a quota is not).
pub fn is_throttle_message(message: &str) -> bool {
    let code = message.split([':', ' ']).next().unwrap_or_default();
    THROTTLING_ERRORS.contains(&code) && !QUOTA_ERRORS.contains(&code)
}

/// Codes in the SDK's `THROTTLING_ERRORS` that are no throttle for the control plane.
/// CloudFormation answers `LimitExceededException` when a quota of the account is reached
/// (stacks per region, ...): waiting does not lift it; raising the quota or deleting stacks does.
pub const QUOTA_ERRORS: &[&str] = &["LimitExceededException"];

/// Codes the SDK's classifiers do not retry but that heal by themselves for the control plane.
pub const PROJECT_TRANSIENT_ERRORS: &[&str] = &[
    // A tenant account's new role, or its policy, takes seconds to propagate.
    "AccessDenied",
    "AccessDeniedException",
    // The control plane's own session expired in flight, or the request's clock was off: the
    // next request is signed afresh.
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
    // A write met a transaction in flight on the same item (the STATUS and CURRENT rows are
    // written in transactions): the next try finds it done.
    "TransactionConflictException",
];

/// Whether a service's error answer may heal: as the SDK's retry classifiers judge it (its
/// throttling and transient codes, errors modeled as retryable, server faults), with the
/// control plane's own additions and the quota override above.
pub fn healing_of(code: Option<&str>, http_status: u16, modeled_retryable: bool) -> Healing {
    if code.is_some_and(|c| QUOTA_ERRORS.contains(&c)) {
        return Healing::Permanent;
    }
    let retryable_code = code.is_some_and(|c| {
        THROTTLING_ERRORS.contains(&c)
            || TRANSIENT_ERRORS.contains(&c)
            || PROJECT_TRANSIENT_ERRORS.contains(&c)
    });
    if retryable_code || modeled_retryable || http_status >= 500 {
        Healing::Transient
    } else {
        Healing::Permanent
    }
}

/// An SDK error reduced to what the control plane acts on: its code, its words, and whether it
/// may heal (see [`healing_of`]; network failures, timeouts and unreadable responses may heal).
/// `message` is AWS's code and message only, or a short sentence when AWS sent neither: it ends
/// up in STATUS reasons, where an SDK debug dump (or a raw response body) has no place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsFailure {
    pub code: Option<String>,
    pub message: String,
    pub healing: Healing,
}

impl AwsFailure {
    pub fn from_sdk<E, R>(error: &SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + ProvideErrorKind + std::error::Error + 'static,
        R: std::fmt::Debug + HttpStatus,
    {
        let code = ProvideErrorMetadata::code(error);
        let words = ProvideErrorMetadata::message(error);
        let (message, healing) = match error {
            SdkError::ServiceError(context) => {
                let status = context.raw().http_status();
                let modeled_retryable = context.err().retryable_error_kind().is_some();
                let message = match (code, words) {
                    (Some(code), Some(words)) => format!("{code}: {words}"),
                    (Some(code), None) => format!("{code} (HTTP {status}, no message)"),
                    (None, Some(words)) => format!("HTTP {status}: {words}"),
                    (None, None) => format!("HTTP {status} with no error code"),
                };
                (message, healing_of(code, status, modeled_retryable))
            }
            SdkError::TimeoutError(_) => ("the request timed out".to_owned(), Healing::Transient),
            SdkError::DispatchFailure(failure) => {
                let why = if failure.is_timeout() {
                    "a connection timeout"
                } else if failure.is_io() {
                    "a network error"
                } else {
                    "no connection or credentials"
                };
                (
                    format!("the request was not sent ({why})"),
                    Healing::Transient,
                )
            }
            SdkError::ResponseError(context) => (
                format!(
                    "the response (HTTP {}) could not be read",
                    context.raw().http_status()
                ),
                Healing::Transient,
            ),
            // A request the SDK refuses to build is refused the same way every time.
            SdkError::ConstructionFailure(_) => (
                "the request could not be built".to_owned(),
                Healing::Permanent,
            ),
            _ => ("the request failed".to_owned(), Healing::Transient),
        };
        if code.is_none() || words.is_none() {
            // The detail (an SDK error chain, maybe a response body) is for the logs only.
            tracing::warn!(error = %DisplayErrorContext(error), reason = %message, "AWS error without a code and message");
        }
        Self {
            code: code.map(str::to_owned),
            message,
            healing,
        }
    }
}

/// The status code of a raw HTTP response, whatever the SDK's response type.
pub trait HttpStatus {
    fn http_status(&self) -> u16;
}

impl HttpStatus for aws_sdk_cloudformation::config::http::HttpResponse {
    fn http_status(&self) -> u16 {
        self.status().as_u16()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudformation::config::http::HttpResponse;
    use aws_sdk_cloudformation::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_cloudformation::operation::describe_stacks::DescribeStacksError;
    use aws_smithy_types::body::SdkBody;

    type Error = SdkError<DescribeStacksError, HttpResponse>;

    fn answer(status: u16, body: &'static str) -> HttpResponse {
        HttpResponse::new(
            status.try_into().expect("a valid status"),
            SdkBody::from(body),
        )
    }

    fn service_error(code: Option<&str>, message: Option<&str>, status: u16) -> Error {
        let mut meta = ErrorMetadata::builder();
        if let Some(code) = code {
            meta = meta.code(code);
        }
        if let Some(message) = message {
            meta = meta.message(message);
        }
        SdkError::service_error(
            DescribeStacksError::generic(meta.build()),
            answer(status, ""),
        )
    }

    #[test]
    fn every_sdk_throttling_code_heals_except_the_quota() {
        for code in THROTTLING_ERRORS {
            let expected = if *code == "LimitExceededException" {
                Healing::Permanent
            } else {
                Healing::Transient
            };
            assert_eq!(healing_of(Some(code), 400, false), expected, "{code}");
        }
    }

    #[test]
    fn limit_exceeded_is_a_throttle_to_the_sdk_but_a_quota_here() {
        // The override exists because the SDK lists it; if the SDK stops, this says so.
        assert!(THROTTLING_ERRORS.contains(&"LimitExceededException"));
        assert_eq!(
            healing_of(Some("LimitExceededException"), 400, false),
            Healing::Permanent
        );
    }

    #[test]
    fn sdk_transient_codes_and_project_additions_heal() {
        for code in TRANSIENT_ERRORS.iter().chain(PROJECT_TRANSIENT_ERRORS) {
            assert_eq!(
                healing_of(Some(code), 400, false),
                Healing::Transient,
                "{code}"
            );
        }
        // STS answers AccessDenied with 403: the status does not make it permanent.
        assert_eq!(
            healing_of(Some("AccessDenied"), 403, false),
            Healing::Transient
        );
    }

    #[test]
    fn client_faults_are_permanent() {
        for (code, status) in [
            ("ValidationError", 400),
            ("InsufficientCapabilitiesException", 400),
            ("AlreadyExistsException", 400),
            ("RegionDisabledException", 403),
            ("ValidationException", 400),
            ("ConditionalCheckFailedException", 400),
            ("ResourceNotFoundException", 400),
        ] {
            assert_eq!(
                healing_of(Some(code), status, false),
                Healing::Permanent,
                "{code}"
            );
        }
        assert_eq!(healing_of(None, 400, false), Healing::Permanent);
    }

    #[test]
    fn server_faults_and_modeled_retryable_errors_heal() {
        assert_eq!(
            healing_of(Some("InternalFailure"), 500, false),
            Healing::Transient
        );
        assert_eq!(healing_of(None, 502, false), Healing::Transient);
        assert_eq!(healing_of(None, 503, false), Healing::Transient);
        // STS's IDPCommunicationError is modeled @retryable at HTTP 400.
        assert_eq!(
            healing_of(Some("IDPCommunicationError"), 400, true),
            Healing::Transient
        );
    }

    #[test]
    fn a_service_error_with_code_and_message_is_reported_as_both() {
        let failure = AwsFailure::from_sdk(&service_error(
            Some("ValidationError"),
            Some("Stack with id tenant-x does not exist"),
            400,
        ));
        assert_eq!(failure.code.as_deref(), Some("ValidationError"));
        assert_eq!(
            failure.message,
            "ValidationError: Stack with id tenant-x does not exist"
        );
        assert_eq!(failure.healing, Healing::Permanent);
    }

    #[test]
    fn an_answer_without_code_is_described_by_its_status_not_its_body() {
        // What a proxy in front of the service may send: no error the SDK can parse.
        let html = "<html><body><h1>502 Bad Gateway</h1></body></html>";
        let error: Error = SdkError::service_error(
            DescribeStacksError::unhandled("unparseable XML"),
            answer(502, html),
        );
        let failure = AwsFailure::from_sdk(&error);
        assert_eq!(failure.code, None);
        assert_eq!(failure.message, "HTTP 502 with no error code");
        assert_eq!(failure.healing, Healing::Transient);
    }

    #[test]
    fn a_code_without_message_is_kept_with_its_status() {
        let failure = AwsFailure::from_sdk(&service_error(Some("ThrottlingException"), None, 400));
        assert_eq!(
            failure.message,
            "ThrottlingException (HTTP 400, no message)"
        );
        assert_eq!(failure.healing, Healing::Transient);
    }

    #[test]
    fn failures_before_an_answer_are_short_sentences() {
        let timeout: Error = SdkError::timeout_error("operation timeout (all attempts) after 30s");
        let refused: Error = SdkError::dispatch_failure(ConnectorError::io(
            "tcp connect error: Connection refused (os error 111)".into(),
        ));
        let unbuildable: Error = SdkError::construction_failure("missing field `StackName`");
        let unreadable: Error = SdkError::response_error(
            "XML parse error: unexpected end of stream",
            answer(200, "<DescribeStacksResponse><DescribeStacksResul"),
        );
        let cases = [
            (timeout, "the request timed out", Healing::Transient),
            (
                refused,
                "the request was not sent (a network error)",
                Healing::Transient,
            ),
            (
                unbuildable,
                "the request could not be built",
                Healing::Permanent,
            ),
            (
                unreadable,
                "the response (HTTP 200) could not be read",
                Healing::Transient,
            ),
        ];
        for (error, message, healing) in cases {
            let failure = AwsFailure::from_sdk(&error);
            assert_eq!(
                (failure.message.as_str(), failure.healing),
                (message, healing)
            );
            assert_eq!(failure.code, None);
        }
    }
}
