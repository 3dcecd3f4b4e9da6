//! Telling subscribers: who gets which event ([`audience`]), the links in
//! what they get (confirm, manage, one-click unsubscribe), and the one
//! attempt of one delivery ([`send`]): an email (text and HTML, with
//! `List-Unsubscribe`), a Statuspage-shaped webhook, or a Slack message.
//!
//! What is sent follows Statuspage's rules (README, "Subscriptions"):
//! incidents opened, updated and resolved (unless posted "do not notify"),
//! maintenance scheduled, started and completed, to every subscriber that
//! follows a component they touch (or everything); webhook subscribers also
//! get each public component's status changes (`component_update`).

use std::collections::HashMap;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::channel::{self, SendError};
use super::{Message, Site};
use crate::config::{ChannelKind, NotifyChannel, SubscriptionsConfig};
use crate::domain::input::{subscriber, InvalidInput, SubscriberForm};
use crate::domain::{Event, EventKind, ServiceRef};
use crate::store::{Store, StoreError, Subscriber, SubscriberDelivery};

/// Makes a webhook subscriber's body (Statuspage's shape, which the page's
/// layer knows): given the delivery and the `meta` object, the JSON.
pub type BodyMaker = std::sync::Arc<
    dyn Fn(
            SubscriberDelivery,
            Value,
        ) -> futures_util::future::BoxFuture<'static, Result<Value, SendError>>
        + Send
        + Sync,
>;

/// The name of the key the manage links are signed with (`beacon_keys`).
const LINK_KEY: &str = "subscriber_links";
/// A confirmation link is good this long.
pub const CONFIRM_WITHIN_MS: i64 = 48 * 3_600_000;

/// `n` random bytes from the OS, hex.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    // The OS's generator failing is not something to go on without: a
    // predictable token would be worse than none.
    if let Err(e) = getrandom::getrandom(&mut bytes) {
        panic!("the operating system's random generator failed: {e}");
    }
    hex::encode(bytes)
}

/// What is stored of a token: its SHA-256, hex.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The key manage links are signed with: made once, shared through the
/// store by replicas, and kept by backups (links in old emails still work
/// after a restore).
pub async fn link_key(store: &Store, now: i64) -> Result<Vec<u8>, StoreError> {
    let key = store.key(LINK_KEY, &random_hex(32), now).await?;
    Ok(key.into_bytes())
}

fn mac(key: &[u8], subscriber: &Subscriber) -> String {
    // HMAC takes a key of any length.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(format!("manage\0{}\0{}", subscriber.id, subscriber.nonce).as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..16])
}

/// The token of a subscriber's manage and unsubscribe links:
/// `<id>-<MAC of id and nonce>`.
pub fn manage_token(key: &[u8], subscriber: &Subscriber) -> String {
    format!("{}-{}", subscriber.id, mac(key, subscriber))
}

/// The subscriber id a manage token names, before it is checked.
pub fn manage_token_id(token: &str) -> Option<i64> {
    let (id, mac) = token.split_once('-')?;
    (mac.len() == 32 && mac.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| id.parse().ok())
        .flatten()
}

/// Whether `token` is `subscriber`'s (compared in constant time).
pub fn manage_token_valid(key: &[u8], token: &str, subscriber: &Subscriber) -> bool {
    crate::domain::secret::equal(manage_token(key, subscriber).as_bytes(), token.as_bytes())
}

/// The services an event touches, `None` when it is not for subscribers
/// at all.
fn touched(event: &Event) -> Option<&[ServiceRef]> {
    if let Some(i) = &event.incident {
        return Some(&i.services);
    }
    if let Some(m) = &event.maintenance {
        return Some(&m.services);
    }
    None
}

/// The services an event names: all that [`audience`] and [`send`] ask
/// of the public components.
pub fn named(event: &Event) -> impl Iterator<Item = &str> {
    let incident = event.incident.iter().flat_map(|i| &i.services);
    let maintenance = event.maintenance.iter().flat_map(|m| &m.services);
    event
        .service
        .iter()
        .map(|s| &s.service)
        .chain(incident)
        .chain(maintenance)
        .map(|s| s.slug.as_str())
}

