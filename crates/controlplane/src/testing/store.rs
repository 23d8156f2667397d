//! The tenant table in memory: every port the DynamoDB adapter serves (tenant, SPEC, template,
//! rollout and preview stores), with conditional writes and injectable faults.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use serde_dynamo::Item;

use super::lock;
use crate::aws::dynamodb as items;
use crate::ports::{
    CurrentTemplate, RolloutStore, Snapshot, StatusSummary, StoreError, TemplateRecord,
    TemplateStore, TenantStore,
};
use model::audit::AuditEntry;
use model::rollout::{Member, MemberState, Rollout};
use model::spec::TenantKey;
use model::status::{Status, TenantStatus};

#[derive(Default)]
struct StoreState {
    specs: HashMap<TenantKey, Item>,
    statuses: HashMap<TenantKey, TenantStatus>,
    write_faults: VecDeque<StoreError>,
    load_faults: VecDeque<StoreError>,
    status_writes: usize,
    loads: usize,
    audit: HashMap<TenantKey, BTreeMap<String, AuditEntry>>,
    idempotency: HashMap<(String, String), crate::ports::IdempotencyRecord>,
    templates: BTreeMap<String, TemplateRecord>,
    current_template: Option<CurrentTemplate>,
    rollouts: BTreeMap<String, Rollout>,
    members: HashMap<String, BTreeMap<String, Member>>,
    active_rollout: Option<String>,
    previews: BTreeMap<String, crate::rollout::preview::PreviewJob>,
    preview_results: HashMap<String, BTreeMap<String, crate::rollout::preview::TenantPreview>>,
    /// The rollout driver's lease: holder, and when it ends (epoch seconds).
    driver_lease: Option<(String, i64)>,
    /// Writes left before the store "crashes" (every later write fails), if set.
    writes_before_crash: Option<usize>,
    writes: usize,
}

impl StoreState {
    /// Every write passes here: counts it, and fails it once the crash point is reached.
    fn write(&mut self) -> Result<(), StoreError> {
        if let Some(left) = self.writes_before_crash.as_mut() {
            if *left == 0 {
                return Err(StoreError::Unavailable("simulated crash".into()));
            }
            *left -= 1;
        }
        self.writes += 1;
        Ok(())
    }
}

/// The tenant table in memory, with conditional STATUS writes and injectable faults. Every write
/// builds the item the DynamoDB adapter would send and refuses it as DynamoDB would
/// (`StoreError::Unstorable`), before anything is stored or counted.
#[derive(Default)]
pub struct InMemoryStore {
    state: Mutex<StoreState>,
}

impl InMemoryStore {
    pub fn put_spec(&self, tenant: &TenantKey, item: Item) {
        lock(&self.state).specs.insert(tenant.clone(), item);
    }

    pub fn spec(&self, tenant: &TenantKey) -> Option<Item> {
        lock(&self.state).specs.get(tenant).cloned()
    }

    /// Drops every queued read and write fault.
    pub fn clear_faults(&self) {
        let mut state = lock(&self.state);
        state.write_faults.clear();
        state.load_faults.clear();
    }

    pub fn delete_spec(&self, tenant: &TenantKey) {
        lock(&self.state).specs.remove(tenant);
    }

    pub fn status(&self, tenant: &TenantKey) -> Option<TenantStatus> {
        lock(&self.state).statuses.get(tenant).cloned()
    }

    /// Loses the tenant's STATUS (a hand delete, a table restored without it).
    pub fn remove_status(&self, tenant: &TenantKey) {
        lock(&self.state).statuses.remove(tenant);
    }

    /// The key a published version's body is stored under.
    pub fn template_key(&self, version: &str) -> Option<String> {
        lock(&self.state)
            .templates
            .get(version)
            .and_then(|record| record.key.clone())
    }

    pub fn set_status(&self, tenant: &TenantKey, status: TenantStatus) {
        lock(&self.state).statuses.insert(tenant.clone(), status);
    }

