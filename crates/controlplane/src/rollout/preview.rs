//! What a rollout would change, before it starts: a change set per tenant (a sample or all),
//! read and deleted. Nothing is updated.
//!
//! A preview creates change sets in tenant accounts, so it runs server-side, as a job, in the
//! preview function (whose role the tenant accounts trust): the API stores a [`PreviewJob`]
//! and queues it, the function takes tenants in a spread order, records each tenant's preview
//! as it goes and, when its time runs out, queues the job again from where it stopped. Operators
//! never assume tenant roles. Running a job twice (a redelivered message) does no harm: it goes
//! on from the job's cursor, and a finished job is left as it is.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::ports::{
    ChangePreviews, PreviewStore, ResourceChange, StackRequest, StackTarget, StoreError,
    TemplateSource, TenantStore,
};
use crate::reconcile::{Clock, MANAGED_BY};
use crate::rollout::driver::RolloutError;
use crate::validation::{Validation, validate};
use model::rollout::{Selection, member_order};
use model::spec::{TenantKey, TenantSpec};
use model::stack::{TAG_MANAGED_BY, TAG_TEMPLATE_VERSION, TAG_TENANT_ID};
use model::status::TenantStatus;
use model::template::Template;
use model::time::rfc3339;

/// One tenant's preview.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantPreview {
    pub tenant_id: String,
    pub from_version: String,
    #[serde(default)]
    pub changes: Vec<ResourceChange>,
    /// Why no preview could be made (no stack yet, config the version rejects, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A preview's changes by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeCounts {
    pub added: usize,
    /// Modified in place (`Replacement: False`).
    pub modified: usize,
    /// Replaced (`Replacement: True`).
    pub replaced: usize,
    /// Modified, and perhaps replaced: `Replacement: Conditional`, or not reported at all (moto
    /// leaves it out), which must never read as "nothing changes".
    pub may_replace: usize,
    pub removed: usize,
}

impl TenantPreview {
    /// Changes of each kind: added, modified in place, replaced, perhaps replaced, removed.
    pub fn summary(&self) -> ChangeCounts {
        let mut counts = ChangeCounts::default();
        for change in &self.changes {
            match change.action.as_str() {
                "Add" => counts.added += 1,
                "Remove" => counts.removed += 1,
                // Modify, and any other action (Import, Dynamic): a change of unknown reach.
                _ => match change.replacement.as_deref() {
                    Some("False") => counts.modified += 1,
                    Some("True") => counts.replaced += 1,
                    _ => counts.may_replace += 1,
                },
            }
        }
        counts
    }
}

/// What a rollout of `target_version` to `selection` would do.
pub struct PreviewRequest<'a> {
    pub target_version: &'a str,
    pub selection: &'a Selection,
    /// At most this many tenants, spread over the fleet; `None`: every one.
    pub sample: Option<usize>,
}

/// Change sets computed at once, per preview.
const CONCURRENT_CHANGE_SETS: usize = 8;

/// The order tenants are previewed in: spread over the fleet, the same way every time.
fn preview_order(key: &TenantKey) -> String {
    member_order("preview", key.as_str())
}

/// A tenant the rollout would move, with what its preview needs.
struct Candidate {
    key: TenantKey,
    item: serde_dynamo::Item,
    status: Option<TenantStatus>,
    from: String,
}

/// The tenant as a candidate of the rollout `request` describes, or `None` when the rollout
/// would not move it (pinned, on the target already, not selected, no readable SPEC).
async fn candidate(
    key: TenantKey,
    request: &PreviewRequest<'_>,
    current: &str,
    tenants: &dyn TenantStore,
) -> Result<Option<Candidate>, StoreError> {
    let snapshot = tenants.load(&key).await?;
    let Some(item) = snapshot.spec else {
        return Ok(None);
    };
    let Ok(spec) = TenantSpec::parse(&key, &item) else {
        return Ok(None);
    };
    let from = snapshot
        .status
        .as_ref()
        .and_then(TenantStatus::fleet_version)
        .unwrap_or(current)
        .to_owned();
    if spec.template_version.is_some()
        || from == request.target_version
        || !request
            .selection
            .selects("preview", key.as_str(), &spec.config)
    {
        return Ok(None);
    }
    Ok(Some(Candidate {
        key,
        item,
        status: snapshot.status,
        from,
    }))
}

/// The target version's template, or `Invalid` when it is not published.
async fn target_template(
    target_version: &str,
    templates: &dyn TemplateSource,
) -> Result<Arc<Template>, RolloutError> {
    templates.get(target_version).await?.ok_or_else(|| {
        RolloutError::Invalid(vec![format!(
            "no template version {target_version:?} is published"
        )])
    })
}

