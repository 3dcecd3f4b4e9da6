//! Rollups: per-service counts per hour and per UTC day, kept in step with
//! the raw results inside the same transaction (see migration 0004).

use std::collections::BTreeMap;

use sqlx::Row;

use super::scan::Scan;
use super::{CheckResult, Store, StoreError};
use crate::domain::Outcome;

/// Upper bounds (ms) of the latency histogram's buckets; the last bucket
/// (index 15) takes everything above 10 s.
pub const LATENCY_BOUNDS_MS: [i64; 15] = [
    5, 10, 25, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 2000, 5000, 10_000,
];
pub const BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;
/// The count columns of `rollups`, as the fields of [`Rollup`].
pub const COUNT_COLUMNS: [&str; 7] = [
    "up",
    "degraded",
    "down",
    "maintenance",
    "latency_count",
    "latency_sum",
    "latency_max",
];
/// The histogram's columns in `rollups`, bucket by bucket.
pub const HISTOGRAM_COLUMNS: [&str; BUCKETS] = [
    "h00", "h01", "h02", "h03", "h04", "h05", "h06", "h07", "h08", "h09", "h10", "h11", "h12",
    "h13", "h14", "h15",
];

use crate::domain::time::{DAY_MS, HOUR_MS};

/// A rollup period, as stored in `rollups.period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Period {
    Hour,
    Day,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Hour => "h",
            Period::Day => "d",
        }
    }

    pub fn length_ms(self) -> i64 {
        match self {
            Period::Hour => HOUR_MS,
            Period::Day => DAY_MS,
        }
    }

    /// Start of the bucket holding `t` (epoch ms, UTC).
    pub fn bucket_start(self, t: i64) -> i64 {
        t.div_euclid(self.length_ms()) * self.length_ms()
    }
}

/// Counts of one service over one bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rollup {
    pub up: i64,
    pub degraded: i64,
    pub down: i64,
    pub maintenance: i64,
    pub latency_count: i64,
    pub latency_sum: i64,
    pub latency_max: i64,
    pub histogram: [i64; BUCKETS],
}

impl Rollup {
    pub fn add(&mut self, r: &CheckResult) {
        match r.outcome {
            _ if r.maintenance => self.maintenance += 1,
            Outcome::Up => self.up += 1,
            Outcome::Degraded => self.degraded += 1,
            Outcome::Down => self.down += 1,
        }
        if let Some(ms) = r.latency_ms {
            let ms = i64::from(ms);
            self.latency_count += 1;
            self.latency_sum += ms;
            self.latency_max = self.latency_max.max(ms);
            let bucket = LATENCY_BOUNDS_MS
                .iter()
                .position(|bound| ms <= *bound)
                .unwrap_or(BUCKETS - 1);
            self.histogram[bucket] += 1;
        }
    }

    pub fn merge(&mut self, other: &Rollup) {
        self.up += other.up;
        self.degraded += other.degraded;
        self.down += other.down;
        self.maintenance += other.maintenance;
        self.latency_count += other.latency_count;
        self.latency_sum += other.latency_sum;
        self.latency_max = self.latency_max.max(other.latency_max);
        for (a, b) in self.histogram.iter_mut().zip(other.histogram.iter()) {
            *a += b;
        }
    }

    /// Probes that count toward uptime: maintenance is left out.
    pub fn counted(&self) -> i64 {
        self.up + self.degraded + self.down
    }

    /// Share of counted probes that were up or degraded, 0–100; `None`
    /// without data.
    pub fn uptime(&self) -> Option<f64> {
        let counted = self.counted();
        (counted > 0).then(|| 100.0 * (self.up + self.degraded) as f64 / counted as f64)
    }

