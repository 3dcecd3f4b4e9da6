//! History as the page shows it, kept compact in memory: hourly points
//! (16 bytes), days (24 bytes), the uptime windows' counts; read in full
//! at start-up and at a day's turn, the 24 hours, yesterday and today at an
//! hour's turn, and only this hour and today in between.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::clock::ms_to_datetime;
use crate::domain::State;
use crate::store::rollup::Rollup;
use crate::store::{Store, StoreError};

/// A map by id or slug of the snapshot's own: keys from beacon's store,
/// not from a client, so a fast hash rather than SipHash's guard against
/// chosen keys (SipHash was 1.4 % of three replicas' samples at 30,000
/// services, beside the layout's own 7.8 %).
pub(super) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The page's uptime windows, in this order.
pub const WINDOWS: [&str; 4] = ["24 h", "7 d", "30 d", "90 d"];

/// Uptime over [`WINDOWS`], 0–100; `None` where the window holds no
/// counted check ("no data", never "up").
pub type Uptimes = [Option<f64>; 4];

/// Checks counted toward uptime over each window: (up or degraded, counted).
/// Maintenance is in neither.
pub type Counts = [(i64, i64); 4];

pub(super) fn uptimes(counts: &Counts) -> Uptimes {
    counts.map(|(ok, counted)| (counted > 0).then(|| 100.0 * ok as f64 / counted as f64))
}

/// Response time over one hour (from the rollup's histogram). 16 bytes:
/// a snapshot holds up to 24 of them per service.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub(super) at_ms: i64,
    pub(super) p50: u32,
    pub(super) p95: u32,
}

/// Stands for "no figure" in the compact fields of [`Point`] and [`Day`].
pub(super) const NONE: u32 = u32::MAX;

pub(super) fn compact(ms: Option<i64>) -> u32 {
    ms.map_or(NONE, |ms| ms.clamp(0, i64::from(NONE - 1)) as u32)
}

pub(super) fn expand(v: u32) -> Option<u32> {
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
    pub(super) ok: u32,
    pub(super) counted: u32,
    /// Response time (ms), [`NONE`] without latency data.
    pub(super) p50: u32,
    pub(super) p95: u32,
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
    pub(super) past_hours: Rollup,
    pub(super) past_counts: Counts,
}

impl History {
    /// This history with this hour's and today's rollups (as now read)
    /// in place of those it had.
    pub(super) fn with_current(
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
    /// The start of the hour their 24 hours were last read in (epoch ms):
    /// by a full read, or at an hour's turn ([`Histories::turn_hour`]).
    pub hour: i64,
    /// By service id (the fast hasher: the ids are the store's own).
    pub services: FastMap<i64, History>,
}

/// One service's 24 hours as they stream from the store: what a full read
/// and the read at an hour's turn both make of the hourly rollups.
#[derive(Default)]
struct Hours {
    /// The hours before this one, merged, and their (up or degraded,
    /// counted).
    past: Rollup,
    counts: (i64, i64),
    /// Response time of each hour before this one that has latency data.
    points: Vec<Point>,
    /// This hour so far.
    current: Option<Rollup>,
}

impl Hours {
    fn add(&mut self, this_hour: i64, start: i64, r: Rollup) {
        if start >= this_hour {
            self.current = Some(r);
            return;
        }
        self.past.merge(&r);
        self.counts.0 += r.up + r.degraded;
        self.counts.1 += r.counted();
        if r.latency_count > 0 {
            self.points.push(Point::new(
                start,
                r.percentile_ms(0.5),
                r.percentile_ms(0.95),
            ));
        }
    }

    /// Puts the hours before this one into `past`; returns this hour.
    fn into_past(mut self, past: &mut History) -> Option<Rollup> {
        self.points.sort_unstable_by_key(|p| p.at_ms);
        past.hours = Arc::from(self.points);
        past.past_hours = self.past;
        past.past_counts[0] = self.counts;
        self.current
    }
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
            hours: Hours,
            days: Vec<Day>,
            today: Option<Rollup>,
        }
        let this_hour = Period::Hour.bucket_start(now);
        let today = Period::Day.bucket_start(now);
        let mut reading: FastMap<i64, Reading> = FastMap::default();
        store
            .for_each_rollup_since(
                this_hour - 23 * HOUR_MS,
                today - 89 * DAY_MS,
                |id, period, start, r| {
                    let into = reading.entry(id).or_default();
                    match period {
                        Period::Hour => into.hours.add(this_hour, start, r),
                        Period::Day if start >= today => into.today = Some(r),
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
                r.days.sort_unstable_by_key(|d| d.date);
                r.past.past_days = Arc::from(r.days);
                let hour = r.hours.into_past(&mut r.past);
                let history =
                    r.past
                        .with_current(this_hour, hour.as_ref(), today, r.today.as_ref());
                (id, history)
            })
            .collect();
        Ok(Histories {
            hour: this_hour,
            services,
        })
    }