/// The public components among the services `events` name, by slug with
/// their groups (see [`audience`]).
pub async fn public_of<'a>(
    store: &Store,
    events: impl IntoIterator<Item = &'a Event>,
) -> Result<HashMap<String, Option<String>>, StoreError> {
    let mut names: Vec<&str> = events.into_iter().flat_map(named).collect();
    names.sort_unstable();
    names.dedup();
    Ok(store
        .public_components_named(&names)
        .await?
        .into_iter()
        .collect())
}

/// Why an event goes to nobody, or to whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Not an event for subscribers (backups, certificates, locations …).
    None,
    /// Posted "do not notify": those it would reach are counted as
    /// suppressed.
    Suppressed,
    /// Goes to the subscribers [`audience`] picks.
    Subscribers,
}

pub fn reach(event: &Event) -> Reach {
    match event.kind {
        EventKind::IncidentOpened | EventKind::IncidentUpdated | EventKind::IncidentResolved => {
            if event.incident.as_ref().is_some_and(|i| !i.notify) {
                Reach::Suppressed
            } else {
                Reach::Subscribers
            }
        }
        EventKind::MaintenanceScheduled
        | EventKind::MaintenanceStarted
        | EventKind::MaintenanceCompleted
        | EventKind::MaintenanceCancelled
        | EventKind::ServiceDown
        | EventKind::ServiceDegraded
        | EventKind::ServiceRecovered => Reach::Subscribers,
        _ => Reach::None,
    }
}

/// Whether `subscriber` gets `event`. `public`: the public services'
/// slugs with their groups (a private service is never told about).
pub fn audience(
    event: &Event,
    subscriber: &Subscriber,
    public: &HashMap<String, Option<String>>,
) -> bool {
    let follows = |s: &ServiceRef| {
        public.contains_key(&s.slug)
            && subscriber.components.as_ref().is_none_or(|c| {
                c.contains(&s.slug) || s.group.as_ref().is_some_and(|g| c.contains(g))
            })
    };
    if let Some(s) = &event.service {
        // A component's status: for webhooks, as Statuspage sends them.
        return subscriber.kind == "webhook"
            && matches!(
                event.kind,
                EventKind::ServiceDown | EventKind::ServiceDegraded | EventKind::ServiceRecovered
            )
            && follows(&s.service);
    }
    let Some(services) = touched(event) else {
        return false;
    };
    if subscriber.components.is_none() {
        // Everything the page shows: an incident naming no service is
        // page-wide; one about private services alone is not shown.
        return services.is_empty() || services.iter().any(|s| public.contains_key(&s.slug));
    }
    services.iter().any(follows)
}

/// Links of one subscriber's message.
pub struct Links {
    pub manage: String,
    pub unsubscribe: String,
}

impl Links {
    pub fn of(site: &Site, key: &[u8], subscriber: &Subscriber) -> Links {
        let token = manage_token(key, subscriber);
        Links {
            manage: format!("{}/subscribe/manage/{token}", site.public_url),
            unsubscribe: format!("{}/subscribe/unsubscribe/{token}", site.public_url),
        }
    }
}

/// What an attempt needs besides the delivery.
pub struct Context<'a> {
    pub http: &'a reqwest::Client,
    pub site: &'a Site,
    pub key: &'a [u8],
    pub body: &'a BodyMaker,
    /// Public services' slugs (with groups): the only ones a message names.
    pub public: &'a HashMap<String, Option<String>>,
    pub subscriptions: Option<&'a SubscriptionsConfig>,
    pub channels: &'a [NotifyChannel],
}

