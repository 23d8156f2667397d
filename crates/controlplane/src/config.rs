//! The control plane's configuration: environment variables (names as in template.yaml) parsed
//! once at cold start into typed settings, with every bad value refused by name.

use std::time::Duration;

use aws_config::SdkConfig;

use crate::aws::dynamodb::Tables;
use crate::aws::s3::TemplateBuckets;
use crate::reconcile::Settings;
use crate::triggers::stream::StreamSettings;
use model::audit::DEFAULT_RETENTION_DAYS;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("cannot read the key in SSM parameter {name}: {reason}")]
    Key { name: String, reason: String },
    #[error(transparent)]
    Template(#[from] model::template::TemplateError),
}

pub const DEFAULT_DECOMMISSION_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);

/// The control plane's settings, from environment variables (names as in template.yaml).
#[derive(Clone, Debug)]
pub struct ControlPlaneConfig {
    /// TABLE_NAME and CONTROL_TABLE_NAME
    pub tables: Tables,
    /// TENANT_ROLE_NAME: the role each tenant account's bootstrap creates.
    pub tenant_role_name: String,
    /// EXTERNAL_ID_KEY_PARAMETER: SSM SecureString holding the ExternalId key (deployed), or
    /// EXTERNAL_ID_KEY: the key itself (local runs only).
    pub external_id_key: KeySource,
    pub settings: Settings,
    pub stream: StreamSettings,
    /// TERMINATION_PROTECTION (default true): false only on emulators lacking
    /// UpdateTerminationProtection (moto).
    pub termination_protection: bool,
    /// RECHECK_QUEUE_URL: the completion loop's queue (operations in flight are followed there).
    pub recheck_queue_url: Option<String>,
    /// LIFECYCLE_TOPIC_ARN: where lifecycle events are published.
    pub lifecycle_topic_arn: Option<String>,
    /// AUDIT_RETENTION_DAYS (default 90): how long audit items live (the table's TTL).
    pub audit_retention_days: u32,
    /// DECOMMISSION_GRACE_MINUTES (default 7 days): from the announcement of a decommission to
    /// the removal of the SPEC.
    pub decommission_grace: Duration,
    /// TEMPLATE_BUCKET_PREFIX and TEMPLATE_REGIONS: where published versions' bodies are.
    pub template_buckets: TemplateBuckets,
    /// DRIFT_CHECK_INTERVAL_HOURS (default 24) and DRIFT_CONCURRENCY (default 40): the drift
    /// job's pace.
    pub drift: crate::triggers::drift::DriftSettings,
}

/// Where a secret key is kept: an SSM SecureString (deployed), or the key itself (local runs).
#[derive(Clone)]
pub enum KeySource {
    SsmParameter(String),
    Inline(String),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SsmParameter(name) => f.debug_tuple("SsmParameter").field(name).finish(),
            Self::Inline(_) => f.write_str("Inline(<redacted>)"),
        }
    }
}

pub(crate) fn var(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

pub(crate) fn parsed<T: std::str::FromStr>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match var(name) {
        None => Ok(default),
        Some(text) => text.parse().map_err(|e: T::Err| ConfigError::Invalid {
            name,
            reason: e.to_string(),
        }),
    }
}

impl ControlPlaneConfig {
    /// The defaults of every setting, for the tables `tables` in `region`; the
    /// re-check queue and lifecycle topic are left out (set them to follow operations and
    /// publish events).
    pub fn new(
        tables: Tables,
        tenant_role_name: impl Into<String>,
        external_id_key: KeySource,
        region: impl Into<String>,
    ) -> Self {
        let region = region.into();
        Self {
            template_buckets: TemplateBuckets::local(&region),
            tables,
            tenant_role_name: tenant_role_name.into(),
            external_id_key,
            settings: Settings::new(region),
            stream: StreamSettings::default(),
            termination_protection: true,
            recheck_queue_url: None,
            lifecycle_topic_arn: None,
            audit_retention_days: DEFAULT_RETENTION_DAYS,
            decommission_grace: DEFAULT_DECOMMISSION_GRACE,
            drift: Default::default(),
        }
    }

