//! `/incidents`: the incident history by month, three months a page.

use askama::Template;
use axum::extract::State as AxumState;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::{incident_class, long_time, not_found, HistoryRow};
use crate::snapshot::{IncidentView, Snapshot};
use crate::web::{cache, AppState};

struct Month {
    name: String,
    incidents: Vec<HistoryRow>,
}

#[derive(Template)]
#[template(path = "incidents.html")]
struct IncidentsPage {
    site: std::sync::Arc<crate::web::Site>,
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
    // Past the first incident on record there is no such page: known
    // from one read per snapshot, so a crawler walking past the end (or
    // asking for page 1,200 again and again) never reaches the store.
    let first = match app.first_incident.get(&app, snapshot.generated_at).await {
        Ok(first) => first,
        Err(refused) => return refused.response("the incident history"),
    };
    if first.is_none_or(|first| first >= to.timestamp_millis()) {
        return not_found().await;
    }
    let read = app
        .read_store(app.store.incidents_between(
            from.timestamp_millis(),
            to.timestamp_millis(),
            HISTORY_PAGE_LIMIT as i64 + 1,
        ))
        .await;
    let mut rows = match read {
        Ok(found) => found,
        Err(refused) => return refused.response("the incident history"),
    };
    let cut = rows.len() > HISTORY_PAGE_LIMIT;
    rows.truncate(HISTORY_PAGE_LIMIT);
    let older = first.is_some_and(|first| first < from.timestamp_millis());
    // Off the runtime's workers: a page of hundreds of incidents, and its
    // compression.
    let coding = cache::negotiate(&headers);
    let rendered = crate::background::run(move || {
        let views = snapshot.incident_views(rows);
        let shown: Vec<&IncidentView> = views.iter().collect();
        history_html(&app, &snapshot, &shown, page, older, from, to, cut)
            .map(|html| cache::encode(coding, html.as_bytes()))
    })
    .await;
    let Ok(Some((body, encoding))) = rendered else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "Internal error\n").into_response();
    };
    let response = (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(cache::HTML)),
            (header::VARY, HeaderValue::from_static("accept-encoding")),
        ],
        body,
    )
        .into_response();
    cache::with_encoding(response, encoding)
}

/// The start of the first incident on record, read from the store at most
/// once per snapshot and per [`FIRST_INCIDENT_REUSE`] (reads that cross are
/// not merged; they are bounded by the public-read permits like any other).
/// Incidents are written with the current time, so the first one moves only
/// when retention or an operator deletes it; the time bound covers a clock
/// that does not move.
#[derive(Default)]
pub struct FirstIncident {
    known: parking_lot::Mutex<Option<Known>>,
}

/// The snapshot it was read for, when, and what it said.
type Known = (DateTime<Utc>, std::time::Instant, Option<i64>);

/// Longest a read of the first incident is reused.
const FIRST_INCIDENT_REUSE: std::time::Duration = std::time::Duration::from_secs(10);

impl FirstIncident {
    async fn get(
        &self,
        app: &AppState,
        generation: DateTime<Utc>,
    ) -> Result<Option<i64>, crate::web::ReadRefused> {
        let known = *self.known.lock();
        if let Some((at, read, first)) = known {
            if at >= generation && read.elapsed() < FIRST_INCIDENT_REUSE {
                return Ok(first);
            }
        }
        let first = app.read_store(app.store.first_incident_start()).await?;
        let mut known = self.known.lock();
        if known.is_none_or(|(at, _, _)| at <= generation) {
            *known = Some((generation, std::time::Instant::now(), first));
        }
        Ok(first)
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
