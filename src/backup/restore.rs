//! `beacon restore`: put a backup back, safely, at 3 a.m.
//!
//! Whatever happens, the existing database is either left untouched or
//! replaced whole. The backup is downloaded and checked (SHA-256 against its
//! manifest), restored beside the target and verified (integrity, row
//! counts) before anything existing is touched.
//!
//! SQLite: the verified copy is fsynced, the old file is kept as
//! `<db>.pre-restore-<time>` (with its `-wal`/`-shm`), stale `-wal`/`-shm`
//! files are removed so SQLite cannot replay old pages onto the restored
//! copy, and the copy is renamed into place (atomic) and the folder fsynced.
//! PostgreSQL: the archive is verified in a scratch database, then applied
//! to the target in one transaction (`pg_restore` script through `psql
//! --single-transaction`, after dropping beacon's tables, so a backup of an
//! older schema leaves no newer table behind); a failure rolls it all back.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, Context};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::lock::{beside, BackupLock, InUse};
use super::target::BackupTarget;
use super::{dump, fetch, list_target, Listed, Manifest, StepError};
use crate::config::sqlite_url;
use crate::config::{BackupConfig, DatabaseUrl};
use crate::store::{PgDatabase, PgServer, SqliteFile};

#[derive(Debug, Clone, Default)]
pub struct RestoreRequest {
    /// A backup id; `None` or "latest": the newest (at or before `at`).
    pub backup: Option<String>,
    pub at: Option<DateTime<Utc>>,
    /// Where to restore: a SQLite path or URL, or a PostgreSQL URL;
    /// default: the configured store.
    pub to: Option<String>,
    pub dry_run: bool,
    pub force: bool,
    pub if_db_not_exists: bool,
    pub if_backup_exists: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    /// "restored", "dry-run" or "skipped".
    pub outcome: &'static str,
    pub reason: Option<String>,
    pub backup: Option<String>,
    pub backup_created_at: Option<String>,
    pub backup_age_seconds: Option<i64>,
    pub database: String,
    /// Where the replaced database was kept (SQLite).
    pub kept_as: Option<String>,
    pub schema_version: Option<i64>,
    pub rows: Option<i64>,
    pub seconds: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Exit 1: nothing was done; `hint` says what to do instead.
    #[error("refused: {reason}\nTry: {hint}")]
    Refused { reason: String, hint: String },
    /// Exit 2: the backup failed verification; nothing was changed.
    #[error("{0}; nothing was changed")]
    Verification(StepError),
    /// Exit 3: the backup target could not be read; nothing was changed.
    #[error("the backup target is unreachable: {0:#}; nothing was changed")]
    Storage(anyhow::Error),
    /// Exit 1: a local failure (disk, permissions); the existing database
    /// is untouched.
    #[error("restore failed: {0:#}")]
    Failed(anyhow::Error),
}

impl RestoreError {
    pub fn exit_code(&self) -> u8 {
        match self {
            RestoreError::Refused { .. } | RestoreError::Failed(_) => 1,
            RestoreError::Verification(_) => 2,
            RestoreError::Storage(_) => 3,
        }
    }
}

fn refused(reason: impl Into<String>, hint: impl Into<String>) -> RestoreError {
    RestoreError::Refused {
        reason: reason.into(),
        hint: hint.into(),
    }
}

/// A download or checksum problem: a target that does not answer (exit 3)
/// or a backup that is damaged (exit 2: a damaged manifest, a missing or
/// damaged archive).
fn fetch_error(e: StepError) -> RestoreError {
    if e.is_unavailable() {
        RestoreError::Storage(anyhow!("{e}"))
    } else {
        RestoreError::Verification(e)
    }
}

enum Destination {
    Sqlite(PathBuf),
    Postgres(DatabaseUrl),
}

impl Destination {
    fn parse(text: &str) -> Result<Destination, RestoreError> {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(Destination::Postgres(DatabaseUrl::new(text)));
        }
        let url = if text.starts_with("sqlite:") {
            text.to_string()
        } else {
            format!("sqlite://{text}")
        };
        match sqlite_url::file_path(&url) {
            Some(path) => Ok(Destination::Sqlite(path)),
            None => Err(refused(
                format!("cannot restore into {text}: an in-memory database"),
                "--to data/beacon.db",
            )),
        }
    }

    fn describe(&self) -> String {
        match self {
            Destination::Sqlite(p) => format!("SQLite {}", p.display()),
            Destination::Postgres(url) => format!("PostgreSQL {}", url.redacted()),
        }
    }
}

