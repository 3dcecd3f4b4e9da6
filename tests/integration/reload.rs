//! Config changes without a restart, as operators make them: the file
//! edited (or swapped by Kubernetes' `..data` symlink) and SIGHUP, against
//! the real binary.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::binary::{beacon, listening_address, read_until, terminate, wait_exit};
use crate::helpers::{eventually, Target, TestDb};

/// A config with `services` (name, path on `target`) and `title`.
fn config(db: &TestDb, target: &Target, title: &str, services: &[(&str, &str)]) -> String {
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntitle = \"{title}\"\n[storage]\nurl = \"{}\"\n[monitor]\nflush_interval = \"100ms\"\n",
        db.url
    );
    for (name, path) in services {
        text.push_str(&format!(
            "[[service]]\nname = \"{name}\"\nurl = \"{}\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n",
            target.url(path)
        ));
    }
    text
}

struct Running {
    child: Child,
    addr: String,
    client: reqwest::Client,
}

impl Running {
    fn start(dir: &Path, file: &Path) -> Running {
        let mut child = beacon(dir)
            .arg("--config")
            .arg(file)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn");
        let lines = read_until(&mut child, "status page at http://");
        Running {
            addr: listening_address(&lines),
            child,
            client: reqwest::Client::new(),
        }
    }

