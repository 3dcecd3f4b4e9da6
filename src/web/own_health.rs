//! beacon's own health, for Kubernetes and load balancers.
//!
//! - `/livez`: the process answers. No I/O, so a slow store never gets a
//!   healthy pod killed.
//! - `/readyz`: the store answers and its schema is this binary's; else 503,
//!   so traffic goes to another replica.
//! - `/health`: the detail, as `application/health+json` (IETF draft
//!   "Health Check Response Format for HTTP APIs").
//!
//! Error detail goes to the log, not to the response: these routes are
//! reachable by anyone who can reach the page.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State as AxumState;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::single_flight::SingleFlight;
use super::AppState;
use crate::store::StoreError;

/// How long `/readyz` and `/health` wait for the store.
const STORE_DEADLINE: Duration = Duration::from_secs(2);
/// Monitor lag above which `/health` says `warn`.
const LAG_WARN: Duration = Duration::from_secs(5);

/// The backup check of /health: warns when the newest verified backup is
/// older than twice the schedule's period (or none exists that long after
/// start), or when the newest backup failed.
async fn check_backups(
    app: &AppState,
    watch: &super::BackupWatch,
    now: chrono::DateTime<chrono::Utc>,
) -> serde_json::Value {
    let time = now.to_rfc3339();
    let records = tokio::time::timeout(STORE_DEADLINE, app.store.backup_records()).await;
    let Ok(Ok(records)) = records else {
        return json!({"componentType": "system", "status": "warn", "time": time,
                      "output": "the backup catalogue could not be read"});
    };
    let newest_verified = records
        .iter()
        .find(|r| r.status == "verified")
        .and_then(|r| crate::clock::ms_to_datetime(r.created_at));
    let newest_failed = records
        .iter()
        .find(|r| r.status != "deleted" && r.status != "running")
        .filter(|r| r.status == "failed");
    let age = newest_verified.map(|t| now - t);
    let output = match (age, newest_failed) {
        (_, Some(r)) => Some(format!(
            "the newest backup {} failed at {}",
            r.id,
            r.failed_step.as_deref().unwrap_or("an unknown step")
        )),
        (Some(age), None) if age > watch.max_age => Some(format!(
            "the newest verified backup is {} h old (schedule: every {} h)",
            age.num_hours(),
            watch.max_age.num_hours() / 2
        )),
        (None, None) if now - watch.since > watch.max_age => {
            Some("no verified backup yet".to_string())
        }
        _ => None,
    };
    let mut check = json!({
        "componentType": "system",
        "status": if output.is_some() { "warn" } else { "pass" },
        "time": time,
    });
    if let Some(age) = age {
        check["observedValue"] = json!(age.num_seconds());
        check["observedUnit"] = json!("s since the newest verified backup");
    }
    if let Some(output) = output {
        check["output"] = json!(output);
    }
    check
}

/// How old the last write is, against its limit. A fresh start counts from
/// the monitor's start; without services no write is expected.
fn check_write_age(app: &AppState, now_ms: i64, time: &str) -> serde_json::Value {
    let stats = &app.stats;
    let limit_ms = stats.write_warn_after_ms.load(Ordering::Relaxed) as i64;
    let last = stats.last_write_ms.load(Ordering::Relaxed);
    let started = stats.started_ms.load(Ordering::Relaxed);
    let age_ms = (last > 0).then(|| (now_ms - last).max(0));
    let since_ms = if last > 0 { last } else { started };
    let late = limit_ms > 0 && since_ms > 0 && now_ms - since_ms > limit_ms;
    let mut check = json!({
        "componentType": "system",
        "observedValue": age_ms.map(|ms| ms / 1000),
        "observedUnit": "s since the last write",
        "status": if late { "warn" } else { "pass" },
        "time": time,
    });
    if late {
        let secs = (now_ms - since_ms) / 1000;
        check["output"] = json!(if last > 0 {
            format!("nothing written for {secs} s (expected within {} s): the store refuses writes or the recorder is stuck", limit_ms / 1000)
        } else {
            format!("nothing written in the {secs} s since the start (expected within {} s): the store refuses writes or the recorder is stuck", limit_ms / 1000)
        });
    }
    check
}