/// "3 h 20 min", for a backup's age.
fn age_text(secs: i64) -> String {
    crate::domain::time::human_minutes(secs.max(0) / 60)
}

pub async fn restore(
    config: &BackupConfig,
    storage_url: &DatabaseUrl,
    req: &RestoreRequest,
    say: &dyn Fn(&str),
) -> Result<RestoreReport, RestoreError> {
    let began = Instant::now();
    let dest = Destination::parse(req.to.as_deref().unwrap_or(storage_url.expose()))?;
    let mut report = RestoreReport {
        outcome: "skipped",
        reason: None,
        backup: None,
        backup_created_at: None,
        backup_age_seconds: None,
        database: dest.describe(),
        kept_as: None,
        schema_version: None,
        rows: None,
        seconds: 0.0,
    };

    // What is there now, and who uses it: decided before any download,
    // and before anything is created. A database that is there is all
    // --if-db-not-exists needs to know, whoever holds it.
    let (exists, conn) = match &dest {
        Destination::Sqlite(db) => (sqlite_exists(db), None),
        Destination::Postgres(url) => postgres_exists(url).await?,
    };
    if exists && req.if_db_not_exists {
        report.reason = Some(format!("{} already exists", dest.describe()));
        report.seconds = began.elapsed().as_secs_f64();
        return Ok(report);
    }
    // A dry run changes nothing, so it takes no lock: a lock file or a
    // folder for it would be a change.
    let guards = match (&dest, req.dry_run) {
        (_, true) => Guards::none(),
        (Destination::Sqlite(db), false) => sqlite_guards(db, req).await?,
        (Destination::Postgres(url), false) => postgres_guards(url, conn, req).await?,
    };
    if exists && !req.force && !req.dry_run {
        return Err(refused(
            format!("{} already holds a database", dest.describe()),
            "add --force to replace it (SQLite keeps the current file as <db>.pre-restore-<time>), or --to a new place",
        ));
    }

    let target = BackupTarget::open(config)
        .await
        .map_err(RestoreError::Storage)?;
    let listed = list_target(&target, &Default::default())
        .await
        .map_err(RestoreError::Storage)?;
    let chosen = choose(&listed, req)?;
    // Backups passed over because their manifest cannot be read, named.
    for l in listed.iter().filter(|l| {
        chosen.is_none_or(|c| l.id > c.id) && req.at.is_none_or(|at| l.created_at <= at)
    }) {
        if let Some(u) = &l.unreadable {
            say(&format!(
                "skipped backup {}: its manifest cannot be read ({}); see beacon backup verify {}",
                l.id, u.reason, l.id
            ));
        }
    }
    let Some(chosen) = chosen else {
        if req.if_backup_exists {
            report.reason = Some(format!("{} holds no backup yet", config.target));
            report.seconds = began.elapsed().as_secs_f64();
            return Ok(report);
        }
        return Err(refused(
            format!("{} holds no complete backup", config.target),
            "beacon backup list (and check backup.target and the credentials)",
        ));
    };
    let manifest = chosen
        .manifest
        .clone()
        .ok_or_else(|| refused("the chosen backup has no manifest", "beacon backup list"))?;
    let age = (Utc::now() - chosen.created_at).num_seconds();
    report.backup = Some(chosen.id.clone());
    report.backup_created_at = Some(chosen.created_at.to_rfc3339());
    report.backup_age_seconds = Some(age);
    report.schema_version = Some(manifest.schema_version);
    report.rows = Some(manifest.tables.values().sum());
    if manifest.database
        != match dest {
            Destination::Sqlite(_) => "sqlite",
            Destination::Postgres(_) => "postgres",
        }
    {
        return Err(refused(
            format!(
                "backup {} is a {} backup; {} is not",
                chosen.id,
                manifest.database,
                dest.describe()
            ),
            "--to a database of the same kind",
        ));
    }
    say(&format!(
        "{} backup {} (taken {} UTC, {} ago, {} bytes, schema version {}, {} rows) into {}{}",
        if req.dry_run { "Checking" } else { "Restoring" },
        chosen.id,
        chosen.created_at.format("%Y-%m-%d %H:%M:%S"),
        age_text(age),
        manifest.size,
        manifest.schema_version,
        report.rows.unwrap_or(0),
        dest.describe(),
        match (&dest, exists, req.dry_run) {
            (_, _, true) => "; dry run: nothing will be changed".to_string(),
            (Destination::Sqlite(db), true, false) => format!(
                "; the current database will be kept as {}",
                beside(db, ".pre-restore-<time>").display()
            ),
            _ => String::new(),
        }
    ));

    let stamp = Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    match &dest {
        Destination::Sqlite(db) => {
            restore_sqlite(
                &target,
                &manifest,
                db,
                exists,
                &stamp,
                config,
                req,
                &mut report,
                say,
            )
            .await?
        }
        Destination::Postgres(url) => {
            restore_postgres(&target, &manifest, url, config, req, say).await?
        }
    }
    drop(guards);
    report.outcome = if req.dry_run { "dry-run" } else { "restored" };
    report.seconds = began.elapsed().as_secs_f64();
    Ok(report)
}

