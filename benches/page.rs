//! The public page under a traffic spike: wrk (2 threads, 50 connections,
//! 15 s) against `/` and `/api/v2/summary.json` of a beacon with 200
//! services in 30 groups and 50 incidents in its history, while its monitor
//! probes all 200 (every 30 s, against a local target) and writes. It
//! starts measuring once every service has its first result (up to 30 s).
//!
//!   cargo bench --bench page                          # needs wrk (apt-get install wrk)
//!   BEACON_BENCH_SECONDS=3 cargo bench --bench page
//!   BEACON_BENCH_SAVE=/tmp cargo bench --bench page   # also keeps the bodies measured
//!
//! wrk and beacon share the machine's 2 cores, so these are lower bounds of
//! what beacon serves on its own.

use std::process::Command;
use std::time::Duration;

use beacon::config::{self, ConfigSource};
use beacon::startup::Application;
use beacon::store::NewIncident;

fn target() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    listener.set_nonblocking(true).expect("nonblocking");
    tokio::spawn(async move {
        let app = axum::Router::new().route(
            "/health",
            axum::routing::get(|| async { axum::Json(serde_json::json!({"status": "pass"})) }),
        );
        let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
        let _ = axum::serve(listener, app).await;
    });
    addr
}

fn wrk(url: &str, seconds: u64, encoding: &str) -> anyhow::Result<(f64, String, String)> {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t2", "-c50", &format!("-d{seconds}s"), "--latency"]);
    if !encoding.is_empty() {
        cmd.args(["-H", &format!("Accept-Encoding: {encoding}")]);
    }
    let out = cmd
        .arg(url)
        .output()
        .map_err(|e| anyhow::anyhow!("wrk (apt-get install wrk): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |prefix: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_string()
    };
    let rps: f64 = field("Requests/sec:").parse().unwrap_or(0.0);
    if text.contains("Non-2xx") {
        anyhow::bail!("wrk saw errors:\n{text}");
    }
    Ok((rps, field("50%"), field("99%")))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seconds: u64 = std::env::var("BEACON_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let dir = tempfile::tempdir()?;
    let target = target();
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntitle = \"Bench status\"\n[storage]\nurl = \"sqlite://{}/bench.db\"\n",
        dir.path().display()
    );
    for g in 0..30 {
        text.push_str(&format!("[[group]]\nname = \"Group {g}\"\n"));
    }
    for i in 0..200 {
        text.push_str(&format!(
            "[[service]]\nname = \"Service {i}\"\ngroup = \"Group {}\"\nurl = \"http://{target}/health\"\ninterval = \"30s\"\n",
            i % 30
        ));
    }
    let config = config::from_toml(&text, ConfigSource::Embedded, &|_| None)?;
    let app = Application::build(config).await?;
    let port = app.port();
    let store = app.store().clone();
    for n in 0..50 {
        store
            .create_incident(&NewIncident {
                title: format!("Incident {n}"),
                impact: "minor".into(),
                status: if n < 48 { "resolved" } else { "investigating" }.into(),
                message: "Something happened; it is described here for the public.".into(),
                services: vec![format!("service-{}", n * 4)],
                at: 1_773_000_000_000 + n * 3_600_000,
                notify: true,
            })
            .await?;
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    // Every service gets its first probe (first probes are spread over the
    // 30 s interval), then the snapshot settles: the page and summary.json
    // are measured with every state known.
    let started = std::time::Instant::now();
    loop {
        let now = chrono::Utc::now().timestamp_millis();
        let summaries = store.service_summaries(now).await?;
        if summaries.iter().all(|s| s.last_checked_at.is_some()) {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "services still unprobed after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    println!("page: 200 services, 30 groups, 50 incidents; wrk -t2 -c50 -d{seconds}s on the same 2 cores; the monitor probing and writing throughout");
    let client = reqwest::Client::new();
    println!("| route | Accept-Encoding | body bytes | requests/s | p50 | p99 |");
    println!("|---|---|---|---|---|---|");
    for path in ["/", "/api/v2/summary.json"] {
        // None (as wrk sends by default), and what browsers send.
        for encoding in ["", "gzip, deflate, br"] {
            let url = format!("http://127.0.0.1:{port}{path}");
            let mut request = client.get(&url);
            if !encoding.is_empty() {
                request = request.header("accept-encoding", encoding);
            }
            let body = request.send().await?.bytes().await?;
            let bytes = body.len();
            // BEACON_BENCH_SAVE=DIR keeps each body measured, to look at.
            if let (Ok(dir), true) = (std::env::var("BEACON_BENCH_SAVE"), encoding.is_empty()) {
                let name = if path == "/" {
                    "index.html"
                } else {
                    "summary.json"
                };
                std::fs::write(std::path::Path::new(&dir).join(name), &body)?;
            }
            let (rps, p50, p99) = wrk(&url, seconds, encoding)?;
            let shown = if encoding.is_empty() {
                "none"
            } else {
                encoding
            };
            println!("| `{path}` | {shown} | {bytes} | {rps:.0} | {p50} | {p99} |");
        }
    }
    let _ = stop.send(());
    server.await??;
    Ok(())
}
