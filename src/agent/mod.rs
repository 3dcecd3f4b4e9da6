//! `beacon agent`: probes from another location for a main server.
//!
//! The agent has no config file and no database. It fetches its
//! assignment (the services that list its location, with their probe
//! settings) from the main server, validates it like `serve` validates a
//! config, and probes on the same [`Scheduler`]. Results go back in
//! batches of at most [`wire::MAX_BATCH`]; while the main server cannot
//! take them they wait in a bounded buffer ([`Options::buffer`] results,
//! and never older than [`wire::REACH`]: past either, the oldest are dropped
//! and counted) and are sent with their original times once it is back.
//! The server stores each result once, so a batch sent again after a lost
//! answer is harmless.
//!
//! Its own `/livez` and `/metrics` are on `--listen`.

pub mod wire;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use tokio::sync::{mpsc, oneshot};

use crate::clock::{Clock, SystemClock};
use crate::config::{self, ConfigSource, ServiceConfig};
use crate::domain::{Outcome, State};
use crate::metrics::Metrics;
use crate::monitor::{MonitorStats, ProbeResult, Scheduler, Watched};
use crate::store::StoredService;
use wire::{Taken, WireBatch, WireResult, MAX_BATCH, REACH};

/// How `beacon agent` runs.
#[derive(Clone)]
pub struct Options {
    /// The main server's base URL (`https://status.example.com`).
    pub server: url::Url,
    pub location: String,
    /// The location's token (`BEACON_AGENT_TOKEN`); never printed.
    pub token: String,
    /// Where its own `/livez` and `/metrics` listen.
    pub listen: SocketAddr,
    /// Results held at most while the main server cannot take them.
    pub buffer: usize,
    /// How often the assignment is asked for (an unchanged one costs a 304).
    pub refresh: Duration,
}

/// How often results are sent while the main server takes them.
const FLUSH: Duration = Duration::from_secs(1);
/// Longest wait between two attempts while the main server is away.
const BACKOFF_CAP: Duration = Duration::from_secs(15);
/// How long a stopping agent keeps trying to send what it holds.
const STOP_DEADLINE: Duration = Duration::from_secs(5);

struct AgentMetrics {
    registry: Registry,
    probes: IntCounterVec,
    sent: IntCounter,
    dropped: IntCounterVec,
    buffered: IntGauge,
    assigned: IntGauge,
    server_up: IntGauge,
    last_sent: IntGauge,
}

impl AgentMetrics {
    fn new() -> AgentMetrics {
        let registry = Registry::new();
        let counter_vec = |name: &str, help: &str, label: &str| {
            let m = IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid");
            registry.register(Box::new(m.clone())).expect("unique");
            m
        };
        let gauge = |name: &str, help: &str| {
            let m = IntGauge::with_opts(Opts::new(name, help)).expect("valid");
            registry.register(Box::new(m.clone())).expect("unique");
            m
        };
        let probes = counter_vec(
            "beacon_agent_probes_total",
            "Probes made by this agent, by outcome.",
            "outcome",
        );
        let dropped = counter_vec(
            "beacon_agent_results_dropped_total",
            "Results given up: full (the buffer was full), too_old (older than the server takes), refused (the server refused the batch as invalid), unassigned (their service left this location's assignment).",
            "reason",
        );
        for reason in ["full", "too_old", "refused", "unassigned"] {
            dropped.with_label_values(&[reason]);
        }
        let sent = IntCounter::with_opts(Opts::new(
            "beacon_agent_results_sent_total",
            "Results the main server has taken.",
        ))
        .expect("valid");
        registry.register(Box::new(sent.clone())).expect("unique");
        AgentMetrics {
            probes,
            sent,
            dropped,
            buffered: gauge(
                "beacon_agent_buffered_results",
                "Results waiting to be sent.",
            ),
            assigned: gauge(
                "beacon_agent_assigned_services",
                "Services in this agent's assignment.",
            ),
            server_up: gauge(
                "beacon_agent_server_up",
                "1 when the main server answered the last request, else 0.",
            ),
            last_sent: gauge(
                "beacon_agent_last_sent_timestamp_seconds",
                "When a batch was last taken by the main server (Unix time).",
            ),
            registry,
        }
    }
}

/// One result waiting, with its place in the order of arrival.
struct Held {
    seq: u64,
    result: WireResult,
}

/// Results waiting to be sent, oldest first, at most `cap`.
struct Buffer {
    held: VecDeque<Held>,
    next_seq: u64,
    cap: usize,
}

