//! Alerts: telling people when something breaks.
//!
//! Events are written by the store in the transaction of what causes them
//! (see `store::alerts`), so probing never waits on a channel and nothing
//! is lost to a crash. The [`Notifier`], a task of `beacon serve`, then:
//! 1. routes each new event once: to every channel whose services, groups,
//!    events and `min_state` want it, unless its service is in a maintenance
//!    window (silenced, counted);
//! 2. sends due deliveries, each claimed first so that two replicas never
//!    send the same one; a failure is retried with doubling backoff, and
//!    after `max_attempts` given up (logged, counted, kept in the table).
//!
//! Each channel (webhook, Slack, email) is a file of `channel/` behind one
//! `channel::send`; the words of a message are `event.rs`'s.
//!
//! Delivery is at least once: a crash between a receiver's "200" and the
//! store's "sent" sends that alert again after the lease. Receivers can
//! tell by the event `id` in the body.

mod channel;
mod event;
pub mod subscribers;

use std::sync::Arc;
use std::time::Duration;

pub use channel::email::deliver as deliver_email;
pub use channel::SendError;
pub use event::{format_time, Message, Site};

use crate::clock::Clock;
use crate::config::NotifyChannel;
use crate::domain::{Event, EventKind, ServiceRef, State};
use crate::store::{AlertDelivery, DeliveryOutcome, Store, StoreError};

/// What an event's subscribers get: a delivery each (`to`), or, for an
/// event posted quietly, the kinds of those it would have reached
/// (`suppressed`, counted once it is routed).
#[derive(Default)]
struct Told {
    to: Vec<(i64, EventKind)>,
    suppressed: Vec<String>,
}

/// How often the outbox is read.
const POLL: Duration = Duration::from_secs(1);
/// Events routed per read.
const ROUTE_BATCH: i64 = 100;
/// Deliveries attempted at once.
const SEND_BATCH: i64 = 32;
/// An event older than this when first routed (beacon was stopped for a
/// day) is dropped rather than sent late; logged.
const MAX_EVENT_AGE_MS: i64 = 24 * 3_600_000;
/// Retries never wait longer than this.
const BACKOFF_CAP: Duration = Duration::from_secs(15 * 60);

/// Which channels an event goes to, and as what. `None`: not this one.
///
/// `services`/`groups` narrow service and incident events (an incident
/// matches if any affected service does); backup events are not tied to a
/// service and go wherever `events` allows them. For service events,
/// `min_state` decides: a change to a state at or above it is a problem,
/// a change from one to below it is a recovery (sent with
/// `send_on_resolved`), the rest is not this channel's business.
pub fn route(channel: &NotifyChannel, event: &Event) -> Option<EventKind> {
    // The monitor's own incident steps are told to channels by the service
    // events that cause them; their own events are for subscribers. A
    // person's update to an automatic incident is told as any other.
    if event.incident.as_ref().is_some_and(|i| i.by_monitor) {
        return None;
    }
    let in_scope = |s: &ServiceRef| {
        channel.services.contains(&s.slug)
            || s.group.as_ref().is_some_and(|g| channel.groups.contains(g))
    };
    if !channel.services.is_empty() || !channel.groups.is_empty() {
        if let Some(s) = &event.service {
            if !in_scope(&s.service) {
                return None;
            }
        }
        if let Some(i) = &event.incident {
            if !i.services.iter().any(in_scope) {
                return None;
            }
        }
        if let Some(m) = &event.maintenance {
            if !m.services.iter().any(in_scope) {
                return None;
            }
        }
    }
    let kind = match event.kind {
        EventKind::ServiceDown | EventKind::ServiceDegraded | EventKind::ServiceRecovered => {
            let s = event.service.as_ref()?;
            let rank = |state: &str| match State::parse(state) {
                Some(State::Down) => 2,
                Some(State::Degraded) => 1,
                _ => 0,
            };
            let min = if channel.min_state == State::Down {
                2
            } else {
                1
            };
            if rank(&s.state) >= min {
                event.kind
            } else if rank(&s.previous_state) >= min && channel.send_on_resolved {
                EventKind::ServiceRecovered
            } else {
                return None;
            }
        }
        other => other,
    };
    channel.events.contains(&kind).then_some(kind)
}

