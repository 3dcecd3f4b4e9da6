//! Building and running the whole app: store, monitor, snapshot refresher
//! and web server in one process.
//!
//! [`Application::build`] binds the listener itself, so tests can ask for
//! port 0 and read [`Application::port`]. Shutdown is a future handed to
//! [`Application::run_until_stopped`]: SIGTERM in production, a oneshot in
//! tests.
//!
//! Here: building ([`Application::build_with_clock`]), starting every task
//! ([`Running`]) and stopping them in order. The supervisor that restarts a
//! dead task is `supervise.rs`; the periodic jobs `jobs.rs`; the stop signal
//! `signal.rs`.

mod jobs;
mod reload;
mod signal;
mod supervise;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::backup::Backups;
use crate::clock::{Clock, SystemClock};
use crate::cluster::Cluster;
use crate::config::{Config, ServiceConfig};
use crate::metrics::{join_failure, Metrics};
use crate::monitor::Monitor;
use crate::snapshot::{Layout, Refresher, SharedLayout, Snapshot};
use crate::store::Store;
use crate::web::{self, AppState};

pub use signal::shutdown_signal;
use supervise::supervise;

/// The snapshot is rebuilt after writes, and at least this often.
pub const SNAPSHOT_MAX_AGE: Duration = Duration::from_secs(30);

/// How long start-up waits for the first snapshot before it announces the
/// page anyway (`/livez` and probing do not wait for it).
const FIRST_SNAPSHOT_WAIT: Duration = Duration::from_secs(2);

/// The tasks a running beacon supervises, for their series at 0 from the
/// start (so `rate()` works before a death).
const TASKS: [&str; 8] = [
    "cluster",
    "locations",
    "monitor",
    "recorder",
    "refresher",
    "notifier",
    "retention",
    "backup",
];

pub struct Application {
    listener: TcpListener,
    /// What answers `/livez` on the same socket until the real server runs.
    early: Option<web::server::Early>,
    addr: SocketAddr,
    store: Store,
    monitor: Monitor,
    refresher: Refresher,
    state: AppState,
    clock: Arc<dyn Clock>,
    raw_retention: Duration,
    /// Backups and their cron schedule, when `[backup] schedule` is set.
    backups: Option<(Arc<Backups>, String)>,
    notifier: crate::notify::Notifier,
    /// What a new notifier is made of, when the running one dies.
    notifier_parts: NotifierParts,
    in_use: crate::backup::lock::InUse,
    cluster: Arc<Cluster>,
    /// The config in force (services with beacon's own, when it watches
    /// itself), for reloads.
    config: Config,
    limits: web::server::Limits,
    shutdown_timeout: Duration,
}

/// A socket bound, and `/livez` answered on it, before the config was
/// parsed (see `config::listen_address`).
pub struct Listening {
    address: std::net::SocketAddr,
    socket: std::net::TcpListener,
    early: web::server::Early,
}

impl Listening {
    /// Binds `address` and answers `/livez` there (everything else 503),
    /// with the default connection limits until the config is read. `None`
    /// when it cannot bind: the full start then binds the config's address
    /// and says why it cannot.
    pub fn early(address: std::net::SocketAddr) -> Option<Listening> {
        let socket = std::net::TcpListener::bind(address).ok()?;
        let limits = connection_limits(
            &crate::config::ServerLimits::default(),
            crate::config::MonitorConfig::default().max_concurrency,
        );
        let early = web::server::Early::start(&socket, limits).ok()?;
        Some(Listening {
            address,
            socket,
            early,
        })
    }
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Application> {
        Self::build_inner(config, clock, None).await
    }

    /// As [`Application::build`], taking over the socket `beacon serve`
    /// bound before the config was parsed ([`Listening::early`]) when the
    /// config listens there.
    pub async fn build_listening(
        config: Config,
        listening: Option<Listening>,
    ) -> anyhow::Result<Application> {
        Self::build_inner(config, Arc::new(SystemClock), listening).await
    }

