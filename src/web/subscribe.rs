//! `/subscribe`: visitors subscribing to the page by email, without
//! JavaScript. Double opt-in: a sign-up stores the address unconfirmed
//! and mails a single-use link (48 h; only its hash is kept); nothing else
//! is sent until it is followed. Every later email carries a manage link
//! and RFC 8058's one-click unsubscribe.
//!
//! What a visitor is told never depends on whether the address was known:
//! a new address, a confirmed one, one past its daily share of links and a
//! honeypot hit all get the same "check your inbox" page.
//!
//! Limits (README, "Subscriptions"): `[subscriptions] client_limit`
//! sign-ups per client address per hour (the next is 429, nothing sent),
//! `address_limit` confirmation emails per address per day (the next
//! sign-up sends nothing), 4 KiB of form, 254 bytes of address.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use askama::Template;
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::attempts::{client_of, Attempts};
use super::AppState;
use crate::config::SubscriptionsConfig;
use crate::notify::subscribers as subs;
use crate::notify::SharedChannels;
use crate::store::{EmailSignUp, SignUp, Subscriber};

/// The longest form accepted.
const MAX_FORM_BYTES: usize = 4096;
/// The longest address kept in the form when it is shown again.
const MAX_ADDRESS_BYTES: usize = 254;

/// What the subscription routes share.
pub struct Subscriptions {
    pub config: Option<Arc<SubscriptionsConfig>>,
    pub channels: SharedChannels,
    pub site: crate::notify::Site,
    pub signups: Attempts,
    key: tokio::sync::OnceCell<Vec<u8>>,
}

impl Subscriptions {
    pub fn new(
        config: Option<Arc<SubscriptionsConfig>>,
        channels: SharedChannels,
        site: crate::notify::Site,
    ) -> Subscriptions {
        let limit = config
            .as_ref()
            .map_or(SubscriptionsConfig::DEFAULT_CLIENT_LIMIT, |c| {
                c.client_limit
            });
        Subscriptions {
            config,
            channels,
            site,
            signups: Attempts::new(limit, Duration::from_secs(3600)),
            key: tokio::sync::OnceCell::new(),
        }
    }
}

impl Default for Subscriptions {
    fn default() -> Self {
        Subscriptions::new(
            None,
            SharedChannels::default(),
            crate::notify::Site::default(),
        )
    }
}

/// A followable component: a group, or a public service.
struct Choice {
    value: String,
    label: String,
    checked: bool,
    /// A service inside a group (indented under it).
    nested: bool,
}

#[derive(Template)]
#[template(path = "subscribe.html")]
struct SubscribePage {
    site: Arc<super::Site>,
    title: String,
    choices: Vec<Choice>,
    email: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "subscribe_message.html")]
struct MessagePage {
    site: Arc<super::Site>,
    title: String,
    heading: String,
    text: String,
}

#[derive(Template)]
#[template(path = "subscribe_manage.html")]
struct ManagePage {
    site: Arc<super::Site>,
    title: String,
    notice: Option<String>,
    address: String,
    token: String,
    choices: Vec<Choice>,
    all: bool,
}

#[derive(Template)]
#[template(path = "subscribe_confirm.html")]
struct ConfirmPage {
    site: Arc<super::Site>,
    title: String,
    token: String,
}

#[derive(Template)]
#[template(path = "subscribe_leave.html")]
struct LeavePage {
    site: Arc<super::Site>,
    title: String,
    token: String,
}

fn html(status: StatusCode, page: Result<String, askama::Error>) -> Response {
    match page {
        Ok(body) => (
            status,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
                (header::REFERRER_POLICY, "no-referrer"),
            ],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a subscription page failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong\n").into_response()
        }
    }
}

fn message(app: &AppState, status: StatusCode, heading: &str, text: &str) -> Response {
    let page = MessagePage {
        site: app.site.clone(),
        title: app.snapshot.borrow().title.clone(),
        heading: heading.into(),
        text: text.into(),
    };
    html(status, page.render())
}

fn disabled(app: &AppState) -> Response {
    message(
        app,
        StatusCode::NOT_FOUND,
        "Subscriptions are not offered",
        "This status page does not send updates by email.",
    )
}