    /// The next STATUS writes fail with these errors, in order.
    pub fn fail_next_writes(&self, errors: impl IntoIterator<Item = StoreError>) {
        lock(&self.state).write_faults.extend(errors);
    }

    pub fn fail_next_loads(&self, errors: impl IntoIterator<Item = StoreError>) {
        lock(&self.state).load_faults.extend(errors);
    }

    /// Every write from now on fails after `writes` more succeed (`None`: never): a process
    /// that dies at that point, as far as the table can tell.
    pub fn crash_after_writes(&self, writes: Option<usize>) {
        lock(&self.state).writes_before_crash = writes;
    }

    /// Writes of any kind made so far (STATUS, audit, rollouts, templates).
    pub fn writes(&self) -> usize {
        lock(&self.state).writes
    }

    /// Reads of a tenant's SPEC and STATUS (`TenantStore::load`).
    pub fn loads(&self) -> usize {
        lock(&self.state).loads
    }

    pub fn status_writes(&self) -> usize {
        lock(&self.state).status_writes
    }

    /// The tenant's whole audit timeline, oldest first.
    pub fn audit(&self, tenant: &TenantKey) -> Vec<AuditEntry> {
        lock(&self.state)
            .audit
            .get(tenant)
            .map(|entries| entries.values().cloned().collect())
            .unwrap_or_default()
    }
}

#[async_trait]
impl TenantStore for InMemoryStore {
    async fn load(&self, tenant: &TenantKey) -> Result<Snapshot, StoreError> {
        let mut state = lock(&self.state);
        state.loads += 1;
        if let Some(fault) = state.load_faults.pop_front() {
            return Err(fault);
        }
        let status = state.statuses.get(tenant).cloned();
        Ok(Snapshot {
            spec: state.specs.get(tenant).cloned(),
            status_version: status.as_ref().map(|s| s.version),
            status,
        })
    }

    async fn list_tenants(
        &self,
        _page_token: Option<String>,
    ) -> Result<(Vec<TenantKey>, Option<String>), StoreError> {
        let state = lock(&self.state);
        let mut tenants: Vec<TenantKey> = state
            .specs
            .keys()
            .chain(state.statuses.keys())
            .cloned()
            .collect();
        tenants.sort();
        tenants.dedup();
        Ok((tenants, None))
    }

    async fn list_in_status(
        &self,
        status: Status,
        _page_token: Option<String>,
    ) -> Result<(Vec<StatusSummary>, Option<String>), StoreError> {
        let state = lock(&self.state);
        let mut found: Vec<StatusSummary> = state
            .statuses
            .iter()
            .filter(|(_, s)| s.status == status)
            .map(|(tenant, s)| StatusSummary {
                tenant: tenant.clone(),
                updated_at: s.updated_at.clone(),
            })
            .collect();
        found.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        Ok((found, None))
    }

    async fn put_status(
        &self,
        tenant: &TenantKey,
        status: &TenantStatus,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        if let Some(fault) = state.write_faults.pop_front() {
            return Err(fault);
        }
        items::status_item(tenant, status)?;
        state.write()?;
        let stored = state.statuses.get(tenant).map(|s| s.version);
        if stored != expected_version {
            return Err(StoreError::Conflict);
        }
        state.status_writes += 1;
        state.statuses.insert(tenant.clone(), status.clone());
        Ok(())
    }

    async fn put_status_noting(
        &self,
        tenant: &TenantKey,
        status: &TenantStatus,
        expected_version: Option<u64>,
        entries: &[AuditEntry],
        current: Option<crate::ports::CurrentGuard>,
    ) -> Result<(), StoreError> {
        use crate::ports::CurrentGuard;
        // As the table's transaction: the CURRENT row must still be as read.
        if let Some(guard) = current {
            let stored = lock(&self.state)
                .current_template
                .as_ref()
                .map(|c| c.version.clone());
            let holds = match guard {
                CurrentGuard::Names(version) => stored.as_ref() == Some(&version),
                CurrentGuard::NoRow => stored.is_none(),
            };
            if !holds {
                return Err(StoreError::Conflict);
            }
        }
        crate::ports::put_status_then_lines(self, tenant, status, expected_version, entries).await
    }