impl Buffer {
    fn push(&mut self, result: WireResult, metrics: &AgentMetrics) {
        if self.held.len() >= self.cap {
            self.held.pop_front();
            metrics.dropped.with_label_values(&["full"]).inc();
        }
        self.held.push_back(Held {
            seq: self.next_seq,
            result,
        });
        self.next_seq += 1;
        metrics.buffered.set(self.held.len() as i64);
    }

    /// Drops results older than the server takes.
    fn expire(&mut self, now_ms: i64, metrics: &AgentMetrics) {
        // A minute short of the server's reach, for the time on the way.
        let oldest = now_ms - REACH.as_millis() as i64 + 60_000;
        let before = self.held.len();
        self.held.retain(|h| h.result.checked_at >= oldest);
        let gone = before - self.held.len();
        if gone > 0 {
            metrics
                .dropped
                .with_label_values(&["too_old"])
                .inc_by(gone as u64);
            tracing::warn!(
                dropped = gone,
                "results older than the main server takes were dropped"
            );
        }
        metrics.buffered.set(self.held.len() as i64);
    }

    /// The oldest batch: its results and the last sequence number in it.
    fn batch(&self) -> Option<(Vec<WireResult>, u64)> {
        let last = self
            .held
            .get(self.held.len().min(MAX_BATCH).checked_sub(1)?)?
            .seq;
        Some((
            self.held
                .iter()
                .take(MAX_BATCH)
                .map(|h| h.result.clone())
                .collect(),
            last,
        ))
    }

    /// Drops every result of `service` (no longer assigned here).
    fn forget_service(&mut self, service: &str, metrics: &AgentMetrics) -> usize {
        let before = self.held.len();
        self.held.retain(|h| h.result.service != service);
        let gone = before - self.held.len();
        metrics
            .dropped
            .with_label_values(&["unassigned"])
            .inc_by(gone as u64);
        metrics.buffered.set(self.held.len() as i64);
        gone
    }

    /// Forgets everything up to `seq` (sent, or refused).
    fn done_through(&mut self, seq: u64, metrics: &AgentMetrics) {
        while self.held.front().is_some_and(|h| h.seq <= seq) {
            self.held.pop_front();
        }
        metrics.buffered.set(self.held.len() as i64);
    }
}

/// The slugs of the services probed, by the ids given them here.
#[derive(Default)]
struct Names {
    by_slug: HashMap<String, i64>,
    by_id: HashMap<i64, String>,
}

impl Names {
    fn id(&mut self, slug: &str) -> i64 {
        if let Some(id) = self.by_slug.get(slug) {
            return *id;
        }
        let id = self.by_slug.len() as i64 + 1;
        self.by_slug.insert(slug.to_string(), id);
        self.by_id.insert(id, slug.to_string());
        id
    }
}

struct Agent {
    options: Options,
    http: reqwest::Client,
    metrics: AgentMetrics,
    buffer: parking_lot::Mutex<Buffer>,
    names: parking_lot::RwLock<Names>,
    clock: Arc<dyn Clock>,
    /// Wakes the assignment loop early: the server said the assignment
    /// this agent probes is out of date.
    refetch: tokio::sync::Notify,
}

/// Runs the agent until `shutdown` resolves; then stops probing and tries,
/// for a few seconds, to send what it holds.
pub async fn run(
    options: Options,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let http = crate::trust::with_system_roots(reqwest::Client::builder())
        .user_agent(format!(
            "beacon/{} (agent {})",
            env!("CARGO_PKG_VERSION"),
            options.location
        ))
        .timeout(Duration::from_secs(10))
        .build()
        .context("building the HTTP client")?;
    let agent = Arc::new(Agent {
        http,
        metrics: AgentMetrics::new(),
        buffer: parking_lot::Mutex::new(Buffer {
            held: VecDeque::new(),
            next_seq: 0,
            cap: options.buffer.max(1),
        }),
        names: Default::default(),
        clock: Arc::new(SystemClock),
        refetch: tokio::sync::Notify::new(),
        options,
    });

    let listener = tokio::net::TcpListener::bind(agent.options.listen)
        .await
        .with_context(|| format!("cannot listen on {}", agent.options.listen))?;
    let addr = listener.local_addr()?;
    let own = own_routes(agent.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, own).await {
            tracing::error!(error = %e, "the agent's own HTTP server stopped");
        }
    });
    tracing::info!(
        location = %agent.options.location,
        server = %crate::redact::url(&agent.options.server),
        "agent's /livez and /metrics at http://{addr}"
    );

    let (tx, rx) = mpsc::channel::<ProbeResult>(1024);
    let (stop_sender, sender_stopped) = oneshot::channel::<()>();
    let sender = tokio::spawn(send_loop(agent.clone(), rx, async move {
        let _ = sender_stopped.await;
    }));

    tokio::pin!(shutdown);
    let mut etag: Option<String> = None;
    let mut probing: Option<(oneshot::Sender<()>, tokio::task::JoinHandle<()>)> = None;
    loop {
        match agent.fetch_assignment(etag.as_deref()).await {
            Ok(Some((tag, services, max_concurrency))) => {
                tracing::info!(services = services.len(), "assignment received; probing it");
                agent.metrics.assigned.set(services.len() as i64);
                if let Some((stop, task)) = probing.take() {
                    let _ = stop.send(());
                    let _ = task.await;
                }
                probing = Some(agent.start_probing(services, max_concurrency, tx.clone()));
                etag = Some(tag);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot fetch the assignment; probing goes on with the last one")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(agent.options.refresh) => {}
            _ = agent.refetch.notified() => {}
            _ = &mut shutdown => break,
        }
    }
    tracing::info!("agent stopping");
    if let Some((stop, task)) = probing.take() {
        let _ = stop.send(());
        let _ = task.await;
    }
    drop(tx);
    let _ = stop_sender.send(());
    let _ = sender.await;
    Ok(())
}

