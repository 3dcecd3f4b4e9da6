//! An email over SMTP (lettre): plain text, to every address of the
//! channel, with STARTTLS, TLS or (for a local relay) neither.

use super::error::SendError;
use crate::config::{EmailChannel, SmtpTls};
use crate::notify::{Message, Site};
use crate::store::AlertDelivery;

pub async fn send(
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
