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
    /// Download a backup again and test-restore it (default: the newest).
    Verify {
        #[arg(default_value = "latest")]
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
    let store = Store::connect(&config.storage.url).await?;
    store.migrate().await.context("migrating the store")?;
    Backups::open(
        backup,
        store,
        config.storage.url.clone(),
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

async fn resolve(backups: &Backups, id: &str) -> anyhow::Result<String> {
    if id != "latest" {
        return Ok(id.to_string());
    }
    backups
        .latest()
        .await?
        .ok_or_else(|| anyhow!("the target holds no complete backup\nTry: beacon backup run"))
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
                        "error": l.record.as_ref().and_then(|r| r.error.clone()),
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
            let verified = async {
                let id = resolve(backups, &id).await?;
                let m = backups.verify(&id).await?;
                anyhow::Ok((id, m))
            }
            .await;
            lock.release().await;
            let (id, m) = verified?;
            let rows: i64 = m.tables.values().sum();
            println!(
                "backup {id} verified: {} SHA-256 ok, restored into a scratch database, integrity ok, {rows} rows in {} tables as in the manifest",
                size(m.size),
                m.tables.len()
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
