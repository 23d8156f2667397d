//! The local system under test: a moto server of its own, the tenants table, the control plane
//! wired to it exactly as the Lambda functions are, and the Lambda-faithful stream poller reading
//! template.yaml's event source settings.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result};
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use controlplane::runtime::{ControlPlane, ControlPlaneConfig, ExternalIdKeySource};
use controlplane::stream::handle_batch;
use local::emulator::{Emulator, create_tenants_table, workspace_root};
use local::event_source::EventSourceSettings;
use local::stream_poller::{Invocation, PollerStats, StreamPoller};
use serde_json::Value;

pub const REGION: &str = "us-east-1";
pub const ROLE_NAME: &str = "TenantControlRole";

pub struct LocalSystem {
    pub emulator: Emulator,
    pub sdk: SdkConfig,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub table: String,
    pub stream_arn: String,
    pub plane: ControlPlane,
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
        let emulator = Emulator::start().await.context("starting moto server")?;
        let sdk = emulator.sdk_config(REGION).await;
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let table = "tenants".to_owned();
        let stream_arn = create_tenants_table(&dynamo, &table).await?;
        let mut config = ControlPlaneConfig::new(
            &table,
            ROLE_NAME,
            ExternalIdKeySource::Inline("local-test-key".into()),
            REGION,
        );
        // moto does not implement UpdateTerminationProtection (the fake covers that path).
        // moto finishes every operation at once: nothing is ever in flight (no re-check queue).
        config.termination_protection = false;
        let plane = ControlPlane::build(&sdk, &config).await?;
        Ok(Self {
            emulator,
            sdk,
            dynamo,
            table,
            stream_arn,
            plane,
        })
    }

    pub fn poller(&self) -> Result<StreamPoller> {
        Ok(StreamPoller::new(
            aws_sdk_dynamodbstreams_client(&self.sdk),
            &self.stream_arn,
            REGION,
            deployed_event_source()?,
        ))
    }

    /// Writes a SPEC row as automation would (`aws dynamodb put-item`): JSON → DynamoDB item.
    pub async fn put_spec(&self, row: Value) -> Result<()> {
        let item: HashMap<String, AttributeValue> = serde_dynamo::to_item(row)?;
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
            .table_name(&self.table)
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
        tenant_cloudformation(&self.plane, &self.sdk, account_id).await
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

fn aws_sdk_dynamodbstreams_client(sdk: &SdkConfig) -> aws_sdk_dynamodbstreams::Client {
    aws_sdk_dynamodbstreams::Client::new(sdk)
}

/// A stack's parameters as a map.
pub fn parameters(stack: &aws_sdk_cloudformation::types::Stack) -> BTreeMap<String, String> {
    controlplane::aws::cloudformation::parameters_of(stack)
}

/// CloudFormation in a tenant's account through the control plane's role and credentials cache.
pub async fn tenant_cloudformation(
    plane: &ControlPlane,
    sdk: &SdkConfig,
    account_id: &str,
) -> Result<aws_sdk_cloudformation::Client> {
    let credentials = plane
        .credentials
        .for_tenant(account_id, "test-inspector")
        .await?;
    Ok(aws_sdk_cloudformation::Client::from_conf(
        aws_sdk_cloudformation::config::Builder::from(sdk)
            .credentials_provider(credentials)
            .build(),
    ))
}
