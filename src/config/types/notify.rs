//! `[[notify]]`: alert channels; their URLs and credentials never print.

use std::fmt;
use std::time::Duration;

/// One `[[notify]]` channel: where alerts go, and which of them.
#[derive(Debug, Clone)]
pub struct NotifyChannel {
    /// Unique; deliveries are stored under it.
    pub name: String,
    pub kind: ChannelKind,
    /// Slugs; empty with `groups` empty: every service.
    pub services: Vec<String>,
    pub groups: Vec<String>,
    pub events: Vec<crate::domain::EventKind>,
    /// `degraded` or `down`: service events below it are not sent, and a
    /// service coming back below it is a recovery.
    pub min_state: crate::domain::State,
    pub send_on_resolved: bool,
    /// Tries per alert before giving up (logged and counted).
    pub max_attempts: u32,
    /// Wait before the first retry; doubled each time, at most 15 min.
    pub retry_backoff: Duration,
    /// For one attempt.
    pub timeout: Duration,
}

impl NotifyChannel {
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;
    pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_secs(5);
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
}

#[derive(Clone)]
pub enum ChannelKind {
    /// A JSON POST (the README documents the body), signed with HMAC-SHA256
    /// when `secret` is set.
    Webhook {
        url: url::Url,
        secret: Option<String>,
    },
    /// A Slack incoming webhook; Mattermost and Rocket.Chat take the same.
    Slack {
        url: url::Url,
    },
    Email(EmailChannel),
}

#[derive(Clone)]
pub struct EmailChannel {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// Both or neither, from `${VAR}`s.
    pub credentials: Option<(String, String)>,
    pub from: String,
    pub to: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which is required (587).
    Starttls,
    /// TLS from the first byte (465).
    Tls,
    /// No encryption: only for a relay on localhost or a trusted network.
    None,
}

impl ChannelKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ChannelKind::Webhook { .. } => "webhook",
            ChannelKind::Slack { .. } => "slack",
            ChannelKind::Email(_) => "email",
        }
    }
}

// Webhook URLs are secrets (Slack's carry the token in the path): only the
// host is ever printed.
impl fmt::Debug for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelKind::Webhook { url, secret } => write!(
                f,
                "Webhook {{ host: {:?}, secret: {} }}",
                url.host_str(),
                if secret.is_some() { "hidden" } else { "none" }
            ),
            ChannelKind::Slack { url } => write!(f, "Slack {{ host: {:?} }}", url.host_str()),
            ChannelKind::Email(e) => {
                write!(
                f,
                "Email {{ host: {}, port: {}, tls: {:?}, credentials: {}, from: {}, to: {:?} }}",
                e.host,
                e.port,
                e.tls,
                if e.credentials.is_some() { "hidden" } else { "none" },
                e.from,
                e.to
            )
            }
        }
    }
}
