//! The monitor's own thread: a single-threaded runtime that runs the
//! scheduler, the probes and the recorder's thresholds; the recorder's
//! writes run on the process's workers ([`super::Monitor::writing_on`]).
//!
//! A probe is a few short steps between waits on the network (its timer,
//! the connect, the request, the answer, the close): hundreds or thousands
//! of wake-ups a second, each a few microseconds of work. On the process's
//! multi-threaded runtime each of those woke a second worker to look for
//! work to steal, which found none and went back to sleep: at 10,000
//! services every 30 s, the workers' parking and waking (futex and epoll
//! waits, the kernel's task switches) was about a sixth of beacon's CPU
//! (docs/performance.md, issue 18). The monitor never needs more than one
//! core (about a fifth of one at 5,000 probes a second), so it runs on a thread
//! of its own that sleeps in its own `epoll_wait`; the page, the APIs and
//! everything else keep the multi-threaded runtime. Neither can hold up
//! the other: a handler that blocked the web's workers no longer delays a
//! probe (only the writes of results, which wait for the workers), and the monitor's lag (`/health`) is this thread's alone. The
//! systemd watchdog pings only while both turn (`crate::watchdog`).
//!
//! What the monitor must not do here is wait on many round trips: a batch
//! write is a transaction of many statements, and each answer, woken on
//! this thread, waited its turn behind every probe ready to run. At
//! 100,000 services every 30 s, batches took up to 9 s instead of a few
//! tenths, and in some runs the probes ran late as well (lag p99 0.2–0.4
//! s, 2 ms before); so the recorder hands each batch to the workers
//! (docs/performance.md, issue 18).
//!
//! One runtime for the process, started on first use and never stopped.
//! The store's PostgreSQL connections opened from this thread are
//! registered with its runtime and go back to the shared pool: they stay
//! usable by the rest of the process for as long as it lives. Should the
//! thread not start, the monitor runs on the caller's runtime, as before.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

/// Runs `future` on the monitor's thread; its handle can be awaited from
/// any runtime.
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match handle() {
        Some(handle) => handle.spawn(future),
        None => tokio::spawn(future),
    }
}

fn handle() -> Option<&'static Handle> {
    static HANDLE: OnceLock<Option<Handle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the monitor's runtime; the monitor shares the main one");
                    return None;
                }
            };
            let handle = runtime.handle().clone();
            let started = std::thread::Builder::new()
                .name("beacon-monitor".into())
                .spawn(move || runtime.block_on(std::future::pending::<()>()));
            match started {
                Ok(_) => Some(handle),
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the monitor's thread; the monitor shares the main runtime");
                    None
                }
            }
        })
        .as_ref()
}

#[cfg(test)]
mod tests {
    use super::spawn;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_monitor_runs_on_one_thread_of_its_own() {
        let names = futures_util::future::join_all((0..8).map(|_| {
            spawn(async {
                tokio::task::yield_now().await;
                let inner =
                    tokio::spawn(async { std::thread::current().name().map(str::to_string) });
                (
                    std::thread::current().name().map(str::to_string),
                    inner.await,
                )
            })
        }))
        .await;
        for joined in names {
            let (outer, inner) = joined.expect("task ran");
            assert_eq!(outer.as_deref(), Some("beacon-monitor"));
            // What the monitor spawns (its probes, its recorder) stays there.
            assert_eq!(
                inner.expect("inner task ran").as_deref(),
                Some("beacon-monitor")
            );
        }
    }
}
