//! Building the control plane's components from its configuration: shared by every Lambda's
//! `main.rs`, the API, the local system and the tests, so wiring lives in one place.

use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
/// The AWS SDK's shared configuration, as `sdk_config` loads it.
pub use aws_config::SdkConfig;
use aws_sdk_ssm::error::ProvideErrorMetadata;
use tracing_subscriber::EnvFilter;

use crate::aws::cloudformation::CloudFormationStacks;
use crate::aws::cloudwatch::CloudWatchAlarms;
use crate::aws::dynamodb::calls as table;
use crate::aws::dynamodb::{DynamoStore, Tables};
use crate::aws::s3::{S3TemplateObjects, TemplateBuckets};
use crate::aws::sns::SnsEvents;
use crate::aws::sqs::{SqsPreviewQueue, SqsRecheck};
use crate::aws::streams::DynamoStreams;
use crate::aws::sts::{ExternalIds, RoleCredentials};
use crate::aws::{Call, Resource};
use crate::metrics;
use crate::ports::{StreamRecords, TenantStore};
use crate::reconcile::Reconciler;
use crate::rollout::driver::RolloutDriver;
use crate::rollout::preview::{PreviewQueue, PreviewRunner};
use crate::template_source::{BundledTemplates, TableTemplates};
use crate::triggers::stream::StreamSettings;
use model::audit::DEFAULT_RETENTION_DAYS;

use crate::config::{ConfigError, ControlPlaneConfig, KeySource, parsed, tables_from_env, var};

/// The SDK configuration from the environment (AWS_ENDPOINT_URL points it at an emulator).
pub async fn sdk_config() -> SdkConfig {
    sdk_loader().load().await
}

/// What `sdk` lacks to call AWS (or an emulator) at all, each named by the variables that give
/// it: a region, credentials. Empty when it has both.
pub async fn missing_aws_settings(sdk: &SdkConfig) -> Vec<String> {
    use aws_sdk_dynamodb::config::ProvideCredentials;

    let mut missing = Vec::new();
    if sdk.region().is_none() {
        missing.push(
            "a region: set AWS_REGION or AWS_DEFAULT_REGION (e.g. us-east-1), or a profile's \
             region"
                .to_owned(),
        );
    }
    let credentials = match sdk.credentials_provider() {
        // The default chain ends with the instance metadata service, which may take seconds
        // to answer that it is not there.
        Some(provider) => {
            tokio::time::timeout(Duration::from_secs(10), provider.provide_credentials())
                .await
                .map_err(|_| "none found within 10 s".to_owned())
                .and_then(|found| found.map(|_| ()).map_err(|e| e.to_string()))
        }
        None => Err("no credentials provider".to_owned()),
    };
    if let Err(reason) = credentials {
        missing.push(format!(
            "credentials ({reason}): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or \
             AWS_PROFILE"
        ));
    }
    missing
}

/// The SDK's configuration loader, with one HTTPS client for every SDK client made from its
/// configuration. Without it each client (one per tenant account and region for CloudFormation)
/// builds its own connector: its own root certificate store (~50 KiB, parsed each time) and its
/// own connection pool.
pub fn sdk_loader() -> aws_config::ConfigLoader {
    sdk_loader_with(https_client())
}

/// The loader with a given HTTP client (the local system wraps [`https_client`]).
pub fn sdk_loader_with(
    http: aws_sdk_dynamodb::config::SharedHttpClient,
) -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest()).http_client(http)
}

/// The HTTPS client of every SDK client (rustls with aws-lc).
pub fn https_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .build_https()
}

/// The call of [`external_ids`] when the key is kept in SSM (as deployed).
pub const EXTERNAL_ID_KEY_CALLS: &[Call] =
    &[Call::new("ssm:GetParameter", Resource::ExternalIdKey)];

pub async fn external_ids(sdk: &SdkConfig, source: &KeySource) -> Result<ExternalIds, ConfigError> {
    Ok(ExternalIds::new(read_key(sdk, source).await?))
}

