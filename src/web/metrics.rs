//! `/metrics` (Prometheus text format) and the counter of every HTTP
//! request by route pattern and status.

use axum::body::Bytes;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

use super::single_flight::SingleFlight;
use super::AppState;
use crate::metrics::Readings;

/// `GET /metrics`. With `[metrics] token`, only for `Authorization: Bearer`
/// that token (compared in constant time).
pub async fn metrics(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = &app.metrics_token {
        if !super::auth::bearer_allowed(&headers, std::slice::from_ref(token.as_ref())) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
                "a bearer token is required\n",
            )
                .into_response();
        }
    }
    let Some(scrape) = app.scrapes.join_or_build(&app).await else {
        return failed();
    };
    // Prometheus asks for gzip: compressed once per scrape for everyone
    // who joined it, on a background thread.
    let Ok((body, encoding)) = scrape.get(super::cache::negotiate(&headers)).await else {
        return failed();
    };
    let response = (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            ),
            (header::VARY, HeaderValue::from_static("accept-encoding")),
        ],
        body,
    )
        .into_response();
    super::cache::with_encoding(response, encoding)
}

fn failed() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "rendering the metrics failed\n",
    )
        .into_response()
}

/// What a scrape's build ended with: its text, or `None` when it failed.
type Built = Option<Arc<Scrape>>;

/// One scrape's text, and its compressed copies once someone asked.
type Scrape = super::cache::Encoded;

/// The scrape being built, which every scrape that arrives meanwhile
/// joins (single flight): an HA pair of Prometheus servers, or a burst of
/// scrapes during an outage, costs one store read and one rendering, never
/// one per scrape, and no scrape waits on a lock held across the work.
#[derive(Default)]
pub struct Scrapes(Arc<SingleFlight<Built>>);

impl Scrapes {
    /// The text of the scrape under way, or of a new one this call starts.
    /// `None` when the rendering failed (logged).
    async fn join_or_build(&self, app: &AppState) -> Option<Arc<Scrape>> {
        let app = app.clone();
        self.0
            .join_or_run("building /metrics", async move {
                build(&app).await.map(|text| Arc::new(Scrape::new(text)))
            })
            .await
            .flatten()
    }
}

/// One scrape: the series read from the store and the process's own,
/// rendered as text.
async fn build(app: &AppState) -> Option<Bytes> {
    let now_ms = app.clock.now_ms();
    // A store that does not answer must not hide the counters that say so
    // (write failures, results held or shed): without it, the series read
    // from the store are left out and the rest is served. A scrape is a
    // public read like any other (see `AppState::read_store`).
    let per_service = app.metrics.per_service();
    let read = app
        .read_store(async {
            tokio::try_join!(
                async {
                    if per_service {
                        app.store.service_summaries(now_ms).await
                    } else {
                        Ok(Vec::new())
                    }
                },
                app.store.backup_records(),
                app.store.pending_alert_deliveries()
            )
        })
        .await;
    let (services, backups, pending) = match read {
        Ok(read) => read,
        Err(refused) => {
            tracing::warn!(error = ?refused, "reading the store for /metrics failed; serving the counters only");
            Default::default()
        }
    };
    // Every configured channel, at 0 when nothing waits.
    let alerts_pending: Vec<(String, i64)> = app
        .alert_channels
        .iter()
        .map(|c| {
            let n = pending.iter().find(|(p, _)| p == c).map_or(0, |(_, n)| *n);
            (c.clone(), n)
        })
        .collect();
    let backup_period_secs = app
        .backup_watch
        .as_ref()
        .map(|w| w.max_age.num_milliseconds() as f64 / 2000.0);
    let monitor_lag_secs = app.stats.current_lag(now_ms).as_secs_f64();
    let metrics = app.metrics.clone();
    // Hundreds of thousands of lines at 10,000 services: built on a
    // background thread, never on a worker the probes and pages need.
    let text = crate::background::run(move || {
        metrics.render(&Readings {
            now_ms,
            services: &services,
            monitor_lag_secs,
            backups: &backups,
            backup_period_secs,
            alerts_pending: &alerts_pending,
        })
    })
    .await;
    match text {
        Ok(text) => Some(Bytes::from(text)),
        Err(e) => {
            tracing::error!(error = %e, "rendering /metrics failed");
            None
        }
    }
}

/// Counts each request under its route pattern (`/services/{slug}`, never
/// the raw path a client chose) and status.
pub async fn count_requests(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(request).await;
    app.metrics
        .http_requests
        .with_label_values(&[route.as_str(), response.status().as_str()])
        .inc();
    response
}
