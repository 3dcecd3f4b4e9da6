//! How big beacon's history gets, and how fast its figures come back.
//!
//! Simulates 90 days of 200 services probed every 30 s with the default
//! 7-day raw retention, through the real write path (`Store::write_batch`:
//! results + rollups in one transaction per batch), then prunes and packs
//! the hours before the last one (as the hourly retention pass does) and
//! reports
//! bytes per raw result, database size, write throughput, and the time to
//! compute the page's figures. See docs/performance.md.
//!
//!   cargo bench --bench history                 # SQLite, and PostgreSQL if reachable
//!   BEACON_BENCH_SERVICES=50 cargo bench --bench history
//!
//! Shortcut, stated in the output: days 1–83 (whose raw results retention
//! deletes anyway) are written at one probe per service per 10 minutes, so
//! their rollup rows exist as in a real run; the last 7 days are written in
//! full at one probe per 30 s.

use std::time::{Duration, Instant};

use beacon::config::{DatabaseUrl, ServiceConfig};
use beacon::domain::Outcome;
use beacon::store::{Batch, CheckResult, Store};

const DAY_MS: i64 = 86_400_000;

fn env_or(name: &str, default: i64) -> i64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

struct Figures {
    kind: &'static str,
    raw_rows: i64,
    raw_bytes: Option<i64>,
    total_bytes: i64,
    rollup_rows: i64,
    write_rate: f64,
    summaries: Duration,
    windows: Duration,
    turn: Duration,
    snapshot: Duration,
}

async fn run(kind: &'static str, url: &str, services: i64) -> anyhow::Result<Figures> {
    let store = Store::connect(&DatabaseUrl::new(url)).await?;
    store.migrate().await?;
    let configs: Vec<ServiceConfig> = (0..services)
        .map(|i| {
            let mut s = ServiceConfig::watching_self("127.0.0.1:1".parse().expect("addr"));
            s.name = format!("Service {i}");
            s.slug = format!("service-{i}");
            s
        })
        .collect();
    let stored = store.sync_services(&configs, 0).await?;
    let ids: Vec<i64> = stored.iter().map(|s| s.id).collect();
    let end: i64 = 1_780_000_000_000; // a fixed moment, so runs compare
    let start = end - 90 * DAY_MS;
    let full_from = end - 7 * DAY_MS;

    let mut seed: u64 = 1;
    let mut next = move || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        seed >> 33
    };
    let mut batch = Batch::default();
    let mut written = 0i64;
    let mut full_written = 0i64;
    let mut full_time = Duration::ZERO;
    let mut t = start;
    while t < end {
        let full = t >= full_from;
        for id in &ids {
            let roll = next() % 1000;
            let outcome = match roll {
                0..=4 => Outcome::Down,
                5..=19 => Outcome::Degraded,
                _ => Outcome::Up,
            };
            batch.results.push(CheckResult {
                service_id: *id,
                checked_at: t + (id % 30) * 1000,
                outcome,
                maintenance: false,
                latency_ms: Some((20 + next() % 400) as i32),
                status_code: Some(if outcome == Outcome::Down { 503 } else { 200 }),
                reason: (outcome == Outcome::Down).then(|| "HTTP 503, expected 2xx".to_string()),
            });
        }
        if batch.results.len() >= 2000 {
            let began = Instant::now();
            store.write_batch(&batch).await?;
            if full {
                full_time += began.elapsed();
                full_written += batch.results.len() as i64;
            }
            written += batch.results.len() as i64;
            batch.results.clear();
        }
        t += if full { 30_000 } else { 600_000 };
    }
    store.write_batch(&batch).await?;
    written += batch.results.len() as i64;
    let pruned = store.prune(end, 7 * DAY_MS).await?;
    eprintln!(
        "{kind}: wrote {written} results, pruned {} raw and {} hourly rollups",
        pruned.results, pruned.rollups
    );

    // The retention pass then packs every hour before the last one
    // (store/packed.rs), as a running beacon's does each hour.
    let began = Instant::now();
    let packed = store.compact_results(end).await?;
    eprintln!(
        "{kind}: packed {} results into {} service-hours in {:.1} s",
        packed.results,
        packed.hours,
        began.elapsed().as_secs_f64()
    );
    let raw_rows = store.count_rows("check_results").await? + packed.results as i64;
    let rollup_rows = store.count_rows("rollups").await?;
    let (raw_bytes, total_bytes) = sizes(url).await?;

    let mut summaries = Vec::new();
    let mut windows = Vec::new();
    let mut turns = Vec::new();
    // An hour later on the same day (`end` is 20:26 UTC): what a running
    // beacon reads at an hour's turn (the 24 hours, yesterday and today),
    // against the full read above.
    let next_hour = end + 3_600_000;
    assert_eq!(next_hour / DAY_MS, end / DAY_MS, "the same UTC day");
    for _ in 0..15 {
        let began = Instant::now();
        store.service_summaries(end).await?;
        summaries.push(began.elapsed());
        let began = Instant::now();
        let read = beacon::snapshot::Histories::read(&store, end).await?;
        windows.push(began.elapsed());
        let began = Instant::now();
        let turned = read.turn_hour(&store, next_hour).await?;
        turns.push(began.elapsed());
        std::hint::black_box(turned);
    }
    // The page's figures (uptime per service and group over four windows,
    // banner, maintenance) computed from data already in memory, as the
    // refresher does after its reads.
    let on_page: Vec<_> = store
        .service_summaries(end)
        .await?
        .into_iter()
        .map(std::sync::Arc::new)
        .collect();
    let history = std::sync::Arc::new(beacon::snapshot::Histories::read(&store, end).await?);
    let inputs = beacon::snapshot::Inputs::read(&store, end, on_page, history).await?;
    let now = beacon::clock::ms_to_datetime(end).ok_or_else(|| anyhow::anyhow!("end"))?;
    let mut figures = Vec::new();
    for _ in 0..101 {
        let copy = inputs.clone();
        let began = Instant::now();
        let snapshot = beacon::snapshot::Snapshot::from_inputs(copy, "bench", &[], now);
        figures.push(began.elapsed());
        std::hint::black_box(snapshot);
    }
    store.close().await;
    Ok(Figures {
        snapshot: median(figures),
        kind,
        raw_rows,
        raw_bytes,
        total_bytes,
        rollup_rows,
        write_rate: full_written as f64 / full_time.as_secs_f64(),
        summaries: median(summaries),
        windows: median(windows),
        turn: median(turns),
    })
}

