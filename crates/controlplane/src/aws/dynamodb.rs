//! The two tables on DynamoDB.
//!
//! - The **SPEC table** (`TenantsTable`, with the stream) holds what writers write: SPEC rows.
//!   Writers' IAM policy reaches it and nothing else.
//! - The **control-plane table** (`ControlTable`, no stream) holds everything the control plane
//!   records: STATUS rows and the timeline (`TENANT#…` partitions, written by the reconciling
//!   functions only), and the API's own records (idempotency, template versions, rollouts,
//!   previews, request lines), each in partitions of its own that the API's role is limited to
//!   by `dynamodb:LeadingKeys` ([`API_PARTITIONS`]). So nobody who can write a SPEC can forge
//!   what the control plane observed.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use futures::StreamExt;
use serde_dynamo::Item;
use tracing::warn;

use super::AwsFailure;
use crate::ports::{
    Healing, IdempotencyRecord, Snapshot, SpecStore, StatusSummary, StoreError, TenantStore,
};
use model::audit::{AuditEntry, DEFAULT_RETENTION_DAYS, EVENT_SK_PREFIX};
use model::dynamo_rules::{KeyTable, check_item, check_values};
use model::spec::{SPEC_ATTRIBUTES, SPEC_SK, STATUS_SK, TenantKey};
use model::status::{StackLocation, Status, TenantStatus};

/// The calls of [`DynamoStore`], by what they serve (a function's role needs those of the parts
/// it uses).
pub mod calls {
    use crate::aws::{Call, Resource};

    const fn on_specs(action: &'static str) -> Call {
        Call::new(action, Resource::SpecTable)
    }

    const fn on_control(action: &'static str) -> Call {
        Call::new(action, Resource::ControlTable)
    }

    const fn on_records(action: &'static str) -> Call {
        Call::new(action, Resource::ControlRecords)
    }

    /// A tenant's SPEC and STATUS (`load`, one BatchGetItem over both tables), its audit
    /// timeline (`audit_trail`).
    pub const TENANT_READS: &[Call] = &[
        on_specs("dynamodb:BatchGetItem"),
        on_control("dynamodb:BatchGetItem"),
        on_control("dynamodb:Query"),
    ];
    /// STATUS rows and audit lines: the control plane's own partitions (`TENANT#…`) of the
    /// control-plane table. Only the reconciling functions make these.
    pub const STATUS_WRITES: &[Call] = &[on_control("dynamodb:PutItem")];
    /// A reconcile's first write of a tenant, assigning it the fleet's current template version
    /// (read perhaps from a warm instance's cache): its transaction holds only while the
    /// CURRENT row is as read.
    pub const CURRENT_GUARD: &[Call] = &[on_control("dynamodb:ConditionCheckItem")];
    /// Every tenant, a page at a time (`list_tenants`): the SPEC rows, then the STATUS rows of
    /// tenants without one (their SPEC's existence checked in batches).
    pub const TENANT_PAGES: &[Call] = &[
        Call::new("dynamodb:Scan", Resource::TenantsIndex),
        Call::new("dynamodb:Scan", Resource::StatusesIndex),
        on_specs("dynamodb:BatchGetItem"),
    ];
    /// Every SPEC, a page at a time (`list_specs`).
    pub const SPEC_PAGES: &[Call] = &[Call::new("dynamodb:Scan", Resource::TenantsIndex)];
    /// Every tenant with a STATUS whose SPEC the `tenants` index does not hold
    /// (`list_unindexed`): the STATUS rows, their SPECs read in batches.
    pub const UNINDEXED_PAGES: &[Call] = &[
        Call::new("dynamodb:Scan", Resource::StatusesIndex),
        on_specs("dynamodb:BatchGetItem"),
    ];
    /// Tenants in one status (`list_in_status`).
    pub const BY_STATUS: &[Call] = &[Call::new("dynamodb:Query", Resource::ByStatusIndex)];
    /// SPEC rows written and removed (the API, decommission): conditional puts and deletes.
    pub const SPEC_WRITES: &[Call] = &[
        on_specs("dynamodb:PutItem"),
        on_specs("dynamodb:DeleteItem"),
    ];
    /// SPEC rows removed (decommission: a writer's act, conditional on the decommission date).
    pub const SPEC_REMOVALS: &[Call] = &[on_specs("dynamodb:DeleteItem")];
    /// Lines the API records for the requests it answered (`append_request`), in its own
    /// partitions (`REQUESTS#…`).
    pub const REQUEST_LINES: &[Call] = &[on_records("dynamodb:PutItem")];
    /// Template versions and the fleet's current one (`template`, `current_template`,
    /// `list_templates`).
    pub const TEMPLATE_READS: &[Call] =
        &[on_control("dynamodb:GetItem"), on_control("dynamodb:Query")];
    /// Publishing a version, making one current.
    pub const TEMPLATE_WRITES: &[Call] = &[on_records("dynamodb:PutItem")];
    /// Rollouts, their members, the active-rollout slot and the driver lease.
    pub const ROLLOUT_ROWS: &[Call] = &[
        on_control("dynamodb:GetItem"),
        on_records("dynamodb:PutItem"),
        on_records("dynamodb:DeleteItem"),
        on_control("dynamodb:Query"),
    ];
    /// The API's idempotency records.
    pub const IDEMPOTENCY: &[Call] = &[
        on_control("dynamodb:GetItem"),
        on_records("dynamodb:PutItem"),
        on_records("dynamodb:DeleteItem"),
    ];
    /// Rollout previews and their tenants' previews.
    pub const PREVIEW_ROWS: &[Call] = &[
        on_control("dynamodb:GetItem"),
        on_records("dynamodb:PutItem"),
        on_control("dynamodb:Query"),
    ];
}

pub use model::dynamo_rules::{BY_STATUS_INDEX, STATUSES_INDEX, TENANTS_INDEX};
/// Index entries per page of every tenant.
const TENANTS_PAGE: i32 = 1000;
/// Index pages one call of `list_unindexed` reads at most: in a large fleet with few unlisted
/// tenants, a call that scanned until it found a page of them would read the whole index in
/// one API request (and run past its timeout). Past this, the call answers with what it found,
/// perhaps nothing, and where to go on.
const UNINDEXED_SCAN_PAGES: usize = 2;
/// BatchGetItem takes at most 100 keys.
const BATCH_GET_KEYS: usize = 100;

/// The partitions of the control-plane table the API (and `tenantctl --direct`) write, as
/// template.yaml's `dynamodb:LeadingKeys` conditions name them: never a tenant's (`TENANT#…`),
/// where STATUS and the timeline are.
pub const API_PARTITIONS: &[&str] = &[
    "IDEMPOTENCY#*",
    "TEMPLATES",
    "ROLLOUTS",
    "ROLLOUT#*",
    "PREVIEWS",
    "PREVIEW#*",
    "REQUESTS#*",
];

/// The names of the two tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tables {
    /// Writers' table: SPEC rows (TABLE_NAME).
    pub specs: String,
    /// The control plane's table: STATUS, the timeline, and the API's records
    /// (CONTROL_TABLE_NAME).
    pub control: String,
}

impl Tables {
    /// The SPEC table `specs` and its control-plane table as template.yaml names it
    /// (`<specs>-control`): for the local system, and tenantctl when none is named.
    pub fn of(specs: impl Into<String>) -> Self {
        let specs = specs.into();
        Self {
            control: format!("{specs}-control"),
            specs,
        }
    }
}

pub struct DynamoStore {
    client: Client,
    specs: String,
    control: String,
    audit_retention: chrono::Duration,
    /// Index entries per scan page of the `statuses` index (`TENANTS_PAGE`; smaller in tests).
    scan_page: i32,
}

impl DynamoStore {
    pub fn new(client: Client, tables: Tables) -> Self {
        Self {
            client,
            specs: tables.specs,
            control: tables.control,
            audit_retention: chrono::Duration::days(DEFAULT_RETENTION_DAYS.into()),
            scan_page: TENANTS_PAGE,
        }
    }

    /// Index entries per scan page of the `statuses` index, where a fleet's worth of rows
    /// would otherwise be needed to see a page boundary (tests).
    pub fn with_scan_page(mut self, entries: i32) -> Self {
        self.scan_page = entries.max(1);
        self
    }

    /// How long audit items live before the table's TTL removes them.
    pub fn with_audit_retention(mut self, days: u32) -> Self {
        self.audit_retention = chrono::Duration::days(days.into());
        self
    }

    /// The store of `tables`, with a client of `sdk`.
    pub fn for_sdk(sdk: &aws_config::SdkConfig, tables: Tables) -> Self {
        Self::new(Client::new(sdk), tables)
    }

