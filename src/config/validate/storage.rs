//! `[storage]`: which database, and how long raw results are kept.

use std::time::Duration;

use super::document::Overrides;
use super::fields::parse_duration;
use super::problems::Problems;
use crate::config::raw::RawStorage;
use crate::config::{sqlite_url, DatabaseUrl, StorageConfig};

pub fn storage(raw: &RawStorage, overrides: &Overrides, problems: &mut Problems) -> StorageConfig {
    let url = raw
        .url
        .clone()
        .unwrap_or_else(|| "sqlite://data/beacon.db".to_string());
    if sqlite_url::is_memory(&url) {
        problems.push(
            "storage: url: in-memory SQLite is not supported (each connection would see its own empty database); use a file, e.g. sqlite://data/beacon.db".to_string(),
        );
    }
    let known_scheme = url.contains("${")
        || url.starts_with("sqlite:")
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://");
    if !known_scheme {
        problems.push(format!(
            "storage: url \"{}\"{}: must start with sqlite:// or postgres://",
            crate::redact::url_text(&url),
            overrides.note("storage.url")
        ));
    }
    let direct_url = raw.direct_url.clone().map(|direct| {
        let postgres = |u: &str| {
            u.contains("${") || u.starts_with("postgres://") || u.starts_with("postgresql://")
        };
        if !postgres(&url) {
            problems.push(format!(
                "storage: direct_url{}: only for PostgreSQL (storage.url is not a postgres:// URL); remove it",
                overrides.note("storage.direct_url")
            ));
        } else if !postgres(&direct) {
            problems.push(format!(
                "storage: direct_url \"{}\"{}: must start with postgres://",
                crate::redact::url_text(&direct),
                overrides.note("storage.direct_url")
            ));
        }
        DatabaseUrl::new(direct)
    });
    StorageConfig {
        url: DatabaseUrl::new(url),
        direct_url,
        raw_retention: raw_retention(raw.raw_retention.as_deref(), problems),
    }
}

fn raw_retention(text: Option<&str>, problems: &mut Problems) -> Duration {
    let Some(text) = text else {
        return StorageConfig::DEFAULT_RAW_RETENTION;
    };
    match parse_duration("storage", "raw_retention", text) {
        Ok(d) if d >= Duration::from_secs(3600) => d,
        Ok(d) => {
            problems.push(format!(
                "storage: raw_retention ({}) must be at least 1h",
                humantime::format_duration(d)
            ));
            StorageConfig::DEFAULT_RAW_RETENTION
        }
        Err(p) => {
            problems.push(p);
            StorageConfig::DEFAULT_RAW_RETENTION
        }
    }
}
