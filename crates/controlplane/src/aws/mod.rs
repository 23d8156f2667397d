//! The SDK adapters of the ports, and the classification of SDK errors.

pub mod cloudformation;
pub mod dynamodb;
pub mod sns;
pub mod sqs;
pub mod streams;
pub mod sts;

use aws_sdk_cloudformation::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::ports::Healing;

/// One AWS call an adapter makes: the IAM action it needs and what it acts on. Each adapter
/// lists its calls beside its code; each function's calls are those of the adapters it is
/// wired with ([`crate::runtime::FUNCTION_CALLS`]). The permission check (tests/iam_policies.rs)
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
    /// The tenants table.
    Table,
    /// The table's `tenants` index.
    TenantsIndex,
    /// The table's `by-status` index.
    ByStatusIndex,
    /// The table's stream.
    TableStream,
    /// The completion loop's re-check queue.
    RecheckQueue,
    /// The preview function's queue.
    PreviewQueue,
    /// The lifecycle events topic.
    LifecycleTopic,
    /// The SSM SecureString holding the ExternalId key.
    ExternalIdKey,
    /// The role every tenant account's bootstrap creates.
    TenantRole,
    /// A tenant's stack, reached through the tenant role (the bootstrap's grant).
    TenantStack,
    /// An action that takes no resource (IAM grants it on `*` only).
    Unscoped,
}

impl Call {
    pub const fn new(action: &'static str, on: Resource) -> Self {
        Self { action, on }
    }
}

/// Error codes AWS services use for failures that pass by themselves.
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "RequestThrottled",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalError",
    "InternalServerError",
    // Clock skew or a session that expired mid-flight: a fresh request succeeds.
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
    "IDPCommunicationError",
    // A role or its policy takes seconds to propagate after the tenant account creates it.
    "AccessDenied",
    "AccessDeniedException",
];

/// An SDK error reduced to what the control plane acts on: its code, its words, and whether it
/// may heal. Network failures, timeouts and 5xx responses may heal; so do throttling and
/// AccessDenied (see `TRANSIENT_CODES`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsFailure {
    pub code: Option<String>,
    pub message: String,
    pub healing: Healing,
}

impl AwsFailure {
    pub fn from_sdk<E, R>(error: &SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + HttpStatus,
    {
        let code = error.code().map(str::to_owned);
        let message = match (error.code(), error.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            _ => DisplayErrorContext(error).to_string(),
        };
        let healing = match error {
            SdkError::ServiceError(context) => {
                if context.raw().http_status() >= 500
                    || code
                        .as_deref()
                        .is_some_and(|c| TRANSIENT_CODES.contains(&c))
                {
                    Healing::Transient
                } else {
                    Healing::Permanent
                }
            }
            // Timeouts, dispatch (network) failures, unreadable responses, construction issues.
            _ => Healing::Transient,
        };
        Self {
            code,
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
