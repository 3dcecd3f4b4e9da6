//! Issue 22, items 5 and 7: a task that dies is not hidden (a dead recorder
//! ends the process), and two writers on one PostgreSQL never deadlock.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use beacon::config::{self, ConfigSource};
use beacon::domain::{Outcome, State};
use beacon::store::{Batch, CheckResult, StatusChange, Store, StoreError};

use crate::helpers::{no_env, Target, TestDb};

const BEACON: &str = env!("CARGO_BIN_EXE_beacon");

// A recorder that panics used to leave the process probing on, every
// result sent into a closed channel. Now the panic is logged and the
// process exits non-zero, for its service manager to start it again.
#[tokio::test]
async fn a_recorder_panic_ends_the_process_non_zero_with_the_panic_logged() {
    let target = Target::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\nurl = \"sqlite://{}/beacon.db\"\n\
         [monitor]\nflush_interval = \"50ms\"\n\
         [[service]]\nname = \"Web\"\nurl = \"{}\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n",
        dir.path().display(),
        target.url("ok")
    );
    let file = dir.path().join("beacon.toml");
    std::fs::write(&file, config).expect("write config");
    let mut child = Command::new(BEACON)
        .current_dir(dir.path())
        .env_remove("BEACON_CONFIG")
        .env_remove("BEACON_LISTEN")
        .env_remove("BEACON_STORAGE_URL")
        .env("RUST_LOG", "info")
        .env("BEACON_TEST_PANIC_RECORDER_AFTER", "2")
        .args(["serve", "--config"])
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start beacon");
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let stderr = child.stderr.take().expect("stderr");
        let log = log.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                log.lock().expect("log").push(line);
            }
        })
    };
    let started = Instant::now();
    let deadline = Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "beacon still runs {deadline:?} after a recorder panic; log:\n{}",
                log.lock().expect("log").join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let _ = reader.join();
    let log = log.lock().expect("log").join("\n");
    assert!(!status.success(), "exit status {status:?}; log:\n{log}");
    assert!(
        log.contains("a supervised task died")
            && log.contains("recorder")
            && log.contains("test hook: BEACON_TEST_PANIC_RECORDER_AFTER=2 batches written"),
        "the death and its panic message are logged:\n{log}"
    );
    assert!(
        log.contains("the monitor stopped unexpectedly"),
        "the reason for the exit is said:\n{log}"
    );
    // Batches were written before the panic: it was the recorder that died,
    // not the start.
    let store = Store::connect(&config::DatabaseUrl::new(format!(
        "sqlite://{}/beacon.db",
        dir.path().display()
    )))
    .await
    .expect("store");
    assert!(store.count_rows("check_results").await.expect("count") >= 2);
}

fn config_of(db: &TestDb, services: usize) -> beacon::config::Config {
    let body: String = (0..services)
        .map(|i| {
            format!(
                "[[service]]\nname = \"Service {i}\"\nurl = \"http://127.0.0.1:9/{i}\"\ninterval = \"30s\"\n"
            )
        })
        .collect();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\nurl = \"{}\"\n{body}",
        db.url
    );
    config::from_toml(&text, ConfigSource::Embedded, &no_env).expect("config")
}

/// A batch over `ids` in the order given: a state change, the reported
/// dependencies and a certificate for each, and in some rounds a result,
/// so every kind of row the batch updates is touched in that order. (Two
/// batches both with results over the same hour meet first on the same
/// rollup rows, which hides the order of the rest.)
fn batch_over(ids: &[i64], round: i64, writer: i64) -> Batch {
    let at = 1_780_000_000_000 + round * 10_000 + writer;
    let (from, to) = if (round + writer) % 2 == 0 {
        (State::Up, State::Down)
    } else {
        (State::Down, State::Up)
    };
    let dependency: beacon::domain::Dependency = serde_json::from_value(serde_json::json!({
        "name": format!("db-{round}-{writer}"),
        "health": "pass",
    }))
    .expect("a dependency");
    Batch {
        results: ids
            .iter()
            .filter(|_| round % 3 == writer)
            .map(|id| CheckResult {
                service_id: *id,
                checked_at: at,
                outcome: if to == State::Down {
                    Outcome::Down
                } else {
                    Outcome::Up
                },
                maintenance: false,
                latency_ms: Some(12),
                status_code: Some(200),
                reason: None,
            })
            .collect(),
        changes: ids
            .iter()
            .map(|id| StatusChange {
                service_id: *id,
                changed_at: at,
                from,
                to,
                reason: Some("test".into()),
            })
            .collect(),
        dependencies: ids
            .iter()
            .map(|id| (*id, vec![dependency.clone()]))
            .collect(),
        certificates: ids.iter().map(|id| (*id, at + 86_400_000)).collect(),
        certificate_warnings: Vec::new(),
        incident_cooldown_ms: 0,
        location_results: Vec::new(),
    }
}

