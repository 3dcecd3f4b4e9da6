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

use std::sync::Arc;
use std::time::Duration;

pub use event::{format_time, Message, Site};

use crate::clock::Clock;
use crate::config::NotifyChannel;
use crate::domain::{Event, EventKind, ServiceRef, State};
use crate::store::{AlertDelivery, DeliveryOutcome, Store, StoreError};

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

pub struct Notifier {
    store: Store,
    channels: SharedChannels,
    site: Site,
    clock: Arc<dyn Clock>,
    metrics: Arc<crate::metrics::Metrics>,
    http: reqwest::Client,
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
        })
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
        self.route_new().await?;
        self.send_due().await
    }

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
            let now = self.clock.now_ms();
            for stored in &events {
                let e = &stored.event;
                let silenced = stored
                    .service_id
                    .is_some_and(|id| windows.iter().any(|w| w.covers(id, e.at)));
                let deliveries: Vec<(String, EventKind)> =
                    if now - stored.created_at > MAX_EVENT_AGE_MS {
                        tracing::warn!(
                            event = stored.id,
                            kind = e.kind.as_str(),
                            "alert event older than a day when first seen; not sent"
                        );
                        Vec::new()
                    } else if silenced {
                        tracing::info!(
                            event = stored.id,
                            kind = e.kind.as_str(),
                            "alert silenced: the service is in a maintenance window"
                        );
                        self.metrics.alerts_silenced.inc();
                        Vec::new()
                    } else {
                        self.channels()
                            .iter()
                            .filter_map(|c| route(c, e).map(|kind| (c.name.clone(), kind)))
                            .collect()
                    };
                self.store
                    .route_alert_event(stored.id, &deliveries, now)
                    .await?;
            }
            if (events.len() as i64) < ROUTE_BATCH {
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
        let outcome = match sent {
            Ok(()) => {
                tracing::info!(delivery = d.id, channel = %channel.name, kind = d.kind.as_str(), attempt, "alert sent");
                DeliveryOutcome::Sent
            }
            Err(channel::SendError::Permanent(error)) => {
                tracing::error!(delivery = d.id, channel = %channel.name, kind = d.kind.as_str(), attempt, %error, "alert refused by its channel; not retried");
                DeliveryOutcome::Failed { error }
            }
            Err(channel::SendError::Transient { error, .. }) if attempt >= channel.max_attempts => {
                tracing::error!(delivery = d.id, channel = %channel.name, kind = d.kind.as_str(), attempt, %error, "alert not sent; giving up after the last attempt");
                DeliveryOutcome::Failed {
                    error: format!("gave up after {attempt} attempts: {error}"),
                }
            }
            Err(channel::SendError::Transient { error, retry_after }) => {
                let wait = backoff(channel.retry_backoff, attempt)
                    .max(retry_after.unwrap_or_default().min(BACKOFF_CAP));
                tracing::warn!(delivery = d.id, channel = %channel.name, kind = d.kind.as_str(), attempt, %error, retry_in = ?wait, "alert not sent; will retry");
                DeliveryOutcome::Retry {
                    at: done + wait.as_millis() as i64,
                    error,
                }
            }
        };
        let label = match &outcome {
            DeliveryOutcome::Sent => "sent",
            DeliveryOutcome::Retry { .. } => "retry",
            DeliveryOutcome::Failed { .. } => "failed",
        };
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
    fn backoff_doubles_up_to_a_cap() {
        let base = Duration::from_secs(5);
        let waits: Vec<u64> = (1..=10).map(|n| backoff(base, n).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 320, 640, 900, 900]);
    }
}
