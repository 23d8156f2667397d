//! The tenant routes. Writes validate with the control plane's own validation, write the SPEC
//! row conditionally, and return at once: the API never writes STATUS and never calls
//! CloudFormation or STS.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use controlplane::audit::AuditEntry;
use controlplane::decide::{REMOVED_FINGERPRINT, fingerprint};
use controlplane::item_json;
use controlplane::ports::{IdempotencyRecord, Snapshot, StoreError};
use controlplane::spec::{FieldError, SPEC_ATTRIBUTES, SPEC_SK, TenantKey, check_tenant_id};
use controlplane::status::Status;
use controlplane::validation::{Validation, validate};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_dynamo::{AttributeValue, Item};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::ApiState;
use crate::auth::Caller;
use crate::body::JsonBody;
use crate::problem::Problem;

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
}

/// What a create may carry.
const CREATE_FIELDS: &[&str] = &[
    "tenant_id",
    "account_id",
    "region",
    "config",
    "template_version",
    "decommission_date",
];
/// What a PATCH may change (JSON Merge Patch, RFC 7396).
const PATCH_FIELDS: &[&str] = &[
    "account_id",
    "region",
    "config",
    "template_version",
    "decommission_date",
];

/// The SPEC's known fields as JSON, numbers exact (other attributes are kept in the row, not shown).
fn spec_json(item: &Item) -> Map<String, Value> {
    item_json::item_to_json(item)
        .into_iter()
        .filter(|(k, _)| SPEC_ATTRIBUTES.contains(&k.as_str()))
        .collect()
}

/// The SPEC's ETag: a hash of the whole stored item, so any writer's change (a direct put-item
/// too) changes it.
pub fn etag_of(item: &Item) -> String {
    let value = Value::Object(item_json::item_to_json(item));
    let digest = Sha256::digest(canonical(&value).as_bytes());
    format!("\"{}\"", hex::encode(&digest[..12]))
}

/// JSON with object keys sorted at every level: one text per value.
fn canonical(value: &Value) -> String {
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
        let current = match &snapshot.spec {
            None => Some(REMOVED_FINGERPRINT.to_owned()),
            Some(item) => {
                match validate(key, item, status.fleet_version(), self.templates.as_ref()).await {
                    Ok(Validation::Valid(valid)) => {
                        let region = valid
                            .spec
                            .region
                            .clone()
                            .unwrap_or_else(|| self.default_region.clone());
                        Some(fingerprint(&valid.spec, &region, &valid.template_version))
                    }
                    // A SPEC that fails validation is recorded failed with no fingerprint.
                    _ => None,
                }
            }
        };
        if status.spec_fingerprint == current {
            status.status.as_str().into()
        } else {
            "pending".into()
        }
    }

    async fn view(&self, key: &TenantKey, snapshot: &Snapshot) -> TenantView {
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
            updated_by: text(&spec, "updated_by"),
            status: observed,
            reason: recorded.and_then(|s| s.reason.clone()),
            retryable: recorded.is_some_and(|s| s.retryable),
            next_attempt_at: recorded.and_then(|s| s.next_attempt_at.clone()),
            outputs: status.map(|s| s.outputs.clone()).unwrap_or_default(),
            stack_status: status.and_then(|s| s.stack_status.clone()),
            status_updated_at: status.map(|s| s.updated_at.clone()),
        }
    }

    /// The tenant as `caller` may see it; 404 for others' tenants and for none at all.
    async fn visible(
        &self,
        caller: &Caller,
        tenant: &str,
    ) -> Result<(TenantKey, Snapshot), Problem> {
        if !caller.sees(tenant) || check_tenant_id(tenant).is_err() {
            return Err(Problem::not_found(tenant));
        }
        let key = TenantKey::new(tenant);
        let snapshot = self.store.load(&key).await?;
        if snapshot.spec.is_none() && snapshot.status.is_none() {
            return Err(Problem::not_found(tenant));
        }
        Ok((key, snapshot))
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

/// A tenant as an operation answers it: the view and the SPEC's ETag (none once removed).
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

fn only_fields(body: &Map<String, Value>, allowed: &[&str]) -> Result<(), Problem> {
    let unknown: Vec<FieldError> = body
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .map(|k| {
            FieldError::new(
                k.clone(),
                format!("unknown field; allowed: {}", allowed.join(", ")),
            )
        })
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(Problem::invalid(unknown))
    }
}

