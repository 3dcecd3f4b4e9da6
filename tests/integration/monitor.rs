//! The monitor against real targets, one step at a time and in its loop.

use std::time::Duration;

use beacon::clock::ManualClock;
use beacon::domain::{Outcome, State};
use chrono::TimeZone;

use crate::helpers::{
    closed_port, eventually, simulated_monitor, test_config, Target, TestApp, TestDb,
};
use crate::store_test;

store_test!(
    service_goes_down_after_three_failures_and_recovers,
    thresholds
);
async fn thresholds(db: TestDb) {
    let target = Target::start().await;
    let config = test_config(
        &db,
        &format!(
            "[[service]]\nname = \"Checkout API\"\nurl = \"{}\"\ninterval = \"30s\"\ntimeout = \"2s\"\n",
            target.url("switch")
        ),
    );
    let store = db.store().await;
    let start = chrono::Utc
        .with_ymd_and_hms(2026, 3, 12, 9, 0, 0)
        .single()
        .expect("time");
    let clock = ManualClock::at(start);
    let monitor = simulated_monitor(&config, &store, &clock).await;
    let mut recorder = monitor.recorder();

    let step = |status: u16| {
        target
            .switch
            .store(status, std::sync::atomic::Ordering::SeqCst);
        clock.advance(Duration::from_secs(30));
        let monitor = &monitor;
        async move { monitor.probe("checkout-api").await.expect("service exists") }
    };
    let mut states = Vec::new();
    for status in [200, 500, 500, 500, 500, 200] {
        let result = step(status).await;
        let changes = recorder.record(vec![result]).await.expect("recorded");
        states.push(changes.last().map(|c| c.to));
    }
    assert_eq!(
        states,
        [
            Some(State::Up),
            None,
            None,
            Some(State::Down),
            None,
            Some(State::Up)
        ],
        "down only on the third failure in a row, up at the first success"
    );

    let changes = store.status_changes("checkout-api").await.expect("changes");
    let pairs: Vec<(State, State)> = changes.iter().map(|c| (c.from, c.to)).collect();
    assert_eq!(
        pairs,
        [
            (State::Unknown, State::Up),
            (State::Up, State::Down),
            (State::Down, State::Up)
        ]
    );
    assert_eq!(changes[1].reason.as_deref(), Some("HTTP 500, expected 2xx"));
    assert_eq!(
        changes[1].changed_at,
        (start + chrono::Duration::seconds(120)).timestamp_millis()
    );

    let results = store.check_results("checkout-api").await.expect("results");
    let outcomes: Vec<(Outcome, Option<i16>)> =
        results.iter().map(|r| (r.outcome, r.status_code)).collect();
    assert_eq!(
        outcomes,
        [
            (Outcome::Up, Some(200)),
            (Outcome::Down, Some(500)),
            (Outcome::Down, Some(500)),
            (Outcome::Down, Some(500)),
            (Outcome::Down, Some(500)),
            (Outcome::Up, Some(200)),
        ]
    );
    assert_eq!(target.hits("switch"), 6);

    // A restart starts from the stored state: no second "down" or "up".
    let monitor = simulated_monitor(&config, &store, &clock).await;
    let mut recorder = monitor.recorder();
    clock.advance(Duration::from_secs(30));
    let result = monitor.probe("checkout-api").await.expect("service");
    assert!(recorder
        .record(vec![result])
        .await
        .expect("recorded")
        .is_empty());
}

store_test!(
    monitor_judges_real_targets_within_their_timeouts,
    real_targets
);
async fn real_targets(db: TestDb) {
    let target = Target::start().await;
    let closed = closed_port().await;
    let config = test_config(
        &db,
        &format!(
            r#"
[[service]]
name = "Web"
url = "{ok}"
interval = "1s"
timeout = "500ms"
failure_threshold = 1

[[service]]
name = "Payments"
url = "{fail}"
interval = "1s"
timeout = "500ms"
failure_threshold = 1

[[service]]
name = "Search"
url = "{hang}"
interval = "1s"
timeout = "300ms"
failure_threshold = 1

[[service]]
name = "Legacy"
url = "http://127.0.0.1:{closed}/health"
interval = "1s"
timeout = "500ms"
failure_threshold = 1

[[service]]
name = "Slowpoke"
url = "{slow}"
interval = "2s"
timeout = "1s"
degraded_latency = "100ms"
"#,
            ok = target.url("ok"),
            fail = target.url("fail"),
            hang = target.url("hang"),
            slow = target.url("slow"),
        ),
    );
    let app = TestApp::spawn(config).await;
    let store = app.store.clone();
    app.wait_for_every_state().await;
    let states: Vec<(String, State)> = app
        .summaries()
        .await
        .into_iter()
        .map(|s| (s.slug, s.state))
        .collect();
    assert_eq!(
        states,
        [
            ("web".to_string(), State::Up),
            ("payments".to_string(), State::Down),
            ("search".to_string(), State::Down),
            ("legacy".to_string(), State::Down),
            ("slowpoke".to_string(), State::Degraded),
        ]
    );
    let first =
        |results: Vec<beacon::store::CheckResult>| results.into_iter().next().expect("a result");
    let search = first(store.check_results("search").await.expect("results"));
    assert_eq!(search.reason.as_deref(), Some("timed out after 300ms"));
    assert!(
        search.latency_ms.expect("latency") < 1000,
        "the hang is cut at its timeout"
    );
    let legacy = first(store.check_results("legacy").await.expect("results"));
    assert!(
        legacy
            .reason
            .as_deref()
            .unwrap_or("")
            .starts_with("connection failed:"),
        "{:?}",
        legacy.reason
    );
    let payments = first(store.check_results("payments").await.expect("results"));
    assert_eq!(payments.status_code, Some(500));
    let slow = first(store.check_results("slowpoke").await.expect("results"));
    assert_eq!(slow.outcome, Outcome::Degraded);
    assert!(slow.latency_ms.expect("latency") >= 300);

    // The hanging target did not hold the others back: "web" kept its 1 s
    // cadence meanwhile.
    eventually(
        "web is probed on schedule",
        Duration::from_secs(5),
        || async { store.check_results("web").await.expect("results").len() >= 3 },
    )
    .await;
    app.stop().await.expect("clean stop");
}

store_test!(
    a_state_change_is_written_without_waiting_for_the_flush,
    change_flush
);
/// Results alone wait up to `monitor.flush_interval`; a state change is
/// written within 250 ms of being seen, with the results held beside it.
/// With a flush of a minute, both changes below reach the store within
/// seconds.
async fn change_flush(db: TestDb) {
    let target = Target::start().await;
    let mut config = test_config(
        &db,
        &format!(
            "[[service]]\nname = \"Checkout\"\nurl = \"{}\"\ninterval = \"1s\"\ntimeout = \"500ms\"\nfailure_threshold = 1\n",
            target.url("switch")
        ),
    );
    config.monitor.flush_interval = Duration::from_secs(60);
    let app = TestApp::spawn(config).await;
    // Unknown → up is a change too.
    app.wait_for_every_state().await;
    target
        .switch
        .store(500, std::sync::atomic::Ordering::SeqCst);
    eventually(
        "the move to down is written",
        Duration::from_secs(10),
        || async { app.summaries().await.iter().all(|s| s.state == State::Down) },
    )
    .await;
    app.stop().await.expect("stops cleanly");
}
