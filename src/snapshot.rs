//! The in-memory view every public page is rendered from.
//!
//! Pages never query the store: a refresher rebuilds one immutable
//! [`Snapshot`] from the store after the monitor writes (debounced) and on a
//! timer, and handlers read the latest `Arc<Snapshot>`. Because it is built
//! from the store alone, a replica that does not run the monitor can serve
//! the same page (see docs/ARCHITECTURE.md).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::clock::{ms_to_datetime, Clock};
use crate::config::GroupConfig;
use crate::domain::State;
use crate::store::rollup::Rollup;
use crate::store::{Incident, Maintenance, ServiceSummary, Store, StoreError};

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
}

/// The page's uptime windows, in this order.
pub const WINDOWS: [&str; 4] = ["24 h", "7 d", "30 d", "90 d"];

/// Uptime over [`WINDOWS`], 0–100; `None` where the window holds no
/// counted check ("no data", never "up").
pub type Uptimes = [Option<f64>; 4];

/// Checks counted toward uptime over each window: (up or degraded, counted).
/// Maintenance is in neither.
pub type Counts = [(i64, i64); 4];

fn uptimes(counts: &Counts) -> Uptimes {
    counts.map(|(ok, counted)| (counted > 0).then(|| 100.0 * ok as f64 / counted as f64))
}

/// Response time over one hour (from the rollup's histogram). 16 bytes:
/// a snapshot holds up to 24 of them per service.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    at_ms: i64,
    p50: u32,
    p95: u32,
}

/// Stands for "no figure" in the compact fields of [`Point`] and [`Day`].
const NONE: u32 = u32::MAX;

fn compact(ms: Option<i64>) -> u32 {
    ms.map_or(NONE, |ms| ms.clamp(0, i64::from(NONE - 1)) as u32)
}

fn expand(v: u32) -> Option<u32> {
    (v != NONE).then_some(v)
}

impl Point {
    pub fn new(at_ms: i64, p50: Option<i64>, p95: Option<i64>) -> Point {
        Point {
            at_ms,
            p50: compact(p50),
            p95: compact(p95),
        }
    }

    pub fn at(&self) -> DateTime<Utc> {
        ms_to_datetime(self.at_ms).unwrap_or_default()
    }

    pub fn p50(&self) -> Option<i64> {
        expand(self.p50).map(i64::from)
    }

    pub fn p95(&self) -> Option<i64> {
        expand(self.p95).map(i64::from)
    }
}

/// One day of a service's 90-day bar. Kept small: a snapshot holds 90 of
/// them per service (24 bytes each: 22 MB at 10,000 services, shared
/// between snapshots while unchanged). Counts rather than a percentage, so
/// the uptime is computed exactly as the rollup's own.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Day {
    /// The UTC day.
    pub date: chrono::NaiveDate,
    /// The day's worst state: down, degraded, maintenance, up, or no data
    /// (`State::Unknown`).
    pub worst: State,
    /// Incidents naming the service that were open during the day.
    pub incidents: u16,
    /// Checks that were up or degraded, and checks counted (maintenance is
    /// in neither).
    ok: u32,
    counted: u32,
    /// Response time (ms), [`NONE`] without latency data.
    p50: u32,
    p95: u32,
}

impl Day {
    /// A day without data.
    pub fn empty(date: chrono::NaiveDate) -> Day {
        Day {
            date,
            worst: State::Unknown,
            incidents: 0,
            ok: 0,
            counted: 0,
            p50: NONE,
            p95: NONE,
        }
    }

    /// The day as its daily rollup tells it (no incidents yet: the
    /// snapshot counts those).
    pub fn of(date: chrono::NaiveDate, r: &Rollup) -> Day {
        let worst = if r.down > 0 {
            State::Down
        } else if r.degraded > 0 {
            State::Degraded
        } else if r.up > 0 {
            State::Up
        } else if r.maintenance > 0 {
            State::Maintenance
        } else {
            State::Unknown
        };
        let count = |n: i64| n.clamp(0, i64::from(u32::MAX)) as u32;
        Day {
            date,
            worst,
            incidents: 0,
            ok: count(r.up + r.degraded),
            counted: count(r.counted()),
            p50: compact(r.percentile_ms(0.5)),
            p95: compact(r.percentile_ms(0.95)),
        }
    }

