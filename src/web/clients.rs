//! How fast one client may read the public routes: a token bucket per
//! client address (`[server] client_rate`, `client_burst`), past it 429
//! with `Retry-After`. Off unless `client_rate` is set: beacon cannot tell
//! a proxy on a public address (a CDN's edge, a cloud load balancer) from
//! a visitor, and everyone behind one taken for a visitor would share its
//! bucket. A status page is read hardest during an outage, by
//! people and by aggregators and crawlers polling in loops; one client must
//! not take the cores the probes, the writes and everyone else need.
//!
//! Who the client is: the connection's peer, or, when the peer is one of
//! `trusted_proxies`, the nearest address in `X-Forwarded-For` that is not.
//! A peer on a loopback or private address that is not listed is taken for
//! a proxy or a neighbour (an ingress, a sidecar, Prometheus) and is not
//! limited: otherwise, behind a proxy nobody configured, every visitor
//! would share one bucket and the page would answer 429 during an outage.
//! A v6 client is counted by its /64 (one host holds a whole /64).
//!
//! The buckets live in shards of a map, each lock held for one lookup;
//! a full bucket is the same as none, so idle ones are swept out, and past
//! [`MAX_CLIENTS`] a new client is let through rather than refused.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;

use super::AppState;
use crate::config::ClientLimits;

/// Clients tracked at once (about 40 bytes each).
pub const MAX_CLIENTS: usize = 100_000;
const SHARDS: usize = 16;

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct Clients {
    limits: ClientLimits,
    shards: Vec<Mutex<HashMap<IpAddr, Bucket>>>,
}

impl Clients {
    pub fn new(limits: ClientLimits) -> Clients {
        Clients {
            limits,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn enabled(&self) -> bool {
        self.limits.rate > 0.0
    }

    /// The client a request comes from, or `None` when it is not limited.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> Option<IpAddr> {
        let trusted = |ip: &IpAddr| self.limits.trusted_proxies.iter().any(|n| n.contains(ip));
        let peer = canonical(peer);
        if !trusted(&peer) {
            return (!is_local(&peer)).then(|| key(peer));
        }
        // Proxies append; read from the right, past every trusted hop. The
        // header is read as bytes, entry by entry: a client's garbage on
        // the left must not hide the entries a proxy appended. An entry
        // that is not an address where the client should be (garbage
        // sent to slip the limit) makes the client "unknown", one bucket
        // for all such requests.
        let entries = headers
            .get_all("x-forwarded-for")
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .collect::<Vec<_>>();
        for entry in entries.into_iter().rev() {
            if entry.trim_ascii().is_empty() {
                continue;
            }
            let Some(ip) = parse_forwarded(entry) else {
                return Some(UNKNOWN);
            };
            if !trusted(&ip) {
                return Some(key(ip));
            }
        }
        None
    }

    /// Takes a token for `client` at `now`: `Err(seconds)` to wait when
    /// there is none.
    pub fn take(&self, client: IpAddr, now: Instant) -> Result<(), u64> {
        let (rate, burst) = (self.limits.rate, f64::from(self.limits.burst));
        let shard = &self.shards[shard_of(&client)];
        let mut map = shard.lock();
        if map.len() >= MAX_CLIENTS / SHARDS && !map.contains_key(&client) {
            // Full buckets are the same as none.
            map.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
            if map.len() >= MAX_CLIENTS / SHARDS {
                return Ok(());
            }
        }
        let bucket = map.entry(client).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * rate;
        bucket.tokens = (bucket.tokens + refill).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / rate).ceil().max(1.0) as u64)
        }
    }
}

/// The bucket of requests whose forwarded client is not an address.
const UNKNOWN: IpAddr = IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);

/// One `X-Forwarded-For` entry: an address, maybe with a port
/// (`203.0.113.9:4711`, `[2001:db8::1]:4711`, as some load balancers write).
fn parse_forwarded(entry: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(entry).ok()?.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    text.parse::<SocketAddr>().ok().map(|s| canonical(s.ip()))
}

/// A v4 address written as v6 (`::ffff:a.b.c.d`) is the v4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Loopback, private (RFC 1918, unique local), link-local, unspecified.
fn is_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified()
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// A v6 client by its /64.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

fn shard_of(ip: &IpAddr) -> usize {
    let fold = |octets: &[u8]| {
        octets.iter().fold(0usize, |h, b| {
            h.wrapping_mul(31).wrapping_add(usize::from(*b))
        })
    };
    let hash = match ip {
        IpAddr::V4(v4) => fold(&v4.octets()),
        IpAddr::V6(v6) => fold(&v6.octets()),
    };
    hash % SHARDS
}

/// The middleware on the public routes.
pub async fn limit(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let clients = &app.clients;
    if clients.enabled() {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        if let Some(client) = peer.and_then(|p| clients.client(p, request.headers())) {
            if let Err(wait) = clients.take(client, Instant::now()) {
                app.metrics.http_rate_limited.inc();
                return too_many(wait);
            }
        }
    }
    next.run(request).await
}

