//! `beacon backup run | list | verify | prune`: the same code the schedule
//! inside `beacon serve` runs, for system cron, a Kubernetes CronJob or a
//! person. Works while `beacon serve` runs on the same database (the lock
//! makes them take turns).

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use clap::Subcommand;

use crate::backup::{Backups, Listed};
use crate::clock::SystemClock;
use crate::config::Config;
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Take a backup, verify it, then apply the keep policy.
    Run,
    /// List the backups in the target, the newest first.
    List {
        /// One JSON object per backup, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Download a backup again and test-restore it: an id, "latest" (the
    /// newest complete one) or "all". Latest and all also name every
    /// manifest that cannot be read; exit 1 if anything failed.
    Verify {
        #[arg(default_value = "latest")]
        id: String,
    },
    /// Delete one backup's objects, whatever its manifest says or whether
    /// it can be read (rotation never deletes an unreadable one).
    Delete {
        /// The backup's id, as `beacon backup list` shows it.
        id: String,
    },
    /// Delete the backups the keep policy does not keep.
    Prune {
        /// Print the plan with each backup's reason; delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

pub async fn open(config: &Config) -> anyhow::Result<Backups> {
    let backup = config.backup.as_ref().ok_or_else(|| {
        anyhow!("the config has no [backup] section\nTry: add [backup] with target = \"file:///var/backups/beacon\" (see README, Backups)")
    })?;
    let store = Store::open(&config.storage).await?;
    store.migrate().await.context("migrating the store")?;
    Backups::open(
        backup,
        store,
        config.storage.session_url().clone(),
        Arc::new(SystemClock),
    )
    .await
}

pub async fn run(config_path: Option<&Path>, command: BackupCommand) -> anyhow::Result<()> {
    let config = super::load(config_path)?;
    let backups = open(&config).await?;
    let result = execute(&backups, command).await;
    backups.store().close().await;
    result
}

fn size(bytes: u64) -> String {
    match bytes {
        0..=9_999 => format!("{bytes} B"),
        10_000..=9_999_999 => format!("{:.1} kB", bytes as f64 / 1e3),
        10_000_000..=9_999_999_999 => format!("{:.1} MB", bytes as f64 / 1e6),
        _ => format!("{:.2} GB", bytes as f64 / 1e9),
    }
}

fn line(l: &Listed) -> String {
    let detail = match (&l.record, l.status()) {
        (Some(r), "failed") => format!(
            "{}: {}",
            r.failed_step.as_deref().unwrap_or("?"),
            r.error.as_deref().unwrap_or("")
        ),
        (_, "unreadable") => format!(
            "{}; not restorable, never pruned (beacon backup delete {})",
            l.unreadable.as_ref().map_or("", |u| u.reason.as_str()),
            l.id
        ),
        (_, "incomplete") => "no manifest or archive: not restorable".into(),
        _ => String::new(),
    };
    format!(
        "{:<22}  {}  {:>9}  {:<10}  {}",
        l.id,
        l.created_at.format("%Y-%m-%d %H:%M:%S"),
        l.archive.as_ref().map_or("-".into(), |a| size(a.size)),
        l.status(),
        detail
    )
    .trim_end()
    .to_string()
}

async fn execute(backups: &Backups, command: BackupCommand) -> anyhow::Result<()> {
    match command {
        BackupCommand::Run => {
            let report = backups.run().await?;
            let deleted = report.pruned.iter().filter(|d| !d.keep).count();
            println!(
                "backup {} taken and verified ({}, SHA-256 {}); rotation deleted {deleted}, kept {}",
                report.manifest.id,
                size(report.manifest.size),
                report.manifest.sha256,
                report.pruned.len() - deleted
            );
            Ok(())
        }
        BackupCommand::List { json } => {
            let listed = backups.list().await?;
            if json {
                for l in &listed {
                    let doc = serde_json::json!({
                        "id": l.id,
                        "created_at": l.created_at.to_rfc3339(),
                        "status": l.status(),
                        "size": l.archive.as_ref().map(|a| a.size),
                        "archive": l.manifest.as_ref().map(|m| m.archive.clone()),
                        "sha256": l.manifest.as_ref().map(|m| m.sha256.clone()),
                        "manifest": crate::backup::manifest_key(&l.id),
                        "error": l.unreadable.as_ref().map(|u| u.reason.clone())
                            .or_else(|| l.record.as_ref().and_then(|r| r.error.clone())),
                    });
                    println!("{doc}");
                }
            } else {
                println!(
                    "{:<22}  {:<19}  {:>9}  {:<10}  DETAIL",
                    "ID", "CREATED (UTC)", "SIZE", "STATUS"
                );
                for l in &listed {
                    println!("{}", line(l));
                }
            }
            Ok(())
        }
        BackupCommand::Verify { id } => {
            let lock = backups.lock().await?;
            let outcome = verify(backups, &id).await;
            lock.release().await;
            outcome
        }
        BackupCommand::Delete { id } => {
            if crate::backup::id_time(&id).is_none() {
                return Err(anyhow!(
                    "\"{id}\" is not a backup id (delete takes one id, never \"latest\")\nTry: beacon backup list"
                ));
            }
            let lock = backups.lock().await?;
            let deleted = backups.delete(&id).await;
            lock.release().await;
            let deleted = deleted?;
            println!(
                "backup {id} deleted ({} object{}: {})",
                deleted.len(),
                if deleted.len() == 1 { "" } else { "s" },
                deleted.join(", ")
            );
            Ok(())
        }
        BackupCommand::Prune { dry_run } => {
            let lock = backups.lock().await?;
            let plan = backups.prune(dry_run).await;
            lock.release().await;
            let plan = plan?;
            if plan.is_empty() {
                println!("no complete backups in the target");
            }
            for d in &plan {
                println!(
                    "{} {}  {}",
                    match (d.keep, dry_run) {
                        (true, _) => "keep  ",
                        (false, true) => "would delete",
                        (false, false) => "deleted",
                    },
                    d.id,
                    d.reasons.join(", ")
                );
            }
            if plan.iter().any(|d| !d.keep) && dry_run {
                println!("(dry run: nothing was deleted)");
            }
            Ok(())
        }
    }
}

/// `backup verify ID | latest | all` (the caller holds the lock). Every
/// verified backup is named on its own line; a failure does not stop the
/// others, and every failure and unreadable manifest is named in the error
/// (printed once, by the caller).
async fn verify(backups: &Backups, which: &str) -> anyhow::Result<()> {
    let mut ids = Vec::new();
    let mut problems = Vec::new();
    let mut hints = Vec::new();
    if which == "latest" || which == "all" {
        let listed = backups.list().await?;
        for l in &listed {
            if let Some(u) = &l.unreadable {
                problems.push(format!(
                    "backup {}: manifest {} cannot be read: {}",
                    l.id, u.key, u.reason
                ));
                hints.push(format!("beacon backup delete {}", l.id));
            }
        }
        let complete = listed.iter().filter(|l| l.complete()).map(|l| l.id.clone());
        ids = if which == "all" {
            complete.collect()
        } else {
            complete.take(1).collect()
        };
        if ids.is_empty() && problems.is_empty() {
            return Err(anyhow!(
                "the target holds no complete backup\nTry: beacon backup run"
            ));
        }
    } else {
        ids.push(which.to_string());
    }
    for id in &ids {
        match backups.verify(id).await {
            Ok(m) => {
                let rows: i64 = m.tables.values().sum();
                println!(
                    "backup {id} verified: {} SHA-256 ok, restored into a scratch database, integrity ok, {rows} rows in {} tables as in the manifest",
                    size(m.size),
                    m.tables.len()
                );
            }
            Err(e) if ids.len() == 1 && problems.is_empty() => return Err(e.into()),
            Err(e) => problems.push(e.to_string()),
        }
    }
    let hint = match hints.is_empty() {
        true => String::new(),
        false => format!(
            "\nTry: {} (see docs/runbook.md: a backup object or manifest is corrupt)",
            hints.join("; ")
        ),
    };
    match problems.len() {
        0 => Ok(()),
        1 => Err(anyhow!("{}{hint}", problems[0])),
        n => Err(anyhow!(
            "{n} backups failed verification or cannot be read:\n  {}{hint}",
            problems.join("\n  ")
        )),
    }
}
