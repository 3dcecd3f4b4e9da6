//! Name lookups, bounded.
//!
//! beacon resolves with the system resolver (getaddrinfo), as the services
//! it watches do. getaddrinfo blocks a thread: tokio runs it on its blocking
//! pool (512 threads at most), which page rendering, `/metrics` and the
//! SQLite driver need too. When DNS itself fails, every lookup hangs until
//! the resolver's own timeout (5 s per attempt by default, often longer than
//! the probe's), and thousands of probes would hold every thread of that
//! pool for as long. So at most [`MAX_LOOKUPS`] run at once: a probe waits
//! its turn within its own timeout, and a turn is held until getaddrinfo
//! returns, even after the probe that asked has given up.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use tokio::sync::Semaphore;

/// Lookups running at once, at most. A lookup that answers in 50 ms lets
/// 64 turns serve 1,280 lookups a second, far above what 100,000 services
/// at 30 s ask with keep-alive.
pub const MAX_LOOKUPS: usize = 64;

#[derive(Clone, Debug)]
pub struct Resolver {
    turns: Arc<Semaphore>,
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver::new(MAX_LOOKUPS)
    }
}

impl Resolver {
    pub fn new(max_lookups: usize) -> Resolver {
        Resolver {
            turns: Arc::new(Semaphore::new(max_lookups.max(1))),
        }
    }

    /// The addresses of `host` (a name, or an IP address with or without
    /// brackets, which needs no lookup) at `port`.
    pub async fn lookup(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        let host = host.trim_matches(|c| c == '[' || c == ']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let turn = self
            .turns
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| io::Error::other("the resolver is closed"))?;
        let host = host.to_string();
        tokio::task::spawn_blocking(move || {
            // Held until getaddrinfo returns, whoever still waits for it.
            let _turn = turn;
            (host.as_str(), port)
                .to_socket_addrs()
                .map(Iterator::collect)
        })
        .await
        .map_err(io::Error::other)?
    }

    /// Connects to the first address of `host` that accepts, in the order
    /// the resolver gave them.
    pub async fn connect(&self, host: &str, port: u16) -> io::Result<tokio::net::TcpStream> {
        let addrs = self.lookup(host, port).await?;
        if addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{host} has no address"),
            ));
        }
        tokio::net::TcpStream::connect(&addrs[..]).await
    }
}

/// reqwest resolves through the same turns.
impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let this = self.clone();
        Box::pin(async move {
            let addrs = this.lookup(name.as_str(), 0).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn addresses_need_no_lookup_and_names_resolve() {
        let r = Resolver::new(1);
        let _all = r.turns.clone().acquire_many_owned(1).await.expect("turns");
        // Every turn taken: an address still answers at once.
        assert_eq!(
            r.lookup("[::1]", 80).await.expect("v6"),
            vec!["[::1]:80".parse().expect("addr")]
        );
        assert_eq!(
            r.lookup("127.0.0.1", 9).await.expect("v4"),
            vec!["127.0.0.1:9".parse().expect("addr")]
        );
        drop(_all);
        let found = r.lookup("localhost", 8080).await.expect("localhost");
        assert!(
            found
                .iter()
                .all(|a| a.port() == 8080 && a.ip().is_loopback()),
            "{found:?}"
        );
    }

    #[tokio::test]
    async fn a_lookup_waits_for_a_turn_and_gets_one_when_it_is_given_back() {
        let r = Resolver::new(2);
        let taken = r.turns.clone().acquire_many_owned(2).await.expect("turns");
        let waiting = tokio::spawn({
            let r = r.clone();
            async move { r.lookup("localhost", 1).await }
        });
        // No turn: it waits (it would have answered in microseconds).
        let waited = tokio::time::timeout(Duration::from_millis(200), async {
            while r.turns.available_permits() == 0 && !waiting.is_finished() {
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(
            waited.is_err() && !waiting.is_finished(),
            "looked up without a turn"
        );
        drop(taken);
        let found = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("answers once a turn is free")
            .expect("task")
            .expect("localhost");
        assert!(!found.is_empty());
        assert_eq!(r.turns.available_permits(), 2, "the turn is given back");
    }
}
