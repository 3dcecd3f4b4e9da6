//! The `beacon` binary as operators run it: config errors, the embedded
//! default, `migrate`, JSON logs and SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::helpers::{eventually, Kind, Target, TestDb};
use crate::store_test;

const BEACON: &str = env!("CARGO_BIN_EXE_beacon");

pub(crate) fn beacon(cwd: &Path) -> Command {
    let mut cmd = Command::new(BEACON);
    cmd.current_dir(cwd)
        .env_remove("BEACON_CONFIG")
        .env_remove("BEACON_LISTEN")
        .env_remove("BEACON_STORAGE_URL")
        .env_remove("BEACON_LOG_FORMAT")
        .env_remove("RUST_LOG");
    cmd
}

fn output(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().expect("run beacon");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Sends SIGTERM, as Kubernetes and systemd do.
pub(crate) fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

pub(crate) fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let end = std::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if std::time::Instant::now() > end {
            let _ = child.kill();
            panic!("beacon did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads stderr lines on a thread until one contains `needle`; returns the
/// lines read so far (the thread keeps draining the pipe afterwards).
pub(crate) fn read_until(child: &mut Child, needle: &str) -> Vec<String> {
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                // Nobody listens any more: keep draining so beacon never blocks.
            }
        }
    });
    let mut lines = Vec::new();
    let end = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < end {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            let found = line.contains(needle);
            lines.push(line);
            if found {
                return lines;
            }
        }
    }
    panic!("beacon never logged {needle:?}; got:\n{}", lines.join("\n"));
}

pub(crate) fn listening_address(lines: &[String]) -> String {
    let line = lines.last().expect("a line");
    let start = line.find("http://").expect("an address") + "http://".len();
    line[start..]
        .split(|c: char| c.is_whitespace() || c == '"')
        .next()
        .expect("address")
        .to_string()
}

#[test]
fn check_config_lists_every_problem_and_exits_1() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("beacon.toml");
    std::fs::write(
        &file,
        r#"
[[service]]
name = "Checkout"
url = "http://checkout.internal/health"
interval = "5s"
timeout = "10s"

[[service]]
name = "Checkout"
url = "${CHECKOUT_URL_UNSET}"
"#,
    )
    .expect("write");
    let (code, stdout, stderr) = output(
        beacon(dir.path())
            .arg("check-config")
            .arg("--config")
            .arg(&file),
    );
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!("{}: 3 problems:", file.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "  - service[1] \"Checkout\": timeout (10s) must be shorter than interval (5s)"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "  - service[2] \"Checkout\": url: environment variable CHECKOUT_URL_UNSET is not set"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "  - service[2] \"Checkout\": name \"Checkout\" is already used by service[1]"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("Try: "), "{stderr}");
}

