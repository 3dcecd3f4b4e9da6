//! The admin API: every incident endpoint, auth, validation, atomicity.

use serde_json::{json, Value};

use crate::helpers::{eventually, test_config, Target, TestApp, TestDb};
use crate::store_test;

const TOKEN: &str = "test-admin-token-0123456789";

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let mut request = app.client.request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

store_test!(admin_api_manages_incidents_behind_a_token, admin_incidents);
async fn admin_incidents(db: TestDb) {
    let target = Target::start().await;
    let config = test_config(
        &db,
        &format!(
            "[admin]\ntokens = [\"{TOKEN}\"]\n[[service]]\nname = \"Checkout API\"\nurl = \"{}\"\ninterval = \"30s\"\n",
            target.url("ok")
        ),
    );
    let app = TestApp::spawn(config).await;
    use reqwest::Method as M;

    // Auth: missing and wrong tokens are refused, and write nothing.
    let new = r#"{"title":"Payments delayed","impact":"minor","message":"We are looking into it.","services":["checkout-api"]}"#;
    assert_eq!(
        call(&app, M::POST, "/admin/api/incidents", None, Some(new))
            .await
            .0,
        401
    );
    assert_eq!(
        call(
            &app,
            M::POST,
            "/admin/api/incidents",
            Some("wrong-token-wrong-token"),
            Some(new)
        )
        .await
        .0,
        401
    );
    assert_eq!(
        call(
            &app,
            M::GET,
            "/admin/api/incidents",
            Some(&TOKEN[1..]),
            None
        )
        .await
        .0,
        401
    );
    assert_eq!(
        call(&app, M::GET, "/admin/api/incidents", Some(TOKEN), None).await,
        (200, json!([]))
    );

    // Bad input: 4xx naming the field, nothing written.
    let (status, body) = call(
        &app,
        M::POST,
        "/admin/api/incidents",
        Some(TOKEN),
        Some("{not json"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = call(
        &app,
        M::POST,
        "/admin/api/incidents",
        Some(TOKEN),
        Some(r#"{"impact":"minor","message":"x"}"#),
    )
    .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("title")),
        "{body}"
    );
    let (status, body) = call(
        &app,
        M::POST,
        "/admin/api/incidents",
        Some(TOKEN),
        Some(&new.replace("minor", "huge")),
    )
    .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (422, Some("impact")),
        "{body}"
    );
    let (status, body) = call(
        &app,
        M::POST,
        "/admin/api/incidents",
        Some(TOKEN),
        Some(&new.replace("checkout-api", "no-such")),
    )
    .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (422, Some("services")),
        "{body}"
    );
    assert_eq!(
        body["error"],
        "services: no service with the slug \"no-such\""
    );
    assert_eq!(app.store.count_rows("services").await.expect("count"), 1);
    assert_eq!(
        call(&app, M::GET, "/admin/api/incidents", Some(TOKEN), None)
            .await
            .1,
        json!([]),
        "nothing partial"
    );

    // Create, update, resolve, postmortem, edit, delete.
    let (status, created) = call(
        &app,
        M::POST,
        "/admin/api/incidents",
        Some(TOKEN),
        Some(new),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().expect("id");
    assert_eq!(created["status"], "investigating");
    assert_eq!(created["services"], json!(["checkout-api"]));
    assert_eq!(created["updates"][0]["message"], "We are looking into it.");
    let path = format!("/admin/api/incidents/{id}");

    let (status, body) = call(
        &app,
        M::PATCH,
        &path,
        Some(TOKEN),
        Some(r#"{"postmortem":"Too early."}"#),
    )
    .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (422, Some("postmortem")),
        "only once resolved"
    );

    let updates = format!("{path}/updates");
    let (status, body) = call(
        &app,
        M::POST,
        &updates,
        Some(TOKEN),
        Some(r#"{"status":"identified","message":"A bad deploy."}"#),
    )
    .await;
    assert_eq!((status, body["status"].as_str()), (201, Some("identified")));
    let (status, body) = call(
        &app,
        M::POST,
        &updates,
        Some(TOKEN),
        Some(r#"{"status":"resolved","message":"Rolled back."}"#),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(body["status"], "resolved");
    assert!(body["resolved_at"].is_string());
    let (status, body) = call(
        &app,
        M::PATCH,
        &path,
        Some(TOKEN),
        Some(r#"{"postmortem":"A config change skipped review.","title":"Payments failed"}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["title"].as_str(), body["postmortem"].as_str()),
        (
            Some("Payments failed"),
            Some("A config change skipped review.")
        )
    );
    assert_eq!(body["updates"].as_array().map(Vec::len), Some(3));
    assert_eq!(call(&app, M::GET, &path, Some(TOKEN), None).await.1, body);

    assert_eq!(
        call(
            &app,
            M::POST,
            "/admin/api/incidents/999999/updates",
            Some(TOKEN),
            Some(r#"{"status":"resolved","message":"x"}"#)
        )
        .await
        .0,
        404
    );
    assert_eq!(call(&app, M::DELETE, &path, Some(TOKEN), None).await.0, 204);
    assert_eq!(call(&app, M::GET, &path, Some(TOKEN), None).await.0, 404);
    assert_eq!(call(&app, M::DELETE, &path, Some(TOKEN), None).await.0, 404);
    app.stop().await.expect("clean stop");
}

store_test!(
    concurrent_updates_to_one_incident_are_all_kept,
    concurrent_updates
);
async fn concurrent_updates(db: TestDb) {
    let config = test_config(&db, &format!("[admin]\ntokens = [\"{TOKEN}\"]\n"));
    let app = TestApp::spawn(config).await;
    let (_, created) = call(
        &app,
        reqwest::Method::POST,
        "/admin/api/incidents",
        Some(TOKEN),
        Some(r#"{"title":"Slow pages","impact":"minor","message":"Looking."}"#),
    )
    .await;
    let updates = format!("/admin/api/incidents/{}/updates", created["id"]);
    let calls = (0..10).map(|i| {
        let body = format!(r#"{{"status":"monitoring","message":"note {i}"}}"#);
        let (app, updates) = (&app, &updates);
        async move {
            call(
                app,
                reqwest::Method::POST,
                updates,
                Some(TOKEN),
                Some(&body),
            )
            .await
            .0
        }
    });
    let statuses = futures_util::future::join_all(calls).await;
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    let path = format!("/admin/api/incidents/{}", created["id"]);
    let (_, incident) = call(&app, reqwest::Method::GET, &path, Some(TOKEN), None).await;
    assert_eq!(incident["updates"].as_array().map(Vec::len), Some(11));
    app.stop().await.expect("clean stop");
}

store_test!(admin_api_manages_maintenance_windows, admin_maintenances);
async fn admin_maintenances(db: TestDb) {
    let target = Target::start().await;
    let config = test_config(
        &db,
        &format!(
            "[admin]\ntokens = [\"{TOKEN}\"]\n[[service]]\nname = \"Checkout API\"\nurl = \"{}\"\ninterval = \"30s\"\n",
            target.url("ok")
        ),
    );
    let app = TestApp::spawn(config).await;
    use reqwest::Method as M;
    let window = r#"{"title":"Database upgrade","message":"Checkout may be slow.","starts_at":"2026-03-12T22:00:00Z","ends_at":"2026-03-12T23:00:00Z","services":["checkout-api"]}"#;
    assert_eq!(
        call(&app, M::POST, "/admin/api/maintenances", None, Some(window))
            .await
            .0,
        401
    );
    let bad = [
        (window.replace("23:00:00Z", "21:00:00Z"), "ends_at"),
        (
            window.replace("2026-03-12T22:00:00Z", "tonight"),
            "starts_at",
        ),
        (window.replace("checkout-api", "nope"), "services"),
        (
            window.replace(r#""title":"Database upgrade","#, ""),
            "title",
        ),
    ];
    for (body, field) in bad {
        let (status, answer) = call(
            &app,
            M::POST,
            "/admin/api/maintenances",
            Some(TOKEN),
            Some(&body),
        )
        .await;
        assert_eq!(
            (status, answer["field"].as_str()),
            (422, Some(field)),
            "{answer}"
        );
    }
    assert_eq!(
        call(&app, M::GET, "/admin/api/maintenances", Some(TOKEN), None)
            .await
            .1,
        json!([]),
        "nothing written"
    );

    let (status, created) = call(
        &app,
        M::POST,
        "/admin/api/maintenances",
        Some(TOKEN),
        Some(window),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["starts_at"], "2026-03-12T22:00:00+00:00");
    let path = format!("/admin/api/maintenances/{}", created["id"]);
    let (status, edited) = call(
        &app,
        M::PATCH,
        &path,
        Some(TOKEN),
        Some(r#"{"ends_at":"2026-03-13T00:30:00Z"}"#),
    )
    .await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(
        (edited["ends_at"].as_str(), edited["title"].as_str()),
        (Some("2026-03-13T00:30:00+00:00"), Some("Database upgrade"))
    );
    let (status, _) = call(
        &app,
        M::PATCH,
        &path,
        Some(TOKEN),
        Some(r#"{"ends_at":"2026-03-12T21:00:00Z"}"#),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        call(&app, M::GET, &path, Some(TOKEN), None).await.1,
        edited,
        "a refused edit changes nothing"
    );
    assert_eq!(
        call(&app, M::GET, "/admin/api/maintenances", Some(TOKEN), None)
            .await
            .1,
        json!([edited])
    );
    assert_eq!(call(&app, M::DELETE, &path, Some(TOKEN), None).await.0, 204);
    assert_eq!(call(&app, M::GET, &path, Some(TOKEN), None).await.0, 404);
    app.stop().await.expect("clean stop");
}

store_test!(
    page_and_api_show_incidents_and_maintenance_soon_after_an_admin_write,
    announced
);
async fn announced(db: TestDb) {
    let target = Target::start().await;
    let config = test_config(
        &db,
        &format!(
            "[admin]\ntokens = [\"{TOKEN}\"]\n\
             [[service]]\nname = \"Checkout API\"\nurl = \"{ok}\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n\
             [[service]]\nname = \"Search\"\nurl = \"{ok}\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n\
             [[service]]\nname = \"Back office\"\nurl = \"{ok}\"\npublic = false\ninterval = \"1s\"\ntimeout = \"500ms\"\n",
            ok = target.url("ok")
        ),
    );
    let app = TestApp::spawn(config).await;
    app.wait_for_every_state().await;
    use reqwest::Method as M;
    let now = chrono::Utc::now();
    let rfc =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (status, _) = call(
        &app,
        M::POST,
        "/admin/api/incidents",
        Some(TOKEN),
        Some(r#"{"title":"Slow searches","impact":"minor","status":"identified","message":"An index is rebuilding.","services":["search"]}"#),
    )
    .await;
    assert_eq!(status, 201);
    let window = |title: &str, from: chrono::DateTime<chrono::Utc>, hours: i64| {
        json!({
            "title": title,
            "message": format!("{title}: expect short pauses."),
            "starts_at": rfc(from),
            "ends_at": rfc(from + chrono::Duration::hours(hours)),
            "services": ["checkout-api", "back-office"],
        })
        .to_string()
    };
    let active = window("Database upgrade", now - chrono::Duration::minutes(5), 1);
    let upcoming = window("Network work", now + chrono::Duration::days(2), 2);
    for body in [active, upcoming] {
        let (status, answer) = call(
            &app,
            M::POST,
            "/admin/api/maintenances",
            Some(TOKEN),
            Some(&body),
        )
        .await;
        assert_eq!(status, 201, "{answer}");
    }

    // The refresher is woken by the write; the state follows at the
    // recorder's next read of the windows.
    eventually(
        "the page shows the incident, both windows and the maintenance state",
        std::time::Duration::from_secs(15),
        || async {
            let (_, html) = app.get("/").await.expect("page");
            html.contains("Slow searches")
                && html.contains("Maintenance in progress")
                && html.contains("Scheduled maintenance")
                && crate::page::state_on_page(&html, "Checkout API") == Some("maintenance")
        },
    )
    .await;
    let (_, html) = app.get("/").await.expect("page");
    assert!(
        html.contains("An index is rebuilding."),
        "latest update shown"
    );
    assert!(html.contains("Database upgrade") && html.contains("Network work"));
    assert!(
        !html.contains("Back office"),
        "a private service is not named, even in a window: {html}"
    );
    assert_eq!(crate::page::state_on_page(&html, "Search"), Some("up"));

    let (status, body) = app.get("/api/v1/services").await.expect("api");
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(doc["incidents"][0]["title"], "Slow searches");
    assert_eq!(doc["incidents"][0]["latest_update"]["status"], "identified");
    assert_eq!(doc["incidents"][0]["services"], json!(["Search"]));
    assert_eq!(
        doc["maintenances"]["active"][0]["title"],
        "Database upgrade"
    );
    assert_eq!(
        doc["maintenances"]["active"][0]["services"],
        json!(["Checkout API"])
    );
    assert_eq!(doc["maintenances"]["upcoming"][0]["title"], "Network work");
    let checkout = doc["services"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["slug"] == "checkout-api"))
        .expect("checkout in the API");
    assert_eq!(checkout["state"], "maintenance");
    assert!(checkout["uptime"].get("90d").is_some(), "{checkout}");
    app.stop().await.expect("clean stop");
}
