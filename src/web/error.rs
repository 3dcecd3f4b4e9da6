//! The one error type of the JSON APIs. Each variant documents its status;
//! store and internal errors become an opaque 500 whose cause is logged
//! (once, here) and never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::StoreError;

#[derive(Debug)]
pub enum ApiError {
    /// 401: no bearer token, or not one of the configured tokens.
    Unauthorized,
    /// 400: the body is not JSON of the expected shape.
    BadRequest {
        field: Option<String>,
        message: String,
    },
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

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        let message = rejection.body_text();
        // serde names the field between backticks: "missing field `title`".
        let field = message
            .split('`')
            .nth(1)
            .filter(|_| message.contains("field"))
            .map(str::to_string);
        ApiError::BadRequest { field, message }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                json!({"error": "a valid bearer token is required (Authorization: Bearer <token>)"}),
            ),
            ApiError::BadRequest { field, message } => (
                StatusCode::BAD_REQUEST,
                json!({"error": message, "field": field}),
            ),
            ApiError::Invalid { field, message } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"error": format!("{field}: {message}"), "field": field}),
            ),
            ApiError::NotFound(what) => (StatusCode::NOT_FOUND, json!({"error": what})),
            ApiError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "admin API request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"error": "internal error"}),
                )
            }
        };
        (status, axum::Json(body)).into_response()
    }
}
