//! The store: everything beacon keeps, in SQLite (the embedded default) or
//! PostgreSQL, behind one type.
//!
//! `Store` is an enum rather than a trait object: the two backends share
//! almost all of their SQL (times are epoch milliseconds on both sides, and
//! both speak `$1` placeholders, `ON CONFLICT` and `RETURNING`), so each
//! method is written once and [`on_pool!`] expands it for each pool. Only
//! connecting and the migration folders differ (`sqlite.rs`, `postgres.rs`).

mod postgres;
pub mod rollup;
mod sqlite;

use rollup::{Period, Rollup};

use std::collections::HashMap;

use sqlx::Row;

use crate::config::{DatabaseUrl, ServiceConfig};
use crate::domain::policy::{self, ChangeFacts, IncidentAction, LatestIncident};
use crate::domain::time::{DAY_MS, HOUR_MS};
use crate::domain::{Dependency, Outcome, State};

/// Runs `$body` with `$pool` bound to the concrete pool and `$db` to its
/// sqlx database type, once per backend.
macro_rules! on_pool {
    ($store:expr, $pool:ident, $db:ident => $body:expr) => {
        match $store {
            Store::Sqlite($pool) => {
                #[allow(dead_code)]
                type $db = sqlx::Sqlite;
                $body
            }
            Store::Postgres($pool) => {
                #[allow(dead_code)]
                type $db = sqlx::Postgres;
                $body
            }
        }
    };
}

/// A `rollups` row's counts, latency and histogram. INTEGER is 4 bytes on
/// PostgreSQL, 8 on SQLite: both decode to i64. A macro because each
/// backend's row is its own type.
macro_rules! int_column {
    ($row:expr, $column:expr) => {
        $row.try_get::<i64, _>($column)
            .or_else(|_| $row.try_get::<i32, _>($column).map(i64::from))?
    };
}

macro_rules! rollup_from_row {
    ($row:expr) => {{
        let mut histogram = [0i64; rollup::BUCKETS];
        for (h, column) in histogram.iter_mut().zip(rollup::HISTOGRAM_COLUMNS) {
            *h = int_column!($row, column);
        }
        Rollup {
            up: int_column!($row, "up"),
            degraded: int_column!($row, "degraded"),
            down: int_column!($row, "down"),
            maintenance: int_column!($row, "maintenance"),
            latency_count: int_column!($row, "latency_count"),
            latency_sum: int_column!($row, "latency_sum"),
            latency_max: int_column!($row, "latency_max"),
            histogram,
        }
    }};
}

/// Inserts `$event` (a [`crate::domain::Event`]) into `alert_events` on
/// `$tx`, in the transaction of what caused it. A `$dedupe` key already
/// stored makes it a no-op.
macro_rules! insert_alert_event {
    ($tx:expr, $event:expr, $service_id:expr, $dedupe:expr) => {{
        let event: &crate::domain::Event = $event;
        let payload = serde_json::to_string(event)
            .map_err(|e| sqlx::Error::Protocol(format!("alert event payload: {e}")))?;
        let service_id: Option<i64> = $service_id;
        let dedupe: Option<String> = $dedupe;
        sqlx::query(
            "INSERT INTO alert_events (kind, service_id, dedupe_key, payload, created_at, routed) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (dedupe_key) DO NOTHING",
        )
        .bind(event.kind.as_str())
        .bind(service_id)
        .bind(dedupe)
        .bind(payload)
        .bind(event.at)
        .bind(false)
        .execute(&mut *$tx)
        .await?;
    }};
}

