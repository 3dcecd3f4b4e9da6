//! `[server]`: where beacon listens, what its pages show, and the HTTP
//! server's limits.

use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub public_url: Option<url::Url>,
    pub title: String,
    /// Add a service that probes this process's own `/readyz`.
    pub watch_self: bool,
    /// Shown on every page: a logo (linking to `home_url`), a support link,
    /// and an announcement banner.
    pub logo_url: Option<url::Url>,
    pub home_url: Option<url::Url>,
    pub support_url: Option<url::Url>,
    pub announcement: Option<String>,
    /// Times on the pages are shown in this zone (the JSON stays UTC).
    pub time_zone: chrono_tz::Tz,
    /// The name of this server's own location, where it probes from.
    pub location: String,
    pub limits: ServerLimits,
}

/// What the HTTP server lets a client hold, and how long it has to finish.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerLimits {
    /// Connections open at once; past it new ones wait in the kernel's
    /// accept queue. `None`: derived from the file-descriptor limit at
    /// start, leaving room for probes and the store.
    pub max_connections: Option<usize>,
    /// A client must send a whole request header within this, from when
    /// it connects or its previous response was sent; it also bounds how
    /// long a kept-alive connection may sit idle.
    pub header_read_timeout: Duration,
    /// From SIGTERM to exit, at most.
    pub shutdown_timeout: Duration,
    /// How fast one client may read the public routes.
    pub clients: ClientLimits,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: None,
            header_read_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(25),
            clients: ClientLimits::default(),
        }
    }
}

/// A token bucket per client address on the public routes: `burst`
/// requests at once, then `rate` a second; past it 429 with `Retry-After`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientLimits {
    /// Requests a second, sustained; 0 turns the limit off.
    pub rate: f64,
    pub burst: u32,
    /// Proxies whose `X-Forwarded-For` names the client. A client on a
    /// private or loopback address that is not listed is taken for a proxy
    /// or a neighbour (an ingress, a sidecar, Prometheus) and not limited.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl ClientLimits {
    /// Off unless asked for: beacon cannot tell a proxy on a public
    /// address (a CDN's edge, a cloud load balancer) from a visitor, and
    /// if it took one for a visitor, everyone behind it would share one
    /// bucket and get 429 during an outage.
    pub const DEFAULT_RATE: f64 = 0.0;
    pub const DEFAULT_BURST: u32 = 100;
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            rate: Self::DEFAULT_RATE,
            burst: Self::DEFAULT_BURST,
            trusted_proxies: Vec::new(),
        }
    }
}

impl ServerConfig {
    /// `public_url` without its trailing slash, ready for `{base}/path`.
    pub fn public_base(&self) -> Option<String> {
        self.public_url
            .as_ref()
            .map(|u| u.as_str().trim_end_matches('/').to_string())
    }
}