/// Every tenant in preview order.
async fn tenants_in_order(
    tenants: &dyn TenantStore,
) -> Result<Vec<(String, TenantKey)>, StoreError> {
    let mut keys: Vec<(String, TenantKey)> = crate::triggers::sweep::all_tenants(tenants)
        .await?
        .into_iter()
        .map(|key| (preview_order(&key), key))
        .collect();
    keys.sort();
    Ok(keys)
}

/// The previews of `candidates`, a few change sets at a time, sorted by tenant. `run` names
/// this round's change sets (with the tenant): no two rounds, jobs or redeliveries share one.
async fn preview_candidates(
    candidates: Vec<Candidate>,
    run: &str,
    target_version: &str,
    template: &Template,
    previews: &dyn ChangePreviews,
    templates: &dyn TemplateSource,
) -> Vec<TenantPreview> {
    let mut done = futures::stream::iter(candidates)
        .map(|c| async move {
            let result = preview_one(
                &c.key,
                &c.item,
                c.status.as_ref(),
                run,
                target_version,
                template,
                previews,
                templates,
            )
            .await;
            let (changes, error) = match result {
                Ok(changes) => (changes, None),
                Err(reason) => (Vec::new(), Some(reason)),
            };
            TenantPreview {
                tenant_id: c.key.as_str().to_owned(),
                from_version: c.from,
                changes,
                error,
            }
        })
        .buffer_unordered(CONCURRENT_CHANGE_SETS)
        .collect::<Vec<_>>()
        .await;
    done.sort_by(|a, b| a.tenant_id.cmp(&b.tenant_id));
    done
}

#[allow(clippy::too_many_arguments)]
async fn preview_one(
    key: &TenantKey,
    item: &serde_dynamo::Item,
    status: Option<&TenantStatus>,
    run: &str,
    target_version: &str,
    template: &Template,
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
                model::spec::describe_errors(&errors)
            ));
        }
        Err(e) => return Err(e.to_string()),
    };
    let target = StackTarget {
        tenant_id: key.as_str().to_owned(),
        location: location.clone(),
    };
    let request = StackRequest {
        template: template.location(&location.region)?,
        // A change set of a stack uses the role associated with it (the deploy role).
        role_arn: None,
        auto_expand: template.expands_transforms(),
        parameters: valid.parameters,
        tags: vec![
            (TAG_TENANT_ID.into(), key.as_str().to_owned()),
            (TAG_MANAGED_BY.into(), MANAGED_BY.into()),
            (TAG_TEMPLATE_VERSION.into(), target_version.to_owned()),
        ],
        client_request_token: format!("{run}-{}", key.as_str()),
    };
    previews
        .preview(&target, &request)
        .await
        .map_err(|e| e.to_string())
}

// ------------------------------------------------------------------------------------------
// Preview jobs

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PreviewState {
    /// Stored and queued; the preview function has not started it.
    Pending,
    /// Some tenants are previewed; more to come.
    Running,
    Done,
    /// It cannot go on (the version is gone, or it could not be queued); `reason` says why.
    Failed,
}

impl PreviewState {
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Done | Self::Failed)
    }
}

/// A preview, as stored: what was asked, and how far it got (its tenants' previews are stored
/// beside it, one item each).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewJob {
    pub id: String,
    pub target_version: String,
    #[serde(default)]
    pub selection: Selection,
    /// At most this many tenants; `None`: every tenant the rollout would move.
    #[serde(default)]
    pub sample: Option<usize>,
    pub state: PreviewState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub requested_by: String,
    pub created_at: String,
    pub updated_at: String,
    /// The preview order of the last tenant looked at: the job goes on after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Tenants previewed so far (with or without an error).
    #[serde(default)]
    pub previewed: usize,
    /// Bumped on every write; each write is conditional on the version read.
    #[serde(default)]
    pub version: u64,
}

/// How long a preview and its tenants' previews are kept (the table's TTL removes them).
pub const PREVIEW_RETENTION: chrono::Duration = chrono::Duration::days(7);

/// The most tenants one preview may sample (`--all` has no bound: it runs as long as it needs).
pub const MAX_SAMPLE: usize = 1000;