    /// Share of counted checks that were up or degraded, 0–100; `None`
    /// without data (as [`Rollup::uptime`]).
    pub fn uptime(&self) -> Option<f64> {
        (self.counted > 0).then(|| 100.0 * f64::from(self.ok) / f64::from(self.counted))
    }

    pub fn p50(&self) -> Option<u32> {
        expand(self.p50)
    }

    pub fn p95(&self) -> Option<u32> {
        expand(self.p95)
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
}

impl ServiceView {
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

/// One service's history as the page shows it, reduced from its rollups
/// as they stream from the store: the rollups themselves (up to 114 of 184
/// bytes per service) are never held. Hours before this one and days
/// before today no longer change, so [`Histories::update`] reads only this
/// hour and today again and shares the rest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// (up or degraded, counted) over [`WINDOWS`]. The snapshot replaces
    /// the 24 h pair with the fresh one read with the states.
    pub counts: Counts,
    /// Median response time over the last 24 hours (ms).
    pub p50_24h: Option<i64>,
    /// The last 24 hours with latency data, oldest first, this hour last.
    pub hours: Arc<[Point]>,
    /// The days before today, of the last 90, that have data, oldest
    /// first, without incident counts (the snapshot adds those).
    pub past_days: Arc<[Day]>,
    /// Today so far.
    pub today: Option<Day>,
    /// The hours before this one merged, and the counts of the hours and
    /// days before the current ones: what the current ones are added to.
    past_hours: Rollup,
    past_counts: Counts,
}

impl History {
    /// This history with this hour's and today's rollups (as now read)
    /// in place of those it had.
    fn with_current(
        &self,
        this_hour: i64,
        hour: Option<&Rollup>,
        today: i64,
        day: Option<&Rollup>,
    ) -> History {
        let mut counts = self.past_counts;
        let mut last_24h = self.past_hours.clone();
        if let Some(r) = hour {
            last_24h.merge(r);
            counts[0].0 += r.up + r.degraded;
            counts[0].1 += r.counted();
        }
        if let Some(r) = day {
            // Today is inside every daily window.
            for c in &mut counts[1..] {
                c.0 += r.up + r.degraded;
                c.1 += r.counted();
            }
        }
        let before = match self.hours.last() {
            Some(p) if p.at_ms >= this_hour => &self.hours[..self.hours.len() - 1],
            _ => &self.hours[..],
        };
        let point = hour
            .filter(|r| r.latency_count > 0)
            .map(|r| Point::new(this_hour, r.percentile_ms(0.5), r.percentile_ms(0.95)));
        let hours = if point.is_none() && before.len() == self.hours.len() {
            Arc::clone(&self.hours)
        } else {
            before.iter().copied().chain(point).collect()
        };
        History {
            counts,
            p50_24h: last_24h.percentile_ms(0.5),
            hours,
            past_days: Arc::clone(&self.past_days),
            today: day.and_then(|r| Some(Day::of(ms_to_datetime(today)?.date_naive(), r))),
            past_hours: self.past_hours.clone(),
            past_counts: self.past_counts,
        }
    }