#[test]
fn check_config_prints_what_would_be_monitored_without_secrets() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("beacon.toml");
    std::fs::write(
        &file,
        "[storage]\nurl = \"postgres://beacon:${PGPASS}@db/beacon\"\n[[group]]\nname = \"Shop\"\n[[service]]\nname = \"Checkout API\"\ngroup = \"Shop\"\nurl = \"https://user:${API_PASS}@checkout.internal/health\"\ninterval = \"30s\"\n[[service.dependency]]\nname = \"orders-db\"\nurl = \"postgres://orders:${PGPASS}@db/orders\"\n\
         [server]\npublic_url = \"https://status.example.com\"\n\
         [[notify]]\nname = \"chat\"\nkind = \"slack\"\nurl = \"https://hooks.slack.com/services/${SLACK_TOKEN}\"\ngroups = [\"Shop\"]\nmin_state = \"down\"\n",
    )
    .expect("write");
    let (code, stdout, stderr) = output(
        beacon(dir.path())
            .arg("check-config")
            .env("BEACON_CONFIG", &file)
            .env("PGPASS", "pg-secret")
            .env("API_PASS", "api-secret")
            .env("SLACK_TOKEN", "T000/B000/slack-secret"),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(
            "alerts: chat (slack → https://hooks.slack.com), 15 event(s) for Shop, min state down"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("Checkout API [checkout-api] in Shop http every 30s, timeout 10s"),
        "{stdout}"
    );
    assert!(
        stdout.contains("depends on orders-db (postgres, timeout 10s): postgres://db\n"),
        "{stdout}"
    );
    assert!(stdout.contains("store:   postgres://db\n"), "{stdout}");
    assert!(
        stdout.contains("\n      https://checkout.internal\n"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("pg-secret")
            && !stdout.contains("api-secret")
            && !stdout.contains("slack-secret"),
        "{stdout}"
    );
}

/// A file over the size parsed in pieces (12,000 services, about 1 MB):
/// `check-config` reads every service, a secret and an unknown key in a
/// late one included, and a mistake in a late service is placed at its
/// line in the whole file.
#[test]
fn a_large_config_is_read_whole_and_its_mistakes_placed() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("beacon.toml");
    let mut text = String::from("[server]\ntitle = \"Large\"\n");
    for i in 0..12_000 {
        text.push_str(&format!(
            "[[service]]\nname = \"Service {i}\"\nurl = \"http://127.0.0.1:9/s/{i}\"\ninterval = \"30s\"\n"
        ));
    }
    text.push_str(
        "[[service]]\nname = \"Last\"\nurl = \"http://user:${LAST_PASS}@last.internal/\"\n",
    );
    std::fs::write(&file, &text).expect("write");
    let (code, stdout, stderr) = output(
        beacon(dir.path())
            .arg("check-config")
            .arg("--config")
            .arg(&file)
            .env("LAST_PASS", "last-secret"),
    );
    assert_eq!(code, 0, "{stderr}");
    for name in [
        "Service 0 [service-0]",
        "Service 11999 [service-11999]",
        "Last [last]",
    ] {
        assert!(stdout.contains(name), "{name} missing");
    }
    assert!(!stdout.contains("last-secret"));

    text.push_str("timout = \"5s\"\n[[service]]\nname = \"Bad\"\ninterval = 5\n");
    std::fs::write(&file, &text).expect("write");
    let line = text
        .lines()
        .position(|l| l == "interval = 5")
        .expect("line")
        + 1;
    let (code, _, stderr) = output(
        beacon(dir.path())
            .arg("check-config")
            .arg("--config")
            .arg(&file),
    );
    assert_eq!(code, 1);
    assert!(stderr.contains(&format!("line {line}")), "{stderr}");

    text.truncate(text.len() - "[[service]]\nname = \"Bad\"\ninterval = 5\n".len());
    std::fs::write(&file, &text).expect("write");
    let (code, _, stderr) = output(
        beacon(dir.path())
            .arg("check-config")
            .arg("--config")
            .arg(&file)
            .env("LAST_PASS", "last-secret"),
    );
    assert_eq!(code, 1);
    assert!(
        stderr.contains(
            "service[12001] \"Last\": unknown key \"timout\" (did you mean \"timeout\"?)"
        ),
        "{stderr}"
    );
}

#[test]
fn a_missing_config_file_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("dir");
    let (code, _, stderr) =
        output(beacon(dir.path()).args(["--config", "/nonexistent/beacon.toml", "serve"]));
    assert_eq!(code, 1);
    assert!(
        stderr.contains(
            "cannot read config file /nonexistent/beacon.toml: No such file or directory"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "each cause once: {stderr}"
    );
}

/// `beacon check-config | head -1`: the reader leaves after a line.
#[test]
fn check_config_into_a_closed_pipe_exits_quietly() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("beacon.toml");
    // Far more than a pipe holds (64 KiB), so the write meets the closed end.
    let services: String = (0..2000)
        .map(|i| {
            format!("[[service]]\nname = \"Service {i}\"\nurl = \"http://s{i}.internal/health\"\n")
        })
        .collect();
    std::fs::write(&file, services).expect("write");
    let mut child = beacon(dir.path())
        .arg("check-config")
        .arg("--config")
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("a line");
    assert!(first.ends_with(": OK\n"), "{first}");
    // The reader is gone now, as `head` is.
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(stderr, "", "nothing to say about a reader that left");
}

