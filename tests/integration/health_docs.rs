//! What services say about themselves, read from real HTTP answers.

use beacon::domain::Health;
use beacon::domain::State;

use crate::helpers::{test_config, Target, TestApp, TestDb};
use crate::page::state_on_page;
use crate::store_test;

store_test!(
    a_passing_document_with_a_failing_dependency_is_degraded,
    degraded_dependency
);
async fn degraded_dependency(db: TestDb) {
    let target = Target::start().await;
    let service = |name: &str, path: &str| {
        format!(
            "[[service]]\nname = \"{name}\"\nurl = \"{}\"\ninterval = \"1s\"\ntimeout = \"900ms\"\n",
            target.url(path)
        )
    };
    let config = test_config(
        &db,
        &[
            service("Orders", "ietf-db-fail"),
            service("Billing", "actuator-up"),
            service("Garbage", "garbage"),
            service("Endless", "endless"),
            service("Web", "ok"),
        ]
        .concat(),
    );
    let app = TestApp::spawn(config).await;
    let store = app.store.clone();
    app.wait_for_every_state().await;
    let summaries = app.summaries().await;
    let get = |slug: &str| summaries.iter().find(|s| s.slug == slug).expect("service");

    let orders = get("orders");
    assert_eq!(orders.state, State::Degraded);
    assert_eq!(orders.dependencies.len(), 1);
    assert_eq!(
        (
            orders.dependencies[0].name.as_str(),
            orders.dependencies[0].health
        ),
        ("db", Health::Fail)
    );
    assert_eq!(
        orders.dependencies[0].output.as_deref(),
        Some("db.internal:5432 refused"),
        "kept for admins"
    );
    let result = store
        .check_results("orders")
        .await
        .expect("results")
        .remove(0);
    assert_eq!(
        result.reason.as_deref(),
        Some("health status pass; not passing: db")
    );

    let billing = get("billing");
    assert_eq!(billing.state, State::Up);
    let names: Vec<&str> = billing
        .dependencies
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(names, ["db", "diskSpace"]);

    // 10 MB of garbage that claims JSON: read up to 64 KiB, judged, not stuck.
    let garbage = store
        .check_results("garbage")
        .await
        .expect("results")
        .remove(0);
    assert_eq!(get("garbage").state, State::Degraded);
    assert_eq!(
        garbage.reason.as_deref(),
        Some("malformed health JSON: body over 64 KiB is cut short")
    );
    assert!(garbage.latency_ms.expect("latency") < 900);
    // A body that never ends is cut at 64 KiB; the status code decides.
    let endless = store
        .check_results("endless")
        .await
        .expect("results")
        .remove(0);
    assert_eq!(get("endless").state, State::Up);
    assert!(endless.latency_ms.expect("latency") < 900);
    assert_eq!(get("web").state, State::Up);

    let (_, html) = app.get("/").await.expect("page");
    assert_eq!(state_on_page(&html, "Orders"), Some("degraded"));
    assert!(
        html.contains("<span class=\"dep\">db</span> <span class=\"state down\"><span aria-hidden=\"true\">✖</span> Failing</span>"),
        "{html}"
    );
    assert!(
        !html.contains("db.internal") && !html.contains("refused"),
        "outputs stay internal"
    );

    let (status, json) = app.get("/api/v1/services").await.expect("json");
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&json).expect("json");
    let orders = doc["services"]
        .as_array()
        .expect("services")
        .iter()
        .find(|s| s["slug"] == "orders")
        .expect("orders");
    assert_eq!(orders["state"], "degraded");
    assert_eq!(
        orders["dependencies"],
        serde_json::json!([{"name": "db", "state": "fail"}])
    );
    assert!(
        !json.contains("db.internal") && !json.contains(&target.addr.to_string()),
        "{json}"
    );
    app.stop().await.expect("clean stop");
}

store_test!(gatus_conditions_decide_down_and_degraded, conditions);
async fn conditions(db: TestDb) {
    let target = Target::start().await;
    let config = test_config(
        &db,
        &format!(
            r#"
[[service]]
name = "Passing"
url = "{ok}"
interval = "1s"
timeout = "900ms"
conditions = ["[STATUS] == 200", "[BODY].status == pass", "[RESPONSE_TIME] < 800"]

[[service]]
name = "Wrong body"
url = "{ok}"
interval = "1s"
timeout = "900ms"
failure_threshold = 1
conditions = ["[STATUS] == any(200, 201)", "[BODY].status == UP"]

[[service]]
name = "Error accepted"
url = "{fail}"
interval = "1s"
timeout = "900ms"
conditions = ["[STATUS] == 500"]

[[service]]
name = "Slow"
url = "{slow}"
interval = "1s"
timeout = "900ms"
degraded_conditions = ["[RESPONSE_TIME] < 100"]
"#,
            ok = target.url("ok"),
            fail = target.url("fail"),
            slow = target.url("slow"),
        ),
    );
    let app = TestApp::spawn(config).await;
    app.wait_for_every_state().await;
    let summaries = app.summaries().await;
    let state = |slug: &str| {
        summaries
            .iter()
            .find(|s| s.slug == slug)
            .expect("service")
            .state
    };
    assert_eq!(state("passing"), State::Up);
    assert_eq!(state("wrong-body"), State::Down);
    assert_eq!(
        state("error-accepted"),
        State::Up,
        "conditions replace the 2xx check"
    );
    assert_eq!(state("slow"), State::Degraded);

    let reason =
        |results: Vec<beacon::store::CheckResult>| results[0].reason.clone().unwrap_or_default();
    assert_eq!(
        reason(
            app.store
                .check_results("wrong-body")
                .await
                .expect("results")
        ),
        "[BODY].status (pass) == UP"
    );
    let slow = reason(app.store.check_results("slow").await.expect("results"));
    assert!(
        slow.starts_with("[RESPONSE_TIME] (3") && slow.ends_with(") < 100"),
        "{slow}"
    );
    app.stop().await.expect("clean stop");
}