    /// One page of every row of the SPEC table, whatever its keys, and the token of the next
    /// (`tenantctl doctor`: rows that break the key contract are in no index, and the stream
    /// handler passes them by).
    pub async fn scan_spec_table(
        &self,
        page_token: Option<String>,
    ) -> Result<(Vec<Item>, Option<String>), StoreError> {
        let output = self
            .client
            .scan()
            .table_name(&self.specs)
            .set_exclusive_start_key(start_key_of(page_token)?)
            .send()
            .await
            .map_err(|e| store_error(AwsFailure::from_sdk(&e)))?;
        let items = output
            .items()
            .iter()
            .map(|row| row.clone().into())
            .collect();
        Ok((items, page_token_of(output.last_evaluated_key())))
    }

    /// The SPEC table's name.
    pub fn spec_table(&self) -> &str {
        &self.specs
    }
}

// ------------------------------------------------------------------------------------------------
// The items the project writes, each checked against DynamoDB's rules before anything is sent
// (`StoreError::Unstorable` names every field at fault). The in-memory fake builds the same items,
// so it refuses exactly what this adapter refuses.

type Row = HashMap<String, AttributeValue>;

/// The item, if DynamoDB would store it in the control-plane table.
fn storable(item: Row) -> Result<Row, StoreError> {
    storable_in(KeyTable::Control, item)
}

/// The item, if DynamoDB would store it in `table`. The rules read serde_dynamo's values (the
/// model has no SDK); the conversion moves the values, it copies none.
fn storable_in(table: KeyTable, item: Row) -> Result<Row, StoreError> {
    let plain = serde_dynamo::Item::from(item);
    check_item(table, plain.inner()).map_err(StoreError::Unstorable)?;
    Ok(plain.into())
}

/// The key of a DeleteItem, if DynamoDB would take it.
fn key_of(pk: String, sk: String) -> Result<Row, StoreError> {
    storable(HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk)),
        ("sk".to_owned(), AttributeValue::S(sk)),
    ]))
}

/// A condition's values, if DynamoDB would take them. Only values that come from a stored row
/// (a SPEC's attributes, its decommission date) need it: the others are versions, ids and
/// holders the control plane makes, always strings or integers DynamoDB takes.
fn comparable(values: &Row) -> Result<(), StoreError> {
    check_values(serde_dynamo::Item::from(values.clone()).inner()).map_err(StoreError::Unstorable)
}

/// A STATUS row.
pub(crate) fn status_item(tenant: &TenantKey, status: &TenantStatus) -> Result<Row, StoreError> {
    let mut item: Row = serde_dynamo::to_item(status)
        .map_err(|e| StoreError::Unavailable(format!("cannot encode STATUS: {e}")))?;
    item.insert("pk".into(), AttributeValue::S(tenant.pk()));
    item.insert("sk".into(), AttributeValue::S(STATUS_SK.into()));
    storable(item)
}

/// An audit item, expiring `retention` after it was written.
pub(crate) fn audit_item(
    tenant: &TenantKey,
    entry: &AuditEntry,
    retention: chrono::Duration,
) -> Result<Row, StoreError> {
    let mut item: Row = serde_dynamo::to_item(entry)
        .map_err(|e| StoreError::Unavailable(format!("cannot encode an audit entry: {e}")))?;
    item.insert("pk".into(), AttributeValue::S(tenant.pk()));
    item.insert("sk".into(), AttributeValue::S(entry.sort_key()));
    // An unreadable time (never written by the control plane) expires as if written now.
    let written = model::time::parse(&entry.at)
        .unwrap_or_else(chrono::Utc::now)
        .timestamp();
    let expires_at = written.saturating_add(retention.num_seconds());
    item.insert(
        "expires_at".into(),
        AttributeValue::N(expires_at.to_string()),
    );
    storable(item)
}

/// A SPEC row as a writer (the API, `tenantctl --direct`) stores it.
pub(crate) fn spec_item(tenant: &TenantKey, spec: &Item) -> Result<Row, StoreError> {
    let mut item: Row = spec.clone().into();
    item.insert("pk".into(), AttributeValue::S(tenant.pk()));
    item.insert("sk".into(), AttributeValue::S(SPEC_SK.into()));
    storable_in(KeyTable::Specs, item)
}

/// A stored idempotent response, expiring after [`IDEMPOTENCY_TTL`].
pub(crate) fn idempotency_item(
    scope: &str,
    key: &str,
    record: &IdempotencyRecord,
) -> Result<Row, StoreError> {
    let mut item: Row = serde_dynamo::to_item(record)
        .map_err(|e| StoreError::Unavailable(format!("cannot encode a response: {e}")))?;
    item.insert("pk".into(), AttributeValue::S(idempotency_pk(scope, key)));
    item.insert("sk".into(), AttributeValue::S(IDEMPOTENCY_SK.into()));
    let expires_at = (chrono::Utc::now() + IDEMPOTENCY_TTL).timestamp();
    item.insert(
        "expires_at".into(),
        AttributeValue::N(expires_at.to_string()),
    );
    storable(item)
}

/// A published template version.
pub(crate) fn template_item(record: &crate::ports::TemplateRecord) -> Result<Row, StoreError> {
    storable(encode(
        record,
        TEMPLATES_PK.into(),
        format!("{TEMPLATE_SK_PREFIX}{}", record.version),
    )?)
}

/// The fleet's current template version, at `row_version` (its conditional writes check it).
pub(crate) fn current_template_item(version: &str, row_version: u64) -> Result<Row, StoreError> {
    storable(HashMap::from([
        ("pk".to_owned(), AttributeValue::S(TEMPLATES_PK.into())),
        (
            "sk".to_owned(),
            AttributeValue::S(CURRENT_TEMPLATE_SK.into()),
        ),
        (
            "current_version".to_owned(),
            AttributeValue::S(version.into()),
        ),
        (
            "version".to_owned(),
            AttributeValue::N(row_version.to_string()),
        ),
    ]))
}

/// A rollout.
pub(crate) fn rollout_item(rollout: &model::rollout::Rollout) -> Result<Row, StoreError> {
    storable(encode(
        rollout,
        ROLLOUTS_PK.into(),
        format!("{ROLLOUT_SK_PREFIX}{}", rollout.id),
    )?)
}

/// The active-rollout slot, held by `id`.
pub(crate) fn active_rollout_item(id: &str) -> Result<Row, StoreError> {
    storable(HashMap::from([
        ("pk".to_owned(), AttributeValue::S(ROLLOUTS_PK.into())),
        ("sk".to_owned(), AttributeValue::S(ACTIVE_ROLLOUT_SK.into())),
        ("rollout_id".to_owned(), AttributeValue::S(id.into())),
    ]))
}

/// The rollout driver's lease, held by `holder` until `until` (epoch seconds).
pub(crate) fn driver_lease_item(holder: &str, until: i64) -> Result<Row, StoreError> {
    storable(HashMap::from([
        ("pk".to_owned(), AttributeValue::S(ROLLOUTS_PK.into())),
        ("sk".to_owned(), AttributeValue::S(DRIVER_LEASE_SK.into())),
        ("holder".to_owned(), AttributeValue::S(holder.into())),
        (
            "lease_until".to_owned(),
            AttributeValue::N(until.to_string()),
        ),
    ]))
}

/// The tenant a row belongs to, by its pk.
fn tenant_of(item: &HashMap<String, AttributeValue>) -> Option<TenantKey> {
    match item.get("pk") {
        Some(AttributeValue::S(pk)) => TenantKey::from_pk(pk),
        _ => None,
    }
}

/// Where a page of a tenant's timeline ends in each of its two partitions.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
struct TrailCursor {
    timeline: Option<String>,
    requests: Option<String>,
    timeline_done: bool,
    requests_done: bool,
}

/// The two partitions of a tenant's timeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    /// The control plane's lines (`TENANT#…`).
    Timeline = 0,
    /// The API's request lines (`REQUESTS#TENANT#…`).
    Requests = 1,
}

/// The partition of a tenant's request lines: outside the tenant's own, which only the
/// reconciling functions write.
fn requests_pk(tenant: &TenantKey) -> String {
    format!("REQUESTS#{}", tenant.pk())
}

/// Which part of [`TenantStore::list_tenants`] a page token resumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum TenantsPart {
    Specs,
    Statuses,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct TenantsToken {
    part: TenantsPart,
    /// The index position to resume from (empty: that part's start).
    key: String,
}

/// An index page's last key as an opaque token (every key attribute of ours is a string).
fn page_token_of(last_key: Option<&HashMap<String, AttributeValue>>) -> Option<String> {
    last_key.map(|keys| {
        let plain: HashMap<String, String> = keys
            .iter()
            .filter_map(|(k, v)| v.as_s().ok().map(|s| (k.clone(), s.clone())))
            .collect();
        serde_json::to_string(&plain).unwrap_or_default()
    })
}

