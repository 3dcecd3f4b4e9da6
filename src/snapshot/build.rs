//! Building a snapshot from the store: what is read ([`Inputs`]), and how
//! it becomes the views the pages show.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::history::{uptimes, Counts, Day, FastMap, Histories, History};
use super::incidents::KeptIncidents;
use super::views::{
    GroupView, IncidentView, LastCheck, MaintenanceView, Overall, ServiceView, Snapshot,
};
use crate::clock::ms_to_datetime;
use crate::config::GroupConfig;
use crate::store::{Incident, Maintenance, ServiceSummary, Store, StoreError};

/// What a snapshot is made of, as read from the store.
#[derive(Clone)]
pub struct Inputs {
    /// Shared with the refresher's rows: a row not read again since the
    /// last rebuild is the same `Arc`, and its view is kept (see
    /// [`Views`]). The list itself is the refresher's too, changed in
    /// place where rows moved (see `ShownRows`): handing 30,000 rows to a
    /// rebuild touches none of them.
    pub summaries: Arc<Vec<Arc<ServiceSummary>>>,
    /// Each summary's last check, shared with the refresher, which moves
    /// it on as probes land (see [`LastCheck`]); the same length as
    /// `summaries`, or empty: each view then has its own, from its row.
    pub last_checks: Arc<Vec<LastCheck>>,
    /// Per service id: counts, response times and days of the last 90.
    pub history: Arc<Histories>,
    pub incidents: Vec<Incident>,
    pub maintenances: Vec<Maintenance>,
    pub recent_incidents: Vec<Incident>,
    pub recent_maintenances: Vec<Maintenance>,
    /// The last hour of results per location, of services checked from
    /// several (by service, location, time).
    pub locations: Vec<crate::store::LocationResult>,
}

impl Inputs {
    /// Reads everything but the services and their history, which the
    /// refresher keeps and reads again only where they changed.
    pub async fn read(
        store: &Store,
        now: i64,
        summaries: Vec<Arc<ServiceSummary>>,
        history: Arc<Histories>,
    ) -> Result<Inputs, StoreError> {
        Self::read_keeping(
            store,
            now,
            Arc::new(summaries),
            Arc::default(),
            history,
            &KeptIncidents::default(),
        )
        .await
    }

    /// As [`Inputs::read`], loading only the incidents that moved since
    /// `incidents` last read them (the refresher keeps them).
    pub async fn read_keeping(
        store: &Store,
        now: i64,
        summaries: Arc<Vec<Arc<ServiceSummary>>>,
        last_checks: Arc<Vec<LastCheck>>,
        history: Arc<Histories>,
        incidents: &KeptIncidents,
    ) -> Result<Inputs, StoreError> {
        // Enough for the 90-day bars' incident counts, the first page of
        // the history (three calendar months) and the API's 50 newest.
        let (open, recent) = incidents
            .read(
                store,
                now - RECENT_INCIDENTS_DAYS * 86_400_000,
                50,
                RECENT_INCIDENTS_CAP,
            )
            .await?;
        Ok(Inputs {
            summaries,
            last_checks,
            history,
            incidents: open,
            maintenances: store.current_maintenances(now).await?,
            recent_incidents: recent,
            recent_maintenances: store.recent_maintenances(50).await?,
            locations: store
                .location_results_since(now - LOCATION_WINDOW_MS, LOCATION_ROWS_CAP)
                .await?,
        })
    }
}

/// How far back the per-location views reach, and how many rows at most.
pub const LOCATION_WINDOW_MS: i64 = 3_600_000;
pub const LOCATION_ROWS_CAP: i64 = 50_000;

