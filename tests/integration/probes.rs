//! Every probe kind against a real peer: a TLS server with a certificate
//! that expires in 5 days, the machine's PostgreSQL and Redis, open and
//! closed ports, the system resolver.

use std::sync::Arc;
use std::time::{Duration, Instant};

use beacon::config::ServiceConfig;
use beacon::domain::Health;
use beacon::domain::Outcome;
use beacon::probe::{self, Clients, ProbeReport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{closed_port, postgres_admin_url, test_config, Target, TestDb};

/// A TLS server on 127.0.0.1 whose self-signed certificate for "localhost"
/// expires `days` days (and an hour) from now. Answers any request with a
/// small health+json document, then closes.
pub async fn tls_server(days: i64) -> u16 {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    params.not_after =
        time::OffsetDateTime::now_utc() + time::Duration::days(days) + time::Duration::hours(1);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("cert");
    crate::helpers::tls_health_server(&cert, &key).await
}

/// The service(s) of a one-off config.
async fn services(body: &str) -> Vec<ServiceConfig> {
    let db = TestDb::sqlite().await;
    test_config(&db, body).services
}

async fn run(service: &ServiceConfig) -> ProbeReport {
    let clients = Clients::new().expect("clients");
    probe::run(&clients, service, chrono::Utc::now().timestamp_millis()).await
}

fn redis_required() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

#[tokio::test]
async fn tls_probe_reads_days_to_expiry_and_applies_thresholds() {
    let port = tls_server(5).await;
    let list = services(&format!(
        r#"
[[service]]
name = "Cert"
url = "tls://localhost:{port}"
tls_verify = false
interval = "10s"
timeout = "2s"

[[service]]
name = "Cert strict"
url = "tls://localhost:{port}"
tls_fail_days = 7
tls_warn_days = 30
tls_verify = false
interval = "10s"

[[service]]
name = "Cert verified"
url = "tls://localhost:{port}"
interval = "10s"
"#
    ))
    .await;
    let warn = run(&list[0]).await;
    assert_eq!(warn.outcome, Outcome::Degraded);
    assert_eq!(
        warn.reason.as_deref(),
        Some("certificate expires in 5 days (warn under 14)")
    );
    let expires = warn.certificate_expires_at.expect("expiry recorded");
    let days = (expires - chrono::Utc::now().timestamp_millis()) as f64 / 86_400_000.0;
    assert!((5.0..5.1).contains(&days), "{days}");

    let fail = run(&list[1]).await;
    assert_eq!(fail.outcome, Outcome::Down);
    assert_eq!(
        fail.reason.as_deref(),
        Some("certificate expires in 5 days (fail under 7)")
    );

    let unverified = run(&list[2]).await;
    assert_eq!(unverified.outcome, Outcome::Down);
    let reason = unverified.reason.unwrap_or_default();
    assert!(
        reason.starts_with("TLS handshake failed: invalid peer certificate"),
        "{reason}"
    );
}

#[tokio::test]
async fn https_probes_record_the_certificate_for_conditions() {
    let port = tls_server(5).await;
    let list = services(&format!(
        r#"
[[service]]
name = "Enough"
url = "https://localhost:{port}/health"
tls_verify = false
interval = "10s"
conditions = ["[STATUS] == 200", "[CERTIFICATE_EXPIRATION] > 48h"]

[[service]]
name = "Too soon"
url = "https://localhost:{port}/health"
tls_verify = false
interval = "10s"
conditions = ["[CERTIFICATE_EXPIRATION] > 240h"]

[[service]]
name = "Untrusted"
url = "https://localhost:{port}/health"
interval = "10s"
"#
    ))
    .await;
    let ok = run(&list[0]).await;
    assert_eq!(
        (ok.outcome, ok.status_code),
        (Outcome::Up, Some(200)),
        "{:?}",
        ok.reason
    );
    assert!(ok.certificate_expires_at.is_some());
    let soon = run(&list[1]).await;
    assert_eq!(soon.outcome, Outcome::Down);
    let reason = soon.reason.unwrap_or_default();
    assert!(
        reason.starts_with("[CERTIFICATE_EXPIRATION] (12") && reason.ends_with(" > 240h"),
        "{reason}"
    );
    // tls_verify stays on by default: a self-signed certificate is refused.
    let untrusted = run(&list[2]).await;
    assert_eq!(untrusted.outcome, Outcome::Down);
    let reason = untrusted.reason.unwrap_or_default();
    assert!(reason.to_lowercase().contains("certificate"), "{reason}");
}

#[tokio::test]
async fn direct_dependencies_are_probed_with_the_service() {
    if TestDb::postgres().await.is_none() {
        return; // noted by TestDb; a failure under CI=true
    }
    let target = Target::start().await;
    let closed = closed_port().await;
    let pg = postgres_admin_url();
    let list = services(&format!(
        r#"
[[service]]
name = "Orders"
url = "{ok}"
interval = "10s"
timeout = "2s"

  [[service.dependency]]
  name = "orders-db"
  url = "{pg}"

  [[service.dependency]]
  name = "port"
  url = "tcp://{addr}"

  [[service.dependency]]
  name = "name"
  url = "dns://localhost"
  dns_expect = ["127.0.0.1"]

[[service]]
name = "Broken deps"
url = "{ok}"
interval = "10s"
timeout = "1s"

  [[service.dependency]]
  name = "old-db"
  url = "postgres://postgres@127.0.0.1:{closed}/postgres"

  [[service.dependency]]
  name = "gone"
  url = "tcp://127.0.0.1:{closed}"

  [[service.dependency]]
  name = "wrong-name"
  url = "dns://localhost"
  dns_expect = ["10.9.9.9"]

  [[service.dependency]]
  name = "stuck"
  url = "{hang}"
"#,
        ok = target.url("ok"),
        addr = target.addr,
        hang = target.url("hang"),
    ))
    .await;
    let good = run(&list[0]).await;
    assert_eq!(good.outcome, Outcome::Up, "{:?}", good.reason);
    let states: Vec<(&str, Health)> = good
        .dependencies
        .iter()
        .map(|d| (d.name.as_str(), d.health))
        .collect();
    assert_eq!(
        states,
        [
            ("orders-db", Health::Pass),
            ("port", Health::Pass),
            ("name", Health::Pass)
        ]
    );

    let started = Instant::now();
    let bad = run(&list[1]).await;
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "dependencies run at once, each within its timeout"
    );
    assert_eq!(bad.outcome, Outcome::Degraded);
    let by_name = |n: &str| {
        bad.dependencies
            .iter()
            .find(|d| d.name == n)
            .expect("dependency")
            .clone()
    };
    for name in ["old-db", "gone", "wrong-name", "stuck"] {
        assert_eq!(by_name(name).health, Health::Fail, "{name}");
    }
    assert!(by_name("gone")
        .output
        .unwrap_or_default()
        .starts_with("connection failed"));
    assert_eq!(
        by_name("wrong-name").output.as_deref(),
        Some("localhost resolved to 127.0.0.1, not to expected 10.9.9.9")
    );
    assert_eq!(
        by_name("stuck").output.as_deref(),
        Some("timed out after 1s")
    );
    assert!(bad
        .reason
        .unwrap_or_default()
        .starts_with("dependency old-db: postgres:"));
}