/// Inserts the alert event of an incident write (`$kind`, about the update
/// `$message`), reading the incident as `$tx` now sees it.
macro_rules! insert_incident_event {
    ($tx:expr, $id:expr, $kind:expr, $message:expr, $at:expr) => {{
        let id: i64 = $id;
        let row = sqlx::query("SELECT title, status, impact, automatic FROM incidents WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *$tx)
            .await?;
        let mut services = Vec::new();
        for s in sqlx::query(
            "SELECT s.slug, s.name, s.group_name FROM incident_services x \
             JOIN services s ON s.id = x.service_id WHERE x.incident_id = $1 ORDER BY s.position, s.id",
        )
        .bind(id)
        .fetch_all(&mut *$tx)
        .await?
        {
            services.push(crate::domain::ServiceRef {
                slug: s.try_get("slug")?,
                name: s.try_get("name")?,
                group: s.try_get("group_name")?,
            });
        }
        let event = crate::domain::Event {
            kind: $kind,
            at: $at,
            service: None,
            incident: Some(crate::domain::IncidentFacts {
                id,
                title: row.try_get("title")?,
                status: row.try_get("status")?,
                impact: row.try_get("impact")?,
                automatic: row.try_get("automatic")?,
                message: $message.to_string(),
                services,
            }),
            backup: None,
            certificate: None,
        };
        insert_alert_event!($tx, &event, None, None);
    }};
}

mod alerts;
mod backups;
mod incidents;
mod maintenances;

pub use alerts::{AlertDelivery, DeliveryOutcome, StoredEvent};
pub use backups::BackupRecord;

pub use incidents::{Incident, IncidentPatch, IncidentUpdate, NewIncident};
pub use maintenances::{Maintenance, MaintenanceInput, ServiceWindow};

#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot create the folder {path} for the SQLite database: {source}")]
    CreateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("applying migrations failed: {0}")]
    Migrate(sqlx::migrate::MigrateError),
    #[error("migrations are not applied (database at version {applied:?}, beacon needs {expected}); run `beacon migrate`")]
    NotMigrated { applied: Option<i64>, expected: i64 },
    #[error("store query failed: {0}")]
    Query(sqlx::Error),
    /// The request names something the store does not hold (an unknown
    /// service slug…): the caller's input, not the store, is wrong.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

impl StoreError {
    /// True when a healthy database would refuse the same write again: a
    /// constraint, a value it cannot encode or store. Only such an error may
    /// make the writer give data up. Everything else (the server refusing
    /// connections or shutting down, too many clients, a pool timeout, a
    /// deadlock, `SQLITE_BUSY`, a read-only or full disk, an I/O error) is a
    /// fault of the moment and is retried.
    pub fn is_permanent(&self) -> bool {
        match self {
            StoreError::Invalid { .. } => true,
            StoreError::Query(e) => match e {
                sqlx::Error::Encode(_)
                | sqlx::Error::Decode(_)
                | sqlx::Error::ColumnDecode { .. } => true,
                sqlx::Error::Database(db) => {
                    let code = db.code();
                    let code = code.as_deref().unwrap_or("");
                    match code.parse::<i64>() {
                        // SQLite: the primary result code is the low byte of
                        // the extended one. CONSTRAINT, TOOBIG, MISMATCH, RANGE.
                        Ok(extended) => matches!(extended & 0xff, 18 | 19 | 20 | 25),
                        // PostgreSQL's SQLSTATE: class 22 (data exception) and
                        // 23 (integrity constraint violation). Classes 08
                        // (connection), 53 (resources), 57 (operator
                        // intervention, "cannot connect now"), 40 (deadlock,
                        // serialization) and the rest are transient.
                        Err(_) => code.starts_with("22") || code.starts_with("23"),
                    }
                }
                _ => false,
            },
            _ => false,
        }
    }
}

// Written by hand rather than with `#[from]`: the inner error is already in
// the message, and marking it as the source too would print it twice.
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Query(e)
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(e)
    }
}

/// A configured service as the store knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredService {
    pub id: i64,
    pub slug: String,
    pub state: State,
    pub state_since: Option<i64>,
}

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
}

impl Batch {
    /// Appends `later` to this batch, as if its results had come after
    /// these: a batch the store could not take yet, and what came since.
    pub fn absorb(&mut self, later: Batch) {
        self.results.extend(later.results);
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
            && self.changes.is_empty()
            && self.dependencies.is_empty()
            && self.certificates.is_empty()
            && self.certificate_warnings.is_empty()
    }
}

