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