    async fn append_audit(&self, tenant: &TenantKey, entry: &AuditEntry) -> Result<(), StoreError> {
        let retention = chrono::Duration::days(model::audit::DEFAULT_RETENTION_DAYS.into());
        items::audit_item(tenant, entry, retention)?;
        let mut state = lock(&self.state);
        state.write()?;
        state
            .audit
            .entry(tenant.clone())
            .or_default()
            .insert(entry.sort_key(), entry.clone());
        Ok(())
    }

    /// The same timeline as the control plane's lines: a reader sees them merged.
    async fn append_request(
        &self,
        tenant: &TenantKey,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        self.append_audit(tenant, entry).await
    }

    async fn audit_trail(
        &self,
        tenant: &TenantKey,
        page_token: Option<String>,
        limit: usize,
    ) -> Result<(Vec<AuditEntry>, Option<String>), StoreError> {
        let state = lock(&self.state);
        let Some(entries) = state.audit.get(tenant) else {
            return Ok((Vec::new(), None));
        };
        let after = page_token.unwrap_or_default();
        let page: Vec<(&String, &AuditEntry)> = entries
            .iter()
            .filter(|(sk, _)| sk.as_str() > after.as_str())
            .take(limit.max(1))
            .collect();
        let next = (page.len() == limit.max(1))
            .then(|| page.last().map(|(sk, _)| (*sk).clone()))
            .flatten();
        Ok((page.into_iter().map(|(_, e)| e.clone()).collect(), next))
    }

    async fn remove_spec_for_decommission(
        &self,
        tenant: &TenantKey,
        decommission_date: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        self.append_audit(tenant, audit).await?;
        let mut state = lock(&self.state);
        let date_now = state
            .specs
            .get(tenant)
            .and_then(|spec| model::spec::SpecRow(spec).decommission_date());
        if date_now != Some(decommission_date) {
            return Err(StoreError::Conflict);
        }
        state.specs.remove(tenant);
        Ok(())
    }
}