/// The exclusive start key a page token stands for.
fn start_key_of(
    page_token: Option<String>,
) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
    let Some(token) = page_token.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let keys: HashMap<String, String> = serde_json::from_str(&token)
        .map_err(|e| StoreError::Rejected(format!("a page token the store never gave out: {e}")))?;
    Ok(Some(
        keys.into_iter()
            .map(|(k, v)| (k, AttributeValue::S(v)))
            .collect(),
    ))
}

/// The error of a conditional write: `Conflict` when the condition failed.
fn conditional(failure: AwsFailure) -> StoreError {
    if failure.code.as_deref() == Some("ConditionalCheckFailedException") {
        StoreError::Conflict
    } else {
        store_error(failure)
    }
}

/// Stands in for a STATUS row that does not decode: failed, no SPEC fingerprint (so the next
/// reconcile acts on the SPEC afresh), and the stack's location when it could be read.
fn unreadable_status(
    tenant: &TenantKey,
    error: &str,
    location: Option<StackLocation>,
    version: Option<u64>,
) -> TenantStatus {
    TenantStatus {
        reason: Some(format!(
            "the STATUS row could not be read ({error}); it is rewritten"
        )),
        retryable: true,
        location,
        version: version.unwrap_or(0),
        ..TenantStatus::new(tenant.as_str(), Status::Failed, "")
    }
}

/// A failure that may heal (throttling, a server fault) is `Unavailable`; one that cannot (a
/// ValidationException) is `Rejected`.
fn store_error(failure: AwsFailure) -> StoreError {
    match failure.healing {
        Healing::Transient => StoreError::Unavailable(failure.message),
        Healing::Permanent => StoreError::Rejected(failure.message),
    }
}

#[async_trait]
impl TenantStore for DynamoStore {
    async fn load(&self, tenant: &TenantKey) -> Result<Snapshot, StoreError> {
        // The two rows by their keys, from their two tables, in one call: any writer may put
        // rows in a tenant's partition of the SPEC table (`SPEC.bak1`, …), and a Query of a key
        // range would read those too, up to its 1 MB page.
        let keys = |table: &str, sk: &str| {
            KeysAndAttributes::builder()
                .consistent_read(true)
                .keys(row_key(tenant.pk(), sk))
                .build()
                .map(|keys| (table.to_owned(), keys))
                .map_err(|e| StoreError::Unavailable(format!("cannot build the read: {e}")))
        };
        let output = self
            .client
            .batch_get_item()
            .set_request_items(Some(HashMap::from([
                keys(&self.specs, SPEC_SK)?,
                keys(&self.control, STATUS_SK)?,
            ])))
            .send()
            .await
            .map_err(|e| store_error(AwsFailure::from_sdk(&e)))?;
        // Keys left unprocessed are throttling by another name: transient, and the trigger's
        // retry policy (not a loop here) reads again.
        if output
            .unprocessed_keys
            .as_ref()
            .is_some_and(|left| left.values().any(|k| !k.keys().is_empty()))
        {
            return Err(StoreError::Unavailable(
                "DynamoDB left the tenant's rows unprocessed (throttled); read again".into(),
            ));
        }
        let mut responses = output.responses.unwrap_or_default();
        // Only the row asked of each table counts: a STATUS-looking row in the SPEC table (a
        // writer's forgery) is never read, and neither is anything else.
        let row_of = |rows: Option<Vec<Row>>, sk: &str| {
            rows.unwrap_or_default()
                .into_iter()
                .find(|item| matches!(item.get("sk"), Some(AttributeValue::S(key)) if key == sk))
        };
        let mut snapshot = Snapshot {
            spec: row_of(responses.remove(&self.specs), SPEC_SK).map(Item::from),
            ..Snapshot::default()
        };
        if let Some(item) = row_of(responses.remove(&self.control), STATUS_SK) {
            snapshot.status_version = match item.get("version") {
                Some(AttributeValue::N(n)) => n.parse().ok(),
                _ => None,
            };
            let location = item.get("location").cloned();
            match serde_dynamo::from_item::<_, TenantStatus>(item) {
                Ok(status) => snapshot.status = Some(status),
                // Only the control plane writes STATUS; an unreadable one (a hand edit, a
                // newer release's row) is rewritten, but where the stack is must not be lost:
                // keep the location if it still reads.
                Err(e) => {
                    warn!(error = %e, "unreadable STATUS row; it will be rewritten");
                    snapshot.status = Some(unreadable_status(
                        tenant,
                        &e.to_string(),
                        location.and_then(|l| serde_dynamo::from_attribute_value(l).ok()),
                        snapshot.status_version,
                    ));
                }
            }
        }
        Ok(snapshot)
    }

    async fn list_tenants(
        &self,
        page_token: Option<String>,
    ) -> Result<(Vec<TenantKey>, Option<String>), StoreError> {
        // First every SPEC (the SPEC table's sparse `tenants` index), then every tenant with a
        // STATUS that is not `deleted` but no SPEC (a SPEC removed while its stack is still
        // there: the stream's record of it lost, or its delete still to finish). A tenant with
        // both is listed once, in the first part.
        let (part, start) = match page_token {
            None => (TenantsPart::Specs, None),
            Some(token) => {
                let token: TenantsToken = serde_json::from_str(&token).map_err(|e| {
                    StoreError::Rejected(format!("a page token the store never gave out: {e}"))
                })?;
                (token.part, Some(token.key))
            }
        };
        let start = start_key_of(start)?;
        let (index, table) = match part {
            TenantsPart::Specs => (TENANTS_INDEX, &self.specs),
            TenantsPart::Statuses => (STATUSES_INDEX, &self.control),
        };
        let request = self
            .client
            .scan()
            .table_name(table)
            .index_name(index)
            // Bounded pages: a caller handles each page in one go (a sweep, a rollout step).
            .limit(TENANTS_PAGE)
            .set_exclusive_start_key(start);
        let request = match part {
            TenantsPart::Specs => request
                .filter_expression("sk = :spec")
                .expression_attribute_values(":spec", AttributeValue::S(SPEC_SK.into())),
            TenantsPart::Statuses => request
                .filter_expression("#status <> :deleted")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(
                    ":deleted",
                    AttributeValue::S(Status::Deleted.as_str().into()),
                ),
        };
        let output = request
            .send()
            .await
            .map_err(|e| store_error(AwsFailure::from_sdk(&e)))?;
        let mut tenants: Vec<TenantKey> = output.items().iter().filter_map(tenant_of).collect();
        tenants.sort();
        tenants.dedup();
        if part == TenantsPart::Statuses {
            let with_spec = self.with_spec(&tenants, false).await?;
            tenants.retain(|tenant| !with_spec.contains(tenant));
        }
        let next = match (page_token_of(output.last_evaluated_key()), part) {
            (Some(key), part) => Some(TenantsToken { part, key }),
            (None, TenantsPart::Specs) => Some(TenantsToken {
                part: TenantsPart::Statuses,
                key: String::new(),
            }),
            (None, TenantsPart::Statuses) => None,
        };
        Ok((
            tenants,
            next.map(|token| serde_json::to_string(&token).unwrap_or_default()),
        ))
    }

    async fn list_in_status(
        &self,
        status: Status,
        page_token: Option<String>,
    ) -> Result<(Vec<StatusSummary>, Option<String>), StoreError> {
        let start = start_key_of(page_token)?;
        let output = self
            .client
            .query()
            .table_name(&self.control)
            .index_name(BY_STATUS_INDEX)
            .key_condition_expression("#status = :status")
            .projection_expression("pk, updated_at")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", AttributeValue::S(status.as_str().into()))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| store_error(AwsFailure::from_sdk(&e)))?;
        let found = output
            .items()
            .iter()
            .filter_map(|item| {
                let tenant = tenant_of(item)?;
                let updated_at = match item.get("updated_at") {
                    Some(AttributeValue::S(at)) => at.clone(),
                    _ => String::new(),
                };
                Some(StatusSummary { tenant, updated_at })
            })
            .collect();
        Ok((found, page_token_of(output.last_evaluated_key())))
    }

