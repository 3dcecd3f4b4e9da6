//! The snapshot and its views: what a page, a feed or the JSON API reads.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::history::{Day, Point, Uptimes};
use crate::domain::State;

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub generated_at: DateTime<Utc>,
    pub title: String,
    pub overall: Overall,
    /// Public services by group, in config order; ungrouped ones first.
    pub groups: Vec<GroupView>,
    /// Unresolved incidents, the newest first.
    pub incidents: Vec<IncidentView>,
    /// The 50 newest incidents, resolved or not, the newest first.
    pub recent_incidents: Vec<IncidentView>,
    /// The 50 maintenance windows that start latest, the latest first.
    pub recent_maintenances: Vec<MaintenanceView>,
    /// Maintenance windows in progress, the soonest end first.
    pub active_maintenances: Vec<MaintenanceView>,
    /// Maintenance windows not started yet, the soonest start first.
    pub upcoming_maintenances: Vec<MaintenanceView>,
    /// Published at start-up before the history has been read: nothing of
    /// it may be shown (public routes answer 503 with `Retry-After`, and
    /// `/readyz` 503) until the first real snapshot replaces it.
    pub loading: bool,
}

impl Snapshot {
    /// What beacon publishes from its start until its first read of the
    /// store is done: no service, no incident, nothing to show.
    pub fn loading(title: &str, now: DateTime<Utc>) -> Snapshot {
        Snapshot {
            generated_at: now,
            title: title.to_string(),
            overall: Overall::NoData,
            groups: Vec::new(),
            incidents: Vec::new(),
            recent_incidents: Vec::new(),
            recent_maintenances: Vec::new(),
            active_maintenances: Vec::new(),
            upcoming_maintenances: Vec::new(),
            loading: true,
        }
    }
}