#[tokio::test]
async fn redis_probe_pings() {
    let reachable = tokio::net::TcpStream::connect("127.0.0.1:6379")
        .await
        .is_ok();
    if !reachable {
        assert!(
            !redis_required(),
            "Redis on 127.0.0.1:6379 is unreachable under CI=true"
        );
        eprintln!("note: skipping the Redis probe test, 127.0.0.1:6379 is unreachable");
        return;
    }
    let closed = closed_port().await;
    let list = services(&format!(
        "[[service]]\nname = \"Cache\"\nurl = \"redis://127.0.0.1:6379\"\ninterval = \"10s\"\ntimeout = \"2s\"\n\
         [[service]]\nname = \"No cache\"\nurl = \"redis://127.0.0.1:{closed}\"\ninterval = \"10s\"\ntimeout = \"2s\"\n\
         [[service]]\nname = \"Not redis\"\nurl = \"redis://{}\"\ninterval = \"10s\"\ntimeout = \"2s\"\n",
        Target::start().await.addr
    ))
    .await;
    assert_eq!(run(&list[0]).await.outcome, Outcome::Up);
    let down = run(&list[1]).await;
    assert_eq!(down.outcome, Outcome::Down);
    assert!(down
        .reason
        .unwrap_or_default()
        .starts_with("connection failed"));
    // An HTTP server answers PING with an HTTP error, not PONG.
    let not_redis = run(&list[2]).await;
    assert_eq!(not_redis.outcome, Outcome::Down);
    assert!(
        not_redis
            .reason
            .unwrap_or_default()
            .starts_with("PING answered"),
        "an HTTP 400 is no PONG"
    );
}

