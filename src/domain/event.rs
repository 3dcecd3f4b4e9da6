//! What happened, as an alert and the outbox keep it: the event kinds and
//! the facts an event carries. An event's facts are stored with it
//! (`alert_events.payload`) as they were when it happened; the words a person
//! reads are `notify`'s.

use serde::{Deserialize, Serialize};

use super::state::State;

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
    /// An agent's location stopped reporting (two intervals of its
    /// services), and came back.
    LocationSilent,
    LocationBack,
    /// A maintenance window was scheduled (created ahead of its start), it
    /// started, and it ended.
    MaintenanceScheduled,
    MaintenanceStarted,
    MaintenanceCompleted,
    /// A window announced ahead was withdrawn before it started.
    MaintenanceCancelled,
    /// `beacon alert test`: never raised by anything else, never routed.
    Test,
}

impl EventKind {
    pub const ALL: [EventKind; 15] = [
        EventKind::ServiceDown,
        EventKind::ServiceDegraded,
        EventKind::ServiceRecovered,
        EventKind::IncidentOpened,
        EventKind::IncidentUpdated,
        EventKind::IncidentResolved,
        EventKind::BackupFailed,
        EventKind::BackupVerificationFailed,
        EventKind::CertificateExpiring,
        EventKind::LocationSilent,
        EventKind::LocationBack,
        EventKind::MaintenanceScheduled,
        EventKind::MaintenanceStarted,
        EventKind::MaintenanceCompleted,
        EventKind::MaintenanceCancelled,
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
            EventKind::LocationSilent => "location_silent",
            EventKind::LocationBack => "location_back",
            EventKind::MaintenanceScheduled => "maintenance_scheduled",
            EventKind::MaintenanceStarted => "maintenance_started",
            EventKind::MaintenanceCompleted => "maintenance_completed",
            EventKind::MaintenanceCancelled => "maintenance_cancelled",
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<LocationFacts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<MaintenanceFacts>,
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
    /// Whether subscribers are told (an operator may post an update
    /// without notifying them; alert channels are told either way).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub notify: bool,
    /// Written by the monitor itself (its automatic step), not by a person:
    /// alert channels hear of it through the service's own event.
    #[serde(default, skip_serializing_if = "is_false")]
    pub by_monitor: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// A maintenance window as of the event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceFacts {
    pub id: i64,
    pub title: String,
    pub message: String,
    pub starts_at: i64,
    pub ends_at: i64,
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

/// A location that went silent or came back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocationFacts {
    pub name: String,
    /// Its last result before this event (epoch ms), if it ever sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_result_at: Option<i64>,
    /// Services it checks.
    pub services: usize,
}