/// Each service's per-location views, by service id, from the last hour
/// of location results (sorted by service, location, time).
fn location_views(
    rows: &[crate::store::LocationResult],
    now: DateTime<Utc>,
) -> HashMap<i64, Vec<super::views::LocationView>> {
    let mut out: HashMap<i64, Vec<super::views::LocationView>> = HashMap::new();
    for run in rows.chunk_by(|a, b| a.service_id == b.service_id && a.location == b.location) {
        let Some(last) = run.last() else { continue };
        let Some(checked_at) = ms_to_datetime(last.checked_at) else {
            continue;
        };
        // Silent past twice its usual gap (its median), at least 10 s.
        let mut gaps: Vec<i64> = run
            .windows(2)
            .map(|w| w[1].checked_at - w[0].checked_at)
            .collect();
        gaps.sort_unstable();
        let usual = gaps.get(gaps.len() / 2).copied().unwrap_or(60_000);
        let silent = now.timestamp_millis() - last.checked_at > (usual * 2).max(10_000);
        let latencies = run
            .iter()
            .rev()
            .take(120)
            .rev()
            .filter_map(|r| Some((ms_to_datetime(r.checked_at)?, r.latency_ms?)))
            .collect();
        out.entry(last.service_id)
            .or_default()
            .push(super::views::LocationView {
                name: last.location.clone(),
                outcome: last.outcome,
                latency_ms: last.latency_ms,
                checked_at,
                silent,
                latencies,
            });
    }
    out
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
pub(super) fn days_of(
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
    /// the inputs' history for the refresher; see `startup::first_snapshot`).
    pub fn from_inputs(
        inputs: Inputs,
        title: &str,
        groups: &[GroupConfig],
        now: DateTime<Utc>,
    ) -> Snapshot {
        Self::from_inputs_reusing(inputs, title, groups, now, &mut Views::default())
    }

    /// As [`Snapshot::from_inputs`], keeping each service's view from
    /// `views` (the last build's) where nothing it is made of moved, and
    /// leaving in `views` the views of this one.
    pub fn from_inputs_reusing(
        inputs: Inputs,
        title: &str,
        groups: &[GroupConfig],
        now: DateTime<Utc>,
        views: &mut Views,
    ) -> Snapshot {
        let located = if inputs.locations.is_empty() {
            HashMap::new()
        } else {
            location_views(&inputs.locations, now)
        };
        // Only public services are named on the page: the names of those
        // the incidents and maintenance windows name, found as the services
        // are laid out.
        let wanted: std::collections::HashSet<&str, foldhash::fast::RandomState> = inputs
            .maintenances
            .iter()
            .flat_map(|m| &m.services)
            .chain(inputs.incidents.iter().flat_map(|i| &i.services))
            .chain(inputs.recent_incidents.iter().flat_map(|i| &i.services))
            .chain(inputs.recent_maintenances.iter().flat_map(|m| &m.services))
            .map(String::as_str)
            .collect();
        let Laid {
            groups: group_views,
            overall,
            names,
        } = views.lay_out(
            (&inputs.summaries, &inputs.last_checks),
            &inputs.history,
            &inputs.recent_incidents,
            located,
            (groups, &wanted),
            now,
        );
        let public_name = |slug: &String| names.get(slug.as_str()).map(|n| n.to_string());
        let incident = |i: Incident| incident_view(i, &public_name, now);
        let maintenance = |m: Maintenance| maintenance_view(m, &names, now);
        let now_ms = now.timestamp_millis();
        let (mut active, mut upcoming) = (Vec::new(), Vec::new());
        for m in inputs.maintenances {
            let (starts_at, ends_at) = (m.starts_at, m.ends_at);
            let view = maintenance(m);
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
            groups: group_views,
            incidents: inputs.incidents.into_iter().map(incident).collect(),
            recent_incidents: inputs.recent_incidents.into_iter().map(incident).collect(),
            recent_maintenances: inputs
                .recent_maintenances
                .into_iter()
                .map(maintenance)
                .collect(),
            active_maintenances: active,
            upcoming_maintenances: upcoming,
            loading: false,
        }
    }
}

/// Each shown service's view as the last build made it, with what it was
/// made of. A rebuild makes again only the views whose row was read again
/// (a state change, the config, a probe's dependencies or certificate; not
/// a probe's last check, which moves in place: see [`LastCheck`]), whose
/// incidents changed, or all of them when the
/// history was read again (see `windows_max_age_ms`) or the day turned;
/// the others are the same `Arc`. So a rebuild between two reads of the
/// history costs what changed, not the size of the fleet.
///
/// Kept in the order of the last build's services, so that a rebuild of
/// the same services in the same order (nearly every one) finds each
/// service's entry where it was, with no lookup: at 30,000 services a
/// lookup by id was a cache miss a service and a third of the layout's
/// own time on every rebuild (`perf annotate`, three replicas, issue 16).
/// When a service came, went or moved, those from there on are found by
/// id.
#[derive(Debug, Default)]
pub struct Views {
    /// The history the views were made from (held, so that a new read is
    /// never mistaken for it).
    history: Option<Arc<Histories>>,
    /// The start of the day they were made on (epoch ms).
    day: i64,
    /// The page's groups they were placed by (see [`Facts::group`]).
    groups: Vec<String>,
    /// Entry `k` is the last build's `k`-th service's.
    at: Vec<Option<Made>>,
    /// The build before's list, emptied, kept for the next build to fill:
    /// at 30,000 services a list is 3 MB, which a new allocation on every
    /// rebuild would take from the system again, page by page.
    spare: Vec<Option<Made>>,
    /// How many of the last build's views were made rather than kept.
    made: usize,
}

#[derive(Debug)]
struct Made {
    id: i64,
    /// The row it was made from (held for the same reason).
    row: Arc<ServiceSummary>,
    facts: Facts,
    /// A digest of the service's incidents: ids and times.
    incidents: u64,
    /// Its window counts in the history it was made from, kept here so
    /// that a view kept costs no lookup in the history.
    counts: Counts,
    /// Whether it shows per-location results (read here rather than from
    /// the view, which would be one more cache miss a service).
    located: bool,
    /// `None` for a service the page does not show.
    view: Option<Arc<ServiceView>>,
}

/// What a rebuild reads of every row, kept beside its view: a row not read
/// again since (the same `Arc`) is then not read at all. At 30,000
/// services each read of a row is a cache miss, and reading each row's
/// group, state, public flag and slug on every rebuild was most of the
/// layout's time (`perf annotate`, three replicas, issue 16).
#[derive(Debug, Clone, Copy)]
struct Facts {
    public: bool,
    state: crate::domain::State,
    /// Its place in the page's groups (0 for no group, g + 1 for the
    /// config's g-th, as in [`Views::groups`]); `None` for a group the
    /// config does not name, which the page does not show.
    group: Option<usize>,
    /// Its slug's [`slug_hash`], by which its incidents and its name (when
    /// an incident or a maintenance window names it) are found.
    slug: u64,
}

impl Facts {
    fn of(s: &ServiceSummary, groups: &[String]) -> Facts {
        Facts {
            public: s.public,
            state: s.state,
            group: match &s.group {
                None => Some(0),
                Some(g) => groups.iter().position(|n| n == g).map(|i| i + 1),
            },
            slug: slug_hash(&s.slug),
        }
    }
}

/// The same for the same slug in every build (a fixed seed).
fn slug_hash(slug: &str) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0x6265_6163_6f6e).hash_one(slug)
}

