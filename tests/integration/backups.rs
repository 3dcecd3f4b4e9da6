//! Backups against a real S3-compatible server (s3s-fs, SigV4) and a local
//! folder: take, verify, list, rotate, and every way a backup can go bad.

use std::sync::Arc;

use beacon::backup::{manifest_key, BackupLock, Backups};
use beacon::clock::ManualClock;
use beacon::config::Config;

use crate::helpers::{
    closed_port, eventually, fill_history, test_config_with_s3, Raw, S3Server, TestDb,
};
use crate::store_test;

const SERVICES: &str =
    "[[service]]\nname = \"Checkout API\"\nurl = \"http://checkout.example/health\"\n\
                        [[service]]\nname = \"Search\"\nurl = \"http://search.example/health\"\n";

/// Backups over `config`'s store and target, on `clock`.
pub async fn open(config: &Config, clock: &ManualClock) -> Backups {
    let store = beacon::store::Store::connect(&config.storage.url)
        .await
        .expect("store");
    store.migrate().await.expect("migrate");
    Backups::open(
        config.backup.as_ref().expect("[backup]"),
        store,
        config.storage.url.clone(),
        Arc::new(clock.clone()),
    )
    .await
    .expect("target")
}

fn clock() -> ManualClock {
    ManualClock::at(beacon::clock::ms_to_datetime(1_773_360_000_000).expect("time"))
    // 2026-03-13 00:00 UTC
}

/// The conformance suite both targets pass.
async fn take_verify_list_and_rotate(config: Config, object: impl Fn(&str) -> std::path::PathBuf) {
    let clock = clock();
    let backups = open(&config, &clock).await;
    fill_history(backups.store(), &config, 3).await;

    let first = backups.run().await.expect("first run");
    let m = &first.manifest;
    assert_eq!(m.database, backups.store().kind());
    assert_eq!(m.schema_version, backups.store().expected_schema_version());
    let store = backups.store();
    for table in [
        "services",
        "check_results",
        "rollups",
        "incidents",
        "incident_updates",
    ] {
        assert_eq!(
            m.tables.get(table).copied(),
            Some(store.count_rows(table).await.expect("count")),
            "{table}"
        );
    }
    assert!(m.tables["check_results"] >= 2 * 3 * 144);
    assert!(
        m.archive.starts_with("2026/03/20260313T000000.000Z."),
        "{}",
        m.archive
    );
    // The manifest, by hand: sha256sum of the stored object.
    let stored = std::fs::read(object(&m.archive)).expect("archive stored");
    assert_eq!(stored.len() as u64, m.size);
    assert_eq!(beacon::backup::target::hex(&sha2_digest(&stored)), m.sha256);

    // Two more runs, a day apart; keep = { last = 2 } deletes the first.
    for _ in 0..2 {
        clock.advance(chrono::Duration::days(1).to_std().expect("duration"));
        backups.run().await.expect("run");
    }
    let listed = backups.list().await.expect("list");
    let ids: Vec<(&str, &str)> = listed.iter().map(|l| (l.id.as_str(), l.status())).collect();
    assert_eq!(
        ids,
        [
            ("20260315T000000.000Z", "verified"),
            ("20260314T000000.000Z", "verified")
        ]
    );
    assert!(!object(&m.archive).exists(), "rotation deleted the archive");
    assert!(
        !object(&manifest_key(&m.id).expect("key")).exists(),
        "and its manifest"
    );

    // A flipped byte in the newest stored archive: verification fails, is
    // recorded, and rotation then deletes nothing.
    let newest = listed[0].manifest.clone().expect("manifest");
    let path = object(&newest.archive);
    let mut bytes = std::fs::read(&path).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&path, &bytes).expect("flip");
    let e = backups
        .verify(&newest.id)
        .await
        .expect_err("flipped byte caught");
    assert!(e.step == "checksum" || e.step == "download", "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("backup {}: ", newest.id)),
        "{e}"
    );
    let records = store.backup_records().await.expect("records");
    assert_eq!(records[0].status, "failed");
    let plan = backups.prune(false).await.expect("prune");
    assert!(plan.iter().all(|d| d.keep), "{plan:?}");
    assert_eq!(
        backups.list().await.expect("list").len(),
        2,
        "nothing deleted"
    );

    // A truncated archive: size differs from the manifest.
    std::fs::write(&path, &bytes[..bytes.len() / 3]).expect("truncate");
    let e = backups
        .verify(&newest.id)
        .await
        .expect_err("truncation caught");
    // (a local folder: caught by size; S3: the SDK's own checks may catch
    // it first, while downloading)
    assert!(
        e.to_string().contains("the manifest says") || e.step == "download",
        "{e}"
    );

    // A missing manifest: incomplete, not restorable, verify says so.
    std::fs::remove_file(object(&manifest_key(&newest.id).expect("key"))).expect("rm");
    let listed = backups.list().await.expect("list");
    assert_eq!(listed[0].status(), "incomplete");
    assert_eq!(
        backups.latest().await.expect("latest").as_deref(),
        Some("20260314T000000.000Z")
    );
    let e = backups.verify(&newest.id).await.expect_err("incomplete");
    assert_eq!(e.step, "manifest");
    assert!(e.to_string().contains("no manifest"), "{e}");
}

