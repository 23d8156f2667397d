//! Observe: read the tenant's rows (SPEC, STATUS), resolve what the SPEC asks for, and find
//! its stack. Nothing here writes.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use chrono::{DateTime, Utc};
use model::decide::{Desired, REMOVED_FINGERPRINT};
use model::next_status::Seen;
use model::spec::{SpecRow, TenantKey, check_template_version, describe_errors};
use model::stack::{ObservedStack, TAG_TEMPLATE_VERSION};
use model::status::{StackLocation, Status, TenantStatus};
use model::template::Template;
use tracing::{info, warn};

use super::{Reconciler, TransientError};
use crate::ports::{Snapshot, StackTarget, TemplateSourceError};
use crate::validation::{Validation, validate};

#[derive(Clone, Debug, Default)]
pub(super) struct Versions {
    pub(super) template_version: Option<String>,
    pub(super) assigned_version: Option<String>,
    /// The assigned version was read from the stack's tag (no STATUS recorded one).
    pub(super) from_stack_tag: bool,
    /// The assigned version is the fleet's current one, read (perhaps from the warm cache)
    /// with the CURRENT row so: the write that assigns it holds only while the row is so.
    pub(super) current_guard: Option<crate::ports::CurrentGuard>,
}

/// One look at a tenant.
pub(super) struct View {
    pub(super) key: TenantKey,
    pub(super) snapshot: Snapshot,
    pub(super) desired: Desired,
    pub(super) template: Option<Arc<Template>>,
    /// The template version the SPEC resolves to, even when it is invalid (then: its pin, else
    /// the assigned one), and the version the fleet assigns the tenant.
    pub(super) versions: Versions,
    pub(super) stack: Option<ObservedStack>,
    pub(super) location: Option<StackLocation>,
    /// A write made on this look left an event unpublished in the outbox.
    pub(super) unpublished: AtomicBool,
    /// Timeline lines the trigger brought (the SPEC write a stream record reports), written
    /// with the reconcile's first STATUS write, in the same request.
    pub(super) lines: Arc<std::sync::Mutex<Vec<model::audit::AuditEntry>>>,
}

impl View {
    pub(super) fn target(&self) -> Option<StackTarget> {
        self.location.clone().map(|location| StackTarget {
            tenant_id: self.key.as_str().to_owned(),
            location,
        })
    }

    pub(super) fn fingerprint(&self) -> Option<&str> {
        match &self.desired {
            Desired::Present(d) => Some(&d.fingerprint),
            Desired::Absent => Some(REMOVED_FINGERPRINT),
            Desired::Invalid { .. } => None,
        }
    }

    /// What the next STATUS is built from (`model::next_status`).
    pub(super) fn seen(&self, now: DateTime<Utc>) -> Seen<'_> {
        Seen {
            tenant_id: self.key.as_str(),
            previous: self.snapshot.status.as_ref(),
            fingerprint: self.fingerprint(),
            resolved_version: self.versions.template_version.as_deref(),
            desired_version: match &self.desired {
                Desired::Present(d) => Some(d.template_version.as_str()),
                _ => None,
            },
            location: self.location.as_ref(),
            stack: self.stack.as_ref(),
            now,
        }
    }
}

