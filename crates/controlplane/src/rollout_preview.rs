//! What a rollout would change, before it starts: a change set per tenant (a sample or all),
//! read and deleted. Nothing is updated.

use futures::StreamExt;
use serde::Serialize;

use crate::ports::{
    ChangePreviews, ResourceChange, StackRequest, StackTarget, TemplateSource, TenantStore,
};
use crate::reconcile::MANAGED_BY;
use crate::rollout::{Selection, member_order};
use crate::rollout_driver::RolloutError;
use crate::spec::{TenantKey, TenantSpec};
use crate::stack::{TAG_MANAGED_BY, TAG_TEMPLATE_VERSION, TAG_TENANT_ID};
use crate::status::TenantStatus;
use crate::validation::{Validation, validate};

/// One tenant's preview.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TenantPreview {
    pub tenant_id: String,
    pub from_version: String,
    pub changes: Vec<ResourceChange>,
    /// Why no preview could be made (no stack yet, config the version rejects, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl TenantPreview {
    /// Changes of each kind: added, modified in place, replaced, removed.
    pub fn summary(&self) -> (usize, usize, usize, usize) {
        let count =
            |f: &dyn Fn(&ResourceChange) -> bool| self.changes.iter().filter(|c| f(c)).count();
        (
            count(&|c| c.action == "Add"),
            count(&|c| c.action == "Modify" && c.replacement.as_deref() == Some("False")),
            count(&|c| {
                c.action == "Modify"
                    && matches!(c.replacement.as_deref(), Some("True" | "Conditional"))
            }),
            count(&|c| c.action == "Remove"),
        )
    }
}

/// What a rollout of `target_version` to `selection` would do.
pub struct PreviewRequest<'a> {
    pub target_version: &'a str,
    pub selection: &'a Selection,
    /// At most this many tenants, spread over the fleet; `None`: every one.
    pub sample: Option<usize>,
}

/// Previews the update of every tenant the rollout would move (or a sample).
pub async fn preview_rollout(
    request: PreviewRequest<'_>,
    tenants: &dyn TenantStore,
    previews: &dyn ChangePreviews,
    templates: &dyn TemplateSource,
) -> Result<Vec<TenantPreview>, RolloutError> {
    let unavailable = |e: String| RolloutError::Unavailable(e);
    let Some(template) = templates
        .get(request.target_version)
        .await
        .map_err(|e| unavailable(e.to_string()))?
    else {
        return Err(RolloutError::Invalid(vec![format!(
            "no template version {:?} is published",
            request.target_version
        )]));
    };
    let current = templates
        .current_version()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let mut keys: Vec<TenantKey> = crate::sweep::all_tenants(tenants).await?;
    // Spread the sample over the fleet, the same way every time.
    keys.sort_by_key(|k| member_order("preview", k.as_str()));
    let mut candidates = Vec::new();
    for key in keys {
        if request.sample.is_some_and(|n| candidates.len() >= n) {
            break;
        }
        let snapshot = tenants.load(&key).await?;
        let Some(item) = snapshot.spec.clone() else {
            continue;
        };
        let Ok(spec) = TenantSpec::parse(&key, &item) else {
            continue;
        };
        let from = snapshot
            .status
            .as_ref()
            .and_then(TenantStatus::fleet_version)
            .unwrap_or(&current)
            .to_owned();
        if spec.template_version.is_some()
            || from == request.target_version
            || !request
                .selection
                .selects("preview", key.as_str(), &spec.config)
        {
            continue;
        }
        candidates.push((key, item, snapshot.status, from));
    }
    let previews = futures::stream::iter(candidates)
        .map(|(key, item, status, from)| {
            let template = template.clone();
            async move {
                let result = preview_one(
                    &key,
                    &item,
                    status.as_ref(),
                    request.target_version,
                    &template,
                    previews,
                    templates,
                )
                .await;
                let (changes, error) = match result {
                    Ok(changes) => (changes, None),
                    Err(reason) => (Vec::new(), Some(reason)),
                };
                TenantPreview {
                    tenant_id: key.as_str().to_owned(),
                    from_version: from,
                    changes,
                    error,
                }
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    let mut previews = previews;
    previews.sort_by(|a, b| a.tenant_id.cmp(&b.tenant_id));
    Ok(previews)
}

async fn preview_one(
    key: &TenantKey,
    item: &serde_dynamo::Item,
    status: Option<&TenantStatus>,
    target_version: &str,
    template: &crate::template::Template,
    previews: &dyn ChangePreviews,
    templates: &dyn TemplateSource,
) -> Result<Vec<ResourceChange>, String> {
    let Some(location) = status.and_then(|s| s.location.clone()) else {
        return Err("the tenant has no stack yet".into());
    };
    let valid = match validate(key, item, Some(target_version), templates).await {
        Ok(Validation::Valid(valid)) => valid,
        Ok(Validation::Invalid(errors)) => {
            return Err(format!(
                "its config does not fit {target_version}: {}",
                crate::spec::describe_errors(&errors)
            ));
        }
        Err(e) => return Err(e.to_string()),
    };
    let target = StackTarget {
        tenant_id: key.as_str().to_owned(),
        location: location.clone(),
    };
    let request = StackRequest {
        template_body: template.body.clone(),
        auto_expand: template.expands_transforms(),
        parameters: valid.parameters,
        tags: vec![
            (TAG_TENANT_ID.into(), key.as_str().to_owned()),
            (TAG_MANAGED_BY.into(), MANAGED_BY.into()),
            (TAG_TEMPLATE_VERSION.into(), target_version.to_owned()),
        ],
        client_request_token: format!("{target_version}-{}", key.as_str()),
    };
    previews
        .preview(&target, &request)
        .await
        .map_err(|e| e.to_string())
}