// Issue 22, item 7: the old and the new pod of a rolling update (or two
// replicas) write batches over the same services at once. Updated in
// opposite orders, they used to deadlock (40P01).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_on_one_postgres_in_opposite_orders_never_deadlock() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let config = config_of(&db, 24);
    let first = db.store().await;
    let stored = first
        .sync_services(&config.services, 1_780_000_000_000)
        .await
        .expect("sync");
    // Two pools, as two processes would have.
    let second = Store::connect(&config::DatabaseUrl::new(db.url.clone()))
        .await
        .expect("second store");
    let ascending: Vec<i64> = stored.iter().map(|s| s.id).collect();
    let descending: Vec<i64> = ascending.iter().rev().copied().collect();
    let mut results = 0;
    for round in 0..60 {
        let (a, b) = (
            batch_over(&ascending, round, 0),
            batch_over(&descending, round, 1),
        );
        results += a.results.len() + b.results.len();
        let (one, two) = tokio::join!(first.write_batch(&a), second.write_batch(&b));
        if let Err(e) = one.and(two) {
            panic!("round {round}: a write failed: {e}");
        }
    }
    // Both writers' rows are all there.
    assert_eq!(
        first.count_rows("check_results").await.expect("count"),
        results as i64
    );
    second.close().await;
}

// A deadlock (40P01) and a serialization failure (40001) are moments, not
// refusals of the data: retried, never given up. Both are made for real.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlocks_and_serialization_failures_are_not_permanent() {
    use sqlx::Connection;
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let mut setup = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    sqlx::query("CREATE TABLE t (id INT PRIMARY KEY, n INT NOT NULL)")
        .execute(&mut setup)
        .await
        .expect("table");
    sqlx::query("INSERT INTO t VALUES (1, 0), (2, 0)")
        .execute(&mut setup)
        .await
        .expect("rows");

    // 40P01: each holds one row and wants the other's.
    let mut one = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    let mut two = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    let update = |id: i32| sqlx::query("UPDATE t SET n = n + 1 WHERE id = $1").bind(id);
    sqlx::query("BEGIN").execute(&mut one).await.expect("begin");
    sqlx::query("BEGIN").execute(&mut two).await.expect("begin");
    update(1).execute(&mut one).await.expect("lock 1");
    update(2).execute(&mut two).await.expect("lock 2");
    let (a, b) = tokio::join!(update(2).execute(&mut one), update(1).execute(&mut two));
    let deadlock = match (a, b) {
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => e,
        other => panic!("expected exactly one deadlock victim: {other:?}"),
    };
    let code = match &deadlock {
        sqlx::Error::Database(d) => d.code().map(|c| c.to_string()),
        _ => None,
    };
    assert_eq!(code.as_deref(), Some("40P01"), "{deadlock}");
    assert!(!StoreError::from(deadlock).is_permanent());
    let _ = sqlx::query("ROLLBACK").execute(&mut one).await;
    let _ = sqlx::query("ROLLBACK").execute(&mut two).await;

    // 40001: a repeatable-read transaction updates a row another changed
    // since its snapshot.
    sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut one)
        .await
        .expect("begin");
    sqlx::query("SELECT n FROM t WHERE id = 1")
        .fetch_one(&mut one)
        .await
        .expect("snapshot");
    update(1)
        .execute(&mut two)
        .await
        .expect("concurrent update");
    let serialization = update(1)
        .execute(&mut one)
        .await
        .expect_err("a serialization failure");
    let code = match &serialization {
        sqlx::Error::Database(d) => d.code().map(|c| c.to_string()),
        _ => None,
    };
    assert_eq!(code.as_deref(), Some("40001"), "{serialization}");
    assert!(!StoreError::from(serialization).is_permanent());
    let _ = sqlx::query("ROLLBACK").execute(&mut one).await;
}