    async fn get(&self, path: &str) -> String {
        match self
            .client
            .get(format!("http://{}{path}", self.addr))
            .send()
            .await
        {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Component name → status, from summary.json.
    async fn components(&self) -> Vec<(String, String)> {
        let body = self.get("/api/v2/summary.json").await;
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        json["components"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .map(|c| {
                        (
                            c["name"].as_str().unwrap_or_default().to_string(),
                            c["status"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn metric(&self, series: &str) -> Option<f64> {
        let text = self.get("/metrics").await;
        text.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    async fn health(&self) -> serde_json::Value {
        serde_json::from_str(&self.get("/health").await).unwrap_or_default()
    }

    fn stop(mut self) {
        terminate(&self.child);
        let status = wait_exit(&mut self.child, Duration::from_secs(25));
        assert!(status.success(), "{status:?}");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn has(components: &[(String, String)], name: &str, status: &str) -> bool {
    components.iter().any(|(n, s)| n == name && s == status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_change_is_applied_and_an_invalid_one_refused_while_serving() {
    let db = TestDb::sqlite().await;
    let target = Target::start().await;
    let file = db.dir.path().join("beacon.toml");
    std::fs::write(
        &file,
        config(&db, &target, "Before", &[("Alpha", "ok"), ("Beta", "ok")]),
    )
    .expect("write");
    let app = Running::start(db.dir.path(), &file);
    eventually("both services are up", Duration::from_secs(15), || async {
        let c = app.components().await;
        has(&c, "Alpha", "operational") && has(&c, "Beta", "operational")
    })
    .await;

    let beta_series = "beacon_probes_total{outcome=\"up\",service=\"beta\"}";
    eventually(
        "Beta's probes are counted",
        Duration::from_secs(10),
        || async { app.metric(beta_series).await.is_some() },
    )
    .await;

    // Beta removed, Gamma added, the title changed: written as an editor
    // does, a new file moved over the old one.
    let changed = Instant::now();
    let next = config(&db, &target, "After", &[("Alpha", "ok"), ("Gamma", "ok")]);
    let staged = db.dir.path().join("beacon.toml.new");
    std::fs::write(&staged, &next).expect("write");
    std::fs::rename(&staged, &file).expect("rename");
    eventually(
        "Gamma is probed and Beta has left the page",
        Duration::from_secs(15),
        || async {
            let c = app.components().await;
            has(&c, "Gamma", "operational") && !c.iter().any(|(n, _)| n == "Beta")
        },
    )
    .await;
    eprintln!(
        "an added service was up on the page {:?} after the file changed",
        changed.elapsed()
    );
    eventually(
        "the new title is on the page",
        Duration::from_secs(5),
        || async { app.get("/").await.contains("After") },
    )
    .await;
    eventually("the reload is counted", Duration::from_secs(5), || async {
        app.metric("beacon_config_reloads_total{result=\"applied\"}")
            .await
            == Some(1.0)
    })
    .await;
    assert_eq!(
        app.metric(beta_series).await,
        None,
        "a removed service's probe series leave /metrics"
    );
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(next.as_bytes()))
    };
    assert_eq!(
        app.metric(&format!("beacon_config_info{{sha256=\"{sha}\"}}"))
            .await,
        Some(1.0),
        "the loaded config's hash"
    );

    // An invalid change: refused, named on /health, the running config
    // stays (Alpha and Gamma still probed) and beacon keeps serving.
    let bad = format!(
        "{next}[[service]]\nname = \"Delta\"\nurl = \"{}\"\ninterval = \"1s\"\ntimeout = \"5s\"\n",
        target.url("ok")
    );
    std::fs::write(&file, bad).expect("write");
    eventually(
        "/health warns of the refused reload",
        Duration::from_secs(10),
        || async {
            let h = app.health().await;
            h["checks"]["config:reload"][0]["status"] == "warn"
                && h["checks"]["config:reload"][0]["output"]
                    .as_str()
                    .is_some_and(|o| o.contains("refused") && o.contains("Delta"))
        },
    )
    .await;
    assert_eq!(
        app.metric("beacon_config_reloads_total{result=\"invalid\"}")
            .await,
        Some(1.0)
    );
    let hits = target.hits("ok");
    eventually(
        "probing goes on under the old config",
        Duration::from_secs(10),
        || async { target.hits("ok") >= hits + 4 },
    )
    .await;
    let c = app.components().await;
    assert!(
        has(&c, "Alpha", "operational") && has(&c, "Gamma", "operational"),
        "{c:?}"
    );
    assert!(!c.iter().any(|(n, _)| n == "Delta"), "{c:?}");

    // Fixed again: applied, and /health is clear.
    std::fs::write(&file, config(&db, &target, "Fixed", &[("Alpha", "ok")])).expect("write");
    eventually(
        "the fixed config is applied",
        Duration::from_secs(15),
        || async {
            let h = app.health().await;
            h["checks"]["config:reload"][0]["status"] == "pass"
                && !app.components().await.iter().any(|(n, _)| n == "Gamma")
        },
    )
    .await;

    // SIGHUP with nothing new: counted as unchanged.
    let status = std::process::Command::new("kill")
        .args(["-HUP", &app.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    eventually("SIGHUP is counted", Duration::from_secs(5), || async {
        app.metric("beacon_config_reloads_total{result=\"unchanged\"}")
            .await
            == Some(1.0)
    })
    .await;
    app.stop();
}

/// Kubernetes mounts a ConfigMap as a directory whose files are symlinks
/// through `..data`, itself a symlink to a timestamped folder; an update
/// writes a new folder and swaps `..data` in one rename.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_swap_through_the_data_symlink_is_picked_up() {
    let db = TestDb::sqlite().await;
    let target = Target::start().await;
    let mount = db.dir.path().join("config");
    std::fs::create_dir_all(mount.join("..2026_12_03_first")).expect("dir");
    std::fs::write(
        mount.join("..2026_12_03_first/beacon.toml"),
        config(&db, &target, "First", &[("Alpha", "ok")]),
    )
    .expect("write");
    std::os::unix::fs::symlink("..2026_12_03_first", mount.join("..data")).expect("symlink");
    std::os::unix::fs::symlink("..data/beacon.toml", mount.join("beacon.toml")).expect("symlink");
    let app = Running::start(db.dir.path(), &mount.join("beacon.toml"));
    eventually("Alpha is up", Duration::from_secs(15), || async {
        has(&app.components().await, "Alpha", "operational")
    })
    .await;

    std::fs::create_dir_all(mount.join("..2026_12_03_second")).expect("dir");
    std::fs::write(
        mount.join("..2026_12_03_second/beacon.toml"),
        config(&db, &target, "Second", &[("Alpha", "ok"), ("Beta", "ok")]),
    )
    .expect("write");
    std::os::unix::fs::symlink("..2026_12_03_second", mount.join("..data_tmp")).expect("symlink");
    std::fs::rename(mount.join("..data_tmp"), mount.join("..data")).expect("swap");
    std::fs::remove_dir_all(mount.join("..2026_12_03_first")).expect("old folder");
    eventually(
        "the swapped config is applied",
        Duration::from_secs(15),
        || async { has(&app.components().await, "Beta", "operational") },
    )
    .await;
    assert!(app.get("/").await.contains("Second"));
    app.stop();
}
