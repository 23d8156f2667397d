//! The only code that writes STATUS. A write bumps the version over the one read (the write is
//! conditional on it: a decision made on stale data loses), stamps the lifecycle event the
//! transition is (in the row's outbox, so a crash cannot lose it), then records the audit line
//! and the metrics, and publishes the outbox. The audit line and the metrics come after the
//! write, not with it: STATUS is the truth, and a lost audit line never blocks a transition.
//! A publish that fails leaves its events in the outbox and says so ([`Outbox::unpublished`]);
//! the caller's next look publishes them (the writer never schedules anything).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use model::audit::{self, AuditEntry};
use model::next_status::next_version;
use model::spec::TenantKey;
use model::status::{LifecycleEvent, TenantStatus};
use model::time::rfc3339;
use tracing::{debug, info, warn};

use crate::ports::{LifecycleEvents, Snapshot, StoreError, TenantStore};
use crate::reconcile::Clock;

/// The STATUS a write goes over: as read, and the version the write is conditional on.
#[derive(Clone, Copy, Debug)]
pub struct Over<'a> {
    pub status: Option<&'a TenantStatus>,
    pub version: Option<u64>,
}

impl<'a> Over<'a> {
    /// STATUS as `snapshot` read it.
    pub fn read(snapshot: &'a Snapshot) -> Self {
        Self {
            status: snapshot.status.as_ref(),
            version: snapshot.status_version,
        }
    }

    /// STATUS as this process just wrote it.
    pub fn written(status: &'a TenantStatus) -> Self {
        Self {
            status: Some(status),
            version: Some(status.version),
        }
    }
}

/// What a write is, for the timeline and the subscribers.
#[derive(Clone, Debug)]
pub enum Change<'a> {
    /// A transition of the tenant: its lifecycle event, when subscribers hear of it, and an
    /// audit line describing what changed (`requested_by`: the SPEC's writer).
    Transition { requested_by: Option<&'a str> },
    /// Not a transition (a fleet assignment, a decommission notice): exactly this line and
    /// this event, if any.
    Note {
        /// `None`: no line (a repeat of what the timeline already says).
        entry: Option<Box<AuditEntry>>,
        event: Option<Box<LifecycleEvent>>,
    },
}

/// What a write left.
#[derive(Clone, Debug)]
pub struct Written {
    /// The row as this write stored it.
    pub status: TenantStatus,
    /// What publishing its outbox left.
    pub outbox: Outbox,
}

impl Written {
    /// What the next write goes over: the row as stored now (after its outbox), else as this
    /// write left it (then a conflict says the outbox write got there first).
    pub fn over(&self) -> Over<'_> {
        Over::written(self.outbox.current.as_ref().unwrap_or(&self.status))
    }
}

/// What publishing a row's outbox left.
#[derive(Clone, Debug)]
pub struct Outbox {
    /// The row as stored afterwards (`None`: not known, the write emptying the outbox lost or
    /// failed; read it again).
    pub current: Option<TenantStatus>,
    /// An event could not be published: it stays in the outbox for the next look.
    pub unpublished: bool,
}

pub struct StatusWriter {
    store: Arc<dyn TenantStore>,
    /// Where lifecycle events go; none: no events are recorded.
    events: Option<Arc<dyn LifecycleEvents>>,
    clock: Clock,
}

impl StatusWriter {
    pub fn new(store: Arc<dyn TenantStore>, clock: Clock) -> Self {
        Self {
            store,
            events: None,
            clock,
        }
    }

    pub fn with_events(mut self, events: Option<Arc<dyn LifecycleEvents>>) -> Self {
        self.events = events;
        self
    }

    fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// Writes `next` over `over` (conditional on its version: `Conflict` if STATUS changed).
    pub async fn write(
        &self,
        tenant: &TenantKey,
        over: Over<'_>,
        next: TenantStatus,
        change: Change<'_>,
    ) -> Result<Written, StoreError> {
        self.write_noting(tenant, over, next, change, Vec::new(), None)
            .await
    }

    /// As [`Self::write`], with `lines` (the writer's own, such as the SPEC write a stream
    /// record reports) in the same request.
    pub async fn write_noting(
        &self,
        tenant: &TenantKey,
        over: Over<'_>,
        mut next: TenantStatus,
        change: Change<'_>,
        lines: Vec<AuditEntry>,
        current: Option<crate::ports::CurrentGuard>,
    ) -> Result<Written, StoreError> {
        next.version = next_version(over.version);
        if self.events.is_some() {
            let event = match &change {
                Change::Transition { .. } => LifecycleEvent::of(&next),
                Change::Note { event, .. } => event.as_deref().cloned(),
            };
            next.pending_events.extend(event);
        }
        let now = self.now();
        let entry = match change {
            Change::Transition { requested_by } => {
                audit::status_transition(over.status, &next, requested_by, &rfc3339(now))
            }
            Change::Note { entry, .. } => entry.map(|e| *e),
        };
        // The line rides with the write (one TransactWriteItems): one call, never apart.
        let entries: Vec<AuditEntry> = lines.into_iter().chain(entry).collect();
        self.store
            .put_status_noting(tenant, &next, over.version, &entries, current)
            .await?;
        debug!(status = %next.status, version = next.version, "status written");
        crate::metrics::record_transition(over.status, &next, now);
        let outbox = self.publish_pending(tenant, &next).await;
        Ok(Written {
            status: next,
            outbox,
        })
    }

    /// Publishes the events in `status`'s outbox, then empties it (conditionally: a newer write
    /// carries them on and publishes them itself). On a failed publish the events stay, for
    /// the next look; the state is never touched by a publish failure.
    pub async fn publish_pending(&self, tenant: &TenantKey, status: &TenantStatus) -> Outbox {
        let Some(events) = self
            .events
            .as_ref()
            .filter(|_| !status.pending_events.is_empty())
        else {
            return Outbox {
                current: Some(status.clone()),
                unpublished: false,
            };
        };
        for event in &status.pending_events {
            if let Err(e) = events.publish(event).await {
                warn!(error = %e, event_id = %event.id, "lifecycle event not published; will retry");
                return Outbox {
                    current: Some(status.clone()),
                    unpublished: true,
                };
            }
            info!(event_id = %event.id, kind = ?event.kind, "lifecycle event published");
        }
        let mut published = status.clone();
        published.pending_events.clear();
        published.version = next_version(Some(status.version));
        match self
            .store
            .put_status(tenant, &published, Some(status.version))
            .await
        {
            Ok(()) => Outbox {
                current: Some(published),
                unpublished: false,
            },
            Err(e) => {
                // Published but still listed: a later pass publishes them again under the same
                // ids, which subscribers drop as duplicates.
                debug!(error = %e, "outbox not emptied");
                Outbox {
                    current: None,
                    unpublished: false,
                }
            }
        }
    }

    /// Appends one entry to the tenant's timeline; a failure is logged, never raised.
    pub async fn append_audit(&self, tenant: &TenantKey, entry: &AuditEntry) {
        if let Err(e) = self.store.append_audit(tenant, entry).await {
            warn!(error = %e, action = %entry.action, "audit entry not written");
        }
    }
}
