//! The monitor: probes every service on its own interval and records what it
//! finds.
//!
//! Two tasks, joined by a bounded channel:
//! - the **scheduler** keeps a min-heap of next due times, starts each probe
//!   on time (first checks spread evenly over each interval so a thousand
//!   services never fire in the same millisecond; the probes due within one
//!   tick, 10 to 50 ms as the probes due per second make it, start together
//!   at its end: see [`PROBES_PER_TICK`]), and bounds the probes in
//!   flight with a semaphore. Due times advance by the interval, not from
//!   "now", so cadence does not drift; when it cannot keep up the lag grows
//!   and is reported, and nothing is skipped.
//! - the **recorder** applies the threshold state machine and writes results
//!   and state changes in batches, one transaction each.
//!
//! A full channel slows the scheduler down rather than dropping results.
//! On shutdown the scheduler stops starting probes, waits for those in
//! flight, and the recorder writes everything it holds before returning.
//!
//! Tests drive single steps through [`Monitor::probe`] and [`Recorder::record`].

mod quorum;
mod thread;
mod thresholds;
mod windows;

pub use quorum::Quorum;
pub use thread::spawn;
pub use thresholds::Tracker;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::clock::Clock;
use crate::cluster::{Cluster, View};
use crate::config::{MonitorConfig, ServiceConfig};
use crate::domain::{Outcome, State};
use crate::metrics::{join_failure, Metrics};
use crate::probe::{self, ProbeReport};
use crate::store::{Batch, CheckResult, StatusChange, Store, StoreError, StoredService};

/// Longest a state change waits in memory before its batch is written
/// (`monitor.flush_interval` if that is shorter). Results alone wait up to
/// `monitor.flush_interval` (2 s by default): nothing reads them sooner
/// (the page moves last checks on every 5 s, uptimes every 30 s or more),
/// and each batch costs a transaction of a dozen statements or more
/// whatever its size, so a replica wrote two a second whatever its share
/// of the probes: with three replicas, three times the transactions of
/// one for the same results (docs/performance.md, issue 16). A change of
/// state is what the page, the incidents and the alerts wait for.
pub const CHANGE_FLUSH: Duration = Duration::from_millis(250);

/// Longest a batch write may take before it counts as failed (and is retried).
const WRITE_DEADLINE: Duration = Duration::from_secs(30);
/// How long the recorder keeps trying to write what it holds once the
/// process is stopping: within Kubernetes' 30 s grace period with room for
/// the rest of the shutdown.
const STOP_WRITE_DEADLINE: Duration = Duration::from_secs(10);
/// How long probes in flight at a stop may take to finish.
const PROBE_STOP_GRACE: Duration = Duration::from_secs(5);

/// A configured service with its id in the store.
#[derive(Debug, Clone)]
pub struct Watched {
    pub id: i64,
    pub config: ServiceConfig,
    /// Its state as last stored (the start of its state machine).
    pub stored: StoredService,
}

/// One finished probe, on its way to the recorder.
#[derive(Debug, Clone)]
pub struct ProbeResult {
    pub service_id: i64,
    /// When the probe started (epoch ms).
    pub checked_at: i64,
    pub report: ProbeReport,
    /// The probe failed for lack of beacon's own resources (file
    /// descriptors…), which says nothing about the target.
    pub own_fault: bool,
    /// The first probe since this replica took the service over from
    /// another: its thresholds resume from the store, not from what this
    /// replica last knew.
    pub resume: bool,
    /// Made out of turn because a maintenance window over the service
    /// began, ended or was changed: the recorder reads the windows again
    /// before judging it, so the state follows the window at once.
    pub window_edge: bool,
    /// The location that took it: `None` for this server's own probes,
    /// an agent's location for results it sent.
    pub location: Option<Arc<str>>,
}

/// Where agents' results enter the running monitor: its recorder's channel,
/// and which services each location may send results for. Published by
/// [`Monitor::run`] while it runs (a reload replaces it).
#[derive(Clone)]
pub struct Inbox {
    /// Weak: the recorder's channel closes when the monitor stops (a
    /// strong sender here would keep it open, and the stop waiting).
    pub tx: mpsc::WeakSender<ProbeResult>,
    /// By slug: the service's id and the locations that check it.
    pub services: Arc<HashMap<String, (i64, Vec<String>)>>,
}

/// Per service checked from several locations, each location's latest
/// stored result: (location, taken at, outcome).
pub type Located = HashMap<i64, Vec<(String, i64, Outcome)>>;

/// The inbox of whichever monitor runs now.
pub type InboxSlot = Arc<parking_lot::RwLock<Option<Inbox>>>;

/// Live figures of the monitor, read by `/health` and `/metrics`.
#[derive(Debug, Default)]
pub struct MonitorStats {
    pub probes_started: AtomicU64,
    pub results_written: AtomicU64,
    pub batches_written: AtomicU64,
    pub write_failures: AtomicU64,
    /// Lag of the latest probe start behind its plan, ms.
    pub last_lag_ms: AtomicU64,
    /// Epoch ms at which the earliest not-yet-started probe was due
    /// (`i64::MAX` when nothing is waiting).
    pub next_due_ms: AtomicI64,
    /// Epoch ms of the last successful batch write.
    pub last_write_ms: AtomicI64,
    /// Raw results given up: refused by the store as data, or shed from a
    /// full buffer while the store was away (logged with the cause).
    pub results_dropped: AtomicU64,
    /// State changes the store refused even alone (logged with the cause).
    pub changes_dropped: AtomicU64,
    /// Probe slots skipped because the monitor fell a whole interval behind.
    pub probes_skipped: AtomicU64,
    /// Probes that failed for lack of beacon's own resources; ignored.
    pub probe_resource_errors: AtomicU64,
    /// Epoch ms at which the monitor started (0: not running yet): before
    /// the first write, the write age is measured from here.
    pub started_ms: AtomicI64,
    /// Past this long without a write, `/health` warns (0: no services, no
    /// writes expected). A few of the shortest probe intervals.
    pub write_warn_after_ms: AtomicU64,
    /// Past this age of the published snapshot, `/health` warns (0: not
    /// checked).
    pub snapshot_warn_after_ms: AtomicU64,
}

impl MonitorStats {
    /// How late the monitor runs now: the latest probe's lag, or how overdue
    /// the next probe already is if the scheduler is stuck behind it.
    pub fn current_lag(&self, now_ms: i64) -> Duration {
        let last = self.last_lag_ms.load(Ordering::Relaxed);
        let next_due = self.next_due_ms.load(Ordering::Relaxed);
        let overdue = if next_due == i64::MAX || next_due == 0 {
            0
        } else {
            (now_ms - next_due).max(0) as u64
        };
        Duration::from_millis(last.max(overdue))
    }
}

pub struct Monitor {
    services: Arc<Vec<Watched>>,
    clients: probe::Clients,
    store: Store,
    clock: Arc<dyn Clock>,
    config: MonitorConfig,
    stats: Arc<MonitorStats>,
    metrics: Arc<Metrics>,
    written: watch::Sender<u64>,
    /// The cluster's view, when replicas share the probing: each probes
    /// the services [`crate::cluster::owner`] gives it.
    shares: Option<watch::Receiver<View>>,
    /// Every service's first probe resumes its thresholds from the store
    /// (a monitor made anew by a config reload: the outcomes counted by
    /// the one before are in the store, not in this one's memory).
    resume_first: bool,
    /// This server's own location (`server.location`).
    local: Arc<str>,
    /// Each located service's latest result per location, as stored at
    /// start: (name, taken at, outcome).
    located: Arc<Located>,
    /// Where this monitor publishes its inbox for agents' results.
    inbox: Option<InboxSlot>,
    /// The runtime the recorder's writes run on, when not the monitor's
    /// own (see [`Monitor::writing_on`]).
    writes_on: Option<tokio::runtime::Handle>,
}

impl Monitor {
    pub fn new(
        services: Vec<Watched>,
        store: Store,
        clock: Arc<dyn Clock>,
        config: MonitorConfig,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let clients = probe::Clients::new()?;
        let (written, _) = watch::channel(0);
        let stats = Arc::new(MonitorStats::default());
        stats
            .write_warn_after_ms
            .store(write_warn_after(&services, &config), Ordering::Relaxed);
        Ok(Monitor {
            services: Arc::new(services),
            clients,
            store,
            clock,
            config,
            stats,
            metrics,
            written,
            shares: None,
            resume_first: false,
            local: Arc::from(crate::config::DEFAULT_LOCATION),
            located: Default::default(),
            inbox: None,
            writes_on: None,
        })
    }

