//! Monitor at scale: a fleet of virtual services on 127.0.0.1, a real
//! `beacon` process probing them, and what it costs.
//!
//!   cargo bench --bench scale                    # the set in docs/performance.md
//!   cargo bench --bench scale -- --services 10000 --interval 30s --seconds 60 --store postgres
//!   cargo bench --bench scale -- --services 10000 --interval 30s --seconds 60 --store postgres --replicas 3
//!   cargo bench --bench scale -- --smoke         # CI: seconds, nothing asserted
//!
//! Options: `--services N`, `--interval 30s`, `--seconds S` (measured, after
//! the first retention pass, a minute after start, and one interval of
//! warm-up; `--smoke` waits for neither), `--store sqlite|postgres`, `--keep-alive
//! true|false` (default: beacon's, fresh connections), `--no-page` (no
//! page requests: the monitor's cost alone), `--empty` (start from an empty
//! store instead of 90 days of history), `--json FILE` (every run's figures,
//! for comparing commits), `--replicas N` (with `--services` and `--store
//! postgres` only: N `beacon serve` processes with one config on one
//! database, sharing the services; default 1).
//! `BEACON_BENCH_TABLES` adds TOML tables to the config (before the
//! services), e.g. `$'[metrics]\nper_service = false'`.
//! `BEACON_BENCH_WORKERS=N` gives each beacon N runtime workers
//! (`TOKIO_WORKER_THREADS`; by default one per core, as on a machine of its
//! own): three replicas on this 2-core machine otherwise run six workers
//! on two cores, which no deployment of three does (three hosts, or pods
//! with a CPU limit: a limit of 1, as in deploy/kubernetes, gives 1).
//! `BEACON_BENCH_BINARY` runs another beacon binary and
//! `BEACON_BENCH_WRAPPER` runs it under a command, for profiling (see
//! docs/performance.md). PostgreSQL runs use `BEACON_TEST_POSTGRES_URL` (default
//! postgres://postgres@127.0.0.1:5432/postgres) and a database of their own.
//!
//! The fleet is a few listeners answering `/s/{n}` with a small
//! health+json body: 2 % fail (500), 2 % answer slowly (300 ms), 2 % report
//! `warn` (degraded), the rest `pass`. beacon runs as its own process (the
//! release binary) so its CPU time and memory are its own; the fleet and
//! this harness share the same 2 cores.
//!
//! Figures:
//! - probes/s: requests the fleet received in the measured window, against
//!   N / interval planned;
//! - lag: for each service, how late its k-th probe arrived against its
//!   first one plus k intervals (the scheduler keeps a fixed cadence, so
//!   any lateness is drift), p50/p99/max over all probes in the window; and
//!   the largest lag beacon's own `/health` reported (read each second);
//! - CPU: beacon's user+system seconds in the window (/proc), per 1,000
//!   probes and as a share of one core;
//! - RSS: beacon's peak (VmHWM) and median (VmRSS sampled each second);
//! - write batch latency: p50/p99 interpolated from beacon's histogram;
//! - `/` and `/api/v2/summary.json`: latency of one request every 250 ms
//!   during the window;
//! - lost: requests the fleet answered minus results in the store after a
//!   graceful stop (must be 0);
//! - in the JSON also: `/health`'s status, its lag text, and the probe
//!   slots skipped after falling a whole interval behind, at the end.
//!
//! With `--replicas N` (N > 1) each replica has its own port (through
//! `BEACON_LISTEN`) and the config has `[cluster] lease = "15s"`,
//! `heartbeat = "5s"`. The warm-up first waits for every replica's
//! `/health` to list N members and for the leader's first retention pass,
//! then one interval. Then: probes/s and lag
//! are the fleet's (a service's lag is counted along the probes of one
//! replica, so a hand-over starts a new cadence); beacon's max lag is the
//! largest any replica reported; CPU is the sum of every replica's (per
//! 1,000 probes of the fleet, and as a share of one core); RSS is per
//! replica: the largest median and peak, and the sum of the medians; the
//! write batch latency is over every replica's batches (their histograms
//! added); `/` and summary.json are read from replica 0; share min / max is
//! the fewest and most probes one replica sent in the window (by the
//! probes' `Beacon-Member` header), as a share of the fleet's; lost is
//! counted after every replica was stopped with SIGTERM (a service probed
//! twice during the start's hand-over is two requests and two results).

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const LISTENERS: usize = 4;

/// The cluster timing of `--replicas` runs (beacon's defaults, written out
/// so that a change of default does not change the benchmark).
const CLUSTER: &str = "[cluster]\nlease = \"15s\"\nheartbeat = \"5s\"\n";

/// What beacon logs (at info, `beacon::startup::jobs`) when a retention
/// pass has pruned and packed the history.
const RETENTION_DONE: &str = "packed raw results by service and hour";

