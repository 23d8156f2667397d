//! The whole control plane on moto server, as `make up` runs it: the emulator, the table and
//! queues as template.yaml declares them, tenant accounts bootstrapped as a tenant would, the
//! stream handler behind the Lambda-faithful poller, and `GET /health` on the API port.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use api::auth::{LOCAL_API_TOKEN_KEY, LocalTokens};
use api::{ApiState, with_local_tokens};
use aws_config::SdkConfig;
use aws_sdk_cloudformation::types::{Capability, Parameter};
use aws_sdk_dynamodb::types::AttributeValue;
use axum::Router;
use axum::extract::State;
use controlplane::aws::dynamodb::Tables;
use controlplane::aws::s3::TemplateBuckets;
use controlplane::aws::sts::ExternalIds;
use controlplane::config::{ConfigError, ControlPlaneConfig, KeySource};
use controlplane::rollout::driver::RolloutDriver;
use controlplane::rollout::preview::handle_preview_messages;
use controlplane::triggers::completion::handle_rechecks;
use controlplane::triggers::decommission::decommission;
use controlplane::triggers::stream::handle_batch;
use controlplane::triggers::stream_failures::handle_stream_failures;
use controlplane::triggers::sweep::sweep;
use controlplane::wiring::{
    ApiConfig, ControlPlane, MetricsJob, PreviewWorker, read_key, rollout_driver,
};
use model::spec::{printable, reason_summary};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, warn};

use crate::backoff::IdleBackoff;
use crate::declared::{Declared, Deployment};
use crate::emulator::{
    Emulator, EmulatorError, EmulatorProcess, create_tables, port_holder, workspace_root,
};
use crate::event_source::{EventSourceError, EventSourceSettings};
use crate::iam::{IamPlan, Identities, widened};
use crate::sqs_poller::SqsPoller;
use crate::stream_poller::{Invocation, PollError, StreamPoller};

pub const BOOTSTRAP_TEMPLATE: &str =
    include_str!("../../../templates/tenant-account-bootstrap.yaml");
