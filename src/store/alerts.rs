//! The alert outbox: events (written with what caused them, see
//! `insert_alert_event!`) and their deliveries, one per channel.
//!
//! Routing and sending are idempotent so that a restart, or a second
//! replica on the same PostgreSQL, never sends one alert twice: routing
//! inserts deliveries with `ON CONFLICT DO NOTHING`, and a sender claims
//! due deliveries in one statement (`FOR UPDATE SKIP LOCKED` on PostgreSQL)
//! that moves their `next_attempt_at` forward (a lease): a delivery is
//! claimed by one sender, and claimed again only when its lease runs out.

use sqlx::Row;

use super::{Store, StoreError};
use crate::domain::{Event, EventKind};

/// An event as stored, waiting to be routed.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub id: i64,
    pub service_id: Option<i64>,
    pub created_at: i64,
    pub event: Event,
}

/// Where one event goes: a pending delivery per `(channel, kind)` and per
/// `(subscriber id, kind)` (see [`Store::route_events`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Routing {
    pub event_id: i64,
    pub deliveries: Vec<(String, EventKind)>,
    pub subscribers: Vec<(i64, EventKind)>,
}

/// One alert for one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertDelivery {
    pub id: i64,
    pub event_id: i64,
    pub channel: String,
    /// The event as this channel sees it.
    pub kind: EventKind,
    /// pending · sent · failed
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub sent_at: Option<i64>,
    pub event: Event,
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryOutcome {
    Sent,
    /// Try again at `at` (epoch ms).
    Retry {
        at: i64,
        error: String,
    },
    /// Given up: no further attempt.
    Failed {
        error: String,
    },
}

fn parse_event(payload: &str, id: i64) -> Result<Event, StoreError> {
    serde_json::from_str(payload).map_err(|e| StoreError::Invalid {
        field: "alert_events.payload",
        message: format!("event {id}: {e}"),
    })
}

