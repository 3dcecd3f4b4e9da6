//! Badges (shields-style SVG) and feeds (Atom, RSS) of the public state:
//! for READMEs, chat bots and feed readers. From the snapshot, public
//! services only, like the page.

use axum::extract::{Path, State as AxumState};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use super::format::xml;
use super::{cache, pages, AppState};
use crate::domain::State;
use crate::snapshot::{ServiceView, Snapshot};

/// Width of `text` in Verdana 11 px, roughly, as shields.io measures.
fn text_width(text: &str) -> u32 {
    text.chars()
        .map(|c| match c {
            'i' | 'l' | 'j' | '.' | ',' | ':' | '|' | '\'' | ' ' => 4,
            'm' | 'w' | 'M' | 'W' | '%' => 10,
            c if c.is_ascii_uppercase() => 8,
            _ => 7,
        })
        .sum::<u32>()
        + 10
}

/// A two-part badge: `label | message`, the message on `color`.
pub fn badge(label: &str, message: &str, color: &str) -> String {
    let (lw, mw) = (text_width(label), text_width(message));
    let w = lw + mw;
    let (label, message) = (xml(label), xml(message));
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="20" role="img" aria-label="{label}: {message}"><title>{label}: {message}</title><linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient><clipPath id="r"><rect width="{w}" height="20" rx="3" fill="#fff"/></clipPath><g clip-path="url(#r)"><rect width="{lw}" height="20" fill="#555"/><rect x="{lw}" width="{mw}" height="20" fill="{color}"/><rect width="{w}" height="20" fill="url(#s)"/></g><g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11"><text x="{lx}" y="14">{label}</text><text x="{mx}" y="14">{message}</text></g></svg>"##,
        lx = lw / 2,
        mx = lw + mw / 2,
    )
}

fn state_badge(s: &ServiceView) -> String {
    let (message, color) = match s.state {
        State::Up => ("up", "#2e7d32"),
        State::Degraded => ("degraded", "#b26a00"),
        State::Down => ("down", "#c62828"),
        State::Maintenance => ("maintenance", "#1565c0"),
        State::Unknown => ("no data", "#757575"),
    };
    badge(&s.name, message, color)
}

fn uptime_badge(s: &ServiceView, window: usize, label: &str) -> String {
    match s.uptime[window] {
        None => badge(&format!("uptime {label}"), "no data", "#757575"),
        Some(u) => {
            let color = if u >= 99.9 {
                "#2e7d32"
            } else if u >= 99.0 {
                "#689f38"
            } else if u >= 95.0 {
                "#b26a00"
            } else {
                "#c62828"
            };
            badge(
                &format!("uptime {label}"),
                &crate::domain::time::format_uptime(Some(u)).replace(' ', ""),
                color,
            )
        }
    }
}

/// The median response time over 24 hours, coloured by how it feels.
fn response_time_badge(s: &ServiceView) -> String {
    match s.p50_24h {
        None => badge("response time", "no data", "#757575"),
        Some(ms) => {
            let color = match ms {
                ..=300 => "#2e7d32",
                301..=1000 => "#689f38",
                1001..=3000 => "#b26a00",
                _ => "#c62828",
            };
            badge("response time", &format!("{ms} ms"), color)
        }
    }
}

fn find<'a>(s: &'a Snapshot, slug: &str) -> Option<&'a ServiceView> {
    s.groups
        .iter()
        .flat_map(|g| g.services.iter())
        .find(|svc| svc.slug == slug)
        .map(|svc| &**svc)
}

fn svg(app: &AppState, body: String) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("image/svg+xml"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_str(&format!("public, max-age={}", app.max_age_secs))
                    .unwrap_or_else(|_| HeaderValue::from_static("public, max-age=30")),
            ),
        ],
        body,
    )
        .into_response()
}

/// `/badge/{slug}.svg`: the service's state.
pub async fn state(AxumState(app): AxumState<AppState>, Path(file): Path<String>) -> Response {
    let s = app.snapshot();
    match file.strip_suffix(".svg").and_then(|slug| find(&s, slug)) {
        Some(service) => svg(&app, state_badge(service)),
        None => pages::not_found().await,
    }
}

/// `/badge/{slug}/uptime/{7d|30d|90d}.svg` (24h too).
pub async fn uptime(
    AxumState(app): AxumState<AppState>,
    Path((slug, file)): Path<(String, String)>,
) -> Response {
    let s = app.snapshot();
    let window = match file.as_str() {
        "24h.svg" => Some((0, "24h")),
        "7d.svg" => Some((1, "7d")),
        "30d.svg" => Some((2, "30d")),
        "90d.svg" => Some((3, "90d")),
        _ => None,
    };
    match (find(&s, &slug), window) {
        (Some(service), Some((i, label))) => svg(&app, uptime_badge(service, i, label)),
        _ => pages::not_found().await,
    }
}