/// The call of [`read_key`] for the page-token key when it is kept in SSM (the API's).
pub const PAGE_TOKEN_KEY_CALLS: &[Call] = &[Call::new("ssm:GetParameter", Resource::PageTokenKey)];

/// A secret key, read once at start.
pub async fn read_key(sdk: &SdkConfig, source: &KeySource) -> Result<Vec<u8>, ConfigError> {
    match source {
        KeySource::Inline(key) => Ok(key.as_bytes().to_vec()),
        KeySource::SsmParameter(name) => {
            let output = aws_sdk_ssm::Client::new(sdk)
                .get_parameter()
                .name(name)
                .with_decryption(true)
                .send()
                .await
                .map_err(|e| ConfigError::Key {
                    name: name.clone(),
                    // The service's own code and words, not the SDK's whole debug dump.
                    reason: match (e.code(), e.message()) {
                        (Some(code), Some(message)) => format!("{code}: {message}"),
                        (Some(code), None) => code.to_owned(),
                        _ => aws_sdk_ssm::error::DisplayErrorContext(&e).to_string(),
                    },
                })?;
            let key = output
                .parameter()
                .and_then(|p| p.value())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| ConfigError::Key {
                    name: name.clone(),
                    reason: "the parameter has no value".into(),
                })?;
            Ok(key.as_bytes().to_vec())
        }
    }
}

/// The tenant accounts' role `role_name`, assumed with the ExternalId key of `source`, read
/// when a role is first assumed (a function that reaches no tenant account never reads it).
fn role_credentials(sdk: &SdkConfig, role_name: &str, source: &KeySource) -> RoleCredentials {
    let sts = aws_sdk_sts::Client::new(sdk);
    match source {
        KeySource::Inline(key) => {
            RoleCredentials::new(sts, role_name, ExternalIds::new(key.as_bytes().to_vec()))
        }
        KeySource::SsmParameter(_) => {
            let (sdk, source) = (sdk.clone(), source.clone());
            RoleCredentials::with_key_loader(
                sts,
                role_name,
                Box::new(move || {
                    let (sdk, source) = (sdk.clone(), source.clone());
                    Box::pin(
                        async move { external_ids(&sdk, &source).await.map_err(|e| e.to_string()) },
                    )
                }),
            )
        }
    }
}

/// Everything a function needs, built once per cold start.
pub struct ControlPlane {
    pub reconciler: Reconciler,
    /// The tenant table (the scheduled reconciler pages through it).
    pub store: Arc<dyn TenantStore>,
    pub stream: StreamSettings,
    pub credentials: Arc<RoleCredentials>,
    pub decommission_grace: Duration,
    /// The tenants table's stream, re-read by the on-failure consumer.
    pub stream_records: Arc<dyn StreamRecords>,
    /// Drift detection on tenants' stacks (the drift job's), and its pace.
    pub drift: Arc<dyn crate::ports::StackDrift>,
    pub drift_settings: crate::triggers::drift::DriftSettings,
}

impl ControlPlane {
    /// Logs, SDK configuration and settings from the environment: a function's whole cold start.
    pub async fn from_env() -> Result<Self, ConfigError> {
        init_logs();
        let sdk = sdk_config().await;
        let config = ControlPlaneConfig::from_env(&sdk)?;
        Self::build(&sdk, &config).await
    }

