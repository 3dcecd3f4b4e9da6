//! Backup, verify and restore: time and peak memory of `beacon backup run`,
//! `beacon backup verify` and `beacon restore` against a local
//! S3-compatible server (s3s-fs), for SQLite and PostgreSQL databases of
//! growing size (PostgreSQL when reachable). Memory must not grow with the
//! database: archives stream.
//!
//!   cargo bench --bench backup                       # 100 MB and 1000 MB
//!   BEACON_BENCH_BACKUP_MB=20,200 cargo bench --bench backup
//!
//! The database holds beacon's schema with a day of history for 50
//! services, plus a `ballast` table of pseudo-random bytes up to the size
//! (incompressible: the worst case for upload size and gzip's speed).
//! `beacon backup run` (snapshot, gzip, upload, verify by download and
//! test restore, prune) and `beacon backup verify latest` run as child
//! processes; peak memory is their VmHWM, read from /proc every 10 ms.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use beacon::config::{DatabaseUrl, ServiceConfig};
use beacon::domain::Outcome;
use beacon::store::{Batch, CheckResult, Store};

const BEACON: &str = env!("CARGO_BIN_EXE_beacon");
const AK: &str = "bench-access-key";
const SK: &str = "bench-secret-key-0123456789";

/// Fills the store at `url` to about `megabytes`; returns its size.
async fn build_db(url: &str, megabytes: u64) -> anyhow::Result<u64> {
    let url = DatabaseUrl::new(url);
    let store = Store::connect(&url).await?;
    store.migrate().await?;
    let services: Vec<ServiceConfig> = (0..50)
        .map(|i| {
            let mut s = ServiceConfig::watching_self("127.0.0.1:1".parse().expect("addr"));
            s.name = format!("Service {i}");
            s.slug = format!("service-{i}");
            s
        })
        .collect();
    let start = 1_773_000_000_000i64;
    let stored = store.sync_services(&services, start).await?;
    let mut batch = Batch::default();
    for step in 0..2880 {
        for s in &stored {
            batch.results.push(CheckResult {
                service_id: s.id,
                checked_at: start + step * 30_000,
                outcome: Outcome::Up,
                maintenance: false,
                latency_ms: Some(20 + (step % 40) as i32),
                status_code: Some(200),
                reason: None,
            });
        }
        if batch.results.len() >= 5000 {
            store.write_batch(&batch).await?;
            batch.results.clear();
        }
    }
    store.write_batch(&batch).await?;
    store.close().await;
    // The ballast is raw SQL on a connection of the bench's own: the store
    // keeps its pools to itself.
    let raw = Raw::connect(&url).await?;
    let current = raw.size().await?;
    let blob = match &raw {
        Raw::Sqlite(_) => "BLOB",
        Raw::Postgres(_) => "BYTEA",
    };
    raw.exec(&format!("CREATE TABLE ballast (data {blob})"))
        .await?;
    if let Raw::Postgres(_) = &raw {
        // Stored as is, like SQLite does: no TOAST compression.
        raw.exec("ALTER TABLE ballast ALTER COLUMN data SET STORAGE EXTERNAL")
            .await?;
    }
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut chunk = vec![0u8; 4 << 20];
    let rows = (megabytes << 20).saturating_sub(current) / chunk.len() as u64;
    for _ in 0..rows {
        for b in chunk.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = (x >> 24) as u8;
        }
        match &raw {
            Raw::Sqlite(pool) => {
                sqlx::query("INSERT INTO ballast VALUES ($1)")
                    .bind(&chunk)
                    .execute(pool)
                    .await?;
            }
            Raw::Postgres(pool) => {
                sqlx::query("INSERT INTO ballast VALUES ($1)")
                    .bind(&chunk)
                    .execute(pool)
                    .await?;
            }
        }
    }
    let bytes = raw.size().await?;
    raw.close().await;
    Ok(bytes)
}

/// The bench's own connection to the database it fills.
enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Raw {
    async fn connect(url: &DatabaseUrl) -> anyhow::Result<Raw> {
        let url = url.expose();
        Ok(if let Some(path) = url.strip_prefix("sqlite://") {
            let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
            Raw::Sqlite(sqlx::SqlitePool::connect_with(options).await?)
        } else {
            Raw::Postgres(sqlx::PgPool::connect(url).await?)
        })
    }

    async fn size(&self) -> anyhow::Result<u64> {
        let bytes: i64 = match self {
            Raw::Sqlite(pool) => {
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(pool)
                    .await?;
                sqlx::query_scalar(
                    "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
                )
                .fetch_one(pool)
                .await?
            }
            Raw::Postgres(pool) => {
                sqlx::query_scalar("SELECT pg_database_size(current_database())")
                    .fetch_one(pool)
                    .await?
            }
        };
        Ok(bytes.max(0) as u64)
    }

    async fn exec(&self, sql: &str) -> anyhow::Result<()> {
        match self {
            Raw::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
            Raw::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
        }?;
        Ok(())
    }

    async fn close(&self) {
        match self {
            Raw::Sqlite(pool) => pool.close().await,
            Raw::Postgres(pool) => pool.close().await,
        }
    }
}