    /// Writes the recorder's batches on `runtime` (the process's
    /// multi-threaded one) while the probes run on the monitor's own thread
    /// ([`spawn`]). A batch is a transaction of many statements, each a
    /// round trip to the store; on the monitor's thread, busy with thousands
    /// of probes, every round trip waited its turn behind them, and at
    /// 100,000 services a batch took seconds instead of a tenth of one.
    pub fn writing_on(mut self, runtime: tokio::runtime::Handle) -> Self {
        self.writes_on = Some(runtime);
        self
    }

    /// Takes agents' results through `slot` while running; `local` is
    /// this server's own location.
    pub fn receiving(mut self, slot: InboxSlot, local: &str) -> anyhow::Result<Self> {
        self.inbox = Some(slot);
        self.local = Arc::from(local);
        self.clients = probe::Clients::identified(None, local)?;
        Ok(self)
    }

    /// Takes over from a monitor that ran before it in this process (a
    /// config reload): the same figures for `/health` and `/metrics`, the
    /// same write ticks for the refresher, and thresholds that resume from
    /// the store rather than start afresh.
    pub fn continuing(mut self, stats: Arc<MonitorStats>, written: watch::Sender<u64>) -> Self {
        stats.write_warn_after_ms.store(
            self.stats.write_warn_after_ms.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        self.stats = stats;
        self.written = written;
        self.resume_first = true;
        self
    }

    /// The sender of the write ticks, to hand to the next monitor.
    pub fn writes(&self) -> watch::Sender<u64> {
        self.written.clone()
    }

    /// Shares the probing with the cluster's other live members: this
    /// replica probes only the services it owns, and says so in every
    /// HTTP probe's `Beacon-Member` header.
    pub fn shared_by(mut self, cluster: &Cluster) -> anyhow::Result<Self> {
        self.clients = probe::Clients::identified(Some(cluster.member()), &self.local)?;
        self.shares = Some(cluster.subscribe());
        Ok(self)
    }

    /// Syncs `services` into the store and builds a monitor over them,
    /// each starting from its stored state.
    pub async fn for_services(
        services: &[ServiceConfig],
        store: Store,
        clock: Arc<dyn Clock>,
        config: MonitorConfig,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let stored = store.sync_services(services, clock.now_ms()).await?;
        let watched = services
            .iter()
            .cloned()
            .zip(stored)
            .map(|(config, stored)| Watched {
                id: stored.id,
                config,
                stored,
            })
            .collect();
        let located = if services.iter().any(|s| s.locations.is_some()) {
            let since = clock.now_ms() - crate::domain::time::DAY_MS;
            match store.latest_location_results(since).await {
                Ok(rows) => {
                    let mut by: Located = HashMap::new();
                    for r in rows {
                        by.entry(r.service_id).or_default().push((
                            r.location,
                            r.checked_at,
                            r.outcome,
                        ));
                    }
                    by
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading each location's latest results failed; every location starts afresh");
                    HashMap::new()
                }
            }
        } else {
            HashMap::new()
        };
        let mut monitor = Self::new(watched, store, clock, config, metrics)?;
        monitor.located = Arc::new(located);
        Ok(monitor)
    }

    pub fn stats(&self) -> Arc<MonitorStats> {
        self.stats.clone()
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Ticks after every batch written, so readers can refresh their view.
    pub fn subscribe_writes(&self) -> watch::Receiver<u64> {
        self.written.subscribe()
    }

    pub fn services(&self) -> &[Watched] {
        &self.services
    }

    /// Probes one service now, without recording. For tests and tools.
    pub async fn probe(&self, slug: &str) -> Option<ProbeResult> {
        let watched = self.services.iter().find(|w| w.config.slug == slug)?;
        Some(probe_one(&self.clients, &*self.clock, watched).await)
    }

    /// A recorder over this monitor's services and store.
    pub fn recorder(&self) -> Recorder {
        Recorder::new(
            &self.services,
            self.config.incident_cooldown,
            self.store.clone(),
            self.clock.clone(),
            (self.stats.clone(), self.metrics.clone()),
            self.written.clone(),
            (self.local.clone(), &self.located),
        )
        .writing_on(self.writes_on.clone())
    }

    /// Runs until `shutdown` resolves, then finishes in-flight probes and
    /// writes every result before returning.
    ///
    /// A recorder that dies (panics) ends this at once with an error: the
    /// results it held and its services' state machines are gone, and
    /// probing on would only feed a channel nobody reads. The process then
    /// exits non-zero (see `startup`), and starts again from the stored
    /// states under its service manager.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        let (tx, rx) = mpsc::channel::<ProbeResult>(self.config.batch_size * 4);
        let recorder = self.recorder();
        // Published until the next monitor (a reload) replaces it; once
        // this one stops, a send finds its channel closed and the agent is
        // answered 503 (and sends again).
        if let Some(slot) = &self.inbox {
            let services = self
                .services
                .iter()
                .filter_map(|w| {
                    let names = w.config.locations.as_ref()?.names.clone();
                    Some((w.config.slug.clone(), (w.id, names)))
                })
                .collect();
            *slot.write() = Some(Inbox {
                tx: tx.downgrade(),
                services: Arc::new(services),
            });
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let flush = self.config.flush_interval;
        let batch_size = self.config.batch_size;
        let max_buffered = self.config.max_buffered_results;
        self.stats
            .started_ms
            .store(self.clock.now_ms(), Ordering::Relaxed);
        #[cfg(debug_assertions)]
        let panic_after = test_hook_panic_recorder_after();
        #[cfg(debug_assertions)]
        let mut batches = self.written.subscribe();
        let mut recorder_task = tokio::spawn(async move {
            let run = recorder.run(rx, batch_size, flush, max_buffered, stop_rx);
            #[cfg(debug_assertions)]
            if let Some(n) = panic_after {
                tokio::pin!(run);
                tokio::select! {
                    biased;
                    ended = &mut run => return ended,
                    _ = batches.wait_for(|written| *written >= n) => {
                        panic!("test hook: BEACON_TEST_PANIC_RECORDER_AFTER={n} batches written")
                    }
                }
            }
            run.await
        });
        self.metrics.tasks.running("monitor");
        self.metrics.tasks.running("recorder");

        // The recorder learns of the shutdown at once (not after probes in
        // flight finish), so a write that keeps failing cannot hold the
        // process past its grace period.
        let shutdown = async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        };
        let schedule = self.schedule(tx, shutdown);
        tokio::pin!(schedule);
        tokio::select! {
            biased;
            () = &mut schedule => {}
            // Before the scheduler returns, the channel is open: the
            // recorder only ends by dying.
            ended = &mut recorder_task => {
                let why = match ended {
                    Ok(Ok(())) => "returned while probes were still coming".to_string(),
                    Ok(Err(e)) => format!("{e:#}"),
                    Err(e) => join_failure(e),
                };
                self.metrics.task_died("recorder", self.clock.now_ms(), &why);
                // Dropping the scheduler here cancels the probes in flight.
                anyhow::bail!("the recorder died ({why}); the results it held are lost");
            }
        }
        // The scheduler has returned and every probe task has sent its
        // result: the channel is closed, the recorder drains and ends.
        let ended = match recorder_task.await {
            Ok(result) => result,
            Err(e) => {
                let why = join_failure(e);
                self.metrics
                    .task_died("recorder", self.clock.now_ms(), &why);
                Err(anyhow::anyhow!("the recorder died while stopping ({why})"))
            }
        };
        self.metrics.tasks.stopped("recorder");
        self.metrics.tasks.stopped("monitor");
        ended
    }

    async fn schedule(
        &self,
        tx: mpsc::Sender<ProbeResult>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let (edge_tx, edges) = mpsc::channel::<usize>(1024);
        let _window_watch = AbortOnDrop(tokio::spawn(windows::watch(
            self.store.clone(),
            self.clock.clone(),
            self.services.clone(),
            edge_tx,
        )));
        let plan = Scheduler {
            services: self.services.clone(),
            clients: self.clients.clone(),
            clock: self.clock.clone(),
            max_concurrency: self.config.max_concurrency,
            stats: self.stats.clone(),
            metrics: self.metrics.clone(),
        };
        plan.run(tx, shutdown, edges, self.shares.clone(), self.resume_first)
            .await
    }
}

/// The probing loop `serve` and `beacon agent` share: a min-heap of due
/// times, first checks spread over each interval, cadence kept by adding
/// the interval (not from "now"), probes in flight bounded.
pub struct Scheduler {
    pub services: Arc<Vec<Watched>>,
    pub clients: probe::Clients,
    pub clock: Arc<dyn Clock>,
    pub max_concurrency: usize,
    pub stats: Arc<MonitorStats>,
    pub metrics: Arc<Metrics>,
}

impl Scheduler {
    /// Runs until `shutdown`: probes each service on its cadence, sends
    /// every result to `tx`; `edges` are services to probe out of turn
    /// (maintenance windows' edges), `shares` the cluster's division.
    pub async fn run(
        &self,
        tx: mpsc::Sender<ProbeResult>,
        shutdown: impl std::future::Future<Output = ()>,
        mut edges: mpsc::Receiver<usize>,
        shares: Option<watch::Receiver<View>>,
        resume_first: bool,
    ) {
        tokio::pin!(shutdown);
        let semaphore = Arc::new(Semaphore::new(self.max_concurrency));
        let mut in_flight = JoinSet::new();
        // (when, which service, out of turn): a probe out of turn (a
        // maintenance window's edge) is made once and leaves the service's
        // cadence alone.
        let mut heap: BinaryHeap<Reverse<(Instant, usize, bool)>> = BinaryHeap::new();
        let start = Instant::now();

        let intervals: Vec<Duration> = self.services.iter().map(|w| w.config.interval).collect();
        for (i, offset) in first_offsets(&intervals).into_iter().enumerate() {
            // A service only agents check is never probed here.
            if self.services[i].config.probed_here() {
                heap.push(Reverse((start + offset, i, false)));
            }
        }
        let mut shares = shares;
        let mut owned = Owned::all(self.services.len(), resume_first);
        if let Some(view) = shares.as_mut() {
            owned.divide(&self.services, &view.borrow_and_update());
        }
        let mut tick = owned.tick(&self.services);
        // The next slot of each service another member probes, kept out of
        // the heap: a replica of three would otherwise wake for every
        // service of the fleet only to find two in three are not its own.
        let mut parked: Vec<Option<Instant>> = vec![None; self.services.len()];

        loop {
            let next = heap.peek().copied();
            let due = next.map(|Reverse((due, _, _))| due);
            self.stats.next_due_ms.store(
                due.map_or(i64::MAX, |due| self.instant_to_ms(due)),
                Ordering::Relaxed,
            );
            let divided = tokio::select! {
                _ = sleep_until_some(due.map(|d| on_tick(start, tick, d))) => false,
                Some(edge) = edges.recv() => {
                    if self.services[edge].config.probed_here() {
                        heap.push(Reverse((Instant::now(), edge, true)));
                    }
                    continue;
                }
                changed = shares_changed(shares.as_mut()) => {
                    if changed.is_err() {
                        // The cluster's view is gone (its task stopped):
                        // keep the last division.
                        shares = None;
                    }
                    true
                }
                _ = shutdown.as_mut() => break,
            };
            if let Some(view) = shares.as_mut() {
                if (divided || view.has_changed().unwrap_or(false))
                    && owned.divide(&self.services, &view.borrow_and_update())
                {
                    owned.unpark(&mut parked, &mut heap, &self.services, Instant::now());
                    tick = owned.tick(&self.services);
                    // What is due first may have changed: look again.
                    continue;
                }
            }
            if divided {
                continue;
            }
            let Some(Reverse((due, i, out_of_turn))) = next else {
                continue;
            };
            let resume = match owned.take_turn(i) {
                Some(resume) => resume,
                None => {
                    // Another member probes it: keep its slot out of the
                    // heap, so it is probed on its cadence if it comes back
                    // to us (see `Owned::unpark`).
                    heap.pop();
                    if !out_of_turn {
                        parked[i] = Some(due + self.services[i].config.interval);
                    }
                    continue;
                }
            };
            let permit = tokio::select! {
                permit = semaphore.clone().acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => break,
                },
                _ = shutdown.as_mut() => break,
            };
            heap.pop();
            let watched = &self.services[i];
            let interval = watched.config.interval;
            if !out_of_turn {
                // Keep the cadence; but after falling more than a whole
                // interval behind (a stall), start afresh from now instead
                // of firing every missed slot back to back. Skipped slots
                // are counted.
                let now = Instant::now();
                let mut next = due + interval;
                if next + interval < now {
                    let missed = (now - next).as_nanos() / interval.as_nanos().max(1);
                    self.stats
                        .probes_skipped
                        .fetch_add(missed as u64, Ordering::Relaxed);
                    next = now;
                }
                heap.push(Reverse((next, i, false)));

                let lag = Instant::now().saturating_duration_since(due);
                self.stats
                    .last_lag_ms
                    .store(lag.as_millis() as u64, Ordering::Relaxed);
                self.metrics.schedule_lag.observe(lag.as_secs_f64());
            }
            self.stats.probes_started.fetch_add(1, Ordering::Relaxed);

            let clients = self.clients.clone();
            let clock = self.clock.clone();
            let services = self.services.clone();
            let tx = tx.clone();
            in_flight.spawn(async move {
                let mut result = probe_one(&clients, &*clock, &services[i]).await;
                result.resume = resume;
                result.window_edge = out_of_turn;
                // Only fails if the recorder is gone, which only happens
                // after this scheduler has returned.
                let _ = tx.send(result).await;
                drop(permit);
            });
            while in_flight.try_join_next().is_some() {}
        }
        self.stats.next_due_ms.store(i64::MAX, Ordering::Relaxed);
        tracing::info!(
            in_flight = in_flight.len(),
            "monitor stopping; waiting for probes in flight"
        );
        // Probes in flight get a few seconds, not their whole timeout: the
        // stop has a deadline. One cut off sends no result (it says nothing
        // about its target).
        let drained = tokio::time::timeout(PROBE_STOP_GRACE, async {
            while in_flight.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::info!(
                cut = in_flight.len(),
                "probes still in flight after {PROBE_STOP_GRACE:?}; stopping them"
            );
            in_flight.shutdown().await;
        }
    }

