//! A PostgreSQL server's databases, for backups: scratch databases that a
//! verification restores into and drops, and the database a restore
//! creates when it is not there yet.

use super::{Pools, Store, StoreError};

/// A connection to a PostgreSQL server for creating and dropping
/// databases: beacon's own pool, or one opened on the server's maintenance
/// database.
#[derive(Clone, Debug)]
pub struct PgServer(sqlx::PgPool);

impl Store {
    /// Beacon's own PostgreSQL server, if the store is on PostgreSQL.
    pub fn postgres_server(&self) -> Option<PgServer> {
        match &self.0 {
            Pools::Postgres(pool) => Some(PgServer(pool.clone())),
            Pools::Sqlite(_) => None,
        }
    }
}

impl PgServer {
    /// Opens a pool on the database at `url` (the server's `postgres`).
    pub async fn connect(url: &str) -> Result<PgServer, StoreError> {
        Ok(PgServer(sqlx::PgPool::connect(url).await?))
    }

    pub async fn database_exists(&self, name: &str) -> Result<bool, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(name)
                .fetch_one(&self.0)
                .await?,
        )
    }

    /// `CREATE DATABASE`, retried while PostgreSQL says its template is busy
    /// (55006: another CREATE DATABASE, or a session on template1, at the
    /// same moment).
    pub async fn create_database(&self, name: &str) -> Result<(), StoreError> {
        let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        let mut attempt = 0;
        loop {
            match sqlx::query(&sql).execute(&self.0).await {
                Ok(_) => return Ok(()),
                Err(sqlx::Error::Database(e))
                    if e.code().as_deref() == Some("55006") && attempt < 20 =>
                {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// `DROP DATABASE IF EXISTS … WITH (FORCE)`.
    pub async fn drop_database(&self, name: &str) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            name.replace('"', "\"\"")
        ))
        .execute(&self.0)
        .await?;
        Ok(())
    }

    /// Drops every database whose name starts with `prefix` (scratch
    /// databases of a run that was cancelled before it could drop its own).
    pub async fn drop_databases_with_prefix(&self, prefix: &str) -> Result<u64, StoreError> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT datname FROM pg_database WHERE left(datname, length($1)) = $1",
        )
        .bind(prefix)
        .fetch_all(&self.0)
        .await?;
        for name in &names {
            self.drop_database(name).await?;
        }
        Ok(names.len() as u64)
    }

    pub async fn close(&self) {
        self.0.close().await;
    }
}