    /// The figures of `date`, if it has any.
    pub fn day(&self, date: chrono::NaiveDate) -> Option<Day> {
        match self.today {
            Some(d) if d.date == date => Some(d),
            _ => self
                .past_days
                .binary_search_by_key(&date, |d| d.date)
                .ok()
                .map(|i| self.past_days[i]),
        }
    }
}

/// Every service's [`History`], by service id.
#[derive(Debug, Clone, Default)]
pub struct Histories {
    /// The start of the hour they were last read in full (epoch ms).
    pub hour: i64,
    pub services: HashMap<i64, History>,
}

impl Histories {
    /// Reads every service's history at `now` in full, one rollup at a
    /// time: 24 hourly and 90 daily rollups per service.
    pub async fn read(store: &Store, now: i64) -> Result<Histories, StoreError> {
        use crate::domain::time::{DAY_MS, HOUR_MS};
        use crate::store::rollup::Period;
        #[derive(Default)]
        struct Reading {
            past: History,
            hours: Vec<Point>,
            days: Vec<Day>,
            this_hour: Option<Rollup>,
            today: Option<Rollup>,
        }
        let this_hour = Period::Hour.bucket_start(now);
        let today = Period::Day.bucket_start(now);
        let mut reading: HashMap<i64, Reading> = HashMap::new();
        store
            .for_each_rollup_since(
                this_hour - 23 * HOUR_MS,
                today - 89 * DAY_MS,
                |id, period, start, r| {
                    let into = reading.entry(id).or_default();
                    match period {
                        Period::Hour if start >= this_hour => into.this_hour = Some(r),
                        Period::Day if start >= today => into.today = Some(r),
                        Period::Hour => {
                            into.past.past_hours.merge(&r);
                            into.past.past_counts[0].0 += r.up + r.degraded;
                            into.past.past_counts[0].1 += r.counted();
                            if r.latency_count > 0 {
                                into.hours.push(Point::new(
                                    start,
                                    r.percentile_ms(0.5),
                                    r.percentile_ms(0.95),
                                ));
                            }
                        }
                        Period::Day => {
                            for (i, days) in [(1, 7), (2, 30), (3, 90)] {
                                if start > today - days * DAY_MS {
                                    into.past.past_counts[i].0 += r.up + r.degraded;
                                    into.past.past_counts[i].1 += r.counted();
                                }
                            }
                            if let Some(at) = ms_to_datetime(start) {
                                into.days.push(Day::of(at.date_naive(), &r));
                            }
                        }
                    }
                },
            )
            .await?;
        let services = reading
            .into_iter()
            .map(|(id, mut r)| {
                r.hours.sort_unstable_by_key(|p| p.at_ms);
                r.days.sort_unstable_by_key(|d| d.date);
                r.past.hours = Arc::from(r.hours);
                r.past.past_days = Arc::from(r.days);
                let history =
                    r.past
                        .with_current(this_hour, r.this_hour.as_ref(), today, r.today.as_ref());
                (id, history)
            })
            .collect();
        Ok(Histories {
            hour: this_hour,
            services,
        })
    }