/// (bytes of the raw results, packed and not, with their indexes; bytes
/// of the whole database),
/// on a connection of the bench's own: the store keeps its pools to itself.
async fn sizes(url: &str) -> anyhow::Result<(Option<i64>, i64)> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
        let pool = &sqlx::SqlitePool::connect_with(options).await?;
        {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(pool)
                .await?;
            sqlx::query("VACUUM").execute(pool).await?;
            let raw: Option<i64> = sqlx::query_scalar(
                "SELECT SUM(pgsize) FROM dbstat WHERE name IN ('check_results', 'check_result_hours')",
            )
                    .fetch_one(pool)
                    .await
                    .ok()
                    .flatten();
            let size = std::fs::metadata(path)?.len() as i64;
            pool.close().await;
            Ok((raw, size))
        }
    } else {
        let pool = &sqlx::PgPool::connect(url).await?;
        {
            sqlx::query("VACUUM FULL ANALYZE").execute(pool).await?;
            let raw: i64 = sqlx::query_scalar(
                "SELECT pg_total_relation_size('check_results') + pg_total_relation_size('check_result_hours')",
            )
                .fetch_one(pool)
                .await?;
            let total: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
                .fetch_one(pool)
                .await?;
            pool.close().await;
            Ok((Some(raw), total))
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let services = env_or("BEACON_BENCH_SERVICES", 200);
    let dir = tempfile::tempdir()?;
    let mut results = vec![
        run(
            "sqlite",
            &format!("sqlite://{}/bench.db", dir.path().display()),
            services,
        )
        .await?,
    ];

    let admin = std::env::var("BEACON_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    use sqlx::Connection;
    match sqlx::PgConnection::connect(&admin).await {
        Ok(mut conn) => {
            let name = format!("beacon_bench_{}", std::process::id());
            sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                .execute(&mut conn)
                .await?;
            let mut url = url::Url::parse(&admin)?;
            url.set_path(&name);
            let outcome = run("postgres", url.as_str(), services).await;
            sqlx::query(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
                .execute(&mut conn)
                .await?;
            results.push(outcome?);
        }
        Err(e) => eprintln!("postgres: skipped ({e})"),
    }

    println!("history: {services} services, 90 days, probe every 30 s, raw retention 7 d");
    println!("| store | raw rows | bytes / raw result | database | rollup rows | write rate (results/s) | summaries (median) | history read: windows and 90 days (median) | at an hour's turn (median) | page figures from memory (median) |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for f in &results {
        println!(
            "| {} | {} | {} | {:.1} MB | {} | {:.0} | {:.1} ms | {:.1} ms | {:.1} ms | {:.3} ms |",
            f.kind,
            f.raw_rows,
            f.raw_bytes.map_or("n/a".into(), |b| format!(
                "{:.1}",
                b as f64 / f.raw_rows.max(1) as f64
            )),
            f.total_bytes as f64 / 1e6,
            f.rollup_rows,
            f.write_rate,
            f.summaries.as_secs_f64() * 1e3,
            f.windows.as_secs_f64() * 1e3,
            f.turn.as_secs_f64() * 1e3,
            f.snapshot.as_secs_f64() * 1e3,
        );
    }
    Ok(())
}
