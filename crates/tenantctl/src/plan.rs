//! `tenantctl rollout plan`: what a rollout would change, tenant by tenant, from change sets
//! created (and deleted) in the tenants' accounts. It needs the control plane's own access to
//! those accounts (the tenant role and the ExternalId key), which the API deliberately lacks,
//! so it always runs directly, built as the control plane builds itself.

use std::sync::Arc;

use controlplane::aws::cloudformation::CloudFormationStacks;
use controlplane::rollout::Selection;
use controlplane::rollout_preview::{PreviewRequest, TenantPreview, preview_rollout};
use controlplane::runtime::{
    ApiConfig, ControlPlane, ControlPlaneConfig, ExternalIdKeySource, sdk_config,
};

use crate::failure::Failure;

/// Where the preview runs and what it looks at.
pub struct PlanRequest {
    pub target_version: String,
    pub selection: Selection,
    /// At most this many tenants; `None`: all.
    pub sample: Option<usize>,
    pub table: String,
    pub tenant_role: String,
    pub external_id_key: ExternalIdKeySource,
}

/// Previews the rollout with the AWS credentials of the environment.
pub async fn plan(request: PlanRequest) -> Result<Vec<TenantPreview>, Failure> {
    let sdk = sdk_config().await;
    let region = sdk
        .region()
        .map(|r| r.as_ref().to_owned())
        .ok_or_else(|| Failure::Other("rollout plan: set AWS_REGION".into()))?;
    let config = ControlPlaneConfig::new(
        request.table.clone(),
        request.tenant_role,
        request.external_id_key,
        region,
    );
    let plane = ControlPlane::build(&sdk, &config)
        .await
        .map_err(|e| Failure::Other(format!("rollout plan: {e}")))?;
    // The same templates (shipped and published) the API and the reconciler read.
    let templates = ApiConfig::for_table(&sdk, &request.table)
        .map_err(|e| Failure::Other(format!("rollout plan: {e}")))?
        .templates;
    let stacks = CloudFormationStacks::new(
        sdk.clone(),
        Arc::clone(&plane.credentials),
        config.termination_protection,
    );
    preview_rollout(
        PreviewRequest {
            target_version: &request.target_version,
            selection: &request.selection,
            sample: request.sample,
        },
        plane.store.as_ref(),
        &stacks,
        templates.as_ref(),
    )
    .await
    .map_err(|e| Failure::from(api::rollouts::rollout_problem(e)))
}
