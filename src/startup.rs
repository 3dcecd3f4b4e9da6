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
use crate::monitor::Monitor;
use crate::snapshot::{Inputs, Refresher, Snapshot};
use crate::store::Store;
use crate::web::{self, AppState};

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
        let notifier = crate::notify::Notifier::new(
            store.clone(),
            Arc::new(config.notify.clone()),
            crate::notify::Site::of(&config.server, &format!("http://{addr}")),
            clock.clone(),
            monitor.stats(),
        )?;
        let state = AppState {
            snapshot,
            store: store.clone(),
            stats: monitor.stats(),
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
            in_use,
            limits,
            shutdown_timeout,
        } = self;

        let (stop_monitor, monitor_stopped) = oneshot::channel::<()>();
        let (stop_server, server_stopped) = oneshot::channel::<()>();
        let (stop_refresher, refresher_stopped) = oneshot::channel::<()>();

        let writes = monitor.subscribe_writes();
        let mut monitor_task = tokio::spawn(monitor.run(async move {
            let _ = monitor_stopped.await;
        }));
        let refresher_task = tokio::spawn(refresher.run(
            writes,
            // Rebuilding reads the store; once a second is fresh enough for
            // people and bounded for the store.
            Duration::from_secs(1),
            Duration::from_secs(30),
            async move {
                let _ = refresher_stopped.await;
            },
        ));
        let (stop_retention, retention_stopped) = oneshot::channel::<()>();
        let retention_task = tokio::spawn(retention_job(
            store.clone(),
            clock.clone(),
            raw_retention,
            async move {
                let _ = retention_stopped.await;
            },
        ));
        // Alerts go out from their own task: probing never waits on a channel.
        let (stop_notifier, notifier_stopped) = oneshot::channel::<()>();
        let notifier_task = tokio::spawn(notifier.run(async move {
            let _ = notifier_stopped.await;
        }));
        let mut scheduler = match backups {
            Some((backups, schedule)) => Some(
                start_backup_schedule(backups, &schedule, state.stats.clone())
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
                outcome = Err(anyhow::anyhow!("the monitor stopped unexpectedly: {}", describe(ended)));
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
            let _ = stop_refresher.send(());
            let _ = refresher_task.await;
            let _ = stop_retention.send(());
            let _ = retention_task.await;
            // After the monitor: the alerts of its last writes are routed and,
            // if the channel answers in time, sent; the rest wait in the store.
            let _ = stop_notifier.send(());
            let _ = notifier_task.await;
            if let Some(scheduler) = scheduler.as_mut() {
                // A backup in flight is cut off; its manifest is never written,
                // so it is never listed as restorable.
                let _ = scheduler.shutdown().await;
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
    stats: Arc<crate::monitor::MonitorStats>,
) -> anyhow::Result<tokio_cron_scheduler::JobScheduler> {
    use tokio_cron_scheduler::{Job, JobScheduler};
    let scheduler = JobScheduler::new().await?;
    let job = Job::new_async(schedule, move |_, _| {
        let backups = backups.clone();
        let stats = stats.clone();
        Box::pin(async move {
            match backups.run().await {
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
                    stats
                        .metrics
                        .backup_failures
                        .with_label_values(&[step])
                        .inc();
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
        Err(e) => e.to_string(),
    }
}

/// Resolves on SIGTERM (what Kubernetes and systemd send) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
