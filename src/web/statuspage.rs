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
use std::cell::OnceCell;
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{cache, AppState};
use crate::domain::State;
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
    format!("group-{}", crate::domain::text::slugify(name))
}

fn page(d: &Doc) -> Value {
    json!({
        "id": PAGE_ID,
        "name": d.s.title,
        "url": d.public_url.unwrap_or_default(),
        "time_zone": "Etc/UTC",
        "updated_at": ts(d.s.generated_at),
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
    components_where(s, |_| true)
}

/// The components whose id `want` takes, in the order and with the
/// positions of [`components`]: the others are counted, never built (see
/// `Doc::named`).
fn components_where(s: &Snapshot, want: impl Fn(&str) -> bool) -> Vec<Value> {
    let mut out = Vec::new();
    let mut position = 1;
    for g in &s.groups {
        // Services with no state yet are not components.
        let children: Vec<&ServiceView> = g
            .services
            .iter()
            .map(|svc| &**svc)
            .filter(|svc| component_status(svc.state).is_some())
            .collect();
        if let Some(name) = &g.name {
            if children.is_empty() {
                continue;
            }
            let id = group_id(name);
            if want(&id) {
                let states: Vec<State> = children.iter().map(|svc| svc.state).collect();
                let worst = match Overall::of(&states) {
                    Overall::MajorOutage => "major_outage",
                    Overall::PartialOutage => "partial_outage",
                    Overall::Degraded => "degraded_performance",
                    Overall::Maintenance => "under_maintenance",
                    Overall::Operational | Overall::NoData => "operational",
                };
                let created = children
                    .iter()
                    .map(|svc| svc.created_at)
                    .min()
                    .unwrap_or(s.generated_at);
                let updated = children
                    .iter()
                    .filter_map(|svc| svc.state_since)
                    .max()
                    .unwrap_or(s.generated_at);
                out.push(json!({
                    "id": id,
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
                    "components": children.iter().map(|svc| svc.slug.clone()).collect::<Vec<_>>(),
                }));
            }
            position += 1;
        }
        for svc in children {
            if want(&svc.slug) {
                out.extend(service_component(
                    svc,
                    g.name.as_deref(),
                    position,
                    s.generated_at,
                ));
            }
            position += 1;
        }
    }
    out
}

/// What one document is built from. Every component is built at most once
/// per document, however many incidents and maintenances list it, so a
/// document costs time linear in its size (not incidents × services).
struct Doc<'a> {
    s: &'a Snapshot,
    public_url: Option<&'a str>,
    /// Every component, for the documents that list them all.
    components: OnceCell<Components>,
    /// Only those the snapshot's incidents and maintenances name, for the
    /// documents that list those: at 30,000 services an incident naming
    /// two costs two components, not the fleet's (each is a JSON object
    /// with formatted times), and a mass outage's hundreds of incidents
    /// cost their services'.
    named: OnceCell<(HashSet<&'a str>, Components)>,
}

/// Every component in Statuspage's order, and where each id is in it.
struct Components {
    list: Vec<Value>,
    by_id: HashMap<String, Vec<usize>>,
}

impl Components {
    fn of(list: Vec<Value>) -> Components {
        let mut by_id: HashMap<String, Vec<usize>> = HashMap::with_capacity(list.len());
        for (n, c) in list.iter().enumerate() {
            if let Some(id) = c["id"].as_str() {
                by_id.entry(id.to_owned()).or_default().push(n);
            }
        }
        Components { list, by_id }
    }
}

impl<'a> Doc<'a> {
    fn new(s: &'a Snapshot, public_url: Option<&'a str>) -> Doc<'a> {
        Doc {
            s,
            public_url,
            components: OnceCell::new(),
            named: OnceCell::new(),
        }
    }

    fn components(&self) -> &Components {
        self.components
            .get_or_init(|| Components::of(components(self.s)))
    }

    /// The components the snapshot's incidents and maintenances name.
    fn named(&self) -> &(HashSet<&'a str>, Components) {
        self.named.get_or_init(|| {
            let s = self.s;
            let names: HashSet<&'a str> = s
                .incidents
                .iter()
                .chain(&s.recent_incidents)
                .flat_map(|i| &i.service_slugs)
                .chain(
                    s.recent_maintenances
                        .iter()
                        .chain(&s.active_maintenances)
                        .chain(&s.upcoming_maintenances)
                        .flat_map(|m| &m.service_slugs),
                )
                .map(String::as_str)
                .collect();
            let list = components_where(s, |id| names.contains(id));
            (names, Components::of(list))
        })
    }

    /// The components whose id is one of `slugs`, in the order of
    /// [`components`], each once: from every component when this document
    /// has built them, else from those the snapshot's incidents and
    /// maintenances name (which `slugs` always are: they are one's).
    fn components_of(&self, slugs: &[String]) -> Vec<Value> {
        if slugs.is_empty() {
            return Vec::new();
        }
        let all = match self.components.get() {
            Some(all) => all,
            None => {
                let (names, named) = self.named();
                if slugs.iter().all(|slug| names.contains(slug.as_str())) {
                    named
                } else {
                    self.components()
                }
            }
        };
        let mut at: Vec<usize> = slugs
            .iter()
            .filter_map(|slug| all.by_id.get(slug.as_str()))
            .flatten()
            .copied()
            .collect();
        at.sort_unstable();
        at.dedup();
        at.into_iter().map(|n| all.list[n].clone()).collect()
    }
}

fn incident(d: &Doc, i: &IncidentView) -> Value {
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
    let affected = d.components_of(&i.service_slugs);
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
        "shortlink": d.public_url.map(|u| format!("{}/incidents/{id}", u.trim_end_matches('/'))),
        "started_at": ts(i.started_at),
        "page_id": PAGE_ID,
        "incident_updates": updates,
        "components": affected,
    })
}

