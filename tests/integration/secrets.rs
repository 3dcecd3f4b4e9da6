//! No secret ever leaves beacon: a config whose every secret is a unique
//! marker (from `${VAR}` and written inline, in URL user names, passwords,
//! paths and queries, headers, tokens, webhook and Slack URLs, the backup
//! target and endpoint) is checked, served, probed, alerted on and backed up
//! by the real binary; no marker may show in its output, logs, pages, admin
//! API or database, on SQLite and on PostgreSQL (whose URL carries a
//! password marker too: the server trusts it, so it is never needed).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::helpers::{closed_port, eventually, Kind, Target, TestDb};
use crate::store_test;

const BEACON: &str = env!("CARGO_BIN_EXE_beacon");

/// Every marker holds this, so that a marker cut or re-encoded is found too.
const MARK: &str = "SECRETMARK";

/// Secrets from the environment, each used through `${VAR}` (the AWS ones
/// are read by name).
const ENV: [(&str, &str); 14] = [
    ("API_KEY", "SECRETMARK-env-header-7f3a"),
    ("URL_USER", "SECRETMARK-env-urluser-91c2"),
    ("URL_PATH", "SECRETMARK-env-urlpath-44d1"),
    ("PG_PASS", "SECRETMARK-env-pgpass-2b8e"),
    ("SLACK_PATH", "SECRETMARK-env-slack-0a9d"),
    ("WEBHOOK_SECRET", "SECRETMARK-env-hooksecret-5e6f"),
    ("SMTP_PASS", "SECRETMARK-env-smtp-3c4d"),
    ("ADMIN_TOKEN", "SECRETMARK-env-admintoken-8a7b"),
    ("METRICS_TOKEN", "SECRETMARK-env-metricstoken-1f2e"),
    ("BACKUP_PREFIX", "SECRETMARK-env-prefix-6d5c"),
    ("ENDPOINT_PASS", "SECRETMARK-env-endpointpass-9e8d"),
    ("BAD_INTERVAL", "SECRETMARK-env-interval-0b1c"),
    ("AWS_ACCESS_KEY_ID", "SECRETMARK-env-awskey-4b3a"),
    ("AWS_SECRET_ACCESS_KEY", "SECRETMARK-env-awssecret-7c6b"),
];

/// A config every part of which is valid: three probed services (query
/// keys, a user name and path from `${VAR}`, an inline password to a closed
/// port) with a PostgreSQL dependency, three alert channels that cannot
/// deliver, and an S3 backup target whose endpoint answers nothing.
fn valid_config(storage: &str, target_port: u16, closed: u16) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
public_url = "https://status.example.com"
[storage]
url = "{storage}"
[admin]
tokens = ["${{ADMIN_TOKEN}}"]
[metrics]
token = "${{METRICS_TOKEN}}"
[backup]
target = "s3://beacon-backups/${{BACKUP_PREFIX}}"
endpoint = "http://127.0.0.1:{closed}"

[[service]]
name = "Query keys"
url = "http://127.0.0.1:{target_port}/ok?sig=SECRETMARK-inline-sig&auth=SECRETMARK-inline-auth&pass=SECRETMARK-inline-pass"
interval = "1s"
failure_threshold = 1
headers = {{ X-Api-Key = "${{API_KEY}}" }}

[[service]]
name = "User and path"
url = "http://${{URL_USER}}@127.0.0.1:{target_port}/${{URL_PATH}}/ok"
interval = "1s"
failure_threshold = 1
  [[service.dependency]]
  name = "db"
  url = "postgres://postgres:${{PG_PASS}}@127.0.0.1:5432/postgres"

[[service]]
name = "Refused"
url = "http://user:SECRETMARK-inline-urlpass@127.0.0.1:{closed}/x?token=SECRETMARK-inline-token"
interval = "1s"
failure_threshold = 1

[[notify]]
name = "hook"
kind = "webhook"
url = "http://127.0.0.1:{closed}/hooks/SECRETMARK-inline-hookpath?sig=SECRETMARK-inline-hooksig"
secret = "${{WEBHOOK_SECRET}}"
max_attempts = 1
[[notify]]
name = "chat"
kind = "slack"
url = "http://127.0.0.1:{closed}/services/${{SLACK_PATH}}"
max_attempts = 1
[[notify]]
name = "mail"
kind = "email"
smtp_host = "127.0.0.1"
smtp_port = {closed}
smtp_tls = "none"
username = "beacon"
password = "${{SMTP_PASS}}"
from = "beacon@example.com"
to = ["ops@example.com"]
max_attempts = 1
"#,
    )
}

