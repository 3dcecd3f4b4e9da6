//! `/metrics`: Prometheus text that `promtool check metrics` accepts, with
//! values that match what the store says.

use std::time::Duration;

use crate::helpers::{closed_port, eventually, test_config, Target, TestApp, TestDb};
use crate::store_test;

const TOKEN: &str = "metrics-token-0123456789";

/// The value of the sample `series` (name and labels, exactly as printed).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

async fn scrape(app: &TestApp) -> String {
    let response = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("scrape");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    response.text().await.expect("body")
}

/// Runs `promtool check metrics` (Debian package `prometheus`) on `text`.
fn promtool(text: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (apt-get install prometheus; scripts/test.sh does)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

store_test!(
    metrics_pass_promtool_and_match_the_store,
    metrics_match_the_store
);
async fn metrics_match_the_store(db: TestDb) {
    let target = Target::start().await;
    let closed = closed_port().await;
    let tls = crate::probes::tls_server(40).await;
    // A channel whose receiver is gone: its delivery series are served.
    let config = crate::alerts::alert_config(
        &db,
        &format!(
            "[metrics]\ntoken = \"{TOKEN}\"\n\
             [[notify]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{closed}/hook\"\n\
             [[service]]\nname = \"Checkout\"\nurl = \"{ok}\"\ninterval = \"1s\"\n\
             [[service]]\nname = \"Search\"\nurl = \"http://127.0.0.1:{closed}/health\"\ninterval = \"1s\"\ntimeout = \"500ms\"\nfailure_threshold = 1\n\
             [[service]]\nname = \"Back office\"\npublic = false\nurl = \"{ok}\"\ninterval = \"1s\"\n\
             [[service]]\nname = \"Cert\"\nurl = \"tls://localhost:{tls}\"\ntls_verify = false\ninterval = \"1s\"\n",
            ok = target.url("actuator-up")
        ),
    );
    let app = TestApp::spawn(config).await;
    eventually("every state is known", Duration::from_secs(10), || async {
        let s = app.summaries().await;
        s.iter().all(|s| s.last_checked_at.is_some())
            && s.iter()
                .any(|s| s.slug == "search" && s.state == beacon::domain::State::Down)
    })
    .await;

    // Without the token: refused, and nothing of the numbers shows.
    let refused = app.get("/metrics").await.expect("get");
    assert_eq!(refused.0, 401);
    assert!(!refused.1.contains("beacon_"));

    // The store's outcomes of backups, as the gauges must read them.
    let record = |id: &str, created_at: i64, status: &str, verified_at: Option<i64>| {
        beacon::store::BackupRecord {
            id: id.into(),
            created_at,
            target: "file:///backups".into(),
            archive_key: format!("2026/03/{id}.sqlite.gz"),
            size_bytes: Some(4096),
            sha256: None,
            status: status.into(),
            failed_step: (status == "failed").then(|| "upload".to_string()),
            error: None,
            verified_at,
            updated_at: created_at + 7_500,
        }
    };
    let store = &app.store;
    store
        .save_backup_record(&record(
            "20260312T000000.000Z",
            1_773_273_600_000,
            "verified",
            Some(1_773_273_605_000),
        ))
        .await
        .expect("record");
    store
        .save_backup_record(&record(
            "20260312T060000.000Z",
            1_773_295_200_000,
            "failed",
            None,
        ))
        .await
        .expect("record");

    for _ in 0..2 {
        assert_eq!(app.get("/services/checkout").await.expect("get").0, 200);
    }
    assert_eq!(app.get("/no/such/page").await.expect("get").0, 404);

    let written_before: Vec<usize> = futures_count(store).await;
    let text = scrape(&app).await;
    let written_after: Vec<usize> = futures_count(store).await;
    promtool(&text);

    // Probe counters: never ahead of the store, never behind what it had
    // before the scrape.
    for (i, (slug, outcome)) in [
        ("checkout", "up"),
        ("search", "down"),
        ("back-office", "up"),
    ]
    .iter()
    .enumerate()
    {
        let counted = sample(
            &text,
            &format!("beacon_probes_total{{outcome=\"{outcome}\",service=\"{slug}\"}}"),
        )
        .unwrap_or(0.0) as usize;
        assert!(
            written_before[i] <= counted && counted <= written_after[i],
            "{slug}: {} <= {counted} <= {}",
            written_before[i],
            written_after[i]
        );
        assert!(counted > 0, "{slug}");
    }
    // States: one series per state, 1 on the store's.
    for s in app.summaries().await {
        for state in ["unknown", "up", "degraded", "down", "maintenance"] {
            let value = sample(
                &text,
                &format!(
                    "beacon_service_state{{service=\"{}\",state=\"{state}\"}}",
                    s.slug
                ),
            );
            let expected = if s.state.as_str() == state { 1.0 } else { 0.0 };
            // The monitor may change a state between the two reads; these
            // three are steady.
            assert_eq!(value, Some(expected), "{} {state}", s.slug);
        }
        let age = sample(
            &text,
            &format!(
                "beacon_service_last_check_age_seconds{{service=\"{}\"}}",
                s.slug
            ),
        )
        .expect("age");
        assert!((0.0..10.0).contains(&age), "{}: {age}", s.slug);
    }
    assert_eq!(
        sample(
            &text,
            "beacon_dependency_state{dependency=\"db\",service=\"checkout\",state=\"pass\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        text.contains("beacon_probe_duration_seconds_bucket{service=\"checkout\",le=\"0.005\"}")
    );
    assert!(sample(&text, "beacon_store_write_batch_results_count").is_some_and(|n| n >= 1.0));
    assert!(sample(&text, "beacon_monitor_lag_seconds").is_some_and(|s| (0.0..5.0).contains(&s)));

    // Backups, from the backups table.
    assert_eq!(
        sample(&text, "beacon_backup_last_success_timestamp_seconds"),
        Some(1_773_273_600.0)
    );
    assert_eq!(
        sample(&text, "beacon_backup_last_verified_timestamp_seconds"),
        Some(1_773_273_605.0)
    );
    assert_eq!(sample(&text, "beacon_backup_last_size_bytes"), Some(4096.0));
    assert_eq!(
        sample(&text, "beacon_backup_last_duration_seconds"),
        Some(7.5)
    );
    assert_eq!(sample(&text, "beacon_backup_last_run_failed"), Some(1.0));

    // Requests by route pattern, never by raw path.
    assert_eq!(
        sample(
            &text,
            "beacon_http_requests_total{route=\"/services/{slug}\",status=\"200\"}"
        ),
        Some(2.0),
        "{text}"
    );
    assert!(sample(
        &text,
        "beacon_http_requests_total{route=\"unmatched\",status=\"404\"}"
    )
    .is_some_and(|n| n >= 1.0));
    assert!(!text.contains("/no/such/page"));
    assert!(
        !text.contains("127.0.0.1"),
        "no target address in the metrics"
    );
    let expiry = sample(
        &text,
        "beacon_certificate_expiry_timestamp_seconds{service=\"cert\"}",
    )
    .expect("the certificate's notAfter");
    let in_days = (expiry - chrono::Utc::now().timestamp() as f64) / 86_400.0;
    assert!((40.0..40.1).contains(&in_days), "{in_days}");
    dashboards_and_rules_use_only_these(&text);
    app.stop().await.expect("stop");
}

/// Every `beacon_` series the Grafana dashboard and the alert rules read is
/// one beacon serves (a renamed metric breaks this, not a dashboard in
/// production), and the rules pass `promtool check rules` and their own
/// unit tests.
fn dashboards_and_rules_use_only_these(text: &str) {
    let served: std::collections::BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        // Counted only once a scheduled backup has failed.
        .chain(["beacon_backup_failures_total"])
        .collect();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    for file in [
        "grafana/beacon-dashboard.json",
        "prometheus/beacon-rules.yml",
    ] {
        let body = std::fs::read_to_string(root.join(file)).expect("deploy file");
        let mut used = 0;
        for (at, _) in body.match_indices("beacon_") {
            let name: String = body[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(&name);
            if family.starts_with("beacon_rules") {
                continue; // the rules file's own name
            }
            assert!(
                served.contains(family),
                "{file} reads {name}, which beacon does not serve"
            );
            used += 1;
        }
        assert!(used > 5, "{file}");
    }
    let rules = root.join("prometheus");
    for args in [
        ["check", "rules", "beacon-rules.yml"],
        ["test", "rules", "beacon-rules.test.yml"],
    ] {
        let out = std::process::Command::new("promtool")
            .args(args)
            .current_dir(&rules)
            .output()
            .expect("promtool");
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Results in the store for checkout, search and back-office.
async fn futures_count(store: &beacon::store::Store) -> Vec<usize> {
    let mut out = Vec::new();
    for slug in ["checkout", "search", "back-office"] {
        out.push(store.check_results(slug).await.expect("results").len());
    }
    out
}

store_test!(metrics_can_be_turned_off, metrics_off);
async fn metrics_off(db: TestDb) {
    let target = Target::start().await;
    let config = test_config(
        &db,
        &format!(
            "[metrics]\nenabled = false\n[[service]]\nname = \"Checkout\"\nurl = \"{}\"\n",
            target.url("ok")
        ),
    );
    let app = TestApp::spawn(config).await;
    assert_eq!(app.get("/metrics").await.expect("get").0, 404);
    app.stop().await.expect("stop");
}

/// `metrics.per_service = false`: a fleet of 100,000 services keeps no
/// series per service (about 1.5 KB of memory each, 20 lines a scrape);
/// probes are summed under `service=""`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_service_series_can_be_left_out() {
    let db = TestDb::sqlite().await;
    let target = Target::start().await;
    let config = test_config(
        &db,
        &format!(
            "[metrics]\ntoken = \"{TOKEN}\"\nper_service = false\n\
             [[service]]\nname = \"Checkout\"\nurl = \"{ok}\"\ninterval = \"1s\"\n\
             [[service]]\nname = \"Search\"\nurl = \"{ok}\"\ninterval = \"1s\"\n",
            ok = target.url("ok")
        ),
    );
    let app = TestApp::spawn(config).await;
    eventually(
        "both services' probes are counted together",
        Duration::from_secs(15),
        || async {
            let text = scrape(&app).await;
            sample(&text, "beacon_probes_total{outcome=\"up\",service=\"\"}").unwrap_or(0.0) >= 2.0
        },
    )
    .await;
    let text = scrape(&app).await;
    promtool(&text);
    assert!(
        !text.contains("service=\"checkout\"") && !text.contains("service=\"search\""),
        "{text}"
    );
    assert!(!text.contains("beacon_service_state{"), "{text}");
    assert!(text.contains("beacon_probe_duration_seconds_count{service=\"\"}"));
    app.stop().await.expect("stop");
}

/// The names and labels of every sample, without the values.
fn series(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' ').map(|(series, _)| series.to_string()))
        .collect()
}

store_test!(concurrent_scrapes_see_the_same_series, concurrent_scrapes);
async fn concurrent_scrapes(db: TestDb) {
    const SERVICES: usize = 300;
    let target = Target::start().await;
    let mut body = format!("[metrics]\ntoken = \"{TOKEN}\"\n");
    for n in 0..SERVICES {
        body.push_str(&format!(
            "[[service]]\nname = \"Service {n}\"\nurl = \"{}\"\ninterval = \"5s\"\n",
            target.url("ok")
        ));
    }
    let app = TestApp::spawn(test_config(&db, &body)).await;
    eventually(
        "every service is checked",
        Duration::from_secs(20),
        || async {
            let s = app.summaries().await;
            s.len() == SERVICES && s.iter().all(|s| s.last_checked_at.is_some())
        },
    )
    .await;
    // Once alone, so that `/metrics` itself is counted in every scrape
    // below (a request is counted once answered).
    scrape(&app).await;
    let first = series(&scrape(&app).await);
    let (a, b, c, d) = tokio::join!(scrape(&app), scrape(&app), scrape(&app), scrape(&app));
    let state_series = |s: &std::collections::BTreeSet<String>| {
        s.iter()
            .filter(|l| l.starts_with("beacon_service_state{"))
            .count()
    };
    assert_eq!(state_series(&first), SERVICES * 5);
    for text in [a, b, c, d] {
        let got = series(&text);
        assert_eq!(
            got.symmetric_difference(&first).collect::<Vec<_>>(),
            Vec::<&String>::new()
        );
    }
}