/// How long the first snapshot may take before `/health` says `fail`.
const LOADING_FAIL_AFTER_MS: i64 = 5 * 60 * 1000;

/// How old the published snapshot (what visitors see) is, against its limit.
fn check_snapshot_age(app: &AppState, now_ms: i64, time: &str) -> serde_json::Value {
    let limit_ms = app.stats.snapshot_warn_after_ms.load(Ordering::Relaxed) as i64;
    let (generated, loading) = {
        let snapshot = app.snapshot.borrow();
        (snapshot.generated_at.timestamp_millis(), snapshot.loading)
    };
    let age_ms = (now_ms - generated).max(0);
    let late = limit_ms > 0 && age_ms > limit_ms;
    if loading {
        // Reading 90 days of history takes seconds, tens at 100,000
        // services; minutes mean it keeps failing (the log says why).
        let stuck = age_ms > LOADING_FAIL_AFTER_MS;
        return json!({
            "componentType": "system",
            "observedValue": age_ms / 1000,
            "observedUnit": "s since beacon started",
            "status": if stuck { "fail" } else { "warn" },
            "time": time,
            "output": if stuck {
                format!("starting: the history could not be read for the first snapshot in {} s (see the log: refreshing the status snapshot failed); public routes answer 503 until then", age_ms / 1000)
            } else {
                "starting: reading the history for the first snapshot; public routes answer 503 until then".to_string()
            },
        });
    }
    let mut check = json!({
        "componentType": "system",
        "observedValue": age_ms / 1000,
        "observedUnit": "s since the page was built",
        "status": if late { "warn" } else { "pass" },
        "time": time,
    });
    if late {
        check["output"] = json!(format!(
            "the page is {} s old (expected within {} s): rebuilding it fails",
            age_ms / 1000,
            limit_ms / 1000
        ));
    }
    check
}

/// The supervised tasks, one component each: `fail` while one is down and
/// for a while after it died. The second value: some task is down now.
fn check_tasks(app: &AppState, now_ms: i64, time: &str) -> (Vec<serde_json::Value>, bool) {
    let mut down = false;
    let checks = app
        .metrics
        .tasks
        .all()
        .into_iter()
        .map(|(task, status)| {
            let recent = status
                .last_failure
                .as_ref()
                .is_some_and(|(at, _)| now_ms - at < crate::metrics::TASK_FAILURE_SHOWN_MS);
            let dead = status.failures > 0 && !status.running;
            down |= dead;
            let mut check = json!({
                "componentId": task,
                "componentType": "system",
                "observedValue": status.failures,
                "observedUnit": "deaths",
                "status": if dead || recent { "fail" } else { "pass" },
                "time": time,
            });
            if let Some((at, why)) = status.last_failure.as_ref().filter(|_| dead || recent) {
                let when = crate::clock::ms_to_datetime(*at)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default();
                check["output"] = json!(format!(
                    "died at {when}: {why}; {}",
                    if dead { "not running" } else { "restarted" }
                ));
            }
            check
        })
        .collect();
    (checks, down)
}

pub async fn livez() -> &'static str {
    "ok\n"
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum StoreCheck {
    Ok(Duration),
    NotMigrated,
    Unavailable,
}

/// How long a store check's outcome answers `/readyz` and `/health`.
const CHECK_REUSE: Duration = Duration::from_millis(250);

/// The store check `/readyz` and `/health` share: one at a time, joined by
/// every request that arrives meanwhile, its outcome reused for
/// [`CHECK_REUSE`]. Neither route is limited per client (Kubernetes and
/// monitors must always reach them), so a client polling them in a loop,
/// or a thousand at once, costs the store a query every quarter second,
/// not one each: the pool stays the recorder's.
#[derive(Default)]
pub struct StoreChecks {
    flight: Arc<SingleFlight<StoreCheck>>,
    last: parking_lot::Mutex<Option<(Instant, StoreCheck)>>,
    /// Checks run, for the tests.
    runs: std::sync::atomic::AtomicU64,
}

impl StoreChecks {
    #[cfg(test)]
    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }
}

