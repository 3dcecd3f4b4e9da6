//! Consistent copies of the live database for backups, and the checks a
//! copy or a restored database is put through: what backups need of the
//! database, kept here so nothing outside the store speaks SQL.
//!
//! SQLite: `VACUUM INTO` a file (a read transaction: writers go on), read
//! back read-only. PostgreSQL: a repeatable-read transaction exports its
//! snapshot for `pg_dump --snapshot`, and counts rows in that same
//! snapshot.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};

use super::{Pools, Store, StoreError};
use crate::config::DatabaseUrl;

/// Table name → rows.
pub type RowCounts = BTreeMap<String, i64>;

impl Store {
    /// SQLite: `VACUUM INTO` `dest` (which must not exist). On a connection
    /// of its own, without sqlx's slow-statement warning: a copy of a large
    /// database takes seconds by nature. An in-memory database is copied
    /// through the pool.
    pub async fn copy_sqlite_into(&self, url: &DatabaseUrl, dest: &Path) -> Result<(), StoreError> {
        let Pools::Sqlite(pool) = &self.0 else {
            return Err(StoreError::invalid("database", "VACUUM INTO needs SQLite"));
        };
        let dest_text = dest.to_str().ok_or_else(|| {
            StoreError::invalid("path", format!("{} is not a UTF-8 path", dest.display()))
        })?;
        let query = sqlx::query("VACUUM INTO $1").bind(dest_text);
        match crate::config::sqlite_url::file_path(url.expose()) {
            Some(path) => {
                let mut conn = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(false)
                    .busy_timeout(std::time::Duration::from_secs(10))
                    .disable_statement_logging()
                    .connect()
                    .await?;
                query.execute(&mut conn).await?;
            }
            None => {
                query.execute(pool).await?;
            }
        }
        Ok(())
    }

    /// PostgreSQL: a read-only repeatable-read transaction whose snapshot
    /// `pg_dump --snapshot` can share while it stays open.
    pub async fn export_snapshot(&self) -> Result<ExportedSnapshot, StoreError> {
        let Pools::Postgres(pool) = &self.0 else {
            return Err(StoreError::invalid(
                "database",
                "snapshot export needs PostgreSQL",
            ));
        };
        let mut tx = pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let id: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
            .fetch_one(&mut *tx)
            .await?;
        Ok(ExportedSnapshot { tx, id })
    }
}

/// An exported PostgreSQL snapshot, alive until released.
pub struct ExportedSnapshot {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    id: String,
}

impl ExportedSnapshot {
    /// The name `pg_dump --snapshot` takes.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Rows per table, as the snapshot sees them.
    pub async fn row_counts(&mut self) -> Result<RowCounts, StoreError> {
        postgres_row_counts(&mut self.tx).await
    }

    pub async fn release(self) {
        let _ = self.tx.rollback().await;
    }
}

/// A SQLite file opened read-only (never created): a backup's copy, or a
/// restored archive being checked.
pub struct SqliteFile(SqliteConnection);

impl SqliteFile {
    pub async fn open(path: &Path) -> Result<SqliteFile, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .read_only(true)
            .create_if_missing(false);
        SqliteConnection::connect_with(&options)
            .await
            .map(SqliteFile)
            .map_err(|source| StoreError::Connect {
                url: path.display().to_string(),
                source: source.into(),
            })
    }

    /// Rows per table (every table but SQLite's own).
    pub async fn row_counts(&mut self) -> Result<RowCounts, StoreError> {
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .fetch_all(&mut self.0)
        .await?;
        let mut counts = RowCounts::new();
        for table in tables {
            let n: i64 = sqlx::query_scalar(&format!(
                "SELECT COUNT(*) FROM \"{}\"",
                table.replace('"', "\"\"")
            ))
            .fetch_one(&mut self.0)
            .await?;
            counts.insert(table, n);
        }
        Ok(counts)
    }

    /// `PRAGMA integrity_check`: Ok when SQLite answers exactly "ok".
    pub async fn integrity(&mut self) -> Result<(), StoreError> {
        let answers: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&mut self.0)
            .await?;
        if answers != ["ok"] {
            return Err(StoreError::IntegrityCheck {
                answers: answers.join("; "),
            });
        }
        Ok(())
    }

    pub async fn close(self) {
        let _ = self.0.close().await;
    }

    /// `PRAGMA wal_checkpoint(TRUNCATE)` on the database at `path`, best
    /// effort (before a restore moves it aside).
    pub async fn checkpoint(path: &Path) {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(false);
        if let Ok(mut conn) = SqliteConnection::connect_with(&options).await {
            let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&mut conn)
                .await;
            let _ = conn.close().await;
        }
    }
}

/// Rows per table of the current schema.
async fn postgres_row_counts(conn: &mut sqlx::PgConnection) -> Result<RowCounts, StoreError> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut counts = RowCounts::new();
    for table in tables {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM \"{}\"",
            table.replace('"', "\"\"")
        ))
        .fetch_one(&mut *conn)
        .await?;
        counts.insert(table, n);
    }
    Ok(counts)
}

/// One PostgreSQL database reached by URL, outside beacon's pool: a scratch
/// database being checked, or the database a restore replaces.
pub struct PgDatabase(sqlx::PgConnection);

impl PgDatabase {
    pub async fn connect(url: &str) -> Result<PgDatabase, StoreError> {
        Ok(PgDatabase(sqlx::PgConnection::connect(url).await?))
    }

    /// `None` when the database does not exist (SQLSTATE 3D000).
    pub async fn connect_if_exists(url: &str) -> Result<Option<PgDatabase>, StoreError> {
        match sqlx::PgConnection::connect(url).await {
            Ok(conn) => Ok(Some(PgDatabase(conn))),
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("3D000") => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether beacon's tables are there.
    pub async fn has_beacon_tables(&mut self) -> Result<bool, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT to_regclass('services') IS NOT NULL")
                .fetch_one(&mut self.0)
                .await?,
        )
    }

    /// The tables of the current schema.
    pub async fn table_names(&mut self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()",
        )
        .fetch_all(&mut self.0)
        .await?)
    }

    pub async fn row_counts(&mut self) -> Result<RowCounts, StoreError> {
        postgres_row_counts(&mut self.0).await
    }

    pub async fn close(self) {
        let _ = self.0.close().await;
    }

    pub(super) fn into_connection(self) -> sqlx::PgConnection {
        self.0
    }
}
