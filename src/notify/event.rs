//! What an alert is about: the event kinds, the facts an event carries, and
//! the words and links a person reads.
//!
//! An event's facts are stored with it (`alert_events.payload`), as they
//! were when it happened: a message sent after a retry an hour later still
//! says what was true then.

use chrono::TimeZone;

use crate::domain::{Event, EventKind};

/// Where messages link to and how they show times.
#[derive(Debug, Clone)]
pub struct Site {
    pub title: String,
    /// `https://status.example.com`, without a trailing slash.
    pub public_url: String,
    pub time_zone: chrono_tz::Tz,
}

impl Default for Site {
    fn default() -> Self {
        Site {
            title: "Status".into(),
            public_url: "http://localhost".into(),
            time_zone: chrono_tz::UTC,
        }
    }
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
                                crate::domain::time::human_minutes(
                                    ((s.since - from) / 60_000).max(1)
                                )
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
        if let Some(m) = &self.maintenance {
            let affected = if m.services.is_empty() {
                String::new()
            } else {
                let names: Vec<&str> = m.services.iter().map(|s| s.name.as_str()).collect();
                format!(" Affected: {}.", names.join(", "))
            };
            let window = format!("from {} to {}", time(m.starts_at), time(m.ends_at));
            let (title, text) = match kind {
                EventKind::MaintenanceStarted => (
                    format!("Maintenance in progress: {}", m.title),
                    format!("{} (under way {window}).{affected}", m.message),
                ),
                EventKind::MaintenanceCancelled => (
                    format!("Maintenance cancelled: {}", m.title),
                    format!(
                        "The maintenance \"{}\" planned {window} will not take place.{affected}",
                        m.title
                    ),
                ),
                EventKind::MaintenanceCompleted => (
                    format!("Maintenance completed: {}", m.title),
                    format!(
                        "The maintenance \"{}\" has ended ({}).{affected}",
                        m.title,
                        time(m.ends_at)
                    ),
                ),
                _ => (
                    format!("Scheduled maintenance: {}", m.title),
                    format!("{} (scheduled {window}).{affected}", m.message),
                ),
            };
            return Message {
                title,
                text,
                url: page("/"),
            };
        }
        if let Some(l) = &self.location {
            let last = l
                .last_result_at
                .map(|at| format!("since {}", time(at)))
                .unwrap_or_else(|| "since beacon started".to_string());
            let (title, text) = if kind == EventKind::LocationBack {
                (
                    format!("Location {} is reporting again", l.name),
                    format!(
                        "The agent at {} sends results again ({}); its {} service{} are checked from there again.",
                        l.name,
                        time(self.at),
                        l.services,
                        plural(l.services as i64)
                    ),
                )
            } else {
                (
                    format!("Location {} is silent", l.name),
                    format!(
                        "The agent at {} has sent no results {last}. Its {} service{} are decided by their other locations meanwhile; check the agent and its network.",
                        l.name,
                        l.services,
                        plural(l.services as i64)
                    ),
                )
            };
            return Message {
                title,
                text,
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
    use crate::domain::{ServiceFacts, ServiceRef, State};

    fn site() -> Site {
        Site {
            title: "Example status".into(),
            public_url: "https://status.example.com".into(),
            time_zone: chrono_tz::Europe::Paris,
        }
    }

    fn service_event(kind: EventKind, state: &str, previous: &str) -> Event {
        Event {
            location: None,
            maintenance: None,
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
