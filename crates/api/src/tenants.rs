//! The tenant routes. Writes validate with the control plane's own validation, write the SPEC
//! row conditionally, and return at once: the API never writes STATUS and never reaches a
//! tenant account (no STS; its one CloudFormation call, ValidateTemplate, is for publishing).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use controlplane::ports::{Snapshot, StoreError};
use controlplane::validation::{Validation, answering_fingerprint, validate};
use futures::StreamExt;
use model::audit::AuditEntry;
use model::item_json;
use model::spec::{FieldError, SPEC_ATTRIBUTES, SPEC_SK, TenantKey};
use model::status::Status;
use serde::{Deserialize, Serialize};
use serde_dynamo::{AttributeValue, Item};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::ApiState;
use crate::auth::{Admin, Caller, Role};
use crate::body::{JsonBody, MergePatchBody};
use crate::conditional::{IfMatch, IfNoneMatch};
use crate::idempotency::{IdempotencyKey, Once, idempotent, request_hash};
use crate::paging::Cursor;
use crate::problem::Problem;
use crate::templates::unknown_fields;

/// What a reader sees of a tenant: its desired state and what the control plane last recorded.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TenantView {
    pub tenant_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub config: Map<String, Value>,
    /// The SPEC's pin, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template_version: Option<String>,
    /// The version the fleet assigned the tenant (what it runs without a pin; rollouts move it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_version: Option<String>,
    /// The version its stack is built from (or, when failed, the one it failed to reach).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_template_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decommission_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<Value>,
    /// The SPEC's drift policy (`report`, `revert`); none: the deployment's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
    /// `pending` (written, not yet picked up), or the control plane's status for this SPEC.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub retryable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    pub outputs: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_updated_at: Option<String>,
    /// The drift job's last check of the stack (and the revert started for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<model::drift::DriftRecord>,
}

/// What a create may carry.
const CREATE_FIELDS: &[&str] = &[
    "tenant_id",
    "account_id",
    "region",
    "config",
    "template_version",
    "decommission_date",
    "drift_policy",
];
/// What a PATCH may change (JSON Merge Patch, RFC 7396).
const PATCH_FIELDS: &[&str] = &[
    "account_id",
    "region",
    "config",
    "template_version",
    "decommission_date",
    "drift_policy",
];

/// The SPEC's known fields as JSON, numbers exact (other attributes are kept in the row, not shown).
fn spec_json(item: &Item) -> Map<String, Value> {
    item_json::item_to_json(item)
        .into_iter()
        .filter(|(k, _)| SPEC_ATTRIBUTES.contains(&k.as_str()))
        .collect()
}

/// The tenant's ETag: a hash of the whole stored SPEC item and of the representation served,
/// so any writer's change (a direct put-item too) changes it, and so does anything the control
/// plane records (status, reason, outputs).
pub fn etag_of(item: &Item, view: &TenantView) -> String {
    let view = serde_json::to_value(view).unwrap_or_default();
    let digest = Sha256::digest(format!("{}\n{}", spec_text(item), canonical(&view)).as_bytes());
    format!("\"{}\"", hex::encode(&digest[..12]))
}

/// The whole stored SPEC item as one text (canonical JSON, numbers exact).
fn spec_text(item: &Item) -> String {
    canonical(&Value::Object(item_json::item_to_json(item)))
}

/// JSON with object keys sorted at every level: one text per value.
pub(crate) fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), canonical(v)))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

fn text(map: &Map<String, Value>, name: &str) -> Option<String> {
    map.get(name).and_then(Value::as_str).map(str::to_owned)
}

impl ApiState {
    /// The status a reader sees: the control plane's, if STATUS reflects this SPEC; else pending.
    async fn observed(&self, key: &TenantKey, snapshot: &Snapshot) -> String {
        let Some(status) = &snapshot.status else {
            return "pending".into();
        };
        // A template source that cannot be read answers nothing: shown as pending.
        let current = answering_fingerprint(
            key,
            snapshot.spec.as_ref(),
            status.fleet_version(),
            &self.default_region,
            self.templates.as_ref(),
        )
        .await
        .unwrap_or(None);
        if status.spec_fingerprint == current {
            status.status.as_str().into()
        } else {
            "pending".into()
        }
    }