    async fn put_status(
        &self,
        tenant: &TenantKey,
        status: &TenantStatus,
        expected_version: Option<u64>,
    ) -> Result<(), StoreError> {
        let item = status_item(tenant, status)?;
        let request = self
            .client
            .put_item()
            .table_name(&self.control)
            .set_item(Some(item))
            .expression_attribute_names("#version", "version");
        let expect =
            |request: aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder,
             version: String| {
                request
                    .condition_expression("#version = :expected")
                    .expression_attribute_values(":expected", AttributeValue::N(version))
            };
        let first = match expected_version {
            // Also over a hand-written version that is not a number, which would otherwise
            // block every write.
            None => request
                .clone()
                .condition_expression(
                    "attribute_not_exists(#version) OR NOT attribute_type(#version, :number)",
                )
                .expression_attribute_values(":number", AttributeValue::S("N".into()))
                // A refusal shows the row as stored (no read, no other grant).
                .return_values_on_condition_check_failure(
                    aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
                ),
            Some(version) => expect(request.clone(), version.to_string()),
        };
        let error = match first.send().await {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        // A hand-written version that is a number but no counter (`1.5`, 39 digits): the
        // read found none, so the write above cannot hold. Write over exactly the value
        // stored, so a row changed meanwhile still wins.
        let odd_version = error
            .as_service_error()
            .and_then(|e| match e {
                aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(
                    refused,
                ) => refused.item()?.get("version"),
                _ => None,
            })
            .and_then(|v| match v {
                AttributeValue::N(n) if n.parse::<u64>().is_err() => Some(n.clone()),
                _ => None,
            });
        match odd_version.filter(|_| expected_version.is_none()) {
            Some(stored) => {
                warn!(version = %stored, "STATUS version is not a counter; writing over it");
                expect(request, stored)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| conditional(AwsFailure::from_sdk(&e)))
            }
            None => Err(conditional(AwsFailure::from_sdk(&error))),
        }
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
        use aws_sdk_dynamodb::types::{ConditionCheck, Put, TransactWriteItem};
        if entries.is_empty() && current.is_none() {
            return self.put_status(tenant, status, expected_version).await;
        }
        // One line per sort key (two on one item would fail the whole transaction; a repeated
        // line replaces itself anyway), and at most 100 items: STATUS, the check, 98 lines; any
        // more follow on their own.
        let mut seen = std::collections::BTreeSet::new();
        let entries: Vec<&AuditEntry> = entries
            .iter()
            .filter(|e| seen.insert(e.sort_key()))
            .collect();
        let (together, after) = entries.split_at(entries.len().min(98));
        let built = |e: aws_sdk_dynamodb::error::BuildError| {
            StoreError::Unavailable(format!("cannot build the write: {e}"))
        };
        let mut put = Put::builder()
            .table_name(&self.control)
            .set_item(Some(status_item(tenant, status)?))
            .expression_attribute_names("#version", "version");
        put = match expected_version {
            Some(version) => put
                .condition_expression("#version = :expected")
                .expression_attribute_values(":expected", AttributeValue::N(version.to_string())),
            None => put
                .condition_expression(
                    "attribute_not_exists(#version) OR NOT attribute_type(#version, :number)",
                )
                .expression_attribute_values(":number", AttributeValue::S("N".into())),
        };
        let mut items = vec![
            TransactWriteItem::builder()
                .put(put.build().map_err(built)?)
                .build(),
        ];
        for entry in together {
            let line = Put::builder()
                .table_name(&self.control)
                .set_item(Some(audit_item(tenant, entry, self.audit_retention)?))
                .build()
                .map_err(built)?;
            items.push(TransactWriteItem::builder().put(line).build());
        }
        // The version assigned is still the fleet's current one (it may come from a cache).
        let guarded = current.is_some();
        if let Some(guard) = current {
            let check = ConditionCheck::builder()
                .table_name(&self.control)
                .key("pk", AttributeValue::S(TEMPLATES_PK.into()))
                .key("sk", AttributeValue::S(CURRENT_TEMPLATE_SK.into()));
            let check = match guard {
                CurrentGuard::Names(version) => check
                    .condition_expression("#current = :current")
                    .expression_attribute_names("#current", "current_version")
                    .expression_attribute_values(":current", AttributeValue::S(version)),
                CurrentGuard::NoRow => check.condition_expression("attribute_not_exists(pk)"),
            };
            items.push(
                TransactWriteItem::builder()
                    .condition_check(check.build().map_err(built)?)
                    .build(),
            );
        }
        let error = match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => {
                for entry in after {
                    if let Err(e) = self.append_audit(tenant, entry).await {
                        warn!(error = %e, action = %entry.action, "audit entry not written");
                    }
                }
                return Ok(());
            }
            Err(e) => e,
        };
        let codes: Vec<String> = error
            .as_service_error()
            .and_then(|e| match e {
                aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(
                    cancelled,
                ) => Some(cancelled.cancellation_reasons()),
                _ => None,
            })
            .unwrap_or_default()
            .iter()
            .map(|reason| reason.code().unwrap_or("None").to_owned())
            .collect();
        let failed = |code: &str| codes.iter().any(|c| c == code);
        // Another transaction on the same item (the STATUS or CURRENT row) was in flight:
        // decide again, as on a lost condition.
        if failed("TransactionConflict") {
            return Err(StoreError::Conflict);
        }
        if failed("ThrottlingError")
            || failed("ProvisionedThroughputExceeded")
            || failed("RequestLimitExceeded")
        {
            return Err(StoreError::Unavailable(format!(
                "DynamoDB throttled the write: {}",
                codes.join(", ")
            )));
        }
        let status_refused = codes.first().is_some_and(|c| c == "ConditionalCheckFailed");
        // The current version moved since it was read: decide again on a fresh read.
        if guarded && codes.len() > 1 && codes.last().is_some_and(|c| c == "ConditionalCheckFailed")
        {
            return Err(StoreError::Conflict);
        }
        match (status_refused, expected_version) {
            (true, Some(_)) => Err(StoreError::Conflict),
            // A first write over a row whose version is a hand-written number that is no
            // counter: the single write knows how to go over it (and says Conflict otherwise).
            (true, None) => {
                let lines: Vec<AuditEntry> = entries.iter().map(|e| (*e).clone()).collect();
                crate::ports::put_status_then_lines(self, tenant, status, None, &lines).await
            }
            (false, _) => Err(store_error(AwsFailure::from_sdk(&error))),
        }
    }

    async fn append_audit(&self, tenant: &TenantKey, entry: &AuditEntry) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.control)
            .set_item(Some(audit_item(tenant, entry, self.audit_retention)?))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error(AwsFailure::from_sdk(&e)))
    }

    async fn append_request(
        &self,
        tenant: &TenantKey,
        entry: &AuditEntry,
    ) -> Result<(), StoreError> {
        let mut item = audit_item(tenant, entry, self.audit_retention)?;
        item.insert("pk".into(), AttributeValue::S(requests_pk(tenant)));
        self.client
            .put_item()
            .table_name(&self.control)
            .set_item(Some(storable(item)?))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_error(AwsFailure::from_sdk(&e)))
    }

    async fn audit_trail(
        &self,
        tenant: &TenantKey,
        page_token: Option<String>,
        limit: usize,
    ) -> Result<(Vec<AuditEntry>, Option<String>), StoreError> {
        // Two partitions, merged by sort key: the control plane's lines and the API's request
        // lines. The token holds where each was read to (`None` in `done`: nothing more).
        let limit = limit.clamp(1, 1000);
        let cursor: TrailCursor = match page_token {
            None => TrailCursor::default(),
            Some(token) => serde_json::from_str(&token).map_err(|e| {
                StoreError::Rejected(format!("a page token the store never gave out: {e}"))
            })?,
        };
        let mut lines: Vec<(String, Side, Option<AuditEntry>)> = Vec::new();
        let mut more = [false, false];
        for side in [Side::Timeline, Side::Requests] {
            let (done, after, pk) = match side {
                Side::Timeline => (cursor.timeline_done, &cursor.timeline, tenant.pk()),
                Side::Requests => (cursor.requests_done, &cursor.requests, requests_pk(tenant)),
            };
            if done {
                continue;
            }
            let (read, more_of_side) = self.events(pk, after.clone(), limit).await?;
            more[side as usize] = more_of_side;
            lines.extend(read.into_iter().map(|(sk, entry)| (sk, side, entry)));
        }
        lines.sort_by(|a, b| a.0.cmp(&b.0));
        // Nothing past where a side with more to read stopped: its next lines may come first.
        let frontier = [Side::Timeline, Side::Requests]
            .into_iter()
            .filter(|side| more[*side as usize])
            .filter_map(|side| {
                lines
                    .iter()
                    .rev()
                    .find(|l| l.1 == side)
                    .map(|l| l.0.clone())
            })
            .min();
        let keep = lines
            .iter()
            .take(limit)
            .take_while(|line| frontier.as_ref().is_none_or(|f| &line.0 <= f))
            .count();
        let mut left = [0usize, 0usize];
        for (_, side, _) in lines.iter().skip(keep) {
            left[*side as usize] += 1;
        }
        lines.truncate(keep);
        let mut next = cursor.clone();
        for (sk, side, _) in &lines {
            match side {
                Side::Timeline => next.timeline = Some(sk.clone()),
                Side::Requests => next.requests = Some(sk.clone()),
            }
        }
        // A side is done once it has no more pages and every line it returned was taken.
        next.timeline_done |= !more[Side::Timeline as usize] && left[Side::Timeline as usize] == 0;
        next.requests_done |= !more[Side::Requests as usize] && left[Side::Requests as usize] == 0;
        let entries = lines
            .into_iter()
            .filter_map(|(_, _, entry)| entry)
            .collect();
        let token = (!(next.timeline_done && next.requests_done))
            .then(|| serde_json::to_string(&next).unwrap_or_default());
        Ok((entries, token))
    }

    async fn remove_spec_for_decommission(
        &self,
        tenant: &TenantKey,
        decommission_date: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        // Not one transaction: a cancelled TransactWriteItems disturbs moto's stream (see
        // ../shared/notes/local-aws.md). An audit entry without the removal only says it was tried.
        let key = key_of(tenant.pk(), SPEC_SK.into())?;
        let date = AttributeValue::S(decommission_date.into());
        comparable(&HashMap::from([(
            "decommission_date".to_owned(),
            date.clone(),
        )]))?;
        self.append_audit(tenant, audit).await?;
        self.client
            .delete_item()
            .table_name(&self.specs)
            .set_key(Some(key))
            .condition_expression("#date = :date")
            .expression_attribute_names("#date", "decommission_date")
            .expression_attribute_values(":date", date)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| conditional(AwsFailure::from_sdk(&e)))
    }
}

