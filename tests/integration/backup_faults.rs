//! Backups gone bad in ways that must not spread: a damaged manifest (named
//! and skipped by list, run, prune, verify and restore, never taken for an
//! unreachable target), a verification that could not run because the
//! target, the database server or the disk was unavailable (the backup
//! keeps its status), a dry-run restore (changes nothing on disk), and
//! `--if-db-not-exists` while a beacon holds the database. Through the
//! real binary and the real s3s-fs server, on SQLite and PostgreSQL.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use beacon::backup::{manifest_key, Backups};
use beacon::clock::ManualClock;

use crate::helpers::{
    closed_port, fill_history, postgres_admin_url, runbook_block, test_config_with_s3, Kind,
    S3Server, TestDb, S3_ACCESS_KEY, S3_SECRET_KEY,
};
use crate::restore::{config_file, load, restore, BEACON, SERVICES};
use crate::store_test;

fn clock() -> ManualClock {
    // 2026-03-13 00:00 UTC
    ManualClock::at(beacon::clock::ms_to_datetime(1_773_360_000_000).expect("time"))
}

/// `beacon --config FILE ARGS` → (exit code, stdout, stderr).
fn beacon(file: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BEACON)
        .arg("--config")
        .arg(file)
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

/// Runs a runbook block with bash (-e, -u, pipefail), `beacon` on PATH and
/// BEACON_CONFIG and the bucket's keys set as the runbook says.
fn run_block(name: &str, file: &Path, env: &[(&str, &str)]) -> (i32, String, String) {
    let bin = Path::new(BEACON).parent().expect("the binary's folder");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &runbook_block(name)])
        .env("PATH", path)
        .env("BEACON_CONFIG", file)
        .env("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY)
        .env_remove("BEACON_STORAGE_URL")
        .env_remove("BEACON_BACKUP_TARGET")
        .envs(env.iter().copied())
        .output()
        .expect("bash");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Two backups a day apart, both verified; their ids, the older first.
async fn two_backups(
    backups: &Backups,
    config: &beacon::config::Config,
    clock: &ManualClock,
) -> (String, String) {
    fill_history(backups.store(), config, 1).await;
    let older = backups.run().await.expect("first backup").manifest.id;
    clock.advance(std::time::Duration::from_secs(86_400));
    let newer = backups.run().await.expect("second backup").manifest.id;
    (older, newer)
}

/// Flips one byte in the middle of a stored object.
fn damage(path: &Path) {
    let mut bytes = std::fs::read(path).expect("read the object");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x04;
    std::fs::write(path, &bytes).expect("damage the object");
}

/// The STATUS column of `id`'s row in `beacon backup list`.
fn status_of(listed: &str, id: &str) -> Option<String> {
    const STATUSES: [&str; 5] = [
        "verified",
        "failed",
        "unverified",
        "incomplete",
        "unreadable",
    ];
    listed
        .lines()
        .find(|l| l.starts_with(id))
        .and_then(|l| l.split_whitespace().find(|t| STATUSES.contains(t)))
        .map(str::to_string)
}

store_test!(
    a_damaged_manifest_is_named_and_skipped_not_taken_for_an_unreachable_target,
    damaged_manifest
);
async fn damaged_manifest(db: TestDb) {
    let s3 = S3Server::start().await;
    let file = config_file(&db, &s3, "prod");
    let config = load(&file);
    let clock = clock();
    let backups = crate::backups::open(&config, &clock).await;
    let (older, newer) = two_backups(&backups, &config, &clock).await;
    backups.store().close().await;
    let key = manifest_key(&older).expect("key");
    damage(&s3.object_path(&format!("prod/{key}")));

    // list: exit 0, the damaged backup is a row naming its manifest.
    let (code, stdout, stderr) = beacon(&file, &["backup", "list"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(
        status_of(&stdout, &older).as_deref(),
        Some("unreadable"),
        "{stdout}"
    );
    assert_eq!(
        status_of(&stdout, &newer).as_deref(),
        Some("verified"),
        "{stdout}"
    );
    let row = stdout.lines().find(|l| l.starts_with(&older)).expect("row");
    assert!(
        row.contains(&format!("{key} is damaged")) && row.contains("beacon backup delete"),
        "{row}"
    );
    let (code, stdout, _) = beacon(&file, &["backup", "list", "--json"]);
    assert_eq!(code, 0);
    let docs: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    assert_eq!(docs[1]["status"], "unreadable");
    assert_eq!(docs[1]["manifest"], key.as_str());
    assert!(
        docs[1]["error"].as_str().is_some_and(|e| e.contains(&key)),
        "{}",
        docs[1]
    );

    // verify: latest and all flag it by name and exit non-zero, after
    // verifying what can be verified; the id alone fails naming it.
    for which in ["latest", "all"] {
        let (code, stdout, stderr) = beacon(&file, &["backup", "verify", which]);
        assert_eq!(code, 1, "verify {which}: {stdout}{stderr}");
        assert!(
            stdout.contains(&format!("backup {newer} verified")),
            "{stdout}"
        );
        assert!(
            stderr.contains(&format!("backup {older}: manifest {key} cannot be read")),
            "{stderr}"
        );
    }
    let (code, _, stderr) = beacon(&file, &["backup", "verify", &older]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!(
            "backup {older}: manifest failed: {key} is damaged"
        )),
        "{stderr}"
    );

    // prune keeps it and says why; a run goes on (backup, verify, prune).
    let (code, stdout, stderr) = beacon(&file, &["backup", "prune", "--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.lines().any(|l| l.starts_with("keep")
            && l.contains(&older)
            && l.contains("its manifest cannot be read")),
        "{stdout}"
    );
    let (code, stdout, stderr) = beacon(&file, &["backup", "run"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("taken and verified"), "{stdout}");
    assert!(
        s3.object_path(&format!("prod/{key}")).exists(),
        "never pruned"
    );

    // restore latest takes the newest readable backup (exit 0, not 3);
    // restoring the damaged one by id is a failed verification (2).
    let (code, stdout, stderr) = restore(&file, &["latest", "--force", "--json"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(report["outcome"], "restored");
    let (code, _, stderr) = restore(&file, &[&older, "--force"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&key) && stderr.contains("nothing was changed"),
        "{stderr}"
    );

    // The newest manifest damaged too: restore latest skips it, by name.
    let (_, stdout, _) = beacon(&file, &["backup", "list", "--json"]);
    let newest: serde_json::Value =
        serde_json::from_str(stdout.lines().next().expect("a line")).expect("json");
    let newest_id = newest["id"].as_str().expect("id").to_string();
    let newest_key = manifest_key(&newest_id).expect("key");
    damage(&s3.object_path(&format!("prod/{newest_key}")));
    let (code, stdout, stderr) = restore(&file, &["latest", "--force"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!(
            "skipped backup {newest_id}: its manifest cannot be read"
        )) && stdout.contains(&format!("restored backup {newer}")),
        "{stdout}"
    );

    // The runbook's commands: see it, then clean it.
    let (code, stdout, stderr) = run_block("corrupt-see", &file, &[]);
    assert_eq!(
        code, 1,
        "verify all exits 1 while a manifest is unreadable: {stdout}{stderr}"
    );
    assert!(
        stdout.contains("unreadable") && stderr.contains(&key),
        "{stdout}{stderr}"
    );
    for id in [&older, &newest_id] {
        let (code, stdout, stderr) = run_block("corrupt-clean", &file, &[("ID", id.as_str())]);
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert!(stdout.contains(&format!("backup {id} deleted")), "{stdout}");
    }
    assert!(!s3.object_path(&format!("prod/{key}")).exists());
    let (code, stdout, stderr) = beacon(&file, &["backup", "verify", "all"]);
    assert_eq!(code, 0, "nothing unreadable is left: {stdout}{stderr}");
    let (_, stdout, _) = beacon(&file, &["backup", "list"]);
    assert!(
        !stdout.contains(&older) && !stdout.contains("unreadable"),
        "{stdout}"
    );
    let (code, _, stderr) = beacon(&file, &["backup", "delete", "latest"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("is not a backup id"), "{stderr}");
}

store_test!(
    manifests_that_do_not_parse_name_the_object_and_field,
    unparsable
);
async fn unparsable(db: TestDb) {
    let folder = db.dir.path().join("backups");
    let config = test_config_with_s3(
        &db,
        &format!(
            "{SERVICES}[backup]\ntarget = \"file://{}\"\nkeep = {{ last = 1 }}\n",
            folder.display()
        ),
    );
    let clock = clock();
    let backups = crate::backups::open(&config, &clock).await;
    let (_, newer) = two_backups(&backups, &config, &clock).await;
    // keep last = 1 deleted the older one; make two more to damage.
    let listed = backups.list().await.expect("list");
    assert_eq!(listed.len(), 1, "{listed:?}");
    let mut ids = vec![newer.clone()];
    for _ in 0..2 {
        clock.advance(std::time::Duration::from_secs(3600));
        ids.push(backups.backup().await.expect("backup").id);
    }
    // ids: newer (verified), then two unverified. Damage the two newest:
    // not JSON, and JSON whose id is another backup's.
    let not_json = folder.join(manifest_key(&ids[2]).expect("key"));
    std::fs::write(&not_json, b"{\"format\": 1, \"id\": ").expect("write");
    let wrong_id = folder.join(manifest_key(&ids[1]).expect("key"));
    let text = std::fs::read_to_string(&wrong_id).expect("manifest");
    std::fs::write(&wrong_id, text.replace(&ids[1], &ids[0])).expect("write");

    let listed = backups
        .list()
        .await
        .expect("a damaged manifest fails no listing");
    let reasons: BTreeMap<&str, &str> = listed
        .iter()
        .filter_map(|l| {
            l.unreadable
                .as_ref()
                .map(|u| (l.id.as_str(), u.reason.as_str()))
        })
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    let key2 = manifest_key(&ids[2]).expect("key");
    assert!(
        reasons[ids[2].as_str()]
            .starts_with(&format!("manifest {key2} is not a valid manifest: EOF")),
        "{reasons:?}"
    );
    let key1 = manifest_key(&ids[1]).expect("key");
    assert!(
        reasons[ids[1].as_str()]
            .starts_with(&format!("manifest {key1}: field id is \"{}\"", ids[0])),
        "{reasons:?}"
    );
    assert_eq!(backups.latest().await.expect("latest"), Some(newer.clone()));
    // Prune with keep last = 1 deletes nothing: the readable one is the
    // newest verified, and the unreadable ones are never deleted.
    let plan = backups.prune(false).await.expect("prune");
    assert!(plan.iter().all(|d| d.keep), "{plan:?}");
    assert!(not_json.exists() && wrong_id.exists());
    // Verifying one records it failed, naming the field; it stays listed
    // as unreadable and is still not pruned.
    let e = backups.verify(&ids[1]).await.expect_err("wrong id");
    assert_eq!(e.step, "manifest");
    assert!(!e.is_unavailable());
    assert!(e.to_string().contains("field id"), "{e}");
    let plan = backups.prune(false).await.expect("prune");
    assert!(plan.iter().all(|d| d.keep), "{plan:?}");
    assert_eq!(
        backups
            .list()
            .await
            .expect("list")
            .iter()
            .map(|l| l.status().to_string())
            .collect::<Vec<_>>(),
        ["unreadable", "unreadable", "verified"]
    );
    backups.store().close().await;
}

store_test!(
    a_verification_the_environment_could_not_run_leaves_the_backup_as_it_was,
    environment
);
async fn environment(db: TestDb) {
    let s3 = S3Server::start().await;
    // A role of its own on PostgreSQL, so that the test can make the
    // server refuse its connections (superusers are exempt from limits).
    let role = match db.kind {
        Kind::Sqlite => None,
        Kind::Postgres => Some(PgRole::create(&db).await),
    };
    let url = role.as_ref().map_or(db.url.clone(), |r| r.url.clone());
    let toml = |extra: &str| {
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\nurl = \"{url}\"\n{SERVICES}{}",
            s3.backup_toml("env", &format!("keep = {{ last = 10 }}\n{extra}"))
        )
    };
    let config = beacon::config::from_toml(
        &toml(""),
        beacon::config::ConfigSource::Embedded,
        &S3Server::env,
    )
    .expect("config");
    let clock = clock();
    let backups = crate::backups::open(&config, &clock).await;
    let (older, newer) = two_backups(&backups, &config, &clock).await;
    let status = |id: String| {
        let store = backups.store().clone();
        async move {
            store
                .backup_records()
                .await
                .expect("records")
                .into_iter()
                .find(|r| r.id == id)
                .map(|r| r.status)
        }
    };
    let kept = |plan: Vec<beacon::backup::rotation::Decision>| {
        plan.iter()
            .filter(|d| d.keep)
            .map(|d| d.id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(status(older.clone()).await.as_deref(), Some("verified"));

    // Each way the check cannot run, on the older backup: it keeps its
    // status and rotation keeps it.
    let blocked = db.dir.path().join("not-a-folder");
    std::fs::write(&blocked, b"x").expect("blocker");
    let closed = format!("http://127.0.0.1:{}", closed_port().await);
    let cases = [
        (
            toml(&format!("temp_dir = \"{}\"", blocked.join("tmp").display())),
            "temporary folder",
        ),
        (toml("").replace(&s3.endpoint, &closed), "manifest"),
    ];
    for (text, step) in cases {
        let config = beacon::config::from_toml(
            &text,
            beacon::config::ConfigSource::Embedded,
            &S3Server::env,
        )
        .expect("config");
        let other = crate::backups::open(&config, &clock).await;
        let e = other.verify(&older).await.expect_err(step);
        assert_eq!(e.step, step, "{e}");
        assert!(e.is_unavailable(), "{e}");
        assert!(
            e.to_string().contains("could not run") && e.to_string().contains("keeps its status"),
            "{e}"
        );
        other.store().close().await;
        assert_eq!(
            status(older.clone()).await.as_deref(),
            Some("verified"),
            "{step}"
        );
        assert_eq!(
            kept(backups.prune(true).await.expect("plan")),
            [newer.clone(), older.clone()]
        );
    }

    if let Some(role) = &role {
        // PostgreSQL refuses the role's new connections (the pool keeps the
        // ones it has): pg_restore into the scratch database cannot connect.
        role.admin(&format!("ALTER ROLE \"{}\" CONNECTION LIMIT 0", role.name))
            .await;
        let e = backups
            .verify(&older)
            .await
            .expect_err("refused connections");
        role.admin(&format!("ALTER ROLE \"{}\" CONNECTION LIMIT -1", role.name))
            .await;
        assert_eq!(e.step, "pg_restore", "{e}");
        assert!(e.is_unavailable(), "{e}");
        assert!(e.to_string().contains("refuses connections"), "{e}");
        assert_eq!(status(older.clone()).await.as_deref(), Some("verified"));
        assert_eq!(
            kept(backups.prune(true).await.expect("plan")),
            [newer.clone(), older.clone()]
        );

        // The scratch database cannot be created (no CREATEDB any more).
        role.admin(&format!("ALTER ROLE \"{}\" NOCREATEDB", role.name))
            .await;
        let e = backups
            .verify(&older)
            .await
            .expect_err("no scratch database");
        role.admin(&format!("ALTER ROLE \"{}\" CREATEDB", role.name))
            .await;
        assert_eq!(e.step, "scratch database", "{e}");
        assert!(e.is_unavailable(), "{e}");
        assert!(
            e.to_string()
                .contains("permission denied to create database"),
            "{e}"
        );
        assert_eq!(status(older.clone()).await.as_deref(), Some("verified"));
        assert_eq!(
            kept(backups.prune(true).await.expect("plan")),
            [newer.clone(), older.clone()]
        );
    }

    // With everything back, the same verification passes: it was intact.
    backups.verify(&older).await.expect("intact");
    // A damaged archive is still the backup's fault, and recorded.
    let manifest = backups
        .manifest(&older)
        .await
        .expect("read")
        .expect("manifest");
    damage(&s3.object_path(&format!("env/{}", manifest.archive)));
    let e = backups.verify(&older).await.expect_err("damaged archive");
    assert!(!e.is_unavailable() && e.step == "checksum", "{e}");
    assert_eq!(status(older.clone()).await.as_deref(), Some("failed"));
    assert_eq!(
        kept(backups.prune(true).await.expect("plan")),
        std::slice::from_ref(&newer)
    );
    backups.store().close().await;
    if let Some(role) = role {
        role.drop_role(&db).await;
    }
}

/// A PostgreSQL role that owns the test database and may create databases.
struct PgRole {
    name: String,
    url: String,
}

impl PgRole {
    async fn create(db: &TestDb) -> PgRole {
        let database = url::Url::parse(&db.url)
            .expect("url")
            .path()
            .trim_start_matches('/')
            .to_string();
        let name = format!("{database}_owner");
        let role = PgRole {
            url: {
                let mut u = url::Url::parse(&db.url).expect("url");
                u.set_username(&name).expect("user name");
                u.to_string()
            },
            name,
        };
        role.admin(&format!("CREATE ROLE \"{}\" LOGIN CREATEDB", role.name))
            .await;
        role.admin(&format!(
            "ALTER DATABASE \"{database}\" OWNER TO \"{}\"",
            role.name
        ))
        .await;
        role
    }

    async fn admin(&self, sql: &str) {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&postgres_admin_url())
            .await
            .expect("admin connection");
        sqlx::query(sql)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let _ = conn.close().await;
    }

    /// Hands everything back to the superuser and drops the role.
    async fn drop_role(self, db: &TestDb) {
        use sqlx::Connection;
        let database = url::Url::parse(&db.url)
            .expect("url")
            .path()
            .trim_start_matches('/')
            .to_string();
        self.admin(&format!(
            "ALTER DATABASE \"{database}\" OWNER TO CURRENT_USER"
        ))
        .await;
        let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
        sqlx::query(&format!(
            "REASSIGN OWNED BY \"{}\" TO CURRENT_USER",
            self.name
        ))
        .execute(&mut conn)
        .await
        .expect("reassign");
        let _ = conn.close().await;
        self.admin(&format!("DROP OWNED BY \"{}\"", self.name))
            .await;
        self.admin(&format!("DROP ROLE \"{}\"", self.name)).await;
    }
}

/// Every path under `dir` with its size (files) — what a dry run must not change.
fn tree(dir: &Path) -> Vec<(PathBuf, Option<u64>)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let entry = entry.expect("entry");
            let meta = entry.metadata().expect("metadata");
            if meta.is_dir() {
                pending.push(entry.path());
                out.push((entry.path(), None));
            } else {
                out.push((entry.path(), Some(meta.len())));
            }
        }
    }
    out.sort();
    out
}

store_test!(a_dry_run_restore_creates_and_changes_nothing, dry_run);
async fn dry_run(db: TestDb) {
    let s3 = S3Server::start().await;
    let file = config_file(&db, &s3, "dry");
    let config = load(&file);
    let clock = clock();
    let backups = crate::backups::open(&config, &clock).await;
    fill_history(backups.store(), &config, 1).await;
    let id = backups.run().await.expect("backup").manifest.id;
    backups.store().close().await;

    match db.kind {
        Kind::Sqlite => {
            // Into a folder that does not exist yet, in a fresh one.
            let fresh = tempfile::tempdir().expect("fresh dir");
            let to = fresh.path().join("new").join("beacon.db");
            let to = to.to_str().expect("utf-8");
            let (code, stdout, stderr) = restore(&file, &["latest", "--to", to, "--dry-run"]);
            assert_eq!(code, 0, "{stdout}{stderr}");
            assert!(
                stdout.contains(&format!(
                    "dry run: backup {id} verified; nothing was changed"
                )),
                "{stdout}"
            );
            assert_eq!(tree(fresh.path()), [], "the dry run left something behind");

            // Onto the configured database: no lock file, nothing else.
            let before = tree(db.dir.path());
            let (code, stdout, stderr) = restore(&file, &["latest", "--dry-run"]);
            assert_eq!(code, 0, "{stdout}{stderr}");
            assert_eq!(tree(db.dir.path()), before);
        }
        Kind::Postgres => {
            // A database that does not exist is not created.
            let mut to = url::Url::parse(&db.url).expect("url");
            let name = format!("{}_dry", to.path().trim_start_matches('/'));
            to.set_path(&name);
            let (code, stdout, stderr) =
                restore(&file, &["latest", "--to", to.as_str(), "--dry-run"]);
            assert_eq!(code, 0, "{stdout}{stderr}");
            assert!(stdout.contains("nothing was changed"), "{stdout}");
            use sqlx::Connection;
            let mut admin = sqlx::PgConnection::connect(&postgres_admin_url())
                .await
                .expect("admin");
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                    .bind(&name)
                    .fetch_one(&mut admin)
                    .await
                    .expect("query");
            let _ = admin.close().await;
            assert!(!exists, "the dry run created {name}");
            assert_eq!(
                tree(db.dir.path()).len(),
                1,
                "only beacon.toml in the test's folder"
            );
        }
    }
}

store_test!(
    if_db_not_exists_exits_0_while_a_beacon_holds_the_database,
    held_database
);
async fn held_database(db: TestDb) {
    let s3 = S3Server::start().await;
    let file = config_file(&db, &s3, "held");
    let config = load(&file);
    let clock = clock();
    let backups = crate::backups::open(&config, &clock).await;
    fill_history(backups.store(), &config, 1).await;
    backups.run().await.expect("backup");
    backups.store().close().await;

    // A running beacon on the database.
    let app = crate::helpers::TestApp::spawn(test_config_with_s3(&db, SERVICES)).await;
    let (code, stdout, stderr) = restore(&file, &["latest", "--if-db-not-exists"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("nothing to do") && stdout.contains("already exists"),
        "{stdout}"
    );
    let (code, stdout, _) = restore(
        &file,
        &[
            "latest",
            "--if-db-not-exists",
            "--if-backup-exists",
            "--json",
        ],
    );
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("json");
    assert_eq!(report["outcome"], "skipped");
    // Without the flag, the running beacon is still a refusal.
    let (code, _, stderr) = restore(&file, &["latest"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("a beacon process is using"), "{stderr}");
    app.stop().await.expect("stop");
}