    async fn view(&self, key: &TenantKey, snapshot: &Snapshot, caller: &Caller) -> TenantView {
        let spec = snapshot.spec.as_ref().map(spec_json).unwrap_or_default();
        let status = snapshot.status.as_ref();
        let observed = self.observed(key, snapshot).await;
        let recorded = status.filter(|_| observed != "pending");
        TenantView {
            tenant_id: key.as_str().to_owned(),
            account_id: text(&spec, "account_id")
                .or_else(|| status.and_then(|s| s.location.as_ref().map(|l| l.account_id.clone()))),
            region: text(&spec, "region")
                .or_else(|| status.and_then(|s| s.location.as_ref().map(|l| l.region.clone()))),
            config: spec
                .get("config")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            template_version: text(&spec, "template_version"),
            assigned_version: status.and_then(|s| s.assigned_version.clone()),
            stack_template_version: status.and_then(|s| s.template_version.clone()),
            decommission_date: text(&spec, "decommission_date"),
            retry: spec.get("retry").cloned(),
            drift_policy: text(&spec, "drift_policy"),
            updated_by: text(&spec, "updated_by").map(|who| shown_actor(caller, who)),
            status: observed,
            reason: recorded.and_then(|s| s.reason.clone()),
            retryable: recorded.is_some_and(|s| s.retryable),
            next_attempt_at: recorded.and_then(|s| s.next_attempt_at.clone()),
            outputs: status.map(|s| s.outputs.clone()).unwrap_or_default(),
            stack_status: status
                .and_then(|s| s.stack_status.as_ref().map(|t| t.as_str().to_owned())),
            status_updated_at: status.map(|s| s.updated_at.clone()),
            drift: status.and_then(|s| s.drift.clone()),
        }
    }

    /// The tenant as `caller` sees it, with its ETag (none once its SPEC is removed).
    async fn tenant(&self, key: &TenantKey, snapshot: &Snapshot, caller: &Caller) -> Tenant {
        let view = self.view(key, snapshot, caller).await;
        Tenant {
            etag: snapshot.spec.as_ref().map(|item| etag_of(item, &view)),
            view,
        }
    }

    /// The tenant as `caller` may see it; 404 for others' tenants and for none at all.
    async fn visible(
        &self,
        caller: &Caller,
        tenant: &str,
    ) -> Result<(TenantKey, Snapshot), Problem> {
        // Not `check_tenant_id`: a row written with an id it refuses is still a tenant, with
        // its `failed` STATUS saying why, and must be readable and removable.
        let Some(key) = TenantKey::addressable(tenant).filter(|_| caller.sees(tenant)) else {
            return Err(Problem::not_found(tenant));
        };
        let snapshot = self.store.load(&key).await?;
        if snapshot.spec.is_none() && snapshot.status.is_none() {
            return Err(Problem::not_found(tenant));
        }
        Ok((key, snapshot))
    }

    /// The 422 of a body naming fields it may not have (`unknown`): those, and every error
    /// validation finds in `known` (the item the rest of the body makes), so one answer names
    /// everything to fix.
    async fn refused_with_unknown(
        &self,
        key: &TenantKey,
        snapshot: Option<&Snapshot>,
        known: Item,
        mut unknown: Vec<FieldError>,
    ) -> Problem {
        match self.checked_item(key, snapshot, known).await {
            Ok(_) => {}
            Err(problem) if !problem.errors.is_empty() => unknown.extend(problem.errors),
            Err(problem) => return problem,
        }
        Problem::invalid(unknown)
    }

