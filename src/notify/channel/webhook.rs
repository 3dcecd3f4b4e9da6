//! A signed JSON POST: the body documented in the README's "Webhook body",
//! with GitHub's `X-Hub-Signature-256` scheme when a secret is set.

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use url::Url;

use super::error::SendError;
use super::http::post;
use crate::domain::{Event, ServiceRef};
use crate::notify::{Message, Site};
use crate::store::AlertDelivery;

pub async fn send(
    http: &reqwest::Client,
    url: &Url,
    secret: Option<&str>,
    d: &AlertDelivery,
    m: &Message,
    site: &Site,
) -> Result<(), SendError> {
    let body = serde_json::to_vec(&body(d, m, site))
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

fn rfc3339(ms: i64) -> Value {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
        .unwrap_or(Value::Null)
}

fn service_ref(s: &ServiceRef) -> Value {
    json!({ "slug": s.slug, "name": s.name, "group": s.group })
}

/// The webhook's body (the README's "Webhook body" section shows it).
pub fn body(d: &AlertDelivery, m: &Message, site: &Site) -> Value {
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
        "location": e.location.as_ref().map(|l| json!({
            "name": l.name,
            "last_result_at": l.last_result_at.map(rfc3339),
            "services": l.services,
        })),
    })
}

#[cfg(test)]
mod tests {
    use super::signature;

    /// The well-known HMAC-SHA256 example, so receivers checking with
    /// their own library agree with beacon byte for byte.
    #[test]
    fn the_signature_is_github_style_hmac_sha256_of_the_body() {
        assert_eq!(
            signature("key", b"The quick brown fox jumps over the lazy dog"),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        assert_ne!(signature("key", b"a"), signature("other", b"a"));
    }
}
