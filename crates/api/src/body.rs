//! The JSON body of a write: size-limited, in a media type the route takes, one value per key,
//! and every rejection a problem document.

use std::collections::HashSet;
use std::fmt;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::{self, HeaderName};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::problem::Problem;

/// Bodies larger than this are refused (a SPEC row is at most a few KB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// `POST /template-versions` takes more: a template body (at most 1 MB, what CloudFormation
/// reads from a TemplateURL) grows when escaped into a JSON string. Under Lambda's 6 MB limit
/// of a request.
pub const MAX_TEMPLATE_BODY_BYTES: usize = 4 * 1024 * 1024;

pub const JSON: &str = "application/json";
/// JSON Merge Patch (RFC 7396).
pub const MERGE_PATCH: &str = "application/merge-patch+json";

/// A POST body: `application/json` only.
pub struct JsonBody(pub Value);

/// A PATCH body: a JSON Merge Patch, sent as `application/merge-patch+json` (or as plain
/// `application/json`, which clients send by default).
pub struct MergePatchBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        read_json(
            request,
            state,
            &[JSON],
            header::HeaderName::from_static("accept-post"),
        )
        .await
        .map(Self)
    }
}

impl<S: Send + Sync> FromRequest<S> for MergePatchBody {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        read_json(
            request,
            state,
            &[MERGE_PATCH, JSON],
            header::HeaderName::from_static("accept-patch"),
        )
        .await
        .map(Self)
    }
}

/// Whether `content_type` (parameters aside) is one of `accepted`; media types are
/// case-insensitive (RFC 9110 §8.3.1).
pub fn takes(content_type: Option<&str>, accepted: &[&str]) -> bool {
    content_type
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .is_some_and(|media| accepted.iter().any(|a| media.eq_ignore_ascii_case(a)))
}

async fn read_json<S: Send + Sync>(
    request: Request,
    state: &S,
    accepted: &[&str],
    accept_header: HeaderName,
) -> Result<Value, Problem> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if !takes(content_type, accepted) {
        return Err(Problem::unsupported_media_type(accept_header, accepted));
    }
    let bytes = Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                Problem::too_large(format!(
                    "the body must be at most {MAX_BODY_BYTES} bytes \
                     ({MAX_TEMPLATE_BODY_BYTES} for POST /template-versions)"
                ))
            } else {
                Problem::bad_request(rejection.body_text())
            }
        })?;
    parse_json(&bytes)
}

/// The body as JSON, refusing an object that names a key twice: JSON leaves that undefined
/// (RFC 8259 §4), and a parser keeping the last one would let `{"tenant_id":"a",
/// "tenant_id":"b"}` pass a check of `a` and write `b`.
pub fn parse_json(bytes: &[u8]) -> Result<Value, Problem> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| Problem::bad_request(format!("the body is not valid JSON: {e}")))?;
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    UniqueKeys {
        path: String::new(),
    }
    .deserialize(&mut deserializer)
    .map_err(|e| Problem::bad_request(format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

/// Walks a JSON document, failing at the first object naming a key twice. (Numbers, under
/// serde_json's `arbitrary_precision`, arrive as a one-key map: `visit_map` takes them too.)
struct UniqueKeys {
    /// Where in the document (`config`, `selection.config`), for the message.
    path: String,
}

impl UniqueKeys {
    fn at(&self, key: &str) -> Self {
        Self {
            path: if self.path.is_empty() {
                key.to_owned()
            } else {
                format!("{}.{key}", self.path)
            },
        }
    }
}

impl<'de> DeserializeSeed<'de> for UniqueKeys {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for UniqueKeys {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut keys = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let inner = self.at(&key);
            if !keys.insert(key) {
                return Err(de::Error::custom(format!(
                    "the key {:?} appears more than once",
                    inner.path
                )));
            }
            map.next_value_seed(inner)?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0usize;
        while seq
            .next_element_seed(self.at(&format!("[{index}]")))?
            .is_some()
        {
            index += 1;
        }
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_named_twice_is_refused_at_any_depth() {
        for body in [
            r#"{"tenant_id":"a","config":{},"tenant_id":"b"}"#,
            r#"{"config":{"x":1,"x":2}}"#,
            r#"{"selection":{"tenants":[{"a":1,"a":1}]}}"#,
        ] {
            let problem = parse_json(body.as_bytes()).unwrap_err();
            assert_eq!(problem.status, 400, "{body}");
            assert!(
                problem.detail.contains("more than once"),
                "{}",
                problem.detail
            );
        }
        let problem = parse_json(br#"{"config":{"x":1,"x":2}}"#).unwrap_err();
        assert!(
            problem.detail.contains("\"config.x\""),
            "{}",
            problem.detail
        );
    }

    #[test]
    fn numbers_keep_their_text_and_distinct_keys_pass() {
        let value = parse_json(br#"{"a":1.50,"b":[1,2,{"c":12345678901234567890123}]}"#).unwrap();
        assert_eq!(value["a"].to_string(), "1.50");
        assert_eq!(value["b"][2]["c"].to_string(), "12345678901234567890123");
    }

    #[test]
    fn media_types_match_without_regard_to_case() {
        assert!(takes(Some("Application/JSON; charset=utf-8"), &[JSON]));
        assert!(!takes(Some("application/merge-patch+json"), &[JSON]));
        assert!(takes(
            Some("APPLICATION/MERGE-PATCH+JSON"),
            &[MERGE_PATCH, JSON]
        ));
        assert!(!takes(None, &[JSON]));
    }
}
