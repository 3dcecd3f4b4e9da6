//! One piece of work at a time, joined by every caller that arrives while
//! it runs: `/metrics` scrapes (one store read and one rendering for an HA
//! pair of Prometheus servers) and the store check `/readyz` and `/health`
//! share. The work runs in a task of its own, so a caller that goes away
//! leaves it to finish for the others, and no caller waits on a lock held
//! across it: the lock is held to look up or start the work only.

use std::future::Future;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

pub struct SingleFlight<T> {
    running: Mutex<Option<watch::Receiver<Option<Option<T>>>>>,
}

impl<T> Default for SingleFlight<T> {
    fn default() -> Self {
        SingleFlight {
            running: Mutex::new(None),
        }
    }
}

impl<T: Clone + Send + Sync + 'static> SingleFlight<T> {
    /// The outcome of the work under way, or of `work` started now.
    /// `None` when the work panicked (logged) or its task was lost (the
    /// runtime is stopping). The slot is free again before the outcome is
    /// published: a caller arriving after it starts fresh work.
    pub async fn join_or_run<F>(self: &Arc<Self>, what: &'static str, work: F) -> Option<T>
    where
        F: Future<Output = T> + Send + 'static,
    {
        let mut receiver = {
            let mut running = self.running.lock();
            match running.as_ref() {
                Some(under_way) => under_way.clone(),
                None => {
                    let (publish, receiver) = watch::channel(None);
                    *running = Some(receiver.clone());
                    let flight = self.clone();
                    tokio::spawn(async move {
                        // A panic fails this run only.
                        let outcome = tokio::spawn(work).await.map_err(|e| {
                            tracing::error!(error = %e, "{what} panicked");
                        });
                        *flight.running.lock() = None;
                        let _ = publish.send(Some(outcome.ok()));
                    });
                    receiver
                }
            }
        };
        let outcome = receiver
            .wait_for(Option::is_some)
            .await
            .map(|outcome| outcome.clone().flatten());
        match outcome {
            Ok(outcome) => outcome,
            // The task was lost: free the slot, or every later caller
            // would wait on it.
            Err(_) => {
                let mut running = self.running.lock();
                if running.as_ref().is_some_and(|r| r.same_channel(&receiver)) {
                    *running = None;
                }
                None
            }
        }
    }
}