    /// The same histories at `now`, which must be in the hour of the last
    /// full read, with only this hour's and today's rollups read again (one
    /// row in 57 of a full read with 90 days of history).
    pub async fn update(&self, store: &Store, now: i64) -> Result<Histories, StoreError> {
        use crate::store::rollup::Period;
        let this_hour = Period::Hour.bucket_start(now);
        let today = Period::Day.bucket_start(now);
        let mut current: HashMap<i64, (Option<Rollup>, Option<Rollup>)> = HashMap::new();
        store
            .for_each_rollup_since(this_hour, today, |id, period, _, r| {
                let slot = current.entry(id).or_default();
                match period {
                    Period::Hour => slot.0 = Some(r),
                    Period::Day => slot.1 = Some(r),
                }
            })
            .await?;
        let mut services = HashMap::with_capacity(self.services.len().max(current.len()));
        for (id, old) in &self.services {
            let (hour, day) = current.remove(id).unwrap_or_default();
            services.insert(
                *id,
                old.with_current(this_hour, hour.as_ref(), today, day.as_ref()),
            );
        }
        // Services first seen since the full read.
        for (id, (hour, day)) in current {
            services.insert(
                id,
                History::default().with_current(this_hour, hour.as_ref(), today, day.as_ref()),
            );
        }
        Ok(Histories {
            hour: self.hour,
            services,
        })
    }
}

/// What a snapshot is made of, as read from the store.
#[derive(Clone)]
pub struct Inputs {
    pub summaries: Vec<ServiceSummary>,
    /// Per service id: counts, response times and days of the last 90.
    pub history: Arc<Histories>,
    pub incidents: Vec<Incident>,
    pub maintenances: Vec<Maintenance>,
    pub recent_incidents: Vec<Incident>,
    pub recent_maintenances: Vec<Maintenance>,
}

impl Inputs {
    /// Reads everything; `history` may be a recent copy, since reading 90
    /// days of rollups costs far more than the rest.
    pub async fn read(
        store: &Store,
        now: i64,
        history: Option<Arc<Histories>>,
    ) -> Result<Inputs, StoreError> {
        let history = match history {
            Some(h) => h,
            None => Arc::new(Histories::read(store, now).await?),
        };
        Ok(Inputs {
            summaries: store.service_summaries(now).await?,
            history,
            incidents: store.unresolved_incidents().await?,
            maintenances: store.current_maintenances(now).await?,
            // Enough for the 90-day bars' incident counts, the first page of
            // the history (three calendar months) and the API's 50 newest.
            recent_incidents: store
                .incidents_since(
                    now - RECENT_INCIDENTS_DAYS * 86_400_000,
                    50,
                    RECENT_INCIDENTS_CAP,
                )
                .await?,
            recent_maintenances: store.recent_maintenances(50).await?,
        })
    }
}

/// How far back the snapshot holds incidents: 90 days of bars, or three
/// calendar months of history in any time zone, whichever is longer.
pub const RECENT_INCIDENTS_DAYS: i64 = 95;
/// At most this many of them (older ones are read from the store).
pub const RECENT_INCIDENTS_CAP: i64 = 500;

/// The 90 days ending today, each with its worst state, uptime, incident
/// count and response time; days without data say so. Returned as the 89
/// days before today and today. The history's own days, or else
/// `previous` (the last snapshot's 89), are returned themselves when they
/// are the same, which they are between one midnight and the next unless
/// an incident changes, so memory holds one copy; nothing is allocated to
/// find that out.
fn days_of(
    history: Option<&History>,
    incidents: &[&Incident],
    now: DateTime<Utc>,
    previous: Option<&Arc<[Day]>>,
) -> (Arc<[Day]>, Day) {
    use crate::domain::time::DAY_MS;
    use crate::store::rollup::Period;
    let now_ms = now.timestamp_millis();
    let today = Period::Day.bucket_start(now_ms);
    let day = |back: i64| -> Option<Day> {
        let start = today - back * DAY_MS;
        let date = ms_to_datetime(start)?.date_naive();
        let mut day = history
            .and_then(|h| h.day(date))
            .unwrap_or_else(|| Day::empty(date));
        let end = start + DAY_MS;
        let open = incidents
            .iter()
            .filter(|i| i.started_at < end && i.resolved_at.unwrap_or(now_ms) >= start)
            .count();
        day.incidents = open.min(usize::from(u16::MAX)) as u16;
        Some(day)
    };
    let today_day = day(0).unwrap_or_else(|| Day::empty(now.date_naive()));
    // The common case, at no cost: a service with data on each of the 89
    // days and no incident has its history's days exactly.
    if let Some(h) = history {
        let first = ms_to_datetime(today - 89 * DAY_MS).map(|t| t.date_naive());
        if incidents.is_empty()
            && h.past_days.len() == 89
            && h.past_days.first().map(|d| d.date) == first
        {
            return (Arc::clone(&h.past_days), today_day);
        }
    }
    let past = || (1..90).rev().filter_map(day);
    // Otherwise the same days as the history's or the last snapshot's are
    // theirs: one copy for the history and every snapshot.
    let known = history.map(|h| &h.past_days);
    let past = match (known, previous) {
        (Some(k), _) if k.iter().copied().eq(past()) => Arc::clone(k),
        (_, Some(old)) if old.iter().copied().eq(past()) => Arc::clone(old),
        _ => past().collect(),
    };
    (past, today_day)
}

impl Snapshot {
    /// Builds a snapshot from what [`Inputs::read`] read (start-up keeps
    /// the inputs' history for the refresher; see `startup.rs`).
    pub fn from_inputs(
        inputs: Inputs,
        title: &str,
        groups: &[GroupConfig],
        now: DateTime<Utc>,
    ) -> Snapshot {
        Self::from_inputs_reusing(inputs, title, groups, now, None)
    }