#[derive(Debug, Clone)]
struct Run {
    services: usize,
    interval: Duration,
    seconds: u64,
    store: &'static str,
    keep_alive: bool,
    /// Request `/` and summary.json during the run.
    page: bool,
    /// Start from 90 days of history rather than an empty store.
    history: bool,
    /// `beacon serve` processes on the one database.
    replicas: usize,
    /// Only the first this many services are public (`public = false` for
    /// the rest); all when `None`.
    public: Option<usize>,
    /// Wait for the end of the first retention pass before the warm-up
    /// (a minute after start; not for `--smoke`).
    after_retention: bool,
}

/// One request the fleet answered.
#[derive(Debug, Clone, Copy)]
struct Arrival {
    service: u32,
    /// Index in [`Seen::members`] of its `Beacon-Member` header.
    member: u16,
    /// µs since the fleet started.
    at: u64,
}

/// Every request the fleet answered, and the `Beacon-Member` values they
/// carried ("" for none): a handful, so a linear search is the cheap way.
#[derive(Debug, Default)]
struct Seen {
    arrivals: Vec<Arrival>,
    members: Vec<String>,
}

impl Seen {
    fn record(&mut self, service: u32, member: &[u8], at: u64) {
        let member = match self.members.iter().position(|m| m.as_bytes() == member) {
            Some(i) => i,
            None => {
                self.members
                    .push(String::from_utf8_lossy(member).into_owned());
                self.members.len() - 1
            }
        };
        self.arrivals.push(Arrival {
            service,
            member: member as u16,
            at,
        });
    }
}

struct Fleet {
    ports: Vec<u16>,
    seen: Arc<Mutex<Seen>>,
    epoch: Instant,
}

async fn fleet() -> anyhow::Result<Fleet> {
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let epoch = Instant::now();
    let mut ports = Vec::new();
    for _ in 0..LISTENERS {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        ports.push(listener.local_addr()?.port());
        let seen = seen.clone();
        let app = axum::Router::new().route(
            "/s/{n}",
            axum::routing::get(
                move |axum::extract::Path(n): axum::extract::Path<u32>,
                      headers: axum::http::HeaderMap| {
                    let seen = seen.clone();
                    async move {
                        let at = epoch.elapsed().as_micros() as u64;
                        let member = headers
                            .get("beacon-member")
                            .map_or(&b""[..], |v| v.as_bytes());
                        if let Ok(mut s) = seen.lock() {
                            s.record(n, member, at);
                        }
                        let json = |status: &'static str| {
                            (
                                [(axum::http::header::CONTENT_TYPE, "application/health+json")],
                                format!("{{\"status\":\"{status}\"}}"),
                            )
                        };
                        match n % 50 {
                            0 => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, json("fail")),
                            1 => {
                                tokio::time::sleep(Duration::from_millis(300)).await;
                                (axum::http::StatusCode::OK, json("pass"))
                            }
                            2 => (axum::http::StatusCode::OK, json("warn")),
                            _ => (axum::http::StatusCode::OK, json("pass")),
                        }
                    }
                },
            ),
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
    }
    Ok(Fleet { ports, seen, epoch })
}

/// `n` distinct free ports (all bound at once, so none is picked twice).
fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()?)
}

/// (utime + stime in seconds, VmRSS bytes, VmHWM bytes) of `pid`.
fn proc_figures(pid: u32) -> Option<(f64, u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = 100.0; // USER_HZ on Linux
    let cpu = (fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?) / ticks;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .map(|v| v * 1024)
    };
    Some((cpu, kb("VmRSS:")?, kb("VmHWM:")?))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// `histogram_quantile` over one histogram family in Prometheus text, the
