//! Probe results and state changes: the monitor's batches, written in one
//! transaction with the rollups that count them, the alert events and the
//! automatic incidents the policy decides for each change.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::Row;

use super::rollup::{self, Period, Rollup, ROLLUP_INSERT, ROLLUP_MERGE};
use super::{prepared_chunks, Pools, Store, StoreError, INSERT_CHUNK};
use crate::domain::policy::{self, ChangeFacts, Decision, IncidentAction, LatestIncident};
use crate::domain::time::DAY_MS;
use crate::domain::{Dependency, EventKind, Outcome, State};

/// One probe's result, as written to `check_results`.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    pub service_id: i64,
    pub checked_at: i64,
    pub outcome: Outcome,
    /// Taken during a maintenance window: stored as state 4, counted as
    /// maintenance (out of uptime) whatever the outcome.
    pub maintenance: bool,
    pub latency_ms: Option<i32>,
    pub status_code: Option<i16>,
    pub reason: Option<String>,
}

/// A change of a service's state, after thresholds.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusChange {
    pub service_id: i64,
    pub changed_at: i64,
    pub from: State,
    pub to: State,
    pub reason: Option<String>,
}

/// What the monitor writes in one transaction.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    pub results: Vec<CheckResult>,
    pub changes: Vec<StatusChange>,
    /// Services whose reported dependencies changed, with the new list.
    pub dependencies: Vec<(i64, Vec<Dependency>)>,
    /// Services whose certificate expiry (epoch ms) changed.
    pub certificates: Vec<(i64, i64)>,
    /// Certificates within their service's warning time: (service, expiry,
    /// seen at). Each raises one alert event, however often it is seen.
    pub certificate_warnings: Vec<(i64, i64, i64)>,
    /// A service going down within this long of its automatic incident's
    /// resolution reopens that incident instead of opening another.
    pub incident_cooldown_ms: i64,
    /// This server's own results of services probed from several
    /// locations, as its location saw them (agents' are written as they
    /// arrive).
    pub location_results: Vec<super::LocationResult>,
}

impl Batch {
    /// Appends `later` to this batch, as if its results had come after
    /// these: a batch the store could not take yet, and what came since.
    pub fn absorb(&mut self, later: Batch) {
        self.results.extend(later.results);
        self.location_results.extend(later.location_results);
        self.changes.extend(later.changes);
        for (id, deps) in later.dependencies {
            self.dependencies.retain(|(known, _)| *known != id);
            self.dependencies.push((id, deps));
        }
        for (id, expiry) in later.certificates {
            self.certificates.retain(|(known, _)| *known != id);
            self.certificates.push((id, expiry));
        }
        self.certificate_warnings.extend(later.certificate_warnings);
    }

    pub fn is_empty(&self) -> bool {
        self.results.is_empty()
            && self.location_results.is_empty()
            && self.changes.is_empty()
            && self.dependencies.is_empty()
            && self.certificates.is_empty()
            && self.certificate_warnings.is_empty()
    }
}

/// `check_results.state` of a result taken during maintenance.
pub(super) const MAINTENANCE_CODE: i16 = 4;

/// The outcome of a stored `check_results.state`. A result taken during
/// maintenance keeps no outcome of its own and reads as up (it counts as
/// maintenance); a code beacon never writes is a corrupt row, never up.
pub(super) fn outcome_of(code: i16) -> Result<Outcome, StoreError> {
    if code == MAINTENANCE_CODE {
        return Ok(Outcome::Up);
    }
    Outcome::from_code(code).ok_or_else(|| StoreError::Corrupt {
        table: "check_results",
        column: "state",
        value: code.to_string(),
    })
}