pub const BOOTSTRAP_STACK: &str = "tenant-control-plane-access";
/// A tenant account's administrator role (AWS Organizations' name for it).
pub const OWNER_ROLE: &str = "OrganizationAccountAccessRole";
pub use crate::iam::{CONTROL_PLANE_ACCOUNT, LOCAL_STACK_NAME};

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Emulator(#[from] EmulatorError),
    #[error(transparent)]
    Poll(#[from] PollError),
    #[error(transparent)]
    EventSource(#[from] EventSourceError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Setup(String),
}

fn setup(context: &str, error: impl std::fmt::Display) -> LocalError {
    LocalError::Setup(format!("{context}: {error}"))
}

/// What the local system runs with; `from_env` reads the documented variables.
#[derive(Clone, Debug)]
pub struct LocalConfig {
    /// LOCAL_AWS_PORT (4566): moto server.
    pub aws_port: u16,
    /// LOCAL_API_PORT (3000): the tenants API (and `/health`).
    pub api_port: u16,
    /// The key local API tokens are signed with (deployed, API Gateway's JWT authorizer
    /// verifies the identity provider's tokens instead).
    pub api_token_key: String,
    pub region: String,
    pub table: String,
    pub role_name: String,
    /// The tenant accounts' change-set-only role, for previews.
    pub preview_role_name: String,
    /// Local accounts bootstrapped as tenant accounts.
    pub tenant_accounts: Vec<String>,
    /// The ExternalId key (locally a fixed, documented value), kept in SSM as deployed.
    pub external_id_key: String,
    /// The stream poller's quickest pace: the pause after a poll that found nothing, when the
    /// last one found something (Lambda polls a shard about 4 times a second).
    pub poll_interval: Duration,
    /// The longest pause of the stream poller (and of `make up`'s live view) while nothing
    /// changes: the pause doubles from `poll_interval` up to this, so an idle system keeps
    /// neither moto nor itself busy, and a write is still seen within it.
    pub idle_poll_cap: Duration,
    /// How often the scheduled reconciler runs locally (deployed: every 5 minutes).
    pub sweep_interval: Duration,
    /// How often decommission runs locally (deployed: hourly), and its grace period (deployed:
    /// DECOMMISSION_GRACE_MINUTES, 7 days by default).
    pub decommission_interval: Duration,
    pub decommission_grace: Duration,
    /// How often the rollout driver steps the active rollout (deployed: every 5 s).
    pub rollout_interval: Duration,
    /// How often the drift job runs locally (deployed: hourly, checking each stack at most
    /// once per DRIFT_CHECK_INTERVAL_HOURS). moto answers drift detection with HTTP 500, so
    /// locally every check ends `not_checked` with that reason.
    pub drift_interval: Duration,
    /// LOCAL_IAM (default on; `off` to measure without): moto checks every call against the
    /// caller's IAM policies, as AWS does.
    pub enforce_iam: bool,
    /// Actions taken out of a function's role, by function logical id (negative controls).
    pub revoked: BTreeMap<String, BTreeSet<String>>,
}

/// Whether LOCAL_IAM leaves IAM enforcement on (anything but `off`).
pub fn iam_enforced_by_env() -> bool {
    std::env::var("LOCAL_IAM").map_or(true, |v| v != "off")
}

impl LocalConfig {
    pub fn from_env() -> Result<Self, LocalError> {
        let port = |name: &str, default: u16| -> Result<u16, LocalError> {
            match std::env::var(name) {
                Ok(text) if !text.is_empty() => text
                    .parse()
                    .map_err(|e| setup(&format!("{name}={text:?}"), e)),
                _ => Ok(default),
            }
        };
        Ok(Self {
            aws_port: port("LOCAL_AWS_PORT", 4566)?,
            api_port: port("LOCAL_API_PORT", 3000)?,
            ..Self::default()
        })
    }

    /// Takes `action` out of `function`'s role (a negative control).
    pub fn revoke(mut self, function: &str, action: &str) -> Self {
        self.revoked
            .entry(function.to_owned())
            .or_default()
            .insert(action.to_owned());
        self
    }

    /// template.yaml as the local system deploys it: its stack name, table, queues and topic.
    pub fn declared(&self, stream_arn: Option<&str>) -> Result<Declared, LocalError> {
        let template = std::fs::read_to_string(workspace_root().join("template.yaml"))
            .map_err(|e| setup("reading template.yaml", e))?;
        let mut deployment = Deployment::new(&self.region, CONTROL_PLANE_ACCOUNT, LOCAL_STACK_NAME);
        deployment
            .parameters
            .insert("TableName".into(), self.table.clone());
        deployment
            .parameters
            .insert("TenantRoleName".into(), self.role_name.clone());
        deployment.parameters.insert(
            "TenantPreviewRoleName".into(),
            self.preview_role_name.clone(),
        );
        deployment
            .parameters
            .insert("JwtIssuer".into(), "http://127.0.0.1/local".into());
        for (resource, name) in self.resource_names() {
            deployment.names.insert(resource.into(), name);
        }
        if let Some(stream_arn) = stream_arn {
            deployment
                .attributes
                .insert("TenantsTable.StreamArn".into(), stream_arn.to_owned());
        }
        Declared::parse(&template, deployment).map_err(|e| setup("template.yaml", e))
    }

    /// The two tables: `table` and its control-plane table, named as template.yaml names it.
    pub fn tables(&self) -> Tables {
        Tables::of(&self.table)
    }

    /// The template buckets: template.yaml's default names in the emulator's account, at home
    /// and in eu-west-1, where the demo's tenants are.
    pub fn template_buckets(&self) -> TemplateBuckets {
        TemplateBuckets::local(&self.region)
    }

    /// The names of the resources the local system creates, by logical id.
    fn resource_names(&self) -> [(&'static str, String); 7] {
        [
            (
                "TemplateBucket",
                self.template_buckets().bucket(&self.region),
            ),
            ("TenantsTable", self.table.clone()),
            ("ControlTable", self.tables().control),
            (
                "StreamFailureQueue",
                format!("{}-stream-failures", self.table),
            ),
            ("RecheckQueue", format!("{}-rechecks", self.table)),
            ("PreviewQueue", format!("{}-previews", self.table)),
            ("LifecycleTopic", format!("{}-lifecycle", self.table)),
        ]
    }
}

impl Default for LocalConfig {
    fn default() -> Self {
        Self {
            aws_port: 4566,
            api_port: 3000,
            region: "us-east-1".into(),
            table: "tenants".into(),
            role_name: "TenantControlRole".into(),
            preview_role_name: "TenantControlPreviewRole".into(),
            tenant_accounts: vec![
                "111111111111".into(),
                "222222222222".into(),
                "333333333333".into(),
            ],
            external_id_key: "local-development-key".into(),
            api_token_key: LOCAL_API_TOKEN_KEY.into(),
            poll_interval: Duration::from_millis(200),
            idle_poll_cap: Duration::from_secs(1),
            sweep_interval: Duration::from_secs(30),
            decommission_interval: Duration::from_secs(30),
            decommission_grace: Duration::from_secs(120),
            rollout_interval: Duration::from_secs(2),
            drift_interval: Duration::from_secs(60),
            enforce_iam: iam_enforced_by_env(),
            revoked: BTreeMap::new(),
        }
    }
}

/// The SSM parameter the local ExternalId key is kept in (template.yaml's default).
pub const EXTERNAL_ID_KEY_PARAMETER: &str = "/tenant-control-plane/external-id-key";
/// The SSM parameter the API's page-token key is kept in (template.yaml's default), and the
/// local key: documented, for local use only.
pub const PAGE_TOKEN_KEY_PARAMETER: &str = "/tenant-control-plane/page-token-key";
pub const LOCAL_PAGE_TOKEN_KEY: &str = "local-page-token-key";

/// Keeps a key in SSM as a SecureString, as an operator does before deploying.
async fn keep_secret(
    ssm: &aws_sdk_ssm::Client,
    name: &str,
    value: &str,
    what: &str,
) -> Result<(), LocalError> {
    ssm.put_parameter()
        .name(name)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            setup(
                &format!("keeping {what} in SSM"),
                aws_sdk_ssm::error::DisplayErrorContext(&e),
            )
        })
}

/// What the control plane's account holds before any function runs, created while moto still
/// accepts unauthenticated calls: the table, queues and topic as template.yaml declares them,
/// the ExternalId key in SSM, the tenant accounts bootstrapped by their owners, and the
/// identities (one role per function, the writer, the harness). IAM is then enforced.
pub struct Infrastructure {
    pub identities: Identities,
    /// The harness's configuration (an administrator: setup and inspection only).
    pub sdk: SdkConfig,
    pub stream_arn: String,
    pub failure_queue_url: String,
    pub recheck_queue_url: String,
    pub preview_queue_url: String,
    pub lifecycle_topic_arn: String,
}

impl Infrastructure {
    pub async fn create(emulator: &Emulator, config: &LocalConfig) -> Result<Self, LocalError> {
        let admin = emulator.sdk_config(&config.region).await;
        let dynamo = aws_sdk_dynamodb::Client::new(&admin);
        let stream_arn = create_tables(&dynamo, &config.tables()).await?;
        let names: BTreeMap<&str, String> = config.resource_names().into_iter().collect();
        let sqs = aws_sdk_sqs::Client::new(&admin);
        let failure_queue_url = create_queue(&sqs, &names["StreamFailureQueue"]).await?;
        // The completion loop's queue: operations in flight are re-checked through it.
        let recheck_queue_url = create_queue(&sqs, &names["RecheckQueue"]).await?;
        let preview_queue_url = create_queue(&sqs, &names["PreviewQueue"]).await?;
        create_template_buckets(&admin, &config.template_buckets()).await?;
        let lifecycle_topic_arn = aws_sdk_sns::Client::new(&admin)
            .create_topic()
            .name(&names["LifecycleTopic"])
            .send()
            .await
            .map_err(|e| {
                setup(
                    "creating the lifecycle topic",
                    aws_sdk_sns::error::DisplayErrorContext(&e),
                )
            })?
            .topic_arn
            .unwrap_or_default();
        let ssm = aws_sdk_ssm::Client::new(&admin);
        keep_secret(
            &ssm,
            EXTERNAL_ID_KEY_PARAMETER,
            &config.external_id_key,
            "the ExternalId key",
        )
        .await?;
        keep_secret(
            &ssm,
            PAGE_TOKEN_KEY_PARAMETER,
            LOCAL_PAGE_TOKEN_KEY,
            "the page-token key",
        )
        .await?;
        let external_ids = ExternalIds::new(config.external_id_key.as_bytes().to_vec());
        for account in &config.tenant_accounts {
            bootstrap_tenant_account(&admin, account, &external_ids, config).await?;
        }
        let declared = config.declared(Some(&stream_arn))?;
        let mut identities = Identities::create(
            &admin,
            IamPlan {
                declared: &declared,
                revoked: &config.revoked,
            },
        )
        .await?;
        if config.enforce_iam {
            identities.enforce().await?;
        }
        let sdk = identities.harness_sdk().await;
        Ok(Self {
            identities,
            sdk,
            stream_arn,
            failure_queue_url,
            recheck_queue_url,
            preview_queue_url,
            lifecycle_topic_arn,
        })
    }

    /// The control plane's settings as its reconciling functions get them locally.
    pub fn plane_config(&self, config: &LocalConfig) -> ControlPlaneConfig {
        let mut plane_config = ControlPlaneConfig::new(
            config.tables(),
            &config.role_name,
            KeySource::SsmParameter(EXTERNAL_ID_KEY_PARAMETER.into()),
            &config.region,
        );
        // moto does not implement UpdateTerminationProtection.
        plane_config.termination_protection = false;
        plane_config.recheck_queue_url = Some(self.recheck_queue_url.clone());
        plane_config.lifecycle_topic_arn = Some(self.lifecycle_topic_arn.clone());
        plane_config.decommission_grace = config.decommission_grace;
        plane_config.template_buckets = config.template_buckets();
        plane_config
    }

    /// A function of template.yaml wired as its Lambda main wires it, with its own role.
    pub async fn control_plane(
        &self,
        function: &str,
        config: &ControlPlaneConfig,
    ) -> Result<Arc<ControlPlane>, LocalError> {
        let sdk = self.identities.function_sdk(function).await?;
        Ok(Arc::new(ControlPlane::build(&sdk, config).await?))
    }
}

/// A running local system; `shutdown` (or drop) stops everything it started. Dropping it
/// fails (panics) if any function made a call it does not declare.
pub struct RunningSystem {
    pub emulator: Emulator,
    /// The harness's configuration: an administrator, for setup and inspection (no function
    /// runs with it).
    pub sdk: SdkConfig,
    pub identities: Identities,
    pub config: LocalConfig,
    /// The stream handler, as its function runs it.
    pub plane: Arc<ControlPlane>,
    /// The settings the reconciling functions run with here (`function_env`).
    pub plane_config: ControlPlaneConfig,
    /// The rollout driver the system runs (tests step or inspect rollouts through it).
    pub rollouts: Arc<RolloutDriver>,
    /// The metrics job's view of the table (its own role).
    pub metrics: Arc<MetricsJob>,
    pub stream_arn: String,
    pub failure_queue_url: String,
    pub preview_queue_url: String,
    /// The lifecycle events topic, as template.yaml declares it.
    pub lifecycle_topic_arn: String,
    pub api_addr: SocketAddr,
    /// Mints the bearer tokens the local API accepts (as admin, or as one tenant).
    pub tokens: LocalTokens,
    /// What each background function last met (`/health`).
    pub health: Health,
    /// Why moto server is gone for good, once it is (`emulator_gone`).
    gone: watch::Receiver<Option<String>>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningSystem {
    pub async fn start(config: LocalConfig) -> Result<Self, LocalError> {
        // The API port answers first (503 problem documents), and serves the API once
        // everything below is up.
        let api_router: Arc<OnceLock<Router>> = Arc::new(OnceLock::new());
        let api_addr = SocketAddr::from(([127, 0, 0, 1], config.api_port));
        let listener = tokio::net::TcpListener::bind(api_addr).await.map_err(|e| {
            let holder = port_holder(api_addr.port())
                .map(|h| format!("; pid {} holds it ({}): `kill {}`", h.pid, h.command, h.pid))
                .unwrap_or_default();
            setup(
                &format!(
                    "cannot listen on {api_addr} (set LOCAL_API_PORT to another port{holder})"
                ),
                e,
            )
        })?;
        let api_addr = listener.local_addr().map_err(|e| setup("api address", e))?;
        let health = Health::starting();
        let serving = Router::new()
            .route("/health", axum::routing::get(health_report))
            .method_not_allowed_fallback(|method: axum::http::Method| async move {
                api::problem::Problem::method_not_allowed(&method)
            })
            .with_state(health.clone())
            .fallback_service(
                Router::new()
                    .fallback(serve_when_ready)
                    .with_state(api_router.clone()),
            );
        let mut tasks = vec![tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, serving).await {
                warn!(error = %e, "API server stopped");
            }
        })];

        let emulator =
            Emulator::start_on_port(config.aws_port, "set LOCAL_AWS_PORT to another port").await?;
        let infrastructure = Infrastructure::create(&emulator, &config).await?;
        let (gone_sender, gone) = watch::channel(None);
        tasks.push(tokio::spawn(watch_emulator(
            EmulatorWatch {
                process: emulator.process(),
                endpoint: emulator.endpoint.clone(),
                log: emulator.log.display().to_string(),
                dynamo: aws_sdk_dynamodb::Client::new(&infrastructure.sdk),
                table: config.table.clone(),
            },
            health.clone(),
            gone_sender,
        )));
        let identities = &infrastructure.identities;
        let plane_config = infrastructure.plane_config(&config);
        let plane = infrastructure
            .control_plane("StreamHandlerFunction", &plane_config)
            .await?;

        // The event source mappings poll and send with their function's role.
        let stream_source = identities.event_source_sdk("StreamHandlerFunction").await?;
        let event_source = EventSourceSettings::from_template_file(
            &workspace_root().join("template.yaml"),
            "StreamHandlerFunction",
            "SpecChanges",
        )?;
        let poller = StreamPoller::new(
            aws_sdk_dynamodbstreams::Client::new(&stream_source),
            &infrastructure.stream_arn,
            &config.region,
            event_source,
        )
        .with_retry_delay(Duration::from_millis(500));
        tasks.push(tokio::spawn(run_poller(
            poller,
            plane.clone(),
            aws_sdk_sqs::Client::new(&stream_source),
            infrastructure.failure_queue_url.clone(),
            IdleBackoff::new(config.poll_interval, config.idle_poll_cap),
            health.clone(),
        )));

        let queue_arn = |queue: &str| {
            format!(
                "arn:aws:sqs:{}:{CONTROL_PLANE_ACCOUNT}:{}-{queue}",
                config.region, config.table
            )
        };
        let completion = infrastructure
            .control_plane("CompletionFunction", &plane_config)
            .await?;
        tasks.push(tokio::spawn(run_sqs_function(
            SqsPoller::new(
                aws_sdk_sqs::Client::new(&identities.event_source_sdk("CompletionFunction").await?),
                &infrastructure.recheck_queue_url,
                queue_arn("rechecks"),
                &config.region,
            ),
            "rechecks",
            health.clone(),
            move |event: Value| {
                let plane = completion.clone();
                async move { handle_rechecks(&plane.reconciler, &plane.stream, &event).await }
            },
        )));

        let consumer = infrastructure
            .control_plane("StreamFailuresFunction", &plane_config)
            .await?;
        tasks.push(tokio::spawn(run_sqs_function(
            SqsPoller::new(
                aws_sdk_sqs::Client::new(
                    &identities
                        .event_source_sdk("StreamFailuresFunction")
                        .await?,
                ),
                &infrastructure.failure_queue_url,
                queue_arn("stream-failures"),
                &config.region,
            ),
            "stream-failures",
            health.clone(),
            move |event: Value| {
                let plane = consumer.clone();
                async move {
                    handle_stream_failures(
                        &plane.reconciler,
                        plane.stream_records.as_ref(),
                        &plane.stream,
                        &event,
                    )
                    .await
                }
            },
        )));

        let preview = Arc::new(
            PreviewWorker::build(
                &identities.function_sdk("PreviewFunction").await?,
                &plane_config,
                &config.preview_role_name,
                &infrastructure.preview_queue_url,
            )
            .await?,
        );
        tasks.push(tokio::spawn(run_sqs_function(
            SqsPoller::new(
                aws_sdk_sqs::Client::new(&identities.event_source_sdk("PreviewFunction").await?),
                &infrastructure.preview_queue_url,
                queue_arn("previews"),
                &config.region,
            ),
            "previews",
            health.clone(),
            move |event: Value| {
                let preview = preview.clone();
                async move {
                    // Deployed, a run has the function's 15 minutes; locally a few seconds,
                    // so a long preview shows its rounds.
                    let until = tokio::time::Instant::now() + Duration::from_secs(5);
                    handle_preview_messages(&preview.runner, preview.queue.as_ref(), &event, until)
                        .await
                }
            },
        )));

        tasks.push(tokio::spawn(run_sweeps(
            infrastructure
                .control_plane("ReconcilerFunction", &plane_config)
                .await?,
            config.sweep_interval,
            health.clone(),
        )));
        tasks.push(tokio::spawn(run_drift(
            infrastructure
                .control_plane("ReconcilerFunction", &plane_config)
                .await?,
            config.drift_interval,
            health.clone(),
        )));
        tasks.push(tokio::spawn(run_decommission(
            infrastructure
                .control_plane("DecommissionFunction", &plane_config)
                .await?,
            config.decommission_interval,
            health.clone(),
        )));
        let rollouts = Arc::new(
            rollout_driver(
                &identities.function_sdk("RolloutFunction").await?,
                config.tables(),
                &config.template_buckets(),
                &infrastructure.recheck_queue_url,
            )
            .map_err(|e| setup("the rollout driver", e))?,
        );
        tasks.push(tokio::spawn(run_rollouts(
            rollouts.clone(),
            config.rollout_interval,
        )));
        let metrics = Arc::new(MetricsJob::for_tables(
            &identities.function_sdk("MetricsFunction").await?,
            config.tables(),
            controlplane::metrics::DEFAULT_STUCK_AFTER,
        ));

        let tokens = LocalTokens::new(config.api_token_key.as_bytes().to_vec());
        // The same wiring as the deployed API function.
        let api_sdk = identities.function_sdk("ApiFunction").await?;
        // The API reads its page-token key from SSM as deployed, with its own role.
        let mut api_config =
            ApiConfig::for_tables(&api_sdk, config.tables(), &config.template_buckets())
                .map_err(|e| setup("the API", e))?
                .with_preview_queue(&api_sdk, &infrastructure.preview_queue_url);
        api_config.page_token_key = Some(
            read_key(
                &api_sdk,
                &KeySource::SsmParameter(PAGE_TOKEN_KEY_PARAMETER.into()),
            )
            .await
            .map_err(|e| setup("the API's page-token key", e))?,
        );
        let api = api::router(ApiState::from(api_config));
        let _ = api_router.set(with_local_tokens(api, tokens.clone()));
        health.up();
        Ok(Self {
            emulator,
            sdk: infrastructure.sdk.clone(),
            identities: infrastructure.identities.clone(),
            config,
            plane,
            plane_config,
            rollouts,
            metrics,
            stream_arn: infrastructure.stream_arn.clone(),
            failure_queue_url: infrastructure.failure_queue_url.clone(),
            preview_queue_url: infrastructure.preview_queue_url.clone(),
            lifecycle_topic_arn: infrastructure.lifecycle_topic_arn.clone(),
            api_addr,
            tokens,
            health,
            gone,
            tasks,
        })
    }

    /// Resolves once moto server is gone for good, with why (its process exited, or it lost
    /// the table or the identities: reset, or replaced by another server): everything the
    /// system made lived in it, so nothing it does can work again. `/health` says so too.
    pub async fn emulator_gone(&self) -> String {
        let mut gone = self.gone.clone();
        let reason = match gone.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone(),
            Err(_) => None,
        };
        match reason {
            Some(reason) => reason,
            // The watch stopped (the system is stopping): never gone.
            None => std::future::pending().await,
        }
    }

    /// The environment a reconciling function (`function`, its logical id: the stream handler,
    /// the completion loop) reads here, by template.yaml's names, for running its binary by hand
    /// (`cargo lambda watch --env-file`); its handler (`_HANDLER`: which function the one binary
    /// runs) and timeout as template.yaml declares them.
    pub fn function_env(&self, function: &str) -> Result<Vec<(&'static str, String)>, LocalError> {
        let c = &self.plane_config;
        let external_id_key = match &c.external_id_key {
            KeySource::SsmParameter(name) => ("EXTERNAL_ID_KEY_PARAMETER", name.clone()),
            KeySource::Inline(key) => ("EXTERNAL_ID_KEY", key.clone()),
        };
        let mut env = vec![
            ("TABLE_NAME", c.tables.specs.clone()),
            ("CONTROL_TABLE_NAME", c.tables.control.clone()),
            ("TENANT_ROLE_NAME", c.tenant_role_name.clone()),
            external_id_key,
            (
                "TERMINATION_PROTECTION",
                c.termination_protection.to_string(),
            ),
            ("AUDIT_RETENTION_DAYS", c.audit_retention_days.to_string()),
            ("TEMPLATE_BUCKET_PREFIX", c.template_buckets.prefix.clone()),
            (
                "TEMPLATE_REGIONS",
                c.template_buckets
                    .regions
                    .iter()
                    .filter(|r| **r != c.template_buckets.home_region)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            (
                "TENANT_DEPLOY_ROLE_NAME",
                c.settings.deploy_role_name.clone(),
            ),
            ("LOG_LEVEL", "info".to_owned()),
        ];
        env.extend(
            c.recheck_queue_url
                .clone()
                .map(|url| ("RECHECK_QUEUE_URL", url)),
        );
        env.extend(
            c.lifecycle_topic_arn
                .clone()
                .map(|arn| ("LIFECYCLE_TOPIC_ARN", arn)),
        );
        let path = workspace_root().join("template.yaml");
        let template: serde_yaml_ng::Value = std::fs::read_to_string(&path)
            .map_err(|e| setup("reading template.yaml", e))
            .and_then(|text| {
                serde_yaml_ng::from_str(&text).map_err(|e| setup("parsing template.yaml", e))
            })?;
        // The one binary runs the function its Handler names, as Lambda passes it.
        let handler = template["Resources"][function]["Properties"]["Handler"]
            .as_str()
            .ok_or_else(|| {
                setup(
                    "reading template.yaml",
                    format!("{function} has no Handler"),
                )
            })?;
        env.push(("_HANDLER", handler.to_owned()));
        let declared = controlplane::deadline::declared_timeout(&template, function);
        env.extend(declared.stated.map(|seconds| {
            (
                controlplane::deadline::FUNCTION_TIMEOUT_VAR,
                seconds.to_string(),
            )
        }));
        Ok(env)
    }

    /// The table as the harness sees it (setup and inspection).
    pub fn dynamo(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk)
    }

    /// The table as the documented writer identity sees it (automation's put-item).
    pub async fn writer_dynamo(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.identities.writer_sdk().await)
    }

    /// Every STATUS row, by tenant id.
    pub async fn statuses(&self) -> Result<BTreeMap<String, Value>, LocalError> {
        let mut statuses = BTreeMap::new();
        let mut pages = self
            .dynamo()
            .scan()
            .table_name(&self.config.tables().control)
            .filter_expression("sk = :status")
            .expression_attribute_values(":status", AttributeValue::S("STATUS".into()))
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| {
                setup(
                    "scanning the table",
                    aws_sdk_dynamodb::error::DisplayErrorContext(&e),
                )
            })?;
            let row: Value =
                serde_dynamo::from_item(item).map_err(|e| setup("decoding STATUS", e))?;
            if let Some(tenant) = row["tenant_id"].as_str() {
                statuses.insert(tenant.to_owned(), row);
            }
        }
        Ok(statuses)
    }

    /// Waits until `done` holds for the statuses, or the time runs out (returning the last seen).
    pub async fn wait_for(
        &self,
        limit: Duration,
        done: impl Fn(&BTreeMap<String, Value>) -> bool,
    ) -> Result<BTreeMap<String, Value>, LocalError> {
        let started = Instant::now();
        loop {
            let statuses = self.statuses().await?;
            if done(&statuses) || started.elapsed() > limit {
                return Ok(statuses);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn shutdown(self) {
        for task in &self.tasks {
            task.abort();
        }
        drop(self);
    }
}

impl Drop for RunningSystem {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.identities.violations.fail_if_any();
    }
}

/// What each background function of the local system last met: it logs an error it cannot
/// get past and goes on, and `/health` says so.
#[derive(Clone, Default)]
pub struct Health {
    components: Arc<std::sync::Mutex<BTreeMap<&'static str, Option<Failing>>>>,
    /// Until the system is up (`up`): `/health` answers 503 `starting`.
    starting: Arc<std::sync::atomic::AtomicBool>,
}

/// A component's last error, since when (RFC 3339), and whether nothing can work meanwhile.
#[derive(Clone, Debug)]
struct Failing {
    error: String,
    since: String,
    down: bool,
}

/// The component `/health` names for moto server itself.
pub const EMULATOR_COMPONENT: &str = "emulator";

impl Health {
    /// A system that is starting: `starting` (503) until `up`.
    pub fn starting() -> Self {
        let health = Self::default();
        health
            .starting
            .store(true, std::sync::atomic::Ordering::SeqCst);
        health
    }

    /// The system is up: components report from now on.
    pub fn up(&self) {
        self.starting
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// `component`'s last attempt failed with `error`: the system is degraded (other work goes
    /// on; `/health` still answers 200).
    pub fn failed(&self, component: &'static str, error: &str) {
        self.set_failing(component, error, false);
    }

    /// `component` is failing and nothing can work meanwhile (moto server gone or not
    /// answering): `/health` answers 503.
    pub fn down(&self, component: &'static str, error: &str) {
        self.set_failing(component, error, true);
    }

    fn set_failing(&self, component: &'static str, error: &str, down: bool) {
        let mut components = self.components.lock().unwrap_or_else(|p| p.into_inner());
        // Since the first failure of a run of them.
        let since = match components.get(component) {
            Some(Some(failing)) if failing.down == down => failing.since.clone(),
            _ => chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        components.insert(
            component,
            Some(Failing {
                error: error.to_owned(),
                since,
                down,
            }),
        );
    }

    /// `component`'s last attempt succeeded.
    pub fn ok(&self, component: &'static str) {
        self.components
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(component, None);
    }

    /// `{"status": "starting" | "ok" | "degraded" | "down", "components": {name: {"status",
    /// "error", "since"}}}`: `down` when a component that everything needs is failing (moto
    /// server).
    pub fn report(&self) -> Value {
        let components = self
            .components
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let failing = || components.values().flatten();
        let status = if self.starting.load(std::sync::atomic::Ordering::SeqCst) {
            "starting"
        } else if failing().any(|f| f.down) {
            "down"
        } else if failing().next().is_some() {
            "degraded"
        } else {
            "ok"
        };
        let detail: serde_json::Map<String, Value> = components
            .iter()
            .map(|(name, state)| {
                let value = match state {
                    None => json!({"status": "ok"}),
                    Some(Failing { error, since, .. }) => {
                        json!({"status": "failing", "error": error, "since": since})
                    }
                };
                ((*name).to_owned(), value)
            })
            .collect();
        json!({"status": status, "components": detail})
    }
}

/// 200 while the system works (`ok`, or `degraded`: some function fails, the rest goes on);
/// 503 while it is `starting` and when it is `down`.
async fn health_report(
    State(health): State<Health>,
) -> (axum::http::StatusCode, axum::Json<Value>) {
    let report = health.report();
    let code = if report["status"] == "down" || report["status"] == "starting" {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    } else {
        axum::http::StatusCode::OK
    };
    (code, axum::Json(report))
}

/// How often the emulator watch looks at moto server's process (and every
/// `EMULATOR_PROBE_EVERY` times, calls it).
const EMULATOR_CHECK_INTERVAL: Duration = Duration::from_secs(1);
const EMULATOR_PROBE_EVERY: u64 = 2;
/// A probe moto server does not answer within this is a failure (it hangs, or is stopped).
const EMULATOR_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the emulator watch looks at.
struct EmulatorWatch {
    process: EmulatorProcess,
    endpoint: String,
    log: String,
    /// The harness's client: an administrator, as long as moto still knows it.
    dynamo: aws_sdk_dynamodb::Client,
    table: String,
}

/// What one probe of moto server found.
#[derive(Debug, PartialEq, Eq)]
enum Probe {
    Answers,
    /// Not answering (or not in time); it may come back (a stopped process, a slow machine).
    Down(String),
    /// Answering without the system's table or identities: reset, or another server.
    Lost(String),
}

/// Watches moto server for the system's life: `/health` turns `down` (503) within a couple of
/// seconds of it not answering, and back when it answers again. When it is gone for good (its
/// process exited, or it lost the table or the identities), `gone` says why and the watch
/// ends: the system does not re-create anything on a new emulator, because the tenants' rows
/// and stacks, the roles and the keys in `.local/` lived in the old one, and a silently empty
/// system would be worse than a stop (`make up` stops with the reason; docs/testing.md).
async fn watch_emulator(
    watched: EmulatorWatch,
    health: Health,
    gone: watch::Sender<Option<String>>,
) {
    let mut tick = tokio::time::interval(EMULATOR_CHECK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let pid = watched
        .process
        .pid()
        .map_or_else(|| "?".to_owned(), |p| p.to_string());
    let mut checks: u64 = 0;
    loop {
        tick.tick().await;
        checks += 1;
        let lost = if let Some(status) = watched.process.exited() {
            Some(format!(
                "moto server (pid {pid}) exited ({status}): the table, queues, stacks and \
                 identities lived in it and are lost (its log: {})",
                watched.log
            ))
        } else if checks.is_multiple_of(EMULATOR_PROBE_EVERY) {
            match probe(&watched).await {
                Probe::Answers => {
                    health.ok(EMULATOR_COMPONENT);
                    None
                }
                Probe::Down(reason) => {
                    warn!(%reason, "moto server does not answer");
                    health.down(EMULATOR_COMPONENT, &reason);
                    None
                }
                Probe::Lost(reason) => Some(reason),
            }
        } else {
            None
        };
        if let Some(reason) = lost {
            error!(%reason, "moto server is gone");
            health.down(EMULATOR_COMPONENT, &reason);
            let _ = gone.send(Some(reason));
            return;
        }
    }
}

async fn probe(watched: &EmulatorWatch) -> Probe {
    use aws_sdk_dynamodb::error::ProvideErrorMetadata;
    let call = watched
        .dynamo
        .describe_table()
        .table_name(&watched.table)
        .send();
    let endpoint = &watched.endpoint;
    match tokio::time::timeout(EMULATOR_PROBE_TIMEOUT, call).await {
        Err(_) => Probe::Down(format!(
            "moto server at {endpoint} does not answer (no reply within {}s)",
            EMULATOR_PROBE_TIMEOUT.as_secs()
        )),
        Ok(Ok(_)) => Probe::Answers,
        Ok(Err(e)) => {
            let lost = match e.code() {
                Some("ResourceNotFoundException") => Some(format!(
                    "the table {} is gone from moto server at {endpoint}",
                    watched.table
                )),
                // The harness is an administrator: refused, it no longer exists there.
                Some(
                    code @ ("UnrecognizedClientException"
                    | "InvalidClientTokenId"
                    | "AccessDeniedException"),
                ) => Some(format!(
                    "moto server at {endpoint} no longer knows the local identities ({code})"
                )),
                _ => None,
            };
            match lost {
                Some(what) => Probe::Lost(format!(
                    "{what}: it was reset or replaced, and what the system made in it is lost"
                )),
                None => Probe::Down(format!(
                    "moto server at {endpoint} fails: {}",
                    controlplane::aws::AwsFailure::from_sdk(&e).message
                )),
            }
        }
    }
}

/// The API once the system is up; until then every request gets 503.
async fn serve_when_ready(
    State(api): State<Arc<OnceLock<Router>>>,
    request: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    use tower::ServiceExt;
    match api.get() {
        Some(router) => match router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
        None => api::problem::Problem::unavailable("the local system is starting").into_response(),
    }
}

/// The stream poller on a loop, as the event source mapping runs; given-up batches go to the
/// OnFailure queue.
async fn run_poller(
    mut poller: StreamPoller,
    plane: Arc<ControlPlane>,
    sqs: aws_sdk_sqs::Client,
    failure_queue_url: String,
    mut pace: IdleBackoff,
    health: Health,
) {
    let invoke = move |event: Value| {
        let plane = plane.clone();
        as_lambda(async move {
            handle_batch(&plane.reconciler, &plane.stream, &event)
                .await
                .response
        })
    };
    loop {
        // Caught up (or failing): a longer pause each time, up to the cap. Records read: the
        // next poll at once (there may be more), at the quickest pace again if any reached
        // the function; records the filter drops (the rollout driver's lease, audit rows) do
        // not count as activity.
        let delivered_before = poller.stats().records_delivered;
        match poller.poll_once(&invoke).await {
            Ok(0) => {
                health.ok("stream-poller");
                tokio::time::sleep(pace.idle()).await
            }
            Ok(_) => {
                health.ok("stream-poller");
                if poller.stats().records_delivered > delivered_before {
                    pace.busy();
                }
            }
            Err(e) => {
                warn!(error = %e, "stream poll failed");
                health.failed("stream-poller", &e.to_string());
                tokio::time::sleep(pace.idle()).await;
            }
        }
        for message in poller.take_on_failure_messages() {
            if let Err(e) = sqs
                .send_message()
                .queue_url(&failure_queue_url)
                .message_body(message.to_string())
                .send()
                .await
            {
                let reason = controlplane::aws::AwsFailure::from_sdk(&e).message;
                warn!(error = %reason, "cannot send to the OnFailure queue");
                health.failed("stream-poller", &format!("OnFailure queue: {reason}"));
            }
        }
    }
}

/// Runs a handler as Lambda runs a function: in its own task, so a panic is a function error
/// (as a crashed Lambda), not the end of the poller; its response as JSON.
async fn as_lambda<R: serde::Serialize + Send + 'static>(
    handler: impl std::future::Future<Output = R> + Send + 'static,
) -> Invocation {
    match tokio::spawn(handler).await {
        Ok(response) => match serde_json::to_value(&response) {
            Ok(json) => Invocation::Response(json),
            Err(e) => Invocation::FunctionError(e.to_string()),
        },
        Err(e) => Invocation::FunctionError(format!("the function crashed: {e}")),
    }
}

/// A template bucket in each region, as template.yaml (home) and the per-region bucket
/// template (the others) create them.
async fn create_template_buckets(
    admin: &SdkConfig,
    buckets: &TemplateBuckets,
) -> Result<(), LocalError> {
    use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
    for region in &buckets.regions {
        let name = buckets.bucket(region);
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(admin)
                .region(aws_sdk_s3::config::Region::new(region.clone()))
                .force_path_style(true)
                .build(),
        );
        let mut create = s3.create_bucket().bucket(&name);
        // us-east-1 takes no location constraint; every other region needs its own.
        if region != "us-east-1" {
            create = create.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region.as_str()))
                    .build(),
            );
        }
        match create.send().await {
            Ok(_) => {}
            Err(e)
                if e.as_service_error().is_some_and(|e| {
                    e.is_bucket_already_owned_by_you() || e.is_bucket_already_exists()
                }) => {}
            Err(e) => {
                return Err(setup(
                    &format!("creating template bucket {name}"),
                    aws_sdk_s3::error::DisplayErrorContext(&e),
                ));
            }
        }
    }
    Ok(())
}

