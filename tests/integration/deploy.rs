//! docs/deploy.md's commands, run as written (each block marked
//! `<!-- deploy: NAME -->`). The systemd ones run here: as root, in a
//! private mount namespace whose /etc, /usr/local, /var/lib and /var/log
//! are overlays (so `useradd` and `install` change nothing outside it),
//! with a stand-in `systemctl`, since no systemd runs on the CI machines:
//! it starts the installed unit's `ExecStart` as its `User=`, in its
//! `WorkingDirectory=`, with its `EnvironmentFile=` and `Environment=`.
//! The image's blocks run in tests/integration/image.rs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::helpers::{deploy_block, eventually};
use crate::restore::BEACON;

/// The blocks docs/deploy.md shows use beacon's default port: one test at
/// a time listens there.
pub static PORT_8080: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Every block the tests run. A block of docs/deploy.md missing here, or
/// a block with no marker, fails `every_command_of_deploy_md_is_run`.
const BLOCKS_RUN: &[&str] = &[
    // here
    "systemd-install",
    "systemd-check",
    "systemd-upgrade",
    // image.rs
    "image-build",
    "image-config",
    "image-run",
    "image-backup",
    "image-upgrade",
];

#[test]
fn every_command_of_deploy_md_is_run() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/deploy.md"))
        .expect("docs/deploy.md");
    let mut marked = Vec::new();
    let mut last_marker: Option<&str> = None;
    let mut in_block = false;
    let mut in_k8s_block = false;
    for line in doc.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            if !in_block && trimmed != "```" && std::mem::take(&mut in_k8s_block) {
                // Run by the Kubernetes test.
            } else if !in_block && trimmed != "```" {
                assert_eq!(
                    trimmed, "```sh",
                    "docs/deploy.md: commands go in ```sh blocks"
                );
                let name = last_marker.take().unwrap_or_else(|| {
                    panic!("docs/deploy.md: a ```sh block without <!-- deploy: NAME -->")
                });
                marked.push(name.to_string());
            }
            in_block = !in_block;
        } else if let Some(name) = trimmed
            .strip_prefix("<!-- deploy: ")
            .and_then(|r| r.strip_suffix(" -->"))
        {
            last_marker = Some(name);
        } else if trimmed.starts_with("<!-- k8s: ") {
            // The Kubernetes section's blocks: tests/integration/kubernetes.rs
            // runs those.
            in_k8s_block = true;
        } else if !trimmed.is_empty() {
            last_marker = None;
        }
    }
    let mut run: Vec<String> = BLOCKS_RUN.iter().map(|s| s.to_string()).collect();
    run.sort();
    marked.sort();
    assert_eq!(
        marked, run,
        "the blocks of docs/deploy.md and those the tests run"
    );
}

/// True if every tool is on PATH and the test runs as root. Otherwise
/// skips with a note, or fails under CI=true, where they must be there.
pub fn required(what: &str, tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|tool| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect();
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if missing.is_empty() && root {
        return true;
    }
    let why = if root {
        format!("missing {}", missing.join(", "))
    } else {
        "not root (needs mount namespaces and chroot)".to_string()
    };
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what}: {why} under CI=true (scripts/test.sh installs them)");
    }
    eprintln!("note: skipping {what}: {why}");
    false
}

/// Leaves out what `cargo test` adds to a test's environment, so that a
/// cargo run from a test (or from a script a test runs) sees what it sees
/// in a shell. Otherwise it rebuilds most of the tree: ring's build script
/// reruns when CARGO_MANIFEST_DIR changes, and the shell's next build
/// rebuilds it all again (about 10 minutes each on 2 cores).
pub fn as_from_a_shell(command: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let from_cargo_test = [
            "CARGO_PKG_",
            "CARGO_BIN_EXE_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_PRIMARY_",
            "CARGO_TARGET_TMPDIR",
        ]
        .iter()
        .any(|prefix| name.starts_with(prefix))
            || [
                "CARGO",
                "LD_LIBRARY_PATH",
                "RUST_RECURSION_COUNT",
                "RUSTUP_TOOLCHAIN_SOURCE",
            ]
            .contains(&name.as_ref());
        if from_cargo_test {
            command.env_remove(name.as_ref());
        }
    }
    command
}

