//! Verified, rotating backups of beacon's own database.
//!
//! One backup = an archive and, written last, its manifest:
//! `<yyyy>/<mm>/<id>.sqlite.gz` (or `.pgdump`) and `<id>.manifest.json`
//! under the target. A backup without a manifest is incomplete and never
//! offered for restore. A run is backup → verify → prune, under a lock so
//! that two runs (or a run and a restore) never overlap.
//!
//! Verification trusts nothing the store said on upload: it downloads the
//! archive again, checks size and SHA-256 against the manifest, restores it
//! into a scratch database, checks its integrity and compares row counts.

pub mod dump;
pub mod lock;
pub mod restore;
pub mod rotation;
pub mod target;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, Context};
use chrono::{DateTime, Datelike, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::config::{BackupConfig, DatabaseUrl};
use crate::store::{BackupRecord, PgDatabase, PgServer, RowCounts, SqliteFile, Store};
use rotation::{Candidate, Decision, Verification};
use target::{BackupTarget, Digested, Object, ReadError};

pub use lock::BackupLock;

/// The manifest: everything needed to check and restore one archive, also
/// by hand (`sha256sum`, `gunzip`, `sqlite3` / `pg_restore`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub id: String,
    pub created_at: String,
    /// "sqlite" or "postgres".
    pub database: String,
    /// The last migration applied to the database.
    pub schema_version: i64,
    pub beacon_version: String,
    /// The archive's key, relative to the target.
    pub archive: String,
    /// "gzip" (a SQLite file) or "pg_dump-custom".
    pub compression: String,
    pub size: u64,
    pub sha256: String,
    pub tables: RowCounts,
}

const ID_FORMAT: &str = "%Y%m%dT%H%M%S%.3fZ";

/// Sortable, time-based: `20260312T220000.123Z`.
pub fn backup_id(at: DateTime<Utc>) -> String {
    at.format(ID_FORMAT).to_string()
}

pub fn id_time(id: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(id, ID_FORMAT)
        .ok()
        .map(|t| t.and_utc())
}

fn folder(at: DateTime<Utc>) -> String {
    format!("{:04}/{:02}", at.year(), at.month())
}

pub fn manifest_key(id: &str) -> Option<String> {
    id_time(id).map(|t| format!("{}/{id}.manifest.json", folder(t)))
}

/// A failure, named by the backup and the step.
#[derive(Debug)]
pub struct StepError {
    pub id: String,
    pub step: &'static str,
    pub cause: anyhow::Error,
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (id, step, cause) = (&self.id, self.step, &self.cause);
        if self.is_unavailable() {
            write!(
                f,
                "backup {id}: {step} could not run: {cause:#} (this says nothing about the backup, which keeps its status)"
            )
        } else {
            write!(f, "backup {id}: {step} failed: {cause:#}")
        }
    }
}

impl std::error::Error for StepError {}

impl StepError {
    /// The step failed because something the check needs was unavailable
    /// (the backup target, the database server, the local disk), not
    /// because of anything in the backup: it proves nothing about it.
    pub fn is_unavailable(&self) -> bool {
        self.cause.is::<Unavailable>()
    }
}

/// Marks a cause as the environment's, not the backup's (see
/// [`StepError::is_unavailable`]).
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct Unavailable(pub anyhow::Error);

