//! `beacon alert …`: check a channel before an outage does, and see what
//! was sent.

use std::path::Path;

use anyhow::{bail, Context};
use clap::Subcommand;

use crate::clock::{ms_to_datetime, Clock, SystemClock};
use crate::notify::Site;
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// Send a test message to every [[notify]] channel (or one), now; exit 1
    /// if any fails, with its error.
    Test {
        /// Only this channel.
        #[arg(long)]
        channel: Option<String>,
    },
    /// List the newest alert deliveries: channel, event, status, attempts,
    /// last error.
    List {
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
}

pub async fn run(config_path: Option<&Path>, command: AlertCommand) -> anyhow::Result<()> {
    let config = super::load(config_path)?;
    match command {
        AlertCommand::Test { channel } => {
            let channels: Vec<_> = config
                .notify
                .iter()
                .filter(|c| channel.as_ref().is_none_or(|name| &c.name == name))
                .collect();
            if channels.is_empty() {
                match channel {
                    Some(name) => bail!(
                        "no [[notify]] channel is named \"{name}\" in {}",
                        config.source
                    ),
                    None => bail!("{} has no [[notify]] channel", config.source),
                }
            }
            let site = Site::of(&config.server, "");
            let mut failed = 0;
            for c in channels {
                match crate::notify::send_test(c, &site, SystemClock.now_ms()).await {
                    Ok(()) => println!("{} ({}): sent", c.name, c.kind.as_str()),
                    Err(e) => {
                        failed += 1;
                        println!("{} ({}): FAILED: {e}", c.name, c.kind.as_str());
                    }
                }
            }
            if failed > 0 {
                bail!("{failed} channel(s) failed");
            }
            Ok(())
        }
        AlertCommand::List { limit } => {
            let store = Store::open(&config.storage).await?;
            store.migrate().await.context("migrating the store")?;
            let at = |ms: i64| {
                ms_to_datetime(ms)
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                    .unwrap_or_default()
            };
            for d in store.recent_alert_deliveries(limit).await? {
                println!(
                    "#{} {} {} → {}: {} after {} attempt(s){}{}",
                    d.id,
                    at(d.event.at),
                    d.kind.as_str(),
                    d.channel,
                    d.status,
                    d.attempts,
                    if d.status == "pending" {
                        format!(", next at {}", at(d.next_attempt_at))
                    } else {
                        String::new()
                    },
                    d.last_error
                        .map(|e| format!(" (last error: {e})"))
                        .unwrap_or_default()
                );
            }
            store.close().await;
            Ok(())
        }
    }
}