impl Store {
    /// Events not yet routed, oldest first.
    /// Raises `event` on its own (not caused by a write of beacon's, e.g. a
    /// location gone silent). A `dedupe` key already stored makes it a
    /// no-op: replicas raising the same event write it once.
    pub async fn raise_alert_event(
        &self,
        event: &crate::domain::Event,
        dedupe: Option<String>,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool, _Db => {
            let mut tx = pool.begin().await?;
            insert_alert_event!(tx, event, None, dedupe);
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn unrouted_alert_events(&self, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
        self.events(
            "WHERE routed = false AND id >= $1 ORDER BY id LIMIT $2",
            0,
            limit,
        )
        .await
    }

    /// Every stored event, oldest first (tests, tools).
    pub async fn alert_events(&self) -> Result<Vec<StoredEvent>, StoreError> {
        self.events("WHERE id >= $1 ORDER BY id LIMIT $2", 0, i64::MAX)
            .await
    }

    async fn events(&self, filter: &str, a: i64, b: i64) -> Result<Vec<StoredEvent>, StoreError> {
        let sql = format!("SELECT id, service_id, payload, created_at FROM alert_events {filter}");
        let rows = on_pool!(self, pool, _Db => {
            sqlx::query(&sql)
                .bind(a)
                .bind(b)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| -> Result<(i64, Option<i64>, String, i64), sqlx::Error> {
                    Ok((r.try_get("id")?, r.try_get("service_id")?, r.try_get("payload")?, r.try_get("created_at")?))
                })
                .collect::<Result<Vec<_>, _>>()?
        });
        rows.into_iter()
            .map(|(id, service_id, payload, created_at)| {
                Ok(StoredEvent {
                    id,
                    service_id,
                    created_at,
                    event: parse_event(&payload, id)?,
                })
            })
            .collect()
    }

    /// Marks an event routed, with one pending delivery per `(channel,
    /// kind)`, in one transaction. Routing it again adds nothing.
    pub async fn route_alert_event(
        &self,
        event_id: i64,
        deliveries: &[(String, EventKind)],
        now: i64,
    ) -> Result<(), StoreError> {
        let routing = Routing {
            event_id,
            deliveries: deliveries.to_vec(),
            subscribers: Vec::new(),
        };
        self.route_events(std::slice::from_ref(&routing), now)
            .await
            .map(drop)
    }

    /// Routes events to alert channels and to subscribers in one
    /// transaction, and says which ids this call routed: each event is
    /// claimed first (marked routed where it was not, its row locked
    /// `FOR UPDATE SKIP LOCKED` on PostgreSQL), and only the claimed get
    /// deliveries. So an event is routed whole or not at all, once
    /// however many replicas read it unrouted at the same moment, and a
    /// replica whose events another is routing neither waits nor routes
    /// them again. One transaction for the lot, not one an event: every
    /// replica routing every event, one transaction each, was two fifths
    /// of the statements three replicas sent while a fleet's states
    /// settled (docs/performance.md, issue 16).
    pub async fn route_events(
        &self,
        routing: &[Routing],
        now: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let mut ids: Vec<i64> = routing.iter().map(|r| r.event_id).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // SQLite has one writer at a time: the claim is the transaction's
        // first statement, so it takes the write lock before it reads.
        let lock = if self.is_postgres() {
            " ORDER BY id FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let mut claimed: Vec<i64> = Vec::with_capacity(ids.len());
        on_pool!(self, pool, Db => {
            // A backlog is routed in calls back to back (`WriteTurn`).
            let (_turn, mut tx) = self.begin_write(pool).await?;
            for chunk in crate::store::prepared_chunks(&ids, 64) {
                let mut qb = sqlx::QueryBuilder::<Db>::new(
                    "UPDATE alert_events SET routed = true WHERE id IN (\
                     SELECT id FROM alert_events WHERE routed = false AND id IN (",
                );
                crate::store::push_ids(&mut qb, chunk);
                qb.push(format!("){lock}) RETURNING id"));
                for row in qb.build().fetch_all(&mut *tx).await? {
                    claimed.push(row.try_get("id")?);
                }
            }
            claimed.sort_unstable();
            for r in routing.iter().filter(|r| claimed.binary_search(&r.event_id).is_ok()) {
                for (channel, kind) in &r.deliveries {
                    sqlx::query(
                        "INSERT INTO alert_deliveries (event_id, channel, kind, status, attempts, next_attempt_at, created_at) \
                         VALUES ($1, $2, $3, 'pending', 0, $4, $4) ON CONFLICT (event_id, channel) DO NOTHING",
                    )
                    .bind(r.event_id)
                    .bind(channel)
                    .bind(kind.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                for (subscriber, kind) in &r.subscribers {
                    sqlx::query(
                        "INSERT INTO subscriber_deliveries (event_id, subscriber_id, kind, status, attempts, next_attempt_at, created_at) \
                         VALUES ($1, $2, $3, 'pending', 0, $4, $4) ON CONFLICT (event_id, subscriber_id) DO NOTHING",
                    )
                    .bind(r.event_id)
                    .bind(subscriber)
                    .bind(kind.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await?;
        });
        Ok(claimed)
    }

    /// Claims up to `limit` deliveries due at `now`, the longest waiting
    /// first, for one attempt each: their `next_attempt_at` moves to
    /// `lease_until` (a sender that dies mid-attempt leaves the lease to run
    /// out; the delivery is then tried again). One statement, whose rows
    /// are locked `FOR UPDATE SKIP LOCKED` on PostgreSQL: two replicas
    /// claiming at once each get other deliveries, and none waits for the
    /// other (SQLite has one writer at a time and needs no such clause).
    pub async fn claim_due_alert_deliveries(
        &self,
        now: i64,
        limit: i64,
        lease_until: i64,
    ) -> Result<Vec<AlertDelivery>, StoreError> {
        let ids = self
            .claim_due("alert_deliveries", now, limit, lease_until)
            .await?;
        let (Some(first), Some(last)) = (ids.iter().min(), ids.iter().max()) else {
            return Ok(Vec::new());
        };
        // Read back what was claimed: the id range, then exactly these ids.
        let mut claimed = self
            .deliveries(
                "WHERE d.id >= $1 AND d.id <= $2 ORDER BY d.next_attempt_at, d.id",
                *first,
                *last,
            )
            .await?;
        claimed.retain(|d| ids.contains(&d.id));
        Ok(claimed)
    }

    /// Every delivery, oldest first (tests, tools).
    pub async fn alert_deliveries(&self) -> Result<Vec<AlertDelivery>, StoreError> {
        self.deliveries("WHERE d.id >= $1 ORDER BY d.id LIMIT $2", 0, i64::MAX)
            .await
    }

    /// The newest `limit` deliveries, newest first (`beacon alert list`).
    pub async fn recent_alert_deliveries(
        &self,
        limit: i64,
    ) -> Result<Vec<AlertDelivery>, StoreError> {
        self.deliveries("WHERE d.id >= $1 ORDER BY d.id DESC LIMIT $2", 0, limit)
            .await
    }

    async fn deliveries(
        &self,
        filter: &str,
        a: i64,
        b: i64,
    ) -> Result<Vec<AlertDelivery>, StoreError> {
        let sql = format!(
            "SELECT d.id, d.event_id, d.channel, d.kind, d.status, d.attempts, d.next_attempt_at, \
             d.last_error, d.sent_at, e.payload FROM alert_deliveries d \
             JOIN alert_events e ON e.id = d.event_id {filter}"
        );
        let rows = on_pool!(self, pool, _Db => {
            sqlx::query(&sql)
                .bind(a)
                .bind(b)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| -> Result<_, sqlx::Error> {
                    Ok((
                        r.try_get::<i64, _>("id")?,
                        r.try_get::<i64, _>("event_id")?,
                        r.try_get::<String, _>("channel")?,
                        r.try_get::<String, _>("kind")?,
                        r.try_get::<String, _>("status")?,
                        int_column!(r, "attempts"),
                        r.try_get::<i64, _>("next_attempt_at")?,
                        r.try_get::<Option<String>, _>("last_error")?,
                        r.try_get::<Option<i64>, _>("sent_at")?,
                        r.try_get::<String, _>("payload")?,
                    ))
                })
                .collect::<Result<Vec<_>, _>>()?
        });
        rows.into_iter()
            .map(
                |(
                    id,
                    event_id,
                    channel,
                    kind,
                    status,
                    attempts,
                    next,
                    last_error,
                    sent_at,
                    payload,
                )| {
                    let event = parse_event(&payload, event_id)?;
                    Ok(AlertDelivery {
                        id,
                        event_id,
                        channel,
                        kind: EventKind::parse(&kind).unwrap_or(event.kind),
                        status,
                        attempts,
                        next_attempt_at: next,
                        last_error,
                        sent_at,
                        event,
                    })
                },
            )
            .collect()
    }

    /// Records how an attempt ended (the attempt counts either way).
    pub async fn finish_alert_delivery(
        &self,
        id: i64,
        outcome: &DeliveryOutcome,
        now: i64,
    ) -> Result<(), StoreError> {
        self.finish_delivery("alert_deliveries", id, outcome, now)
            .await
    }

    /// Claims due rows of the delivery table `table` (see
    /// [`Store::claim_due_alert_deliveries`]): their ids.
    pub(super) async fn claim_due(
        &self,
        table: &'static str,
        now: i64,
        limit: i64,
        lease_until: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let lock = if self.is_postgres() {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let sql = format!(
            "UPDATE {table} SET next_attempt_at = $1 WHERE id IN (\
               SELECT id FROM {table} WHERE status = 'pending' AND next_attempt_at <= $2 \
               ORDER BY next_attempt_at, id LIMIT $3{lock}) \
             AND status = 'pending' AND next_attempt_at <= $2 RETURNING id"
        );
        Ok(on_pool!(self, pool, _Db => {
            sqlx::query_scalar(&sql)
                .bind(lease_until)
                .bind(now)
                .bind(limit)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Records how an attempt ended, in the delivery table `table`.
    pub(super) async fn finish_delivery(
        &self,
        table: &'static str,
        id: i64,
        outcome: &DeliveryOutcome,
        now: i64,
    ) -> Result<(), StoreError> {
        let (status, next, error, sent_at) = match outcome {
            DeliveryOutcome::Sent => ("sent", now, None, Some(now)),
            DeliveryOutcome::Retry { at, error } => ("pending", *at, Some(error.as_str()), None),
            DeliveryOutcome::Failed { error } => ("failed", now, Some(error.as_str()), None),
        };
        let sql = format!(
            "UPDATE {table} SET status = $1, attempts = attempts + 1, next_attempt_at = $2, \
             last_error = COALESCE($3, last_error), sent_at = $4 WHERE id = $5"
        );
        on_pool!(self, pool, _Db => {
            sqlx::query(&sql)
                .bind(status)
                .bind(next)
                .bind(error)
                .bind(sent_at)
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Pending deliveries per channel (for `/metrics`).
    pub async fn pending_alert_deliveries(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = on_pool!(self, pool, _Db => {
            sqlx::query(
                "SELECT channel, COUNT(*) AS n FROM alert_deliveries WHERE status = 'pending' \
                 GROUP BY channel ORDER BY channel",
            )
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| -> Result<(String, i64), sqlx::Error> { Ok((r.try_get("channel")?, r.try_get("n")?)) })
            .collect::<Result<Vec<_>, _>>()?
        });
        Ok(rows)
    }
}