#[tokio::test]
async fn http_options_method_headers_body_and_redirects() {
    let target = Target::start().await;
    let list = services(&format!(
        r#"
[[service]]
name = "Post"
url = "{echo}"
method = "post"
headers = {{ X-Token = "s3cret" }}
body = "ping"
interval = "10s"

[[service]]
name = "Plain get"
url = "{echo}"
interval = "10s"

[[service]]
name = "Followed"
url = "{redirect}"
interval = "10s"

[[service]]
name = "Not followed"
url = "{redirect}"
follow_redirects = false
interval = "10s"

[[service]]
name = "Redirect expected"
url = "{redirect}"
follow_redirects = false
expected_status = [303]
interval = "10s"
"#,
        echo = target.url("echo"),
        redirect = target.url("redirect"),
    ))
    .await;
    let outcomes = [
        run(&list[0]).await,
        run(&list[1]).await,
        run(&list[2]).await,
        run(&list[3]).await,
        run(&list[4]).await,
    ];
    let got: Vec<(Outcome, Option<u16>)> = outcomes
        .iter()
        .map(|r| (r.outcome, r.status_code))
        .collect();
    assert_eq!(
        got,
        [
            (Outcome::Up, Some(200)),
            (Outcome::Down, Some(400)),
            (Outcome::Up, Some(200)),
            (Outcome::Down, Some(303)),
            (Outcome::Up, Some(303)),
        ]
    );
    assert_eq!(
        outcomes[3].reason.as_deref(),
        Some("HTTP 303, expected 2xx")
    );
    assert_eq!(
        target.hits("ok"),
        1,
        "only the followed redirect reached /ok"
    );
}

#[tokio::test]
async fn conditions_apply_to_tcp_dns_and_tls_probes_as_in_gatus() {
    let target = Target::start().await;
    let closed = closed_port().await;
    let tls_port = tls_server(5).await;
    let list = services(&format!(
        r#"
[[service]]
name = "Port"
url = "tcp://{addr}"
interval = "10s"
conditions = ["[CONNECTED] == true", "[IP] == 127.0.0.1"]

[[service]]
name = "Name"
url = "dns://localhost"
interval = "10s"
conditions = ["[BODY] == 127.0.0.1", "[DNS_RCODE] == NOERROR"]

[[service]]
name = "Wrong answer"
url = "dns://localhost"
interval = "10s"
conditions = ["[BODY] == 10.0.0.1"]

[[service]]
name = "Must stay closed"
url = "tcp://127.0.0.1:{closed}"
interval = "10s"
conditions = ["[CONNECTED] == false"]

[[service]]
name = "Must be open"
url = "tcp://127.0.0.1:{closed}"
interval = "10s"
conditions = ["[CONNECTED] == true"]

[[service]]
name = "Cert week"
url = "tls://localhost:{tls_port}"
tls_verify = false
tls_warn_days = 1
tls_fail_days = 0
interval = "10s"
degraded_conditions = ["[CERTIFICATE_EXPIRATION] > 168h"]
"#,
        addr = target.addr,
    ))
    .await;
    let closed_ok = run(&list[3]).await;
    assert_eq!(closed_ok.outcome, Outcome::Up, "{:?}", closed_ok.reason);
    let open_wanted = run(&list[4]).await;
    assert_eq!(open_wanted.outcome, Outcome::Down);
    let reason = open_wanted.reason.unwrap_or_default();
    assert!(
        reason.starts_with("[CONNECTED] (false) == true (connection failed:"),
        "{reason}"
    );
    let list = [
        list[0].clone(),
        list[1].clone(),
        list[2].clone(),
        list[5].clone(),
    ];
    let port = run(&list[0]).await;
    assert_eq!(port.outcome, Outcome::Up, "{:?}", port.reason);
    let name = run(&list[1]).await;
    assert_eq!(name.outcome, Outcome::Up, "{:?}", name.reason);
    let wrong = run(&list[2]).await;
    assert_eq!(wrong.outcome, Outcome::Down);
    assert_eq!(
        wrong.reason.as_deref(),
        Some("[BODY] (127.0.0.1) == 10.0.0.1")
    );
    let cert = run(&list[3]).await;
    assert_eq!(cert.outcome, Outcome::Degraded);
    let reason = cert.reason.unwrap_or_default();
    assert!(
        reason.starts_with("[CERTIFICATE_EXPIRATION] (12") && reason.ends_with(") > 168h"),
        "{reason}"
    );
}

