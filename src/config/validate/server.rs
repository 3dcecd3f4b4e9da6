//! `[server]`: where beacon listens, what its pages show, and what the
//! HTTP server lets a client hold.

use std::net::SocketAddr;
use std::time::Duration;

use super::document::Overrides;
use super::fields::parse_duration;
use super::problems::Problems;
use crate::config::raw::RawServer;
use crate::config::{ServerConfig, ServerLimits};

/// Where beacon listens when `listen` is not set.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// `[server]` without its limits (see [`limits`]). A wrong `listen` is
/// reported and the default put in its place: with a problem found, the
/// config is never returned.
pub fn server(raw: &RawServer, overrides: &Overrides, problems: &mut Problems) -> ServerConfig {
    let listen_text = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let listen = listen_text.parse::<SocketAddr>().unwrap_or_else(|_| {
        problems.push(format!(
            "server: listen \"{listen_text}\"{}: not an address and port like 0.0.0.0:8080",
            overrides.note("server.listen")
        ));
        SocketAddr::from(([127, 0, 0, 1], 8080))
    });
    let public_url = web_url("public_url", raw.public_url.as_deref(), problems);
    let logo_url = web_url("logo_url", raw.logo_url.as_deref(), problems);
    let home_url = web_url("home_url", raw.home_url.as_deref(), problems);
    let support_url = web_url("support_url", raw.support_url.as_deref(), problems);
    let announcement = raw
        .announcement
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_string);
    let time_zone = time_zone(raw.time_zone.as_deref(), problems);
    if announcement.as_ref().is_some_and(|a| a.len() > 2000) {
        problems.push("server: announcement is longer than 2000 bytes".to_string());
    }
    let title = raw
        .title
        .clone()
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| "Status".to_string());
    ServerConfig {
        listen,
        public_url,
        title,
        watch_self: raw.watch_self.unwrap_or(false),
        logo_url,
        home_url,
        support_url,
        announcement,
        time_zone,
        location: crate::config::DEFAULT_LOCATION.to_string(),
        limits: ServerLimits::default(),
    }
}

/// An http(s) URL a page links to.
fn web_url(field: &str, value: Option<&str>, problems: &mut Problems) -> Option<url::Url> {
    value.and_then(|u| match url::Url::parse(u) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Some(url),
        Ok(url) => {
            problems.push(format!(
                "server: {field} \"{}\" must start with http:// or https://",
                crate::redact::url(&url)
            ));
            None
        }
        Err(e) => {
            problems.push(format!("server: {field} is not a valid URL ({e})"));
            None
        }
    })
}

fn time_zone(name: Option<&str>, problems: &mut Problems) -> chrono_tz::Tz {
    match name.map(str::trim) {
        None | Some("") => chrono_tz::UTC,
        Some(name) => name.parse::<chrono_tz::Tz>().unwrap_or_else(|_| {
            problems.push(format!(
                "server: time_zone \"{name}\" is not an IANA time zone like \"Europe/Berlin\" or \"UTC\""
            ));
            chrono_tz::UTC
        }),
    }
}

/// `max_connections`, `header_read_timeout`, `shutdown_timeout` and the
/// per-client limits.
pub fn limits(raw: &RawServer, problems: &mut Problems) -> ServerLimits {
    let mut limits = ServerLimits::default();
    if let Some(rate) = raw.client_rate {
        if rate.is_finite() && (0.0..=100_000.0).contains(&rate) {
            limits.clients.rate = rate;
        } else {
            problems.push(format!(
                "server: client_rate ({rate}) must be between 0 (off) and 100000 requests a second"
            ));
        }
    }
    if let Some(n) = raw.client_burst {
        match u32::try_from(n) {
            Ok(n) if (1..=1_000_000).contains(&n) => limits.clients.burst = n,
            _ => problems.push(format!(
                "server: client_burst ({n}) must be between 1 and 1000000"
            )),
        }
    }
    for (i, text) in raw.trusted_proxies.iter().flatten().enumerate() {
        let parsed = text
            .parse::<ipnet::IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
        match parsed {
            Ok(net) => limits.clients.trusted_proxies.push(net),
            Err(_) => problems.push(format!(
                "server: trusted_proxies[{i}] \"{text}\": not an address or a CIDR block like 10.0.0.0/8"
            )),
        }
    }
    if let Some(n) = raw.max_connections {
        match usize::try_from(n) {
            Ok(n) if (16..=1_000_000).contains(&n) => limits.max_connections = Some(n),
            _ => problems.push(format!(
                "server: max_connections ({n}) must be between 16 and 1000000"
            )),
        }
    }
    if let Some(text) = &raw.header_read_timeout {
        match parse_duration("server", "header_read_timeout", text) {
            Ok(d) if d >= Duration::from_secs(1) && d <= Duration::from_secs(300) => {
                limits.header_read_timeout = d
            }
            Ok(_) => problems.push(format!(
                "server: header_read_timeout ({text}) must be between 1s and 5m"
            )),
            Err(p) => problems.push(p),
        }
    }
    if let Some(text) = &raw.shutdown_timeout {
        match parse_duration("server", "shutdown_timeout", text) {
            Ok(d) if d >= Duration::from_secs(1) && d <= Duration::from_secs(600) => {
                limits.shutdown_timeout = d
            }
            Ok(_) => problems.push(format!(
                "server: shutdown_timeout ({text}) must be between 1s and 10m"
            )),
            Err(p) => problems.push(p),
        }
    }
    limits
}
