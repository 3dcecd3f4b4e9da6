//! The one error type of the JSON APIs. Each variant documents its status;
//! store and internal errors become an opaque 500 whose cause is logged
//! (once, here) and never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::domain::input::InvalidInput;
use crate::store::StoreError;

#[derive(Debug)]
pub enum ApiError {
    /// 401: no bearer token, or not one of the configured tokens.
    Unauthorized,
    /// 400: the body is not JSON of the expected shape, or a path id is
    /// not plain digits. `field` names where (`title`, `services[0]`, `id`)
    /// whenever the error is about one field.
    BadRequest {
        field: Option<String>,
        message: String,
    },
    /// 413: the body is over `limit` bytes.
    TooLarge { limit: usize },
    /// 422: a field's value is not accepted.
    Invalid {
        field: &'static str,
        message: String,
    },
    /// 404: no such incident (or maintenance…).
    NotFound(String),
    /// 500: logged with its cause; the client learns nothing more.
    Internal(anyhow::Error),
}

impl ApiError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            field,
            message: message.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid { field, message } => ApiError::Invalid { field, message },
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<InvalidInput> for ApiError {
    fn from(e: InvalidInput) -> Self {
        ApiError::Invalid {
            field: e.field,
            message: e.message,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                json!({"error": "a valid bearer token is required (Authorization: Bearer <token>)", "field": null}),
            ),
            ApiError::BadRequest { field, message } => (
                StatusCode::BAD_REQUEST,
                json!({"error": message, "field": field}),
            ),
            ApiError::Invalid { field, message } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"error": format!("{field}: {message}"), "field": field}),
            ),
            ApiError::TooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"error": format!("the body is over {limit} bytes"), "field": null}),
            ),
            ApiError::NotFound(what) => {
                (StatusCode::NOT_FOUND, json!({"error": what, "field": null}))
            }
            ApiError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "admin API request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"error": "internal error", "field": null}),
                )
            }
        };
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            crate::web::capped::last_on_connection(&mut response);
        }
        response
    }
}
