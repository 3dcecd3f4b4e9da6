//! Turning a copy of the database into an archive and back: gzip for
//! SQLite's `VACUUM INTO` copy (so `gunzip` restores it by hand), and the
//! PostgreSQL client tools (`pg_dump --snapshot` of the store's exported
//! snapshot, in the custom format; `pg_restore`). The copies themselves
//! and their row counts are the store's (`store::copy`).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context};

use crate::config::DatabaseUrl;
pub use crate::store::RowCounts;

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
