//! What each location saw: the raw results of services probed from more
//! than one place (`location_results`). The decided outcome goes to
//! `check_results` with the batch; these rows are what the service page
//! shows per location, and what an agent's resent batch is checked against.

use sqlx::Row;

use super::{prepared_chunks, Store, StoreError, INSERT_CHUNK};
use crate::domain::Outcome;

/// One location's result of one probe.
#[derive(Debug, Clone, PartialEq)]
pub struct LocationResult {
    pub service_id: i64,
    pub location: String,
    pub checked_at: i64,
    pub outcome: Outcome,
    pub latency_ms: Option<i32>,
    pub status_code: Option<i16>,
    pub reason: Option<String>,
}

/// The INSERT of location results, each written once.
pub(super) const LOCATION_INSERT: &str = "INSERT INTO location_results \
     (service_id, location, checked_at, state, latency_ms, status_code, reason) ";

/// Adds each of `rows` to `qb`'s VALUES.
macro_rules! push_location_rows {
    ($qb:expr, $rows:expr) => {
        $qb.push_values($rows, |mut row, r| {
            row.push_bind(r.service_id)
                .push_bind(r.location.as_str())
                .push_bind(r.checked_at)
                .push_bind(r.outcome.code())
                .push_bind(r.latency_ms)
                .push_bind(r.status_code)
                .push_bind(r.reason.as_deref());
        });
    };
}
pub(super) use push_location_rows;

fn outcome_of(code: i16) -> Result<Outcome, StoreError> {
    Outcome::from_code(code).ok_or_else(|| StoreError::Corrupt {
        table: "location_results",
        column: "state",
        value: code.to_string(),
    })
}

macro_rules! location_result_from_row {
    ($row:expr) => {{
        let code = $row
            .try_get::<i16, _>("state")
            .or_else(|_| $row.try_get::<i64, _>("state").map(|c| c as i16))?;
        let status = $row.try_get::<Option<i16>, _>("status_code").or_else(|_| {
            $row.try_get::<Option<i64>, _>("status_code")
                .map(|c| c.map(|c| c as i16))
        })?;
        let latency = $row.try_get::<Option<i32>, _>("latency_ms").or_else(|_| {
            $row.try_get::<Option<i64>, _>("latency_ms")
                .map(|c| c.map(|c| c as i32))
        })?;
        Ok::<_, StoreError>(LocationResult {
            service_id: $row.try_get("service_id")?,
            location: $row.try_get("location")?,
            checked_at: $row.try_get("checked_at")?,
            outcome: outcome_of(code)?,
            latency_ms: latency,
            status_code: status,
            reason: $row.try_get("reason")?,
        })
    }};
}

impl Store {
    /// Writes `rows`, each at most once: a row already stored (same
    /// service, location and time) is left as it is. Returns, for each of
    /// `rows`, whether it was new.
    pub async fn insert_location_results(
        &self,
        rows: &[LocationResult],
    ) -> Result<Vec<bool>, StoreError> {
        let mut new = std::collections::HashSet::new();
        on_pool!(self, pool, Db => {
            let mut tx = pool.begin().await?;
            // Kept prepared, like the monitor's batches (`prepared_chunks`).
            for chunk in prepared_chunks(rows, INSERT_CHUNK) {
                let mut qb = sqlx::QueryBuilder::<Db>::new(LOCATION_INSERT);
                push_location_rows!(qb, chunk);
                qb.push(
                    " ON CONFLICT (service_id, location, checked_at) DO NOTHING \
                     RETURNING service_id, location, checked_at",
                );
                for row in qb.build().fetch_all(&mut *tx).await? {
                    let key: (i64, String, i64) = (
                        row.try_get("service_id")?,
                        row.try_get("location")?,
                        row.try_get("checked_at")?,
                    );
                    new.insert(key);
                }
            }
            tx.commit().await?;
        });
        Ok(rows
            .iter()
            .map(|r| new.contains(&(r.service_id, r.location.clone(), r.checked_at)))
            .collect())
    }

    /// Every location result taken at or after `since`, by service, then
    /// location, then time; at most `limit` (the newest kept).
    pub async fn location_results_since(
        &self,
        since: i64,
        limit: i64,
    ) -> Result<Vec<LocationResult>, StoreError> {
        let mut rows = on_pool!(self, pool, _Db => {
            let mut out = Vec::new();
            for row in sqlx::query(
                "SELECT service_id, location, checked_at, state, latency_ms, status_code, reason \
                 FROM location_results WHERE checked_at >= $1 ORDER BY checked_at DESC LIMIT $2",
            )
            .bind(since)
            .bind(limit)
            .fetch_all(pool)
            .await?
            {
                out.push(location_result_from_row!(row)?);
            }
            out
        });
        rows.sort_by(|a, b| {
            (a.service_id, &a.location, a.checked_at).cmp(&(
                b.service_id,
                &b.location,
                b.checked_at,
            ))
        });
        Ok(rows)
    }

    /// Each (service, location)'s latest result taken at or after `since`.
    pub async fn latest_location_results(
        &self,
        since: i64,
    ) -> Result<Vec<LocationResult>, StoreError> {
        let rows = on_pool!(self, pool, _Db => {
            let mut out = Vec::new();
            for row in sqlx::query(
                "SELECT l.service_id, l.location, l.checked_at, l.state, l.latency_ms, l.status_code, l.reason \
                 FROM location_results l JOIN ( \
                   SELECT service_id, location, max(checked_at) AS latest FROM location_results \
                   WHERE checked_at >= $1 GROUP BY service_id, location \
                 ) x ON x.service_id = l.service_id AND x.location = l.location AND x.latest = l.checked_at \
                 ORDER BY l.service_id, l.location",
            )
            .bind(since)
            .fetch_all(pool)
            .await?
            {
                out.push(location_result_from_row!(row)?);
            }
            out
        });
        Ok(rows)
    }
}