    pub async fn build(sdk: &SdkConfig, config: &ControlPlaneConfig) -> Result<Self, ConfigError> {
        let credentials = Arc::new(role_credentials(
            sdk,
            &config.tenant_role_name,
            &config.external_id_key,
        ));
        let table = Arc::new(
            DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), config.tables.clone())
                .with_audit_retention(config.audit_retention_days),
        );
        let store: Arc<dyn TenantStore> = table.clone();
        let templates = Arc::new(TableTemplates::new(
            table,
            Arc::new(S3TemplateObjects::new(sdk, config.template_buckets.clone())),
            BundledTemplates::sample()?,
        ));
        let stacks = Arc::new(CloudFormationStacks::new(
            sdk.clone(),
            credentials.clone(),
            config.termination_protection,
        ));
        let mut reconciler = Reconciler::new(
            store.clone(),
            stacks.clone(),
            templates,
            config.settings.clone(),
        )
        .with_drift(stacks.clone());
        if let Some(topic_arn) = &config.lifecycle_topic_arn {
            reconciler = reconciler.with_events(Arc::new(SnsEvents::new(
                aws_sdk_sns::Client::new(sdk),
                topic_arn.clone(),
            )));
        }
        if let Some(queue_url) = &config.recheck_queue_url {
            reconciler = reconciler.with_recheck(Arc::new(SqsRecheck::new(
                aws_sdk_sqs::Client::new(sdk),
                queue_url.clone(),
            )));
        }
        Ok(Self {
            reconciler,
            store,
            stream: config.stream.clone(),
            credentials,
            decommission_grace: config.decommission_grace,
            stream_records: Arc::new(DynamoStreams::new(aws_sdk_dynamodbstreams::Client::new(
                sdk,
            ))),
            drift: stacks,
            drift_settings: config.drift.clone(),
        })
    }
}

/// What the metrics job needs: the control-plane table (CONTROL_TABLE_NAME) and the stuck threshold
/// (STUCK_AFTER_MINUTES, default 60). It reaches no tenant account.
pub struct MetricsJob {
    pub store: Arc<dyn TenantStore>,
    pub stuck_after: Duration,
}

impl MetricsJob {
    pub async fn from_env() -> Result<Self, ConfigError> {
        init_logs();
        let sdk = sdk_config().await;
        let tables = tables_from_env()?;
        let minutes: u64 = parsed(
            "STUCK_AFTER_MINUTES",
            metrics::DEFAULT_STUCK_AFTER.as_secs() / 60,
        )?;
        Ok(Self::for_tables(
            &sdk,
            tables,
            Duration::from_secs(minutes.saturating_mul(60)),
        ))
    }

    pub fn for_tables(sdk: &SdkConfig, tables: Tables, stuck_after: Duration) -> Self {
        Self {
            store: Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), tables)),
            stuck_after,
        }
    }
}

/// What the API needs: the two tables (TABLE_NAME, CONTROL_TABLE_NAME) and the templates. It reaches no tenant
/// account and needs no ExternalId key.
pub struct ApiConfig {
    pub store: Arc<dyn TenantStore>,
    pub specs: Arc<dyn crate::ports::SpecStore>,
    pub templates: Arc<TableTemplates>,
    pub template_store: Arc<dyn crate::ports::TemplateStore>,
    /// CloudFormation's ValidateTemplate, for publishing versions.
    pub validator: Arc<dyn crate::ports::TemplateValidator>,
    /// Starts rollouts and takes their commands (it never steps them: the driver function does).
    pub rollouts: Arc<RolloutDriver>,
    /// Rollout previews as stored, and the preview function's queue (PREVIEW_QUEUE_URL; none:
    /// previews cannot be made).
    pub previews: Arc<dyn crate::ports::PreviewStore>,
    pub preview_queue: Option<Arc<dyn PreviewQueue>>,
    pub default_region: String,
    /// The key page tokens are signed with (PAGE_TOKEN_KEY_PARAMETER: an SSM SecureString, as
    /// the ExternalId key; PAGE_TOKEN_KEY: the key itself, local runs only). None: a key of the
    /// process's own (`tenantctl --direct`, whose tokens never leave it).
    pub page_token_key: Option<Vec<u8>>,
    /// TENANT_SELF_SERVICE_DELETE (default false): whether a tenant token may delete its own
    /// tenant, and with it the stack.
    pub tenant_self_delete: bool,
    /// PUBLISH_STARTS_ROLLOUT (off, plan, canary; default off): what publishing a new version
    /// starts by itself.
    pub on_publish: model::rollout::OnPublish,
}

