//! HTTP: the public status page, its JSON API, feeds and badges, beacon's
//! own health for Kubernetes, `/metrics`, and the admin API.
//!
//! Public handlers read the in-memory [`Snapshot`]; only `/readyz` and
//! `/health` touch the store, and with a deadline.

mod admin;
pub mod agent;
mod api;
mod attempts;
mod auth;
mod cache;
mod capped;
pub mod clients;
pub mod console;
pub mod error;
mod feeds;
mod format;
mod loading;
mod metrics;
mod own_health;
mod pages;
pub mod server;
mod single_flight;
mod statuspage;
pub mod subscribe;
#[cfg(test)]
mod tests;

/// The page's Statuspage `indicator` and its description for an overall state.
pub use statuspage::{indicator, webhook_bodies};

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
    /// What `/metrics` serves, and the supervised tasks `/health` shows.
    pub metrics: Arc<crate::metrics::Metrics>,
    pub clock: Arc<dyn Clock>,
    /// Bearer tokens of the admin API (none: it refuses every request).
    pub admin_tokens: Arc<Vec<String>>,
    /// Wakes the snapshot refresher after an admin write.
    pub changed: Arc<tokio::sync::Notify>,
    /// Public responses rendered once per snapshot.
    pub render_cache: Arc<cache::RenderCache>,
    /// The `/metrics` scrape under way, which concurrent scrapes join.
    pub scrapes: Arc<metrics::Scrapes>,
    /// The first incident on record, per snapshot (older history pages).
    pub first_incident: Arc<pages::FirstIncident>,
    /// `Cache-Control: max-age` of public responses, in seconds.
    pub max_age_secs: u64,
    pub site: Arc<Site>,
    /// `server.public_url`, for links in the public JSON.
    pub public_url: Option<String>,
    /// Set when backups run on a schedule: /health watches their age.
    pub backup_watch: Option<BackupWatch>,
    /// `[metrics] enabled`.
    pub metrics_enabled: bool,
    /// `[metrics] token`: `/metrics` asks for it when set.
    pub metrics_token: Option<Arc<String>>,
    /// `[[notify]]` channel names, for `/metrics`.
    pub alert_channels: Arc<Vec<String>>,
    /// Open connections and the cap, for `/health` and `/metrics`.
    pub server_stats: Arc<server::ServerStats>,
    /// Permits for public reads that must reach the store (see
    /// [`AppState::read_store`]).
    pub store_reads: Arc<tokio::sync::Semaphore>,
    /// The cluster's view (role, epoch, members), for `/health`; `None` in
    /// the route tests.
    pub cluster: Option<tokio::sync::watch::Receiver<crate::cluster::View>>,
    /// Each client's token bucket on the public routes.
    pub clients: Arc<clients::Clients>,
    /// The store check `/readyz` and `/health` share.
    pub store_checks: Arc<own_health::StoreChecks>,
    /// Agents probing from other locations: their routes' state.
    pub agents: Arc<agent::Agents>,
    pub subscriptions: Arc<subscribe::Subscriptions>,
    pub console: Arc<console::Console>,
}

/// Public reads of the store at once. The store's pool is shared with the
/// recorder (four connections on SQLite): a crawler walking the incident
/// history must never take them all.
pub const STORE_READERS: usize = 2;
/// How long a public read waits for a permit, then how long it may take.
const READ_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
const READ_DEADLINE: std::time::Duration = std::time::Duration::from_secs(3);

/// Why a public read of the store was not made or did not finish.
#[derive(Debug)]
pub enum ReadRefused {
    /// Every permit was taken for [`READ_WAIT`], or the read took longer
    /// than [`READ_DEADLINE`]: the store is busy; try again.
    Busy,
    Failed(crate::store::StoreError),
}

impl ReadRefused {
    /// 503 with `Retry-After`; the cause goes to the log, not the visitor.
    pub fn response(self, what: &str) -> axum::response::Response {
        use axum::response::IntoResponse;
        match self {
            ReadRefused::Busy => {
                tracing::warn!(what, "a public read of the store was turned away: busy")
            }
            ReadRefused::Failed(e) => {
                tracing::error!(error = %e, what, "a public read of the store failed")
            }
        }
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            [(axum::http::header::RETRY_AFTER, "5")],
            "Try again shortly\n",
        )
            .into_response()
    }
}

