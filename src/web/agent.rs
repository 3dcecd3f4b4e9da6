//! The main server's side of probing from several locations: the routes
//! agents use (`/agent/api/v1/`), each taking its location's token, and
//! the watch that tells when a location goes silent.
//!
//! - `GET /agent/api/v1/assignment`: the services that list the agent's
//!   location, as TOML the agent validates like `serve` does, with an
//!   `ETag` (`If-None-Match` answers 304, so polling costs nothing).
//! - `POST /agent/api/v1/results`: a batch of results. Every result is
//!   checked first (a service assigned to this location, a time neither in
//!   the future nor older than an agent's buffer reaches, capped fields);
//!   one wrong result refuses the batch with 422 naming it, and nothing of
//!   it is stored. Stored results are new ones only: a batch sent again
//!   (its answer lost) or a buffer replayed is written once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State as AxumState;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use super::AppState;
use crate::agent::wire::{Taken, WireBatch, MAX_BATCH, MAX_BODY, MAX_REASON, REACH, SKEW};
use crate::config::{Assignments, Config, LocationConfig};
use crate::domain::{Event, EventKind, LocationFacts, Outcome};
use crate::monitor::{InboxSlot, ProbeResult};
use crate::probe::ProbeReport;
use crate::store::LocationResult;

/// The agents' side of the config: swapped whole on a reload.
#[derive(Debug, Default)]
pub struct AgentsConfig {
    pub locations: Vec<LocationConfig>,
    pub assignments: Arc<Assignments>,
    /// Per location: how many services it checks, and two of their
    /// shortest interval (past it without a batch, the location is silent).
    pub silent_after: HashMap<String, (usize, Duration)>,
}

impl AgentsConfig {
    pub fn of(config: &Config) -> AgentsConfig {
        let mut silent_after: HashMap<String, (usize, Duration)> = HashMap::new();
        for s in &config.services {
            for name in s.locations.iter().flat_map(|l| l.names.iter()) {
                if config.locations.iter().any(|l| &l.name == name) {
                    let entry = silent_after
                        .entry(name.clone())
                        .or_insert((0, Duration::MAX));
                    entry.0 += 1;
                    entry.1 = entry.1.min(s.interval * 2);
                }
            }
        }
        AgentsConfig {
            locations: config.locations.clone(),
            assignments: config.assignments.clone(),
            silent_after,
        }
    }
}

/// What a location's agent last did, as this server saw it.
#[derive(Debug, Clone, Default)]
struct Seen {
    /// When its last batch arrived (epoch ms).
    arrived_at: Option<i64>,
    /// The newest result time it sent.
    last_result_at: Option<i64>,
    /// Silent since (epoch ms), while it is (and its event raised).
    silent_since: Option<i64>,
    /// When the watch first saw it configured: the start of its first
    /// silence, if it never sends (a location added by a reload is not
    /// silent since beacon started).
    known_since: Option<i64>,
}

/// The agents' routes' state: their config, the monitor's inbox, and what
/// each location last did.
pub struct Agents {
    config: parking_lot::RwLock<Arc<AgentsConfig>>,
    pub inbox: InboxSlot,
    seen: parking_lot::Mutex<HashMap<String, Seen>>,
    started_ms: i64,
}

impl Agents {
    pub fn new(config: AgentsConfig, inbox: InboxSlot, started_ms: i64) -> Agents {
        Agents {
            config: parking_lot::RwLock::new(Arc::new(config)),
            inbox,
            seen: Default::default(),
            started_ms,
        }
    }

    /// A reload: new locations, tokens and assignments.
    pub fn reconfigure(&self, config: AgentsConfig) {
        *self.config.write() = Arc::new(config);
    }

    fn config(&self) -> Arc<AgentsConfig> {
        self.config.read().clone()
    }

    /// The location whose token `headers` carry (every token compared, in
    /// constant time).
    fn location(&self, headers: &HeaderMap) -> Option<String> {
        let config = self.config();
        let tokens: Vec<String> = config.locations.iter().map(|l| l.token.clone()).collect();
        let i = super::auth::bearer_index(headers, &tokens)?;
        Some(config.locations[i].name.clone())
    }