fn if_match(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn idempotency_key(headers: &HeaderMap) -> Option<&str> {
    headers.get("idempotency-key").and_then(|v| v.to_str().ok())
}

// ------------------------------------------------------------------------------------------------
// Idempotency

/// What an Idempotency-Key is bound to: the method, the path and the body (canonical JSON).
pub fn request_hash(method: &str, path: &str, body: &Value) -> String {
    let digest = Sha256::digest(format!("{method} {path} {}", canonical(body)).as_bytes());
    hex::encode(digest)
}

/// Runs `write` once per idempotency key (per caller). The first request claims the key with a
/// conditional write before it acts, so a concurrent duplicate gets 409 (retry shortly) instead of
/// acting too; once it is done, a replay gets its answer, and the same key with another request
/// gets 422. A write that fails gives the key back, having changed nothing.
async fn idempotent<F, Fut>(
    state: &ApiState,
    caller: &Caller,
    key: Option<&str>,
    hash: String,
    write: F,
) -> Result<Created, Problem>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Tenant, Problem>>,
{
    let Some(key) = key else {
        return Ok(Created {
            tenant: write().await?,
            replayed: false,
        });
    };
    if key.is_empty() || key.len() > 255 {
        return Err(Problem::bad_request(
            "Idempotency-Key must be 1-255 characters",
        ));
    }
    let scope = caller.subject.as_str();
    let claim = IdempotencyRecord::claim(hash.clone(), chrono::Utc::now());
    let mut claimed = false;
    // Twice: a record that expires or is given back between the claim and the read is gone,
    // and the key is free to claim again.
    for _ in 0..2 {
        match state.specs.claim_idempotency_key(scope, key, &claim).await {
            Ok(()) => {
                claimed = true;
                break;
            }
            Err(StoreError::Conflict) => {}
            Err(e) => return Err(e.into()),
        }
        match state.specs.idempotency_record(scope, key).await? {
            Some(stored) if stored.request_hash != hash => {
                return Err(Problem::idempotency_mismatch());
            }
            Some(stored) if stored.in_flight() => return Err(Problem::idempotency_in_flight()),
            Some(stored) => {
                let view = serde_json::from_str(&stored.body).map_err(|e| {
                    Problem::unavailable(format!(
                        "the stored answer for this key is unreadable: {e}"
                    ))
                })?;
                return Ok(Created {
                    tenant: Tenant {
                        view,
                        etag: stored.etag,
                    },
                    replayed: true,
                });
            }
            None => {}
        }
    }
    if !claimed {
        return Err(Problem::idempotency_in_flight());
    }
    let tenant = match write().await {
        Ok(tenant) => tenant,
        Err(problem) => {
            if let Err(e) = state.specs.release_idempotency_key(scope, key, &hash).await {
                // The claim then holds until it lapses (a minute), and a retry gets 409 till then.
                tracing::warn!(error = %e, "idempotency claim not given back");
            }
            return Err(problem);
        }
    };
    let record = IdempotencyRecord {
        request_hash: hash,
        status: StatusCode::ACCEPTED.as_u16(),
        body: serde_json::to_string(&tenant.view).unwrap_or_default(),
        etag: tenant.etag.clone(),
        claimed_until: None,
    };
    if let Err(e) = state
        .specs
        .finish_idempotency_key(scope, key, &record)
        .await
    {
        // The write happened; only a replay's answer is lost (it would act again after the
        // claim lapses, and meet the tenant it created: 409).
        tracing::warn!(error = %e, "idempotent response not stored");
    }
    Ok(Created {
        tenant,
        replayed: false,
    })
}

/// The opaque `next` token: where the listing resumes.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Cursor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    page: Option<String>,
    /// Entries of that page already returned (the status index pages are not limited).
    #[serde(default)]
    skip: usize,
}

fn decode_cursor(token: Option<&str>) -> Result<Cursor, Problem> {
    let Some(token) = token else {
        return Ok(Cursor::default());
    };
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| Problem::bad_request("`next` is not a token this API gave out"))
}

fn encode_cursor(cursor: &Cursor) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(cursor).unwrap_or_default())
}

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 100;

/// What a listing of tenants asks for (`GET /tenants`' query).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub limit: Option<usize>,
    pub next: Option<String>,
    pub status: Option<String>,
}

