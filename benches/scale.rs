//! Monitor at scale: a fleet of virtual services on 127.0.0.1, a real
//! `beacon` process probing them, and what it costs.
//!
//!   cargo bench --bench scale                    # the set in docs/performance.md
//!   cargo bench --bench scale -- --services 10000 --interval 30s --seconds 60 --store postgres
//!   cargo bench --bench scale -- --smoke         # CI: seconds, nothing asserted
//!
//! Options: `--services N`, `--interval 30s`, `--seconds S` (measured, after
//! one interval of warm-up), `--store sqlite|postgres`, `--keep-alive
//! true|false` (default: beacon's, fresh connections), `--no-page` (no
//! page requests: the monitor's cost alone), `--empty` (start from an empty
//! store instead of 90 days of history), `--json FILE` (every run's figures,
//! for comparing commits).
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

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const LISTENERS: usize = 4;

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
}

/// Request arrivals: (service, µs since the fleet started).
type Arrivals = Arc<Mutex<Vec<(u32, u64)>>>;

struct Fleet {
    ports: Vec<u16>,
    arrivals: Arrivals,
    epoch: Instant,
}

async fn fleet() -> anyhow::Result<Fleet> {
    let arrivals: Arrivals = Arc::default();
    let epoch = Instant::now();
    let mut ports = Vec::new();
    for _ in 0..LISTENERS {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        ports.push(listener.local_addr()?.port());
        let arrivals = arrivals.clone();
        let app = axum::Router::new().route(
            "/s/{n}",
            axum::routing::get(move |axum::extract::Path(n): axum::extract::Path<u32>| {
                let arrivals = arrivals.clone();
                async move {
                    let at = epoch.elapsed().as_micros() as u64;
                    if let Ok(mut a) = arrivals.lock() {
                        a.push((n, at));
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
            }),
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
    }
    Ok(Fleet {
        ports,
        arrivals,
        epoch,
    })
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
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

/// `histogram_quantile` over one histogram family in Prometheus text.
fn histogram_quantile(text: &str, family: &str, q: f64) -> Option<f64> {
    let mut buckets: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{family}_bucket{{le=\"")))
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
    let config = beacon::config::from_toml(config_text, ConfigSource::Embedded, &|_| None)?;
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
    let port = free_port()?;
    let timeout = (run.interval / 2).min(Duration::from_secs(5));
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\ntitle = \"Scale\"\n[storage]\nurl = \"{url}\"\n"
    );
    for i in 0..run.services {
        text.push_str(&format!(
            "[[service]]\nname = \"svc-{i}\"\nurl = \"http://127.0.0.1:{}/s/{i}\"\ninterval = \"{}ms\"\ntimeout = \"{}ms\"\nkeep_alive = {}\n",
            fleet.ports[i % fleet.ports.len()],
            run.interval.as_millis(),
            timeout.as_millis(),
            run.keep_alive
        ));
    }
    let history_rows = if run.history {
        seed_history(&url, &text, run.interval).await?
    } else {
        0
    };
    let config = dir.path().join("beacon.toml");
    std::fs::write(&config, text)?;
    let log = std::fs::File::create(dir.path().join("beacon.log"))?;

    let arrivals_before = fleet.arrivals.lock().map(|a| a.len()).unwrap_or(0);
    // For profiling: another beacon binary (one built with the system
    // allocator, say) and a command to run it under (`heaptrack`).
    let binary = std::env::var("BEACON_BENCH_BINARY")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_beacon").into());
    let wrapper = std::env::var("BEACON_BENCH_WRAPPER").unwrap_or_default();
    let mut command = wrapper.split_whitespace().chain([binary.as_str()]);
    let program = command.next().unwrap_or(binary.as_str());
    let mut child = tokio::process::Command::new(program)
        .args(command)
        .args(["--config"])
        .arg(&config)
        .arg("serve")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?;
    let pid = child
        .id()
        .ok_or_else(|| anyhow::anyhow!("beacon exited at once"))?;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let started = Instant::now();
    loop {
        if client.get(format!("{base}/livez")).send().await.is_ok() {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            anyhow::bail!(
                "beacon exited ({status}): {}",
                std::fs::read_to_string(dir.path().join("beacon.log")).unwrap_or_default()
            );
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "beacon never answered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let start_secs = started.elapsed().as_secs_f64();
    // One interval of warm-up: every service has had its first probe.
    tokio::time::sleep(run.interval).await;

    let window_start = fleet.epoch.elapsed().as_micros() as u64;
    let (cpu0, _, _) = proc_figures(pid).ok_or_else(|| anyhow::anyhow!("no /proc for beacon"))?;
    let t0 = Instant::now();
    let mut rss = Vec::new();
    let mut monitor_lag_max: f64 = 0.0;
    let mut page = Vec::new();
    let mut summary = Vec::new();
    let mut next_sample = t0;
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
            if let Some((_, r, _)) = proc_figures(pid) {
                rss.push(r as f64);
            }
            // /health, as a Kubernetes probe or a person reads it (a
            // /metrics scrape a second would cost more than it measures).
            if let Ok(r) = client.get(format!("{base}/health")).send().await {
                let doc: Value = serde_json::from_str(&r.text().await.unwrap_or_default())
                    .unwrap_or(Value::Null);
                if let Some(ms) = doc["checks"]["monitor:lag"][0]["observedValue"].as_f64() {
                    monitor_lag_max = monitor_lag_max.max(ms / 1000.0);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let window = t0.elapsed().as_secs_f64();
    let window_end = fleet.epoch.elapsed().as_micros() as u64;
    let (cpu1, _, hwm) = proc_figures(pid).ok_or_else(|| anyhow::anyhow!("no /proc for beacon"))?;
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let health: Value = serde_json::from_str(
        &client
            .get(format!("{base}/health"))
            .send()
            .await?
            .text()
            .await?,
    )
    .unwrap_or(Value::Null);

    // A graceful stop: every probe that reached the fleet is written.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let exit = tokio::time::timeout(Duration::from_secs(120), child.wait()).await??;
    anyhow::ensure!(exit.success(), "beacon exited with {exit}");

    let arrivals: Vec<(u32, u64)> = fleet
        .arrivals
        .lock()
        .map(|a| a[arrivals_before..].to_vec())
        .unwrap_or_default();
    let store =
        beacon::store::Store::connect(&beacon::config::DatabaseUrl::new(url.clone())).await?;
    let stored = store.count_rows("check_results").await?;
    store.close().await;
    let lost = arrivals.len() as i64 - stored;

    let in_window = arrivals
        .iter()
        .filter(|(_, at)| *at >= window_start && *at < window_end)
        .count();
    let mut per_service: HashMap<u32, Vec<u64>> = HashMap::new();
    for (n, at) in &arrivals {
        per_service.entry(*n).or_default().push(*at);
    }
    let interval_us = run.interval.as_micros() as f64;
    let mut lags: Vec<f64> = Vec::new();
    for times in per_service.values_mut() {
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
    rss.sort_by(f64::total_cmp);
    let cpu = cpu1 - cpu0;
    let planned = run.services as f64 / run.interval.as_secs_f64();
    let achieved = in_window as f64 / window;
    let mb = |b: f64| b / 1_048_576.0;
    let figures = json!({
        "services": run.services,
        "interval_s": run.interval.as_secs_f64(),
        "store": run.store,
        "keep_alive": run.keep_alive,
        "history_rollups": history_rows,
        "window_s": window,
        "startup_s": start_secs,
        "planned_probes_per_s": planned,
        "achieved_probes_per_s": achieved,
        "lag_ms": { "p50": percentile(&lags, 0.5), "p99": percentile(&lags, 0.99), "max": lags.last().copied().unwrap_or(0.0) },
        "monitor_lag_max_ms": monitor_lag_max * 1000.0,
        "cpu_s_per_1k_probes": if in_window > 0 { cpu / (in_window as f64 / 1000.0) } else { 0.0 },
        "cpu_share_of_one_core": cpu / window,
        "rss_peak_mb": mb(hwm as f64),
        "rss_median_mb": mb(percentile(&rss, 0.5)),
        "write_batch_ms": {
            "p50": histogram_quantile(&metrics, "beacon_store_write_duration_seconds", 0.5).map(|s| s * 1000.0),
            "p99": histogram_quantile(&metrics, "beacon_store_write_duration_seconds", 0.99).map(|s| s * 1000.0),
        },
        "page_ms": { "p50": percentile(&page, 0.5), "p99": percentile(&page, 0.99) },
        "summary_json_ms": { "p50": percentile(&summary, 0.5), "p99": percentile(&summary, 0.99) },
        "fleet_requests": arrivals.len(),
        "stored_results": stored,
        "lost": lost,
        "health_status": health["status"],
        "health_lag_output": health["checks"]["monitor:lag"][0]["output"],
        "slots_skipped": health["checks"]["monitor:skipped"][0]["observedValue"],
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
    format!(
        "| {} | {} s | {} | {} | {} | {:.0} / {:.0} | {:.0} / {:.0} / {:.0} | {:.0} | {:.2} | {:.1} % | {:.0} / {:.0} | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} / {:.1} | {} | {} |",
        f["services"],
        f["interval_s"],
        f["store"].as_str().unwrap_or(""),
        f["keep_alive"],
        if f["history_rollups"].as_u64().unwrap_or(0) > 0 { "90 d" } else { "none" },
        n(&f["achieved_probes_per_s"]),
        n(&f["planned_probes_per_s"]),
        n(&f["lag_ms"]["p50"]),
        n(&f["lag_ms"]["p99"]),
        n(&f["lag_ms"]["max"]),
        n(&f["monitor_lag_max_ms"]),
        n(&f["cpu_s_per_1k_probes"]),
        n(&f["cpu_share_of_one_core"]) * 100.0,
        n(&f["rss_median_mb"]),
        n(&f["rss_peak_mb"]),
        n(&f["write_batch_ms"]["p50"]),
        n(&f["write_batch_ms"]["p99"]),
        n(&f["page_ms"]["p50"]),
        n(&f["page_ms"]["p99"]),
        n(&f["summary_json_ms"]["p50"]),
        n(&f["summary_json_ms"]["p99"]),
        f["lost"],
        f["health_status"].as_str().unwrap_or("?"),
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
    if args.iter().any(|a| a == "--smoke") {
        return Ok((
            vec![Run {
                services: 20,
                interval: Duration::from_secs(1),
                seconds: 2,
                store: "sqlite",
                keep_alive: false,
                page: true,
                history: true,
            }],
            json,
        ));
    }
    if let Some(services) = value("--services") {
        let interval = humantime::parse_duration(&value("--interval").unwrap_or("30s".into()))?;
        return Ok((
            vec![Run {
                services: services.parse()?,
                interval,
                seconds: value("--seconds").map_or(Ok(60), |s| s.parse())?,
                store: if value("--store").as_deref() == Some("postgres") {
                    "postgres"
                } else {
                    "sqlite"
                },
                keep_alive: value("--keep-alive").as_deref() == Some("true"),
                page: !args.iter().any(|a| a == "--no-page"),
                history: !args.iter().any(|a| a == "--empty"),
            }],
            json,
        ));
    }
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
    println!("| services | interval | store | keep-alive | history | probes/s achieved / planned | lag p50 / p99 / max ms | beacon's max lag ms | CPU s per 1k probes | CPU of one core | RSS median / peak MB | write batch p50 / p99 ms | `/` p50 / p99 ms | summary.json p50 / p99 ms | lost | /health |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
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
