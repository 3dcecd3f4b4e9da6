//! HTTP: the public status page, beacon's own health for Kubernetes, and
//! (later) the JSON API, feeds, badges, metrics and admin API.
//!
//! Public handlers read the in-memory [`Snapshot`]; only `/readyz` and
//! `/health` touch the store, and with a deadline.

mod admin;
mod api;
pub mod error;
mod own_health;
mod pages;

use std::sync::Arc;

use axum::extract::MatchedPath;
use axum::http::Request;
use axum::routing::get;
use axum::Router;
use tokio::sync::watch;
use tower_http::trace::TraceLayer;

use crate::clock::Clock;
use crate::monitor::MonitorStats;
use crate::snapshot::Snapshot;
use crate::store::Store;

/// What every handler may read.
#[derive(Clone)]
pub struct AppState {
    pub snapshot: watch::Receiver<Arc<Snapshot>>,
    pub store: Store,
    pub stats: Arc<MonitorStats>,
    pub clock: Arc<dyn Clock>,
    /// Bearer tokens of the admin API (none: it refuses every request).
    pub admin_tokens: Arc<Vec<String>>,
}

impl AppState {
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.borrow().clone()
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(admin::routes(state.clone()))
        .route("/", get(pages::index))
        .route("/api/v1/services", get(api::services))
        .route("/livez", get(own_health::livez))
        .route("/readyz", get(own_health::readyz))
        .route("/health", get(own_health::health))
        .fallback(pages::not_found)
        .layer(
            // One span per request, named by the route pattern (not the raw
            // path, which may hold anything a client sends).
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let route = req
                    .extensions()
                    .get::<MatchedPath>()
                    .map(MatchedPath::as_str)
                    .unwrap_or("unmatched");
                tracing::debug_span!("http", method = %req.method(), route)
            }),
        )
        .with_state(state)
}
