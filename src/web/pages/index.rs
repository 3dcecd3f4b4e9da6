//! `/`: the status page, every public service by group, open incidents
//! and maintenance. Rendered once per snapshot.

use askama::Template;
use axum::extract::State as AxumState;
use axum::http::HeaderMap;
use axum::response::Response;
use chrono_tz::Tz;

use super::bars::{bars_label, compact_bar_days};
use super::{ago, dependency_rows, html_time, icon, short_time, DependencyRow};
use crate::domain::time::format_uptime;
use crate::domain::State;
use crate::snapshot::{MaintenanceView, Snapshot};
use crate::web::{cache, AppState};

struct ServiceRow {
    slug: String,
    name: String,
    class: &'static str,
    icon: &'static str,
    label: &'static str,
    uptime: String,
    last_checked: String,
    /// The 90-day bar: what it says as a whole, and its days (HTML).
    bars_label: String,
    bars: String,
    dependencies: Vec<DependencyRow>,
}

struct GroupRow {
    name: Option<String>,
    /// The worst state of its services, shown on the collapsed group.
    class: &'static str,
    icon: &'static str,
    label: &'static str,
    /// Expanded: something in it is not operational, or the page is short.
    open: bool,
    uptime: String,
    services: Vec<ServiceRow>,
}

/// Groups start collapsed only on pages with more than this many groups,
/// and only while every service in them is operational.
const OPEN_GROUPS_UP_TO: usize = 3;

struct IncidentRow {
    id: i64,
    title: String,
    impact: String,
    status: String,
    message: String,
    when: String,
    services: String,
}

struct MaintenanceRow {
    title: String,
    message: String,
    when: String,
    services: String,
}

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage {
    site: std::sync::Arc<crate::web::Site>,
    title: String,
    overall_class: &'static str,
    overall_icon: &'static str,
    overall_label: &'static str,
    groups: Vec<GroupRow>,
    incidents: Vec<IncidentRow>,
    active_maintenances: Vec<MaintenanceRow>,
    upcoming_maintenances: Vec<MaintenanceRow>,
    updated_iso: String,
    updated_text: String,
}

fn maintenance_row(m: &MaintenanceView, tz: Tz) -> MaintenanceRow {
    MaintenanceRow {
        title: m.title.clone(),
        message: m.message.clone(),
        when: format!(
            "{} – {}",
            short_time(m.starts_at, tz),
            short_time(m.ends_at, tz)
        ),
        services: m.services.join(", "),
    }
}

pub async fn index(AxumState(app): AxumState<AppState>, headers: HeaderMap) -> Response {
    let snapshot = app.snapshot();
    let cache = app.render_cache.clone();
    cache::respond(
        &cache,
        snapshot,
        &headers,
        app.max_age_secs,
        "/",
        cache::HTML,
        move |s| index_html(&app, s),
    )
    .await
}

fn index_html(app: &AppState, snapshot: &Snapshot) -> Option<String> {
    let now = app.clock.now();
    let short_page = snapshot.groups.len() <= OPEN_GROUPS_UP_TO;
    let groups = snapshot
        .groups
        .iter()
        .map(|g| {
            let worst = g
                .services
                .iter()
                .map(|s| s.state)
                .max_by_key(|s| s.severity())
                .unwrap_or(State::Unknown);
            (g, worst)
        })
        .map(|(g, worst)| GroupRow {
            name: g.name.clone(),
            class: worst.as_str(),
            icon: icon(worst),
            label: worst.label(),
            open: short_page || g.services.iter().any(|s| s.state != State::Up),
            uptime: match g.uptime[3] {
                Some(_) => format!("{} uptime (90 d)", format_uptime(g.uptime[3])),
                None => String::new(),
            },
            services: g
                .services
                .iter()
                .map(|s| (s, s.days()))
                .map(|(s, days)| ServiceRow {
                    slug: s.slug.clone(),
                    name: s.name.clone(),
                    class: s.state.as_str(),
                    icon: icon(s.state),
                    label: s.state.label(),
                    uptime: match (s.uptime[0], s.uptime[3]) {
                        (None, None) => "No uptime data yet".to_string(),
                        (day, quarter) => format!(
                            "{} uptime (24 h) · {} (90 d)",
                            format_uptime(day),
                            format_uptime(quarter)
                        ),
                    },
                    last_checked: match s.last_checked_at() {
                        Some(t) => format!("checked {}", ago(t, now)),
                        None => "not checked yet".to_string(),
                    },
                    bars_label: bars_label(&days, s.uptime[3], s.incidents_90d),
                    bars: compact_bar_days(&days),
                    dependencies: dependency_rows(&s.dependencies),
                })
                .collect(),
        })
        .collect();
    let page = IndexPage {
        site: app.site.clone(),
        title: snapshot.title.clone(),
        overall_class: snapshot.overall.class(),
        overall_icon: match snapshot.overall.class() {
            "up" => "✔",
            "degraded" => "▲",
            "down" => "✖",
            "maintenance" => super::MAINTENANCE_SIGN,
            _ => "…",
        },
        overall_label: snapshot.overall.label(),
        groups,
        incidents: snapshot
            .incidents
            .iter()
            .map(|i| IncidentRow {
                id: i.id,
                title: i.title.clone(),
                impact: i.impact.clone(),
                status: i
                    .latest
                    .as_ref()
                    .map_or_else(|| i.status.clone(), |(status, _, _)| status.clone()),
                message: i
                    .latest
                    .as_ref()
                    .map(|(_, message, _)| message.clone())
                    .unwrap_or_default(),
                when: format!(
                    "since {} ({})",
                    short_time(i.started_at, app.site.time_zone),
                    ago(i.started_at, now)
                ),
                services: i.services.join(", "),
            })
            .collect(),
        active_maintenances: snapshot
            .active_maintenances
            .iter()
            .map(|m| maintenance_row(m, app.site.time_zone))
            .collect(),
        upcoming_maintenances: snapshot
            .upcoming_maintenances
            .iter()
            .map(|m| maintenance_row(m, app.site.time_zone))
            .collect(),
        updated_iso: html_time(snapshot.generated_at),
        updated_text: snapshot
            .generated_at
            .with_timezone(&app.site.time_zone)
            .format("%Y-%m-%d %H:%M:%S %Z")
            .to_string(),
    };
    page.render()
        .map_err(|e| tracing::error!(error = %e, "rendering the status page failed"))
        .ok()
}
