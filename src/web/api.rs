//! beacon's own public JSON: every public service with its state and the
//! dependencies it reports (names and states only, as on the page). Read
//! from the snapshot, like the page. (The Statuspage-compatible API is
//! `statuspage.rs`, under /api/v2/.)

use axum::extract::State as AxumState;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Serialize;

use super::{cache, AppState};
use crate::snapshot::{MaintenanceView, Snapshot, Uptimes};

#[derive(Serialize)]
struct ServicesDoc<'a> {
    updated_at: String,
    status: &'static str,
    services: Vec<ServiceDoc<'a>>,
    incidents: Vec<IncidentDoc<'a>>,
    maintenances: MaintenancesDoc<'a>,
}

/// Uptime per window in percent (two decimals, rounded down); null: no data.
#[derive(Serialize)]
struct UptimeDoc {
    #[serde(rename = "24h")]
    day: Option<f64>,
    #[serde(rename = "7d")]
    week: Option<f64>,
    #[serde(rename = "30d")]
    month: Option<f64>,
    #[serde(rename = "90d")]
    quarter: Option<f64>,
}

impl UptimeDoc {
    fn of(u: &Uptimes) -> UptimeDoc {
        let r = |v: Option<f64>| v.map(crate::domain::time::uptime_shown);
        UptimeDoc {
            day: r(u[0]),
            week: r(u[1]),
            month: r(u[2]),
            quarter: r(u[3]),
        }
    }
}

#[derive(Serialize)]
struct IncidentDoc<'a> {
    id: i64,
    title: &'a str,
    impact: &'a str,
    status: &'a str,
    started_at: String,
    updated_at: String,
    latest_update: Option<UpdateDoc<'a>>,
    services: &'a [String],
}

#[derive(Serialize)]
struct UpdateDoc<'a> {
    status: &'a str,
    message: &'a str,
    created_at: String,
}

#[derive(Serialize)]
struct MaintenancesDoc<'a> {
    active: Vec<MaintenanceDoc<'a>>,
    upcoming: Vec<MaintenanceDoc<'a>>,
}

#[derive(Serialize)]
struct MaintenanceDoc<'a> {
    id: i64,
    title: &'a str,
    message: &'a str,
    starts_at: String,
    ends_at: String,
    services: &'a [String],
}

impl<'a> MaintenanceDoc<'a> {
    fn of(m: &'a MaintenanceView) -> Self {
        MaintenanceDoc {
            id: m.id,
            title: &m.title,
            message: &m.message,
            starts_at: m.starts_at.to_rfc3339(),
            ends_at: m.ends_at.to_rfc3339(),
            services: &m.services,
        }
    }
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
    uptime: UptimeDoc,
    dependencies: Vec<DependencyDoc<'a>>,
    /// Checked from several locations: what each sees (the service's
    /// `state` is what their quorum decided).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    locations: Vec<LocationDoc<'a>>,
}

#[derive(Serialize)]
struct LocationDoc<'a> {
    name: &'a str,
    /// What its latest result found: up, degraded or down; `silent` when it
    /// has sent nothing lately (it then counts neither way).
    state: &'static str,
    latency_ms: Option<i32>,
    last_checked_at: String,
}

#[derive(Serialize)]
struct DependencyDoc<'a> {
    name: &'a str,
    state: &'static str,
}

pub async fn services(AxumState(app): AxumState<AppState>, headers: HeaderMap) -> Response {
    let snapshot = app.snapshot();
    cache::respond(
        &app.render_cache,
        snapshot,
        &headers,
        app.max_age_secs,
        "/api/v1/services",
        cache::JSON,
        services_json,
    )
    .await
}

fn services_json(snapshot: &Snapshot) -> Option<String> {
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
            last_checked_at: s.last_checked_at().map(|t| t.to_rfc3339()),
            uptime_24h: s.uptime[0].map(crate::domain::time::uptime_shown),
            uptime: UptimeDoc::of(&s.uptime),
            dependencies: s
                .dependencies
                .iter()
                .map(|(name, health)| DependencyDoc {
                    name,
                    state: health.as_str(),
                })
                .collect(),
            locations: s
                .locations
                .iter()
                .map(|l| LocationDoc {
                    name: &l.name,
                    state: if l.silent {
                        "silent"
                    } else {
                        l.outcome.state().as_str()
                    },
                    latency_ms: l.latency_ms,
                    last_checked_at: l.checked_at.to_rfc3339(),
                })
                .collect(),
        })
        .collect();
    let doc = ServicesDoc {
        updated_at: snapshot.generated_at.to_rfc3339(),
        status: snapshot.overall.class(),
        services,
        incidents: snapshot
            .incidents
            .iter()
            .map(|i| IncidentDoc {
                id: i.id,
                title: &i.title,
                impact: &i.impact,
                status: &i.status,
                started_at: i.started_at.to_rfc3339(),
                updated_at: i.updated_at.to_rfc3339(),
                latest_update: i.latest.as_ref().map(|(status, message, at)| UpdateDoc {
                    status,
                    message,
                    created_at: at.to_rfc3339(),
                }),
                services: &i.services,
            })
            .collect(),
        maintenances: MaintenancesDoc {
            active: snapshot
                .active_maintenances
                .iter()
                .map(MaintenanceDoc::of)
                .collect(),
            upcoming: snapshot
                .upcoming_maintenances
                .iter()
                .map(MaintenanceDoc::of)
                .collect(),
        },
    };
    serde_json::to_string(&doc)
        .map_err(|e| tracing::error!(error = %e, "serialising /api/v1/services failed"))
        .ok()
}
