//! Keeping the published snapshot fresh: rebuilt after the monitor writes
//! (debounced), after an admin write, after a write by another replica or
//! the CLI (the store's change counter) and on a timer.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::build::{Inputs, Views};
use super::history::Histories;
use super::views::{LastCheck, Snapshot};
use crate::clock::Clock;
use crate::config::GroupConfig;
use crate::store::{ServiceSummary, Store, StoreError};

/// Keeps the published snapshot fresh.
pub struct Refresher {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    /// The page's title and groups, which a config reload replaces.
    pub layout: SharedLayout,
    pub publish: watch::Sender<Arc<Snapshot>>,
    /// Admin writes (incidents, maintenance) ask for a rebuild here.
    pub changed: Arc<tokio::sync::Notify>,
    /// The last read of the services' histories and when (epoch ms).
    pub history: Mutex<Option<(i64, Arc<Histories>)>>,
    /// The public services (ids, sorted) when the history was last read in
    /// full: only theirs is read, so a service made public since needs a
    /// full read again.
    pub shown: Mutex<Vec<i64>>,
    /// The shown services' rows as last read, with their revisions.
    pub services: parking_lot::Mutex<ShownRows>,
    /// The services' views as the last rebuild made them.
    pub views: parking_lot::Mutex<Views>,
    /// The open and recent incidents as last loaded.
    pub incidents: super::incidents::KeptIncidents,
    /// A read of the history going on beside the rebuilds (see
    /// [`Refresher::refresh`]).
    full: parking_lot::Mutex<FullRead>,
    /// How long the last rebuild's layout took on its background thread
    /// (µs): the CPU a rebuild costs, without its waits for the store.
    laid_out_us: std::sync::atomic::AtomicU64,
}

/// The history's reads, when a rebuild must not wait for them.
#[derive(Default)]
struct FullRead {
    /// The read going on: a full one, or this hour's and today's.
    running: Option<Running>,
    /// The public services changed since the last full read: the next
    /// rebuild starts one.
    wanted: bool,
}

/// A read of the history going on.
struct Running {
    /// When it began (epoch ms).
    started: i64,
    /// The public services a full read reads (ids, sorted); `None` for an
    /// update of this hour and today, or the read at an hour's turn.
    public: Option<Vec<i64>>,
    task: tokio::task::JoinHandle<Result<Histories, StoreError>>,
}

impl Drop for Refresher {
    /// A read still going on is of no use to anyone once its refresher is
    /// gone (stopped, or restarted by its supervisor).
    fn drop(&mut self) {
        if let Some(running) = self.full.get_mut().running.take() {
            running.task.abort();
        }
    }
}

/// The shown (public, active) services as last read, in page order, each
/// with the revision it was read at: a rebuild reads every revision and
/// last check (one packed value) and then only the rows whose revision
/// moved: those a state change, the config or a probe's dependencies or
/// certificate wrote, not every probed one. That walk over every version
/// is done at most every [`WALK_EVERY`]; a rebuild sooner (an urgent
/// write: a state change, an incident) reads only the rows written since
/// the read before ([`crate::store::Store::page_changes`]).
///
/// Kept as a list in page order with an index by id, so a rebuild where no
/// row moved is one lookup a service and a walk down the list: no sort, no
/// map rebuilt, no row's memory touched but those a probe moved (at 30,000
/// services, each touch is a cache miss; see docs/performance.md).
#[derive(Debug, Default)]
pub struct ShownRows {
    /// In page order: (position, id).
    list: Vec<Shown>,
    /// Where each id is in `list`.
    index: super::history::FastMap<i64, usize>,
    /// When every row was last read whole.
    full_at: Option<std::time::Instant>,
    /// When the versions were last walked (epoch ms, by the refresher's
    /// clock).
    walked_at: Option<i64>,
    /// The highest revision the read before the last saw, and the last's:
    /// a read of the rows written since asks from the first (see
    /// [`crate::store::Store::page_changes`]).
    marks: Option<(i64, i64)>,
    /// The last rebuild read only the rows written since: a walk is owed
    /// at `walked_at` + [`WALK_EVERY`] even if nothing else asks for a
    /// rebuild by then (see [`Refresher::walk_owed_in`]).
    walk_owed: bool,
    /// Rebuilds so far: each row notes the last that saw its id.
    pass: u64,
    /// `list`'s rows and last checks as the last rebuild was handed them,
    /// changed in place where rows were read again: each handing over of
    /// 30,000 new `Arc`s touched every row twice (made, then dropped) on
    /// every rebuild. See [`ShownRows::hand_over`].
    given: Option<Given>,
}