/// How long a stored idempotent response is kept.
pub const IDEMPOTENCY_TTL: chrono::Duration = chrono::Duration::hours(24);
const IDEMPOTENCY_SK: &str = "IDEMPOTENCY";

/// `#a0 = :a0 AND #a1 = :a1 ...` over every attribute of `expected`: the item is unchanged
/// (a writer that changed or removed any of them makes the condition fail). A stored value
/// DynamoDB itself would refuse (only the emulator holds such rows) cannot be sent as an operand:
/// its type is compared instead, so such a SPEC can still be repaired or removed; an attribute
/// with an empty name cannot be named at all.
fn unchanged(
    expected: &Item,
) -> (
    String,
    HashMap<String, String>,
    HashMap<String, AttributeValue>,
) {
    let mut parts = vec!["attribute_exists(pk)".to_owned()];
    let mut names = HashMap::new();
    let mut values = HashMap::new();
    let mut attributes: Vec<(&String, &serde_dynamo::AttributeValue)> =
        expected.inner().iter().collect();
    attributes.sort_by(|a, b| a.0.cmp(b.0));
    for (index, (name, value)) in attributes.iter().copied().enumerate() {
        if name == "pk" || name == "sk" || name.is_empty() {
            continue;
        }
        let refused = check_values(&HashMap::from([(name.clone(), value.clone())])).is_err();
        // A NULL cannot be compared with `=`: check its type instead.
        let (part, operand) = match value {
            serde_dynamo::AttributeValue::Null(_) => (
                format!("attribute_type(#a{index}, :a{index})"),
                AttributeValue::S("NULL".into()),
            ),
            other if refused => (
                format!("attribute_type(#a{index}, :a{index})"),
                AttributeValue::S(model::dynamo_rules::type_name(other).into()),
            ),
            other => (
                format!("#a{index} = :a{index}"),
                AttributeValue::from(other.clone()),
            ),
        };
        parts.push(part);
        names.insert(format!("#a{index}"), name.clone());
        values.insert(format!(":a{index}"), operand);
    }
    // A field another writer added meanwhile changes the SPEC too.
    for (index, field) in SPEC_ATTRIBUTES.iter().enumerate() {
        if !attributes.iter().any(|(name, _)| name.as_str() == *field) {
            parts.push(format!("attribute_not_exists(#n{index})"));
            names.insert(format!("#n{index}"), (*field).to_owned());
        }
    }
    (parts.join(" AND "), names, values)
}

#[async_trait]
impl SpecStore for DynamoStore {
    async fn create_spec(&self, tenant: &TenantKey, item: &Item) -> Result<(), StoreError> {
        self.put_new(&self.specs, spec_item(tenant, item)?).await
    }

    async fn replace_spec(
        &self,
        tenant: &TenantKey,
        item: &Item,
        expected: &Item,
    ) -> Result<(), StoreError> {
        let item = spec_item(tenant, item)?;
        let (condition, names, values) = unchanged(expected);
        comparable(&values)?;
        self.client
            .put_item()
            .table_name(&self.specs)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_names((!names.is_empty()).then_some(names))
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| conditional(AwsFailure::from_sdk(&e)))
    }

    async fn delete_spec(&self, tenant: &TenantKey, expected: &Item) -> Result<(), StoreError> {
        let key = key_of(tenant.pk(), SPEC_SK.into())?;
        let (condition, names, values) = unchanged(expected);
        comparable(&values)?;
        self.client
            .delete_item()
            .table_name(&self.specs)
            .set_key(Some(key))
            .condition_expression(condition)
            .set_expression_attribute_names((!names.is_empty()).then_some(names))
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| conditional(AwsFailure::from_sdk(&e)))
    }

    async fn list_specs(
        &self,
        page_token: Option<String>,
        limit: usize,
    ) -> Result<(Vec<TenantKey>, Option<String>), StoreError> {
        let limit = limit.max(1);
        let mut rows: Vec<HashMap<String, AttributeValue>> = Vec::new();
        let mut start = start_key_of(page_token)?;
        loop {
            // The index holds SPEC rows, and any other row a writer gave a `tenant_id`.
            let wanted = i32::try_from(limit - rows.len()).unwrap_or(i32::MAX);
            let output = self
                .client
                .scan()
                .table_name(&self.specs)
                .index_name(TENANTS_INDEX)
                .filter_expression("sk = :spec")
                .expression_attribute_values(":spec", AttributeValue::S(SPEC_SK.into()))
                .set_exclusive_start_key(start.take())
                .limit(wanted)
                .send()
                .await
                .map_err(|e| store_error(AwsFailure::from_sdk(&e)))?;
            rows.extend(output.items().iter().cloned());
            let tenants_of = |rows: &[HashMap<String, AttributeValue>]| -> Vec<TenantKey> {
                rows.iter().filter_map(tenant_of).collect()
            };
            if rows.len() > limit {
                // More than a page: stop after the last one returned (its keys are the index
                // position a scan resumes from).
                rows.truncate(limit);
                return Ok((tenants_of(&rows), page_token_of(rows.last())));
            }
            match output.last_evaluated_key {
                Some(last) if rows.len() < limit => start = Some(last),
                Some(last) => return Ok((tenants_of(&rows), page_token_of(Some(&last)))),
                None => return Ok((tenants_of(&rows), None)),
            }
        }
    }

    async fn list_unindexed(
        &self,
        page_token: Option<String>,
        limit: usize,
    ) -> Result<(Vec<(TenantKey, String)>, Option<String>), StoreError> {
        let limit = limit.max(1);
        let mut start = start_key_of(page_token)?;
        let mut found: Vec<(TenantKey, String)> = Vec::new();
        let mut scanned = 0;
        loop {
            scanned += 1;
            let output = self
                .client
                .scan()
                .table_name(&self.control)
                .index_name(STATUSES_INDEX)
                // The table's keys and the index's: where a scan resumes after the row.
                .projection_expression("pk, sk, tenant_id")
                .limit(self.scan_page)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| store_error(AwsFailure::from_sdk(&e)))?;
            let rows: Vec<(TenantKey, String)> = output
                .items()
                .iter()
                .filter_map(|row| Some((tenant_of(row)?, page_token_of(Some(row))?)))
                .collect();
            let tenants: Vec<TenantKey> = rows.iter().map(|(tenant, _)| tenant.clone()).collect();
            let indexed = self.with_spec(&tenants, true).await?;
            found.extend(
                rows.into_iter()
                    .filter(|(tenant, _)| !indexed.contains(tenant)),
            );
            if found.len() > limit {
                // More than a page: stop after the last one returned.
                found.truncate(limit);
                let next = found.last().map(|(_, resume)| resume.clone());
                return Ok((found, next));
            }
            match output.last_evaluated_key {
                Some(last) if found.len() < limit && scanned < UNINDEXED_SCAN_PAGES => {
                    start = Some(last)
                }
                Some(last) => return Ok((found, page_token_of(Some(&last)))),
                None => return Ok((found, None)),
            }
        }
    }

    fn resume_after(&self, tenant: &TenantKey) -> String {
        // The index position of the tenant's SPEC row: the table's keys and the index's.
        let keys = HashMap::from([
            ("pk".to_owned(), AttributeValue::S(tenant.pk())),
            ("sk".to_owned(), AttributeValue::S(SPEC_SK.into())),
            (
                "tenant_id".to_owned(),
                AttributeValue::S(tenant.as_str().to_owned()),
            ),
        ]);
        page_token_of(Some(&keys)).unwrap_or_default()
    }

    async fn idempotency_record(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.control)
            .consistent_read(true)
            .key("pk", AttributeValue::S(idempotency_pk(scope, key)))
            .key("sk", AttributeValue::S(IDEMPOTENCY_SK.into()))
            .send()
            .await
            .map_err(|e| store_error(AwsFailure::from_sdk(&e)))?;
        let Some(item) = output.item else {
            return Ok(None);
        };
        // TTL deletes within days, not at once: an expired record counts as gone.
        let expired = match item.get("expires_at") {
            Some(AttributeValue::N(at)) => at
                .parse::<i64>()
                .is_ok_and(|at| at <= chrono::Utc::now().timestamp()),
            _ => false,
        };
        if expired {
            return Ok(None);
        }
        serde_dynamo::from_item(item)
            .map(Some)
            .map_err(|e| StoreError::Unavailable(format!("unreadable idempotency record: {e}")))
    }

    async fn claim_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        claim: &IdempotencyRecord,
    ) -> Result<(), StoreError> {
        // Free when there is no record, when it expired (TTL deletes within days, not at
        // once), or when it is a claim past its hold (its request died).
        self.client
            .put_item()
            .table_name(&self.control)
            .set_item(Some(idempotency_item(scope, key, claim)?))
            .condition_expression(
                "attribute_not_exists(pk) OR expires_at <= :now \
                 OR (response_status = :in_flight AND claimed_until <= :now)",
            )
            .expression_attribute_values(
                ":now",
                AttributeValue::N(chrono::Utc::now().timestamp().to_string()),
            )
            .expression_attribute_values(":in_flight", AttributeValue::N("0".into()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| conditional(AwsFailure::from_sdk(&e)))
    }

    async fn finish_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        record: &IdempotencyRecord,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.control)
            .set_item(Some(idempotency_item(scope, key, record)?))
            .condition_expression("request_hash = :hash AND response_status = :in_flight")
            .expression_attribute_values(":hash", AttributeValue::S(record.request_hash.clone()))
            .expression_attribute_values(":in_flight", AttributeValue::N("0".into()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| conditional(AwsFailure::from_sdk(&e)))
    }

    async fn release_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        request_hash: &str,
    ) -> Result<(), StoreError> {
        let released = self
            .client
            .delete_item()
            .table_name(&self.control)
            .key("pk", AttributeValue::S(idempotency_pk(scope, key)))
            .key("sk", AttributeValue::S(IDEMPOTENCY_SK.into()))
            .condition_expression("request_hash = :hash AND response_status = :in_flight")
            .expression_attribute_values(":hash", AttributeValue::S(request_hash.into()))
            .expression_attribute_values(":in_flight", AttributeValue::N("0".into()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| conditional(AwsFailure::from_sdk(&e)));
        match released {
            Ok(()) | Err(StoreError::Conflict) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The key of one row.
fn row_key(pk: String, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk)),
        ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}

/// Idempotency records live under their own pk, outside every tenant and index.
/// The scope's length comes first, so no caller's scope and key can spell another's
/// (`alice#x` + `y` is not `alice` + `x#y`).
fn idempotency_pk(scope: &str, key: &str) -> String {
    format!("IDEMPOTENCY#{}#{scope}#{key}", scope.len())
}

/// Template versions and the fleet's current one share one partition, outside every tenant.
const TEMPLATES_PK: &str = "TEMPLATES";
const TEMPLATE_SK_PREFIX: &str = "VERSION#";
const CURRENT_TEMPLATE_SK: &str = "CURRENT";
/// Rollouts and the active-rollout slot share one partition; each rollout's members have their
/// own (`ROLLOUT#<id>`).
const ROLLOUTS_PK: &str = "ROLLOUTS";
const ROLLOUT_SK_PREFIX: &str = "ROLLOUT#";
const ACTIVE_ROLLOUT_SK: &str = "ACTIVE";
/// The rollout driver's lease: one driver steps the rollouts at a time.
const DRIVER_LEASE_SK: &str = "DRIVER";
const MEMBER_SK_PREFIX: &str = "M#";
/// A member's tenant is stored under this name: `tenant_id` would put it in the tenants index.
const MEMBER_TENANT_ATTRIBUTE: &str = "member_tenant";

fn encode<T: serde::Serialize>(
    value: &T,
    pk: String,
    sk: String,
) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let mut item: HashMap<String, AttributeValue> = serde_dynamo::to_item(value)
        .map_err(|e| StoreError::Unavailable(format!("cannot encode a row: {e}")))?;
    item.insert("pk".into(), AttributeValue::S(pk));
    item.insert("sk".into(), AttributeValue::S(sk));
    Ok(item)
}