/// What the status page needs to know of one service.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSummary {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub group: Option<String>,
    pub description: Option<String>,
    pub public: bool,
    pub position: i64,
    pub state: State,
    pub state_since: Option<i64>,
    pub last_checked_at: Option<i64>,
    /// When beacon first saw the service in its config.
    pub created_at: i64,
    /// Results in the last 24 h, and how many of them were up or degraded.
    pub checks_24h: i64,
    pub ok_24h: i64,
    /// As reported by the latest health document.
    pub dependencies: Vec<Dependency>,
    /// notAfter of the certificate the latest TLS/HTTPS probe saw.
    pub certificate_expires_at: Option<i64>,
}

/// Every table of beacon's schema (restore drops exactly these).
pub const BEACON_TABLES: &[&str] = &[
    "_sqlx_migrations",
    "services",
    "check_results",
    "status_changes",
    "rollups",
    "incidents",
    "incident_updates",
    "incident_services",
    "maintenances",
    "maintenance_services",
    "backups",
    "alert_events",
    "alert_deliveries",
];

/// One service's recent rollups, oldest first (see `Store::recent_rollups`).
#[derive(Debug, Clone, Default)]
pub struct RecentRollups {
    pub hours: Vec<(i64, Rollup)>,
    pub days: Vec<(i64, Rollup)>,
}

impl RecentRollups {
    /// Counts over the page's windows: 24 h (hourly), 7, 30 and 90 days
    /// (daily, today included).
    pub fn windows(&self, now: i64) -> [Rollup; 4] {
        let today = Period::Day.bucket_start(now);
        let mut w: [Rollup; 4] = Default::default();
        for (_, r) in &self.hours {
            w[0].merge(r);
        }
        for (start, r) in &self.days {
            for (i, days) in [(1, 7), (2, 30), (3, 90)] {
                if *start > today - days * DAY_MS {
                    w[i].merge(r);
                }
            }
        }
        w
    }
}

/// "relation does not exist" (PostgreSQL 42P01) or "no such table" (SQLite).
fn is_undefined_table(e: &dyn sqlx::error::DatabaseError) -> bool {
    e.code().as_deref() == Some("42P01") || e.message().starts_with("no such table")
}

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

/// `check_results.state` of a result taken during maintenance.
const MAINTENANCE_CODE: i16 = 4;

/// Rollups from an hour and a day on. Every count as BIGINT, so each
/// column decodes as i64 at the first try on PostgreSQL too (where INTEGER
/// is 4 bytes): a full read is 114 rows per service.
static ROLLUP_SELECT_SINCE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let counts = rollup::COUNT_COLUMNS
        .into_iter()
        .chain(rollup::HISTOGRAM_COLUMNS)
        .map(|c| format!("CAST({c} AS BIGINT) AS {c}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT service_id, period, bucket_start, {counts} FROM rollups \
         WHERE (period = 'h' AND bucket_start >= $1) OR (period = 'd' AND bucket_start >= $2)"
    )
});

/// Rows per multi-row INSERT: well under SQLite's 32,766 bound parameters.
const INSERT_CHUNK: usize = 1000;

const ROLLUP_INSERT: &str =
    "INSERT INTO rollups (service_id, period, bucket_start, up, degraded, down, \
     maintenance, latency_count, latency_sum, latency_max, h00, h01, h02, h03, h04, h05, h06, h07, \
     h08, h09, h10, h11, h12, h13, h14, h15) ";

/// Adds a batch's counts to existing rollups (portable: no GREATEST/MAX()).
static ROLLUP_MERGE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    // Every count adds up but the maximum, which is taken below.
    let mut sets: Vec<String> = rollup::COUNT_COLUMNS
        .iter()
        .filter(|c| **c != "latency_max")
        .map(|c| format!("{c} = rollups.{c} + excluded.{c}"))
        .collect();
    sets.push(
        "latency_max = CASE WHEN excluded.latency_max > rollups.latency_max \
         THEN excluded.latency_max ELSE rollups.latency_max END"
            .into(),
    );
    sets.extend(
        (0..rollup::BUCKETS).map(|i| format!("h{i:02} = rollups.h{i:02} + excluded.h{i:02}")),
    );
    format!(
        " ON CONFLICT (service_id, period, bucket_start) DO UPDATE SET {}",
        sets.join(", ")
    )
});

