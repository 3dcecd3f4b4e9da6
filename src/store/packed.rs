//! Raw results packed one row per service and UTC hour
//! (`check_result_hours`, migration 0015).
//!
//! A `check_results` row costs 92 bytes on PostgreSQL: a 24-byte tuple
//! header and alignment per row, a line pointer, and a primary-key entry
//! of its own. Packed, an hour of one service's results is one row, and a
//! result in it costs about 7 bytes: the time as a varint delta from the
//! one before, one byte for the state and which fields follow, then the
//! latency and status code as varints (a reason, rare, as its bytes).
//!
//! The monitor still writes `check_results` (one insert per result, in the
//! batch's transaction with its rollups). [`Store::compact_results`],
//! called by the hourly retention pass, moves every result older than the
//! hour before the current one into its hour's row: `DELETE … RETURNING`
//! takes exactly the rows it packs, so a result written meanwhile is never
//! lost, and a result arriving late for an hour already packed (a batch
//! held while the store was away) is merged into that hour's row at the
//! next pass. Readers of raw results ([`Store::check_results`],
//! [`Store::resume_point`]) read both tables.

use std::collections::BTreeMap;

use sqlx::Row;

use super::{Store, StoreError, INSERT_CHUNK};
use crate::domain::time::HOUR_MS;

/// Services per compaction transaction: at 30 s, 50 services are 6,000
/// results (a few hundred KB in memory) and a lock held for milliseconds.
const PACK_CHUNK: usize = 50;

/// Transaction-scoped advisory lock serialising compactions on
/// PostgreSQL ("beacon" + 0x10): two passes merging into the same hour
/// would each write its own merge. Scoped to the transaction, it is safe
/// through a transaction-pooling PgBouncer, unlike a session lock.
const PACK_LOCK_KEY: i64 = 0x6265_6163_6f6e + 0x10;

/// The first byte of `data`: its format.
const FORMAT: u8 = 1;
const CODE_MASK: u8 = 0b0000_0111;
const HAS_LATENCY: u8 = 0b0000_1000;
const HAS_STATUS: u8 = 0b0001_0000;
const HAS_REASON: u8 = 0b0010_0000;

/// One raw result as stored: `check_results.state`'s code, not yet an
/// outcome.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Raw {
    pub checked_at: i64,
    pub code: i16,
    pub latency_ms: Option<i32>,
    pub status_code: Option<i16>,
    pub reason: Option<String>,
}

/// What a compaction packed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    /// Raw results moved out of `check_results`.
    pub results: u64,
    /// Hour rows written (new or merged).
    pub hours: u64,
}

/// The hour `at` falls in.
pub(super) fn hour_of(at: i64) -> i64 {
    // Saturating: a time within an hour of i64::MIN (only ever from
    // damaged data) lands on i64::MIN rather than overflowing.
    at.div_euclid(HOUR_MS).saturating_mul(HOUR_MS)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Packs `rows` (one service's, in time order) relative to `hour_start`.
/// Any order and any times round-trip (deltas are signed); a state code
/// outside 0–7 is refused, never cut.
pub(super) fn encode(hour_start: i64, rows: &[Raw]) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(1 + rows.len() * 8);
    out.push(FORMAT);
    let mut previous = hour_start;
    for r in rows {
        let code = u8::try_from(r.code)
            .ok()
            .filter(|c| *c <= CODE_MASK)
            .ok_or_else(|| StoreError::Corrupt {
                table: "check_results",
                column: "state",
                value: r.code.to_string(),
            })?;
        put_varint(&mut out, zigzag(r.checked_at.wrapping_sub(previous)));
        previous = r.checked_at;
        let mut head = code;
        if r.latency_ms.is_some() {
            head |= HAS_LATENCY;
        }
        if r.status_code.is_some() {
            head |= HAS_STATUS;
        }
        if r.reason.is_some() {
            head |= HAS_REASON;
        }
        out.push(head);
        if let Some(latency) = r.latency_ms {
            put_varint(&mut out, zigzag(i64::from(latency)));
        }
        if let Some(status) = r.status_code {
            put_varint(&mut out, zigzag(i64::from(status)));
        }
        if let Some(reason) = &r.reason {
            put_varint(&mut out, reason.len() as u64);
            out.extend_from_slice(reason.as_bytes());
        }
    }
    Ok(out)
}

/// A reader over a row's `data`.
struct Cursor<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn done(&self) -> bool {
        self.at >= self.data.len()
    }

    fn byte(&mut self) -> Option<u8> {
        let b = *self.data.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    /// LEB128; a tenth byte may only hold the top bit of 64.
    fn varint(&mut self) -> Option<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return None;
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let bytes = self.data.get(self.at..end)?;
        self.at = end;
        Some(bytes)
    }
}

