//! What beacon forgets, and when: raw results after the configured
//! retention, hourly rollups after 400 days, routed alert events after a
//! month. Daily rollups and incidents stay.

use super::{Store, StoreError};
use crate::domain::time::DAY_MS;

/// Hourly rollups are kept this long; daily ones are never pruned.
const ROLLUP_HOURLY_KEEP_MS: i64 = 400 * DAY_MS;

/// What a prune removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub results: u64,
    pub rollups: u64,
    pub alert_events: u64,
}

/// Alert events (and what was sent of them) are kept this long.
const ALERT_KEEP_MS: i64 = 30 * DAY_MS;

impl Store {
    /// Deletes raw results older than `raw_retention` and hourly rollups
    /// older than 400 days (daily rollups stay). Service by service, so each
    /// delete is a primary-key range and locks briefly.
    pub async fn prune(&self, now: i64, raw_retention_ms: i64) -> Result<Pruned, StoreError> {
        let raw_before = now - raw_retention_ms;
        let hourly_before = now - ROLLUP_HOURLY_KEEP_MS;
        let pruned = on_pool!(self, pool, _Db => {
            let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM services ORDER BY id")
                .fetch_all(pool)
                .await?;
            let mut pruned = Pruned::default();
            for id in ids {
                pruned.results += sqlx::query(
                    "DELETE FROM check_results WHERE service_id = $1 AND checked_at < $2",
                )
                .bind(id)
                .bind(raw_before)
                .execute(pool)
                .await?
                .rows_affected();
                pruned.results += sqlx::query(
                    "DELETE FROM location_results WHERE service_id = $1 AND checked_at < $2",
                )
                .bind(id)
                .bind(raw_before)
                .execute(pool)
                .await?
                .rows_affected();
                pruned.rollups += sqlx::query(
                    "DELETE FROM rollups WHERE service_id = $1 AND period = 'h' AND bucket_start < $2",
                )
                .bind(id)
                .bind(hourly_before)
                .execute(pool)
                .await?
                .rows_affected();
            }
            // Alert events and their deliveries: a month is plenty to see
            // what was sent; the page's history lives in incidents.
            let alerts_before = now - ALERT_KEEP_MS;
            sqlx::query(
                "DELETE FROM alert_deliveries WHERE event_id IN \
                 (SELECT id FROM alert_events WHERE created_at < $1 AND routed = $2)",
            )
            .bind(alerts_before)
            .bind(true)
            .execute(pool)
            .await?;
            pruned.alert_events = sqlx::query("DELETE FROM alert_events WHERE created_at < $1 AND routed = $2")
                .bind(alerts_before)
                .bind(true)
                .execute(pool)
                .await?
                .rows_affected();
            pruned
        });
        Ok(pruned)
    }
}