#[async_trait]
impl crate::ports::SpecStore for InMemoryStore {
    async fn create_spec(&self, tenant: &TenantKey, item: &Item) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        if let Some(fault) = state.write_faults.pop_front() {
            return Err(fault);
        }
        items::spec_item(tenant, item)?;
        if state.specs.contains_key(tenant) {
            return Err(StoreError::Conflict);
        }
        state.specs.insert(tenant.clone(), item.clone());
        Ok(())
    }

    async fn replace_spec(
        &self,
        tenant: &TenantKey,
        item: &Item,
        expected: &Item,
    ) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        if let Some(fault) = state.write_faults.pop_front() {
            return Err(fault);
        }
        items::spec_item(tenant, item)?;
        if state.specs.get(tenant) != Some(expected) {
            return Err(StoreError::Conflict);
        }
        state.specs.insert(tenant.clone(), item.clone());
        Ok(())
    }

    async fn delete_spec(&self, tenant: &TenantKey, expected: &Item) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        if let Some(fault) = state.write_faults.pop_front() {
            return Err(fault);
        }
        if state.specs.get(tenant) != Some(expected) {
            return Err(StoreError::Conflict);
        }
        state.specs.remove(tenant);
        Ok(())
    }

    async fn list_specs(
        &self,
        page_token: Option<String>,
        limit: usize,
    ) -> Result<(Vec<TenantKey>, Option<String>), StoreError> {
        let state = lock(&self.state);
        // As the `tenants` index: SPECs with a string tenant_id.
        let mut tenants: Vec<&TenantKey> = state
            .specs
            .iter()
            .filter(|(_, spec)| {
                matches!(
                    spec.get("tenant_id"),
                    Some(serde_dynamo::AttributeValue::S(_))
                )
            })
            .map(|(tenant, _)| tenant)
            .collect();
        tenants.sort();
        let after = page_token.unwrap_or_default();
        let page: Vec<TenantKey> = tenants
            .into_iter()
            .filter(|t| t.as_str() > after.as_str())
            .take(limit.max(1) + 1)
            .cloned()
            .collect();
        if page.len() > limit.max(1) {
            let page = page[..limit.max(1)].to_vec();
            let next = page.last().map(|t| t.as_str().to_owned());
            Ok((page, next))
        } else {
            Ok((page, None))
        }
    }

    fn resume_after(&self, tenant: &TenantKey) -> String {
        tenant.as_str().to_owned()
    }

    async fn list_unindexed(
        &self,
        page_token: Option<String>,
        limit: usize,
    ) -> Result<(Vec<(TenantKey, String)>, Option<String>), StoreError> {
        let state = lock(&self.state);
        let after = page_token.unwrap_or_default();
        let mut tenants: Vec<&TenantKey> = state
            .statuses
            .keys()
            .filter(|tenant| {
                !state.specs.get(*tenant).is_some_and(|spec| {
                    matches!(
                        spec.get("tenant_id"),
                        Some(serde_dynamo::AttributeValue::S(_))
                    )
                })
            })
            .filter(|tenant| tenant.as_str() > after.as_str())
            .collect();
        tenants.sort();
        let limit = limit.max(1);
        let next = (tenants.len() > limit).then(|| tenants[limit - 1].as_str().to_owned());
        let page = tenants
            .into_iter()
            .take(limit)
            .map(|tenant| (tenant.clone(), tenant.as_str().to_owned()))
            .collect();
        Ok((page, next))
    }

    async fn idempotency_record(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<crate::ports::IdempotencyRecord>, StoreError> {
        Ok(lock(&self.state)
            .idempotency
            .get(&(scope.to_owned(), key.to_owned()))
            .cloned())
    }

    async fn claim_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        claim: &crate::ports::IdempotencyRecord,
    ) -> Result<(), StoreError> {
        items::idempotency_item(scope, key, claim)?;
        let now = chrono::Utc::now().timestamp();
        let mut state = lock(&self.state);
        let slot = (scope.to_owned(), key.to_owned());
        let free = state.idempotency.get(&slot).is_none_or(|held| {
            held.in_flight() && held.claimed_until.is_some_and(|until| until <= now)
        });
        if !free {
            return Err(StoreError::Conflict);
        }
        state.idempotency.insert(slot, claim.clone());
        Ok(())
    }

    async fn finish_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        record: &crate::ports::IdempotencyRecord,
    ) -> Result<(), StoreError> {
        items::idempotency_item(scope, key, record)?;
        let mut state = lock(&self.state);
        let slot = (scope.to_owned(), key.to_owned());
        match state.idempotency.get(&slot) {
            Some(held) if held.in_flight() && held.request_hash == record.request_hash => {
                state.idempotency.insert(slot, record.clone());
                Ok(())
            }
            _ => Err(StoreError::Conflict),
        }
    }

    async fn release_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        request_hash: &str,
    ) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        let slot = (scope.to_owned(), key.to_owned());
        if state
            .idempotency
            .get(&slot)
            .is_some_and(|held| held.in_flight() && held.request_hash == request_hash)
        {
            state.idempotency.remove(&slot);
        }
        Ok(())
    }
}

#[async_trait]
impl TemplateStore for InMemoryStore {
    async fn put_template(&self, record: &TemplateRecord) -> Result<(), StoreError> {
        items::template_item(record)?;
        let mut state = lock(&self.state);
        state.write()?;
        if state.templates.contains_key(&record.version) {
            return Err(StoreError::Conflict);
        }
        state
            .templates
            .insert(record.version.clone(), record.clone());
        Ok(())
    }

