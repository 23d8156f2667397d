//! How writers write desired state, and the API's idempotency records.

use async_trait::async_trait;
use serde_dynamo::Item;

use model::spec::TenantKey;

use super::StoreError;

/// A write made with an `Idempotency-Key`: first its claim, taken before the write runs, then
/// the stored response. The same key and request get the response again (or, while the claim
/// holds, are told to retry); the same key with another request is refused.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdempotencyRecord {
    /// A hash of the request (method, path, body) the key was first used with.
    pub request_hash: String,
    /// The response's status; 0 while the claim's request runs. Stored as `response_status`: an
    /// attribute named `status` would enter the `by-status` index.
    #[serde(rename = "response_status")]
    pub status: u16,
    pub body: String,
    /// The response's ETag, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// While in flight: until when (Unix seconds) the claim holds. A request that died while
    /// holding it leaves it behind; past this time another request with the key takes it over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_until: Option<i64>,
}

impl IdempotencyRecord {
    /// How long a claim holds: longer than the API function's timeout, so a claim is taken over
    /// only from a request that can no longer be running.
    pub const CLAIM: chrono::Duration = chrono::Duration::seconds(60);

    /// The claim of a request about to run.
    pub fn claim(request_hash: String, now: chrono::DateTime<chrono::Utc>) -> Self {
        Self {
            request_hash,
            status: 0,
            body: String::new(),
            etag: None,
            claimed_until: Some((now + Self::CLAIM).timestamp()),
        }
    }

    /// Whether this is a claim whose request is still running (or died, not yet past its hold).
    pub fn in_flight(&self) -> bool {
        self.status == 0
    }
}

/// How writers (the API, `tenantctl --direct`) write desired state: SPEC rows, conditionally.
#[async_trait]
pub trait SpecStore: Send + Sync {
    /// Creates the SPEC; `Conflict` when the tenant already has one.
    async fn create_spec(&self, tenant: &TenantKey, item: &Item) -> Result<(), StoreError>;
    /// Replaces the SPEC only if it is still `expected` (every attribute as read); `Conflict`
    /// when it changed or is gone.
    async fn replace_spec(
        &self,
        tenant: &TenantKey,
        item: &Item,
        expected: &Item,
    ) -> Result<(), StoreError>;
    /// Deletes the SPEC only if it is still `expected`; `Conflict` when it changed or is gone.
    async fn delete_spec(&self, tenant: &TenantKey, expected: &Item) -> Result<(), StoreError>;
    /// One page of tenants that have a SPEC, at most `limit`, and the token of the next page.
    async fn list_specs(
        &self,
        page_token: Option<String>,
        limit: usize,
    ) -> Result<(Vec<TenantKey>, Option<String>), StoreError>;
    /// The page token that resumes a `list_specs` listing just after `tenant` (for a page cut
    /// short: the API keeps each answer within Lambda's response size).
    fn resume_after(&self, tenant: &TenantKey) -> String;
    /// One page of the tenants `list_specs` leaves out though they have a STATUS: their SPEC is
    /// gone (deleted, or being deleted), or holds no string `tenant_id` (an invalid SPEC, which
    /// the `tenants` index does not hold). At most `limit`, each with the page token that
    /// resumes just after it, and the token of the next page.
    async fn list_unindexed(
        &self,
        page_token: Option<String>,
        limit: usize,
    ) -> Result<(Vec<(TenantKey, String)>, Option<String>), StoreError>;
    /// The claim or response stored for `key` in `scope` (a caller), if any and not expired.
    async fn idempotency_record(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError>;
    /// Takes `key` in `scope` for the request of `claim`, before it runs: `Conflict` when a
    /// response is stored or another claim still holds.
    async fn claim_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        claim: &IdempotencyRecord,
    ) -> Result<(), StoreError>;
    /// Stores the response over the claim of the same request (`Conflict` when the claim was
    /// taken over).
    async fn finish_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        record: &IdempotencyRecord,
    ) -> Result<(), StoreError>;
    /// Gives up the claim of the request with `request_hash` (it failed, and changed nothing):
    /// the key can be used again. Nothing happens when the claim is no longer that request's.
    async fn release_idempotency_key(
        &self,
        scope: &str,
        key: &str,
        request_hash: &str,
    ) -> Result<(), StoreError>;
}