impl ApiConfig {
    pub async fn from_env() -> Result<Self, ConfigError> {
        init_logs();
        let sdk = sdk_config().await;
        let buckets = TemplateBuckets::from_env(&region_of(&sdk)?)?;
        let mut config = Self::for_tables(&sdk, tables_from_env()?, &buckets)?;
        let key = match (var("PAGE_TOKEN_KEY_PARAMETER"), var("PAGE_TOKEN_KEY")) {
            (Some(name), _) => KeySource::SsmParameter(name),
            (None, Some(key)) => KeySource::Inline(key),
            (None, None) => return Err(ConfigError::Missing("PAGE_TOKEN_KEY_PARAMETER")),
        };
        config.page_token_key = Some(read_key(&sdk, &key).await?);
        Ok(config)
    }

    /// The same for tables named by the caller (`tenantctl --direct`), setting up no logging;
    /// AUDIT_RETENTION_DAYS and PREVIEW_QUEUE_URL are read as `from_env` reads them.
    pub fn for_tables(
        sdk: &SdkConfig,
        tables: Tables,
        buckets: &TemplateBuckets,
    ) -> Result<Self, ConfigError> {
        let default_region = region_of(sdk)?;
        let (store, templates) = table_and_templates(sdk, tables, buckets)?;
        let config = Self {
            store: store.clone(),
            specs: store.clone(),
            templates: templates.clone(),
            template_store: store.clone(),
            validator: Arc::new(crate::aws::cloudformation::CloudFormationValidator::new(
                sdk,
            )),
            rollouts: Arc::new(watching_alarms(
                sdk,
                RolloutDriver::new(store.clone(), store.clone(), store.clone(), templates),
            )),
            previews: store,
            preview_queue: None,
            default_region,
            page_token_key: None,
            tenant_self_delete: parsed("TENANT_SELF_SERVICE_DELETE", false)?,
            on_publish: match var("PUBLISH_STARTS_ROLLOUT") {
                None => Default::default(),
                Some(text) => {
                    model::rollout::OnPublish::parse(&text).ok_or_else(|| ConfigError::Invalid {
                        name: "PUBLISH_STARTS_ROLLOUT",
                        reason: format!(
                            "must be one of {}, got {text:?}",
                            model::rollout::OnPublish::NAMES.join(", ")
                        ),
                    })?
                }
            },
        };
        Ok(match var("PREVIEW_QUEUE_URL") {
            Some(url) => config.with_preview_queue(sdk, url),
            None => config,
        })
    }
}

impl ApiConfig {
    /// Previews queued on `queue_url` (the preview function's queue).
    pub fn with_preview_queue(mut self, sdk: &SdkConfig, queue_url: impl Into<String>) -> Self {
        self.preview_queue = Some(Arc::new(SqsPreviewQueue::new(
            aws_sdk_sqs::Client::new(sdk),
            queue_url,
        )));
        self
    }
}

/// What the rollout driver function needs: the two tables and the re-check
/// queue (RECHECK_QUEUE_URL) moved tenants are reconciled through. It reaches no tenant account.
pub struct RolloutJob {
    pub driver: RolloutDriver,
    /// How long one invocation keeps stepping (ROLLOUT_RUN_SECONDS, default 50) and how often
    /// (ROLLOUT_STEP_SECONDS, default 5).
    pub run_for: Duration,
    pub step_every: Duration,
}

impl RolloutJob {
    pub async fn from_env() -> Result<Self, ConfigError> {
        init_logs();
        let sdk = sdk_config().await;
        let queue_url =
            var("RECHECK_QUEUE_URL").ok_or(ConfigError::Missing("RECHECK_QUEUE_URL"))?;
        let buckets = TemplateBuckets::from_env(&region_of(&sdk)?)?;
        Ok(Self {
            driver: rollout_driver(&sdk, tables_from_env()?, &buckets, queue_url)?,
            run_for: Duration::from_secs(parsed("ROLLOUT_RUN_SECONDS", 50)?),
            step_every: Duration::from_secs(parsed("ROLLOUT_STEP_SECONDS", 5)?),
        })
    }
}

