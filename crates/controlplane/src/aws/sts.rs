//! Reaching a tenant's account: per-account ExternalIds and cached AssumeRole credentials.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use aws_sdk_cloudformation::config::Credentials;
use aws_sdk_sts::Client;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tracing::info;

use super::AwsFailure;
use crate::ports::{Healing, StackError};

/// Derives each tenant account's ExternalId from one secret key: HMAC-SHA256(key, account id).
/// Distinct per account, so one tenant's account id can never be used to reach another's role,
/// and nothing per tenant needs storing.
#[derive(Clone)]
pub struct ExternalIds {
    key: Vec<u8>,
}

impl std::fmt::Debug for ExternalIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExternalIds(<key redacted>)")
    }
}

impl ExternalIds {
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self { key: key.into() }
    }

    pub fn for_account(&self, account_id: &str) -> String {
        // HMAC takes keys of any length: this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(account_id.as_bytes());
        format!("tcp-{}", hex::encode(mac.finalize().into_bytes()))
    }
}

/// The AssumeRole request for a tenant, built in one place so its security properties are tested.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssumeRoleRequest {
    pub role_arn: String,
    pub external_id: String,
    pub session_name: String,
}

/// The ARN partition of a region: `aws`, `aws-cn` or `aws-us-gov`.
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The ARN of role `role_name` in `account_id`.
pub fn role_arn(partition: &str, account_id: &str, role_name: &str) -> String {
    format!("arn:{partition}:iam::{account_id}:role/{role_name}")
}

pub fn assume_role_request(
    role_name: &str,
    external_ids: &ExternalIds,
    partition: &str,
    account_id: &str,
    tenant_id: &str,
) -> AssumeRoleRequest {
    // One session per account, shared by its tenants (one AssumeRole per account, not per
    // tenant): which tenant each stack call is for shows in CloudTrail as the stack's name.
    let _ = tenant_id;
    let session_name = SESSION_NAME.to_owned();
    AssumeRoleRequest {
        role_arn: role_arn(partition, account_id, role_name),
        external_id: external_ids.for_account(account_id),
        session_name,
    }
}

/// The session name of the tenant accounts' role (allowed: `[\w+=,.@-]{2,64}`).
pub const SESSION_NAME: &str = "tenant-control-plane";

/// The calls of [`RoleCredentials`].
pub const CALLS: &[super::Call] = &[super::Call::new(
    "sts:AssumeRole",
    super::Resource::TenantRole,
)];

/// The calls of [`RoleCredentials`] for the preview function (the tenant accounts' preview role).
pub const PREVIEW_ROLE_CALLS: &[super::Call] = &[super::Call::new(
    "sts:AssumeRole",
    super::Resource::TenantPreviewRole,
)];

/// Accounts whose role credentials a warm instance keeps (~1 KiB each).
pub const CREDENTIALS_KEPT: NonZeroUsize = NonZeroUsize::new(1024).unwrap();

/// Reads the ExternalId key (from SSM, as deployed) the first time a role is assumed.
pub type KeyLoader =
    Box<dyn Fn() -> futures::future::BoxFuture<'static, Result<ExternalIds, String>> + Send + Sync>;

/// The ExternalId key: given, or read when first needed (a function that never assumes a
/// tenant role never reads it).
enum Keys {
    Ready(ExternalIds),
    Deferred {
        load: KeyLoader,
        loaded: tokio::sync::OnceCell<ExternalIds>,
    },
}

/// Credentials for tenants' accounts, one session per account shared by its tenants, cached
/// until near expiry; the least recently used are dropped beyond [`CREDENTIALS_KEPT`].
pub struct RoleCredentials {
    client: Client,
    /// The region STS is called in (its regional endpoint), and its partition: tenant accounts
    /// are in the same one.
    region: String,
    partition: &'static str,
    role_name: String,
    keys: Keys,
    refresh_before_expiry: Duration,
    session_duration: Duration,
    cache: Mutex<LruCache<(String, String), Credentials>>,
    assume_calls: AtomicUsize,
}

impl RoleCredentials {
    pub fn new(client: Client, role_name: impl Into<String>, external_ids: ExternalIds) -> Self {
        Self::with_keys(client, role_name, Keys::Ready(external_ids))
    }

    /// With the ExternalId key read by `load` when a role is first assumed.
    pub fn with_key_loader(client: Client, role_name: impl Into<String>, load: KeyLoader) -> Self {
        Self::with_keys(
            client,
            role_name,
            Keys::Deferred {
                load,
                loaded: tokio::sync::OnceCell::new(),
            },
        )
    }