/// What a batch writes besides its rows, in the order it is written:
/// services by id, each once.
struct Plan<'a> {
    /// Every service the batch touches, in id order.
    touched: Vec<i64>,
    /// Newest check per service, to update `last_checked_at` once each.
    last_checked: BTreeMap<i64, i64>,
    /// `absorb` keeps the last of each service; their order is arrival.
    dependencies: Vec<&'a (i64, Vec<Dependency>)>,
    certificates: Vec<&'a (i64, i64)>,
}

impl<'a> Plan<'a> {
    fn of(batch: &'a Batch) -> Plan<'a> {
        let mut last_checked: BTreeMap<i64, i64> = BTreeMap::new();
        for r in &batch.results {
            let e = last_checked.entry(r.service_id).or_insert(r.checked_at);
            *e = (*e).max(r.checked_at);
        }
        let touched: BTreeSet<i64> = last_checked
            .keys()
            .copied()
            .chain(batch.changes.iter().map(|c| c.service_id))
            .chain(batch.dependencies.iter().map(|(id, _)| *id))
            .chain(batch.certificates.iter().map(|(id, _)| *id))
            .chain(batch.certificate_warnings.iter().map(|(id, _, _)| *id))
            .collect();
        let mut dependencies: Vec<_> = batch.dependencies.iter().collect();
        dependencies.sort_by_key(|(id, _)| *id);
        let mut certificates: Vec<_> = batch.certificates.iter().collect();
        certificates.sort_by_key(|(id, _)| *id);
        Plan {
            touched: touched.into_iter().collect(),
            last_checked,
            dependencies,
            certificates,
        }
    }
}

impl Store {
    /// Writes probe results and state changes in one transaction.
    ///
    /// Two writers on one PostgreSQL database (the old and the new pod of a
    /// rolling update, or replicas) lock the same services' rows. Taken in
    /// different orders, each would wait for the other until PostgreSQL
    /// kills one (40P01). So the transaction first locks every service row
    /// the batch touches, in id order, before it writes anything: the rows
    /// that hang on a service (its rollups, results, incidents, alert
    /// events) are then only ever written by the one writer holding it.
    /// The updates after it go in id order too. SQLite locks the whole file
    /// and needs none of this.
    pub async fn write_batch(&self, batch: &Batch) -> Result<(), StoreError> {
        self.write_batch_checked(batch).await.map(drop)
    }

    /// [`Store::write_batch`], answering the services whose state change
    /// the store did not record because the stored state was no longer the
    /// change's `from` (another replica wrote it first): the writer's idea
    /// of those services is stale, and it should read them again.
    ///
    /// A state change is a compare-and-swap on the previous state, so two
    /// writers (two replicas during a hand-over) never both record the
    /// same transition, nor its incident step or alert.
    pub async fn write_batch_checked(&self, batch: &Batch) -> Result<Vec<i64>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let plan = Plan::of(batch);
        let _turn = self.write_turn().await;
        match &self.0 {
            Pools::Sqlite(pool) => {
                on_sqlite::write(pool, batch, &plan, false, self.write_begin()).await
            }
            Pools::Postgres(pool) => {
                on_postgres::write(pool, batch, &plan, true, self.write_begin()).await
            }
        }
    }