trait Step<T> {
    fn step(self, id: &str, step: &'static str) -> Result<T, StepError>;
    /// Like `step`, the cause being the environment's.
    fn unavailable(self, id: &str, step: &'static str) -> Result<T, StepError>;
}

impl<T, E: Into<anyhow::Error>> Step<T> for Result<T, E> {
    fn step(self, id: &str, step: &'static str) -> Result<T, StepError> {
        self.map_err(|e| StepError {
            id: id.to_string(),
            step,
            cause: e.into(),
        })
    }

    fn unavailable(self, id: &str, step: &'static str) -> Result<T, StepError> {
        self.map_err(|e| StepError {
            id: id.to_string(),
            step,
            cause: anyhow::Error::new(Unavailable(e.into())),
        })
    }
}

/// A [`ReadError`] as a step's failure: an object that cannot be used is
/// the backup's fault, a target that does not answer is not.
fn read_step<T>(r: Result<T, ReadError>, id: &str, step: &'static str) -> Result<T, StepError> {
    match r {
        Ok(v) => Ok(v),
        Err(ReadError::Unreadable(e)) => Err(e).step(id, step),
        Err(ReadError::Unreachable(e)) => Err(e).unavailable(id, step),
    }
}

/// A manifest that is there but cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// The manifest's key, relative to the target.
    pub key: String,
    /// Why, naming the key (damaged bytes, not JSON, a wrong field).
    pub reason: String,
}

/// One backup as `beacon backup list` shows it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub manifest: Option<Manifest>,
    /// The manifest is there but could not be read or parsed: never
    /// restored, never pruned, flagged by `backup verify`.
    pub unreadable: Option<Unreadable>,
    /// The archive as stored (absent: deleted or never uploaded).
    pub archive: Option<Object>,
    /// Every object of this backup, keys relative to the target.
    pub objects: Vec<String>,
    pub record: Option<BackupRecord>,
}

impl Listed {
    /// Restorable: complete (manifest and archive of its size) and not
    /// known to have failed verification.
    pub fn complete(&self) -> bool {
        match (&self.manifest, &self.archive) {
            (Some(m), Some(a)) => m.size == a.size,
            _ => false,
        }
    }

    pub fn status(&self) -> &str {
        if self.unreadable.is_some() {
            return "unreadable";
        }
        if !self.complete() {
            return "incomplete";
        }
        self.record
            .as_ref()
            .map_or("unverified", |r| match r.status.as_str() {
                "verified" | "failed" => r.status.as_str(),
                _ => "unverified",
            })
    }
}

/// What one scheduled run did.
#[derive(Debug)]
pub struct RunReport {
    pub manifest: Manifest,
    pub pruned: Vec<Decision>,
}

pub struct Backups {
    config: BackupConfig,
    store: Store,
    db_url: DatabaseUrl,
    target: BackupTarget,
    clock: Arc<dyn Clock>,
}