fn sha2_digest(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

store_test!(
    backups_to_s3_are_verified_listed_and_rotated,
    s3_conformance
);
async fn s3_conformance(db: TestDb) {
    let s3 = S3Server::start().await;
    let config = test_config_with_s3(
        &db,
        &format!(
            "{SERVICES}{}",
            s3.backup_toml("prod", "keep = { last = 2 }")
        ),
    );
    take_verify_list_and_rotate(config, |key| s3.object_path(&format!("prod/{key}"))).await;
}

store_test!(
    backups_to_a_folder_are_verified_listed_and_rotated,
    file_conformance
);
async fn file_conformance(db: TestDb) {
    let folder = db.dir.path().join("backups");
    let config = test_config_with_s3(
        &db,
        &format!(
            "{SERVICES}[backup]\ntarget = \"file://{}\"\nkeep = {{ last = 2 }}\n",
            folder.display()
        ),
    );
    take_verify_list_and_rotate(config, |key| folder.join(key)).await;
}

store_test!(
    a_backup_taken_while_beacon_writes_is_consistent,
    while_writing
);
async fn while_writing(db: TestDb) {
    let s3 = S3Server::start().await;
    let config = test_config_with_s3(&db, &format!("{SERVICES}{}", s3.backup_toml("", "")));
    let clock = clock();
    let backups = open(&config, &clock).await;
    fill_history(backups.store(), &config, 2).await;
    let store = backups.store().clone();
    let ids: Vec<i64> = store
        .service_summaries(0)
        .await
        .expect("summaries")
        .iter()
        .map(|s| s.id)
        .collect();
    // A writer adding results (and rollups, in the same transactions) the
    // whole time the backup runs.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let written = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let writer = {
        let (store, stop, written) = (store.clone(), stop.clone(), written.clone());
        tokio::spawn(async move {
            let mut at = 1_774_000_000_000i64;
            let mut batches = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut batch = beacon::store::Batch::default();
                for id in &ids {
                    batch.results.push(beacon::store::CheckResult {
                        service_id: *id,
                        checked_at: at,
                        outcome: beacon::domain::Outcome::Up,
                        maintenance: false,
                        latency_ms: Some(12),
                        status_code: Some(200),
                        reason: None,
                    });
                }
                at += 1000;
                store
                    .write_batch(&batch)
                    .await
                    .expect("write while backing up");
                batches += 1;
                written.store(batches, std::sync::atomic::Ordering::Relaxed);
            }
            batches
        })
    };
    // The backup starts while the writer is writing.
    eventually(
        "the writer has written",
        std::time::Duration::from_secs(10),
        || async { written.load(std::sync::atomic::Ordering::Relaxed) > 0 },
    )
    .await;
    let report = backups.run().await.expect("backup while writing");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let batches = writer.await.expect("writer");
    assert!(batches > 5, "the writer kept writing ({batches} batches)");
    // Verification restored the archive and found exactly the manifest's
    // counts, counted from the same snapshot the dump was taken from.
    let records = store.backup_records().await.expect("records");
    assert_eq!(records[0].id, report.manifest.id);
    assert_eq!(records[0].status, "verified");
    let now = store.count_rows("check_results").await.expect("count");
    assert!(
        report.manifest.tables["check_results"] < now,
        "the writer went on after the snapshot"
    );
}

