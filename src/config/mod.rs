//! Typed configuration: loading (file + `BEACON_*` overrides + `${VAR}`
//! secrets), and validation that reports every problem at once.
//!
//! Loading goes through three stages so that each can report well:
//! 1. the file is parsed as TOML (syntax errors carry line and column);
//! 2. `${VAR}` is substituted in string values and unknown keys are
//!    collected, both with the place they occur;
//! 3. [`validate`] turns the raw values into a typed [`Config`], collecting
//!    every semantic mistake with its place (`service[2] "Checkout": …`).
//!
//! The typed config is then trusted by the rest of the program.

mod interpolate;
mod raw;
mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use raw::known_keys;

use crate::domain::condition::Condition;

/// The config used when no file is given (see `default.toml`).
pub const EMBEDDED_DEFAULT: &str = include_str!("default.toml");

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub monitor: MonitorConfig,
    pub admin: AdminConfig,
    pub metrics: MetricsConfig,
    /// `[backup]`; `None`: no backups are configured.
    pub backup: Option<BackupConfig>,
    /// `[[notify]]`: where alerts go.
    pub notify: Vec<NotifyChannel>,
    pub groups: Vec<GroupConfig>,
    pub services: Vec<ServiceConfig>,
    /// Where this config came from, for messages.
    pub source: ConfigSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    Embedded,
    File(PathBuf),
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::Embedded => f.write_str("the embedded default config"),
            ConfigSource::File(path) => write!(f, "{}", path.display()),
        }
    }
}

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

#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub url: DatabaseUrl,
    /// How long raw probe results are kept; rollups are kept 400 days.
    pub raw_retention: Duration,
}

impl StorageConfig {
    pub const DEFAULT_RAW_RETENTION: Duration = Duration::from_secs(7 * 86_400);
}

#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// Probes in flight at once, across all services.
    pub max_concurrency: usize,
    /// Results written per transaction, at most.
    pub batch_size: usize,
    /// How long a result may wait in memory before its batch is written.
    pub flush_interval: Duration,
    /// A service going down again within this long of its automatic
    /// incident's resolution reopens that incident (flapping).
    pub incident_cooldown: Duration,
    /// Raw results held in memory while the store cannot take them; past
    /// this the oldest are shed (counted). State changes are never shed.
    pub max_buffered_results: usize,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            max_concurrency: 1024,
            batch_size: 1000,
            flush_interval: Duration::from_millis(500),
            incident_cooldown: Duration::from_secs(15 * 60),
            max_buffered_results: 100_000,
        }
    }
}

/// `[admin]`: bearer tokens of the admin API, from `${VAR}`s.
#[derive(Clone, Default)]
pub struct AdminConfig {
    pub tokens: Vec<String>,
}

impl fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AdminConfig {{ tokens: {} hidden }}", self.tokens.len())
    }
}

/// `[metrics]`: `/metrics` on or off, and the bearer token it asks for.
#[derive(Clone)]
pub struct MetricsConfig {
    pub enabled: bool,
    /// `None`: open to whoever reaches the port (keep it off the public
    /// internet then, or set one from `${VAR}`).
    pub token: Option<String>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            token: None,
        }
    }
}

impl fmt::Debug for MetricsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MetricsConfig {{ enabled: {}, token: {} }}",
            self.enabled,
            if self.token.is_some() {
                "hidden"
            } else {
                "none"
            }
        )
    }
}

/// `[backup]`: where, when and how long backups are kept.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupConfig {
    /// Cron with a seconds field, run inside `beacon serve`; `None`: only
    /// `beacon backup run` (system cron, a Kubernetes CronJob).
    pub schedule: Option<String>,
    pub target: BackupTargetUrl,
    /// S3 only: a custom endpoint (MinIO, Ceph, Garage, R2 …).
    pub endpoint: Option<String>,
    pub region: String,
    pub path_style: bool,
    /// S3 only: `false` sends checksums only when an operation requires
    /// them (R2, Ceph and older MinIO reject the SDK's default ones). beacon
    /// still sends its own SHA-256 of every part and object.
    pub sdk_checksums: bool,
    /// Multipart part size; archives larger than this are uploaded in parts.
    pub part_size: usize,
    /// Where archives are staged; default: the system's temporary folder.
    pub temp_dir: Option<PathBuf>,
    pub keep: KeepPolicy,
    /// From `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (and
    /// `AWS_SESSION_TOKEN`); `None`: the AWS SDK's default chain (profile,
    /// web identity, container or instance credentials).
    pub credentials: Option<S3Credentials>,
}