/// What a rebuild is handed: the shown rows in page order, and each one's
/// last check.
type Given = (Arc<Vec<Arc<ServiceSummary>>>, Arc<Vec<LastCheck>>);

#[derive(Debug)]
struct Shown {
    id: i64,
    position: i64,
    revision: i64,
    last_checked_at: Option<i64>,
    row: Arc<ServiceSummary>,
    /// Its last check as the views show it, moved on in place (see
    /// [`LastCheck`]): a probe makes no new row, nor a new view.
    /// `last_checked_at` above is the same time, kept in the list itself
    /// so the walk over every version compares without following a
    /// pointer per service.
    last_check: LastCheck,
    /// The last pass whose versions named it.
    seen: u64,
}

impl Shown {
    fn of(revision: i64, row: ServiceSummary, pass: u64) -> Shown {
        Shown {
            id: row.id,
            position: row.position,
            revision,
            last_checked_at: row.last_checked_at,
            last_check: LastCheck::new(row.last_checked_at),
            row: Arc::new(row),
            seen: pass,
        }
    }
}

impl ShownRows {
    /// The rows and last checks for a rebuild: the last ones with the
    /// entries at `replaced` changed, unless the list was `rebuilt` (a row
    /// came, went or moved) or the last rebuild still holds them.
    fn hand_over(&mut self, replaced: &[usize], rebuilt: bool) -> Given {
        let ShownRows { list, given, .. } = self;
        let in_place = match given.as_mut() {
            Some((rows, checks)) if !rebuilt && rows.len() == list.len() => {
                match (Arc::get_mut(rows), Arc::get_mut(checks)) {
                    (Some(rows), Some(checks)) if checks.len() == list.len() => {
                        for &k in replaced {
                            if let (Some(r), Some(row), Some(check)) =
                                (list.get(k), rows.get_mut(k), checks.get_mut(k))
                            {
                                *row = Arc::clone(&r.row);
                                *check = r.last_check.clone();
                            }
                        }
                        true
                    }
                    _ => false,
                }
            }
            _ => false,
        };
        if !in_place {
            *given = Some((
                Arc::new(list.iter().map(|r| Arc::clone(&r.row)).collect()),
                Arc::new(list.iter().map(|r| r.last_check.clone()).collect()),
            ));
        }
        match given {
            Some((rows, checks)) => (Arc::clone(rows), Arc::clone(checks)),
            None => Default::default(),
        }
    }

    /// Notes a read that saw revisions up to `newest`: the next read of
    /// the rows written since asks from the last read's highest (one
    /// read's overlap; see [`crate::store::Store::page_changes`]).
    fn mark(&mut self, newest: i64) {
        self.marks = Some(match self.marks {
            Some((_, last)) => (last, last.max(newest)),
            None => (newest, newest),
        });
    }

    /// Puts `list` in page order and indexes it again.
    fn reorder(&mut self) {
        self.list.sort_unstable_by_key(|r| (r.position, r.id));
        self.index.clear();
        self.index
            .extend(self.list.iter().enumerate().map(|(k, r)| (r.id, k)));
    }
}

/// A rebuild walks the versions of every shown row (revisions and last
/// checks) when the last walk is this old; a rebuild sooner reads only
/// the rows written since (through the index on `revision`). So a probe's
/// last check moves on the page every few seconds, and a row whose write
/// slipped under the read's mark (a transaction held open across two
/// reads; a replica of an older release) is read within about twice this
/// time: a rebuild that read only the rows written since owes a walk at
/// this age, with or without another write. With three replicas at
/// 30,000 services, an urgent rebuild every second on each walked all
/// 30,000 versions each time (docs/performance.md, issue 16).
pub const WALK_EVERY: Duration = ROUTINE_GAP;