/// A new preview job of `target_version`, pending.
pub fn new_job(
    now: DateTime<Utc>,
    target_version: &str,
    selection: Selection,
    sample: Option<usize>,
    requested_by: &str,
) -> Result<PreviewJob, RolloutError> {
    let mut problems = Vec::new();
    if let Some(n) = sample
        && !(1..=MAX_SAMPLE).contains(&n)
    {
        problems.push(format!(
            "sample must be from 1 to {MAX_SAMPLE} (omit it to preview every tenant), got {n}"
        ));
    }
    if let Err(reason) = model::spec::check_template_version(target_version) {
        problems.push(format!("target_version {reason}"));
    }
    if !problems.is_empty() {
        return Err(RolloutError::Invalid(problems));
    }
    let at = rfc3339(now);
    Ok(PreviewJob {
        id: super::unique_id("p", now, target_version, requested_by),
        target_version: target_version.to_owned(),
        selection,
        sample,
        state: PreviewState::Pending,
        reason: None,
        requested_by: requested_by.to_owned(),
        created_at: at.clone(),
        updated_at: at,
        cursor: None,
        previewed: 0,
        version: 1,
    })
}

/// How far one run of a job got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PreviewProgress {
    /// Done, failed, or finished before (a redelivered message).
    Finished(PreviewJob),
    /// Its time ran out: queue it again.
    Continue(PreviewJob),
}

/// Runs preview jobs: the preview function's work.
pub struct PreviewRunner {
    tenants: Arc<dyn TenantStore>,
    jobs: Arc<dyn PreviewStore>,
    previews: Arc<dyn ChangePreviews>,
    templates: Arc<dyn TemplateSource>,
    clock: Clock,
}

impl PreviewRunner {
    pub fn new(
        tenants: Arc<dyn TenantStore>,
        jobs: Arc<dyn PreviewStore>,
        previews: Arc<dyn ChangePreviews>,
        templates: Arc<dyn TemplateSource>,
    ) -> Self {
        Self {
            tenants,
            jobs,
            previews,
            templates,
            clock: Arc::new(Utc::now),
        }
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Writes the job (conditional on the version it was read at) and returns it as stored.
    async fn save(&self, mut job: PreviewJob) -> Result<PreviewJob, RolloutError> {
        let expected = job.version;
        job.version = expected.saturating_add(1);
        job.updated_at = rfc3339((self.clock)());
        self.jobs.put_preview(&job, expected).await?;
        Ok(job)
    }

    /// Ends preview `id` as failed with `reason` (a finished one is left as it is).
    pub async fn give_up(&self, id: &str, reason: &str) -> Result<(), RolloutError> {
        let Some(mut job) = self.jobs.preview(id).await? else {
            return Ok(());
        };
        if job.state.is_finished() {
            return Ok(());
        }
        job.state = PreviewState::Failed;
        job.reason = Some(reason.to_owned());
        self.save(job).await.map(|_| ())
    }

    /// Goes on with preview `id` until it is finished or `deadline` (a tokio instant) passes.
    pub async fn run(
        &self,
        id: &str,
        deadline: tokio::time::Instant,
    ) -> Result<PreviewProgress, RolloutError> {
        let Some(mut job) = self.jobs.preview(id).await? else {
            return Err(RolloutError::NotFound(id.to_owned()));
        };
        if job.state.is_finished() {
            return Ok(PreviewProgress::Finished(job));
        }
        let template = match target_template(&job.target_version, self.templates.as_ref()).await {
            Ok(template) => template,
            Err(RolloutError::Invalid(problems)) => {
                job.state = PreviewState::Failed;
                job.reason = Some(problems.join("; "));
                return Ok(PreviewProgress::Finished(self.save(job).await?));
            }
            Err(e) => return Err(e),
        };
        let current = self
            .templates
            .current_version()
            .await
            .map_err(|e| RolloutError::Unavailable(e.to_string()))?;
        let request = PreviewRequest {
            target_version: &job.target_version.clone(),
            selection: &job.selection.clone(),
            sample: job.sample,
        };
        let pending: Vec<(String, TenantKey)> = tenants_in_order(self.tenants.as_ref())
            .await?
            .into_iter()
            .filter(|(order, _)| job.cursor.as_ref().is_none_or(|cursor| order > cursor))
            .collect();
        job.state = PreviewState::Running;
        let mut pending = pending.into_iter().peekable();
        loop {
            let wanted = job.sample.map_or(CONCURRENT_CHANGE_SETS, |n| {
                n.saturating_sub(job.previewed).min(CONCURRENT_CHANGE_SETS)
            });
            if wanted == 0 || pending.peek().is_none() {
                job.state = PreviewState::Done;
                info!(preview = %job.id, previewed = job.previewed, "preview done");
                return Ok(PreviewProgress::Finished(self.save(job).await?));
            }
            // The next few candidates; the cursor moves past every tenant looked at.
            let mut chunk = Vec::new();
            let mut last = None;
            while chunk.len() < wanted {
                let Some((order, key)) = pending.next() else {
                    break;
                };
                last = Some(order);
                chunk.extend(candidate(key, &request, &current, self.tenants.as_ref()).await?);
            }
            let results = preview_candidates(
                chunk,
                &format!("{}-{}", job.id, job.version),
                &job.target_version,
                &template,
                self.previews.as_ref(),
                self.templates.as_ref(),
            )
            .await;
            // Stored before the cursor moves on: a crash between the two previews those
            // tenants again, overwriting the same items.
            self.jobs.put_preview_results(&job.id, &results).await?;
            job.previewed += results.len();
            if last.is_some() {
                job.cursor = last;
            }
            // At least one round per run, so every run moves the job on.
            if tokio::time::Instant::now() >= deadline && pending.peek().is_some() {
                info!(preview = %job.id, previewed = job.previewed, "preview continues in its next run");
                return Ok(PreviewProgress::Continue(self.save(job).await?));
            }
            job = self.save(job).await?;
        }
    }
}

/// Queues a preview job for the preview function (an SQS message naming it).
#[async_trait::async_trait]
pub trait PreviewQueue: Send + Sync {
    async fn queue(&self, preview_id: &str) -> Result<(), crate::ports::RecheckError>;
}

/// The body of a preview queue message: only the job (the rest is read from the table).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewMessage {
    pub preview_id: String,
}

