//! Idempotency-Key (the IETF HTTP draft): every POST that creates something (a tenant, a
//! template version, a rollout, a preview) may carry a key, so that a retried request answers
//! as the first one did instead of acting twice.

use axum::http::HeaderMap;
use controlplane::ports::{IdempotencyRecord, StoreError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::ApiState;
use crate::auth::Caller;
use crate::problem::Problem;

/// The longest header value taken (a quoted key's quotes included).
pub const MAX_KEY_CHARS: usize = 255;

/// The request's Idempotency-Key, if any. The draft makes it a Structured Field string
/// (`"k"`, RFC 9651); a bare value (`k`, as most clients send a UUID) is the same key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdempotencyKey(pub Option<String>);

impl IdempotencyKey {
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, Problem> {
        let mut values = headers.get_all("idempotency-key").iter();
        let Some(value) = values.next() else {
            return Ok(Self(None));
        };
        if values.next().is_some() {
            return Err(Problem::bad_request(
                "send Idempotency-Key once: a request has one key",
            ));
        }
        let text = value.to_str().map_err(|_| {
            Problem::bad_request(
                "Idempotency-Key must be visible ASCII (a Structured Field string)",
            )
        })?;
        Self::parse(Some(text))
    }

    /// One header value (`tenantctl --direct` passes its own), or none.
    pub fn parse(value: Option<&str>) -> Result<Self, Problem> {
        let Some(text) = value else {
            return Ok(Self(None));
        };
        let refused = || {
            Problem::bad_request(format!(
                "Idempotency-Key must be a Structured Field string (\"k\") or a bare key of \
                 visible ASCII without quotes (k), at most {MAX_KEY_CHARS} characters"
            ))
        };
        if text.len() > MAX_KEY_CHARS {
            return Err(refused());
        }
        let key = if text.starts_with('"') {
            match sfv::Parser::new(text).parse_item::<sfv::Item>() {
                Ok(item) if item.params.is_empty() => match item.bare_item {
                    sfv::BareItem::String(s) => s.as_str().to_owned(),
                    _ => return Err(refused()),
                },
                _ => return Err(refused()),
            }
        } else if text.bytes().all(|b| b.is_ascii_graphic() && b != b'"') {
            // A bare key (a UUID, say), as most clients send it.
            text.to_owned()
        } else {
            return Err(refused());
        };
        if key.is_empty() {
            return Err(refused());
        }
        Ok(Self(Some(key)))
    }
}

/// What an Idempotency-Key is bound to: the method, the path and the body (canonical JSON).
pub fn request_hash(method: &str, path: &str, body: &Value) -> String {
    let digest =
        Sha256::digest(format!("{method} {path} {}", crate::tenants::canonical(body)).as_bytes());
    hex::encode(digest)
}

/// An answer that can be given again: what was made, its status and its ETag.
#[derive(Clone, Debug, PartialEq)]
pub struct Once<T> {
    pub value: T,
    pub status: u16,
    pub etag: Option<String>,
    /// Given back from the first request with the key (`Idempotent-Replayed: true`).
    pub replayed: bool,
}

impl<T> Once<T> {
    pub fn new(value: T, status: u16, etag: Option<String>) -> Self {
        Self {
            value,
            status,
            etag,
            replayed: false,
        }
    }
}

/// A POST to `path` that makes something: `write` runs once per the request's Idempotency-Key
/// (if it has one), bound to the path and the body.
pub async fn post_once<T, F, Fut>(
    state: &ApiState,
    caller: &Caller,
    headers: &HeaderMap,
    path: &str,
    body: &Value,
    write: F,
) -> Result<Once<T>, Problem>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Once<T>, Problem>>,
{
    let key = IdempotencyKey::from_headers(headers)?;
    idempotent(state, caller, &key, request_hash("POST", path, body), write).await
}

/// Runs `write` once per idempotency key (per caller). The first request claims the key with a
/// conditional write before it acts, so a concurrent duplicate gets 409 (retry shortly) instead
/// of acting too; once it is done, a replay gets its answer, and the same key with another
/// request gets 422. A write that fails gives the key back, having changed nothing.
pub async fn idempotent<T, F, Fut>(
    state: &ApiState,
    caller: &Caller,
    key: &IdempotencyKey,
    hash: String,
    write: F,
) -> Result<Once<T>, Problem>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Once<T>, Problem>>,
{
    let Some(key) = key.0.as_deref() else {
        return write().await;
    };
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
                let value = serde_json::from_str(&stored.body).map_err(|e| {
                    Problem::corrupt_record(format!(
                        "the stored answer for this Idempotency-Key is unreadable ({e}); send \
                         the request with a new key"
                    ))
                })?;
                return Ok(Once {
                    value,
                    status: stored.status,
                    etag: stored.etag,
                    replayed: true,
                });
            }
            None => {}
        }
    }
    if !claimed {
        return Err(Problem::idempotency_in_flight());
    }
    let answer = match write().await {
        Ok(answer) => answer,
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
        status: answer.status,
        body: serde_json::to_string(&answer.value).unwrap_or_default(),
        etag: answer.etag.clone(),
        claimed_until: None,
    };
    if let Err(e) = state
        .specs
        .finish_idempotency_key(scope, key, &record)
        .await
    {
        // The write happened; only a replay's answer is lost (it would act again after the
        // claim lapses, and meet what it made: 409, or a repeat that changes nothing).
        tracing::warn!(error = %e, "idempotent response not stored");
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quoted_key_and_a_bare_key_are_the_same_key() {
        let key = |v: &str| IdempotencyKey::parse(Some(v)).unwrap().0.unwrap();
        assert_eq!(key("\"k-1\""), "k-1");
        assert_eq!(key("k-1"), "k-1");
        assert_eq!(key("\"a \\\"b\\\"\""), "a \"b\"");
        assert_eq!(
            key("123e4567-e89b-12d3-a456-426614174000"),
            "123e4567-e89b-12d3-a456-426614174000"
        );
        assert_eq!(IdempotencyKey::parse(None).unwrap().0, None);
        for bad in [
            "",
            "\"\"",
            "\"unterminated",
            "\"k\";param=1",
            "a b",
            "k\"x",
            "é",
            &"x".repeat(MAX_KEY_CHARS + 1),
        ] {
            assert_eq!(
                IdempotencyKey::parse(Some(bad)).unwrap_err().status,
                400,
                "{bad}"
            );
        }
    }
}
