//! Reading an admin request: its JSON body and the id in its path, each
//! refusal the API's JSON error naming the field.

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::web::capped;
use crate::web::error::ApiError;

/// Request bodies over this many bytes are refused with 413. A postmortem
/// (100,000 bytes at most) fits even written all in `\uXXXX` escapes.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON body, parsed so that every refusal is the API's JSON error
/// naming the field: 413 over [`MAX_BODY_BYTES`], 400 otherwise.
pub(crate) struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, ApiError> {
        let json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .is_some_and(|v| v == "application/json" || v.ends_with("+json"));
        if !json {
            return Err(ApiError::BadRequest {
                field: None,
                message: "expected a JSON body with Content-Type: application/json".into(),
            });
        }
        let (parts, body) = request.into_parts();
        let bytes = capped::read(&parts.headers, body, MAX_BODY_BYTES)
            .await
            .map_err(|refused| match refused {
                capped::Refused::TooLarge => ApiError::TooLarge {
                    limit: MAX_BODY_BYTES,
                },
                capped::Refused::Broken(e) => ApiError::BadRequest {
                    field: None,
                    message: format!("the body could not be read: {e}"),
                },
            })?;
        parse_body(&bytes).map(Body)
    }
}

/// Reads an admin request body: 400 naming the field (`title`,
/// `services[2]`) or, for a body that is not JSON, the line and column.
pub(crate) fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut reader = serde_json::Deserializer::from_slice(bytes);
    let parsed: Result<T, _> = serde_path_to_error::deserialize(&mut reader);
    let value = parsed.map_err(|e| {
        let inner = e.inner();
        if !inner.is_data() {
            return ApiError::BadRequest {
                field: None,
                message: format!("the body is not JSON: {inner}"),
            };
        }
        let path = e.path().to_string();
        let text = inner.to_string();
        // A missing field is an error of the object around it: serde names
        // the field between backticks. (An unknown one is in the path.)
        let missing = text
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
            .map(|name| match path.as_str() {
                "." => name.to_string(),
                outer => format!("{outer}.{name}"),
            });
        let field = missing.or_else(|| (path != ".").then_some(path));
        let message = match &field {
            Some(field) => format!("{field}: {text}"),
            None => text,
        };
        ApiError::BadRequest { field, message }
    })?;
    reader.end().map_err(|e| ApiError::BadRequest {
        field: None,
        message: format!("the body is not one JSON value: {e}"),
    })?;
    Ok(value)
}

/// An incident or maintenance id from the path: plain digits (no sign,
/// no spaces), else 400 naming `id`.
pub(crate) struct Id(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest {
                field: Some("id".into()),
                message: format!("id: {}", e.body_text()),
            })?;
        parse_id(&raw).map(Id)
    }
}

pub(crate) fn parse_id(raw: &str) -> Result<i64, ApiError> {
    let refuse = |why: &str| ApiError::BadRequest {
        field: Some("id".into()),
        message: format!("id: \"{}\" {why}", short(raw, 40)),
    };
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refuse("is not an id: ids are plain digits, like 42"));
    }
    raw.parse().map_err(|_| refuse("is not an id: too large"))
}

/// `text` cut to `max` characters, marked with "…" when cut.
fn short(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(max).collect::<String>())
    }
}
