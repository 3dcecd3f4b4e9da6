//! `/services/{slug}`: one service in detail: uptime per window, the
//! 90-day bar and its days as a table, response-time charts, incidents.

use askama::Template;
use axum::extract::State as AxumState;
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, Utc};

use super::bars::{bar_days, bars_label};
use super::{
    ago, dependency_rows, icon, incident_class, long_time, not_found, DependencyRow, HistoryRow,
};
use crate::domain::time::format_uptime;
use crate::domain::State;
use crate::snapshot::{Day, ServiceView, Snapshot};
use crate::web::{cache, AppState};

#[derive(Template)]
#[template(path = "service.html")]
struct ServicePage {
    site: std::sync::Arc<crate::web::Site>,
    title: String,
    name: String,
    class: &'static str,
    icon: &'static str,
    label: &'static str,
    since: String,
    description: Option<String>,
    uptime: Vec<(&'static str, String)>,
    bars_label: String,
    bars: String,
    bars_summary: String,
    /// The bar's days as a table, newest first: the per-day text for
    /// keyboards and screen readers, which cannot hover.
    days: Vec<DayRow>,
    dependencies: Vec<DependencyRow>,
    locations: Vec<LocationRow>,
    chart_24h: String,
    summary_24h: String,
    chart_30d: String,
    summary_30d: String,
    incidents: Vec<HistoryRow>,
}

/// What one location sees, for the "Checked from" table and its chart.
struct LocationRow {
    name: String,
    class: &'static str,
    icon: &'static str,
    label: &'static str,
    latency: String,
    when: String,
    chart: String,
}

fn location_rows(s: &ServiceView, now: DateTime<Utc>) -> Vec<LocationRow> {
    s.locations
        .iter()
        .map(|l| {
            let state = l.outcome.state();
            let samples: Vec<Sample> = l
                .latencies
                .iter()
                .map(|(at, ms)| (*at, Some(i64::from(*ms)), None))
                .collect();
            LocationRow {
                name: l.name.clone(),
                class: if l.silent { "unknown" } else { state.as_str() },
                icon: if l.silent {
                    icon(State::Unknown)
                } else {
                    icon(state)
                },
                label: if l.silent {
                    "Silent (no recent results)"
                } else {
                    match state {
                        State::Down => "Sees it down",
                        State::Degraded => "Sees it degraded",
                        _ => "Sees it operational",
                    }
                },
                latency: l
                    .latency_ms
                    .map(|ms| format!("{ms} ms"))
                    .unwrap_or_else(|| "–".to_string()),
                when: ago(l.checked_at, now),
                chart: latency_svg(
                    &samples,
                    &format!("Response time from {}, last hour", l.name),
                )
                .replace("p50 (blue) · p95 (amber)", "each probe"),
            }
        })
        .collect()
}

struct DayRow {
    date: String,
    state: &'static str,
    uptime: String,
    incidents: u32,
}

fn day_rows(days: &[Day]) -> Vec<DayRow> {
    days.iter()
        .rev()
        .map(|d| DayRow {
            date: d.date.format("%a %-d %b %Y").to_string(),
            state: match d.worst {
                State::Unknown => "No data",
                State::Down => "Outage",
                other => other.label(),
            },
            uptime: match d.uptime() {
                Some(u) => format_uptime(Some(u)),
                None => "–".to_string(),
            },
            incidents: u32::from(d.incidents),
        })
        .collect()
}

/// One point of a response-time chart: when, p50, p95 (ms).
type Sample = (DateTime<Utc>, Option<i64>, Option<i64>);

/// A p50/p95 line chart of `points` (time, p50, p95) as inline SVG.
pub(super) fn latency_svg(points: &[Sample], label: &str) -> String {
    let values: Vec<i64> = points
        .iter()
        .flat_map(|(_, a, b)| [*a, *b])
        .flatten()
        .collect();
    // (All under a millisecond still draws, on a 1 ms scale.)
    let Some(max) = values.iter().copied().max().map(|m| m.max(1)) else {
        return format!(
            r#"<svg viewBox="0 0 600 40" role="img" aria-label="{label}: no data"><text x="8" y="24">No data yet</text></svg>"#
        );
    };
    let n = points.len().max(2) - 1;
    let line = |pick: fn(&Sample) -> Option<i64>| {
        points
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let v = pick(p)?;
                Some(format!(
                    "{:.1},{:.1}",
                    40.0 + 550.0 * i as f64 / n as f64,
                    110.0 - 100.0 * v as f64 / max as f64
                ))
            })
            .collect::<Vec<_>>()
    };
    // A series of one point (a new service's first hour) is a dot: a
    // polyline of one point draws nothing.
    let series = |class: &str, coords: Vec<String>| match coords.as_slice() {
        [one] => {
            let (x, y) = one.split_once(',').unwrap_or(("0", "0"));
            format!(r#"<circle class="{class}" cx="{x}" cy="{y}" r="3" stroke-width="2"/>"#)
        }
        _ => format!(
            r#"<polyline class="{class}" fill="none" stroke-width="2" points="{}"/>"#,
            coords.join(" ")
        ),
    };
    format!(
        r#"<svg viewBox="0 0 600 130" role="img" aria-label="{label}"><text x="0" y="14">{max} ms</text><text x="0" y="112">0</text>{}{}<text x="40" y="126">{}</text><text x="590" y="126" text-anchor="end">{}</text><text x="300" y="126" text-anchor="middle">p50 (blue) · p95 (amber)</text></svg>"#,
        series("p95", line(|p| p.2)),
        series("p50", line(|p| p.1)),
        points
            .first()
            .map(|p| p.0.format("%-d %b %H:%M").to_string())
            .unwrap_or_default(),
        points
            .last()
            .map(|p| p.0.format("%-d %b %H:%M").to_string())
            .unwrap_or_default(),
    )
}