#[derive(Clone, PartialEq)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "S3Credentials {{ access_key_id: {}, secret: hidden }}",
            self.access_key_id
        )
    }
}

impl BackupConfig {
    pub const DEFAULT_PART_SIZE: usize = 16 * 1024 * 1024;
}

/// `s3://bucket/prefix` or `file:///path` (relative: `file://./data/backups`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupTargetUrl {
    S3 { bucket: String, prefix: String },
    File(PathBuf),
}

/// As shown in messages and stored with each backup: an S3 target as its
/// bucket only (like any URL, scheme and host), a folder as its path.
impl fmt::Display for BackupTargetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackupTargetUrl::S3 { bucket, .. } => write!(f, "s3://{bucket}"),
            BackupTargetUrl::File(path) => write!(f, "file://{}", path.display()),
        }
    }
}

impl BackupTargetUrl {
    pub fn parse(text: &str) -> Result<BackupTargetUrl, String> {
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let valid = (3..=63).contains(&bucket.len())
                && bucket
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
            if !valid {
                return Err(format!(
                    "\"{bucket}\" is not a bucket name (3 to 63 lowercase letters, digits, '-' or '.')"
                ));
            }
            Ok(BackupTargetUrl::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            })
        } else if let Some(path) = text.strip_prefix("file://") {
            if path.is_empty() {
                return Err("names no folder (write file:///var/backups/beacon)".into());
            }
            Ok(BackupTargetUrl::File(PathBuf::from(path)))
        } else {
            Err("must start with s3:// or file://".into())
        }
    }
}

/// The cron dialect of the schedule: six or seven fields, seconds first,
/// as tokio-cron-scheduler reads it.
pub fn parse_schedule(text: &str) -> Result<croner::Cron, String> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(text.trim())
        .map_err(|e| format!("\"{text}\" is not a cron schedule with a seconds field, like \"0 0 */6 * * *\" ({e})"))
}

/// One `[[notify]]` channel: where alerts go, and which of them.
#[derive(Debug, Clone)]
pub struct NotifyChannel {
    /// Unique; deliveries are stored under it.
    pub name: String,
    pub kind: ChannelKind,
    /// Slugs; empty with `groups` empty: every service.
    pub services: Vec<String>,
    pub groups: Vec<String>,
    pub events: Vec<crate::domain::EventKind>,
    /// `degraded` or `down`: service events below it are not sent, and a
    /// service coming back below it is a recovery.
    pub min_state: crate::domain::State,
    pub send_on_resolved: bool,
    /// Tries per alert before giving up (logged and counted).
    pub max_attempts: u32,
    /// Wait before the first retry; doubled each time, at most 15 min.
    pub retry_backoff: Duration,
    /// For one attempt.
    pub timeout: Duration,
}

impl NotifyChannel {
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;
    pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_secs(5);
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
}

#[derive(Clone)]
pub enum ChannelKind {
    /// A JSON POST (the README documents the body), signed with HMAC-SHA256
    /// when `secret` is set.
    Webhook {
        url: url::Url,
        secret: Option<String>,
    },
    /// A Slack incoming webhook; Mattermost and Rocket.Chat take the same.
    Slack {
        url: url::Url,
    },
    Email(EmailChannel),
}

#[derive(Clone)]
pub struct EmailChannel {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// Both or neither, from `${VAR}`s.
    pub credentials: Option<(String, String)>,
    pub from: String,
    pub to: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which is required (587).
    Starttls,
    /// TLS from the first byte (465).
    Tls,
    /// No encryption: only for a relay on localhost or a trusted network.
    None,
}

impl ChannelKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ChannelKind::Webhook { .. } => "webhook",
            ChannelKind::Slack { .. } => "slack",
            ChannelKind::Email(_) => "email",
        }
    }
}