fn maintenance(d: &Doc, m: &MaintenanceView) -> Value {
    let id = format!("maintenance-{}", m.id);
    let now = d.s.generated_at;
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
        "shortlink": d.public_url,
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
        "components": d.components_of(&m.service_slugs),
        "scheduled_for": ts(m.starts_at),
        "scheduled_until": ts(m.ends_at),
    })
}

/// The `page` of a webhook subscriber's body: the page's status now.
fn webhook_page(s: &Snapshot) -> Value {
    let (indicator, description) = indicator(s.overall);
    json!({
        "id": PAGE_ID,
        "status_indicator": indicator,
        "status_description": description,
    })
}

/// What Statuspage sends its webhook subscribers about an incident:
/// `meta`, `page` and the `incident` as `/api/v2/incidents.json` has it.
fn webhook_incident(s: &Snapshot, public_url: &str, meta: Value, i: &IncidentView) -> Value {
    let d = Doc::new(s, Some(public_url));
    json!({ "meta": meta, "page": webhook_page(s), "incident": incident(&d, i) })
}

/// A maintenance window's step, sent as Statuspage does: an `incident`
/// whose impact is `maintenance` and whose status is the step's.
fn webhook_maintenance(
    s: &Snapshot,
    public_url: &str,
    meta: Value,
    m: &MaintenanceView,
    kind: crate::domain::EventKind,
) -> Value {
    use crate::domain::EventKind;
    let d = Doc::new(s, Some(public_url));
    let mut body = maintenance(&d, m);
    let status = match kind {
        EventKind::MaintenanceStarted => "in_progress",
        EventKind::MaintenanceCompleted | EventKind::MaintenanceCancelled => "completed",
        _ => "scheduled",
    };
    body["status"] = json!(status);
    if let Some(update) = body["incident_updates"].get_mut(0) {
        update["status"] = json!(status);
    }
    json!({ "meta": meta, "page": webhook_page(s), "incident": body })
}