/// What a page of the audit timeline asks for (`GET /tenants/{id}/events`' query).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
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
        idempotency_key: Option<&str>,
    ) -> Result<Created, Problem> {
        let Value::Object(fields) = body.clone() else {
            return Err(Problem::bad_request("the body must be a JSON object"));
        };
        only_fields(&fields, CREATE_FIELDS)?;
        let tenant = text(&fields, "tenant_id").unwrap_or_default();
        if !caller.is_admin() {
            return Err(if caller.sees(&tenant) {
                Problem::forbidden("only an admin creates tenants (and sets account_id)")
            } else {
                Problem::not_found(&tenant)
            });
        }
        let hash = request_hash("POST", "/tenants", body);
        let subject = caller.subject.clone();
        idempotent(self, caller, idempotency_key, hash, || async move {
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
            Ok(Tenant {
                view: self.view(&key, &snapshot).await,
                etag: Some(etag_of(&item)),
            })
        })
        .await
    }

    /// The tenant as `caller` may see it, with its ETag.
    pub async fn get_tenant(&self, caller: &Caller, tenant: &str) -> Result<Tenant, Problem> {
        let (key, snapshot) = self.visible(caller, tenant).await?;
        Ok(Tenant {
            view: self.view(&key, &snapshot).await,
            etag: snapshot.spec.as_ref().map(etag_of),
        })
    }

    /// One page of the tenants `caller` may see, optionally only those in one status.
    pub async fn list_tenants(
        &self,
        caller: &Caller,
        query: &ListQuery,
    ) -> Result<Page<TenantView>, Problem> {
        let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(Problem::invalid(vec![FieldError::new(
                "limit",
                format!("must be 1-{MAX_LIMIT}, got {limit}"),
            )]));
        }
        let status_filter = match query.status.as_deref() {
            None => None,
            Some(text) => Some(
                serde_json::from_value::<Status>(Value::String(text.to_owned())).map_err(|_| {
                    Problem::invalid(vec![FieldError::new(
                        "status",
                        format!(
                            "must be one of creating, updating, deleting, ready, failed, deleted; got {text:?}"
                        ),
                    )])
                })?,
            ),
        };
        let cursor = decode_cursor(query.next.as_deref())?;

        // A tenant sees only itself.
        if let crate::auth::Role::Tenant(own) = &caller.role {
            let items = match self.visible(caller, own).await {
                Ok((key, snapshot)) => {
                    let view = self.view(&key, &snapshot).await;
                    let wanted = status_filter.is_none_or(|s| s.as_str() == view.status);
                    if wanted { vec![view] } else { Vec::new() }
                }
                Err(_) => Vec::new(),
            };
            return Ok(Page { items, next: None });
        }

        let (keys, next) = match status_filter {
            None => {
                let (keys, next) = self.specs.list_specs(cursor.page, limit).await?;
                (
                    keys,
                    next.map(|page| Cursor {
                        page: Some(page),
                        skip: 0,
                    }),
                )
            }
            Some(status) => {
                let (summaries, index_next) = self
                    .store
                    .list_in_status(status, cursor.page.clone())
                    .await?;
                let rest: Vec<TenantKey> = summaries
                    .into_iter()
                    .skip(cursor.skip)
                    .map(|s| s.tenant)
                    .collect();
                if rest.len() > limit {
                    let next = Cursor {
                        page: cursor.page,
                        skip: cursor.skip + limit,
                    };
                    (rest[..limit].to_vec(), Some(next))
                } else {
                    (
                        rest,
                        index_next.map(|page| Cursor {
                            page: Some(page),
                            skip: 0,
                        }),
                    )
                }
            }
        };
        let items: Vec<TenantView> = futures::stream::iter(keys)
            .map(|key| async move {
                let snapshot = self.store.load(&key).await?;
                Ok::<_, StoreError>(self.view(&key, &snapshot).await)
            })
            .buffered(8)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        Ok(Page {
            items,
            next: next.as_ref().map(encode_cursor),
        })
    }

    /// Applies a JSON Merge Patch (RFC 7396) to the SPEC, only if its ETag is still `if_match`
    /// (required).
    pub async fn patch_tenant(
        &self,
        caller: &Caller,
        tenant: &str,
        body: &Value,
        if_match: Option<&str>,
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
        only_fields(changes, PATCH_FIELDS)?;
        if !caller.is_admin()
            && (changes.contains_key("account_id") || changes.contains_key("region"))
        {
            return Err(Problem::forbidden(
                "only an admin changes account_id or region",
            ));
        }
        let Some(expected_etag) = if_match else {
            return Err(Problem::precondition_required());
        };
        if expected_etag != etag_of(&current) {
            return Err(Problem::precondition_failed());
        }
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
            spec: Some(item.clone()),
            ..snapshot
        };
        Ok(Tenant {
            view: self.view(&key, &snapshot).await,
            etag: Some(etag_of(&item)),
        })
    }

    /// Rewrites the SPEC with `change` applied, re-reading on a concurrent write (a few times).
    async fn rewrite(
        &self,
        key: &TenantKey,
        caller: &Caller,
        change: impl Fn(&mut Item),
    ) -> Result<Tenant, Problem> {
        for _ in 0..3 {
            let snapshot = self.store.load(key).await?;
            let Some(current) = snapshot.spec.clone() else {
                return Err(Problem::not_found(key.as_str()));
            };
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
                        spec: Some(item.clone()),
                        ..snapshot
                    };
                    return Ok(Tenant {
                        view: self.view(key, &snapshot).await,
                        etag: Some(etag_of(&item)),
                    });
                }
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Problem::unavailable("the tenant kept changing; try again"))
    }

    /// Runs the tenant's operation again: bumps the SPEC's `retry`.
    pub async fn retry_tenant(&self, caller: &Caller, tenant: &str) -> Result<Tenant, Problem> {
        let (key, snapshot) = self.visible(caller, tenant).await?;
        if snapshot.spec.is_none() {
            return Err(Problem::not_found(tenant));
        }
        self.rewrite(&key, caller, |item| {
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

    /// Removes the SPEC (only if its ETag is still `if_match`, when given). A DeleteItem names no
    /// actor, so an audit line naming the caller is written first; `via` says how the request
    /// came (its reason).
    pub async fn delete_tenant(
        &self,
        caller: &Caller,
        tenant: &str,
        if_match: Option<&str>,
        via: &str,
    ) -> Result<Tenant, Problem> {
        let (key, snapshot) = self.visible(caller, tenant).await?;
        let Some(current) = snapshot.spec.clone() else {
            return Err(Problem::not_found(tenant));
        };
        if let Some(expected) = if_match
            && expected != etag_of(&current)
        {
            return Err(Problem::precondition_failed());
        }
        let now = chrono::Utc::now();
        // Unique per request: two removals of the same content are two lines, never one.
        let id = format!(
            "api-delete-{}-{}",
            etag_of(&current).trim_matches('"'),
            now.timestamp_nanos_opt().unwrap_or_default()
        );
        let entry = AuditEntry {
            at: controlplane::reconcile::rfc3339(now),
            id,
            action: "spec-removed".into(),
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
        Ok(Tenant {
            view: self.view(&key, &snapshot).await,
            etag: None,
        })
    }

    /// One page of the tenant's audit timeline, oldest first.
    pub async fn tenant_events(
        &self,
        caller: &Caller,
        tenant: &str,
        query: &EventsQuery,
    ) -> Result<Page<AuditEntry>, Problem> {
        let (key, _) = self.visible(caller, tenant).await?;
        let limit = query.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        let cursor = decode_cursor(query.next.as_deref())?;
        let (items, next) = self.store.audit_trail(&key, cursor.page, limit).await?;
        Ok(Page {
            items,
            next: next.map(|page| {
                encode_cursor(&Cursor {
                    page: Some(page),
                    skip: 0,
                })
            }),
        })
    }
}

// ------------------------------------------------------------------------------------------------
// Routes: HTTP in and out, around the operations above.

pub async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    let created = state
        .create_tenant(&caller, &body, idempotency_key(&headers))
        .await?;
    let location = format!("/tenants/{}", created.tenant.view.tenant_id);
    let mut response = accepted(created.tenant);
    if created.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    } else if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

pub async fn get_one(
    State(state): State<ApiState>,
    caller: Caller,
    Path(tenant): Path<String>,
) -> Result<Response, Problem> {
    let found = state.get_tenant(&caller, &tenant).await?;
    Ok(with_etag(Json(found.view).into_response(), found.etag))
}

pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    let Query(query) = query.map_err(|e| Problem::bad_request(e.body_text()))?;
    Ok(Json(state.list_tenants(&caller, &query).await?).into_response())
}

pub async fn patch(
    State(state): State<ApiState>,
    caller: Caller,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, Problem> {
    let patched = state
        .patch_tenant(&caller, &tenant, &body, if_match(&headers))
        .await?;
    Ok(accepted(patched))
}

pub async fn retry(
    State(state): State<ApiState>,
    caller: Caller,
    Path(tenant): Path<String>,
) -> Result<Response, Problem> {
    Ok(accepted(state.retry_tenant(&caller, &tenant).await?))
}

pub async fn delete(
    State(state): State<ApiState>,
    caller: Caller,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let deleted = state
        .delete_tenant(&caller, &tenant, if_match(&headers), "DELETE /tenants/{id}")
        .await?;
    Ok(accepted(deleted))
}

pub async fn events(
    State(state): State<ApiState>,
    caller: Caller,
    Path(tenant): Path<String>,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    let Query(query) = query.map_err(|e| Problem::bad_request(e.body_text()))?;
    Ok(Json(state.tenant_events(&caller, &tenant, &query).await?).into_response())
}

pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}