store_test!(
    a_bad_config_writes_nothing_to_the_store,
    bad_config_writes_nothing
);
async fn bad_config_writes_nothing(db: TestDb) {
    let file = db.dir.path().join("bad.toml");
    std::fs::write(
        &file,
        format!("[storage]\nurl = \"{}\"\n[[service]]\nname = \"A\"\nurl = \"http://a/\"\ninterval = \"0s\"\n", db.url),
    )
    .expect("write");
    let (code, _, stderr) = output(beacon(db.dir.path()).arg("--config").arg(&file));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("service[1] \"A\": interval (0s) must be at least 1s"),
        "{stderr}"
    );
    match db.kind {
        Kind::Sqlite => assert!(
            !db.dir.path().join("beacon.db").exists(),
            "no database file created"
        ),
        Kind::Postgres => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
            let tables: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'",
            )
            .fetch_one(&mut conn)
            .await
            .expect("count");
            assert_eq!(tables, 0, "no table created");
        }
    }
}

store_test!(migrate_applies_the_schema_once, migrate);
async fn migrate(db: TestDb) {
    let run = || {
        output(
            beacon(db.dir.path())
                .arg("migrate")
                .env("BEACON_STORAGE_URL", &db.url),
        )
    };
    let (code, stdout, stderr) = run();
    assert_eq!(code, 0, "{stderr}");
    let store = db.store().await;
    let latest = store.expected_schema_version();
    assert!(latest >= 2);
    assert!(
        stdout.contains(&format!("schema migrated to version {latest}")),
        "{stdout}"
    );
    let (code, stdout, _) = run();
    assert_eq!(code, 0);
    assert!(
        stdout.contains(&format!("schema already at version {latest}")),
        "{stdout}"
    );
    assert_eq!(store.count_rows("services").await.expect("table exists"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_without_config_shows_a_green_page_watching_itself() {
    let dir = tempfile::tempdir().expect("dir");
    let mut child = beacon(dir.path())
        .env("BEACON_LISTEN", "127.0.0.1:0")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let lines = read_until(&mut child, "status page at http://");
    let addr = listening_address(&lines);
    let page = format!("http://{addr}/");
    eventually("the page is green", Duration::from_secs(15), || async {
        match reqwest::get(&page).await {
            Ok(r) => r
                .text()
                .await
                .map(|t| t.contains("All systems operational"))
                .unwrap_or(false),
            Err(_) => false,
        }
    })
    .await;
    let html = reqwest::get(&page)
        .await
        .expect("page")
        .text()
        .await
        .expect("body");
    assert_eq!(crate::page::state_on_page(&html, "beacon"), Some("up"));
    assert!(
        dir.path().join("data/beacon.db").exists(),
        "SQLite at ./data/beacon.db"
    );
    // No transparent huge pages for its heap (src/main.rs): where the
    // kernel reports it (Linux 6.x), the process has them off.
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).expect("status");
    if let Some(line) = status.lines().find(|l| l.starts_with("THP_enabled:")) {
        assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
    }
    terminate(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
}

store_test!(sigterm_while_probing_loses_no_result, sigterm);
async fn sigterm(db: TestDb) {
    let target = Target::start().await;
    let mut config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\nurl = \"{}\"\n",
        db.url
    );
    for i in 0..5 {
        config.push_str(&format!(
            "[[service]]\nname = \"Slow {i}\"\nurl = \"{}\"\ninterval = \"1s\"\ntimeout = \"900ms\"\n",
            target.url("slow")
        ));
    }
    let file = db.dir.path().join("beacon.toml");
    std::fs::write(&file, config).expect("write");
    let mut child = beacon(db.dir.path())
        .arg("--config")
        .arg(&file)
        .env("BEACON_LOG_FORMAT", "json")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let lines = read_until(&mut child, "status page at http://");
    for line in &lines {
        let parsed: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| {
            panic!("BEACON_LOG_FORMAT=json gives JSON lines, not {line:?}: {e}")
        });
        assert!(
            parsed["level"].is_string() && parsed["timestamp"].is_string(),
            "{line}"
        );
    }
    eventually("probes are under way", Duration::from_secs(15), || async {
        target.hits("slow") >= 12
    })
    .await;
    // The target answers after 300 ms, so probes are in flight right now.
    terminate(&child);
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert!(status.success(), "exit 0 on SIGTERM, got {status}");

    let store = db.store().await;
    let written = store.count_rows("check_results").await.expect("count");
    assert_eq!(
        written as u64,
        target.hits("slow"),
        "every probe that reached the target is stored"
    );
}

store_test!(incident_commands_open_update_resolve_and_list, incident_cli);
async fn incident_cli(db: TestDb) {
    let file = db.dir.path().join("beacon.toml");
    std::fs::write(
        &file,
        format!(
            "[storage]\nurl = \"{}\"\n[[service]]\nname = \"Checkout API\"\nurl = \"http://checkout.example/health\"\n",
            db.url
        ),
    )
    .expect("write");
    // The service exists once beacon has synced the config (as `serve` does).
    let config = beacon::config::load(Some(&file), &crate::helpers::no_env).expect("config");
    db.store()
        .await
        .sync_services(&config.services, 0)
        .await
        .expect("sync");

    let run = |args: &[&str]| {
        output(
            beacon(db.dir.path())
                .arg("--config")
                .arg(&file)
                .arg("incident")
                .args(args),
        )
    };
    let (code, stdout, stderr) = run(&[
        "open",
        "--title",
        "Payments delayed",
        "--impact",
        "minor",
        "--message",
        "Looking into it.",
        "--service",
        "checkout-api",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("#1 [investigating] Payments delayed (impact minor, "),
        "{stdout}"
    );
    assert!(
        stdout.trim_end().ends_with("services: checkout-api"),
        "{stdout}"
    );

    let (code, stdout, _) = run(&[
        "update",
        "1",
        "--status",
        "identified",
        "--message",
        "A bad deploy.",
    ]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("#1 [identified]"), "{stdout}");
    let (code, stdout, _) = run(&["resolve", "1"]);
    assert_eq!(code, 0);
    assert!(
        stdout.starts_with("#1 [resolved]") && stdout.contains(" – "),
        "{stdout}"
    );

    let (code, _, stderr) = run(&["open", "--title", "x", "--impact", "huge", "--message", "y"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("--impact \"huge\" is not one of none, minor, major, critical"),
        "{stderr}"
    );
    let (code, _, stderr) = run(&[
        "open",
        "--title",
        "x",
        "--impact",
        "minor",
        "--message",
        "y",
        "--service",
        "nope",
    ]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("services: no service with the slug \"nope\""),
        "{stderr}"
    );
    let (code, _, stderr) = run(&["resolve", "42"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("no incident #42"), "{stderr}");

    let (code, stdout, _) = run(&["list"]);
    assert_eq!(code, 0);
    assert_eq!(
        stdout.lines().count(),
        1,
        "the refused commands wrote nothing: {stdout}"
    );
    let incident = db
        .store()
        .await
        .incident(1)
        .await
        .expect("read")
        .expect("incident");
    let statuses: Vec<&str> = incident.updates.iter().map(|u| u.status.as_str()).collect();
    assert_eq!(statuses, ["investigating", "identified", "resolved"]);
}

store_test!(
    maintenance_commands_schedule_edit_delete_and_list,
    maintenance_cli
);
async fn maintenance_cli(db: TestDb) {
    let file = db.dir.path().join("beacon.toml");
    std::fs::write(
        &file,
        format!(
            "[storage]\nurl = \"{}\"\n[[service]]\nname = \"Checkout API\"\nurl = \"http://checkout.example/health\"\n",
            db.url
        ),
    )
    .expect("write");
    let config = beacon::config::load(Some(&file), &crate::helpers::no_env).expect("config");
    db.store()
        .await
        .sync_services(&config.services, 0)
        .await
        .expect("sync");
    let run = |args: &[&str]| {
        output(
            beacon(db.dir.path())
                .arg("--config")
                .arg(&file)
                .arg("maintenance")
                .args(args),
        )
    };
    let schedule = |ends_at: &str, service: &str| {
        run(&[
            "schedule",
            "--title",
            "Database upgrade",
            "--message",
            "Checkout may be slow.",
            "--starts-at",
            "2026-03-12T22:00:00Z",
            "--ends-at",
            ends_at,
            "--service",
            service,
        ])
    };
    let (code, _, stderr) = schedule("2026-03-12T21:00:00Z", "checkout-api");
    assert_eq!(code, 1);
    assert!(
        stderr.contains("--ends-at must be after starts_at"),
        "{stderr}"
    );
    let (code, _, stderr) = schedule("2026-03-12T23:00:00Z", "nope");
    assert_eq!(code, 1);
    assert!(
        stderr.contains("no service with the slug \"nope\""),
        "{stderr}"
    );
    let (code, stdout, _) = run(&["list"]);
    assert_eq!(
        (code, stdout.as_str()),
        (0, ""),
        "refused commands wrote nothing"
    );

    let (code, stdout, stderr) = schedule("2026-03-12T23:00:00Z", "checkout-api");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout.trim_end(),
        "#1 Database upgrade (2026-03-12 22:00 UTC – 2026-03-12 23:00 UTC) services: checkout-api"
    );
    let (code, stdout, stderr) = run(&["edit", "1", "--ends-at", "2026-03-13T00:30:00Z"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("– 2026-03-13 00:30 UTC)"), "{stdout}");
    let (code, _, stderr) = run(&["edit", "7", "--title", "x"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("no maintenance #7"), "{stderr}");
    let (code, stdout, _) = run(&["list"]);
    assert_eq!((code, stdout.lines().count()), (0, 1), "{stdout}");
    let (code, stdout, _) = run(&["delete", "1"]);
    assert_eq!((code, stdout.trim_end()), (0, "deleted maintenance #1"));
    let (code, stdout, _) = run(&["list"]);
    assert_eq!((code, stdout.as_str()), (0, ""));
}

store_test!(
    backups_run_on_schedule_and_from_the_cli_while_serving,
    backup_cli
);
async fn backup_cli(db: TestDb) {
    let s3 = crate::helpers::S3Server::start().await;
    let target = Target::start().await;
    let file = db.dir.path().join("beacon.toml");
    std::fs::write(
        &file,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\nurl = \"{}\"\n\
             [[service]]\nname = \"Checkout API\"\nurl = \"{}\"\ninterval = \"1s\"\n\
             {}",
            db.url,
            target.url("ok"),
            s3.backup_toml(
                "prod",
                "schedule = \"*/3 * * * * *\"\nkeep = { last = 3 }\nchecksums = \"when_required\""
            )
        ),
    )
    .expect("write");
    let with_keys = |cmd: &mut Command| {
        cmd.env("AWS_ACCESS_KEY_ID", crate::helpers::S3_ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", crate::helpers::S3_SECRET_KEY);
    };
    let mut serve = beacon(db.dir.path());
    with_keys(&mut serve);
    let mut child = serve
        .arg("--config")
        .arg(&file)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let lines = read_until(&mut child, "status page at http://");
    let addr = listening_address(&lines);
    let store = db.store().await;
    eventually(
        "the schedule takes and verifies a backup",
        Duration::from_secs(30),
        || async {
            store
                .backup_records()
                .await
                .is_ok_and(|r| r.iter().any(|r| r.status == "verified"))
        },
    )
    .await;
    let body = reqwest::get(format!("http://{addr}/health"))
        .await
        .expect("health")
        .text()
        .await
        .expect("body");
    let health: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        health["checks"]["backup:age"][0]["status"], "pass",
        "{health}"
    );

    // The CLI, from cron, while serve runs its own schedule on the same
    // database: the lock makes them take turns (a refusal says so).
    let cli = |args: &[&str]| {
        let mut cmd = beacon(db.dir.path());
        with_keys(&mut cmd);
        output(cmd.arg("--config").arg(&file).arg("backup").args(args))
    };
    let mut ran = None;
    for _ in 0..20 {
        let (code, stdout, stderr) = cli(&["run"]);
        if code == 0 {
            ran = Some(stdout);
            break;
        }
        assert!(
            stderr.contains("another backup, verify, prune or restore is running"),
            "{stderr}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let stdout = ran.expect("backup run succeeded between scheduled runs");
    assert!(stdout.starts_with("backup 20"), "{stdout}");
    assert!(stdout.contains("taken and verified"), "{stdout}");

    let (code, stdout, stderr) = cli(&["list"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("ID "), "{stdout}");
    assert!(
        stdout.lines().skip(1).all(|l| l.contains("verified")),
        "{stdout}"
    );
    assert!(stdout.lines().count() <= 4, "keep last 3: {stdout}");

    let (code, stdout, stderr) = cli(&["list", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let first: serde_json::Value =
        serde_json::from_str(stdout.lines().next().expect("a line")).expect("json");
    assert_eq!(first["status"], "verified");

    terminate(&child);
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert!(status.success(), "{status}");

    let (code, stdout, stderr) = cli(&["verify", "latest"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("verified:") && stdout.contains("integrity ok"),
        "{stdout}"
    );
    let (code, stdout, _) = cli(&["prune", "--dry-run"]);
    assert_eq!(code, 0);
    assert!(stdout.lines().all(|l| l.starts_with("keep")), "{stdout}");
    assert!(stdout.contains("newest verified backup"), "{stdout}");
    let (code, _, stderr) = cli(&["verify", "20990101T000000.000Z"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("no manifest"), "{stderr}");
}

#[test]
fn backup_without_a_backup_section_says_what_to_add() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("beacon.toml");
    std::fs::write(
        &file,
        format!(
            "[storage]\nurl = \"sqlite://{}/b.db\"\n",
            dir.path().display()
        ),
    )
    .expect("write");
    let (code, _, stderr) = output(
        beacon(dir.path())
            .arg("--config")
            .arg(&file)
            .args(["backup", "run"]),
    );
    assert_eq!(code, 1);
    assert!(
        stderr.contains("the config has no [backup] section"),
        "{stderr}"
    );
    assert!(stderr.contains("Try: add [backup]"), "{stderr}");
}

store_test!(
    sigterm_during_a_backup_cancels_it_and_leaves_nothing_behind,
    backup_cancelled
);
async fn backup_cancelled(db: TestDb) {
    // Cut off after the archive is uploaded (before its manifest), and, on
    // PostgreSQL, once more in verification with its scratch database made.
    backup_cancelled_at(&db, "upload").await;
    if db.kind == Kind::Postgres {
        backup_cancelled_at(&db, "verify").await;
    }
}

/// Starts beacon with a backup schedule every second and the test hook
/// that pauses a backup at `step`, sends SIGTERM while it waits there, and
/// checks what the cancelled run left: nothing but its record.
async fn backup_cancelled_at(db: &TestDb, step: &str) {
    let s3 = crate::helpers::S3Server::start().await;
    let target = Target::start().await;
    let temp = db.dir.path().join(format!("staging-{step}"));
    std::fs::create_dir_all(&temp).expect("staging folder");
    let file = db.dir.path().join(format!("beacon-{step}.toml"));
    std::fs::write(
        &file,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\nurl = \"{}\"\n\
             [[service]]\nname = \"Checkout API\"\nurl = \"{}\"\ninterval = \"1s\"\n\
             {}",
            db.url,
            target.url("ok"),
            s3.backup_toml(
                "prod",
                &format!(
                    "schedule = \"* * * * * *\"\nchecksums = \"when_required\"\ntemp_dir = \"{}\"",
                    temp.display()
                )
            )
        ),
    )
    .expect("write");
    let mut child = beacon(db.dir.path())
        .env("AWS_ACCESS_KEY_ID", crate::helpers::S3_ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", crate::helpers::S3_SECRET_KEY)
        .env("BEACON_TEST_BACKUP_PAUSE", step)
        .arg("--config")
        .arg(&file)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    read_until(&mut child, "test hook: the backup pauses here");
    let store = db.store().await;
    let running = store.backup_records().await.expect("records");
    let id = running
        .iter()
        .find(|r| matches!(r.status.as_str(), "running" | "uploaded"))
        .map(|r| r.id.clone())
        .expect("a backup under way");
    if step == "upload" {
        assert!(
            walk(s3.dir.path()).iter().any(|p| p.contains(&id)),
            "the archive is uploaded before the stop"
        );
    }

    let stopped = std::time::Instant::now();
    terminate(&child);
    let status = wait_exit(&mut child, Duration::from_secs(25));
    assert!(status.success(), "{status:?}");
    eprintln!(
        "SIGTERM during a backup ({step}): exit 0 after {:?}",
        stopped.elapsed()
    );

    // Its temporary folder is gone.
    let left: Vec<_> = std::fs::read_dir(&temp)
        .expect("staging folder")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
    let record = store
        .backup_records()
        .await
        .expect("records")
        .into_iter()
        .find(|r| r.id == id)
        .expect("the record stays");
    match step {
        "upload" => {
            // Nothing of it in the bucket, and it says why.
            let objects: Vec<String> = walk(s3.dir.path())
                .into_iter()
                .filter(|p| p.contains(&id))
                .collect();
            assert!(objects.is_empty(), "left in the bucket: {objects:?}");
            assert_eq!(record.status, "failed");
            assert_eq!(record.failed_step.as_deref(), Some("cancelled"));
        }
        _ => {
            // Complete (its manifest is written): kept, unverified; and
            // no scratch database is left on the server.
            assert_eq!(record.status, "uploaded");
            let server = store.postgres_server().expect("PostgreSQL");
            let prefix: String = format!(
                "beacon_verify_{}",
                id.chars()
                    .filter(char::is_ascii_alphanumeric)
                    .collect::<String>()
                    .to_lowercase()
            );
            assert_eq!(
                server
                    .drop_databases_with_prefix(&prefix)
                    .await
                    .expect("list"),
                0,
                "the scratch database was dropped"
            );
        }
    }
}

/// Every file under `dir`, as text.
fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.display().to_string());
            }
        }
    }
    out
}

store_test!(
    subscriber_commands_add_list_export_and_remove,
    subscribers_cli
);
async fn subscribers_cli(db: TestDb) {
    let file = db.dir.path().join("beacon.toml");
    std::fs::write(
        &file,
        format!(
            "[server]\npublic_url = \"https://status.example.com\"\n[storage]\nurl = \"{}\"\n[[group]]\nname = \"Shop\"\n[[service]]\nname = \"Checkout API\"\ngroup = \"Shop\"\nurl = \"http://checkout.example/health\"\n",
            db.url
        ),
    )
    .expect("write");
    let config = beacon::config::load(Some(&file), &crate::helpers::no_env).expect("config");
    db.store()
        .await
        .sync_services(&config.services, 0)
        .await
        .expect("sync");
    let run = |args: &[&str]| {
        output(
            beacon(db.dir.path())
                .arg("--config")
                .arg(&file)
                .arg("subscribers")
                .args(args)
                .env_remove("BEACON_SUBSCRIBER_SECRET"),
        )
    };
    let (code, stdout, stderr) = run(&[
        "add",
        "--kind",
        "webhook",
        "--address",
        "https://hooks.example.com/status",
        "--component",
        "Shop",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("#1 webhook https://hooks.example.com"),
        "{stdout}"
    );
    assert!(stdout.contains("follows: Shop"), "{stdout}");
    assert!(stdout.contains("secret (shown once"), "{stdout}");
    // Bad input is named, writes nothing.
    let (code, _, stderr) = run(&["add", "--kind", "pager", "--address", "x"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("--kind"), "{stderr}");
    let (code, _, stderr) = run(&[
        "add",
        "--kind",
        "slack",
        "--address",
        "https://hooks.slack.test/x",
        "--component",
        "nope",
    ]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("--components") && stderr.contains("nope"),
        "{stderr}"
    );
    let (code, _, stderr) = run(&["add", "--kind", "email", "--address", "a@example.com"]);
    assert_eq!(code, 1, "email needs [subscriptions]");
    assert!(stderr.contains("[subscriptions]"), "{stderr}");
    let (code, stdout, _) = run(&["list"]);
    assert_eq!(code, 0);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let (code, stdout, stderr) = run(&["export", "https://hooks.example.com/status"]);
    assert_eq!(code, 0, "{stderr}");
    let export: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(export["kind"], "webhook");
    assert!(
        export.get("secret").is_none(),
        "the secret is shown once, at add"
    );
    assert_eq!(export["signed"], true);
    assert!(export["messages"].is_array());
    let (code, stdout, stderr) = run(&["remove", "1"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("removed #1"));
    let (_, stdout, _) = run(&["list"]);
    assert!(stdout.is_empty(), "{stdout}");
    let (code, _, stderr) = run(&["remove", "1"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("no subscriber \"1\""), "{stderr}");
}