/// The newest complete backup matching the request.
fn choose<'a>(
    listed: &'a [Listed],
    req: &RestoreRequest,
) -> Result<Option<&'a Listed>, RestoreError> {
    match req.backup.as_deref() {
        Some(id) if id != "latest" => match listed.iter().find(|l| l.id == id) {
            Some(l) if l.unreadable.is_some() => Err(RestoreError::Verification(StepError {
                id: id.into(),
                step: "manifest",
                cause: anyhow!(
                    "{}",
                    l.unreadable.as_ref().map_or("", |u| u.reason.as_str())
                ),
            })),
            Some(l) if l.complete() => Ok(Some(l)),
            Some(_) => Err(refused(
                format!("backup {id} is incomplete (no manifest, or its archive is missing)"),
                "beacon backup list, and restore a complete one",
            )),
            None => Err(refused(
                format!("there is no backup {id}"),
                "beacon backup list",
            )),
        },
        _ => Ok(listed
            .iter()
            .filter(|l| l.complete())
            .find(|l| req.at.is_none_or(|at| l.created_at <= at))),
    }
}

/// Locks held for the whole restore.
struct Guards {
    _in_use: Option<InUse>,
    _backup: Option<BackupLock>,
}

impl Guards {
    fn none() -> Guards {
        Guards {
            _in_use: None,
            _backup: None,
        }
    }

    /// Refuses while a beacon uses the database (`in_use` is `None`) or a
    /// backup, verify or prune runs, unless `--force` (or `--dry-run`,
    /// which changes nothing).
    async fn take<F, Fut>(
        in_use: Option<InUse>,
        what: &str,
        backup_lock: F,
        req: &RestoreRequest,
    ) -> Result<Guards, RestoreError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<BackupLock>>,
    {
        if in_use.is_none() && !req.force && !req.dry_run {
            return Err(refused(
                format!("a beacon process is using {what}"),
                "stop beacon first (scripts/restore.sh does), or add --force",
            ));
        }
        let backup = match backup_lock().await {
            Ok(lock) => Some(lock),
            Err(_) if req.force => None,
            Err(e) => {
                return Err(refused(
                    format!("{e:#}"),
                    "wait for it to finish, then run the restore again",
                ))
            }
        };
        Ok(Guards {
            _in_use: in_use,
            _backup: backup,
        })
    }
}

fn sqlite_exists(db: &Path) -> bool {
    std::fs::metadata(db).map(|m| m.len() > 0).unwrap_or(false)
}

async fn sqlite_guards(db: &Path, req: &RestoreRequest) -> Result<Guards, RestoreError> {
    if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))
            .map_err(RestoreError::Failed)?;
    }
    let in_use = InUse::exclusive_sqlite(db).map_err(RestoreError::Failed)?;
    let what = format!(
        "{} (it holds {})",
        db.display(),
        beside(db, ".lock").display()
    );
    Guards::take(in_use, &what, || async { BackupLock::sqlite(db) }, req).await
}