store_test!(storage_faults_are_named_and_list_nothing_restorable, faults);
async fn faults(db: TestDb) {
    let s3 = S3Server::start().await;
    let clock = clock();
    let closed = closed_port().await;
    let cases = [
        (
            format!("[backup]\ntarget = \"s3://beacon-backups/x\"\nendpoint = \"http://127.0.0.1:{closed}\"\n"),
            "unreachable endpoint",
        ),
        (s3.backup_toml("x", "").replace("beacon-backups", "no-such-bucket"), "missing bucket"),
    ];
    for (toml, what) in cases {
        let config = test_config_with_s3(&db, &format!("{SERVICES}{toml}"));
        let backups = open(&config, &clock).await;
        let e = backups.backup().await.expect_err(what);
        assert_eq!(e.step, "target", "{what}: {e}");
        assert!(
            e.to_string()
                .starts_with("backup 20260313T000000.000Z: target failed"),
            "{what}: {e}"
        );
        if what == "missing bucket" {
            assert!(
                e.to_string()
                    .contains("bucket \"no-such-bucket\" does not exist"),
                "{e}"
            );
        }
        let records = backups.store().backup_records().await.expect("records");
        assert_eq!(
            (
                records[0].status.as_str(),
                records[0].failed_step.as_deref()
            ),
            ("failed", Some("target")),
            "{what}"
        );
        backups.store().close().await;
    }

    // Wrong credentials: the store refuses the signature.
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\nurl = \"{}\"\n{SERVICES}{}",
        db.url,
        s3.backup_toml("x", "")
    );
    let config = beacon::config::from_toml(
        &text,
        beacon::config::ConfigSource::Embedded,
        &|name: &str| match name {
            "AWS_ACCESS_KEY_ID" => Some("beacon-test-access".into()),
            "AWS_SECRET_ACCESS_KEY" => Some("wrong-secret".into()),
            _ => None,
        },
    )
    .expect("config");
    let backups = open(&config, &clock).await;
    let e = backups.backup().await.expect_err("wrong credentials");
    assert_eq!(e.step, "target");
    assert!(e.to_string().contains("bucket \"beacon-backups\": "), "{e}");
    assert!(backups.list().await.is_err(), "listing is refused too");

    // With the right credentials the bucket holds nothing restorable.
    let config = test_config_with_s3(&db, &format!("{SERVICES}{}", s3.backup_toml("x", "")));
    let backups = open(&config, &clock).await;
    assert!(backups
        .list()
        .await
        .expect("list")
        .iter()
        .all(|l| !l.complete()));
    assert_eq!(backups.latest().await.expect("latest"), None);

    // A temporary folder that cannot be written (a file stands in its way).
    let blocked = db.dir.path().join("not-a-folder");
    std::fs::write(&blocked, b"x").expect("file");
    let config = test_config_with_s3(
        &db,
        &format!(
            "{SERVICES}{}",
            s3.backup_toml(
                "x",
                &format!("temp_dir = \"{}\"", blocked.join("tmp").display())
            )
        ),
    );
    let backups = open(&config, &clock).await;
    let e = backups.backup().await.expect_err("no temporary folder");
    assert_eq!(e.step, "temporary folder", "{e}");
}