impl Agent {
    fn endpoint(&self, path: &str) -> anyhow::Result<url::Url> {
        let base = self.options.server.as_str().trim_end_matches('/');
        url::Url::parse(&format!("{base}/agent/api/v1/{path}"))
            .with_context(|| format!("--server {}", crate::redact::url(&self.options.server)))
    }

    /// The assignment if it changed since `etag`: its ETag, the services
    /// (validated like a config file) and the probes to run at once.
    async fn fetch_assignment(
        &self,
        etag: Option<&str>,
    ) -> anyhow::Result<Option<(String, Vec<ServiceConfig>, usize)>> {
        let url = self.endpoint("assignment")?;
        let mut request = self.http.get(url.clone()).bearer_auth(&self.options.token);
        if let Some(etag) = etag {
            request = request.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        let response = request.send().await.map_err(|e| {
            self.metrics.server_up.set(0);
            anyhow::anyhow!("{}", crate::probe::root_cause(&e))
        })?;
        self.metrics.server_up.set(1);
        let status = response.status();
        if status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        let tag = response
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = response.text().await.context("reading the assignment")?;
        if !status.is_success() {
            anyhow::bail!(
                "the main server answered {status}: {}",
                crate::domain::text::clean_text(&text, 300)
            );
        }
        let source = ConfigSource::Assignment(crate::redact::url(&url).to_string());
        let config = config::from_toml(&text, source, &|_| None)
            .map_err(|e| anyhow::anyhow!("the assignment is not valid: {e}"))?;
        Ok(Some((tag, config.services, config.monitor.max_concurrency)))
    }

    fn start_probing(
        self: &Arc<Self>,
        services: Vec<ServiceConfig>,
        max_concurrency: usize,
        results: mpsc::Sender<ProbeResult>,
    ) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        let watched: Vec<Watched> = {
            let mut names = self.names.write();
            services
                .into_iter()
                .map(|config| {
                    let id = names.id(&config.slug);
                    Watched {
                        id,
                        stored: StoredService {
                            id,
                            slug: config.slug.clone(),
                            state: State::Unknown,
                            state_since: None,
                        },
                        config,
                    }
                })
                .collect()
        };
        let clients = crate::probe::Clients::identified(None, &self.options.location);
        let (stop, stopped) = oneshot::channel::<()>();
        let agent = self.clone();
        // On the monitor's thread, as the server's monitor (see
        // `monitor::spawn`).
        let task = crate::monitor::spawn(async move {
            let clients = match clients {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "cannot build the probes' HTTP clients");
                    return;
                }
            };
            let scheduler = Scheduler {
                services: Arc::new(watched),
                clients,
                clock: agent.clock.clone(),
                max_concurrency,
                stats: Arc::new(MonitorStats::default()),
                metrics: Arc::new(Metrics::new()),
            };
            // No maintenance windows here: the main server judges those.
            let (_no_edges, edges) = mpsc::channel::<usize>(1);
            scheduler
                .run(
                    results,
                    async move {
                        let _ = stopped.await;
                    },
                    edges,
                    None,
                    false,
                )
                .await;
        });
        (stop, task)
    }

    /// A probe's result as the server takes it.
    fn wire(&self, r: ProbeResult) -> Option<WireResult> {
        if r.own_fault {
            tracing::error!(
                reason = r.report.reason.as_deref(),
                "a probe failed because this agent is out of resources; not sent"
            );
            return None;
        }
        let slug = self.names.read().by_id.get(&r.service_id)?.clone();
        let outcome = match r.report.outcome {
            Outcome::Up => "up",
            Outcome::Degraded => "degraded",
            Outcome::Down => "down",
        };
        self.metrics.probes.with_label_values(&[outcome]).inc();
        Some(WireResult {
            service: slug,
            checked_at: r.checked_at,
            outcome: outcome.to_string(),
            latency_ms: Some(r.report.latency.as_millis().min(3_600_000) as i64),
            // A target may answer any three digits; the server takes HTTP's
            // 100–599, and a code beyond says nothing the outcome does not.
            status_code: r
                .report
                .status_code
                .filter(|c| (100..=599).contains(c))
                .map(i64::from),
            reason: r
                .report
                .reason
                .map(|t| crate::domain::text::clean_text(&t, wire::MAX_REASON)),
        })
    }

    /// Sends the oldest batch. `Ok(true)`: taken (or refused as invalid,
    /// and dropped); `Ok(false)`: nothing to send; `Err`: try again later.
    async fn send_one(&self) -> anyhow::Result<bool> {
        let Some((results, last)) = ({
            let mut buffer = self.buffer.lock();
            buffer.expire(self.clock.now_ms(), &self.metrics);
            buffer.batch()
        }) else {
            return Ok(false);
        };
        let count = results.len();
        let response = self
            .http
            .post(self.endpoint("results")?)
            .bearer_auth(&self.options.token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&WireBatch { results })?)
            .send()
            .await
            .map_err(|e| {
                self.metrics.server_up.set(0);
                anyhow::anyhow!("{}", crate::probe::root_cause(&e))
            })?;
        self.metrics.server_up.set(1);
        let status = response.status();
        if status.is_success() {
            let body = response.bytes().await.unwrap_or_default();
            let taken: Taken = serde_json::from_slice(&body).unwrap_or(Taken {
                stored: count,
                duplicates: 0,
            });
            self.buffer.lock().done_through(last, &self.metrics);
            self.metrics.sent.inc_by(count as u64);
            self.metrics.last_sent.set(self.clock.now_ms() / 1000);
            tracing::debug!(
                sent = count,
                stored = taken.stored,
                duplicates = taken.duplicates,
                "batch taken"
            );
            return Ok(true);
        }
        let text = response.text().await.unwrap_or_default();
        let why = crate::domain::text::clean_text(&text, 500);
        if status == reqwest::StatusCode::CONFLICT {
            // A service left this location's assignment (a reload on the
            // main server): its results are dropped, the rest sent again,
            // and the assignment fetched at once.
            let service = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["unassigned"].as_str().map(str::to_string));
            if let Some(service) = service {
                let gone = self.buffer.lock().forget_service(&service, &self.metrics);
                tracing::warn!(%service, dropped = gone, "the main server no longer assigns this service here; its results are dropped and the assignment fetched again");
                self.refetch.notify_one();
                return Ok(true);
            }
        }
        if status == reqwest::StatusCode::UNPROCESSABLE_ENTITY {
            // Sending it again would be refused again: dropped, counted, said.
            tracing::error!(results = count, %why, "the main server refused a batch as invalid; dropped");
            self.metrics
                .dropped
                .with_label_values(&["refused"])
                .inc_by(count as u64);
            self.buffer.lock().done_through(last, &self.metrics);
            return Ok(true);
        }
        anyhow::bail!("the main server answered {status}: {why}")
    }
}

