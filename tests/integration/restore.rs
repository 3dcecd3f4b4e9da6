//! `beacon restore` as ops run it: every refusal and exit code, choosing
//! the backup, a corrupted download, a kill -9 in the middle, an older
//! schema, on SQLite and PostgreSQL.

use std::path::Path;
use std::process::Command;

use beacon::clock::ManualClock;
use beacon::config::Config;
use beacon::store::Store;

use crate::helpers::{
    closed_port, fill_history, Kind, Raw, S3Server, TestDb, S3_ACCESS_KEY, S3_SECRET_KEY,
};
use crate::store_test;

pub const BEACON: &str = env!("CARGO_BIN_EXE_beacon");
pub const SERVICES: &str = "[[service]]\nname = \"Checkout API\"\nurl = \"http://checkout.example/health\"\n\
                            [[service]]\nname = \"Search\"\nurl = \"http://search.example/health\"\n";

/// A config file for `db` with backups to `s3` under `prefix`.
pub fn config_file(db: &TestDb, s3: &S3Server, prefix: &str) -> std::path::PathBuf {
    let file = db.dir.path().join("beacon.toml");
    std::fs::write(
        &file,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\nurl = \"{}\"\n{SERVICES}{}",
            db.url,
            s3.backup_toml(prefix, "keep = { last = 10 }")
        ),
    )
    .expect("config");
    file
}

pub fn load(file: &Path) -> Config {
    beacon::config::load(Some(file), &S3Server::env).expect("config")
}

/// `beacon --config FILE restore ARGS` → (exit code, stdout, stderr).
pub fn restore(file: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BEACON)
        .arg("--config")
        .arg(file)
        .arg("restore")
        .args(args)
        .env("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY)
        .env_remove("BEACON_CONFIG")
        .env_remove("BEACON_STORAGE_URL")
        .env_remove("BEACON_BACKUP_TARGET")
        .output()
        .expect("run beacon");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Rows per table, as the restored database has them.
async fn counts(store: &Store) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for t in [
        "services",
        "check_results",
        "rollups",
        "incidents",
        "incident_updates",
    ] {
        out.push((t.to_string(), store.count_rows(t).await.expect("count")));
    }
    out
}

/// Destroys the database: the file (and its WAL) or every table.
pub async fn destroy(db: &TestDb) {
    match db.kind {
        Kind::Sqlite => {
            let path = db.dir.path().join("beacon.db");
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
        Kind::Postgres => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
            for sql in ["DROP SCHEMA public CASCADE", "CREATE SCHEMA public"] {
                sqlx::query(sql).execute(&mut conn).await.expect("drop");
            }
        }
    }
}

fn clock() -> ManualClock {
    ManualClock::at(beacon::clock::ms_to_datetime(1_773_360_000_000).expect("time"))
}