impl Backups {
    pub async fn open(
        config: &BackupConfig,
        store: Store,
        db_url: DatabaseUrl,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Backups> {
        Ok(Backups {
            target: BackupTarget::open(config).await?,
            config: config.clone(),
            store,
            db_url,
            clock,
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The lock every run, verify, prune and restore holds.
    pub async fn lock(&self) -> anyhow::Result<BackupLock> {
        BackupLock::acquire(&self.store, &self.db_url).await
    }

    fn temp_dir(&self, id: &str) -> anyhow::Result<tempfile::TempDir> {
        let base = self
            .config
            .temp_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir);
        std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
        tempfile::Builder::new()
            .prefix(&format!("beacon-backup-{id}-"))
            .tempdir_in(&base)
            .with_context(|| format!("creating a temporary folder in {}", base.display()))
    }

    async fn record(&self, r: &mut BackupRecord) {
        r.updated_at = self.clock.now_ms();
        if let Err(e) = self.store.save_backup_record(r).await {
            tracing::warn!(backup = %r.id, error = %e, "recording the backup's outcome failed");
        }
    }

    /// Backup → verify → prune, holding the lock. A failed backup or
    /// verification is recorded and returned; prune then does not run
    /// (it would have nothing new to keep).
    pub async fn run(&self) -> Result<RunReport, anyhow::Error> {
        let lock = self.lock().await?;
        let outcome = self.run_locked().await;
        lock.release().await;
        outcome
    }

    /// [`Backups::run`], cancelled cleanly once `stop` turns true (beacon
    /// is stopping): the run is dropped where it stands (`pg_dump` is
    /// killed, the temporary folder removed), then what it left is cleaned
    /// up: a half-uploaded archive and its unfinished upload, a scratch
    /// database of its verification; its record says it was cancelled.
    /// A backup whose manifest was written is complete and kept.
    pub async fn run_or_cancel(
        &self,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<RunReport, anyhow::Error> {
        let lock = self.lock().await?;
        let since = self.clock.now_ms();
        let outcome = tokio::select! {
            outcome = self.run_locked() => outcome,
            () = async {
                // A dropped sender never stops this run.
                if stop.wait_for(|stopping| *stopping).await.is_err() {
                    std::future::pending::<()>().await;
                }
            } => {
                let cleaned = self.clean_up_cancelled(since).await;
                Err(StepError {
                    id: cleaned.unwrap_or_default(),
                    step: "cancelled",
                    cause: anyhow!("beacon is stopping: the run was cancelled and what it had written removed"),
                }
                .into())
            }
        };
        lock.release().await;
        outcome
    }

    /// After a cancelled run started at `since`: removes what it left and
    /// records it. Returns the backup's id, if it had one.
    async fn clean_up_cancelled(&self, since: i64) -> Option<String> {
        let records = match self.store.backup_records().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "reading the backup records after a cancelled run failed");
                return None;
            }
        };
        let mut record = records
            .into_iter()
            .filter(|r| {
                r.created_at >= since && matches!(r.status.as_str(), "running" | "uploaded")
            })
            .max_by_key(|r| r.created_at)?;
        let id = record.id.clone();
        if let Some(server) = self.store.postgres_server() {
            match server
                .drop_databases_with_prefix(&scratch_prefix(&id))
                .await
            {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(backup = %id, databases = n, "dropped the cancelled verification's scratch database")
                }
                Err(e) => {
                    tracing::warn!(backup = %id, error = %e, "dropping the cancelled verification's scratch database failed")
                }
            }
        }
        match self.manifest(&id).await {
            // Complete: the manifest was written; only verification was cut.
            Ok(Some(_)) => {
                if record.status != "uploaded" {
                    record.status = "uploaded".into();
                    self.record(&mut record).await;
                }
                tracing::info!(backup = %id, "backup cancelled during verification; it is complete and kept, unverified");
            }
            _ => {
                let key = record.archive_key.clone();
                if let Err(e) = self.target.abort_uploads(&key).await {
                    tracing::warn!(backup = %id, error = %e, "removing the cancelled backup's unfinished upload failed");
                }
                if let Err(e) = self.target.delete(&key).await {
                    tracing::warn!(backup = %id, error = %e, "removing the cancelled backup's archive failed");
                }
                record.status = "failed".into();
                record.failed_step = Some("cancelled".into());
                record.error = Some(
                    "beacon was stopping: the backup was cancelled and its partial archive removed"
                        .into(),
                );
                self.record(&mut record).await;
                tracing::info!(backup = %id, "backup cancelled; nothing of it is left in the target");
            }
        }
        Some(id)
    }

    async fn run_locked(&self) -> Result<RunReport, anyhow::Error> {
        let manifest = self.backup().await?;
        self.verify(&manifest.id).await?;
        let pruned = self.prune(false).await?;
        Ok(RunReport { manifest, pruned })
    }

    /// Takes one backup (the caller holds the lock).
    pub async fn backup(&self) -> Result<Manifest, StepError> {
        let now = self.clock.now();
        let id = backup_id(now);
        let kind = self.store.kind();
        let (ext, compression) = if self.store.is_postgres() {
            ("pgdump", "pg_dump-custom")
        } else {
            ("sqlite.gz", "gzip")
        };
        let archive_key = format!("{}/{id}.{ext}", folder(now));
        let mut record = BackupRecord {
            id: id.clone(),
            created_at: now.timestamp_millis(),
            target: self.config.target.to_string(),
            archive_key: archive_key.clone(),
            size_bytes: None,
            sha256: None,
            status: "running".into(),
            failed_step: None,
            error: None,
            verified_at: None,
            updated_at: 0,
        };
        self.record(&mut record).await;
        let outcome = match self.target.check().await.step(&id, "target") {
            // Fail fast, before copying a large database for nothing.
            Err(e) => Err(e),
            Ok(()) => self.take(&id, &archive_key, compression, now).await,
        };
        match &outcome {
            Ok(m) => {
                record.status = "uploaded".into();
                record.size_bytes = Some(m.size as i64);
                record.sha256 = Some(m.sha256.clone());
                tracing::info!(backup = %id, database = kind, bytes = m.size, "backup uploaded");
            }
            Err(e) => {
                record.status = "failed".into();
                record.failed_step = Some(e.step.to_string());
                record.error = Some(crate::redact::error_text(e.cause.as_ref()));
                tracing::error!(backup = %id, step = e.step, error = %format!("{:#}", e.cause), "backup failed");
            }
        }
        self.record(&mut record).await;
        outcome
    }

