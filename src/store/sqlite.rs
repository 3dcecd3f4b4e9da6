//! SQLite: the embedded default. One file, WAL so the page reads while the
//! monitor writes, a busy timeout so a backup or a second process waits
//! instead of failing, foreign keys enforced.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use super::StoreError;
use crate::config::DatabaseUrl;

/// The embedded migrations. A database a newer release has migrated
/// further (applied migrations this binary does not know) is accepted:
/// migrations only add (migrations/README.md), so a replica of the
/// previous release keeps working during a rolling upgrade, and a rollback
/// starts.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate::Migrator {
    ignore_missing: true,
    ..sqlx::migrate!("./migrations/sqlite")
};

pub async fn connect(url: &DatabaseUrl) -> Result<SqlitePool, StoreError> {
    let path = crate::config::sqlite_url::path_of(url.expose());
    if path != ":memory:" {
        if let Some(parent) = Path::new(path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDir {
                path: parent.display().to_string(),
                source,
            })?;
        }
    }
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))
        .map_err(|source| StoreError::Connect {
            url: url.redacted(),
            source: source.into(),
        })?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // NORMAL is durable across application crashes in WAL mode and only
        // risks the last transactions on power loss: the right trade for
        // probe results that are re-taken every few seconds.
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    SqlitePoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(5))
        // A connection to a file cannot go stale the way a network one
        // can: no ping before each use (a round trip to the driver's
        // thread and back on every query, the monitor's included).
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .map_err(|source| StoreError::Connect {
            url: url.redacted(),
            source: source.into(),
        })
}
