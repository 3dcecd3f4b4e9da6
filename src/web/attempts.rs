//! Attempts per client in a sliding window: sign-ups on `/subscribe` and
//! failed sign-ins to the console. Kept in memory (per replica): these are
//! abuse brakes, not accounting.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request};

use super::clients::Clients;

/// Clients remembered at most; past it the oldest windows are dropped.
const MAX_CLIENTS: usize = 100_000;

pub struct Attempts {
    limit: usize,
    window: Duration,
    seen: parking_lot::Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl Attempts {
    pub fn new(limit: u32, window: Duration) -> Attempts {
        Attempts {
            limit: limit as usize,
            window,
            seen: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    /// Checks and counts at once, under one lock: requests sent together
    /// cannot all pass before any is counted.
    pub fn take(&self, client: IpAddr, now: Instant) -> Result<(), u64> {
        let mut seen = self.seen.lock();
        if seen.len() >= MAX_CLIENTS && !seen.contains_key(&client) {
            let window = self.window;
            seen.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < window)
            });
            if seen.len() >= MAX_CLIENTS {
                seen.clear();
            }
        }
        let times = seen.entry(client).or_default();
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            times.pop_front();
        }
        if times.len() >= self.limit {
            let oldest = times.front().copied().unwrap_or(now);
            let wait = self.window.saturating_sub(now.duration_since(oldest));
            return Err(wait.as_secs().max(1));
        }
        times.push_back(now);
        Ok(())
    }

    /// Gives back the attempt `take` counted at `at` (a sign-in that
    /// succeeded is not a failure).
    pub fn refund(&self, client: IpAddr, at: Instant) {
        let mut seen = self.seen.lock();
        if let Some(times) = seen.get_mut(&client) {
            if let Some(n) = times.iter().rposition(|t| *t == at) {
                times.remove(n);
            }
        }
    }
}

/// The client a request comes from, for these limits: as the public
/// routes' limiter sees it (`X-Forwarded-For` believed only from
/// `server.trusted_proxies`), or else the peer itself. Unlike the page's
/// rate limit every client counts here, local ones included: behind a proxy
/// nobody listed, all visitors share one window.
pub fn client_of<B>(clients: &Clients, request: &Request<B>) -> IpAddr {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    client_from(clients, peer, request.headers())
}

pub fn client_from(clients: &Clients, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    clients.client(peer, headers).unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_holds_the_limit_and_frees_as_it_slides() {
        let a = Attempts::new(2, Duration::from_secs(60));
        let ip: IpAddr = "203.0.113.7".parse().expect("ip");
        let t0 = Instant::now();
        assert!(a.take(ip, t0).is_ok());
        assert!(a.take(ip, t0 + Duration::from_secs(10)).is_ok());
        assert_eq!(a.take(ip, t0 + Duration::from_secs(20)), Err(40));
        let other: IpAddr = "203.0.113.8".parse().expect("ip");
        assert!(a.take(other, t0).is_ok(), "each client its own window");
        assert!(a.take(ip, t0 + Duration::from_secs(61)).is_ok());
    }
}