    async fn take(
        &self,
        id: &str,
        archive_key: &str,
        compression: &str,
        now: DateTime<Utc>,
    ) -> Result<Manifest, StepError> {
        let dir = self.temp_dir(id).step(id, "temporary folder")?;
        let archive = dir.path().join("archive");
        let tables = if self.store.is_postgres() {
            let mut snapshot = self.store.export_snapshot().await.step(id, "snapshot")?;
            let counts = snapshot.row_counts().await.step(id, "row counts")?;
            dump::pg_dump(&self.db_url, snapshot.id(), &archive)
                .await
                .step(id, "pg_dump")?;
            snapshot.release().await;
            counts
        } else {
            let copy = dir.path().join("copy.sqlite");
            self.store
                .copy_sqlite_into(&self.db_url, &copy)
                .await
                .with_context(|| format!("VACUUM INTO {}", copy.display()))
                .step(id, "snapshot")?;
            let mut file = SqliteFile::open(&copy).await.step(id, "snapshot")?;
            let counts = file.row_counts().await.step(id, "row counts")?;
            file.close().await;
            dump::gzip(copy.clone(), archive.clone())
                .await
                .step(id, "compress")?;
            let _ = tokio::fs::remove_file(&copy).await;
            counts
        };
        let schema_version = self
            .store
            .schema_version()
            .await
            .step(id, "snapshot")?
            .unwrap_or_default();
        let digest = target::digest_file(&archive).await.step(id, "checksum")?;
        self.target
            .put_file(archive_key, &archive, &digest)
            .await
            .step(id, "upload")?;
        let manifest = Manifest {
            format: 1,
            id: id.to_string(),
            created_at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            database: self.store.kind().to_string(),
            schema_version,
            beacon_version: env!("CARGO_PKG_VERSION").to_string(),
            archive: archive_key.to_string(),
            compression: compression.to_string(),
            size: digest.size,
            sha256: digest.hex(),
            tables,
        };
        #[cfg(debug_assertions)]
        test_hook_pause("upload").await;
        let key = manifest_key(id)
            .ok_or_else(|| anyhow!("bad id"))
            .step(id, "manifest")?;
        let json = serde_json::to_vec_pretty(&manifest).step(id, "manifest")?;
        // Written last: only now is the backup complete.
        self.target
            .put_bytes(&key, json)
            .await
            .step(id, "manifest")?;
        Ok(manifest)
    }

    /// Reads one manifest; `None` if there is none (incomplete backup).
    pub async fn manifest(&self, id: &str) -> anyhow::Result<Option<Manifest>> {
        Ok(read_manifest(&self.target, id).await?)
    }

    /// Every backup in the target, complete or not, with this beacon's
    /// record of it; the newest first.
    pub async fn list(&self) -> anyhow::Result<Vec<Listed>> {
        let records: HashMap<String, BackupRecord> = self
            .store
            .backup_records()
            .await?
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
        list_target(&self.target, &records).await
    }

