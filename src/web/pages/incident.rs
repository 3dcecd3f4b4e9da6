//! `/incidents/{id}`: one incident's timeline and postmortem.

use askama::Template;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{html_time, incident_class, long_time, not_found};
use crate::snapshot::{IncidentView, Snapshot};
use crate::web::{cache, AppState};

struct UpdateRow {
    status: String,
    message: String,
    when: String,
    iso: String,
}

#[derive(Template)]
#[template(path = "incident.html")]
struct IncidentPage {
    site: std::sync::Arc<crate::web::Site>,
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