/// buckets of every text (replicas with the same buckets) added.
fn histogram_quantile(texts: &[String], family: &str, q: f64) -> Option<f64> {
    let prefix = format!("{family}_bucket{{le=\"");
    let mut buckets: Vec<(f64, f64)> = texts
        .iter()
        .flat_map(|text| text.lines())
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|l| {
            let (le, rest) = l.split_once("\"}")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, rest.trim().parse().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            kept.1 += later.1;
        }
        same
    });
    let total = buckets.last()?.1;
    if total == 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for (le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(lower);
            }
            let inside = count - below;
            return Some(if inside == 0.0 {
                le
            } else {
                lower + (le - lower) * (rank - below) / inside
            });
        }
        lower = le;
        below = count;
    }
    None
}
/// Gives every service of `config_text` the history of a beacon that has
/// watched it for 90 days: a daily rollup for each of the 89 days before
/// today and an hourly one for each of the 23 hours before this one, as
/// many probes as `interval` makes, 5–25 ms each, and on one day in 40 a
/// few failures (so bars have outage days to draw). Written straight into
/// `rollups` before beacon starts; beacon's own probes add today's.
/// Returns the rows written.
async fn seed_history(url: &str, config_text: &str, interval: Duration) -> anyhow::Result<u64> {
    use beacon::config::{ConfigSource, DatabaseUrl};
    let config = beacon::config::from_toml(config_text, ConfigSource::Embedded, &|name| {
        (name == "BEACON_ADMIN_TOKEN").then(|| ADMIN_TOKEN.to_string())
    })?;
    let store = beacon::store::Store::connect(&DatabaseUrl::new(url.to_string())).await?;
    store.migrate().await?;
    let now = chrono::Utc::now().timestamp_millis();
    store.sync_services(&config.services, now).await?;
    store.close().await;
    let (hour, day) = (3_600_000i64, 86_400_000i64);
    let every = interval.as_millis().max(1) as i64;
    let rollups = |period: &str, back: i64, length: i64| {
        let start = now.div_euclid(length) * length;
        let per = (length / every).max(1);
        format!(
            "WITH RECURSIVE n(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM n WHERE n < {back}) \
             INSERT INTO rollups (service_id, period, bucket_start, up, down, latency_count, \
                latency_sum, latency_max, h01, h02) \
             SELECT s.id, '{period}', {start} - CAST(n.n AS BIGINT) * {length}, \
                {per} - CASE WHEN (s.id + n.n) % 40 = 0 THEN 3 ELSE 0 END, \
                CASE WHEN (s.id + n.n) % 40 = 0 THEN 3 ELSE 0 END, \
                {per}, {per} * 12, 25, {per} / 2, {per} - {per} / 2 \
             FROM services s, n"
        )
    };
    let statements = [rollups("d", 89, day), rollups("h", 23, hour)];
    let mut written = 0;
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await?;
        for sql in &statements {
            written += sqlx::query(sql).execute(&pool).await?.rows_affected();
        }
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await?;
        for sql in &statements {
            written += sqlx::query(sql).execute(&pool).await?.rows_affected();
        }
        pool.close().await;
    }
    Ok(written)
}

/// One `beacon serve` process of a run.
struct Replica {
    child: tokio::process::Child,
    pid: u32,
    base: String,
    log: std::path::PathBuf,
}