    /// Verifies one backup (the caller holds the lock) and records the
    /// outcome. A check that could not run because the target, the
    /// database server or the local disk was unavailable proves nothing
    /// about the backup: its status stays as it was (so rotation does not
    /// delete an intact backup), and the error says so.
    pub async fn verify(&self, id: &str) -> Result<Manifest, StepError> {
        let outcome = self.check(id).await;
        if let Err(e) = &outcome {
            if e.is_unavailable() {
                tracing::warn!(backup = %id, step = e.step, error = %format!("{:#}", e.cause),
                    "backup verification could not run; the backup keeps its status");
                return outcome;
            }
        }
        let now = self.clock.now_ms();
        let mut record = self
            .store
            .backup_records()
            .await
            .ok()
            .and_then(|all| all.into_iter().find(|r| r.id == id))
            .unwrap_or_else(|| BackupRecord {
                id: id.to_string(),
                created_at: id_time(id).map_or(now, |t| t.timestamp_millis()),
                target: self.config.target.to_string(),
                archive_key: String::new(),
                size_bytes: None,
                sha256: None,
                status: String::new(),
                failed_step: None,
                error: None,
                verified_at: None,
                updated_at: now,
            });
        match &outcome {
            Ok(m) => {
                record.status = "verified".into();
                record.archive_key = m.archive.clone();
                record.size_bytes = Some(m.size as i64);
                record.sha256 = Some(m.sha256.clone());
                record.failed_step = None;
                record.error = None;
                record.verified_at = Some(now);
                tracing::info!(backup = %id, "backup verified");
            }
            Err(e) => {
                record.status = "failed".into();
                record.failed_step = Some(format!("verify: {}", e.step));
                record.error = Some(crate::redact::error_text(e.cause.as_ref()));
                record.verified_at = Some(now);
                tracing::error!(backup = %id, step = e.step, error = %format!("{:#}", e.cause), "backup verification failed");
            }
        }
        self.record(&mut record).await;
        outcome
    }

    async fn check(&self, id: &str) -> Result<Manifest, StepError> {
        let dir = self.temp_dir(id).unavailable(id, "temporary folder")?;
        let (manifest, archive) = fetch(&self.target, id, dir.path()).await?;
        restore_check(
            &manifest,
            &archive,
            dir.path(),
            self.store.postgres_server().as_ref(),
            &self.db_url,
        )
        .await?;
        Ok(manifest)
    }

    /// The newest complete backup's id.
    pub async fn latest(&self) -> anyhow::Result<Option<String>> {
        Ok(self
            .list()
            .await?
            .into_iter()
            .find(Listed::complete)
            .map(|l| l.id))
    }

    /// Applies the keep policy (the caller holds the lock). Returns the
    /// plan, newest first; with `dry_run` nothing is deleted.
    pub async fn prune(&self, dry_run: bool) -> anyhow::Result<Vec<Decision>> {
        let listed = self.list().await?;
        // A backup whose manifest cannot be read is kept and named: beacon
        // never deletes on the word of a manifest it could not read.
        let candidates: Vec<Candidate> = listed
            .iter()
            .filter(|l| l.complete() || l.unreadable.is_some())
            .map(|l| Candidate {
                id: l.id.clone(),
                created_at: l.created_at,
                verification: match l.status() {
                    "unreadable" => Verification::Unreadable,
                    "verified" => Verification::Verified,
                    "failed" => Verification::Failed,
                    _ => Verification::Unverified,
                },
            })
            .collect();
        let plan = rotation::plan(&candidates, &self.config.keep);
        if dry_run {
            return Ok(plan);
        }
        for d in plan.iter().filter(|d| !d.keep) {
            let Some(l) = listed
                .iter()
                .find(|l| l.id == d.id && l.unreadable.is_none())
            else {
                continue;
            };
            // The manifest first: a half-deleted backup is then merely
            // incomplete, never a manifest pointing at nothing.
            if let Some(key) = manifest_key(&l.id) {
                self.target
                    .delete(&key)
                    .await
                    .with_context(|| format!("deleting backup {}", l.id))?;
            }
            if let Some(a) = &l.archive {
                self.target
                    .delete(&a.key)
                    .await
                    .with_context(|| format!("deleting backup {}", l.id))?;
            }
            if let Some(mut r) = l.record.clone() {
                r.status = "deleted".into();
                self.record(&mut r).await;
            }
            tracing::info!(backup = %l.id, reason = %d.reasons.join(", "), "backup deleted by rotation");
        }
        Ok(plan)
    }
}