/// Runs of one message the preview queue allows before its dead-letter queue takes it
/// (template.yaml's `maxReceiveCount`): the last one records the job failed rather than leave
/// it `running` for good.
pub const PREVIEW_RECEIVES: u32 = 5;

/// Handles one SQS event of preview messages: each job runs until done or `deadline`, then is
/// queued again; a job whose run failed is reported for redelivery, and ends failed, naming the
/// error, on its last receive.
pub async fn handle_preview_messages(
    runner: &PreviewRunner,
    queue: &dyn PreviewQueue,
    event: &serde_json::Value,
    deadline: tokio::time::Instant,
) -> aws_lambda_events::event::sqs::SqsBatchResponse {
    use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};
    let mut response = SqsBatchResponse::default();
    for message in crate::triggers::completion::sqs_messages(event) {
        let message_id = message.message_id.clone().unwrap_or_default();
        let named = message
            .body
            .as_deref()
            .and_then(|body| serde_json::from_str::<PreviewMessage>(body).ok());
        let Some(PreviewMessage { preview_id }) = named else {
            // Cannot heal: a redelivery would read the same body.
            warn!(
                message_id,
                "a preview message that names no preview; dropped"
            );
            continue;
        };
        let retry = match runner.run(&preview_id, deadline).await {
            Ok(PreviewProgress::Finished(_)) => false,
            Ok(PreviewProgress::Continue(_)) => match queue.queue(&preview_id).await {
                Ok(()) => false,
                Err(e) => {
                    warn!(preview = %preview_id, error = %e, "cannot queue the preview's next run");
                    true
                }
            },
            Err(RolloutError::NotFound(_)) => {
                warn!(preview = %preview_id, "no such preview; message dropped");
                false
            }
            // Another run wrote meanwhile, or the table or an account is unreachable: again,
            // until the queue's receives are spent.
            Err(e) => {
                let receives = message
                    .attributes
                    .get("ApproximateReceiveCount")
                    .and_then(|n| n.parse::<u32>().ok())
                    .unwrap_or(1);
                if receives < PREVIEW_RECEIVES {
                    warn!(preview = %preview_id, error = %e, receives, "preview run failed; it is retried");
                    true
                } else {
                    let reason = format!("gave up after {receives} runs: {e}");
                    warn!(preview = %preview_id, %reason, "preview failed");
                    // Not recorded: the message comes back (then the dead-letter queue).
                    runner.give_up(&preview_id, &reason).await.is_err()
                }
            }
        };
        if retry {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message_id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(action: &str, replacement: Option<&str>) -> ResourceChange {
        ResourceChange {
            action: action.into(),
            logical_id: "JobsQueue".into(),
            resource_type: "AWS::SQS::Queue".into(),
            replacement: replacement.map(str::to_owned),
        }
    }

    #[test]
    fn a_modify_without_a_replacement_answer_counts_as_may_replace() {
        let preview = TenantPreview {
            tenant_id: "acme".into(),
            from_version: "v1".into(),
            changes: vec![
                change("Add", None),
                change("Modify", Some("False")),
                change("Modify", Some("True")),
                change("Modify", Some("Conditional")),
                // moto's shape: no Replacement at all.
                change("Modify", None),
                change("Remove", None),
            ],
            error: None,
        };
        assert_eq!(
            preview.summary(),
            ChangeCounts {
                added: 1,
                modified: 1,
                replaced: 1,
                may_replace: 2,
                removed: 1,
            }
        );
    }
}
