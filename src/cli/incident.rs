//! `beacon incident …`: incidents from the command line, for ops without
//! curl. Talks to the store directly, with the admin API's rules.

use std::path::Path;

use anyhow::{bail, Context};
use clap::Subcommand;

use crate::clock::{ms_to_datetime, Clock, SystemClock};
use crate::model::{INCIDENT_IMPACTS, INCIDENT_STATUSES};
use crate::store::{Incident, NewIncident, Store};

#[derive(Debug, Subcommand)]
pub enum IncidentCommand {
    /// List the newest incidents.
    List {
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Open an incident with its first update.
    Open {
        #[arg(long)]
        title: String,
        /// none, minor, major or critical
        #[arg(long)]
        impact: String,
        /// investigating, identified, monitoring or resolved
        #[arg(long, default_value = "investigating")]
        status: String,
        #[arg(long)]
        message: String,
        /// Slug of an affected service (repeat for several).
        #[arg(long = "service")]
        services: Vec<String>,
    },
    /// Add an update to an incident.
    Update {
        id: i64,
        #[arg(long)]
        status: String,
        #[arg(long)]
        message: String,
    },
    /// Resolve an incident.
    Resolve {
        id: i64,
        #[arg(long, default_value = "This incident has been resolved.")]
        message: String,
    },
}

fn check(field: &str, value: &str, allowed: &[&str]) -> anyhow::Result<()> {
    if !allowed.contains(&value) {
        bail!(
            "--{field} \"{value}\" is not one of {}\nTry: beacon incident open --title … --impact minor --message …",
            allowed.join(", ")
        );
    }
    Ok(())
}

fn print(i: &Incident) {
    let at = |ms: i64| {
        ms_to_datetime(ms)
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default()
    };
    println!(
        "#{} [{}] {} (impact {}, {}{}){}",
        i.id,
        i.status,
        i.title,
        i.impact,
        at(i.started_at),
        i.resolved_at
            .map(|r| format!(" – {}", at(r)))
            .unwrap_or_default(),
        if i.services.is_empty() {
            String::new()
        } else {
            format!(" services: {}", i.services.join(", "))
        }
    );
}

pub async fn run(config_path: Option<&Path>, command: IncidentCommand) -> anyhow::Result<()> {
    let config = super::load(config_path)?;
    let store = Store::connect(&config.storage.url).await?;
    store.migrate().await.context("migrating the store")?;
    let now = SystemClock.now_ms();
    let result = match command {
        IncidentCommand::List { limit } => {
            for i in store.recent_incidents(limit).await? {
                print(&i);
            }
            Ok(())
        }
        IncidentCommand::Open {
            title,
            impact,
            status,
            message,
            services,
        } => {
            check("impact", &impact, INCIDENT_IMPACTS)?;
            check("status", &status, INCIDENT_STATUSES)?;
            if title.trim().is_empty() || message.trim().is_empty() {
                bail!("--title and --message must not be empty");
            }
            let id = store
                .create_incident(&NewIncident {
                    title,
                    impact,
                    status,
                    message,
                    services,
                    at: now,
                })
                .await?;
            match store.incident(id).await? {
                Some(i) => print(&i),
                None => println!("#{id}"),
            }
            Ok(())
        }
        IncidentCommand::Update {
            id,
            status,
            message,
        } => {
            check("status", &status, INCIDENT_STATUSES)?;
            update(&store, id, &status, &message, now).await
        }
        IncidentCommand::Resolve { id, message } => {
            update(&store, id, "resolved", &message, now).await
        }
    };
    store.close().await;
    result
}

async fn update(
    store: &Store,
    id: i64,
    status: &str,
    message: &str,
    now: i64,
) -> anyhow::Result<()> {
    if !store.add_incident_update(id, status, message, now).await? {
        bail!("no incident #{id}\nTry: beacon incident list");
    }
    if let Some(i) = store.incident(id).await? {
        print(&i);
    }
    Ok(())
}
