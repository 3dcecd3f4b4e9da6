//! The public HTML pages. Everything shown comes from the snapshot; no URL,
//! host or error text of a probe is ever part of it.

use askama::Template;
use axum::extract::State as AxumState;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};

use super::AppState;
use crate::health::Health;
use crate::model::State;

struct ServiceRow {
    name: String,
    class: &'static str,
    icon: &'static str,
    label: &'static str,
    uptime: String,
    last_checked: String,
    dependencies: Vec<DependencyRow>,
}

struct DependencyRow {
    name: String,
    class: &'static str,
    icon: &'static str,
    label: &'static str,
}

struct GroupRow {
    name: Option<String>,
    services: Vec<ServiceRow>,
}

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage {
    title: String,
    overall_class: &'static str,
    overall_icon: &'static str,
    overall_label: &'static str,
    groups: Vec<GroupRow>,
    updated_iso: String,
    updated_text: String,
}

/// A state is never shown by colour alone: each has its own sign too.
pub fn icon(state: State) -> &'static str {
    match state {
        State::Up => "✔",
        State::Degraded => "▲",
        State::Down => "✖",
        State::Maintenance => "🛠",
        State::Unknown => "…",
    }
}

/// Uptime with two decimals, rounded down so 99.996 % never shows as 100 %.
pub fn format_uptime(percent: Option<f64>) -> String {
    match percent {
        None => "No data".to_string(),
        Some(p) => format!("{:.2} %", (p * 100.0).floor() / 100.0),
    }
}

/// "12 s ago", "3 min ago", "5 h ago", "2 days ago".
pub fn ago(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - then).num_seconds().max(0);
    match secs {
        0..=59 => format!("{secs} s ago"),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}

pub async fn index(AxumState(app): AxumState<AppState>) -> Response {
    let snapshot = app.snapshot();
    let now = app.clock.now();
    let groups = snapshot
        .groups
        .iter()
        .map(|g| GroupRow {
            name: g.name.clone(),
            services: g
                .services
                .iter()
                .map(|s| ServiceRow {
                    name: s.name.clone(),
                    class: s.state.as_str(),
                    icon: icon(s.state),
                    label: s.state.label(),
                    uptime: match s.uptime_24h {
                        Some(_) => format!("{} uptime (24 h)", format_uptime(s.uptime_24h)),
                        None => "No uptime data yet".to_string(),
                    },
                    last_checked: match s.last_checked_at {
                        Some(t) => format!("checked {}", ago(t, now)),
                        None => "not checked yet".to_string(),
                    },
                    dependencies: s
                        .dependencies
                        .iter()
                        .map(|(name, health)| {
                            let (class, icon, label) = match health {
                                Health::Pass => ("up", "✔", "OK"),
                                Health::Warn => ("degraded", "▲", "Degraded"),
                                Health::Fail => ("down", "✖", "Failing"),
                            };
                            DependencyRow {
                                name: name.clone(),
                                class,
                                icon,
                                label,
                            }
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect();
    let page = IndexPage {
        title: snapshot.title.clone(),
        overall_class: snapshot.overall.class(),
        overall_icon: match snapshot.overall.class() {
            "up" => "✔",
            "degraded" => "▲",
            "down" => "✖",
            "maintenance" => "🛠",
            _ => "…",
        },
        overall_label: snapshot.overall.label(),
        groups,
        updated_iso: snapshot.generated_at.to_rfc3339(),
        updated_text: snapshot
            .generated_at
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string(),
    };
    render(&page)
}

pub async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Not found\n",
    )
        .into_response()
}

fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a page failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "Internal error\n").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn uptime_never_rounds_up_to_a_perfect_score() {
        assert_eq!(format_uptime(Some(99.996)), "99.99 %");
        assert_eq!(format_uptime(Some(100.0)), "100.00 %");
        assert_eq!(format_uptime(Some(0.0)), "0.00 %");
        assert_eq!(format_uptime(None), "No data");
    }

    #[test]
    fn relative_times_read_naturally() {
        let now = Utc
            .with_ymd_and_hms(2026, 3, 12, 12, 0, 0)
            .single()
            .expect("valid");
        let at = |secs: i64| now - chrono::Duration::seconds(secs);
        assert_eq!(ago(at(12), now), "12 s ago");
        assert_eq!(ago(at(180), now), "3 min ago");
        assert_eq!(ago(at(5 * 3600), now), "5 h ago");
        assert_eq!(ago(at(2 * 86_400), now), "2 days ago");
        assert_eq!(ago(at(-5), now), "0 s ago");
    }
}