/// What [`Views::lay_out`] gives the snapshot besides the views.
struct Laid<'a> {
    groups: Vec<GroupView>,
    overall: Overall,
    /// The names of the public services the incidents and maintenance
    /// windows name, by slug.
    names: HashMap<&'a str, &'a str>,
}

/// The last build's entries, taken in order while they line up with this
/// build's services, and by id from the first that does not.
struct Before {
    at: Vec<Option<Made>>,
    by_id: Option<FastMap<i64, Made>>,
}

impl Before {
    /// The last build's entry for service `s`, this build's `k`-th: the
    /// row itself is read only when it is not the one the entry was made
    /// from.
    fn take(&mut self, k: usize, s: &Arc<ServiceSummary>) -> Option<Made> {
        if self.by_id.is_none() {
            match self.at.get_mut(k) {
                Some(slot)
                    if slot
                        .as_ref()
                        .is_some_and(|m| Arc::ptr_eq(&m.row, s) || m.id == s.id) =>
                {
                    return slot.take()
                }
                // A service came, went or moved: the rest by id.
                _ => {
                    self.by_id = Some(
                        self.at
                            .iter_mut()
                            .filter_map(Option::take)
                            .map(|m| (m.id, m))
                            .collect(),
                    )
                }
            }
        }
        self.by_id.as_mut().and_then(|m| m.remove(&s.id))
    }
}

impl Views {
    /// How many views the last build made rather than kept (for tests and
    /// the debug log).
    pub fn made(&self) -> usize {
        self.made
    }

