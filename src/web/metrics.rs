//! `/metrics` (Prometheus text format) and the counter of every HTTP
//! request by route pattern and status.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

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
    let now_ms = app.clock.now_ms();
    // A store that does not answer must not hide the counters that say so
    // (write failures, results held or shed): without it, the series read
    // from the store are left out and the rest is served. A scrape is a
    // public read like any other (see `AppState::read_store`).
    let read = app
        .read_store(async {
            tokio::try_join!(
                app.store.service_summaries(now_ms),
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
    // blocking thread, never on a worker the probes and pages need.
    let text = tokio::task::spawn_blocking(move || {
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
    let text = match text {
        Ok(text) => text,
        Err(e) => {
            tracing::error!(error = %e, "rendering /metrics failed");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "rendering the metrics failed\n",
            )
                .into_response();
        }
    };
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
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