async fn check_store(app: &AppState) -> StoreCheck {
    let checks = app.store_checks.clone();
    if let Some((at, check)) = *checks.last.lock() {
        if at.elapsed() < CHECK_REUSE {
            return check;
        }
    }
    let app = app.clone();
    let flight = checks.flight.clone();
    flight
        .join_or_run("checking the store", async move {
            checks.runs.fetch_add(1, Ordering::Relaxed);
            let check = run_store_check(&app).await;
            // Before the flight ends: a request after it finds this.
            *checks.last.lock() = Some((Instant::now(), check));
            check
        })
        .await
        .unwrap_or(StoreCheck::Unavailable)
}

async fn run_store_check(app: &AppState) -> StoreCheck {
    let started = Instant::now();
    match tokio::time::timeout(STORE_DEADLINE, app.store.check_ready()).await {
        Ok(Ok(())) => StoreCheck::Ok(started.elapsed()),
        Ok(Err(e @ StoreError::NotMigrated { .. })) => {
            tracing::warn!(error = %e, "not ready");
            StoreCheck::NotMigrated
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: the store does not answer");
            StoreCheck::Unavailable
        }
        Err(_) => {
            tracing::warn!("not ready: the store did not answer within {STORE_DEADLINE:?}");
            StoreCheck::Unavailable
        }
    }
}

pub async fn readyz(AxumState(app): AxumState<AppState>, headers: HeaderMap) -> Response {
    // Just started: the public routes wait for the first snapshot. Not for
    // beacon's own probe (`watch_self`): its restart is not an outage of
    // the page's server, and would be recorded as one.
    if app.snapshot.borrow().loading && !own_probe(&app, &headers) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: reading the history for the first snapshot\n",
        )
            .into_response();
    }
    match check_store(&app).await {
        StoreCheck::Ok(_) => (StatusCode::OK, "ready\n").into_response(),
        StoreCheck::NotMigrated => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: migrations not applied\n",
        )
            .into_response(),
        StoreCheck::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: store unavailable\n",
        )
            .into_response(),
    }
}

/// True when the request is a probe this very process sent (its
/// `Beacon-Member` header names this replica).
fn own_probe(app: &AppState, headers: &HeaderMap) -> bool {
    let Some(sent_by) = headers.get("beacon-member").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    app.cluster
        .as_ref()
        .is_some_and(|view| &*view.borrow().member == sent_by)
}

