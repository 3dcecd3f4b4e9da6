//! The pieces the cluster tests are made of: real `beacon serve` processes
//! (killed on drop, their log kept for a failing assertion), a target that
//! logs which replica probed what and when, a webhook receiver, and polling
//! with deadlines that says what it last saw.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode, Uri};
use serde_json::Value;

const BEACON: &str = env!("CARGO_BIN_EXE_beacon");

/// The cluster timing every PostgreSQL test uses (the contract's example).
pub const LEASE: Duration = Duration::from_secs(3);
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// Every service's probe interval.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// What a loaded 2-core machine adds to any bound (debug binaries, several
/// tests at once).
pub const SLACK: Duration = Duration::from_secs(2);

/// Lines of a replica's log shown when a test fails.
const TAIL: usize = 40;

/// An HTTP client for the tests: a short timeout (a stopped replica never
/// answers) and no kept-alive connections (a replica's idle cut-off must
/// not look like an outage).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

/// One `beacon serve --config FILE` process. Killed (SIGKILL, then reaped)
/// on drop, whatever state it is in, so nothing outlives a failed test;
/// its stderr is drained on a thread and kept, and printed when the test
/// is panicking.
pub struct Replica {
    pub name: String,
    addr: Option<String>,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    /// stderr reached its end: the process is gone.
    eof: Arc<AtomicBool>,
    reaped: Option<ExitStatus>,
}

impl Replica {
    /// Starts the process; [`Replica::serving`] waits for its address.
    pub fn launch(name: &str, config: &Path, cwd: &Path) -> Replica {
        let config = config.display().to_string();
        Replica::spawn(name, cwd, &["serve", "--config", &config], &[])
    }

