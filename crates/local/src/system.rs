//! The whole control plane on moto server, as `make up` runs it: the emulator, the table and
//! queues as template.yaml declares them, tenant accounts bootstrapped as a tenant would, the
//! stream handler behind the Lambda-faithful poller, and `GET /health` on the API port.

use std::collections::{BTreeMap, HashMap};
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
use controlplane::aws::sts::ExternalIds;
use controlplane::completion::handle_rechecks;
use controlplane::decommission::decommission;
use controlplane::on_failure::handle_on_failure_records;
use controlplane::rollout_driver::RolloutDriver;
use controlplane::runtime::{
    ApiConfig, ConfigError, ControlPlane, ControlPlaneConfig, ExternalIdKeySource, rollout_driver,
};
use controlplane::stream::handle_batch;
use controlplane::sweep::sweep;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tracing::warn;

use crate::emulator::{Emulator, EmulatorError, create_tenants_table, workspace_root};
use crate::event_source::{EventSourceError, EventSourceSettings};
use crate::sqs_poller::SqsPoller;
use crate::stream_poller::{Invocation, PollError, StreamPoller};

pub const BOOTSTRAP_TEMPLATE: &str =
    include_str!("../../../templates/tenant-account-bootstrap.yaml");
pub const BOOTSTRAP_STACK: &str = "tenant-control-plane-access";
/// The account moto gives requests made with plain (non-assumed) credentials.
pub const CONTROL_PLANE_ACCOUNT: &str = "123456789012";

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
    /// Local accounts bootstrapped as tenant accounts.
    pub tenant_accounts: Vec<String>,
    /// The ExternalId key (locally a fixed, documented value; deployed, an SSM SecureString).
    pub external_id_key: String,
    pub poll_interval: Duration,
    /// How often the scheduled reconciler runs locally (deployed: every 5 minutes).
    pub sweep_interval: Duration,
    /// How often decommission runs locally (deployed: daily), and its grace period (deployed:
    /// DECOMMISSION_GRACE_MINUTES, 7 days by default).
    pub decommission_interval: Duration,
    pub decommission_grace: Duration,
    /// How often the rollout driver steps the active rollout (deployed: every 5 s).
    pub rollout_interval: Duration,
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
}

impl Default for LocalConfig {
    fn default() -> Self {
        Self {
            aws_port: 4566,
            api_port: 3000,
            region: "us-east-1".into(),
            table: "tenants".into(),
            role_name: "TenantControlRole".into(),
            tenant_accounts: vec![
                "111111111111".into(),
                "222222222222".into(),
                "333333333333".into(),
            ],
            external_id_key: "local-development-key".into(),
            api_token_key: LOCAL_API_TOKEN_KEY.into(),
            poll_interval: Duration::from_millis(200),
            sweep_interval: Duration::from_secs(30),
            decommission_interval: Duration::from_secs(30),
            decommission_grace: Duration::from_secs(120),
            rollout_interval: Duration::from_secs(2),
        }
    }
}

