//! The public HTML pages. Everything shown comes from the snapshot; no URL,
//! host or error text of a probe is ever part of it.
//!
//! One file per page: `index.rs` (the status page), `service.rs`,
//! `history.rs` (`/incidents`), `incident.rs`; `bars.rs` draws the 90-day
//! bar both the front page and a service page show. What several pages
//! share (times, state signs, rows) is here.

mod bars;
mod history;
mod incident;
mod index;
mod service;
#[cfg(test)]
mod tests;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

pub use history::{incidents, FirstIncident};
pub use incident::incident;
pub use index::index;
pub use service::service;

use crate::domain::{Health, State};
use crate::snapshot::IncidentView;

struct DependencyRow {
    name: String,
    class: &'static str,
    icon: &'static str,
    label: &'static str,
}

struct HistoryRow {
    id: i64,
    title: String,
    status: String,
    class: &'static str,
    impact: String,
    when: String,
    services: String,
}

/// Reported dependencies as the pages show them: name and state in words.
fn dependency_rows(dependencies: &[(String, Health)]) -> Vec<DependencyRow> {
    dependencies
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
        .collect()
}

/// Maintenance's sign: a gear, which the fonts every system ships have
/// (DejaVu, Segoe UI Symbol, Apple's), followed by the text presentation
/// selector so no platform swaps in a colour emoji. The hammer and wrench
/// emoji it replaces rendered as an empty box where no emoji font is
/// installed.
pub const MAINTENANCE_SIGN: &str = "\u{2699}\u{FE0E}";

/// A state is never shown by colour alone: each has its own sign too.
pub fn icon(state: State) -> &'static str {
    match state {
        State::Up => "✔",
        State::Degraded => "▲",
        State::Down => "✖",
        State::Maintenance => MAINTENANCE_SIGN,
        State::Unknown => "…",
    }
}

/// A `<time datetime>` value: RFC 3339 to the second (HTML allows at most
/// three fraction digits).
fn html_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// "12 Mar 14:05 UTC".
pub fn short_time(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%-d %b %H:%M %Z").to_string()
}

fn long_time(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .format("%-d %b %Y %H:%M %Z")
        .to_string()
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

/// Resolved incidents read as settled; open ones by their impact.
fn incident_class(i: &IncidentView) -> &'static str {
    match (i.resolved_at.is_some(), i.impact.as_str()) {
        (true, _) => "up",
        (false, "none") => "unknown",
        (false, "minor") => "degraded",
        (false, _) => "down",
    }
}

pub async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Not found\n",
    )
        .into_response()
}
