//! The HTTP server's accept loop: hyper under the axum router, with the
//! limits a public page needs and `axum::serve` does not have.
//!
//! - **A cap on open connections.** Past it, beacon stops accepting and new
//!   connections wait in the kernel's accept queue. The cap is kept well
//!   below the file-descriptor limit, so visitors (or 20,000 slow clients)
//!   can never take the descriptors that probes and the store need: a
//!   healthy service must never go down because the page is busy.
//! - **A header-read timeout** (hyper's): a client has that long to send a
//!   whole request header from when it connects, or from its previous
//!   response on a kept-alive connection, so a slowloris client (one byte
//!   every few seconds) and an idle keep-alive are both cut off. Once three
//!   quarters of the slots are taken, new connections get 2 s for it.
//! - **Shutdown with a deadline.** Accepting stops at once; requests in
//!   flight get `grace` to finish, then every connection is dropped.
//!
//! HTTP/1.1 only: the auto (HTTP/1 or HTTP/2) builder runs no timer while it
//! reads the first bytes to pick a protocol, so a client that connects and
//! sends nothing would be held open. HTTPS, and with it HTTP/2, is the job
//! of the proxy or ingress in front.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// Live figures of the server, for `/health` and `/metrics`.
#[derive(Debug, Default)]
pub struct ServerStats {
    pub open_connections: AtomicU64,
    pub max_connections: AtomicU64,
    /// `accept` failed, mostly for lack of file descriptors.
    pub accept_errors: AtomicU64,
}

/// Descriptors kept free for everything but visitors: the store's pools,
/// the database file and its journal, log files, the backup's files.
const RESERVED_FOR_BEACON: u64 = 256;
/// The header-read timeout of connections accepted while three quarters of
/// the slots are taken.
const UNDER_PRESSURE: Duration = Duration::from_secs(2);
/// The default cap never goes above this: beyond it a status page belongs
/// behind a CDN, and each open connection costs memory.
const DEFAULT_MAX_CONNECTIONS: u64 = 10_000;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the new
/// soft limit (`None` where there is no such limit to read).
pub fn raise_fd_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        match rlimit::increase_nofile_limit(u64::MAX) {
            Ok(limit) => Some(limit),
            Err(e) => {
                tracing::warn!(error = %e, "cannot raise the open-files limit");
                rlimit::getrlimit(rlimit::Resource::NOFILE)
                    .ok()
                    .map(|(soft, _)| soft)
            }
        }
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The connection cap when `server.max_connections` is not set: what the
/// descriptor limit leaves after probes in flight (each may hold a few:
/// the target, its dependencies, a DNS socket) and beacon's own files.
pub fn default_max_connections(fd_limit: Option<u64>, probes_in_flight: usize) -> usize {
    let Some(limit) = fd_limit else {
        return 1_024;
    };
    let reserved = probes_in_flight as u64 * 2 + RESERVED_FOR_BEACON;
    let left = limit.saturating_sub(reserved);
    if left < 64 {
        tracing::warn!(
            fd_limit = limit,
            reserved,
            "the open-files limit leaves little for visitors; raise it (LimitNOFILE= in the unit, ulimit -n) or lower monitor.max_concurrency"
        );
    }
    left.clamp(16, DEFAULT_MAX_CONNECTIONS) as usize
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
}

/// What answers on beacon's port while it starts (connecting to the store,
/// migrating, syncing the services: seconds at 10,000 services on
/// PostgreSQL): `/livez` 200, so a liveness probe never kills a start, and
/// everything else 503 with `Retry-After`. The real server takes the same
/// socket over once it is built; connections that arrive in between wait
/// in the kernel's accept queue.
pub struct Early {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Early {
    /// Serves on a clone of `listener` (so the caller keeps the socket).
    pub fn start(listener: &std::net::TcpListener, limits: Limits) -> std::io::Result<Early> {
        let clone = listener.try_clone()?;
        clone.set_nonblocking(true)?;
        let listener = TcpListener::from_std(clone)?;
        let router = Router::new()
            .route("/livez", axum::routing::get(super::own_health::livez))
            .fallback(starting);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(
            listener,
            router,
            limits,
            Arc::new(ServerStats::default()),
            async move {
                let _ = stopped.await;
            },
            Duration::from_secs(1),
        ));
        Ok(Early { stop, task })
    }