/// Reads a row's `data` back. Anything that is not what [`encode`] wrote
/// (another format, cut short, a value out of range) is a corrupt row,
/// never a guess.
pub(super) fn decode(hour_start: i64, data: &[u8]) -> Result<Vec<Raw>, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt {
        table: "check_result_hours",
        column: "data",
        value: format!("{} bytes of hour {hour_start} ({what})", data.len()),
    };
    let cut = || corrupt("cut short");
    let mut c = Cursor { data, at: 0 };
    match c.byte() {
        Some(FORMAT) => {}
        Some(other) => return Err(corrupt(&format!("format {other}"))),
        None => return Err(corrupt("empty")),
    }
    let mut out = Vec::new();
    let mut previous = hour_start;
    while !c.done() {
        let delta = c.varint().ok_or_else(cut)?;
        let checked_at = previous.wrapping_add(unzigzag(delta));
        if hour_of(checked_at) != hour_start {
            return Err(corrupt(&format!(
                "a result at {checked_at}, outside its hour"
            )));
        }
        previous = checked_at;
        let head = c.byte().ok_or_else(cut)?;
        if head & !(CODE_MASK | HAS_LATENCY | HAS_STATUS | HAS_REASON) != 0 {
            return Err(corrupt(&format!("flags {head:#x}")));
        }
        let latency_ms = if head & HAS_LATENCY != 0 {
            let v = unzigzag(c.varint().ok_or_else(cut)?);
            Some(i32::try_from(v).map_err(|_| corrupt("latency out of range"))?)
        } else {
            None
        };
        let status_code = if head & HAS_STATUS != 0 {
            let v = unzigzag(c.varint().ok_or_else(cut)?);
            Some(i16::try_from(v).map_err(|_| corrupt("status out of range"))?)
        } else {
            None
        };
        let reason = if head & HAS_REASON != 0 {
            let len = c.varint().ok_or_else(cut)?;
            let len = usize::try_from(len).map_err(|_| cut())?;
            let text = c.take(len).ok_or_else(cut)?;
            Some(String::from_utf8(text.to_vec()).map_err(|_| corrupt("reason not UTF-8"))?)
        } else {
            None
        };
        out.push(Raw {
            checked_at,
            code: i16::from(head & CODE_MASK),
            latency_ms,
            status_code,
            reason,
        });
    }
    Ok(out)
}

/// An hour's results already packed, with more of the same hour: in time
/// order, one per millisecond, the packed one kept (as `check_results`
/// keeps the first of two results in the same millisecond).
pub(super) fn merge(packed: Vec<Raw>, more: Vec<Raw>) -> Vec<Raw> {
    let mut all = packed;
    all.extend(more);
    all.sort_by_key(|r| r.checked_at);
    all.dedup_by_key(|r| r.checked_at);
    all
}