    /// As [`Snapshot::from_inputs`], sharing each service's 90 days with
    /// `previous` where they are unchanged.
    pub fn from_inputs_reusing(
        inputs: Inputs,
        title: &str,
        groups: &[GroupConfig],
        now: DateTime<Utc>,
        previous: Option<&Snapshot>,
    ) -> Snapshot {
        let previous_days: HashMap<&str, &Arc<[Day]>> = previous
            .map(|p| {
                p.groups
                    .iter()
                    .flat_map(|g| &g.services)
                    .map(|s| (s.slug.as_str(), &s.past_days))
                    .collect()
            })
            .unwrap_or_default();
        let public: Vec<ServiceSummary> =
            inputs.summaries.into_iter().filter(|s| s.public).collect();
        let overall = Overall::of(&public.iter().map(|s| s.state).collect::<Vec<_>>());
        let counts = |s: &ServiceSummary| -> Counts {
            let mut c: Counts = inputs
                .history
                .services
                .get(&s.id)
                .map_or([(0, 0); 4], |h| h.counts);
            // The 24 h figure is read fresh with the states.
            c[0] = (s.ok_24h, s.checks_24h);
            c
        };
        // Each service's incidents, found once rather than per day.
        let mut incidents_of: HashMap<&str, Vec<&Incident>> = HashMap::new();
        for i in &inputs.recent_incidents {
            for slug in &i.services {
                incidents_of.entry(slug.as_str()).or_default().push(i);
            }
        }
        // The first of the bars' 90 days (epoch ms).
        let window_start = crate::store::rollup::Period::Day.bucket_start(now.timestamp_millis())
            - 89 * crate::domain::time::DAY_MS;
        let view = |s: &ServiceSummary| {
            let (past_days, today) = days_of(
                inputs.history.services.get(&s.id),
                incidents_of
                    .get(s.slug.as_str())
                    .map_or(&[][..], Vec::as_slice),
                now,
                previous_days.get(s.slug.as_str()).copied(),
            );
            let incidents_90d = incidents_of.get(s.slug.as_str()).map_or(0, |list| {
                list.iter()
                    .filter(|i| i.resolved_at.is_none_or(|end| end >= window_start))
                    .count() as u32
            });
            ServiceView {
                past_days,
                today,
                incidents_90d,
                slug: s.slug.clone(),
                name: s.name.clone(),
                description: s.description.clone(),
                state: s.state,
                state_since: s.state_since.and_then(ms_to_datetime),
                last_checked_at: s.last_checked_at.and_then(ms_to_datetime),
                created_at: ms_to_datetime(s.created_at).unwrap_or(now),
                p50_24h: inputs.history.services.get(&s.id).and_then(|h| h.p50_24h),
                uptime: uptimes(&counts(s)),
                hours: inputs
                    .history
                    .services
                    .get(&s.id)
                    .map_or_else(|| Arc::from([]), |h| Arc::clone(&h.hours)),

                dependencies: s
                    .dependencies
                    .iter()
                    .map(|d| (d.name.clone(), d.health))
                    .collect(),
            }
        };
        let group_view = |name: Option<&GroupConfig>| {
            let members: Vec<&ServiceSummary> = public
                .iter()
                .filter(|s| s.group.as_deref() == name.map(|g| g.name.as_str()))
                .collect();
            let mut total: Counts = [(0, 0); 4];
            for s in &members {
                for (t, (ok, counted)) in total.iter_mut().zip(counts(s)) {
                    t.0 += ok;
                    t.1 += counted;
                }
            }
            GroupView {
                name: name.map(|g| g.name.clone()),
                description: name.and_then(|g| g.description.clone()),
                uptime: uptimes(&total),
                services: members.into_iter().map(view).collect(),
            }
        };
        let mut views = vec![group_view(None)];
        views.extend(groups.iter().map(|g| group_view(Some(g))));
        views.retain(|g| !g.services.is_empty());

        // Only public services are named on the page.
        let public_name = |slug: &String| {
            public
                .iter()
                .find(|s| &s.slug == slug)
                .map(|s| s.name.clone())
        };
        let public_slug =
            |slug: &String| public.iter().any(|s| &s.slug == slug).then(|| slug.clone());
        let time = |ms: i64| ms_to_datetime(ms).unwrap_or(now);
        let incident_view = |i: Incident| incident_view(i, &public_name, now);
        let maintenance_view = |m: Maintenance| MaintenanceView {
            id: m.id,
            services: m.services.iter().filter_map(public_name).collect(),
            service_slugs: m.services.iter().filter_map(public_slug).collect(),
            title: m.title,
            message: m.message,
            starts_at: time(m.starts_at),
            ends_at: time(m.ends_at),
            created_at: time(m.created_at),
            updated_at: time(m.updated_at),
        };
        let incidents = inputs.incidents.into_iter().map(incident_view).collect();
        let recent_incidents = inputs
            .recent_incidents
            .into_iter()
            .map(incident_view)
            .collect();
        let recent_maintenances = inputs
            .recent_maintenances
            .into_iter()
            .map(maintenance_view)
            .collect();
        let now_ms = now.timestamp_millis();
        let (mut active, mut upcoming) = (Vec::new(), Vec::new());
        for m in inputs.maintenances {
            let (starts_at, ends_at) = (m.starts_at, m.ends_at);
            let view = maintenance_view(m);
            if starts_at <= now_ms && now_ms < ends_at {
                active.push(view);
            } else if starts_at > now_ms {
                upcoming.push(view);
            }
        }
        active.sort_by_key(|m: &MaintenanceView| m.ends_at);
        Snapshot {
            generated_at: now,
            title: title.to_string(),
            overall,
            groups: views,
            incidents,
            recent_incidents,
            recent_maintenances,
            active_maintenances: active,
            upcoming_maintenances: upcoming,
        }
    }
}

/// An incident as the public sees it: only public services are named.
fn incident_view(
    i: Incident,
    public_name: &dyn Fn(&String) -> Option<String>,
    now: DateTime<Utc>,
) -> IncidentView {
    let time = |ms: i64| ms_to_datetime(ms).unwrap_or(now);
    let updates: Vec<(String, String, DateTime<Utc>)> = i
        .updates
        .iter()
        .map(|u| (u.status.clone(), u.message.clone(), time(u.created_at)))
        .collect();
    let public: Vec<(String, String)> = i
        .services
        .iter()
        .filter_map(|slug| public_name(slug).map(|name| (slug.clone(), name)))
        .collect();
    IncidentView {
        id: i.id,
        latest: updates.last().cloned(),
        updates,
        services: public.iter().map(|(_, name)| name.clone()).collect(),
        service_slugs: public.into_iter().map(|(slug, _)| slug).collect(),
        title: i.title,
        impact: i.impact,
        status: i.status,
        started_at: time(i.started_at),
        updated_at: time(i.updated_at),
        resolved_at: i.resolved_at.map(time),
        postmortem: i.postmortem,
    }
}

impl Snapshot {
    /// An incident read from the store (one older than the snapshot
    /// holds), named as the page names it.
    pub fn incident_view(&self, i: Incident) -> IncidentView {
        self.with_public_names(|public_name| incident_view(i, public_name, self.generated_at))
    }