/// What the preview function needs: the two tables, the tenant accounts' preview role
/// (TENANT_PREVIEW_ROLE_NAME, reached as the reconcilers reach theirs: STS with the account's
/// ExternalId) and its own queue (PREVIEW_QUEUE_URL) for a preview's next run.
pub struct PreviewWorker {
    pub runner: PreviewRunner,
    pub queue: Arc<dyn PreviewQueue>,
}

impl PreviewWorker {
    pub async fn from_env() -> Result<Self, ConfigError> {
        init_logs();
        let sdk = sdk_config().await;
        let config = ControlPlaneConfig::from_env(&sdk)?;
        let queue_url =
            var("PREVIEW_QUEUE_URL").ok_or(ConfigError::Missing("PREVIEW_QUEUE_URL"))?;
        let preview_role = var("TENANT_PREVIEW_ROLE_NAME")
            .ok_or(ConfigError::Missing("TENANT_PREVIEW_ROLE_NAME"))?;
        Self::build(&sdk, &config, &preview_role, queue_url).await
    }

    /// With `preview_role`, the tenant accounts' change-set-only role (not `config`'s tenant
    /// role, which manages their stacks).
    pub async fn build(
        sdk: &SdkConfig,
        config: &ControlPlaneConfig,
        preview_role: &str,
        queue_url: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        let credentials = Arc::new(role_credentials(sdk, preview_role, &config.external_id_key));
        let (store, templates) =
            table_and_templates(sdk, config.tables.clone(), &config.template_buckets)?;
        Ok(Self {
            runner: PreviewRunner::new(
                store.clone(),
                store,
                Arc::new(CloudFormationStacks::new(
                    sdk.clone(),
                    credentials,
                    config.termination_protection,
                )),
                templates,
            ),
            queue: Arc::new(SqsPreviewQueue::new(
                aws_sdk_sqs::Client::new(sdk),
                queue_url,
            )),
        })
    }
}

/// The two tables (audit lines kept AUDIT_RETENTION_DAYS) and the template versions in the
/// control-plane table beside the shipped ones, their bodies in the template buckets.
fn table_and_templates(
    sdk: &SdkConfig,
    tables: Tables,
    buckets: &TemplateBuckets,
) -> Result<(Arc<DynamoStore>, Arc<TableTemplates>), ConfigError> {
    let audit_retention_days = parsed("AUDIT_RETENTION_DAYS", DEFAULT_RETENTION_DAYS)?;
    let store = Arc::new(
        DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), tables)
            .with_audit_retention(audit_retention_days),
    );
    let templates = Arc::new(TableTemplates::new(
        store.clone(),
        Arc::new(S3TemplateObjects::new(sdk, buckets.clone())),
        BundledTemplates::sample()?,
    ));
    Ok((store, templates))
}

/// The rollout driver on the tables `tables`, re-checking moved tenants through the queue
/// `recheck_queue_url`.
pub fn rollout_driver(
    sdk: &SdkConfig,
    tables: Tables,
    buckets: &TemplateBuckets,
    recheck_queue_url: impl Into<String>,
) -> Result<RolloutDriver, ConfigError> {
    let (store, templates) = table_and_templates(sdk, tables, buckets)?;
    Ok(watching_alarms(
        sdk,
        RolloutDriver::new(store.clone(), store.clone(), store, templates),
    )
    .with_recheck(Arc::new(SqsRecheck::new(
        aws_sdk_sqs::Client::new(sdk),
        recheck_queue_url.into(),
    ))))
}

