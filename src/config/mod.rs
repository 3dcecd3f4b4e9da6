//! Typed configuration: loading (file + `BEACON_*` overrides + `${VAR}`
//! secrets), and validation that reports every problem at once.
//!
//! Loading goes through three stages so that each can report well:
//! 1. the file is parsed as TOML (syntax errors carry line and column);
//! 2. `${VAR}` is substituted in string values and unknown keys are
//!    collected, both with the place they occur;
//! 3. [`validate`] turns the raw values into a typed [`Config`], collecting
//!    every semantic mistake with its place (`service[2] "Checkout": …`),
//!    one file per section under `validate/`.
//!
//! The typed config (one file per section under `types/`, re-exported
//! here) is then trusted by the rest of the program.

mod early;
mod interpolate;
mod raw;
mod types;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

pub use early::listen_address;
pub use raw::known_keys;
pub use types::access::{AdminConfig, MetricsConfig};
pub use types::backup::{parse_schedule, BackupConfig, BackupTargetUrl, KeepPolicy, S3Credentials};
pub use types::cluster::ClusterConfig;
pub use types::location::{Assignment, Assignments, LocationConfig, Locations, DEFAULT_LOCATION};
pub use types::monitor::MonitorConfig;
pub use types::notify::{ChannelKind, EmailChannel, NotifyChannel, SmtpTls};
pub use types::server::{ClientLimits, ServerConfig, ServerLimits};
pub use types::service::{GroupConfig, HttpOptions, ProbeKind, ServiceConfig};
pub use types::storage::{redact_url, sqlite_url, DatabaseUrl, StorageConfig};
pub use types::subscriptions::SubscriptionsConfig;

/// The config used when no file is given (see `default.toml`).
pub const EMBEDDED_DEFAULT: &str = include_str!("default.toml");

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub monitor: MonitorConfig,
    pub admin: AdminConfig,
    pub metrics: MetricsConfig,
    /// `[cluster]`: replicas on one PostgreSQL database.
    pub cluster: ClusterConfig,
    /// `[backup]`; `None`: no backups are configured.
    pub backup: Option<BackupConfig>,
    /// `[[notify]]`: where alerts go.
    pub notify: Vec<NotifyChannel>,
    pub groups: Vec<GroupConfig>,
    pub services: Vec<ServiceConfig>,
    /// `[[location]]`: the agents that probe from elsewhere.
    pub locations: Vec<LocationConfig>,
    /// What each location's agent is given to probe.
    pub assignments: std::sync::Arc<Assignments>,
    /// `[subscriptions]`, when enabled: visitors subscribe by email.
    pub subscriptions: Option<SubscriptionsConfig>,
    /// Where this config came from, for messages.
    pub source: ConfigSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    Embedded,
    File(PathBuf),
    /// An agent's assignment, fetched from the main server.
    Assignment(String),
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::Embedded => f.write_str("the embedded default config"),
            ConfigSource::File(path) => write!(f, "{}", path.display()),
            ConfigSource::Assignment(from) => write!(f, "the assignment from {from}"),
        }
    }
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