    fn instant_to_ms(&self, at: Instant) -> i64 {
        let now = Instant::now();
        let now_ms = self.clock.now_ms();
        if at >= now {
            now_ms + (at - now).as_millis() as i64
        } else {
            now_ms - (now - at).as_millis() as i64
        }
    }
}

/// How long without a write before `/health` warns: three of the shortest
/// probe intervals plus the flush interval, at least 30 s (a write may take
/// that long before it counts as failed). 0 without services: no writes
/// are expected.
fn write_warn_after(services: &[Watched], config: &MonitorConfig) -> u64 {
    let Some(shortest) = services.iter().map(|w| w.config.interval).min() else {
        return 0;
    };
    (shortest * 3 + config.flush_interval)
        .max(Duration::from_secs(30))
        .as_millis() as u64
}

/// Debug builds only: `BEACON_TEST_PANIC_RECORDER_AFTER=N` makes the
/// recorder panic once N batches are written, so tests can see what a
/// recorder death does to the process.
#[cfg(debug_assertions)]
fn test_hook_panic_recorder_after() -> Option<u64> {
    let value = std::env::var("BEACON_TEST_PANIC_RECORDER_AFTER").ok()?;
    match value.trim().parse::<u64>() {
        Ok(n) => {
            tracing::warn!(batches = n, "test hook: the recorder will panic");
            Some(n)
        }
        Err(_) => {
            tracing::warn!(%value, "BEACON_TEST_PANIC_RECORDER_AFTER is not a number; ignored");
            None
        }
    }
}

/// The first of `slot`, `slot + interval`, `slot + 2 × interval`, … that is
/// not before `now`.
fn next_slot(slot: Instant, interval: Duration, now: Instant) -> Instant {
    if slot >= now {
        return slot;
    }
    let step = interval.as_nanos().max(1);
    let behind = (now - slot).as_nanos();
    let steps = behind.div_ceil(step);
    u64::try_from(steps * step)
        .ok()
        .and_then(|nanos| slot.checked_add(Duration::from_nanos(nanos)))
        .unwrap_or(now)
}

/// The scheduler's wake-ups fall on a grid of ticks from its start: the
/// probes due within one tick start together, once it ends. At a thousand
/// probes a second a wake-up per probe (a timer, `epoll_wait`, a switch into
/// and out of the thread, every cache cold again) cost more than the probe's
/// own code; a wake-up per tick runs ten of them back to back. Probes start
/// up to one tick late (the schedule lag says so); the cadence is unchanged.
///
/// This is the shortest tick, that of a scheduler with
/// [`PROBES_PER_TICK`] or more probes due in it on average.
pub const SCHEDULER_TICK: Duration = Duration::from_millis(10);

/// The longest tick: how late a probe may start for the sake of starting
/// it with others (an interval is never shorter than a second).
pub const LONGEST_TICK: Duration = Duration::from_millis(50);

/// The probes a tick should start on average: the tick is as long as it
/// takes this replica's services to fall due this many times, between
/// [`SCHEDULER_TICK`] and [`LONGEST_TICK`]. A fixed 10 ms tick gave a
/// replica with a third of the fleet a third of the probes per wake-up,
/// and each wake-up's chain of switches (the tick, then the probes'
/// connects and answers, which arrive together when they start together)
/// was paid three times over: with three replicas at 30,000 services, in
/// runs side by side, the three monitors took 1.3 to 1.5 times one
/// replica's CPU for the same probes, and 1.1 to 1.4 times with the tick
/// following the share (30 ms each; docs/performance.md, issue 16).
pub const PROBES_PER_TICK: f64 = 10.0;

/// The tick for services probed at `intervals` (those this scheduler
/// probes): [`PROBES_PER_TICK`] of them due in it on average.
fn tick_for(intervals: impl Iterator<Item = Duration>) -> Duration {
    let per_second: f64 = intervals
        .filter(|i| !i.is_zero())
        .map(|i| 1.0 / i.as_secs_f64())
        .sum();
    if per_second <= 0.0 {
        return LONGEST_TICK;
    }
    Duration::try_from_secs_f64(PROBES_PER_TICK / per_second)
        .unwrap_or(LONGEST_TICK)
        .clamp(SCHEDULER_TICK, LONGEST_TICK)
}

/// `due`, moved on to the end of its tick.
fn on_tick(start: Instant, tick: Duration, due: Instant) -> Instant {
    let tick = tick.as_nanos().max(1);
    let since = due.saturating_duration_since(start).as_nanos();
    u64::try_from(since.div_ceil(tick) * tick)
        .ok()
        .and_then(|nanos| start.checked_add(Duration::from_nanos(nanos)))
        .unwrap_or(due)
}

/// Sleeps until `due`, or for ever when there is nothing due.
async fn sleep_until_some(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// The cluster's view changed (or its sender is gone); never, without a
/// cluster.
async fn shares_changed(
    shares: Option<&mut watch::Receiver<View>>,
) -> Result<(), watch::error::RecvError> {
    match shares {
        Some(view) => view.changed().await,
        None => std::future::pending().await,
    }
}

/// When each service is first probed, from the monitor's start: the i-th
/// of n services at i/n of its interval, so a thousand services never fire
/// in the same millisecond, and the first at once, so a fresh page fills
/// quickly.
pub fn first_offsets(intervals: &[Duration]) -> Vec<Duration> {
    let n = intervals.len().max(1) as u128;
    intervals
        .iter()
        .enumerate()
        .map(|(i, interval)| Duration::from_nanos((interval.as_nanos() * i as u128 / n) as u64))
        .collect()
}

#[tracing::instrument(level = "debug", skip_all, fields(service = %watched.config.slug))]
async fn probe_one(clients: &probe::Clients, clock: &dyn Clock, watched: &Watched) -> ProbeResult {
    let checked_at = clock.now_ms();
    let report = probe::run(clients, &watched.config, checked_at).await;
    tracing::debug!(outcome = ?report.outcome, latency_ms = report.latency.as_millis() as u64, reason = report.reason.as_deref(), "probed");
    let own_fault = probe::out_of_resources(&watched.config, &report);
    ProbeResult {
        service_id: watched.id,
        checked_at,
        report,
        own_fault,
        resume: false,
        window_edge: false,
        location: None,
    }
}

/// Which services this replica probes, and which it has just taken over.
struct Owned {
    mine: Vec<bool>,
    /// Not probed here last time it was due (another member had it): its
    /// next probe here resumes its thresholds from the store.
    away: Vec<bool>,
    /// The member ids last divided among, to divide again only on a change.
    among: Vec<Arc<str>>,
}

impl Owned {
    fn all(n: usize, resume_first: bool) -> Owned {
        Owned {
            mine: vec![true; n],
            away: vec![resume_first; n],
            among: Vec::new(),
        }
    }

    /// Divides the services among the view's live members; false when
    /// they are the members it last divided among (nothing moved).
    fn divide(&mut self, services: &[Watched], view: &View) -> bool {
        let among = view.shares();
        if among == self.among {
            return false;
        }
        let me = view.member.clone();
        let mut count = 0;
        for (mine, w) in self.mine.iter_mut().zip(services) {
            *mine = among.len() <= 1
                || crate::cluster::owner(&among, &w.config.slug).is_some_and(|m| *m == me);
            count += usize::from(*mine);
        }
        tracing::info!(
            members = among.len(),
            probing = count,
            of = services.len(),
            "services divided among the cluster's members"
        );
        self.among = among;
        true
    }

    /// The scheduler's tick for the services this member probes (see
    /// [`PROBES_PER_TICK`]).
    fn tick(&self, services: &[Watched]) -> Duration {
        tick_for(
            services
                .iter()
                .zip(&self.mine)
                .filter(|(w, mine)| **mine && w.config.probed_here())
                .map(|(w, _)| w.config.interval),
        )
    }

    /// Puts back into the heap the parked services that are this
    /// member's again, each at its first slot from `now` on its own
    /// cadence: at most one interval away, the hand-over's bound.
    fn unpark(
        &self,
        parked: &mut [Option<Instant>],
        heap: &mut BinaryHeap<Reverse<(Instant, usize, bool)>>,
        services: &[Watched],
        now: Instant,
    ) {
        for (i, slot) in parked.iter_mut().enumerate() {
            if !self.mine[i] {
                continue;
            }
            if let Some(slot) = slot.take() {
                heap.push(Reverse((
                    next_slot(slot, services[i].config.interval, now),
                    i,
                    false,
                )));
            }
        }
    }

    /// `None`: not ours to probe now. `Some(resume)`: probe it, resuming
    /// its thresholds from the store when it was away.
    fn take_turn(&mut self, i: usize) -> Option<bool> {
        if !self.mine[i] {
            self.away[i] = true;
            return None;
        }
        Some(std::mem::take(&mut self.away[i]))
    }
}

/// Applies thresholds and writes batches. Owns every service's state
/// machine, so no lock is needed.
pub struct Recorder {
    trackers: HashMap<i64, (String, Tracker)>,
    /// The dependencies last written per service, to write only changes.
    dependencies: HashMap<i64, Vec<crate::domain::Dependency>>,
    /// The certificate expiry last written per service.
    certificates: HashMap<i64, i64>,
    /// How long before expiry a certificate raises an alert, per service
    /// (its `tls_warn_days`), and the certificates already raised.
    certificate_warn_ms: HashMap<i64, i64>,
    certificates_warned: std::collections::HashSet<(i64, i64)>,
    /// Maintenance windows not yet over, as last read from the store, and
    /// when that was (epoch ms). Each result is judged at its own time.
    windows: Vec<crate::store::ServiceWindow>,
    maintenance_read_at: Option<i64>,
    /// Per service, when the probe whose result last stepped its state
    /// machine started (epoch ms). Two probes of one service can overlap (a
    /// window's edge probe beside one in flight, a timeout longer than the
    /// interval) and finish out of order: an older result is written, but
    /// does not step the state back.
    stepped_at: HashMap<i64, i64>,
    /// Services whose state change the store refused because another
    /// replica had changed the state first: read again before their next
    /// result is applied.
    resync: std::collections::HashSet<i64>,
    /// Services checked from several locations: each location's
    /// thresholds, and the quorum that decides.
    quorums: HashMap<i64, Quorum>,
    /// This server's own location.
    local: Arc<str>,
    incident_cooldown: Duration,
    store: Store,
    clock: Arc<dyn Clock>,
    stats: Arc<MonitorStats>,
    metrics: Arc<Metrics>,
    written: watch::Sender<u64>,
    /// Where batches are written (see [`Monitor::writing_on`]); `None`:
    /// where the recorder runs.
    writes_on: Option<tokio::runtime::Handle>,
}

impl Recorder {
    fn writing_on(mut self, runtime: Option<tokio::runtime::Handle>) -> Self {
        self.writes_on = runtime;
        self
    }

    fn new(
        services: &[Watched],
        incident_cooldown: Duration,
        store: Store,
        clock: Arc<dyn Clock>,
        (stats, metrics): (Arc<MonitorStats>, Arc<Metrics>),
        written: watch::Sender<u64>,
        (local, located): (Arc<str>, &Located),
    ) -> Self {
        let quorums = services
            .iter()
            .filter_map(|w| {
                let locations = w.config.locations.as_ref()?;
                let stored = located.get(&w.id).map(Vec::as_slice).unwrap_or(&[]);
                Some((
                    w.id,
                    Quorum::new(locations, &w.config, w.stored.state, stored),
                ))
            })
            .collect();
        let trackers = services
            .iter()
            .map(|w| {
                let tracker = Tracker::new(
                    w.stored.state,
                    w.config.failure_threshold,
                    w.config.success_threshold,
                );
                (w.id, (w.config.slug.clone(), tracker))
            })
            .collect();
        Recorder {
            trackers,
            dependencies: HashMap::new(),
            certificates: HashMap::new(),
            certificate_warn_ms: services
                .iter()
                .map(|w| (w.id, w.config.tls_warn_days * crate::domain::time::DAY_MS))
                .collect(),
            certificates_warned: Default::default(),
            windows: Vec::new(),
            maintenance_read_at: None,
            stepped_at: HashMap::new(),
            resync: Default::default(),
            quorums,
            local,
            incident_cooldown,
            store,
            clock,
            stats,
            metrics,
            written,
            writes_on: None,
        }
    }

    fn new_batch(&self) -> Batch {
        Batch {
            incident_cooldown_ms: self.incident_cooldown.as_millis() as i64,
            ..Batch::default()
        }
    }

    /// Adds one result to `batch`, with the state change it causes, if any.
    fn apply(&mut self, result: ProbeResult, batch: &mut Batch) {
        if result.own_fault {
            // Not the target's failure: neither a result nor a step of its
            // state machine. Counted, shown on /health, logged.
            self.stats
                .probe_resource_errors
                .fetch_add(1, Ordering::Relaxed);
            self.metrics.probe_resource_errors.inc();
            let slug = self
                .trackers
                .get(&result.service_id)
                .map(|(s, _)| s.as_str());
            tracing::error!(service = slug, reason = result.report.reason.as_deref(), "a probe failed because beacon is out of resources (file descriptors or memory); the service's state is left as it was");
            return;
        }
        let report = result.report;
        // A service checked from several locations: the location's own
        // thresholds step, then the quorum decides (see `quorum.rs`).
        let location = result.location.clone();
        let mut decided: Option<Option<State>> = None;
        if let Some(quorum) = self.quorums.get_mut(&result.service_id) {
            let name = location.clone().unwrap_or_else(|| self.local.clone());
            if !quorum.is_location(&name) {
                tracing::warn!(service_id = result.service_id, location = %name, "a result from a location that does not check this service; ignored");
                return;
            }
            quorum.observe(&name, result.checked_at, report.outcome);
            decided = Some(quorum.decide(result.checked_at));
            if location.is_none() {
                batch.location_results.push(crate::store::LocationResult {
                    service_id: result.service_id,
                    location: name.to_string(),
                    checked_at: result.checked_at,
                    outcome: report.outcome,
                    latency_ms: Some(report.latency.as_millis().min(i32::MAX as u128) as i32),
                    status_code: report.status_code.map(|c| c as i16),
                    reason: report.reason.clone(),
                });
            }
        } else if location.is_some() {
            tracing::warn!(
                service_id = result.service_id,
                "an agent's result for a service only this server checks; ignored"
            );
            return;
        }
        let in_maintenance = self
            .windows
            .iter()
            .any(|w| w.covers(result.service_id, result.checked_at));
        let newest = self
            .stepped_at
            .get(&result.service_id)
            .is_none_or(|&at| result.checked_at >= at);
        let tracked = self.trackers.get_mut(&result.service_id).filter(|_| newest);
        if let Some((slug, tracker)) = tracked {
            self.stepped_at.insert(result.service_id, result.checked_at);
            let from = tracker.state();
            // In a window the state is maintenance whatever the probes say.
            // The first probe after it that finds the service up (or
            // degraded) moves it there at once: the window is over. One
            // that finds it down counts as a failure like any other, so a
            // service still starting as its window closes raises no alarm
            // before `failure_threshold` (it shows maintenance until then).
            let change = if in_maintenance {
                (from != State::Maintenance).then(|| {
                    tracker.force(State::Maintenance);
                    State::Maintenance
                })
            } else if let Some(decided) = decided {
                // Thresholds were applied per location: the quorum's
                // state is the service's.
                decided
                    .filter(|to| *to != from)
                    .inspect(|to| tracker.force(*to))
            } else if from == State::Maintenance && report.outcome != Outcome::Down {
                let to = report.outcome.state();
                tracker.force(to);
                Some(to)
            } else {
                tracker.observe(report.outcome)
            };
            if let Some(to) = change {
                tracing::info!(service = %slug, %from, %to, reason = report.reason.as_deref(), "service state changed");
                batch.changes.push(StatusChange {
                    service_id: result.service_id,
                    changed_at: result.checked_at,
                    from,
                    to,
                    reason: report.reason.clone(),
                });
            }
        }
        let outcome = match decided {
            Some(Some(State::Down)) => Outcome::Down,
            Some(Some(State::Degraded)) => Outcome::Degraded,
            Some(Some(State::Up)) => Outcome::Up,
            // No location has a state yet (every one short of its
            // thresholds, or silent): nothing is decided, and the history
            // holds what is decided only. Its own row is kept.
            Some(_) if !in_maintenance => return,
            _ => report.outcome,
        };
        let reason = match (&location, decided) {
            (Some(name), _) => report.reason.as_ref().map(|r| format!("{name}: {r}")),
            (None, Some(_)) => report
                .reason
                .as_ref()
                .map(|r| format!("{}: {r}", self.local)),
            (None, None) => report.reason.clone(),
        };
        // An agent reports outcomes only: dependencies and certificates are
        // this server's to read.
        if location.is_none() {
            self.note_dependencies_and_certificate(
                (result.service_id, result.checked_at),
                &report,
                in_maintenance,
                batch,
            );
        }
        batch.results.push(CheckResult {
            service_id: result.service_id,
            checked_at: result.checked_at,
            outcome,
            maintenance: in_maintenance,
            latency_ms: Some(report.latency.as_millis().min(i32::MAX as u128) as i32),
            status_code: report.status_code.map(|c| c as i16),
            reason,
        });
    }

    /// Adds what `report` (of `service_id`, taken at `checked_at`) changed of
    /// the service's dependencies and
    /// certificate to `batch`, and a certificate close to expiry.
    fn note_dependencies_and_certificate(
        &mut self,
        (service_id, checked_at): (i64, i64),
        report: &ProbeReport,
        in_maintenance: bool,
        batch: &mut Batch,
    ) {
        // Observed values (latencies, counts) change on every probe and are
        // not worth a write; names, states and outputs are.
        let states = |deps: &[crate::domain::Dependency]| {
            deps.iter()
                .map(|d| (d.name.clone(), d.health, d.output.clone()))
                .collect::<Vec<_>>()
        };
        let known = self.dependencies.get(&service_id);
        if known.map(|k| states(k)) != Some(states(&report.dependencies)) {
            self.dependencies
                .insert(service_id, report.dependencies.clone());
            batch.dependencies.retain(|(id, _)| *id != service_id);
            batch
                .dependencies
                .push((service_id, report.dependencies.clone()));
        }
        if let Some(expires_at) = report.certificate_expires_at {
            let warn_ms = self
                .certificate_warn_ms
                .get(&service_id)
                .copied()
                .unwrap_or(ServiceConfig::DEFAULT_TLS_WARN_DAYS * crate::domain::time::DAY_MS);
            // The store keeps one event per certificate; this set only
            // spares it the repeated inserts.
            if expires_at - checked_at <= warn_ms
                && !in_maintenance
                && self.certificates_warned.insert((service_id, expires_at))
            {
                batch
                    .certificate_warnings
                    .push((service_id, expires_at, checked_at));
            }
            if self.certificates.insert(service_id, expires_at) != Some(expires_at) {
                batch.certificates.retain(|(id, _)| *id != service_id);
                batch.certificates.push((service_id, expires_at));
            }
        }
    }

    /// Before `result` is applied: a service just taken over from another
    /// replica, or whose change the store refused as stale, continues from
    /// the stored state and the outcomes since. A store that does not
    /// answer within 2 s leaves the tracker as it was (the compare-and-swap
    /// on the previous state still keeps a stale change out).
    async fn resume_if_needed(&mut self, result: &ProbeResult) {
        let id = result.service_id;
        if !(self.resync.remove(&id) | result.resume) {
            return;
        }
        let Some(memory) = self.trackers.get(&id).map(|(_, t)| t.memory()) else {
            return;
        };
        let read = tokio::time::timeout(
            Duration::from_secs(2),
            self.store.resume_point(id, i64::from(memory)),
        )
        .await;
        match read {
            Ok(Ok((state, since))) => {
                if let Some((slug, tracker)) = self.trackers.get_mut(&id) {
                    tracing::debug!(service = %slug, %state, outcomes = since.len(), "thresholds resumed from the store");
                    tracker.resume(state, &since);
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, service_id = id, "reading where a service's thresholds stand failed; going on from what this replica knew"),
            Err(_) => tracing::warn!(service_id = id, "reading where a service's thresholds stand took over 2 s; going on from what this replica knew"),
        }
    }

    /// Reads which services are in a maintenance window, at most every few
    /// seconds. From the store, so windows set by the API, the CLI or another
    /// replica all count. A failed read keeps the last known set.
    /// `edge`: the start of a window's edge probe, whose result is judged
    /// with the windows as read after it started (one read serves every
    /// edge probe of a window, however many services it covers).
    async fn refresh_maintenance(&mut self, now: i64, edge: Option<i64>) {
        const EVERY_MS: i64 = 5_000;
        let fresh = match edge {
            Some(started) => self.maintenance_read_at.is_some_and(|at| at >= started),
            None => self
                .maintenance_read_at
                .is_some_and(|at| now >= at && now - at < EVERY_MS),
        };
        if fresh {
            return;
        }
        // An hour back, so results that waited in a batch still see the
        // window they were taken in.
        // Not for long: the recorder takes no results meanwhile. A store
        // that does not answer is asked again only after EVERY_MS.
        let read = tokio::time::timeout(
            Duration::from_secs(2),
            self.store.maintenance_windows(now - 3_600_000),
        )
        .await;
        self.maintenance_read_at = Some(now);
        match read {
            Ok(Ok(windows)) => self.windows = windows,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "reading maintenance windows failed; keeping the last known")
            }
            Err(_) => {
                tracing::warn!("reading maintenance windows took over 2 s; keeping the last known")
            }
        }
    }

    /// Applies and writes `results` at once, returning the state changes.
    pub async fn record(&mut self, results: Vec<ProbeResult>) -> anyhow::Result<Vec<StatusChange>> {
        if let Some(first) = results.first() {
            let edge = results
                .iter()
                .filter(|r| r.window_edge)
                .map(|r| r.checked_at)
                .max();
            self.refresh_maintenance(first.checked_at.max(edge.unwrap_or(0)), edge)
                .await;
        }
        let mut batch = self.new_batch();
        for r in results {
            self.resume_if_needed(&r).await;
            self.apply(r, &mut batch);
        }
        self.write(&batch).await?;
        Ok(batch.changes)
    }

    async fn write(&mut self, batch: &Batch) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let stale = self.store.write_batch_checked(batch).await?;
        self.resync.extend(stale);
        self.written_ok(batch, started.elapsed());
        Ok(())
    }

