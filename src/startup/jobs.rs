//! The periodic jobs a running beacon owns: the backup schedule and
//! retention.

use std::sync::Arc;
use std::time::Duration;

use crate::backup::Backups;
use crate::clock::Clock;
use crate::cluster::Cluster;
use crate::metrics::{join_failure, Metrics};
use crate::store::{Store, StoreError};

/// Whether this replica runs tick `tick` of singleton job `job`: only the
/// leader, and only once per tick across the fleet (the claim is written
/// under the lease's epoch and refused once the lease has moved on).
async fn claim(store: &Store, cluster: &Cluster, metrics: &Metrics, job: &str, tick: i64) -> bool {
    let Some(fence) = cluster.view().fence() else {
        tracing::debug!(job, "not the leader; the leader runs it");
        return false;
    };
    match store.claim_run(job, tick, &fence).await {
        Ok(true) => true,
        Ok(false) => {
            tracing::info!(job, tick, "this tick was run already");
            false
        }
        Err(StoreError::Fenced { epoch }) => {
            metrics.cluster_fenced.inc();
            tracing::warn!(
                job,
                epoch,
                "not run: this replica's leadership has moved on"
            );
            false
        }
        Err(e) => {
            tracing::error!(job, error = %e, "claiming the run failed; the next tick tries again");
            false
        }
    }
}

/// The tick of `schedule` a job that fires now belongs to: the first
/// occurrence after a moment ago (a replica's job fires a little after
/// its tick), so every replica names the same tick.
fn schedule_tick(schedule: &str, now: chrono::DateTime<chrono::Utc>) -> Option<i64> {
    let cron = crate::config::parse_schedule(schedule).ok()?;
    let period = crate::backup::schedule_period(schedule)?;
    let back = (period / 2).min(chrono::Duration::seconds(30));
    let tick = cron.find_next_occurrence(&(now - back), false).ok()?;
    Some(tick.timestamp_millis())
}

/// Runs backup → verify → prune on the cron schedule. A failed step is
/// logged and recorded; the next tick runs regardless. Overlap is refused
/// by the backup lock (shared with `beacon backup run` from cron).
///
/// Every replica keeps the schedule, but only the leader runs a tick, once:
/// see [`claim`].
pub(super) async fn start_backup_schedule(
    backups: Arc<Backups>,
    schedule: &str,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    cluster: Arc<Cluster>,
) -> anyhow::Result<BackupSchedule> {
    use tokio_cron_scheduler::{Job, JobScheduler};
    let scheduler = JobScheduler::new().await?;
    metrics.tasks.running("backup");
    let schedule_text = schedule.to_string();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = Arc::new(tokio::sync::RwLock::new(()));
    let in_flight = running.clone();
    let job = Job::new_async(schedule, move |_, _| {
        let backups = backups.clone();
        let metrics = metrics.clone();
        let clock = clock.clone();
        let cluster = cluster.clone();
        let schedule = schedule_text.clone();
        let stopped = stopped.clone();
        let in_flight = in_flight.clone();
        Box::pin(async move {
            // Held for the whole run: stopping waits for it (see
            // `BackupSchedule::stop`). None once stopping has begun.
            let Ok(_running) = in_flight.try_read_owned() else {
                return;
            };
            if *stopped.borrow() {
                return;
            }
            let Some(tick) = schedule_tick(&schedule, clock.now()) else {
                return;
            };
            if !claim(backups.store(), &cluster, &metrics, "backup", tick).await {
                return;
            }
            // A task of its own, so a panic is seen here (and counted) rather
            // than lost inside the scheduler; the next tick runs again.
            metrics.tasks.running("backup");
            let run = match tokio::spawn(async move { backups.run_or_cancel(stopped).await }).await
            {
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
    Ok(BackupSchedule {
        scheduler,
        stop,
        running,
    })
}

/// The backup schedule of a running beacon, and what stops it.
pub(super) struct BackupSchedule {
    scheduler: tokio_cron_scheduler::JobScheduler,
    stop: tokio::sync::watch::Sender<bool>,
    /// Read-held by each run; taking it for writing waits for them all.
    running: Arc<tokio::sync::RwLock<()>>,
}

impl BackupSchedule {
    /// Stops the schedule: a run in flight is cancelled cleanly (see
    /// `Backups::run_or_cancel`) and waited for, no new one starts.
    pub(super) async fn stop(mut self) {
        let _ = self.stop.send(true);
        let in_flight = self.running.try_write().is_err();
        if in_flight {
            tracing::info!("cancelling the backup in flight");
        }
        let _all_done = self.running.write().await;
        let _ = self.scheduler.shutdown().await;
    }
}

/// Prunes raw results past `raw_retention` (rollups stay) and packs the
/// rest of the closed hours once an hour across the fleet, the first a minute after start, until `stop`
/// resolves. Every replica looks every few minutes; the leader claims the
/// hour and prunes, so a new leader takes over within minutes.
pub(super) async fn retention_job(
    store: Store,
    clock: Arc<dyn Clock>,
    raw_retention: Duration,
    cluster: Arc<Cluster>,
    metrics: Arc<Metrics>,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut wait = Duration::from_secs(60);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.as_mut() => return,
        }
        wait = Duration::from_secs(300);
        let hour = clock.now_ms().div_euclid(3_600_000) * 3_600_000;
        if !claim(&store, &cluster, &metrics, "retention", hour).await {
            continue;
        }
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
        // Then what is left of the hours before the last one is packed
        // (store/packed.rs): raw results in about a tenth of the space.
        let started = std::time::Instant::now();
        match store.compact_results(clock.now_ms()).await {
            Ok(c) => tracing::info!(
                results = c.results,
                hours = c.hours,
                ms = started.elapsed().as_millis() as u64,
                "packed raw results by service and hour"
            ),
            Err(e) => tracing::error!(error = %e, "packing raw results failed"),
        }
    }
}