fn decoded<T: serde::de::DeserializeOwned>(
    item: HashMap<String, AttributeValue>,
) -> Result<T, StoreError> {
    serde_dynamo::from_item(item)
        .map_err(|e| StoreError::Unavailable(format!("unreadable row: {e}")))
}

fn members_pk(rollout: &str) -> String {
    format!("ROLLOUT#{rollout}")
}

/// A rollout member (its tenant under another name: no index holds members).
pub(crate) fn member_item(
    rollout: &str,
    member: &model::rollout::Member,
) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let mut item = encode(
        member,
        members_pk(rollout),
        format!("{MEMBER_SK_PREFIX}{}", member.order),
    )?;
    if let Some(tenant) = item.remove("tenant_id") {
        item.insert(MEMBER_TENANT_ATTRIBUTE.into(), tenant);
    }
    storable(item)
}

impl DynamoStore {
    /// Up to `limit` timeline items of partition `pk` after sort key `after`, each with its
    /// sort key (`None` for an item that is not ours to interpret: skipped, but read past), and
    /// whether more may follow.
    /// Up to `limit` rows of partition `pk` whose sort key starts with `prefix`, after sort key
    /// `after`, in order (a consistent read), and the sort key to resume after when more may
    /// follow.
    async fn page_of(
        &self,
        pk: String,
        prefix: &str,
        after: Option<String>,
        limit: usize,
    ) -> Result<(Vec<Row>, Option<String>), StoreError> {
        let start = after.map(|sk| row_key(pk.clone(), &sk));
        let output = self
            .client
            .query()
            .table_name(&self.control)
            .consistent_read(true)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", AttributeValue::S(pk))
            .expression_attribute_values(":prefix", AttributeValue::S(prefix.into()))
            .set_exclusive_start_key(start)
            .limit(i32::try_from(limit.clamp(1, 1000)).unwrap_or(1000))
            .send()
            .await
            .map_err(|e| store_error(AwsFailure::from_sdk(&e)))?;
        let next = output
            .last_evaluated_key
            .and_then(|key| key.get("sk").and_then(|sk| sk.as_s().ok()).cloned());
        Ok((output.items.unwrap_or_default(), next))
    }

    /// Up to `limit` timeline items of partition `pk` after sort key `after`, each with its
    /// sort key (`None` for an item that is not ours to interpret: skipped, but read past), and
    /// whether more may follow.
    async fn events(
        &self,
        pk: String,
        after: Option<String>,
        limit: usize,
    ) -> Result<(Vec<(String, Option<AuditEntry>)>, bool), StoreError> {
        let (items, next) = self.page_of(pk, EVENT_SK_PREFIX, after, limit).await?;
        let mut lines = Vec::new();
        for item in items {
            let Some(sk) = item.get("sk").and_then(|sk| sk.as_s().ok()).cloned() else {
                continue;
            };
            match serde_dynamo::from_item::<_, AuditEntry>(item) {
                Ok(entry) => lines.push((sk, Some(entry))),
                // A hand-written item under EVENT# is not ours to interpret; skip it.
                Err(e) => {
                    warn!(error = %e, "unreadable audit item skipped");
                    lines.push((sk, None));
                }
            }
        }
        Ok((lines, next.is_some()))
    }

    /// Which of `tenants` have a SPEC, read by key in batches. A key DynamoDB leaves
    /// unprocessed (throttling) counts as having none: that tenant is listed twice in a sweep,
    /// which reconciling makes harmless, rather than not at all.
    /// Which of `tenants` have a SPEC (`indexed`: one the `tenants` index holds, with a string
    /// `tenant_id`).
    async fn with_spec(
        &self,
        tenants: &[TenantKey],
        indexed: bool,
    ) -> Result<std::collections::HashSet<TenantKey>, StoreError> {
        let mut found = std::collections::HashSet::new();
        for chunk in tenants.chunks(BATCH_GET_KEYS) {
            let mut keys = KeysAndAttributes::builder().projection_expression("pk, tenant_id");
            for tenant in chunk {
                keys = keys.keys(row_key(tenant.pk(), SPEC_SK));
            }
            let keys = keys
                .build()
                .map_err(|e| StoreError::Unavailable(format!("cannot build the read: {e}")))?;
            let output = self
                .client
                .batch_get_item()
                .request_items(&self.specs, keys)
                .send()
                .await
                .map_err(|e| store_error(AwsFailure::from_sdk(&e)))?;
            found.extend(
                output
                    .responses
                    .and_then(|mut read| read.remove(&self.specs))
                    .unwrap_or_default()
                    .iter()
                    .filter(|row| {
                        !indexed || matches!(row.get("tenant_id"), Some(AttributeValue::S(_)))
                    })
                    .filter_map(tenant_of),
            );
        }
        Ok(found)
    }