store_test!(large_archives_go_up_in_checked_parts, multipart);
async fn multipart(db: TestDb) {
    let s3 = S3Server::start().await;
    let config = test_config_with_s3(
        &db,
        &format!("{SERVICES}{}", s3.backup_toml("big", "part_size_mib = 5")),
    );
    let clock = clock();
    let backups = open(&config, &clock).await;
    fill_history(backups.store(), &config, 1).await;
    // 12 MB that do not compress: the archive needs three parts.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let ballast: Vec<u8> = (0..12_000_000u32)
        .map(|_| {
            // xorshift: bytes gzip cannot shrink
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let raw = Raw::connect(&db.url).await;
    match &raw {
        Raw::Sqlite(pool) => {
            sqlx::query("CREATE TABLE ballast (data BLOB)")
                .execute(pool)
                .await
                .expect("table");
            for chunk in ballast.chunks(1_000_000) {
                sqlx::query("INSERT INTO ballast VALUES ($1)")
                    .bind(chunk)
                    .execute(pool)
                    .await
                    .expect("insert");
            }
        }
        Raw::Postgres(pool) => {
            sqlx::query("CREATE TABLE ballast (data BYTEA)")
                .execute(pool)
                .await
                .expect("table");
            sqlx::query("ALTER TABLE ballast ALTER COLUMN data SET STORAGE EXTERNAL")
                .execute(pool)
                .await
                .expect("no compression");
            for chunk in ballast.chunks(1_000_000) {
                sqlx::query("INSERT INTO ballast VALUES ($1)")
                    .bind(chunk)
                    .execute(pool)
                    .await
                    .expect("insert");
            }
        }
    }
    raw.close().await;
    let report = backups.run().await.expect("multipart backup");
    assert!(
        report.manifest.size > 10_000_000,
        "{}",
        report.manifest.size
    );
    assert_eq!(report.manifest.tables["ballast"], 12);
    let stored =
        std::fs::read(s3.object_path(&format!("big/{}", report.manifest.archive))).expect("object");
    assert_eq!(
        beacon::backup::target::hex(&sha2_digest(&stored)),
        report.manifest.sha256
    );
}

store_test!(one_run_at_a_time, lock);
async fn lock(db: TestDb) {
    let folder = db.dir.path().join("backups");
    let config = test_config_with_s3(
        &db,
        &format!(
            "{SERVICES}[backup]\ntarget = \"file://{}\"\n",
            folder.display()
        ),
    );
    let clock = clock();
    let backups = open(&config, &clock).await;
    let held = BackupLock::acquire(backups.store(), &config.storage.url)
        .await
        .expect("lock");
    let e = backups
        .run()
        .await
        .expect_err("a second run waits its turn");
    assert!(
        e.to_string()
            .starts_with("another backup, verify, prune or restore is running"),
        "{e}"
    );
    held.release().await;
    backups.run().await.expect("runs once the lock is free");
}

store_test!(
    a_failed_scheduled_run_is_recorded_and_the_next_one_runs,
    schedule_recovers
);
async fn schedule_recovers(db: TestDb) {
    // The backup folder's place is taken by a file: the target cannot be
    // created, so scheduled runs fail at their first step.
    let folder = db.dir.path().join("backups");
    std::fs::write(&folder, b"not a folder").expect("blocker");
    let config = test_config_with_s3(
        &db,
        &format!(
            "{SERVICES}[backup]\nschedule = \"* * * * * *\"\ntarget = \"file://{}\"\n",
            folder.display()
        ),
    );
    let app = crate::helpers::TestApp::spawn(config).await;
    let records = || async { app.store.backup_records().await.expect("records") };
    crate::helpers::eventually(
        "a failed run is recorded",
        std::time::Duration::from_secs(15),
        || async {
            records()
                .await
                .iter()
                .any(|r| r.status == "failed" && r.failed_step.as_deref() == Some("target"))
        },
    )
    .await;
    // /metrics counts this process's failed runs by step, and says the
    // newest run failed and how often the schedule runs.
    crate::helpers::eventually(
        "/metrics counts the failure",
        std::time::Duration::from_secs(15),
        || async {
            app.get("/metrics").await.is_ok_and(|(status, text)| {
                status == 200
                    && text.lines().any(|l| {
                        l.strip_prefix("beacon_backup_failures_total{step=\"target\"} ")
                            .and_then(|n| n.parse::<f64>().ok())
                            .is_some_and(|n| n >= 1.0)
                    })
                    && text.contains("\nbeacon_backup_last_run_failed 1\n")
                    && text.contains("\nbeacon_backup_schedule_period_seconds 1\n")
            })
        },
    )
    .await;
    std::fs::remove_file(&folder).expect("unblock");
    crate::helpers::eventually(
        "a later tick succeeds",
        std::time::Duration::from_secs(15),
        || async { records().await.iter().any(|r| r.status == "verified") },
    )
    .await;
    app.stop().await.expect("stop");
}