    /// Stops accepting and lets requests in flight finish (1 s at most).
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

async fn starting() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        [
            (axum::http::header::RETRY_AFTER, "5"),
            (axum::http::header::CACHE_CONTROL, "no-store"),
        ],
        "starting: try again in a few seconds\n",
    )
        .into_response()
}

/// Serves `app` on `listener` until `stop` resolves, then gives requests in
/// flight `grace` to finish and drops whatever is left.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    stats: Arc<ServerStats>,
    stop: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    tokio::pin!(stop);
    stats
        .max_connections
        .store(limits.max_connections as u64, Ordering::Relaxed);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // Connections watch this: true asks them to finish their request and
    // close; dropping the sender (after `grace`) is not needed, the tasks
    // are aborted.
    let (closing, closing_rx) = watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let builder = |header_read_timeout| {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .keep_alive(true);
        builder
    };
    let relaxed = builder(limits.header_read_timeout);
    // Under pressure (three quarters of the slots taken) a new connection
    // gets a short time to send its header: slow clients then hold a slot
    // for seconds, not for the whole timeout, and visitors get through.
    let pressed = builder(limits.header_read_timeout.min(UNDER_PRESSURE));
    let pressure_at = limits.max_connections * 3 / 4;
    let mut last_accept_error_log: Option<tokio::time::Instant> = None;
    loop {
        // A free slot first: at the cap, connections wait in the backlog.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            _ = &mut stop => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                    // EMFILE and friends: the connection stays queued; wait
                    // a little instead of spinning on the same error.
                    let now = tokio::time::Instant::now();
                    if last_accept_error_log.is_none_or(|t| now - t > Duration::from_secs(10)) {
                        last_accept_error_log = Some(now);
                        tracing::error!(error = %e, "accepting a connection failed");
                    }
                    drop(slot);
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                        _ = &mut stop => break,
                    }
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        // The peer, for the per-client limit (`web::clients`).
        let service = TowerToHyperService::new(tower::ServiceExt::map_request(
            app.clone(),
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                request
            },
        ));
        let open = limits.max_connections - slots.available_permits();
        let builder = if open >= pressure_at {
            &pressed
        } else {
            &relaxed
        };
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let mut closing = closing_rx.clone();
        let stats = stats.clone();
        stats.open_connections.fetch_add(1, Ordering::Relaxed);
        connections.spawn(async move {
            tokio::pin!(connection);
            let mut asked = false;
            loop {
                tokio::select! {
                    _ = connection.as_mut() => break,
                    changed = closing.changed(), if !asked => {
                        asked = true;
                        if changed.is_ok() {
                            // Finish the request in flight, then close.
                            connection.as_mut().graceful_shutdown();
                        }
                    }
                }
            }
            stats.open_connections.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
    // Stop accepting: the kernel refuses new connections from here on.
    drop(listener);
    let _ = closing.send(true);
    let open = connections.len();
    let finished = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        let left = connections.len();
        tracing::warn!(
            open,
            cut = left,
            grace_ms = grace.as_millis() as u64,
            "connections still open after the shutdown grace; closing them"
        );
        connections.shutdown().await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_leaves_descriptors_for_probes_and_the_store() {
        // 20,000 descriptors, 1,024 probes in flight.
        let cap = default_max_connections(Some(20_000), 1024);
        assert_eq!(cap, 10_000, "capped at the default");
        let cap = default_max_connections(Some(4_096), 1024);
        assert_eq!(cap, 4_096 - 2 * 1024 - 256);
        assert!(cap as u64 + 2 * 1024 + 256 <= 4_096);
        // Tiny limits still serve somebody.
        assert_eq!(default_max_connections(Some(1_024), 1024), 16);
        assert_eq!(default_max_connections(None, 1024), 1_024);
    }
}