/// Rollouts watching their CloudWatch alarms, and the deployment's (ROLLOUT_ALARMS,
/// comma-separated) besides.
fn watching_alarms(sdk: &SdkConfig, driver: RolloutDriver) -> RolloutDriver {
    let defaults = var("ROLLOUT_ALARMS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect();
    driver.with_alarms(
        Arc::new(CloudWatchAlarms::new(aws_sdk_cloudwatch::Client::new(sdk))),
        defaults,
    )
}

/// The AWS calls one Lambda function of template.yaml makes: those of the adapters it is wired
/// with above, with its own role, and through the tenant role in tenants' accounts. The
/// permission check holds them against template.yaml (and the tenant-account bootstrap); the
/// local system refuses any other call a function makes.
#[derive(Clone, Copy, Debug)]
pub struct FunctionCalls {
    /// The function's logical id in template.yaml.
    pub function: &'static str,
    pub own: &'static [&'static [Call]],
    /// Made with the tenant accounts' role that manages their stacks.
    pub through_tenant_role: &'static [&'static [Call]],
    /// Made with the tenant accounts' change-set-only preview role.
    pub through_preview_role: &'static [&'static [Call]],
}

impl FunctionCalls {
    /// Every call, its own and through the tenant accounts' roles.
    pub fn calls(&self) -> impl Iterator<Item = &'static Call> + '_ {
        self.own
            .iter()
            .chain(self.through_tenant_role)
            .chain(self.through_preview_role)
            .flat_map(|calls| calls.iter())
    }

    /// The declared calls of the function `function` (its logical id).
    pub fn of(function: &str) -> Option<&'static FunctionCalls> {
        FUNCTION_CALLS.iter().find(|f| f.function == function)
    }
}

/// The region the SDK is set up for (the control plane's own).
fn region_of(sdk: &SdkConfig) -> Result<String, ConfigError> {
    sdk.region()
        .map(|r| r.as_ref().to_owned())
        .ok_or(ConfigError::Missing("AWS_REGION"))
}

/// What [`ControlPlane`] calls for a reconcile: the tenant's rows and the template versions,
/// the tenant role, the ExternalId key, the re-check queue and the lifecycle topic.
const RECONCILE: &[&[Call]] = &[
    table::TENANT_READS,
    table::STATUS_WRITES,
    table::CURRENT_GUARD,
    table::TEMPLATE_READS,
    crate::aws::s3::READ_CALLS,
    crate::aws::sts::CALLS,
    EXTERNAL_ID_KEY_CALLS,
    crate::aws::sqs::RECHECK_CALLS,
    crate::aws::sns::CALLS,
];
/// Every reconcile may revert a drifted stack (a tenant whose drift policy is `revert`).
const TENANT_STACKS: &[&[Call]] = &[
    crate::aws::cloudformation::STACK_CALLS,
    crate::aws::cloudformation::DRIFT_REVERT_CALLS,
];