async fn create_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> Result<String, LocalError> {
    sqs.create_queue()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| {
            setup(
                &format!("creating queue {name}"),
                aws_sdk_sqs::error::DisplayErrorContext(&e),
            )
        })?
        .queue_url
        .ok_or_else(|| setup(&format!("creating queue {name}"), "no queue URL"))
}

/// The scheduled reconciler on its (shorter, local) schedule.
async fn run_sweeps(plane: Arc<ControlPlane>, interval: Duration, health: Health) {
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = sweep(
            plane.store.as_ref(),
            &plane.reconciler,
            plane.stream.concurrency,
        )
        .await
        {
            warn!(error = %e, "sweep failed");
            health.failed("reconciler", &e.to_string());
        } else {
            health.ok("reconciler");
        }
    }
}

/// The drift job on its (shorter, local) schedule: the reconciler's second schedule, deployed.
/// Locally each stack is due at every run (moto cannot detect drift; what is shown is that the
/// job runs and records why it could not).
async fn run_drift(plane: Arc<ControlPlane>, interval: Duration, health: Health) {
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    let settings = controlplane::triggers::drift::DriftSettings {
        interval,
        ..plane.drift_settings.clone()
    };
    loop {
        tick.tick().await;
        match controlplane::triggers::drift::drift_sweep(
            plane.store.as_ref(),
            plane.drift.clone(),
            &plane.reconciler,
            &settings,
        )
        .await
        {
            Ok(_) => health.ok("drift"),
            Err(e) => {
                warn!(error = %e, "drift job failed");
                health.failed("drift", &e.to_string());
            }
        }
    }
}

