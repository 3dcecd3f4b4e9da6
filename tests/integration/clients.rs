//! One client cannot take the page from everyone else: past its burst and
//! rate it is answered 429 with `Retry-After`, other clients and beacon's
//! own routes are not, and `/metrics` counts it. Behind a trusted proxy the
//! client is the one `X-Forwarded-For` names.

use std::time::Duration;

use crate::helpers::{eventually, test_config, Target, TestApp, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_past_its_rate_gets_429_and_nobody_else_does() {
    let db = TestDb::sqlite().await;
    let target = Target::start().await;
    let mut config = test_config(
        &db,
        &format!(
            "[[service]]\nname = \"Search\"\nurl = \"{}\"\ninterval = \"60s\"\n",
            target.url("ok")
        ),
    );
    // The test's requests come from 127.0.0.1: a trusted proxy here.
    config.server.limits.clients = beacon::config::ClientLimits {
        rate: 0.5,
        burst: 5,
        trusted_proxies: vec!["127.0.0.1/32".parse().expect("net")],
    };
    let app = TestApp::spawn(config).await;
    eventually("the page is served", Duration::from_secs(15), || async {
        app.get("/").await.is_ok_and(|(status, _)| status == 200)
    })
    .await;
    let from = |client: &'static str, path: &'static str| {
        let request = app
            .client
            .get(app.url(path))
            .header("x-forwarded-for", client);
        async move { request.send().await.expect("request") }
    };

    // A crawler: its burst, then 429 with when to come back.
    for i in 0..5 {
        let r = from("203.0.113.9", "/api/v2/summary.json").await;
        assert_eq!(r.status(), 200, "request {i} within the burst");
    }
    let refused = from("203.0.113.9", "/incidents?page=3").await;
    assert_eq!(refused.status(), 429);
    let wait: u64 = refused
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    assert_eq!(
        refused
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );

    // Everyone else is served; beacon's own routes are never limited.
    assert_eq!(from("198.51.100.4", "/").await.status(), 200);
    for path in ["/livez", "/readyz", "/health"] {
        assert_ne!(from("203.0.113.9", path).await.status(), 429, "{path}");
    }
    // Without a forwarded address the proxy names nobody: not limited.
    assert_eq!(app.get("/").await.expect("get").0, 200);

    let (_, metrics) = app.get("/metrics").await.expect("metrics");
    let limited = metrics
        .lines()
        .find(|l| l.starts_with("beacon_http_rate_limited_total "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok());
    assert_eq!(limited, Some(1.0), "{metrics}");
    app.stop().await.expect("stops");
}
