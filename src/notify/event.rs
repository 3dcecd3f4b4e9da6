//! What an alert is about: the event kinds, the facts an event carries, and
//! the words and links a person reads.
//!
//! An event's facts are stored with it (`alert_events.payload`), as they
//! were when it happened: a message sent after a retry an hour later still
//! says what was true then.

use chrono::TimeZone;
use serde::{Deserialize, Serialize};

use crate::model::State;

/// Every kind of event, in the order the README lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    ServiceDown,
    ServiceDegraded,
    ServiceRecovered,
    IncidentOpened,
    IncidentUpdated,
    IncidentResolved,
    BackupFailed,
    BackupVerificationFailed,
    CertificateExpiring,
    /// `beacon alert test`: never raised by anything else, never routed.
    Test,
}

impl EventKind {
    pub const ALL: [EventKind; 9] = [
        EventKind::ServiceDown,
        EventKind::ServiceDegraded,
        EventKind::ServiceRecovered,
        EventKind::IncidentOpened,
        EventKind::IncidentUpdated,
        EventKind::IncidentResolved,
        EventKind::BackupFailed,
        EventKind::BackupVerificationFailed,
        EventKind::CertificateExpiring,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ServiceDown => "service_down",
            EventKind::ServiceDegraded => "service_degraded",
            EventKind::ServiceRecovered => "service_recovered",
            EventKind::IncidentOpened => "incident_opened",
            EventKind::IncidentUpdated => "incident_updated",
            EventKind::IncidentResolved => "incident_resolved",
            EventKind::BackupFailed => "backup_failed",
            EventKind::BackupVerificationFailed => "backup_verification_failed",
            EventKind::CertificateExpiring => "certificate_expiring",
            EventKind::Test => "test",
        }
    }

    pub fn parse(text: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// The event a state change is, if it is one: `previous` is the state
    /// before, looking through a maintenance window (down → maintenance →
    /// up is a recovery).
    pub fn of_change(previous: State, to: State) -> Option<EventKind> {
        match (previous, to) {
            (_, State::Down) => Some(EventKind::ServiceDown),
            (_, State::Degraded) => Some(EventKind::ServiceDegraded),
            (State::Down | State::Degraded, State::Up) => Some(EventKind::ServiceRecovered),
            _ => None,
        }
    }
}

