//! Atlassian Statuspage's public API, `/api/v2/…`, with its field names and
//! enums, so status aggregators, chat bots and Statuspage clients read
//! beacon unchanged. Built from the snapshot like the page: public services
//! only, names and states, never a URL, host or error text.
//!
//! Mapping: a service is a component; a `[[group]]` is a group component
//! whose `components` lists its children; an incident's updates are its
//! timeline (newest first, as Statuspage sends them); a maintenance window
//! is a scheduled maintenance (`scheduled` → `in_progress` → `completed`)
//! with one update carrying its message. A service not checked yet is left
//! out of the components: Statuspage has no "unknown".

use axum::extract::State as AxumState;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{cache, AppState};
use crate::model::State;
use crate::snapshot::{IncidentView, MaintenanceView, Overall, ServiceView, Snapshot};

/// The page id every document refers to.
const PAGE_ID: &str = "beacon";

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `indicator` and `description` of the page's status.
pub fn indicator(overall: Overall) -> (&'static str, &'static str) {
    match overall {
        Overall::Operational | Overall::NoData => ("none", "All Systems Operational"),
        Overall::Degraded => ("minor", "Minor Service Outage"),
        Overall::PartialOutage => ("major", "Partial System Outage"),
        Overall::MajorOutage => ("critical", "Major Service Outage"),
        Overall::Maintenance => ("maintenance", "Service Under Maintenance"),
    }
}

pub fn component_status(state: State) -> Option<&'static str> {
    match state {
        State::Up => Some("operational"),
        State::Degraded => Some("degraded_performance"),
        State::Down => Some("major_outage"),
        State::Maintenance => Some("under_maintenance"),
        State::Unknown => None,
    }
}

fn group_id(name: &str) -> String {
    format!("group-{}", crate::config::slugify(name))
}

fn page(app: &AppState, s: &Snapshot) -> Value {
    json!({
        "id": PAGE_ID,
        "name": s.title,
        "url": app.public_url.clone().unwrap_or_default(),
        "time_zone": "Etc/UTC",
        "updated_at": ts(s.generated_at),
    })
}

fn status(s: &Snapshot) -> Value {
    let (indicator, description) = indicator(s.overall);
    json!({ "indicator": indicator, "description": description })
}

fn service_component(
    s: &ServiceView,
    group: Option<&str>,
    position: usize,
    now: DateTime<Utc>,
) -> Option<Value> {
    Some(json!({
        "id": s.slug,
        "name": s.name,
        "status": component_status(s.state)?,
        "created_at": ts(s.created_at),
        "updated_at": ts(s.state_since.unwrap_or(now)),
        "position": position,
        "description": s.description,
        "showcase": true,
        "start_date": s.created_at.format("%Y-%m-%d").to_string(),
        "group_id": group.map(group_id),
        "page_id": PAGE_ID,
        "group": false,
        "only_show_if_degraded": false,
    }))
}

/// Every component: groups first in their place, each followed by its
/// children, as Statuspage orders them.
fn components(s: &Snapshot) -> Vec<Value> {
    let mut out = Vec::new();
    let mut position = 1;
    for g in &s.groups {
        let children: Vec<(&ServiceView, Value)> = g
            .services
            .iter()
            .filter_map(|svc| {
                let c = service_component(svc, g.name.as_deref(), 0, s.generated_at)?;
                Some((svc, c))
            })
            .collect();
        if let Some(name) = &g.name {
            if children.is_empty() {
                continue;
            }
            let states: Vec<State> = children.iter().map(|(svc, _)| svc.state).collect();
            let worst = match Overall::of(&states) {
                Overall::MajorOutage => "major_outage",
                Overall::PartialOutage => "partial_outage",
                Overall::Degraded => "degraded_performance",
                Overall::Maintenance => "under_maintenance",
                Overall::Operational | Overall::NoData => "operational",
            };
            let created = children
                .iter()
                .map(|(svc, _)| svc.created_at)
                .min()
                .unwrap_or(s.generated_at);
            let updated = children
                .iter()
                .filter_map(|(svc, _)| svc.state_since)
                .max()
                .unwrap_or(s.generated_at);
            out.push(json!({
                "id": group_id(name),
                "name": name,
                "status": worst,
                "created_at": ts(created),
                "updated_at": ts(updated),
                "position": position,
                "description": g.description,
                "showcase": false,
                "start_date": Value::Null,
                "group_id": Value::Null,
                "page_id": PAGE_ID,
                "group": true,
                "only_show_if_degraded": false,
                "components": children.iter().map(|(svc, _)| svc.slug.clone()).collect::<Vec<_>>(),
            }));
            position += 1;
        }
        for (_, mut c) in children {
            c["position"] = json!(position);
            position += 1;
            out.push(c);
        }
    }
    out
}