    fn with_keys(client: Client, role_name: impl Into<String>, keys: Keys) -> Self {
        let region = client
            .config()
            .region()
            .map(|r| r.as_ref().to_owned())
            .unwrap_or_default();
        Self {
            client,
            partition: partition(&region),
            region,
            role_name: role_name.into(),
            keys,
            refresh_before_expiry: Duration::from_secs(300),
            session_duration: Duration::from_secs(3600),
            cache: Mutex::new(LruCache::new(CREDENTIALS_KEPT)),
            assume_calls: AtomicUsize::new(0),
        }
    }

    /// AssumeRole calls made so far (the cache keeps this far below the number of records).
    pub fn assume_calls(&self) -> usize {
        self.assume_calls.load(Ordering::Relaxed)
    }

    pub async fn for_tenant(
        &self,
        account_id: &str,
        tenant_id: &str,
    ) -> Result<Credentials, StackError> {
        // Per account: its tenants share the session.
        let key = (account_id.to_owned(), String::new());
        let fresh_until = SystemTime::now() + self.refresh_before_expiry;
        if let Some(cached) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .filter(|c| c.expiry().is_none_or(|expiry| expiry > fresh_until))
        {
            return Ok(cached.clone());
        }
        let external_ids = match &self.keys {
            Keys::Ready(ids) => ids,
            Keys::Deferred { load, loaded } => {
                loaded.get_or_try_init(load).await.map_err(|reason| {
                    StackError::Transient(format!("cannot read the ExternalId key: {reason}"))
                })?
            }
        };
        let request = assume_role_request(
            &self.role_name,
            external_ids,
            self.partition,
            account_id,
            tenant_id,
        );
        self.assume_calls.fetch_add(1, Ordering::Relaxed);
        let output = self
            .client
            .assume_role()
            .role_arn(&request.role_arn)
            .external_id(&request.external_id)
            .role_session_name(&request.session_name)
            .duration_seconds(self.session_duration.as_secs() as i32)
            .send()
            .await
            .map_err(|e| {
                let failure = AwsFailure::from_sdk(&e);
                let mut message =
                    format!("cannot assume {}: {}", request.role_arn, failure.message);
                // AWS's words name the account but not the region ("this region").
                if failure.code.as_deref() == Some("RegionDisabledException") {
                    message.push_str(&format!(
                        " (the control plane calls STS in {})",
                        self.region
                    ));
                }
                match failure.healing {
                    Healing::Transient => StackError::Transient(message),
                    Healing::Permanent => StackError::Rejected(message),
                }
            })?;
        let issued = output
            .credentials()
            .ok_or_else(|| StackError::Transient("AssumeRole returned no credentials".into()))?;
        let expiry = SystemTime::try_from(*issued.expiration()).ok();
        let credentials = Credentials::new(
            issued.access_key_id(),
            issued.secret_access_key(),
            Some(issued.session_token().to_owned()),
            expiry,
            "tenant-role",
        );
        info!(role = %request.role_arn, "assumed tenant role");
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .put(key, credentials.clone());
        Ok(credentials)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_ids_are_stable_and_distinct_per_account() {
        let ids = ExternalIds::new(b"key-one".to_vec());
        let a = ids.for_account("111111111111");
        assert_eq!(a, ids.for_account("111111111111"));
        assert_ne!(a, ids.for_account("222222222222"));
        assert_ne!(
            a,
            ExternalIds::new(b"key-two".to_vec()).for_account("111111111111")
        );
        assert!(a.starts_with("tcp-") && a.len() == 68, "{a}");
        assert!(!format!("{ids:?}").contains("key-one"));
    }

    #[test]
    fn assume_role_request_names_the_account_role_and_tenant() {
        let ids = ExternalIds::new(b"k".to_vec());
        let request =
            assume_role_request("TenantControlRole", &ids, "aws", "111111111111", "gs1234");
        assert_eq!(
            request.role_arn,
            "arn:aws:iam::111111111111:role/TenantControlRole"
        );
        assert_eq!(request.session_name, "tenant-control-plane");
        assert_eq!(request.external_id, ids.for_account("111111111111"));
        let other = assume_role_request("TenantControlRole", &ids, "aws", "111111111111", "acme");
        assert_eq!(
            other, request,
            "one session per account, shared by its tenants"
        );
        let china = assume_role_request("R", &ids, partition("cn-north-1"), "111111111111", "t1");
        assert_eq!(china.role_arn, "arn:aws-cn:iam::111111111111:role/R");
        assert_eq!(partition("us-gov-west-1"), "aws-us-gov");
        assert_eq!(partition("eu-west-1"), "aws");
    }
}
