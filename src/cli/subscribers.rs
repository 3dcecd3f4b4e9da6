//! `beacon subscribers …`: the subscribers from the command line, with the
//! admin API's rules. `export` prints everything stored about one (the
//! answer to a data protection request); `remove` deletes it all, tokens
//! and messages included.

use std::path::Path;

use anyhow::{bail, Context};
use clap::Subcommand;

use crate::clock::{Clock, SystemClock};
use crate::domain::input::SubscriberForm;
use crate::notify::subscribers::{add, export, AddRules};
use crate::store::{Store, Subscriber};

#[derive(Debug, Subcommand)]
pub enum SubscribersCommand {
    /// List every subscriber.
    List,
    /// Add a webhook, a Slack incoming webhook, or an email address you
    /// vouch for (confirmed at once).
    Add {
        /// email, webhook or slack
        #[arg(long)]
        kind: String,
        /// The email address, or the URL.
        #[arg(long)]
        address: String,
        /// A service slug or a group name to follow (repeat; none: all).
        #[arg(long = "component")]
        components: Vec<String>,
        /// A webhook's HMAC secret (made when not given; from the
        /// environment: BEACON_SUBSCRIBER_SECRET).
        #[arg(long, env = "BEACON_SUBSCRIBER_SECRET", hide_env_values = true)]
        secret: Option<String>,
    },
    /// Delete a subscriber and everything stored about it.
    Remove {
        /// The id, or the email address or URL.
        subscriber: String,
    },
    /// Print everything stored about a subscriber, as JSON.
    Export {
        /// The id, or the email address or URL.
        subscriber: String,
    },
}

fn line(s: &Subscriber) -> String {
    format!(
        "#{} {} {}{}{}",
        s.id,
        s.kind,
        crate::redact::url_text(&s.address),
        if s.confirmed_at.is_some() {
            ""
        } else {
            " (unconfirmed)"
        },
        s.components
            .as_ref()
            .map(|c| format!(" follows: {}", c.join(", ")))
            .unwrap_or_default()
    )
}

async fn find(store: &Store, which: &str) -> anyhow::Result<Subscriber> {
    if let Ok(id) = which.parse::<i64>() {
        if let Some(s) = store.subscriber(id).await? {
            return Ok(s);
        }
    }
    let email = which.trim().to_lowercase();
    for (kind, address) in [
        ("email", email.as_str()),
        ("webhook", which.trim()),
        ("slack", which.trim()),
    ] {
        if let Some(s) = store.subscriber_by_address(kind, address).await? {
            return Ok(s);
        }
    }
    // A URL is stored as parsed (a trailing slash added to a bare host).
    if let Ok(url) = url::Url::parse(which.trim()) {
        for kind in ["webhook", "slack"] {
            if let Some(s) = store.subscriber_by_address(kind, url.as_str()).await? {
                return Ok(s);
            }
        }
    }
    bail!("no subscriber \"{which}\"\nTry: beacon subscribers list")
}

pub async fn run(config_path: Option<&Path>, command: SubscribersCommand) -> anyhow::Result<()> {
    let config = super::load(config_path)?;
    let store = Store::open(&config.storage).await?;
    store.migrate().await.context("migrating the store")?;
    let now = SystemClock.now_ms();
    let result = async {
        match command {
            SubscribersCommand::List => {
                for s in store.subscribers().await? {
                    println!("{}", line(&s));
                }
                Ok(())
            }
            SubscribersCommand::Add {
                kind,
                address,
                components,
                secret,
            } => {
                let form = SubscriberForm {
                    kind,
                    address,
                    components,
                    secret,
                };
                let rules = AddRules {
                    public_url: config.server.public_url.is_some(),
                    email: config.subscriptions.is_some(),
                };
                let (s, made) = add(&store, form, rules, now).await.map_err(|e| match e {
                    crate::store::StoreError::Invalid { field, message } => anyhow::anyhow!(
                        "--{}: {message}\nTry: beacon subscribers add --kind webhook --address https://hooks.example.com/status",
                        field.replace('_', "-")
                    ),
                    other => other.into(),
                })?;
                println!("{}", line(&s));
                if let Some(secret) = made {
                    println!("secret (shown once; the receiver checks X-Beacon-Signature-256 with it): {secret}");
                }
                Ok(())
            }
            SubscribersCommand::Remove { subscriber } => {
                let s = find(&store, &subscriber).await?;
                store.remove_subscriber(s.id).await?;
                println!("removed #{} and everything stored about it", s.id);
                Ok(())
            }
            SubscribersCommand::Export { subscriber } => {
                let s = find(&store, &subscriber).await?;
                let out = export(&store, &s).await?;
                println!("{}", serde_json::to_string_pretty(&out)?);
                Ok(())
            }
        }
    }
    .await;
    store.close().await;
    result
}