crate::store_test!(
    https_certificate_expiry_is_stored_with_the_service,
    stored_certificate
);
async fn stored_certificate(db: TestDb) {
    let port = tls_server(5).await;
    let config = test_config(
        &db,
        &format!(
            "[[service]]\nname = \"Shop\"\nurl = \"https://localhost:{port}/health\"\ntls_verify = false\ninterval = \"1s\"\ntimeout = \"900ms\"\n"
        ),
    );
    let app = crate::helpers::TestApp::spawn(config).await;
    app.wait_for_every_state().await;
    let shop = app.summaries().await.remove(0);
    assert_eq!(shop.state, beacon::domain::State::Up);
    let expires = shop.certificate_expires_at.expect("stored");
    let days = (expires - chrono::Utc::now().timestamp_millis()) as f64 / 86_400_000.0;
    assert!((5.0..5.1).contains(&days), "{days}");
    app.stop().await.expect("clean stop");
}

/// An HTTP/1.1 server that keeps connections open and counts how many it
/// accepted.
async fn counting_server() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                loop {
                    let Ok(n) = stream.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        let body = "{\"status\":\"pass\"}";
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/health+json\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if stream.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (port, accepted)
}

#[tokio::test]
async fn keep_alive_decides_whether_probes_reuse_a_connection() {
    let clients = Clients::new().expect("clients");
    for (keep_alive, expected) in [(false, 3), (true, 1)] {
        let (port, accepted) = counting_server().await;
        let service = services(&format!(
            "[[service]]\nname = \"API\"\nurl = \"http://127.0.0.1:{port}/health\"\nkeep_alive = {keep_alive}\n"
        ))
        .await
        .remove(0);
        assert_eq!(service.http.keep_alive, keep_alive);
        for _ in 0..3 {
            let report = probe::probe_target(&clients, &service, 0).await;
            assert_eq!(report.outcome, Outcome::Up, "{:?}", report.reason);
        }
        assert_eq!(
            accepted.load(std::sync::atomic::Ordering::SeqCst),
            expected,
            "keep_alive = {keep_alive}"
        );
    }
    // The default: a fresh connection per probe.
    let service = services("[[service]]\nname = \"API\"\nurl = \"http://127.0.0.1:1/health\"\n")
        .await
        .remove(0);
    assert!(!service.http.keep_alive);
}

/// Every request a [`recorder`] received: its method, path and headers.
type Seen = Arc<std::sync::Mutex<Vec<(axum::http::Method, String, axum::http::HeaderMap)>>>;

/// An HTTP server on 127.0.0.1 that records every request. `?to=URL&code=N`
/// answers a redirect (status N, Location URL); anything else answers 200.
async fn recorder() -> (std::net::SocketAddr, Seen) {
    async fn answer(
        axum::extract::State(seen): axum::extract::State<Seen>,
        method: axum::http::Method,
        uri: axum::http::Uri,
        axum::extract::Query(query): axum::extract::Query<
            std::collections::HashMap<String, String>,
        >,
        headers: axum::http::HeaderMap,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        seen.lock()
            .expect("lock")
            .push((method, uri.path().to_string(), headers));
        match (query.get("to"), query.get("code")) {
            (Some(to), Some(code)) => (
                axum::http::StatusCode::from_u16(code.parse().expect("a status"))
                    .expect("a status"),
                [(axum::http::header::LOCATION, to.clone())],
            )
                .into_response(),
            _ => (axum::http::StatusCode::OK, "landed").into_response(),
        }
    }
    let seen = Seen::default();
    let app = axum::Router::new()
        .fallback(answer)
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, seen)
}

/// A URL on `at` that redirects to `to` with `code`, carrying a key in its
/// query as services often do.
fn redirecting(at: std::net::SocketAddr, to: &str, code: u16) -> String {
    url::Url::parse_with_params(
        &format!("http://{at}/start"),
        [
            ("to", to),
            ("code", &code.to_string()),
            ("key", "query-key-marker"),
        ],
    )
    .expect("url")
    .to_string()
}

/// The headers of each request `seen` got on `path`.
fn requests_to(seen: &Seen, path: &str) -> Vec<axum::http::HeaderMap> {
    seen.lock()
        .expect("lock")
        .iter()
        .filter(|(_, p, _)| p == path)
        .map(|(_, _, h)| h.clone())
        .collect()
}