/// `/badge/{slug}/response-time.svg`: p50 over the last 24 hours.
pub async fn response_time(
    AxumState(app): AxumState<AppState>,
    Path(slug): Path<String>,
) -> Response {
    let s = app.snapshot();
    match find(&s, &slug) {
        Some(service) => svg(&app, response_time_badge(service)),
        None => pages::not_found().await,
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Feed entries: incidents and maintenance, newest change first.
struct Entry {
    id: String,
    title: String,
    summary: String,
    updated: DateTime<Utc>,
    link: String,
}

fn entries(app: &AppState, s: &Snapshot) -> Vec<Entry> {
    let base = app.public_url.clone().unwrap_or_default();
    let mut out: Vec<Entry> = s
        .recent_incidents
        .iter()
        .take(50)
        .map(|i| Entry {
            id: format!("incident-{}", i.id),
            title: format!(
                "{}{}",
                i.title,
                if i.resolved_at.is_some() {
                    " (resolved)"
                } else {
                    ""
                }
            ),
            summary: i
                .latest
                .as_ref()
                .map(|(status, message, _)| format!("{status}: {message}"))
                .unwrap_or_default(),
            updated: i.updated_at,
            link: format!("{base}/incidents/{}", i.id),
        })
        .collect();
    // A window's start and end are news: the entry is updated at each
    // edge, and says where the window stands.
    let now = s.generated_at;
    out.extend(s.recent_maintenances.iter().map(|m| {
        let (stage, updated) = if now >= m.ends_at {
            ("Maintenance completed", m.updated_at.max(m.ends_at))
        } else if now >= m.starts_at {
            ("Maintenance in progress", m.updated_at.max(m.starts_at))
        } else {
            ("Scheduled maintenance", m.updated_at)
        };
        Entry {
            id: format!("maintenance-{}", m.id),
            title: format!("{stage}: {}", m.title),
            summary: format!(
                "{} ({} – {})",
                m.message,
                m.starts_at.format("%Y-%m-%d %H:%M UTC"),
                m.ends_at.format("%Y-%m-%d %H:%M UTC")
            ),
            updated,
            link: format!("{base}/"),
        }
    }));
    out.sort_by_key(|e| std::cmp::Reverse(e.updated));
    out
}

fn atom(app: &AppState, s: &Snapshot) -> String {
    let base = app.public_url.clone().unwrap_or_default();
    let updated = entries(app, s)
        .first()
        .map_or(s.generated_at, |e| e.updated);
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">\n<title>{}</title>\n<id>{}/feed.atom</id>\n<link rel=\"self\" href=\"{}/feed.atom\"/>\n<link href=\"{}/\"/>\n<updated>{}</updated>\n<author><name>{}</name></author>\n",
        xml(&s.title),
        xml(&base),
        xml(&base),
        xml(&base),
        rfc3339(updated),
        xml(&s.title)
    );
    for e in entries(app, s) {
        out.push_str(&format!(
            "<entry>\n<id>{}/{}</id>\n<title>{}</title>\n<updated>{}</updated>\n<link href=\"{}\"/>\n<summary>{}</summary>\n</entry>\n",
            xml(&base),
            e.id,
            xml(&e.title),
            rfc3339(e.updated),
            xml(&e.link),
            xml(&e.summary)
        ));
    }
    out.push_str("</feed>\n");
    out
}

fn rss(app: &AppState, s: &Snapshot) -> String {
    let base = app.public_url.clone().unwrap_or_default();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<rss version=\"2.0\">\n<channel>\n<title>{}</title>\n<link>{}/</link>\n<description>{}</description>\n<lastBuildDate>{}</lastBuildDate>\n",
        xml(&s.title),
        xml(&base),
        xml(&format!("Incidents and maintenance of {}", s.title)),
        s.generated_at.to_rfc2822()
    );
    for e in entries(app, s) {
        out.push_str(&format!(
            "<item>\n<title>{}</title>\n<link>{}</link>\n<guid isPermaLink=\"false\">{}</guid>\n<pubDate>{}</pubDate>\n<description>{}</description>\n</item>\n",
            xml(&e.title),
            xml(&e.link),
            e.id,
            e.updated.to_rfc2822(),
            xml(&e.summary)
        ));
    }
    out.push_str("</channel>\n</rss>\n");
    out
}

pub async fn atom_feed(AxumState(app): AxumState<AppState>, headers: HeaderMap) -> Response {
    let s = app.snapshot();
    let cache = app.render_cache.clone();
    cache::respond(
        &cache,
        s,
        &headers,
        app.max_age_secs,
        "/feed.atom",
        "application/atom+xml; charset=utf-8",
        move |s| Some(atom(&app, s)),
    )
    .await
}

pub async fn rss_feed(AxumState(app): AxumState<AppState>, headers: HeaderMap) -> Response {
    let s = app.snapshot();
    let cache = app.render_cache.clone();
    cache::respond(
        &cache,
        s,
        &headers,
        app.max_age_secs,
        "/feed.rss",
        "application/rss+xml; charset=utf-8",
        move |s| Some(rss(&app, s)),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn badges_are_two_part_svgs_sized_to_their_text() {
        let b = badge("Check<out>", "up", "#2e7d32");
        assert!(b.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(b.contains("aria-label=\"Check&lt;out&gt;: up\""));
        let narrow = badge("a", "up", "#000");
        let wide = badge("a much longer name", "up", "#000");
        let width = |s: &str| {
            s.split("width=\"")
                .nth(1)
                .and_then(|w| w.split('"').next())
                .and_then(|w| w.parse::<u32>().ok())
        };
        assert!(width(&wide) > width(&narrow));
    }
}