#[derive(Debug, Clone)]
pub struct IncidentView {
    pub id: i64,
    pub title: String,
    pub impact: String,
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub postmortem: Option<String>,
    /// The newest update: status, message, time.
    pub latest: Option<(String, String, DateTime<Utc>)>,
    /// Every update, oldest first: status, message, time.
    pub updates: Vec<(String, String, DateTime<Utc>)>,
    /// Names of the affected public services.
    pub services: Vec<String>,
    /// Slugs of the affected public services.
    pub service_slugs: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct MaintenanceView {
    pub id: i64,
    pub title: String,
    pub message: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// Names of the affected public services.
    pub services: Vec<String>,
    /// Slugs of the affected public services.
    pub service_slugs: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct GroupView {
    pub name: Option<String>,
    pub description: Option<String>,
    /// Every check of the group's public services counted together.
    pub uptime: Uptimes,
    /// Shared with the next snapshot while nothing they show moves.
    pub services: Vec<Arc<ServiceView>>,
}

/// When a service was last checked (epoch ms), shared by every snapshot
/// that shows the service and moved on in place by the refresher as
/// probes land. A probe moves nothing else a reader sees, so a new last
/// check is not a new view: at 30,000 services every 30 s, making a view
/// again for each probe was about 1,000 views a second on every replica,
/// whichever replica probed (docs/performance.md, issue 16). Only ever
/// moves forward; an older snapshot showing a newer last check is the
/// truth, only sooner.
#[derive(Debug, Clone)]
pub struct LastCheck(Arc<std::sync::atomic::AtomicI64>);

impl LastCheck {
    /// None yet.
    const NEVER: i64 = i64::MIN;

    pub fn new(at_ms: Option<i64>) -> LastCheck {
        LastCheck(Arc::new(std::sync::atomic::AtomicI64::new(
            at_ms.unwrap_or(Self::NEVER),
        )))
    }

    /// Moves it on to `at_ms`, unless it is later already.
    pub fn advance(&self, at_ms: Option<i64>) {
        if let Some(at) = at_ms {
            self.0.fetch_max(at, std::sync::atomic::Ordering::Relaxed);
        }
    }

    pub fn get(&self) -> Option<DateTime<Utc>> {
        match self.0.load(std::sync::atomic::Ordering::Relaxed) {
            Self::NEVER => None,
            ms => crate::clock::ms_to_datetime(ms),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServiceView {
    pub slug: String,
    pub name: String,
    pub description: Option<String>,
    pub state: State,
    pub state_since: Option<DateTime<Utc>>,
    /// Read it with [`ServiceView::last_checked_at`].
    pub last_check: LastCheck,
    pub created_at: DateTime<Utc>,
    /// Share of counted checks that were up or degraded, per window.
    pub uptime: Uptimes,
    /// The last 24 hours, hour by hour, oldest first (hours with no data
    /// left out): response time p50 and p95. Shared by every snapshot
    /// built from the same read of the rollups.
    pub hours: Arc<[Point]>,
    /// The 89 days before today, oldest first. Shared with the previous
    /// snapshot while they are equal (they change at midnight, or with an
    /// incident): one copy in memory, not two.
    pub past_days: Arc<[Day]>,
    /// Today so far.
    pub today: Day,
    /// Incidents naming the service that were open at some time in the
    /// last 90 days (each once, however many days it lasted).
    pub incidents_90d: u32,
    /// Median response time over the last 24 hours (ms), from the rollups.
    pub p50_24h: Option<i64>,
    /// Reported dependencies: names and states only (outputs stay internal).
    pub dependencies: Vec<(String, crate::domain::Health)>,
    /// Checked from several locations: what each sees (empty otherwise).
    pub locations: Vec<LocationView>,
}

/// What one location sees of a service checked from several.
#[derive(Debug, Clone)]
pub struct LocationView {
    pub name: String,
    /// Its latest result's outcome.
    pub outcome: crate::domain::Outcome,
    pub latency_ms: Option<i32>,
    pub checked_at: DateTime<Utc>,
    /// No result for over twice its usual time between results: it is
    /// silent, and the service is decided without it.
    pub silent: bool,
    /// Its response times over the last hour, oldest first.
    pub latencies: Vec<(DateTime<Utc>, i32)>,
}

impl ServiceView {
    /// When the service was last checked, as of now.
    pub fn last_checked_at(&self) -> Option<DateTime<Utc>> {
        self.last_check.get()
    }

    /// The last 90 days, day by day, oldest first (today last).
    pub fn days(&self) -> Vec<Day> {
        let mut days = Vec::with_capacity(self.past_days.len() + 1);
        days.extend_from_slice(&self.past_days);
        days.push(self.today);
        days
    }
}

/// The banner: the worst state across public services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overall {
    Operational,
    Degraded,
    PartialOutage,
    MajorOutage,
    Maintenance,
    NoData,
}

impl Overall {
    pub fn of(states: &[State]) -> Overall {
        let known: Vec<State> = states
            .iter()
            .copied()
            .filter(|s| *s != State::Unknown)
            .collect();
        if known.is_empty() {
            return Overall::NoData;
        }
        let down = known.iter().filter(|s| **s == State::Down).count();
        if down > 0 && down == known.len() {
            Overall::MajorOutage
        } else if down > 0 {
            Overall::PartialOutage
        } else if known.contains(&State::Degraded) {
            Overall::Degraded
        } else if known.contains(&State::Maintenance) {
            Overall::Maintenance
        } else {
            Overall::Operational
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Overall::Operational => "All systems operational",
            Overall::Degraded => "Degraded performance",
            Overall::PartialOutage => "Partial outage",
            Overall::MajorOutage => "Major outage",
            Overall::Maintenance => "Under maintenance",
            Overall::NoData => "Waiting for the first checks",
        }
    }

    /// CSS class, shared with the service states' classes.
    pub fn class(self) -> &'static str {
        match self {
            Overall::Operational => "up",
            Overall::Degraded => "degraded",
            Overall::PartialOutage | Overall::MajorOutage => "down",
            Overall::Maintenance => "maintenance",
            Overall::NoData => "unknown",
        }
    }
}
