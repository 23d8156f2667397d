//! Who is calling: verified claims become a `Caller` with one of two roles.
//!
//! Deployed, API Gateway's JWT authorizer verifies the token and passes its claims in the request
//! context (`lambda::claims_from_context`). Locally, `LocalTokens` verifies a token signed with
//! the local key (HS256) and mints them for `tenantctl` and curl. Either way the handlers see the
//! same `Claims` extension.
//!
//! Claims read: `sub` (the actor recorded as `updated_by`), `role` = `admin` or `tenant`, or
//! Cognito's `cognito:groups` containing `admin`; and `tenant_id` (or `custom:tenant_id`) for a
//! tenant.

use std::collections::HashMap;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::problem::Problem;

/// Verified claims, as strings (API Gateway renders every claim as a string).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Claims(pub HashMap<String, String>);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Every tenant; may set `account_id`.
    Admin,
    /// Only this tenant; cannot set `account_id`, list others, or create tenants.
    Tenant(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub subject: String,
    pub role: Role,
}

impl Caller {
    pub fn from_claims(claims: &Claims) -> Result<Self, Problem> {
        let claim = |name: &str| {
            claims
                .0
                .get(name)
                .map(String::as_str)
                .filter(|v| !v.is_empty())
        };
        let subject = claim("sub")
            .ok_or_else(|| Problem::unauthenticated("the token has no subject (sub)"))?
            .to_owned();
        let in_admin_group = claim("cognito:groups").is_some_and(|groups| {
            groups
                .trim_matches(|c| c == '[' || c == ']')
                .split([' ', ','])
                .any(|g| g.trim_matches('"') == "admin")
        });
        let role = match (claim("role"), in_admin_group) {
            (Some("admin"), _) | (None, true) => Role::Admin,
            _ => match claim("tenant_id").or_else(|| claim("custom:tenant_id")) {
                Some(tenant) => Role::Tenant(tenant.to_owned()),
                None => {
                    return Err(Problem::forbidden(
                        "the token names neither the admin role nor a tenant_id",
                    ));
                }
            },
        };
        Ok(Self { subject, role })
    }

    /// Whether this caller may see and act on `tenant` at all (others get 404).
    pub fn sees(&self, tenant: &str) -> bool {
        match &self.role {
            Role::Admin => true,
            Role::Tenant(own) => own == tenant,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// For what acts on the whole fleet (template versions, rollouts): 403 for a tenant.
    /// `what` completes "only an admin ...".
    pub fn require_admin(&self, what: &str) -> Result<(), Problem> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(Problem::forbidden(format!("only an admin {what}")))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let claims = parts
            .extensions
            .get::<Claims>()
            .ok_or_else(|| Problem::unauthenticated("send a bearer token"))?;
        Self::from_claims(claims)
    }
}

/// A caller with the admin role, for the routes only admins use (the fleet's, and creating
/// tenants). As an extractor it runs before the body is read, so a tenant token gets 403
/// whatever it sends, never a 413 or 415 that would answer for a body it may not send at all.
#[derive(Clone, Debug)]
pub struct Admin(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require_admin(&format!("may {} {}", parts.method, parts.uri.path()))?;
        Ok(Self(caller))
    }
}

/// The local system's token key (`make up`, `tenantctl token`): documented, for local use only.
pub const LOCAL_API_TOKEN_KEY: &str = "local-api-token-key";
pub const LOCAL_ISSUER: &str = "tenant-control-plane-local";
pub const LOCAL_AUDIENCE: &str = "tenant-api";

#[derive(Debug, Serialize, Deserialize)]
struct LocalClaims {
    sub: String,
    iss: String,
    aud: String,
    exp: i64,
    /// Not before (seconds): checked as API Gateway's JWT authorizer checks it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
    role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tenant_id: Option<String>,
}

/// Tokens for the local system, signed with a local key (never used deployed).
#[derive(Clone)]
pub struct LocalTokens {
    key: Vec<u8>,
}

impl std::fmt::Debug for LocalTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalTokens(<key redacted>)")
    }
}