impl Backups {
    /// Deletes every object of one backup (the caller holds the lock),
    /// whatever its manifest says or whether it can be read at all: how an
    /// operator removes a backup rotation keeps (an unreadable manifest, a
    /// failed or incomplete backup). The manifest goes first, so a
    /// half-done delete leaves an incomplete backup, never a manifest
    /// pointing at nothing. Returns the deleted keys.
    pub async fn delete(&self, id: &str) -> anyhow::Result<Vec<String>> {
        let listed = self.list().await?;
        let Some(l) = listed.iter().find(|l| l.id == id) else {
            return Err(anyhow!(
                "there is no backup {id} in {}\nTry: beacon backup list",
                self.config.target
            ));
        };
        let mut keys = l.objects.clone();
        keys.sort_by_key(|k| !k.ends_with(".manifest.json"));
        for key in &keys {
            self.target
                .delete(key)
                .await
                .with_context(|| format!("deleting {key} of backup {id}"))?;
        }
        if let Some(mut r) = l.record.clone() {
            r.status = "deleted".into();
            self.record(&mut r).await;
        }
        tracing::info!(backup = %id, objects = keys.len(), "backup deleted by hand");
        Ok(keys)
    }
}

/// Reads one manifest; `None` if there is none (incomplete backup).
pub async fn read_manifest(target: &BackupTarget, id: &str) -> Result<Option<Manifest>, ReadError> {
    let key = manifest_key(id)
        .ok_or_else(|| ReadError::Unreadable(anyhow!("\"{id}\" is not a backup id")))?;
    match target.get_bytes(&key).await? {
        None => Ok(None),
        Some(bytes) => parse_manifest(&key, id, &bytes)
            .map(Some)
            .map_err(ReadError::Unreadable),
    }
}

/// Parses and checks a manifest's bytes, naming the key and the field.
fn parse_manifest(key: &str, id: &str, bytes: &[u8]) -> anyhow::Result<Manifest> {
    let m: Manifest = serde_json::from_slice(bytes)
        .map_err(|e| anyhow!("manifest {key} is not a valid manifest: {e}"))?;
    let bad = |field: &str, why: String| anyhow!("manifest {key}: field {field} {why}");
    if m.format != 1 {
        return Err(bad(
            "format",
            format!("is {}, this beacon reads 1", m.format),
        ));
    }
    if m.id != id {
        return Err(bad("id", format!("is \"{}\", the key says \"{id}\"", m.id)));
    }
    if !["sqlite", "postgres"].contains(&m.database.as_str()) {
        return Err(bad(
            "database",
            format!("is \"{}\", not sqlite or postgres", m.database),
        ));
    }
    if m.sha256.len() != 64 || !m.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("sha256", "is not 64 hex digits".into()));
    }
    let archive_ok = m.archive.contains(id)
        && !m.archive.starts_with('/')
        && !m
            .archive
            .split('/')
            .any(|part| part == ".." || part.is_empty());
    if !archive_ok {
        return Err(bad(
            "archive",
            format!("\"{}\" is not this backup's archive", m.archive),
        ));
    }
    Ok(m)
}

/// Every backup in `target`, complete or not, joined with `records`; the
/// newest first. Needs no database: restore lists before one exists.
///
/// A manifest that cannot be read or parsed (damaged bytes, not JSON, a
/// wrong field) is named in its backup's `unreadable` and logged, and the
/// listing goes on; only a target that does not answer fails it.
pub async fn list_target(
    target: &BackupTarget,
    records: &HashMap<String, BackupRecord>,
) -> anyhow::Result<Vec<Listed>> {
    let objects = target.list().await?;
    #[derive(Default)]
    struct Found {
        archive: Option<Object>,
        manifest: bool,
        keys: Vec<String>,
    }
    let mut by_id: BTreeMap<String, Found> = BTreeMap::new();
    for o in objects {
        let name = o.key.rsplit('/').next().unwrap_or(&o.key).to_string();
        // `<id>.<kind>`, the id being 20 characters: 20260312T220000.123Z
        let (Some(id), Some(rest)) = (name.get(..20), name.get(21..)) else {
            continue;
        };
        let (id, rest) = (id.to_string(), rest.to_string());
        if id_time(&id).is_none() || name.as_bytes().get(20) != Some(&b'.') {
            continue;
        }
        let entry = by_id.entry(id).or_default();
        entry.keys.push(o.key.clone());
        if rest == "manifest.json" {
            entry.manifest = true;
        } else {
            entry.archive = Some(o);
        }
    }
    let mut out = Vec::new();
    for (id, found) in by_id.into_iter().rev() {
        let mut manifest = None;
        let mut unreadable = None;
        if found.manifest {
            match read_manifest(target, &id).await {
                Ok(m) => manifest = m,
                Err(ReadError::Unreadable(e)) => {
                    let key = manifest_key(&id).unwrap_or_default();
                    let reason = format!("{e:#}");
                    tracing::warn!(backup = %id, key = %key, error = %reason,
                        "unreadable manifest: the backup is skipped (not restorable, never pruned)");
                    unreadable = Some(Unreadable { key, reason });
                }
                Err(ReadError::Unreachable(e)) => return Err(e),
            }
        }
        let created_at = id_time(&id).unwrap_or_default();
        out.push(Listed {
            record: records.get(&id).cloned(),
            id,
            created_at,
            manifest,
            unreadable,
            archive: found.archive,
            objects: found.keys,
        });
    }
    Ok(out)
}