/// The wait before retry `n` (1 = the first retry): `base`, doubled each
/// time, at most 15 min.
pub fn backoff(base: Duration, n: u32) -> Duration {
    base.saturating_mul(2u32.saturating_pow(n.saturating_sub(1)))
        .min(BACKOFF_CAP)
}

/// What one attempt's result makes of its delivery (logged, `who` naming
/// it): sent; refused for good; given up at `max_attempts`; or tried again
/// after `base` doubling (or the receiver's `Retry-After`, if longer).
/// Alerts and subscribers' messages alike.
fn settle(
    sent: Result<(), channel::SendError>,
    attempt: u32,
    max_attempts: u32,
    base: Duration,
    done: i64,
    who: &str,
) -> DeliveryOutcome {
    match sent {
        Ok(()) => {
            tracing::info!(delivery = %who, attempt, "sent");
            DeliveryOutcome::Sent
        }
        Err(channel::SendError::Permanent(error)) => {
            tracing::error!(delivery = %who, attempt, error = %crate::redact::scrub(&error), "refused by the receiver; not retried");
            DeliveryOutcome::Failed { error }
        }
        Err(channel::SendError::Transient { error, .. }) if attempt >= max_attempts => {
            tracing::error!(delivery = %who, attempt, error = %crate::redact::scrub(&error), "not sent; giving up after the last attempt");
            DeliveryOutcome::Failed {
                error: format!("gave up after {attempt} attempts: {error}"),
            }
        }
        Err(channel::SendError::Transient { error, retry_after }) => {
            let wait = backoff(base, attempt).max(retry_after.unwrap_or_default().min(BACKOFF_CAP));
            tracing::warn!(delivery = %who, attempt, error = %crate::redact::scrub(&error), retry_in = ?wait, "not sent; will retry");
            DeliveryOutcome::Retry {
                at: done + wait.as_millis() as i64,
                error,
            }
        }
    }
}

/// The `outcome` label of an attempt in `/metrics`.
fn outcome_label(outcome: &DeliveryOutcome) -> &'static str {
    match outcome {
        DeliveryOutcome::Sent => "sent",
        DeliveryOutcome::Retry { .. } => "retry",
        DeliveryOutcome::Failed { .. } => "failed",
    }
}

/// Sends a test message to `channel` now, outside the outbox
/// (`beacon alert test`): the channel's error as it is, if any.
pub async fn send_test(channel: &NotifyChannel, site: &Site, at: i64) -> Result<(), String> {
    let http = channel::client().map_err(|e| e.to_string())?;
    let delivery = AlertDelivery {
        id: 0,
        event_id: 0,
        channel: channel.name.clone(),
        kind: EventKind::Test,
        status: "pending".into(),
        attempts: 0,
        next_attempt_at: at,
        last_error: None,
        sent_at: None,
        event: Event {
            location: None,
            maintenance: None,
            kind: EventKind::Test,
            at,
            service: None,
            incident: None,
            backup: None,
            certificate: None,
        },
    };
    let message = Message {
        title: "Test alert".into(),
        text: format!(
            "A test of the channel \"{}\" at {}: alerts of {} reach you here.",
            channel.name,
            format_time(at, site.time_zone),
            site.title
        ),
        url: format!("{}/", site.public_url),
    };
    channel::send(&http, channel, &delivery, &message, site)
        .await
        .map_err(channel::SendError::into_message)
}

/// The channels a notifier routes to: replaced whole by a config reload,
/// read whole by each routing and sending pass.
pub type SharedChannels = Arc<parking_lot::RwLock<Arc<Vec<NotifyChannel>>>>;

/// `[subscriptions]` as the config in force has it (a reload replaces it).
pub type SharedSubscriptions =
    Arc<parking_lot::RwLock<Option<Arc<crate::config::SubscriptionsConfig>>>>;

/// What a notifier needs to tell subscribers too.
#[derive(Clone)]
pub struct Subscribers {
    /// Webhook subscribers' bodies, in the page's Statuspage shape.
    pub body: subscribers::BodyMaker,
    pub config: SharedSubscriptions,
}

/// Maintenance edges are looked for this far back (a replica stopped for
/// less still raises the ones it missed; the dedupe key makes them once).
const EDGE_REACH_MS: i64 = 3_600_000;