    /// The upper bound of the histogram bucket holding quantile `q` (0–1),
    /// capped at the largest latency seen.
    pub fn percentile_ms(&self, q: f64) -> Option<i64> {
        let total: i64 = self.histogram.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = (q * total as f64).ceil().max(1.0) as i64;
        let mut seen = 0;
        for (i, n) in self.histogram.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let bound = LATENCY_BOUNDS_MS
                    .get(i)
                    .copied()
                    .unwrap_or(self.latency_max);
                return Some(bound.min(self.latency_max));
            }
        }
        Some(self.latency_max)
    }
}

/// Rollups of a batch of results, keyed by (service, period, bucket start).
pub fn aggregate(results: &[CheckResult]) -> BTreeMap<(i64, Period, i64), Rollup> {
    let mut out: BTreeMap<(i64, Period, i64), Rollup> = BTreeMap::new();
    for r in results {
        for period in [Period::Hour, Period::Day] {
            out.entry((r.service_id, period, period.bucket_start(r.checked_at)))
                .or_default()
                .add(r);
        }
    }
    out
}

/// Rollups from an hour and a day on, of public, active services: one row
/// per service, its rollups packed into one text
/// (`period:bucket_start:up:…:h15`, joined by `;`). A full read is 114
/// rollups of 26 numbers per service; read as rows, the SQLite driver
/// copied every value on its own (a locked malloc each) and sent every row
/// across a channel, which made start-up 12 s at 10,000 services. Packed,
/// the database formats the numbers and beacon parses them, one row per
/// service. `$aggregate` is `group_concat` (SQLite) or `string_agg`
/// (PostgreSQL).
fn rollups_since_sql(aggregate: &str) -> String {
    let fields = ["r.period", "r.bucket_start"]
        .into_iter()
        .map(str::to_string)
        .chain(
            COUNT_COLUMNS
                .into_iter()
                .chain(HISTOGRAM_COLUMNS)
                .map(|c| format!("r.{c}")),
        )
        .collect::<Vec<_>>()
        .join(" || ':' || ");
    format!(
        "SELECT r.service_id, {aggregate}({fields}, ';') AS packed FROM rollups r \
         JOIN services s ON s.id = r.service_id \
         WHERE s.public = $3 AND s.active = $3 \
         AND ((r.period = 'h' AND r.bucket_start >= $1) OR (r.period = 'd' AND r.bucket_start >= $2)) \
         GROUP BY r.service_id"
    )
}

static ROLLUPS_SINCE_SQLITE: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| rollups_since_sql("group_concat"));
static ROLLUPS_SINCE_POSTGRES: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| rollups_since_sql("string_agg"));

/// One packed rollup (`period:bucket_start:` then the counts and the
/// histogram, as [`rollups_since_sql`] writes them), up to and past the
/// `;` that ends it or the end of the text.
fn unpack(s: &mut Scan) -> Option<(Period, i64, Rollup)> {
    let period = match s.byte()? {
        b'h' => Period::Hour,
        b'd' => Period::Day,
        _ => return None,
    };
    let mut next = || {
        s.expect(b':')?;
        s.int()
    };
    let bucket_start = next()?;
    let mut rollup = Rollup {
        up: next()?,
        degraded: next()?,
        down: next()?,
        maintenance: next()?,
        latency_count: next()?,
        latency_sum: next()?,
        latency_max: next()?,
        histogram: [0; BUCKETS],
    };
    for h in rollup.histogram.iter_mut() {
        *h = next()?;
    }
    // A `;` ends one rollup and is followed by another.
    let ended = if s.eat(b';') { !s.at_end() } else { s.at_end() };
    ended.then_some((period, bucket_start, rollup))
}

pub(super) const ROLLUP_INSERT: &str =
    "INSERT INTO rollups (service_id, period, bucket_start, up, degraded, down, \
     maintenance, latency_count, latency_sum, latency_max, h00, h01, h02, h03, h04, h05, h06, h07, \
     h08, h09, h10, h11, h12, h13, h14, h15) ";

