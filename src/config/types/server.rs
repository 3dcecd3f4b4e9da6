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
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: None,
            header_read_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(25),
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