    async fn build_inner(
        mut config: Config,
        clock: Arc<dyn Clock>,
        listening: Option<Listening>,
    ) -> anyhow::Result<Application> {
        // Before anything opens a file: visitors, probes and the store share
        // the descriptor limit, so take all the kernel allows.
        let limits = connection_limits(&config.server.limits, config.monitor.max_concurrency);
        // Listening first: `/livez` answers while the store connects,
        // migrates and the services are synced (web::server::Early).
        let (socket, early) = match listening {
            Some(l) if l.address == config.server.listen => (l.socket, l.early),
            other => {
                if let Some(l) = other {
                    tracing::info!(
                        early = %l.address,
                        listen = %config.server.listen,
                        "the config listens elsewhere than it seemed before it was parsed; moving"
                    );
                    l.early.stop().await;
                }
                let socket = std::net::TcpListener::bind(config.server.listen)
                    .with_context(|| format!("cannot listen on {}", config.server.listen))?;
                let early = web::server::Early::start(&socket, limits)
                    .with_context(|| format!("cannot listen on {}", config.server.listen))?;
                (socket, early)
            }
        };
        let store = Store::open(&config.storage).await?;
        // Held until this process ends: `beacon restore` refuses to swap the
        // database under us, and we refuse to start during a restore.
        let in_use = crate::backup::lock::InUse::hold(&store, &config.storage.url).await?;
        store
            .migrate()
            .await
            .with_context(|| format!("migrating the store at {}", config.storage.url))?;

        socket.set_nonblocking(true)?;
        let listener = TcpListener::from_std(socket)?;
        let addr = listener.local_addr()?;
        if config.server.watch_self {
            config.services.push(ServiceConfig::watching_self(addr));
        }

        let metrics = Arc::new(Metrics::new());
        metrics.set_per_service(config.metrics.per_service);
        // Joined before the monitor starts, so the first division of the
        // services among replicas already counts the live ones.
        let cluster = Arc::new(Cluster::new(
            store.clone(),
            config.cluster.clone(),
            metrics.clone(),
        ));
        cluster.join().await;
        // Agents' results enter whichever monitor runs (a reload makes a
        // new one) through this slot.
        let inbox: crate::monitor::InboxSlot = Default::default();
        let monitor = Monitor::for_services(
            &config.services,
            store.clone(),
            clock.clone(),
            config.monitor.clone(),
            metrics,
        )
        .await
        .context("syncing configured services into the store")?
        .receiving(inbox.clone(), &config.server.location)?
        .shared_by(&cluster)?;

        let (refresher, snapshot) = first_snapshot(&config, &store, &clock);
        let backups = scheduled_backups(&config, &store, &clock).await?;
        let subscriptions: crate::notify::SharedSubscriptions = Arc::new(parking_lot::RwLock::new(
            config.subscriptions.clone().map(Arc::new),
        ));
        let notifier_parts = NotifierParts {
            store: store.clone(),
            channels: Arc::new(parking_lot::RwLock::new(Arc::new(config.notify.clone()))),
            site: crate::notify::Site::of(&config.server, &format!("http://{addr}")),
            clock: clock.clone(),
            metrics: monitor.metrics(),
            subscribers: crate::notify::Subscribers {
                body: web::webhook_bodies(
                    store.clone(),
                    snapshot.clone(),
                    crate::notify::Site::of(&config.server, &format!("http://{addr}")).public_url,
                ),
                config: subscriptions.clone(),
            },
        };
        let notifier = notifier_parts.make()?;
        let backup_watch = backups.as_ref().and_then(|(_, schedule)| {
            crate::backup::schedule_period(schedule).map(|period| web::BackupWatch {
                max_age: period * 2,
                since: clock.now(),
            })
        });
        let mut state = app_state(
            &config,
            &store,
            &monitor,
            &clock,
            &refresher,
            snapshot,
            backup_watch,
        );
        state.cluster = Some(cluster.subscribe());
        state.subscriptions = Arc::new(web::subscribe::Subscriptions::new(
            subscriptions.read().clone(),
            notifier_parts.channels.clone(),
            notifier_parts.site.clone(),
        ));
        state.agents = Arc::new(web::agent::Agents::new(
            web::agent::AgentsConfig::of(&config),
            inbox,
            clock.now_ms(),
        ));
        Ok(Application {
            listener,
            early: Some(early),
            addr,
            store,
            monitor,
            refresher,
            state,
            clock,
            raw_retention: config.storage.raw_retention,
            backups,
            notifier,
            notifier_parts,
            in_use,
            cluster,
            limits,
            shutdown_timeout: config.server.limits.shutdown_timeout,
            config,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The published snapshot: a loading one until the refresher has read
    /// the history (once [`Application::run_until_stopped`] runs).
    pub fn snapshot(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.state.snapshot.clone()
    }

    /// Serves and monitors until `shutdown` resolves, then stops in order:
    /// the monitor first (it may be probing this very server, and must write
    /// what it holds), then the web server (in-flight requests finish).
    ///
    /// Every long-lived task is supervised; one that dies (panics, or
    /// returns before the stop) is logged with its panic message, counted in
    /// `beacon_task_failures_total{task}` and shown as `fail` on `/health`.
    /// Then:
    /// - the **monitor** or its **recorder**: this returns an error, so the
    ///   process exits non-zero and its service manager (systemd
    ///   `Restart=always`, Kubernetes) starts it again. Restarting them in
    ///   place would not be clean: the recorder holds results not yet
    ///   written and every service's threshold state machine, the
    ///   scheduler the cadence and the probes in flight; a new process
    ///   starts over from the stored states, as after any restart, where a
    ///   half-restarted monitor would go on probing with its results
    ///   silently lost.
    /// - the **refresher**, **notifier** and **retention**: made anew and
    ///   restarted in place after a backoff (1 s doubling to 60 s). They
    ///   keep nothing that is not in the store (the refresher reads the
    ///   history again, the notifier's outbox and retention's work are in
    ///   the store), and the page, probes and writes go on meanwhile.
    /// - the **backup schedule**: each run is a task of its own; one that
    ///   panics is a death as above, and the next tick runs again.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let shutdown_timeout = self.shutdown_timeout;
        let (mut running, store, in_use) = self.start().await?;
        let outcome = running
            .until_stop_or_death(shutdown, shutdown_timeout)
            .await;
        let outcome = running.stop(outcome, shutdown_timeout).await;
        // Closing the pools waits for connections in use; not past the deadline.
        let _ = tokio::time::timeout(Duration::from_secs(2), store.close()).await;
        drop(in_use);
        outcome
    }

    /// Starts every task, then tells the world (and systemd) beacon is up.
    /// Returns them with the store and the in-use lock, both held until
    /// the last task stopped.
    async fn start(self) -> anyhow::Result<(Running, Store, crate::backup::lock::InUse)> {
        let Application {
            listener,
            early,
            addr,
            store,
            monitor,
            refresher,
            state,
            clock,
            raw_retention,
            backups,
            notifier,
            notifier_parts,
            in_use,
            cluster,
            config,
            limits,
            shutdown_timeout,
        } = self;
        let metrics = state.metrics.clone();
        for task in TASKS {
            metrics.task_failures.with_label_values(&[task]);
        }
        for reason in ["refused", "shed"] {
            metrics.results_dropped.with_label_values(&[reason]);
        }

        // Before the first probe: beacon's own (`watch_self`) must meet the
        // real `/readyz`, not the start-up stand-in's 503.
        if let Some(early) = early {
            early.stop().await;
        }
        let writes = monitor.subscribe_writes();
        let reloads = Reloads::start(
            config,
            reload::Live {
                addr,
                store: store.clone(),
                clock: clock.clone(),
                cluster: cluster.clone(),
                metrics: metrics.clone(),
                stats: monitor.stats(),
                written: monitor.writes(),
                layout: refresher.layout.clone(),
                changed: refresher.changed.clone(),
                channels: notifier_parts.channels.clone(),
                inbox: state.agents.inbox.clone(),
                agents: state.agents.clone(),
            },
        );
        let (stop_monitor, monitor_task) = start_monitor(monitor);
        let supervisor = Supervisor {
            metrics: metrics.clone(),
            clock: clock.clone(),
        };
        // The first refresher starts from the history `build` read; one made
        // after a death reads it again.
        let refresher_parts = RefresherParts::of(&refresher);
        let mut first_refresher = Some(refresher);
        let refresher = supervisor.spawn("refresher", move |stop| {
            let refresher = first_refresher
                .take()
                .unwrap_or_else(|| refresher_parts.make());
            // Rebuilding reads the store; once a second is fresh enough for
            // people and bounded for the store.
            Ok(refresher.run(
                writes.clone(),
                Duration::from_secs(1),
                SNAPSHOT_MAX_AGE,
                stop,
            ))
        });
        // Membership, the lease and the view: first to stop among the
        // restartable tasks, so a replica that stops hands its services
        // and the lease over at once.
        let membership = {
            let cluster = cluster.clone();
            supervisor.spawn("cluster", move |stop| Ok(cluster.clone().run(stop)))
        };
        // Whether each agent's location still reports.
        let locations = {
            let state = state.clone();
            supervisor.spawn("locations", move |stop| {
                Ok(web::agent::watch_silence(state.clone(), stop))
            })
        };
        let retention = {
            let (store, clock) = (store.clone(), clock.clone());
            let (cluster, metrics) = (cluster.clone(), metrics.clone());
            supervisor.spawn("retention", move |stop| {
                Ok(jobs::retention_job(
                    store.clone(),
                    clock.clone(),
                    raw_retention,
                    cluster.clone(),
                    metrics.clone(),
                    stop,
                ))
            })
        };
        // Alerts go out from their own task: probing never waits on a channel.
        let mut first_notifier = Some(notifier);
        let notifier = supervisor.spawn("notifier", move |stop| {
            let notifier = match first_notifier.take() {
                Some(n) => n,
                None => notifier_parts.make()?,
            };
            Ok(notifier.run(stop))
        });
        let scheduler = match backups {
            Some((backups, schedule)) => Some(
                jobs::start_backup_schedule(
                    backups,
                    &schedule,
                    metrics.clone(),
                    clock.clone(),
                    cluster.clone(),
                )
                .await
                .context("starting the backup schedule")?,
            ),
            None => None,
        };
        let (stop_server, server_stopped) = oneshot::channel::<()>();
        let server_stats = state.server_stats.clone();
        let mut first = state.snapshot.clone();
        // Requests in flight at shutdown get a few seconds; the rest of the
        // deadline is for the recorder's last writes and the store.
        let grace = (shutdown_timeout / 4).min(Duration::from_secs(5));
        let server_task = tokio::spawn(web::server::serve(
            listener,
            web::router(state),
            limits,
            server_stats,
            async move {
                let _ = server_stopped.await;
            },
            grace,
        ));
        let (stop_watchdog, watchdog_stopped) = oneshot::channel::<()>();
        let watchdog = tokio::spawn(crate::watchdog::run(async move {
            let _ = watchdog_stopped.await;
        }));
        // `/livez` answers and probing runs from here on. The page is
        // announced once it can be shown whole, or after FIRST_SNAPSHOT_WAIT
        // (a large history still being read: public routes answer 503
        // with Retry-After meanwhile, and `/readyz` 503).
        let whole = tokio::time::timeout(FIRST_SNAPSHOT_WAIT, async {
            first.wait_for(|s| !s.loading).await.is_ok()
        })
        .await
        .unwrap_or(false);
        if !whole {
            tracing::info!(
                "still reading the history: public routes answer 503 with Retry-After, and /readyz 503, until the first snapshot is built"
            );
        }
        tracing::info!("status page at http://{addr}");
        tracing::info!(%addr, store = store.kind(), "beacon is serving");
        crate::watchdog::ready();
        let running = Running {
            monitor: (stop_monitor, monitor_task),
            reloads,
            server: (stop_server, server_task),
            supervised: vec![membership, locations, refresher, retention, notifier],
            scheduler,
            watchdog: (stop_watchdog, watchdog),
            metrics,
            clock,
        };
        Ok((running, store, in_use))
    }
}

/// The connection cap (from `server.limits`, or from the descriptor limit,
/// raised here to all the kernel allows) and the header-read timeout.
fn connection_limits(
    server: &crate::config::ServerLimits,
    probes_in_flight: usize,
) -> web::server::Limits {
    let fd_limit = web::server::raise_fd_limit();
    let limits = web::server::Limits {
        max_connections: server
            .max_connections
            .unwrap_or_else(|| web::server::default_max_connections(fd_limit, probes_in_flight)),
        header_read_timeout: server.header_read_timeout,
    };
    tracing::debug!(
        fd_limit,
        max_connections = limits.max_connections,
        "connection cap"
    );
    limits
}

/// The first snapshot, read before the server answers, and the refresher
/// that keeps it current (starting from this read of the history rather than
/// reading it all again at once).
fn first_snapshot(
    config: &Config,
    store: &Store,
    clock: &Arc<dyn Clock>,
) -> (Refresher, watch::Receiver<Arc<Snapshot>>) {
    // Nothing is read here: at 100,000 services the history takes tens of
    // seconds, and `/livez` and probing must not wait for it. The refresher
    // builds the first real snapshot as soon as it starts; until then the
    // public routes answer 503 (see web/loading.rs).
    let initial = Snapshot::loading(&config.server.title, clock.now());
    let (publish, snapshot) = watch::channel(Arc::new(initial));
    let refresher = Refresher::new(
        store.clone(),
        clock.clone(),
        Arc::new(parking_lot::RwLock::new(Arc::new(Layout {
            title: config.server.title.clone(),
            groups: config.groups.clone(),
        }))),
        publish,
        Arc::new(tokio::sync::Notify::new()),
    );
    (refresher, snapshot)
}

/// The backups to take on `[backup] schedule`, with that schedule; none when
/// no schedule is set (cron may still run `beacon backup run`).
async fn scheduled_backups(
    config: &Config,
    store: &Store,
    clock: &Arc<dyn Clock>,
) -> anyhow::Result<Option<(Arc<Backups>, String)>> {
    let Some(backup) = &config.backup else {
        return Ok(None);
    };
    let Some(schedule) = &backup.schedule else {
        return Ok(None);
    };
    let backups = Backups::open(
        backup,
        store.clone(),
        config.storage.session_url().clone(),
        clock.clone(),
    )
    .await
    .context("opening the backup target")?;
    Ok(Some((Arc::new(backups), schedule.clone())))
}

/// What every handler may read.
fn app_state(
    config: &Config,
    store: &Store,
    monitor: &Monitor,
    clock: &Arc<dyn Clock>,
    refresher: &Refresher,
    snapshot: watch::Receiver<Arc<Snapshot>>,
    backup_watch: Option<web::BackupWatch>,
) -> AppState {
    // The snapshot follows the writes, and is rebuilt at least every
    // SNAPSHOT_MAX_AGE besides: it is late past the write's limit plus that,
    // or two rebuilds missed when nothing is written.
    let stats = monitor.stats();
    let write_warn = Duration::from_millis(
        stats
            .write_warn_after_ms
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    let snapshot_warn = (write_warn + SNAPSHOT_MAX_AGE).max(SNAPSHOT_MAX_AGE * 2);
    stats.snapshot_warn_after_ms.store(
        snapshot_warn.as_millis() as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    AppState {
        snapshot,
        store: store.clone(),
        stats,
        metrics: monitor.metrics(),
        clock: clock.clone(),
        admin_tokens: Arc::new(config.admin.tokens.clone()),
        changed: refresher.changed.clone(),
        render_cache: Default::default(),
        scrapes: Default::default(),
        first_incident: Default::default(),
        site: Arc::new(web::Site {
            logo_url: config.server.logo_url.as_ref().map(|u| u.to_string()),
            home_url: config.server.home_url.as_ref().map(|u| u.to_string()),
            support_url: config.server.support_url.as_ref().map(|u| u.to_string()),
            announcement: config.server.announcement.clone(),
            time_zone: config.server.time_zone,
            subscribe: config.subscriptions.is_some(),
        }),
        // As often as the page can change: the shortest probe interval,
        // within 5 s to 60 s.
        max_age_secs: config
            .services
            .iter()
            .map(|s| s.interval.as_secs())
            .min()
            .unwrap_or(30)
            .clamp(5, 60),
        public_url: config.server.public_base(),
        backup_watch,
        alert_channels: Arc::new(config.notify.iter().map(|c| c.name.clone()).collect()),
        metrics_enabled: config.metrics.enabled,
        metrics_token: config.metrics.token.clone().map(Arc::new),
        server_stats: Default::default(),
        store_reads: Arc::new(tokio::sync::Semaphore::new(web::STORE_READERS)),
        clients: Arc::new(web::clients::Clients::new(
            config.server.limits.clients.clone(),
        )),
        store_checks: Default::default(),
        cluster: None,
        // Set by `build_with_clock`, with the monitor's inbox.
        agents: Arc::new(web::agent::Agents::new(
            Default::default(),
            Default::default(),
            0,
        )),
        // Set by `build_with_clock`, with the notifier's channels.
        subscriptions: Default::default(),
        console: Default::default(),
    }
}

/// Starts restartable tasks under [`supervise`], each with its own stop.
struct Supervisor {
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
}

/// A supervised task and the sender that stops it.
type Supervised = (watch::Sender<bool>, JoinHandle<()>);

impl Supervisor {
    fn spawn<M, F>(&self, task: &'static str, make: M) -> Supervised
    where
        M: FnMut(
                std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
            ) -> anyhow::Result<F>
            + Send
            + 'static,
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = watch::channel(false);
        let handle = tokio::spawn(supervise(
            task,
            self.metrics.clone(),
            self.clock.clone(),
            stopped,
            make,
        ));
        (stop, handle)
    }
}

/// Every task of a running beacon, with what stops each.
struct Running {
    monitor: (oneshot::Sender<()>, JoinHandle<anyhow::Result<()>>),
    /// Config reloads: the file's watcher and what a new config changes.
    reloads: Option<Reloads>,
    server: (oneshot::Sender<()>, JoinHandle<std::io::Result<()>>),
    /// Restartable tasks, stopped in this order after the monitor and the
    /// server: cluster (leaves, handing its services and the lease over),
    /// refresher, retention, notifier (last, so the alerts of the monitor's
    /// last writes are routed).
    supervised: Vec<Supervised>,
    scheduler: Option<jobs::BackupSchedule>,
    watchdog: (oneshot::Sender<()>, JoinHandle<()>),
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
}

impl Running {
    /// Waits for `shutdown`, or for the monitor or the web server to die
    /// (an error: the process exits non-zero and is started again).
    async fn until_stop_or_death(
        &mut self,
        shutdown: impl std::future::Future<Output = ()>,
        shutdown_timeout: Duration,
    ) -> anyhow::Result<()> {
        let (metrics, clock) = (self.metrics.clone(), self.clock.clone());
        tokio::pin!(shutdown);
        loop {
            let update = async {
                match self.reloads.as_mut() {
                    Some(r) => r.updates.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut shutdown => {
                    tracing::info!(deadline_s = shutdown_timeout.as_secs(), "shutdown requested");
                    return Ok(());
                }
                Some((config, hash)) = update => {
                    self.reload(config, hash).await;
                }
                ended = &mut self.monitor.1 => {
                    let why = match ended {
                        // The recorder died: `Monitor::run` has logged and
                        // counted it.
                        Ok(Err(e)) => format!("{e:#}"),
                        Ok(Ok(())) => {
                            let why = "returned before the stop".to_string();
                            metrics.task_died("monitor", clock.now_ms(), &why);
                            why
                        }
                        Err(e) => {
                            let why = join_failure(e);
                            metrics.task_died("monitor", clock.now_ms(), &why);
                            why
                        }
                    };
                    tracing::error!(error = %why, "the monitor is gone: exiting non-zero so that the service manager starts beacon again from the stored states");
                    return Err(anyhow::anyhow!("the monitor stopped unexpectedly: {why}"));
                }
                ended = &mut self.server.1 => {
                    return Err(anyhow::anyhow!("the web server stopped unexpectedly: {}", describe(ended.map(|r| r.map_err(anyhow::Error::from)))));
                }
            }
        }
    }

    /// Applies a valid new config: the services (a new monitor, taking over
    /// from the running one once that has written what it holds), the
    /// page's title and groups, the alert channels. What needs a restart is
    /// named in the log and left as it runs.
    async fn reload(&mut self, new: Config, hash: String) {
        let Some(reloads) = self.reloads.as_mut() else {
            return;
        };
        let Some(monitor) = reloads.prepare(new).await else {
            return;
        };
        // The running monitor stops probing and writes what it holds; the
        // new one starts from the store.
        let (stop, task) = std::mem::replace(&mut self.monitor, start_monitor(monitor));
        let _ = stop.send(());
        match tokio::time::timeout(Duration::from_secs(15), task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => {
                tracing::error!(error = %format!("{e:#}"), "the monitor replaced by the reload ended with an error")
            }
            Ok(Err(e)) => {
                tracing::error!(error = %join_failure(e), "the monitor replaced by the reload failed")
            }
            Err(_) => tracing::error!(
                "the monitor replaced by the reload did not stop within 15 s; left behind"
            ),
        }
        reloads.applied(&hash);
    }

    /// Stops everything in order within `server.shutdown_timeout`, so
    /// Kubernetes (30 s of grace by default) never has to SIGKILL: the
    /// monitor first (it may be probing this very server, and must write
    /// what it holds), then the web server (in-flight requests finish),
    /// then the restartable tasks and the backup schedule.
    async fn stop(
        self,
        mut outcome: anyhow::Result<()>,
        shutdown_timeout: Duration,
    ) -> anyhow::Result<()> {
        let Running {
            monitor: (stop_monitor, mut monitor_task),
            reloads,
            server: (stop_server, mut server_task),
            supervised,
            scheduler,
            watchdog: (stop_watchdog, watchdog_task),
            metrics,
            clock: _,
        } = self;
        crate::watchdog::stopping();
        if let Some(reloads) = reloads {
            reloads.stop().await;
        }
        let _ = stop_watchdog.send(());
        let _ = watchdog_task.await;
        let deadline = tokio::time::Instant::now() + shutdown_timeout;
        let aborts = [monitor_task.abort_handle(), server_task.abort_handle()];
        let stopping = async move {
            let _ = stop_monitor.send(());
            // A task that already ended (the death that brought us here) is
            // not awaited again.
            if !monitor_task.is_finished() || outcome.is_ok() {
                match (&mut monitor_task).await {
                    Ok(Ok(())) => tracing::info!("monitor stopped; every result written"),
                    Ok(Err(e)) => outcome = outcome.and(Err(e.context("stopping the monitor"))),
                    Err(e) if e.is_cancelled() => {}
                    Err(e) => {
                        outcome = outcome.and(Err(anyhow::anyhow!("monitor task failed: {e}")))
                    }
                }
            }
            let _ = stop_server.send(());
            if !server_task.is_finished() || outcome.is_ok() {
                if let Ok(Err(e)) = (&mut server_task).await {
                    outcome = outcome.and(Err(anyhow::Error::from(e).context("web server")));
                }
            }
            for (stop, task) in supervised {
                let _ = stop.send(true);
                let _ = task.await;
            }
            if let Some(scheduler) = scheduler {
                // A backup in flight is cancelled and cleaned up: its
                // temporary files, its half-uploaded archive and its scratch
                // database go; nothing of it is listed.
                scheduler.stop().await;
                metrics.tasks.stopped("backup");
            }
            outcome
        };
        match tokio::time::timeout_at(deadline, stopping).await {
            Ok(outcome) => outcome,
            Err(_) => {
                aborts.iter().for_each(tokio::task::AbortHandle::abort);
                Err(anyhow::anyhow!(
                    "stopping took longer than server.shutdown_timeout ({}); exiting anyway",
                    humantime::format_duration(shutdown_timeout)
                ))
            }
        }
    }
}

fn describe(ended: Result<anyhow::Result<()>, tokio::task::JoinError>) -> String {
    match ended {
        Ok(Ok(())) => "it returned".to_string(),
        Ok(Err(e)) => format!("{e:#}"),
        Err(e) => join_failure(e),
    }
}

/// What a notifier is made of, to make another.
struct NotifierParts {
    store: Store,
    channels: crate::notify::SharedChannels,
    site: crate::notify::Site,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    subscribers: crate::notify::Subscribers,
}

impl NotifierParts {
    fn make(&self) -> anyhow::Result<crate::notify::Notifier> {
        Ok(crate::notify::Notifier::new(
            self.store.clone(),
            self.channels.read().clone(),
            self.site.clone(),
            self.clock.clone(),
            self.metrics.clone(),
        )?
        .following(self.channels.clone())
        .telling(self.subscribers.clone()))
    }
}

/// What a refresher is made of, to make another (which reads the history
/// afresh).
struct RefresherParts {
    store: Store,
    clock: Arc<dyn Clock>,
    layout: SharedLayout,
    publish: watch::Sender<Arc<Snapshot>>,
    changed: Arc<tokio::sync::Notify>,
}

impl RefresherParts {
    fn of(r: &Refresher) -> RefresherParts {
        RefresherParts {
            store: r.store.clone(),
            clock: r.clock.clone(),
            layout: r.layout.clone(),
            publish: r.publish.clone(),
            changed: r.changed.clone(),
        }
    }

    fn make(&self) -> Refresher {
        Refresher::new(
            self.store.clone(),
            self.clock.clone(),
            self.layout.clone(),
            self.publish.clone(),
            self.changed.clone(),
        )
    }
}

/// Starts `monitor` on its own thread (see [`crate::monitor::spawn`]),
/// with the sender that stops it.
fn start_monitor(monitor: Monitor) -> (oneshot::Sender<()>, JoinHandle<anyhow::Result<()>>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let monitor = monitor.writing_on(tokio::runtime::Handle::current());
    let task = crate::monitor::spawn(monitor.run(async move {
        let _ = stopped.await;
    }));
    (stop, task)
}

/// Config reloads of a running beacon: the file's watcher, the config in
/// force and what a new one changes.
struct Reloads {
    updates: tokio::sync::mpsc::Receiver<(Config, String)>,
    in_force: Config,
    live: reload::Live,
    stop: watch::Sender<bool>,
    watcher: JoinHandle<()>,
}

impl Reloads {
    /// Watches the config file `config` came from; `None` for the embedded
    /// default (nothing to reload).
    fn start(config: Config, live: reload::Live) -> Option<Reloads> {
        for result in ["applied", "invalid", "unchanged"] {
            live.metrics.config_reloads.with_label_values(&[result]);
        }
        let crate::config::ConfigSource::File(path) = &config.source else {
            return None;
        };
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let hash = reload::sha256(&text);
        live.metrics.config_in_force(&hash);
        let (tx, updates) = tokio::sync::mpsc::channel(1);
        let (stop, stopped) = watch::channel(false);
        let watcher = tokio::spawn(reload::watch_file(
            path.clone(),
            hash,
            live.metrics.clone(),
            tx,
            stopped,
        ));
        Some(Reloads {
            updates,
            in_force: config,
            live,
            stop,
            watcher,
        })
    }

    /// Validates what only the running app can (the services against the
    /// store) and makes the monitor of `new`; applies the page's layout and
    /// the channels. `None`: refused, the running config stays.
    async fn prepare(&mut self, mut new: Config) -> Option<Monitor> {
        let live = &self.live;
        if new.server.watch_self {
            new.services.push(ServiceConfig::watching_self(live.addr));
        }
        let restart = reload::needing_restart(&self.in_force, &new);
        if new.server.location != self.in_force.server.location {
            // The services were validated against the new name; run with
            // the old one, this server's own results would fit none.
            let why = format!(
                "server.location changed from \"{}\" to \"{}\", which applies only at a restart; the running config stays in force (restart beacon to apply the file)",
                self.in_force.server.location, new.server.location
            );
            live.refuse(&why);
            return None;
        }
        let monitor = Monitor::for_services(
            &new.services,
            live.store.clone(),
            live.clock.clone(),
            self.in_force.monitor.clone(),
            live.metrics.clone(),
        )
        .await
        .and_then(|m| m.receiving(live.inbox.clone(), &self.in_force.server.location))
        .and_then(|m| m.shared_by(&live.cluster));
        let monitor = match monitor {
            Ok(m) => m.continuing(live.stats.clone(), live.written.clone()),
            Err(e) => {
                live.refuse(&format!("the new config's services could not be applied ({e:#}); the running config stays in force"));
                return None;
            }
        };
        let before: std::collections::BTreeSet<&str> = self
            .in_force
            .services
            .iter()
            .map(|s| s.slug.as_str())
            .collect();
        let after: std::collections::BTreeSet<&str> =
            new.services.iter().map(|s| s.slug.as_str()).collect();
        tracing::info!(
            services = new.services.len(),
            added = %after.difference(&before).copied().collect::<Vec<_>>().join(","),
            removed = %before.difference(&after).copied().collect::<Vec<_>>().join(","),
            "config reloaded: services, the page's title and groups, and alert channels follow the file"
        );
        if !restart.is_empty() {
            tracing::warn!(
                settings = %restart.join(", "),
                "these settings changed in the file but apply only at a restart; the running values stay"
            );
        }
        *live.layout.write() = Arc::new(Layout {
            title: new.server.title.clone(),
            groups: new.groups.clone(),
        });
        *live.channels.write() = Arc::new(new.notify.clone());
        live.agents
            .reconfigure(crate::web::agent::AgentsConfig::of(&new));
        live.changed.notify_one();
        // What runs now: the new services, title, groups and channels; the
        // rest as it was.
        let mut in_force = self.in_force.clone();
        in_force.services = new.services;
        in_force.groups = new.groups;
        in_force.notify = new.notify;
        in_force.locations = new.locations;
        in_force.assignments = new.assignments;
        in_force.server.title = new.server.title;
        self.in_force = in_force;
        Some(monitor)
    }

    /// Called once the monitor the reload replaced has stopped (it counts
    /// no more probes of the services the new config removed).
    fn applied(&self, hash: &str) {
        let metrics = &self.live.metrics;
        let slugs: std::collections::HashSet<&str> = self
            .in_force
            .services
            .iter()
            .map(|s| s.slug.as_str())
            .collect();
        // `service=""`: every service summed, with `metrics.per_service` off.
        metrics
            .probes
            .retain(|slug| slug.is_empty() || slugs.contains(slug));
        metrics.config_reloads.with_label_values(&["applied"]).inc();
        metrics.config_in_force(hash);
        *metrics.config.refused.lock() = None;
        self.live.changed.notify_one();
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.watcher.await;
    }
}