/// The store's URL for the config: SQLite in the test's folder, or the
/// test's PostgreSQL database with a password marker the server (trust
/// auth) never asks for.
fn storage_url(db: &TestDb) -> String {
    match db.kind {
        Kind::Sqlite => format!("sqlite://{}", db.dir.path().join("beacon.db").display()),
        Kind::Postgres => {
            let url = db.url.replacen(
                "postgres://postgres@",
                "postgres://postgres:SECRETMARK-inline-storepass@",
                1,
            );
            assert!(url.contains(MARK), "a password marker in {}", db.url);
            url
        }
    }
}

/// The valid config with mistakes that hold secrets: an endpoint with a
/// password, an unparsable URL, a value from `${VAR}` that is no duration.
fn invalid_config(valid: &str, closed: u16) -> String {
    valid.replace(
        &format!("endpoint = \"http://127.0.0.1:{closed}\""),
        &format!("endpoint = \"http://minio:${{ENDPOINT_PASS}}@127.0.0.1:{closed}\""),
    ) + r#"
[[service]]
name = "Unparsable"
url = "http://exa mple.com/?token=SECRETMARK-inline-unparsable"

[[service]]
name = "Odd interval"
url = "http://127.0.0.1:1/"
interval = "${BAD_INTERVAL}"
"#
}

fn beacon(dir: &Path, config: &Path) -> Command {
    let mut cmd = Command::new(BEACON);
    cmd.current_dir(dir)
        .env_remove("BEACON_LISTEN")
        .env_remove("BEACON_STORAGE_URL")
        .env_remove("BEACON_BACKUP_TARGET")
        .env_remove("BEACON_LOG_FORMAT")
        .env("RUST_LOG", "info,beacon=debug")
        .env("BEACON_CONFIG", config)
        .envs(ENV);
    cmd
}

fn output(cmd: &mut Command) -> (i32, String) {
    let out = cmd.output().expect("run beacon");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The markers found in `text`, with the text around them.
fn leaks(text: &str) -> Vec<String> {
    text.match_indices(MARK)
        .map(|(at, _)| {
            let mut start = at.saturating_sub(120);
            while !text.is_char_boundary(start) {
                start -= 1;
            }
            let mut end = (at + 80).min(text.len());
            while !text.is_char_boundary(end) {
                end += 1;
            }
            text[start..end].to_string()
        })
        .collect()
}

fn assert_no_leak(what: &str, text: &str) {
    let found = leaks(text);
    assert!(
        found.is_empty(),
        "{what} shows a secret:\n{}",
        found.join("\n---\n")
    );
}

/// Collects every stderr line of `child` on a thread.
fn collect_stderr(child: &mut Child) -> Arc<Mutex<Vec<String>>> {
    let stderr = child.stderr.take().expect("stderr piped");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            sink.lock().expect("lock").push(line);
        }
    });
    lines
}

store_test!(no_secret_is_printed_logged_served_or_stored, nothing_leaks);

