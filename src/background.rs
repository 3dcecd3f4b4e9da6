//! Threads for the CPU-heavy work that can wait a little: rendering pages
//! and documents (with their hashes and compressed copies), rendering
//! `/metrics`, building snapshots.
//!
//! On a 2-core machine during a mass outage this work can take both cores
//! for seconds (every document changes every second). Run on tokio's
//! blocking pool it competed as an equal with the runtime's workers, so
//! `/livez`, probes and writes waited for a time slice behind it. Here it
//! runs on threads of its own at a lower scheduling priority (nice +10 on
//! Linux, where the nice value is per thread): the workers, which only ever
//! do short steps, win the core whenever they have something to do, and
//! the renders get everything else. Nothing changes while the machine is
//! idle; a lower priority never starves work here, it only orders it.
//!
//! Jobs run in the order they come, on `2 × cores + 2` threads (at least
//! 8): how many run at once is bounded where they start (one rendering per
//! core, one `/metrics` scrape, one snapshot build), not here, so a
//! snapshot build never queues behind renders. A job that panics fails its
//! caller only, with the panic's message; the thread goes on.

use std::sync::OnceLock;

/// How much lower than the runtime's workers these threads run. 10 gives
/// a thread about a tenth of the weight of a nice-0 one when both want the
/// core (the kernel's weights: 1024 at 0, 110 at +10).
const NICE: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

/// The job was lost: it panicked (with its message), or the threads are
/// gone.
#[derive(Debug)]
pub struct Lost(String);

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Lost {}

fn queue() -> &'static flume::Sender<Job> {
    static QUEUE: OnceLock<flume::Sender<Job>> = OnceLock::new();
    QUEUE.get_or_init(|| {
        let (send, receive) = flume::unbounded::<Job>();
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let threads = (2 * cores + 2).max(8);
        for n in 0..threads {
            let receive = receive.clone();
            let started = std::thread::Builder::new()
                .name(format!("beacon-render-{n}"))
                .spawn(move || {
                    lower_priority();
                    while let Ok(job) = receive.recv() {
                        // `run` catches the job's panic; this keeps the
                        // thread should anything else in it unwind.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                });
            if let Err(e) = started {
                tracing::error!(error = %e, "starting a render thread failed");
            }
        }
        send
    })
}

/// This thread only, on Linux; elsewhere the jobs run at normal priority.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getpriority_process, setpriority_process};
        let this = rustix::thread::gettid();
        // Relative to the process's own (a beacon started under `nice`
        // keeps its renders below its workers too); 19 is the lowest.
        let lowered = getpriority_process(Some(this))
            .and_then(|now| setpriority_process(Some(this), (now + NICE).min(19)));
        if let Err(e) = lowered {
            tracing::debug!(error = %e, "lowering a render thread's priority failed");
        }
    }
}

/// Runs `job` on a background thread and waits for it without blocking a
/// worker. `Err(Lost)` when it panicked (with the panic's message) or
/// could not be queued.
pub async fn run<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> Result<T, Lost> {
    let (answer, answered) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job))
            .map_err(|panic| Lost(format!("panicked: {}", message(panic.as_ref()))));
        let _ = answer.send(outcome);
    });
    queue()
        .send(job)
        .map_err(|_| Lost("the background threads are gone".into()))?;
    answered
        .await
        .map_err(|_| Lost("the background job was lost".into()))?
}

/// What `panic!` was given, when it was text.
fn message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_jobs_off_the_runtime_and_survives_a_panic() {
        let worker = std::thread::current().id();
        let (thread, name) = run(|| {
            let me = std::thread::current();
            (me.id(), me.name().map(str::to_owned))
        })
        .await
        .expect("ran");
        assert_ne!(thread, worker);
        assert!(name.is_some_and(|n| n.starts_with("beacon-render-")));
        let lost = run(|| -> u8 { panic!("a bug in one rendering") })
            .await
            .expect_err("the panic is the caller's error");
        assert_eq!(lost.to_string(), "panicked: a bug in one rendering");
        // Every thread is still there for the next jobs.
        let many: Vec<_> = (0..16).map(|n| run(move || n * 2)).collect();
        let mut sum = 0;
        for job in many {
            sum += job.await.expect("ran after the panic");
        }
        assert_eq!(sum, (0..16).map(|n| n * 2).sum::<i32>());
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_threads_run_below_the_workers() {
        let nice = run(|| rustix::process::getpriority_process(Some(rustix::thread::gettid())))
            .await
            .expect("ran")
            .expect("getpriority");
        let ours = rustix::process::getpriority_process(Some(rustix::thread::gettid()))
            .expect("getpriority");
        assert_eq!(nice, (ours + NICE).min(19));
    }
}