    /// `/health`'s check per location that checks services: `warn` while
    /// silent.
    pub fn health(&self, now_ms: i64, time: &str) -> Vec<serde_json::Value> {
        let config = self.config();
        let seen = self.seen.lock().clone();
        let mut names: Vec<&String> = config.silent_after.keys().collect();
        names.sort();
        names
            .into_iter()
            .map(|name| {
                let s = seen.get(name).cloned().unwrap_or_default();
                let last = s.arrived_at.unwrap_or(self.started_ms);
                json!({
                    "componentId": name,
                    "componentType": "location",
                    "observedValue": (now_ms - last).max(0) / 1000,
                    "observedUnit": "s since its agent's last batch",
                    "status": if s.silent_since.is_some() { "warn" } else { "pass" },
                    "output": s.silent_since.map(|_| format!("the agent at {name} sends no results; its services are decided by their other locations")),
                    "time": time,
                })
            })
            .collect()
    }
}

pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/agent/api/v1/assignment", get(assignment))
        .route("/agent/api/v1/results", post(results))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

fn refuse(app: &AppState, status: StatusCode, reason: &str, message: String) -> Response {
    app.metrics
        .location_refused
        .with_label_values(&[reason])
        .inc();
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(json!({ "error": message })),
    )
        .into_response()
}