impl Store {
    /// Moves every raw result older than the hour before `now`'s into its
    /// service's hour row (see the module's comment). Safe to run while the
    /// monitor writes, and again at any time: a pass with nothing to move
    /// writes nothing.
    pub async fn compact_results(&self, now: i64) -> Result<Compacted, StoreError> {
        let before = hour_of(now) - HOUR_MS;
        let serialise = self.is_postgres();
        let compacted = on_pool!(self, pool, Db => {
            let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM services ORDER BY id")
                .fetch_all(pool)
                .await?;
            let mut compacted = Compacted::default();
            for chunk in ids.chunks(PACK_CHUNK) {
                // One hour of the chunk's results per transaction, from
                // the oldest not packed yet (each service's, by its primary
                // key): a pass after an upgrade (days of raw results not
                // packed yet), or services probed every second, stay a few
                // MB at a time, and a gap of months costs one query.
                loop {
                    // Unnamed statements, all in the transaction: a
                    // transaction-pooling PgBouncer may send an unnamed
                    // statement's parts outside one to different servers
                    // (see `Store::prune`). It reads before it deletes:
                    // on SQLite it takes the write lock first, or a batch
                    // of results committed between the two would fail the
                    // delete at once on a stale snapshot (`write_begin`).
                    // Its turn among this process's writers, taken again
                    // for each hour, so a batch waiting goes in between
                    // (`WriteTurn`).
                    let (_turn, mut tx) = self.begin_write(pool).await?;
                    if serialise {
                        sqlx::query("SELECT pg_advisory_xact_lock($1)")
                            .bind(PACK_LOCK_KEY)
                            .persistent(false)
                            .execute(&mut *tx)
                            .await?;
                    }
                    let mut qb = sqlx::QueryBuilder::<Db>::new(
                        "SELECT MIN(oldest) FROM (SELECT (SELECT MIN(r.checked_at) FROM check_results r \
                         WHERE r.service_id = s.id) AS oldest FROM services s WHERE s.id IN (",
                    );
                    crate::store::push_ids(&mut qb, chunk);
                    qb.push(")) t");
                    let oldest: Option<i64> = qb.build_query_scalar().persistent(false).fetch_one(&mut *tx).await?;
                    let Some(oldest) = oldest.filter(|at| *at < before) else {
                        tx.commit().await?;
                        break;
                    };
                    let slice_end = (hour_of(oldest) + HOUR_MS).min(before);
                    let mut qb = sqlx::QueryBuilder::<Db>::new(
                        "DELETE FROM check_results WHERE service_id IN (",
                    );
                    crate::store::push_ids(&mut qb, chunk);
                    qb.push(") AND checked_at < ");
                    qb.push_bind(slice_end);
                    qb.push(" RETURNING service_id, checked_at, state, latency_ms, status_code, reason");
                    let rows = qb.build().persistent(false).fetch_all(&mut *tx).await?;
                    if rows.is_empty() {
                        tx.commit().await?;
                        continue;
                    }
                    let mut hours: BTreeMap<(i64, i64), Vec<Raw>> = BTreeMap::new();
                    for row in rows {
                        let service_id: i64 = row.try_get("service_id")?;
                        let raw = Raw {
                            checked_at: row.try_get("checked_at")?,
                            code: row.try_get("state")?,
                            latency_ms: row.try_get("latency_ms")?,
                            status_code: row.try_get("status_code")?,
                            reason: row.try_get("reason")?,
                        };
                        hours.entry((service_id, hour_of(raw.checked_at))).or_default().push(raw);
                    }
                    compacted.results += hours.values().map(|v| v.len() as u64).sum::<u64>();
                    // Hours already packed that these results belong to (late
                    // arrivals): merged, not overwritten.
                    let first = hours.keys().map(|(_, h)| *h).min().unwrap_or(slice_end);
                    let last = hours.keys().map(|(_, h)| *h).max().unwrap_or(slice_end);
                    let mut qb = sqlx::QueryBuilder::<Db>::new(
                        "SELECT service_id, hour_start, data FROM check_result_hours WHERE service_id IN (",
                    );
                    crate::store::push_ids(&mut qb, chunk);
                    qb.push(") AND hour_start >= ");
                    qb.push_bind(first);
                    qb.push(" AND hour_start <= ");
                    qb.push_bind(last);
                    for row in qb.build().persistent(false).fetch_all(&mut *tx).await? {
                        let key: (i64, i64) = (row.try_get("service_id")?, row.try_get("hour_start")?);
                        if let Some(more) = hours.remove(&key) {
                            let data: Vec<u8> = row.try_get("data")?;
                            hours.insert(key, merge(decode(key.1, &data)?, more));
                        }
                    }
                    let mut packed = Vec::with_capacity(hours.len());
                    for ((service_id, hour), mut rows) in hours {
                        rows.sort_by_key(|r| r.checked_at);
                        let count = i32::try_from(rows.len()).unwrap_or(i32::MAX);
                        packed.push((service_id, hour, count, encode(hour, &rows)?));
                    }
                    compacted.hours += packed.len() as u64;
                    for part in packed.chunks(INSERT_CHUNK / 4) {
                        let mut qb = sqlx::QueryBuilder::<Db>::new(
                            "INSERT INTO check_result_hours (service_id, hour_start, results, data) ",
                        );
                        qb.push_values(part, |mut row, (service_id, hour, count, data)| {
                            row.push_bind(*service_id)
                                .push_bind(*hour)
                                .push_bind(*count)
                                .push_bind(data.as_slice());
                        });
                        qb.push(
                            " ON CONFLICT (service_id, hour_start) DO UPDATE \
                             SET results = excluded.results, data = excluded.data",
                        );
                        qb.build().persistent(false).execute(&mut *tx).await?;
                    }
                    tx.commit().await?;
                }
            }
            compacted
        });
        Ok(compacted)
    }

