//! Building and running the whole app: store, monitor, snapshot refresher
//! and web server in one process.
//!
//! [`Application::build`] binds the listener itself, so tests can ask for
//! port 0 and read [`Application::port`]. Shutdown is a future handed to
//! [`Application::run_until_stopped`]: SIGTERM in production, a oneshot in
//! tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

use crate::backup::Backups;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ServiceConfig};
use crate::metrics::{join_failure, Metrics};
use crate::monitor::Monitor;
use crate::snapshot::{Inputs, Refresher, Snapshot};
use crate::store::Store;
use crate::web::{self, AppState};

/// The snapshot is rebuilt after writes, and at least this often.
pub const SNAPSHOT_MAX_AGE: Duration = Duration::from_secs(30);

pub struct Application {
    listener: TcpListener,
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
    limits: web::server::Limits,
    shutdown_timeout: Duration,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(
        mut config: Config,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Application> {
        // Before anything opens a file: visitors, probes and the store share
        // the descriptor limit, so take all the kernel allows.
        let fd_limit = web::server::raise_fd_limit();
        let limits = web::server::Limits {
            max_connections: config.server.limits.max_connections.unwrap_or_else(|| {
                web::server::default_max_connections(fd_limit, config.monitor.max_concurrency)
            }),
            header_read_timeout: config.server.limits.header_read_timeout,
        };
        tracing::debug!(
            fd_limit,
            max_connections = limits.max_connections,
            "connection cap"
        );
        let shutdown_timeout = config.server.limits.shutdown_timeout;
        let store = Store::connect(&config.storage.url).await?;
        // Held until this process ends: `beacon restore` refuses to swap the
        // database under us, and we refuse to start during a restore.
        let in_use = crate::backup::lock::InUse::hold(&store, &config.storage.url).await?;
        store
            .migrate()
            .await
            .with_context(|| format!("migrating the store at {}", config.storage.url))?;

        let listener = TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.server.listen))?;
        let addr = listener.local_addr()?;
        if config.server.watch_self {
            config.services.push(ServiceConfig::watching_self(addr));
        }

        let monitor = Monitor::for_services(
            &config.services,
            store.clone(),
            clock.clone(),
            config.monitor.clone(),
            Arc::new(Metrics::new()),
        )
        .await
        .context("syncing configured services into the store")?;