/// Downloads one backup into `dir` and checks it against its manifest:
/// the archive whose size and SHA-256 match.
pub async fn fetch(
    target: &BackupTarget,
    id: &str,
    dir: &Path,
) -> Result<(Manifest, PathBuf), StepError> {
    let manifest = read_step(read_manifest(target, id).await, id, "manifest")?
        .ok_or_else(|| anyhow!("no manifest: the backup is incomplete"))
        .step(id, "manifest")?;
    let archive = dir.join("archive");
    let got = read_step(
        target.get_file(&manifest.archive, &archive).await,
        id,
        "download",
    )?;
    check_digest(&manifest, &got).step(id, "checksum")?;
    Ok((manifest, archive))
}

fn check_digest(manifest: &Manifest, got: &Digested) -> anyhow::Result<()> {
    if got.size != manifest.size {
        return Err(anyhow!(
            "the stored archive has {} bytes, the manifest says {}",
            got.size,
            manifest.size
        ));
    }
    if got.hex() != manifest.sha256 {
        return Err(anyhow!(
            "the stored archive's SHA-256 is {}, the manifest says {}",
            got.hex(),
            manifest.sha256
        ));
    }
    Ok(())
}

/// Compares row counts with the manifest, naming the first difference.
pub fn compare_counts(expected: &RowCounts, got: &RowCounts) -> anyhow::Result<()> {
    for (table, n) in expected {
        match got.get(table) {
            Some(m) if m == n => {}
            Some(m) => return Err(anyhow!("table {table} has {m} rows, the manifest says {n}")),
            None => return Err(anyhow!("table {table} is missing")),
        }
    }
    if let Some(extra) = got.keys().find(|t| !expected.contains_key(*t)) {
        return Err(anyhow!("table {extra} is not in the manifest"));
    }
    Ok(())
}