impl Replica {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// `url`'s body as JSON (Null if it cannot be had: /health answers 503
/// with a body when it is not `pass`, so the status is not checked).
async fn json_at(client: &reqwest::Client, url: &str) -> Value {
    match client.get(url).send().await {
        Ok(r) => serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

/// The admin token of the benchmark's beacons.
const ADMIN_TOKEN: &str = "scale-benchmark-admin-token";

/// How soon the page follows a write: every 5 s until `end`, an incident
/// opened through `writer`'s admin API (the last replica), then the time
/// until `reader`'s `/api/v2/incidents/unresolved.json` (replica 0) shows it,
/// polled every 50 ms (30 s if never), then resolved again. With one
/// replica both are the same; with several the write crosses replicas.
async fn write_to_page(
    client: reqwest::Client,
    writer: String,
    reader: String,
    end: Instant,
) -> Vec<f64> {
    let mut out = Vec::new();
    let mut n = 0;
    while Instant::now() + Duration::from_secs(5) < end {
        tokio::time::sleep(Duration::from_secs(5)).await;
        n += 1;
        let title = format!("Benchmark write {n}");
        let body = json!({"title": title, "impact": "minor", "status": "investigating",
            "message": "Measuring how soon the page follows.", "services": [], "notify": false});
        let written = Instant::now();
        let Ok(response) = client
            .post(format!("{writer}/admin/api/incidents"))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
        else {
            continue;
        };
        let id = json_of(response).await["id"].clone();
        if id.is_null() {
            continue;
        }
        let seen = loop {
            let page = client
                .get(format!("{reader}/api/v2/incidents/unresolved.json"))
                .send()
                .await;
            if let Ok(page) = page {
                if page.text().await.is_ok_and(|t| t.contains(&title)) {
                    break written.elapsed();
                }
            }
            if written.elapsed() > Duration::from_secs(30) {
                break written.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        out.push(seen.as_secs_f64() * 1000.0);
        let _ = client
            .post(format!("{writer}/admin/api/incidents/{id}/updates"))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body(json!({"status": "resolved", "message": "Done.", "notify": false}).to_string())
            .send()
            .await;
    }
    out
}

async fn json_of(response: reqwest::Response) -> Value {
    serde_json::from_str(&response.text().await.unwrap_or_default()).unwrap_or(Value::Null)
}

async fn run(run: &Run, fleet: &Fleet) -> anyhow::Result<Value> {
    let dir = tempfile::tempdir()?;
    let (url, pg) = match run.store {
        "postgres" => {
            use sqlx::Connection;
            let admin = std::env::var("BEACON_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
            let name = format!("beacon_scale_{}_{}", std::process::id(), run.services);
            let mut conn = sqlx::PgConnection::connect(&admin).await?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\""))
                .execute(&mut conn)
                .await?;
            sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                .execute(&mut conn)
                .await?;
            let mut url = url::Url::parse(&admin)?;
            url.set_path(&name);
            (url.to_string(), Some((admin, name)))
        }
        _ => (format!("sqlite://{}/beacon.db", dir.path().display()), None),
    };
    let ports = free_ports(run.replicas)?;
    let timeout = (run.interval / 2).min(Duration::from_secs(5));
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:{}\"\ntitle = \"Scale\"\n[storage]\nurl = \"{url}\"\n",
        ports[0]
    );
    if run.replicas > 1 {
        text.push_str(CLUSTER);
    }
    text.push_str("[admin]\ntokens = [\"${BEACON_ADMIN_TOKEN}\"]\n");
    // More of the config, e.g. "[metrics]\nper_service = false".
    if let Ok(tables) = std::env::var("BEACON_BENCH_TABLES") {
        text.push_str(&tables);
        text.push('\n');
    }
    for i in 0..run.services {
        text.push_str(&format!(
            "[[service]]\nname = \"svc-{i}\"\nurl = \"http://127.0.0.1:{}/s/{i}\"\ninterval = \"{}ms\"\ntimeout = \"{}ms\"\nkeep_alive = {}\npublic = {}\n",
            fleet.ports[i % fleet.ports.len()],
            run.interval.as_millis(),
            timeout.as_millis(),
            run.keep_alive,
            run.public.is_none_or(|n| i < n)
        ));
    }
    let history_rows = if run.history {
        seed_history(&url, &text, run.interval).await?
    } else {
        0
    };
    let config = dir.path().join("beacon.toml");
    std::fs::write(&config, text)?;

    let arrivals_before = fleet.seen.lock().map(|s| s.arrivals.len()).unwrap_or(0);
    // For profiling: another beacon binary (one built with the system
    // allocator, say) and a command to run it under (`heaptrack`).
    let binary = std::env::var("BEACON_BENCH_BINARY")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_beacon").into());
    let wrapper = std::env::var("BEACON_BENCH_WRAPPER").unwrap_or_default();
    // Each replica's runtime workers, as a CPU limit would size them (see
    // the module doc); beacon's own default (one per core) when unset.
    let workers = std::env::var("BEACON_BENCH_WORKERS").ok();
    if let Some(n) = &workers {
        eprintln!("scale: each beacon with TOKIO_WORKER_THREADS={n}");
    }
    let mut replicas = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let log = dir.path().join(format!("beacon-{i}.log"));
        let mut command = wrapper.split_whitespace().chain([binary.as_str()]);
        let program = command.next().unwrap_or(binary.as_str());
        let mut command = {
            let mut c = tokio::process::Command::new(program);
            c.args(command);
            if let Some(n) = &workers {
                c.env("TOKIO_WORKER_THREADS", n);
            }
            c
        };
        let child = command
            .args(["--config"])
            .arg(&config)
            .arg("serve")
            // Info from the jobs: the end of the first retention pass.
            .env("RUST_LOG", "warn,beacon::startup::jobs=info")
            .env("BEACON_ADMIN_TOKEN", ADMIN_TOKEN)
            // One config for every replica; each its own port.
            .env("BEACON_LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            // Whatever ends this run early takes the replicas with it.
            .kill_on_drop(true)
            .spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow::anyhow!("beacon {i} exited at once"))?;
        replicas.push(Replica {
            child,
            pid,
            base: format!("http://127.0.0.1:{port}"),
            log,
        });
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let started = Instant::now();
    let exited = |replicas: &mut [Replica]| -> anyhow::Result<()> {
        for (i, r) in replicas.iter_mut().enumerate() {
            if let Ok(Some(status)) = r.child.try_wait() {
                anyhow::bail!("beacon {i} exited ({status}): {}", r.log());
            }
        }
        Ok(())
    };
    // Live (`/livez`), then ready (`/readyz`: the first snapshot, with the
    // whole history, is built and the public routes answer), every replica.
    let mut reached = Vec::new();
    for path in ["/livez", "/readyz"] {
        for i in 0..replicas.len() {
            let url = format!("{}{path}", replicas[i].base);
            while !client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                exited(&mut replicas)?;
                anyhow::ensure!(
                    started.elapsed() < Duration::from_secs(600),
                    "beacon {i} never answered {path}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        reached.push(started.elapsed().as_secs_f64());
    }
    let (start_secs, ready_secs) = (reached[0], reached[1]);
    // Each replica's member id (its probes' `Beacon-Member`); with several,
    // wait until each sees all of them, so that the services are divided.
    let mut members = vec![String::new(); replicas.len()];
    if replicas.len() > 1 {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let mut seen = Vec::new();
            for (i, r) in replicas.iter().enumerate() {
                let health = json_at(&client, &format!("{}/health", r.base)).await;
                if let Some(id) = health["cluster"]["member"].as_str() {
                    members[i] = id.to_string();
                }
                seen.push(health["cluster"]["members"].as_array().map_or(0, Vec::len));
            }
            if seen.iter().all(|&n| n == replicas.len()) {
                break;
            }
            exited(&mut replicas)?;
            anyhow::ensure!(
                Instant::now() < deadline,
                "the {} replicas never all saw each other within 120 s: members seen {seen:?}",
                replicas.len()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let cluster_secs = started.elapsed().as_secs_f64();
    // The first retention pass (a minute after start, then once an hour:
    // the leader prunes and packs the whole fleet's history) is left out
    // of the window. It fell inside one replica's window and mostly before
    // three replicas' (which take longer to start), so it was counted for
    // one and not for the three.
    if run.after_retention {
        // A pass skipped for want of a leader comes 5 minutes later.
        let deadline = Instant::now() + Duration::from_secs(420);
        while !replicas.iter().any(|r| r.log().contains(RETENTION_DONE)) {
            exited(&mut replicas)?;
            anyhow::ensure!(
                Instant::now() < deadline,
                "no replica logged the end of its first retention pass (\"{RETENTION_DONE}\") within 420 s"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        eprintln!(
            "scale: the first retention pass ended {:.1} s after the start",
            started.elapsed().as_secs_f64()
        );
    }
    // One interval of warm-up: every service has had its first probe.
    tokio::time::sleep(run.interval).await;

    let window_start = fleet.epoch.elapsed().as_micros() as u64;
    // For a profiler waiting on stderr (docs/performance.md: the profile
    // of three replicas): the window is what it should sample.
    // The wall-clock times say whether a window held the turn of an hour
    // (the history's full read).
    eprintln!(
        "scale: the measured window starts ({} s) at {}",
        run.seconds,
        chrono::Utc::now().format("%H:%M:%S UTC")
    );
    let cpu0 = replicas
        .iter()
        .enumerate()
        .map(|(i, r)| {
            proc_figures(r.pid)
                .map(|f| f.0)
                .ok_or_else(|| anyhow::anyhow!("no /proc for beacon {i}"))
        })
        .collect::<anyhow::Result<Vec<f64>>>()?;
    let t0 = Instant::now();
    let mut rss: Vec<Vec<f64>> = vec![Vec::new(); replicas.len()];
    let mut monitor_lag_max: f64 = 0.0;
    let mut page = Vec::new();
    let mut summary = Vec::new();
    let mut next_sample = t0;
    let base = replicas[0].base.clone();
    let follows = tokio::spawn(write_to_page(
        client.clone(),
        replicas[replicas.len() - 1].base.clone(),
        base.clone(),
        t0 + Duration::from_secs(run.seconds),
    ));
    while t0.elapsed() < Duration::from_secs(run.seconds) {
        for (path, into) in [("/", &mut page), ("/api/v2/summary.json", &mut summary)] {
            if !run.page {
                break;
            }
            let at = Instant::now();
            if let Ok(r) = client.get(format!("{base}{path}")).send().await {
                if r.bytes().await.is_ok() {
                    into.push(at.elapsed().as_secs_f64() * 1000.0);
                }
            }
        }
        if Instant::now() >= next_sample {
            next_sample += Duration::from_secs(1);
            for (r, rss) in replicas.iter().zip(&mut rss) {
                if let Some((_, b, _)) = proc_figures(r.pid) {
                    rss.push(b as f64);
                }
                // /health, as a Kubernetes probe or a person reads it (a
                // /metrics scrape a second would cost more than it measures).
                let doc = json_at(&client, &format!("{}/health", r.base)).await;
                if let Some(ms) = doc["checks"]["monitor:lag"][0]["observedValue"].as_f64() {
                    monitor_lag_max = monitor_lag_max.max(ms / 1000.0);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let window = t0.elapsed().as_secs_f64();
    eprintln!(
        "scale: the measured window ends at {}",
        chrono::Utc::now().format("%H:%M:%S UTC")
    );
    let mut follows = follows.await?;
    follows.sort_by(f64::total_cmp);
    let window_end = fleet.epoch.elapsed().as_micros() as u64;
    let mut cpu = Vec::new();
    let mut hwm = Vec::new();
    let mut metrics = Vec::new();
    let mut health = Vec::new();
    for (i, r) in replicas.iter().enumerate() {
        let (cpu1, _, peak) =
            proc_figures(r.pid).ok_or_else(|| anyhow::anyhow!("no /proc for beacon {i}"))?;
        cpu.push(cpu1 - cpu0[i]);
        hwm.push(peak as f64);
        metrics.push(
            client
                .get(format!("{}/metrics", r.base))
                .send()
                .await?
                .text()
                .await?,
        );
        health.push(json_at(&client, &format!("{}/health", r.base)).await);
    }

    // A graceful stop of every replica at once: every probe that reached
    // the fleet is written.
    for r in &replicas {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &r.pid.to_string()])
            .status();
    }
    for (i, r) in replicas.iter_mut().enumerate() {
        let exit = tokio::time::timeout(Duration::from_secs(120), r.child.wait())
            .await
            .map_err(|_| anyhow::anyhow!("beacon {i} did not stop within 120 s of SIGTERM"))??;
        anyhow::ensure!(exit.success(), "beacon {i} exited with {exit}: {}", r.log());
    }

    let (arrivals, seen_members): (Vec<Arrival>, Vec<String>) = fleet
        .seen
        .lock()
        .map(|s| (s.arrivals[arrivals_before..].to_vec(), s.members.clone()))
        .unwrap_or_default();
    let store =
        beacon::store::Store::connect(&beacon::config::DatabaseUrl::new(url.clone())).await?;
    let stored = store.count_rows("check_results").await?;
    store.close().await;
    let lost = arrivals.len() as i64 - stored;
    if lost != 0 {
        // Say where they went while the logs are still here: each
        // replica's warnings and errors (a write given up at the stop, a
        // result refused), and the probes of the last seconds by replica.
        eprintln!("scale: {lost} results the fleet answered are not in the store");
        let last = arrivals.iter().map(|a| a.at).max().unwrap_or(0);
        let mut late: HashMap<u16, usize> = HashMap::new();
        for a in arrivals.iter().filter(|a| a.at + 10_000_000 >= last) {
            *late.entry(a.member).or_default() += 1;
        }
        eprintln!("scale: probes in the last 10 s before the stop, by Beacon-Member index: {late:?} (members {seen_members:?})");
        for (i, r) in replicas.iter().enumerate() {
            let log = r.log();
            let noted: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                .filter(|l| !l.contains("slow statement") && !l.contains("503 Service Unavailable"))
                .collect();
            for line in &noted[noted.len().saturating_sub(40)..] {
                eprintln!("scale: beacon {i}: {line}");
            }
        }
    }

    // Two replicas probing one service at the same moment (a hand-over,
    // or a member briefly taken for dead) send two requests, and the store
    // keeps one row of a service per millisecond (ON CONFLICT (service_id,
    // checked_at) DO NOTHING): not lost, probed twice. Said for every run
    // of several replicas, with how many fell inside the window.
    if replicas.len() > 1 {
        let mut by_service: HashMap<u32, Vec<(u64, u16)>> = HashMap::new();
        for a in &arrivals {
            by_service
                .entry(a.service)
                .or_default()
                .push((a.at, a.member));
        }
        let (mut twice, mut twice_in_window) = (0usize, 0usize);
        for v in by_service.values_mut() {
            v.sort_unstable();
            for w in v.windows(2) {
                if w[0].1 != w[1].1 && w[1].0 - w[0].0 < 5_000 {
                    twice += 1;
                    twice_in_window += usize::from(w[0].0 >= window_start && w[0].0 < window_end);
                }
            }
        }
        eprintln!(
            "scale: arrivals of one service from two replicas within 5 ms of each other: {twice} ({twice_in_window} in the window)"
        );
    }
    let in_window = |a: &&Arrival| a.at >= window_start && a.at < window_end;
    let window_arrivals = arrivals.iter().filter(in_window).count();
    // Probes in the window by `Beacon-Member`, and each replica's share.
    let mut by_member: HashMap<&str, u64> = HashMap::new();
    for a in arrivals.iter().filter(in_window) {
        let member = seen_members
            .get(a.member as usize)
            .map_or("", String::as_str);
        *by_member.entry(member).or_default() += 1;
    }
    let shares: Vec<f64> = if replicas.len() == 1 {
        vec![1.0]
    } else {
        members
            .iter()
            .map(|m| {
                by_member.get(m.as_str()).copied().unwrap_or(0) as f64
                    / window_arrivals.max(1) as f64
            })
            .collect()
    };
    // A service's cadence, along the probes one replica sent it: a
    // hand-over to another replica starts another.
    let mut cadences: HashMap<(u32, u16), Vec<u64>> = HashMap::new();
    for a in &arrivals {
        cadences
            .entry((a.service, a.member))
            .or_default()
            .push(a.at);
    }
    let interval_us = run.interval.as_micros() as f64;
    let mut lags: Vec<f64> = Vec::new();
    for times in cadences.values_mut() {
        times.sort_unstable();
        let first = times[0] as f64;
        for (k, at) in times.iter().enumerate().skip(1) {
            if *at >= window_start && *at < window_end {
                lags.push(((*at as f64 - first - k as f64 * interval_us) / 1000.0).max(0.0));
            }
        }
    }
    lags.sort_by(f64::total_cmp);
    page.sort_by(f64::total_cmp);
    summary.sort_by(f64::total_cmp);
    for r in &mut rss {
        r.sort_by(f64::total_cmp);
    }
    let cpu_sum: f64 = cpu.iter().sum();
    let planned = run.services as f64 / run.interval.as_secs_f64();
    let achieved = window_arrivals as f64 / window;
    let mb = |b: f64| b / 1_048_576.0;
    let rss_median: Vec<f64> = rss.iter().map(|r| mb(percentile(r, 0.5))).collect();
    let rss_peak: Vec<f64> = hwm.iter().map(|&b| mb(b)).collect();
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let write_batch = |texts: &[String]| {
        let family = "beacon_store_write_duration_seconds";
        json!({
            "p50": histogram_quantile(texts, family, 0.5).map(|s| s * 1000.0),
            "p99": histogram_quantile(texts, family, 0.99).map(|s| s * 1000.0),
        })
    };
    let skipped: Vec<&Value> = health
        .iter()
        .map(|h| &h["checks"]["monitor:skipped"][0]["observedValue"])
        .collect();
    let figures = json!({
        "services": run.services,
        "interval_s": run.interval.as_secs_f64(),
        "store": run.store,
        "replicas": run.replicas,
        "public": run.public.unwrap_or(run.services),
        "keep_alive": run.keep_alive,
        "history_rollups": history_rows,
        "window_s": window,
        "startup_s": start_secs,
        "ready_s": ready_secs,
        "cluster_formed_s": (run.replicas > 1).then_some(cluster_secs),
        "planned_probes_per_s": planned,
        "achieved_probes_per_s": achieved,
        "share_min": shares.iter().copied().fold(f64::INFINITY, f64::min),
        "share_max": max(&shares),
        "probes_by_member": by_member,
        "members": members,
        "lag_ms": { "p50": percentile(&lags, 0.5), "p99": percentile(&lags, 0.99), "max": lags.last().copied().unwrap_or(0.0) },
        "monitor_lag_max_ms": monitor_lag_max * 1000.0,
        "cpu_sum": cpu_sum,
        "cpu_s_by_replica": cpu,
        "cpu_s_per_1k_probes": if window_arrivals > 0 { cpu_sum / (window_arrivals as f64 / 1000.0) } else { 0.0 },
        "cpu_share_of_one_core": cpu_sum / window,
        "rss_peak_mb": max(&rss_peak),
        "rss_median_mb": max(&rss_median),
        "rss_median_sum_mb": rss_median.iter().sum::<f64>(),
        "rss_median_mb_by_replica": rss_median,
        "rss_peak_mb_by_replica": rss_peak,
        "write_batch_ms": write_batch(&metrics),
        "write_batch_ms_by_replica": metrics.chunks(1).map(write_batch).collect::<Vec<_>>(),
        "page_ms": { "p50": percentile(&page, 0.5), "p99": percentile(&page, 0.99) },
        "summary_json_ms": { "p50": percentile(&summary, 0.5), "p99": percentile(&summary, 0.99) },
        "write_to_page_ms": { "p50": percentile(&follows, 0.5), "max": follows.last().copied().unwrap_or(0.0), "writes": follows.len() },
        "fleet_requests": arrivals.len(),
        "stored_results": stored,
        "lost": lost,
        "health_status": health[0]["status"],
        "health_status_by_replica": health.iter().map(|h| h["status"].clone()).collect::<Vec<_>>(),
        "health_lag_output": health[0]["checks"]["monitor:lag"][0]["output"],
        "slots_skipped": if skipped.len() == 1 {
            skipped[0].clone()
        } else {
            json!(skipped.iter().filter_map(|v| v.as_u64()).sum::<u64>())
        },
    });
    if let Some((admin, name)) = pg {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&admin).await?;
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut conn)
            .await;
    }
    Ok(figures)
}

fn row(f: &Value) -> String {
    let n = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let replicas = f["replicas"].as_u64().unwrap_or(1);
    let (share, rss) = if replicas > 1 {
        (
            format!(
                "{:.1} / {:.1} % ({:.1})",
                n(&f["share_min"]) * 100.0,
                n(&f["share_max"]) * 100.0,
                100.0 / replicas as f64
            ),
            format!(
                "{:.0} / {:.0} (Σ {:.0})",
                n(&f["rss_median_mb"]),
                n(&f["rss_peak_mb"]),
                n(&f["rss_median_sum_mb"])
            ),
        )
    } else {
        (
            "–".to_string(),
            format!(
                "{:.0} / {:.0}",
                n(&f["rss_median_mb"]),
                n(&f["rss_peak_mb"])
            ),
        )
    };
    let mut health: Vec<&str> = f["health_status_by_replica"]
        .as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap_or("?")).collect())
        .unwrap_or_default();
    health.sort_unstable();
    health.dedup();
    format!(
        "| {} | {} s | {} | {} | {} | {} | {:.0} / {:.0} | {} | {:.0} / {:.0} / {:.0} | {:.0} | {:.2} | {:.1} % | {} | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} / {:.1} | {:.0} / {:.0} | {} | {} | {:.2} / {:.2} |",
        f["services"],
        f["interval_s"],
        f["store"].as_str().unwrap_or(""),
        replicas,
        f["keep_alive"],
        if f["history_rollups"].as_u64().unwrap_or(0) > 0 { "90 d" } else { "none" },
        n(&f["achieved_probes_per_s"]),
        n(&f["planned_probes_per_s"]),
        share,
        n(&f["lag_ms"]["p50"]),
        n(&f["lag_ms"]["p99"]),
        n(&f["lag_ms"]["max"]),
        n(&f["monitor_lag_max_ms"]),
        n(&f["cpu_s_per_1k_probes"]),
        n(&f["cpu_share_of_one_core"]) * 100.0,
        rss,
        n(&f["write_batch_ms"]["p50"]),
        n(&f["write_batch_ms"]["p99"]),
        n(&f["page_ms"]["p50"]),
        n(&f["page_ms"]["p99"]),
        n(&f["summary_json_ms"]["p50"]),
        n(&f["summary_json_ms"]["p99"]),
        n(&f["write_to_page_ms"]["p50"]),
        n(&f["write_to_page_ms"]["max"]),
        f["lost"],
        if health.is_empty() { "?".to_string() } else { health.join(" · ") },
        n(&f["startup_s"]),
        n(&f["ready_s"]),
    )
}

fn parse_args() -> anyhow::Result<(Vec<Run>, Option<String>)> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let json = value("--json");
    let replicas: usize = match value("--replicas") {
        Some(n) => n
            .parse()
            .map_err(|e| anyhow::anyhow!("--replicas {n}: {e}"))?,
        None => 1,
    };
    anyhow::ensure!(replicas >= 1, "--replicas must be at least 1");
    if args.iter().any(|a| a == "--smoke") {
        anyhow::ensure!(
            replicas == 1,
            "--smoke runs one replica: leave out --replicas"
        );
        return Ok((
            vec![Run {
                services: 20,
                interval: Duration::from_secs(1),
                seconds: 2,
                store: "sqlite",
                keep_alive: false,
                page: true,
                history: true,
                replicas: 1,
                public: None,
                after_retention: false,
            }],
            json,
        ));
    }
    if let Some(services) = value("--services") {
        let interval = humantime::parse_duration(&value("--interval").unwrap_or("30s".into()))?;
        let store = if value("--store").as_deref() == Some("postgres") {
            "postgres"
        } else {
            "sqlite"
        };
        anyhow::ensure!(
            replicas == 1 || store == "postgres",
            "--replicas {replicas} needs --store postgres: several replicas share one PostgreSQL \
             database, and a second beacon serve on one SQLite file is refused"
        );
        return Ok((
            vec![Run {
                services: services.parse()?,
                interval,
                seconds: value("--seconds").map_or(Ok(60), |s| s.parse())?,
                store,
                keep_alive: value("--keep-alive").as_deref() == Some("true"),
                page: !args.iter().any(|a| a == "--no-page"),
                history: !args.iter().any(|a| a == "--empty"),
                replicas,
                public: value("--public").map(|n| n.parse()).transpose()?,
                after_retention: true,
            }],
            json,
        ));
    }
    anyhow::ensure!(
        replicas == 1,
        "--replicas {replicas} is for one run: give --services N --store postgres with it"
    );
    let seconds = value("--seconds").map_or(Ok(60), |s| s.parse())?;
    let page = !args.iter().any(|a| a == "--no-page");
    let history = !args.iter().any(|a| a == "--empty");
    let r = |services, interval_s, store, keep_alive| Run {
        services,
        interval: Duration::from_secs(interval_s),
        seconds,
        store,
        keep_alive,
        page,
        history,
        replicas: 1,
        public: None,
        after_retention: true,
    };
    Ok((
        vec![
            r(1_000, 5, "sqlite", false),
            r(1_000, 5, "postgres", false),
            r(10_000, 30, "sqlite", false),
            r(10_000, 30, "postgres", false),
            r(10_000, 30, "sqlite", true),
            r(1_000, 30, "sqlite", false),
            r(5_000, 30, "sqlite", false),
            r(20_000, 30, "sqlite", false),
        ],
        json,
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (runs, json_path) = parse_args()?;
    let fleet = fleet().await?;
    println!("scale: beacon (release) probing a local fleet ({LISTENERS} listeners; 2 % failing, 2 % slow, 2 % degraded)");
    println!("| services | interval | store | replicas | keep-alive | history | probes/s achieved / planned | probes per replica min / max (even) | lag p50 / p99 / max ms | beacon's max lag ms | CPU s per 1k probes | CPU of one core | RSS median / peak MB (per replica; Σ medians) | write batch p50 / p99 ms | `/` p50 / p99 ms | summary.json p50 / p99 ms | write → page p50 / max ms | lost | /health | start: `/livez` / `/readyz` s |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut all = Vec::new();
    for r in &runs {
        let figures = run(r, &fleet).await?;
        println!("{}", row(&figures));
        all.push(figures);
    }
    if let Some(path) = json_path {
        std::fs::write(&path, serde_json::to_string_pretty(&all)?)?;
        println!("figures written to {path}");
    }
    Ok(())
}
