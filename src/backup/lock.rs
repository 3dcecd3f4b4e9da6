//! One backup, verify, prune or restore at a time, across processes: a
//! `beacon backup run` from cron while `beacon serve` runs its schedule on
//! the same database must wait its turn, not interleave.
//!
//! SQLite: an exclusive lock on `<db>.backup-lock` beside the database (the
//! only place every process using that file shares). PostgreSQL: a
//! session advisory lock, held by a connection taken out of the pool and
//! closed on release (closing the session releases the lock, even on a
//! crash).

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};

use crate::config::sqlite_url;
use crate::config::DatabaseUrl;
use crate::store::Store;

/// 'beacon' in ASCII: the advisory lock's key.
const ADVISORY_KEY: i64 = 0x6265_6163_6f6e;

#[derive(Debug)]
pub enum BackupLock {
    File {
        _file: File,
        path: PathBuf,
    },
    Postgres(Option<sqlx::PgConnection>),
    /// An in-memory database: no other process can share it.
    InMemory,
}

/// `<db><suffix>` beside a SQLite database.
pub fn beside(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn open_lock_file(path: &Path) -> anyhow::Result<File> {
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening the lock file {}", path.display()))
}

impl BackupLock {
    pub async fn acquire(store: &Store, url: &DatabaseUrl) -> anyhow::Result<BackupLock> {
        match store {
            Store::Sqlite(_) => match sqlite_url::file_path(url.expose()) {
                None => Ok(BackupLock::InMemory),
                Some(db) => Self::sqlite(&db),
            },
            Store::Postgres(pool) => {
                let conn = pool
                    .acquire()
                    .await
                    .context("connecting to take the backup lock")?;
                Self::postgres(conn.detach()).await
            }
        }
    }

    pub fn sqlite(db: &Path) -> anyhow::Result<BackupLock> {
        let path = beside(db, ".backup-lock");
        let file = open_lock_file(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(BackupLock::File { _file: file, path }),
            Err(TryLockError::WouldBlock) => Err(anyhow!(
                "another backup, verify, prune or restore is running (it holds {})",
                path.display()
            )),
            Err(TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
    }

    pub async fn postgres(mut conn: sqlx::PgConnection) -> anyhow::Result<BackupLock> {
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(ADVISORY_KEY)
            .fetch_one(&mut conn)
            .await
            .context("taking the backup lock")?;
        if !got {
            return Err(anyhow!(
                "another backup, verify, prune or restore is running (it holds PostgreSQL advisory lock {ADVISORY_KEY})"
            ));
        }
        Ok(BackupLock::Postgres(Some(conn)))
    }

    /// Releases the lock now. PostgreSQL: unlocks before closing, because
    /// the server drops a closed session's locks only when its backend
    /// notices, and a run that starts right after this one must not find
    /// the lock still held.
    pub async fn release(mut self) {
        if let BackupLock::Postgres(conn) = &mut self {
            if let Some(conn) = conn.take() {
                unlock_and_close(conn).await;
            }
        }
    }
}

async fn unlock_and_close(mut conn: sqlx::PgConnection) {
    if let Err(e) = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(ADVISORY_KEY)
        .execute(&mut conn)
        .await
    {
        tracing::warn!(error = %e, "releasing the backup lock; closing the session releases it");
    }
    let _ = sqlx::Connection::close(conn).await;
}

impl Drop for BackupLock {
    /// Dropped without `release` (an early return, a panic): unlock in the
    /// background when a runtime is there, else the closed socket does it.
    fn drop(&mut self) {
        if let BackupLock::Postgres(conn) = self {
            if let Some(conn) = conn.take() {
                if let Ok(handle) = tokio::runtime::Handle::try_current() {
                    handle.spawn(unlock_and_close(conn));
                }
            }
        }
    }
}

/// 'beacon' + 1: the key of the in-use lock.
const IN_USE_KEY: i64 = ADVISORY_KEY + 1;

/// Says "a beacon process is using this database": `beacon serve` holds it
/// shared for its whole life, `beacon restore` takes it exclusively, so a
/// restore never swaps a database under a running beacon and beacon never
/// starts in the middle of a restore. SQLite: `<db>.lock`; PostgreSQL: a
/// session advisory lock.
#[derive(Debug)]
pub enum InUse {
    File(File),
    Postgres(sqlx::PgConnection),
    InMemory,
}

impl InUse {
    /// For `beacon serve`.
    pub async fn hold(store: &Store, url: &DatabaseUrl) -> anyhow::Result<InUse> {
        match store {
            Store::Sqlite(_) => match sqlite_url::file_path(url.expose()) {
                None => Ok(InUse::InMemory),
                Some(db) => {
                    let path = beside(&db, ".lock");
                    let file = open_lock_file(&path)?;
                    match file.try_lock_shared() {
                        Ok(()) => Ok(InUse::File(file)),
                        Err(TryLockError::WouldBlock) => Err(anyhow!(
                            "a restore is replacing {} (it holds {}); start beacon when it has finished",
                            db.display(),
                            path.display()
                        )),
                        Err(TryLockError::Error(e)) => {
                            Err(e).with_context(|| format!("locking {}", path.display()))
                        }
                    }
                }
            },
            Store::Postgres(pool) => {
                let mut conn = pool
                    .acquire()
                    .await
                    .context("connecting to take the in-use lock")?
                    .detach();
                let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock_shared($1)")
                    .bind(IN_USE_KEY)
                    .fetch_one(&mut conn)
                    .await
                    .context("taking the in-use lock")?;
                if !got {
                    return Err(anyhow!(
                        "a restore is replacing this database (it holds PostgreSQL advisory lock {IN_USE_KEY}); start beacon when it has finished"
                    ));
                }
                Ok(InUse::Postgres(conn))
            }
        }
    }

    /// For `beacon restore` on SQLite: `Ok(None)` when a beacon holds it.
    pub fn exclusive_sqlite(db: &Path) -> anyhow::Result<Option<InUse>> {
        let path = beside(db, ".lock");
        let file = open_lock_file(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(InUse::File(file))),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
    }

    /// For `beacon restore` on PostgreSQL: `Ok(None)` when a beacon holds it.
    pub async fn exclusive_postgres(mut conn: sqlx::PgConnection) -> anyhow::Result<Option<InUse>> {
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(IN_USE_KEY)
            .fetch_one(&mut conn)
            .await
            .context("taking the in-use lock")?;
        Ok(got.then_some(InUse::Postgres(conn)))
    }
}