/// The components a visitor may follow, in the page's order, `chosen`
/// ticked.
fn choices(app: &AppState, chosen: Option<&[String]>) -> Vec<Choice> {
    let snapshot = app.snapshot.borrow();
    let ticked = |v: &str| chosen.is_some_and(|c| c.iter().any(|x| x == v));
    let mut out = Vec::new();
    for g in &snapshot.groups {
        if let Some(name) = &g.name {
            out.push(Choice {
                value: name.clone(),
                label: format!("{name} (all of it)"),
                checked: ticked(name),
                nested: false,
            });
        }
        for s in &g.services {
            out.push(Choice {
                value: s.slug.clone(),
                label: s.name.clone(),
                checked: ticked(&s.slug),
                nested: g.name.is_some(),
            });
        }
    }
    out
}

/// A form's fields: each name with its values, in order.
fn form(body: &[u8]) -> HashMap<String, Vec<String>> {
    let mut fields: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        fields
            .entry(k.into_owned())
            .or_default()
            .push(v.into_owned());
    }
    fields
}

/// The components asked for: each must be a public service's slug or a
/// group's name; none ticked is everything.
fn chosen(app: &AppState, values: Option<&Vec<String>>) -> Result<Option<Vec<String>>, String> {
    let Some(values) = values.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let valid: Vec<String> = choices(app, None).into_iter().map(|c| c.value).collect();
    let mut out = Vec::new();
    for v in values {
        if !valid.contains(v) {
            return Err("one of the components is not on this page".into());
        }
        if !out.contains(v) {
            out.push(v.clone());
        }
    }
    Ok(Some(out))
}

/// An address as stored: trimmed, lower-cased, checked.
pub fn clean_address(raw: &str) -> Result<String, String> {
    crate::domain::input::clean_address(raw).map_err(|e| e.message)
}

async fn body(request: Request) -> Option<Vec<u8>> {
    let (parts, body) = request.into_parts();
    crate::web::capped::read(&parts.headers, body, MAX_FORM_BYTES)
        .await
        .ok()
        .map(|b| b.to_vec())
}

pub async fn form_page(State(app): State<AppState>) -> Response {
    if app.subscriptions.config.is_none() {
        return disabled(&app);
    }
    let page = SubscribePage {
        site: app.site.clone(),
        title: app.snapshot.borrow().title.clone(),
        choices: choices(&app, None),
        email: String::new(),
        error: None,
    };
    html(StatusCode::OK, page.render())
}