/// Runs beacon with `args`; returns wall time and peak RSS in kB.
fn measure(config: &Path, args: &[&str]) -> anyhow::Result<(Duration, u64)> {
    let began = Instant::now();
    let mut child = Command::new(BEACON)
        .arg("--config")
        .arg(config)
        .args(args)
        .env("AWS_ACCESS_KEY_ID", AK)
        .env("AWS_SECRET_ACCESS_KEY", SK)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            if let Some(kb) = text
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
            {
                peak = peak.max(kb);
            }
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    anyhow::ensure!(status.success(), "beacon {args:?} failed: {status}");
    Ok((began.elapsed(), peak))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sizes: Vec<u64> = std::env::var("BEACON_BENCH_BACKUP_MB")
        .unwrap_or_else(|_| "100,1000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let s3_dir = tempfile::tempdir()?;
    std::fs::create_dir_all(s3_dir.path().join("bench"))?;
    let mut s3 = Command::new("s3s-fs")
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", AK, "--secret-key", SK])
        .arg(s3_dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| anyhow::anyhow!("s3s-fs (scripts/test.sh installs it): {e}"))?;
    std::thread::sleep(Duration::from_millis(300));

    let pg_admin = std::env::var("BEACON_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let pg_reachable = {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&pg_admin).await.is_ok()
    };
    println!("backup and restore → s3s-fs on 127.0.0.1 (part size 16 MiB)");
    println!("| store | database | archive | backup run (snapshot, compress, upload, verify, prune) | peak memory | verify alone | peak memory | restore to a new database | peak memory |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let outcome = async {
        for mb in sizes {
            for kind in ["sqlite", "postgres"] {
                if kind == "postgres" && !pg_reachable {
                    eprintln!("postgres: skipped ({pg_admin} unreachable)");
                    continue;
                }
                let dir = tempfile::tempdir()?;
                let name = format!("beacon_bench_{}_{mb}", std::process::id());
                let (url, restore_to) = match kind {
                    "sqlite" => (
                        format!("sqlite://{}/beacon.db", dir.path().display()),
                        format!("sqlite://{}/restored.db", dir.path().display()),
                    ),
                    _ => {
                        pg(&pg_admin, &format!("CREATE DATABASE \"{name}\"")).await?;
                        let mut u = url::Url::parse(&pg_admin)?;
                        u.set_path(&name);
                        let main = u.to_string();
                        u.set_path(&format!("{name}_restored"));
                        (main, u.to_string())
                    }
                };
                let result = async {
                    let bytes = build_db(&url, mb).await?;
                    let config = dir.path().join("beacon.toml");
                    std::fs::write(
                        &config,
                        format!(
                            "[storage]\nurl = \"{url}\"\n[backup]\ntarget = \"s3://bench/{kind}{mb}\"\nendpoint = \"http://127.0.0.1:{port}\"\ntemp_dir = \"{}\"\n",
                            dir.path().join("tmp").display()
                        ),
                    )?;
                    let (run, run_peak) = measure(&config, &["backup", "run"])?;
                    let (verify, verify_peak) = measure(&config, &["backup", "verify", "latest"])?;
                    let (restore, restore_peak) =
                        measure(&config, &["restore", "latest", "--to", &restore_to])?;
                    let archive: u64 = walk(&s3_dir.path().join("bench").join(format!("{kind}{mb}")))
                        .iter()
                        .filter(|(name, _)| !name.ends_with(".manifest.json"))
                        .map(|(_, size)| size)
                        .sum();
                    println!(
                        "| {kind} | {:.0} MB | {:.0} MB | {:.1} s | {:.0} MB | {:.1} s | {:.0} MB | {:.1} s | {:.0} MB |",
                        bytes as f64 / 1e6,
                        archive as f64 / 1e6,
                        run.as_secs_f64(),
                        run_peak as f64 / 1024.0,
                        verify.as_secs_f64(),
                        verify_peak as f64 / 1024.0,
                        restore.as_secs_f64(),
                        restore_peak as f64 / 1024.0,
                    );
                    anyhow::Ok(())
                }
                .await;
                if kind == "postgres" {
                    pg(&pg_admin, &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await?;
                    pg(&pg_admin, &format!("DROP DATABASE IF EXISTS \"{name}_restored\" WITH (FORCE)")).await?;
                }
                result?;
            }
        }
        anyhow::Ok(())
    }
    .await;
    let _ = s3.kill();
    let _ = s3.wait();
    outcome
}

async fn pg(admin: &str, sql: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin).await?;
    sqlx::query(sql).execute(&mut conn).await?;
    conn.close().await?;
    Ok(())
}

fn walk(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(meta) = e.metadata() {
                out.push((path.to_string_lossy().into_owned(), meta.len()));
            }
        }
    }
    out
}