pub struct Notifier {
    store: Store,
    channels: SharedChannels,
    site: Site,
    clock: Arc<dyn Clock>,
    metrics: Arc<crate::metrics::Metrics>,
    http: reqwest::Client,
    subscribers: Option<Subscribers>,
    /// The manage links' key, read from the store once.
    link_key: tokio::sync::OnceCell<Vec<u8>>,
    /// Maintenance edges raised (or found raised) by this process.
    edges: parking_lot::Mutex<std::collections::HashSet<String>>,
}

impl Notifier {
    pub fn new(
        store: Store,
        channels: Arc<Vec<NotifyChannel>>,
        site: Site,
        clock: Arc<dyn Clock>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> anyhow::Result<Notifier> {
        let http = channel::client()?;
        // Every channel's series exist from the start, at 0, so a rate()
        // over them works before the first alert.
        for c in channels.iter() {
            for outcome in ["sent", "retry", "failed"] {
                metrics
                    .alert_deliveries
                    .with_label_values(&[c.name.as_str(), outcome]);
            }
        }
        Ok(Notifier {
            store,
            channels: Arc::new(parking_lot::RwLock::new(channels)),
            site,
            clock,
            metrics,
            http,
            subscribers: None,
            link_key: tokio::sync::OnceCell::new(),
            edges: parking_lot::Mutex::new(std::collections::HashSet::new()),
        })
    }

    /// Routes events to subscribers too, and sends them their messages.
    pub fn telling(mut self, subscribers: Subscribers) -> Self {
        for kind in crate::store::SUBSCRIBER_KINDS {
            for outcome in ["sent", "retry", "failed", "suppressed"] {
                self.metrics
                    .subscriber_notifications
                    .with_label_values(&[kind, outcome]);
            }
        }
        self.subscribers = Some(subscribers);
        self
    }

    /// Follows `channels`, which a config reload replaces (instead of the
    /// list this notifier was made with).
    pub fn following(mut self, channels: SharedChannels) -> Self {
        for c in channels.read().iter() {
            for outcome in ["sent", "retry", "failed"] {
                self.metrics
                    .alert_deliveries
                    .with_label_values(&[c.name.as_str(), outcome]);
            }
        }
        self.channels = channels;
        self
    }

    /// The channels as they are now.
    fn channels(&self) -> Arc<Vec<NotifyChannel>> {
        self.channels.read().clone()
    }

    /// Routes and sends until `stop` resolves; the attempts under way then
    /// finish (each is bounded by its channel's timeout).
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            if let Err(e) = self.tick().await {
                // The outbox keeps everything; the next tick tries again.
                tracing::warn!(error = %e, "reading the alert outbox failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = stop.as_mut() => return,
            }
        }
    }

    /// One pass: route new events, then send what is due. `run` calls it
    /// every second; tests call it on a `ManualClock` to let an hour of
    /// retries pass without waiting for one.
    pub async fn tick(&self) -> Result<(), StoreError> {
        self.raise_maintenance_edges().await?;
        self.route_new().await?;
        self.send_due().await?;
        if self.subscribers.is_some() {
            self.send_due_to_subscribers().await?;
        }
        Ok(())
    }

