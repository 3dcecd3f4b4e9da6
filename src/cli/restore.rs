//! `beacon restore`: the disaster-recovery command. Exit codes: 0 restored
//! (or nothing to do with --if-db-not-exists / --if-backup-exists), 1
//! refused (with a "Try:" hint) or failed locally, 2 the backup failed
//! verification, 3 the backup target is unreachable. On every failure the
//! existing database is left untouched.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use crate::backup::restore::{restore, RestoreRequest};

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Backup id (see `beacon backup list`), or "latest".
    #[arg(default_value = "latest")]
    pub backup: String,
    /// Restore the newest backup taken at or before this time (RFC 3339).
    #[arg(long)]
    pub at: Option<String>,
    /// Restore here instead of the configured store: a SQLite path or a
    /// postgres:// URL (a new PostgreSQL database is created).
    #[arg(long)]
    pub to: Option<String>,
    /// Download and verify, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Replace an existing database (SQLite keeps it as
    /// <db>.pre-restore-<time>), even while a beacon uses it.
    #[arg(long)]
    pub force: bool,
    /// Exit 0 without restoring when a database is already there (for an
    /// init container that restores only onto an empty volume).
    #[arg(long)]
    pub if_db_not_exists: bool,
    /// Exit 0 without restoring when the target holds no backup yet (a
    /// first deploy).
    #[arg(long)]
    pub if_backup_exists: bool,
    /// Print the outcome as one JSON object on stdout (progress on stderr).
    #[arg(long)]
    pub json: bool,
}

pub async fn run(config_path: Option<&Path>, args: RestoreArgs) -> ExitCode {
    let config = match super::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let Some(backup) = config.backup.as_ref() else {
        eprintln!("error: refused: the config has no [backup] section, so beacon does not know where the backups are\nTry: set BEACON_BACKUP_TARGET=s3://bucket/prefix (and the credentials), or add [backup] target = … to the config");
        return ExitCode::from(1);
    };
    let at = match args.at.as_deref().map(chrono::DateTime::parse_from_rfc3339) {
        None => None,
        Some(Ok(t)) => Some(t.with_timezone(&chrono::Utc)),
        Some(Err(_)) => {
            eprintln!(
                "error: refused: --at \"{}\" is not an RFC 3339 time\nTry: --at 2026-03-12T22:00:00Z",
                args.at.unwrap_or_default()
            );
            return ExitCode::from(1);
        }
    };
    let request = RestoreRequest {
        backup: Some(args.backup),
        at,
        to: args.to,
        dry_run: args.dry_run,
        force: args.force,
        if_db_not_exists: args.if_db_not_exists,
        if_backup_exists: args.if_backup_exists,
    };
    let json = args.json;
    let say = move |line: &str| {
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    match restore(backup, config.storage.session_url(), &request, &say).await {
        Ok(report) => {
            if json {
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
            } else {
                match report.outcome {
                    "skipped" => {
                        println!("nothing to do: {}", report.reason.as_deref().unwrap_or(""))
                    }
                    "dry-run" => println!(
                        "dry run: backup {} verified; nothing was changed ({:.1} s)",
                        report.backup.as_deref().unwrap_or("?"),
                        report.seconds
                    ),
                    _ => println!(
                        "restored backup {} ({} ago) in {:.1} s{}",
                        report.backup.as_deref().unwrap_or("?"),
                        crate::domain::time::human_minutes(
                            report.backup_age_seconds.unwrap_or(0) / 60
                        ),
                        report.seconds,
                        report
                            .kept_as
                            .as_deref()
                            .map(|k| format!("; the previous database is kept as {k}"))
                            .unwrap_or_default()
                    ),
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            if json {
                let doc = serde_json::json!({
                    "outcome": "error",
                    "exit_code": e.exit_code(),
                    "error": e.to_string(),
                });
                println!("{doc}");
            }
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