/// Takes results as they come, and sends them every [`FLUSH`] (at once
/// while a backlog is being caught up); backs off while the main server
/// does not take them. Ends once `stop` resolves and what is held is sent
/// (or [`STOP_DEADLINE`] passed).
async fn send_loop(
    agent: Arc<Agent>,
    mut rx: mpsc::Receiver<ProbeResult>,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut failures: u32 = 0;
    let mut next = tokio::time::Instant::now() + FLUSH;
    let mut open = true;
    loop {
        tokio::select! {
            received = rx.recv(), if open => match received {
                Some(r) => {
                    if let Some(w) = agent.wire(r) {
                        agent.buffer.lock().push(w, &agent.metrics);
                    }
                    continue;
                }
                None => open = false,
            },
            _ = tokio::time::sleep_until(next) => {}
            _ = &mut stop => break,
        }
        match agent.send_one().await {
            Ok(true) => {
                failures = 0;
                let backlog = agent.buffer.lock().held.len();
                next = tokio::time::Instant::now()
                    + if backlog >= MAX_BATCH {
                        Duration::ZERO
                    } else {
                        FLUSH
                    };
            }
            Ok(false) => next = tokio::time::Instant::now() + FLUSH,
            Err(e) => {
                failures += 1;
                let wait = (FLUSH * 2u32.saturating_pow(failures.min(5))).min(BACKOFF_CAP);
                let held = agent.buffer.lock().held.len();
                tracing::warn!(error = %format!("{e:#}"), held, retry_in_ms = wait.as_millis() as u64, "cannot send results; holding them");
                next = tokio::time::Instant::now() + wait;
            }
        }
    }
    // Stopping: what came in meanwhile, then what is held, for a few seconds.
    while let Ok(r) = rx.try_recv() {
        if let Some(w) = agent.wire(r) {
            agent.buffer.lock().push(w, &agent.metrics);
        }
    }
    let _ = tokio::time::timeout(STOP_DEADLINE, async {
        while let Ok(true) = agent.send_one().await {}
    })
    .await;
    let left = agent.buffer.lock().held.len();
    if left > 0 {
        tracing::warn!(left, "stopping with results not sent");
    }
}

