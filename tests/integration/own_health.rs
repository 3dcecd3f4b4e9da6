//! /livez, /readyz and /health, including a store that goes away.

use std::time::Duration;

use sqlx::Connection;

use std::sync::Arc;

use beacon::clock::ManualClock;

use crate::helpers::{eventually, postgres_admin_url, test_config, Kind, Target, TestApp, TestDb};
use crate::store_test;

store_test!(
    readyz_turns_503_when_the_store_is_gone_and_livez_stays_200,
    store_gone
);
async fn store_gone(db: TestDb) {
    let app = TestApp::spawn(test_config(&db, "")).await;
    assert_eq!(
        app.get("/readyz").await.expect("readyz"),
        (200, "ready\n".to_string())
    );

    let expected = match db.kind {
        // An open SQLite file cannot vanish under its connections; what can
        // go wrong is a schema that is not this binary's.
        Kind::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url)
                .await
                .expect("connect");
            sqlx::query("DROP TABLE _sqlx_migrations")
                .execute(&mut conn)
                .await
                .expect("drop");
            "not ready: migrations not applied\n"
        }
        Kind::Postgres => {
            let name = url::Url::parse(&db.url)
                .expect("url")
                .path()
                .trim_start_matches('/')
                .to_string();
            let mut admin = sqlx::PgConnection::connect(&postgres_admin_url())
                .await
                .expect("admin");
            sqlx::query(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
                .execute(&mut admin)
                .await
                .expect("drop database");
            "not ready: store unavailable\n"
        }
    };
    // Within the 250 ms a store check's outcome is reused (PostgreSQL: and
    // the pool's connections noticing they are gone).
    eventually("readyz is 503", Duration::from_secs(10), || async {
        app.get("/readyz")
            .await
            .map(|(s, _)| s == 503)
            .unwrap_or(false)
    })
    .await;
    let (_, body) = app.get("/readyz").await.expect("readyz");
    assert_eq!(body, expected);
    assert_eq!(app.get("/livez").await.expect("livez").0, 200);
    let (status, body) = app.get("/health").await.expect("health");
    assert_eq!(status, 503);
    let health: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(health["status"], "fail");
    assert_eq!(health["checks"]["store:responseTime"][0]["status"], "fail");
    assert!(
        !body.contains("beacon_test_"),
        "no database names in public output: {body}"
    );
}

store_test!(health_reports_store_and_monitor_as_health_json, health_json);
async fn health_json(db: TestDb) {
    let app = TestApp::spawn(test_config(&db, "")).await;
    let response = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().expect("ascii"),
        "application/health+json"
    );
    let health: serde_json::Value =
        serde_json::from_str(&response.text().await.expect("body")).expect("json");
    assert_eq!(health["status"], "pass");
    let store = &health["checks"]["store:responseTime"][0];
    assert_eq!(store["status"], "pass");
    assert_eq!(store["observedUnit"], "ms");
    assert_eq!(
        store["componentId"],
        match db.kind {
            Kind::Sqlite => "sqlite",
            Kind::Postgres => "postgres",
        }
    );
    let lag = &health["checks"]["monitor:lag"][0];
    assert_eq!(lag["status"], "pass");
    assert!(lag["observedValue"].as_u64().is_some());
    app.stop().await.expect("clean stop");
}