    pub fn from_env(sdk: &SdkConfig) -> Result<Self, ConfigError> {
        let region = sdk
            .region()
            .map(|r| r.as_ref().to_owned())
            .ok_or(ConfigError::Missing("AWS_REGION"))?;
        let mut settings = Settings::new(region);
        if let Some(prefix) = var("STACK_NAME_PREFIX") {
            settings.stack_name_prefix = prefix;
        }
        settings.max_attempts = parsed("MAX_ATTEMPTS", settings.max_attempts)?;
        if let Some(role) = var("TENANT_DEPLOY_ROLE_NAME") {
            settings.deploy_role_name = role;
        }
        settings.requeue_after = Duration::from_secs(parsed(
            "REQUEUE_AFTER_SECONDS",
            settings.requeue_after.as_secs(),
        )?);
        if let Some(policy) = var("DRIFT_POLICY") {
            settings.drift_policy =
                model::drift::DriftPolicy::parse(&policy).ok_or_else(|| ConfigError::Invalid {
                    name: "DRIFT_POLICY",
                    reason: format!(
                        "must be one of {}, got {policy:?}",
                        model::drift::DriftPolicy::NAMES.join(", ")
                    ),
                })?;
        }
        let mut drift = crate::triggers::drift::DriftSettings::default();
        let hours: u64 = parsed(
            "DRIFT_CHECK_INTERVAL_HOURS",
            drift.interval.as_secs() / 3600,
        )?;
        drift.interval = Duration::from_secs(hours.saturating_mul(3600));
        drift.concurrency = parsed("DRIFT_CONCURRENCY", drift.concurrency)?.max(1);
        let mut stream = StreamSettings::default();
        stream.concurrency = parsed("TENANT_CONCURRENCY", stream.concurrency)?;
        settings.quick_retries = parsed("QUICK_RETRIES", settings.quick_retries)?;
        let minutes: u64 = parsed(
            "OPERATION_TIMEOUT_MINUTES",
            settings.operation_timeout.as_secs() / 60,
        )?;
        settings.operation_timeout = match minutes.checked_mul(60) {
            Some(seconds) if minutes >= 1 => Duration::from_secs(seconds),
            _ => {
                return Err(ConfigError::Invalid {
                    name: "OPERATION_TIMEOUT_MINUTES",
                    reason: format!("must be a number of minutes from 1, got {minutes}"),
                });
            }
        };
        let external_id_key = match (var("EXTERNAL_ID_KEY_PARAMETER"), var("EXTERNAL_ID_KEY")) {
            (Some(name), _) => KeySource::SsmParameter(name),
            (None, Some(key)) => KeySource::Inline(key),
            (None, None) => return Err(ConfigError::Missing("EXTERNAL_ID_KEY_PARAMETER")),
        };
        let template_buckets = TemplateBuckets::from_env(&settings.default_region)?;
        Ok(Self {
            tables: tables_from_env()?,
            tenant_role_name: var("TENANT_ROLE_NAME")
                .ok_or(ConfigError::Missing("TENANT_ROLE_NAME"))?,
            external_id_key,
            settings,
            stream,
            termination_protection: parsed("TERMINATION_PROTECTION", true)?,
            // Without it, operations in flight would never be looked at again.
            recheck_queue_url: Some(
                var("RECHECK_QUEUE_URL").ok_or(ConfigError::Missing("RECHECK_QUEUE_URL"))?,
            ),
            lifecycle_topic_arn: Some(
                var("LIFECYCLE_TOPIC_ARN").ok_or(ConfigError::Missing("LIFECYCLE_TOPIC_ARN"))?,
            ),
            audit_retention_days: parsed("AUDIT_RETENTION_DAYS", DEFAULT_RETENTION_DAYS)?,
            template_buckets,
            drift,
            decommission_grace: Duration::from_secs(
                parsed(
                    "DECOMMISSION_GRACE_MINUTES",
                    DEFAULT_DECOMMISSION_GRACE.as_secs() / 60,
                )?
                .saturating_mul(60),
            ),
        })
    }
}

/// TABLE_NAME (the SPEC table) and CONTROL_TABLE_NAME (the control-plane table).
pub(crate) fn tables_from_env() -> Result<Tables, ConfigError> {
    Ok(Tables {
        specs: var("TABLE_NAME").ok_or(ConfigError::Missing("TABLE_NAME"))?,
        control: var("CONTROL_TABLE_NAME").ok_or(ConfigError::Missing("CONTROL_TABLE_NAME"))?,
    })
}