/// Adds a batch's counts to existing rollups (portable: no GREATEST/MAX()).
pub(super) static ROLLUP_MERGE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    // Every count adds up but the maximum, which is taken below.
    let mut sets: Vec<String> = COUNT_COLUMNS
        .iter()
        .filter(|c| **c != "latency_max")
        .map(|c| format!("{c} = rollups.{c} + excluded.{c}"))
        .collect();
    sets.push(
        "latency_max = CASE WHEN excluded.latency_max > rollups.latency_max \
         THEN excluded.latency_max ELSE rollups.latency_max END"
            .into(),
    );
    sets.extend((0..BUCKETS).map(|i| format!("h{i:02} = rollups.h{i:02} + excluded.h{i:02}")));
    format!(
        " ON CONFLICT (service_id, period, bucket_start) DO UPDATE SET {}",
        sets.join(", ")
    )
});

impl Store {
    /// Every public, active service's hourly rollups from `hour_since` and
    /// daily ones from `day_since` (bucket starts, epoch ms), handed to `f`
    /// one row at a time as they stream from the database, in no particular
    /// order: (service id, period, bucket start, counts). Nothing is
    /// collected here, so a fleet with 90 days of history (114 rows of 184
    /// bytes per service) costs only what `f` keeps; services no page
    /// shows (`public = false`) cost nothing at all.
    pub async fn for_each_rollup_since(
        &self,
        hour_since: i64,
        day_since: i64,
        mut f: impl FnMut(i64, Period, i64, Rollup),
    ) -> Result<(), StoreError> {
        use futures_util::TryStreamExt;
        let sql = match &self.0 {
            super::Pools::Sqlite(_) => ROLLUPS_SINCE_SQLITE.as_str(),
            super::Pools::Postgres(_) => ROLLUPS_SINCE_POSTGRES.as_str(),
        };
        on_pool!(self, pool, _Db => {
            let mut rows = sqlx::query(sql)
            .bind(hour_since)
            .bind(day_since)
            .bind(true)
            .fetch(pool);
            while let Some(row) = rows.try_next().await? {
                let service_id: i64 = row.try_get("service_id")?;
                let packed: &str = row.try_get("packed")?;
                let mut scan = Scan::new(packed);
                // At least one: a service's row has a rollup, or it
                // would not be a row.
                loop {
                    let started = scan.position();
                    let Some((period, start, rollup)) = unpack(&mut scan) else {
                        scan.rewind(started);
                        let one = scan.rest_of_part(b';');
                        return Err(StoreError::Corrupt {
                            table: "rollups",
                            column: "counts",
                            value: format!("service {service_id}: {}", one.chars().take(200).collect::<String>()),
                        });
                    };
                    f(service_id, period, start, rollup);
                    if scan.at_end() {
                        break;
                    }
                }
            }
        });
        Ok(())
    }