/// The real app on an injected clock, so a test can move time on without
/// waiting for it.
struct ClockedApp {
    addr: std::net::SocketAddr,
    client: reqwest::Client,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl ClockedApp {
    async fn spawn(config: beacon::config::Config, clock: &ManualClock) -> ClockedApp {
        let app = beacon::startup::Application::build_with_clock(config, Arc::new(clock.clone()))
            .await
            .expect("app builds");
        let addr = app.local_addr();
        let snapshot = app.snapshot();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        crate::helpers::first_snapshot_built(snapshot).await;
        ClockedApp {
            addr,
            client: reqwest::Client::new(),
            stop,
            task,
        }
    }

    /// `/health`'s body, or `None` while it does not answer.
    async fn health(&self) -> Option<serde_json::Value> {
        let response = self
            .client
            .get(format!("http://{}/health", self.addr))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        serde_json::from_str(&response.text().await.ok()?).ok()
    }

    /// Polls `/health` until `done` holds of it; fails the test after
    /// `deadline`.
    async fn health_until(
        &self,
        what: &str,
        deadline: Duration,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let end = tokio::time::Instant::now() + deadline;
        let mut last = None;
        loop {
            if let Some(health) = self.health().await {
                if done(&health) {
                    return health;
                }
                last = Some(health);
            }
            if tokio::time::Instant::now() > end {
                panic!("timed out after {deadline:?} waiting for {what}; last /health: {last:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("stops within 30 s")
            .expect("app task")
    }
}

fn check<'a>(health: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    &health["checks"][name][0]
}

// Issue 22, item 5: the age of the last write and of the page, each
// against a few intervals. A store that refuses writes makes both warn;
// once it takes them again, both pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_and_snapshot_ages_warn_while_the_store_refuses_writes() {
    let target = Target::start().await;
    let db = TestDb::sqlite().await;
    let config = test_config(
        &db,
        &format!(
            "[[service]]\nname = \"Web\"\nurl = \"{}\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n",
            target.url("ok")
        ),
    );
    let clock = ManualClock::at(chrono::Utc::now());
    let app = ClockedApp::spawn(config, &clock).await;
    let seen = app
        .health_until(
            "a write, and every check passing",
            Duration::from_secs(15),
            |h| {
                h["status"] == "pass"
                    && check(h, "monitor:writeAge")["observedValue"].is_u64()
                    && check(h, "snapshot:age")["status"] == "pass"
            },
        )
        .await;
    // Every supervised task is listed, alive.
    let tasks: Vec<(String, String)> = seen["checks"]["tasks:failures"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| {
            (
                t["componentId"].as_str().unwrap_or_default().to_string(),
                t["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    for task in ["monitor", "recorder", "refresher", "notifier", "retention"] {
        assert!(
            tasks.contains(&(task.to_string(), "pass".to_string())),
            "{task} in {tasks:?}"
        );
    }

    // Another connection holds the file's write lock: nothing is written.
    let mut locker = sqlx::SqliteConnection::connect(&db.url)
        .await
        .expect("second connection");
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut locker)
        .await
        .expect("lock");
    // Five minutes pass: far past 3 × 1 s + flush (the 30 s floor applies).
    clock.advance(Duration::from_secs(300));
    let health = app.health().await.expect("health answers");
    let write = check(&health, "monitor:writeAge");
    assert_eq!(write["status"], "warn", "{health}");
    assert!(write["observedValue"].as_u64() >= Some(300), "{health}");
    assert!(
        write["output"]
            .as_str()
            .unwrap_or_default()
            .contains("nothing written"),
        "{health}"
    );
    let snapshot = check(&health, "snapshot:age");
    assert_eq!(snapshot["status"], "warn", "{health}");
    assert!(snapshot["observedValue"].as_u64() >= Some(300), "{health}");
    assert_ne!(health["status"], "pass", "{health}");

    // The store takes writes again: the held results go in, the page is
    // rebuilt, both ages are fresh.
    sqlx::query("COMMIT")
        .execute(&mut locker)
        .await
        .expect("unlock");
    drop(locker);
    app.health_until("both ages pass again", Duration::from_secs(30), |h| {
        check(h, "monitor:writeAge")["status"] == "pass"
            && check(h, "snapshot:age")["status"] == "pass"
    })
    .await;
    app.stop().await.expect("clean stop");
}

// Before the first write there is no write age, and no warning: the first
// probe here takes its whole timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_start_without_a_write_yet_does_not_warn() {
    let target = Target::start().await;
    let db = TestDb::sqlite().await;
    let config = test_config(
        &db,
        &format!(
            "[[service]]\nname = \"Hangs\"\nurl = \"{}\"\ninterval = \"20s\"\ntimeout = \"10s\"\n",
            target.url("hang")
        ),
    );
    let clock = ManualClock::at(chrono::Utc::now());
    let app = ClockedApp::spawn(config, &clock).await;
    let health = app
        .health_until("/health answers", Duration::from_secs(5), |_| true)
        .await;
    let write = check(&health, "monitor:writeAge");
    assert!(write["observedValue"].is_null(), "{health}");
    assert_eq!(write["status"], "pass", "{health}");
    assert_eq!(check(&health, "snapshot:age")["status"], "pass", "{health}");
    assert_eq!(health["status"], "pass", "{health}");
    // Still nothing written long after the start: that warns.
    clock.advance(Duration::from_secs(120));
    let health = app.health().await.expect("health");
    let write = check(&health, "monitor:writeAge");
    assert_eq!(write["status"], "warn", "{health}");
    assert!(
        write["output"]
            .as_str()
            .unwrap_or_default()
            .contains("since the start"),
        "{health}"
    );
    app.stop().await.expect("clean stop");
}
