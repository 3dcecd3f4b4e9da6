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
use crate::store::{AdvisoryLock, PgDatabase, Store};

/// 'beacon' in ASCII: the advisory lock's key.
const ADVISORY_KEY: i64 = 0x6265_6163_6f6e;

#[derive(Debug)]
pub enum BackupLock {
    File {
        _file: File,
        path: PathBuf,
    },
    Postgres(AdvisoryLock),
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
        if store.is_postgres() {
            let lock = store
                .try_advisory_lock(ADVISORY_KEY, false)
                .await
                .context("taking the backup lock")?;
            return Self::postgres_held(lock);
        }
        match sqlite_url::file_path(url.expose()) {
            None => Ok(BackupLock::InMemory),
            Some(db) => Self::sqlite(&db),
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

    pub async fn postgres(db: PgDatabase) -> anyhow::Result<BackupLock> {
        let lock = db
            .try_advisory_lock(ADVISORY_KEY, false)
            .await
            .context("taking the backup lock")?;
        Self::postgres_held(lock)
    }

    fn postgres_held(lock: Option<AdvisoryLock>) -> anyhow::Result<BackupLock> {
        match lock {
            Some(lock) => Ok(BackupLock::Postgres(lock)),
            None => Err(anyhow!(
                "another backup, verify, prune or restore is running (it holds PostgreSQL advisory lock {ADVISORY_KEY})"
            )),
        }
    }

    /// Releases the lock now (PostgreSQL: unlocked before its session
    /// closes, so a run that starts right after finds it free; dropped
    /// without this, it is unlocked in the background).
    pub async fn release(self) {
        if let BackupLock::Postgres(lock) = self {
            lock.release().await;
        }
    }
}

/// 'beacon' + 1: the key of the in-use lock.
const IN_USE_KEY: i64 = ADVISORY_KEY + 1;

/// Says "a beacon process is using this database": `beacon serve` holds it
/// for its whole life, `beacon restore` takes it exclusively, so a restore
/// never swaps a database under a running beacon and beacon never starts
/// in the middle of a restore. SQLite: `<db>.lock`, held exclusively by
/// the one `beacon serve` a SQLite file may have; PostgreSQL: a session
/// advisory lock held shared, by every replica.
#[derive(Debug)]
pub enum InUse {
    File(File),
    Postgres(AdvisoryLock),
    InMemory,
}

impl InUse {
    /// For `beacon serve`.
    pub async fn hold(store: &Store, url: &DatabaseUrl) -> anyhow::Result<InUse> {
        if store.is_postgres() {
            return match store
                .try_advisory_lock(IN_USE_KEY, true)
                .await
                .context("taking the in-use lock")?
            {
                Some(lock) => Ok(InUse::Postgres(lock)),
                None => Err(anyhow!(
                    "a restore is replacing this database (it holds PostgreSQL advisory lock {IN_USE_KEY}); start beacon when it has finished"
                )),
            };
        }
        match sqlite_url::file_path(url.expose()) {
            None => Ok(InUse::InMemory),
            Some(db) => Self::hold_sqlite(&db),
        }
    }

    /// SQLite is one process's database: `beacon serve` holds `<db>.lock`
    /// exclusively, and writes who it is into it, so a second one (or one
    /// started during a restore) is refused before it writes anything,
    /// with a message that says who holds the file.
    fn hold_sqlite(db: &Path) -> anyhow::Result<InUse> {
        use std::io::{Read, Seek, Write};
        let path = beside(db, ".lock");
        let mut file = open_lock_file(&path)?;
        match file.try_lock() {
            Ok(()) => {
                let me = format!(
                    "beacon serve, pid {}, host {}\n",
                    std::process::id(),
                    std::fs::read_to_string("/proc/sys/kernel/hostname")
                        .map(|h| h.trim().to_string())
                        .unwrap_or_else(|_| "unknown".into())
                );
                // Best effort: the lock, not the text, is what guards.
                let _ = file
                    .set_len(0)
                    .and_then(|()| file.seek(std::io::SeekFrom::Start(0)))
                    .and_then(|_| file.write_all(me.as_bytes()));
                Ok(InUse::File(file))
            }
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = File::open(&path).and_then(|f| f.take(200).read_to_string(&mut holder));
                let holder = holder.trim();
                let who = if holder.is_empty() {
                    "another process (a beacon serving it, or a restore replacing it)".to_string()
                } else {
                    holder.to_string()
                };
                Err(anyhow!(
                    "the SQLite database {} is in use by {who} (it holds {}); a SQLite database serves one beacon process: stop the other one first, and to run several replicas use PostgreSQL ([storage] url = \"postgres://…\"; see \"Running several replicas\" in README.md)",
                    db.display(),
                    path.display()
                ))
            }
            Err(TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
    }

    /// For `beacon restore` on SQLite: `Ok(None)` when a beacon holds it.
    pub fn exclusive_sqlite(db: &Path) -> anyhow::Result<Option<InUse>> {
        let path = beside(db, ".lock");
        let mut file = open_lock_file(&path)?;
        match file.try_lock() {
            Ok(()) => {
                use std::io::{Seek, Write};
                // Said to a `beacon serve` refused meanwhile.
                let _ = file
                    .set_len(0)
                    .and_then(|()| file.seek(std::io::SeekFrom::Start(0)))
                    .and_then(|_| writeln!(file, "beacon restore, pid {}", std::process::id()));
                Ok(Some(InUse::File(file)))
            }
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
    }

    /// For `beacon restore` on PostgreSQL: `Ok(None)` when a beacon holds it.
    pub async fn exclusive_postgres(db: PgDatabase) -> anyhow::Result<Option<InUse>> {
        let lock = db
            .try_advisory_lock(IN_USE_KEY, false)
            .await
            .context("taking the in-use lock")?;
        Ok(lock.map(InUse::Postgres))
    }
}