/// This tree's release binary, built with the command docs/deploy.md
/// names (nothing to do when it is fresh: .ci/run and scripts/test.sh
/// build it before the tests).
pub fn release_binary() -> PathBuf {
    let status = as_from_a_shell(&mut Command::new("cargo"))
        .args(["build", "--release", "--locked", "--bin", "beacon"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo");
    assert!(status.success(), "cargo build --release");
    let debug = Path::new(BEACON);
    let release = debug
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("release/beacon");
    assert!(release.exists(), "{}", release.display());
    release
}

/// Runs a docs/deploy.md block with bash -euo pipefail, by way of
/// `prefix` (e.g. nsenter), and prints what it said.
pub fn run_block(
    name: &str,
    prefix: &[String],
    dir: &Path,
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let script = deploy_block(name);
    let mut command = Command::new(prefix.first().map_or("bash", String::as_str));
    if !prefix.is_empty() {
        command.args(&prefix[1..]).arg("bash");
    }
    let out = as_from_a_shell(&mut command)
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(dir)
        .envs(env.iter().copied())
        .output()
        .expect("bash");
    said(&format!("docs/deploy.md block {name}"), &out)
}

pub fn said(what: &str, out: &Output) -> (i32, String, String) {
    let result = (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    eprintln!("--- {what}: exit {}\n{}{}", result.0, result.1, result.2);
    result
}

/// systemd stands in: enough of it for the docs' commands, driven by the
/// installed unit file itself.
const SYSTEMCTL: &str = r#"#!/usr/bin/env bash
set -euo pipefail
unit=/etc/systemd/system/beacon.service
pidfile="$SYSTEMCTL_STATE/beacon.pid"
value() { sed -n "s/^$1=//p" "$unit" | tail -n 1; }
start() {
  local user group dir mode
  user="$(value User)"; group="$(value Group)"; dir="$(value StateDirectory)"
  mode="$(value StateDirectoryMode)"
  install -d -m "${mode:-0755}" -o "$user" -g "$group" "/var/lib/$dir"
  (
    cd "$(value WorkingDirectory)"
    umask "$(value UMask)"
    envfile="$(value EnvironmentFile)"; envfile="${envfile#-}"
    set -a
    if [ -f "$envfile" ]; then . "$envfile"; fi
    while read -r assignment; do export "$assignment"; done < <(sed -n 's/^Environment=//p' "$unit")
    set +a
    # shellcheck disable=SC2046
    exec setpriv --reuid "$user" --regid "$group" --init-groups --no-new-privs $(value ExecStart)
  ) >>"$SYSTEMCTL_STATE/beacon.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
}
stop() {
  [ -f "$pidfile" ] || return 0
  local pid; pid="$(cat "$pidfile")"
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  rm -f "$pidfile"
}
case "$*" in
  daemon-reload) systemd-analyze verify "$unit" ;;
  "enable --now beacon"|"start beacon") start ;;
  "stop beacon") stop ;;
  "restart beacon") stop; start ;;
  "reload beacon") kill -HUP "$(cat "$pidfile")" ;;
  *) echo "systemctl stand-in: $*?" >&2; exit 1 ;;
esac
"#;

/// Holds a private mount namespace open: /etc, /usr/local, /var/lib and
/// /var/log are overlays whose changes land in `$1`.
const NAMESPACE: &str = r#"set -euo pipefail
for dir in /etc /usr/local /var/lib /var/log; do
  name="$(echo "$dir" | tr / _)"
  mkdir -p "$1/upper$name" "$1/work$name"
  mount -t overlay overlay -o "lowerdir=$dir,upperdir=$1/upper$name,workdir=$1/work$name" "$dir"
done
touch "$1/ready"
exec sleep infinity
"#;

struct Namespace {
    keeper: std::process::Child,
    state: PathBuf,
}

impl Namespace {
    /// nsenter into the namespace, in `dir` (entering a mount namespace
    /// moves to its root).
    fn enter(&self, dir: &Path) -> Vec<String> {
        vec![
            "nsenter".to_string(),
            format!("--mount=/proc/{}/ns/mnt", self.keeper.id()),
            format!("--wd={}", dir.display()),
            "--".to_string(),
        ]
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let pidfile = self.state.join("beacon.pid");
        if let Ok(pid) = std::fs::read_to_string(&pidfile) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        let _ = self.keeper.kill();
        let _ = self.keeper.wait();
    }
}