pub async fn sign_up(State(app): State<AppState>, request: Request) -> Response {
    let Some(config) = app.subscriptions.config.clone() else {
        return disabled(&app);
    };
    let client = client_of(&app.clients, &request);
    if let Err(wait) = app.subscriptions.signups.take(client, Instant::now()) {
        app.metrics
            .subscription_signups
            .with_label_values(&["refused"])
            .inc();
        tracing::info!(%client, "sign-up refused: too many from this client");
        let mut response = message(
            &app,
            StatusCode::TOO_MANY_REQUESTS,
            "Too many sign-ups",
            "Too many sign-ups came from your address. Try again later.",
        );
        if let Ok(v) = header::HeaderValue::from_str(&wait.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return response;
    }
    let Some(bytes) = body(request).await else {
        let mut response = message(
            &app,
            StatusCode::PAYLOAD_TOO_LARGE,
            "The form is too large",
            "Go back and try again with fewer components.",
        );
        crate::web::capped::last_on_connection(&mut response);
        return response;
    };
    let fields = form(&bytes);
    let first = |name: &str| {
        fields
            .get(name)
            .and_then(|v| v.first())
            .cloned()
            .unwrap_or_default()
    };
    let done = || {
        message(
            &app,
            StatusCode::OK,
            "Check your inbox",
            "If the address can receive email, a message with a link to confirm your subscription is on its way. The link works for 48 hours; nothing is sent to you until you follow it.",
        )
    };
    if !first("website").is_empty() {
        // The hidden field only a robot fills in: told the same, sent nothing.
        app.metrics
            .subscription_signups
            .with_label_values(&["honeypot"])
            .inc();
        return done();
    }
    let email = first("email");
    let refuse = |error: String, email: &str| {
        let page = SubscribePage {
            site: app.site.clone(),
            title: app.snapshot.borrow().title.clone(),
            choices: choices(&app, fields.get("components").map(Vec::as_slice)),
            email: email.chars().take(MAX_ADDRESS_BYTES).collect(),
            error: Some(error),
        };
        html(StatusCode::UNPROCESSABLE_ENTITY, page.render())
    };
    let address = match clean_address(&email) {
        Ok(a) => a,
        Err(e) => return refuse(e, &email),
    };
    let components = match chosen(&app, fields.get("components")) {
        Ok(c) => c,
        Err(e) => return refuse(e, &email),
    };
    let now = app.clock.now_ms();
    let token = subs::random_hex(32);
    let token_hash = subs::hash_token(&token);
    let nonce = subs::random_hex(16);
    let signed = app
        .store
        .sign_up_email(&EmailSignUp {
            address: &address,
            components: components.as_deref(),
            token_hash: &token_hash,
            nonce: &nonce,
            now,
            expires_at: now + subs::CONFIRM_WITHIN_MS,
            max_per_day: i64::from(config.address_limit),
        })
        .await;
    match signed {
        Ok(SignUp::Limited) => {
            app.metrics
                .subscription_signups
                .with_label_values(&["limited"])
                .inc();
            done()
        }
        Ok(SignUp::Send { .. }) => {
            let site = &app.subscriptions.site;
            let url = format!("{}/subscribe/confirm/{token}", site.public_url);
            let sent = send_confirmation(&app, &config, &address, &url).await;
            match sent {
                Ok(()) => {
                    app.metrics
                        .subscription_signups
                        .with_label_values(&["sent"])
                        .inc();
                    done()
                }
                Err(error) => {
                    app.metrics
                        .subscription_signups
                        .with_label_values(&["failed"])
                        .inc();
                    tracing::error!(error = %crate::redact::scrub(&error), "the confirmation email could not be sent");
                    message(
                        &app,
                        StatusCode::SERVICE_UNAVAILABLE,
                        "The email could not be sent",
                        "We could not send the confirmation email just now. Please try again in a few minutes.",
                    )
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "storing a sign-up failed");
            message(
                &app,
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again",
                "Your sign-up could not be saved just now. Please try again in a few minutes.",
            )
        }
    }
}

async fn send_confirmation(
    app: &AppState,
    config: &SubscriptionsConfig,
    to: &str,
    url: &str,
) -> Result<(), String> {
    let channels = app.subscriptions.channels.read().clone();
    let smtp = channels
        .iter()
        .find_map(|c| match &c.kind {
            crate::config::ChannelKind::Email(e) if c.name == config.channel => Some(e.clone()),
            _ => None,
        })
        .ok_or_else(|| format!("no email channel \"{}\"", config.channel))?;
    let mail = subs::confirmation_email(config, &app.subscriptions.site, to, url)
        .map_err(|e| e.into_message())?;
    tokio::time::timeout(
        Duration::from_secs(20),
        crate::notify::deliver_email(&smtp, mail),
    )
    .await
    .map_err(|_| "no answer from the SMTP server within 20 s".to_string())?
    .map_err(|e| e.into_message())
}

/// `GET`: a button, never the act: mail scanners follow links, and a
/// scanner must not confirm an address for its owner.
pub async fn confirm_page(State(app): State<AppState>, Path(token): Path<String>) -> Response {
    if app.subscriptions.config.is_none() {
        return disabled(&app);
    }
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return expired(&app);
    }
    let page = ConfirmPage {
        site: app.site.clone(),
        title: app.snapshot.borrow().title.clone(),
        token,
    };
    html(StatusCode::OK, page.render())
}

fn expired(app: &AppState) -> Response {
    message(
        app,
        StatusCode::NOT_FOUND,
        "This link has expired",
        "The confirmation link was already used or is older than 48 hours. Sign up again to get a new one.",
    )
}

/// `POST`: follows the confirmation link.
pub async fn confirm(State(app): State<AppState>, Path(token): Path<String>) -> Response {
    if app.subscriptions.config.is_none() {
        return disabled(&app);
    }
    let now = app.clock.now_ms();
    let confirmed = if token.len() == 64 {
        app.store
            .confirm_subscriber(&subs::hash_token(&token), now)
            .await
    } else {
        Ok(None)
    };
    match confirmed {
        Ok(Some((subscriber, newly))) => {
            if newly {
                app.metrics.subscribers_confirmed.inc();
                tracing::info!(subscriber = subscriber.id, "subscriber confirmed");
            }
            manage_page(
                &app,
                &subscriber,
                Some(
                    "Your subscription is confirmed. You will receive updates at this address."
                        .into(),
                ),
            )
            .await
        }
        Ok(None) => expired(&app),
        Err(e) => {
            tracing::error!(error = %e, "confirming a subscriber failed");
            message(
                &app,
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again",
                "Your subscription could not be confirmed just now. Please try the link again in a few minutes.",
            )
        }
    }
}

async fn key(app: &AppState) -> Option<&[u8]> {
    let now = app.clock.now_ms();
    match app
        .subscriptions
        .key
        .get_or_try_init(|| subs::link_key(&app.store, now))
        .await
    {
        Ok(k) => Some(k.as_slice()),
        Err(e) => {
            tracing::error!(error = %e, "reading the subscription link key failed");
            None
        }
    }
}

/// The subscriber a manage token is for, if it is one of theirs.
async fn holder(app: &AppState, token: &str) -> Option<Subscriber> {
    let id = subs::manage_token_id(token)?;
    let key = key(app).await?;
    let subscriber = app.store.subscriber(id).await.ok()??;
    subs::manage_token_valid(key, token, &subscriber).then_some(subscriber)
}

fn unknown_link(app: &AppState) -> Response {
    message(
        app,
        StatusCode::NOT_FOUND,
        "This link is not valid",
        "The subscription it was for no longer exists. You can sign up again from the status page.",
    )
}

async fn manage_page(app: &AppState, s: &Subscriber, notice: Option<String>) -> Response {
    let Some(key) = key(app).await else {
        return unknown_link(app);
    };
    let page = ManagePage {
        site: app.site.clone(),
        title: app.snapshot.borrow().title.clone(),
        notice,
        // A Slack or webhook URL is a secret (whoever has it can post):
        // the page shows only where it points.
        address: if s.kind == "email" {
            s.address.clone()
        } else {
            format!("the {} at {}", s.kind, crate::redact::url_text(&s.address))
        },
        token: subs::manage_token(key, s),
        choices: choices(app, s.components.as_deref()),
        all: s.components.is_none(),
    };
    html(StatusCode::OK, page.render())
}

pub async fn manage(State(app): State<AppState>, Path(token): Path<String>) -> Response {
    match holder(&app, &token).await {
        Some(s) => manage_page(&app, &s, None).await,
        None => unknown_link(&app),
    }
}

pub async fn save(
    State(app): State<AppState>,
    Path(token): Path<String>,
    request: Request,
) -> Response {
    let Some(s) = holder(&app, &token).await else {
        return unknown_link(&app);
    };
    let Some(bytes) = body(request).await else {
        return unknown_link(&app);
    };
    let fields = form(&bytes);
    let components = match chosen(&app, fields.get("components")) {
        Ok(c) => c,
        Err(e) => return manage_page(&app, &s, Some(format!("Not saved: {e}."))).await,
    };
    match app
        .store
        .set_subscriber_components(s.id, components.as_deref(), app.clock.now_ms())
        .await
    {
        Ok(_) => {
            let mut s = s;
            s.components = components;
            manage_page(&app, &s, Some("Saved.".into())).await
        }
        Err(e) => {
            tracing::error!(error = %e, "saving a subscriber's components failed");
            manage_page(&app, &s, Some("Not saved: please try again.".into())).await
        }
    }
}

/// `GET`: a button, never the act (mail scanners follow links).
pub async fn leave_page(State(app): State<AppState>, Path(token): Path<String>) -> Response {
    if holder(&app, &token).await.is_none() {
        return message(
            &app,
            StatusCode::OK,
            "You are unsubscribed",
            "This address receives no more updates from this page.",
        );
    }
    let page = LeavePage {
        site: app.site.clone(),
        title: app.snapshot.borrow().title.clone(),
        token,
    };
    html(StatusCode::OK, page.render())
}

/// `POST`: the unsubscribe itself, RFC 8058's one-click included (a mail
/// client posts `List-Unsubscribe=One-Click` here). Everything stored
/// about the subscriber goes with it.
pub async fn leave(State(app): State<AppState>, Path(token): Path<String>) -> Response {
    if let Some(s) = holder(&app, &token).await {
        match app.store.remove_subscriber(s.id).await {
            Ok(true) => {
                app.metrics.subscribers_unsubscribed.inc();
                tracing::info!(subscriber = s.id, "subscriber left");
            }
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, "removing a subscriber failed");
                return message(
                    &app,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Please try again",
                    "You could not be unsubscribed just now. Please try again in a few minutes.",
                );
            }
        }
    }
    message(
        &app,
        StatusCode::OK,
        "You are unsubscribed",
        "This address receives no more updates from this page.",
    )
}

#[cfg(test)]
mod tests {
    use super::clean_address;

    #[test]
    fn addresses_are_trimmed_lowered_and_checked() {
        assert_eq!(
            clean_address("  Ann@Example.COM ").as_deref(),
            Ok("ann@example.com")
        );
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@localhost",
            "a b@example.com",
        ] {
            assert!(clean_address(bad).is_err(), "{bad:?}");
        }
        assert!(clean_address(&format!("{}@example.com", "a".repeat(250))).is_err());
    }
}