fn unauthorized(app: &AppState) -> Response {
    let mut response = refuse(
        app,
        StatusCode::UNAUTHORIZED,
        "token",
        "a location's token is needed: Authorization: Bearer <token of a [[location]]>".into(),
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

async fn assignment(AxumState(app): AxumState<AppState>, headers: HeaderMap) -> Response {
    let Some(location) = app.agents.location(&headers) else {
        return unauthorized(&app);
    };
    let config = app.agents.config();
    let Some(assigned) = config.assignments.by_location.get(&location) else {
        return refuse(
            &app,
            StatusCode::NOT_FOUND,
            "invalid",
            format!("no assignment for location {location}"),
        );
    };
    let etag = assigned.etag.clone();
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let common = [
        (header::ETAG, etag),
        (header::CACHE_CONTROL, "no-store".to_string()),
        (
            header::HeaderName::from_static("beacon-location"),
            location.clone(),
        ),
    ];
    if unchanged {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        StatusCode::OK,
        common,
        [(header::CONTENT_TYPE, "application/toml; charset=utf-8")],
        assigned.toml.clone(),
    )
        .into_response()
}

fn outcome_of(text: &str) -> Option<Outcome> {
    match text {
        "up" => Some(Outcome::Up),
        "degraded" => Some(Outcome::Degraded),
        "down" => Some(Outcome::Down),
        _ => None,
    }
}

/// Checks every result of `batch` from `location` at `now_ms`; the first
/// problem names the result and its field.
/// Why a batch is refused: it is wrong (422), or it names a service no
/// longer assigned to the location (409: the agent's assignment is out of
/// date; it drops that service's results and fetches it again).
#[derive(Debug, PartialEq)]
pub enum Refusal {
    Invalid(String),
    Unassigned { service: String, message: String },
}

pub fn check_batch(
    batch: &WireBatch,
    location: &str,
    services: &HashMap<String, (i64, Vec<String>)>,
    now_ms: i64,
) -> Result<Vec<LocationResult>, Refusal> {
    use Refusal::Invalid;
    if batch.results.len() > MAX_BATCH {
        return Err(Invalid(format!(
            "results: {} in one batch, at most {MAX_BATCH}",
            batch.results.len()
        )));
    }
    let mut rows = Vec::with_capacity(batch.results.len());
    let mut seen: HashMap<(&str, i64), usize> = HashMap::new();
    for (i, r) in batch.results.iter().enumerate() {
        let place = format!("results[{i}]");
        let assigned = services
            .get(&r.service)
            .filter(|(_, locations)| locations.iter().any(|l| l == location));
        let Some((id, _)) = assigned else {
            let service = crate::domain::text::clean_text(&r.service, 64);
            return Err(Refusal::Unassigned {
                message: format!(
                    "{place}.service: \"{service}\" is not assigned to location {location}; fetch the assignment again"
                ),
                service,
            });
        };
        if let Some(first) = seen.insert((r.service.as_str(), r.checked_at), i) {
            return Err(Invalid(format!(
                "{place}: the same service and checked_at as results[{first}]"
            )));
        }
        if r.checked_at > now_ms + SKEW.as_millis() as i64 {
            return Err(Invalid(format!(
                "{place}.checked_at: {} is in the future ({} ms ahead of the server's clock; at most {} s is allowed): check the agent's clock",
                r.checked_at,
                r.checked_at - now_ms,
                SKEW.as_secs()
            )));
        }
        if r.checked_at < now_ms - REACH.as_millis() as i64 {
            return Err(Invalid(format!(
                "{place}.checked_at: {} is older than an agent's buffer reaches ({} s)",
                r.checked_at,
                REACH.as_secs()
            )));
        }
        let Some(outcome) = outcome_of(&r.outcome) else {
            return Err(Invalid(format!(
                "{place}.outcome: \"{}\" is not one of up, degraded, down",
                crate::domain::text::clean_text(&r.outcome, 32)
            )));
        };
        let latency_ms = match r.latency_ms {
            None => None,
            Some(ms) if (0..=3_600_000).contains(&ms) => Some(ms as i32),
            Some(ms) => {
                return Err(Invalid(format!(
                    "{place}.latency_ms: {ms} is not between 0 and 3600000"
                )))
            }
        };
        let status_code = match r.status_code {
            None => None,
            Some(code) if (100..=599).contains(&code) => Some(code as i16),
            Some(code) => {
                return Err(Invalid(format!(
                    "{place}.status_code: {code} is not an HTTP status (100 to 599)"
                )))
            }
        };
        if r.reason.as_ref().is_some_and(|t| t.len() > MAX_REASON) {
            return Err(Invalid(format!(
                "{place}.reason: longer than {MAX_REASON} bytes"
            )));
        }
        rows.push(LocationResult {
            service_id: *id,
            location: location.to_string(),
            checked_at: r.checked_at,
            outcome,
            latency_ms,
            status_code,
            reason: r
                .reason
                .as_ref()
                .map(|t| crate::domain::text::clean_text(t, MAX_REASON)),
        });
    }
    Ok(rows)
}

async fn results(
    AxumState(app): AxumState<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    // The token first: the body is read only for a location.
    let Some(location) = app.agents.location(&headers) else {
        return unauthorized(&app);
    };
    let body = match crate::web::capped::read(&headers, body, MAX_BODY).await {
        Ok(body) => body,
        Err(_) => {
            let mut response = refuse(
                &app,
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid",
                format!("the body is over {MAX_BODY} bytes (or was cut off)"),
            );
            crate::web::capped::last_on_connection(&mut response);
            return response;
        }
    };
    let batch: WireBatch = match serde_json::from_slice(&body) {
        Ok(batch) => batch,
        Err(e) => {
            return refuse(
                &app,
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                format!("the body is not a batch of results: {e}"),
            )
        }
    };
    let Some(inbox) = app.agents.inbox.read().clone() else {
        return unavailable(&app, "the monitor is starting");
    };
    // Not held across the store's write: a slow store must not keep a
    // stopping monitor's channel open.
    if inbox.tx.upgrade().is_none() {
        return unavailable(&app, "the monitor is stopping");
    }
    let now = app.clock.now_ms();
    let rows = match check_batch(&batch, &location, &inbox.services, now) {
        Ok(rows) => rows,
        Err(Refusal::Invalid(why)) => {
            tracing::warn!(%location, error = %why, "a batch from an agent is refused");
            return refuse(&app, StatusCode::UNPROCESSABLE_ENTITY, "invalid", why);
        }
        Err(Refusal::Unassigned { service, message }) => {
            tracing::info!(%location, %service, "a batch names a service no longer assigned to its location; the agent is told to fetch its assignment again");
            app.metrics
                .location_refused
                .with_label_values(&["unassigned"])
                .inc();
            return (
                StatusCode::CONFLICT,
                [(header::CACHE_CONTROL, "no-store")],
                axum::Json(json!({ "error": message, "unassigned": service })),
            )
                .into_response();
        }
    };
    let new = match app.store.insert_location_results(&rows).await {
        Ok(new) => new,
        Err(e) => {
            tracing::error!(%location, error = %e, "storing an agent's results failed; it will send them again");
            return unavailable(&app, "the store is unavailable");
        }
    };
    let name: Arc<str> = Arc::from(location.as_str());
    let fresh: Vec<ProbeResult> = rows
        .into_iter()
        .zip(new)
        .filter(|(_, new)| *new)
        .map(|(row, _)| ProbeResult {
            service_id: row.service_id,
            checked_at: row.checked_at,
            report: ProbeReport {
                status_code: row.status_code.map(|c| c as u16),
                reason: row.reason,
                ..ProbeReport::down(
                    Duration::from_millis(row.latency_ms.unwrap_or(0).max(0) as u64),
                    "",
                )
                .with_outcome(row.outcome)
            },
            own_fault: false,
            resume: false,
            window_edge: false,
            location: Some(name.clone()),
        })
        .collect();
    let stored = fresh.len();
    // Stored: delivered to the recorder whatever becomes of this request
    // (an agent that gives up waiting must not leave them undecided; sent
    // again, they would be duplicates and never reach it).
    if let Some(tx) = inbox.tx.upgrade() {
        tokio::spawn(async move {
            for result in fresh {
                if tx.send(result).await.is_err() {
                    tracing::warn!("the monitor stopped while an agent's results were on their way; they are stored, and the next results decide");
                    break;
                }
            }
        });
    }
    let duplicates = batch.results.len() - stored;
    app.metrics
        .location_results
        .with_label_values(&[&location])
        .inc_by(stored as u64);
    app.metrics
        .location_last_report
        .with_label_values(&[&location])
        .set(now / 1000);
    {
        let mut seen = app.agents.seen.lock();
        let s = seen.entry(location.clone()).or_default();
        s.arrived_at = Some(now);
        let newest = batch.results.iter().map(|r| r.checked_at).max();
        s.last_result_at = s.last_result_at.max(newest);
    }
    (
        StatusCode::OK,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(Taken { stored, duplicates }),
    )
        .into_response()
}

fn unavailable(app: &AppState, why: &str) -> Response {
    let mut response = refuse(
        app,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        format!("{why}; send the batch again shortly"),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("2"));
    response
}

/// Every second, until `stop`: a location whose agent sent nothing for two
/// of its services' shortest interval turns silent (`/health` warns, the
/// gauge is 1, a `location_silent` event goes to the channels), and back
/// when a batch arrives (`location_back`). Each event is raised once per
/// silence, whoever raises it (its dedupe key names the silence).
pub async fn watch_silence(app: AppState, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = &mut stop => return,
        }
        let now = app.clock.now_ms();
        let config = app.agents.config();
        let mut events = Vec::new();
        {
            let mut seen = app.agents.seen.lock();
            // Locations a reload removed: their series go with them.
            seen.retain(|name, _| {
                let kept = config.silent_after.contains_key(name);
                if !kept {
                    let _ = app.metrics.location_silent.remove_label_values(&[name]);
                    let _ = app
                        .metrics
                        .location_last_report
                        .remove_label_values(&[name]);
                }
                kept
            });
            for (name, (services, after)) in &config.silent_after {
                let s = seen.entry(name.clone()).or_insert_with(|| {
                    app.metrics
                        .location_last_report
                        .with_label_values(&[name])
                        .set(0);
                    Seen::default()
                });
                let known = *s.known_since.get_or_insert(now.max(app.agents.started_ms));
                let last = s.arrived_at.unwrap_or(known);
                let quiet = now - last > after.as_millis() as i64;
                let facts = LocationFacts {
                    name: name.clone(),
                    last_result_at: s.last_result_at,
                    services: *services,
                };
                match (quiet, s.silent_since) {
                    (true, None) => events.push((EventKind::LocationSilent, facts, last)),
                    (false, Some(_)) => events.push((EventKind::LocationBack, facts, last)),
                    _ => {}
                }
                app.metrics
                    .location_silent
                    .with_label_values(&[name])
                    .set(i64::from(s.silent_since.is_some()));
            }
        }
        for (kind, facts, last) in events {
            let name = facts.name.clone();
            if kind == EventKind::LocationSilent {
                tracing::warn!(location = %name, "location is silent: its agent has sent nothing for two intervals; its services are decided by their other locations");
            } else {
                tracing::info!(location = %name, "location reports again");
            }
            let dedupe = format!("{}:{name}:{last}", kind.as_str());
            let event = Event {
                kind,
                at: now,
                service: None,
                incident: None,
                backup: None,
                certificate: None,
                location: Some(facts),
                maintenance: None,
            };
            match app.store.raise_alert_event(&event, Some(dedupe)).await {
                Ok(()) => {
                    // Only once its event is stored does the location turn
                    // (a failed write is tried again next second).
                    let silent = kind == EventKind::LocationSilent;
                    if let Some(s) = app.agents.seen.lock().get_mut(&name) {
                        s.silent_since = silent.then_some(now);
                    }
                    app.metrics
                        .location_silent
                        .with_label_values(&[&name])
                        .set(i64::from(silent));
                }
                Err(e) => {
                    tracing::error!(location = %name, error = %e, "raising a location's alert event failed; trying again")
                }
            }
        }
    }
}