/// Whether the PostgreSQL database holds beacon's tables, and the
/// connection to it (`None`: the database does not exist yet).
async fn postgres_exists(url: &DatabaseUrl) -> Result<(bool, Option<PgDatabase>), RestoreError> {
    let mut db = match PgDatabase::connect_if_exists(url.expose()).await {
        Ok(Some(db)) => db,
        // The database does not exist yet; restore creates it.
        Ok(None) => return Ok((false, None)),
        Err(e) => {
            return Err(RestoreError::Failed(
                anyhow::Error::new(e).context(format!("connecting to {}", url.redacted())),
            ))
        }
    };
    let exists = db.has_beacon_tables().await.map_err(|e| {
        RestoreError::Failed(anyhow::Error::new(e).context(format!("reading {}", url.redacted())))
    })?;
    Ok((exists, Some(db)))
}

async fn postgres_guards(
    url: &DatabaseUrl,
    db: Option<PgDatabase>,
    req: &RestoreRequest,
) -> Result<Guards, RestoreError> {
    let Some(db) = db else {
        return Ok(Guards::none());
    };
    let in_use = InUse::exclusive_postgres(db)
        .await
        .map_err(RestoreError::Failed)?;
    let lock = || async {
        let db = PgDatabase::connect(url.expose()).await?;
        BackupLock::postgres(db).await
    };
    Guards::take(in_use, &url.redacted(), lock, req).await
}

#[allow(clippy::too_many_arguments)]
async fn restore_sqlite(
    target: &BackupTarget,
    manifest: &Manifest,
    db: &Path,
    exists: bool,
    stamp: &str,
    config: &BackupConfig,
    req: &RestoreRequest,
    report: &mut RestoreReport,
    say: &dyn Fn(&str),
) -> Result<(), RestoreError> {
    let id = manifest.id.as_str();
    let folder = db
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // Beside the target, so the final rename stays on one file system; a
    // dry run works in the temporary folder and leaves the target's alone.
    let base = if req.dry_run {
        config.temp_dir.clone().unwrap_or_else(std::env::temp_dir)
    } else {
        folder.to_path_buf()
    };
    let work = tempfile::Builder::new()
        .prefix(".beacon-restore-")
        .tempdir_in(&base)
        .with_context(|| format!("creating a temporary folder in {}", base.display()))
        .map_err(RestoreError::Failed)?;
    let (manifest, archive) = fetch(target, id, work.path()).await.map_err(fetch_error)?;
    say(&format!(
        "downloaded; SHA-256 matches the manifest ({})",
        manifest.sha256
    ));
    let restored = work.path().join("restored.sqlite");
    dump::gunzip(archive.clone(), restored.clone())
        .await
        .map_err(|e| {
            if e.is::<dump::WriteError>() {
                RestoreError::Failed(e)
            } else {
                RestoreError::Verification(StepError {
                    id: id.into(),
                    step: "decompress",
                    cause: e,
                })
            }
        })?;
    let _ = std::fs::remove_file(&archive);
    let verified = async {
        let mut file = SqliteFile::open(&restored).await?;
        file.integrity().await?;
        let got = file.row_counts().await?;
        file.close().await;
        super::compare_counts(&manifest.tables, &got)
    }
    .await;
    verified.map_err(|e| {
        RestoreError::Verification(StepError {
            id: id.into(),
            step: "verify",
            cause: e,
        })
    })?;
    say("restored copy verified: integrity ok, row counts match the manifest");
    if req.dry_run {
        return Ok(());
    }

    let wal = beside(db, "-wal");
    let shm = beside(db, "-shm");
    let kept = beside(db, &format!(".pre-restore-{stamp}"));
    let swap = || -> anyhow::Result<()> {
        if exists {
            // Fold the old WAL into the old file, so the kept copy is whole
            // on its own. (With --force and beacon running this may be
            // refused as busy; the WAL is then kept beside the copy.)
            checkpoint(db);
            std::fs::hard_link(db, &kept)
                .or_else(|_| std::fs::copy(db, &kept).map(|_| ()))
                .with_context(|| format!("keeping the current database as {}", kept.display()))?;
        }
        for (file, suffix) in [(&wal, "-wal"), (&shm, "-shm")] {
            if file.exists() {
                let keep = beside(&kept, suffix);
                std::fs::rename(file, &keep)
                    .with_context(|| format!("moving the stale {} aside", file.display()))?;
            }
        }
        std::fs::rename(&restored, db)
            .with_context(|| format!("renaming the restored copy to {}", db.display()))?;
        std::fs::File::open(folder)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing {}", folder.display()))?;
        Ok(())
    };
    swap().map_err(RestoreError::Failed)?;
    if exists {
        report.kept_as = Some(kept.display().to_string());
    }
    say(&format!("{} now holds backup {id}", db.display()));
    Ok(())
}