store_test!(restore_refuses_checks_and_restores, refusals);
async fn refusals(db: TestDb) {
    let s3 = S3Server::start().await;
    let file = config_file(&db, &s3, "prod");
    let config = load(&file);
    let clock = clock();

    // An empty target: nothing to restore (exit 1), or nothing to do.
    let (code, _, stderr) = restore(&file, &["latest"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("holds no complete backup") && stderr.contains("Try: "),
        "{stderr}"
    );
    let (code, stdout, _) = restore(&file, &["latest", "--if-backup-exists"]);
    assert_eq!(
        (code, stdout.starts_with("nothing to do")),
        (0, true),
        "{stdout}"
    );

    // Three backups a day apart, the history growing in between.
    let b = crate::backups::open(&config, &clock).await;
    fill_history(b.store(), &config, 1).await;
    // Half the day packed by hour, as the hourly retention pass leaves it:
    // a restore brings back both tables' results.
    let packed = b
        .store()
        .compact_results(1_773_000_000_000 + 12 * 3_600_000)
        .await
        .expect("compact");
    assert!(packed.hours > 0);
    let search_results = b.store().check_results("search").await.expect("results");
    let mut taken = Vec::new();
    for day in 0..3 {
        if day > 0 {
            clock.advance(std::time::Duration::from_secs(86_400));
            b.store()
                .create_incident(&beacon::store::NewIncident {
                    title: format!("Incident {day}"),
                    impact: "minor".into(),
                    status: "investigating".into(),
                    message: "Looking.".into(),
                    services: vec!["search".into()],
                    at: 1_773_360_000_000 + day * 86_400_000,
                    notify: true,
                })
                .await
                .expect("incident");
        }
        let report = b.run().await.expect("backup");
        taken.push((report.manifest.id.clone(), counts(b.store()).await));
    }
    let now_counts = counts(b.store()).await;

    // The database is there and (as far as restore can tell) in use.
    let held = beacon::backup::lock::InUse::hold(b.store(), &config.storage.url)
        .await
        .expect("in use");
    let (code, _, stderr) = restore(&file, &["latest"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("a beacon process is using"), "{stderr}");
    assert!(stderr.contains("Try: stop beacon first"), "{stderr}");
    drop(held);
    let (code, _, stderr) = restore(&file, &["latest"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("already holds a database") && stderr.contains("Try: add --force"),
        "{stderr}"
    );
    let (code, stdout, _) = restore(&file, &["latest", "--if-db-not-exists"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("nothing to do") && stdout.contains("already exists"),
        "{stdout}"
    );
    let (code, _, stderr) = restore(&file, &["20200101T000000.000Z", "--force"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("there is no backup 20200101T000000.000Z"),
        "{stderr}"
    );
    let (code, _, stderr) = restore(&file, &["latest", "--at", "yesterday"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("--at \"yesterday\" is not an RFC 3339 time"),
        "{stderr}"
    );

    // --dry-run downloads and verifies, and changes nothing.
    let (code, stdout, stderr) = restore(&file, &[&taken[0].0, "--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("dry run: backup"), "{stdout}");
    assert_eq!(counts(b.store()).await, now_counts);

    // --at picks the newest backup taken at or before it.
    let (code, stdout, stderr) = restore(
        &file,
        &[
            "latest",
            "--at",
            "2026-03-14T12:00:00Z",
            "--force",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(report["outcome"], "restored");
    assert_eq!(report["backup"], taken[1].0.as_str(), "{report}");
    let restored = db.store().await;
    assert_eq!(
        counts(&restored).await,
        taken[1].1,
        "backup 2's content is back"
    );
    assert_eq!(
        restored
            .count_rows("check_result_hours")
            .await
            .expect("count"),
        i64::try_from(packed.hours).expect("hours")
    );
    assert_eq!(
        restored.check_results("search").await.expect("results"),
        search_results,
        "every raw result is back, packed or not"
    );
    if db.kind == Kind::Sqlite {
        let kept = report["kept_as"].as_str().expect("kept_as");
        assert!(
            Path::new(kept).exists(),
            "the replaced database is kept: {kept}"
        );
    }
    restored.close().await;

    // A flipped byte in the stored archive: exit 2, nothing changed.
    let listed = b.list().await.expect("list");
    let newest = listed[0].manifest.clone().expect("manifest");
    let object = s3.object_path(&format!("prod/{}", newest.archive));
    let mut bytes = std::fs::read(&object).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&object, &bytes).expect("flip");
    let (code, _, stderr) = restore(&file, &["latest", "--force"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    let untouched = db.store().await;
    assert_eq!(
        counts(&untouched).await,
        taken[1].1,
        "the database is untouched"
    );
    untouched.close().await;

    // The store unreachable: exit 3.
    let unreachable = db.dir.path().join("unreachable.toml");
    std::fs::write(
        &unreachable,
        std::fs::read_to_string(&file).expect("config").replace(
            &s3.endpoint,
            &format!("http://127.0.0.1:{}", closed_port().await),
        ),
    )
    .expect("write");
    let (code, _, stderr) = restore(&unreachable, &["latest", "--force"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("the backup target is unreachable"),
        "{stderr}"
    );
    b.store().close().await;
}

store_test!(
    an_older_schema_is_restored_then_migrated_by_beacon,
    older_schema
);
async fn older_schema(db: TestDb) {
    let s3 = S3Server::start().await;
    let file = config_file(&db, &s3, "old");
    let config = load(&file);
    let clock = clock();
    let b = crate::backups::open(&config, &clock).await;
    fill_history(b.store(), &config, 1).await;
    // Make the database what schema version 6 was: no backups table (7),
    // no index on incidents' start (8), no alert outbox (9), no cluster
    // tables nor one-open-automatic-incident index (10), no location
    // results (11), no subscriptions (12), no service revisions (13), no
    // packed hours (15), no incident revisions (16), no sequence of
    // service revisions (17).
    let store = b.store().clone();
    let raw = Raw::connect(&db.url).await;
    for sql in [
        "ALTER TABLE incidents DROP COLUMN revision",
        "DROP INDEX services_revision",
        "ALTER TABLE services DROP COLUMN revision",
        "DROP TABLE check_result_hours",
        "DROP TABLE subscriber_deliveries",
        "DROP TABLE subscriber_tokens",
        "DROP TABLE subscribers",
        "DROP TABLE admin_sessions",
        "DROP TABLE beacon_keys",
        "DROP TABLE location_results",
        "DROP TABLE cluster_members",
        "DROP TABLE cluster_leases",
        "DROP TABLE cluster_runs",
        "DROP TABLE store_changes",
        "DROP INDEX incidents_one_open_automatic",
        "ALTER TABLE incidents DROP COLUMN auto_service_id",
        "DROP TABLE alert_deliveries",
        "DROP TABLE alert_events",
        "DROP TABLE backups",
        "DROP INDEX incidents_started_at",
        "DELETE FROM _sqlx_migrations WHERE version >= 7",
    ] {
        raw.exec(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    if let Raw::Postgres(_) = raw {
        let sql = "DROP SEQUENCE service_revisions";
        raw.exec(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    raw.close().await;
    let manifest = b.backup().await.expect("backup of schema 6");
    assert_eq!(manifest.schema_version, 6);
    let before = counts(&store).await;
    store.close().await;
    destroy(&db).await;

    let (code, stdout, stderr) = restore(&file, &["latest"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    // Migrated as beacon's start migrates it (the same `Store::migrate`),
    // every restored row is there; counted before beacon probes and adds
    // rows of its own.
    let restored = db.store().await;
    assert_eq!(counts(&restored).await, before);
    restored.close().await;
    // beacon starts on it: migrations bring it to the current schema.
    let app =
        crate::helpers::TestApp::spawn(crate::helpers::test_config_with_s3(&db, SERVICES)).await;
    assert_eq!(
        app.store.schema_version().await.expect("version"),
        Some(app.store.expected_schema_version())
    );
    let (status, _) = app.get("/readyz").await.expect("readyz");
    assert_eq!(status, 200);
    app.stop().await.expect("stop");
}

store_test!(a_kill_in_the_middle_of_a_restore_leaves_old_or_new, killed);
async fn killed(db: TestDb) {
    let s3 = S3Server::start().await;
    let file = config_file(&db, &s3, "kill");
    let config = load(&file);
    let clock = clock();
    let b = crate::backups::open(&config, &clock).await;
    fill_history(b.store(), &config, 4).await;
    let old_manifest = b.backup().await.expect("backup");
    // The database moves on after the backup.
    clock.advance(std::time::Duration::from_secs(3600));
    fill_history(b.store(), &config, 1).await;
    let newer = counts(b.store()).await;
    b.store().close().await;
    let old: Vec<(String, i64)> = newer
        .iter()
        .map(|(t, _)| (t.clone(), old_manifest.tables[t]))
        .collect();
    assert_ne!(old, newer);

    for delay_ms in [5u64, 40, 90, 150, 250, 400] {
        let mut child = Command::new(BEACON)
            .arg("--config")
            .arg(&file)
            .args(["restore", "latest", "--force"])
            .env("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let store = db.store().await;
        let now = counts(&store).await;
        assert!(
            now == old || now == newer,
            "after a kill at {delay_ms} ms: {now:?} is neither the old nor the new database"
        );
        if let Raw::Sqlite(pool) = Raw::connect(&db.url).await {
            let check: String = sqlx::query_scalar("PRAGMA integrity_check")
                .fetch_one(&pool)
                .await
                .expect("integrity");
            assert_eq!(check, "ok");
            pool.close().await;
        }
        store.close().await;
    }
}