impl Reconciler {
    /// What the SPEC asks for (and the template body), without looking at the stack.
    pub(super) async fn desire(
        &self,
        key: &TenantKey,
        snapshot: &Snapshot,
        running: Option<&str>,
    ) -> Result<(Desired, Option<Arc<Template>>, Versions), TransientError> {
        let Some(item) = &snapshot.spec else {
            return Ok((Desired::Absent, None, Versions::default()));
        };
        // The version the fleet gave the tenant, as STATUS records it, else (`running`) as its
        // stack's tag shows it.
        let assigned = snapshot
            .status
            .as_ref()
            .and_then(TenantStatus::fleet_version)
            .or(running);
        // None yet: the fleet's current version (a warm instance's read of the last seconds).
        let (assigned, current_guard) = match assigned {
            Some(version) => (version.to_owned(), None),
            None => self
                .templates
                .current()
                .await
                .map_err(|e| TransientError(e.to_string()))?,
        };
        let valid = match validate(key, item, Some(&assigned), self.templates.as_ref())
            .await
            .map_err(|e| TransientError(e.to_string()))?
        {
            Validation::Valid(valid) => valid,
            Validation::Invalid(errors) => {
                // Still say which version it failed for (a rollout counts that failure).
                let assigned_version = assigned;
                // Only a pin that could name a version: an invalid one (of any length) is not
                // copied onto STATUS.
                let pin = SpecRow(item)
                    .pin()
                    .filter(|pin| check_template_version(pin).is_ok())
                    .map(str::to_owned);
                return Ok((
                    Desired::Invalid {
                        reason: describe_errors(&errors),
                    },
                    None,
                    Versions {
                        template_version: Some(pin.unwrap_or_else(|| assigned_version.clone())),
                        assigned_version: Some(assigned_version),
                        from_stack_tag: false,
                        current_guard,
                    },
                ));
            }
        };
        let desired = valid.desired_stack(
            &self.settings.default_region,
            self.settings.stack_name(key),
            self.settings.drift_policy,
        );
        let versions = Versions {
            template_version: Some(valid.template_version),
            assigned_version: Some(valid.assigned_version),
            from_stack_tag: false,
            current_guard,
        };
        let template = valid.template;
        Ok((Desired::Present(desired), Some(template), versions))
    }

    /// Reads the tenant's rows (unless `known`: what this reconcile just wrote) and looks at
    /// its stack.
    pub(super) async fn observe(
        &self,
        key: &TenantKey,
        known: Option<Snapshot>,
    ) -> Result<View, TransientError> {
        let snapshot = match known {
            Some(snapshot) => snapshot,
            None => self.store.load(key).await?,
        };
        let (desired, template, versions) = self.desire(key, &snapshot, None).await?;
        let recorded = snapshot.status.as_ref().and_then(|s| s.location.clone());
        let wanted = match &desired {
            Desired::Present(d) => Some(d.location.clone()),
            _ => None,
        };
        let mut view = View {
            key: key.clone(),
            snapshot,
            desired,
            template,
            versions,
            stack: None,
            location: recorded.clone().or_else(|| wanted.clone()),
            unpublished: AtomicBool::new(false),
            lines: Arc::default(),
        };
        if matches!(view.desired, Desired::Invalid { .. }) {
            // Nothing will be done to the stack: no need to reach the tenant's account.
            return Ok(view);
        }

        self.locate(&mut view, recorded, wanted).await?;
        // No version recorded for the tenant (its STATUS lost or unreadable, or from before the
        // control-plane table): its own stack's tag says which version it runs. Keep that one
        // instead of moving an unpinned tenant to the fleet's current version behind the
        // rollouts' back.
        let unrecorded = view
            .snapshot
            .status
            .as_ref()
            .and_then(TenantStatus::fleet_version)
            .is_none();
        let unpinned = view
            .snapshot
            .spec
            .as_ref()
            .is_some_and(|spec| !SpecRow(spec).is_pinned());
        let running = view
            .stack
            .as_ref()
            .filter(|s| s.is_managed_for(key.as_str()))
            .and_then(|s| s.tags.get(TAG_TEMPLATE_VERSION))
            .cloned();
        if unrecorded
            && unpinned
            && let Some(running) = running
            && view.versions.assigned_version.as_deref() != Some(running.as_str())
            && self.adoptable(&running).await?
        {
            info!(version = %running, "no version recorded: keeping the one the stack runs");
            let (desired, template, versions) =
                self.desire(key, &view.snapshot, Some(&running)).await?;
            view.desired = desired;
            view.template = template;
            view.versions = Versions {
                from_stack_tag: true,
                ..versions
            };
        }
        Ok(view)
    }

