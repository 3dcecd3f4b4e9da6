//! The restore drill: docs/runbook.md's commands, run exactly as written
//! (each block marked `<!-- drill: NAME -->`), against a real beacon, a
//! real S3-compatible server, on SQLite and PostgreSQL. History and an
//! incident go in through beacon itself; after each disaster the page must
//! show them again.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::helpers::{
    eventually, runbook_block, Kind, S3Server, Target, TestDb, S3_ACCESS_KEY, S3_SECRET_KEY,
};
use crate::restore::{destroy, BEACON};
use crate::store_test;

const TOKEN: &str = "drill-admin-token-0123456789";

/// Only one drill at a time: the runbook's drill instance listens on a
/// fixed port.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Drill {
    work: tempfile::TempDir,
    env: Vec<(String, String)>,
    port: u16,
}

impl Drill {
    /// Runs a runbook block with bash (-e, -u, pipefail) in a scratch
    /// folder where `scripts/` is the repository's, with `beacon` and a
    /// stand-in `systemctl` on PATH.
    fn run(&self, name: &str, extra: &[(&str, &str)]) -> (i32, String, String) {
        let script = runbook_block(name);
        let out = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .current_dir(self.work.path())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(extra.iter().copied())
            .output()
            .expect("bash");
        let result = (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        eprintln!(
            "--- drill block {name}: exit {}\n{}{}",
            result.0, result.1, result.2
        );
        result
    }

    fn systemctl(&self, verb: &str) {
        let status = Command::new(self.work.path().join("bin/systemctl"))
            .args([verb, "beacon"])
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .status()
            .expect("systemctl");
        assert!(status.success(), "systemctl {verb}");
    }

    async fn page(&self) -> String {
        reqwest::get(format!("http://127.0.0.1:{}/", self.port))
            .await
            .expect("page")
            .text()
            .await
            .expect("body")
    }

    async fn wait_ready(&self) {
        let url = format!("http://127.0.0.1:{}/readyz", self.port);
        eventually(
            "beacon answers /readyz",
            Duration::from_secs(20),
            || async { reqwest::get(&url).await.is_ok_and(|r| r.status() == 200) },
        )
        .await;
    }

    /// The page shows the history and the incident typed before the backup.
    async fn assert_history_back(&self) {
        self.wait_ready().await;
        let html = self.page().await;
        assert!(
            html.contains("<span class=\"name\">Checkout API</span>"),
            "{html}"
        );
        assert!(
            html.contains("Payments delayed"),
            "the incident is back: {html}"
        );
        assert!(
            html.contains("uptime (24 h)"),
            "uptime from the restored rollups: {html}"
        );
    }
}

fn setup(db: &TestDb, s3: &S3Server, target: &Target) -> Drill {
    let work = tempfile::tempdir().expect("work dir");
    let bin = work.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    std::os::unix::fs::symlink(
        concat!(env!("CARGO_MANIFEST_DIR"), "/scripts"),
        work.path().join("scripts"),
    )
    .expect("scripts link");
    std::os::unix::fs::symlink(BEACON, bin.join("beacon")).expect("beacon link");
    // systemd stands in: start runs beacon in the background, stop sends
    // SIGTERM and waits for it to exit.
    let systemctl = bin.join("systemctl");
    std::fs::write(
        &systemctl,
        "#!/usr/bin/env bash\nset -eu\npidfile=\"$DRILL_HOME/beacon.pid\"\ncase \"$1\" in\n\
         start) nohup beacon >>\"$DRILL_HOME/beacon.log\" 2>&1 & echo $! >\"$pidfile\" ;;\n\
         stop) if [ -f \"$pidfile\" ]; then pid=$(cat \"$pidfile\"); kill \"$pid\" 2>/dev/null || true; \
         while kill -0 \"$pid\" 2>/dev/null; do sleep 0.1; done; rm -f \"$pidfile\"; fi ;;\n\
         *) echo \"systemctl stand-in: $1?\" >&2; exit 1 ;;\nesac\n",
    )
    .expect("systemctl");
    std::fs::set_permissions(
        &systemctl,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let config = work.path().join("beacon.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\ntitle = \"Drill\"\n[storage]\nurl = \"{}\"\n\
             [admin]\ntokens = [\"{TOKEN}\"]\n\
             [[service]]\nname = \"Checkout API\"\nurl = \"{ok}\"\ninterval = \"1s\"\n\
             [[service]]\nname = \"Search\"\nurl = \"{ok}\"\ninterval = \"1s\"\n{}",
            db.url,
            s3.backup_toml("drill", "keep = { last = 10 }"),
            ok = target.url("ok"),
        ),
    )
    .expect("config");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let env = vec![
        ("PATH".to_string(), path),
        ("DRILL_HOME".to_string(), work.path().display().to_string()),
        ("BEACON_CONFIG".to_string(), config.display().to_string()),
        (
            "BEACON_READYZ_URL".to_string(),
            format!("http://127.0.0.1:{port}/readyz"),
        ),
        ("AWS_ACCESS_KEY_ID".to_string(), S3_ACCESS_KEY.to_string()),
        (
            "AWS_SECRET_ACCESS_KEY".to_string(),
            S3_SECRET_KEY.to_string(),
        ),
        ("AWS_DEFAULT_REGION".to_string(), "us-east-1".to_string()),
        ("BEACON_LOG_FORMAT".to_string(), "text".to_string()),
    ];
    Drill { work, env, port }
}

fn sqlite_file(db: &TestDb) -> PathBuf {
    db.dir.path().join("beacon.db")
}

store_test!(the_runbook_restores_beacon_after_each_disaster, drill);
async fn drill(db: TestDb) {
    let _one = ONE_AT_A_TIME.lock().await;
    let s3 = S3Server::start().await;
    let target = Target::start().await;
    let d = setup(&db, &s3, &target);

    // beacon runs, probes, and an operator opens an incident.
    d.systemctl("start");
    d.wait_ready().await;
    let created = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/admin/api/incidents", d.port))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(r#"{"title":"Payments delayed","impact":"minor","message":"Looking into it.","services":["checkout-api"]}"#)
        .send()
        .await
        .expect("admin api");
    assert_eq!(created.status(), 201);
    // The backup must hold history: wait until probes have written results
    // and their rollups.
    let store = db.store().await;
    eventually(
        "beacon has written results and rollups",
        Duration::from_secs(15),
        || async {
            store.count_rows("check_results").await.expect("count") > 0
                && store.count_rows("rollups").await.expect("count") > 0
        },
    )
    .await;
    store.close().await;

    // Backups, as cron takes them (the "credentials" scenario's command).
    let (code, _, stderr) = d.run("credentials", &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("done: backup") && stderr.contains("taken and verified"),
        "{stderr}"
    );
    let (code, stdout, _) = d.run("list", &[]);
    assert_eq!(code, 0);
    assert!(
        stdout
            .lines()
            .nth(1)
            .is_some_and(|l| l.contains("verified")),
        "{stdout}"
    );
    let (code, stdout, _) = d.run("verify", &[]);
    assert_eq!(code, 0);
    assert!(stdout.contains("integrity ok"), "{stdout}");
    let (code, stdout, _) = d.run("dry-run", &[]);
    assert_eq!(code, 0);
    assert!(stdout.contains("dry run: backup"), "{stdout}");

    // Disaster 1: the database is corrupted (SQLite) or its tables gone.
    d.systemctl("stop");
    match db.kind {
        Kind::Sqlite => {
            std::fs::write(sqlite_file(&db), b"this is not a database").expect("corrupt")
        }
        Kind::Postgres => destroy(&db).await,
    }
    let (code, _, stderr) = d.run("restore", &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("restored backup 20") && stderr.contains("beacon is ready"),
        "{stderr}"
    );
    d.assert_history_back().await;
    // Every row of the backup is back (beacon, running again, only adds).
    let config = beacon::config::load(Some(&d.work.path().join("beacon.toml")), &S3Server::env)
        .expect("config");
    let target =
        beacon::backup::target::BackupTarget::open(config.backup.as_ref().expect("[backup]"))
            .await
            .expect("target");
    let listed = beacon::backup::list_target(&target, &Default::default())
        .await
        .expect("list");
    let manifest = listed[0].manifest.clone().expect("manifest");
    let store = db.store().await;
    for (table, rows) in &manifest.tables {
        if table == "backups" || table == "_sqlx_migrations" {
            continue;
        }
        let now = store.count_rows(table).await.expect("count");
        if ["services", "incidents", "incident_services", "maintenances"].contains(&table.as_str())
        {
            assert_eq!(now, *rows, "{table}: the backup's rows exactly");
        } else {
            assert!(now >= *rows, "{table}: {now} rows, the backup had {rows}");
        }
    }
    assert!(manifest.tables["check_results"] > 0 && manifest.tables["rollups"] > 0);
    store.close().await;

    // Point in time: the newest backup at or before now.
    let before = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (code, _, stderr) = d.run("point-in-time", &[("BEFORE", &before)]);
    assert_eq!(code, 0, "{stderr}");
    d.assert_history_back().await;

    // The drill: a second beacon on a restored copy.
    let drill_to = match db.kind {
        Kind::Sqlite => format!("sqlite://{}/drill.db", d.work.path().display()),
        Kind::Postgres => {
            let mut url = url::Url::parse(&db.url).expect("url");
            let name = format!("{}_drill", url.path().trim_start_matches('/'));
            url.set_path(&name);
            url.to_string()
        }
    };
    let (code, stdout, stderr) = d.run("drill", &[("DRILL_TO", &drill_to)]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("<span class=\"name\">Checkout API</span>"),
        "{stdout}"
    );
    if db.kind == Kind::Postgres {
        drop_database(&drill_to).await;
    }

    // Disaster 2: the host is lost; a new one with an empty disk.
    d.systemctl("stop");
    destroy(&db).await;
    let (code, _, stderr) = d.run("new-host", &[]);
    assert_eq!(code, 0, "{stderr}");
    d.assert_history_back().await;

    // Disaster 3: no beacon binary at hand; by hand with standard tools.
    d.systemctl("stop");
    destroy(&db).await;
    let (name, extra): (&str, Vec<(&str, String)>) = match db.kind {
        Kind::Sqlite => (
            "by-hand-sqlite",
            vec![("DB", sqlite_file(&db).display().to_string())],
        ),
        Kind::Postgres => ("by-hand-postgres", vec![("DATABASE_URL", db.url.clone())]),
    };
    let mut vars: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
    vars.extend([
        ("BUCKET", s3.bucket.as_str()),
        ("PREFIX", "drill"),
        ("ENDPOINT", s3.endpoint.as_str()),
    ]);
    let (code, stdout, stderr) = d.run(name, &vars);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("\"sha256\""),
        "the checksum matched: {stdout}"
    );
    if db.kind == Kind::Sqlite {
        assert!(
            stdout.lines().any(|l| l == "ok"),
            "integrity_check: {stdout}"
        );
    }
    d.systemctl("start");
    d.assert_history_back().await;
    d.systemctl("stop");
}