// Webhook URLs are secrets (Slack's carry the token in the path): only the
// host is ever printed.
impl fmt::Debug for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelKind::Webhook { url, secret } => write!(
                f,
                "Webhook {{ host: {:?}, secret: {} }}",
                url.host_str(),
                if secret.is_some() { "hidden" } else { "none" }
            ),
            ChannelKind::Slack { url } => write!(f, "Slack {{ host: {:?} }}", url.host_str()),
            ChannelKind::Email(e) => {
                write!(
                f,
                "Email {{ host: {}, port: {}, tls: {:?}, credentials: {}, from: {}, to: {:?} }}",
                e.host,
                e.port,
                e.tls,
                if e.credentials.is_some() { "hidden" } else { "none" },
                e.from,
                e.to
            )
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    pub name: String,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
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
        }
    }
}

/// Reading a SQLite URL: the store connects with it, validation refuses an
/// in-memory database where data must last, and backups copy the file.
pub mod sqlite_url {
    /// The file path of a `sqlite://path` or `sqlite:path` URL.
    pub fn path_of(url: &str) -> &str {
        let rest = url.strip_prefix("sqlite:").unwrap_or(url);
        if rest == ":memory:" {
            return rest;
        }
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        rest.split('?').next().unwrap_or(rest)
    }

    /// `sqlite::memory:`, `sqlite://:memory:` and `?mode=memory` URLs.
    pub fn is_memory(url: &str) -> bool {
        url.starts_with("sqlite:") && (path_of(url) == ":memory:" || url.contains("mode=memory"))
    }

    /// The database file of a SQLite URL; `None` for an in-memory one.
    pub fn file_path(url: &str) -> Option<std::path::PathBuf> {
        (url.starts_with("sqlite:") && !is_memory(url))
            .then(|| std::path::PathBuf::from(path_of(url)))
    }
}

/// How many backups of each age `backup.keep` keeps (`backup::rotation`
/// plans by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeepPolicy {
    pub last: u32,
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
}

impl KeepPolicy {
    pub const DEFAULT: KeepPolicy = KeepPolicy {
        last: 4,
        hourly: 0,
        daily: 7,
        weekly: 4,
        monthly: 6,
        yearly: 0,
    };

    /// A policy that keeps nothing is refused by config validation.
    pub fn is_empty(&self) -> bool {
        *self == KeepPolicy::default()
    }
}

/// A database URL whose password never reaches a log line or a page.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        DatabaseUrl(url.into())
    }

    /// The URL with its password, for connecting. Do not print it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// PostgreSQL: scheme, host and port only. SQLite: the file (a path is
    /// no secret), without the query.
    pub fn redacted(&self) -> String {
        if self.0.starts_with("sqlite:") {
            self.0.split('?').next().unwrap_or_default().to_string()
        } else {
            redact_url(&self.0)
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// A URL as beacon shows it: scheme, host and port only (see
/// [`crate::redact`]); text that is no URL is not shown at all.
pub fn redact_url(raw: &str) -> String {
    crate::redact::url_text(raw)
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{source_name}: not valid TOML: {message}")]
    Syntax {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: {} problem{}:\n{}", problems.len(), if problems.len() == 1 { "" } else { "s" }, problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        source_name: String,
        problems: Vec<String>,
    },
}

impl ConfigError {
    /// Each problem found, one message a problem (for tests and tooling).
    pub fn problems(&self) -> Vec<String> {
        match self {
            ConfigError::Invalid { problems, .. } => problems.clone(),
            other => vec![other.to_string()],
        }
    }
}

/// Environment lookup, injected so tests need not touch the process env.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Loads the file at `path`, or the embedded default when `path` is `None`.
pub fn load(path: Option<&Path>, env: EnvLookup<'_>) -> Result<Config, ConfigError> {
    match path {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            from_toml(&text, ConfigSource::File(path.to_path_buf()), env)
        }
        None => from_toml(EMBEDDED_DEFAULT, ConfigSource::Embedded, env),
    }
}

/// Parses and validates config text. `BEACON_LISTEN` and
/// `BEACON_STORAGE_URL` (from `env`) override the file.
pub fn from_toml(
    text: &str,
    source: ConfigSource,
    env: EnvLookup<'_>,
) -> Result<Config, ConfigError> {
    validate::from_toml(text, source, env)
}