    /// Deletes the `ROLLOUTS` row `sk` if its `attribute` is still `holder` (the active-rollout
    /// slot, the driver lease); a no-op when another holds it or none does.
    async fn delete_held(&self, sk: &str, attribute: &str, holder: &str) -> Result<(), StoreError> {
        match self
            .client
            .delete_item()
            .table_name(&self.control)
            .set_key(Some(key_of(ROLLOUTS_PK.into(), sk.into())?))
            .condition_expression("#holder = :holder")
            .expression_attribute_names("#holder", attribute)
            .expression_attribute_values(":holder", AttributeValue::S(holder.into()))
            .send()
            .await
            .map_err(|e| conditional(AwsFailure::from_sdk(&e)))
        {
            Ok(_) | Err(StoreError::Conflict) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Writes a row of `table` that must not exist yet; `Conflict` when it does.
    async fn put_new(
        &self,
        table: &str,
        item: HashMap<String, AttributeValue>,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map(|_| ())
            .map_err(|e| conditional(AwsFailure::from_sdk(&e)))
    }

    /// Every row of partition `pk` whose sort key starts with `prefix`, in order.
    async fn query_all(
        &self,
        pk: &str,
        prefix: &str,
        forward: bool,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut rows = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.control)
                .consistent_read(true)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", AttributeValue::S(pk.into()))
                .expression_attribute_values(":prefix", AttributeValue::S(prefix.into()))
                .scan_index_forward(forward)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| store_error(AwsFailure::from_sdk(&e)))?;
            rows.extend(output.items().iter().cloned());
            match output.last_evaluated_key {
                Some(last) => start = Some(last),
                None => return Ok(rows),
            }
        }
    }

    async fn get(
        &self,
        pk: &str,
        sk: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.control)
            .consistent_read(true)
            .key("pk", AttributeValue::S(pk.into()))
            .key("sk", AttributeValue::S(sk.into()))
            .send()
            .await
            .map_err(|e| store_error(AwsFailure::from_sdk(&e)))?;
        Ok(output.item)
    }
}

#[async_trait]
impl crate::ports::TemplateStore for DynamoStore {
    async fn put_template(&self, record: &crate::ports::TemplateRecord) -> Result<(), StoreError> {
        self.put_new(&self.control, template_item(record)?).await
    }

    async fn template(
        &self,
        version: &str,
    ) -> Result<Option<crate::ports::TemplateRecord>, StoreError> {
        self.get(TEMPLATES_PK, &format!("{TEMPLATE_SK_PREFIX}{version}"))
            .await?
            .map(decoded::<crate::ports::TemplateRecord>)
            .transpose()
    }

    async fn list_templates(&self) -> Result<Vec<crate::ports::TemplateRecord>, StoreError> {
        let mut records: Vec<crate::ports::TemplateRecord> = self
            .query_all(TEMPLATES_PK, TEMPLATE_SK_PREFIX, true)
            .await?
            .into_iter()
            .map(decoded)
            .collect::<Result<_, _>>()?;
        records.sort_by(|a, b| a.published_at.cmp(&b.published_at));
        Ok(records)
    }

    async fn current_template(&self) -> Result<Option<crate::ports::CurrentTemplate>, StoreError> {
        let Some(item) = self.get(TEMPLATES_PK, CURRENT_TEMPLATE_SK).await? else {
            return Ok(None);
        };
        let version = match item.get("current_version") {
            Some(AttributeValue::S(v)) => v.clone(),
            _ => {
                return Err(StoreError::Unavailable(
                    "unreadable current template row".into(),
                ));
            }
        };
        let row_version = match item.get("version") {
            Some(AttributeValue::N(n)) => n.parse().unwrap_or(0),
            _ => 0,
        };
        Ok(Some(crate::ports::CurrentTemplate {
            version,
            row_version,
        }))
    }

    async fn set_current_template(
        &self,
        version: &str,
        expected: Option<u64>,
    ) -> Result<(), StoreError> {
        let next = expected.map_or(1, |v| v.saturating_add(1));
        let request = self
            .client
            .put_item()
            .table_name(&self.control)
            .set_item(Some(current_template_item(version, next)?))
            .expression_attribute_names("#version", "version");
        let request = match expected {
            None => request.condition_expression("attribute_not_exists(#version)"),
            Some(expected) => request
                .condition_expression("#version = :expected")
                .expression_attribute_values(":expected", AttributeValue::N(expected.to_string())),
        };
        request
            .send()
            .await
            .map(|_| ())
            .map_err(|e| conditional(AwsFailure::from_sdk(&e)))
    }
}

#[async_trait]
impl crate::ports::RolloutStore for DynamoStore {
    async fn create_rollout(&self, rollout: &model::rollout::Rollout) -> Result<(), StoreError> {
        self.put_new(&self.control, rollout_item(rollout)?).await
    }

    async fn rollout(&self, id: &str) -> Result<Option<model::rollout::Rollout>, StoreError> {
        self.get(ROLLOUTS_PK, &format!("{ROLLOUT_SK_PREFIX}{id}"))
            .await?
            .map(decoded)
            .transpose()
    }

    async fn list_rollouts(&self) -> Result<Vec<model::rollout::Rollout>, StoreError> {
        // Ids start with their creation time: newest first is the sort key's reverse order.
        self.query_all(ROLLOUTS_PK, ROLLOUT_SK_PREFIX, false)
            .await?
            .into_iter()
            .map(decoded)
            .collect()
    }

    async fn put_rollout(
        &self,
        rollout: &model::rollout::Rollout,
        expected: u64,
    ) -> Result<(), StoreError> {
        let item = rollout_item(rollout)?;
        self.client
            .put_item()
            .table_name(&self.control)
            .set_item(Some(item))
            .condition_expression("#version = :expected")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":expected", AttributeValue::N(expected.to_string()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| conditional(AwsFailure::from_sdk(&e)))
    }

    async fn active_rollout(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .get(ROLLOUTS_PK, ACTIVE_ROLLOUT_SK)
            .await?
            .and_then(|item| match item.get("rollout_id") {
                Some(AttributeValue::S(id)) => Some(id.clone()),
                _ => None,
            }))
    }

    async fn claim_active(&self, id: &str, replacing: Option<&str>) -> Result<(), StoreError> {
        let request = self
            .client
            .put_item()
            .table_name(&self.control)
            .set_item(Some(active_rollout_item(id)?))
            .expression_attribute_values(":id", AttributeValue::S(id.into()));
        let request = match replacing {
            None => request.condition_expression("attribute_not_exists(pk) OR rollout_id = :id"),
            Some(holder) => request
                .condition_expression(
                    "attribute_not_exists(pk) OR rollout_id = :id OR rollout_id = :holder",
                )
                .expression_attribute_values(":holder", AttributeValue::S(holder.into())),
        };
        request
            .send()
            .await
            .map(|_| ())
            .map_err(|e| conditional(AwsFailure::from_sdk(&e)))
    }

    async fn release_active(&self, id: &str) -> Result<(), StoreError> {
        self.delete_held(ACTIVE_ROLLOUT_SK, "rollout_id", id).await
    }

    async fn members(&self, id: &str) -> Result<Vec<model::rollout::Member>, StoreError> {
        self.query_all(&members_pk(id), MEMBER_SK_PREFIX, true)
            .await?
            .into_iter()
            .map(|mut item| {
                if let Some(tenant) = item.remove(MEMBER_TENANT_ATTRIBUTE) {
                    item.insert("tenant_id".into(), tenant);
                }
                decoded(item)
            })
            .collect()
    }

    async fn add_members(
        &self,
        id: &str,
        members: &[model::rollout::Member],
    ) -> Result<(), StoreError> {
        // One conditional put each: a member already stored (a page planned twice) is kept.
        let items = members
            .iter()
            .map(|member| member_item(id, member))
            .collect::<Result<Vec<_>, _>>()?;
        let writes = items.into_iter().map(|item| async move {
            match self.put_new(&self.control, item).await {
                Ok(()) | Err(StoreError::Conflict) => Ok(()),
                Err(e) => Err(e),
            }
        });
        futures::stream::iter(writes)
            .buffer_unordered(16)
            .collect::<Vec<Result<(), StoreError>>>()
            .await
            .into_iter()
            .collect()
    }

    async fn put_member(
        &self,
        id: &str,
        member: &model::rollout::Member,
        expected: model::rollout::MemberState,
    ) -> Result<(), StoreError> {
        let expected = serde_json::to_value(expected)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        self.client
            .put_item()
            .table_name(&self.control)
            .set_item(Some(member_item(id, member)?))
            .condition_expression("#state = :expected")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":expected", AttributeValue::S(expected))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| conditional(AwsFailure::from_sdk(&e)))
    }

    async fn hold_driver_lease(
        &self,
        holder: &str,
        now: i64,
        until: i64,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.control)
            .set_item(Some(driver_lease_item(holder, until)?))
            .condition_expression(
                "attribute_not_exists(pk) OR holder = :holder OR lease_until < :now",
            )
            .expression_attribute_values(":holder", AttributeValue::S(holder.into()))
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| conditional(AwsFailure::from_sdk(&e)))
    }

    async fn release_driver_lease(&self, holder: &str) -> Result<(), StoreError> {
        self.delete_held(DRIVER_LEASE_SK, "holder", holder).await
    }
}

