//! A maintenance window moves its services at its edges: into
//! `under_maintenance` when it begins and back when it ends, not at each
//! service's next probe; a window made over the present, or cancelled
//! while it runs, takes effect within a few seconds too. The page shows the
//! state with a sign every font has.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{eventually, test_config, Target, TestApp, TestDb};
use crate::store_test;

const TOKEN: &str = "maintenance-admin-token-0123";

async fn admin(app: &TestApp, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(TOKEN);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.expect("admin");
    let status = response.status();
    let text = response.text().await.expect("body");
    assert!(status.is_success(), "{path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

async fn component_status(app: &TestApp, id: &str) -> Option<String> {
    let (_, body) = app.get("/api/v2/components.json").await.ok()?;
    let doc: Value = serde_json::from_str(&body).ok()?;
    doc["components"]
        .as_array()?
        .iter()
        .find(|c| c["id"] == id)
        .and_then(|c| c["status"].as_str().map(str::to_string))
}

/// Waits until `search` shows `status`, and says how long after `edge`
/// (a wall-clock time) that was.
async fn shows(app: &TestApp, status: &str, edge: chrono::DateTime<chrono::Utc>) -> Duration {
    eventually(
        &format!("search shows {status}"),
        Duration::from_secs(30),
        || async { component_status(app, "search").await.as_deref() == Some(status) },
    )
    .await;
    (chrono::Utc::now() - edge).to_std().unwrap_or_default()
}

store_test!(
    a_window_moves_its_services_when_it_begins_and_ends_not_at_their_next_probe,
    edges
);
async fn edges(db: TestDb) {
    let target = Target::start().await;
    // Probed every 2 minutes: at most once during this test after the first.
    let config = test_config(
        &db,
        &format!(
            "[admin]\ntokens = [\"{TOKEN}\"]\n\
             [[service]]\nname = \"Search\"\nurl = \"{ok}\"\ninterval = \"120s\"\ntimeout = \"2s\"\n",
            ok = target.url("ok")
        ),
    );
    let started = Instant::now();
    let app = TestApp::spawn(config).await;
    app.wait_for_every_state().await;
    let probes_at_start = target.hits("ok");
    shows(&app, "operational", chrono::Utc::now()).await;

    // A window from 3 s from now, 4 s long (the API takes whole seconds).
    let now = chrono::Utc::now();
    let start = chrono::DateTime::from_timestamp(now.timestamp() + 3, 0).expect("time");
    let end = start + chrono::Duration::seconds(4);
    let rfc =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    admin(
        &app,
        reqwest::Method::POST,
        "/admin/api/maintenances",
        Some(serde_json::json!({
            "title": "Index rebuild", "message": "Search may be slow.",
            "starts_at": rfc(start), "ends_at": rfc(end), "services": ["search"],
        })),
    )
    .await;
    let entered = shows(&app, "under_maintenance", start).await;
    assert!(
        chrono::Utc::now() < end + chrono::Duration::seconds(2),
        "in maintenance during the window, not after it"
    );
    // The page says so with a sign every font has (the hammer-and-wrench
    // emoji was an empty box without an emoji font).
    let (_, page) = app.get("/").await.expect("page");
    assert!(page.contains("Under maintenance"), "{page}");
    assert!(page.contains('\u{2699}') && !page.contains('\u{1F6E0}'));
    let left = shows(&app, "operational", end).await;
    println!("window edges: in maintenance {entered:?} after its start, out {left:?} after its end (interval 120 s)");
    assert!(
        entered < Duration::from_secs(10) && left < Duration::from_secs(10),
        "each edge within seconds, not at the next probe: {entered:?}, {left:?}"
    );

    // A window made over the present (it began a minute ago) and then
    // cancelled while it runs: both seen within the watcher's read of the
    // windows (every 2 s), far before the next probe.
    let made = chrono::Utc::now();
    let window = admin(
        &app,
        reqwest::Method::POST,
        "/admin/api/maintenances",
        Some(serde_json::json!({
            "title": "Emergency fix", "message": "Search is being repaired.",
            "starts_at": rfc(made - chrono::Duration::minutes(1)),
            "ends_at": rfc(made + chrono::Duration::hours(1)), "services": ["search"],
        })),
    )
    .await;
    let entered = shows(&app, "under_maintenance", made).await;
    let cancelled = chrono::Utc::now();
    admin(
        &app,
        reqwest::Method::DELETE,
        &format!("/admin/api/maintenances/{}", window["id"]),
        None,
    )
    .await;
    let left = shows(&app, "operational", cancelled).await;
    println!("a window made over the present: in {entered:?}; cancelled: out {left:?}");
    assert!(
        entered < Duration::from_secs(15) && left < Duration::from_secs(15),
        "{entered:?}, {left:?}"
    );
    // Every edge was one probe out of turn; the cadence stayed (none due
    // within 2 minutes of the first).
    if started.elapsed() < Duration::from_secs(110) {
        assert_eq!(target.hits("ok") - probes_at_start, 4, "one probe per edge");
    }
    // The state changes are in the store, each once.
    let changes: Vec<_> = app
        .store
        .status_changes("search")
        .await
        .expect("changes")
        .iter()
        .map(|c| (c.from, c.to))
        .collect();
    use beacon::domain::State::*;
    assert_eq!(
        changes,
        [
            (Unknown, Up),
            (Up, Maintenance),
            (Maintenance, Up),
            (Up, Maintenance),
            (Maintenance, Up)
        ]
    );
    app.stop().await.expect("stops");
}

/// A result as a probe started at `at` would bring it.
fn result(
    id: i64,
    at: i64,
    outcome: beacon::domain::Outcome,
    edge: bool,
) -> beacon::monitor::ProbeResult {
    beacon::monitor::ProbeResult {
        service_id: id,
        checked_at: at,
        report: beacon::probe::ProbeReport::down(Duration::from_millis(20), "x")
            .with_outcome(outcome),
        own_fault: false,
        resume: false,
        window_edge: edge,
        location: None,
    }
}

store_test!(
    probes_overlapping_a_windows_edge_never_move_the_state_back,
    overlapping
);
async fn overlapping(db: TestDb) {
    use beacon::domain::Outcome::{Down, Up};
    use beacon::domain::State;
    let config = test_config(
        &db,
        "[[service]]\nname = \"Search\"\nurl = \"http://127.0.0.1:9/health\"\ninterval = \"60s\"\nfailure_threshold = 2\n",
    );
    let store = db.store().await;
    let start = chrono::Utc::now();
    let clock = beacon::clock::ManualClock::at(start);
    let monitor = crate::helpers::simulated_monitor(&config, &store, &clock).await;
    let id = monitor.services()[0].id;
    let mut recorder = monitor.recorder();
    let ms = |s: i64| start.timestamp_millis() + s * 1000;
    let state = || async {
        store
            .service_summaries(ms(0))
            .await
            .expect("summaries")
            .remove(0)
            .state
    };
    recorder
        .record(vec![result(id, ms(0), Up, false)])
        .await
        .expect("record");
    store
        .save_maintenance(
            None,
            &beacon::store::MaintenanceInput {
                title: "Upgrade".into(),
                message: "Search may be away.".into(),
                starts_at: ms(60),
                ends_at: ms(120),
                services: vec!["search".into()],
            },
            ms(1),
        )
        .await
        .expect("saved");

    // The window begins: its edge probe (started at 60 s) is in first; a
    // probe started at 58 s that timed out comes in after it. It is
    // history, not a reason to leave the window: no outage, no incident.
    recorder
        .record(vec![result(id, ms(60), Up, true)])
        .await
        .expect("record");
    assert_eq!(state().await, State::Maintenance);
    recorder
        .record(vec![result(id, ms(58), Down, false)])
        .await
        .expect("record");
    assert_eq!(state().await, State::Maintenance);

    // The window ends: the edge probe finds it up, then a probe started
    // inside the window finishes late. The service stays up.
    recorder
        .record(vec![result(id, ms(120), Up, true)])
        .await
        .expect("record");
    assert_eq!(state().await, State::Up);
    recorder
        .record(vec![result(id, ms(119), Up, false)])
        .await
        .expect("record");
    assert_eq!(state().await, State::Up);
    assert!(store
        .incidents_of("search")
        .await
        .expect("incidents")
        .is_empty());

    // Another window; after it the service is still down: one failure
    // shows maintenance still (it may be starting), the threshold's second
    // makes it down, with its incident.
    store
        .save_maintenance(
            None,
            &beacon::store::MaintenanceInput {
                title: "Another".into(),
                message: "Search may be away.".into(),
                starts_at: ms(180),
                ends_at: ms(240),
                services: vec!["search".into()],
            },
            ms(121),
        )
        .await
        .expect("saved");
    recorder
        .record(vec![result(id, ms(180), Down, true)])
        .await
        .expect("record");
    assert_eq!(state().await, State::Maintenance);
    recorder
        .record(vec![result(id, ms(240), Down, true)])
        .await
        .expect("record");
    assert_eq!(
        state().await,
        State::Maintenance,
        "one failure after the window"
    );
    recorder
        .record(vec![result(id, ms(300), Down, false)])
        .await
        .expect("record");
    assert_eq!(state().await, State::Down, "failure_threshold reached");
    assert_eq!(
        store.incidents_of("search").await.expect("incidents").len(),
        1
    );
    // Every result is in the history, the late ones too.
    let results = store.count_rows("check_results").await.expect("count");
    assert_eq!(results, 8);
}