fn own_routes(agent: Arc<Agent>) -> axum::Router {
    use axum::routing::get;
    axum::Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route(
            "/metrics",
            get(move || {
                let agent = agent.clone();
                async move {
                    use prometheus::Encoder;
                    let mut out = Vec::new();
                    let _ = prometheus::TextEncoder::new()
                        .encode(&agent.metrics.registry.gather(), &mut out);
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4",
                        )],
                        out,
                    )
                }
            }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(at: i64) -> WireResult {
        WireResult {
            service: "api".into(),
            checked_at: at,
            outcome: "up".into(),
            latency_ms: Some(1),
            status_code: Some(200),
            reason: None,
        }
    }

    #[test]
    fn a_full_buffer_drops_the_oldest_and_counts_them() {
        let metrics = AgentMetrics::new();
        let mut buffer = Buffer {
            held: VecDeque::new(),
            next_seq: 0,
            cap: 3,
        };
        for at in 1..=5 {
            buffer.push(result(at), &metrics);
        }
        let kept: Vec<i64> = buffer.held.iter().map(|h| h.result.checked_at).collect();
        assert_eq!(kept, vec![3, 4, 5]);
        assert_eq!(metrics.dropped.with_label_values(&["full"]).get(), 2);
        assert_eq!(metrics.buffered.get(), 3);
    }

    #[test]
    fn a_batch_sent_is_forgotten_even_if_the_buffer_moved_meanwhile() {
        let metrics = AgentMetrics::new();
        let mut buffer = Buffer {
            held: VecDeque::new(),
            next_seq: 0,
            cap: 3,
        };
        buffer.push(result(1), &metrics);
        buffer.push(result(2), &metrics);
        let (batch, last) = buffer.batch().expect("a batch");
        assert_eq!(batch.len(), 2);
        // While it was on its way, two more came and pushed #1 out.
        buffer.push(result(3), &metrics);
        buffer.push(result(4), &metrics);
        buffer.done_through(last, &metrics);
        let kept: Vec<i64> = buffer.held.iter().map(|h| h.result.checked_at).collect();
        assert_eq!(kept, vec![3, 4]);
    }

    #[test]
    fn a_service_no_longer_assigned_loses_only_its_own_results() {
        let metrics = AgentMetrics::new();
        let mut buffer = Buffer {
            held: VecDeque::new(),
            next_seq: 0,
            cap: 10,
        };
        buffer.push(result(1), &metrics);
        let mut other = result(2);
        other.service = "gone".into();
        buffer.push(other, &metrics);
        buffer.push(result(3), &metrics);
        assert_eq!(buffer.forget_service("gone", &metrics), 1);
        let kept: Vec<i64> = buffer.held.iter().map(|h| h.result.checked_at).collect();
        assert_eq!(kept, vec![1, 3]);
        assert_eq!(metrics.dropped.with_label_values(&["unassigned"]).get(), 1);
    }

    #[test]
    fn results_older_than_the_server_takes_are_dropped_before_sending() {
        let metrics = AgentMetrics::new();
        let mut buffer = Buffer {
            held: VecDeque::new(),
            next_seq: 0,
            cap: 10,
        };
        let now = 10 * 3_600_000;
        buffer.push(result(now - REACH.as_millis() as i64), &metrics);
        buffer.push(result(now - 1_000), &metrics);
        buffer.expire(now, &metrics);
        assert_eq!(buffer.held.len(), 1);
        assert_eq!(metrics.dropped.with_label_values(&["too_old"]).get(), 1);
    }
}
