//! `beacon incident …`: incidents from the command line, for ops without
//! curl. Talks to the store directly, with the admin API's rules: both check
//! their input with `domain::input` (trimming, length limits, characters
//! refused or removed, impact and status words).

use std::path::Path;

use anyhow::{bail, Context};
use clap::Subcommand;

use super::invalid_option;
use crate::clock::{ms_to_datetime, Clock, SystemClock};
use crate::domain::input::{incident_update, new_incident, IncidentForm, UpdateForm};
use crate::store::{Incident, Store};

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
        /// Post it without telling subscribers (alert channels still are).
        #[arg(long)]
        no_notify: bool,
    },
    /// Add an update to an incident.
    Update {
        id: i64,
        #[arg(long)]
        status: String,
        #[arg(long)]
        message: String,
        /// Post it without telling subscribers (alert channels still are).
        #[arg(long)]
        no_notify: bool,
    },
    /// Resolve an incident.
    Resolve {
        id: i64,
        #[arg(long, default_value = "This incident has been resolved.")]
        message: String,
        /// Resolve it without telling subscribers.
        #[arg(long)]
        no_notify: bool,
    },
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
    let store = Store::open(&config.storage).await?;
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
            no_notify,
        } => {
            let new = new_incident(
                IncidentForm {
                    title,
                    impact,
                    status,
                    message,
                    services,
                    notify: !no_notify,
                },
                now,
            )
            .map_err(|e| {
                anyhow::anyhow!(
                    "{}\nTry: beacon incident open --title … --impact minor --message …",
                    invalid_option(e)
                )
            })?;
            let id = store.create_incident(&new).await?;
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
            no_notify,
        } => update(&store, id, status, message, !no_notify, now).await,
        IncidentCommand::Resolve {
            id,
            message,
            no_notify,
        } => update(&store, id, "resolved".into(), message, !no_notify, now).await,
    };
    store.close().await;
    result
}

async fn update(
    store: &Store,
    id: i64,
    status: String,
    message: String,
    notify: bool,
    now: i64,
) -> anyhow::Result<()> {
    let update = incident_update(UpdateForm {
        status,
        message,
        notify,
    })
    .map_err(invalid_option)?;
    if !store
        .add_incident_update(id, &update.status, &update.message, now, update.notify)
        .await?
    {
        bail!("no incident #{id}\nTry: beacon incident list");
    }
    if let Some(i) = store.incident(id).await? {
        print(&i);
    }
    Ok(())
}
