//! The public HTML pages. Everything shown comes from the snapshot; no URL,
//! host or error text of a probe is ever part of it.

use askama::Template;
use axum::extract::State as AxumState;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::{cache, AppState};
use crate::domain::time::format_uptime;
use crate::domain::{Health, State};
use crate::snapshot::{Day, IncidentView, MaintenanceView, ServiceView, Snapshot};

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

struct DependencyRow {
    name: String,
    class: &'static str,
    icon: &'static str,
    label: &'static str,
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
    site: std::sync::Arc<super::Site>,
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

/// A `<time datetime>` value: RFC 3339 to the second (HTML allows at most
/// three fraction digits).
fn html_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// "12 Mar 14:05 UTC".
pub fn short_time(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%-d %b %H:%M %Z").to_string()
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
                    last_checked: match s.last_checked_at {
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
            "maintenance" => "🛠",
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

struct HistoryRow {
    id: i64,
    title: String,
    status: String,
    class: &'static str,
    impact: String,
    when: String,
    services: String,
}

struct Month {
    name: String,
    incidents: Vec<HistoryRow>,
}

#[derive(Template)]
#[template(path = "incidents.html")]
struct IncidentsPage {
    site: std::sync::Arc<super::Site>,
    title: String,
    months: Vec<Month>,
    shown: usize,
    /// "September 2026 to November 2026".
    range: String,
    /// The page numbers of the neighbours, when there are any.
    newer: Option<u32>,
    older: Option<u32>,
    /// Set when the page's months held more incidents than it shows.
    cut: Option<usize>,
}

struct UpdateRow {
    status: String,
    message: String,
    when: String,
    iso: String,
}

#[derive(Template)]
#[template(path = "incident.html")]
struct IncidentPage {
    site: std::sync::Arc<super::Site>,
    title: String,
    name: String,
    status: String,
    class: &'static str,
    impact: String,
    started: String,
    started_iso: String,
    resolved: Option<String>,
    duration: String,
    services: String,
    updates: Vec<UpdateRow>,
    postmortem: Option<String>,
}

fn long_time(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .format("%-d %b %Y %H:%M %Z")
        .to_string()
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

/// How many calendar months one page of `/incidents` covers.
const MONTHS_A_PAGE: u32 = 3;
/// Incidents a history page shows at most: three months of a very bad
/// quarter, read with a `LIMIT` so no page costs more than this.
const HISTORY_PAGE_LIMIT: usize = 500;

/// `?page=N` of `/incidents`.
#[derive(serde::Deserialize)]
pub struct HistoryQuery {
    page: Option<String>,
}

/// The first instant of the month `back` months before `now`'s, in `tz`.
fn month_start(now: DateTime<Utc>, tz: Tz, back: u32) -> Option<DateTime<Utc>> {
    use chrono::{Datelike, TimeZone};
    let local = now.with_timezone(&tz);
    let months = local.year() * 12 + local.month0() as i32 - back as i32;
    tz.with_ymd_and_hms(
        months.div_euclid(12),
        months.rem_euclid(12) as u32 + 1,
        1,
        0,
        0,
        0,
    )
    .earliest()
    .map(|t| t.with_timezone(&Utc))
}

/// `/incidents`: the history by month, newest first, three months a page
/// (`?page=2` the three before). Page 1 is rendered from the snapshot, once
/// per snapshot; older pages are read from the store.
pub async fn incidents(
    AxumState(app): AxumState<AppState>,
    axum::extract::Query(query): axum::extract::Query<HistoryQuery>,
    headers: HeaderMap,
) -> Response {
    let page = match query.page.as_deref() {
        None => 1,
        Some(text) => match text.parse::<u32>() {
            Ok(n) if (1..=1200).contains(&n) => n,
            _ => return not_found().await,
        },
    };
    let snapshot = app.snapshot();
    let tz = app.site.time_zone;
    let now = snapshot.generated_at;
    let (Some(from), Some(to)) = (
        month_start(now, tz, page * MONTHS_A_PAGE - 1),
        month_start(now, tz, (page - 1) * MONTHS_A_PAGE).and_then(|t| {
            // The end of this page: the start of the month after its newest.
            month_start(t + chrono::Duration::days(32), tz, 0)
        }),
    ) else {
        return not_found().await;
    };
    if page == 1 {
        let cache = app.render_cache.clone();
        return cache::respond(
            &cache,
            snapshot,
            &headers,
            app.max_age_secs,
            "/incidents",
            cache::HTML,
            move |s| {
                let shown: Vec<&IncidentView> = s
                    .recent_incidents
                    .iter()
                    .filter(|i| i.started_at >= from)
                    .collect();
                let older = s.recent_incidents.iter().any(|i| i.started_at < from);
                history_html(&app, s, &shown, page, older, from, to, false)
            },
        )
        .await;
    }
    let read = app
        .read_store(async {
            tokio::try_join!(
                app.store.incidents_between(
                    from.timestamp_millis(),
                    to.timestamp_millis(),
                    HISTORY_PAGE_LIMIT as i64 + 1
                ),
                app.store.first_incident_start()
            )
        })
        .await;
    let (mut rows, first) = match read {
        Ok(found) => found,
        Err(refused) => return refused.response("the incident history"),
    };
    let cut = rows.len() > HISTORY_PAGE_LIMIT;
    rows.truncate(HISTORY_PAGE_LIMIT);
    // Past the first incident on record: there is no such page.
    if first.is_none_or(|first| first >= to.timestamp_millis()) {
        return not_found().await;
    }
    let older = first.is_some_and(|first| first < from.timestamp_millis());
    // Off the runtime's workers: a page of hundreds of incidents.
    let rendered = tokio::task::spawn_blocking(move || {
        let views = snapshot.incident_views(rows);
        let shown: Vec<&IncidentView> = views.iter().collect();
        history_html(&app, &snapshot, &shown, page, older, from, to, cut)
    })
    .await;
    match rendered {
        Ok(Some(html)) => axum::response::Html(html).into_response(),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "Internal error\n").into_response(),
    }
}

#[allow(clippy::too_many_arguments)] // one page, its place in the history and what it leaves out
fn history_html(
    app: &AppState,
    s: &Snapshot,
    shown: &[&IncidentView],
    page: u32,
    older: bool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    cut: bool,
) -> Option<String> {
    let tz = app.site.time_zone;
    let month_name = |t: DateTime<Utc>| t.with_timezone(&tz).format("%B %Y").to_string();
    // Every month of the page has its heading, with or without incidents.
    let months_of_page = (0..MONTHS_A_PAGE)
        .filter_map(|n| month_start(to - chrono::Duration::days(1), tz, n))
        .filter(|t| *t >= from);
    let mut months: Vec<Month> = months_of_page
        .map(|m| Month {
            name: month_name(m),
            incidents: Vec::new(),
        })
        .collect();
    for i in shown {
        let name = month_name(i.started_at);
        let row = HistoryRow {
            id: i.id,
            title: i.title.clone(),
            status: i.status.clone(),
            class: incident_class(i),
            impact: i.impact.clone(),
            when: match i.resolved_at {
                Some(r) => format!(
                    "{} – {}",
                    long_time(i.started_at, tz),
                    crate::domain::time::human_minutes((r - i.started_at).num_minutes())
                ),
                None => format!("since {}", long_time(i.started_at, tz)),
            },
            services: i.services.join(", "),
        };
        if let Some(m) = months.iter_mut().find(|m| m.name == name) {
            m.incidents.push(row);
        }
    }
    IncidentsPage {
        site: app.site.clone(),
        title: s.title.clone(),
        shown: shown.len(),
        range: format!(
            "{} to {}",
            month_name(from),
            month_name(to - chrono::Duration::days(1))
        ),
        newer: (page > 1).then(|| page - 1),
        older: older.then_some(page + 1),
        months,
        cut: cut.then_some(HISTORY_PAGE_LIMIT),
    }
    .render()
    .map_err(|e| tracing::error!(error = %e, "rendering /incidents failed"))
    .ok()
}

/// `/incidents/{id}`: one incident's timeline.
pub async fn incident(
    AxumState(app): AxumState<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    let snapshot = app.snapshot();
    let Ok(id) = id.parse::<i64>() else {
        return not_found().await;
    };
    // Recent ones are in the snapshot: rendered once per snapshot (an open
    // incident's page is what people open from the banner during an
    // outage). Older ones come from the store.
    if snapshot.recent_incidents.iter().any(|i| i.id == id) {
        let cache = app.render_cache.clone();
        return cache::respond(
            &cache,
            snapshot,
            &headers,
            app.max_age_secs,
            &format!("/incidents/{id}"),
            cache::HTML,
            move |s| {
                let i = s.recent_incidents.iter().find(|i| i.id == id)?;
                incident_html(&app, s, i)
            },
        )
        .await;
    }
    let stored = match app.read_store(app.store.incident(id)).await {
        Ok(Some(found)) => snapshot.incident_view(found),
        Ok(None) => return not_found().await,
        Err(refused) => return refused.response("an incident"),
    };
    match incident_html(&app, &snapshot, &stored) {
        Some(html) => axum::response::Html(html).into_response(),
        None => (StatusCode::INTERNAL_SERVER_ERROR, "Internal error\n").into_response(),
    }
}

fn incident_html(app: &AppState, snapshot: &Snapshot, i: &IncidentView) -> Option<String> {
    let page = IncidentPage {
        site: app.site.clone(),
        title: snapshot.title.clone(),
        name: i.title.clone(),
        status: if i.resolved_at.is_some() {
            "Resolved".to_string()
        } else {
            let mut s = i.status.clone();
            if let Some(first) = s.get_mut(..1) {
                first.make_ascii_uppercase();
            }
            s
        },
        class: incident_class(i),
        impact: i.impact.clone(),
        started: long_time(i.started_at, app.site.time_zone),
        started_iso: html_time(i.started_at),
        resolved: i.resolved_at.map(|t| long_time(t, app.site.time_zone)),
        duration: crate::domain::time::human_minutes(
            (i.resolved_at.unwrap_or(snapshot.generated_at) - i.started_at).num_minutes(),
        ),
        services: i.services.join(", "),
        updates: i
            .updates
            .iter()
            .rev()
            .map(|(status, message, at)| UpdateRow {
                status: status.clone(),
                message: message.clone(),
                when: long_time(*at, app.site.time_zone),
                iso: html_time(*at),
            })
            .collect(),
        postmortem: i.postmortem.clone().filter(|_| i.resolved_at.is_some()),
    };
    page.render()
        .map_err(|e| tracing::error!(error = %e, "rendering an incident page failed"))
        .ok()
}

#[derive(Template)]
#[template(path = "service.html")]
struct ServicePage {
    site: std::sync::Arc<super::Site>,
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
    chart_24h: String,
    summary_24h: String,
    chart_30d: String,
    summary_30d: String,
    incidents: Vec<HistoryRow>,
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

/// What the 90-day bar says as a whole, for screen readers and keyboards
/// (the per-day text is a hover tooltip; the service page's "Day by day"
/// table, which the bar links to, has it for everyone): "Last 90 days:
/// 99.95 % uptime, 2 incidents, 1 day with an outage". Outage days are
/// named only when there were some.
fn bars_label(days: &[Day], uptime: Option<f64>, incidents: u32) -> String {
    let outages = days.iter().filter(|d| d.worst == State::Down).count();
    let mut label = format!(
        "Last 90 days: {}, {}",
        match uptime {
            Some(_) => format!("{} uptime", format_uptime(uptime)),
            None => "no uptime data".to_string(),
        },
        match incidents {
            0 => "no incidents".to_string(),
            1 => "1 incident".to_string(),
            n => format!("{n} incidents"),
        }
    );
    match outages {
        0 => {}
        1 => label.push_str(", 1 day with an outage"),
        n => label.push_str(&format!(", {n} days with an outage")),
    }
    label
}

/// The 90-day bar's days: one `<i>` a day, coloured by the day's worst
/// state (its class), each with its text ("12 Mar: 99.20 % uptime, 1
/// incident") as a tooltip. The element around it (a link on the front
/// page, a `role="img"` on the service page) carries [`bars_label`].
///
/// HTML and CSS rather than SVG: a `title` attribute is half the markup of
/// an SVG `<rect>` with its `<title>`, and the front page has a bar for
/// every service (docs/performance.md).
fn bar_days(days: &[Day]) -> String {
    bars(days, false)
}

/// The front page's 90-day bar: the same picture, but a run of quiet days
/// (all up with no incident, or all without data) is one element,
/// `style="--n:N"`, that the page's CSS stripes into N day bars, with one
/// tooltip for the run ("1 Mar – 20 Mar: 100.00 % uptime, no
/// incidents"). Days with anything to tell keep their own.
fn compact_bar_days(days: &[Day]) -> String {
    bars(days, true)
}

/// A day whose bar is plain: up all day (the state never left up, though
/// a probe may have failed below the failure threshold) with no incident,
/// or no data at all.
fn quiet(d: &Day) -> bool {
    d.incidents == 0
        && match d.worst {
            State::Up => true,
            State::Unknown => d.uptime().is_none(),
            _ => false,
        }
}

/// Whether two days' texts differ only in their dates: the same worst
/// state, incidents and uptime as shown (two decimals, rounded down, as
/// [`format_uptime`]), compared without formatting either.
fn told_alike(a: &Day, b: &Day) -> bool {
    let shown = |d: &Day| d.uptime().map(|p| (p * 100.0).floor() as i64);
    a.worst == b.worst && a.incidents == b.incidents && shown(a) == shown(b)
}

fn bars(days: &[Day], compact: bool) -> String {
    let mut out = String::with_capacity(days.len() * 48);
    // What a day says, but its date.
    let figures = |d: &Day| {
        format!(
            "{}, {} incident{}",
            match d.uptime() {
                Some(u) => format!("{} uptime", format_uptime(Some(u))),
                None => "no data".to_string(),
            },
            d.incidents,
            if d.incidents == 1 { "" } else { "s" }
        )
    };
    let day_text = |d: &Day| format!("{}: {}", d.date.format("%-d %b"), figures(d));
    let mut n = 0;
    while n < days.len() {
        let d = &days[n];
        let run = if !compact {
            1
        } else if quiet(d) {
            days[n..]
                .iter()
                .take_while(|e| quiet(e) && e.worst == d.worst)
                .count()
        } else {
            // Days that would say the same (a long outage, maintenance,
            // an incident open for weeks) are one run too.
            days[n..].iter().take_while(|e| told_alike(e, d)).count()
        };
        if run > 1 {
            let last = &days[n + run - 1];
            let uptimes = days[n..n + run].iter().filter_map(|e| e.uptime());
            let lowest = uptimes.clone().fold(f64::INFINITY, f64::min);
            let highest = uptimes.fold(f64::NEG_INFINITY, f64::max);
            let what = match d.worst {
                _ if !quiet(d) => format!("each day {}", figures(d)),
                State::Up if lowest == highest => {
                    format!("{} uptime, no incidents", format_uptime(Some(lowest)))
                }
                State::Up if lowest.is_finite() => format!(
                    "{} to {} uptime a day, no incidents",
                    format_uptime(Some(lowest)),
                    format_uptime(Some(highest))
                ),
                _ => "no data".to_string(),
            };
            let text = format!(
                "{} – {}: {what}",
                d.date.format("%-d %b"),
                last.date.format("%-d %b"),
            );
            out.push_str(&format!(
                r#"<i class="{}" style="--n:{run}" title="{}"></i>"#,
                d.worst.as_str(),
                super::format::xml(&text)
            ));
        } else {
            out.push_str(&format!(
                r#"<i class="{}" title="{}"></i>"#,
                d.worst.as_str(),
                super::format::xml(&day_text(d))
            ));
        }
        n += run;
    }
    out
}

/// A p50/p95 line chart of `points` (time, p50, p95) as inline SVG.
fn latency_svg(points: &[Sample], label: &str) -> String {
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

pub async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Not found\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

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

    #[test]
    fn quiet_runs_share_a_rect_and_eventful_days_keep_their_own() {
        let start = Utc
            .with_ymd_and_hms(2026, 3, 1, 0, 0, 0)
            .single()
            .expect("valid");
        // Uptime as (up, down) checks of the day.
        let day = |n: i64, worst: State, checks: Option<(i64, i64)>, incidents: u16| {
            let date = (start + chrono::Duration::days(n)).date_naive();
            let mut day = match checks {
                Some((up, down)) => Day::of(
                    date,
                    &crate::store::rollup::Rollup {
                        up,
                        down,
                        ..Default::default()
                    },
                ),
                None => Day::empty(date),
            };
            day.worst = worst;
            day.incidents = incidents;
            day
        };
        let mut days: Vec<Day> = (0..5).map(|n| day(n, State::Unknown, None, 0)).collect();
        days.extend((5..15).map(|n| {
            day(
                n,
                State::Up,
                Some(if n == 9 { (199, 1) } else { (200, 0) }),
                0,
            )
        }));
        days.push(day(15, State::Down, Some((195, 5)), 1));
        days.push(day(16, State::Up, Some((200, 0)), 1));
        days.extend((17..20).map(|n| day(n, State::Up, Some((200, 0)), 0)));

        let compact = compact_bar_days(&days);
        assert_eq!(compact.matches("<i ").count(), 5, "{compact}");
        assert!(compact
            .contains(r#"<i class="unknown" style="--n:5" title="1 Mar – 5 Mar: no data"></i>"#));
        assert!(compact.contains(
            r#"<i class="up" style="--n:10" title="6 Mar – 15 Mar: 99.50 % to 100.00 % uptime a day, no incidents"></i>"#
        ));
        assert!(
            compact.contains(r#"<i class="down" title="16 Mar: 97.50 % uptime, 1 incident"></i>"#)
        );
        assert!(
            compact.contains(r#"<i class="up" title="17 Mar: 100.00 % uptime, 1 incident"></i>"#)
        );
        assert!(compact.contains(
            r#"<i class="up" style="--n:3" title="18 Mar – 20 Mar: 100.00 % uptime, no incidents"></i>"#
        ));
        // Days that say the same are one run, eventful or not.
        let mut outage: Vec<Day> = (0..4)
            .map(|n| day(n, State::Down, Some((195, 5)), 1))
            .collect();
        outage.push(day(4, State::Down, Some((190, 10)), 1));
        let compact = compact_bar_days(&outage);
        assert_eq!(compact.matches("<i ").count(), 2, "{compact}");
        assert!(compact.contains(
            r#"<i class="down" style="--n:4" title="1 Mar – 4 Mar: each day 97.50 % uptime, 1 incident"></i>"#
        ), "{compact}");
        // The service page keeps an element a day.
        let full = bar_days(&days);
        assert_eq!(full.matches("<i ").count(), 20);
        assert!(!full.contains("style="), "{full}");
    }

    #[test]
    fn the_bar_says_what_it_shows_as_a_whole() {
        let date = |n: u32| chrono::NaiveDate::from_ymd_opt(2026, 3, n).expect("date");
        let up = Day::of(
            date(1),
            &crate::store::rollup::Rollup {
                up: 10,
                ..Default::default()
            },
        );
        let mut down = Day::of(
            date(2),
            &crate::store::rollup::Rollup {
                up: 9,
                down: 1,
                ..Default::default()
            },
        );
        assert_eq!(
            bars_label(&[up], Some(100.0), 0),
            "Last 90 days: 100.00 % uptime, no incidents"
        );
        // One incident over several days is one incident.
        down.incidents = 1;
        assert_eq!(
            bars_label(&[up, down, down], Some(93.3), 1),
            "Last 90 days: 93.30 % uptime, 1 incident, 2 days with an outage"
        );
        assert_eq!(
            bars_label(&[Day::empty(date(3))], None, 2),
            "Last 90 days: no uptime data, 2 incidents"
        );
    }

    #[test]
    fn a_single_point_is_a_dot_and_more_are_a_line() {
        let at = Utc
            .with_ymd_and_hms(2026, 3, 12, 12, 0, 0)
            .single()
            .expect("valid");
        let one = latency_svg(&[(at, Some(40), Some(90))], "chart");
        assert!(one.contains(r#"<circle class="p50""#), "{one}");
        assert!(one.contains(r#"<circle class="p95""#), "{one}");
        assert!(!one.contains("<polyline"));
        let two = latency_svg(
            &[(at, Some(40), Some(90)), (at, Some(50), Some(100))],
            "chart",
        );
        assert_eq!(two.matches("<polyline").count(), 2, "{two}");
        assert!(!two.contains("<circle"));
    }
}
