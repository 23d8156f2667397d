//! The JSON body of a write: size-limited, JSON only, and every rejection a problem document.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde_json::Value;

use crate::problem::Problem;

/// Bodies larger than this are refused (a SPEC row is at most a few KB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// `POST /template-versions` takes more: a template body (at most 51,200 bytes, as
/// CloudFormation takes it inline) grows when escaped into a JSON string.
pub const MAX_TEMPLATE_BODY_BYTES: usize = 256 * 1024;

pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(str::trim)
            .is_some_and(|media| {
                media == "application/json" || media == "application/merge-patch+json"
            });
        if !json {
            return Err(Problem::unsupported_media_type());
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
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| Problem::bad_request(format!("the body is not valid JSON: {e}")))
    }
}