    /// Raises `maintenance_started` and `maintenance_completed` for the
    /// windows whose edge passed in the last hour, each once (by its key;
    /// this process remembers the ones it raised, so the store is asked
    /// once per edge).
    async fn raise_maintenance_edges(&self) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        let edges = self
            .store
            .maintenance_edges(now - EDGE_REACH_MS, now)
            .await?;
        for (id, kind, at) in edges {
            let key = format!("maintenance:{id}:{}:{at}", kind.as_str());
            if self.edges.lock().contains(&key) {
                continue;
            }
            self.store
                .raise_maintenance_event(id, kind, at, key.clone())
                .await?;
            let mut seen = self.edges.lock();
            if seen.len() > 10_000 {
                seen.clear();
            }
            seen.insert(key);
        }
        Ok(())
    }

    async fn link_key(&self) -> Result<&[u8], StoreError> {
        self.link_key
            .get_or_try_init(|| subscribers::link_key(&self.store, self.clock.now_ms()))
            .await
            .map(Vec::as_slice)
    }

    /// The subscribers an event goes to, each with the kind they see, and
    /// those it would have reached had it not been posted quietly.
    fn subscriber_deliveries(
        &self,
        stored: &crate::store::StoredEvent,
        confirmed: &[crate::store::Subscriber],
        public: &std::collections::HashMap<String, Option<String>>,
    ) -> Told {
        let e = &stored.event;
        match subscribers::reach(e) {
            subscribers::Reach::None => Told::default(),
            // Those it would have reached (`audience` leaves `notify` to
            // `reach`).
            subscribers::Reach::Suppressed => Told {
                to: Vec::new(),
                suppressed: confirmed
                    .iter()
                    .filter(|s| subscribers::audience(e, s, public))
                    .map(|s| s.kind.clone())
                    .collect(),
            },
            subscribers::Reach::Subscribers => Told {
                to: confirmed
                    .iter()
                    .filter(|s| subscribers::audience(e, s, public))
                    .map(|s| (s.id, e.kind))
                    .collect(),
                suppressed: Vec::new(),
            },
        }
    }

    /// Routes the events not routed yet, a batch at a time, each batch in
    /// one transaction that claims its events first
    /// ([`Store::route_events`]): with several replicas, whichever claims
    /// an event routes it, and only that one logs and counts what became
    /// of it. A batch another replica is routing ends the loop (it will
    /// be routed; one that fails is read again at the next poll).
    async fn route_new(&self) -> Result<(), StoreError> {
        loop {
            let events = self.store.unrouted_alert_events(ROUTE_BATCH).await?;
            let Some(oldest) = events.iter().map(|e| e.event.at).min() else {
                return Ok(());
            };
            let windows = if events.iter().any(|e| e.service_id.is_some()) {
                self.store.maintenance_windows(oldest).await?
            } else {
                Vec::new()
            };
            let wanted = |e: &crate::store::StoredEvent| {
                subscribers::reach(&e.event) != subscribers::Reach::None
            };
            let (confirmed, public) = match &self.subscribers {
                Some(_) if events.iter().any(wanted) => (
                    self.store.confirmed_subscribers().await?,
                    subscribers::public_of(&self.store, events.iter().map(|e| &e.event)).await?,
                ),
                _ => Default::default(),
            };
            let now = self.clock.now_ms();
            let mut routing = Vec::with_capacity(events.len());
            let mut fates = Vec::with_capacity(events.len());
            for stored in &events {
                let e = &stored.event;
                let silenced = stored
                    .service_id
                    .is_some_and(|id| windows.iter().any(|w| w.covers(id, e.at)));
                let too_old = now - stored.created_at > MAX_EVENT_AGE_MS;
                let told = if too_old || silenced {
                    Told::default()
                } else {
                    self.subscriber_deliveries(stored, &confirmed, &public)
                };
                let deliveries: Vec<(String, EventKind)> = if too_old || silenced {
                    Vec::new()
                } else {
                    self.channels()
                        .iter()
                        .filter_map(|c| route(c, e).map(|kind| (c.name.clone(), kind)))
                        .collect()
                };
                routing.push(crate::store::Routing {
                    event_id: stored.id,
                    deliveries,
                    subscribers: told.to,
                });
                fates.push((too_old, silenced, told.suppressed));
            }
            let claimed = self.store.route_events(&routing, now).await?;
            for (stored, (too_old, silenced, suppressed)) in events.iter().zip(fates) {
                if claimed.binary_search(&stored.id).is_err() {
                    continue;
                }
                let kind = stored.event.kind.as_str();
                if too_old {
                    tracing::warn!(
                        event = stored.id,
                        kind,
                        "alert event older than a day when first seen; not sent"
                    );
                } else if silenced {
                    tracing::info!(
                        event = stored.id,
                        kind,
                        "alert silenced: the service is in a maintenance window"
                    );
                    self.metrics.alerts_silenced.inc();
                } else if subscribers::reach(&stored.event) == subscribers::Reach::Suppressed {
                    for s in suppressed {
                        self.metrics
                            .subscriber_notifications
                            .with_label_values(&[s.as_str(), "suppressed"])
                            .inc();
                    }
                    tracing::info!(
                        event = stored.id,
                        kind,
                        "posted without notifying subscribers"
                    );
                }
            }
            if (events.len() as i64) < ROUTE_BATCH || claimed.is_empty() {
                return Ok(());
            }
        }
    }

    async fn send_due(&self) -> Result<(), StoreError> {
        // The lease outlives the longest attempt: nobody else takes one
        // meanwhile.
        let longest = self
            .channels()
            .iter()
            .map(|c| c.timeout.as_millis() as i64)
            .max()
            .unwrap_or(10_000);
        let now = self.clock.now_ms();
        let due = self
            .store
            .claim_due_alert_deliveries(now, SEND_BATCH, now + 2 * longest + 30_000)
            .await?;
        futures_util::future::join_all(due.into_iter().map(|d| self.attempt(d))).await;
        Ok(())
    }

    async fn send_due_to_subscribers(&self) -> Result<(), StoreError> {
        let Some(subs) = &self.subscribers else {
            return Ok(());
        };
        let now = self.clock.now_ms();
        // Each attempt is bounded by 20 s (`subscribers::send`).
        let due = self
            .store
            .claim_due_subscriber_deliveries(now, SEND_BATCH, now + 70_000)
            .await?;
        if due.is_empty() {
            return Ok(());
        }
        let key = self.link_key().await?.to_vec();
        let public = subscribers::public_of(&self.store, due.iter().map(|d| &d.event)).await?;
        let config = subs.config.read().clone();
        let channels = self.channels();
        let cx = subscribers::Context {
            http: &self.http,
            site: &self.site,
            key: &key,
            body: &subs.body,
            public: &public,
            subscriptions: config.as_deref(),
            channels: &channels,
        };
        futures_util::future::join_all(due.into_iter().map(|d| self.attempt_subscriber(&cx, d)))
            .await;
        Ok(())
    }

    async fn attempt_subscriber(
        &self,
        cx: &subscribers::Context<'_>,
        d: crate::store::SubscriberDelivery,
    ) {
        let sent = subscribers::send(cx, &d).await;
        let attempt = d.attempts as u32 + 1;
        let done = self.clock.now_ms();
        // Subscribers' messages follow the alert defaults: 8 attempts, from
        // 30 s doubling, each wait at most 15 minutes: about 45 minutes in all.
        const ATTEMPTS: u32 = 8;
        let kind = d.subscriber.kind.as_str();
        let who = format!(
            "message {} to subscriber {} ({kind}, {})",
            d.id,
            d.subscriber.id,
            d.kind.as_str()
        );
        let outcome = settle(sent, attempt, ATTEMPTS, Duration::from_secs(30), done, &who);
        let label = outcome_label(&outcome);
        self.metrics
            .subscriber_notifications
            .with_label_values(&[kind, label])
            .inc();
        if let Err(e) = self
            .store
            .finish_subscriber_delivery(d.id, &outcome, done)
            .await
        {
            tracing::warn!(error = %e, delivery = d.id, "recording a subscriber delivery failed");
        }
    }

    async fn attempt(&self, d: AlertDelivery) {
        let now = self.clock.now_ms();
        let channels = self.channels();
        let Some(channel) = channels.iter().find(|c| c.name == d.channel) else {
            let outcome = DeliveryOutcome::Failed {
                error: format!("channel \"{}\" is no longer configured", d.channel),
            };
            tracing::warn!(delivery = d.id, channel = %d.channel, "alert for a channel no longer configured; dropped");
            if let Err(e) = self.store.finish_alert_delivery(d.id, &outcome, now).await {
                tracing::warn!(error = %e, "recording an alert delivery failed");
            }
            return;
        };
        let message = d.event.message(d.kind, &self.site);
        let sent = channel::send(&self.http, channel, &d, &message, &self.site).await;
        let attempt = d.attempts as u32 + 1;
        let done = self.clock.now_ms();
        let who = format!("alert {} to {} ({})", d.id, channel.name, d.kind.as_str());
        let outcome = settle(
            sent,
            attempt,
            channel.max_attempts,
            channel.retry_backoff,
            done,
            &who,
        );
        let label = outcome_label(&outcome);
        self.metrics
            .alert_deliveries
            .with_label_values(&[channel.name.as_str(), label])
            .inc();
        if let Err(e) = self.store.finish_alert_delivery(d.id, &outcome, done).await {
            // The lease runs out and the delivery is tried again: if it was
            // sent, the receiver sees it twice (same event id).
            tracing::warn!(error = %e, delivery = d.id, "recording an alert delivery failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ChannelKind;
    use crate::domain::{BackupFacts, ServiceFacts};

    fn channel(min_state: State, send_on_resolved: bool) -> NotifyChannel {
        NotifyChannel {
            name: "ops".into(),
            kind: ChannelKind::Slack {
                url: url::Url::parse("https://hooks.example.com/x").expect("url"),
            },
            services: Vec::new(),
            groups: Vec::new(),
            events: EventKind::ALL.to_vec(),
            min_state,
            send_on_resolved,
            max_attempts: 3,
            retry_backoff: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
        }
    }

    fn change(kind: EventKind, previous: &str, state: &str, group: Option<&str>) -> Event {
        Event {
            location: None,
            maintenance: None,
            kind,
            at: 0,
            service: Some(ServiceFacts {
                service: ServiceRef {
                    slug: "api".into(),
                    name: "API".into(),
                    group: group.map(str::to_string),
                },
                state: state.into(),
                previous_state: previous.into(),
                since: 0,
                previous_since: None,
                reason: None,
            }),
            incident: None,
            backup: None,
            certificate: None,
        }
    }

    #[test]
    fn min_state_decides_problems_and_recoveries() {
        use EventKind::*;
        let degraded = channel(State::Degraded, true);
        let down = channel(State::Down, true);
        let quiet = channel(State::Down, false);
        let cases = [
            // (event, previous, state) → degraded channel, down channel, down without resolved
            (
                (ServiceDegraded, "up", "degraded"),
                [Some(ServiceDegraded), None, None],
            ),
            (
                (ServiceDown, "degraded", "down"),
                [Some(ServiceDown), Some(ServiceDown), Some(ServiceDown)],
            ),
            (
                (ServiceDegraded, "down", "degraded"),
                [Some(ServiceDegraded), Some(ServiceRecovered), None],
            ),
            (
                (ServiceRecovered, "degraded", "up"),
                [Some(ServiceRecovered), None, None],
            ),
            (
                (ServiceRecovered, "down", "up"),
                [Some(ServiceRecovered), Some(ServiceRecovered), None],
            ),
        ];
        for ((kind, previous, state), want) in cases {
            let e = change(kind, previous, state, None);
            let got = [route(&degraded, &e), route(&down, &e), route(&quiet, &e)];
            assert_eq!(got, want, "{previous} → {state}");
        }
    }

    #[test]
    fn services_groups_and_events_narrow_a_channel() {
        let mut c = channel(State::Degraded, true);
        c.groups = vec!["Shop".into()];
        let e = change(EventKind::ServiceDown, "up", "down", Some("Shop"));
        assert_eq!(route(&c, &e), Some(EventKind::ServiceDown));
        let other = change(EventKind::ServiceDown, "up", "down", Some("Internal"));
        assert_eq!(route(&c, &other), None);
        c.services = vec!["api".into()];
        assert_eq!(
            route(&c, &other),
            Some(EventKind::ServiceDown),
            "named services count too"
        );
        c.events = vec![EventKind::ServiceRecovered];
        assert_eq!(route(&c, &e), None);
        let backup = Event {
            location: None,
            maintenance: None,
            kind: EventKind::BackupFailed,
            at: 0,
            service: None,
            incident: None,
            backup: Some(BackupFacts {
                id: "b".into(),
                step: "upload".into(),
                error: None,
            }),
            certificate: None,
        };
        assert_eq!(route(&c, &backup), None, "not in events");
        c.events.push(EventKind::BackupFailed);
        assert_eq!(
            route(&c, &backup),
            Some(EventKind::BackupFailed),
            "scope is for services"
        );
    }

    #[test]
    fn the_monitors_own_incident_steps_are_for_subscribers_a_persons_for_channels_too() {
        let c = channel(State::Degraded, true);
        let mut e = change(EventKind::IncidentUpdated, "up", "down", None);
        e.service = None;
        e.incident = Some(crate::domain::IncidentFacts {
            id: 1,
            title: "API is down".into(),
            status: "identified".into(),
            impact: "major".into(),
            automatic: true,
            message: "A person's words.".into(),
            services: vec![],
            notify: true,
            by_monitor: false,
        });
        assert_eq!(route(&c, &e), Some(EventKind::IncidentUpdated));
        if let Some(i) = e.incident.as_mut() {
            i.by_monitor = true;
        }
        assert_eq!(route(&c, &e), None, "told by the service's own event");
    }

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        let base = Duration::from_secs(5);
        let waits: Vec<u64> = (1..=10).map(|n| backoff(base, n).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 320, 640, 900, 900]);
    }
}