    /// Where a new owner of a service starts its thresholds: the stored
    /// state and the outcomes since it was reached, oldest first, at most
    /// `limit` (the newest). A result taken in maintenance ends the run: the
    /// thresholds start afresh after a window.
    ///
    /// The newest results are in `check_results`; when fewer than `limit`
    /// of them are newer than the state, the packed hours before them are
    /// read too, newest first, until no older hour can hold one of the
    /// `limit` newest.
    pub async fn resume_point(
        &self,
        service_id: i64,
        limit: i64,
    ) -> Result<(State, Vec<Outcome>), StoreError> {
        let (state, since, mut recent) = on_pool!(self, pool, _Db => {
            let row = sqlx::query("SELECT state, state_since FROM services WHERE id = $1")
                .bind(service_id)
                .fetch_optional(pool)
                .await?;
            let Some(row) = row else {
                return Err(StoreError::invalid("service", format!("no service with id {service_id}")));
            };
            let state: String = row.try_get("state")?;
            let since: Option<i64> = row.try_get("state_since")?;
            let since = since.unwrap_or(0);
            let rows = sqlx::query(
                "SELECT checked_at, state FROM check_results WHERE service_id = $1 AND checked_at > $2 \
                 ORDER BY checked_at DESC LIMIT $3",
            )
            .bind(service_id)
            .bind(since)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            // (time, 1: a row not packed yet, code)
            let mut recent: Vec<(i64, u8, i16)> = Vec::with_capacity(rows.len());
            for row in rows {
                recent.push((row.try_get("checked_at")?, 1, row.try_get("state")?));
            }
            (state, since, recent)
        });
        let state = State::parse(&state).ok_or_else(|| StoreError::Corrupt {
            table: "services",
            column: "state",
            value: state.clone(),
        })?;
        let wanted = usize::try_from(limit).unwrap_or(0);
        if wanted == 0 {
            return Ok((state, Vec::new()));
        }
        // Newest first, one per millisecond (the packed one, as a pass's
        // merge keeps it), at most `wanted`.
        let settle = |recent: &mut Vec<(i64, u8, i16)>| {
            recent.sort_by_key(|r| (std::cmp::Reverse(r.0), r.1));
            recent.dedup_by_key(|r| r.0);
            recent.truncate(wanted);
        };
        let mut below = i64::MAX;
        loop {
            // The `limit`-th newest so far: an hour ending at or before it
            // holds nothing newer.
            settle(&mut recent);
            let floor = if recent.len() < wanted {
                i64::MIN
            } else {
                recent[wanted - 1].0
            };
            let hour = self
                .packed_hour_before(service_id, super::packed::hour_of(since), below)
                .await?;
            let Some((hour, rows)) = hour else { break };
            if hour + crate::domain::time::HOUR_MS <= floor {
                break;
            }
            below = hour;
            recent.extend(
                rows.into_iter()
                    .filter(|r| r.checked_at > since)
                    .map(|r| (r.checked_at, 0, r.code)),
            );
        }
        settle(&mut recent);
        let mut outcomes = Vec::with_capacity(recent.len());
        for (_, _, code) in recent {
            if code == MAINTENANCE_CODE {
                break;
            }
            outcomes.push(outcome_of(code)?);
        }
        outcomes.reverse();
        Ok((state, outcomes))
    }

    /// Every stored result of one service, oldest first (tests and tools):
    /// the packed hours and the rows not packed yet.
    pub async fn check_results(&self, slug: &str) -> Result<Vec<CheckResult>, StoreError> {
        let (service_id, raws) = on_pool!(self, pool, _Db => {
            let Some(service_id) = sqlx::query_scalar::<_, i64>("SELECT id FROM services WHERE slug = $1")
                .bind(slug)
                .fetch_optional(pool)
                .await?
            else {
                return Ok(Vec::new());
            };
            // The rows first, then the packed hours: a pass moving rows in
            // between leaves them in both reads (kept once, below), never
            // in neither.
            let mut rows_read = Vec::new();
            let rows = sqlx::query(
                "SELECT checked_at, state, latency_ms, status_code, reason \
                 FROM check_results WHERE service_id = $1 ORDER BY checked_at",
            )
            .bind(service_id)
            .fetch_all(pool)
            .await?;
            for row in rows {
                rows_read.push(super::packed::Raw {
                    checked_at: row.try_get("checked_at")?,
                    code: row.try_get("state")?,
                    latency_ms: row.try_get("latency_ms")?,
                    status_code: row.try_get("status_code")?,
                    reason: row.try_get("reason")?,
                });
            }
            let mut raws = Vec::new();
            let packed = sqlx::query(
                "SELECT hour_start, data FROM check_result_hours WHERE service_id = $1 ORDER BY hour_start",
            )
            .bind(service_id)
            .fetch_all(pool)
            .await?;
            for row in packed {
                let hour: i64 = row.try_get("hour_start")?;
                let data: Vec<u8> = row.try_get("data")?;
                raws.extend(super::packed::decode(hour, &data)?);
            }
            raws.extend(rows_read);
            (service_id, raws)
        });
        // A late result of an hour already packed sits in check_results
        // until the next pass: one order for both, one result per
        // millisecond (the packed one first, as the pass's merge keeps it).
        let mut raws = raws;
        raws.sort_by_key(|r| r.checked_at);
        raws.dedup_by_key(|r| r.checked_at);
        raws.into_iter()
            .map(|r| {
                Ok(CheckResult {
                    service_id,
                    checked_at: r.checked_at,
                    outcome: outcome_of(r.code)?,
                    maintenance: r.code == MAINTENANCE_CODE,
                    latency_ms: r.latency_ms,
                    status_code: r.status_code,
                    reason: r.reason,
                })
            })
            .collect()
    }