    /// The page's groups in order (ungrouped services first), each with
    /// its public services (and each one's last check, when the caller
    /// keeps them, aligned with `rows`: see [`LastCheck`]) and their
    /// uptime counted together (every check weighs the same); empty groups
    /// left out. With them the overall state of the public services, and
    /// the names of those among `wanted`.
    fn lay_out<'a>(
        &mut self,
        (rows, checks): (&'a [Arc<ServiceSummary>], &[LastCheck]),
        history: &Arc<Histories>,
        recent_incidents: &[Incident],
        mut located: HashMap<i64, Vec<super::views::LocationView>>,
        (groups, wanted): (
            &[GroupConfig],
            &std::collections::HashSet<&str, foldhash::fast::RandomState>,
        ),
        now: DateTime<Utc>,
    ) -> Laid<'a> {
        let day = crate::store::rollup::Period::Day.bucket_start(now.timestamp_millis());
        let same_history = self
            .history
            .as_ref()
            .is_some_and(|h| Arc::ptr_eq(h, history));
        let same_day = self.day == day;
        self.history = Some(Arc::clone(history));
        self.day = day;
        let same_groups = self.groups.len() == groups.len()
            && self.groups.iter().zip(groups).all(|(a, b)| *a == b.name);
        if !same_groups {
            self.groups = groups.iter().map(|g| g.name.clone()).collect();
        }
        // Each service's incidents, found once rather than per day, by its
        // slug's hash (the slug compared only where the hash has some).
        let mut incidents_of: FastMap<u64, Vec<(&str, &Incident)>> = FastMap::default();
        for i in recent_incidents {
            for slug in &i.services {
                incidents_of
                    .entry(slug_hash(slug))
                    .or_default()
                    .push((slug.as_str(), i));
            }
        }
        let wanted_hashes: FastMap<u64, ()> = wanted.iter().map(|s| (slug_hash(s), ())).collect();
        // The first of the bars' 90 days (epoch ms), the same for every service.
        let window_start = day - 89 * crate::domain::time::DAY_MS;
        // This build's entries, in `rows`' order; the last build's not
        // taken (services gone from the page) are dropped with it.
        let mut before = Before {
            at: std::mem::take(&mut self.at),
            by_id: None,
        };
        let mut next: Vec<Option<Made>> = std::mem::take(&mut self.spare);
        next.clear();
        next.resize_with(rows.len(), || None);
        self.made = 0;
        // Per group: its services' views and their counts together.
        let mut placed: Vec<(Counts, Vec<Arc<ServiceView>>)> = (0..=groups.len())
            .map(|_| ([(0, 0); 4], Vec::new()))
            .collect();
        let mut states = Vec::with_capacity(rows.len());
        let mut names = HashMap::new();
        for (k, s) in rows.iter().enumerate() {
            let was = before.take(k, s);
            let facts = match &was {
                Some(m) if same_groups && Arc::ptr_eq(&m.row, s) => m.facts,
                _ => Facts::of(s, &self.groups),
            };
            // Not shown (private, or in a group the config does not name):
            // kept for its facts alone.
            let unshown = |was: Option<Made>| match was {
                Some(m) if Arc::ptr_eq(&m.row, s) => Made {
                    facts,
                    view: None,
                    ..m
                },
                _ => Made {
                    id: s.id,
                    row: Arc::clone(s),
                    facts,
                    incidents: 0,
                    counts: [(0, 0); 4],
                    located: false,
                    view: None,
                },
            };
            if !facts.public {
                next[k] = Some(unshown(was));
                continue;
            }
            states.push(facts.state);
            if !wanted_hashes.is_empty()
                && wanted_hashes.contains_key(&facts.slug)
                && wanted.contains(s.slug.as_str())
            {
                names.insert(s.slug.as_str(), s.name.as_str());
            }
            let Some(group) = facts.group else {
                next[k] = Some(unshown(was));
                continue;
            };
            let incidents: Vec<&Incident> = match incidents_of.get(&facts.slug) {
                None => Vec::new(),
                Some(named) => named
                    .iter()
                    .filter(|(slug, _)| *slug == s.slug)
                    .map(|(_, i)| *i)
                    .collect(),
            };
            let digest = digest(&incidents);
            let locations = if located.is_empty() {
                None
            } else {
                located.remove(&s.id)
            };
            let unchanged = was.as_ref().is_some_and(|m| {
                same_history
                    && same_day
                    && locations.is_none()
                    && !m.located
                    && m.incidents == digest
                    && Arc::ptr_eq(&m.row, s)
                    && m.view.is_some()
            });
            let m = match was {
                // Kept, with its facts as this build placed it (the
                // groups may have moved).
                Some(m) if unchanged => Made { facts, ..m },
                was => {
                    self.made += 1;
                    let history = history.services.get(&s.id);
                    let last_check = checks
                        .get(k)
                        .cloned()
                        .unwrap_or_else(|| LastCheck::new(s.last_checked_at));
                    let mut view = service_view(
                        s,
                        last_check,
                        window_start,
                        history,
                        &incidents,
                        now,
                        was.as_ref()
                            .and_then(|m| m.view.as_ref())
                            .map(|v| &v.past_days),
                    );
                    view.locations = locations.unwrap_or_default();
                    Made {
                        id: s.id,
                        row: Arc::clone(s),
                        facts,
                        incidents: digest,
                        counts: counts(history),
                        located: !view.locations.is_empty(),
                        view: Some(Arc::new(view)),
                    }
                }
            };
            let (total, services) = &mut placed[group];
            for (t, (ok, counted)) in total.iter_mut().zip(m.counts) {
                t.0 += ok;
                t.1 += counted;
            }
            if let Some(view) = &m.view {
                services.push(Arc::clone(view));
            }
            next[k] = Some(m);
        }
        let names_of = std::iter::once(None).chain(groups.iter().map(Some));
        let views = names_of
            .zip(placed)
            .filter(|(_, (_, services))| !services.is_empty())
            .map(|(name, (total, services))| GroupView {
                name: name.map(|g| g.name.clone()),
                description: name.and_then(|g| g.description.clone()),
                uptime: uptimes(&total),
                services,
            })
            .collect();
        self.at = next;
        // What was not taken (services gone from the page) is dropped here.
        before.at.clear();
        self.spare = before.at;
        Laid {
            groups: views,
            overall: Overall::of(&states),
            names,
        }
    }
}