/// `PRAGMA wal_checkpoint(TRUNCATE)` on the old database, best effort.
fn checkpoint(db: &Path) {
    let db = db.to_path_buf();
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(SqliteFile::checkpoint(&db));
    })
    .join();
}

async fn restore_postgres(
    target: &BackupTarget,
    manifest: &Manifest,
    url: &DatabaseUrl,
    config: &BackupConfig,
    req: &RestoreRequest,
    say: &dyn Fn(&str),
) -> Result<(), RestoreError> {
    let id = manifest.id.as_str();
    let base = config.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
    let work = tempfile::Builder::new()
        .prefix("beacon-restore-")
        .tempdir_in(&base)
        .with_context(|| format!("creating a temporary folder in {}", base.display()))
        .map_err(RestoreError::Failed)?;
    let (manifest, archive) = fetch(target, id, work.path()).await.map_err(fetch_error)?;
    say(&format!(
        "downloaded; SHA-256 matches the manifest ({})",
        manifest.sha256
    ));

    // The server's maintenance database, for creating databases.
    let (plain, password) = dump::libpq_url(url).map_err(RestoreError::Failed)?;
    let mut admin_url =
        url::Url::parse(url.expose()).map_err(|e| RestoreError::Failed(e.into()))?;
    let target_db = admin_url.path().trim_start_matches('/').to_string();
    admin_url.set_path("postgres");
    let admin = PgServer::connect(admin_url.as_str()).await.map_err(|e| {
        RestoreError::Failed(
            anyhow::Error::new(e).context("connecting to the server's postgres database"),
        )
    })?;
    // Verify in a scratch database first: a bad archive never touches the target.
    super::restore_check(&manifest, &archive, work.path(), Some(&admin), url)
        .await
        .map_err(|e| {
            // The server, not the backup, failed the check: say so (exit 1).
            if e.is_unavailable() {
                RestoreError::Failed(anyhow!("{e}"))
            } else {
                RestoreError::Verification(e)
            }
        })?;
    say("verified in a scratch database: pg_restore clean, row counts match the manifest");
    if req.dry_run {
        admin.close().await;
        return Ok(());
    }
    let apply = async {
        if !admin.database_exists(&target_db).await? {
            admin
                .create_database(&target_db)
                .await
                .with_context(|| format!("creating database {target_db}"))?;
        }
        // beacon's tables in the target now: dropped in the same transaction
        // as the restore, so an older backup leaves no newer table behind.
        let mut db = PgDatabase::connect(url.expose()).await?;
        let present = db.table_names().await?;
        db.close().await;
        let ours: Vec<String> = present
            .into_iter()
            .filter(|t| {
                crate::store::BEACON_TABLES.contains(&t.as_str()) || manifest.tables.contains_key(t)
            })
            .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
            .collect();
        let script = work.path().join("restore.sql");
        dump::run_pg_tool(
            "pg_restore",
            &[
                "--clean".into(),
                "--if-exists".into(),
                "--no-owner".into(),
                "--no-privileges".into(),
                format!("--file={}", script.display()),
                archive.display().to_string(),
            ],
            None,
        )
        .await?;
        let mut args = vec![
            "-X".to_string(),
            "--quiet".into(),
            "--single-transaction".into(),
            "--set=ON_ERROR_STOP=1".into(),
            format!("--dbname={plain}"),
        ];
        if !ours.is_empty() {
            args.push(format!(
                "--command=DROP TABLE IF EXISTS {} CASCADE",
                ours.join(", ")
            ));
        }
        args.push(format!("--file={}", script.display()));
        dump::run_pg_tool("psql", &args, password.as_deref()).await?;
        let mut db = PgDatabase::connect(url.expose()).await?;
        let got = db.row_counts().await?;
        db.close().await;
        super::compare_counts(&manifest.tables, &got)
    }
    .await;
    admin.close().await;
    apply.map_err(RestoreError::Failed)?;
    say(&format!("{} now holds backup {id}", url.redacted()));
    Ok(())
}
