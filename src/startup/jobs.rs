//! The periodic jobs a running beacon owns: the backup schedule and
//! retention.

use std::sync::Arc;
use std::time::Duration;

use crate::backup::Backups;
use crate::clock::Clock;
use crate::metrics::{join_failure, Metrics};
use crate::store::Store;

/// Runs backup → verify → prune on the cron schedule. A failed step is
/// logged and recorded; the next tick runs regardless. Overlap is refused
/// by the backup lock (shared with `beacon backup run` from cron).
pub(super) async fn start_backup_schedule(
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
pub(super) async fn retention_job(
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