impl LocalTokens {
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self { key: key.into() }
    }

    /// A token for `subject` as admin (`tenant` None) or as that tenant, valid for `hours`.
    pub fn mint(&self, subject: &str, tenant: Option<&str>, hours: i64) -> Result<String, String> {
        let claims = LocalClaims {
            sub: subject.to_owned(),
            iss: LOCAL_ISSUER.to_owned(),
            aud: LOCAL_AUDIENCE.to_owned(),
            exp: (chrono::Utc::now() + chrono::Duration::hours(hours)).timestamp(),
            nbf: None,
            role: if tenant.is_some() { "tenant" } else { "admin" }.to_owned(),
            tenant_id: tenant.map(str::to_owned),
        };
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&self.key),
        )
        .map_err(|e| e.to_string())
    }

    /// The claims of an `Authorization` header's bearer token, if it verifies.
    pub fn verify(&self, authorization: Option<&str>) -> Result<Claims, Problem> {
        // The scheme is case-insensitive (RFC 9110 §11.1): `bearer` is `Bearer`.
        let token = authorization
            .and_then(|h| h.trim_start().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token)
            .ok_or_else(|| Problem::unauthenticated("send Authorization: Bearer <token>"))?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_nbf = true;
        validation.set_issuer(&[LOCAL_ISSUER]);
        validation.set_audience(&[LOCAL_AUDIENCE]);
        let data = jsonwebtoken::decode::<LocalClaims>(
            token.trim(),
            &DecodingKey::from_secret(&self.key),
            &validation,
        )
        .map_err(|e| Problem::unauthenticated(format!("the token does not verify: {e}")))?;
        let mut claims = HashMap::from([
            ("sub".to_owned(), data.claims.sub),
            ("role".to_owned(), data.claims.role),
        ]);
        if let Some(tenant) = data.claims.tenant_id {
            claims.insert("tenant_id".to_owned(), tenant);
        }
        Ok(Claims(claims))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(pairs: &[(&str, &str)]) -> Claims {
        Claims(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn roles_come_from_the_claims() {
        let admin = Caller::from_claims(&claims(&[("sub", "ops"), ("role", "admin")])).unwrap();
        assert!(admin.is_admin() && admin.sees("anyone"));
        let cognito_admin = Caller::from_claims(&claims(&[
            ("sub", "ops"),
            ("cognito:groups", "[admin support]"),
        ]))
        .unwrap();
        assert!(cognito_admin.is_admin());
        let tenant =
            Caller::from_claims(&claims(&[("sub", "u1"), ("custom:tenant_id", "acme")])).unwrap();
        assert_eq!(tenant.role, Role::Tenant("acme".into()));
        assert!(tenant.sees("acme") && !tenant.sees("globex"));
        // A tenant claiming a role it lacks is still only a tenant.
        let pretender = Caller::from_claims(&claims(&[
            ("sub", "u2"),
            ("role", "superuser"),
            ("tenant_id", "acme"),
        ]))
        .unwrap();
        assert_eq!(pretender.role, Role::Tenant("acme".into()));
        assert_eq!(
            Caller::from_claims(&claims(&[("sub", "x")]))
                .unwrap_err()
                .status,
            403
        );
        assert_eq!(Caller::from_claims(&claims(&[])).unwrap_err().status, 401);
    }

    #[test]
    fn local_tokens_verify_only_with_the_local_key() {
        let tokens = LocalTokens::new("k1");
        let token = tokens.mint("alice", Some("acme"), 1).unwrap();
        let claims = tokens.verify(Some(&format!("Bearer {token}"))).unwrap();
        assert_eq!(
            Caller::from_claims(&claims).unwrap().role,
            Role::Tenant("acme".into())
        );
        assert_eq!(
            LocalTokens::new("k2")
                .verify(Some(&format!("Bearer {token}")))
                .unwrap_err()
                .status,
            401
        );
        assert_eq!(tokens.verify(None).unwrap_err().status, 401);
        assert_eq!(tokens.verify(Some("Basic abc")).unwrap_err().status, 401);
        // The scheme in any case.
        for scheme in ["bearer", "BEARER", "BeArEr"] {
            assert!(tokens.verify(Some(&format!("{scheme} {token}"))).is_ok());
        }
    }

    #[test]
    fn a_token_not_yet_valid_is_refused() {
        let key = "k1";
        let now = chrono::Utc::now().timestamp();
        let token = |nbf: i64| {
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &LocalClaims {
                    sub: "alice".into(),
                    iss: LOCAL_ISSUER.into(),
                    aud: LOCAL_AUDIENCE.into(),
                    exp: now + 3600,
                    nbf: Some(nbf),
                    role: "admin".into(),
                    tenant_id: None,
                },
                &EncodingKey::from_secret(key.as_bytes()),
            )
            .unwrap()
        };
        let tokens = LocalTokens::new(key);
        let early = tokens
            .verify(Some(&format!("Bearer {}", token(now + 600))))
            .unwrap_err();
        assert_eq!(early.status, 401);
        assert!(
            early.detail.contains("ImmatureSignature"),
            "{}",
            early.detail
        );
        assert!(
            tokens
                .verify(Some(&format!("Bearer {}", token(now - 5))))
                .is_ok()
        );
    }
}
