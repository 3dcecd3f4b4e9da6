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

/// How long a pooled connection may sit idle and still be used without a
/// ping first (see [`connect`]).
const PING_IDLE_AFTER: Duration = Duration::from_secs(10);

pub async fn connect(url: &DatabaseUrl) -> Result<PgPool, StoreError> {
    PgPoolOptions::new()
        .max_connections(10)
        // A store that does not answer must turn /readyz red quickly rather
        // than hold requests.
        .acquire_timeout(Duration::from_secs(3))
        // A connection is pinged before use only when it sat idle long
        // enough to have gone stale unnoticed (sqlx pings each one on
        // release anyway, so one that failed a query is never handed out
        // again). A ping before every use was a round trip more for each
        // poll and each batch: with three replicas, every one polling the
        // store each second, the most frequent statement after the
        // writes themselves (docs/performance.md, issue 16). A connection
        // that dies in between fails its query, as it could after a ping.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IDLE_AFTER {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect(url.expose())
        .await
        .map_err(|source| StoreError::Connect {
            url: url.redacted(),
            source: source.into(),
        })
}
