//! beacon under the conditions it exists for (issue 21), with the real
//! binary (the bench profile's, or `BEACON_BENCH_BINARY`):
//!
//! 1. **turnover**: from a cold start, `wrk -t2 -c50` on `/` while 20
//!    services flip every 700 ms, so the snapshot changes every second;
//!    `/livez` asked 10 times a second beside it.
//! 2. **store refusal** (PostgreSQL): one service at 1 s goes down while
//!    its database refuses every connection for 20 s (`ALLOW_CONNECTIONS
//!    false` and its sessions terminated); then results lost, state, incident.
//! 3. **slow clients**: 20,000 connections that send one header byte and
//!    then nothing, against 50 services at 1 s: `/` latency and probe
//!    success while they are held.
//! 4. **stop**: SIGTERM with ten half-sent requests open; time to exit.
//! 5. **mass** (issue 22): 2,000 services every 5 s, 30 % down, 2 %
//!    flapping; 20 readers over `/`, summary.json, unresolved.json,
//!    `/incidents`, a service page and `/metrics`, and a crawler over the
//!    history, 40 s from a cold start. `mass10k`: 10,000 every 30 s, 60 s
//!    (only when named).
//!
//!   cargo bench --bench hardening                  # all, ~2 minutes; needs wrk
//!   cargo bench --bench hardening -- --smoke       # seconds: what CI runs
//!   cargo bench --bench hardening -- turnover stop # some of them
//!
//! PostgreSQL from `BEACON_TEST_POSTGRES_URL` (else 127.0.0.1:5432). Nothing
//! is asserted: the machine is shared; the figures go to docs/performance.md.

use std::process::Stdio;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