    /// A write failed, the `failures`-th in a row: counts it and holds the
    /// batch again, ahead of what came in meanwhile. A batch the database
    /// itself refuses ([`StoreError::is_permanent`]) is written again without
    /// its raw results, the state changes kept. Refused again with no
    /// results in it, it is split: each state change is written alone (in
    /// `isolated`, ahead of everything else), so one change the database
    /// can never take (its service deleted under beacon, say) costs only
    /// itself, never the others. Any other failure is retried after a
    /// backoff (`part`, one of those parts, keeps its place in
    /// `isolated`). Returns when to retry (`None`: at once).
    #[allow(clippy::too_many_arguments)] // the recorder loop's state, passed by reference
    fn write_failed(
        &self,
        e: StoreError,
        mut batch: Batch,
        part: bool,
        held: &mut Batch,
        held_since: &mut Option<Instant>,
        isolated: &mut std::collections::VecDeque<Batch>,
        failures: u32,
    ) -> Option<Instant> {
        self.stats.write_failures.fetch_add(1, Ordering::Relaxed);
        self.metrics.write_failures.inc();
        if part && !e.is_permanent() {
            // A part keeps its place, ahead of the other parts and of
            // `held`: state changes stay in order.
            let wait = backoff(failures);
            tracing::error!(error = %e, changes = batch.changes.len(), attempt = failures, retry_in_ms = wait.as_millis() as u64, "writing a state change on its own failed; retrying it");
            isolated.push_front(batch);
            return Some(Instant::now() + wait);
        }
        let retry_at = if e.is_permanent() {
            if batch.results.is_empty() {
                let parts = split(batch, &mut || self.new_batch());
                if parts.len() > 1 {
                    tracing::error!(error = %e, parts = parts.len(), "the store refuses these state changes; writing each alone");
                    // Ahead of any part split off before: they were older.
                    for part in parts.into_iter().rev() {
                        isolated.push_front(part);
                    }
                } else {
                    let changes: usize = parts.iter().map(|p| p.changes.len()).sum();
                    if changes > 0 {
                        tracing::error!(error = %e, changes, "the store refuses this state change on its own; giving it up");
                    } else {
                        tracing::error!(error = %e, "the store refuses these dependency and certificate updates on their own; giving them up (the next probe sends them again)");
                    }
                    self.stats
                        .changes_dropped
                        .fetch_add(changes as u64, Ordering::Relaxed);
                }
                return None;
            } else {
                self.stats
                    .results_dropped
                    .fetch_add(batch.results.len() as u64, Ordering::Relaxed);
                self.metrics
                    .results_dropped
                    .with_label_values(&["refused"])
                    .inc_by(batch.results.len() as u64);
                tracing::error!(error = %e, results = batch.results.len(), changes = batch.changes.len(), "the store refuses these results; writing the state changes without them");
                batch.results.clear();
                batch.location_results.clear();
            }
            None
        } else {
            let wait = backoff(failures);
            tracing::error!(error = %e, results = batch.results.len() + held.results.len(), changes = batch.changes.len() + held.changes.len(), attempt = failures, retry_in_ms = wait.as_millis() as u64, "writing results failed; holding them and retrying");
            Some(Instant::now() + wait)
        };
        if !batch.results.is_empty() {
            *held_since = Some(held_since.map_or(Instant::now(), |t| t.min(Instant::now())));
        }
        batch.absorb(std::mem::replace(held, self.new_batch()));
        *held = batch;
        retry_at
    }

