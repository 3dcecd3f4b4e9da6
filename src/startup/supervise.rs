//! Keeping the restartable tasks alive: a task that dies is recorded (log,
//! counter, `/health`) and made again after a backoff, until the stop.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::clock::Clock;
use crate::metrics::{join_failure, Metrics};

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
pub(super) async fn supervise<M, F>(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
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