/// One attempt at one delivery.
pub async fn send(cx: &Context<'_>, d: &SubscriberDelivery) -> Result<(), SendError> {
    // The words name public services only.
    let mut shown = d.event.clone();
    if let Some(i) = shown.incident.as_mut() {
        i.services.retain(|s| cx.public.contains_key(&s.slug));
    }
    if let Some(m) = shown.maintenance.as_mut() {
        m.services.retain(|s| cx.public.contains_key(&s.slug));
    }
    let message = shown.message(d.kind, cx.site);
    let links = Links::of(cx.site, cx.key, &d.subscriber);
    let timeout = std::time::Duration::from_secs(20);
    let attempt = async {
        match d.subscriber.kind.as_str() {
            "email" => {
                let (config, smtp) = email_setup(cx)?;
                let mail = email(config, cx.site, &d.subscriber.address, &message, &links)?;
                channel::email::deliver(smtp, mail).await
            }
            "webhook" => {
                let url = url::Url::parse(&d.subscriber.address)
                    .map_err(|e| SendError::Permanent(format!("the webhook URL: {e}")))?;
                let body = webhook_body(cx, d, &links).await?;
                let body = serde_json::to_vec(&body)
                    .map_err(|e| SendError::Permanent(format!("encoding the body: {e}")))?;
                let mut request = cx
                    .http
                    .post(url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header("X-Beacon-Event", d.kind.as_str())
                    .header("X-Beacon-Delivery", format!("s{}", d.id));
                if let Some(secret) = &d.subscriber.secret {
                    request = request.header(
                        "X-Beacon-Signature-256",
                        channel::webhook::signature(secret, &body),
                    );
                }
                channel::post(request.body(body)).await
            }
            "slack" => {
                let url = url::Url::parse(&d.subscriber.address)
                    .map_err(|e| SendError::Permanent(format!("the Slack URL: {e}")))?;
                let text = format!(
                    "*{}*\n{}\n<{}|View the status page> · <{}|Unsubscribe>",
                    slack_escape(&message.title),
                    slack_escape(&message.text),
                    message.url,
                    links.unsubscribe
                );
                channel::post(
                    cx.http
                        .post(url)
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(json!({ "text": text }).to_string()),
                )
                .await
            }
            other => Err(SendError::Permanent(format!(
                "unknown subscriber kind \"{other}\""
            ))),
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(SendError::Transient {
                error: format!("no answer within {timeout:?}"),
                retry_after: None,
            })
        })
}

/// Slack's three characters with a meaning in `mrkdwn`.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn email_setup<'a>(
    cx: &Context<'a>,
) -> Result<(&'a SubscriptionsConfig, &'a crate::config::EmailChannel), SendError> {
    let Some(config) = cx.subscriptions else {
        return Err(SendError::Transient {
            error: "[subscriptions] is not enabled: no SMTP server to send subscribers' email"
                .into(),
            retry_after: None,
        });
    };
    match cx.channels.iter().find(|c| c.name == config.channel) {
        Some(NotifyChannel {
            kind: ChannelKind::Email(smtp),
            ..
        }) => Ok((config, smtp)),
        _ => Err(SendError::Transient {
            error: format!(
                "[subscriptions] channel \"{}\" is not an email channel",
                config.channel
            ),
            retry_after: None,
        }),
    }
}

/// HTML text, escaped.
fn html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A subscriber's email: text and HTML parts, a link to the page, the
/// manage link, and RFC 8058's one-click unsubscribe.
pub fn email(
    config: &SubscriptionsConfig,
    site: &Site,
    to: &str,
    m: &Message,
    links: &Links,
) -> Result<lettre::Message, SendError> {
    let text = format!(
        "{}\n\n{}\n\nView the status page: {}\n\n-- \nYou get this because you subscribed to updates from {}.\nChange what you follow: {}\nUnsubscribe: {}\n",
        m.title, m.text, m.url, site.title, links.manage, links.unsubscribe
    );
    let body = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body style=\"font-family:sans-serif;color:#1a1a1a;max-width:40em\">\
         <h1 style=\"font-size:1.25em\">{title}</h1><p>{text}</p>\
         <p><a href=\"{url}\">View the status page</a></p>\
         <hr><p style=\"font-size:.875em;color:#555\">You get this because you subscribed to updates from {site}. \
         <a href=\"{manage}\">Change what you follow</a> · <a href=\"{unsubscribe}\">Unsubscribe</a></p></body></html>",
        title = html(&m.title),
        text = html(&m.text),
        url = html(&m.url),
        site = html(&site.title),
        manage = html(&links.manage),
        unsubscribe = html(&links.unsubscribe),
    );
    message(
        config,
        site,
        to,
        &m.title,
        text,
        body,
        Some(&links.unsubscribe),
    )
}

