//! What beacon forgets, and when: raw results after the configured
//! retention (rows not packed yet, and packed hours once the whole hour
//! is past it), hourly rollups after 400 days, routed alert events after a
//! month. Daily rollups and incidents stay.

use super::{Store, StoreError};
use sqlx::Row;

use crate::domain::time::{DAY_MS, HOUR_MS};

/// Hourly rollups are kept this long; daily ones are never pruned.
const ROLLUP_HOURLY_KEEP_MS: i64 = 400 * DAY_MS;

/// Services per delete statement of a prune.
const PRUNE_CHUNK: usize = 100;

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
    /// older than 400 days (daily rollups stay). [`PRUNE_CHUNK`] services
    /// at a time, so each delete is a few primary-key ranges and locks
    /// briefly (one statement per service was 30,000 statements an hour at
    /// 10,000 services: seconds of CPU in the driver's round trips alone).
    pub async fn prune(&self, now: i64, raw_retention_ms: i64) -> Result<Pruned, StoreError> {
        let raw_before = now - raw_retention_ms;
        let hourly_before = now - ROLLUP_HOURLY_KEEP_MS;
        let pruned = on_pool!(self, pool, Db => {
            let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM services ORDER BY id")
                .fetch_all(pool)
                .await?;
            let mut pruned = Pruned::default();
            for chunk in ids.chunks(PRUNE_CHUNK) {
                // Unnamed statements: in a transaction, for a
                // transaction-pooling PgBouncer (see `Store::load`); one
                // per chunk, so no lock is held for the whole pass, and
                // on SQLite a batch of results waiting goes in between
                // (`WriteTurn`).
                let (_turn, mut tx) = self.begin_write(pool).await?;
                for (table, time, before, extra) in [
                    ("check_results", "checked_at", raw_before, ""),
                    ("location_results", "checked_at", raw_before, ""),
                    ("rollups", "bucket_start", hourly_before, " AND period = 'h'"),
                ] {
                    let mut qb = sqlx::QueryBuilder::<Db>::new(format!(
                        "DELETE FROM {table} WHERE service_id IN ("
                    ));
                    crate::store::push_ids(&mut qb, chunk);
                    qb.push(format!(") AND {time} < "));
                    qb.push_bind(before);
                    qb.push(extra);
                    let deleted = qb.build().persistent(false).execute(&mut *tx).await?.rows_affected();
                    if table == "rollups" {
                        pruned.rollups += deleted;
                    } else {
                        pruned.results += deleted;
                    }
                }
                // Packed hours go once the whole hour is past retention;
                // what they held is counted by their `results`.
                let mut qb = sqlx::QueryBuilder::<Db>::new(
                    "DELETE FROM check_result_hours WHERE service_id IN (",
                );
                crate::store::push_ids(&mut qb, chunk);
                qb.push(") AND hour_start + ");
                qb.push_bind(HOUR_MS);
                qb.push(" <= ");
                qb.push_bind(raw_before);
                qb.push(" RETURNING results");
                for row in qb.build().persistent(false).fetch_all(&mut *tx).await? {
                    let n: i64 = int_column!(row, "results");
                    pruned.results += u64::try_from(n).unwrap_or(0);
                }
                tx.commit().await?;
            }
            // Alert events and their deliveries: a month is plenty to see
            // what was sent; the page's history lives in incidents.
            let alerts_before = now - ALERT_KEEP_MS;
            sqlx::query(
                "DELETE FROM subscriber_deliveries WHERE event_id IN \
                 (SELECT id FROM alert_events WHERE created_at < $1 AND routed = $2)",
            )
            .bind(alerts_before)
            .bind(true)
            .execute(pool)
            .await?;
            // Subscriptions: spent links after a day; an address never
            // confirmed is forgotten a week after it was given.
            sqlx::query("DELETE FROM subscriber_tokens WHERE expires_at < $1")
                .bind(now - DAY_MS)
                .execute(pool)
                .await?;
            let unconfirmed: Vec<i64> = sqlx::query_scalar(
                "SELECT id FROM subscribers WHERE confirmed_at IS NULL AND created_at < $1 \
                 AND NOT EXISTS (SELECT 1 FROM subscriber_tokens t WHERE t.subscriber_id = subscribers.id AND t.expires_at > $2)",
            )
            .bind(now - 7 * DAY_MS)
            .bind(now)
            .fetch_all(pool)
            .await?;
            for id in unconfirmed {
                sqlx::query("DELETE FROM subscriber_deliveries WHERE subscriber_id = $1").bind(id).execute(pool).await?;
                sqlx::query("DELETE FROM subscriber_tokens WHERE subscriber_id = $1").bind(id).execute(pool).await?;
                sqlx::query("DELETE FROM subscribers WHERE id = $1").bind(id).execute(pool).await?;
            }
            sqlx::query("DELETE FROM admin_sessions WHERE expires_at <= $1")
                .bind(now)
                .execute(pool)
                .await?;
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