/// What every page shows around its content (from `[server]`).
#[derive(Debug, Clone, Default)]
pub struct Site {
    pub logo_url: Option<String>,
    pub home_url: Option<String>,
    pub support_url: Option<String>,
    pub announcement: Option<String>,
    /// Times on the pages are shown in this zone.
    pub time_zone: chrono_tz::Tz,
    /// `[subscriptions]` is enabled: every page links to `/subscribe`.
    pub subscribe: bool,
}

#[derive(Debug, Clone)]
pub struct BackupWatch {
    /// Twice the schedule's period.
    pub max_age: chrono::Duration,
    /// When this process started watching.
    pub since: chrono::DateTime<chrono::Utc>,
}

impl AppState {
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    /// Runs `read` against the store for a public route: at most
    /// [`STORE_READERS`] at once, each with a deadline, so the recorder's
    /// writes never wait behind readers (a crawler, a scraper).
    pub async fn read_store<T>(
        &self,
        read: impl std::future::Future<Output = Result<T, crate::store::StoreError>>,
    ) -> Result<T, ReadRefused> {
        let permit = tokio::time::timeout(READ_WAIT, self.store_reads.acquire())
            .await
            .map_err(|_| ReadRefused::Busy)?
            .map_err(|_| ReadRefused::Busy)?;
        let outcome = tokio::time::timeout(READ_DEADLINE, read).await;
        drop(permit);
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(ReadRefused::Failed(e)),
            Err(_) => Err(ReadRefused::Busy),
        }
    }
}

pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    if state.metrics_enabled {
        router = router.route("/metrics", get(metrics::metrics));
    }
    // Everything the public reads from the snapshot, held back (503,
    // `Retry-After`) until the first one is built: see `loading.rs`.
    let public = Router::new()
        .route("/", get(pages::index))
        .route("/incidents", get(pages::incidents))
        .route("/services/{slug}", get(pages::service))
        .route("/incidents/{id}", get(pages::incident))
        .route("/api/v1/services", get(api::services))
        .route("/badge/{file}", get(feeds::state))
        .route("/badge/{slug}/uptime/{file}", get(feeds::uptime))
        .route("/badge/{slug}/response-time.svg", get(feeds::response_time))
        .route("/feed.atom", get(feeds::atom_feed))
        .route("/feed.rss", get(feeds::rss_feed))
        .route("/api/v2/summary.json", get(statuspage::summary))
        .route("/api/v2/status.json", get(statuspage::status_doc))
        .route("/api/v2/components.json", get(statuspage::components_doc))
        .route("/api/v2/incidents.json", get(statuspage::incidents))
        .route(
            "/api/v2/incidents/unresolved.json",
            get(statuspage::unresolved),
        )
        .route(
            "/api/v2/scheduled-maintenances.json",
            get(statuspage::maintenances),
        )
        .route(
            "/api/v2/scheduled-maintenances/upcoming.json",
            get(statuspage::upcoming),
        )
        .route(
            "/api/v2/scheduled-maintenances/active.json",
            get(statuspage::active),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            loading::gate,
        ))
        // Outermost: a client past its rate costs a lookup, nothing more.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            clients::limit,
        ));
    let subscribe = Router::new()
        .route(
            "/subscribe",
            get(subscribe::form_page).post(subscribe::sign_up),
        )
        .route(
            "/subscribe/confirm/{token}",
            get(subscribe::confirm_page).post(subscribe::confirm),
        )
        .route(
            "/subscribe/manage/{token}",
            get(subscribe::manage).post(subscribe::save),
        )
        .route(
            "/subscribe/unsubscribe/{token}",
            get(subscribe::leave_page).post(subscribe::leave),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            clients::limit,
        ));
    router
        .merge(admin::routes(state.clone()))
        .merge(console::routes())
        .merge(subscribe)
        .merge(agent::routes(state.clone()))
        .merge(public)
        .route("/livez", get(own_health::livez))
        .route("/readyz", get(own_health::readyz))
        .route("/health", get(own_health::health))
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::count_requests,
        ))
        .layer(tower_http::compression::CompressionLayer::new())
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
