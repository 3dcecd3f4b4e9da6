//! /livez, /readyz and /health, including a store that goes away.

use std::time::Duration;

use sqlx::Connection;

use crate::helpers::{eventually, postgres_admin_url, test_config, Kind, TestApp, TestDb};
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

    match db.kind {
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
            let (status, body) = app.get("/readyz").await.expect("readyz");
            assert_eq!(
                (status, body.as_str()),
                (503, "not ready: migrations not applied\n")
            );
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
            eventually("readyz is 503", Duration::from_secs(10), || async {
                app.get("/readyz")
                    .await
                    .map(|(s, _)| s == 503)
                    .unwrap_or(false)
            })
            .await;
            let (_, body) = app.get("/readyz").await.expect("readyz");
            assert_eq!(body, "not ready: store unavailable\n");
        }
    }
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
