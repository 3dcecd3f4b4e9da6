//! `beacon maintenance …`: scheduled maintenance from the command line, with
//! the admin API's rules (both check their input with `domain::input`).

use std::path::Path;

use anyhow::{bail, Context};
use clap::Subcommand;

use super::invalid_option;
use crate::clock::{ms_to_datetime, Clock, SystemClock};
use crate::domain::input::{maintenance_input, InvalidInput, MaintenanceForm};
use crate::store::{Maintenance, Store, StoreError};

#[derive(Debug, Subcommand)]
pub enum MaintenanceCommand {
    /// List every window, the latest start first.
    List,
    /// Schedule a window.
    Schedule {
        #[arg(long)]
        title: String,
        #[arg(long)]
        message: String,
        /// RFC 3339, e.g. 2026-03-12T22:00:00Z
        #[arg(long)]
        starts_at: String,
        /// RFC 3339, after --starts-at
        #[arg(long)]
        ends_at: String,
        /// Slug of an affected service (repeat for several).
        #[arg(long = "service", required = true)]
        services: Vec<String>,
    },
    /// Change a window; options not given keep their value.
    Edit {
        id: i64,
        #[arg(long)]
        title: Option<String>,
        #[arg(long)]
        message: Option<String>,
        #[arg(long)]
        starts_at: Option<String>,
        #[arg(long)]
        ends_at: Option<String>,
        /// Replaces the affected services (repeat for several).
        #[arg(long = "service")]
        services: Vec<String>,
    },
    /// Delete a window (to end one early, edit its --ends-at instead).
    Delete { id: i64 },
}

fn print(m: &Maintenance) {
    let at = |ms: i64| {
        ms_to_datetime(ms)
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default()
    };
    println!(
        "#{} {} ({} – {}) services: {}",
        m.id,
        m.title,
        at(m.starts_at),
        at(m.ends_at),
        m.services.join(", ")
    );
}

/// A store's refusal of the input (an unknown service), named as an
/// option like the input rules' own.
fn store_error(e: StoreError) -> anyhow::Error {
    match e {
        StoreError::Invalid { field, message } => invalid_option(InvalidInput { field, message }),
        other => other.into(),
    }
}

pub async fn run(config_path: Option<&Path>, command: MaintenanceCommand) -> anyhow::Result<()> {
    let config = super::load(config_path)?;
    let store = Store::open(&config.storage).await?;
    store.migrate().await.context("migrating the store")?;
    let result = execute(&store, command).await;
    store.close().await;
    result
}

async fn execute(store: &Store, command: MaintenanceCommand) -> anyhow::Result<()> {
    let now = SystemClock.now_ms();
    let (id, body, current) = match command {
        MaintenanceCommand::List => {
            for m in store.maintenances().await? {
                print(&m);
            }
            return Ok(());
        }
        MaintenanceCommand::Delete { id } => {
            if !store.delete_maintenance(id, now).await? {
                bail!("no maintenance #{id}\nTry: beacon maintenance list");
            }
            println!("deleted maintenance #{id}");
            return Ok(());
        }
        MaintenanceCommand::Schedule {
            title,
            message,
            starts_at,
            ends_at,
            services,
        } => (
            None,
            MaintenanceForm {
                title: Some(title),
                message: Some(message),
                starts_at: Some(starts_at),
                ends_at: Some(ends_at),
                services: Some(services),
            },
            None,
        ),
        MaintenanceCommand::Edit {
            id,
            title,
            message,
            starts_at,
            ends_at,
            services,
        } => {
            let Some(current) = store.maintenance(id).await? else {
                bail!("no maintenance #{id}\nTry: beacon maintenance list");
            };
            let body = MaintenanceForm {
                title,
                message,
                starts_at,
                ends_at,
                services: (!services.is_empty()).then_some(services),
            };
            (Some(id), body, Some(current))
        }
    };
    let current = current.map(|m| m.input());
    let input = maintenance_input(body, current.as_ref()).map_err(invalid_option)?;
    let saved = store
        .save_maintenance(id, &input, now)
        .await
        .map_err(store_error)?;
    let Some(id) = saved else {
        bail!("the maintenance was deleted meanwhile");
    };
    if let Some(m) = store.maintenance(id).await? {
        print(&m);
    }
    Ok(())
}
