//! Proof that the process still turns, for those who restart it when it
//! does not.
//!
//! A process whose runtime is frozen (every worker blocked on a lock, say)
//! answers nothing, but its port stays open and nothing restarts it by
//! itself. Kubernetes finds out through `/livez`, which is served by that
//! same runtime and touches no lock and no store. Under systemd, this task
//! sends `WATCHDOG=1` at half the unit's `WatchdogSec`, and only after a
//! task spawned on the runtime, and one on the monitor's own thread
//! ([`crate::monitor::spawn`]), have run: if either stops turning, the
//! pings stop and systemd restarts beacon.

use std::time::Duration;

use sd_notify::NotifyState;

/// Tells systemd (when it started beacon with `Type=notify`) that beacon
/// serves. A no-op elsewhere.
pub fn ready() {
    if let Err(e) = sd_notify::notify(&[NotifyState::Ready]) {
        tracing::warn!(error = %e, "cannot tell systemd that beacon is ready");
    }
}

/// Tells systemd that beacon is stopping.
pub fn stopping() {
    let _ = sd_notify::notify(&[NotifyState::Stopping]);
}

/// Pings systemd's watchdog while the runtime turns, until `stop`. Returns
/// at once when no watchdog is set up.
pub async fn run(stop: impl std::future::Future<Output = ()>) {
    let Some(timeout) = sd_notify::watchdog_enabled() else {
        return stop.await;
    };
    let period = (timeout / 2).max(Duration::from_millis(100));
    tracing::info!(
        watchdog_ms = timeout.as_millis() as u64,
        "pinging systemd's watchdog"
    );
    ping_while_turning(
        period,
        || {
            if let Err(e) = sd_notify::notify(&[NotifyState::Watchdog]) {
                tracing::warn!(error = %e, "cannot ping systemd's watchdog");
            }
        },
        stop,
    )
    .await
}

/// Calls `ping` every `period` for as long as a newly spawned task gets a
/// worker within `period`, on the runtime and on the monitor's thread, until
/// `stop`.
async fn ping_while_turning(
    period: Duration,
    ping: impl Fn(),
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stop.as_mut() => return,
        }
        // A task of its own must get a worker: a runtime whose workers are
        // all blocked runs neither it nor this one. The same for the
        // monitor's thread, where a frozen runtime stops every probe.
        let turned = tokio::time::timeout(period, async {
            tokio::spawn(async {}).await.is_ok() && crate::monitor::spawn(async {}).await.is_ok()
        })
        .await;
        match turned {
            Ok(true) => ping(),
            _ => tracing::error!(
                "the runtime or the monitor's thread did not run a task within {period:?}; not pinging the watchdog"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::ping_while_turning;

    /// Waits (on this thread, not the runtime) until `check` holds.
    fn wait_until(what: &str, check: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting: {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A two-worker runtime running the pinger every 20 ms, and its count
    /// of pings.
    fn pinging_every_20ms() -> (tokio::runtime::Runtime, Arc<AtomicU64>) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let pings = Arc::new(AtomicU64::new(0));
        let counted = pings.clone();
        runtime.spawn(ping_while_turning(
            Duration::from_millis(20),
            move || {
                counted.fetch_add(1, Ordering::SeqCst);
            },
            std::future::pending(),
        ));
        (runtime, pings)
    }

    // Issue 21, defect 0: a runtime whose every worker is blocked must stop
    // the pings, so systemd restarts it; once it turns again, they resume.
    #[test]
    fn the_pings_stop_while_every_worker_is_blocked() {
        let (runtime, pings) = pinging_every_20ms();
        let now = || pings.load(Ordering::SeqCst);
        let start = now();
        wait_until("pings while the runtime turns", || now() >= start + 3);

        // Both workers held by a blocking wait, as by a lock never freed.
        let frozen = Arc::new(AtomicBool::new(true));
        let blocked = Arc::new(AtomicU64::new(0));
        for _ in 0..2 {
            let (frozen, blocked) = (frozen.clone(), blocked.clone());
            runtime.spawn(async move {
                blocked.fetch_add(1, Ordering::SeqCst);
                while frozen.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            });
        }
        wait_until("both workers blocked", || {
            blocked.load(Ordering::SeqCst) == 2
        });
        // With both workers held no task is polled, the pinger included:
        // fifteen periods pass without a ping.
        let frozen_at = now();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(now(), frozen_at, "pinged while no worker was free");

        frozen.store(false, Ordering::SeqCst);
        wait_until("pings again once the runtime turns", || {
            now() >= frozen_at + 3
        });
        runtime.shutdown_background();
    }

    // The monitor runs on a thread of its own: a frozen monitor stops the
    // pings too, though the main runtime turns.
    #[test]
    fn the_pings_stop_while_the_monitors_thread_is_blocked() {
        let (runtime, pings) = pinging_every_20ms();
        let now = || pings.load(Ordering::SeqCst);
        let start = now();
        wait_until("pings while both turn", || now() >= start + 3);

        let frozen = Arc::new(AtomicBool::new(true));
        let blocked = Arc::new(AtomicBool::new(false));
        let (held, on) = (frozen.clone(), blocked.clone());
        drop(crate::monitor::spawn(async move {
            on.store(true, Ordering::SeqCst);
            while held.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }));
        wait_until("the monitor's thread blocked", || {
            blocked.load(Ordering::SeqCst)
        });
        // A ping already past its check may land; none after it.
        std::thread::sleep(Duration::from_millis(60));
        let frozen_at = now();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            now(),
            frozen_at,
            "pinged while the monitor's thread was blocked"
        );

        frozen.store(false, Ordering::SeqCst);
        wait_until("pings again once the monitor's thread turns", || {
            now() >= frozen_at + 3
        });
        runtime.shutdown_background();
    }
}
