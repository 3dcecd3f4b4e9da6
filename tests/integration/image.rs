//! The OCI image (Containerfile, scripts/image.sh) and docs/deploy.md's
//! container commands, run as written. podman builds the image and
//! creates containers here but cannot start one (crun fails on these
//! machines), so tests/podman-chroot.sh stands in for `podman run`, `exec`,
//! `stop` and `rm`: it lets podman create the container from the docs'
//! flags, exports the container's filesystem and starts its entrypoint
//! under chroot as its user, with its env, working directory, volume and
//! bind mounts. The image's own files do the rest: its libc resolves a
//! name from its /etc/hosts, its CA bundle (plus a test CA) verifies an
//! HTTPS probe. podman works in a scratch store: nothing of the machine's
//! own images, containers or volumes is touched.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::deploy::{release_binary, required, run_block, said, PORT_8080};
use crate::helpers::eventually;

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const IMAGE: &str = "localhost/beacon:latest";
const TARGET_HOST: &str = "beacon-test-target";

/// An HTTPS server on 127.0.0.1 with a certificate for
/// `beacon-test-target` signed by a fresh CA; returns its port and the
/// CA's PEM. Answers any request with a health+json "pass".
async fn https_target() -> (u16, String) {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "beacon image test CA");
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec![TARGET_HOST.to_string()])
        .expect("params")
        .signed_by(&key, &ca, &ca_key)
        .expect("certificate");
    let port = crate::helpers::tls_health_server(&cert, &key).await;
    (port, ca.pem())
}

/// podman, in a store of its own under `dir`.
struct Podman {
    env: Vec<(String, String)>,
}

impl Podman {
    fn scratch(dir: &Path) -> Podman {
        std::fs::create_dir_all(dir).expect("podman dir");
        let storage = dir.join("storage.conf");
        std::fs::write(
            &storage,
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{0}/graph\"\nrunroot = \"{0}/run\"\n",
                dir.display()
            ),
        )
        .expect("storage.conf");
        let containers = dir.join("containers.conf");
        std::fs::write(
            &containers,
            format!(
                "[engine]\ntmp_dir = \"{0}/tmp\"\nvolume_path = \"{0}/volumes\"\n",
                dir.display()
            ),
        )
        .expect("containers.conf");
        Podman {
            env: vec![
                (
                    "CONTAINERS_STORAGE_CONF".into(),
                    storage.display().to_string(),
                ),
                ("CONTAINERS_CONF".into(), containers.display().to_string()),
            ],
        }
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("podman")
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("podman");
        if !out.status.success() {
            said(&format!("podman {}", args.join(" ")), &out);
            panic!("podman {}", args.join(" "));
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_str(&self.run(args)).expect("podman's JSON")
    }
}

/// The docs' container, `podman rm -f` when the test ends, pass or fail.
struct Container {
    podman: PathBuf,
    env: Vec<(String, String)>,
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new(&self.podman)
            .args(["rm", "-f", "beacon"])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output();
    }
}

fn label<'a>(config: &'a serde_json::Value, name: &str) -> &'a str {
    config["Labels"][&format!("org.opencontainers.image.{name}")]
        .as_str()
        .unwrap_or_else(|| panic!("label org.opencontainers.image.{name}: {config}"))
}

/// Every file of the exported image, relative to its root.
fn files(root: &Path) -> Vec<(PathBuf, std::fs::Metadata)> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let entry = entry.expect("entry");
            let meta = entry.metadata().expect("metadata");
            if meta.is_dir() {
                dirs.push(entry.path());
            }
            let relative = entry
                .path()
                .strip_prefix(root)
                .expect("under root")
                .to_path_buf();
            out.push((relative, meta));
        }
    }
    out
}

async fn component_state(name: &str) -> Option<(String, String)> {
    let summary: serde_json::Value = reqwest::get("http://127.0.0.1:8080/api/v2/summary.json")
        .await
        .ok()?
        .text()
        .await
        .ok()
        .and_then(|body| serde_json::from_str(&body).ok())?;
    summary["components"].as_array()?.iter().find_map(|c| {
        (c["name"] == name).then(|| {
            (
                c["status"].as_str().unwrap_or_default().to_string(),
                c["created_at"].as_str().unwrap_or_default().to_string(),
            )
        })
    })
}