    /// Every rollup of one service for `period`, oldest first.
    pub async fn rollups(
        &self,
        slug: &str,
        period: Period,
    ) -> Result<Vec<(i64, Rollup)>, StoreError> {
        let rows = on_pool!(self, pool, _Db => {
            sqlx::query(
                "SELECT r.* FROM rollups r JOIN services s ON s.id = r.service_id \
                 WHERE s.slug = $1 AND r.period = $2 ORDER BY r.bucket_start",
            )
            .bind(slug)
            .bind(period.as_str())
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| -> Result<(i64, Rollup), sqlx::Error> {
                Ok((
                    int_column!(row, "bucket_start"),
                    rollup_from_row!(row),
                ))
            })
            .collect::<Result<Vec<_>, _>>()?
        });
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_rollup_reads_back_and_anything_else_is_refused() {
        let unpack = |text: &str| {
            let mut scan = Scan::new(text);
            unpack(&mut scan).filter(|_| scan.at_end())
        };
        let text = "d:86400000:5:1:2:0:8:160:40:1:1:1:1:1:1:1:1:0:0:0:0:0:0:0:0";
        let (period, start, r) = unpack(text).expect("well formed");
        assert_eq!((period, start), (Period::Day, 86_400_000));
        assert_eq!((r.up, r.degraded, r.down, r.maintenance), (5, 1, 2, 0));
        assert_eq!(
            (r.latency_count, r.latency_sum, r.latency_max),
            (8, 160, 40)
        );
        assert_eq!(r.histogram.iter().sum::<i64>(), 8);
        for bad in [
            "",
            "x:1:2",
            "h:1:2:3",
            "d:86400000:5:1:2:0:8:160:40:1:1:1:1:1:1:1:1:0:0:0:0:0:0:0:0:9",
            "d:86400000:5:1:2:0:8:160:40:1:1:1:1:1:1:1:1:0:0:0:0:0:0:0:oops",
            "d:86400000:5:1:2:0:8:160:40:1:1:1:1:1:1:1:1:0:0:0:0:0:0:0:",
            "d::5:1:2:0:8:160:40:1:1:1:1:1:1:1:1:0:0:0:0:0:0:0:0",
            "d:86400000:5:1:2:0:8:160:40:1:1:1:1:1:1:1:1:0:0:0:0:0:0:0:99999999999999999999",
            "d:86400000:5:1:2:0:8:160:40:1:1:1:1:1:1:1:1:0:0:0:0:0:0:0:0;",
        ] {
            assert!(unpack(bad).is_none(), "{bad:?}");
        }
        // Several, as the database joins them: each read in turn, the
        // second's own fields.
        let two = format!("{text};h:3600000:0:0:1:0:1:7:7:0:1:0:0:0:0:0:0:0:0:0:0:0:0:0:0");
        let mut scan = Scan::new(&two);
        assert_eq!(super::unpack(&mut scan).map(|(p, ..)| p), Some(Period::Day));
        let (period, start, r) = super::unpack(&mut scan).expect("the second");
        assert_eq!(
            (period, start, r.down, r.latency_max),
            (Period::Hour, 3_600_000, 1, 7)
        );
        assert_eq!(r.histogram[1], 1);
        assert!(scan.at_end());
    }

    fn result(at: i64, outcome: Outcome, ms: i32) -> CheckResult {
        CheckResult {
            service_id: 1,
            checked_at: at,
            outcome,
            maintenance: false,
            latency_ms: Some(ms),
            status_code: None,
            reason: None,
        }
    }

    #[test]
    fn results_fall_into_hour_and_day_buckets() {
        let day = 20_000 * DAY_MS;
        let results = [
            result(day + 10, Outcome::Up, 3),
            result(day + HOUR_MS - 1, Outcome::Down, 40),
            result(day + HOUR_MS, Outcome::Degraded, 20_000),
        ];
        let rollups = aggregate(&results);
        let first_hour = &rollups[&(1, Period::Hour, day)];
        assert_eq!(
            (first_hour.up, first_hour.down, first_hour.degraded),
            (1, 1, 0)
        );
        assert_eq!(first_hour.histogram[0] + first_hour.histogram[3], 2);
        let second_hour = &rollups[&(1, Period::Hour, day + HOUR_MS)];
        assert_eq!(second_hour.histogram[BUCKETS - 1], 1, "over 10 s");
        let whole_day = &rollups[&(1, Period::Day, day)];
        assert_eq!(whole_day.counted(), 3);
        assert_eq!(whole_day.latency_max, 20_000);
        assert_eq!(whole_day.latency_sum, 20_043);
    }

    #[test]
    fn uptime_and_percentiles() {
        let mut r = Rollup::default();
        for i in 0..100 {
            let outcome = if i < 2 { Outcome::Down } else { Outcome::Up };
            r.add(&result(i, outcome, if i < 90 { 40 } else { 900 }));
        }
        assert_eq!(r.uptime(), Some(98.0));
        assert_eq!(r.percentile_ms(0.5), Some(50));
        assert_eq!(
            r.percentile_ms(0.95),
            Some(900),
            "capped at the largest seen"
        );
        assert_eq!(Rollup::default().uptime(), None);
    }
}
