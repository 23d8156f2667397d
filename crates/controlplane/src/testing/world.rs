//! A reconciler on fakes, built in one line: `World::builder().build()`. The tests that used to
//! hand-wire store, stacks, templates, clock, re-checks and events each take what they need.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use super::{FakeStacks, InMemoryStore, RecordingEvents, RecordingRecheck, lock};
use crate::ports::{Stacks, TemplateSource};
use crate::reconcile::{Reconciler, Settings};
use crate::template_source::BundledTemplates;

/// The reconciler's clock in a test: the wall clock until the test sets it, then moved by hand.
#[derive(Clone, Default)]
pub struct TestClock(Arc<Mutex<Option<DateTime<Utc>>>>);

impl TestClock {
    pub fn now(&self) -> DateTime<Utc> {
        lock(&self.0).unwrap_or_else(Utc::now)
    }

    /// Stops the clock at `time`.
    pub fn set(&self, time: DateTime<Utc>) {
        *lock(&self.0) = Some(time);
    }

    /// Moves the clock `by` from where it is (stopping it there).
    pub fn advance(&self, by: chrono::Duration) {
        let mut now = lock(&self.0);
        *now = Some(now.unwrap_or_else(Utc::now) + by);
    }
}

/// The fakes a reconciler runs on, and the reconciler.
pub struct World {
    pub store: Arc<InMemoryStore>,
    pub stacks: Arc<FakeStacks>,
    /// Records the re-checks asked for, when built `with_rechecks`.
    pub recheck: Arc<RecordingRecheck>,
    /// Records the lifecycle events published, when built `with_events`.
    pub events: Arc<RecordingEvents>,
    /// The reconciler's clock.
    pub clock: TestClock,
    pub reconciler: Reconciler,
}

/// How a [`World`] is built: by default a new table, the shipped sample template, `Settings::new("us-east-1")`,
/// the wall clock, no re-check queue and no lifecycle topic.
pub struct WorldBuilder {
    settings: Settings,
    start: Option<DateTime<Utc>>,
    rechecks: bool,
    events: bool,
    store: Option<Arc<InMemoryStore>>,
    templates: Option<Arc<dyn TemplateSource>>,
    stacks: Option<Arc<FakeStacks>>,
    reached_through: Option<Arc<dyn Stacks>>,
}

impl World {
    pub fn builder() -> WorldBuilder {
        WorldBuilder {
            settings: Settings::new("us-east-1"),
            start: None,
            rechecks: false,
            events: false,
            store: None,
            templates: None,
            stacks: None,
            reached_through: None,
        }
    }
}

impl WorldBuilder {
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// The clock stopped at `start` (the test moves it).
    pub fn starting_at(mut self, start: DateTime<Utc>) -> Self {
        self.start = Some(start);
        self
    }

    /// Operations in flight are followed through a recording re-check queue.
    pub fn with_rechecks(mut self) -> Self {
        self.rechecks = true;
        self
    }

    /// Lifecycle events go to a recorder.
    pub fn with_events(mut self) -> Self {
        self.events = true;
        self
    }

    /// This table, made by the test (for a wrapper that reads it).
    pub fn store(mut self, store: Arc<InMemoryStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Template versions from `templates` (the API's, published into the table) instead of
    /// the shipped sample alone.
    pub fn templates(mut self, templates: Arc<dyn TemplateSource>) -> Self {
        self.templates = Some(templates);
        self
    }

    /// These fake stacks, made by the test (to wrap them before the world is built).
    pub fn stacks(mut self, stacks: Arc<FakeStacks>) -> Self {
        self.stacks = Some(stacks);
        self
    }

    /// The reconciler reaches the stacks through `stacks` (a spy or a fault injector around the
    /// world's fake stacks) instead of calling them directly.
    pub fn reached_through(mut self, stacks: Arc<dyn Stacks>) -> Self {
        self.reached_through = Some(stacks);
        self
    }

    pub fn build(self) -> World {
        let store = self.store.unwrap_or_default();
        let stacks = self.stacks.unwrap_or_default();
        let recheck = Arc::new(RecordingRecheck::default());
        let events = Arc::new(RecordingEvents::default());
        let reached: Arc<dyn Stacks> = self.reached_through.unwrap_or_else(|| stacks.clone());
        let templates = self.templates.unwrap_or_else(|| {
            Arc::new(BundledTemplates::sample().expect("the shipped sample template parses"))
        });
        let mut reconciler = Reconciler::new(store.clone(), reached, templates, self.settings)
            .with_drift(stacks.clone());
        if self.rechecks {
            reconciler = reconciler.with_recheck(recheck.clone());
        }
        if self.events {
            reconciler = reconciler.with_events(events.clone());
        }
        let clock = TestClock::default();
        if let Some(start) = self.start {
            clock.set(start);
        }
        let read = clock.clone();
        reconciler = reconciler.with_clock(Arc::new(move || read.now()));
        World {
            store,
            stacks,
            recheck,
            events,
            clock,
            reconciler,
        }
    }
}