/// Every row is read whole at least this often anyway: a replica of an
/// older release (a rolling upgrade) writes rows without moving their
/// revision, and this bounds how long such a write goes unseen.
pub const FULL_READ_EVERY: Duration = Duration::from_secs(300);

/// What of the config the snapshot is laid out by.
#[derive(Debug, Clone)]
pub struct Layout {
    pub title: String,
    pub groups: Vec<GroupConfig>,
}

pub type SharedLayout = Arc<parking_lot::RwLock<Arc<Layout>>>;

/// How long a read of the history (this hour's and today's rollups, and
/// with them the 24 h uptime and chart, today's bar and the 7/30/90-day
/// windows) is reused, at least. They move by a few checks in this time;
/// the states are always fresh. See [`windows_max_age_ms`].
pub(super) const WINDOWS_MAX_AGE_MS: i64 = 30_000;

/// Past 15,000 shown services the read above is reused 2 ms a service
/// (60 s at 30,000, 200 s at 100,000). Each read costs every replica about
/// 5 µs of CPU a service (the rows decoded, each service's history and
/// view made again), the largest of what every replica repeats whatever
/// its share of the probes: at 30,000 services every 30 s, 22 % of a
/// replica's workers' time besides a full layout (docs/performance.md,
/// issue 16). This bounds it to about a quarter of a percent of a core per
/// replica; a 24 h uptime moves by less than a tenth of a percent a
/// minute. An hour's turn is not held back by it (see `refresh`).
pub(super) const WINDOWS_MS_PER_SERVICE: i64 = 2;

/// How long a read of the history is reused with `services` shown.
pub(super) fn windows_max_age_ms(services: usize) -> i64 {
    let services = i64::try_from(services).unwrap_or(i64::MAX);
    WINDOWS_MAX_AGE_MS.max(services.saturating_mul(WINDOWS_MS_PER_SERVICE))
}

/// The wait after a rebuild, in multiples of the rebuild's own time.
pub const REFRESH_COST_SHARE: u32 = 20;

/// The shortest wait after a rebuild while only routine writes are
/// waiting: probes' last-check times and the 24 hours' uptime they move,
/// which no reader needs within a second. The page tells caches it may be
/// this old anyway (`Cache-Control: max-age`, never under 5 s). Rebuilding
/// every second for them was, with three replicas at 30,000 services, each
/// replica laying out every service every second whatever its share of
/// the probes (docs/performance.md). An urgent write (a state change, an
/// incident) still ends the wait, as below.
pub const ROUTINE_GAP: Duration = Duration::from_secs(5);

/// The shortest wait after a rebuild when an urgent write (see
/// [`crate::store::Changes`]) is waiting, in multiples of the time its
/// layout took: the CPU it cost, not its waits for a busy store, which
/// would stretch the wait past the page's bound (a rebuild of 1.2 s, most
/// of it waiting for PostgreSQL under three replicas' history reads, held
/// an incident off one replica's page for 6 s).
pub const URGENT_COST_SHARE: u32 = 5;