    /// Counts a batch the store has taken, and tells the readers.
    fn written_ok(&self, batch: &Batch, took: Duration) {
        tracing::debug!(
            results = batch.results.len(),
            changes = batch.changes.len(),
            ms = took.as_millis() as u64,
            "batch written"
        );
        self.stats
            .results_written
            .fetch_add(batch.results.len() as u64, Ordering::Relaxed);
        self.stats.batches_written.fetch_add(1, Ordering::Relaxed);
        let metrics = &self.metrics;
        metrics.write_batch_size.observe(batch.results.len() as f64);
        metrics.write_duration.observe(took.as_secs_f64());
        // Counted once written, so the counters never run ahead of the store.
        metrics.probes.count(batch.results.iter().filter_map(|r| {
            let (slug, _) = self.trackers.get(&r.service_id)?;
            Some(crate::metrics::Probe {
                service: metrics.service_label(slug),
                outcome: r.outcome,
                latency_ms: r.latency_ms.map(|ms| ms.max(0).unsigned_abs()),
            })
        }));
        self.stats
            .last_write_ms
            .store(self.clock.now_ms(), Ordering::Relaxed);
        self.written.send_modify(|n| *n += 1);
    }

    /// Sheds the oldest raw results beyond `max`; state changes stay.
    fn shed(&self, held: &mut Batch, max: usize) {
        if held.results.len() <= max {
            return;
        }
        // Down to nine tenths at once: shedding one at a time would move
        // the whole buffer for every result that comes in.
        let excess = held.results.len() - max * 9 / 10;
        held.results.drain(..excess);
        let located = held.location_results.len();
        if located > max {
            held.location_results.drain(..located - max * 9 / 10);
        }
        self.stats
            .results_dropped
            .fetch_add(excess as u64, Ordering::Relaxed);
        self.metrics
            .results_dropped
            .with_label_values(&["shed"])
            .inc_by(excess as u64);
        tracing::warn!(
            shed = excess,
            held = max,
            "the store has been refusing writes for long: shedding the oldest raw results (state changes are kept)"
        );
    }