fn components_of(s: &Snapshot, slugs: &[String]) -> Vec<Value> {
    components(s)
        .into_iter()
        .filter(|c| {
            c["id"]
                .as_str()
                .is_some_and(|id| slugs.iter().any(|s| s == id))
        })
        .collect()
}

fn incident(s: &Snapshot, app: &AppState, i: &IncidentView) -> Value {
    let id = i.id.to_string();
    let status = if i.resolved_at.is_some() && i.postmortem.is_some() {
        "postmortem"
    } else {
        i.status.as_str()
    };
    let monitoring_at = i
        .updates
        .iter()
        .find(|(status, _, _)| status == "monitoring")
        .map(|(_, _, at)| ts(*at));
    let affected = components_of(s, &i.service_slugs);
    let updates: Vec<Value> = i
        .updates
        .iter()
        .enumerate()
        .rev()
        .map(|(n, (status, message, at))| {
            json!({
                "id": format!("{id}-{}", n + 1),
                "status": status,
                "body": message,
                "incident_id": id,
                "created_at": ts(*at),
                "updated_at": ts(*at),
                "display_at": ts(*at),
                "affected_components": Value::Null,
                "deliver_notifications": true,
                "custom_tweet": Value::Null,
                "tweet_id": Value::Null,
            })
        })
        .collect();
    json!({
        "id": id,
        "name": i.title,
        "status": status,
        "created_at": ts(i.started_at),
        "updated_at": ts(i.updated_at),
        "monitoring_at": monitoring_at,
        "resolved_at": i.resolved_at.map(ts),
        "impact": i.impact,
        "shortlink": app.public_url.as_ref().map(|u| format!("{}/incidents/{id}", u.trim_end_matches('/'))),
        "started_at": ts(i.started_at),
        "page_id": PAGE_ID,
        "incident_updates": updates,
        "components": affected,
    })
}

fn maintenance(s: &Snapshot, app: &AppState, m: &MaintenanceView) -> Value {
    let id = format!("maintenance-{}", m.id);
    let now = s.generated_at;
    let status = if now < m.starts_at {
        "scheduled"
    } else if now < m.ends_at {
        "in_progress"
    } else {
        "completed"
    };
    json!({
        "id": id,
        "name": m.title,
        "status": status,
        "created_at": ts(m.created_at),
        "updated_at": ts(m.updated_at),
        "monitoring_at": Value::Null,
        "resolved_at": (status == "completed").then(|| ts(m.ends_at)),
        "impact": "maintenance",
        "shortlink": app.public_url.clone(),
        "started_at": ts(m.starts_at),
        "page_id": PAGE_ID,
        "incident_updates": [{
            "id": format!("{id}-1"),
            "status": "scheduled",
            "body": m.message,
            "incident_id": id,
            "created_at": ts(m.created_at),
            "updated_at": ts(m.updated_at),
            "display_at": ts(m.created_at),
            "affected_components": Value::Null,
            "deliver_notifications": true,
            "custom_tweet": Value::Null,
            "tweet_id": Value::Null,
        }],
        "components": components_of(s, &m.service_slugs),
        "scheduled_for": ts(m.starts_at),
        "scheduled_until": ts(m.ends_at),
    })
}