    async fn template(&self, version: &str) -> Result<Option<TemplateRecord>, StoreError> {
        Ok(lock(&self.state).templates.get(version).cloned())
    }

    async fn list_templates(&self) -> Result<Vec<TemplateRecord>, StoreError> {
        let mut records: Vec<TemplateRecord> =
            lock(&self.state).templates.values().cloned().collect();
        records.sort_by(|a, b| a.published_at.cmp(&b.published_at));
        Ok(records)
    }

    async fn current_template(&self) -> Result<Option<CurrentTemplate>, StoreError> {
        Ok(lock(&self.state).current_template.clone())
    }

    async fn set_current_template(
        &self,
        version: &str,
        expected: Option<u64>,
    ) -> Result<(), StoreError> {
        items::current_template_item(version, expected.map_or(1, |v| v + 1))?;
        let mut state = lock(&self.state);
        state.write()?;
        if state.current_template.as_ref().map(|c| c.row_version) != expected {
            return Err(StoreError::Conflict);
        }
        state.current_template = Some(CurrentTemplate {
            version: version.to_owned(),
            row_version: expected.map_or(1, |v| v + 1),
        });
        Ok(())
    }
}

#[async_trait]
impl RolloutStore for InMemoryStore {
    async fn create_rollout(&self, rollout: &Rollout) -> Result<(), StoreError> {
        items::rollout_item(rollout)?;
        let mut state = lock(&self.state);
        state.write()?;
        if state.rollouts.contains_key(&rollout.id) {
            return Err(StoreError::Conflict);
        }
        state.rollouts.insert(rollout.id.clone(), rollout.clone());
        Ok(())
    }

    async fn rollout(&self, id: &str) -> Result<Option<Rollout>, StoreError> {
        Ok(lock(&self.state).rollouts.get(id).cloned())
    }

    async fn list_rollouts(&self) -> Result<Vec<Rollout>, StoreError> {
        Ok(lock(&self.state).rollouts.values().rev().cloned().collect())
    }

    async fn put_rollout(&self, rollout: &Rollout, expected: u64) -> Result<(), StoreError> {
        items::rollout_item(rollout)?;
        let mut state = lock(&self.state);
        state.write()?;
        if state.rollouts.get(&rollout.id).map(|r| r.version) != Some(expected) {
            return Err(StoreError::Conflict);
        }
        state.rollouts.insert(rollout.id.clone(), rollout.clone());
        Ok(())
    }

    async fn active_rollout(&self) -> Result<Option<String>, StoreError> {
        Ok(lock(&self.state).active_rollout.clone())
    }

    async fn claim_active(&self, id: &str, replacing: Option<&str>) -> Result<(), StoreError> {
        items::active_rollout_item(id)?;
        let mut state = lock(&self.state);
        state.write()?;
        match state.active_rollout.as_deref() {
            None => {}
            Some(holder) if holder == id || Some(holder) == replacing => {}
            Some(_) => return Err(StoreError::Conflict),
        }
        state.active_rollout = Some(id.to_owned());
        Ok(())
    }

