//! Page tokens: opaque to clients and tamper-evident. A token is the position a listing
//! resumes from, signed (HMAC-SHA256) together with the listing it belongs to (the endpoint
//! and its filter), so a forged token, a token edited by hand, or one listing's token sent to
//! another is refused with 400 before anything reaches the store. The key is kept like the
//! ExternalId key: an SSM SecureString deployed (PAGE_TOKEN_KEY_PARAMETER), local in `make up`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::problem::Problem;

/// Bytes of the MAC kept in a token (128 bits).
const MAC_BYTES: usize = 16;
/// Tokens longer than this are not ours (a position is a few hundred bytes).
pub const MAX_TOKEN_CHARS: usize = 2048;

/// Where a listing resumes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The store's page token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    /// In a page read whole (the status index), the last tenant already returned: the listing
    /// resumes after it, whatever moved in or out of the page meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// Signs and opens page tokens with one key.
#[derive(Clone)]
pub struct PageTokens {
    key: Vec<u8>,
}

impl std::fmt::Debug for PageTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageTokens(<key redacted>)")
    }
}

impl PageTokens {
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self { key: key.into() }
    }

    /// A key of this process's own (tokens last as long as it does): for `tenantctl --direct`
    /// and tests, which page within one process.
    pub fn ephemeral() -> Self {
        let key = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()]
            .iter()
            .flat_map(|id| id.as_bytes().to_vec())
            .collect::<Vec<u8>>();
        Self::new(key)
    }

    fn mac(&self, listing: &str, payload: &[u8]) -> Hmac<Sha256> {
        // Any key length is valid for HMAC.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(listing.as_bytes());
        mac.update(&[0]);
        mac.update(payload);
        mac
    }

    /// The token of `cursor` in `listing` (`GET /tenants?status=ready`, say).
    pub fn issue(&self, listing: &str, cursor: &Cursor) -> String {
        let payload = serde_json::to_vec(cursor).unwrap_or_default();
        let tag = self.mac(listing, &payload).finalize().into_bytes();
        let mut token = tag[..MAC_BYTES].to_vec();
        token.extend_from_slice(&payload);
        URL_SAFE_NO_PAD.encode(token)
    }

    /// Where `token` resumes `listing` (the start without one); 400 for a token this API did
    /// not give out for this listing.
    pub fn open(&self, listing: &str, token: Option<&str>) -> Result<Cursor, Problem> {
        let Some(token) = token else {
            return Ok(Cursor::default());
        };
        let refused = || {
            Problem::bad_request(
                "`next` is not a token this API gave out for this listing: send the `next` \
                 of the previous page unchanged, with the same filter",
            )
        };
        if token.len() > MAX_TOKEN_CHARS {
            return Err(refused());
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| refused())?;
        if bytes.len() <= MAC_BYTES {
            return Err(refused());
        }
        let (tag, payload) = bytes.split_at(MAC_BYTES);
        self.mac(listing, payload)
            .verify_truncated_left(tag)
            .map_err(|_| refused())?;
        serde_json::from_slice(payload).map_err(|_| refused())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor() -> Cursor {
        Cursor {
            page: Some(r#"{"pk":"TENANT#acme"}"#.into()),
            after: Some("acme".into()),
        }
    }

    #[test]
    fn a_token_opens_only_in_its_own_listing_with_its_own_key() {
        let tokens = PageTokens::new("k1");
        let token = tokens.issue("GET /tenants", &cursor());
        assert_eq!(tokens.open("GET /tenants", Some(&token)).unwrap(), cursor());
        assert!(
            token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        for (listing, key) in [
            ("GET /tenants?status=ready", "k1"),
            ("GET /tenants/acme/events", "k1"),
            ("GET /tenants", "k2"),
        ] {
            let problem = PageTokens::new(key)
                .open(listing, Some(&token))
                .unwrap_err();
            assert_eq!(problem.status, 400);
            assert_eq!(problem.kind, "/problems/bad-request");
        }
    }

    #[test]
    fn a_forged_or_edited_token_is_refused() {
        let tokens = PageTokens::new("k1");
        let token = tokens.issue("GET /tenants", &cursor());
        let mut edited = URL_SAFE_NO_PAD.decode(&token).unwrap();
        let last = edited.len() - 2;
        edited[last] ^= 1;
        // The old unsigned form: the position in plain base64.
        let unsigned = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&cursor()).unwrap());
        for bad in [
            URL_SAFE_NO_PAD.encode(edited),
            unsigned,
            "x".into(),
            "!!!".into(),
            String::new(),
            "A".repeat(MAX_TOKEN_CHARS + 1),
        ] {
            assert_eq!(
                tokens.open("GET /tenants", Some(&bad)).unwrap_err().status,
                400,
                "{bad}"
            );
        }
        assert_eq!(
            tokens.open("GET /tenants", None).unwrap(),
            Cursor::default()
        );
    }
}