/// A component's status change, as Statuspage sends it:
/// `component_update` (old and new status) and the `component`.
fn webhook_component_update(
    s: &Snapshot,
    meta: Value,
    change: &crate::domain::ServiceFacts,
    event_id: i64,
) -> Value {
    let status = |state: &str| {
        State::parse(state)
            .and_then(component_status)
            .unwrap_or("operational")
    };
    let at = crate::clock::ms_to_datetime(change.since).unwrap_or(s.generated_at);
    let slug = &change.service.slug;
    let component = s
        .groups
        .iter()
        .flat_map(|g| g.services.iter().map(move |svc| (g, svc)))
        .find(|(_, svc)| &svc.slug == slug)
        .and_then(|(g, svc)| service_component(svc, g.name.as_deref(), 0, s.generated_at))
        .map(|mut c| {
            c["status"] = json!(status(&change.state));
            c["updated_at"] = json!(ts(at));
            c
        })
        .unwrap_or_else(
            || json!({ "id": slug, "name": change.service.name, "status": status(&change.state) }),
        );
    json!({
        "meta": meta,
        "page": webhook_page(s),
        "component_update": {
            "id": format!("{slug}-{event_id}"),
            "component_id": slug,
            "created_at": ts(at),
            "old_status": status(&change.previous_state),
            "new_status": status(&change.state),
        },
        "component": component,
    })
}

/// The [`crate::notify::subscribers::BodyMaker`] of `beacon serve`:
/// webhook subscribers' bodies from the incident or window as the store has
/// it now, and the page's status and components as the snapshot has them.
pub fn webhook_bodies(
    store: crate::store::Store,
    snapshot: tokio::sync::watch::Receiver<std::sync::Arc<Snapshot>>,
    public_url: String,
) -> crate::notify::subscribers::BodyMaker {
    use crate::notify::SendError;
    std::sync::Arc::new(move |d: crate::store::SubscriberDelivery, meta: Value| {
        let store = store.clone();
        let s = snapshot.borrow().clone();
        let public_url = public_url.clone();
        Box::pin(async move {
            let transient = |e: crate::store::StoreError| SendError::Transient {
                error: format!("reading the store: {e}"),
                retry_after: None,
            };
            let e = &d.event;
            if let Some(i) = &e.incident {
                let Some(stored) = store.incident(i.id).await.map_err(transient)? else {
                    return Err(SendError::Permanent(format!(
                        "incident {} was deleted before it was sent",
                        i.id
                    )));
                };
                return Ok(webhook_incident(
                    &s,
                    &public_url,
                    meta,
                    &s.incident_view(stored),
                ));
            }
            if let Some(m) = &e.maintenance {
                let view = match store.maintenance(m.id).await.map_err(transient)? {
                    Some(stored) => s.maintenance_view(stored),
                    // Withdrawn (deleted) since: as the event saw it.
                    None => s.maintenance_view(crate::store::Maintenance {
                        id: m.id,
                        title: m.title.clone(),
                        message: m.message.clone(),
                        starts_at: m.starts_at,
                        ends_at: m.ends_at,
                        services: m.services.iter().map(|x| x.slug.clone()).collect(),
                        created_at: e.at,
                        updated_at: e.at,
                    }),
                };
                return Ok(webhook_maintenance(&s, &public_url, meta, &view, d.kind));
            }
            if let Some(change) = &e.service {
                return Ok(webhook_component_update(&s, meta, change, d.event_id));
            }
            Err(SendError::Permanent(format!(
                "{} is not an event for subscribers",
                d.kind.as_str()
            )))
        })
    })
}