pub async fn health(AxumState(app): AxumState<AppState>) -> Response {
    let now = app.clock.now();
    let time = now.to_rfc3339();
    let (store_status, store_value, store_output) = match check_store(&app).await {
        StoreCheck::Ok(took) => ("pass", Some(took.as_millis() as u64), None),
        StoreCheck::NotMigrated => ("fail", None, Some("migrations not applied")),
        StoreCheck::Unavailable => ("fail", None, Some("store unavailable")),
    };
    let lag = app.stats.current_lag(now.timestamp_millis());
    let lag_status = if lag > LAG_WARN { "warn" } else { "pass" };
    let dropped = app.stats.results_dropped.load(Ordering::Relaxed);
    let changes_dropped = app.stats.changes_dropped.load(Ordering::Relaxed);
    let resource_errors = app.stats.probe_resource_errors.load(Ordering::Relaxed);
    let open = app.server_stats.open_connections.load(Ordering::Relaxed);
    let cap = app.server_stats.max_connections.load(Ordering::Relaxed);
    // At nine tenths of the cap, new visitors start to wait.
    let connections_status = if cap > 0 && open * 10 >= cap * 9 {
        "warn"
    } else {
        "pass"
    };
    let skipped = app.stats.probes_skipped.load(Ordering::Relaxed);
    let backup_check = match &app.backup_watch {
        Some(watch) => Some(check_backups(&app, watch, now).await),
        None => None,
    };
    let backup_warns = backup_check.as_ref().is_some_and(|c| c["status"] == "warn");
    let now_ms = now.timestamp_millis();
    let write_check = check_write_age(&app, now_ms, &time);
    let snapshot_check = check_snapshot_age(&app, now_ms, &time);
    let (task_checks, task_down) = check_tasks(&app, now_ms, &time);
    // A task down now fails the whole; one that died and was restarted
    // warns (its own check stays `fail` for a while).
    let task_failed = task_checks.iter().any(|c| c["status"] == "fail");
    let status = if store_status == "fail" || task_down || snapshot_check["status"] == "fail" {
        "fail"
    } else if lag_status == "warn"
        || task_failed
        || write_check["status"] == "warn"
        || snapshot_check["status"] == "warn"
        || dropped > 0
        || changes_dropped > 0
        || resource_errors > 0
        || connections_status == "warn"
        || backup_warns
    {
        "warn"
    } else {
        "pass"
    };
    let mut store_check = json!({
        "componentId": app.store.kind(),
        "componentType": "datastore",
        "status": store_status,
        "time": time,
    });
    if let Some(ms) = store_value {
        store_check["observedValue"] = json!(ms);
        store_check["observedUnit"] = json!("ms");
    }
    if let Some(output) = store_output {
        store_check["output"] = json!(output);
    }
    let mut lag_check = json!({
        "componentType": "system",
        "observedValue": lag.as_millis() as u64,
        "observedUnit": "ms",
        "status": lag_status,
        "time": time,
    });
    if lag_status == "warn" {
        lag_check["output"] = json!(format!(
            "probes start {} s late: too many services for this machine, or a slow store",
            lag.as_secs()
        ));
    }
    let mut body = json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION").split('.').next(),
        "releaseId": env!("CARGO_PKG_VERSION"),
        "serviceId": "beacon",
        "description": "beacon status page server",
        "checks": {
            "store:responseTime": [store_check],
            "monitor:lag": [lag_check],
            "monitor:results": [{
                "componentType": "system",
                "observedValue": app.stats.results_written.load(Ordering::Relaxed),
                "observedUnit": "results written",
                "status": if dropped > 0 || changes_dropped > 0 { "warn" } else { "pass" },
                "output": (dropped > 0 || changes_dropped > 0).then(|| format!("{dropped} raw results and {changes_dropped} state changes given up (refused by the store, or shed while it was away)")),
                "time": time,
            }],
            "monitor:resourceErrors": [{
                "componentType": "system",
                "observedValue": resource_errors,
                "observedUnit": "probes failed for lack of beacon's own resources",
                "status": if resource_errors > 0 { "warn" } else { "pass" },
                "output": (resource_errors > 0).then_some("probes failed because beacon ran out of file descriptors or memory; no service's state was changed by them"),
                "time": time,
            }],
            "http:connections": [{
                "componentType": "system",
                "observedValue": open,
                "observedUnit": format!("open connections (cap {cap})"),
                "status": connections_status,
                "time": time,
            }],
            "monitor:writeAge": [write_check],
            "snapshot:age": [snapshot_check],
            "tasks:failures": task_checks,
            "monitor:skipped": [{
                "componentType": "system",
                "observedValue": skipped,
                "observedUnit": "probe slots skipped after stalls",
                "status": "pass",
                "time": time,
            }],
        },
    });
    if let Some(check) = backup_check {
        body["checks"]["backup:age"] = json!([check]);
    }
    if let Some(view) = &app.cluster {
        body["cluster"] = cluster(&view.borrow());
    }
    // A config change that was refused: the running config stays in force,
    // and the file on disk is not what runs.
    let refused = app.metrics.config.refused.lock().clone();
    body["checks"]["config:reload"] = json!([{
        "componentType": "system",
        "status": if refused.is_some() { "warn" } else { "pass" },
        "output": refused,
        "time": time,
    }]);
    if refused.is_some() && body["status"] == "pass" {
        body["status"] = json!("warn");
    }
    let locations = app.agents.health(now_ms, &time);
    if !locations.is_empty() {
        let silent = locations.iter().any(|c| c["status"] == "warn");
        body["checks"]["locations:silent"] = json!(locations);
        if silent && body["status"] == "pass" {
            body["status"] = json!("warn");
        }
    }
    let code = if status == "fail" {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (
        code,
        [
            (header::CONTENT_TYPE, "application/health+json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// This replica's role, the epoch and the members it sees.
fn cluster(view: &crate::cluster::View) -> serde_json::Value {
    json!({
        "member": &*view.member,
        "role": view.role().as_str(),
        "epoch": view.epoch,
        "leader": view.leader,
        "members": view.members.iter().map(|m| json!({
            "id": m.id,
            "host": m.host,
            "version": m.version,
            "started_at": m.started_at,
            "last_seen": m.last_seen,
        })).collect::<Vec<_>>(),
    })
}