async fn nothing_leaks(db: TestDb) {
    let dir = tempfile::tempdir().expect("dir");
    let target = Target::start().await;
    let closed = closed_port().await;
    let valid = valid_config(&storage_url(&db), target.addr.port(), closed);
    let valid_file = dir.path().join("valid.toml");
    std::fs::write(&valid_file, &valid).expect("write");
    let invalid_file = dir.path().join("invalid.toml");
    std::fs::write(&invalid_file, invalid_config(&valid, closed)).expect("write");

    // check-config on the valid config: what would be monitored.
    let (code, out) = output(beacon(dir.path(), &valid_file).arg("check-config"));
    assert_eq!(code, 0, "{out}");
    assert_no_leak("check-config", &out);
    for shown in [
        format!("http://127.0.0.1:{}\n", target.addr.port()),
        format!("http://127.0.0.1:{closed}\n"),
        "postgres://127.0.0.1:5432\n".to_string(),
        format!("webhook → http://127.0.0.1:{closed})"),
        format!("slack → http://127.0.0.1:{closed})"),
        format!("backups: s3://beacon-backups at http://127.0.0.1:{closed}"),
    ] {
        assert!(out.contains(&shown), "{shown:?} in:\n{out}");
    }

    // check-config and backup run on the invalid one: each mistake named by
    // its field, never with the secret in it; nothing runs.
    let (code, out) = output(beacon(dir.path(), &invalid_file).arg("check-config"));
    assert_eq!(code, 1, "{out}");
    assert_no_leak("check-config on mistakes", &out);
    for problem in [
        "backup: endpoint must not hold a user name or password",
        "service[4] \"Unparsable\": url is not a valid URL (",
        "service[5] \"Odd interval\": interval \"${BAD_INTERVAL}\" is not a duration",
    ] {
        assert!(out.contains(problem), "{problem:?} in:\n{out}");
    }
    let (code, out) = output(beacon(dir.path(), &invalid_file).args(["backup", "run"]));
    assert_eq!(code, 1, "{out}");
    assert_no_leak("backup run on mistakes", &out);
    if db.kind == Kind::Sqlite {
        assert!(!db.dir.path().join("beacon.db").exists(), "nothing ran");
    }

    // serve: probes fail, alerts fail, pages and metrics are served.
    let mut child = beacon(dir.path(), &valid_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let logs = collect_stderr(&mut child);
    let mut addr = None;
    eventually("beacon listens", Duration::from_secs(20), || {
        let found = logs
            .lock()
            .expect("lock")
            .iter()
            .find_map(|l| l.split("status page at http://").nth(1).map(str::to_string));
        addr = found.map(|a| a.split_whitespace().next().unwrap_or("").to_string());
        std::future::ready(addr.is_some())
    })
    .await;
    let addr = addr.expect("address");
    let store = beacon::store::Store::connect(&beacon::config::DatabaseUrl::new(db.url.clone()))
        .await
        .expect("store");
    eventually(
        "every channel tried its alerts and failed",
        Duration::from_secs(60),
        || async {
            let deliveries = store.alert_deliveries().await.unwrap_or_default();
            ["hook", "chat", "mail"].iter().all(|channel| {
                deliveries
                    .iter()
                    .any(|d| d.channel == *channel && d.status == "failed")
            })
        },
    )
    .await;

    // backup run while serving: the endpoint answers nothing.
    let (code, out) = output(beacon(dir.path(), &valid_file).args(["backup", "run"]));
    assert_ne!(code, 0, "{out}");
    assert_no_leak("backup run", &out);
    let records = store.backup_records().await.expect("backups");
    assert!(
        records.iter().any(|r| r.error.is_some()),
        "the failure is stored: {records:?}"
    );

    let client = reqwest::Client::new();
    let token = ENV
        .iter()
        .find(|(name, _)| *name == "METRICS_TOKEN")
        .map(|(_, v)| *v)
        .expect("token");
    let admin_token = ENV
        .iter()
        .find(|(name, _)| *name == "ADMIN_TOKEN")
        .map(|(_, v)| *v)
        .expect("token");
    // An automatic incident per service, with its failure text.
    let incidents = store.unresolved_incidents().await.expect("incidents");
    let incident = incidents.first().expect("an automatic incident").id;
    let incident_page = format!("/incidents/{incident}");
    let admin_incident = format!("/admin/api/incidents/{incident}");
    for path in [
        "/",
        "/health",
        "/metrics",
        "/api/v1/services",
        "/api/v2/summary.json",
        "/api/v2/incidents.json",
        "/api/v2/components.json",
        "/feed.atom",
        "/feed.rss",
        "/incidents",
        incident_page.as_str(),
        "/services/query-keys",
        "/services/user-and-path",
        "/services/refused",
        "/admin/api/incidents",
        admin_incident.as_str(),
        "/admin/api/maintenances",
    ] {
        let token = if path.starts_with("/admin/") {
            admin_token
        } else {
            token
        };
        let response = client
            .get(format!("http://{addr}{path}"))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        // (/health answers 503 here: services are down.)
        let status = response.status();
        let body = response.text().await.expect("body");
        assert!(!body.is_empty(), "{path}: {status}");
        assert_no_leak(path, &body);
    }

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let end = std::time::Instant::now() + Duration::from_secs(20);
    let exited = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            std::time::Instant::now() < end,
            "beacon did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exited.success(), "{exited}");
    let mut printed = String::new();
    std::io::Read::read_to_string(&mut BufReader::new(stdout), &mut printed).expect("stdout");
    assert_no_leak("serve's stdout", &printed);
    let logged = logs.lock().expect("lock").join("\n");
    assert!(
        logged.contains("not sent; giving up after the last attempt"),
        "the failures were logged:\n{logged}"
    );
    assert_no_leak("serve's log", &logged);

    // The database, rows and file: stored errors, probe reasons, targets.
    // Closed and waited for, so the last connection has checkpointed and
    // removed the WAL before the folder is listed.
    store.close().await;
    match db.kind {
        Kind::Sqlite => {
            for entry in std::fs::read_dir(db.dir.path()).expect("dir") {
                let path = entry.expect("entry").path();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if name.starts_with("beacon.db") {
                    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {name}: {e}"));
                    assert_no_leak(name, &String::from_utf8_lossy(&bytes));
                }
            }
        }
        Kind::Postgres => {
            // Every row of every table, as pg_dump writes them.
            let dump = Command::new("pg_dump")
                .args(["--data-only", "--no-owner", &db.url])
                .output()
                .expect("pg_dump");
            assert!(dump.status.success(), "pg_dump failed");
            let text = String::from_utf8_lossy(&dump.stdout);
            assert!(text.contains("check_results"), "the dump holds the rows");
            assert_no_leak("the PostgreSQL database", &text);
        }
    }
}