    /// Starts `beacon ARGS…` with `env` set; [`Replica::serving`] waits
    /// for the address it logs (a status page's, or an agent's own).
    pub fn spawn(name: &str, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Replica {
        let mut child = Command::new(BEACON)
            .current_dir(cwd)
            .env_remove("BEACON_CONFIG")
            .env_remove("BEACON_LISTEN")
            .env_remove("BEACON_STORAGE_URL")
            .env_remove("BEACON_LOG_FORMAT")
            .env_remove("BEACON_AGENT_TOKEN")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn beacon");
        let stderr = child.stderr.take().expect("stderr piped");
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let eof = Arc::new(AtomicBool::new(false));
        let (kept, done) = (log.clone(), eof.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                kept.lock().expect("log").push(line);
            }
            done.store(true, Ordering::SeqCst);
        });
        Replica {
            name: name.to_string(),
            addr: None,
            child,
            log,
            eof,
            reaped: None,
        }
    }

    /// Waits for the "status page at http://ADDR" line and keeps ADDR.
    pub async fn serving(&mut self) {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let found = self
                .log
                .lock()
                .expect("log")
                .iter()
                .find_map(|l| address_in(l));
            if let Some(addr) = found {
                self.addr = Some(addr);
                return;
            }
            assert!(
                !self.eof.load(Ordering::SeqCst),
                "{} exited before serving:\n{}",
                self.name,
                self.tail()
            );
            assert!(
                Instant::now() < end,
                "{} did not log its address within 30 s:\n{}",
                self.name,
                self.tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        let addr = self.addr.as_deref().expect("the replica is serving");
        format!("http://{addr}{path}")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` ("STOP", "CONT", "TERM", ...) with the `kill` command.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {}", self.pid());
    }

    /// `kill -9`, and reaps it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        self.reaped = self.child.wait().ok();
    }

    /// How the process ended, if it did within `within`.
    pub async fn exit_within(&mut self, within: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.reaped = Some(status);
                // Let the drain thread read what is left in the pipe.
                let drained = Instant::now() + Duration::from_secs(2);
                while !self.eof.load(Ordering::SeqCst) && Instant::now() < drained {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                return Some(status);
            }
            if Instant::now() > end {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Everything logged so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }

    /// The last lines logged, for a failure message.
    pub fn tail(&self) -> String {
        let log = self.log.lock().expect("log");
        let from = log.len().saturating_sub(TAIL);
        log[from..].join("\n")
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if self.reaped.is_none() {
            // SIGKILL ends a stopped process too.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- {} (pid {}) log tail ----\n{}\n---- end of {} ----",
                self.name,
                self.child.id(),
                self.tail(),
                self.name
            );
        }
    }
}

/// The address in "status page at http://127.0.0.1:PORT" (or an agent's
/// "/livez and /metrics at http://…"), if `line` has it.
fn address_in(line: &str) -> Option<String> {
    let marker = ["status page at http://", "/livez and /metrics at http://"]
        .into_iter()
        .find(|m| line.contains(m))?;
    let rest = &line[line.find(marker)? + marker.len()..];
    let addr: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']'))
        .collect();
    (!addr.is_empty()).then_some(addr)
}

/// A config every replica of a test shares: a random port each, the
/// database, fast cluster timing, `body`'s services and channels.
pub fn config_text(storage_url: &str, cluster: bool, body: &str) -> String {
    let cluster = if cluster {
        format!(
            "[cluster]\nlease = \"{}s\"\nheartbeat = \"{}s\"\n",
            LEASE.as_secs(),
            HEARTBEAT.as_secs()
        )
    } else {
        String::new()
    };
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntitle = \"Cluster test\"\n\
         public_url = \"https://status.example.com\"\n\
         [storage]\nurl = \"{storage_url}\"\n\
         [monitor]\nflush_interval = \"100ms\"\n\
         {cluster}{body}"
    )
}

/// `count` services "Svc 0".."Svc N-1" (slugs `svc-N`) on `target`'s
/// `/svc/N`, probed every second.
pub fn services(target: &HitTarget, count: usize) -> String {
    (0..count)
        .map(|n| {
            format!(
                "[[service]]\nname = \"Svc {n}\"\nurl = \"{}\"\ninterval = \"{}s\"\ntimeout = \"800ms\"\n",
                target.url(&format!("svc/{n}")),
                INTERVAL.as_secs()
            )
        })
        .collect()
}

pub fn slugs(count: usize) -> Vec<String> {
    (0..count).map(|n| format!("svc-{n}")).collect()
}

/// Several replicas on one config file.
pub struct Cluster {
    pub replicas: Vec<Replica>,
    pub client: reqwest::Client,
}

impl Cluster {
    /// Writes `config` into `dir` and starts `count` replicas on it, all
    /// at once, then waits until each serves.
    pub async fn start(dir: &Path, count: usize, config: &str) -> Cluster {
        let file = dir.join("beacon.toml");
        std::fs::write(&file, config).expect("write config");
        let mut replicas: Vec<Replica> = (0..count)
            .map(|i| Replica::launch(&format!("replica {i}"), &file, dir))
            .collect();
        for replica in &mut replicas {
            replica.serving().await;
        }
        Cluster {
            replicas,
            client: client(),
        }
    }

    pub fn url(&self, i: usize, path: &str) -> String {
        self.replicas[i].url(path)
    }

    /// What replica `i` says of the cluster.
    pub async fn view(&self, i: usize) -> Result<View, String> {
        view(&self.client, &self.url(i, "/health")).await
    }

    /// Waits until one of `among` leads at an epoch above `epoch` (after
    /// the leader was lost), and returns its view.
    pub async fn new_leader(&self, among: &[usize], epoch: i64, within: Duration) -> View {
        until("a survivor leads with a higher epoch", within, || async {
            let views = self.views(among).await?;
            views
                .iter()
                .find(|v| v.is_leader() && v.epoch > epoch)
                .cloned()
                .ok_or_else(|| format!("{views:?}"))
        })
        .await
    }

    /// The views of `which`, or what went wrong reading one.
    pub async fn views(&self, which: &[usize]) -> Result<Vec<View>, String> {
        let mut views = Vec::new();
        for &i in which {
            views.push(
                self.view(i)
                    .await
                    .map_err(|e| format!("{}: {e}", self.replicas[i].name))?,
            );
        }
        Ok(views)
    }

    /// Waits until `which` form one settled cluster: each sees exactly
    /// their member ids, exactly one says leader, all say the same epoch.
    pub async fn settled(&self, which: &[usize], within: Duration) -> Settled {
        until(
            &format!("replicas {which:?} agree on their members and one leader"),
            within,
            || async { settled(&self.views(which).await?) },
        )
        .await
    }

    /// Replica `i`'s Statuspage components, id → status.
    pub async fn components(&self, i: usize) -> Result<BTreeMap<String, String>, String> {
        let doc = json(&self.client, &self.url(i, "/api/v2/summary.json")).await?;
        let list = doc["components"]
            .as_array()
            .ok_or_else(|| format!("summary.json has no components list: {doc}"))?;
        Ok(list
            .iter()
            .filter(|c| c["group"] != true)
            .filter_map(|c| {
                Some((
                    c["id"].as_str()?.to_string(),
                    c["status"].as_str()?.to_string(),
                ))
            })
            .collect())
    }

    /// Waits until every replica of `which` shows `expected` components
    /// with `status` in summary.json (they then agree).
    pub async fn summaries_agree(
        &self,
        which: &[usize],
        expected: &[(String, &str)],
        within: Duration,
    ) {
        let expected: BTreeMap<String, String> = expected
            .iter()
            .map(|(id, status)| (id.clone(), status.to_string()))
            .collect();
        until(
            "every replica's summary.json shows the expected components",
            within,
            || async {
                for &i in which {
                    let got = self.components(i).await?;
                    if got != expected {
                        let differ: Vec<String> = expected
                            .iter()
                            .filter(|(id, status)| got.get(*id) != Some(*status))
                            .map(|(id, status)| format!("{id}: {:?}, want {status}", got.get(id)))
                            .chain(
                                got.keys()
                                    .filter(|id| !expected.contains_key(*id))
                                    .map(|id| format!("{id}: unexpected")),
                            )
                            .take(5)
                            .collect();
                        return Err(format!(
                            "{} differs: {}",
                            self.replicas[i].name,
                            differ.join("; ")
                        ));
                    }
                }
                Ok(())
            },
        )
        .await
    }

    /// Replica `i`'s incidents.json list.
    pub async fn incidents(&self, i: usize) -> Result<Vec<Value>, String> {
        let doc = json(&self.client, &self.url(i, "/api/v2/incidents.json")).await?;
        doc["incidents"]
            .as_array()
            .cloned()
            .ok_or_else(|| format!("incidents.json has no incidents list: {doc}"))
    }

    /// Every running replica's incidents.json lists `n` incidents.
    pub async fn each_lists_incidents(&self, replicas: &[usize], n: usize) -> Result<(), String> {
        for &i in replicas {
            let listed = self.incidents(i).await?.len();
            if listed != n {
                return Err(format!("replica {i} lists {listed} incidents"));
            }
        }
        Ok(())
    }

    /// Replica `i`'s /metrics text.
    pub async fn metrics(&self, i: usize) -> Result<String, String> {
        let response = self
            .client
            .get(self.url(i, "/metrics"))
            .send()
            .await
            .map_err(|e| format!("GET /metrics: {e}"))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| e.to_string())?;
        if status != StatusCode::OK {
            return Err(format!("/metrics answered {status}: {text}"));
        }
        Ok(text)
    }

    /// Results replica `i` has written (its /health's `monitor:results`).
    pub async fn results_written(&self, i: usize) -> Result<u64, String> {
        let doc = json(&self.client, &self.url(i, "/health")).await?;
        doc["checks"]["monitor:results"][0]["observedValue"]
            .as_u64()
            .ok_or_else(|| format!("no checks.monitor:results[0].observedValue in {doc}"))
    }
}

/// `cluster` of a replica's /health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub member: String,
    pub role: String,
    pub epoch: i64,
    /// The ids of `members`, sorted.
    pub members: Vec<String>,
}

impl View {
    pub fn is_leader(&self) -> bool {
        self.role == "leader"
    }
}

/// A cluster that agrees: the replica (index into the views asked) that
/// leads, its epoch, and the member ids.
#[derive(Debug, Clone)]
pub struct Settled {
    pub leader: usize,
    pub epoch: i64,
    pub members: BTreeSet<String>,
    pub views: Vec<View>,
}

fn settled(views: &[View]) -> Result<Settled, String> {
    let ids: BTreeSet<String> = views.iter().map(|v| v.member.clone()).collect();
    if ids.len() != views.len() {
        return Err(format!("two replicas share a member id: {views:?}"));
    }
    for v in views {
        let seen: BTreeSet<String> = v.members.iter().cloned().collect();
        if seen != ids {
            return Err(format!(
                "{} sees members {:?}, the replicas are {ids:?}",
                v.member, v.members
            ));
        }
        if v.role != "leader" && v.role != "follower" {
            return Err(format!("{} has role {:?}", v.member, v.role));
        }
    }
    let leaders: Vec<usize> = (0..views.len()).filter(|&i| views[i].is_leader()).collect();
    let [leader] = leaders[..] else {
        return Err(format!("{} leaders: {views:?}", leaders.len()));
    };
    let epoch = views[leader].epoch;
    if views.iter().any(|v| v.epoch != epoch) {
        return Err(format!("epochs differ: {views:?}"));
    }
    Ok(Settled {
        leader,
        epoch,
        members: ids,
        views: views.to_vec(),
    })
}

/// GETs `url` and parses JSON, whatever the status (/health answers 503
/// with a body when it fails).
pub async fn json(client: &reqwest::Client, url: &str) -> Result<Value, String> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| format!("GET {url}: reading the body: {e}"))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("GET {url} ({status}) is not JSON ({e}): {text}"))
}

/// The `cluster` object of the /health at `url`.
pub async fn view(client: &reqwest::Client, url: &str) -> Result<View, String> {
    let doc = json(client, url).await?;
    let c = &doc["cluster"];
    let text = |key: &str| {
        c[key]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("/health has no string cluster.{key}: {c}"))
    };
    let mut members: Vec<String> = c["members"]
        .as_array()
        .ok_or_else(|| format!("/health has no cluster.members list: {c}"))?
        .iter()
        .map(|m| {
            for key in ["host", "version"] {
                if !m[key].is_string() {
                    return Err(format!("member without a string {key}: {m}"));
                }
            }
            for key in ["started_at", "last_seen"] {
                if !m[key].is_i64() {
                    return Err(format!("member without an integer {key}: {m}"));
                }
            }
            m["id"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("member without an id: {m}"))
        })
        .collect::<Result<_, _>>()?;
    members.sort();
    Ok(View {
        member: text("member")?,
        role: text("role")?,
        epoch: c["epoch"]
            .as_i64()
            .ok_or_else(|| format!("/health has no integer cluster.epoch: {c}"))?,
        members,
    })
}

/// The value of the series `name` (no labels) in Prometheus text.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        rest.starts_with(' ').then(|| rest.trim().parse().ok())?
    })
}

/// Polls `check` every 100 ms until it returns `Ok`; after `within`,
/// fails the test with `what` and the last `Err` it gave.
pub async fn until<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) => {
                if started.elapsed() > within {
                    panic!("not within {within:?}: {what}\nlast seen: {last}");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One request a [`HitTarget`] got.
#[derive(Debug, Clone)]
pub struct Hit {
    /// Without the leading slash: `svc/3`.
    pub path: String,
    /// The `Beacon-Member` header ("" when absent).
    pub member: String,
    pub at: Instant,
}

/// A service stand-in that logs every request with its `Beacon-Member`
/// header and arrival time. `/svc/N` answers 200; `/switch` answers the
/// status in `switch`.
#[derive(Clone)]
pub struct HitTarget {
    pub addr: std::net::SocketAddr,
    pub switch: Arc<AtomicU16>,
    log: Arc<Mutex<Vec<Hit>>>,
}

impl HitTarget {
    pub async fn start() -> HitTarget {
        let switch = Arc::new(AtomicU16::new(200));
        let log: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let state = (switch.clone(), log.clone());
        type Shared = (Arc<AtomicU16>, Arc<Mutex<Vec<Hit>>>);
        async fn answer(
            axum::extract::State((switch, log)): axum::extract::State<Shared>,
            uri: Uri,
            headers: HeaderMap,
        ) -> (StatusCode, &'static str) {
            let path = uri.path().trim_start_matches('/').to_string();
            let member = headers
                .get("beacon-member")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let status = if path == "switch" {
                StatusCode::from_u16(switch.load(Ordering::SeqCst))
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            } else if path.starts_with("svc/") {
                StatusCode::OK
            } else {
                StatusCode::NOT_FOUND
            };
            log.lock().expect("log").push(Hit {
                path,
                member,
                at: Instant::now(),
            });
            (status, "{\"status\":\"pass\"}")
        }
        let app = axum::Router::new().fallback(answer).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind target");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        HitTarget { addr, switch, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    /// Every request that arrived at or after `since`.
    pub fn since(&self, since: Instant) -> Vec<Hit> {
        self.log
            .lock()
            .expect("log")
            .iter()
            .filter(|h| h.at >= since)
            .cloned()
            .collect()
    }

    /// Requests since `since` per path, then per member.
    pub fn counts(&self, since: Instant) -> HashMap<String, HashMap<String, u64>> {
        let mut counts: HashMap<String, HashMap<String, u64>> = HashMap::new();
        for hit in self.since(since) {
            *counts
                .entry(hit.path)
                .or_default()
                .entry(hit.member)
                .or_default() += 1;
        }
        counts
    }

    /// Waits until each of `paths` got at least `n` requests since `since`.
    pub async fn each_hit(&self, paths: &[String], n: u64, since: Instant, within: Duration) {
        until(
            &format!("each of {} paths is probed {n} times", paths.len()),
            within,
            || async {
                let counts = self.counts(since);
                let short: Vec<String> = paths
                    .iter()
                    .filter(|p| counts.get(*p).map_or(0, |m| m.values().sum::<u64>()) < n)
                    .cloned()
                    .collect();
                if short.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "{} short, e.g. {:?}",
                        short.len(),
                        &short[..short.len().min(5)]
                    ))
                }
            },
        )
        .await
    }
}

/// `/svc/N` for each service of [`services`].
pub fn paths(count: usize) -> Vec<String> {
    (0..count).map(|n| format!("svc/{n}")).collect()
}

/// A webhook endpoint that answers 200 and keeps every body.
#[derive(Clone)]
pub struct Webhook {
    pub url: String,
    got: Arc<Mutex<Vec<Value>>>,
}

impl Webhook {
    pub async fn start() -> Webhook {
        let got: Arc<Mutex<Vec<Value>>> = Arc::default();
        let kept = got.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |raw: axum::body::Bytes| {
                let kept = kept.clone();
                async move {
                    kept.lock()
                        .expect("lock")
                        .push(serde_json::from_slice(&raw).unwrap_or(Value::Null));
                    StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind webhook");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Webhook { url, got }
    }

    pub fn all(&self) -> Vec<Value> {
        self.got.lock().expect("lock").clone()
    }

    /// Deliveries whose `event` is `kind`.
    pub fn of(&self, kind: &str) -> Vec<Value> {
        self.all()
            .into_iter()
            .filter(|b| b["event"] == kind)
            .collect()
    }

    /// The `[[notify]]` section for it.
    pub fn toml(&self) -> String {
        format!(
            "[[notify]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\nretry_backoff = \"200ms\"\n",
            self.url
        )
    }
}

/// Keeps polling `url` every 50 ms on a task until stopped, counting the
/// answers and keeping every one that is not a 200.
pub struct Availability {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(u64, Vec<String>)>,
}

impl Availability {
    pub fn watch(client: reqwest::Client, name: String, url: String) -> Availability {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let task = tokio::spawn(async move {
            let (mut asked, mut bad) = (0u64, Vec::new());
            let started = Instant::now();
            while !stopping.load(Ordering::SeqCst) {
                asked += 1;
                let at = started.elapsed().as_millis();
                match client.get(&url).send().await {
                    Ok(r) if r.status() == StatusCode::OK => {
                        let _ = r.bytes().await;
                    }
                    Ok(r) => bad.push(format!("{name} +{at} ms: {}", r.status())),
                    Err(e) => bad.push(format!("{name} +{at} ms: {e}")),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (asked, bad)
        });
        Availability { stop, task }
    }

    /// Stops polling: how many requests, and the ones that failed.
    pub async fn stop(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("availability task")
    }
}

/// Checks that `check` keeps holding for `during` (a bounded observation
/// after the fact, not a synchronisation): fails at the first `Err`.
pub async fn hold<F, Fut>(what: &str, during: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let end = Instant::now() + during;
    loop {
        if let Err(e) = check().await {
            panic!("{what} stopped holding: {e}");
        }
        if Instant::now() >= end {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One answer of a replica's /health, stamped with when it was asked.
#[derive(Debug, Clone)]
pub struct Seen {
    pub replica: usize,
    pub sent: Instant,
    pub view: View,
}

/// Asks every replica's /health every 100 ms on tasks of its own (one
/// request at a time per replica, so its answers are in order), keeping
/// every answer. A paused replica is not asked.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    paused: Vec<Arc<AtomicBool>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Watcher {
    pub fn watch(cluster: &Cluster) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let mut paused = Vec::new();
        let mut tasks = Vec::new();
        for replica in 0..cluster.replicas.len() {
            let pause = Arc::new(AtomicBool::new(false));
            paused.push(pause.clone());
            let (stop, seen) = (stop.clone(), seen.clone());
            let (client, url) = (cluster.client.clone(), cluster.url(replica, "/health"));
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    if !pause.load(Ordering::SeqCst) {
                        let sent = Instant::now();
                        if let Ok(view) = view(&client, &url).await {
                            seen.lock().expect("seen").push(Seen {
                                replica,
                                sent,
                                view,
                            });
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }));
        }
        Watcher {
            stop,
            paused,
            seen,
            tasks,
        }
    }

    /// Stops asking replica `i` (before it is stopped or killed).
    pub fn pause(&self, i: usize) {
        self.paused[i].store(true, Ordering::SeqCst);
    }

    pub fn resume(&self, i: usize) {
        self.paused[i].store(false, Ordering::SeqCst);
    }

    pub async fn stop(self) -> Vec<Seen> {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            let _ = task.await;
        }
        let seen = self.seen.lock().expect("seen").clone();
        seen
    }
}

/// What must hold of every answer ever seen: no two members claim the
/// lead with one epoch, and no replica's epoch goes back.
pub fn leadership_invariants(seen: &[Seen]) -> Result<(), String> {
    let mut leaders: BTreeMap<i64, BTreeSet<&str>> = BTreeMap::new();
    let mut last: HashMap<usize, i64> = HashMap::new();
    for s in seen {
        if s.view.is_leader() {
            leaders
                .entry(s.view.epoch)
                .or_default()
                .insert(&s.view.member);
        }
        let previous = last.insert(s.replica, s.view.epoch);
        if let Some(previous) = previous.filter(|p| *p > s.view.epoch) {
            return Err(format!(
                "replica {} went from epoch {previous} back to {}",
                s.replica, s.view.epoch
            ));
        }
    }
    match leaders.iter().find(|(_, members)| members.len() > 1) {
        Some((epoch, members)) => Err(format!("epoch {epoch} has leaders {members:?}")),
        None => Ok(()),
    }
}

/// A COUNT(*) on the test database, on a connection of its own (so that
/// cutting the replicas' connections never cuts this one mid-query).
pub async fn pg_count(url: &str, sql: &str) -> Result<i64, String> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let count = sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(&mut conn)
        .await
        .map_err(|e| format!("{sql}: {e}"));
    let _ = conn.close().await;
    count
}

/// A PostgreSQL server of one test's own: `initdb` in a temporary folder,
/// started on a free port as the `postgres` user, so the test may stop and
/// start it without touching the server every other test shares. `None`
/// (skipped, with a note) where PostgreSQL's server programs are missing,
/// except under CI=true.
pub struct PrivatePostgres {
    bin: std::path::PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl PrivatePostgres {
    pub fn start() -> Option<PrivatePostgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|versions| {
                versions
                    .flatten()
                    .map(|v| v.path().join("bin"))
                    .filter(|b| b.join("initdb").exists())
                    .max()
            });
        let Some(bin) = bin else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "PostgreSQL's server programs (initdb, pg_ctl) are missing under CI=true"
            );
            eprintln!("note: skipping: no /usr/lib/postgresql/*/bin/initdb");
            return None;
        };
        let dir = tempfile::tempdir().expect("dir");
        // The server runs as `postgres`, which must reach its folder.
        let chmod = |p: &Path, mode: u32| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        };
        chmod(dir.path(), 0o777);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let server = PrivatePostgres { bin, dir, port };
        server.as_postgres(
            "initdb",
            &[
                "-D",
                &server.data(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        server.start_again();
        Some(server)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn as_postgres(&self, program: &str, args: &[&str]) {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(program))
            .args(args)
            .output()
            .expect("runuser");
        assert!(
            out.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.as_postgres(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server (fast: sessions are cut, as in a failover).
    pub fn stop(&self) {
        self.as_postgres("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// A PgBouncer of one test's own in front of the shared PostgreSQL, in
/// transaction pooling mode with `max_prepared_statements` (PgBouncer 1.21
/// or later), and fewer server connections than its clients hold, so
/// every transaction may land on another server connection. Run as
/// `postgres` (PgBouncer refuses root), stopped on drop. `None` (skipped,
/// with a note) where no PgBouncer is installed, except under CI=true.
pub struct PgBouncer {
    dir: tempfile::TempDir,
    port: u16,
}

impl PgBouncer {
    /// The program: `BEACON_TEST_PGBOUNCER`, or `pgbouncer` where
    /// scripts/test.sh builds it, or on the PATH.
    fn program() -> Option<std::path::PathBuf> {
        if let Ok(p) = std::env::var("BEACON_TEST_PGBOUNCER") {
            return Some(p.into());
        }
        let built = Path::new("/opt/pgbouncer/bin/pgbouncer");
        if built.exists() {
            return Some(built.to_path_buf());
        }
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("pgbouncer"))
                .find(|p| p.exists())
        })
    }

    pub fn start(pool_size: usize) -> Option<PgBouncer> {
        let Some(program) = Self::program() else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "PgBouncer is missing under CI=true (scripts/test.sh builds it into /opt/pgbouncer)"
            );
            eprintln!("note: skipping: no pgbouncer");
            return None;
        };
        let dir = tempfile::tempdir().expect("dir");
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
                .expect("chmod");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let d = dir.path().display();
        std::fs::write(dir.path().join("users.txt"), "\"postgres\" \"\"\n").expect("users");
        let ini = format!(
            "[databases]\n* = host=127.0.0.1 port=5432\n\
             [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
             auth_type = trust\nauth_file = {d}/users.txt\n\
             pool_mode = transaction\ndefault_pool_size = {pool_size}\nmax_client_conn = 500\n\
             max_prepared_statements = 500\n\
             ignore_startup_parameters = extra_float_digits,options\n\
             logfile = {d}/pgbouncer.log\npidfile = {d}/pgbouncer.pid\n"
        );
        let config = dir.path().join("pgbouncer.ini");
        std::fs::write(&config, ini).expect("config");
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(&program)
            .arg("-d")
            .arg(&config)
            .output()
            .expect("runuser pgbouncer");
        assert!(
            out.status.success(),
            "{} -d: {}{}",
            program.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let bouncer = PgBouncer { dir, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "pgbouncer did not listen: {}",
                bouncer.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(bouncer)
    }

    /// `url` (a database on the shared PostgreSQL) through this PgBouncer.
    pub fn url_for(&self, url: &str) -> String {
        url.replacen(":5432/", &format!(":{}/", self.port), 1)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let pid =
            std::fs::read_to_string(self.dir.path().join("pgbouncer.pid")).unwrap_or_default();
        if let Ok(pid) = pid.trim().parse::<i32>() {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }
}