/// Serves a document rendered once per snapshot (see `cache`).
async fn serve(
    app: &AppState,
    headers: &HeaderMap,
    key: &'static str,
    build: impl FnOnce(&AppState, &Snapshot) -> Value + Send + 'static,
) -> Response {
    let snapshot = app.snapshot();
    let owned = app.clone();
    let mut response = cache::respond(
        &app.render_cache,
        snapshot,
        headers,
        app.max_age_secs,
        key,
        cache::JSON,
        move |s| Some(build(&owned, s).to_string()),
    )
    .await;
    // Statuspage's API is read from other origins (widgets, dashboards).
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::HeaderValue::from_static("*"),
    );
    response
}

fn incident_list<'a>(
    app: &AppState,
    s: &Snapshot,
    list: impl Iterator<Item = &'a IncidentView>,
) -> Vec<Value> {
    list.map(|i| incident(s, app, i)).collect()
}

fn maintenance_list<'a>(
    app: &AppState,
    s: &Snapshot,
    list: impl Iterator<Item = &'a MaintenanceView>,
) -> Vec<Value> {
    list.map(|m| maintenance(s, app, m)).collect()
}

pub async fn summary(AxumState(app): AxumState<AppState>, headers: HeaderMap) -> Response {
    serve(&app, &headers, "/api/v2/summary.json", |app, s| {
        json!({
            "page": page(app, s),
            "components": components(s),
            "incidents": incident_list(app, s, s.incidents.iter()),
            "scheduled_maintenances": maintenance_list(app, s, s.active_maintenances.iter().chain(&s.upcoming_maintenances)),
            "status": status(s),
        })
    })
    .await
}

pub async fn status_doc(AxumState(app): AxumState<AppState>, headers: HeaderMap) -> Response {
    serve(
        &app,
        &headers,
        "/api/v2/status.json",
        |app, s| json!({ "page": page(app, s), "status": status(s) }),
    )
    .await
}

pub async fn components_doc(AxumState(app): AxumState<AppState>, headers: HeaderMap) -> Response {
    serve(
        &app,
        &headers,
        "/api/v2/components.json",
        |app, s| json!({ "page": page(app, s), "components": components(s) }),
    )
    .await
}

pub async fn incidents(AxumState(app): AxumState<AppState>, headers: HeaderMap) -> Response {
    serve(
        &app,
        &headers,
        "/api/v2/incidents.json",
        |app, s| json!({ "page": page(app, s), "incidents": incident_list(app, s, s.recent_incidents.iter().take(50)) }),
    )
    .await
}

pub async fn unresolved(AxumState(app): AxumState<AppState>, headers: HeaderMap) -> Response {
    serve(
        &app,
        &headers,
        "/api/v2/incidents/unresolved.json",
        |app, s| json!({ "page": page(app, s), "incidents": incident_list(app, s, s.incidents.iter()) }),
    )
    .await
}

pub async fn maintenances(AxumState(app): AxumState<AppState>, headers: HeaderMap) -> Response {
    serve(
        &app,
        &headers,
        "/api/v2/scheduled-maintenances.json",
        |app, s| json!({ "page": page(app, s), "scheduled_maintenances": maintenance_list(app, s, s.recent_maintenances.iter()) }),
    )
    .await
}

pub async fn upcoming(AxumState(app): AxumState<AppState>, headers: HeaderMap) -> Response {
    serve(
        &app,
        &headers,
        "/api/v2/scheduled-maintenances/upcoming.json",
        |app, s| json!({ "page": page(app, s), "scheduled_maintenances": maintenance_list(app, s, s.upcoming_maintenances.iter()) }),
    )
    .await
}

pub async fn active(AxumState(app): AxumState<AppState>, headers: HeaderMap) -> Response {
    serve(
        &app,
        &headers,
        "/api/v2/scheduled-maintenances/active.json",
        |app, s| json!({ "page": page(app, s), "scheduled_maintenances": maintenance_list(app, s, s.active_maintenances.iter()) }),
    )
    .await
}
