//! What a change of a service's state means, decided without a database:
//! which alert event goes to the outbox, and whether an automatic incident
//! opens, reopens, moves to monitoring or resolves, with its impact and its
//! words.
//!
//! The store gathers the [`ChangeFacts`] inside the transaction that writes
//! the change, calls [`decide`], and persists the [`Decision`] in that same
//! transaction: a restart or a second replica finds the same open incident
//! and opens no other.

use super::event::{Event, EventKind, ServiceFacts, ServiceRef};
use super::state::State;
use super::time::{human_minutes, MINUTE_MS};

/// Everything [`decide`] needs to know of one state change.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeFacts {
    pub service: ServiceRef,
    pub from: State,
    pub to: State,
    /// When the change happened (epoch ms).
    pub at: i64,
    /// The last probe's reason.
    pub reason: Option<String>,
    /// When the service entered `from`, as the store knew it before the change.
    pub from_since: Option<i64>,
    /// When leaving maintenance: the state the service had before the
    /// window began, if recorded.
    pub before_maintenance: Option<State>,
    /// The service's latest automatic incident, open or resolved.
    pub latest_incident: Option<LatestIncident>,
    /// A service going down within this long of its automatic incident's
    /// resolution reopens that incident instead of opening another.
    pub cooldown_ms: i64,
}

/// A service's latest automatic incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatestIncident {
    pub id: i64,
    pub started_at: i64,
    pub resolved_at: Option<i64>,
}

/// What the store writes for one change, besides the change itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The alert event for the outbox, if the change is worth one.
    pub event: Option<Event>,
    pub incident: Option<IncidentAction>,
}

/// What happens to the service's automatic incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncidentAction {
    /// A new incident, `investigating`, about this service alone.
    Open {
        title: String,
        impact: &'static str,
        message: String,
    },
    /// An existing incident gets an update with `message` and moves to
    /// `status` (resolved at `resolved_at`, or reopened when `None`).
    Update {
        id: i64,
        status: &'static str,
        resolved_at: Option<i64>,
        message: String,
    },
}

/// Decides what `facts`' change means. Pure: the same facts, the same
/// decision.
pub fn decide(facts: &ChangeFacts) -> Decision {
    Decision {
        event: event_of(facts),
        incident: incident_action(facts),
    }
}

/// One alert event per change that matters. Leaving maintenance compares
/// with the state before the window (down → maintenance → up is a
/// recovery), and how long that state lasted is then not known.
fn event_of(facts: &ChangeFacts) -> Option<Event> {
    let (previous, previous_since) = if facts.from == State::Maintenance {
        (facts.before_maintenance.unwrap_or(State::Unknown), None)
    } else {
        (facts.from, facts.from_since)
    };
    let kind = EventKind::of_change(previous, facts.to)?;
    Some(Event {
        location: None,
        maintenance: None,
        kind,
        at: facts.at,
        service: Some(ServiceFacts {
            service: facts.service.clone(),
            state: facts.to.as_str().to_string(),
            previous_state: previous.as_str().to_string(),
            since: facts.at,
            previous_since,
            reason: facts.reason.clone(),
        }),
        incident: None,
        backup: None,
        certificate: None,
    })
}

