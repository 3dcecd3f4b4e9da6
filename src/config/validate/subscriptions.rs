//! `[subscriptions]`: who sends subscribers' email, and the abuse limits.

use super::problems::Problems;
use crate::config::raw::RawSubscriptions;
use crate::config::{ChannelKind, NotifyChannel, SubscriptionsConfig};

pub fn subscriptions(
    raw: &RawSubscriptions,
    channels: &[NotifyChannel],
    has_public_url: bool,
    problems: &mut Problems,
) -> Option<SubscriptionsConfig> {
    if !raw.enabled.unwrap_or(false) {
        return None;
    }
    let place = "subscriptions";
    let before = problems.mark();
    let from = raw.from.as_deref().unwrap_or("").trim().to_string();
    if from.is_empty() {
        problems.push(format!(
            "{place}: from is required (like from = \"Status <status@example.com>\")"
        ));
    } else if from.parse::<lettre::message::Mailbox>().is_err() {
        problems.push(format!(
            "{place}: from \"{from}\" is not an email address (like \"Status <status@example.com>\")"
        ));
    }
    let channel = raw.channel.as_deref().unwrap_or("").trim().to_string();
    let emails: Vec<&str> = channels
        .iter()
        .filter(|c| matches!(c.kind, ChannelKind::Email(_)))
        .map(|c| c.name.as_str())
        .collect();
    if channel.is_empty() {
        problems.push(format!(
            "{place}: channel is required: the name of an email [[notify]] channel whose SMTP server sends subscribers' mail{}",
            known(&emails)
        ));
    } else if !emails.contains(&channel.as_str()) {
        problems.push(format!(
            "{place}: channel \"{channel}\" is not an email [[notify]] channel{}",
            known(&emails)
        ));
    }
    if !has_public_url {
        problems.push(format!(
            "{place}: server.public_url is required: confirmation and unsubscribe links point to it"
        ));
    }
    let mut limit = |key: &str, value: Option<i64>, default: u32| -> u32 {
        match value {
            None => default,
            Some(n) if (1..=10_000).contains(&n) => n as u32,
            Some(n) => {
                problems.push(format!("{place}: {key} ({n}) must be between 1 and 10000"));
                default
            }
        }
    };
    let client_limit = limit(
        "client_limit",
        raw.client_limit,
        SubscriptionsConfig::DEFAULT_CLIENT_LIMIT,
    );
    let address_limit = limit(
        "address_limit",
        raw.address_limit,
        SubscriptionsConfig::DEFAULT_ADDRESS_LIMIT,
    );
    (!problems.grew_since(before)).then_some(SubscriptionsConfig {
        from,
        channel,
        client_limit,
        address_limit,
    })
}

fn known(names: &[&str]) -> String {
    if names.is_empty() {
        " (none is configured)".into()
    } else {
        format!(" (email channels: {})", names.join(", "))
    }
}
