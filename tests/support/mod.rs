//! The local system under test: a moto server of its own, the tenants table, the control plane
//! wired to it exactly as the Lambda functions are, and the Lambda-faithful stream poller reading
//! template.yaml's event source settings.

use std::collections::{BTreeMap, HashMap};

use std::sync::Arc;

use anyhow::{Context, Result};
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use controlplane::config::ControlPlaneConfig;
use controlplane::triggers::stream::handle_batch;
use controlplane::wiring::ControlPlane;
use local::emulator::{Emulator, free_port, workspace_root};
use local::event_source::EventSourceSettings;
use local::stream_poller::{Invocation, PollerStats, StreamPoller};
use local::system::{Infrastructure, LocalConfig};
use serde_json::Value;

pub const REGION: &str = "us-east-1";
pub const ROLE_NAME: &str = "TenantControlRole";

/// The table, the tenant accounts and the functions' identities on a moto server of its own,
/// IAM enforced (LOCAL_IAM=off to measure without); the stream handler wired as its Lambda
/// function is, with its own role. Dropping it fails if any function made a call it does not
/// declare.
pub struct LocalSystem {
    pub emulator: Emulator,
    pub infrastructure: Infrastructure,
    /// The harness's configuration (an administrator: setup and inspection only).
    pub sdk: SdkConfig,
    /// The table as the documented writer identity sees it (automation's put-item).
    pub dynamo: aws_sdk_dynamodb::Client,
    pub table: String,
    pub stream_arn: String,
    /// The stream handler.
    pub plane: Arc<ControlPlane>,
    plane_config: ControlPlaneConfig,
}

/// The stream event settings of the stream handler, as deployed.
pub fn deployed_event_source() -> Result<EventSourceSettings> {
    Ok(EventSourceSettings::from_template_file(
        &workspace_root().join("template.yaml"),
        "StreamHandlerFunction",
        "SpecChanges",
    )?)
}

impl LocalSystem {
    pub async fn start() -> Result<Self> {
        Self::start_with(LocalConfig::default()).await
    }

    /// On `config` (its port is replaced by a free one).
    pub async fn start_with(config: LocalConfig) -> Result<Self> {
        let config = LocalConfig {
            aws_port: free_port()?,
            ..config
        };
        let emulator = Emulator::start_on(config.aws_port)
            .await
            .context("starting moto server")?;
        let infrastructure = Infrastructure::create(&emulator, &config).await?;
        let mut plane_config = infrastructure.plane_config(&config);
        // moto finishes every operation at once: nothing is ever in flight (no re-check queue),
        // and no test here reads lifecycle events.
        plane_config.recheck_queue_url = None;
        plane_config.lifecycle_topic_arn = None;
        let plane = infrastructure
            .control_plane("StreamHandlerFunction", &plane_config)
            .await?;
        Ok(Self {
            sdk: infrastructure.sdk.clone(),
            dynamo: aws_sdk_dynamodb::Client::new(&infrastructure.identities.writer_sdk().await),
            table: config.table.clone(),
            stream_arn: infrastructure.stream_arn.clone(),
            emulator,
            infrastructure,
            plane,
            plane_config,
        })
    }

    /// Another function of template.yaml (`ReconcilerFunction`, ...), with its own role.
    pub async fn function(&self, function: &str) -> Result<Arc<ControlPlane>> {
        Ok(self
            .infrastructure
            .control_plane(function, &self.plane_config)
            .await?)
    }

    /// The control-plane table (STATUS, the timeline).
    pub fn control_table(&self) -> String {
        controlplane::aws::dynamodb::Tables::of(&self.table).control
    }

