//! beacon's own public JSON: every public service with its state and the
//! dependencies it reports (names and states only, as on the page). Read
//! from the snapshot, like the page. (The Statuspage-compatible API lives
//! under /api/v2/ once built.)

use axum::extract::State as AxumState;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::AppState;

#[derive(Serialize)]
struct ServicesDoc<'a> {
    updated_at: String,
    status: &'static str,
    services: Vec<ServiceDoc<'a>>,
}

#[derive(Serialize)]
struct ServiceDoc<'a> {
    slug: &'a str,
    name: &'a str,
    group: Option<&'a str>,
    state: &'static str,
    state_since: Option<String>,
    last_checked_at: Option<String>,
    uptime_24h: Option<f64>,
    dependencies: Vec<DependencyDoc<'a>>,
}

#[derive(Serialize)]
struct DependencyDoc<'a> {
    name: &'a str,
    state: &'static str,
}

pub async fn services(AxumState(app): AxumState<AppState>) -> Response {
    let snapshot = app.snapshot();
    let services = snapshot
        .groups
        .iter()
        .flat_map(|g| g.services.iter().map(move |s| (g.name.as_deref(), s)))
        .map(|(group, s)| ServiceDoc {
            slug: &s.slug,
            name: &s.name,
            group,
            state: s.state.as_str(),
            state_since: s.state_since.map(|t| t.to_rfc3339()),
            last_checked_at: s.last_checked_at.map(|t| t.to_rfc3339()),
            uptime_24h: s.uptime_24h.map(|u| (u * 100.0).floor() / 100.0),
            dependencies: s
                .dependencies
                .iter()
                .map(|(name, health)| DependencyDoc {
                    name,
                    state: health.as_str(),
                })
                .collect(),
        })
        .collect();
    let doc = ServicesDoc {
        updated_at: snapshot.generated_at.to_rfc3339(),
        status: snapshot.overall.class(),
        services,
    };
    match serde_json::to_string(&doc) {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "serialising /api/v1/services failed");
            axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