impl Store {
    /// Opens the store named by `url` (`sqlite://…` or `postgres://…`).
    pub async fn connect(url: &DatabaseUrl) -> Result<Store, StoreError> {
        if url.expose().starts_with("sqlite:") {
            sqlite::connect(url).await.map(Store::Sqlite)
        } else {
            postgres::connect(url).await.map(Store::Postgres)
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        match self {
            Store::Sqlite(_) => &sqlite::MIGRATOR,
            Store::Postgres(_) => &postgres::MIGRATOR,
        }
    }

    /// The newest migration this binary knows.
    pub fn expected_schema_version(&self) -> i64 {
        self.migrator()
            .iter()
            .map(|m| m.version)
            .max()
            .unwrap_or_default()
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        on_pool!(self, pool, _Db => self.migrator().run(pool).await?);
        Ok(())
    }

    /// The newest migration applied to the database, if any.
    pub async fn schema_version(&self) -> Result<Option<i64>, StoreError> {
        let version: Option<i64> = on_pool!(self, pool, _Db => {
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(pool)
                .await?
        });
        Ok(version)
    }

    /// For `/readyz`: the store answers, and its schema is this binary's.
    pub async fn check_ready(&self) -> Result<(), StoreError> {
        let expected = self.expected_schema_version();
        let applied = match self.schema_version().await {
            Ok(v) => v,
            // No migrations table at all: reachable, but not migrated.
            Err(StoreError::Query(sqlx::Error::Database(e))) if is_undefined_table(&*e) => None,
            Err(e) => return Err(e),
        };
        if applied.unwrap_or(0) < expected {
            return Err(StoreError::NotMigrated { applied, expected });
        }
        Ok(())
    }

    pub async fn close(&self) {
        on_pool!(self, pool, _Db => pool.close().await)
    }

    /// Makes the `services` table match the config, in one transaction:
    /// services are matched by slug; those no longer configured are marked
    /// inactive (their history stays, the page stops showing them).
    pub async fn sync_services(
        &self,
        services: &[ServiceConfig],
        now: i64,
    ) -> Result<Vec<StoredService>, StoreError> {
        let stored = on_pool!(self, pool, _Db => {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE services SET active = $1, updated_at = $2 WHERE active = $3")
                .bind(false)
                .bind(now)
                .bind(true)
                .execute(&mut *tx)
                .await?;
            let mut stored = Vec::with_capacity(services.len());
            for (position, s) in services.iter().enumerate() {
                let row = sqlx::query(
                    "INSERT INTO services (slug, name, group_name, description, public, active, position, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
                     ON CONFLICT (slug) DO UPDATE SET name = excluded.name, group_name = excluded.group_name, \
                       description = excluded.description, public = excluded.public, active = excluded.active, \
                       position = excluded.position, updated_at = excluded.updated_at \
                     RETURNING id, state, state_since",
                )
                .bind(&s.slug)
                .bind(&s.name)
                .bind(&s.group)
                .bind(&s.description)
                .bind(s.public)
                .bind(true)
                .bind(position as i64)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                let state: String = row.try_get("state")?;
                stored.push(StoredService {
                    id: row.try_get("id")?,
                    slug: s.slug.clone(),
                    state: State::parse(&state).unwrap_or(State::Unknown),
                    state_since: row.try_get("state_since")?,
                });
            }
            tx.commit().await?;
            stored
        });
        Ok(stored)
    }

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
        if batch.is_empty() {
            return Ok(());
        }
        // Newest check per service, to update `last_checked_at` once each,
        // in id order.
        let mut last_checked: std::collections::BTreeMap<i64, i64> = Default::default();
        for r in &batch.results {
            let e = last_checked.entry(r.service_id).or_insert(r.checked_at);
            *e = (*e).max(r.checked_at);
        }
        let touched: std::collections::BTreeSet<i64> = last_checked
            .keys()
            .copied()
            .chain(batch.changes.iter().map(|c| c.service_id))
            .chain(batch.dependencies.iter().map(|(id, _)| *id))
            .chain(batch.certificates.iter().map(|(id, _)| *id))
            .chain(batch.certificate_warnings.iter().map(|(id, _, _)| *id))
            .collect();
        let touched: Vec<i64> = touched.into_iter().collect();
        // `absorb` keeps the last of each service; their order is arrival.
        let mut dependencies: Vec<&(i64, Vec<Dependency>)> = batch.dependencies.iter().collect();
        dependencies.sort_by_key(|(id, _)| *id);
        let mut certificates: Vec<&(i64, i64)> = batch.certificates.iter().collect();
        certificates.sort_by_key(|(id, _)| *id);
        let row_locks = matches!(self, Store::Postgres(_));
        on_pool!(self, pool, Db => {
            let mut conn = pool.acquire().await?;
            let written: Result<(), StoreError> = async {
                let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                if row_locks {
                    // Chunks in order keep the whole in order.
                    for chunk in touched.chunks(INSERT_CHUNK) {
                        let mut qb = sqlx::QueryBuilder::<Db>::new("SELECT id FROM services WHERE id IN (");
                        let mut ids = qb.separated(", ");
                        for id in chunk {
                            ids.push_bind(*id);
                        }
                        qb.push(") ORDER BY id FOR NO KEY UPDATE");
                        qb.build().persistent(false).fetch_all(&mut *tx).await?;
                    }
                }
                for chunk in batch.results.chunks(INSERT_CHUNK) {
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
                    // Not kept in the connection's statement cache: each batch
                    // size is a statement of its own, and a prepared statement
                    // of thousands of parameters holds ~150 KB. Cached, up to
                    // 100 of them per connection held 56 MB at 10,000 services
                    // (docs/performance.md); preparing one costs far less than
                    // the write.
                    qb.build().persistent(false).execute(&mut *tx).await?;
                }
                // Rollups in the same transaction as the results they count.
                let rollups: Vec<((i64, Period, i64), Rollup)> =
                    rollup::aggregate(&batch.results).into_iter().collect();
                for chunk in rollups.chunks(INSERT_CHUNK / 2) {
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
                    qb.build().persistent(false).execute(&mut *tx).await?;
                }
                for c in &batch.changes {
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
                    let service = sqlx::query("SELECT slug, name, group_name, state_since FROM services WHERE id = $1")
                        .bind(c.service_id)
                        .fetch_one(&mut *tx)
                        .await?;
                    let name: String = service.try_get("name")?;
                    let group: Option<String> = service.try_get("group_name")?;
                    sqlx::query("UPDATE services SET state = $1, state_since = $2 WHERE id = $3")
                        .bind(c.to.as_str())
                        .bind(c.changed_at)
                        .bind(c.service_id)
                        .execute(&mut *tx)
                        .await?;

                    // Leaving maintenance compares with the state before the
                    // window: the policy needs to know it.
                    let before_maintenance = if c.from == State::Maintenance {
                        let before: Option<String> = sqlx::query_scalar(
                            "SELECT from_state FROM status_changes WHERE service_id = $1 AND to_state = $2 \
                             AND changed_at <= $3 ORDER BY changed_at DESC, id DESC LIMIT 1",
                        )
                        .bind(c.service_id)
                        .bind(State::Maintenance.as_str())
                        .bind(c.changed_at)
                        .fetch_optional(&mut *tx)
                        .await?;
                        before.as_deref().and_then(State::parse)
                    } else {
                        None
                    };
                    let latest = sqlx::query(
                        "SELECT i.id, i.resolved_at, i.started_at FROM incidents i \
                         JOIN incident_services s ON s.incident_id = i.id \
                         WHERE s.service_id = $1 AND i.automatic = $2 \
                         ORDER BY i.started_at DESC, i.id DESC LIMIT 1",
                    )
                    .bind(c.service_id)
                    .bind(true)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let latest_incident = match latest {
                        Some(row) => Some(LatestIncident {
                            id: row.try_get("id")?,
                            resolved_at: row.try_get("resolved_at")?,
                            started_at: row.try_get("started_at")?,
                        }),
                        None => None,
                    };
                    // Counted after this service's own state was written.
                    let group_all_down = match (&group, c.to) {
                        (Some(g), State::Down) => {
                            let group_up: i64 = sqlx::query_scalar(
                                "SELECT COUNT(*) FROM services WHERE active = $1 AND group_name = $2 AND state <> 'down'",
                            )
                            .bind(true)
                            .bind(g)
                            .fetch_one(&mut *tx)
                            .await?;
                            group_up == 0
                        }
                        _ => false,
                    };
                    let decision = policy::decide(&ChangeFacts {
                        service: crate::domain::ServiceRef {
                            slug: service.try_get("slug")?,
                            name,
                            group,
                        },
                        from: c.from,
                        to: c.to,
                        at: c.changed_at,
                        reason: c.reason.clone(),
                        from_since: service.try_get::<Option<i64>, _>("state_since")?,
                        before_maintenance,
                        latest_incident,
                        group_all_down,
                        cooldown_ms: batch.incident_cooldown_ms,
                    });
                    // The alert event, in the same transaction: one per
                    // change, never lost, never twice.
                    if let Some(event) = &decision.event {
                        insert_alert_event!(tx, event, Some(c.service_id), None);
                    }
                    // Automatic incidents, in the same transaction as the change
                    // that causes them: a restart or a second replica finds the
                    // same open incident in the store and opens no other.
                    match decision.incident {
                        Some(IncidentAction::Open { title, impact, message }) => {
                            let id: i64 = sqlx::query_scalar(
                                "INSERT INTO incidents (title, impact, status, automatic, started_at, created_at, updated_at) \
                                 VALUES ($1, $2, 'investigating', $3, $4, $4, $4) RETURNING id",
                            )
                            .bind(title)
                            .bind(impact)
                            .bind(true)
                            .bind(c.changed_at)
                            .fetch_one(&mut *tx)
                            .await?;
                            sqlx::query("INSERT INTO incident_services (incident_id, service_id) VALUES ($1, $2)")
                                .bind(id)
                                .bind(c.service_id)
                                .execute(&mut *tx)
                                .await?;
                            sqlx::query(
                                "INSERT INTO incident_updates (incident_id, status, message, created_at) VALUES ($1, $2, $3, $4)",
                            )
                            .bind(id)
                            .bind("investigating")
                            .bind(message)
                            .bind(c.changed_at)
                            .execute(&mut *tx)
                            .await?;
                        }
                        Some(IncidentAction::Update { id, status, resolved_at, message }) => {
                            sqlx::query(
                                "INSERT INTO incident_updates (incident_id, status, message, created_at) VALUES ($1, $2, $3, $4)",
                            )
                            .bind(id)
                            .bind(status)
                            .bind(message)
                            .bind(c.changed_at)
                            .execute(&mut *tx)
                            .await?;
                            sqlx::query("UPDATE incidents SET status = $1, resolved_at = $2, updated_at = $3 WHERE id = $4")
                                .bind(status)
                                .bind(resolved_at)
                                .bind(c.changed_at)
                                .bind(id)
                                .execute(&mut *tx)
                                .await?;
                        }
                        None => {}
                    }
                }
                for (service_id, deps) in dependencies {
                    let json = if deps.is_empty() {
                        None
                    } else {
                        Some(serde_json::to_string(deps).unwrap_or_else(|_| "[]".into()))
                    };
                    sqlx::query("UPDATE services SET dependencies = $1 WHERE id = $2")
                        .bind(json)
                        .bind(*service_id)
                        .execute(&mut *tx)
                        .await?;
                }
                for (service_id, expires_at) in certificates {
                    sqlx::query("UPDATE services SET certificate_expires_at = $1 WHERE id = $2")
                        .bind(*expires_at)
                        .bind(*service_id)
                        .execute(&mut *tx)
                        .await?;
                }
                for (service_id, expires_at, at) in &batch.certificate_warnings {
                    let service = sqlx::query("SELECT slug, name, group_name, state, state_since FROM services WHERE id = $1")
                        .bind(*service_id)
                        .fetch_one(&mut *tx)
                        .await?;
                    let state: String = service.try_get("state")?;
                    let event = crate::domain::Event {
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
                    // One alert per certificate: a renewed one (another expiry)
                    // warns again when its time comes.
                    insert_alert_event!(tx, &event, Some(*service_id), Some(format!("certificate:{service_id}:{expires_at}")));
                }
                for (service_id, at) in &last_checked {
                    sqlx::query(
                        "UPDATE services SET last_checked_at = $1 \
                         WHERE id = $2 AND (last_checked_at IS NULL OR last_checked_at < $1)",
                    )
                    .bind(*at)
                    .bind(*service_id)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }
            .await;
            if let Err(e) = written {
                // A transaction that failed half-way can leave its
                // connection holding the write lock (SQLite after
                // SQLITE_FULL: the automatic rollback and sqlx's own then
                // disagree), and every later write would wait on it as
                // "database is locked". Close it instead of reusing it.
                let _ = sqlx::Connection::close(conn.detach()).await;
                return Err(e);
            }
        });
        Ok(())
    }

    /// Every active service with its state and 24 h counts, in config order.
    pub async fn service_summaries(&self, now: i64) -> Result<Vec<ServiceSummary>, StoreError> {
        // The last 24 hourly buckets: this hour so far and the 23 before it.
        let since = Period::Hour.bucket_start(now) - 23 * HOUR_MS;
        let summaries = on_pool!(self, pool, _Db => {
            let counts: HashMap<i64, (i64, i64)> = sqlx::query(
                "SELECT service_id, SUM(up + degraded + down) AS total, \
                        SUM(up + degraded) AS ok \
                 FROM rollups WHERE period = 'h' AND bucket_start >= $1 GROUP BY service_id",
            )
            .bind(since)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|row| -> Result<_, sqlx::Error> {
                Ok((row.try_get("service_id")?, (row.try_get("total")?, row.try_get("ok")?)))
            })
            .collect::<Result<_, _>>()?;
            let rows = sqlx::query(
                "SELECT id, slug, name, group_name, description, public, position, state, \
                        state_since, last_checked_at, dependencies, certificate_expires_at, created_at \
                 FROM services WHERE active = $1 ORDER BY position, id",
            )
            .bind(true)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let id: i64 = row.try_get("id")?;
                let state: String = row.try_get("state")?;
                let (checks_24h, ok_24h) = counts.get(&id).copied().unwrap_or((0, 0));
                out.push(ServiceSummary {
                    id,
                    slug: row.try_get("slug")?,
                    name: row.try_get("name")?,
                    group: row.try_get("group_name")?,
                    description: row.try_get("description")?,
                    public: row.try_get("public")?,
                    position: row.try_get::<i64, _>("position")?,
                    state: State::parse(&state).unwrap_or(State::Unknown),
                    state_since: row.try_get("state_since")?,
                    last_checked_at: row.try_get("last_checked_at")?,
                    created_at: row.try_get("created_at")?,
                    checks_24h,
                    ok_24h,
                    dependencies: row
                        .try_get::<Option<String>, _>("dependencies")?
                        .and_then(|json| serde_json::from_str(&json).ok())
                        .unwrap_or_default(),
                    certificate_expires_at: row.try_get("certificate_expires_at")?,
                });
            }
            out
        });
        Ok(summaries)
    }

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

