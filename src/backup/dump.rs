//! Consistent copies of the live database, and row counts that describe
//! exactly that copy.
//!
//! SQLite: `VACUUM INTO` a temporary file (a read transaction: writers go
//! on), counted from the copy itself, then gzip (so `gunzip` restores it by
//! hand). PostgreSQL: a repeatable-read transaction exports its snapshot;
//! the rows are counted in it and `pg_dump --snapshot` dumps that same
//! snapshot, in the custom format (`pg_restore` reads it; compressed).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;

use anyhow::{anyhow, bail, Context};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};

use crate::config::DatabaseUrl;

/// Table name → rows.
pub type RowCounts = BTreeMap<String, i64>;

/// `VACUUM INTO` `dest` (which must not exist). On a connection of its
/// own, without sqlx's slow-statement warning: a copy of a large database
/// takes seconds by nature.
pub async fn sqlite_copy(
    pool: &sqlx::SqlitePool,
    url: &DatabaseUrl,
    dest: &Path,
) -> anyhow::Result<()> {
    use sqlx::ConnectOptions;
    let dest_text = dest
        .to_str()
        .ok_or_else(|| anyhow!("{} is not a UTF-8 path", dest.display()))?;
    let query = sqlx::query("VACUUM INTO $1").bind(dest_text);
    match crate::config::sqlite_url::file_path(url.expose()) {
        Some(path) => {
            let mut conn = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(false)
                .busy_timeout(std::time::Duration::from_secs(10))
                .disable_statement_logging()
                .connect()
                .await
                .context("opening the database to copy it")?;
            query.execute(&mut conn).await
        }
        None => query.execute(pool).await,
    }
    .with_context(|| format!("VACUUM INTO {}", dest.display()))?;
    Ok(())
}

/// Opens a SQLite file read-only (never creating it).
pub async fn open_sqlite_file(path: &Path) -> anyhow::Result<SqliteConnection> {
    let options = SqliteConnectOptions::from_str("sqlite://")?
        .filename(path)
        .read_only(true)
        .create_if_missing(false);
    SqliteConnection::connect_with(&options)
        .await
        .with_context(|| format!("opening {}", path.display()))
}

/// Rows per table of a SQLite file (every table but SQLite's own).
pub async fn sqlite_row_counts(conn: &mut SqliteConnection) -> anyhow::Result<RowCounts> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
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

/// `PRAGMA integrity_check`: Ok when SQLite answers exactly "ok".
pub async fn sqlite_integrity(conn: &mut SqliteConnection) -> anyhow::Result<()> {
    let answers: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut *conn)
        .await?;
    if answers != ["ok"] {
        bail!("PRAGMA integrity_check: {}", answers.join("; "));
    }
    Ok(())
}

/// gzip `src` into `dest`, streaming.
pub async fn gzip(src: PathBuf, dest: PathBuf) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        use std::io::Write;
        let mut input = std::fs::File::open(&src)?;
        let out =
            std::fs::File::create(&dest).with_context(|| format!("creating {}", dest.display()))?;
        let mut encoder = flate2::write::GzEncoder::new(
            std::io::BufWriter::new(out),
            flate2::Compression::new(6),
        );
        std::io::copy(&mut input, &mut encoder)
            .with_context(|| format!("compressing into {}", dest.display()))?;
        let mut out = encoder.finish()?;
        out.flush()?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok(())
    })
    .await?
}

/// A local file could not be read or written (a full disk, permissions):
/// the machine's fault, not the archive's.
#[derive(Debug, thiserror::Error)]
#[error("{what} {}: {source}", path.display())]
pub struct WriteError {
    what: &'static str,
    path: PathBuf,
    source: std::io::Error,
}

/// gunzip `src` into `dest`, streaming; a truncated or corrupt archive is
/// an error here, and a [`WriteError`] when the local disk is at fault.
pub async fn gunzip(src: PathBuf, dest: PathBuf) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        use std::io::{Read, Write};
        let local = |what: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| WriteError { what, path, source }
        };
        let input =
            std::io::BufReader::new(std::fs::File::open(&src).map_err(local("opening", &src))?);
        let mut decoder = flate2::read::MultiGzDecoder::new(input);
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(&dest).map_err(local("creating", &dest))?,
        );
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match decoder.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(anyhow::Error::new(e).context("gunzip")),
            };
            out.write_all(&buf[..n]).map_err(local("writing", &dest))?;
        }
        out.flush().map_err(local("writing", &dest))?;
        out.into_inner()
            .map_err(|e| local("writing", &dest)(e.into_error()))?
            .sync_all()
            .map_err(local("syncing", &dest))?;
        Ok(())
    })
    .await?
}

/// Rows per table of the current schema, in an open transaction.
pub async fn postgres_row_counts(conn: &mut sqlx::PgConnection) -> anyhow::Result<RowCounts> {
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

/// The URL for libpq tools without its password, and the password (passed
/// in PGPASSWORD, so it is not on the command line for `ps` to show).
pub fn libpq_url(url: &DatabaseUrl) -> anyhow::Result<(String, Option<String>)> {
    let mut parsed = url::Url::parse(url.expose()).context("parsing the PostgreSQL URL")?;
    let password = parsed.password().map(percent_decode);
    let _ = parsed.set_password(None);
    Ok((parsed.to_string(), password))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs a PostgreSQL client tool; a missing binary is named as such.
pub async fn run_pg_tool(
    tool: &str,
    args: &[String],
    password: Option<&str>,
) -> anyhow::Result<()> {
    let mut command = tokio::process::Command::new(tool);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(p) = password {
        command.env("PGPASSWORD", p);
    }
    let output = match command.output().await {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{tool} was not found on PATH: install the PostgreSQL client tools (Debian: apt-get install postgresql-client), the same major version as the server or newer"
        ),
        Err(e) => return Err(e).with_context(|| format!("starting {tool}")),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        bail!("{tool} failed ({}): {}", output.status, stderr.trim());
    }
    Ok(())
}

/// `pg_dump --format=custom` of the snapshot `snapshot` into `dest`.
pub async fn pg_dump(url: &DatabaseUrl, snapshot: &str, dest: &Path) -> anyhow::Result<()> {
    let (url, password) = libpq_url(url)?;
    let args = vec![
        "--format=custom".to_string(),
        format!("--snapshot={snapshot}"),
        "--no-owner".to_string(),
        "--no-privileges".to_string(),
        format!("--file={}", dest.display()),
        format!("--dbname={url}"),
    ];
    run_pg_tool("pg_dump", &args, password.as_deref()).await
}

/// `pg_restore` of `archive` into the database at `url`.
pub async fn pg_restore(
    url: &str,
    password: Option<&str>,
    archive: &Path,
    extra: &[&str],
) -> anyhow::Result<()> {
    let mut args = vec![
        "--exit-on-error".to_string(),
        "--no-owner".to_string(),
        "--no-privileges".to_string(),
        format!("--dbname={url}"),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(archive.display().to_string());
    run_pg_tool("pg_restore", &args, password).await
}

/// `CREATE DATABASE`, retried while PostgreSQL says its template is busy
/// (55006: another CREATE DATABASE, or a session on template1, at the same
/// moment).
pub async fn create_database(pool: &sqlx::PgPool, name: &str) -> anyhow::Result<()> {
    let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
    let mut attempt = 0;
    loop {
        match sqlx::query(&sql).execute(pool).await {
            Ok(_) => return Ok(()),
            Err(sqlx::Error::Database(e))
                if e.code().as_deref() == Some("55006") && attempt < 20 =>
            {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("creating database {name}")))
            }
        }
    }
}
