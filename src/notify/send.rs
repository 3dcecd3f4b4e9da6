//! One attempt at one channel: the webhook's JSON (documented in the
//! README), Slack's `{"text": …}`, or an email over SMTP.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::event::{Message, Site};
use crate::config::{ChannelKind, EmailChannel, NotifyChannel, SmtpTls};
use crate::domain::{Event, ServiceRef};
use crate::store::AlertDelivery;

/// Why an attempt failed, and whether another could succeed.
#[derive(Debug)]
pub enum SendError {
    /// The receiver refused it for good (HTTP 4xx other than 408/429, an
    /// SMTP 5xx, an address it rejects): retrying cannot help.
    Permanent(String),
    /// Worth another try: a connection failure, a timeout, 5xx, 429.
    Transient {
        error: String,
        retry_after: Option<Duration>,
    },
}

/// The HTTP client of every webhook and Slack attempt.
pub fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(concat!("beacon/", env!("CARGO_PKG_VERSION")))
        // A webhook that redirects is misconfigured; following it could
        // send the body (and signature) somewhere unintended.
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

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
            let body = serde_json::to_vec(&webhook_body(d, m, site))
                .map_err(|e| SendError::Permanent(format!("encoding the body: {e}")))?;
            let mut request = http
                .post(url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header("X-Beacon-Event", d.kind.as_str())
                .header("X-Beacon-Delivery", d.id.to_string());
            if let Some(secret) = secret {
                request = request.header("X-Beacon-Signature-256", signature(secret, &body));
            }
            post(request.body(body)).await
        }
        ChannelKind::Slack { url } => {
            // Plain text with the link last: Slack, Mattermost and
            // Rocket.Chat all render it, and all unfurl the link.
            let body = json!({ "text": format!("*{}*\n{}\n{}", m.title, m.text, m.url) });
            post(
                http.post(url.clone())
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.to_string()),
            )
            .await
        }
        ChannelKind::Email(email) => send_email(email, d, m, site).await,
    }
}

/// `sha256=` and the hex HMAC-SHA256 of the body with the shared secret
/// (GitHub's `X-Hub-Signature-256` format, which receivers already check).
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn post(request: reqwest::RequestBuilder) -> Result<(), SendError> {
    let response = request.send().await.map_err(|e| SendError::Transient {
        // Without the URL: a Slack webhook's path is its secret.
        error: e.without_url().to_string(),
        retry_after: None,
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let error = format!("the receiver answered HTTP {}", status.as_u16());
    if status.is_server_error()
        || status == reqwest::StatusCode::REQUEST_TIMEOUT
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
    {
        Err(SendError::Transient { error, retry_after })
    } else {
        Err(SendError::Permanent(error))
    }
}

fn rfc3339(ms: i64) -> Value {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
        .unwrap_or(Value::Null)
}

fn service_ref(s: &ServiceRef) -> Value {
    json!({ "slug": s.slug, "name": s.name, "group": s.group })
}

/// The webhook's body (the README's "Webhook body" section shows it).
pub fn webhook_body(d: &AlertDelivery, m: &Message, site: &Site) -> Value {
    let e: &Event = &d.event;
    json!({
        "id": d.event_id,
        "delivery": d.id,
        "event": d.kind.as_str(),
        "occurred_at": rfc3339(e.at),
        "title": m.title,
        "text": m.text,
        "url": m.url,
        "page": { "title": site.title, "url": site.public_url },
        "service": e.service.as_ref().map(|s| json!({
            "slug": s.service.slug,
            "name": s.service.name,
            "group": s.service.group,
            "state": s.state,
            "previous_state": s.previous_state,
            "since": rfc3339(s.since),
            "reason": s.reason,
        })),
        "incident": e.incident.as_ref().map(|i| json!({
            "id": i.id,
            "title": i.title,
            "status": i.status,
            "impact": i.impact,
            "automatic": i.automatic,
            "message": i.message,
            "url": format!("{}/incidents/{}", site.public_url, i.id),
            "services": i.services.iter().map(service_ref).collect::<Vec<_>>(),
        })),
        "backup": e.backup.as_ref().map(|b| json!({ "id": b.id, "step": b.step, "error": b.error })),
        "certificate": e.certificate.as_ref().map(|c| json!({
            "expires_at": rfc3339(c.expires_at),
            "days_left": c.days_left,
        })),
    })
}

async fn send_email(
    email: &EmailChannel,
    d: &AlertDelivery,
    m: &Message,
    site: &Site,
) -> Result<(), SendError> {
    use lettre::message::header::ContentType;
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

    let address = |text: &str| {
        text.parse::<lettre::message::Mailbox>()
            .map_err(|e| SendError::Permanent(format!("address \"{text}\": {e}")))
    };
    let mut mail = lettre::Message::builder()
        .from(address(&email.from)?)
        .subject(format!("[{}] {}", site.title, m.title));
    for to in &email.to {
        mail = mail.to(address(to)?);
    }
    let mail = mail
        .header(ContentType::TEXT_PLAIN)
        .body(format!(
            "{}\n\n{}\n\n-- \nSent by beacon for {} ({}, alert {}).\n",
            m.text,
            m.url,
            site.title,
            d.kind.as_str(),
            d.event_id
        ))
        .map_err(|e| SendError::Permanent(format!("building the email: {e}")))?;

    let builder = match email.tls {
        SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&email.host),
        SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&email.host),
        SmtpTls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
            &email.host,
        )),
    }
    .map_err(|e| SendError::Permanent(format!("SMTP server {}: {e}", email.host)))?;
    let mut builder = builder.port(email.port);
    if let Some((user, password)) = &email.credentials {
        builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
    }
    match builder.build().send(mail).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_permanent() => Err(SendError::Permanent(format!("SMTP: {e}"))),
        Err(e) => Err(SendError::Transient {
            error: format!("SMTP: {e}"),
            retry_after: None,
        }),
    }
}