    /// Views of `incidents`, with the services' names looked up once for
    /// them all (a history page holds hundreds).
    pub fn incident_views(&self, incidents: Vec<Incident>) -> Vec<IncidentView> {
        self.with_public_names(|public_name| {
            incidents
                .into_iter()
                .map(|i| incident_view(i, public_name, self.generated_at))
                .collect()
        })
    }

    /// Calls `f` with the public name of a service slug, if it is shown.
    fn with_public_names<R>(&self, f: impl FnOnce(&dyn Fn(&String) -> Option<String>) -> R) -> R {
        let names: HashMap<&str, &str> = self
            .groups
            .iter()
            .flat_map(|g| g.services.iter())
            .map(|s| (s.slug.as_str(), s.name.as_str()))
            .collect();
        f(&|slug: &String| names.get(slug.as_str()).map(|n| n.to_string()))
    }
}

/// Keeps the published snapshot fresh.
pub struct Refresher {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub title: String,
    pub groups: Vec<GroupConfig>,
    pub publish: watch::Sender<Arc<Snapshot>>,
    /// Admin writes (incidents, maintenance) ask for a rebuild here.
    pub changed: Arc<tokio::sync::Notify>,
    /// The last read of the services' histories and when (epoch ms).
    pub history: Mutex<Option<(i64, Arc<Histories>)>>,
}

/// How long a read of the history (this hour's and today's rollups, and
/// with them the 24 h chart, today's bar and the 7/30/90-day windows) is
/// reused. They move by a few checks in this time; the 24 h uptime and the
/// states are always fresh.
const WINDOWS_MAX_AGE_MS: i64 = 30_000;

/// The wait after a rebuild, in multiples of the rebuild's own time.
pub const REFRESH_COST_SHARE: u32 = 20;

impl Refresher {
    /// Rebuilds after each write the monitor reports (at most every
    /// `min_gap`) and at least every `max_age`, until `stop` resolves.
    ///
    /// A rebuild reads and lays out every service, so its cost grows with
    /// the fleet: the gap after one is at least [`REFRESH_COST_SHARE`]
    /// times what it took (at 10,000 services with history a rebuild took
    /// 223–595 ms, so 4.5–12 s pass between them), which bounds
    /// the snapshot to a twentieth of a core however many services there are.
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
                _ = self.changed.notified() => {}
                _ = tokio::time::sleep(max_age) => {}
                _ = stop.as_mut() => return,
            }
            let started = std::time::Instant::now();
            self.refresh().await;
            let took = started.elapsed();
            let gap = min_gap.max(took * REFRESH_COST_SHARE).min(max_age);
            tracing::debug!(
                ms = took.as_millis() as u64,
                gap_ms = gap.as_millis() as u64,
                "snapshot rebuilt"
            );
            tokio::select! {
                _ = tokio::time::sleep(gap) => {}
                _ = stop.as_mut() => return,
            }
        }
    }

    pub async fn refresh(&self) {
        let now = self.clock.now();
        let now_ms = now.timestamp_millis();
        let cached = self.history.lock().ok().and_then(|h| h.clone());
        // Reused for a while; then this hour and today are read again; a
        // new hour reads everything (the 24 hours and 90 days move on). An
        // empty read (a new install) is not reused: the first results
        // should show at once.
        let history = match cached {
            Some((read_at, h))
                if !h.services.is_empty()
                    && (0..WINDOWS_MAX_AGE_MS).contains(&(now_ms - read_at)) =>
            {
                Ok((h, false))
            }
            Some((_, h)) if h.hour == crate::store::rollup::Period::Hour.bucket_start(now_ms) => h
                .update(&self.store, now_ms)
                .await
                .map(|h| (Arc::new(h), true)),
            _ => Histories::read(&self.store, now_ms)
                .await
                .map(|h| (Arc::new(h), true)),
        };
        let history = match history {
            Ok((h, fresh)) => {
                if fresh {
                    if let Ok(mut slot) = self.history.lock() {
                        *slot = Some((now_ms, h.clone()));
                    }
                }
                h
            }
            Err(e) => {
                // The page keeps serving the last good snapshot.
                tracing::warn!(error = %e, "reading the services' history failed");
                return;
            }
        };
        match Inputs::read(&self.store, now_ms, Some(history)).await {
            Ok(inputs) => {
                let previous = self.publish.borrow().clone();
                let title = self.title.clone();
                let groups = self.groups.clone();
                // Laying out every service is CPU work (hundreds of ms at
                // 10,000 services): on a blocking thread, not a worker.
                let built = tokio::task::spawn_blocking(move || {
                    Snapshot::from_inputs_reusing(inputs, &title, &groups, now, Some(&previous))
                })
                .await;
                match built {
                    Ok(snapshot) => {
                        self.publish.send_replace(Arc::new(snapshot));
                    }
                    // A panic in the build ends the refresher as it did
                    // when the build ran on this task.
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(e) => tracing::warn!(error = %e, "building the status snapshot failed"),
                }
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

    fn summary(id: i64, name: &str, group: Option<&str>, public: bool) -> ServiceSummary {
        ServiceSummary {
            id,
            slug: name.to_lowercase(),
            name: name.to_string(),
            group: group.map(str::to_string),
            description: None,
            public,
            position: id,
            state: Up,
            state_since: None,
            last_checked_at: None,
            created_at: 0,
            checks_24h: 0,
            ok_24h: 0,
            dependencies: Vec::new(),
            certificate_expires_at: None,
        }
    }

    fn counts(up: i64, down: i64, maintenance: i64) -> Rollup {
        Rollup {
            up,
            down,
            maintenance,
            ..Rollup::default()
        }
    }

    #[test]
    fn a_day_of_a_bar_stays_small() {
        // The figures in the docs of Day and Point: 90 and up to 24 of
        // them per service.
        assert_eq!(std::mem::size_of::<Day>(), 24);
        assert_eq!(std::mem::size_of::<Point>(), 16);
    }

    #[test]
    fn groups_count_every_check_of_their_public_services_and_windows_split_by_time() {
        let now = ms_to_datetime(1_773_360_000_000).expect("time"); // 2026-03-13 00:00 UTC
        let hour = 3_600_000;
        let mut a = summary(1, "A", Some("Shop"), true);
        (a.checks_24h, a.ok_24h) = (10, 9);
        let b = summary(2, "B", Some("Shop"), true);
        let hidden = summary(3, "Hidden", Some("Shop"), false);
        let windows = HashMap::from([
            (
                1,
                [
                    counts(9, 1, 0),
                    counts(90, 10, 5),
                    counts(90, 10, 5),
                    counts(90, 10, 5),
                ],
            ),
            // B: only maintenance in 7 d, so no data there; data further back.
            (
                2,
                [
                    counts(0, 0, 0),
                    counts(0, 0, 8),
                    counts(50, 50, 8),
                    counts(50, 50, 8),
                ],
            ),
            (
                3,
                [
                    counts(0, 10, 0),
                    counts(0, 100, 0),
                    counts(0, 100, 0),
                    counts(0, 100, 0),
                ],
            ),
        ]);
        let maintenance = |id, from: i64, to: i64| crate::store::Maintenance {
            id,
            title: format!("w{id}"),
            message: String::new(),
            starts_at: now.timestamp_millis() + from * hour,
            ends_at: now.timestamp_millis() + to * hour,
            services: vec!["a".into(), "hidden".into()],
            created_at: 0,
            updated_at: 0,
        };
        let inputs = Inputs {
            summaries: vec![a, b, hidden],
            history: Arc::new(Histories {
                hour: 0,
                services: windows
                    .into_iter()
                    .map(|(id, w)| {
                        let history = History {
                            counts: w.map(|r| (r.up + r.degraded, r.counted())),
                            ..History::default()
                        };
                        (id, history)
                    })
                    .collect(),
            }),
            incidents: Vec::new(),
            maintenances: vec![maintenance(1, 24, 26), maintenance(2, -1, 1)],
            recent_incidents: Vec::new(),
            recent_maintenances: Vec::new(),
        };
        let groups = [GroupConfig {
            name: "Shop".into(),
            description: None,
        }];
        let snap = Snapshot::from_inputs(inputs.clone(), "t", &groups, now);
        // Rebuilt from the same figures, the 90 days are the previous
        // snapshot's own (one copy in memory); changed figures are not.
        let again = Snapshot::from_inputs_reusing(inputs.clone(), "t", &groups, now, Some(&snap));
        for (old, new) in snap.groups[0]
            .services
            .iter()
            .zip(&again.groups[0].services)
        {
            assert!(
                Arc::ptr_eq(&old.past_days, &new.past_days),
                "{} shares its days",
                old.slug
            );
        }
        let tomorrow = now + chrono::Duration::days(1);
        let later = Snapshot::from_inputs_reusing(inputs, "t", &groups, tomorrow, Some(&snap));
        assert!(!Arc::ptr_eq(
            &snap.groups[0].services[0].past_days,
            &later.groups[0].services[0].past_days
        ));
        assert_eq!(snap.groups.len(), 1);
        let shop = &snap.groups[0];
        assert_eq!(shop.services.len(), 2, "the private service is left out");
        assert_eq!(
            shop.services[0].uptime,
            [Some(90.0), Some(90.0), Some(90.0), Some(90.0)]
        );
        assert_eq!(
            shop.services[1].uptime,
            [None, None, Some(50.0), Some(50.0)]
        );
        // 24 h: A's fresh 9 of 10; 30 d: (90 + 50) of (100 + 100).
        assert_eq!(
            shop.uptime,
            [Some(90.0), Some(90.0), Some(70.0), Some(70.0)]
        );
        assert_eq!(
            (
                snap.active_maintenances.len(),
                snap.upcoming_maintenances.len()
            ),
            (1, 1)
        );
        assert_eq!(snap.active_maintenances[0].title, "w2");
        assert_eq!(
            snap.active_maintenances[0].services,
            ["A"],
            "private names stay off"
        );
    }

    #[test]
    fn a_full_history_is_shared_with_the_snapshot_not_copied() {
        use crate::domain::time::DAY_MS;
        use crate::store::rollup::Period;
        let now = ms_to_datetime(1_773_363_600_000).expect("time"); // 2026-03-13 01:00 UTC
        let today = Period::Day.bucket_start(now.timestamp_millis());
        let date = |ms: i64| ms_to_datetime(ms).expect("time").date_naive();
        let past: Arc<[Day]> = (1..90)
            .rev()
            .map(|back| Day::of(date(today - back * DAY_MS), &counts(100, 0, 0)))
            .collect();
        let history = History {
            past_days: past.clone(),
            today: Some(Day::of(now.date_naive(), &counts(10, 1, 0))),
            ..History::default()
        };
        let inputs = Inputs {
            summaries: vec![summary(1, "A", None, true)],
            history: Arc::new(Histories {
                hour: 0,
                services: HashMap::from([(1, history)]),
            }),
            incidents: Vec::new(),
            maintenances: Vec::new(),
            recent_incidents: Vec::new(),
            recent_maintenances: Vec::new(),
        };
        let snap = Snapshot::from_inputs(inputs, "t", &[], now);
        let a = &snap.groups[0].services[0];
        assert!(
            Arc::ptr_eq(&a.past_days, &past),
            "the history's days, not a copy"
        );
        let days = a.days();
        assert_eq!(days.len(), 90);
        assert_eq!(days[0].date, date(today - 89 * DAY_MS));
        assert_eq!((days[89].date, days[89].worst), (now.date_naive(), Down));
        assert!(days[..89].iter().all(|d| d.uptime() == Some(100.0)));
    }

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