    /// Every service's hourly rollups from `hour_since` and daily ones from
    /// `day_since` (bucket starts, epoch ms), handed to `f` one row at a
    /// time as they stream from the database, in no particular order:
    /// (service id, period, bucket start, counts). Nothing is collected
    /// here, so a fleet with 90 days of history (114 rows of 184 bytes per
    /// service) costs only what `f` keeps.
    pub async fn for_each_rollup_since(
        &self,
        hour_since: i64,
        day_since: i64,
        mut f: impl FnMut(i64, Period, i64, Rollup),
    ) -> Result<(), StoreError> {
        use futures_util::TryStreamExt;
        on_pool!(self, pool, _Db => {
            let mut rows = sqlx::query(&ROLLUP_SELECT_SINCE)
            .bind(hour_since)
            .bind(day_since)
            .fetch(pool);
            while let Some(row) = rows.try_next().await? {
                let period = match row.try_get::<&str, _>("period")? {
                    "h" => Period::Hour,
                    _ => Period::Day,
                };
                f(
                    row.try_get("service_id")?,
                    period,
                    int_column!(row, "bucket_start"),
                    rollup_from_row!(row),
                );
            }
        });
        Ok(())
    }

    /// Every service's hourly rollups of the last 24 hours (this hour and
    /// the 23 before) and daily rollups of the last 90 days (today and the
    /// 89 before), oldest first.
    pub async fn recent_rollups(
        &self,
        now: i64,
    ) -> Result<HashMap<i64, RecentRollups>, StoreError> {
        let mut out: HashMap<i64, RecentRollups> = HashMap::new();
        let hour_since = Period::Hour.bucket_start(now) - 23 * HOUR_MS;
        let day_since = Period::Day.bucket_start(now) - 89 * DAY_MS;
        self.for_each_rollup_since(hour_since, day_since, |service_id, period, start, r| {
            let entry = out.entry(service_id).or_default();
            match period {
                Period::Hour => entry.hours.push((start, r)),
                Period::Day => entry.days.push((start, r)),
            }
        })
        .await?;
        for recent in out.values_mut() {
            recent.hours.sort_unstable_by_key(|(start, _)| *start);
            recent.days.sort_unstable_by_key(|(start, _)| *start);
        }
        Ok(out)
    }