/// A digest of a service's incidents as its view uses them: which, and
/// when each started and ended.
fn digest(incidents: &[&Incident]) -> u64 {
    use std::hash::{Hash, Hasher};
    if incidents.is_empty() {
        return 0;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for i in incidents {
        (i.id, i.started_at, i.resolved_at).hash(&mut h);
    }
    h.finish()
}

/// A service's window counts, all four from its history: the 24 h pair
/// moves with the history's read of this hour (see
/// `windows_max_age_ms`), like the longer windows; the state beside it is
/// always fresh. Summing 24 hourly rollups of every service on every
/// rebuild cost more than the rest of the rebuild at 10,000 services.
fn counts(history: Option<&History>) -> Counts {
    history.map_or([(0, 0); 4], |h| h.counts)
}

/// One public service as the page shows it; `window_start` is the first of
/// the bars' 90 days (epoch ms).
fn service_view(
    s: &ServiceSummary,
    last_check: LastCheck,
    window_start: i64,
    history: Option<&History>,
    incidents: &[&Incident],
    now: DateTime<Utc>,
    previous_days: Option<&Arc<[Day]>>,
) -> ServiceView {
    let (past_days, today) = days_of(history, incidents, now, previous_days);
    let incidents_90d = incidents
        .iter()
        .filter(|i| i.resolved_at.is_none_or(|end| end >= window_start))
        .count() as u32;
    ServiceView {
        past_days,
        today,
        incidents_90d,
        slug: s.slug.clone(),
        name: s.name.clone(),
        description: s.description.clone(),
        state: s.state,
        state_since: s.state_since.and_then(ms_to_datetime),
        last_check,
        created_at: ms_to_datetime(s.created_at).unwrap_or(now),
        p50_24h: history.and_then(|h| h.p50_24h),
        uptime: uptimes(&counts(history)),
        hours: history.map_or_else(|| Arc::from([]), |h| Arc::clone(&h.hours)),
        dependencies: s
            .dependencies
            .iter()
            .map(|d| (d.name.clone(), d.health))
            .collect(),
        locations: Vec::new(),
    }
}

/// A maintenance window as the public sees it: only public services named.
fn maintenance_view(
    m: Maintenance,
    public: &HashMap<&str, &str>,
    now: DateTime<Utc>,
) -> MaintenanceView {
    let time = |ms: i64| ms_to_datetime(ms).unwrap_or(now);
    let (services, service_slugs) = m
        .services
        .iter()
        .filter_map(|slug| {
            public
                .get(slug.as_str())
                .map(|name| (name.to_string(), slug.clone()))
        })
        .unzip();
    MaintenanceView {
        id: m.id,
        services,
        service_slugs,
        title: m.title,
        message: m.message,
        starts_at: time(m.starts_at),
        ends_at: time(m.ends_at),
        created_at: time(m.created_at),
        updated_at: time(m.updated_at),
    }
}

/// An incident as the public sees it: only public services are named.
pub(super) fn incident_view(
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

    /// A maintenance window read from the store, as the page shows it.
    pub fn maintenance_view(&self, m: Maintenance) -> MaintenanceView {
        let public: HashMap<&str, &str> = self
            .groups
            .iter()
            .flat_map(|g| g.services.iter())
            .map(|s| (s.slug.as_str(), s.name.as_str()))
            .collect();
        maintenance_view(m, &public, self.generated_at)
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
    pub(super) fn with_public_names<R>(
        &self,
        f: impl FnOnce(&dyn Fn(&String) -> Option<String>) -> R,
    ) -> R {
        let names: HashMap<&str, &str> = self
            .groups
            .iter()
            .flat_map(|g| g.services.iter())
            .map(|s| (s.slug.as_str(), s.name.as_str()))
            .collect();
        f(&|slug: &String| names.get(slug.as_str()).map(|n| n.to_string()))
    }
}