    /// The table as the harness reads it (inspection).
    pub fn inspector(&self) -> controlplane::aws::dynamodb::DynamoStore {
        controlplane::aws::dynamodb::DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&self.sdk),
            controlplane::aws::dynamodb::Tables::of(&self.table),
        )
    }

    /// The stream handler's event source mapping (it reads the stream with the function's role).
    pub async fn poller(&self) -> Result<StreamPoller> {
        let source = self
            .infrastructure
            .identities
            .event_source_sdk("StreamHandlerFunction")
            .await?;
        Ok(StreamPoller::new(
            aws_sdk_dynamodbstreams_client(&source),
            &self.stream_arn,
            REGION,
            deployed_event_source()?,
        ))
    }

    /// Writes a SPEC row as automation would (`aws dynamodb put-item`): JSON → DynamoDB item.
    pub async fn put_spec(&self, row: Value) -> Result<()> {
        self.put_item(model::item_json::item_of_json(&row).into())
            .await
    }

    /// Writes `item` exactly as given (typed DynamoDB values) into the SPEC table, as the writer.
    pub async fn put_item(&self, item: HashMap<String, AttributeValue>) -> Result<()> {
        self.dynamo
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await?;
        Ok(())
    }

    pub async fn delete_spec(&self, tenant: &str) -> Result<()> {
        self.dynamo
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(format!("TENANT#{tenant}")))
            .key("sk", AttributeValue::S("SPEC".into()))
            .send()
            .await?;
        Ok(())
    }

    /// The STATUS row as plain JSON (`None` when absent).
    pub async fn status(&self, tenant: &str) -> Result<Option<Value>> {
        let output = self
            .dynamo
            .get_item()
            .table_name(self.control_table())
            .consistent_read(true)
            .key("pk", AttributeValue::S(format!("TENANT#{tenant}")))
            .key("sk", AttributeValue::S("STATUS".into()))
            .send()
            .await?;
        Ok(match output.item {
            Some(item) => Some(serde_dynamo::from_item(item)?),
            None => None,
        })
    }

    /// The handler as Lambda would invoke it.
    pub async fn invoke(&self, event: Value) -> Invocation {
        let report = handle_batch(&self.plane.reconciler, &self.plane.stream, &event).await;
        match serde_json::to_value(&report.response) {
            Ok(response) => Invocation::Response(response),
            Err(e) => Invocation::FunctionError(e.to_string()),
        }
    }

    pub async fn drain(&self, poller: &mut StreamPoller) -> Result<PollerStats> {
        Ok(poller.drain(&|event| self.invoke(event)).await?)
    }

    /// CloudFormation in a tenant's account, through its role, as the control plane reaches it.
    pub async fn tenant_cloudformation(
        &self,
        account_id: &str,
    ) -> Result<aws_sdk_cloudformation::Client> {
        tenant_cloudformation(&self.infrastructure.identities, account_id).await
    }

    /// The tenant's stack in its account, or `None`.
    pub async fn stack(
        &self,
        account_id: &str,
        tenant: &str,
    ) -> Result<Option<aws_sdk_cloudformation::types::Stack>> {
        let cfn = self.tenant_cloudformation(account_id).await?;
        match cfn
            .describe_stacks()
            .stack_name(format!("tenant-{tenant}"))
            .send()
            .await
        {
            Ok(output) => Ok(output
                .stacks
                .unwrap_or_default()
                .into_iter()
                .next()
                .filter(|s| s.stack_status().map(|s| s.as_str()) != Some("DELETE_COMPLETE"))),
            Err(e)
                if format!("{}", aws_sdk_cloudformation::error::DisplayErrorContext(&e))
                    .contains("does not exist") =>
            {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl Drop for LocalSystem {
    fn drop(&mut self) {
        self.infrastructure.identities.violations.fail_if_any();
    }
}

fn aws_sdk_dynamodbstreams_client(sdk: &SdkConfig) -> aws_sdk_dynamodbstreams::Client {
    aws_sdk_dynamodbstreams::Client::new(sdk)
}

/// A stack's parameters as a map.
pub fn parameters(stack: &aws_sdk_cloudformation::types::Stack) -> BTreeMap<String, String> {
    controlplane::aws::cloudformation::parameters_of(stack)
}

/// CloudFormation in a tenant's account, as the account's owner sees it (inspection only).
pub async fn tenant_cloudformation(
    identities: &local::iam::Identities,
    account_id: &str,
) -> Result<aws_sdk_cloudformation::Client> {
    Ok(aws_sdk_cloudformation::Client::new(
        &identities.tenant_account_owner_sdk(account_id).await,
    ))
}
