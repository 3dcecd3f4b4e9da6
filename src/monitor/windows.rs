//! Maintenance windows' edges: a service enters `under_maintenance` when
//! its window begins and leaves it when the window ends, not at its next
//! probe (a 60 s interval would leave it "operational" for up to a minute
//! into its window).
//!
//! The watcher keeps the windows not yet over, read from the store every
//! [`READ_EVERY`] (so windows made through the admin API, the CLI or
//! another replica all count), and wakes at each known window's start and
//! end. Whenever the set of services a window covers changes (a window
//! began or ended, or one was made, moved or cancelled over the present),
//! it asks the scheduler to probe those services out of turn. The probe's
//! result carries `window_edge`, so the recorder judges it against the
//! windows as they are now: the state change goes through the one path
//! every state change takes (thresholds, the outbox, automatic incidents).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::Watched;
use crate::clock::Clock;
use crate::store::{ServiceWindow, Store};

/// How often the windows are read again.
pub const READ_EVERY: Duration = Duration::from_secs(2);

/// Sends the index (into `services`) of each service whose coverage by a
/// maintenance window changed, until the receiver is gone.
pub async fn watch(
    store: Store,
    clock: Arc<dyn Clock>,
    services: Arc<Vec<Watched>>,
    edges: mpsc::Sender<usize>,
) {
    let index: HashMap<i64, usize> = services
        .iter()
        .enumerate()
        .map(|(i, w)| (w.id, i))
        .collect();
    let mut windows: Vec<ServiceWindow> = Vec::new();
    // Services in a window at the last look. Empty at first: a service in a
    // window when beacon starts is probed at once, whatever its stored state.
    let mut covered: HashSet<i64> = HashSet::new();
    let mut read_at: Option<Instant> = None;
    loop {
        if read_at.is_none_or(|t| t.elapsed() >= READ_EVERY) {
            read_at = Some(Instant::now());
            let read = tokio::time::timeout(
                Duration::from_secs(2),
                store.maintenance_windows(clock.now_ms()),
            )
            .await;
            // A failed read keeps the last known windows; the recorder
            // says so in the log when it fails too.
            if let Ok(Ok(read)) = read {
                windows = read
                    .into_iter()
                    .filter(|w| index.contains_key(&w.service_id))
                    .collect();
            }
        }
        let now = clock.now_ms();
        let now_covered = covered_at(&windows, now);
        for id in now_covered.symmetric_difference(&covered) {
            if let Some(&i) = index.get(id) {
                if edges.send(i).await.is_err() {
                    return;
                }
            }
        }
        covered = now_covered;
        let next_read = read_at.unwrap_or_else(Instant::now) + READ_EVERY;
        let wake = match next_edge(&windows, now) {
            Some(at) => next_read.min(Instant::now() + Duration::from_millis((at - now) as u64)),
            None => next_read,
        };
        tokio::time::sleep_until(wake).await;
    }
}

/// The services a window covers at `now`.
fn covered_at(windows: &[ServiceWindow], now: i64) -> HashSet<i64> {
    windows
        .iter()
        .filter(|w| w.covers(w.service_id, now))
        .map(|w| w.service_id)
        .collect()
}

/// The next start or end of a window after `now`.
fn next_edge(windows: &[ServiceWindow], now: i64) -> Option<i64> {
    windows
        .iter()
        .flat_map(|w| [w.starts_at, w.ends_at])
        .filter(|&t| t > now)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(service_id: i64, starts_at: i64, ends_at: i64) -> ServiceWindow {
        ServiceWindow {
            service_id,
            starts_at,
            ends_at,
        }
    }

    #[test]
    fn a_window_covers_from_its_start_until_its_end() {
        let windows = [window(1, 100, 200), window(2, 150, 300)];
        assert!(covered_at(&windows, 99).is_empty());
        assert_eq!(covered_at(&windows, 100), HashSet::from([1]));
        assert_eq!(covered_at(&windows, 199), HashSet::from([1, 2]));
        assert_eq!(covered_at(&windows, 200), HashSet::from([2]));
        assert!(covered_at(&windows, 300).is_empty());
    }

    #[test]
    fn the_watcher_wakes_at_the_next_start_or_end() {
        let windows = [window(1, 100, 200), window(2, 150, 300)];
        assert_eq!(next_edge(&windows, 0), Some(100));
        assert_eq!(next_edge(&windows, 100), Some(150));
        assert_eq!(next_edge(&windows, 160), Some(200));
        assert_eq!(next_edge(&windows, 250), Some(300));
        assert_eq!(next_edge(&windows, 300), None);
    }
}