fn too_many(wait: u64) -> Response {
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        "Too many requests from your address; try again shortly.\n",
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(wait));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn clients(rate: f64, burst: u32, proxies: &[&str]) -> Clients {
        Clients::new(ClientLimits {
            rate,
            burst,
            trusted_proxies: proxies.iter().map(|p| p.parse().expect("net")).collect(),
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn forwarded(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_str(value).expect("header"),
        );
        h
    }

    #[test]
    fn the_client_is_the_peer_or_the_nearest_untrusted_forwarded_address() {
        let c = clients(1.0, 1, &["10.0.0.0/8"]);
        let none = HeaderMap::new();
        // (case, peer, headers, client)
        let cases: [(&str, &str, HeaderMap, Option<&str>); 8] = [
            (
                "a public peer is the client",
                "203.0.113.9",
                none.clone(),
                Some("203.0.113.9"),
            ),
            (
                "its forwarded header is not believed",
                "203.0.113.9",
                forwarded("198.51.100.1"),
                Some("203.0.113.9"),
            ),
            (
                "an untrusted private peer is a neighbour: not limited",
                "192.168.1.5",
                none.clone(),
                None,
            ),
            (
                "loopback likewise",
                "127.0.0.1",
                forwarded("198.51.100.1"),
                None,
            ),
            (
                "a trusted proxy names the client",
                "10.1.2.3",
                forwarded("198.51.100.1"),
                Some("198.51.100.1"),
            ),
            (
                "read from the right, past trusted hops; a forged left part is ignored",
                "10.1.2.3",
                forwarded("1.2.3.4, 198.51.100.1, 10.9.9.9"),
                Some("198.51.100.1"),
            ),
            (
                "a trusted proxy that names nobody: not limited",
                "10.1.2.3",
                none.clone(),
                None,
            ),
            (
                "a v4 peer written as v6 is the v4 peer",
                "::ffff:203.0.113.9",
                none.clone(),
                Some("203.0.113.9"),
            ),
        ];
        for (case, peer, headers, client) in cases {
            assert_eq!(c.client(ip(peer), &headers), client.map(ip), "{case}");
        }
        // Garbage a client sends must not hide what the proxy appended; a
        // port some balancers add is read past; where the client should be,
        // garbage is the one "unknown" client.
        let raw = |bytes: &[u8]| {
            let mut h = HeaderMap::new();
            h.insert(
                "x-forwarded-for",
                HeaderValue::from_bytes(bytes).expect("header"),
            );
            h
        };
        let cases: [(&str, HeaderMap, Option<IpAddr>); 5] = [
            (
                "a non-ASCII byte on the left",
                raw(b"\xff, 198.51.100.1"),
                Some(ip("198.51.100.1")),
            ),
            (
                "a port",
                forwarded("198.51.100.1:4711"),
                Some(ip("198.51.100.1")),
            ),
            (
                "a v6 address with a port",
                forwarded("[2001:db8::1]:4711"),
                Some(ip("2001:db8::")),
            ),
            (
                "garbage where the client is",
                forwarded("1.2.3.4, nonsense"),
                Some(UNKNOWN),
            ),
            (
                "an empty entry is skipped",
                forwarded("198.51.100.1, "),
                Some(ip("198.51.100.1")),
            ),
        ];
        for (case, headers, client) in cases {
            assert_eq!(c.client(ip("10.1.2.3"), &headers), client, "{case}");
        }
        // One v6 host holds a /64: its addresses share a bucket.
        assert_eq!(
            c.client(ip("2001:db8:1:2:aaaa::1"), &none),
            c.client(ip("2001:db8:1:2:bbbb::2"), &none)
        );
        assert_ne!(
            c.client(ip("2001:db8:1:2::1"), &none),
            c.client(ip("2001:db8:1:3::1"), &none)
        );
        assert_eq!(
            c.client(ip("fd00::1"), &none),
            None,
            "unique local is private"
        );
    }

    #[test]
    fn a_client_gets_its_burst_then_its_rate() {
        let c = clients(2.0, 3, &[]);
        let (a, b) = (ip("203.0.113.9"), ip("198.51.100.1"));
        let t = Instant::now();
        for _ in 0..3 {
            assert_eq!(c.take(a, t), Ok(()));
        }
        assert_eq!(c.take(a, t), Err(1), "past the burst: wait a second");
        assert_eq!(c.take(b, t), Ok(()), "another client has its own bucket");
        // Half a second at 2/s is one token back.
        let later = t + Duration::from_millis(500);
        assert_eq!(c.take(a, later), Ok(()));
        assert_eq!(c.take(a, later), Err(1));
        // Idle long enough, the bucket is full again, not fuller.
        let much_later = t + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(c.take(a, much_later), Ok(()));
        }
        assert!(c.take(a, much_later).is_err());
    }

    #[test]
    fn past_the_cap_idle_clients_are_swept_and_a_new_one_let_through() {
        let c = clients(1000.0, 1, &[]);
        let t = Instant::now();
        // Fill one shard with clients that each spent their token.
        let mut filled = 0u32;
        let mut n = 0u32;
        while filled < (MAX_CLIENTS / SHARDS) as u32 {
            n += 1;
            let client = IpAddr::V4(std::net::Ipv4Addr::from(0x0b00_0000 + n));
            if shard_of(&client) == 0 {
                assert_eq!(c.take(client, t), Ok(()));
                filled += 1;
            }
        }
        let newcomer = (n + 1..)
            .map(|k| IpAddr::V4(std::net::Ipv4Addr::from(0x0b00_0000 + k)))
            .find(|ip| shard_of(ip) == 0)
            .expect("a client in shard 0");
        // Full and none idle: let through, not tracked.
        assert_eq!(c.take(newcomer, t), Ok(()));
        assert_eq!(c.shards[0].lock().len(), MAX_CLIENTS / SHARDS);
        // A millisecond on, every bucket is full again: swept.
        assert_eq!(c.take(newcomer, t + Duration::from_millis(2)), Ok(()));
        assert_eq!(c.shards[0].lock().len(), 1);
    }
}