    /// Every recorded state change of one service, oldest first.
    pub async fn status_changes(&self, slug: &str) -> Result<Vec<StatusChange>, StoreError> {
        let rows = on_pool!(self, pool, _Db => {
            let rows = sqlx::query(
                "SELECT c.service_id, c.changed_at, c.from_state, c.to_state, c.reason \
                 FROM status_changes c JOIN services s ON s.id = c.service_id \
                 WHERE s.slug = $1 ORDER BY c.changed_at, c.id",
            )
            .bind(slug)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let from: String = row.try_get("from_state")?;
                let to: String = row.try_get("to_state")?;
                out.push(StatusChange {
                    service_id: row.try_get("service_id")?,
                    changed_at: row.try_get("changed_at")?,
                    from: State::parse(&from).unwrap_or(State::Unknown),
                    to: State::parse(&to).unwrap_or(State::Unknown),
                    reason: row.try_get("reason")?,
                });
            }
            out
        });
        Ok(rows)
    }
}

/// The steps of [`Store::write_batch`], written once and compiled for each
/// backend (`Db`): the transaction's connection is then a concrete type.
macro_rules! batch_steps {
    () => {
        use super::*;

        type Conn = <Db as sqlx::Database>::Connection;

        pub(super) async fn write(
            pool: &sqlx::Pool<Db>,
            batch: &Batch,
            plan: &Plan<'_>,
            row_locks: bool,
            begin: &'static str,
        ) -> Result<Vec<i64>, StoreError> {
            let mut conn = pool.acquire().await?;
            match transaction(&mut conn, batch, plan, row_locks, begin).await {
                Ok(stale) => Ok(stale),
                Err(e) => {
                // A transaction that failed half-way can leave its
                // connection holding the write lock (SQLite after
                // SQLITE_FULL: the automatic rollback and sqlx's own then
                // disagree), and every later write would wait on it as
                // "database is locked". Close it instead of reusing it.
                    let _ = sqlx::Connection::close(conn.detach()).await;
                    Err(e)
                }
            }
        }

        async fn transaction(
            conn: &mut Conn,
            batch: &Batch,
            plan: &Plan<'_>,
            row_locks: bool,
            begin: &'static str,
        ) -> Result<Vec<i64>, StoreError> {
            // `Store::write_begin`: a batch without results reads first
            // (a state change's compare-and-swap, a certificate warning),
            // and on SQLite a deferred begin would fail its write at once
            // if another writer committed in between.
            let mut tx = sqlx::Connection::begin_with(conn, begin).await?;
            if row_locks {
                lock_services(&mut tx, &plan.touched).await?;
            }
            insert_results(&mut tx, &batch.results).await?;
            insert_location_results(&mut tx, &batch.location_results).await?;
            // Rollups in the same transaction as the results they count.
            add_rollups(&mut tx, &batch.results).await?;
            let mut stale = Vec::new();
            for change in &batch.changes {
                if !record_change(&mut tx, change, batch.incident_cooldown_ms).await? {
                    stale.push(change.service_id);
                }
            }
            set_dependencies(&mut tx, &plan.dependencies).await?;
            set_certificates(&mut tx, &plan.certificates).await?;
            warn_certificates(&mut tx, &batch.certificate_warnings).await?;
            set_last_checked(&mut tx, &plan.last_checked).await?;
            if batch.changes.is_empty() {
                bump_changes!(tx, routine);
            } else {
                bump_changes!(tx);
            }
            tx.commit().await?;
            Ok(stale)
        }

        /// `FOR NO KEY UPDATE` on every touched service, in id order
        /// (chunks in order keep the whole in order).
        async fn lock_services(tx: &mut Conn, touched: &[i64]) -> Result<(), StoreError> {
            for chunk in prepared_chunks(touched, INSERT_CHUNK) {
                let mut qb = sqlx::QueryBuilder::<Db>::new("SELECT id FROM services WHERE id IN (");
                crate::store::push_ids(&mut qb, chunk);
                qb.push(") ORDER BY id FOR NO KEY UPDATE");
                qb.build().fetch_all(&mut *tx).await?;
            }
            Ok(())
        }

        async fn insert_results(tx: &mut Conn, results: &[CheckResult]) -> Result<(), StoreError> {
            for chunk in prepared_chunks(results, INSERT_CHUNK) {
                let mut qb = sqlx::QueryBuilder::<Db>::new(
                    "INSERT INTO check_results (service_id, checked_at, state, latency_ms, status_code, reason) ",
                );
                qb.push_values(chunk, |mut row, r| {
                    row.push_bind(r.service_id)
                        .push_bind(r.checked_at)
                        .push_bind(if r.maintenance { MAINTENANCE_CODE } else { r.outcome.code() })
                        .push_bind(r.latency_ms)
                        .push_bind(r.status_code)
                        .push_bind(r.reason.as_deref());
                });
                // Two results of one service in the same millisecond can only
                // come from a clock step; keep the first rather than fail the batch.
                qb.push(" ON CONFLICT (service_id, checked_at) DO NOTHING");
                // Kept prepared: a dozen texts in all (`prepared_chunks`).
                qb.build().execute(&mut *tx).await?;
            }
            Ok(())
        }

        async fn insert_location_results(
            tx: &mut Conn,
            rows: &[crate::store::LocationResult],
        ) -> Result<(), StoreError> {
            for chunk in prepared_chunks(rows, INSERT_CHUNK) {
                let mut qb = sqlx::QueryBuilder::<Db>::new(crate::store::locations::LOCATION_INSERT);
                crate::store::locations::push_location_rows!(qb, chunk);
                qb.push(" ON CONFLICT (service_id, location, checked_at) DO NOTHING");
                qb.build().execute(&mut *tx).await?;
            }
            Ok(())
        }

        async fn add_rollups(tx: &mut Conn, results: &[CheckResult]) -> Result<(), StoreError> {
            let rollups: Vec<((i64, Period, i64), Rollup)> =
                rollup::aggregate(results).into_iter().collect();
            for chunk in prepared_chunks(&rollups, INSERT_CHUNK / 2) {
                let mut qb = sqlx::QueryBuilder::<Db>::new(ROLLUP_INSERT);
                qb.push_values(chunk, |mut row, ((service_id, period, start), r)| {
                    row.push_bind(*service_id)
                        .push_bind(period.as_str())
                        .push_bind(*start)
                        .push_bind(r.up)
                        .push_bind(r.degraded)
                        .push_bind(r.down)
                        .push_bind(r.maintenance)
                        .push_bind(r.latency_count)
                        .push_bind(r.latency_sum)
                        .push_bind(r.latency_max);
                    for n in r.histogram {
                        row.push_bind(n);
                    }
                });
                qb.push(ROLLUP_MERGE.as_str());
                qb.build().execute(&mut *tx).await?;
            }
            Ok(())
        }

        /// One state change: the service's new state (a compare-and-swap
        /// on the previous one), its row, then what the policy decides of
        /// it, all in the batch's transaction. `false`: the stored state was
        /// not the change's `from` any more (another writer recorded a
        /// change first), so nothing of this one is written.
        async fn record_change(
            tx: &mut Conn,
            c: &StatusChange,
            cooldown_ms: i64,
        ) -> Result<bool, StoreError> {
            // A row deleted under beacon is this change's own fault, and
            // permanent: never a reason to hold every later write back.
            let service = sqlx::query("SELECT slug, name, group_name, state, state_since FROM services WHERE id = $1")
                .bind(c.service_id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::invalid("service", format!("no service with id {}", c.service_id)))?;
            let stored: String = service.try_get("state")?;
            if stored != c.from.as_str() {
                tracing::info!(service_id = c.service_id, stored = %stored, from = %c.from, to = %c.to, "state change not recorded: another writer changed this service's state first");
                return Ok(false);
            }
            let swapped = sqlx::query(&format!(
                "UPDATE services SET state = $1, state_since = $2, revision = {} WHERE id = $3 AND state = $4",
                <Db as crate::store::Revisions>::MOVED
            ))
                .bind(c.to.as_str())
                .bind(c.changed_at)
                .bind(c.service_id)
                .bind(c.from.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if swapped != 1 {
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO status_changes (service_id, changed_at, from_state, to_state, reason) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(c.service_id)
            .bind(c.changed_at)
            .bind(c.from.as_str())
            .bind(c.to.as_str())
            .bind(c.reason.as_deref())
            .execute(&mut *tx)
            .await?;
            let service_ref = crate::domain::ServiceRef {
                slug: service.try_get("slug")?,
                name: service.try_get("name")?,
                group: service.try_get("group_name")?,
            };
            let from_since: Option<i64> = service.try_get("state_since")?;
            let facts = ChangeFacts {
                before_maintenance: state_before_maintenance(tx, c).await?,
                latest_incident: latest_automatic_incident(tx, c.service_id).await?,
                service: service_ref,
                from: c.from,
                to: c.to,
                at: c.changed_at,
                reason: c.reason.clone(),
                from_since,
                cooldown_ms,
            };
            apply(tx, c, policy::decide(&facts)).await?;
            Ok(true)
        }

        /// Leaving maintenance compares with the state before the window.
        async fn state_before_maintenance(
            tx: &mut Conn,
            c: &StatusChange,
        ) -> Result<Option<State>, StoreError> {
            if c.from != State::Maintenance {
                return Ok(None);
            }
            let before: Option<String> = sqlx::query_scalar(
                "SELECT from_state FROM status_changes WHERE service_id = $1 AND to_state = $2 \
                 AND changed_at <= $3 ORDER BY changed_at DESC, id DESC LIMIT 1",
            )
            .bind(c.service_id)
            .bind(State::Maintenance.as_str())
            .bind(c.changed_at)
            .fetch_optional(&mut *tx)
            .await?;
            Ok(before.as_deref().and_then(State::parse))
        }

        async fn latest_automatic_incident(
            tx: &mut Conn,
            service_id: i64,
        ) -> Result<Option<LatestIncident>, StoreError> {
            let row = sqlx::query(
                "SELECT i.id, i.resolved_at, i.started_at FROM incidents i \
                 JOIN incident_services s ON s.incident_id = i.id \
                 WHERE s.service_id = $1 AND i.automatic = $2 \
                 ORDER BY i.started_at DESC, i.id DESC LIMIT 1",
            )
            .bind(service_id)
            .bind(true)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else { return Ok(None) };
            Ok(Some(LatestIncident {
                id: row.try_get("id")?,
                resolved_at: row.try_get("resolved_at")?,
                started_at: row.try_get("started_at")?,
            }))
        }

        /// Persists the policy's decision: the alert event (one per change,
        /// never lost, never twice) and the automatic incident (a restart or
        /// a second replica finds the same open incident and opens no other).
        async fn apply(tx: &mut Conn, c: &StatusChange, decision: Decision) -> Result<(), StoreError> {
            if let Some(event) = &decision.event {
                // Keyed by the transition: the same change seen twice is
                // one event.
                let key = format!("state:{}:{}:{}", c.service_id, c.changed_at, c.to.as_str());
                insert_alert_event!(tx, event, Some(c.service_id), Some(key));
            }
            let (id, status, message, opened) = match decision.incident {
                None => return Ok(()),
                Some(IncidentAction::Open { title, impact, message }) => {
                    // One open automatic incident per service, by the
                    // partial unique index: an insert that loses a race
                    // (another writer opened it) does nothing.
                    let id: Option<i64> = sqlx::query_scalar(
                        "INSERT INTO incidents (title, impact, status, automatic, started_at, created_at, updated_at, auto_service_id) \
                         VALUES ($1, $2, 'investigating', $3, $4, $4, $4, $5) \
                         ON CONFLICT (auto_service_id) WHERE resolved_at IS NULL DO NOTHING RETURNING id",
                    )
                    .bind(title)
                    .bind(impact)
                    .bind(true)
                    .bind(c.changed_at)
                    .bind(c.service_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(id) = id else {
                        tracing::info!(service_id = c.service_id, "an automatic incident is open for this service already; not opening another");
                        return Ok(());
                    };
                    sqlx::query("INSERT INTO incident_services (incident_id, service_id) VALUES ($1, $2)")
                        .bind(id)
                        .bind(c.service_id)
                        .execute(&mut *tx)
                        .await?;
                    (id, "investigating", message, true)
                }
                Some(IncidentAction::Update { id, status, resolved_at, message }) => {
                    sqlx::query("UPDATE incidents SET status = $1, resolved_at = $2, updated_at = $3, revision = revision + 1 WHERE id = $4")
                        .bind(status)
                        .bind(resolved_at)
                        .bind(c.changed_at)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    (id, status, message, false)
                }
            };
            sqlx::query(
                "INSERT INTO incident_updates (incident_id, status, message, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(status)
            .bind(&message)
            .bind(c.changed_at)
            .execute(&mut *tx)
            .await?;
            // For subscribers: alert channels were told by the service's own
            // event and leave automatic incidents' events aside (`notify::route`).
            let kind = match status {
                _ if opened => EventKind::IncidentOpened,
                "resolved" => EventKind::IncidentResolved,
                _ => EventKind::IncidentUpdated,
            };
            insert_incident_event!(tx, id, kind, &message, c.changed_at, true, true);
            Ok(())
        }

        async fn set_dependencies(
            tx: &mut Conn,
            dependencies: &[&(i64, Vec<Dependency>)],
        ) -> Result<(), StoreError> {
            for (service_id, deps) in dependencies {
                let json = if deps.is_empty() {
                    None
                } else {
                    Some(serde_json::to_string(deps).unwrap_or_else(|_| "[]".into()))
                };
                sqlx::query(&format!(
                    "UPDATE services SET dependencies = $1, revision = {} WHERE id = $2",
                    <Db as crate::store::Revisions>::MOVED
                ))
                    .bind(json)
                    .bind(*service_id)
                    .execute(&mut *tx)
                    .await?;
            }
            Ok(())
        }

        async fn set_certificates(tx: &mut Conn, certificates: &[&(i64, i64)]) -> Result<(), StoreError> {
            for (service_id, expires_at) in certificates {
                sqlx::query(&format!(
                    "UPDATE services SET certificate_expires_at = $1, revision = {} WHERE id = $2",
                    <Db as crate::store::Revisions>::MOVED
                ))
                    .bind(*expires_at)
                    .bind(*service_id)
                    .execute(&mut *tx)
                    .await?;
            }
            Ok(())
        }

        /// One alert per certificate: a renewed one (another expiry) warns
        /// again when its time comes.
        async fn warn_certificates(
            tx: &mut Conn,
            warnings: &[(i64, i64, i64)],
        ) -> Result<(), StoreError> {
            for (service_id, expires_at, at) in warnings {
                let service = sqlx::query("SELECT slug, name, group_name, state, state_since FROM services WHERE id = $1")
                    .bind(*service_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or_else(|| StoreError::invalid("service", format!("no service with id {service_id}")))?;
                let state: String = service.try_get("state")?;
                let event = crate::domain::Event {
                    location: None,
            maintenance: None,
                    kind: crate::domain::EventKind::CertificateExpiring,
                    at: *at,
                    service: Some(crate::domain::ServiceFacts {
                        service: crate::domain::ServiceRef {
                            slug: service.try_get("slug")?,
                            name: service.try_get("name")?,
                            group: service.try_get("group_name")?,
                        },
                        previous_state: state.clone(),
                        state,
                        since: service.try_get::<Option<i64>, _>("state_since")?.unwrap_or(*at),
                        previous_since: None,
                        reason: None,
                    }),
                    incident: None,
                    backup: None,
                    certificate: Some(crate::domain::CertificateFacts {
                        expires_at: *expires_at,
                        days_left: (*expires_at - *at).max(0) / DAY_MS,
                    }),
                };
                insert_alert_event!(tx, &event, Some(*service_id), Some(format!("certificate:{service_id}:{expires_at}")));
            }
            Ok(())
        }

        /// Each service's newest check, a chunk of services per statement
        /// (`UPDATE … FROM (VALUES …)`, both databases): one statement per
        /// service was a round trip to the database (on SQLite, to its
        /// driver's thread and back) per probe. It leaves the row's
        /// `revision` alone: the snapshot reads every last check with the
        /// revisions ([`Store::page_versions`]), and a moved revision would
        /// have it read the whole row again after every probe.
        async fn set_last_checked(tx: &mut Conn, last_checked: &BTreeMap<i64, i64>) -> Result<(), StoreError> {
            let pairs: Vec<(i64, i64)> = last_checked.iter().map(|(id, at)| (*id, *at)).collect();
            for chunk in prepared_chunks(&pairs, INSERT_CHUNK / 2) {
                let mut qb = sqlx::QueryBuilder::<Db>::new(
                    "UPDATE services SET last_checked_at = v.column2 FROM (",
                );
                qb.push_values(chunk, |mut row, (id, at)| {
                    row.push_bind(*id).push_bind(*at);
                });
                qb.push(
                    ") AS v WHERE services.id = v.column1 \
                     AND (services.last_checked_at IS NULL OR services.last_checked_at < v.column2)",
                );
                qb.build().execute(&mut *tx).await?;
            }
            Ok(())
        }
    };
}

mod on_sqlite {
    type Db = sqlx::Sqlite;
    batch_steps!();
}

mod on_postgres {
    type Db = sqlx::Postgres;
    batch_steps!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_state_code_reads_as_its_outcome_and_garbage_as_corrupt() {
        for outcome in [Outcome::Up, Outcome::Degraded, Outcome::Down] {
            assert_eq!(outcome_of(outcome.code()).ok(), Some(outcome));
        }
        assert_eq!(outcome_of(MAINTENANCE_CODE).ok(), Some(Outcome::Up));
        let err = outcome_of(77).expect_err("77 is no state");
        assert!(matches!(
            err,
            StoreError::Corrupt {
                table: "check_results",
                column: "state",
                ..
            }
        ));
        assert_eq!(err.to_string(), "corrupt row: check_results.state holds 77");
    }
}
