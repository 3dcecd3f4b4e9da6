//! `[[notify]]`: where alerts go (a webhook, Slack, email), and which of
//! them each channel takes.

use std::time::Duration;

use super::diagnostics::item_place;
use super::fields::optional_duration;
use super::problems::Problems;
use crate::config::raw::RawNotify;
use crate::config::{
    ChannelKind, EmailChannel, GroupConfig, NotifyChannel, ServiceConfig, SmtpTls,
};
use crate::domain::{EventKind, State};

/// Every channel; names are unique. Alerts link to the status page, so
/// channels need `server.public_url`.
pub fn channels(
    raw: &[RawNotify],
    services: &[ServiceConfig],
    groups: &[GroupConfig],
    has_public_url: bool,
    problems: &mut Problems,
) -> Vec<NotifyChannel> {
    let mut notify: Vec<NotifyChannel> = Vec::new();
    for (i, n) in raw.iter().enumerate() {
        let place = item_place("notify", i, n.name.as_deref());
        let Some(channel) = channel(n, &place, services, groups, problems) else {
            continue;
        };
        if let Some(first) = notify.iter().position(|c| c.name == channel.name) {
            problems.push(format!(
                "{place}: name \"{}\" is already used by notify[{}]; give each channel its own name",
                channel.name,
                first + 1
            ));
        } else {
            notify.push(channel);
        }
    }
    if !raw.is_empty() && !has_public_url {
        problems.push(
            "server: public_url is required with [[notify]]: alerts link to the status page"
                .to_string(),
        );
    }
    notify
}

fn channel(
    n: &RawNotify,
    place: &str,
    services: &[ServiceConfig],
    groups: &[GroupConfig],
    problems: &mut Problems,
) -> Option<NotifyChannel> {
    let before = problems.mark();
    let kind_text = n.kind.as_deref().map(str::trim).unwrap_or("");
    let kind = kind(n, place, kind_text, problems);
    if kind_text != "email" {
        for (field, set) in [
            ("smtp_host", n.smtp_host.is_some()),
            ("smtp_port", n.smtp_port.is_some()),
            ("smtp_tls", n.smtp_tls.is_some()),
            ("username", n.username.is_some()),
            ("password", n.password.is_some()),
            ("from", n.from.is_some()),
            ("to", n.to.is_some()),
        ] {
            only_for(place, field, set, "email", problems);
        }
    }
    let slugs = services_named(n, place, services, problems);
    let group_names = groups_named(n, place, groups, problems);
    let events = events(n, place, problems);
    let min_state = min_state(n, place, problems);
    let (max_attempts, retry_backoff, timeout) = retries(n, place, problems);
    if problems.grew_since(before) {
        return None;
    }
    Some(NotifyChannel {
        name: n
            .name
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or(kind_text)
            .to_string(),
        kind: kind?,
        services: slugs,
        groups: group_names,
        events,
        min_state,
        send_on_resolved: n.send_on_resolved.unwrap_or(true),
        max_attempts,
        retry_backoff,
        timeout,
    })
}

/// A field set for a kind it does not apply to.
fn only_for(place: &str, field: &str, set: bool, kinds: &str, problems: &mut Problems) {
    if set {
        problems.push(format!("{place}: {field} applies to kind {kinds} only"));
    }
}

