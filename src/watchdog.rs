//! Proof that the process still turns, for those who restart it when it
//! does not.
//!
//! A process whose runtime is frozen (every worker blocked on a lock, say)
//! answers nothing, but its port stays open and nothing restarts it by
//! itself. Kubernetes finds out through `/livez`, which is served by that
//! same runtime and touches no lock and no store. Under systemd, this task
//! sends `WATCHDOG=1` at half the unit's `WatchdogSec`, and only after a
//! task spawned on the runtime has run: if the runtime stops turning, the
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
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stop.as_mut() => return,
        }
        // A task of its own must get a worker: a runtime whose workers are
        // all blocked runs neither it nor this one.
        let turned = tokio::time::timeout(period, tokio::spawn(async {})).await;
        match turned {
            Ok(Ok(())) => {
                if let Err(e) = sd_notify::notify(&[NotifyState::Watchdog]) {
                    tracing::warn!(error = %e, "cannot ping systemd's watchdog");
                }
            }
            _ => tracing::error!(
                "the runtime did not run a task within {period:?}; not pinging the watchdog"
            ),
        }
    }
}