/// The confirmation email of a sign-up.
pub fn confirmation_email(
    config: &SubscriptionsConfig,
    site: &Site,
    to: &str,
    confirm_url: &str,
) -> Result<lettre::Message, SendError> {
    let title = format!("Confirm your subscription to {}", site.title);
    let text = format!(
        "Someone, hopefully you, asked to receive updates from {} at this address.\n\n\
         To confirm, open this link within 48 hours:\n{confirm_url}\n\n\
         If it was not you, ignore this email: nothing will be sent to you.\n",
        site.title
    );
    let body = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body style=\"font-family:sans-serif;color:#1a1a1a;max-width:40em\">\
         <p>Someone, hopefully you, asked to receive updates from {site} at this address.</p>\
         <p><a href=\"{url}\">Confirm your subscription</a> (the link works for 48 hours).</p>\
         <p>If it was not you, ignore this email: nothing will be sent to you.</p></body></html>",
        title = html(&title),
        site = html(&site.title),
        url = html(confirm_url),
    );
    message(config, site, to, &title, text, body, None)
}

fn message(
    config: &SubscriptionsConfig,
    site: &Site,
    to: &str,
    subject: &str,
    text: String,
    html_body: String,
    unsubscribe: Option<&str>,
) -> Result<lettre::Message, SendError> {
    use lettre::message::header::{HeaderName, HeaderValue};
    use lettre::message::{MultiPart, SinglePart};
    let mut mail = lettre::Message::builder()
        .message_id(None)
        .from(channel::email::mailbox(&config.from)?)
        .to(channel::email::mailbox(to)?)
        .subject(format!("[{}] {subject}", site.title));
    if let Some(url) = unsubscribe {
        mail = mail
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                format!("<{url}>"),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                "List-Unsubscribe=One-Click".to_string(),
            ));
    }
    mail.multipart(
        MultiPart::alternative()
            .singlepart(SinglePart::plain(text))
            .singlepart(SinglePart::html(html_body)),
    )
    .map_err(|e| SendError::Permanent(format!("building the email: {e}")))
}

/// The body Statuspage sends its webhook subscribers: `meta`, then what
/// [`BodyMaker`] adds (`page`, and `incident` or `component_update`).
async fn webhook_body(
    cx: &Context<'_>,
    d: &SubscriberDelivery,
    links: &Links,
) -> Result<Value, SendError> {
    let meta = json!({
        "unsubscribe": links.unsubscribe,
        "documentation": format!("{}/", cx.site.public_url),
        "generated_at": crate::clock::ms_to_datetime(d.event.at)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        "event": d.kind.as_str(),
    });
    (cx.body)(d.clone(), meta).await
}

fn time(ms: i64) -> Value {
    crate::clock::ms_to_datetime(ms).map_or(Value::Null, |t| json!(t.to_rfc3339()))
}

/// A subscriber as the admin API and the CLI show it (never its secret).
pub fn subscriber_json(s: &Subscriber) -> Value {
    json!({
        "id": s.id,
        "kind": s.kind,
        "address": s.address,
        "components": s.components,
        "signed": s.secret.is_some(),
        "confirmed_at": s.confirmed_at.map_or(Value::Null, time),
        "created_at": time(s.created_at),
        "updated_at": time(s.updated_at),
    })
}

/// Everything stored about a subscriber: the answer to a data protection
/// request (`beacon subscribers export`, `GET /admin/api/subscribers/{id}`).
pub async fn export(store: &Store, s: &Subscriber) -> Result<Value, StoreError> {
    let tokens = store.subscriber_tokens(s.id).await?;
    let deliveries = store.deliveries_of_subscriber(s.id).await?;
    let mut out = subscriber_json(s);
    out["confirmation_tokens"] = json!(tokens
        .iter()
        .map(|t| json!({
            "sha256": t.token_hash,
            "created_at": time(t.created_at),
            "expires_at": time(t.expires_at),
            "used_at": t.used_at.map_or(Value::Null, time),
        }))
        .collect::<Vec<_>>());
    out["messages"] = json!(deliveries
        .iter()
        .map(|d| json!({
            "event": d.kind.as_str(),
            "status": d.status,
            "attempts": d.attempts,
            "sent_at": d.sent_at.map_or(Value::Null, time),
        }))
        .collect::<Vec<_>>());
    Ok(out)
}