#[tokio::test]
async fn redirects_to_another_origin_carry_no_configured_header_and_no_referer() {
    let (a, seen_a) = recorder().await;
    let (b, seen_b) = recorder().await;
    let probe_once = |url: String, method: &'static str| async move {
        let service = services(&format!(
            "[[service]]\nname = \"API\"\nurl = \"{url}\"\nmethod = \"{method}\"\nbody = \"ping\"\n\
             headers = {{ X-Api-Key = \"header-key-marker\", Authorization = \"Bearer auth-marker\" }}\n"
        ))
        .await
        .remove(0);
        let report = run(&service).await;
        assert_eq!(
            (report.outcome, report.status_code),
            (Outcome::Up, Some(200)),
            "{url}: {:?}",
            report.reason
        );
    };
    let leaked = |headers: &axum::http::HeaderMap| -> Vec<String> {
        headers
            .iter()
            .filter(|(name, value)| {
                let value = value.to_str().unwrap_or("");
                *name == axum::http::header::REFERER
                    || *name == axum::http::header::AUTHORIZATION
                    || name.as_str() == "x-api-key"
                    || value.contains("marker")
            })
            .map(|(name, value)| format!("{name}: {value:?}"))
            .collect()
    };

    // Another port, with each redirect status; and back to the first
    // origin: once dropped, the headers stay dropped.
    for code in [301, 302, 303, 307, 308] {
        probe_once(
            redirecting(a, &format!("http://{b}/landing-{code}"), code),
            "GET",
        )
        .await;
        let got = requests_to(&seen_b, &format!("/landing-{code}"));
        assert_eq!(got.len(), 1, "{code}");
        assert_eq!(leaked(&got[0]), Vec::<String>::new(), "{code}");
    }
    probe_once(
        redirecting(a, &redirecting(b, &format!("http://{a}/back"), 302), 307),
        "POST",
    )
    .await;
    let got = requests_to(&seen_a, "/back");
    assert_eq!(got.len(), 1);
    assert_eq!(leaked(&got[0]), Vec::<String>::new());
    // Another host on the same port.
    probe_once(
        redirecting(a, &format!("http://localhost:{}/other-host", a.port()), 302),
        "GET",
    )
    .await;
    let got = requests_to(&seen_a, "/other-host");
    assert_eq!(got.len(), 1);
    assert_eq!(leaked(&got[0]), Vec::<String>::new());

    // The same origin keeps the headers (a relative Location, as most
    // servers send), but gets no Referer either.
    probe_once(redirecting(a, "/own", 302), "GET").await;
    let got = requests_to(&seen_a, "/own");
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].get("x-api-key").and_then(|v| v.to_str().ok()),
        Some("header-key-marker")
    );
    assert_eq!(
        got[0].get("authorization").and_then(|v| v.to_str().ok()),
        Some("Bearer auth-marker")
    );
    assert!(got[0].get("referer").is_none(), "{:?}", got[0]);
}

#[tokio::test]
async fn redirects_are_bounded_and_keep_the_method_as_browsers_do() {
    let (a, seen) = recorder().await;
    // 11 hops: one more than followed.
    let mut url = format!("http://{a}/end");
    for _ in 0..=probe::http::MAX_REDIRECTS {
        url = redirecting(a, &url, 302);
    }
    let service = services(&format!("[[service]]\nname = \"Loop\"\nurl = \"{url}\"\n"))
        .await
        .remove(0);
    let report = run(&service).await;
    assert_eq!(report.outcome, Outcome::Down);
    assert_eq!(
        report.reason.as_deref(),
        Some("too many redirects (more than 10)")
    );
    assert!(requests_to(&seen, "/end").is_empty());

    // 307 keeps POST and its body; 303 turns it into a GET without one.
    for (code, expected) in [(307, "POST 4"), (303, "GET 0")] {
        let service = services(&format!(
            "[[service]]\nname = \"Post\"\nurl = \"{}\"\nmethod = \"POST\"\nbody = \"ping\"\n",
            redirecting(a, &format!("/after-{code}"), code)
        ))
        .await
        .remove(0);
        assert_eq!(run(&service).await.outcome, Outcome::Up);
        let got: Vec<String> = seen
            .lock()
            .expect("lock")
            .iter()
            .filter(|(_, path, _)| *path == format!("/after-{code}"))
            .map(|(method, _, headers)| {
                let length = headers
                    .get("content-length")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("0");
                format!("{method} {length}")
            })
            .collect();
        assert_eq!(got, [expected], "{code}");
    }
}
