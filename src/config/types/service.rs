//! `[[group]]` and `[[service]]`: what is probed and how.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::domain::condition::Condition;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    pub name: String,
    pub description: Option<String>,
}

#[derive(Clone, PartialEq)]
pub struct ServiceConfig {
    pub name: String,
    pub slug: String,
    pub group: Option<String>,
    pub description: Option<String>,
    /// Shown on the public page (and API). Private services are still probed.
    pub public: bool,
    /// The probed URL. Never shown on the public page.
    pub url: url::Url,
    pub interval: Duration,
    pub timeout: Duration,
    pub failure_threshold: u32,
    pub success_threshold: u32,
    pub degraded_latency: Option<Duration>,
    /// Accepted HTTP statuses; empty means any 2xx.
    pub expected_status: Vec<u16>,
    /// How to read the health body (`auto` detects it).
    pub format: crate::domain::Format,
    /// Gatus-style conditions; any failing one makes the probe down.
    pub conditions: Vec<Condition>,
    /// Conditions whose failure makes the probe degraded instead.
    pub degraded_conditions: Vec<Condition>,
    /// What kind of probe `url` gets (from its scheme unless set).
    pub kind: ProbeKind,
    pub http: HttpOptions,
    /// `dns`: addresses the name must resolve to (any order); empty: any.
    pub dns_expect: Vec<std::net::IpAddr>,
    /// Certificate days left under which a probe is degraded / down.
    pub tls_warn_days: i64,
    pub tls_fail_days: i64,
    /// `[[service.dependency]]`: probed with the service, shown under it.
    /// Each is service-shaped (same probe options), without a page entry.
    pub dependencies: Vec<ServiceConfig>,
    /// `locations` and `quorum`: `None` when only the main server probes
    /// it (the default), else every location that does.
    pub locations: Option<super::location::Locations>,
}

/// The kinds of probe. The URL's scheme names it: `https://`, `tcp://host:port`,
/// `tls://host:port`, `dns://name`, `postgres://…`, `redis://host:port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    Http,
    Tcp,
    Tls,
    Dns,
    Postgres,
    Redis,
}

impl ProbeKind {
    pub const NAMES: &'static [&'static str] = &["http", "tcp", "tls", "dns", "postgres", "redis"];

    pub fn parse(name: &str) -> Option<ProbeKind> {
        Some(match name {
            "http" | "https" => ProbeKind::Http,
            "tcp" => ProbeKind::Tcp,
            "tls" => ProbeKind::Tls,
            "dns" => ProbeKind::Dns,
            "postgres" | "postgresql" => ProbeKind::Postgres,
            "redis" => ProbeKind::Redis,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Http => "http",
            ProbeKind::Tcp => "tcp",
            ProbeKind::Tls => "tls",
            ProbeKind::Dns => "dns",
            ProbeKind::Postgres => "postgres",
            ProbeKind::Redis => "redis",
        }
    }
}

/// Options of an HTTP probe.
#[derive(Clone, PartialEq)]
pub struct HttpOptions {
    pub method: reqwest::Method,
    /// Sent with every probe; values may come from `${VAR}`. Never logged.
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub follow_redirects: bool,
    /// Off: accept any certificate (self-signed internal services).
    pub tls_verify: bool,
    /// Reuse a pooled connection between probes (cheaper), or open a fresh
    /// one each time (what a new visitor does: DNS, TCP and TLS are
    /// checked on every probe, and a renewed certificate is seen at once).
    pub keep_alive: bool,
}

/// Header values are often credentials: Debug names the headers only.
impl fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(name, _)| format!("{name}: ***"))
            .collect();
        f.debug_struct("HttpOptions")
            .field("method", &self.method)
            .field("headers", &headers)
            .field(
                "body",
                &self.body.as_ref().map(|b| format!("<{} bytes>", b.len())),
            )
            .field("follow_redirects", &self.follow_redirects)
            .field("tls_verify", &self.tls_verify)
            .finish()
    }
}

impl HttpOptions {
    pub const DEFAULT_KEEP_ALIVE: bool = false;
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            method: reqwest::Method::GET,
            headers: Vec::new(),
            body: None,
            follow_redirects: true,
            tls_verify: true,
            keep_alive: HttpOptions::DEFAULT_KEEP_ALIVE,
        }
    }
}

impl ServiceConfig {
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;
    pub const DEFAULT_SUCCESS_THRESHOLD: u32 = 1;
    pub const DEFAULT_TLS_WARN_DAYS: i64 = 14;
    pub const DEFAULT_TLS_FAIL_DAYS: i64 = 3;

    /// The service beacon adds to watch its own `/readyz` (`watch_self`).
    pub fn watching_self(addr: SocketAddr) -> ServiceConfig {
        let host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else if addr.is_ipv6() {
            format!("[{}]", addr.ip())
        } else {
            addr.ip().to_string()
        };
        let url = format!("http://{host}:{}/readyz", addr.port());
        ServiceConfig {
            name: "beacon".into(),
            slug: "beacon".into(),
            group: None,
            description: Some("This status page's own server".into()),
            public: true,
            url: url::Url::parse(&url).expect("a socket address always forms a valid URL"),
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            failure_threshold: Self::DEFAULT_FAILURE_THRESHOLD,
            success_threshold: Self::DEFAULT_SUCCESS_THRESHOLD,
            degraded_latency: None,
            expected_status: Vec::new(),
            format: crate::domain::Format::Auto,
            conditions: Vec::new(),
            degraded_conditions: Vec::new(),
            kind: ProbeKind::Http,
            http: HttpOptions::default(),
            dns_expect: Vec::new(),
            tls_warn_days: Self::DEFAULT_TLS_WARN_DAYS,
            tls_fail_days: Self::DEFAULT_TLS_FAIL_DAYS,
            dependencies: Vec::new(),
            locations: None,
        }
    }

    /// Whether the main server probes it itself.
    pub fn probed_here(&self) -> bool {
        self.locations.as_ref().is_none_or(|l| l.local.is_some())
    }
}

/// The URL may hold a password (`postgres://user:pw@…`) or a token in its
/// path or query: Debug shows its scheme, host and port only.
impl fmt::Debug for ServiceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceConfig")
            .field("name", &self.name)
            .field("slug", &self.slug)
            .field("group", &self.group)
            .field("description", &self.description)
            .field("public", &self.public)
            .field("url", &crate::redact::url(&self.url))
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .field("failure_threshold", &self.failure_threshold)
            .field("success_threshold", &self.success_threshold)
            .field("degraded_latency", &self.degraded_latency)
            .field("expected_status", &self.expected_status)
            .field("format", &self.format)
            .field("conditions", &self.conditions)
            .field("degraded_conditions", &self.degraded_conditions)
            .field("kind", &self.kind)
            .field("http", &self.http)
            .field("dns_expect", &self.dns_expect)
            .field("tls_warn_days", &self.tls_warn_days)
            .field("tls_fail_days", &self.tls_fail_days)
            .field("dependencies", &self.dependencies)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_a_service_shows_no_password_or_token_of_its_url() {
        let mut service = ServiceConfig::watching_self(SocketAddr::from(([127, 0, 0, 1], 8080)));
        service.url =
            url::Url::parse("postgres://orders:hunter2-secret@db.internal:5432/orders?sslkey=k3y")
                .expect("a valid URL");
        service
            .http
            .headers
            .push(("Authorization".into(), "Bearer t0ken-value".into()));
        let shown = format!("{service:?}");
        assert!(shown.contains("db.internal"), "{shown}");
        for secret in ["hunter2-secret", "orders@", "sslkey", "k3y", "t0ken-value"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }
}