fn invalid(e: InvalidInput) -> StoreError {
    StoreError::Invalid {
        field: e.field,
        message: e.message,
    }
}

/// What the running config allows an operator to add.
#[derive(Debug, Clone, Copy)]
pub struct AddRules {
    /// `server.public_url` is set (every message links to the page).
    pub public_url: bool,
    /// `[subscriptions]` is enabled (its channel sends email).
    pub email: bool,
}

/// Adds an operator's subscriber (the admin API and the CLI): checks the
/// form and its components against the services; a webhook without a
/// secret gets one, returned once.
pub async fn add(
    store: &Store,
    form: SubscriberForm,
    rules: AddRules,
    now: i64,
) -> Result<(Subscriber, Option<String>), StoreError> {
    let mut new = subscriber(form).map_err(invalid)?;
    if !rules.public_url {
        return Err(invalid(InvalidInput::new(
            "kind",
            "subscribers need server.public_url: their links point to the page",
        )));
    }
    if new.kind == "email" && !rules.email {
        return Err(invalid(InvalidInput::new(
            "kind",
            "email subscribers need [subscriptions] enabled = true (its SMTP channel sends the mail)",
        )));
    }
    if let Some(components) = &new.components {
        let names: Vec<&str> = components.iter().map(String::as_str).collect();
        let known = store.public_components_named(&names).await?;
        for c in components {
            let found = known
                .iter()
                .any(|(slug, group)| slug == c || group.as_ref() == Some(c));
            if !found {
                return Err(invalid(InvalidInput::new(
                    "components",
                    format!("\"{c}\" is neither a public service's slug nor a group's name"),
                )));
            }
        }
    }
    let made = if new.kind == "webhook" && new.secret.is_none() {
        let secret = random_hex(24);
        new.secret = Some(secret.clone());
        Some(secret)
    } else {
        None
    };
    let id = store
        .add_subscriber(
            &new.kind,
            &new.address,
            new.components.as_deref(),
            new.secret.as_deref(),
            &random_hex(16),
            now,
        )
        .await?;
    let s = store.subscriber(id).await?.ok_or(StoreError::Invalid {
        field: "id",
        message: format!("subscriber {id} vanished after it was added"),
    })?;
    Ok((s, made))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{IncidentFacts, MaintenanceFacts, ServiceFacts};

    fn subscriber(kind: &str, components: Option<&[&str]>) -> Subscriber {
        Subscriber {
            id: 7,
            kind: kind.into(),
            address: "a@example.com".into(),
            components: components.map(|c| c.iter().map(|s| s.to_string()).collect()),
            secret: None,
            nonce: "n".into(),
            confirmed_at: Some(1),
            created_at: 1,
            updated_at: 1,
        }
    }

    fn service(slug: &str, group: Option<&str>) -> ServiceRef {
        ServiceRef {
            slug: slug.into(),
            name: slug.to_uppercase(),
            group: group.map(str::to_string),
        }
    }

    fn incident(services: Vec<ServiceRef>, notify: bool) -> Event {
        Event {
            kind: EventKind::IncidentOpened,
            at: 0,
            service: None,
            incident: Some(IncidentFacts {
                id: 1,
                title: "t".into(),
                status: "investigating".into(),
                impact: "minor".into(),
                automatic: false,
                message: "m".into(),
                services,
                notify,
                by_monitor: false,
            }),
            backup: None,
            certificate: None,
            location: None,
            maintenance: None,
        }
    }

    fn public() -> HashMap<String, Option<String>> {
        [
            ("api".to_string(), Some("Shop".to_string())),
            ("web".to_string(), None),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn subscribers_get_what_touches_what_they_follow() {
        let p = public();
        let api = incident(vec![service("api", Some("Shop"))], true);
        let web = incident(vec![service("web", None)], true);
        let private = incident(vec![service("internal", None)], true);
        let wide = incident(vec![], true);
        let all = subscriber("email", None);
        let shop = subscriber("email", Some(&["Shop"]));
        let only_web = subscriber("email", Some(&["web"]));
        assert!(audience(&api, &all, &p) && audience(&web, &all, &p));
        assert!(
            audience(&wide, &all, &p),
            "a page-wide incident reaches all"
        );
        assert!(
            !audience(&private, &all, &p),
            "a private service's is not shown"
        );
        assert!(audience(&api, &shop, &p), "a group follows its services");
        assert!(!audience(&web, &shop, &p));
        assert!(audience(&web, &only_web, &p) && !audience(&api, &only_web, &p));
        assert!(
            !audience(&wide, &only_web, &p),
            "a filter asks for components"
        );
        assert_eq!(reach(&incident(vec![], false)), Reach::Suppressed);
        let mut window = incident(vec![], true);
        window.incident = None;
        window.kind = EventKind::MaintenanceStarted;
        window.maintenance = Some(MaintenanceFacts {
            id: 1,
            title: "t".into(),
            message: "m".into(),
            starts_at: 0,
            ends_at: 1,
            services: vec![service("api", Some("Shop"))],
        });
        assert!(audience(&window, &shop, &p) && !audience(&window, &only_web, &p));
    }

    /// The public components read for an event are those it names: what
    /// `audience` and `send` look up, and nothing of the rest of the fleet.
    #[test]
    fn an_event_names_its_service_incident_and_window_services() {
        let opened = incident(vec![service("api", None), service("internal", None)], true);
        assert_eq!(named(&opened).collect::<Vec<_>>(), ["api", "internal"]);
        let mut both = opened.clone();
        both.maintenance = Some(MaintenanceFacts {
            id: 1,
            title: "t".into(),
            message: String::new(),
            starts_at: 0,
            ends_at: 1,
            services: vec![service("web", None)],
        });
        assert_eq!(named(&both).collect::<Vec<_>>(), ["api", "internal", "web"]);
        let mut change = incident(Vec::new(), true);
        change.incident = None;
        assert_eq!(named(&change).count(), 0, "no service facts, no names");
        change.service = Some(ServiceFacts {
            service: service("web", None),
            state: "down".into(),
            previous_state: "up".into(),
            since: 0,
            previous_since: None,
            reason: None,
        });
        assert_eq!(named(&change).collect::<Vec<_>>(), ["web"]);
    }

    #[test]
    fn only_webhooks_get_component_changes_of_public_services() {
        let p = public();
        let change = |slug: &str| Event {
            kind: EventKind::ServiceDown,
            at: 0,
            service: Some(ServiceFacts {
                service: service(slug, None),
                state: "down".into(),
                previous_state: "up".into(),
                since: 0,
                previous_since: None,
                reason: Some("10.0.0.1 refused".into()),
            }),
            incident: None,
            backup: None,
            certificate: None,
            location: None,
            maintenance: None,
        };
        assert!(audience(&change("web"), &subscriber("webhook", None), &p));
        assert!(!audience(&change("web"), &subscriber("email", None), &p));
        assert!(!audience(&change("web"), &subscriber("slack", None), &p));
        assert!(!audience(
            &change("internal"),
            &subscriber("webhook", None),
            &p
        ));
    }

    #[test]
    fn manage_tokens_are_the_subscribers_own() {
        let key = b"key";
        let s = subscriber("email", None);
        let token = manage_token(key, &s);
        assert_eq!(manage_token_id(&token), Some(7));
        assert!(manage_token_valid(key, &token, &s));
        let mut other = s.clone();
        other.nonce = "m".into();
        assert!(
            !manage_token_valid(key, &token, &other),
            "a new nonce voids it"
        );
        assert!(!manage_token_valid(b"other", &token, &s));
        assert_eq!(manage_token_id("7-xyz"), None);
        assert_eq!(hash_token("a").len(), 64);
        assert_ne!(random_hex(16), random_hex(16));
    }
}