/// Preview jobs share one partition; each job's tenant previews have their own
/// (`PREVIEW#<id>`, one item per tenant by id).
const PREVIEWS_PK: &str = "PREVIEWS";
const PREVIEW_SK_PREFIX: &str = "PREVIEW#";
const PREVIEW_RESULT_SK_PREFIX: &str = "T#";

fn preview_results_pk(id: &str) -> String {
    format!("{PREVIEW_SK_PREFIX}{id}")
}

/// When a preview item expires (the table's TTL): `PREVIEW_RETENTION` after it was written.
fn preview_expiry() -> AttributeValue {
    let at = chrono::Utc::now() + crate::rollout::preview::PREVIEW_RETENTION;
    AttributeValue::N(at.timestamp().to_string())
}

/// A preview job.
pub(crate) fn preview_item(job: &crate::rollout::preview::PreviewJob) -> Result<Row, StoreError> {
    let mut item = encode(
        job,
        PREVIEWS_PK.into(),
        format!("{PREVIEW_SK_PREFIX}{}", job.id),
    )?;
    item.insert("expires_at".into(), preview_expiry());
    storable(item)
}

/// One tenant's preview (its tenant under another name: no index holds previews).
pub(crate) fn preview_result_item(
    id: &str,
    result: &crate::rollout::preview::TenantPreview,
) -> Result<Row, StoreError> {
    let mut item = encode(
        result,
        preview_results_pk(id),
        format!("{PREVIEW_RESULT_SK_PREFIX}{}", result.tenant_id),
    )?;
    if let Some(tenant) = item.remove("tenant_id") {
        item.insert(MEMBER_TENANT_ATTRIBUTE.into(), tenant);
    }
    item.insert("expires_at".into(), preview_expiry());
    storable(item)
}

#[async_trait]
impl crate::ports::PreviewStore for DynamoStore {
    async fn create_preview(
        &self,
        job: &crate::rollout::preview::PreviewJob,
    ) -> Result<(), StoreError> {
        self.put_new(&self.control, preview_item(job)?).await
    }

    async fn preview(
        &self,
        id: &str,
    ) -> Result<Option<crate::rollout::preview::PreviewJob>, StoreError> {
        self.get(PREVIEWS_PK, &format!("{PREVIEW_SK_PREFIX}{id}"))
            .await?
            .map(decoded)
            .transpose()
    }

    async fn put_preview(
        &self,
        job: &crate::rollout::preview::PreviewJob,
        expected: u64,
    ) -> Result<(), StoreError> {
        let item = preview_item(job)?;
        self.client
            .put_item()
            .table_name(&self.control)
            .set_item(Some(item))
            .condition_expression("#version = :expected")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":expected", AttributeValue::N(expected.to_string()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| conditional(AwsFailure::from_sdk(&e)))
    }

    async fn put_preview_results(
        &self,
        id: &str,
        results: &[crate::rollout::preview::TenantPreview],
    ) -> Result<(), StoreError> {
        let items = results
            .iter()
            .map(|result| preview_result_item(id, result))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let writes = items.into_iter().map(|item| async move {
            self.client
                .put_item()
                .table_name(&self.control)
                .set_item(Some(item))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| store_error(AwsFailure::from_sdk(&e)))
        });
        futures::stream::iter(writes)
            .buffer_unordered(8)
            .collect::<Vec<Result<(), StoreError>>>()
            .await
            .into_iter()
            .collect()
    }

    async fn preview_results(
        &self,
        id: &str,
        page_token: Option<String>,
        limit: usize,
    ) -> Result<(Vec<crate::rollout::preview::TenantPreview>, Option<String>), StoreError> {
        // The page token is the last sort key read.
        let (items, next) = self
            .page_of(
                preview_results_pk(id),
                PREVIEW_RESULT_SK_PREFIX,
                page_token,
                limit,
            )
            .await?;
        let results = items
            .into_iter()
            .map(|mut item| {
                if let Some(tenant) = item.remove(MEMBER_TENANT_ATTRIBUTE) {
                    item.insert("tenant_id".into(), tenant);
                }
                decoded(item)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((results, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sdks_items_are_checked_by_the_models_rules_and_come_back_unchanged() {
        use aws_sdk_dynamodb::primitives::Blob;
        use aws_sdk_dynamodb::types::AttributeValue as Sdk;
        let item: HashMap<String, Sdk> = [
            ("pk".to_owned(), Sdk::S("ROLLOUTS".into())),
            ("sk".to_owned(), Sdk::S("ROLLOUT#r-1".into())),
            (
                "selection".to_owned(),
                Sdk::M([("".to_owned(), Sdk::S("x".into()))].into()),
            ),
            (
                "bs".to_owned(),
                Sdk::Bs(vec![Blob::new([1]), Blob::new([1])]),
            ),
            ("count".to_owned(), Sdk::N("1".repeat(39))),
        ]
        .into();
        let Err(StoreError::Unstorable(refused)) = storable_in(KeyTable::Specs, item) else {
            panic!("refused");
        };
        let fields: Vec<String> = refused.into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["bs[1]", "count", "selection.\"\""]);
        // And what is storable comes back as it was given.
        let fine: HashMap<String, Sdk> = [
            ("pk".to_owned(), Sdk::S("ROLLOUTS".into())),
            ("sk".to_owned(), Sdk::S("ROLLOUT#r-1".into())),
            (
                "bs".to_owned(),
                Sdk::Bs(vec![Blob::new([1]), Blob::new([2])]),
            ),
            ("count".to_owned(), Sdk::N("1".repeat(38))),
            ("flag".to_owned(), Sdk::Bool(true)),
        ]
        .into();
        assert_eq!(storable_in(KeyTable::Specs, fine.clone()).ok(), Some(fine));
    }

    #[test]
    fn a_stored_value_dynamodb_refuses_is_compared_by_its_type_only() {
        let expected: Item = HashMap::from([
            ("pk".to_owned(), AttributeValue::S("TENANT#acme".into())),
            ("sk".to_owned(), AttributeValue::S(SPEC_SK.into())),
            (
                "account_id".to_owned(),
                AttributeValue::S("111111111111".into()),
            ),
            (
                "config".to_owned(),
                AttributeValue::M(HashMap::from([(
                    String::new(),
                    AttributeValue::N("1".repeat(39)),
                )])),
            ),
            (String::new(), AttributeValue::S("unnameable".into())),
        ])
        .into();
        let (condition, names, values) = unchanged(&expected);
        assert_eq!(comparable(&values), Ok(()));
        // Sorted by name: "" (#a0, left out), account_id (#a1), config (#a2).
        assert!(condition.contains("#a1 = :a1"), "{condition}");
        assert!(
            condition.contains("attribute_type(#a2, :a2)"),
            "{condition}"
        );
        assert_eq!(names["#a2"], "config");
        assert_eq!(values[":a2"], AttributeValue::S("M".into()));
        assert!(!names.contains_key("#a0"), "{names:?}");
        assert!(!names.values().any(String::is_empty), "{names:?}");
    }

    #[test]
    fn one_callers_idempotency_key_never_spells_anothers() {
        assert_ne!(
            idempotency_pk("alice#x", "y"),
            idempotency_pk("alice", "x#y")
        );
        assert_eq!(idempotency_pk("alice", "k"), idempotency_pk("alice", "k"));
    }

    #[test]
    fn an_item_dynamodb_would_refuse_is_never_built_for_sending() {
        let spec: Item = HashMap::from([(
            "config".to_owned(),
            AttributeValue::M(HashMap::from([(
                String::new(),
                AttributeValue::S("x".into()),
            )])),
        )])
        .into();
        match spec_item(&TenantKey::new("acme"), &spec) {
            Err(StoreError::Unstorable(errors)) => {
                assert_eq!(errors[0].field, "config.\"\"");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            key_of("TENANT#".to_owned() + &"a".repeat(2048), SPEC_SK.into()),
            Err(StoreError::Unstorable(_))
        ));
    }
}
