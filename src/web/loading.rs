//! The public routes while beacon is starting.
//!
//! beacon answers `/livez` at once and probes from the stored states at
//! once, but its first snapshot needs the history (90 days of rollups: tens
//! of seconds at 100,000 services). Until that is read, nothing public is
//! shown half-built: a page without its history would say "no data" for
//! every service, and a Statuspage client reading `summary.json` would
//! take an empty component list for the truth. Public routes answer 503
//! with `Retry-After` (what crawlers, aggregators and load balancers know
//! to retry) and, for people, a page saying so that reloads itself;
//! `/readyz` answers 503, so a load balancer sends visitors to a replica
//! that is ready. Admin routes, `/livez`, `/readyz`, `/health` and
//! `/metrics` are not held back.

use askama::Template;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;

/// What clients are told to wait before asking again, in seconds.
pub const RETRY_AFTER_SECS: u64 = 5;

#[derive(Template)]
#[template(path = "loading.html")]
struct LoadingPage {
    site: std::sync::Arc<super::Site>,
    title: String,
    retry_after: u64,
}

/// Answers for the public route while the first snapshot is not built;
/// passes the request on once it is.
pub async fn gate(State(app): State<AppState>, request: Request, next: Next) -> Response {
    // The borrow ends here: it must not be held across the await below.
    let loading_title = {
        let snapshot = app.snapshot.borrow();
        snapshot.loading.then(|| snapshot.title.clone())
    };
    let Some(title) = loading_title else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    let (content_type, body) = if path.starts_with("/api/") {
        (
            "application/json",
            serde_json::json!({
                "error": "starting",
                "message": "the status page has just restarted and is reading its history; try again in a few seconds",
            })
            .to_string(),
        )
    } else if path.starts_with("/feed") || path.starts_with("/badge") {
        (
            "text/plain; charset=utf-8",
            "starting: try again in a few seconds\n".to_string(),
        )
    } else {
        let page = LoadingPage {
            site: app.site.clone(),
            title,
            retry_after: RETRY_AFTER_SECS,
        };
        match page.render() {
            Ok(html) => ("text/html; charset=utf-8", html),
            Err(_) => (
                "text/plain; charset=utf-8",
                "starting: try again in a few seconds\n".to_string(),
            ),
        }
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::RETRY_AFTER, RETRY_AFTER_SECS.to_string()),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response()
}