        let now = clock.now();
        let inputs = Inputs::read(&store, now.timestamp_millis(), None)
            .await
            .context("building the first status snapshot")?;
        // The refresher starts from this read of the history, rather than
        // reading it all again at once.
        let history = Some((now.timestamp_millis(), inputs.history.clone()));
        let initial = Snapshot::from_inputs(inputs, &config.server.title, &config.groups, now);
        let (publish, snapshot) = watch::channel(Arc::new(initial));
        let changed = Arc::new(tokio::sync::Notify::new());
        let refresher = Refresher {
            store: store.clone(),
            clock: clock.clone(),
            title: config.server.title.clone(),
            groups: config.groups.clone(),
            publish,
            changed: changed.clone(),
            history: std::sync::Mutex::new(history),
        };
        let backups = match &config.backup {
            Some(b) => match &b.schedule {
                Some(schedule) => Some((
                    Arc::new(
                        Backups::open(b, store.clone(), config.storage.url.clone(), clock.clone())
                            .await
                            .context("opening the backup target")?,
                    ),
                    schedule.clone(),
                )),
                None => None,
            },
            None => None,
        };
        let backup_watch = backups.as_ref().and_then(|(_, schedule)| {
            crate::backup::schedule_period(schedule).map(|period| web::BackupWatch {
                max_age: period * 2,
                since: clock.now(),
            })
        });
        let notifier_parts = NotifierParts {
            store: store.clone(),
            channels: Arc::new(config.notify.clone()),
            site: crate::notify::Site::of(&config.server, &format!("http://{addr}")),
            clock: clock.clone(),
            metrics: monitor.metrics(),
        };
        let notifier = notifier_parts.make()?;
        // The snapshot follows the writes, and is rebuilt at least every
        // SNAPSHOT_MAX_AGE besides: it is late past the write's limit plus
        // that, or two rebuilds missed when nothing is written.
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
        let state = AppState {
            snapshot,
            store: store.clone(),
            stats: monitor.stats(),
            metrics: monitor.metrics(),
            clock: clock.clone(),
            admin_tokens: Arc::new(config.admin.tokens.clone()),
            changed,
            render_cache: Default::default(),
            site: Arc::new(web::Site {
                logo_url: config.server.logo_url.as_ref().map(|u| u.to_string()),
                home_url: config.server.home_url.as_ref().map(|u| u.to_string()),
                support_url: config.server.support_url.as_ref().map(|u| u.to_string()),
                announcement: config.server.announcement.clone(),
                time_zone: config.server.time_zone,
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
        };
        Ok(Application {
            listener,
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
            limits,
            shutdown_timeout,
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
        let Application {
            listener,
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
            limits,
            shutdown_timeout,
        } = self;
        let metrics = state.metrics.clone();
        for task in [
            "monitor",
            "recorder",
            "refresher",
            "notifier",
            "retention",
            "backup",
        ] {
            // Every series from the start, at 0, so rate() works before a death.
            metrics.task_failures.with_label_values(&[task]);
        }
        for reason in ["refused", "shed"] {
            metrics.results_dropped.with_label_values(&[reason]);
        }

        let (stop_monitor, monitor_stopped) = oneshot::channel::<()>();
        let (stop_server, server_stopped) = oneshot::channel::<()>();
        let (stop_refresher, refresher_stopped) = watch::channel(false);

        let writes = monitor.subscribe_writes();
        let mut monitor_task = tokio::spawn(monitor.run(async move {
            let _ = monitor_stopped.await;
        }));
        // The first refresher starts from the history `build` read; one made
        // after a death reads it again.
        let refresher_parts = RefresherParts::of(&refresher);
        let mut first_refresher = Some(refresher);
        let refresher_task = tokio::spawn(supervise(
            "refresher",
            metrics.clone(),
            clock.clone(),
            refresher_stopped,
            move |stop| {
                let refresher = first_refresher
                    .take()
                    .unwrap_or_else(|| refresher_parts.make());
                Ok(refresher.run(
                    writes.clone(),
                    // Rebuilding reads the store; once a second is fresh
                    // enough for people and bounded for the store.
                    Duration::from_secs(1),
                    SNAPSHOT_MAX_AGE,
                    stop,
                ))
            },
        ));
        let (stop_retention, retention_stopped) = watch::channel(false);
        let retention_task = {
            let (store, clock) = (store.clone(), clock.clone());
            tokio::spawn(supervise(
                "retention",
                metrics.clone(),
                clock.clone(),
                retention_stopped,
                move |stop| {
                    Ok(retention_job(
                        store.clone(),
                        clock.clone(),
                        raw_retention,
                        stop,
                    ))
                },
            ))
        };
        // Alerts go out from their own task: probing never waits on a channel.
        let (stop_notifier, notifier_stopped) = watch::channel(false);
        let mut first_notifier = Some(notifier);
        let notifier_task = tokio::spawn(supervise(
            "notifier",
            metrics.clone(),
            clock.clone(),
            notifier_stopped,
            move |stop| {
                let notifier = match first_notifier.take() {
                    Some(n) => n,
                    None => notifier_parts.make()?,
                };
                Ok(notifier.run(stop))
            },
        ));
        let mut scheduler = match backups {
            Some((backups, schedule)) => Some(
                start_backup_schedule(backups, &schedule, metrics.clone(), clock.clone())
                    .await
                    .context("starting the backup schedule")?,
            ),
            None => None,
        };
        let server_stats = state.server_stats.clone();
        let app = web::router(state);
        // Requests in flight at shutdown get a few seconds; the rest of the
        // deadline is for the recorder's last writes and the store.
        let grace = (shutdown_timeout / 4).min(Duration::from_secs(5));
        let mut server_task = tokio::spawn(web::server::serve(
            listener,
            app,
            limits,
            server_stats,
            async move {
                let _ = server_stopped.await;
            },
            grace,
        ));
        let (stop_watchdog, watchdog_stopped) = oneshot::channel::<()>();
        let watchdog_task = tokio::spawn(crate::watchdog::run(async move {
            let _ = watchdog_stopped.await;
        }));
        tracing::info!(%addr, store = store.kind(), "beacon is serving");
        crate::watchdog::ready();

        let mut outcome = Ok(());
        tokio::select! {
            _ = shutdown => tracing::info!(deadline_s = shutdown_timeout.as_secs(), "shutdown requested"),
            ended = &mut monitor_task => {
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
                outcome = Err(anyhow::anyhow!("the monitor stopped unexpectedly: {why}"));
            }
            ended = &mut server_task => {
                outcome = Err(anyhow::anyhow!("the web server stopped unexpectedly: {}", describe(ended.map(|r| r.map_err(anyhow::Error::from)))));
            }
        }
        crate::watchdog::stopping();
        let _ = stop_watchdog.send(());
        let _ = watchdog_task.await;
        let deadline = tokio::time::Instant::now() + shutdown_timeout;

        // Everything below runs within `server.shutdown_timeout`, so
        // Kubernetes (30 s of grace by default) never has to SIGKILL.
        let aborts = [monitor_task.abort_handle(), server_task.abort_handle()];
        let stopping = async move {
            let _ = stop_monitor.send(());
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
            let _ = stop_refresher.send(true);
            let _ = refresher_task.await;
            let _ = stop_retention.send(true);
            let _ = retention_task.await;
            // After the monitor: the alerts of its last writes are routed and,
            // if the channel answers in time, sent; the rest wait in the store.
            let _ = stop_notifier.send(true);
            let _ = notifier_task.await;
            if let Some(scheduler) = scheduler.as_mut() {
                // A backup in flight is cut off; its manifest is never written,
                // so it is never listed as restorable.
                let _ = scheduler.shutdown().await;
                metrics.tasks.stopped("backup");
            }
            outcome
        };
        let outcome = match tokio::time::timeout_at(deadline, stopping).await {
            Ok(outcome) => outcome,
            Err(_) => {
                aborts.iter().for_each(tokio::task::AbortHandle::abort);
                Err(anyhow::anyhow!(
                    "stopping took longer than server.shutdown_timeout ({}); exiting anyway",
                    humantime::format_duration(shutdown_timeout)
                ))
            }
        };
        // Closing the pools waits for connections in use; not past the deadline.
        let _ = tokio::time::timeout(Duration::from_secs(2), store.close()).await;
        drop(in_use);
        outcome
    }
}

/// Runs backup → verify → prune on the cron schedule. A failed step is
/// logged and recorded; the next tick runs regardless. Overlap is refused
/// by the backup lock (shared with `beacon backup run` from cron).
async fn start_backup_schedule(
    backups: Arc<Backups>,
    schedule: &str,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<tokio_cron_scheduler::JobScheduler> {
    use tokio_cron_scheduler::{Job, JobScheduler};
    let scheduler = JobScheduler::new().await?;
    metrics.tasks.running("backup");
    let job = Job::new_async(schedule, move |_, _| {
        let backups = backups.clone();
        let metrics = metrics.clone();
        let clock = clock.clone();
        Box::pin(async move {
            // A task of its own, so a panic is seen here (and counted) rather
            // than lost inside the scheduler; the next tick runs again.
            metrics.tasks.running("backup");
            let run = match tokio::spawn(async move { backups.run().await }).await {
                Ok(run) => run,
                Err(e) => {
                    let why = join_failure(e);
                    metrics.task_died("backup", clock.now_ms(), &why);
                    metrics.backup_failures.with_label_values(&["panic"]).inc();
                    return;
                }
            };
            match run {
                Ok(report) => tracing::info!(
                    backup = %report.manifest.id,
                    bytes = report.manifest.size,
                    deleted = report.pruned.iter().filter(|d| !d.keep).count(),
                    "scheduled backup taken, verified and rotated"
                ),
                Err(e) => {
                    let step = e
                        .downcast_ref::<crate::backup::StepError>()
                        .map_or("lock", |s| s.step);
                    metrics.backup_failures.with_label_values(&[step]).inc();
                    tracing::error!(error = %format!("{e:#}"), step, "scheduled backup failed")
                }
            }
        })
    })?;
    scheduler.add(job).await?;
    scheduler.start().await?;
    tracing::info!(schedule, "backups scheduled");
    Ok(scheduler)
}

/// Prunes raw results past `raw_retention` (rollups stay) soon after start
/// and then hourly, until `stop` resolves.
async fn retention_job(
    store: Store,
    clock: Arc<dyn Clock>,
    raw_retention: Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut wait = Duration::from_secs(60);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.as_mut() => return,
        }
        wait = Duration::from_secs(3600);
        let started = std::time::Instant::now();
        match store
            .prune(clock.now_ms(), raw_retention.as_millis() as i64)
            .await
        {
            Ok(p) => tracing::info!(
                results = p.results,
                hourly_rollups = p.rollups,
                ms = started.elapsed().as_millis() as u64,
                "pruned history past its retention"
            ),
            // Next hour will try again; nothing is lost by waiting.
            Err(e) => tracing::error!(error = %e, "pruning history failed"),
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
    channels: Arc<Vec<crate::config::NotifyChannel>>,
    site: crate::notify::Site,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
}

impl NotifierParts {
    fn make(&self) -> anyhow::Result<crate::notify::Notifier> {
        crate::notify::Notifier::new(
            self.store.clone(),
            self.channels.clone(),
            self.site.clone(),
            self.clock.clone(),
            self.metrics.clone(),
        )
    }
}

/// What a refresher is made of, to make another (which reads the history
/// afresh).
struct RefresherParts {
    store: Store,
    clock: Arc<dyn Clock>,
    title: String,
    groups: Vec<crate::config::GroupConfig>,
    publish: watch::Sender<Arc<Snapshot>>,
    changed: Arc<tokio::sync::Notify>,
}

impl RefresherParts {
    fn of(r: &Refresher) -> RefresherParts {
        RefresherParts {
            store: r.store.clone(),
            clock: r.clock.clone(),
            title: r.title.clone(),
            groups: r.groups.clone(),
            publish: r.publish.clone(),
            changed: r.changed.clone(),
        }
    }

    fn make(&self) -> Refresher {
        Refresher {
            store: self.store.clone(),
            clock: self.clock.clone(),
            title: self.title.clone(),
            groups: self.groups.clone(),
            publish: self.publish.clone(),
            changed: self.changed.clone(),
            history: std::sync::Mutex::new(None),
        }
    }
}

/// True once `stop` turned true or its sender is gone.
fn is_stopping(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stop_signal(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// A task that ran this long before dying starts its backoff over.
const RESTART_RESET: Duration = Duration::from_secs(300);

/// How long to wait before the `n`-th restart in a row (n ≥ 1): 1 s,
/// doubling, at most 60 s.
fn restart_backoff(n: u32) -> Duration {
    Duration::from_secs(1u64 << n.saturating_sub(1).min(6)).min(Duration::from_secs(60))
}

/// Runs the task `make` gives until `stop` turns true; one that dies
/// (panics, returns before the stop, or cannot be made) is recorded as a
/// death (log, counter, `/health`) and made again after a backoff.
async fn supervise<M, F>(
    task: &'static str,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
    mut make: M,
) where
    M: FnMut(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>) -> anyhow::Result<F>,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let mut in_a_row = 0u32;
    loop {
        if is_stopping(&stop) {
            metrics.tasks.stopped(task);
            return;
        }
        let started = tokio::time::Instant::now();
        let ended = match make(Box::pin(stop_signal(stop.clone()))) {
            Ok(run) => {
                metrics.tasks.running(task);
                tokio::spawn(run).await.map_err(join_failure)
            }
            Err(e) => Err(format!("could not be started: {e:#}")),
        };
        let stopping = is_stopping(&stop);
        let why = match ended {
            Ok(()) if stopping => {
                metrics.tasks.stopped(task);
                return;
            }
            Ok(()) => "returned before the stop".to_string(),
            Err(why) => why,
        };
        metrics.task_died(task, clock.now_ms(), &why);
        if stopping {
            return;
        }
        if started.elapsed() >= RESTART_RESET {
            in_a_row = 0;
        }
        in_a_row += 1;
        let wait = restart_backoff(in_a_row);
        tracing::warn!(
            task,
            restart_in_ms = wait.as_millis() as u64,
            "restarting the task"
        );
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|stopping| *stopping) => {}
        }
    }
}

/// Resolves on SIGTERM (what Kubernetes and systemd send) or Ctrl-C.
///
/// The handlers are installed when this is *called*, not when the future is
/// first polled: call it before anything announces that beacon is up, or a
/// SIGTERM sent right after the announcement kills the process with the
/// default action instead of stopping it cleanly.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let listen = |kind: SignalKind, name: &'static str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for {name}");
                None
            }
        };
        let terminate = listen(SignalKind::terminate(), "SIGTERM");
        let interrupt = listen(SignalKind::interrupt(), "SIGINT");
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(terminate) => {}
                _ = wait(interrupt) => {}
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            if let Err(e) = tokio::signal::ctrl_c().await {
                tracing::error!(error = %e, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn restarts_back_off_from_one_second_to_a_minute() {
        let waits: Vec<u64> = (1..=9).map(|n| restart_backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    // A restartable task that panics is logged, counted, shown as dead, and
    // runs again after its backoff; the stop then ends it as usual.
    #[tokio::test]
    async fn a_task_that_panics_is_counted_and_started_again() {
        let metrics = Arc::new(Metrics::new());
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let (stop, stopping) = watch::channel(false);
        let made = Arc::new(AtomicU32::new(0));
        let supervisor = tokio::spawn(supervise("refresher", metrics.clone(), clock, stopping, {
            let made = made.clone();
            move |stop| {
                let n = made.fetch_add(1, Ordering::SeqCst);
                Ok(async move {
                    if n == 0 {
                        panic!("refresher broke");
                    }
                    stop.await;
                })
            }
        }));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let status = loop {
            let tasks = metrics.tasks.all();
            let status = tasks
                .iter()
                .find(|(t, _)| *t == "refresher")
                .map(|(_, s)| s.clone());
            if let Some(s) = status.filter(|s| s.failures == 1 && s.running) {
                break s;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not restarted: {tasks:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(made.load(Ordering::SeqCst), 2);
        let (_, why) = status.last_failure.expect("the death is kept");
        assert_eq!(why, "panicked: refresher broke");
        assert_eq!(
            metrics
                .task_failures
                .with_label_values(&["refresher"])
                .get(),
            1
        );
        stop.send(true).expect("supervisor listens");
        tokio::time::timeout(Duration::from_secs(5), supervisor)
            .await
            .expect("stops at once")
            .expect("supervisor task");
        let tasks = metrics.tasks.all();
        assert_eq!(tasks.len(), 1);
        assert!(!tasks[0].1.running);
        assert_eq!(tasks[0].1.failures, 1, "a stop is no death");
    }
}