/// The facts of one event, stored as its payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    /// When it happened (epoch ms).
    pub at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceFacts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<IncidentFacts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupFacts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateFacts>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceRef {
    pub slug: String,
    pub name: String,
    pub group: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceFacts {
    #[serde(flatten)]
    pub service: ServiceRef,
    /// `up`, `degraded` or `down`.
    pub state: String,
    /// The state before (through a maintenance window).
    pub previous_state: String,
    /// When the service entered `state` (epoch ms).
    pub since: i64,
    /// When it entered `previous_state`, if known: how long that lasted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_since: Option<i64>,
    /// The last probe's reason (for operators: sent in the webhook's JSON,
    /// never in the text, which may be forwarded to a public channel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentFacts {
    pub id: i64,
    pub title: String,
    pub status: String,
    pub impact: String,
    pub automatic: bool,
    /// The update this event is about.
    pub message: String,
    pub services: Vec<ServiceRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupFacts {
    pub id: String,
    /// The step that failed: dump, upload, verify: download …
    pub step: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertificateFacts {
    pub expires_at: i64,
    pub days_left: i64,
}

/// Where messages link to and how they show times.
#[derive(Debug, Clone)]
pub struct Site {
    pub title: String,
    /// `https://status.example.com`, without a trailing slash.
    pub public_url: String,
    pub time_zone: chrono_tz::Tz,
}

impl Site {
    /// From `[server]`; `fallback` links when there is no `public_url`
    /// (validation requires one whenever a channel is configured).
    pub fn of(server: &crate::config::ServerConfig, fallback: &str) -> Site {
        Site {
            title: server.title.clone(),
            public_url: server.public_base().unwrap_or_else(|| fallback.to_string()),
            time_zone: server.time_zone,
        }
    }
}

/// What a person reads: a one-line title, a sentence or two, and a link to
/// the public page.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub title: String,
    pub text: String,
    pub url: String,
}

impl Event {
    /// The message for a channel that sees this event as `kind` (a service
    /// back under a channel's `min_state` is a recovery for that channel).
    pub fn message(&self, kind: EventKind, site: &Site) -> Message {
        let time = |ms: i64| format_time(ms, site.time_zone);
        let page = |path: &str| format!("{}{path}", site.public_url);
        if let Some(s) = &self.service {
            let name = &s.service.name;
            let url = page(&format!("/services/{}", s.service.slug));
            let since = time(s.since);
            let (title, text) = match kind {
                EventKind::ServiceRecovered => {
                    let was = state_words(&s.previous_state);
                    let lasted = s
                        .previous_since
                        .map(|from| {
                            format!(
                                " for {}",
                                crate::store::human_minutes(((s.since - from) / 60_000).max(1))
                            )
                        })
                        .unwrap_or_default();
                    if s.state == "up" {
                        (
                            format!("{name} has recovered"),
                            format!("{name} is operational again since {since}, after being {was}{lasted}."),
                        )
                    } else {
                        (
                            format!("{name} is no longer {was}"),
                            format!(
                                "{name} is no longer {was}: {} since {since}.",
                                state_words(&s.state)
                            ),
                        )
                    }
                }
                EventKind::CertificateExpiring => {
                    let c = self.certificate.as_ref();
                    let days = c.map_or(0, |c| c.days_left);
                    let on = c.map(|c| format_date(c.expires_at, site.time_zone));
                    (
                        format!("{name}: TLS certificate expires in {days} day{}", plural(days)),
                        format!(
                            "The TLS certificate of {name} expires on {} ({days} day{} left). Renew it before it does.",
                            on.unwrap_or_default(),
                            plural(days)
                        ),
                    )
                }
                _ => (
                    format!("{name} is {}", state_words(&s.state)),
                    format!("{name} is {} since {since}.", state_words(&s.state)),
                ),
            };
            return Message { title, text, url };
        }
        if let Some(i) = &self.incident {
            let url = page(&format!("/incidents/{}", i.id));
            let affected = if i.services.is_empty() {
                String::new()
            } else {
                let names: Vec<&str> = i.services.iter().map(|s| s.name.as_str()).collect();
                format!(" Affected: {}.", names.join(", "))
            };
            let (title, text) = match kind {
                EventKind::IncidentOpened => (
                    format!("Incident: {}", i.title),
                    format!(
                        "{} ({} impact, {} since {}).{affected}",
                        i.message,
                        i.impact,
                        i.status,
                        time(self.at)
                    ),
                ),
                EventKind::IncidentResolved => (
                    format!("Resolved: {}", i.title),
                    format!("{} (resolved at {}).{affected}", i.message, time(self.at)),
                ),
                _ => (
                    format!("Update on {}: {}", i.title, i.status),
                    format!(
                        "{} ({} at {}).{affected}",
                        i.message,
                        i.status,
                        time(self.at)
                    ),
                ),
            };
            return Message { title, text, url };
        }
        if let Some(b) = &self.backup {
            let what = if kind == EventKind::BackupVerificationFailed {
                "failed verification"
            } else {
                "failed"
            };
            return Message {
                title: format!("Backup {} {what}", b.id),
                text: format!(
                    "Backup {} of {} {what} at step \"{}\" ({}). The runbook says what to check.",
                    b.id,
                    site.title,
                    b.step,
                    time(self.at)
                ),
                url: page("/"),
            };
        }
        Message {
            title: kind.as_str().to_string(),
            text: format!("{} at {}", kind.as_str(), time(self.at)),
            url: page("/"),
        }
    }
}

fn plural(n: i64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn state_words(state: &str) -> &'static str {
    match state {
        "up" => "operational",
        "degraded" => "degraded",
        "down" => "down",
        "maintenance" => "under maintenance",
        _ => "in an unknown state",
    }
}

/// "23 Nov 2026 19:42 UTC", in the page's time zone.
pub fn format_time(ms: i64, tz: chrono_tz::Tz) -> String {
    match tz.timestamp_millis_opt(ms).single() {
        Some(t) => t.format("%-d %b %Y %H:%M %Z").to_string(),
        None => ms.to_string(),
    }
}

fn format_date(ms: i64, tz: chrono_tz::Tz) -> String {
    match tz.timestamp_millis_opt(ms).single() {
        Some(t) => t.format("%-d %b %Y").to_string(),
        None => ms.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> Site {
        Site {
            title: "Example status".into(),
            public_url: "https://status.example.com".into(),
            time_zone: chrono_tz::Europe::Paris,
        }
    }

    fn service_event(kind: EventKind, state: &str, previous: &str) -> Event {
        Event {
            kind,
            // 23 Nov 2026 19:42 UTC
            at: 1_795_462_920_000,
            service: Some(ServiceFacts {
                service: ServiceRef {
                    slug: "checkout-api".into(),
                    name: "Checkout API".into(),
                    group: Some("Shop".into()),
                },
                state: state.into(),
                previous_state: previous.into(),
                since: 1_795_462_920_000,
                previous_since: Some(1_795_462_920_000 - 12 * 60_000),
                reason: Some("HTTP 500 from 10.0.0.7".into()),
            }),
            incident: None,
            backup: None,
            certificate: None,
        }
    }

    #[test]
    fn state_changes_become_events_through_maintenance() {
        use State::*;
        assert_eq!(EventKind::of_change(Up, Down), Some(EventKind::ServiceDown));
        assert_eq!(
            EventKind::of_change(Unknown, Down),
            Some(EventKind::ServiceDown)
        );
        assert_eq!(
            EventKind::of_change(Down, Degraded),
            Some(EventKind::ServiceDegraded)
        );
        assert_eq!(
            EventKind::of_change(Down, Up),
            Some(EventKind::ServiceRecovered)
        );
        assert_eq!(EventKind::of_change(Unknown, Up), None);
        assert_eq!(EventKind::of_change(Maintenance, Up), None);
        assert_eq!(EventKind::of_change(Up, Maintenance), None);
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
    }

    #[test]
    fn messages_name_the_service_the_state_since_when_and_link_to_the_page() {
        let down = service_event(EventKind::ServiceDown, "down", "up");
        let m = down.message(EventKind::ServiceDown, &site());
        assert_eq!(m.title, "Checkout API is down");
        assert_eq!(m.text, "Checkout API is down since 23 Nov 2026 20:42 CET.");
        assert_eq!(m.url, "https://status.example.com/services/checkout-api");
        assert!(
            !m.text.contains("10.0.0.7"),
            "raw reasons stay out of the text"
        );

        let back = service_event(EventKind::ServiceRecovered, "up", "down");
        let m = back.message(EventKind::ServiceRecovered, &site());
        assert_eq!(m.title, "Checkout API has recovered");
        assert_eq!(
            m.text,
            "Checkout API is operational again since 23 Nov 2026 20:42 CET, after being down for 12 min."
        );

        // For a channel that only wants `down`, down → degraded is a recovery.
        let better = service_event(EventKind::ServiceDegraded, "degraded", "down");
        let m = better.message(EventKind::ServiceRecovered, &site());
        assert_eq!(m.title, "Checkout API is no longer down");
    }
}