fn incident_action(facts: &ChangeFacts) -> Option<IncidentAction> {
    let name = &facts.service.name;
    let open = facts
        .latest_incident
        .filter(|incident| incident.resolved_at.is_none());
    let update = |id: i64, status: &'static str, resolved_at: Option<i64>, message: String| {
        Some(IncidentAction::Update {
            id,
            status,
            resolved_at,
            message,
        })
    };
    match (facts.from, facts.to, facts.latest_incident) {
        (
            _,
            State::Down,
            Some(LatestIncident {
                id,
                resolved_at: None,
                ..
            }),
        ) => update(id, "investigating", None, format!("{name} is down again.")),
        (
            _,
            State::Down,
            Some(LatestIncident {
                id,
                resolved_at: Some(resolved),
                ..
            }),
        ) if facts.at - resolved <= facts.cooldown_ms => update(
            id,
            "investigating",
            None,
            format!("{name} is down again, shortly after recovering."),
        ),
        (_, State::Down, _) => Some(IncidentAction::Open {
            title: format!("{name} is down"),
            // A service that is down shows `major_outage`, which makes the
            // page's indicator at least "major": the incident says the same,
            // so a consumer that ranks a page by its worst open incident
            // (statuspage-prometheus-exporter) agrees with status.json.
            impact: "major",
            message: format!("{name} is not responding as expected. We are looking into it."),
        }),
        (State::Down, State::Degraded, _) => open.and_then(|incident| {
            update(
                incident.id,
                "monitoring",
                None,
                format!(
                    "{name} is responding again, with degraded performance. We are monitoring."
                ),
            )
        }),
        (_, State::Up, _) => open.and_then(|incident| {
            let minutes = ((facts.at - incident.started_at) as f64 / MINUTE_MS as f64)
                .round()
                .max(1.0) as i64;
            update(
                incident.id,
                "resolved",
                Some(facts.at),
                format!("Resolved automatically after {}.", human_minutes(minutes)),
            )
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: i64 = 1_000 * MINUTE_MS;
    const COOLDOWN: i64 = 10 * MINUTE_MS;

    fn facts(from: State, to: State) -> ChangeFacts {
        ChangeFacts {
            service: ServiceRef {
                slug: "api".into(),
                name: "API".into(),
                group: Some("Core".into()),
            },
            from,
            to,
            at: AT,
            reason: Some("HTTP 503".into()),
            from_since: Some(AT - 5 * MINUTE_MS),
            before_maintenance: None,
            latest_incident: None,
            cooldown_ms: COOLDOWN,
        }
    }

    fn open_incident(started_ago_min: i64) -> Option<LatestIncident> {
        Some(LatestIncident {
            id: 7,
            started_at: AT - started_ago_min * MINUTE_MS,
            resolved_at: None,
        })
    }

    fn resolved_incident(resolved_ago_min: i64) -> Option<LatestIncident> {
        Some(LatestIncident {
            id: 7,
            started_at: AT - 60 * MINUTE_MS,
            resolved_at: Some(AT - resolved_ago_min * MINUTE_MS),
        })
    }

    fn opened(impact: &'static str) -> Option<IncidentAction> {
        Some(IncidentAction::Open {
            title: "API is down".into(),
            impact,
            message: "API is not responding as expected. We are looking into it.".into(),
        })
    }

    fn updated(
        status: &'static str,
        resolved_at: Option<i64>,
        message: &str,
    ) -> Option<IncidentAction> {
        Some(IncidentAction::Update {
            id: 7,
            status,
            resolved_at,
            message: message.into(),
        })
    }

    #[test]
    fn each_change_decides_its_incident() {
        let with = |mut f: ChangeFacts, edit: &dyn Fn(&mut ChangeFacts)| {
            edit(&mut f);
            f
        };
        let cases: Vec<(&str, ChangeFacts, Option<IncidentAction>)> = vec![
            (
                "down without an incident opens a major one, as its component shows",
                facts(State::Up, State::Down),
                opened("major"),
            ),
            (
                "down while the incident is open says it is down again",
                with(facts(State::Degraded, State::Down), &|f| {
                    f.latest_incident = open_incident(30)
                }),
                updated("investigating", None, "API is down again."),
            ),
            (
                "down within the cooldown reopens the resolved incident",
                with(facts(State::Up, State::Down), &|f| {
                    f.latest_incident = resolved_incident(10)
                }),
                updated(
                    "investigating",
                    None,
                    "API is down again, shortly after recovering.",
                ),
            ),
            (
                "down after the cooldown opens another incident",
                with(facts(State::Up, State::Down), &|f| {
                    f.latest_incident = resolved_incident(11)
                }),
                opened("major"),
            ),
            (
                "down to degraded with an open incident moves it to monitoring",
                with(facts(State::Down, State::Degraded), &|f| {
                    f.latest_incident = open_incident(30)
                }),
                updated(
                    "monitoring",
                    None,
                    "API is responding again, with degraded performance. We are monitoring.",
                ),
            ),
            (
                "down to degraded without an open incident does nothing",
                with(facts(State::Down, State::Degraded), &|f| {
                    f.latest_incident = resolved_incident(1)
                }),
                None,
            ),
            (
                "up to degraded leaves the open incident alone",
                with(facts(State::Up, State::Degraded), &|f| {
                    f.latest_incident = open_incident(30)
                }),
                None,
            ),
            (
                "up resolves the open incident with its duration",
                with(facts(State::Down, State::Up), &|f| {
                    f.latest_incident = open_incident(65)
                }),
                updated(
                    "resolved",
                    Some(AT),
                    "Resolved automatically after 1 h 5 min.",
                ),
            ),
            (
                "a resolution after seconds says one minute",
                with(facts(State::Down, State::Up), &|f| {
                    f.latest_incident = Some(LatestIncident {
                        id: 7,
                        started_at: AT - 10_000,
                        resolved_at: None,
                    })
                }),
                updated("resolved", Some(AT), "Resolved automatically after 1 min."),
            ),
            (
                "up without an open incident does nothing",
                with(facts(State::Down, State::Up), &|f| {
                    f.latest_incident = resolved_incident(1)
                }),
                None,
            ),
            (
                "up from unknown without an incident does nothing",
                facts(State::Unknown, State::Up),
                None,
            ),
            (
                "maintenance leaves the open incident alone",
                with(facts(State::Down, State::Maintenance), &|f| {
                    f.latest_incident = open_incident(30)
                }),
                None,
            ),
            (
                "leaving maintenance up resolves the open incident",
                with(facts(State::Maintenance, State::Up), &|f| {
                    f.latest_incident = open_incident(2)
                }),
                updated("resolved", Some(AT), "Resolved automatically after 2 min."),
            ),
        ];
        for (name, facts, expected) in cases {
            assert_eq!(decide(&facts).incident, expected, "{name}");
        }
    }

    #[test]
    fn each_change_decides_its_event() {
        let leaving = |before: Option<State>, to: State| {
            let mut f = facts(State::Maintenance, to);
            f.before_maintenance = before;
            f
        };
        // (case, facts, expected kind, previous state, previous since)
        type Case = (
            &'static str,
            ChangeFacts,
            Option<EventKind>,
            &'static str,
            Option<i64>,
        );
        let cases: Vec<Case> = vec![
            (
                "up to down",
                facts(State::Up, State::Down),
                Some(EventKind::ServiceDown),
                "up",
                Some(AT - 5 * MINUTE_MS),
            ),
            (
                "up to degraded",
                facts(State::Up, State::Degraded),
                Some(EventKind::ServiceDegraded),
                "up",
                Some(AT - 5 * MINUTE_MS),
            ),
            (
                "down to up",
                facts(State::Down, State::Up),
                Some(EventKind::ServiceRecovered),
                "down",
                Some(AT - 5 * MINUTE_MS),
            ),
            (
                "degraded to up",
                facts(State::Degraded, State::Up),
                Some(EventKind::ServiceRecovered),
                "degraded",
                Some(AT - 5 * MINUTE_MS),
            ),
            (
                "unknown to up",
                facts(State::Unknown, State::Up),
                None,
                "",
                None,
            ),
            (
                "up to maintenance",
                facts(State::Up, State::Maintenance),
                None,
                "",
                None,
            ),
            (
                "down, maintenance, up is a recovery",
                leaving(Some(State::Down), State::Up),
                Some(EventKind::ServiceRecovered),
                "down",
                None,
            ),
            (
                "up, maintenance, up says nothing",
                leaving(Some(State::Up), State::Up),
                None,
                "",
                None,
            ),
            (
                "maintenance of unknown origin, then down",
                leaving(None, State::Down),
                Some(EventKind::ServiceDown),
                "unknown",
                None,
            ),
        ];
        for (name, facts, kind, previous, previous_since) in cases {
            let event = decide(&facts).event;
            assert_eq!(event.as_ref().map(|e| e.kind), kind, "{name}");
            let Some(event) = event else { continue };
            let service = event.service.expect("service facts");
            assert_eq!(service.previous_state, previous, "{name}");
            assert_eq!(service.previous_since, previous_since, "{name}");
            assert_eq!(service.state, facts.to.as_str(), "{name}");
            assert_eq!(service.since, AT, "{name}");
            assert_eq!(service.reason.as_deref(), Some("HTTP 503"), "{name}");
            assert_eq!(service.service, facts.service, "{name}");
            assert_eq!(event.at, AT, "{name}");
        }
    }
}