async fn ready(url: &str) -> bool {
    reqwest::get(url).await.is_ok_and(|r| r.status() == 200)
}

// docs/deploy.md, "Single node with systemd" and its upgrade: the user,
// files and modes it installs let beacon (as that user) read its config
// and secrets, start, answer /readyz, take a backup from the shell, and
// come back after the binary is replaced; the unit verifies and rates
// "OK".
#[tokio::test(flavor = "multi_thread")]
async fn the_systemd_commands_of_deploy_md_work() {
    let tools = [
        "systemd-analyze",
        "unshare",
        "nsenter",
        "runuser",
        "setpriv",
        "useradd",
        "openssl",
        "curl",
    ];
    if !required("the systemd deploy test", &tools) {
        return;
    }
    let _port = PORT_8080.lock().await;
    let release = release_binary();
    let work = tempfile::tempdir().expect("work dir");
    // The clone the docs' commands run in: its release binary and deploy/.
    let clone = work.path().join("clone");
    std::fs::create_dir_all(clone.join("target/release")).expect("clone");
    std::os::unix::fs::symlink(&release, clone.join("target/release/beacon")).expect("link");
    std::os::unix::fs::symlink(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy"),
        clone.join("deploy"),
    )
    .expect("link");
    let bin = work.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    std::fs::write(bin.join("systemctl"), SYSTEMCTL).expect("systemctl");
    std::fs::set_permissions(
        bin.join("systemctl"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let state = work.path().join("systemd");
    let layers = work.path().join("layers");
    std::fs::create_dir_all(&state).expect("state");
    std::fs::create_dir_all(&layers).expect("layers");

    let keeper = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "bash", "-c"])
        .arg(NAMESPACE)
        .arg("namespace")
        .arg(&layers)
        .spawn()
        .expect("unshare");
    let ns = Namespace {
        keeper,
        state: state.clone(),
    };
    let ready_file = layers.join("ready");
    eventually("the namespace's overlays", Duration::from_secs(10), || {
        let ready_file = ready_file.clone();
        async move { ready_file.exists() }
    })
    .await;

    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let enter = ns.enter(&clone);
    let env = [
        ("PATH", path.as_str()),
        ("SYSTEMCTL_STATE", state.to_str().expect("path")),
    ];
    let log = || std::fs::read_to_string(state.join("beacon.log")).unwrap_or_default();

    let (code, _, _) = run_block("systemd-install", &enter, &clone, &env);
    assert_eq!(code, 0, "systemd-install; beacon's log:\n{}", log());
    let readyz = "http://127.0.0.1:8080/readyz";
    eventually(
        "beacon answers /readyz",
        Duration::from_secs(30),
        || async { ready(readyz).await },
    )
    .await;

    // The service runs as the system user the docs created, not root.
    let pid = std::fs::read_to_string(state.join("beacon.pid")).expect("pid");
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).expect("status");
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .expect("Uid");
    assert_ne!(uid, "0", "beacon runs as its own user");
    let passwd = std::fs::read_to_string(layers.join("upper_etc/passwd")).expect("passwd");
    assert!(
        passwd
            .lines()
            .any(|l| l.starts_with("beacon:") && l.split(':').nth(2) == Some(uid)),
        "uid {uid} is beacon's: {passwd}"
    );

    let (code, out, _) = run_block("systemd-check", &enter, &clone, &env);
    assert_eq!(code, 0, "systemd-check");
    let level: f64 = out
        .lines()
        .last()
        .and_then(|l| l.split("exposure level for").nth(1))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("an exposure level in {out}"));
    assert!(level <= 2.0, "exposure {level}");

    let (code, _, _) = run_block("systemd-upgrade", &enter, &clone, &env);
    assert_eq!(code, 0, "systemd-upgrade; beacon's log:\n{}", log());
    let backups = layers.join("upper_var_lib/beacon/backups");
    let archives = Command::new("find")
        .arg(&backups)
        .args(["-name", "*.sqlite.gz"])
        .output()
        .expect("find");
    assert!(
        !archives.stdout.is_empty(),
        "the backup the upgrade took is in {}",
        backups.display()
    );
    assert!(ready(readyz).await, "beacon is back after the upgrade");
    drop(ns);
}
