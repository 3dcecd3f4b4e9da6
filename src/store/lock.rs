//! PostgreSQL session advisory locks: held by a connection taken out of
//! the pool, opened on `storage.direct_url` (never through a
//! transaction-pooling PgBouncer) or opened by URL, and closed on release,
//! so a crash releases them too. `backup::lock` builds its backup and in-use locks on these.

use super::copy::PgDatabase;
use super::{Pools, Store, StoreError};

/// A held advisory lock.
#[derive(Debug)]
pub struct AdvisoryLock {
    conn: Option<sqlx::PgConnection>,
    key: i64,
    shared: bool,
}

impl Store {
    /// Tries to take advisory lock `key` on a session of its own: `Ok(None)`
    /// when another session holds it. `Ok(None)` too on SQLite, which has
    /// no such locks (callers lock files there).
    pub async fn try_advisory_lock(
        &self,
        key: i64,
        shared: bool,
    ) -> Result<Option<AdvisoryLock>, StoreError> {
        let Pools::Postgres(pool) = &self.0 else {
            return Err(StoreError::invalid(
                "database",
                "advisory locks need PostgreSQL",
            ));
        };
        let conn = Store::session(pool, &self.1).await?;
        try_lock(conn, key, shared).await
    }
}

impl PgDatabase {
    /// Tries to take advisory lock `key` on this session, which the lock
    /// then keeps: `Ok(None)` (and the session closed) when another holds it.
    pub async fn try_advisory_lock(
        self,
        key: i64,
        shared: bool,
    ) -> Result<Option<AdvisoryLock>, StoreError> {
        try_lock(self.into_connection(), key, shared).await
    }
}

async fn try_lock(
    mut conn: sqlx::PgConnection,
    key: i64,
    shared: bool,
) -> Result<Option<AdvisoryLock>, StoreError> {
    let sql = if shared {
        "SELECT pg_try_advisory_lock_shared($1)"
    } else {
        "SELECT pg_try_advisory_lock($1)"
    };
    let got: bool = sqlx::query_scalar(sql)
        .bind(key)
        .fetch_one(&mut conn)
        .await?;
    Ok(got.then_some(AdvisoryLock {
        conn: Some(conn),
        key,
        shared,
    }))
}

impl AdvisoryLock {
    /// Releases the lock now: unlocks before closing, because the server
    /// drops a closed session's locks only when its backend notices, and a
    /// run that starts right after this one must not find the lock still
    /// held.
    pub async fn release(mut self) {
        if let Some(conn) = self.conn.take() {
            unlock_and_close(conn, self.key, self.shared).await;
        }
    }
}

async fn unlock_and_close(mut conn: sqlx::PgConnection, key: i64, shared: bool) {
    let sql = if shared {
        "SELECT pg_advisory_unlock_shared($1)"
    } else {
        "SELECT pg_advisory_unlock($1)"
    };
    if let Err(e) = sqlx::query(sql).bind(key).execute(&mut conn).await {
        tracing::warn!(error = %e, "releasing an advisory lock; closing the session releases it");
    }
    let _ = sqlx::Connection::close(conn).await;
}

impl Drop for AdvisoryLock {
    /// Dropped without `release` (an early return, a panic): unlock in the
    /// background when a runtime is there, else the closed socket does it.
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(unlock_and_close(conn, self.key, self.shared));
            }
        }
    }
}