fn kind(
    n: &RawNotify,
    place: &str,
    kind_text: &str,
    problems: &mut Problems,
) -> Option<ChannelKind> {
    match kind_text {
        "webhook" => {
            let secret = n
                .secret
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.contains("${"));
            if secret.is_some_and(|s| s.len() < 16) {
                problems.push(format!(
                    "{place}: secret is shorter than 16 characters; use a long random secret (openssl rand -hex 32)"
                ));
            }
            let url = web_url(n, place, kind_text, problems);
            url.map(|url| ChannelKind::Webhook {
                url,
                secret: secret.map(str::to_string),
            })
        }
        "slack" => {
            only_for(place, "secret", n.secret.is_some(), "webhook", problems);
            web_url(n, place, kind_text, problems).map(|url| ChannelKind::Slack { url })
        }
        "email" => {
            only_for(place, "url", n.url.is_some(), "webhook and slack", problems);
            only_for(place, "secret", n.secret.is_some(), "webhook", problems);
            email(n, place, problems).map(ChannelKind::Email)
        }
        "" => {
            problems.push(format!(
                "{place}: kind is required (webhook, slack or email)"
            ));
            None
        }
        other => {
            problems.push(format!(
                "{place}: kind \"{other}\" is not one of webhook, slack, email"
            ));
            None
        }
    }
}

/// The http(s) URL a webhook or Slack channel posts to.
fn web_url(
    n: &RawNotify,
    place: &str,
    kind_text: &str,
    problems: &mut Problems,
) -> Option<url::Url> {
    let Some(text) = n.url.as_deref().map(str::trim) else {
        problems.push(format!("{place}: url is required for kind \"{kind_text}\""));
        return None;
    };
    if text.contains("${") {
        return None; // the unset variable is reported already
    }
    match url::Url::parse(text) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Some(u),
        Ok(u) => {
            problems.push(format!(
                "{place}: url \"{}\" is not an http(s) URL",
                crate::redact::url(&u)
            ));
            None
        }
        Err(e) => {
            problems.push(format!("{place}: url is not a valid URL ({e})"));
            None
        }
    }
}

/// `services`: slugs of the services named (by name or slug).
fn services_named(
    n: &RawNotify,
    place: &str,
    services: &[ServiceConfig],
    problems: &mut Problems,
) -> Vec<String> {
    let mut slugs = Vec::new();
    for wanted in n.services.iter().flatten() {
        let wanted = wanted.trim();
        match services
            .iter()
            .find(|s| s.slug == wanted || s.name == wanted)
        {
            Some(s) => slugs.push(s.slug.clone()),
            None => problems.push(format!(
                "{place}: services: no service is named or has the slug \"{wanted}\""
            )),
        }
    }
    slugs
}

fn groups_named(
    n: &RawNotify,
    place: &str,
    groups: &[GroupConfig],
    problems: &mut Problems,
) -> Vec<String> {
    let mut names = Vec::new();
    for wanted in n.groups.iter().flatten() {
        match groups.iter().find(|g| g.name == wanted.trim()) {
            Some(g) => names.push(g.name.clone()),
            None => problems.push(format!(
                "{place}: groups: no [[group]] is named \"{}\"",
                wanted.trim()
            )),
        }
    }
    names
}