    /// Whether a stack's `template-version` tag names a version that can be kept: one that
    /// exists and is not refused. Anyone who can tag the stack can write the tag, so a version
    /// never published (or changed since) is not adopted: the tenant takes the fleet's current
    /// version instead of failing on a version it was never given.
    async fn adoptable(&self, version: &str) -> Result<bool, TransientError> {
        if check_template_version(version).is_err() {
            warn!(
                version,
                "the stack's template-version tag is not a version name: not kept"
            );
            return Ok(false);
        }
        match self.templates.get(version).await {
            Ok(Some(_)) => Ok(true),
            Ok(None) => {
                warn!(
                    version,
                    "the stack's template-version tag names no published version: not kept"
                );
                Ok(false)
            }
            Err(TemplateSourceError::Corrupt(reason)) => {
                warn!(version, %reason, "the version the stack's tag names is refused: not kept");
                Ok(false)
            }
            Err(e) => Err(TransientError(e.to_string())),
        }
    }

    /// Finds the tenant's stack. Where it was recorded, else where the SPEC wants it. A stack
    /// there counts as the tenant's only if its own tags say so (read by the same
    /// DescribeStacks: no call added), so a wrong location is never acted on.
    async fn locate(
        &self,
        view: &mut View,
        recorded: Option<StackLocation>,
        wanted: Option<StackLocation>,
    ) -> Result<(), TransientError> {
        // Where the stack is: where it was recorded, else where the SPEC wants it. A stack
        // there counts as the tenant's only if its own tags say so (read by the same
        // DescribeStacks: no call added), so a wrong location is never acted on.
        let target_at = |location: &StackLocation| StackTarget {
            tenant_id: view.key.as_str().to_owned(),
            location: location.clone(),
        };
        let mut places: Vec<StackLocation> =
            recorded.iter().chain(wanted.iter()).cloned().collect();
        places.dedup();
        let mut someone_elses: Option<(StackLocation, ObservedStack)> = None;
        let looked = places.clone();
        for location in places {
            match self.describe(&target_at(&location)).await? {
                Some(stack) if stack.is_managed_for(view.key.as_str()) => {
                    view.location = Some(location);
                    view.stack = Some(stack);
                    return Ok(());
                }
                Some(stack) => {
                    someone_elses.get_or_insert((location, stack));
                }
                None => {}
            }
        }
        // None of the tenant's where it was recorded: before anything is recorded `deleted`
        // (or a second stack made), look in the recorded account and region under the name
        // the tenant's stack is given, confirmed by its tags (a tenant already recorded
        // deleted is not looked for again).
        let recorded_deleted = view
            .snapshot
            .status
            .as_ref()
            .is_some_and(|s| s.status == Status::Deleted);
        if let Some(recorded) = recorded.as_ref().filter(|_| !recorded_deleted) {
            let named = StackLocation {
                stack_name: self.settings.stack_name(&view.key),
                ..recorded.clone()
            };
            if !looked.contains(&named)
                && let Some(stack) = self.describe(&target_at(&named)).await?
            {
                if stack.is_managed_for(view.key.as_str()) {
                    warn!(
                        recorded = %recorded.stack_name,
                        found = %named.stack_name,
                        "the tenant's stack is not where STATUS recorded it; found by its name and tags"
                    );
                    view.location = Some(named);
                    view.stack = Some(stack);
                    return Ok(());
                }
                someone_elses.get_or_insert((named, stack));
            }
        }
        match someone_elses {
            // Left untouched: the decision says whose it is not.
            Some((location, stack)) => {
                view.location = Some(location);
                view.stack = Some(stack);
            }
            None => view.location = wanted.or(recorded),
        }
        Ok(())
    }

    async fn describe(
        &self,
        target: &StackTarget,
    ) -> Result<Option<ObservedStack>, TransientError> {
        match self.stacks.describe(target).await {
            Ok(stack) => Ok(stack),
            Err(e) => Err(TransientError(format!(
                "cannot read stack {} in account {} region {}: {e}",
                target.location.stack_name, target.location.account_id, target.location.region
            ))),
        }
    }
}
