//! The config exactly as written in the file, before validation.
//!
//! Every field is optional or a plain string so that one pass of
//! [`super::validate`] can report *every* mistake at once, each with its
//! place, instead of serde stopping at the first.
//!
//! No raw struct derives `Debug`: they hold secrets (tokens, passwords,
//! URLs with credentials, header values) before any redaction.

use serde::Deserialize;

#[derive(Default, Deserialize)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub storage: RawStorage,
    #[serde(default)]
    pub monitor: RawMonitor,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub metrics: RawMetrics,
    #[serde(default)]
    pub cluster: RawCluster,
    pub backup: Option<RawBackup>,
    #[serde(default)]
    pub notify: Vec<RawNotify>,
    #[serde(default, rename = "group")]
    pub groups: Vec<RawGroup>,
    #[serde(default, rename = "service")]
    pub services: Vec<RawService>,
    #[serde(default, rename = "location")]
    pub locations: Vec<RawLocation>,
    pub subscriptions: Option<RawSubscriptions>,
}

/// `[subscriptions]`: visitors subscribing by email.
#[derive(Default, Deserialize)]
pub struct RawSubscriptions {
    pub enabled: Option<bool>,
    pub from: Option<String>,
    pub channel: Option<String>,
    pub client_limit: Option<i64>,
    pub address_limit: Option<i64>,
}

/// `[[location]]`: a place an agent probes from.
#[derive(Default, Deserialize)]
pub struct RawLocation {
    pub name: Option<String>,
    pub token: Option<String>,
}

#[derive(Default, Deserialize)]
pub struct RawServer {
    pub listen: Option<String>,
    pub public_url: Option<String>,
    pub logo_url: Option<String>,
    pub home_url: Option<String>,
    pub support_url: Option<String>,
    pub announcement: Option<String>,
    pub time_zone: Option<String>,
    pub title: Option<String>,
    pub watch_self: Option<bool>,
    pub max_connections: Option<i64>,
    pub header_read_timeout: Option<String>,
    pub shutdown_timeout: Option<String>,
    pub client_rate: Option<f64>,
    pub client_burst: Option<i64>,
    pub trusted_proxies: Option<Vec<String>>,
    pub location: Option<String>,
}

#[derive(Default, Deserialize)]
pub struct RawStorage {
    pub url: Option<String>,
    pub direct_url: Option<String>,
    pub raw_retention: Option<String>,
}

#[derive(Default, Deserialize)]
pub struct RawMonitor {
    pub max_concurrency: Option<i64>,
    pub batch_size: Option<i64>,
    pub flush_interval: Option<String>,
    pub incident_cooldown: Option<String>,
    pub max_buffered_results: Option<i64>,
}

#[derive(Default, Deserialize)]
pub struct RawBackup {
    pub schedule: Option<String>,
    pub target: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub path_style: Option<bool>,
    pub checksums: Option<String>,
    pub part_size_mib: Option<i64>,
    pub temp_dir: Option<String>,
    pub keep: Option<RawKeep>,
}

#[derive(Default, Deserialize)]
pub struct RawKeep {
    pub last: Option<i64>,
    pub hourly: Option<i64>,
    pub daily: Option<i64>,
    pub weekly: Option<i64>,
    pub monthly: Option<i64>,
    pub yearly: Option<i64>,
}

#[derive(Default, Deserialize)]
pub struct RawAdmin {
    pub tokens: Option<Vec<String>>,
}

#[derive(Default, Deserialize)]
pub struct RawMetrics {
    pub enabled: Option<bool>,
    pub token: Option<String>,
    pub per_service: Option<bool>,
}

#[derive(Default, Deserialize)]
pub struct RawCluster {
    pub lease: Option<String>,
    pub heartbeat: Option<String>,
}

#[derive(Default, Deserialize)]
pub struct RawNotify {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub url: Option<String>,
    pub secret: Option<String>,
    pub services: Option<Vec<String>>,
    pub groups: Option<Vec<String>>,
    pub events: Option<Vec<String>>,
    pub min_state: Option<String>,
    pub send_on_resolved: Option<bool>,
    pub max_attempts: Option<i64>,
    pub retry_backoff: Option<String>,
    pub timeout: Option<String>,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<i64>,
    pub smtp_tls: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub from: Option<String>,
    pub to: Option<Vec<String>>,
}