fn events(n: &RawNotify, place: &str, problems: &mut Problems) -> Vec<EventKind> {
    let Some(list) = &n.events else {
        return EventKind::ALL.to_vec();
    };
    let mut events = Vec::new();
    for e in list {
        match EventKind::parse(e.trim()) {
            Some(k) => events.push(k),
            None => problems.push(format!(
                "{place}: events: \"{}\" is not one of {}",
                e.trim(),
                EventKind::ALL
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
    events
}

fn min_state(n: &RawNotify, place: &str, problems: &mut Problems) -> State {
    match n.min_state.as_deref().map(str::trim) {
        None | Some("degraded") => State::Degraded,
        Some("down") => State::Down,
        Some(other) => {
            problems.push(format!(
                "{place}: min_state \"{other}\" is not one of degraded, down"
            ));
            State::Degraded
        }
    }
}

/// `max_attempts`, `retry_backoff` and `timeout`.
fn retries(n: &RawNotify, place: &str, problems: &mut Problems) -> (u32, Duration, Duration) {
    let max_attempts = match n.max_attempts {
        None => NotifyChannel::DEFAULT_MAX_ATTEMPTS,
        Some(m) if (1..=100).contains(&m) => m as u32,
        Some(m) => {
            problems.push(format!(
                "{place}: max_attempts ({m}) must be between 1 and 100"
            ));
            1
        }
    };
    let retry_backoff = optional_duration(place, "retry_backoff", &n.retry_backoff, problems)
        .unwrap_or(NotifyChannel::DEFAULT_RETRY_BACKOFF);
    let timeout = optional_duration(place, "timeout", &n.timeout, problems)
        .unwrap_or(NotifyChannel::DEFAULT_TIMEOUT);
    if timeout.is_zero() {
        problems.push(format!("{place}: timeout must be longer than 0s"));
    }
    (max_attempts, retry_backoff, timeout)
}

/// An email channel: the SMTP server, its credentials, the addresses.
fn email(n: &RawNotify, place: &str, problems: &mut Problems) -> Option<EmailChannel> {
    let before = problems.mark();
    let host = n.smtp_host.as_deref().map(str::trim).unwrap_or("");
    if host.is_empty() {
        problems.push(format!("{place}: smtp_host is required for kind \"email\""));
    }
    let (tls, port) = smtp_tls_and_port(n, place, problems);
    let credentials = smtp_credentials(n, place, problems);
    let from = n.from.as_deref().unwrap_or("");
    if from.trim().is_empty() {
        problems.push(format!("{place}: from is required for kind \"email\""));
    } else {
        mailbox(place, "from", from, problems);
    }
    let to = n.to.clone().unwrap_or_default();
    if to.is_empty() {
        problems.push(format!(
            "{place}: to is required for kind \"email\" (a list of addresses)"
        ));
    }
    for (i, address) in to.iter().enumerate() {
        mailbox(place, &format!("to[{}]", i + 1), address, problems);
    }
    if problems.grew_since(before) {
        return None;
    }
    Some(EmailChannel {
        host: host.to_string(),
        port,
        tls,
        credentials,
        from: from.trim().to_string(),
        to: to.iter().map(|t| t.trim().to_string()).collect(),
    })
}

/// `smtp_tls`, and `smtp_port` (by default the port of that kind of TLS).
fn smtp_tls_and_port(n: &RawNotify, place: &str, problems: &mut Problems) -> (SmtpTls, u16) {
    let tls = match n.smtp_tls.as_deref().map(str::trim) {
        None | Some("starttls") => SmtpTls::Starttls,
        Some("tls") => SmtpTls::Tls,
        Some("none") => SmtpTls::None,
        Some(other) => {
            problems.push(format!(
                "{place}: smtp_tls \"{other}\" is not one of starttls, tls, none"
            ));
            SmtpTls::Starttls
        }
    };
    let port = match n.smtp_port {
        None => match tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        },
        Some(p) if (1..=65535).contains(&p) => p as u16,
        Some(p) => {
            problems.push(format!("{place}: smtp_port ({p}) is not a port number"));
            0
        }
    };
    (tls, port)
}

/// `username` and `password`: both or neither.
fn smtp_credentials(
    n: &RawNotify,
    place: &str,
    problems: &mut Problems,
) -> Option<(String, String)> {
    match (n.username.as_deref(), n.password.as_deref()) {
        (None, None) => None,
        (Some(u), Some(p)) => Some((u.to_string(), p.to_string())),
        (Some(_), None) => {
            problems.push(format!(
                "{place}: password is required with username (set it from the environment: password = \"${{SMTP_PASSWORD}}\")"
            ));
            None
        }
        (None, Some(_)) => {
            problems.push(format!("{place}: username is required with password"));
            None
        }
    }
}

fn mailbox(place: &str, field: &str, text: &str, problems: &mut Problems) {
    if text.contains("${") {
        return;
    }
    if text.trim().parse::<lettre::message::Mailbox>().is_err() {
        problems.push(format!(
            "{place}: {field} \"{text}\" is not an email address (like ops@example.com or \"Ops <ops@example.com>\")"
        ));
    }
}