/// Decommission on its (shorter, local) schedule.
async fn run_decommission(plane: Arc<ControlPlane>, interval: Duration, health: Health) {
    let mut tick = tokio::time::interval(interval);
    loop {
        tick.tick().await;
        if let Err(e) = decommission(
            plane.store.as_ref(),
            &plane.reconciler,
            plane.decommission_grace,
            plane.stream.concurrency,
        )
        .await
        {
            warn!(error = %e, "decommission run failed");
            health.failed("decommission", &e.to_string());
        } else {
            health.ok("decommission");
        }
    }
}

/// The longest pause of the local rollout driver while no rollout is active.
pub const ROLLOUT_IDLE_CAP: Duration = Duration::from_secs(8);

/// The rollout driver, stepping the active rollout (deployed: a scheduled function that steps
/// every 5 s for 50 s each minute). While none is active it looks less often (every `interval`,
/// doubling up to `ROLLOUT_IDLE_CAP`): each look takes and releases its lease, two writes.
async fn run_rollouts(driver: Arc<RolloutDriver>, interval: Duration) {
    let mut pace = IdleBackoff::new(interval, ROLLOUT_IDLE_CAP.max(interval));
    loop {
        let pause = match driver.drive(Duration::from_secs(3600), interval).await {
            Some(_) => {
                pace.busy();
                interval
            }
            None => pace.idle(),
        };
        tokio::time::sleep(pause).await;
    }
}