#[derive(Default, Deserialize)]
pub struct RawGroup {
    pub name: Option<String>,
    pub description: Option<String>,
}

#[derive(Default, Deserialize)]
pub struct RawService {
    pub name: Option<String>,
    pub slug: Option<String>,
    pub group: Option<String>,
    pub description: Option<String>,
    pub public: Option<bool>,
    pub url: Option<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub failure_threshold: Option<i64>,
    pub success_threshold: Option<i64>,
    pub degraded_latency: Option<String>,
    pub expected_status: Option<Vec<i64>>,
    pub format: Option<String>,
    pub conditions: Option<Vec<String>>,
    pub degraded_conditions: Option<Vec<String>>,
    pub kind: Option<String>,
    pub method: Option<String>,
    pub headers: Option<std::collections::BTreeMap<String, String>>,
    pub body: Option<String>,
    pub follow_redirects: Option<bool>,
    pub tls_verify: Option<bool>,
    pub keep_alive: Option<bool>,
    pub dns_expect: Option<Vec<String>>,
    pub tls_warn_days: Option<i64>,
    pub tls_fail_days: Option<i64>,
    pub locations: Option<Vec<String>>,
    pub quorum: Option<i64>,
    /// `[[service.dependency]]`: probed directly, shown under the service.
    #[serde(default, rename = "dependency")]
    pub dependencies: Vec<RawService>,
}

/// Every key the raw config knows, per table: used to suggest the intended
/// key when an unknown one is found ("did you mean `timeout`?").
pub fn known_keys(table: &str) -> &'static [&'static str] {
    match table {
        "" => &[
            "server",
            "storage",
            "monitor",
            "admin",
            "metrics",
            "cluster",
            "backup",
            "notify",
            "group",
            "service",
            "location",
            "subscriptions",
        ],
        "location" => &["name", "token"],
        "subscriptions" => &[
            "enabled",
            "from",
            "channel",
            "client_limit",
            "address_limit",
        ],
        "notify" => &[
            "name",
            "kind",
            "url",
            "secret",
            "services",
            "groups",
            "events",
            "min_state",
            "send_on_resolved",
            "max_attempts",
            "retry_backoff",
            "timeout",
            "smtp_host",
            "smtp_port",
            "smtp_tls",
            "username",
            "password",
            "from",
            "to",
        ],
        "admin" => &["tokens"],
        "metrics" => &["enabled", "token", "per_service"],
        "cluster" => &["lease", "heartbeat"],
        "backup.keep" => &["last", "hourly", "daily", "weekly", "monthly", "yearly"],
        "backup" => &[
            "schedule",
            "target",
            "endpoint",
            "region",
            "path_style",
            "checksums",
            "part_size_mib",
            "temp_dir",
            "keep",
        ],
        "server" => &[
            "listen",
            "max_connections",
            "header_read_timeout",
            "shutdown_timeout",
            "client_rate",
            "client_burst",
            "trusted_proxies",
            "public_url",
            "title",
            "watch_self",
            "logo_url",
            "home_url",
            "support_url",
            "announcement",
            "time_zone",
            "location",
        ],
        "storage" => &["url", "direct_url", "raw_retention"],
        "monitor" => &[
            "max_concurrency",
            "batch_size",
            "flush_interval",
            "incident_cooldown",
            "max_buffered_results",
        ],
        "group" => &["name", "description"],
        "service" => &[
            "name",
            "slug",
            "group",
            "description",
            "public",
            "url",
            "interval",
            "timeout",
            "failure_threshold",
            "success_threshold",
            "degraded_latency",
            "expected_status",
            "format",
            "conditions",
            "degraded_conditions",
            "kind",
            "method",
            "headers",
            "body",
            "follow_redirects",
            "tls_verify",
            "keep_alive",
            "dns_expect",
            "tls_warn_days",
            "tls_fail_days",
            "locations",
            "quorum",
            "dependency",
        ],
        _ => &[],
    }
}
