//! The in-memory view every public page is rendered from.
//!
//! Pages never query the store: a refresher rebuilds one immutable
//! [`Snapshot`] from the store after the monitor writes (debounced) and on a
//! timer, and handlers read the latest `Arc<Snapshot>`. Because it is built
//! from the store alone, a replica that does not run the monitor can serve
//! the same page (see docs/ARCHITECTURE.md).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::clock::{ms_to_datetime, Clock};
use crate::config::GroupConfig;
use crate::model::State;
use crate::store::{ServiceSummary, Store, StoreError};

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub generated_at: DateTime<Utc>,
    pub title: String,
    pub overall: Overall,
    /// Public services by group, in config order; ungrouped ones first.
    pub groups: Vec<GroupView>,
}

#[derive(Debug, Clone)]
pub struct GroupView {
    pub name: Option<String>,
    pub description: Option<String>,
    pub services: Vec<ServiceView>,
}

#[derive(Debug, Clone)]
pub struct ServiceView {
    pub slug: String,
    pub name: String,
    pub description: Option<String>,
    pub state: State,
    pub state_since: Option<DateTime<Utc>>,
    pub last_checked_at: Option<DateTime<Utc>>,
    /// Share of checks in the last 24 h that were up or degraded, 0–100.
    pub uptime_24h: Option<f64>,
    /// Reported dependencies: names and states only (outputs stay internal).
    pub dependencies: Vec<(String, crate::health::Health)>,
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

impl Snapshot {
    /// Builds a snapshot from the store at `now`.
    pub async fn build(
        store: &Store,
        title: &str,
        groups: &[GroupConfig],
        now: DateTime<Utc>,
    ) -> Result<Snapshot, StoreError> {
        let summaries = store.service_summaries(now.timestamp_millis()).await?;
        Ok(Self::from_summaries(summaries, title, groups, now))
    }

    pub fn from_summaries(
        summaries: Vec<ServiceSummary>,
        title: &str,
        groups: &[GroupConfig],
        now: DateTime<Utc>,
    ) -> Snapshot {
        let public: Vec<ServiceSummary> = summaries.into_iter().filter(|s| s.public).collect();
        let overall = Overall::of(&public.iter().map(|s| s.state).collect::<Vec<_>>());
        let view = |s: &ServiceSummary| ServiceView {
            slug: s.slug.clone(),
            name: s.name.clone(),
            description: s.description.clone(),
            state: s.state,
            state_since: s.state_since.and_then(ms_to_datetime),
            last_checked_at: s.last_checked_at.and_then(ms_to_datetime),
            uptime_24h: (s.checks_24h > 0).then(|| 100.0 * s.ok_24h as f64 / s.checks_24h as f64),
            dependencies: s
                .dependencies
                .iter()
                .map(|d| (d.name.clone(), d.health))
                .collect(),
        };
        let mut views = vec![GroupView {
            name: None,
            description: None,
            services: public
                .iter()
                .filter(|s| s.group.is_none())
                .map(view)
                .collect(),
        }];
        for g in groups {
            views.push(GroupView {
                name: Some(g.name.clone()),
                description: g.description.clone(),
                services: public
                    .iter()
                    .filter(|s| s.group.as_deref() == Some(g.name.as_str()))
                    .map(view)
                    .collect(),
            });
        }
        views.retain(|g| !g.services.is_empty());
        Snapshot {
            generated_at: now,
            title: title.to_string(),
            overall,
            groups: views,
        }
    }
}

/// Keeps the published snapshot fresh.
pub struct Refresher {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub title: String,
    pub groups: Vec<GroupConfig>,
    pub publish: watch::Sender<Arc<Snapshot>>,
}

impl Refresher {
    /// Rebuilds after each write the monitor reports (at most every
    /// `min_gap`) and at least every `max_age`, until `stop` resolves.
    pub async fn run(
        self,
        mut writes: watch::Receiver<u64>,
        min_gap: Duration,
        max_age: Duration,
        stop: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                changed = writes.changed() => {
                    if changed.is_err() {
                        // The monitor is gone (or not running): poll only.
                        tokio::select! {
                            _ = tokio::time::sleep(max_age) => {}
                            _ = stop.as_mut() => return,
                        }
                    }
                }
                _ = tokio::time::sleep(max_age) => {}
                _ = stop.as_mut() => return,
            }
            self.refresh().await;
            tokio::select! {
                _ = tokio::time::sleep(min_gap) => {}
                _ = stop.as_mut() => return,
            }
        }
    }

    pub async fn refresh(&self) {
        match Snapshot::build(&self.store, &self.title, &self.groups, self.clock.now()).await {
            Ok(snapshot) => {
                self.publish.send_replace(Arc::new(snapshot));
            }
            // The page keeps serving the last good snapshot.
            Err(e) => tracing::warn!(error = %e, "refreshing the status snapshot failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use State::*;

    #[test]
    fn banner_is_the_worst_public_state() {
        let cases: &[(&[State], Overall)] = &[
            (&[Up, Up], Overall::Operational),
            (&[Up, Degraded], Overall::Degraded),
            (&[Up, Down, Degraded], Overall::PartialOutage),
            (&[Down, Down], Overall::MajorOutage),
            (&[Down, Unknown], Overall::MajorOutage),
            (&[Up, Maintenance], Overall::Maintenance),
            (&[Unknown], Overall::NoData),
            (&[], Overall::NoData),
            (&[Up, Unknown], Overall::Operational),
        ];
        for (states, expected) in cases {
            assert_eq!(Overall::of(states), *expected, "{states:?}");
        }
    }
}