pub const FUNCTION_CALLS: &[FunctionCalls] = &[
    FunctionCalls {
        function: "StreamHandlerFunction",
        own: RECONCILE,
        through_tenant_role: TENANT_STACKS,
        through_preview_role: &[],
    },
    FunctionCalls {
        function: "CompletionFunction",
        own: RECONCILE,
        through_tenant_role: TENANT_STACKS,
        through_preview_role: &[],
    },
    FunctionCalls {
        function: "ReconcilerFunction",
        own: &[
            table::TENANT_READS,
            table::STATUS_WRITES,
            table::TEMPLATE_READS,
            crate::aws::s3::READ_CALLS,
            table::TENANT_PAGES,
            table::CURRENT_GUARD,
            crate::aws::sts::CALLS,
            EXTERNAL_ID_KEY_CALLS,
            crate::aws::sqs::RECHECK_CALLS,
            crate::aws::sns::CALLS,
        ],
        // The sweep, and the drift job (its second schedule).
        through_tenant_role: &[
            crate::aws::cloudformation::STACK_CALLS,
            crate::aws::cloudformation::DRIFT_REVERT_CALLS,
            crate::aws::cloudformation::DRIFT_DETECTION_CALLS,
        ],
        through_preview_role: &[],
    },
    FunctionCalls {
        function: "StreamFailuresFunction",
        own: &[
            table::TENANT_READS,
            table::STATUS_WRITES,
            table::TEMPLATE_READS,
            crate::aws::s3::READ_CALLS,
            crate::aws::streams::CALLS,
            table::CURRENT_GUARD,
            crate::aws::sts::CALLS,
            EXTERNAL_ID_KEY_CALLS,
            crate::aws::sqs::RECHECK_CALLS,
            crate::aws::sns::CALLS,
        ],
        through_tenant_role: TENANT_STACKS,
        through_preview_role: &[],
    },
    // Announces and removes (a writer's act): no tenant account is reached, so the ExternalId
    // key is never read either.
    FunctionCalls {
        function: "DecommissionFunction",
        own: &[
            table::TENANT_READS,
            table::STATUS_WRITES,
            table::TENANT_PAGES,
            table::SPEC_REMOVALS,
            crate::aws::sqs::RECHECK_CALLS,
            crate::aws::sns::CALLS,
        ],
        through_tenant_role: &[],
        through_preview_role: &[],
    },
    FunctionCalls {
        function: "MetricsFunction",
        own: &[table::BY_STATUS],
        through_tenant_role: &[],
        through_preview_role: &[],
    },
    FunctionCalls {
        function: "RolloutFunction",
        own: &[
            table::TENANT_READS,
            table::STATUS_WRITES,
            table::TEMPLATE_READS,
            crate::aws::s3::READ_CALLS,
            table::TEMPLATE_WRITES,
            table::TENANT_PAGES,
            table::ROLLOUT_ROWS,
            crate::aws::sqs::RECHECK_CALLS,
            crate::aws::cloudwatch::CALLS,
        ],
        through_tenant_role: &[],
        through_preview_role: &[],
    },
    FunctionCalls {
        function: "ApiFunction",
        own: &[
            table::TENANT_READS,
            table::REQUEST_LINES,
            table::SPEC_PAGES,
            table::UNINDEXED_PAGES,
            table::BY_STATUS,
            table::SPEC_WRITES,
            table::TEMPLATE_READS,
            crate::aws::s3::READ_CALLS,
            table::TEMPLATE_WRITES,
            crate::aws::s3::WRITE_CALLS,
            table::ROLLOUT_ROWS,
            table::IDEMPOTENCY,
            table::PREVIEW_ROWS,
            crate::aws::cloudformation::VALIDATOR_CALLS,
            crate::aws::sqs::PREVIEW_QUEUE_CALLS,
            crate::aws::cloudwatch::CALLS,
            PAGE_TOKEN_KEY_CALLS,
        ],
        through_tenant_role: &[],
        through_preview_role: &[],
    },
    FunctionCalls {
        function: "PreviewFunction",
        own: &[
            table::TENANT_READS,
            table::TEMPLATE_READS,
            crate::aws::s3::READ_CALLS,
            table::TENANT_PAGES,
            table::PREVIEW_ROWS,
            crate::aws::sts::PREVIEW_ROLE_CALLS,
            EXTERNAL_ID_KEY_CALLS,
            crate::aws::sqs::PREVIEW_QUEUE_CALLS,
        ],
        through_tenant_role: &[],
        through_preview_role: &[crate::aws::cloudformation::PREVIEW_CALLS],
    },
];

/// Runs a Lambda handler and flushes the metrics it recorded as EMF lines after each invocation.
pub use metrics_cloudwatch_embedded::lambda::handler::run as run_with_metrics;

/// The EMF recorder of a function (namespace METRICS_NAMESPACE); once per process.
pub fn init_metrics() -> Result<&'static metrics_cloudwatch_embedded::Collector, ConfigError> {
    let namespace = var("METRICS_NAMESPACE").unwrap_or_else(|| metrics::DEFAULT_NAMESPACE.into());
    let collector = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(namespace)
        .init()
        .map_err(|e| ConfigError::Invalid {
            name: "METRICS_NAMESPACE",
            reason: format!("cannot start the metrics recorder: {e}"),
        })?;
    metrics::describe();
    Ok(collector)
}

/// JSON logs for CloudWatch; inside a tenant's span every line carries `tenant_id`.
pub fn init_logs() {
    let filter = EnvFilter::try_from_env("LOG_LEVEL")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // A second init (tests) is harmless: keep the first subscriber.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .without_time()
        .try_init();
}