    /// Rollups of every service over the page's windows: the last 24 hours
    /// (hourly buckets: this hour and the 23 before), and the last 7, 30 and
    /// 90 days (daily buckets: today and the days before).
    pub async fn uptime_windows(&self, now: i64) -> Result<HashMap<i64, [Rollup; 4]>, StoreError> {
        Ok(self
            .recent_rollups(now)
            .await?
            .into_iter()
            .map(|(id, recent)| (id, recent.windows(now)))
            .collect())
    }

    /// The same windows per group: the counts of its active services added
    /// together (every probe weighs the same).
    pub async fn group_uptime_windows(
        &self,
        now: i64,
    ) -> Result<HashMap<String, [Rollup; 4]>, StoreError> {
        let per_service = self.uptime_windows(now).await?;
        let mut out: HashMap<String, [Rollup; 4]> = HashMap::new();
        for s in self.service_summaries(now).await? {
            let (Some(group), Some(windows)) = (s.group, per_service.get(&s.id)) else {
                continue;
            };
            let entry = out.entry(group).or_default();
            for (total, w) in entry.iter_mut().zip(windows) {
                total.merge(w);
            }
        }
        Ok(out)
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

    /// Every stored result of one service, oldest first (tests and tools).
    pub async fn check_results(&self, slug: &str) -> Result<Vec<CheckResult>, StoreError> {
        let rows = on_pool!(self, pool, _Db => {
            let rows = sqlx::query(
                "SELECT r.service_id, r.checked_at, r.state, r.latency_ms, r.status_code, r.reason \
                 FROM check_results r JOIN services s ON s.id = r.service_id \
                 WHERE s.slug = $1 ORDER BY r.checked_at",
            )
            .bind(slug)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let code: i16 = row.try_get("state")?;
                out.push(CheckResult {
                    service_id: row.try_get("service_id")?,
                    checked_at: row.try_get("checked_at")?,
                    outcome: Outcome::from_code(code).unwrap_or(Outcome::Up),
                    maintenance: code == MAINTENANCE_CODE,
                    latency_ms: row.try_get("latency_ms")?,
                    status_code: row.try_get("status_code")?,
                    reason: row.try_get("reason")?,
                });
            }
            out
        });
        Ok(rows)
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

    /// Counts rows of a table (for tests, backups' manifests and tools).
    /// `table` must be one of beacon's own tables.
    pub async fn count_rows(&self, table: &str) -> Result<i64, StoreError> {
        let Some(table) = BEACON_TABLES.iter().find(|t| **t == table) else {
            return Err(StoreError::Query(sqlx::Error::Protocol(format!(
                "unknown table {table}"
            ))));
        };
        let n: i64 = on_pool!(self, pool, _Db => {
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(pool)
                .await?
        });
        Ok(n)
    }
}