/// A function behind its queue, as Lambda's SQS event source runs it.
async fn run_sqs_function<F, Fut, R>(
    poller: SqsPoller,
    queue: &'static str,
    health: Health,
    handler: F,
) where
    F: Fn(Value) -> Fut,
    Fut: std::future::Future<Output = R> + Send + 'static,
    R: serde::Serialize + Send + 'static,
{
    let invoke = |event: Value| as_lambda(handler(event));
    loop {
        match poller.poll_once(&invoke).await {
            Ok(_) => health.ok(queue),
            Err(e) => {
                warn!(error = %e, queue, "queue poll failed");
                health.failed(queue, &e);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Deploys the tenant-account bootstrap template in `account`, as the account's owner would.
pub async fn bootstrap_tenant_account(
    sdk: &SdkConfig,
    account: &str,
    external_ids: &ExternalIds,
    config: &LocalConfig,
) -> Result<(), LocalError> {
    // Locally, "being the account owner" is assuming the account's admin role (moto, still
    // unauthenticated, issues it before the role exists; it is created below).
    let issued = aws_sdk_sts::Client::new(sdk)
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/{OWNER_ROLE}"))
        .role_session_name("bootstrap")
        .send()
        .await
        .map_err(|e| {
            setup(
                "acting as the tenant account",
                aws_sdk_sts::error::DisplayErrorContext(&e),
            )
        })?
        .credentials
        .ok_or_else(|| setup("acting as the tenant account", "no credentials"))?;
    let owner = aws_sdk_cloudformation::config::Credentials::new(
        issued.access_key_id(),
        issued.secret_access_key(),
        Some(issued.session_token().to_owned()),
        None,
        "tenant-account-owner",
    );
    let cfn = aws_sdk_cloudformation::Client::from_conf(
        aws_sdk_cloudformation::config::Builder::from(sdk)
            .credentials_provider(owner.clone())
            .build(),
    );
    let parameters: BTreeMap<String, String> = [
        ("ControlPlaneAccountId", CONTROL_PLANE_ACCOUNT.to_owned()),
        ("ControlPlaneStackName", LOCAL_STACK_NAME.to_owned()),
        ("ExternalId", external_ids.for_account(account)),
        ("RoleName", config.role_name.clone()),
        ("PreviewRoleName", config.preview_role_name.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    cfn.create_stack()
        .stack_name(BOOTSTRAP_STACK)
        .template_body(BOOTSTRAP_TEMPLATE)
        .set_parameters(Some(
            parameters
                .iter()
                .map(|(key, value)| {
                    Parameter::builder()
                        .parameter_key(key)
                        .parameter_value(value)
                        .build()
                })
                .collect(),
        ))
        .capabilities(Capability::CapabilityNamedIam)
        .send()
        .await
        .map_err(|e| {
            setup(
                &format!("bootstrapping account {account}"),
                aws_sdk_cloudformation::error::DisplayErrorContext(&e),
            )
        })?;
    // moto keeps the inline policies of a role its CloudFormation created in a form its own IAM
    // check cannot read (every call made with the role then fails with HTTP 500): the owner
    // puts the same statements again through IAM, widened where moto matches no resource
    // (crate::iam).
    let mut deployment = Deployment::new(sdk_region(sdk), account, BOOTSTRAP_STACK);
    deployment.parameters = parameters;
    let declared = Declared::parse(BOOTSTRAP_TEMPLATE, deployment)
        .map_err(|e| setup("the bootstrap template", e))?;
    let iam = aws_sdk_iam::Client::from_conf(
        aws_sdk_iam::config::Builder::from(sdk)
            .credentials_provider(owner)
            .build(),
    );
    // The account's administrator role, as AWS Organizations creates it in member accounts:
    // the harness inspects tenant accounts through it (no function does).
    let owner_access = iam
        .create_role()
        .role_name(OWNER_ROLE)
        .assume_role_policy_document(
            json!({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Action": "sts:AssumeRole",
                "Principal": {"AWS": format!("arn:aws:iam::{CONTROL_PLANE_ACCOUNT}:root")}
            }]})
            .to_string(),
        )
        .send()
        .await;
    if let Err(e) = owner_access {
        return Err(setup(
            &format!("the owner's role in {account}"),
            aws_sdk_iam::error::DisplayErrorContext(&e),
        ));
    }
    iam.put_role_policy()
        .role_name(OWNER_ROLE)
        .policy_name("administrator")
        .policy_document(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
                .to_string(),
        )
        .send()
        .await
        .map_err(|e| {
            setup(
                &format!("the owner's role in {account}"),
                aws_sdk_iam::error::DisplayErrorContext(&e),
            )
        })?;
    for role in declared
        .roles()
        .map_err(|e| setup("the bootstrap template", e))?
    {
        for (name, statements) in &role.policies {
            iam.put_role_policy()
                .role_name(&role.name)
                .policy_name(name)
                .policy_document(widened(statements, &BTreeSet::new()).to_string())
                .send()
                .await
                .map_err(|e| {
                    setup(
                        &format!("the bootstrap role's policy in {account}"),
                        aws_sdk_iam::error::DisplayErrorContext(&e),
                    )
                })?;
        }
    }
    Ok(())
}

fn sdk_region(sdk: &SdkConfig) -> &str {
    sdk.region().map_or("us-east-1", |r| r.as_ref())
}

/// Demo tenants, the sample row of docs/table-contract.md first.
pub fn demo_rows() -> Vec<Value> {
    vec![
        json!({
            "pk": "TENANT#gs1234", "sk": "SPEC", "tenant_id": "gs1234", "account_id": "111111111111",
            "config": {"difficulty": "peaceful", "player_count": 5, "seed": "bailao9SheeSi1i"},
            "updated_by": "demo"
        }),
        json!({
            "pk": "TENANT#acme", "sk": "SPEC", "tenant_id": "acme", "account_id": "222222222222",
            "config": {"difficulty": "hard", "player_count": 12}, "updated_by": "demo"
        }),
        json!({
            "pk": "TENANT#globex", "sk": "SPEC", "tenant_id": "globex", "account_id": "333333333333",
            "region": "eu-west-1", "config": {"seed": "globex-world"}, "updated_by": "demo"
        }),
    ]
}

/// Writes a SPEC row as automation would.
pub async fn put_spec(
    dynamo: &aws_sdk_dynamodb::Client,
    table: &str,
    row: Value,
) -> Result<(), LocalError> {
    let item: HashMap<String, AttributeValue> = model::item_json::item_of_json(&row).into();
    dynamo
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .map_err(|e| {
            setup(
                "writing a row",
                aws_sdk_dynamodb::error::DisplayErrorContext(&e),
            )
        })?;
    Ok(())
}

/// One line of the live status view.
/// How much of a failure's reason the live view shows on its line.
const REASON_COLUMNS: usize = 160;

pub fn status_line(tenant: &str, row: &Value) -> String {
    let text = |v: &Value| printable(v.as_str().unwrap_or("-"));
    let detail = match row["status"].as_str() {
        // One line: the first errors and how many more (`tenantctl tenants get` shows all).
        Some("failed") => printable(&reason_summary(
            row["reason"].as_str().unwrap_or("-"),
            REASON_COLUMNS,
        )),
        // Sorted: an item's attributes come back in any order, and the line must not change
        // (and be printed again) for that.
        Some("ready") => row["outputs"]
            .as_object()
            .map(|o| {
                let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
                keys.sort_unstable();
                printable(&keys.join(", "))
            })
            .map(|keys| format!("outputs: {keys}"))
            .unwrap_or_default(),
        _ => text(&row["stack_status"]),
    };
    format!(
        "{:<16} {:<9} {:<12} {:<10} {detail}",
        printable(tenant),
        text(&row["status"]),
        text(&row["location"]["account_id"]),
        text(&row["location"]["region"]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_status_line_is_one_printable_line_whatever_the_reason() {
        let reason = format!(
            "invalid SPEC: {}",
            (0..300)
                .map(|i| format!("config.key{i}: template v1 has no parameter Key{i}"))
                .collect::<Vec<_>>()
                .join("; ")
        );
        let line = status_line(
            "acme",
            &json!({"status": "failed", "reason": reason, "location": {"account_id": "111111111111", "region": "us-east-1"}}),
        );
        assert!(line.chars().count() < 220, "{line}");
        assert!(
            line.contains("config.key0") && line.contains("more"),
            "{line}"
        );
        let line = status_line(
            "acme",
            &json!({"status": "failed", "reason": "got \"\u{1b}[2J\u{7}\"\nnext"}),
        );
        assert!(!line.chars().any(char::is_control), "{line:?}");
        assert!(line.contains("\\u{1b}[2J"), "{line}");
        // Whatever order the item's attributes came back in: one line.
        let outputs = ["JobsQueueUrl", "SettingsParameterName", "JobsQueueArn"];
        let lines: std::collections::BTreeSet<String> = (0..outputs.len())
            .map(|first| {
                let mut map = serde_json::Map::new();
                for key in outputs.iter().cycle().skip(first).take(outputs.len()) {
                    map.insert((*key).to_owned(), json!("x"));
                }
                status_line("acme", &json!({"status": "ready", "outputs": map}))
            })
            .collect();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines
                .iter()
                .all(|l| l.ends_with("outputs: JobsQueueArn, JobsQueueUrl, SettingsParameterName")),
            "{lines:?}"
        );
    }
}