/// Serves a document rendered once per snapshot (see `cache`).
async fn serve(
    app: &AppState,
    headers: &HeaderMap,
    key: &'static str,
    build: fn(&Doc) -> Value,
) -> Response {
    let snapshot = app.snapshot();
    let public_url = app.public_url.clone();
    let mut response = cache::respond(
        &app.render_cache,
        snapshot,
        headers,
        app.max_age_secs,
        key,
        cache::JSON,
        move |s| Some(build(&Doc::new(s, public_url.as_deref())).to_string()),
    )
    .await;
    // Statuspage's API is read from other origins (widgets, dashboards).
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::HeaderValue::from_static("*"),
    );
    response
}

fn incident_list<'a>(d: &Doc, list: impl Iterator<Item = &'a IncidentView>) -> Vec<Value> {
    list.map(|i| incident(d, i)).collect()
}

fn maintenance_list<'a>(d: &Doc, list: impl Iterator<Item = &'a MaintenanceView>) -> Vec<Value> {
    list.map(|m| maintenance(d, m)).collect()
}

fn summary_doc(d: &Doc) -> Value {
    let s = d.s;
    json!({
        "page": page(d),
        "components": d.components().list,
        "incidents": incident_list(d, s.incidents.iter()),
        "scheduled_maintenances": maintenance_list(d, s.active_maintenances.iter().chain(&s.upcoming_maintenances)),
        "status": status(s),
    })
}

fn status_json(d: &Doc) -> Value {
    json!({ "page": page(d), "status": status(d.s) })
}

fn components_json(d: &Doc) -> Value {
    json!({ "page": page(d), "components": d.components().list })
}

fn incidents_json(d: &Doc) -> Value {
    json!({ "page": page(d), "incidents": incident_list(d, d.s.recent_incidents.iter().take(50)) })
}

fn unresolved_json(d: &Doc) -> Value {
    json!({ "page": page(d), "incidents": incident_list(d, d.s.incidents.iter()) })
}

fn maintenances_json(d: &Doc) -> Value {
    json!({ "page": page(d), "scheduled_maintenances": maintenance_list(d, d.s.recent_maintenances.iter()) })
}

fn upcoming_json(d: &Doc) -> Value {
    json!({ "page": page(d), "scheduled_maintenances": maintenance_list(d, d.s.upcoming_maintenances.iter()) })
}

fn active_json(d: &Doc) -> Value {
    json!({ "page": page(d), "scheduled_maintenances": maintenance_list(d, d.s.active_maintenances.iter()) })
}

pub async fn summary(AxumState(app): AxumState<AppState>, headers: HeaderMap) -> Response {
    serve(&app, &headers, "/api/v2/summary.json", summary_doc).await
}

pub async fn status_doc(AxumState(app): AxumState<AppState>, headers: HeaderMap) -> Response {
    serve(&app, &headers, "/api/v2/status.json", status_json).await
}

pub async fn components_doc(AxumState(app): AxumState<AppState>, headers: HeaderMap) -> Response {
    serve(&app, &headers, "/api/v2/components.json", components_json).await
}

pub async fn incidents(AxumState(app): AxumState<AppState>, headers: HeaderMap) -> Response {
    serve(&app, &headers, "/api/v2/incidents.json", incidents_json).await
}

pub async fn unresolved(AxumState(app): AxumState<AppState>, headers: HeaderMap) -> Response {
    serve(
        &app,
        &headers,
        "/api/v2/incidents/unresolved.json",
        unresolved_json,
    )
    .await
}

pub async fn maintenances(AxumState(app): AxumState<AppState>, headers: HeaderMap) -> Response {
    serve(
        &app,
        &headers,
        "/api/v2/scheduled-maintenances.json",
        maintenances_json,
    )
    .await
}

pub async fn upcoming(AxumState(app): AxumState<AppState>, headers: HeaderMap) -> Response {
    serve(
        &app,
        &headers,
        "/api/v2/scheduled-maintenances/upcoming.json",
        upcoming_json,
    )
    .await
}