    /// Collects results and writes them in batches of about `batch_size`,
    /// or whatever came within `flush` of the first, one transaction each.
    ///
    /// The recorder never stops taking results, so probing and the state
    /// machine go on while the store is away: results wait in `held`,
    /// applied (so a service that goes down is known to be down), and are
    /// written with every state change in order once the store answers.
    /// A failed write is retried with backoff for as long as it takes,
    /// unless the database refuses the data itself
    /// ([`StoreError::is_permanent`]): then the raw results are given up
    /// (counted) and the rest, the state changes first of all, is written
    /// without them. Past `max_buffered` raw results the oldest are shed,
    /// never a state change. Once `stopping` is set and the probes in
    /// flight are in, writing gets [`STOP_WRITE_DEADLINE`] more.
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<ProbeResult>,
        batch_size: usize,
        flush: Duration,
        max_buffered: usize,
        mut stopping: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        type Write = std::pin::Pin<
            Box<
                dyn std::future::Future<Output = (Batch, Result<(Duration, Vec<i64>), StoreError>)>
                    + Send,
            >,
        >;
        let mut held = self.new_batch();
        // When the oldest result in `held` came in.
        let mut held_since: Option<Instant> = None;
        // When `held` first held a state change: it is written sooner.
        let mut changes_since: Option<Instant> = None;
        let change_flush = flush.min(CHANGE_FLUSH);
        // Parts of a refused batch, written one by one before `held`.
        let mut isolated = std::collections::VecDeque::new();
        // The batch being written is one of those parts.
        let mut writing_part = false;
        let mut writing: Option<Write> = None;
        let mut failures = 0u32;
        let mut retry_at: Option<Instant> = None;
        let mut open = true;
        let mut stop_deadline: Option<Instant> = None;
        let mut stop_seen = false;
        loop {
            // The deadline runs from when the last result is in (the
            // scheduler has stopped and its probes have finished), not from
            // the signal: probes in flight take up to PROBE_STOP_GRACE.
            if !open && stop_deadline.is_none() {
                stop_deadline = Some(Instant::now() + STOP_WRITE_DEADLINE);
            }
            let now = Instant::now();
            if held.changes.is_empty() {
                changes_since = None;
            } else if changes_since.is_none() {
                changes_since = Some(now);
            }
            if writing.is_none() && !(held.is_empty() && isolated.is_empty()) {
                let due = !open
                    || held.results.len() >= batch_size
                    || failures > 0
                    || !isolated.is_empty()
                    || held_since.is_some_and(|t| now >= t + flush)
                    || changes_since.is_some_and(|t| now >= t + change_flush);
                if due && retry_at.is_none_or(|t| now >= t) {
                    let batch = match isolated.pop_front() {
                        Some(part) => {
                            writing_part = true;
                            part
                        }
                        None => {
                            writing_part = false;
                            held_since = None;
                            changes_since = None;
                            std::mem::replace(&mut held, self.new_batch())
                        }
                    };
                    let limit = match stop_deadline {
                        Some(d) => d.saturating_duration_since(now).min(WRITE_DEADLINE),
                        None => WRITE_DEADLINE,
                    };
                    let write = write_within(self.store.clone(), batch, limit);
                    writing = Some(Box::pin(run_on(self.writes_on.clone(), write)));
                }
            }
            if !open && writing.is_none() && held.is_empty() && isolated.is_empty() {
                return Ok(());
            }
            if let Some(deadline) = stop_deadline {
                if !open && writing.is_none() && Instant::now() >= deadline {
                    anyhow::bail!(
                        "could not write {} results and {} state changes while shutting down: the store did not take them within {STOP_WRITE_DEADLINE:?}",
                        held.results.len(),
                        held.changes.len() + isolated.iter().map(|p| p.changes.len()).sum::<usize>()
                    );
                }
            }
            // When to look again without news: a retry, a flush, the stop.
            let wake = if writing.is_some() || (held.is_empty() && isolated.is_empty()) {
                None
            } else if failures > 0 {
                retry_at
            } else {
                let results = held_since.map(|t| t + flush);
                results
                    .into_iter()
                    .chain(changes_since.map(|t| t + change_flush))
                    .min()
            };
            let wake = match (wake, stop_deadline) {
                (Some(w), Some(d)) => Some(w.min(d)),
                (w, d) => w.or(d.filter(|_| !open)),
            };
            tokio::select! {
                received = rx.recv(), if open => match received {
                    Some(result) => {
                        if held.results.is_empty() {
                            held_since = Some(Instant::now());
                        }
                        // Read from the store at most every few seconds, and
                        // never for long (see `refresh_maintenance`).
                        let edge = result.window_edge.then_some(result.checked_at);
                        self.refresh_maintenance(self.clock.now_ms(), edge).await;
                        self.resume_if_needed(&result).await;
                        self.apply(result, &mut held);
                        self.shed(&mut held, max_buffered);
                    }
                    None => open = false,
                },
                (batch, outcome) = async {
                    match writing.as_mut() {
                        Some(write) => write.await,
                        None => std::future::pending().await,
                    }
                } => {
                    writing = None;
                    match outcome {
                        Ok((took, stale)) => {
                            self.resync.extend(stale);
                            if failures > 0 && !writing_part {
                                tracing::info!(attempts = failures + 1, results = batch.results.len(), changes = batch.changes.len(), "the store takes writes again; every held result written");
                            }
                            failures = 0;
                            retry_at = None;
                            self.written_ok(&batch, took);
                        }
                        Err(e) => {
                            failures += 1;
                            retry_at = self.write_failed(e, batch, writing_part, &mut held, &mut held_since, &mut isolated, failures);
                        }
                    }
                },
                _ = async {
                    match wake {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {}
                changed = stopping.changed(), if !stop_seen => {
                    // Stopping (or the monitor gone without a word): the
                    // channel closes once the probes in flight are in.
                    let _ = changed;
                    stop_seen = true;
                }
            }
        }
    }
}

/// How long to wait before writing again after `failures` failures in a
/// row: 200 ms doubling to 5 s.
fn backoff(failures: u32) -> Duration {
    Duration::from_millis(200 * 2u64.pow(failures.min(5))).min(Duration::from_secs(5))
}

/// A batch without raw results cut into parts the store can take or refuse
/// one by one: each state change alone, then what else it holds
/// (dependencies, certificates) together. One part when it cannot be cut.
fn split(batch: Batch, empty: &mut dyn FnMut() -> Batch) -> Vec<Batch> {
    let others = !(batch.dependencies.is_empty()
        && batch.certificates.is_empty()
        && batch.certificate_warnings.is_empty());
    if batch.changes.len() + usize::from(others) <= 1 {
        return vec![batch];
    }
    let Batch {
        changes,
        dependencies,
        certificates,
        certificate_warnings,
        ..
    } = batch;
    let mut parts: Vec<Batch> = changes
        .into_iter()
        .map(|change| {
            let mut part = empty();
            part.changes.push(change);
            part
        })
        .collect();
    if others {
        let mut part = empty();
        part.dependencies = dependencies;
        part.certificates = certificates;
        part.certificate_warnings = certificate_warnings;
        parts.push(part);
    }
    parts
}

/// Writes `batch` in one transaction within `limit`; hands the batch back
/// with how long the write took, or why it failed.
async fn write_within(
    store: Store,
    batch: Batch,
    limit: Duration,
) -> (Batch, Result<(Duration, Vec<i64>), StoreError>) {
    let started = std::time::Instant::now();
    let outcome = match tokio::time::timeout(limit, store.write_batch_checked(&batch)).await {
        Ok(Ok(stale)) => Ok((started.elapsed(), stale)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(StoreError::timed_out()),
    };
    (batch, outcome)
}

/// Runs `future` on `runtime` when given, else here. Dropping what this
/// returns drops `future` too, wherever it runs: a write given up rolls its
/// transaction back, as it would have here.
async fn run_on<F>(runtime: Option<tokio::runtime::Handle>, future: F) -> F::Output
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let Some(runtime) = runtime else {
        return future.await;
    };
    let mut task = AbortOnDrop(runtime.spawn(future));
    match (&mut task.0).await {
        Ok(output) => output,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Cancelled: the runtime it ran on shut down, so the process is
        // ending; so does the recorder.
        Err(e) => panic!("the runtime the recorder writes on stopped: {e}"),
    }
}

/// Aborts its task when dropped (the scheduler's helpers end with it).
struct AbortOnDrop<T = ()>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::{
        first_offsets, next_slot, on_tick, tick_for, MonitorStats, Owned, Watched, LONGEST_TICK,
        SCHEDULER_TICK,
    };
    use std::sync::atomic::Ordering;
    use tokio::time::Instant;

