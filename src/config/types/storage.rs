//! `[storage]`: the database URL (whose password never prints) and how
//! long raw results are kept.

use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct StorageConfig {
    pub url: DatabaseUrl,
    /// PostgreSQL itself (or a session-pooling port) when `url` goes
    /// through a transaction-pooling PgBouncer: what needs a session of its
    /// own (migrations, the in-use and backup locks, `pg_dump`, restore)
    /// uses this one.
    pub direct_url: Option<DatabaseUrl>,
    /// How long raw probe results are kept; rollups are kept 400 days.
    pub raw_retention: Duration,
}

impl StorageConfig {
    pub const DEFAULT_RAW_RETENTION: Duration = Duration::from_secs(7 * 86_400);

    /// The URL for work that needs a session of its own: `direct_url` when
    /// set, else `url`.
    pub fn session_url(&self) -> &DatabaseUrl {
        self.direct_url.as_ref().unwrap_or(&self.url)
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