// scripts/image.sh builds the image with its labels and runtime settings;
// docs/deploy.md's commands run it on a volume with a config and an env
// file; from its own files it resolves a name from its /etc/hosts and
// trusts an HTTPS target signed by a CA added to its bundle; the shell's
// backup and the upgrade (stop, rm, run again) keep the data.
#[tokio::test(flavor = "multi_thread")]
async fn the_image_builds_and_runs_from_its_own_filesystem() {
    let tools = ["podman", "unshare", "nsenter", "tar", "openssl", "setsid"];
    if !required("the image test", &tools) {
        return;
    }
    let _port = PORT_8080.lock().await;
    // The release binary the image carries, fresh (the build block builds
    // it too; this one reports a failed build plainly).
    release_binary();
    let work = tempfile::tempdir().expect("work dir");
    let podman = Podman::scratch(&work.path().join("podman"));

    // Where an operator runs the docs' commands: scripts/ is the clone's.
    let here = work.path().join("deploy");
    std::fs::create_dir_all(&here).expect("dir");
    std::os::unix::fs::symlink(Path::new(REPO).join("scripts"), here.join("scripts"))
        .expect("link");
    let bin = work.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    std::os::unix::fs::symlink(
        Path::new(REPO).join("tests/podman-chroot.sh"),
        bin.join("podman"),
    )
    .expect("link");
    let (target_port, ca) = https_target().await;
    // The control: a CA the image is not given. Its target must stay down,
    // so the first is up by the bundle, not by a check left off.
    let (untrusted_port, _) = https_target().await;
    std::fs::write(work.path().join("ca.pem"), &ca).expect("ca");
    // Before start: the test CA joins the image's own bundle, and the
    // target's name its /etc/hosts (the runtime writes that file; the
    // stand-in has just written it as podman would).
    let hook = work.path().join("hook.sh");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nset -eu\ncat {} >>\"$1/etc/ssl/certs/ca-certificates.crt\"\nprintf '127.0.0.1\\t{TARGET_HOST}\\n' >>\"$1/etc/hosts\"\n",
            work.path().join("ca.pem").display()
        ),
    )
    .expect("hook");
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let chroot_state = work.path().join("containers");
    let mut env: Vec<(&str, &str)> = podman
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    env.push(("PATH", &path));
    env.push(("PODMAN_CHROOT_STATE", chroot_state.to_str().expect("path")));
    env.push(("PODMAN_CHROOT_HOOK", hook.to_str().expect("path")));
    let container_log =
        || std::fs::read_to_string(chroot_state.join("beacon/log")).unwrap_or_default();
    // Whatever happens, the container started below is stopped.
    let _container = Container {
        podman: bin.join("podman"),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };

    // Build.
    let (code, out, _) = run_block("image-build", &[], &here, &env);
    assert_eq!(code, 0, "image-build");
    assert!(
        out.lines()
            .last()
            .is_some_and(|l| l.starts_with("localhost/beacon:")),
        "scripts/image.sh prints the image's name last: {out}"
    );
    let inspect = podman.json(&["image", "inspect", IMAGE]);
    let image = &inspect[0];
    let config = &image["Config"];
    let size = image["Size"].as_u64().expect("size");
    eprintln!("image size: {:.1} MB", size as f64 / 1e6);
    assert!(size < 100_000_000, "the image stays small: {size} bytes");
    assert_eq!(label(config, "version"), env!("CARGO_PKG_VERSION"));
    assert_eq!(label(config, "licenses"), env!("CARGO_PKG_LICENSE"));
    assert!(!label(config, "source").is_empty());
    if let Ok(out) = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(REPO)
        .output()
    {
        if out.status.success() {
            assert_eq!(
                label(config, "revision"),
                String::from_utf8_lossy(&out.stdout).trim()
            );
        }
    }
    assert_eq!(config["User"], "65532:65532");
    assert_eq!(config["WorkingDir"], "/data");
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!(["/usr/local/bin/beacon"])
    );
    assert_eq!(config["Cmd"], serde_json::json!(["serve"]));
    assert!(config["ExposedPorts"].get("8080/tcp").is_some(), "{config}");
    assert!(config["Volumes"].get("/data").is_some(), "{config}");
    let image_env: Vec<&str> = config["Env"]
        .as_array()
        .expect("Env")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for wanted in [
        "BEACON_LISTEN=0.0.0.0:8080",
        "BEACON_STORAGE_URL=sqlite:///data/beacon.db",
    ] {
        assert!(image_env.contains(&wanted), "{wanted} in {image_env:?}");
    }

    // Configure and run, with a service the image must resolve and trust.
    let (code, _, _) = run_block("image-config", &[], &here, &env);
    assert_eq!(code, 0, "image-config");
    let mut toml = std::fs::read_to_string(here.join("beacon.toml")).expect("beacon.toml");
    toml.push_str(&format!(
        "\n[[service]]\nname = \"Internal API\"\nurl = \"https://{TARGET_HOST}:{target_port}/health\"\ninterval = \"1s\"\ntimeout = \"900ms\"\n\
         \n[[service]]\nname = \"Untrusted API\"\nurl = \"https://{TARGET_HOST}:{untrusted_port}/health\"\ninterval = \"1s\"\ntimeout = \"900ms\"\n"
    ));
    std::fs::write(here.join("beacon.toml"), toml).expect("beacon.toml");
    let (code, _, _) = run_block("image-run", &[], &here, &env);
    assert_eq!(code, 0, "image-run");

    let started = std::time::Instant::now();
    eventually(
        "the container answers /livez",
        Duration::from_secs(30),
        || async {
            reqwest::get("http://127.0.0.1:8080/livez")
                .await
                .is_ok_and(|r| r.status() == 200)
        },
    )
    .await;
    eprintln!("/livez after {:?}", started.elapsed());
    let mut state = None;
    let mut control = None;
    for _ in 0..300 {
        state = component_state("Internal API").await;
        control = component_state("Untrusted API").await;
        if state.as_ref().is_some_and(|(s, _)| s == "operational")
            && control.as_ref().is_some_and(|(s, _)| s == "major_outage")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let Some((status, created_at)) = state.clone() else {
        panic!(
            "no Internal API on the page; the container's log:\n{}",
            container_log()
        );
    };
    assert_eq!(
        status,
        "operational",
        "the HTTPS probe by name is not up; the container's log:\n{}",
        container_log()
    );
    assert_eq!(
        control.map(|(s, _)| s).as_deref(),
        Some("major_outage"),
        "a certificate from a CA outside the image's bundle is refused"
    );

    // It runs as 65532, from the image's own files: no shell among them.
    let root = chroot_state.join("beacon/root");
    let pid = std::fs::read_to_string(chroot_state.join("beacon/pid")).expect("pid");
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).expect("status");
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("65532")),
        "{status}"
    );
    let all = files(&root);
    let executables: Vec<&PathBuf> = all
        .iter()
        .filter(|(p, m)| {
            m.is_file()
                && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
                && !p.to_string_lossy().contains(".so")
        })
        .map(|(p, _)| p)
        .collect();
    let mut executables: Vec<String> = executables
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    executables.sort();
    assert_eq!(
        executables,
        [
            "usr/local/bin/beacon",
            "usr/local/bin/pg_dump",
            "usr/local/bin/pg_restore"
        ],
        "beacon and the PostgreSQL backup tools are the image's only programs"
    );
    // pg_dump runs from the image's own files (its libraries are there),
    // as the PostgreSQL backups and their verification need.
    let pg_dump = std::process::Command::new("chroot")
        .arg("--userspec=65532:65532")
        .arg(&root)
        .args(["/usr/local/bin/pg_dump", "--version"])
        .output()
        .expect("chroot");
    assert!(
        pg_dump.status.success()
            && String::from_utf8_lossy(&pg_dump.stdout).contains("pg_dump (PostgreSQL)"),
        "pg_dump in the image: {}{}",
        String::from_utf8_lossy(&pg_dump.stdout),
        String::from_utf8_lossy(&pg_dump.stderr)
    );
    for shell in ["bin/sh", "bin/bash", "bin/busybox", "usr/bin/sh"] {
        assert!(!root.join(shell).exists(), "{shell} in the image");
    }
    let volume = podman.run(&[
        "volume",
        "inspect",
        "beacon-data",
        "--format",
        "{{.Mountpoint}}",
    ]);
    let volume = PathBuf::from(volume.trim());
    let db = std::fs::metadata(volume.join("beacon.db")).expect("the database is on the volume");
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&db), 65532);

    // A backup from the shell, then the upgrade: the history stays.
    let (code, _, _) = run_block("image-backup", &[], &here, &env);
    assert_eq!(
        code,
        0,
        "image-backup; the container's log:\n{}",
        container_log()
    );
    let archives = Command::new("find")
        .arg(volume.join("backups"))
        .args(["-name", "*.sqlite.gz"])
        .output()
        .expect("find");
    assert!(!archives.stdout.is_empty(), "the backup is on the volume");
    let (code, _, _) = run_block("image-upgrade", &[], &here, &env);
    assert_eq!(code, 0, "image-upgrade");
    eventually(
        "the new container answers /readyz",
        Duration::from_secs(30),
        || async {
            reqwest::get("http://127.0.0.1:8080/readyz")
                .await
                .is_ok_and(|r| r.status() == 200)
        },
    )
    .await;
    let after = component_state("Internal API").await;
    assert_eq!(
        after.map(|(_, created)| created),
        Some(created_at),
        "the service's history survived the upgrade"
    );
}

/// The runtime settings and labels of Containerfile's image, line by line
/// (continuations joined), from its last stage.
fn runtime_lines(file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(Path::new(REPO).join(file)).expect(file);
    let last_stage = text.rsplit("\nFROM ").next().unwrap_or(&text);
    let joined = last_stage.replace("\\\n", " ");
    joined
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| {
            [
                "ARG ",
                "LABEL ",
                "ENV ",
                "VOLUME ",
                "WORKDIR ",
                "USER ",
                "EXPOSE ",
                "ENTRYPOINT ",
                "CMD ",
            ]
            .iter()
            .any(|k| l.starts_with(k))
        })
        .collect()
}

// The registry path (Containerfile.multistage, not built in CI: it pulls)
// makes the image CI tests: same user, volume, env, entrypoint, labels.
#[test]
fn the_multistage_containerfile_says_what_the_tested_one_says() {
    let tested = runtime_lines("Containerfile");
    assert!(tested.len() >= 10, "{tested:?}");
    assert_eq!(runtime_lines("Containerfile.multistage"), tested);
}
