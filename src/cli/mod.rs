//! The command line: one file per subcommand, each a thin layer over the
//! library. Errors are printed once, here, with each cause once, and never
//! with a secret in them.

mod agent;
mod alert;
mod backup;
mod check_config;
mod incident;
mod maintenance;
mod migrate;
mod restore;
mod serve;
mod subscribers;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, Config};
use crate::domain::input::InvalidInput;

#[derive(Debug, Parser)]
#[command(
    name = "beacon",
    version,
    about = "Health checks and a public status page"
)]
pub struct Cli {
    /// Config file (TOML). Without one, beacon runs on its embedded default:
    /// SQLite in ./data, listening on 127.0.0.1:8080, watching itself.
    #[arg(long, short, global = true, env = "BEACON_CONFIG")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the status page and monitor every service (the default).
    Serve,
    /// Validate the config and print what would be monitored; exit 1 on errors.
    CheckConfig,
    /// Apply database migrations and exit.
    Migrate,
    /// Open, update, resolve and list incidents (as the admin API does).
    #[command(subcommand)]
    Incident(incident::IncidentCommand),
    /// Take, list, verify and rotate backups of the database.
    #[command(subcommand)]
    Backup(backup::BackupCommand),
    /// Restore a backup (exit 0 restored, 1 refused, 2 failed verification,
    /// 3 backup target unreachable; the database is untouched on failure).
    Restore(restore::RestoreArgs),
    /// Send a test alert to the [[notify]] channels; list what was sent.
    #[command(subcommand)]
    Alert(alert::AlertCommand),
    /// Schedule, edit, delete and list maintenance windows.
    #[command(subcommand)]
    Maintenance(maintenance::MaintenanceCommand),
    /// List, add, remove and export subscribers (as the admin API does).
    #[command(subcommand)]
    Subscribers(subscribers::SubscribersCommand),
    /// Probe from another location for a main server (token in
    /// BEACON_AGENT_TOKEN); needs no config file and no database.
    Agent(agent::AgentArgs),
}

pub async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve::run(cli.config.as_deref()).await,
        Command::CheckConfig => return check_config::run(cli.config.as_deref()),
        Command::Migrate => migrate::run(cli.config.as_deref()).await,
        Command::Incident(command) => incident::run(cli.config.as_deref(), command).await,
        Command::Backup(command) => backup::run(cli.config.as_deref(), command).await,
        Command::Restore(args) => return restore::run(cli.config.as_deref(), args).await,
        Command::Alert(command) => alert::run(cli.config.as_deref(), command).await,
        Command::Maintenance(command) => maintenance::run(cli.config.as_deref(), command).await,
        Command::Agent(args) => agent::run(args).await,
        Command::Subscribers(command) => subscribers::run(cli.config.as_deref(), command).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            print_stderr(&format!(
                "error: {}\n",
                crate::redact::error_text(e.as_ref())
            ));
            ExitCode::FAILURE
        }
    }
}

/// Writes `text` to stdout at once, with secrets hidden. A reader that has
/// gone (`beacon check-config | head`) is no error: the rest is dropped.
/// `false`: stdout failed otherwise (a full disk), as said on stderr.
fn print_stdout(text: &str) -> bool {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let written = out
        .write_all(crate::redact::scrub(text).as_bytes())
        .and_then(|()| out.flush());
    match written {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => true,
        Err(e) => {
            print_stderr(&format!("error: writing to stdout: {e}\n"));
            false
        }
    }
}

/// Writes `text` to stderr, with secrets hidden; a failure to write there
/// has nowhere to be reported (and must not panic, as `eprintln!` does).
fn print_stderr(text: &str) {
    use std::io::Write;
    let _ = std::io::stderr()
        .lock()
        .write_all(crate::redact::scrub(text).as_bytes());
}

/// Loads the config with the process environment.
fn load(path: Option<&std::path::Path>) -> Result<Config, config::ConfigError> {
    config::load(path, &config::process_env)
}

/// An input error as the CLI says it: the field named as its option
/// (`--starts-at`, `--service`), as the admin API names it in its JSON.
fn invalid_option(e: InvalidInput) -> anyhow::Error {
    let option = match e.field {
        "services" => "--service".to_string(),
        other => format!("--{}", other.replace('_', "-")),
    };
    anyhow::anyhow!("{option} {}", e.message)
}