    async fn release_active(&self, id: &str) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        state.write()?;
        if state.active_rollout.as_deref() == Some(id) {
            state.active_rollout = None;
        }
        Ok(())
    }

    async fn members(&self, id: &str) -> Result<Vec<Member>, StoreError> {
        Ok(lock(&self.state)
            .members
            .get(id)
            .map(|members| members.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn add_members(&self, id: &str, members: &[Member]) -> Result<(), StoreError> {
        for member in members {
            items::member_item(id, member)?;
        }
        let mut state = lock(&self.state);
        state.write()?;
        let stored = state.members.entry(id.to_owned()).or_default();
        for member in members {
            stored
                .entry(member.order.clone())
                .or_insert_with(|| member.clone());
        }
        Ok(())
    }

    async fn put_member(
        &self,
        id: &str,
        member: &Member,
        expected: MemberState,
    ) -> Result<(), StoreError> {
        items::member_item(id, member)?;
        let mut state = lock(&self.state);
        state.write()?;
        let stored = state.members.entry(id.to_owned()).or_default();
        match stored.get(&member.order) {
            Some(current) if current.state == expected => {
                stored.insert(member.order.clone(), member.clone());
                Ok(())
            }
            _ => Err(StoreError::Conflict),
        }
    }

    async fn hold_driver_lease(
        &self,
        holder: &str,
        now: i64,
        until: i64,
    ) -> Result<(), StoreError> {
        items::driver_lease_item(holder, until)?;
        let mut state = lock(&self.state);
        state.write()?;
        match &state.driver_lease {
            Some((other, ends)) if other != holder && *ends >= now => Err(StoreError::Conflict),
            _ => {
                state.driver_lease = Some((holder.to_owned(), until));
                Ok(())
            }
        }
    }

    async fn release_driver_lease(&self, holder: &str) -> Result<(), StoreError> {
        let mut state = lock(&self.state);
        state.write()?;
        if state
            .driver_lease
            .as_ref()
            .is_some_and(|(other, _)| other == holder)
        {
            state.driver_lease = None;
        }
        Ok(())
    }
}

#[async_trait]
impl crate::ports::PreviewStore for InMemoryStore {
    async fn create_preview(
        &self,
        job: &crate::rollout::preview::PreviewJob,
    ) -> Result<(), StoreError> {
        items::preview_item(job)?;
        let mut state = lock(&self.state);
        state.write()?;
        if state.previews.contains_key(&job.id) {
            return Err(StoreError::Conflict);
        }
        state.previews.insert(job.id.clone(), job.clone());
        Ok(())
    }

    async fn preview(
        &self,
        id: &str,
    ) -> Result<Option<crate::rollout::preview::PreviewJob>, StoreError> {
        Ok(lock(&self.state).previews.get(id).cloned())
    }

    async fn put_preview(
        &self,
        job: &crate::rollout::preview::PreviewJob,
        expected: u64,
    ) -> Result<(), StoreError> {
        items::preview_item(job)?;
        let mut state = lock(&self.state);
        state.write()?;
        if state.previews.get(&job.id).map(|j| j.version) != Some(expected) {
            return Err(StoreError::Conflict);
        }
        state.previews.insert(job.id.clone(), job.clone());
        Ok(())
    }

    async fn put_preview_results(
        &self,
        id: &str,
        results: &[crate::rollout::preview::TenantPreview],
    ) -> Result<(), StoreError> {
        for result in results {
            items::preview_result_item(id, result)?;
        }
        let mut state = lock(&self.state);
        state.write()?;
        let stored = state.preview_results.entry(id.to_owned()).or_default();
        for result in results {
            stored.insert(result.tenant_id.clone(), result.clone());
        }
        Ok(())
    }

    async fn preview_results(
        &self,
        id: &str,
        page_token: Option<String>,
        limit: usize,
    ) -> Result<(Vec<crate::rollout::preview::TenantPreview>, Option<String>), StoreError> {
        let state = lock(&self.state);
        let Some(stored) = state.preview_results.get(id) else {
            return Ok((Vec::new(), None));
        };
        let after = |tenant: &String| page_token.as_ref().is_none_or(|last| tenant > last);
        let mut page: Vec<_> = stored
            .iter()
            .filter(|(tenant, _)| after(tenant))
            .take(limit.max(1) + 1)
            .map(|(_, result)| result.clone())
            .collect();
        let next = (page.len() > limit.max(1)).then(|| {
            page.truncate(limit.max(1));
            page.last().map(|r| r.tenant_id.clone()).unwrap_or_default()
        });
        Ok((page, next))
    }
}