async fn drop_database(url: &str) {
    use sqlx::Connection;
    let parsed = url::Url::parse(url).expect("url");
    let name = parsed.path().trim_start_matches('/').to_string();
    let mut admin = parsed.clone();
    admin.set_path("postgres");
    if let Ok(mut conn) = sqlx::PgConnection::connect(admin.as_str()).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut conn)
            .await;
    }
}

#[test]
fn the_scripts_refuse_what_they_must() {
    let scripts = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts");
    // restore.sh without a backup argument.
    let out = Command::new(format!("{scripts}/restore.sh"))
        .args(["--force"])
        .env("BEACON_STOP_CMD", "echo must-not-stop")
        .output()
        .expect("restore.sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("refused: name the backup to restore"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("must-not-stop"));

    // backup.sh while another backup.sh holds the lock.
    let dir = tempfile::tempdir().expect("dir");
    let lock = dir.path().join("backup.lock");
    // The holder keeps the lock until its stdin closes: it lets go when
    // the test says, not after a guessed time.
    let mut holder = Command::new("flock")
        .arg(&lock)
        .arg("cat")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("flock");
    let held = || {
        Command::new("flock")
            .args(["--nonblock", "--conflict-exit-code", "75"])
            .arg(&lock)
            .arg("true")
            .status()
            .expect("flock -n")
            .code()
            == Some(75)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !held() {
        assert!(
            std::time::Instant::now() < deadline,
            "the holder never took the lock"
        );
        std::thread::yield_now();
    }
    let out = Command::new(format!("{scripts}/backup.sh"))
        .env("BEACON_BACKUP_LOCK", &lock)
        .env("BEACON_BIN", "/bin/false")
        .output()
        .expect("backup.sh");
    drop(holder.stdin.take());
    let _ = holder.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("another backup.sh is running"), "{stderr}");
    // A failing beacon makes backup.sh fail, with its exit code.
    let out = Command::new(format!("{scripts}/backup.sh"))
        .env("BEACON_BACKUP_LOCK", &lock)
        .env("BEACON_BIN", "/bin/false")
        .output()
        .expect("backup.sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("FAILED (exit 1)"), "{stderr}");
}
