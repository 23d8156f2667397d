//! Page tokens: opaque to clients and tamper-evident. A token is the position a listing
//! resumes from, sealed (AES-256-GCM-SIV: encrypted and authenticated) together with the
//! listing it belongs to (the endpoint and its filter), so a client can neither read the
//! table's keys in it nor forge or edit one, and one listing's token sent to another is refused
//! with 400 before anything reaches the store. The key is kept like the ExternalId key: an SSM
//! SecureString deployed (PAGE_TOKEN_KEY_PARAMETER), local in `make up`.

use aws_lc_rs::aead::{AES_256_GCM_SIV, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::problem::Problem;

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
    /// In the listing of every tenant: past the SPECs, in the tenants with a STATUS the SPEC
    /// listing leaves out (`SpecStore::list_unindexed`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unindexed: bool,
}

/// Seals and opens page tokens with one key.
#[derive(Clone)]
pub struct PageTokens {
    /// The sealing key, derived from the configured key (of any length).
    key: [u8; 32],
}

impl std::fmt::Debug for PageTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageTokens(<key redacted>)")
    }
}

impl PageTokens {
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        // HMAC takes keys of any length; its output is the 256-bit key AES needs.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key.into())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"tenant-control-plane page tokens v1");
        Self {
            key: mac.finalize().into_bytes().into(),
        }
    }

    /// A key of this process's own (tokens last as long as it does): for `tenantctl --direct`
    /// and tests, which page within one process.
    pub fn ephemeral() -> Self {
        let mut key = [0u8; 32];
        aws_lc_rs::rand::fill(&mut key)
            .unwrap_or_else(|_| unreachable!("the system's random source is available"));
        Self { key }
    }

    fn sealing_key(&self) -> LessSafeKey {
        LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM_SIV, &self.key)
                .unwrap_or_else(|_| unreachable!("a 256-bit key")),
        )
    }

    /// The token of `cursor` in `listing` (`GET /tenants?status=ready`, say).
    pub fn issue(&self, listing: &str, cursor: &Cursor) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        // GCM-SIV: a random nonce, and no harm should two ever repeat.
        let _ = aws_lc_rs::rand::fill(&mut nonce);
        let mut sealed = serde_json::to_vec(cursor).unwrap_or_default();
        if self
            .sealing_key()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(listing.as_bytes()),
                &mut sealed,
            )
            .is_err()
        {
            // Not reachable for a payload this small; no token is then "no next page known",
            // never a token that cannot be opened.
            return String::new();
        }
        let mut token = nonce.to_vec();
        token.extend_from_slice(&sealed);
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
        let mut bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| refused())?;
        if bytes.len() <= NONCE_LEN {
            return Err(refused());
        }
        let mut sealed = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).map_err(|_| refused())?;
        let payload = self
            .sealing_key()
            .open_in_place(nonce, Aad::from(listing.as_bytes()), &mut sealed)
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
            unindexed: false,
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
        // Opaque: nothing of the position can be read from it.
        let bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("TENANT") && !text.contains("acme"), "{text}");
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