pub async fn active(AxumState(app): AxumState<AppState>, headers: HeaderMap) -> Response {
    serve(
        &app,
        &headers,
        "/api/v2/scheduled-maintenances/active.json",
        active_json,
    )
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::TimeZone;

    use super::*;
    use crate::snapshot::{Day, GroupView};

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_773_000_000 + secs, 0)
            .single()
            .unwrap_or_default()
    }

    fn service(n: usize, state: State) -> ServiceView {
        ServiceView {
            slug: format!("svc-{n}"),
            name: format!("Service {n}"),
            description: n.is_multiple_of(3).then(|| format!("about {n}")),
            state,
            state_since: (!n.is_multiple_of(4)).then(|| at(n as i64)),
            last_check: crate::snapshot::LastCheck::new(Some(at(0).timestamp_millis())),
            created_at: at(-(n as i64)),
            uptime: [None; 4],
            hours: Arc::from(Vec::new()),
            past_days: Arc::from(Vec::new()),
            today: Day::empty(at(0).date_naive()),
            incidents_90d: 0,
            p50_24h: None,
            dependencies: Vec::new(),
            locations: Vec::new(),
        }
    }

    fn incident(id: i64, slugs: Vec<String>, resolved: bool) -> IncidentView {
        let updates = vec![
            ("investigating".to_string(), "looking".to_string(), at(id)),
            (
                "monitoring".to_string(),
                "a fix is out".to_string(),
                at(id + 5),
            ),
        ];
        IncidentView {
            id,
            title: format!("Incident {id}"),
            impact: "major".into(),
            status: "monitoring".into(),
            started_at: at(id),
            updated_at: at(id + 5),
            resolved_at: resolved.then(|| at(id + 9)),
            postmortem: (resolved && id % 2 == 0).then(|| "what happened".to_string()),
            latest: updates.last().cloned(),
            updates,
            services: slugs.iter().map(|s| s.to_uppercase()).collect(),
            service_slugs: slugs,
        }
    }

    fn maintenance(id: i64, slugs: Vec<String>, starts: i64) -> MaintenanceView {
        MaintenanceView {
            id,
            title: format!("Window {id}"),
            message: "upgrading".into(),
            starts_at: at(starts),
            ends_at: at(starts + 3600),
            services: slugs.iter().map(|s| s.to_uppercase()).collect(),
            service_slugs: slugs,
            created_at: at(-100),
            updated_at: at(-50),
        }
    }

    /// `services` public services in named groups of 50 (an ungrouped
    /// first one), every fifth unknown, `incidents` open incidents each
    /// naming a few services (some twice, some unknown or not public).
    fn outage(services: usize, incidents: usize) -> Snapshot {
        let states = [
            State::Up,
            State::Down,
            State::Degraded,
            State::Maintenance,
            State::Unknown,
        ];
        let all: Vec<Arc<ServiceView>> = (0..services)
            .map(|n| Arc::new(service(n, states[n % 5])))
            .collect();
        let mut groups = Vec::new();
        for (g, chunk) in all.chunks(50).enumerate() {
            groups.push(GroupView {
                name: (g > 0).then(|| format!("Group {g}")),
                description: g.is_multiple_of(2).then(|| "a group".to_string()),
                uptime: [None; 4],
                services: chunk.to_vec(),
            });
        }
        // A group whose services are all unknown is left out.
        groups.push(GroupView {
            name: Some("Dark".into()),
            description: None,
            uptime: [None; 4],
            services: vec![Arc::new(service(services + 4, State::Unknown))],
        });
        let slug = |n: usize| format!("svc-{}", n % services.max(1));
        let open: Vec<IncidentView> = (0..incidents)
            .map(|k| {
                let mut slugs: Vec<String> = (0..1 + k % 4).map(|j| slug(k * 7 + j * 13)).collect();
                if k.is_multiple_of(5) {
                    slugs.push(slug(k * 7));
                    slugs.push("gone".into());
                    slugs.push("group-group-1".into());
                }
                incident(k as i64 + 1, slugs, false)
            })
            .collect();
        let recent: Vec<IncidentView> = (0..60)
            .map(|k| incident(10_000 + k, vec![slug(k as usize * 3)], k % 3 == 0))
            .collect();
        let windows: Vec<MaintenanceView> = (0..6)
            .map(|k| {
                maintenance(
                    k,
                    vec![slug(k as usize), slug(k as usize + 40)],
                    k * 2000 - 5000,
                )
            })
            .collect();
        Snapshot {
            generated_at: at(0),
            title: "Status".into(),
            overall: crate::snapshot::Overall::PartialOutage,
            groups,
            incidents: open,
            recent_incidents: recent,
            recent_maintenances: windows.clone(),
            active_maintenances: windows[..3].to_vec(),
            upcoming_maintenances: windows[3..].to_vec(),
            loading: false,
        }
    }

    /// The components of `slugs` as they were found before documents were
    /// linear: every component rebuilt, then filtered.
    fn components_of_reference(s: &Snapshot, slugs: &[String]) -> Vec<Value> {
        components(s)
            .into_iter()
            .filter(|c| {
                c["id"]
                    .as_str()
                    .is_some_and(|id| slugs.iter().any(|s| s == id))
            })
            .collect()
    }

    const DOCUMENTS: [fn(&Doc) -> Value; 8] = [
        summary_doc,
        status_json,
        components_json,
        incidents_json,
        unresolved_json,
        maintenances_json,
        upcoming_json,
        active_json,
    ];

    #[test]
    fn affected_components_are_those_of_the_full_list() {
        let s = outage(230, 40);
        let views: Vec<(&IncidentView, &str)> = s
            .incidents
            .iter()
            .chain(&s.recent_incidents)
            .map(|i| (i, "incident"))
            .collect();
        for build in DOCUMENTS {
            let doc = build(&Doc::new(&s, Some("https://status.example.com/")));
            for list in ["incidents", "scheduled_maintenances"] {
                for item in doc[list].as_array().into_iter().flatten() {
                    let id = item["id"].as_str().unwrap_or_default();
                    let slugs = if let Some(m) = id.strip_prefix("maintenance-") {
                        let m = s
                            .recent_maintenances
                            .iter()
                            .find(|w| w.id.to_string() == m)
                            .expect("a window of the snapshot");
                        &m.service_slugs
                    } else {
                        let (i, _) = views
                            .iter()
                            .find(|(i, _)| i.id.to_string() == id)
                            .expect("an incident of the snapshot");
                        &i.service_slugs
                    };
                    let expected = components_of_reference(&s, slugs);
                    assert_eq!(item["components"], Value::Array(expected), "{id}");
                }
            }
        }
        // Named twice, a group's id, unknown: listed once, in page order.
        let first = &doc_of(&s)["incidents"][0]["components"];
        let ids: Vec<&str> = first
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["id"].as_str())
            .collect();
        assert_eq!(ids, ["svc-0", "group-group-1"]);
    }

    fn doc_of(s: &Snapshot) -> Value {
        summary_doc(&Doc::new(s, None))
    }

    /// An outage: 2,000 services, 600 open incidents. Built once per
    /// snapshot change, so it must stay linear (was incidents × services).
    #[test]
    fn summary_of_a_mass_outage() {
        let s = outage(2_000, 600);
        let started = std::time::Instant::now();
        let text = doc_of(&s).to_string();
        eprintln!(
            "summary.json at 2,000 services / 600 incidents: {} bytes in {:?}",
            text.len(),
            started.elapsed()
        );
        let doc: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(doc["incidents"].as_array().map(Vec::len), Some(600));
        // 40 groups, 1,600 known services (every fifth is unknown).
        assert_eq!(doc["components"].as_array().map(Vec::len), Some(39 + 1_600));
        let affected: usize = doc["incidents"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| i["components"].as_array().map_or(0, Vec::len))
            .sum();
        assert!(affected > 600, "{affected}");
    }
}