    #[test]
    fn lag_is_the_latest_probes_or_how_overdue_the_next_one_is() {
        let stats = MonitorStats::default();
        stats.last_lag_ms.store(40, Ordering::Relaxed);
        stats.next_due_ms.store(i64::MAX, Ordering::Relaxed);
        assert_eq!(stats.current_lag(10_000), Duration::from_millis(40));
        // The scheduler is stuck behind a probe due 7 s ago.
        stats.next_due_ms.store(3_000, Ordering::Relaxed);
        assert_eq!(stats.current_lag(10_000), Duration::from_secs(7));
        // Due in the future: not late.
        stats.next_due_ms.store(20_000, Ordering::Relaxed);
        assert_eq!(stats.current_lag(10_000), Duration::from_millis(40));
    }
    use std::collections::HashSet;
    use std::time::Duration;

    // The recorder's writes run on the workers while it runs on the
    // monitor's thread; giving a write up (the recorder stopped) drops it
    // there too, so its transaction rolls back as it would have here.
    #[tokio::test]
    async fn a_write_runs_on_the_runtime_given_and_ends_when_dropped() {
        use std::sync::atomic::AtomicBool;
        use std::sync::Arc;

        let workers = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("beacon-test-writes")
            .enable_all()
            .build()
            .expect("runtime");
        let on = |runtime: Option<tokio::runtime::Handle>| {
            super::run_on(runtime, async {
                std::thread::current().name().map(str::to_string)
            })
        };
        let here = std::thread::current().name().map(str::to_string);
        assert_eq!(on(None).await, here);
        assert_eq!(
            on(Some(workers.handle().clone())).await.as_deref(),
            Some("beacon-test-writes")
        );

        struct Dropped(Arc<AtomicBool>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let dropped = Arc::new(AtomicBool::new(false));
        let (started_tx, started) = tokio::sync::oneshot::channel::<()>();
        let guard = Dropped(dropped.clone());
        let write = tokio::spawn(super::run_on(Some(workers.handle().clone()), async move {
            let _guard = guard;
            let _ = started_tx.send(());
            std::future::pending::<()>().await
        }));
        started.await.expect("the write started");
        write.abort();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !dropped.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "the write went on once dropped");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        workers.shutdown_background();
    }