    /// The same histories at `now`, in a later hour of the same UTC day as
    /// the last full read: the 24 hours read again, and of the days only
    /// yesterday and today (26 rollups a service rather than 114). The days
    /// before yesterday are kept as read: yesterday is read again because
    /// a batch the monitor held while the store was away may still land
    /// in it, and a batch held for longer than a day is seen at the next
    /// day's full read. At `now` on another day (or before
    /// [`Histories::hour`]) this is a full read.
    ///
    /// At three replicas of 30,000 services, the full read at every hour's
    /// turn was the largest thing each replica did that a single one does
    /// not do less of: every replica reads every public service's history.
    pub async fn turn_hour(&self, store: &Store, now: i64) -> Result<Histories, StoreError> {
        use crate::domain::time::{DAY_MS, HOUR_MS};
        use crate::store::rollup::Period;
        #[derive(Default)]
        struct Reading {
            hours: Hours,
            yesterday: Option<Rollup>,
            today: Option<Rollup>,
        }
        let this_hour = Period::Hour.bucket_start(now);
        let today = Period::Day.bucket_start(now);
        if Period::Day.bucket_start(self.hour) != today || self.hour > this_hour {
            // The days kept would be another day's.
            return Histories::read(store, now).await;
        }
        let yesterday = today - DAY_MS;
        let mut reading: FastMap<i64, Reading> = FastMap::default();
        store
            .for_each_rollup_since(
                this_hour - 23 * HOUR_MS,
                yesterday,
                |id, period, start, r| {
                    let into = reading.entry(id).or_default();
                    match period {
                        Period::Hour => into.hours.add(this_hour, start, r),
                        Period::Day if start >= today => into.today = Some(r),
                        Period::Day => into.yesterday = Some(r),
                    }
                },
            )
            .await?;
        let yesterday_date = ms_to_datetime(yesterday).map(|t| t.date_naive());
        let turned = |old: &History, r: Reading| {
            let mut past = History {
                past_counts: old.past_counts,
                past_days: Arc::clone(&old.past_days),
                ..History::default()
            };
            let hour = r.hours.into_past(&mut past);
            // Yesterday as it reads now, in place of what the full read saw.
            if let Some(date) = yesterday_date {
                let was = old.day(date);
                let now = r.yesterday.as_ref().map(|r| Day::of(date, r));
                if was != now {
                    let pair = |d: Option<Day>| {
                        d.map_or((0, 0), |d| (i64::from(d.ok), i64::from(d.counted)))
                    };
                    let (now_pair, was_pair) = (pair(now), pair(was));
                    // Yesterday is inside every daily window.
                    for c in &mut past.past_counts[1..] {
                        c.0 += now_pair.0 - was_pair.0;
                        c.1 += now_pair.1 - was_pair.1;
                    }
                    let mut days: Vec<Day> = old
                        .past_days
                        .iter()
                        .filter(|d| d.date != date)
                        .copied()
                        .collect();
                    days.extend(now);
                    days.sort_unstable_by_key(|d| d.date);
                    past.past_days = Arc::from(days);
                }
            }
            past.with_current(this_hour, hour.as_ref(), today, r.today.as_ref())
        };
        let mut services = FastMap::with_capacity_and_hasher(
            self.services.len().max(reading.len()),
            Default::default(),
        );
        for (id, old) in &self.services {
            let r = reading.remove(id).unwrap_or_default();
            services.insert(*id, turned(old, r));
        }
        // Services first seen since the full read.
        for (id, r) in reading {
            services.insert(id, turned(&History::default(), r));
        }
        Ok(Histories {
            hour: this_hour,
            services,
        })
    }

    /// The same histories at `now`, which must be in the hour of
    /// [`Histories::hour`], with only this hour's and today's rollups read
    /// again (one row in 57 of a full read with 90 days of history).
    pub async fn update(&self, store: &Store, now: i64) -> Result<Histories, StoreError> {
        use crate::store::rollup::Period;
        let this_hour = Period::Hour.bucket_start(now);
        let today = Period::Day.bucket_start(now);
        // Sized for every service at once: grown from empty it was rehashed
        // a dozen times at 30,000 services, every 30 s on every replica.
        let mut current: FastMap<i64, (Option<Rollup>, Option<Rollup>)> =
            FastMap::with_capacity_and_hasher(self.services.len(), Default::default());
        store
            .for_each_rollup_since(this_hour, today, |id, period, _, r| {
                let slot = current.entry(id).or_default();
                match period {
                    Period::Hour => slot.0 = Some(r),
                    Period::Day => slot.1 = Some(r),
                }
            })
            .await?;
        let mut services = FastMap::with_capacity_and_hasher(
            self.services.len().max(current.len()),
            Default::default(),
        );
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
