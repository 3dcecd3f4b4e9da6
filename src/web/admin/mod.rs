//! The admin JSON API under `/admin/api/`, behind bearer tokens from
//! `[admin] tokens` (compared in constant time, never logged). Every write
//! is one transaction: a request that fails writes nothing.
//!
//! `body.rs` reads requests (JSON bodies, path ids); `incidents.rs` and
//! `maintenance.rs` are the handlers. What a field may hold is decided in
//! `domain::input`, which the CLI calls too.

mod body;
mod incidents;
mod maintenance;
pub mod subscribers;
#[cfg(test)]
mod tests;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, MethodRouter};
use axum::{Json, Router};
use serde_json::{json, Value};

pub use body::MAX_BODY_BYTES;

use super::auth::bearer_allowed;
use super::error::ApiError;
use super::AppState;
use crate::clock::ms_to_datetime;

pub fn routes(state: AppState) -> Router<AppState> {
    // Every answer of the admin API is its JSON, a wrong method and an
    // unknown path under /admin/api/ included.
    let json_405 = |methods: MethodRouter<AppState>| methods.fallback(method_not_allowed);
    Router::new()
        .route(
            "/admin/api/incidents",
            json_405(get(incidents::list).post(incidents::create)),
        )
        .route(
            "/admin/api/incidents/{id}",
            json_405(
                get(incidents::show)
                    .patch(incidents::edit)
                    .delete(incidents::remove),
            ),
        )
        .route(
            "/admin/api/incidents/{id}/updates",
            json_405(post(incidents::add_update)),
        )
        .route(
            "/admin/api/maintenances",
            json_405(get(maintenance::list).post(maintenance::create)),
        )
        .route(
            "/admin/api/maintenances/{id}",
            json_405(
                get(maintenance::show)
                    .patch(maintenance::edit)
                    .delete(maintenance::remove),
            ),
        )
        .route(
            "/admin/api/subscribers",
            json_405(get(subscribers::list).post(subscribers::create)),
        )
        .route(
            "/admin/api/subscribers/{id}",
            json_405(get(subscribers::show).delete(subscribers::remove)),
        )
        .route("/admin/api/{*rest}", any(no_such_path))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(state, require_token))
}

async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({"error": "this method is not allowed here", "field": null})),
    )
        .into_response()
}

async fn no_such_path() -> ApiError {
    ApiError::NotFound("no such admin API path".into())
}

async fn require_token(State(app): State<AppState>, request: Request, next: Next) -> Response {
    if !bearer_allowed(request.headers(), &app.admin_tokens) {
        return ApiError::Unauthorized.into_response();
    }
    let writes = request.method() != axum::http::Method::GET;
    let response = next.run(request).await;
    if writes && response.status().is_success() {
        // The page shows the change within a second, not at the next timer.
        app.changed.notify_one();
    }
    response
}

/// A time as the admin API writes it: RFC 3339, null when out of range.
fn time(ms: i64) -> Value {
    ms_to_datetime(ms).map_or(Value::Null, |t| json!(t.to_rfc3339()))
}