/// A running local system; `shutdown` (or drop) stops everything it started.
pub struct RunningSystem {
    pub emulator: Emulator,
    pub sdk: SdkConfig,
    pub config: LocalConfig,
    pub plane: Arc<ControlPlane>,
    /// The rollout driver the system runs (tests step or inspect rollouts through it).
    pub rollouts: Arc<RolloutDriver>,
    pub stream_arn: String,
    pub failure_queue_url: String,
    /// The lifecycle events topic, as template.yaml declares it.
    pub lifecycle_topic_arn: String,
    pub api_addr: SocketAddr,
    /// Mints the bearer tokens the local API accepts (as admin, or as one tenant).
    pub tokens: LocalTokens,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningSystem {
    pub async fn start(config: LocalConfig) -> Result<Self, LocalError> {
        // The API port answers first (503 problem documents), and serves the API once
        // everything below is up.
        let api_router: Arc<OnceLock<Router>> = Arc::new(OnceLock::new());
        let api_addr = SocketAddr::from(([127, 0, 0, 1], config.api_port));
        let listener = tokio::net::TcpListener::bind(api_addr).await.map_err(|e| {
            setup(
                &format!("cannot listen on {api_addr} (set LOCAL_API_PORT)"),
                e,
            )
        })?;
        let api_addr = listener.local_addr().map_err(|e| setup("api address", e))?;
        let serving = Router::new()
            .fallback(serve_when_ready)
            .with_state(api_router.clone());
        let mut tasks = vec![tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, serving).await {
                warn!(error = %e, "API server stopped");
            }
        })];

        let emulator = Emulator::start_on(config.aws_port).await?;
        let sdk = emulator.sdk_config(&config.region).await;
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let stream_arn = create_tenants_table(&dynamo, &config.table).await?;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let failure_queue_url =
            create_queue(&sqs, &format!("{}-stream-failures", config.table)).await?;
        // The completion loop's queue: operations in flight are re-checked through it.
        let recheck_queue_url = create_queue(&sqs, &format!("{}-rechecks", config.table)).await?;
        let lifecycle_topic_arn = aws_sdk_sns::Client::new(&sdk)
            .create_topic()
            .name(format!("{}-lifecycle", config.table))
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

        let external_ids = ExternalIds::new(config.external_id_key.as_bytes().to_vec());
        for account in &config.tenant_accounts {
            bootstrap_tenant_account(&sdk, account, &external_ids, &config.role_name).await?;
        }

        let mut plane_config = ControlPlaneConfig::new(
            &config.table,
            &config.role_name,
            ExternalIdKeySource::Inline(config.external_id_key.clone()),
            &config.region,
        );
        // moto does not implement UpdateTerminationProtection.
        plane_config.termination_protection = false;
        plane_config.recheck_queue_url = Some(recheck_queue_url.clone());
        plane_config.lifecycle_topic_arn = Some(lifecycle_topic_arn.clone());
        plane_config.decommission_grace = config.decommission_grace;
        let plane = Arc::new(ControlPlane::build(&sdk, &plane_config).await?);

        let event_source = EventSourceSettings::from_template_file(
            &workspace_root().join("template.yaml"),
            "StreamHandlerFunction",
            "SpecChanges",
        )?;
        let poller = StreamPoller::new(
            aws_sdk_dynamodbstreams::Client::new(&sdk),
            &stream_arn,
            &config.region,
            event_source,
        )
        .with_retry_delay(Duration::from_millis(500));
        tasks.push(tokio::spawn(run_poller(
            poller,
            plane.clone(),
            aws_sdk_sqs::Client::new(&sdk),
            failure_queue_url.clone(),
            config.poll_interval,
        )));

        let recheck_arn = format!(
            "arn:aws:sqs:{}:{CONTROL_PLANE_ACCOUNT}:{}-rechecks",
            config.region, config.table
        );
        let completion = plane.clone();
        tasks.push(tokio::spawn(run_sqs_function(
            SqsPoller::new(sqs.clone(), &recheck_queue_url, recheck_arn, &config.region),
            "rechecks",
            move |event: Value| {
                let plane = completion.clone();
                async move { handle_rechecks(&plane.reconciler, &plane.stream, &event).await }
            },
        )));

        let failure_arn = format!(
            "arn:aws:sqs:{}:{CONTROL_PLANE_ACCOUNT}:{}-stream-failures",
            config.region, config.table
        );
        let consumer = plane.clone();
        tasks.push(tokio::spawn(run_sqs_function(
            SqsPoller::new(sqs.clone(), &failure_queue_url, failure_arn, &config.region),
            "stream-failures",
            move |event: Value| {
                let plane = consumer.clone();
                async move {
                    handle_on_failure_records(
                        &plane.reconciler,
                        plane.stream_records.as_ref(),
                        &plane.stream,
                        &event,
                    )
                    .await
                }
            },
        )));

        tasks.push(tokio::spawn(run_sweeps(
            plane.clone(),
            config.sweep_interval,
        )));
        tasks.push(tokio::spawn(run_decommission(
            plane.clone(),
            config.decommission_interval,
        )));
        let rollouts = Arc::new(
            rollout_driver(&sdk, &config.table, &recheck_queue_url)
                .map_err(|e| setup("the rollout driver", e))?,
        );
        tasks.push(tokio::spawn(run_rollouts(
            rollouts.clone(),
            config.rollout_interval,
        )));

        let tokens = LocalTokens::new(config.api_token_key.as_bytes().to_vec());
        // The same wiring as the deployed API function.
        let api = api::router(ApiState::from(
            ApiConfig::for_table(&sdk, &config.table).map_err(|e| setup("the API", e))?,
        ));
        let _ = api_router.set(with_local_tokens(api, tokens.clone()));
        Ok(Self {
            emulator,
            sdk,
            config,
            plane,
            rollouts,
            stream_arn,
            failure_queue_url,
            lifecycle_topic_arn,
            api_addr,
            tokens,
            tasks,
        })
    }

    pub fn dynamo(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk)
    }

    /// Every STATUS row, by tenant id.
    pub async fn statuses(&self) -> Result<BTreeMap<String, Value>, LocalError> {
        let mut statuses = BTreeMap::new();
        let mut pages = self
            .dynamo()
            .scan()
            .table_name(&self.config.table)
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
    interval: Duration,
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
        match poller.poll_once(&invoke).await {
            Ok(0) => tokio::time::sleep(interval).await,
            Ok(_) => {}
            Err(e) => {
                warn!(error = %e, "stream poll failed");
                tokio::time::sleep(interval).await;
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
                warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "cannot send to the OnFailure queue");
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
async fn run_sweeps(plane: Arc<ControlPlane>, interval: Duration) {
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
        }
    }
}