    /// The SPEC item with its keys, validated as the control plane will: against the template
    /// version the tenant's STATUS (`snapshot`'s, if any) says the fleet gives it.
    async fn checked_item(
        &self,
        key: &TenantKey,
        snapshot: Option<&Snapshot>,
        mut item: Item,
    ) -> Result<Item, Problem> {
        item.insert("pk".into(), AttributeValue::S(key.pk()));
        item.insert("sk".into(), AttributeValue::S(SPEC_SK.into()));
        let assigned = snapshot
            .and_then(|s| s.status.as_ref())
            .and_then(|s| s.fleet_version());
        match validate(key, &item, assigned, self.templates.as_ref()).await {
            Ok(Validation::Valid(_)) => Ok(item),
            Ok(Validation::Invalid(errors)) => Err(Problem::invalid(errors)),
            Err(e) => Err(e.into()),
        }
    }
}

/// Who a caller is shown as having acted. A tenant sees its own identity and the control
/// plane's (`system`, `unknown`), and `operator` for everyone else: admins' identities are
/// for admins.
pub fn shown_actor(caller: &Caller, actor: String) -> String {
    match &caller.role {
        Role::Admin => actor,
        Role::Tenant(_)
            if actor == caller.subject
                || actor == model::audit::SYSTEM_ACTOR
                || actor == model::audit::UNKNOWN_ACTOR =>
        {
            actor
        }
        Role::Tenant(_) => OPERATOR.to_owned(),
    }
}

/// What a tenant sees in place of an admin's identity.
pub const OPERATOR: &str = "operator";

/// A tenant as an operation answers it: the view and its ETag (none once removed).
#[derive(Clone, Debug, PartialEq)]
pub struct Tenant {
    pub view: TenantView,
    pub etag: Option<String>,
}

/// What a create answers; `replayed` when an Idempotency-Key gave back the first answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Created {
    pub tenant: Tenant,
    pub replayed: bool,
}

/// One page of a listing, and the opaque token of the next.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

fn accepted(tenant: Tenant) -> Response {
    with_etag(
        (StatusCode::ACCEPTED, Json(tenant.view)).into_response(),
        tenant.etag,
    )
}

