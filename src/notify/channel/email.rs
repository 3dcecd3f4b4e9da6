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

    let address = mailbox;
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

    deliver(email, mail).await
}

/// A mailbox, or a permanent error naming it.
pub fn mailbox(text: &str) -> Result<lettre::message::Mailbox, SendError> {
    text.parse::<lettre::message::Mailbox>()
        .map_err(|e| SendError::Permanent(format!("address \"{text}\": {e}")))
}

/// Hands `mail` to the channel's SMTP server (its TLS and credentials).
pub async fn deliver(email: &EmailChannel, mail: lettre::Message) -> Result<(), SendError> {
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

    // The web PKI's roots and the system's (see `trust`), as the other
    // channels and the probes.
    let tls = || {
        let mut params = TlsParameters::builder(email.host.clone())
            .certificate_store(CertificateStore::WebpkiRoots);
        for cert in crate::trust::system_roots() {
            if let Ok(cert) = Certificate::from_der(cert.to_vec()) {
                params = params.add_root_certificate(cert);
            }
        }
        params
            .build_rustls()
            .map_err(|e| SendError::Permanent(format!("SMTP server {}: {e}", email.host)))
    };
    let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&email.host);
    let builder = match email.tls {
        SmtpTls::Starttls => builder.tls(Tls::Required(tls()?)),
        SmtpTls::Tls => builder.tls(Tls::Wrapper(tls()?)),
        SmtpTls::None => builder,
    };
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