/// Restores `archive` into a scratch database in `dir` (SQLite) or a
/// scratch PostgreSQL database on `server` (dropped after), checks integrity and row
/// counts.
async fn restore_check(
    manifest: &Manifest,
    archive: &Path,
    dir: &Path,
    server: Option<&PgServer>,
    db_url: &DatabaseUrl,
) -> Result<(), StepError> {
    let id = manifest.id.as_str();
    match manifest.database.as_str() {
        "sqlite" => {
            let file = dir.join("restored.sqlite");
            match dump::gunzip(archive.to_path_buf(), file.clone()).await {
                Ok(()) => {}
                // The restored copy could not be written: the local disk's
                // fault, not the archive's.
                Err(e) if e.is::<dump::WriteError>() => {
                    return Err(e).unavailable(id, "decompress");
                }
                Err(e) => return Err(e).step(id, "decompress"),
            }
            let mut restored = SqliteFile::open(&file).await.step(id, "integrity check")?;
            restored.integrity().await.step(id, "integrity check")?;
            let got = restored.row_counts().await.step(id, "row counts")?;
            restored.close().await;
            compare_counts(&manifest.tables, &got).step(id, "row counts")
        }
        "postgres" => {
            let Some(server) = server else {
                return Err(anyhow!(
                    "a PostgreSQL backup needs beacon on PostgreSQL to verify it (a scratch database)"
                ))
                .unavailable(id, "restore");
            };
            // Unique per run: two beacons on one server may verify at once.
            let nonce = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let scratch = format!("{}{nonce}", scratch_prefix(id));
            // Whatever goes wrong making the scratch database is the
            // server's (refused connections, no CREATEDB, a busy template),
            // never the backup's.
            server
                .drop_database(&scratch)
                .await
                .map_err(|e| {
                    anyhow::Error::new(e)
                        .context("the database server: dropping a stale scratch database")
                })
                .unavailable(id, "scratch database")?;
            server
                .create_database(&scratch)
                .await
                .map_err(|e| {
                    anyhow::Error::new(e)
                        .context(format!("the database server: creating database {scratch}"))
                })
                .unavailable(id, "scratch database")?;
            #[cfg(debug_assertions)]
            test_hook_pause("verify").await;
            let outcome = async {
                let (base, password) = dump::libpq_url(db_url).unavailable(id, "restore")?;
                let mut url = url::Url::parse(&base).unavailable(id, "restore")?;
                url.set_path(&scratch);
                let mut with_password = url.clone();
                let _ = with_password.set_password(password.as_deref());
                let restored = dump::pg_restore(
                    url.as_str(),
                    password.as_deref(),
                    archive,
                    &["--single-transaction"],
                )
                .await;
                if let Err(e) = restored {
                    // pg_restore says only that it failed: if the server
                    // now refuses a connection too, the server was the cause.
                    return match PgDatabase::connect(with_password.as_str()).await {
                        Ok(conn) => {
                            conn.close().await;
                            Err(e).step(id, "pg_restore")
                        }
                        Err(refused) => Err(e.context(format!(
                            "the database server refuses connections ({refused})"
                        )))
                        .unavailable(id, "pg_restore"),
                    };
                }
                let mut conn = PgDatabase::connect(with_password.as_str())
                    .await
                    .map_err(|e| {
                        anyhow::Error::new(e)
                            .context("the database server: connecting to the scratch database")
                    })
                    .unavailable(id, "row counts")?;
                let got = match conn.row_counts().await {
                    Ok(got) => got,
                    Err(e) if e.is_unavailable() => {
                        return Err(anyhow::Error::new(e).context("the database server"))
                            .unavailable(id, "row counts")
                    }
                    Err(e) => return Err(e).step(id, "row counts"),
                };
                conn.close().await;
                compare_counts(&manifest.tables, &got).step(id, "row counts")
            }
            .await;
            let _ = server.drop_database(&scratch).await;
            outcome
        }
        other => Err(anyhow!("unknown database kind \"{other}\"")).step(id, "manifest"),
    }
}

/// The start of the names of this process's scratch databases verifying
/// backup `id`: unique per run with a nonce after it.
fn scratch_prefix(id: &str) -> String {
    format!(
        "beacon_verify_{}_{}_",
        id.chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_lowercase(),
        std::process::id()
    )
}

/// Debug builds only: `BEACON_TEST_BACKUP_PAUSE=upload` (after the archive
/// is uploaded, before its manifest) or `=verify` (PostgreSQL: once the
/// scratch database exists) makes a backup wait there for ever, so tests
/// can stop beacon in the middle of one.
#[cfg(debug_assertions)]
async fn test_hook_pause(step: &str) {
    if std::env::var("BEACON_TEST_BACKUP_PAUSE").as_deref() == Ok(step) {
        tracing::warn!(step, "test hook: the backup pauses here");
        std::future::pending::<()>().await;
    }
}

/// When the newest verified backup is older than twice the schedule's
/// period, `/health` warns.
pub fn schedule_period(schedule: &str) -> Option<chrono::Duration> {
    let cron = crate::config::parse_schedule(schedule).ok()?;
    let now = Utc::now();
    let first = cron.find_next_occurrence(&now, false).ok()?;
    let second = cron.find_next_occurrence(&first, false).ok()?;
    Some(second - first)
}