fn with_etag(mut response: Response, etag: Option<String>) -> Response {
    if let Some(value) = etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// `Location` of what a POST made (on a replay too: it is the same resource).
pub fn with_location(mut response: Response, location: &str) -> Response {
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// A POST's answer: its status, `Location`, and `Idempotent-Replayed` on a replay.
pub fn created_response<T: Serialize>(once: Once<T>, location: &str) -> Response {
    let status = StatusCode::from_u16(once.status).unwrap_or(StatusCode::OK);
    let mut response = with_location(
        with_etag((status, Json(once.value)).into_response(), once.etag),
        location,
    );
    if once.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 100;
/// A page's items are cut short before their JSON passes this: a Lambda function's response
/// is at most 6 MB, and 100 tenants of up to 200 config values each could pass it.
pub const MAX_PAGE_BYTES: usize = 5 * 1024 * 1024;

/// `limit` as a listing takes it: 1-100, 50 if absent.
fn checked_limit(limit: Option<usize>) -> Result<usize, Problem> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if (1..=MAX_LIMIT).contains(&limit) {
        Ok(limit)
    } else {
        Err(Problem::invalid_query(vec![FieldError::new(
            "limit",
            format!("must be an integer 1-{MAX_LIMIT}"),
        )]))
    }
}

/// A query string as the route takes it: 400 for one it cannot read (an unknown parameter, a
/// `limit` that is no number).
pub fn query<T>(
    query: Result<Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, Problem> {
    query
        .map(|Query(q)| q)
        .map_err(|e| Problem::bad_request(e.body_text()))
}

/// `limit` as sent: any integer (one out of range is answered 422 by `checked_limit`, not
/// refused unread); a negative one reads as 0, one too large for a number as the largest.
fn any_integer<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<usize>, D::Error> {
    let Some(text) = Option::<String>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let digits = text.strip_prefix(['+', '-']).unwrap_or(&text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(serde::de::Error::custom(format!(
            "limit must be an integer, got {text:?}"
        )));
    }
    Ok(Some(if text.starts_with('-') {
        0
    } else {
        digits.parse().unwrap_or(usize::MAX)
    }))
}

/// What a listing of tenants asks for (`GET /tenants`' query).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default, deserialize_with = "any_integer")]
    pub limit: Option<usize>,
    pub next: Option<String>,
    pub status: Option<String>,
}

/// What a page of the audit timeline asks for (`GET /tenants/{id}/events`' query).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    #[serde(default, deserialize_with = "any_integer")]
    pub limit: Option<usize>,
    pub next: Option<String>,
}

// ------------------------------------------------------------------------------------------------
// Operations: the one implementation of each. The routes below call them, and so does
// `tenantctl --direct` (as an admin naming its actor), so both write and read alike.

impl ApiState {
    /// Creates a tenant from a create body (admins only); `idempotency_key` makes a retried
    /// request answer as the first one did.
    pub async fn create_tenant(
        &self,
        caller: &Caller,
        body: &Value,
        idempotency_key: &IdempotencyKey,
    ) -> Result<Created, Problem> {
        caller.require_admin("creates tenants")?;
        let Value::Object(fields) = body.clone() else {
            return Err(Problem::bad_request("the body must be a JSON object"));
        };
        let tenant = text(&fields, "tenant_id").unwrap_or_default();
        let unknown = unknown_fields(&fields, CREATE_FIELDS, "");
        if !unknown.is_empty() {
            let mut known = fields.clone();
            known.retain(|name, _| CREATE_FIELDS.contains(&name.as_str()));
            let mut item = item_json::item_from_json(&known);
            item.insert(
                "updated_by".into(),
                AttributeValue::S(caller.subject.clone()),
            );
            return Err(self
                .refused_with_unknown(&TenantKey::new(&tenant), None, item, unknown)
                .await);
        }
        let hash = request_hash("POST", "/tenants", body);
        let subject = caller.subject.clone();
        let once = idempotent(self, caller, idempotency_key, hash, || async move {
            let key = TenantKey::new(&tenant);
            let mut item = item_json::item_from_json(&fields);
            item.insert("updated_by".into(), AttributeValue::S(subject));
            let item = self.checked_item(&key, None, item).await?;
            match self.specs.create_spec(&key, &item).await {
                Ok(()) => {}
                Err(StoreError::Conflict) => {
                    return Err(Problem::conflict(format!(
                        "tenant {tenant:?} already exists"
                    )));
                }
                Err(e) => return Err(e.into()),
            }
            let snapshot = Snapshot {
                spec: Some(item.clone()),
                ..Snapshot::default()
            };
            let made = self.tenant(&key, &snapshot, caller).await;
            Ok(Once::new(
                made.view,
                StatusCode::ACCEPTED.as_u16(),
                made.etag,
            ))
        })
        .await?;
        Ok(Created {
            tenant: Tenant {
                view: once.value,
                etag: once.etag,
            },
            replayed: once.replayed,
        })
    }

    /// The tenant as `caller` may see it, with its ETag.
    pub async fn get_tenant(&self, caller: &Caller, tenant: &str) -> Result<Tenant, Problem> {
        let (key, snapshot) = self.visible(caller, tenant).await?;
        Ok(self.tenant(&key, &snapshot, caller).await)
    }

    /// One page of the tenants `caller` may see, optionally only those in one status.
    pub async fn list_tenants(
        &self,
        caller: &Caller,
        query: &ListQuery,
    ) -> Result<Page<TenantView>, Problem> {
        let limit = checked_limit(query.limit)?;
        let status_filter = match query.status.as_deref() {
            None => None,
            Some(text) => Some(
                serde_json::from_value::<Status>(Value::String(text.to_owned())).map_err(|_| {
                    Problem::invalid_query(vec![FieldError::new(
                        "status",
                        format!(
                            "must be one of creating, updating, deleting, ready, failed, deleted; got {text:?}"
                        ),
                    )])
                })?,
            ),
        };
        // The token belongs to this listing: the endpoint and its filter (`limit` may change
        // from page to page).
        let listing = match status_filter {
            None => "GET /tenants".to_owned(),
            Some(status) => format!("GET /tenants?status={}", status.as_str()),
        };
        let cursor = self.page_tokens.open(&listing, query.next.as_deref())?;

        // A tenant sees only itself.
        if let Role::Tenant(own) = &caller.role {
            let items = match self.visible(caller, own).await {
                Ok((key, snapshot)) => {
                    let view = self.view(&key, &snapshot, caller).await;
                    let wanted = status_filter.is_none_or(|s| s.as_str() == view.status);
                    if wanted { vec![view] } else { Vec::new() }
                }
                Err(_) => Vec::new(),
            };
            return Ok(Page { items, next: None });
        }

        // Each tenant with where the listing resumes just after it (for a page cut short).
        let (keys, mut next): (Vec<(TenantKey, Cursor)>, _) = match status_filter {
            None => self.every_tenant(cursor, limit).await?,
            Some(status) => {
                let (keys, next) = self.in_status(status, cursor, limit).await?;
                let keys = keys
                    .into_iter()
                    .map(|(key, page)| {
                        let after = Cursor {
                            page,
                            after: Some(key.as_str().to_owned()),
                            unindexed: false,
                        };
                        (key, after)
                    })
                    .collect();
                (keys, next)
            }
        };
        let mut items = Vec::with_capacity(keys.len());
        let mut bytes = 0usize;
        let wanted: Vec<TenantKey> = keys.iter().map(|(key, _)| key.clone()).collect();
        let mut views = futures::stream::iter(wanted)
            .map(|key| async move {
                let snapshot = self.store.load(&key).await?;
                Ok::<_, StoreError>(self.view(&key, &snapshot, caller).await)
            })
            .buffered(8);
        // How many of `keys` were read (a page cut short resumes after the last of them).
        let mut read = 0usize;
        while let Some(view) = views.next().await {
            let view = view?;
            // The index has the status STATUS recorded; the view says `pending` once the SPEC
            // is newer than what was recorded: a listing by status shows only what has it.
            if status_filter.is_some_and(|s| s.as_str() != view.status) {
                read += 1;
                continue;
            }
            bytes += serde_json::to_vec(&view).map_or(0, |v| v.len());
            if bytes > self.max_page_bytes && !items.is_empty() {
                // Cut short: the next page starts just after the last tenant read.
                next = Some(keys[read - 1].1.clone());
                break;
            }
            items.push(view);
            read += 1;
        }
        Ok(Page {
            items,
            next: next.map(|cursor| self.page_tokens.issue(&listing, &cursor)),
        })
    }

    /// Up to `limit` of every tenant from `cursor` on, and where the next page starts: first
    /// each SPEC (the `tenants` index), then each tenant with a STATUS that listing leaves out
    /// (its SPEC gone, or invalid without a `tenant_id`): a tenant the control plane recorded
    /// is listed, whatever its SPEC.
    async fn every_tenant(
        &self,
        cursor: Cursor,
        limit: usize,
    ) -> Result<(Vec<(TenantKey, Cursor)>, Option<Cursor>), Problem> {
        let mut keys: Vec<(TenantKey, Cursor)> = Vec::new();
        let mut unindexed_page = None;
        if cursor.unindexed {
            unindexed_page = cursor.page;
        } else {
            let (specs, next) = self.specs.list_specs(cursor.page, limit).await?;
            keys.extend(specs.into_iter().map(|key| {
                let after = Cursor {
                    page: Some(self.specs.resume_after(&key)),
                    ..Cursor::default()
                };
                (key, after)
            }));
            if let Some(page) = next {
                let next = Cursor {
                    page: Some(page),
                    ..Cursor::default()
                };
                return Ok((keys, Some(next)));
            }
            if keys.len() >= limit {
                let next = Cursor {
                    unindexed: true,
                    ..Cursor::default()
                };
                return Ok((keys, Some(next)));
            }
        }
        let (rest, next) = self
            .specs
            .list_unindexed(unindexed_page, limit - keys.len())
            .await?;
        let unindexed = |page: String| Cursor {
            page: Some(page),
            after: None,
            unindexed: true,
        };
        keys.extend(rest.into_iter().map(|(key, after)| (key, unindexed(after))));
        Ok((keys, next.map(unindexed)))
    }

    /// Up to `limit` tenants in `status` from `cursor` on, and where the next page starts.
    /// The index is read a page at a time, in tenant order; a page taken only in part is read
    /// again next time and resumed after the last tenant returned, so a tenant moving in or out
    /// of the status meanwhile never makes the listing skip another.
    async fn in_status(
        &self,
        status: Status,
        cursor: Cursor,
        limit: usize,
    ) -> Result<(Vec<(TenantKey, Option<String>)>, Option<Cursor>), Problem> {
        let mut page = cursor.page;
        let mut after = cursor.after;
        let mut keys: Vec<(TenantKey, Option<String>)> = Vec::new();
        loop {
            let (summaries, index_next) = self.store.list_in_status(status, page.clone()).await?;
            let rest: Vec<TenantKey> = summaries
                .into_iter()
                .map(|s| s.tenant)
                .filter(|t| after.as_deref().is_none_or(|a| t.as_str() > a))
                .collect();
            let room = limit - keys.len();
            let taken = rest.len().min(room);
            let more_here = rest.len() > room;
            keys.extend(rest.into_iter().take(taken).map(|t| (t, page.clone())));
            if more_here {
                let last = keys.last().map(|(k, _)| k.as_str().to_owned());
                return Ok((
                    keys,
                    Some(Cursor {
                        page,
                        after: last,
                        unindexed: false,
                    }),
                ));
            }
            match index_next {
                // A page read whole; more pages, and room for them.
                Some(next) if keys.len() < limit => {
                    page = Some(next);
                    after = None;
                }
                Some(next) => {
                    return Ok((
                        keys,
                        Some(Cursor {
                            page: Some(next),
                            ..Cursor::default()
                        }),
                    ));
                }
                None => return Ok((keys, None)),
            }
        }
    }

    /// Applies a JSON Merge Patch (RFC 7396) to the SPEC, only if `if_match` (required) names
    /// the tenant's current ETag, or is `*`.
    pub async fn patch_tenant(
        &self,
        caller: &Caller,
        tenant: &str,
        body: &Value,
        if_match: &IfMatch,
    ) -> Result<Tenant, Problem> {
        let Value::Object(changes) = body else {
            return Err(Problem::bad_request(
                "the body must be a JSON Merge Patch object",
            ));
        };
        let (key, snapshot) = self.visible(caller, tenant).await?;
        let Some(current) = snapshot.spec.clone() else {
            return Err(Problem::not_found(tenant));
        };
        let unknown = unknown_fields(changes, PATCH_FIELDS, "");
        if !unknown.is_empty() {
            let mut known = changes.clone();
            known.retain(|name, _| PATCH_FIELDS.contains(&name.as_str()));
            let mut item = current.clone();
            item_json::merge_patch(&mut item, &known);
            return Err(self
                .refused_with_unknown(&key, Some(&snapshot), item, unknown)
                .await);
        }
        if !caller.is_admin()
            && (changes.contains_key("account_id") || changes.contains_key("region"))
        {
            return Err(Problem::forbidden(
                "only an admin changes account_id or region",
            ));
        }
        if if_match.is_absent() {
            return Err(Problem::precondition_required());
        }
        self.check_if_match(&key, &snapshot, caller, if_match)
            .await?;
        // Applied to the stored item itself: attributes the patch does not name (a writer's own
        // included) stay as they are, and numbers keep their text.
        let mut item = current.clone();
        item_json::merge_patch(&mut item, changes);
        item.insert(
            "updated_by".into(),
            AttributeValue::S(caller.subject.clone()),
        );
        let item = self.checked_item(&key, Some(&snapshot), item).await?;
        match self.specs.replace_spec(&key, &item, &current).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => return Err(Problem::precondition_failed()),
            Err(e) => return Err(e.into()),
        }
        let snapshot = Snapshot {
            spec: Some(item),
            ..snapshot
        };
        Ok(self.tenant(&key, &snapshot, caller).await)
    }

    /// 412 unless `if_match` passes for the tenant as `caller` sees it now.
    async fn check_if_match(
        &self,
        key: &TenantKey,
        snapshot: &Snapshot,
        caller: &Caller,
        if_match: &IfMatch,
    ) -> Result<(), Problem> {
        if if_match.is_absent() {
            return Ok(());
        }
        let current = self.tenant(key, snapshot, caller).await;
        if if_match.passes(current.etag.as_deref()) {
            Ok(())
        } else {
            Err(Problem::precondition_failed())
        }
    }

    /// Rewrites the SPEC with `change` applied, re-reading on a concurrent write (a few times).
    /// With `if_match`, only the tenant it names is rewritten (a change meanwhile: 412).
    async fn rewrite(
        &self,
        key: &TenantKey,
        caller: &Caller,
        if_match: &IfMatch,
        change: impl Fn(&mut Item),
    ) -> Result<Tenant, Problem> {
        for _ in 0..3 {
            let snapshot = self.store.load(key).await?;
            let Some(current) = snapshot.spec.clone() else {
                return Err(Problem::not_found(key.as_str()));
            };
            self.check_if_match(key, &snapshot, caller, if_match)
                .await?;
            let mut item = current.clone();
            change(&mut item);
            item.insert(
                "updated_by".into(),
                AttributeValue::S(caller.subject.clone()),
            );
            let item = self.checked_item(key, Some(&snapshot), item).await?;
            match self.specs.replace_spec(key, &item, &current).await {
                Ok(()) => {
                    let snapshot = Snapshot {
                        spec: Some(item),
                        ..snapshot
                    };
                    return Ok(self.tenant(key, &snapshot, caller).await);
                }
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Problem::unavailable("the tenant kept changing; try again"))
    }

    /// Runs the tenant's operation again: bumps the SPEC's `retry` (only on the tenant
    /// `if_match` names, when given).
    pub async fn retry_tenant(
        &self,
        caller: &Caller,
        tenant: &str,
        if_match: &IfMatch,
    ) -> Result<Tenant, Problem> {
        let (key, snapshot) = self.visible(caller, tenant).await?;
        if snapshot.spec.is_none() {
            return Err(Problem::not_found(tenant));
        }
        self.rewrite(&key, caller, if_match, |item| {
            // A bump only has to change the value: past the largest it starts again at 0
            // (saturating would leave it unchanged, and nothing would be retried).
            let next = match item.get("retry") {
                Some(AttributeValue::N(n)) => n.parse::<u64>().unwrap_or(0),
                _ => 0,
            }
            .wrapping_add(1);
            item.insert("retry".into(), AttributeValue::N(next.to_string()));
        })
        .await
    }

    /// Removes the SPEC (only if `if_match`, when given, names the tenant's current ETag). A
    /// DeleteItem names no actor, so an audit line naming the caller is written first; `via`
    /// says how the request came (its reason). A tenant removes itself only where the
    /// deployment allows it (`TENANT_SELF_SERVICE_DELETE`).
    pub async fn delete_tenant(
        &self,
        caller: &Caller,
        tenant: &str,
        if_match: &IfMatch,
        via: &str,
    ) -> Result<Tenant, Problem> {
        let (key, snapshot) = self.visible(caller, tenant).await?;
        if !caller.is_admin() && !self.tenant_self_delete {
            return Err(Problem::forbidden(
                "only an admin deletes tenants here (the deployment does not allow \
                 self-service deletion: TenantSelfServiceDelete)",
            ));
        }
        let Some(current) = snapshot.spec.clone() else {
            return Err(Problem::not_found(tenant));
        };
        self.check_if_match(&key, &snapshot, caller, if_match)
            .await?;
        let now = chrono::Utc::now();
        let spec_etag = hex::encode(&Sha256::digest(spec_text(&current).as_bytes())[..12]);
        // Unique per request: two removals of the same content are two lines, never one.
        let id = format!(
            "api-delete-{spec_etag}-{}",
            now.timestamp_nanos_opt().unwrap_or_default()
        );
        let entry = AuditEntry {
            at: model::time::rfc3339(now),
            id,
            action: model::audit::AuditAction::SpecRemoved,
            actor: caller.subject.clone(),
            requested_by: None,
            result: "accepted".into(),
            reason: Some(via.to_owned()),
        };
        self.store.append_request(&key, &entry).await?;
        match self.specs.delete_spec(&key, &current).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => {
                // A line of its own beside the accepted one, which it must not replace.
                let refused = AuditEntry {
                    id: format!("{}-refused", entry.id),
                    result: "refused".into(),
                    reason: Some("the tenant changed meanwhile: not removed".into()),
                    ..entry
                };
                self.store.append_request(&key, &refused).await?;
                return Err(Problem::precondition_failed());
            }
            Err(e) => return Err(e.into()),
        }
        let snapshot = Snapshot {
            spec: None,
            ..snapshot
        };
        Ok(self.tenant(&key, &snapshot, caller).await)
    }

    /// One page of the tenant's audit timeline, oldest first.
    pub async fn tenant_events(
        &self,
        caller: &Caller,
        tenant: &str,
        query: &EventsQuery,
    ) -> Result<Page<AuditEntry>, Problem> {
        let limit = checked_limit(query.limit)?;
        let (key, _) = self.visible(caller, tenant).await?;
        let listing = format!("GET /tenants/{}/events", key.as_str());
        let cursor = self.page_tokens.open(&listing, query.next.as_deref())?;
        let (items, next) = self.store.audit_trail(&key, cursor.page, limit).await?;
        Ok(Page {
            items: items
                .into_iter()
                .map(|entry| AuditEntry {
                    actor: shown_actor(caller, entry.actor),
                    requested_by: entry.requested_by.map(|who| shown_actor(caller, who)),
                    ..entry
                })
                .collect(),
            next: next.map(|page| {
                self.page_tokens.issue(
                    &listing,
                    &Cursor {
                        page: Some(page),
                        ..Cursor::default()
                    },
                )
            }),
        })
    }
}