impl Refresher {
    /// A refresher that has read nothing yet: the first rebuild reads the
    /// history and every shown row.
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        layout: SharedLayout,
        publish: watch::Sender<Arc<Snapshot>>,
        changed: Arc<tokio::sync::Notify>,
    ) -> Refresher {
        Refresher {
            store,
            clock,
            layout,
            publish,
            changed,
            history: Mutex::new(None),
            shown: Default::default(),
            services: Default::default(),
            views: Default::default(),
            incidents: Default::default(),
            full: Default::default(),
            laid_out_us: Default::default(),
        }
    }

    /// Rebuilds after each write the monitor reports (at most every
    /// [`ROUTINE_GAP`], or `min_gap` for an urgent one), after a write
    /// anywhere else (see below) and at least every `max_age`, until `stop`
    /// resolves.
    ///
    /// Writes by other replicas and by the CLI are seen through the
    /// store's change counter, read every `min_gap`: one primary-key read,
    /// which works through any connection pooler (LISTEN/NOTIFY needs a
    /// session of its own, which a transaction-pooling PgBouncer does not
    /// keep), costs nothing when nothing changed, and cannot miss a change
    /// the way a notification sent while the connection was down can.
    ///
    /// A rebuild reads only the shown services whose revision moved
    /// (see [`ShownRows`]) but lays out every one, so its cost still grows
    /// with the fleet, slowly: the gap after one is at least
    /// [`ROUTINE_GAP`], and [`REFRESH_COST_SHARE`] times what it took,
    /// which bounds the snapshot to a twentieth of a core however many
    /// services there are, except that an urgent write shortens it (see
    /// [`URGENT_COST_SHARE`]).
    pub async fn run(
        self,
        mut writes: watch::Receiver<u64>,
        min_gap: Duration,
        max_age: Duration,
        stop: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        let mut monitor_gone = false;
        // Just started: the first snapshot at once (then, should the store
        // not answer, on every poll until it does).
        // A stop does not wait for a read (it only reads: dropping it is
        // safe), which at 100,000 services takes tens of seconds.
        if self.is_loading() {
            tokio::select! {
                _ = self.refresh() => {}
                _ = stop.as_mut() => return,
            }
        }
        let mut seen = self.change_counter().await;
        let mut poll = tokio::time::interval(min_gap);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut due = tokio::time::Instant::now() + max_age;
        let mut now_please = false;
        loop {
            let rebuild = now_please
                || tokio::select! {
                    changed = writes.changed(), if !monitor_gone => {
                        // The monitor is gone (or not running): poll only.
                        monitor_gone = changed.is_err();
                        !monitor_gone
                    }
                    _ = self.changed.notified() => true,
                    _ = tokio::time::sleep_until(due) => true,
                    _ = poll.tick() => {
                        if self.is_loading() {
                            true
                        } else {
                            let now = self.change_counter().await;
                            now.is_some() && now != seen
                        }
                    }
                    _ = stop.as_mut() => return,
                };
            now_please = false;
            if !rebuild {
                continue;
            }
            // Read before the rebuild: a write after it moves the counter
            // again, and the next poll rebuilds once more.
            let before = seen;
            seen = self.change_counter().await.or(seen);
            let started = std::time::Instant::now();
            let published = tokio::select! {
                published = self.refresh() => published,
                _ = stop.as_mut() => return,
            };
            let took = started.elapsed();
            let laid_out =
                Duration::from_micros(self.laid_out_us.load(std::sync::atomic::Ordering::Relaxed));
            // A rebuild that published nothing (the store did not answer)
            // is tried again after `min_gap`, not the routine gap: the
            // writes it was for, urgent ones too, are still to be shown,
            // and the counters are taken as unseen for the next poll.
            let routine = if published {
                ROUTINE_GAP
            } else {
                seen = before;
                min_gap
            };
            let gap = min_gap
                .max(took * REFRESH_COST_SHARE)
                .max(routine)
                .min(max_age);
            tracing::debug!(
                ms = took.as_millis() as u64,
                laid_out_ms = laid_out.as_millis() as u64,
                gap_ms = gap.as_millis() as u64,
                "snapshot rebuilt"
            );
            // The gap rations rebuilds after routine writes; an urgent one
            // (an admin write here, or one the counters show: an incident,
            // maintenance, a state change, by any replica or the CLI) ends
            // it sooner, after `min_gap` or [`URGENT_COST_SHARE`] times the
            // rebuild's layout, so the page follows such a write within
            // about two `min_gap`s up to a large fleet, and a mass outage
            // (urgent writes every second) still cannot take more than a
            // sixth of a core for the layout.
            let end = tokio::time::Instant::now() + gap;
            let urgent_gap = min_gap.max(laid_out * URGENT_COST_SHARE).min(gap);
            tokio::select! {
                _ = tokio::time::sleep(urgent_gap) => {}
                _ = stop.as_mut() => return,
            }
            // An urgent write by another replica during the rest is seen
            // now, not a poll later: at 30,000 services (a rest of 5 × a
            // rebuild of 300 ms) waiting for the next poll took the page
            // past 2 s behind a write.
            if tokio::time::Instant::now() < end {
                let now = self.change_counter().await;
                now_please = matches!((now, seen), (Some(n), Some(s)) if n.urgent != s.urgent);
            }
            while tokio::time::Instant::now() < end && !now_please {
                tokio::select! {
                    _ = tokio::time::sleep_until(end) => {}
                    _ = self.changed.notified() => now_please = true,
                    _ = tokio::time::sleep(min_gap) => {
                        let now = self.change_counter().await;
                        now_please = matches!((now, seen), (Some(n), Some(s)) if n.urgent != s.urgent);
                    }
                    _ = stop.as_mut() => return,
                }
            }
            due = tokio::time::Instant::now() + max_age;
            if let Some(owed) = self.walk_owed_in() {
                due = due.min(tokio::time::Instant::now() + owed);
            }
        }
    }

    /// Notes which services were public at a full read of the history;
    /// when that set has changed since (a config reload made a service
    /// public), asks for a full read for the new set, which a rebuild
    /// starts (see [`Refresher::refresh`]).
    fn follow_public_services(&self, inputs: &Inputs, full_read: bool) {
        let mut public: Vec<i64> = inputs
            .summaries
            .iter()
            .filter(|s| s.public)
            .map(|s| s.id)
            .collect();
        public.sort_unstable();
        let Ok(mut shown) = self.shown.lock() else {
            return;
        };
        if full_read {
            *shown = public;
        } else if *shown != public {
            *shown = public;
            self.full.lock().wanted = true;
            self.changed.notify_one();
        }
    }

    /// True while the published snapshot is start-up's placeholder.
    fn is_loading(&self) -> bool {
        self.publish.borrow().loading
    }

    /// The store's change counters, or `None` when they do not answer
    /// within a second (the page then follows on the timer).
    async fn change_counter(&self) -> Option<crate::store::Changes> {
        match tokio::time::timeout(Duration::from_secs(1), self.store.change_counter()).await {
            Ok(Ok(n)) => Some(n),
            _ => None,
        }
    }

    /// The shown services in page order: read whole when none were read
    /// yet, every [`FULL_READ_EVERY`], or when most have moved; otherwise
    /// only the rows whose revision moved since they were last read. A row
    /// written between the two reads is read at its newer revision and
    /// read once more next time: never missed, at worst read twice. Each
    /// service's last check comes with the revisions (a probe does not
    /// move its row's revision), so it is always the newest. Also says
    /// whether the set of services may have changed (a full read, a row
    /// new to the list, or one gone).
    async fn read_services(
        &self,
    ) -> Result<(Arc<Vec<Arc<ServiceSummary>>>, Arc<Vec<LastCheck>>, bool), StoreError> {
        let now_ms = self.clock.now().timestamp_millis();
        let since = {
            let shown = self.services.lock();
            match (shown.marks, shown.walked_at) {
                (Some((since, _)), Some(at))
                    if (0..WALK_EVERY.as_millis() as i64).contains(&(now_ms - at)) =>
                {
                    Some(since)
                }
                _ => None,
            }
        };
        if let Some(since) = since {
            return self.read_changes(since).await;
        }
        let versions = self.store.page_versions().await?;
        let newest = versions.iter().map(|(_, v)| v.revision).max().unwrap_or(0);
        let (changed, full) = {
            let mut shown = self.services.lock();
            shown.pass += 1;
            let pass = shown.pass;
            let ShownRows { list, index, .. } = &mut *shown;
            let mut changed: Vec<i64> = Vec::new();
            for (id, v) in &versions {
                let Some(r) = index.get(id).and_then(|&k| list.get_mut(k)) else {
                    changed.push(*id);
                    continue;
                };
                r.seen = pass;
                if r.revision != v.revision {
                    changed.push(*id);
                } else if v.last_checked_at > r.last_checked_at {
                    // A probe since: moved on in place, in the view the
                    // last rebuild made too; the row and the view stay.
                    r.last_checked_at = v.last_checked_at;
                    r.last_check.advance(v.last_checked_at);
                }
            }
            let stale = shown.full_at.is_none_or(|t| t.elapsed() >= FULL_READ_EVERY);
            let full = stale || changed.len() * 2 > versions.len();
            (changed, full)
        };
        let read = if full {
            self.store.page_summaries(None).await?
        } else if changed.is_empty() {
            Vec::new()
        } else {
            self.store.page_summaries(Some(&changed)).await?
        };
        let mut shown = self.services.lock();
        let pass = shown.pass;
        // The first walk leaves the next rebuild a walk too: a write that
        // took its revision before it and commits after it has no read
        // before it to overlap with.
        shown.walked_at = shown.marks.is_some().then_some(now_ms);
        shown.walk_owed = false;
        shown.mark(newest);
        // The set of shown services changed, or may have: a full read, a
        // row new to the list, or rows gone from it. A row read again in
        // place (a state change) leaves the set as it was, and comparing
        // the whole set (30,000 ids sorted) on every such rebuild was a
        // twentieth of the snapshot's cost with three replicas.
        let mut moved = full;
        let mut replaced = Vec::new();
        let mut rebuilt = full;
        if full {
            shown.list = read
                .into_iter()
                .map(|(revision, row)| Shown::of(revision, row, pass))
                .collect();
            shown.full_at = Some(std::time::Instant::now());
            shown.reorder();
        } else {
            let mut reorder = false;
            for (revision, row) in read {
                let was = shown.index.get(&row.id).copied();
                match was.and_then(|k| shown.list.get_mut(k).map(|r| (k, r))) {
                    Some((k, r)) => {
                        replaced.push(k);
                        reorder |= r.position != row.position;
                        // A last check of its own: the view is made again
                        // from the new row, and the one the page shows
                        // now (with the state before) keeps the check it
                        // had.
                        *r = Shown::of(revision, row, pass);
                    }
                    None => {
                        reorder = true;
                        moved = true;
                        shown.list.push(Shown::of(revision, row, pass));
                    }
                }
            }
            // Gone, deactivated or made private since: named by no version.
            let before = shown.list.len();
            shown.list.retain(|r| r.seen == pass);
            moved |= shown.list.len() != before;
            if reorder || shown.list.len() != before {
                shown.reorder();
                rebuilt = true;
            }
        }
        let (out, checks) = shown.hand_over(&replaced, rebuilt);
        Ok((out, checks, moved))
    }

    /// The rows written since revision `since` (see [`ShownRows`]), in
    /// place of the rows as last read: a service left the page, came onto
    /// it or moved; what the read before already had is kept as it is.
    /// Last checks move at the next walk of the versions.
    async fn read_changes(
        &self,
        since: i64,
    ) -> Result<(Arc<Vec<Arc<ServiceSummary>>>, Arc<Vec<LastCheck>>, bool), StoreError> {
        let read = self.store.page_changes(since).await?;
        let mut shown = self.services.lock();
        let pass = shown.pass;
        shown.walk_owed = true;
        let newest = read.iter().map(|c| c.revision).max().unwrap_or(since);
        shown.mark(newest);
        let (mut moved, mut reorder) = (false, false);
        let mut gone: Vec<i64> = Vec::new();
        let mut replaced = Vec::new();
        for change in read {
            let id = change.summary.id;
            let at = shown.index.get(&id).copied();
            match (at.and_then(|k| shown.list.get_mut(k)), change.shown) {
                // Read by the read before too (the overlap): as it was.
                (Some(r), true) if r.revision == change.revision => {}
                (Some(r), true) => {
                    replaced.extend(at);
                    reorder |= r.position != change.summary.position;
                    // A last check of its own, as in `read_services`.
                    *r = Shown::of(change.revision, change.summary, pass);
                }
                (Some(_), false) => gone.push(id),
                (None, true) => {
                    reorder = true;
                    moved = true;
                    shown
                        .list
                        .push(Shown::of(change.revision, change.summary, pass));
                }
                (None, false) => {}
            }
        }
        if !gone.is_empty() {
            gone.sort_unstable();
            shown.list.retain(|r| gone.binary_search(&r.id).is_err());
            moved = true;
            reorder = true;
        }
        if reorder {
            shown.reorder();
        }
        let (out, checks) = shown.hand_over(&replaced, reorder);
        Ok((out, checks, moved))
    }

    /// How long until the walk the last rebuild owes (it read only the rows
    /// written since; see [`ShownRows`]) is due, if it owes one: a write
    /// that slipped under its read (a transaction held open across two
    /// reads, an older replica's) is then shown within about two
    /// [`WALK_EVERY`]s even if nothing else is written.
    fn walk_owed_in(&self) -> Option<Duration> {
        let shown = self.services.lock();
        let at = shown.walked_at.filter(|_| shown.walk_owed)?;
        let left = at + WALK_EVERY.as_millis() as i64 - self.clock.now().timestamp_millis();
        Some(Duration::from_millis(left.max(0) as u64))
    }

    /// Starts a full read of the history beside the rebuilds, unless a read
    /// is going on. When it ends it asks for a rebuild, which takes it.
    fn start_full_read(&self, now_ms: i64) {
        let mut full = self.full.lock();
        if full.running.is_some() {
            return;
        }
        full.wanted = false;
        // The public services as the last rebuild read them: when the read
        // is taken, a service made public since is seen as new, and read
        // in full again (see `follow_public_services`).
        let mut public: Vec<i64> = self.services.lock().list.iter().map(|r| r.id).collect();
        public.sort_unstable();
        let (store, changed) = (self.store.clone(), self.changed.clone());
        let task = tokio::spawn(async move {
            let read = Histories::read(&store, now_ms).await;
            changed.notify_one();
            read
        });
        tracing::debug!(
            services = public.len(),
            "reading the services' history in full, beside the rebuilds"
        );
        full.running = Some(Running {
            started: now_ms,
            public: Some(public),
            task,
        });
    }

    /// Starts reading this hour's and today's rollups again beside the
    /// rebuilds, unless a read is going on: at 30,000 services that read
    /// took a rebuild from about 0.1 s to more than 1 s every 30 s, and an
    /// incident written just before waited behind it past its 2 s bound.
    /// The next rebuild after it ends takes it; nothing is urgent about
    /// uptimes that moved by a few checks.
    ///
    /// At a new hour of the same UTC day (`turn`), the 24 hours and
    /// yesterday are read as well (see [`Histories::turn_hour`]).
    fn start_update(&self, history: Arc<Histories>, now_ms: i64, turn: bool) {
        let mut full = self.full.lock();
        if full.running.is_some() {
            return;
        }
        let (store, changed) = (self.store.clone(), self.changed.clone());
        let task = tokio::spawn(async move {
            if turn {
                let read = history.turn_hour(&store, now_ms).await;
                changed.notify_one();
                read
            } else {
                history.update(&store, now_ms).await
            }
        });
        full.running = Some(Running {
            started: now_ms,
            public: None,
            task,
        });
    }

    /// The read started by [`Refresher::start_full_read`] or
    /// [`Refresher::start_update`], if it has ended: made the history
    /// (with the public services a full read read noted). True when a full
    /// read was.
    async fn take_full_read(&self) -> bool {
        let Running {
            started,
            public,
            task,
        } = {
            let mut full = self.full.lock();
            if !full.running.as_ref().is_some_and(|r| r.task.is_finished()) {
                return false;
            }
            let Some(running) = full.running.take() else {
                return false;
            };
            running
        };
        match task.await {
            Ok(Ok(h)) => {
                if let Ok(mut slot) = self.history.lock() {
                    *slot = Some((started, Arc::new(h)));
                }
                let Some(public) = public else {
                    return false;
                };
                if let Ok(mut shown) = self.shown.lock() {
                    *shown = public;
                }
                true
            }
            // The last read serves on; the next rebuild tries again. A
            // full read that failed is wanted still: the reads at an
            // hour's turn would not read a newly public service's days.
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "reading the services' history failed");
                self.want_full_read_again(public.is_some());
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the services' history ended early");
                self.want_full_read_again(public.is_some());
                false
            }
        }
    }

    fn want_full_read_again(&self, was_full: bool) {
        if was_full {
            self.full.lock().wanted = true;
        }
    }

    /// Rebuilds the snapshot once and publishes it (true); a failed read
    /// keeps the last one (false).
    ///
    /// The history is reused for [`windows_max_age_ms`]; then this hour's
    /// and today's rollups are read again (about a second at 30,000
    /// services on a busy machine). A new hour moves the 24 hours on (they
    /// are read again, with yesterday: [`Histories::turn_hour`]); a new day
    /// or a service made public needs a full read, which at 30,000
    /// services with 90 days takes seconds to tens of seconds. Both
    /// run beside the rebuilds, which go on with the last read meanwhile
    /// (an hour behind at most, and uptimes that move by a few checks), so
    /// the page follows an incident or a state change within its bound
    /// whenever the history is read. Only the first read (or one of a
    /// store with no history yet) is waited for: there is nothing to show
    /// before it.
    pub async fn refresh(&self) -> bool {
        let now = self.clock.now();
        let now_ms = now.timestamp_millis();
        use crate::store::rollup::Period;
        let this_hour = Period::Hour.bucket_start(now_ms);
        // A read beside the rebuilds that has ended is the history from now
        // on; the public services it read were noted when it began.
        let took_full_read = self.take_full_read().await;
        let mut full_read = false;
        let cached = self.history.lock().ok().and_then(|h| h.clone());
        let wanted = self.full.lock().wanted;
        let history = match cached {
            Some((read_at, h))
                if !h.services.is_empty()
                    && !wanted
                    && h.hour == this_hour
                    && (0..windows_max_age_ms(h.services.len())).contains(&(now_ms - read_at)) =>
            {
                Ok((h, false))
            }
            // A new install's first results should show at once, and
            // reading next to nothing is quick.
            Some((_, h)) if h.hour == this_hour && !wanted && h.services.is_empty() => h
                .update(&self.store, now_ms)
                .await
                .map(|h| (Arc::new(h), true)),
            Some((_, h)) if h.hour == this_hour && !wanted => {
                self.start_update(Arc::clone(&h), now_ms, false);
                Ok((h, false))
            }
            // A new hour of the same day: the days before yesterday stay.
            Some((_, h))
                if !h.services.is_empty()
                    && !wanted
                    && h.hour < this_hour
                    && Period::Day.bucket_start(h.hour) == Period::Day.bucket_start(now_ms) =>
            {
                self.start_update(Arc::clone(&h), now_ms, true);
                Ok((h, false))
            }
            // An empty read (a new install) is not reused: the first
            // results should show at once, and reading nothing is quick.
            Some((_, h)) if !h.services.is_empty() => {
                self.start_full_read(now_ms);
                Ok((h, false))
            }
            _ => {
                full_read = true;
                self.full.lock().wanted = false;
                Histories::read(&self.store, now_ms)
                    .await
                    .map(|h| (Arc::new(h), true))
            }
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
                return false;
            }
        };
        let (summaries, last_checks, moved) = match self.read_services().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "reading the services failed");
                return false;
            }
        };
        match Inputs::read_keeping(
            &self.store,
            now_ms,
            summaries,
            last_checks,
            history,
            &self.incidents,
        )
        .await
        {
            Ok(inputs) => {
                // The public services are the rows read: unless one came
                // or went, they are the same as last time (or a full read
                // of the history just ended, which noted those it read).
                if moved || full_read || took_full_read {
                    self.follow_public_services(&inputs, full_read);
                }
                let layout = self.layout.read().clone();
                let (title, groups) = (layout.title.clone(), layout.groups.clone());
                let mut views = std::mem::take(&mut *self.views.lock());
                // Laying out the services is CPU work (hundreds of ms at
                // 10,000 services when the history moves): not on a
                // worker, on a background thread below their priority.
                let built = crate::background::run(move || {
                    let started = std::time::Instant::now();
                    let snapshot =
                        Snapshot::from_inputs_reusing(inputs, &title, &groups, now, &mut views);
                    (snapshot, views, started.elapsed())
                })
                .await;
                match built {
                    Ok((snapshot, views, took)) => {
                        self.laid_out_us.store(
                            took.as_micros().try_into().unwrap_or(u64::MAX),
                            std::sync::atomic::Ordering::Relaxed,
                        );
                        tracing::debug!(
                            made = views.made(),
                            incidents_loaded = self.incidents.loaded(),
                            "service views laid out"
                        );
                        *self.views.lock() = views;
                        // The last snapshot is dropped here, its views
                        // mostly shared with this one.
                        self.publish.send_replace(Arc::new(snapshot));
                        true
                    }
                    // A panic in the build ends the refresher, with the
                    // build's message, as it did when the build ran on this
                    // task: its supervisor sees it and restarts it.
                    Err(e) => panic!("building the status snapshot: {e}"),
                }
            }
            // The page keeps serving the last good snapshot.
            Err(e) => {
                tracing::warn!(error = %e, "refreshing the status snapshot failed");
                false
            }
        }
    }
}