/// Decommission on its (shorter, local) schedule.
async fn run_decommission(plane: Arc<ControlPlane>, interval: Duration) {
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
        }
    }
}

/// The rollout driver, stepping the active rollout (deployed: a scheduled function that steps
/// every 5 s for 50 s each minute).
async fn run_rollouts(driver: Arc<RolloutDriver>, interval: Duration) {
    loop {
        driver.drive(Duration::from_secs(3600), interval).await;
        tokio::time::sleep(interval).await;
    }
}

/// A function behind its queue, as Lambda's SQS event source runs it.
async fn run_sqs_function<F, Fut, R>(poller: SqsPoller, queue: &'static str, handler: F)
where
    F: Fn(Value) -> Fut,
    Fut: std::future::Future<Output = R> + Send + 'static,
    R: serde::Serialize + Send + 'static,
{
    let invoke = |event: Value| as_lambda(handler(event));
    loop {
        if let Err(e) = poller.poll_once(&invoke).await {
            warn!(error = %e, queue, "queue poll failed");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Deploys the tenant-account bootstrap template in `account`, as the account's owner would.
pub async fn bootstrap_tenant_account(
    sdk: &SdkConfig,
    account: &str,
    external_ids: &ExternalIds,
    role_name: &str,
) -> Result<(), LocalError> {
    // Locally, "being the account owner" is assuming the account's admin role.
    let issued = aws_sdk_sts::Client::new(sdk)
        .assume_role()
        .role_arn(format!(
            "arn:aws:iam::{account}:role/OrganizationAccountAccessRole"
        ))
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
    let credentials = aws_sdk_cloudformation::config::Credentials::new(
        issued.access_key_id(),
        issued.secret_access_key(),
        Some(issued.session_token().to_owned()),
        None,
        "tenant-account-owner",
    );
    let cfn = aws_sdk_cloudformation::Client::from_conf(
        aws_sdk_cloudformation::config::Builder::from(sdk)
            .credentials_provider(credentials)
            .build(),
    );
    let parameter = |key: &str, value: &str| {
        Parameter::builder()
            .parameter_key(key)
            .parameter_value(value)
            .build()
    };
    cfn.create_stack()
        .stack_name(BOOTSTRAP_STACK)
        .template_body(BOOTSTRAP_TEMPLATE)
        .parameters(parameter("ControlPlaneAccountId", CONTROL_PLANE_ACCOUNT))
        .parameters(parameter("ExternalId", &external_ids.for_account(account)))
        .parameters(parameter("RoleName", role_name))
        .capabilities(Capability::CapabilityNamedIam)
        .send()
        .await
        .map_err(|e| {
            setup(
                &format!("bootstrapping account {account}"),
                aws_sdk_cloudformation::error::DisplayErrorContext(&e),
            )
        })?;
    Ok(())
}

/// Demo tenants, the design notes' sample row first.
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
    let item: HashMap<String, AttributeValue> =
        serde_dynamo::to_item(row).map_err(|e| setup("encoding a row", e))?;
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
pub fn status_line(tenant: &str, row: &Value) -> String {
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let detail = match row["status"].as_str() {
        Some("failed") => text(&row["reason"]),
        Some("ready") => row["outputs"]
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>().join(", "))
            .map(|keys| format!("outputs: {keys}"))
            .unwrap_or_default(),
        _ => text(&row["stack_status"]),
    };
    format!(
        "{tenant:<16} {:<9} {:<12} {:<10} {detail}",
        text(&row["status"]),
        text(&row["location"]["account_id"]),
        text(&row["location"]["region"]),
    )
}