    /// One service's newest packed hour that starts at or after
    /// `from_hour` and before `below_hour`, with its results.
    pub(super) async fn packed_hour_before(
        &self,
        service_id: i64,
        from_hour: i64,
        below_hour: i64,
    ) -> Result<Option<(i64, Vec<Raw>)>, StoreError> {
        let row = on_pool!(self, pool, _Db => {
            sqlx::query(
                "SELECT hour_start, data FROM check_result_hours \
                 WHERE service_id = $1 AND hour_start >= $2 AND hour_start < $3 \
                 ORDER BY hour_start DESC LIMIT 1",
            )
            .bind(service_id)
            .bind(from_hour)
            .bind(below_hour)
            .fetch_optional(pool)
            .await?
            .map(|row| -> Result<(i64, Vec<u8>), StoreError> {
                Ok((row.try_get("hour_start")?, row.try_get("data")?))
            })
            .transpose()?
        });
        match row {
            Some((hour, data)) => Ok(Some((hour, decode(hour, &data)?))),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(
        at: i64,
        code: i16,
        latency: Option<i32>,
        status: Option<i16>,
        reason: Option<&str>,
    ) -> Raw {
        Raw {
            checked_at: at,
            code,
            latency_ms: latency,
            status_code: status,
            reason: reason.map(str::to_string),
        }
    }

    #[test]
    fn an_hour_round_trips_in_a_few_bytes_a_result() {
        let hour = 1_780_000_000_000 / HOUR_MS * HOUR_MS;
        let rows: Vec<Raw> = (0..120)
            .map(|i| {
                raw(
                    hour + i * 30_000 + 7,
                    1,
                    Some(20 + (i as i32 % 400)),
                    Some(200),
                    None,
                )
            })
            .collect();
        let data = encode(hour, &rows).expect("encode");
        assert_eq!(decode(hour, &data).expect("decode"), rows);
        // 3 (time) + 1 (head) + 1-2 (latency) + 2 (status) bytes.
        assert!(data.len() <= 1 + 120 * 8, "{} bytes", data.len());
    }

    #[test]
    fn every_field_and_edge_round_trips() {
        let hour = -HOUR_MS;
        let rows = vec![
            raw(-5, 3, None, None, Some("HTTP 503, expected 2xx — ünïcode")),
            raw(-HOUR_MS, 4, Some(0), Some(-1), None),
            raw(-1, 2, Some(i32::MAX), Some(i16::MAX), Some("")),
            raw(-7, 1, Some(i32::MIN), Some(i16::MIN), None),
            raw(-HOUR_MS + 1, 0, None, Some(599), None),
            raw(-2, 7, Some(1), None, None),
        ];
        let data = encode(hour, &rows).expect("encode");
        assert_eq!(decode(hour, &data).expect("decode"), rows);
        assert_eq!(
            decode(hour, &encode(hour, &[]).expect("empty")).expect("decode"),
            vec![]
        );
    }

    #[test]
    fn a_code_that_does_not_fit_is_refused_not_cut() {
        for code in [8, -1, 77] {
            let err = encode(0, &[raw(1, code, None, None, None)]).expect_err("refused");
            assert_eq!(
                err.to_string(),
                format!("corrupt row: check_results.state holds {code}")
            );
        }
    }

    #[test]
    fn damaged_data_is_a_corrupt_row_never_a_guess() {
        let hour = 3_600_000;
        let good = encode(
            hour,
            &[raw(hour + 1, 1, Some(300), Some(200), Some("slow"))],
        )
        .expect("encode");
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("format 9", vec![9]),
            ("cut short", good[..good.len() - 2].to_vec()),
            ("cut short", good[..2].to_vec()),
            ("cut short", vec![FORMAT, 0x80]),
            ("flags 0x40", vec![FORMAT, 0, 0x40]),
            ("latency out of range", {
                let mut d = vec![FORMAT, 0, 1 | HAS_LATENCY];
                put_varint(&mut d, zigzag(i64::from(i32::MAX) + 1));
                d
            }),
            ("reason not UTF-8", vec![FORMAT, 0, 1 | HAS_REASON, 1, 0xff]),
            ("outside its hour", {
                let mut d = vec![FORMAT];
                put_varint(&mut d, zigzag(HOUR_MS));
                d.push(1);
                d
            }),
            ("outside its hour", {
                let mut d = vec![FORMAT];
                put_varint(&mut d, zigzag(i64::MIN + 5));
                d.push(1);
                d
            }),
            (
                "cut short",
                vec![
                    FORMAT, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
                ],
            ),
        ];
        for (what, data) in cases {
            let err = decode(hour, &data).expect_err(what);
            let text = err.to_string();
            assert!(
                text.starts_with("corrupt row: check_result_hours.data holds"),
                "{text}"
            );
            assert!(text.contains(what), "{what}: {text}");
        }
    }

    #[test]
    fn a_late_result_merges_into_its_hour_and_the_packed_one_wins_a_tie() {
        let packed = vec![
            raw(10, 1, Some(5), None, None),
            raw(30, 3, None, None, Some("x")),
        ];
        let more = vec![raw(20, 2, None, None, None), raw(30, 1, None, None, None)];
        let merged = merge(packed, more);
        let times: Vec<i64> = merged.iter().map(|r| r.checked_at).collect();
        assert_eq!(times, [10, 20, 30]);
        assert_eq!(
            merged[2].code, 3,
            "the packed result of a millisecond stays"
        );
    }

    #[test]
    fn hours_are_utc_hours_even_before_1970() {
        assert_eq!(hour_of(HOUR_MS + 1), HOUR_MS);
        assert_eq!(hour_of(HOUR_MS), HOUR_MS);
        assert_eq!(hour_of(-1), -HOUR_MS);
        assert_eq!(
            hour_of(i64::MIN + 5),
            i64::MIN,
            "saturates, never overflows"
        );
    }
}
