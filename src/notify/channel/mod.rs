//! The notification channels behind one interface, [`send`]: one attempt
//! of one delivery, bounded by the channel's timeout, that succeeds or
//! says whether another attempt could (a [`SendError`]).
//!
//! One file per channel. Adding one is: a file here with its
//! `async fn send(…) -> Result<(), SendError>`, its variant in
//! `config::ChannelKind` (and its section's validation), and one arm in
//! [`send_once`].

pub mod email;
mod error;
mod http;
pub mod slack;
pub mod webhook;

pub use error::SendError;
pub use http::{client, post};

use super::{Message, Site};
use crate::config::{ChannelKind, NotifyChannel};
use crate::store::AlertDelivery;

/// One attempt, whole (connect, TLS, SMTP dialogue), within the channel's
/// timeout.
pub async fn send(
    http: &reqwest::Client,
    channel: &NotifyChannel,
    d: &AlertDelivery,
    m: &Message,
    site: &Site,
) -> Result<(), SendError> {
    tokio::time::timeout(channel.timeout, send_once(http, channel, d, m, site))
        .await
        .unwrap_or_else(|_| {
            Err(SendError::Transient {
                error: format!("no answer within {:?}", channel.timeout),
                retry_after: None,
            })
        })
}

async fn send_once(
    http: &reqwest::Client,
    channel: &NotifyChannel,
    d: &AlertDelivery,
    m: &Message,
    site: &Site,
) -> Result<(), SendError> {
    match &channel.kind {
        ChannelKind::Webhook { url, secret } => {
            webhook::send(http, url, secret.as_deref(), d, m, site).await
        }
        ChannelKind::Slack { url } => slack::send(http, url, m).await,
        ChannelKind::Email(email) => email::send(email, d, m, site).await,
    }
}
