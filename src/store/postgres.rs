//! PostgreSQL: for operators who already run it, and the way to several
//! replicas later (see docs/ARCHITECTURE.md).

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use super::StoreError;
use crate::config::DatabaseUrl;

/// The embedded migrations. A database a newer release has migrated
/// further (applied migrations this binary does not know) is accepted:
/// migrations only add (migrations/README.md), so a replica of the
/// previous release keeps working during a rolling upgrade, and a rollback
/// starts.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate::Migrator {
    ignore_missing: true,
    ..sqlx::migrate!("./migrations/postgres")
};

/// One connection of its own (not pooled) to `url`.
pub async fn connect_one(url: &DatabaseUrl) -> Result<sqlx::PgConnection, StoreError> {
    use sqlx::Connection;
    tokio::time::timeout(
        Duration::from_secs(10),
        sqlx::PgConnection::connect(url.expose()),
    )
    .await
    .map_err(|_| StoreError::timed_out())?
    .map_err(|source| StoreError::Connect {
        url: url.redacted(),
        source: source.into(),
    })
}

pub async fn connect(url: &DatabaseUrl) -> Result<PgPool, StoreError> {
    PgPoolOptions::new()
        .max_connections(10)
        // A store that does not answer must turn /readyz red quickly rather
        // than hold requests.
        .acquire_timeout(Duration::from_secs(3))
        .connect(url.expose())
        .await
        .map_err(|source| StoreError::Connect {
            url: url.redacted(),
            source: source.into(),
        })
}