// ------------------------------------------------------------------------------------------------
// Routes: HTTP in and out, around the operations above.

pub async fn create(
    State(state): State<ApiState>,
    Admin(caller): Admin,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    let key = IdempotencyKey::from_headers(&headers)?;
    let created = state.create_tenant(&caller, &body, &key).await?;
    let location = format!("/tenants/{}", created.tenant.view.tenant_id);
    Ok(created_response(
        Once {
            value: created.tenant.view,
            status: StatusCode::ACCEPTED.as_u16(),
            etag: created.tenant.etag,
            replayed: created.replayed,
        },
        &location,
    ))
}

pub async fn get_one(
    State(state): State<ApiState>,
    caller: Caller,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let found = state.get_tenant(&caller, &tenant).await?;
    if IfNoneMatch::from_headers(&headers).not_modified(found.etag.as_deref()) {
        return Ok(with_etag(
            StatusCode::NOT_MODIFIED.into_response(),
            found.etag,
        ));
    }
    Ok(with_etag(Json(found.view).into_response(), found.etag))
}

pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    list: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    let list = query(list)?;
    Ok(Json(state.list_tenants(&caller, &list).await?).into_response())
}

pub async fn patch(
    State(state): State<ApiState>,
    caller: Caller,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    MergePatchBody(body): MergePatchBody,
) -> Result<Response, Problem> {
    let patched = state
        .patch_tenant(&caller, &tenant, &body, &IfMatch::from_headers(&headers))
        .await?;
    Ok(accepted(patched))
}

pub async fn retry(
    State(state): State<ApiState>,
    caller: Caller,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    Ok(accepted(
        state
            .retry_tenant(&caller, &tenant, &IfMatch::from_headers(&headers))
            .await?,
    ))
}

pub async fn delete(
    State(state): State<ApiState>,
    caller: Caller,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let deleted = state
        .delete_tenant(
            &caller,
            &tenant,
            &IfMatch::from_headers(&headers),
            "DELETE /tenants/{id}",
        )
        .await?;
    Ok(accepted(deleted))
}

pub async fn events(
    State(state): State<ApiState>,
    caller: Caller,
    events: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
    Path(tenant): Path<String>,
) -> Result<Response, Problem> {
    let events = query(events)?;
    Ok(Json(state.tenant_events(&caller, &tenant, &events).await?).into_response())
}

pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}