    #[test]
    fn first_checks_of_a_thousand_services_never_share_a_millisecond() {
        let offsets = first_offsets(&vec![Duration::from_secs(30); 1000]);
        let millis: HashSet<u128> = offsets.iter().map(|d| d.as_millis()).collect();
        assert_eq!(millis.len(), 1000);
        assert_eq!(
            offsets[0],
            Duration::ZERO,
            "the first service is probed at once"
        );
        assert!(offsets.iter().all(|d| *d < Duration::from_secs(30)));
        assert_eq!(offsets[500], Duration::from_secs(15));
    }

    #[test]
    fn a_refused_batch_splits_into_one_part_per_state_change() {
        use crate::domain::State;
        use crate::store::{Batch, StatusChange};
        let change = |service_id| StatusChange {
            service_id,
            changed_at: 1,
            from: State::Up,
            to: State::Down,
            reason: None,
        };
        let empty = &mut || Batch::default();
        let batch = Batch {
            changes: vec![change(1), change(2)],
            certificates: vec![(3, 99)],
            ..Batch::default()
        };
        let parts = super::split(batch, empty);
        let shapes: Vec<(Vec<i64>, usize)> = parts
            .iter()
            .map(|p| {
                (
                    p.changes.iter().map(|c| c.service_id).collect(),
                    p.certificates.len(),
                )
            })
            .collect();
        assert_eq!(shapes, [(vec![1], 0), (vec![2], 0), (vec![], 1)]);
        // One change alone cannot be cut: refused again, it is given up.
        let single = Batch {
            changes: vec![change(1)],
            ..Batch::default()
        };
        assert_eq!(super::split(single, empty).len(), 1);
    }

    #[test]
    fn offsets_follow_each_services_own_interval() {
        let offsets = first_offsets(&[Duration::from_secs(10), Duration::from_secs(60)]);
        assert_eq!(offsets, [Duration::ZERO, Duration::from_secs(30)]);
    }

    // A service handed back to this member is probed at its next slot on
    // its own cadence: never in the past, never more than an interval away.
    #[test]
    fn a_parked_service_resumes_at_its_next_slot() {
        // Instants after the test's start only: a monotonic clock may have
        // started a moment ago.
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let ten = Duration::from_secs(10);
        // Not yet due: its slot as it was.
        assert_eq!(next_slot(at(101), ten, at(100)), at(101));
        assert_eq!(next_slot(at(100), ten, at(100)), at(100));
        // Passed: whole intervals on, to the first slot from now.
        assert_eq!(next_slot(at(99), ten, at(100)), at(109));
        assert_eq!(next_slot(at(90), ten, at(100)), at(100));
        // Away for days: still within an interval of now.
        let now = at(86_400 * 3 + 7);
        assert_eq!(next_slot(start, ten, now), at(86_400 * 3 + 10));
    }

    // Probes due within one tick wake the scheduler once, at its end;
    // none is woken before it is due, nor more than a tick after.
    #[test]
    fn wake_ups_fall_on_the_tick_after_what_is_due() {
        let start = Instant::now();
        let ms = |n: u64| start + Duration::from_millis(n);
        for tick in [SCHEDULER_TICK, Duration::from_millis(30), LONGEST_TICK] {
            let on = |due| on_tick(start, tick, due);
            let t = tick.as_millis() as u64;
            assert_eq!(on(start), start);
            assert_eq!(on(ms(1)), ms(t));
            assert_eq!(on(ms(t - 1)), ms(t));
            assert_eq!(on(ms(t)), ms(t));
            assert_eq!(on(ms(t + 1)), ms(2 * t));
            for due in (0..10_000).step_by(7).map(ms) {
                let wake = on(due);
                assert!(wake >= due && wake - due < tick, "{due:?}");
            }
        }
    }

    // A tick starts about ten probes of the services it is given, however
    // many there are, within its bounds: a replica with a third of the
    // fleet waits three times as long between wake-ups, not three times
    // as often for a third of the probes.
    #[test]
    fn the_tick_follows_the_probes_due_per_second() {
        let every = |n: usize, secs: u64| std::iter::repeat_n(Duration::from_secs(secs), n);
        // 1,000 probes a second: ten in 10 ms.
        let full = tick_for(every(30_000, 30));
        assert!(
            full >= SCHEDULER_TICK && full < SCHEDULER_TICK + Duration::from_micros(1),
            "{full:?}"
        );
        assert_eq!(tick_for(every(100_000, 30)), SCHEDULER_TICK);
        // A third of them: ten in 30 ms.
        let third = tick_for(every(10_000, 30));
        assert!(
            third > Duration::from_millis(29) && third < Duration::from_millis(31),
            "{third:?}"
        );
        // Mixed intervals count by their rates: 500 + 250 a second.
        let mixed = tick_for(every(500, 1).chain(every(2_500, 10)));
        assert!(
            mixed > Duration::from_micros(13_300) && mixed < Duration::from_micros(13_400),
            "{mixed:?}"
        );
        // A few services, or none: the longest tick, never longer.
        assert_eq!(tick_for(every(10, 30)), LONGEST_TICK);
        assert_eq!(tick_for(std::iter::empty()), LONGEST_TICK);
        assert_eq!(tick_for(every(3, 0)), LONGEST_TICK);
        assert_eq!(tick_for(every(1, u64::MAX)), LONGEST_TICK);
    }

    // The tick is that of the services this member probes itself: not
    // those another member has, nor those only agents check.
    #[test]
    fn the_tick_counts_only_the_services_this_member_probes() {
        use crate::config::{Locations, ServiceConfig};
        use crate::store::StoredService;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
        let services: Vec<Watched> = (0..3_000)
            .map(|i| {
                let mut config = ServiceConfig::watching_self(addr);
                config.slug = format!("s{i}");
                config.interval = Duration::from_secs(30);
                // One in three only agents check.
                if i % 3 == 2 {
                    config.locations = Some(Locations {
                        names: vec!["eu".into(), "us".into()],
                        quorum: 2,
                        local: None,
                    });
                }
                Watched {
                    id: i,
                    stored: StoredService {
                        id: i,
                        slug: config.slug.clone(),
                        state: crate::domain::State::Unknown,
                        state_since: None,
                    },
                    config,
                }
            })
            .collect();
        let mut owned = Owned::all(services.len(), false);
        // 2,000 probed here every 30 s: 66.7 a second, so 150 ms, the
        // longest tick.
        assert_eq!(owned.tick(&services), LONGEST_TICK);
        // A member probing none of them: nothing due, the longest tick.
        owned.mine.fill(false);
        assert_eq!(owned.tick(&services), LONGEST_TICK);
        // At 1 s, every other service probed here ours.
        let mut fast = services.clone();
        for w in &mut fast {
            w.config.interval = Duration::from_secs(1);
        }
        for (i, mine) in owned.mine.iter_mut().enumerate() {
            *mine = i % 3 != 2 && i % 2 == 0;
        }
        // 1,000 services of the 3,000 are ours and probed here: 1,000 a
        // second, ten in 10 ms.
        let ours = tick_for(std::iter::repeat_n(Duration::from_secs(1), 1_000));
        assert_eq!(owned.tick(&fast), ours);
        assert_eq!(ours, SCHEDULER_TICK);
        // Only agents' services ours: nothing probed here.
        for (i, mine) in owned.mine.iter_mut().enumerate() {
            *mine = i % 3 == 2;
        }
        assert_eq!(owned.tick(&fast), LONGEST_TICK);
    }
}