/// A target: `/ok` is up, `/switch` answers what the switch says.
async fn target() -> anyhow::Result<(std::net::SocketAddr, Arc<AtomicU16>, Arc<AtomicU64>)> {
    let switch = Arc::new(AtomicU16::new(200));
    let hits = Arc::new(AtomicU64::new(0));
    let (s, h) = (switch.clone(), hits.clone());
    let app = axum::Router::new()
        .route("/ok", axum::routing::get(|| async { "ok" }))
        .route(
            "/switch",
            axum::routing::get(move || {
                let (s, h) = (s.clone(), h.clone());
                async move {
                    h.fetch_add(1, Ordering::Relaxed);
                    axum::http::StatusCode::from_u16(s.load(Ordering::Relaxed))
                        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR)
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, switch, hits))
}

struct Beacon {
    child: tokio::process::Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Beacon {
    /// Starts beacon on `config` (a `{dir}` in it becomes its folder) and
    /// returns once it logged its address: a cold start.
    async fn start(config: &str) -> anyhow::Result<Beacon> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("beacon.toml");
        std::fs::write(
            &file,
            config.replace("{dir}", &dir.path().display().to_string()),
        )?;
        let binary = std::env::var("BEACON_BENCH_BINARY")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_beacon").into());
        let mut child = tokio::process::Command::new(binary)
            .args(["serve", "--config"])
            .arg(&file)
            .env("RUST_LOG", "info")
            .env_remove("BEACON_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let mut lines = tokio::io::BufReader::new(child.stderr.take().expect("piped")).lines();
        let base = loop {
            let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
                .await??
                .ok_or_else(|| anyhow::anyhow!("beacon exited before serving"))?;
            if let Some(at) = line.find("status page at http://") {
                let addr: String = line[at + "status page at ".len()..]
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '"')
                    .collect();
                break addr;
            }
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Beacon {
            child,
            base,
            _dir: dir,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn terminate(&self) -> anyhow::Result<()> {
        let pid = self.child.id().ok_or_else(|| anyhow::anyhow!("no pid"))?;
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
        Ok(())
    }
}

/// The sum of the series of `name` in a `/metrics` text whose line holds
/// `with` (`""`: all of them).
fn metric_sum(text: &str, name: &str, with: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(with))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>()
        // An empty f64 sum is -0.0.
        + 0.0
}

/// The upper bound of the histogram bucket `name` that holds quantile `q`
/// (what Prometheus' `histogram_quantile` would say, without the
/// interpolation), in seconds.
fn bucket_quantile(text: &str, name: &str, q: f64) -> f64 {
    let buckets: Vec<(f64, f64)> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{name}_bucket{{")))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect();
    let total = buckets.last().map_or(0.0, |b| b.1);
    buckets
        .iter()
        .find(|(_, n)| *n >= q * total)
        .map_or(0.0, |b| b.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Asks `/livez` every 100 ms until `until`; its latencies and failures.
/// `/livez` ten times a second until `until`, on a thread and runtime of
/// its own: the readers keep this process's own workers busy reading
/// megabytes of documents, and a watcher queued behind them would time
/// this process, not beacon.
async fn watch_livez(url: String, until: Instant) -> (Vec<Duration>, u64) {
    tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the /livez watcher");
        runtime.block_on(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .expect("client");
            let (mut times, mut failed) = (Vec::new(), 0);
            while Instant::now() < until {
                let asked = Instant::now();
                match client.get(&url).send().await {
                    Ok(r) if r.status() == 200 => times.push(asked.elapsed()),
                    _ => failed += 1,
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            times.sort();
            (times, failed)
        })
    })
    .await
    .expect("the /livez watcher")
}

async fn turnover(seconds: u64) -> anyhow::Result<()> {
    let (addr, switch, hits) = target().await?;
    let flipper = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(700)).await;
            let next = if switch.load(Ordering::Relaxed) == 200 {
                500
            } else {
                200
            };
            switch.store(next, Ordering::Relaxed);
        }
    });
    let mut config =
        "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\nurl = \"sqlite://{dir}/b.db\"\n"
            .to_string();
    for i in 0..20 {
        config.push_str(&format!(
            "[[service]]\nname = \"S{i}\"\nurl = \"http://{addr}/switch\"\ninterval = \"1s\"\ntimeout = \"500ms\"\nfailure_threshold = 1\nsuccess_threshold = 1\n"
        ));
    }
    let beacon = Beacon::start(&config).await?;
    let until = Instant::now() + Duration::from_secs(seconds);
    let livez = tokio::spawn(watch_livez(beacon.url("/livez"), until));
    let before = hits.load(Ordering::Relaxed);
    let out = tokio::process::Command::new("wrk")
        .args([
            "-t2",
            "-c50",
            &format!("-d{seconds}s"),
            "--latency",
            "--timeout",
            "5s",
        ])
        .arg(beacon.url("/"))
        .output()
        .await
        .map_err(|e| anyhow::anyhow!("wrk (apt-get install wrk): {e}"))?;
    let probes = hits.load(Ordering::Relaxed) - before;
    let (times, failed) = livez.await?;
    flipper.abort();
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |prefix: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .map(|l| l.trim().to_string())
            .unwrap_or_default()
    };
    let errors = text
        .lines()
        .filter(|l| l.contains("Socket errors") || l.contains("Non-2xx"))
        .collect::<Vec<_>>()
        .join("; ");
    println!(
        "turnover: {} | {} | 99%: {} | errors: {} | /livez: {} answered, {failed} failed, p50 {:?}, p99 {:?}, max {:?} | probes {:.1}/s (plan 20/s)",
        field("Requests/sec:"),
        text.lines().find(|l| l.contains("requests in")).unwrap_or("").trim(),
        field("99%"),
        if errors.is_empty() { "none".into() } else { errors },
        times.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times.last().copied().unwrap_or_default(),
        probes as f64 / seconds as f64
    );
    Ok(())
}

async fn store_refusal(seconds: u64) -> anyhow::Result<()> {
    use sqlx::Connection;
    let admin = std::env::var("BEACON_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("beacon_bench_refusal_{}", std::process::id());
    let sql = |q: String| {
        let admin = admin.clone();
        async move {
            let mut conn = sqlx::PgConnection::connect(&admin).await?;
            sqlx::query(&q).execute(&mut conn).await?;
            conn.close().await?;
            anyhow::Ok(())
        }
    };
    sql(format!("CREATE DATABASE \"{name}\"")).await?;
    let mut url = url::Url::parse(&admin)?;
    url.set_path(&name);
    let (addr, switch, hits) = target().await?;
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\nurl = \"{url}\"\n[[service]]\nname = \"Checkout\"\nurl = \"http://{addr}/switch\"\ninterval = \"1s\"\ntimeout = \"500ms\"\nfailure_threshold = 1\n"
    );
    let beacon = Beacon::start(&config).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let refused_at = chrono::Utc::now().timestamp_millis();
    sql(format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false")).await?;
    sql(format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()")).await?;
    switch.store(500, Ordering::Relaxed);
    let probes_before = hits.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let probed = hits.load(Ordering::Relaxed) - probes_before;
    let back_at = chrono::Utc::now().timestamp_millis();
    sql(format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true")).await?;
    // Give the recorder its next retry (backoff at most 5 s) and a write.
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut page_down_after = None;
    while Instant::now() < deadline {
        let body = client
            .get(beacon.url("/api/v1/services"))
            .send()
            .await?
            .text()
            .await?;
        if body.contains("\"down\"") {
            page_down_after = Some(chrono::Utc::now().timestamp_millis() - back_at);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut conn = sqlx::PgConnection::connect(url.as_str()).await?;
    let (stored,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM check_results WHERE checked_at >= $1 AND checked_at < $2",
    )
    .bind(refused_at)
    .bind(back_at)
    .fetch_one(&mut conn)
    .await?;
    let (incidents,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM incidents WHERE resolved_at IS NULL")
            .fetch_one(&mut conn)
            .await?;
    conn.close().await?;
    let metrics = client
        .get(beacon.url("/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let dropped = metric_sum(&metrics, "beacon_results_dropped_total", "");
    println!(
        "store refusal: PostgreSQL refused connections for {seconds} s; {probed} probes reached the target, {stored} results stored with a time inside the refusal, beacon_results_dropped_total {dropped:.0}; page showed the outage {} after the store came back; open incidents: {incidents}",
        page_down_after.map_or("never".to_string(), |ms| format!("{ms} ms")),
    );
    drop(beacon);
    let _ = sql(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
    Ok(())
}

/// A target in a process of its own (Python's http.server serving a file
/// `ok`): the slow clients take this process's descriptors, and a target
/// in it would fail for that, not beacon.
fn separate_target(
) -> anyhow::Result<(std::net::SocketAddr, std::process::Child, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("ok"), "ok")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = std::process::Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let end = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        anyhow::ensure!(Instant::now() < end, "python3 -m http.server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((addr, child, dir))
}

async fn slow_clients(count: usize, seconds: u64) -> anyhow::Result<()> {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let (addr, mut python, _served) = separate_target()?;
    let mut config =
        "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\nurl = \"sqlite://{dir}/b.db\"\n"
            .to_string();
    for i in 0..50 {
        config.push_str(&format!(
            "[[service]]\nname = \"S{i}\"\nurl = \"http://{addr}/ok\"\ninterval = \"1s\"\ntimeout = \"900ms\"\nfailure_threshold = 1\n"
        ));
    }
    let beacon = Beacon::start(&config).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let server: std::net::SocketAddr = beacon.base.trim_start_matches("http://").parse()?;
    let client = reqwest::Client::new();
    let before = client
        .get(beacon.url("/metrics"))
        .send()
        .await?
        .text()
        .await?;
    // Open them, each sending one byte of a header; keep them (and keep
    // opening new ones as the server closes old ones) for `seconds`.
    let held = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut openers = tokio::task::JoinSet::new();
    for _ in 0..count.div_ceil(500) {
        let held = held.clone();
        openers.spawn(async move {
            let mut mine = Vec::new();
            while Instant::now() < until {
                if mine.len() < 500 {
                    if let Ok(Ok(mut s)) = tokio::time::timeout(
                        Duration::from_secs(1),
                        tokio::net::TcpStream::connect(server),
                    )
                    .await
                    {
                        if s.write_all(b"G").await.is_ok() {
                            mine.push(s);
                            held.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                } else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            mine.len()
        });
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Visitors meanwhile: a fresh connection each, as a new visitor has.
    let mut latencies = Vec::new();
    let mut failed = 0;
    while Instant::now() < until {
        let fresh = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .pool_max_idle_per_host(0)
            .build()?;
        let asked = Instant::now();
        match fresh.get(beacon.url("/")).send().await {
            Ok(r) if r.status().is_success() => latencies.push(asked.elapsed()),
            _ => failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    while openers.join_next().await.is_some() {}
    latencies.sort();
    let after = client
        .get(beacon.url("/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let probes = |t: &str, outcome: &str| {
        metric_sum(t, "beacon_probes_total", &format!("outcome=\"{outcome}\""))
    };
    let up = probes(&after, "up") - probes(&before, "up");
    let down = probes(&after, "down") - probes(&before, "down");
    println!(
        "slow clients: {} slow connections opened over {seconds} s (at most {count} at once); `/` from fresh connections: {} answered, {failed} failed, p50 {:?}, p99 {:?}, max {:?}; probes up {up}, down {down}; resource errors {}",
        held.load(Ordering::Relaxed),
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default(),
        metric_sum(&after, "beacon_probe_resource_errors_total", ""),
    );
    let _ = python.kill();
    let _ = python.wait();
    Ok(())
}

async fn stop() -> anyhow::Result<()> {
    let config = "[server]\nlisten = \"127.0.0.1:0\"\nheader_read_timeout = \"60s\"\n[storage]\nurl = \"sqlite://{dir}/b.db\"\n";
    let mut beacon = Beacon::start(config).await?;
    let server: std::net::SocketAddr = beacon.base.trim_start_matches("http://").parse()?;
    let mut held = Vec::new();
    for _ in 0..10 {
        let mut s = tokio::net::TcpStream::connect(server).await?;
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await?;
        held.push(s);
    }
    let asked = Instant::now();
    beacon.terminate()?;
    let status = tokio::time::timeout(Duration::from_secs(60), beacon.child.wait()).await??;
    println!(
        "stop: SIGTERM with 10 half-sent requests open: exited {status} after {:?}",
        asked.elapsed()
    );
    Ok(())
}

/// A target for the mass outage: `/ok` up, `/down` 503, `/switch` flips
/// every 700 ms (so states and the snapshot change every second).
async fn outage_target() -> anyhow::Result<std::net::SocketAddr> {
    let flip = Arc::new(AtomicU16::new(200));
    let f = flip.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(700)).await;
            let next = if f.load(Ordering::Relaxed) == 200 {
                503
            } else {
                200
            };
            f.store(next, Ordering::Relaxed);
        }
    });
    let app = axum::Router::new()
        .route("/ok", axum::routing::get(|| async { "ok" }))
        .route(
            "/down",
            axum::routing::get(|| async { axum::http::StatusCode::SERVICE_UNAVAILABLE }),
        )
        .route(
            "/switch",
            axum::routing::get(move || {
                let flip = flip.clone();
                async move {
                    axum::http::StatusCode::from_u16(flip.load(Ordering::Relaxed))
                        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR)
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

/// Issue 22's mass outage: `services` at `interval`, 30 % down (each with
/// an open automatic incident), 2 % flapping so the snapshot changes every
/// second; 20 readers over the heavy routes and a crawler over the
/// history, `seconds` long, from a cold start.
async fn mass_outage(services: usize, interval: u64, seconds: u64) -> anyhow::Result<()> {
    let addr = outage_target().await?;
    // The benchmark's clients stand behind a proxy on 127.0.0.1: the
    // crawler names itself in X-Forwarded-For and is held to
    // `server.client_rate`; the readers (many visitors at once) name
    // nobody and are not limited.
    let mut config =
        "[server]\nlisten = \"127.0.0.1:0\"\nclient_rate = 20\ntrusted_proxies = [\"127.0.0.1\"]\n[storage]\nurl = \"sqlite://{dir}/b.db\"\n"
            .to_string();
    for i in 0..services {
        let path = match i % 100 {
            0..=29 => "down",
            30 | 31 => "switch",
            _ => "ok",
        };
        config.push_str(&format!(
            "[[service]]\nname = \"S{i}\"\nurl = \"http://{addr}/{path}\"\ninterval = \"{interval}s\"\ntimeout = \"2s\"\nfailure_threshold = 1\nsuccess_threshold = 1\n"
        ));
    }
    let beacon = Beacon::start(&config).await?;
    let until = Instant::now() + Duration::from_secs(seconds);
    let livez = tokio::spawn(watch_livez(beacon.url("/livez"), until));
    let routes = [
        "/",
        "/api/v2/summary.json",
        "/api/v2/incidents/unresolved.json",
        "/incidents",
        "/services/s31",
        "/metrics",
    ];
    // What the readers accept: gzip by default, as browsers and most HTTP
    // libraries ask (the bytes are read, not inflated); `identity` makes
    // beacon send every document whole.
    let encoding = std::env::var("BEACON_BENCH_ENCODING").unwrap_or_else(|_| "gzip".into());
    let mut readers = tokio::task::JoinSet::new();
    for r in 0..20usize {
        let urls: Vec<String> = routes.iter().map(|p| beacon.url(p)).collect();
        let mut accept = reqwest::header::HeaderMap::new();
        accept.insert(
            reqwest::header::ACCEPT_ENCODING,
            reqwest::header::HeaderValue::from_str(&encoding)?,
        );
        readers.spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .default_headers(accept)
                .build()
                .expect("client");
            let (mut times, mut failed) = (Vec::new(), 0u64);
            let mut i = r;
            while Instant::now() < until {
                let asked = Instant::now();
                match client.get(&urls[i % urls.len()]).send().await {
                    Ok(resp) if resp.status().is_success() => {
                        let _ = resp.bytes().await;
                        times.push((i % urls.len(), asked.elapsed()));
                    }
                    _ => failed += 1,
                }
                i += 1;
            }
            (times, failed)
        });
    }
    // The crawler: the history, page after page, again and again
    // (`BEACON_BENCH_CRAWLER=off` leaves it out, to compare the writes).
    // It honours 429's Retry-After, as search engines' crawlers do.
    let crawl = std::env::var("BEACON_BENCH_CRAWLER").map_or(true, |v| v != "off");
    let crawl_base = beacon.url("/incidents?page=");
    let crawler = tokio::spawn(async move {
        let client = reqwest::Client::new();
        let (mut served, mut turned_away) = (0u64, 0u64);
        let mut page = 1;
        while crawl && Instant::now() < until {
            let asked = client
                .get(format!("{crawl_base}{page}"))
                .header("x-forwarded-for", "203.0.113.7")
                .send()
                .await;
            match asked {
                Ok(r) if r.status().is_success() => served += 1,
                Ok(r) if r.status() == 404 => page = 0,
                Ok(r) if r.status() == 429 => {
                    turned_away += 1;
                    let wait = r
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(1);
                    tokio::time::sleep(Duration::from_secs(wait)).await;
                    continue;
                }
                _ => turned_away += 1,
            }
            page += 1;
        }
        (served, turned_away)
    });
    // Lag, sampled from /health each second.
    let client = reqwest::Client::new();
    let mut lags = Vec::new();
    let mut last_health = serde_json::Value::Null;
    while Instant::now() < until {
        if let Ok(r) = client.get(beacon.url("/health")).send().await {
            if let Ok(v) =
                serde_json::from_str::<serde_json::Value>(&r.text().await.unwrap_or_default())
            {
                if let Some(ms) = v["checks"]["monitor:lag"][0]["observedValue"].as_u64() {
                    lags.push(Duration::from_millis(ms));
                }
                last_health = v;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let (mut timed, mut failed) = (Vec::new(), 0);
    while let Some(done) = readers.join_next().await {
        let (t, f) = done?;
        timed.extend(t);
        failed += f;
    }
    // Per route, to tell which one the slowest readers waited on.
    let by_route: Vec<String> = routes
        .iter()
        .enumerate()
        .map(|(n, route)| {
            let mut t: Vec<Duration> = timed
                .iter()
                .filter(|(r, _)| *r == n)
                .map(|(_, d)| *d)
                .collect();
            t.sort();
            format!(
                "{route} {} p99 {:?} max {:?}",
                t.len(),
                percentile(&t, 0.99),
                t.last().copied().unwrap_or_default()
            )
        })
        .collect();
    let mut times: Vec<Duration> = timed.into_iter().map(|(_, d)| d).collect();
    times.sort();
    lags.sort();
    let (livez_times, livez_failed) = livez.await?;
    let (crawled, crawl_refused) = crawler.await?;
    let metrics = client
        .get(beacon.url("/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let sum = |name: &str| metric_sum(&metrics, name, "");
    let probes = sum("beacon_probes_total");
    let writes = sum("beacon_store_write_duration_seconds_count");
    let write_mean_ms = 1000.0 * sum("beacon_store_write_duration_seconds_sum") / writes.max(1.0);
    let write_p99_ms =
        1000.0 * bucket_quantile(&metrics, "beacon_store_write_duration_seconds", 0.99);
    let elapsed = seconds as f64;
    println!(
        "mass outage: {services} services every {interval} s, 30 % down, {seconds} s from a cold start | readers (Accept-Encoding: {encoding}): {} answered, {failed} failed, p50 {:?}, p99 {:?}, max {:?} | crawler: {crawled} pages served, {crawl_refused} turned away | /livez: {} answered, {livez_failed} failed, p99 {:?}, max {:?} | lag p99 {:?} (sampled 1/s) | probes written {probes:.0} ({:.0} % of plan over the run), results dropped {:.0}, write failures {:.0} | writes {writes:.0}, mean {write_mean_ms:.1} ms, p99 ≤ {write_p99_ms} ms | /health {}",
        times.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times.last().copied().unwrap_or_default(),
        livez_times.len(),
        percentile(&livez_times, 0.99),
        livez_times.last().copied().unwrap_or_default(),
        percentile(&lags, 0.99),
        100.0 * probes / (services as f64 * elapsed / interval as f64),
        sum("beacon_results_dropped_total"),
        sum("beacon_store_write_failures_total"),
        last_health["status"],
    );
    println!("  by route: {}", by_route.join("; "));
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--bench"))
        .collect();
    let smoke = args.iter().any(|a| a == "--smoke");
    let chosen: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with("--"))
        .map(String::as_str)
        .collect();
    let wants = |name: &str| chosen.is_empty() || chosen.contains(&name);
    if wants("turnover") {
        turnover(if smoke { 2 } else { 20 }).await?;
    }
    if wants("refusal") {
        store_refusal(if smoke { 3 } else { 20 }).await?;
    }
    if wants("slow") {
        if smoke {
            slow_clients(500, 5).await?;
        } else {
            slow_clients(20_000, 30).await?;
        }
    }
    if wants("stop") {
        stop().await?;
    }
    if wants("mass") {
        if smoke {
            mass_outage(100, 5, 3).await?;
        } else {
            mass_outage(2_000, 5, 40).await?;
        }
    }
    if chosen.contains(&"mass10k") {
        mass_outage(10_000, 30, 60).await?;
    }
    Ok(())
}