fn latency_summary(points: &[Sample]) -> String {
    match points.iter().rev().find(|p| p.1.is_some()) {
        Some((at, p50, p95)) => format!(
            "latest p50 {} ms, p95 {} ms ({})",
            p50.unwrap_or(0),
            p95.unwrap_or(0),
            at.format("%-d %b %H:%M UTC")
        ),
        None => "no data yet".to_string(),
    }
}

/// `/services/{slug}`: one service in detail.
pub async fn service(
    AxumState(app): AxumState<AppState>,
    axum::extract::Path(slug): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    let snapshot = app.snapshot();
    let known = snapshot
        .groups
        .iter()
        .flat_map(|g| g.services.iter())
        .any(|svc| svc.slug == slug);
    if !known {
        return not_found().await;
    }
    let cache = app.render_cache.clone();
    let key = format!("/services/{slug}");
    cache::respond(
        &cache,
        snapshot,
        &headers,
        app.max_age_secs,
        &key,
        cache::HTML,
        move |snapshot| {
            let s = snapshot
                .groups
                .iter()
                .flat_map(|g| g.services.iter())
                .find(|svc| svc.slug == slug)?;
            service_html(&app, snapshot, s)
        },
    )
    .await
}

fn service_html(app: &AppState, snapshot: &Snapshot, s: &ServiceView) -> Option<String> {
    let now = app.clock.now();
    let hours: Vec<_> = s.hours.iter().map(|p| (p.at(), p.p50(), p.p95())).collect();
    let days = s.days();
    let days30: Vec<_> = days
        .iter()
        .skip(60)
        .map(|d| {
            (
                d.date.and_time(chrono::NaiveTime::MIN).and_utc(),
                d.p50().map(i64::from),
                d.p95().map(i64::from),
            )
        })
        .collect();
    let bad_days = days.iter().filter(|d| d.worst == State::Down).count();
    let page = ServicePage {
        site: app.site.clone(),
        title: snapshot.title.clone(),
        name: s.name.clone(),
        class: s.state.as_str(),
        icon: icon(s.state),
        label: s.state.label(),
        since: s
            .state_since
            .map(|t| format!("changed {}", ago(t, now)))
            .unwrap_or_default(),
        description: s.description.clone(),
        uptime: crate::snapshot::WINDOWS
            .iter()
            .zip(s.uptime)
            .map(|(w, u)| (*w, format_uptime(u)))
            .collect(),
        bars_label: bars_label(&days, s.uptime[3], s.incidents_90d),
        bars: bar_days(&days),
        bars_summary: format!(
            "{} uptime over 90 days; {} day{} with an outage.",
            format_uptime(s.uptime[3]),
            bad_days,
            if bad_days == 1 { "" } else { "s" }
        ),
        days: day_rows(&days),
        dependencies: dependency_rows(&s.dependencies),
        locations: location_rows(s, now),
        chart_24h: latency_svg(&hours, "Response time, last 24 hours"),
        summary_24h: latency_summary(&hours),
        chart_30d: latency_svg(&days30, "Response time, last 30 days"),
        summary_30d: latency_summary(&days30),
        incidents: snapshot
            .recent_incidents
            .iter()
            .filter(|i| i.service_slugs.contains(&s.slug))
            .map(|i| HistoryRow {
                id: i.id,
                title: i.title.clone(),
                status: i.status.clone(),
                class: incident_class(i),
                impact: i.impact.clone(),
                when: long_time(i.started_at, app.site.time_zone),
                services: String::new(),
            })
            .collect(),
    };
    page.render()
        .map_err(|e| tracing::error!(error = %e, "rendering a service page failed"))
        .ok()
}
