//! The store: everything beacon keeps, in SQLite (the embedded default) or
//! PostgreSQL, behind one sealed type.
//!
//! `Store` wraps a private enum of pools rather than a trait object: the two
//! backends share almost all of their SQL (times are epoch milliseconds on
//! both sides, and both speak `$1` placeholders, `ON CONFLICT` and
//! `RETURNING`), so each method is written once and [`on_pool!`] expands it
//! for each pool. Only connecting and the migration folders differ
//! (`sqlite.rs`, `postgres.rs`). Nothing outside this folder sees a pool or
//! names the driver: errors are [`StoreError`], and what backups need of the
//! database (copies, snapshot export, locks, scratch databases) is here too.
//!
//! One file per thing kept: `services.rs`, `results.rs` (the monitor's
//! batches; what a change means is `domain::policy`'s), `rollup.rs`,
//! `incidents.rs`, `maintenances.rs`, `alerts.rs`, `backups.rs`,
//! `retention.rs`; and for backups `copy.rs`, `lock.rs`, `scratch.rs`.

use crate::config::DatabaseUrl;

/// Runs `$body` with `$pool` bound to the concrete pool and `$db` to its
/// sqlx database type, once per backend.
macro_rules! on_pool {
    ($store:expr, $pool:ident, $db:ident => $body:expr) => {
        match &$store.0 {
            $crate::store::Pools::Sqlite($pool) => {
                #[allow(dead_code)]
                type $db = sqlx::Sqlite;
                $body
            }
            $crate::store::Pools::Postgres($pool) => {
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
        let mut histogram = [0i64; $crate::store::rollup::BUCKETS];
        for (h, column) in histogram
            .iter_mut()
            .zip($crate::store::rollup::HISTOGRAM_COLUMNS)
        {
            *h = int_column!($row, column);
        }
        $crate::store::rollup::Rollup {
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

/// Moves the change counters, as the last statement of `$tx` (so the rows
/// are locked only while the transaction commits, and always last and in
/// one order: no two writers can wait on each other through them). Both
/// for a write a reader must see at once (an incident, maintenance, a
/// state change, the services' sync); `routine` for the monitor's results
/// and last checks alone, which replicas may take a while to show (see
/// [`Changes`] and migration 0014).
macro_rules! bump_changes {
    ($tx:expr) => {{
        sqlx::query("UPDATE store_changes SET counter = counter + 1 WHERE id IN (1, 2)")
            .execute(&mut *$tx)
            .await?;
    }};
    ($tx:expr, routine) => {{
        sqlx::query("UPDATE store_changes SET counter = counter + 1 WHERE id = 1")
            .execute(&mut *$tx)
            .await?;
    }};
}

/// How each backend numbers a write to a service's row (migration 0017):
/// a revision above every other row's, so that the rows written since a
/// read are those above the highest it saw (see [`Store::page_changes`]).
pub(crate) trait Revisions {
    /// A new row's revision, as an SQL expression.
    const NEXT: &'static str;
    /// A written row's (in an `UPDATE services` or an upsert's `DO
    /// UPDATE`): never its revision as it was, even where a replica of
    /// the release before wrote `revision + 1` onto the sequence's next
    /// value (a rolling upgrade), which would leave a changed row looking
    /// unchanged to every reader.
    const MOVED: &'static str;
}

impl Revisions for sqlx::Postgres {
    const NEXT: &'static str = "nextval('service_revisions')";
    const MOVED: &'static str = "greatest(nextval('service_revisions'), services.revision + 1)";
}

/// One process writes a SQLite file, under its write lock; the highest
/// revision plus one is above the row's own.
impl Revisions for sqlx::Sqlite {
    const NEXT: &'static str = "(SELECT coalesce(max(revision), 0) + 1 FROM services)";
    const MOVED: &'static str = Self::NEXT;
}

/// The services linked to `$id` through `$table` (by its column `$column`),
/// in page order, as events name them.
macro_rules! service_refs {
    ($tx:expr, $table:literal, $column:literal, $id:expr) => {{
        let mut services = Vec::new();
        for s in sqlx::query(concat!(
            "SELECT s.slug, s.name, s.group_name FROM ",
            $table,
            " x JOIN services s ON s.id = x.service_id WHERE x.",
            $column,
            " = $1 ORDER BY s.position, s.id"
        ))
        .bind($id)
        .fetch_all(&mut *$tx)
        .await?
        {
            services.push(crate::domain::ServiceRef {
                slug: s.try_get("slug")?,
                name: s.try_get("name")?,
                group: s.try_get("group_name")?,
            });
        }
        services
    }};
}

/// Inserts the alert event of an incident write (`$kind`, about the update
/// `$message`; `$notify` false: subscribers are not told), reading the
/// incident as `$tx` now sees it.
macro_rules! insert_incident_event {
    ($tx:expr, $id:expr, $kind:expr, $message:expr, $at:expr, $notify:expr, $by_monitor:expr) => {{
        let id: i64 = $id;
        let row =
            sqlx::query("SELECT title, status, impact, automatic FROM incidents WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *$tx)
                .await?;
        let services = service_refs!($tx, "incident_services", "incident_id", id);
        let event = crate::domain::Event {
            location: None,
            maintenance: None,
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
                notify: $notify,
                by_monitor: $by_monitor,
            }),
            backup: None,
            certificate: None,
        };
        insert_alert_event!($tx, &event, None, None);
    }};
}

/// Inserts the alert event of maintenance window `$id` (`$kind`), as `$tx`
/// sees it, keyed by `$dedupe` (replicas raising one edge write it once).
macro_rules! insert_maintenance_event {
    ($tx:expr, $id:expr, $kind:expr, $at:expr, $dedupe:expr) => {{
        let id: i64 = $id;
        let row = sqlx::query(
            "SELECT title, message, starts_at, ends_at FROM maintenances WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&mut *$tx)
        .await?;
        let services = service_refs!($tx, "maintenance_services", "maintenance_id", id);
        let event = crate::domain::Event {
            location: None,
            kind: $kind,
            at: $at,
            service: None,
            incident: None,
            backup: None,
            certificate: None,
            maintenance: Some(crate::domain::MaintenanceFacts {
                id,
                title: row.try_get("title")?,
                message: row.try_get("message")?,
                starts_at: row.try_get("starts_at")?,
                ends_at: row.try_get("ends_at")?,
                services,
            }),
        };
        insert_alert_event!($tx, &event, None, $dedupe);
    }};
}

mod alerts;
mod backups;
mod cluster;
mod copy;
mod incidents;
mod locations;
mod lock;
mod maintenances;
mod packed;
mod postgres;
mod results;
mod retention;
pub mod rollup;
mod scan;
mod scratch;
mod services;
mod sqlite;
mod subscribers;

pub use alerts::{AlertDelivery, DeliveryOutcome, Routing, StoredEvent};
pub use backups::BackupRecord;
pub use cluster::{Changes, Fence, Holder, Lease, Member, LEADER_LEASE};
pub use copy::{ExportedSnapshot, PgDatabase, RowCounts, SqliteFile};
pub use locations::LocationResult;
pub use lock::AdvisoryLock;
pub use scratch::PgServer;

pub use incidents::{Incident, IncidentPatch, IncidentUpdate, IncidentVersion, NewIncident};
pub use maintenances::{Maintenance, MaintenanceInput, ServiceWindow};
pub use packed::Compacted;
pub use results::{Batch, CheckResult, StatusChange};
pub use retention::Pruned;
pub use services::{PageChange, RowVersion, ServiceSummary, StoredService};
pub use subscribers::{
    EmailSignUp, SignUp, Subscriber, SubscriberDelivery, TokenRecord, SUBSCRIBER_KINDS,
};

/// The store. Sealed: its pools are private, so every query beacon runs
/// is written here, once for both backends.
#[derive(Clone, Debug)]
pub struct Store(Pools, Session, WriteTurn);

/// On SQLite, the turn of this process's writers that come back to back
/// (a batch of results, each transaction of the retention pass's packing
/// and pruning), handed out first come, first served. SQLite itself is not
/// fair: a writer waiting for the file's lock sleeps in its busy handler
/// and tries again, and a writer that commits and begins again within
/// microseconds takes the lock again before the sleeper wakes. Which one
/// starves is luck: in one CI run a batch waited out a whole packing pass
/// (25 transactions); on another machine the batches kept a pass waiting
/// (500 batches went in to its 25 transactions), and after an upgrade
/// (days of raw results to pack) the one left waiting outlasts its busy
/// timeout and fails. With the turn they alternate. A second `beacon
/// serve` on the file is refused at start, so a lock in the process is all
/// the queue needs (the command line's writes from another process are
/// one short transaction each, under the busy timeout). PostgreSQL queues
/// a lock's waiters in order; no turn there.
#[derive(Clone, Debug, Default)]
struct WriteTurn(std::sync::Arc<tokio::sync::Mutex<()>>);

/// This process's turn to write, held (on SQLite) until dropped.
pub(crate) type Turn<'a> = Option<tokio::sync::MutexGuard<'a, ()>>;

/// Where work that needs a PostgreSQL session of its own connects
/// (migrations under their lock, advisory locks): `storage.direct_url`
/// when `storage.url` goes through a transaction-pooling PgBouncer, which
/// hands each transaction whichever server connection is free, so a
/// session's lock would be taken on one and left held there. `None`: a
/// connection of the pool is a session of its own.
#[derive(Clone, Debug, Default)]
pub(super) struct Session(Option<std::sync::Arc<DatabaseUrl>>);

#[derive(Clone, Debug)]
enum Pools {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// What the `RUST_LOG` default says of the store's database driver: only
/// its warnings (every statement at info would drown the log).
pub const LOG_DIRECTIVES: &str = "sqlx=warn";

/// A database driver's error, kept for its message and source chain; what
/// it means is asked of [`StoreError`] (`is_permanent`, `is_unavailable`).
#[derive(Debug)]
pub struct DbError(sqlx::Error);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for DbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        DbError(e)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: DbError,
    },
    #[error("cannot create the folder {path} for the SQLite database: {source}")]
    CreateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("applying migrations failed: {0}")]
    Migrate(Box<dyn std::error::Error + Send + Sync>),
    #[error("migrations are not applied (database at version {applied:?}, beacon needs {expected}); run `beacon migrate`")]
    NotMigrated { applied: Option<i64>, expected: i64 },
    #[error("store query failed: {0}")]
    Query(DbError),
    /// The store did not answer in time.
    #[error("store query failed: the database did not answer in time")]
    TimedOut,
    /// The request names something the store does not hold (an unknown
    /// service slug…): the caller's input, not the store, is wrong.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// A stored value beacon cannot have written: never read as something
    /// it is not (a state code read as up).
    #[error("corrupt row: {table}.{column} holds {value}")]
    Corrupt {
        table: &'static str,
        column: &'static str,
        value: String,
    },
    /// A singleton's write under a lease that has moved on (another
    /// replica leads now, at a higher epoch): refused, never retried.
    #[error("refused: this replica's leadership (epoch {epoch}) has moved on")]
    Fenced { epoch: i64 },
    #[error("PRAGMA integrity_check: {answers}")]
    IntegrityCheck { answers: String },
}

impl StoreError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> StoreError {
        StoreError::Invalid {
            field,
            message: message.into(),
        }
    }

    /// An answer that took too long (the caller's deadline passed): a fault
    /// of the moment, retried.
    pub fn timed_out() -> StoreError {
        StoreError::TimedOut
    }

    fn driver(&self) -> Option<&sqlx::Error> {
        match self {
            StoreError::Query(DbError(e))
            | StoreError::Connect {
                source: DbError(e), ..
            } => Some(e),
            _ => None,
        }
    }

    /// True when a healthy database would refuse the same write again: a
    /// constraint, a value it cannot encode or store. Only such an error may
    /// make the writer give data up. Everything else (the server refusing
    /// connections or shutting down, too many clients, a pool timeout, a
    /// deadlock, `SQLITE_BUSY`, a read-only or full disk, an I/O error) is a
    /// fault of the moment and is retried.
    pub fn is_permanent(&self) -> bool {
        match self {
            StoreError::Invalid { .. } | StoreError::Corrupt { .. } => true,
            StoreError::Query(DbError(e)) => match e {
                sqlx::Error::Encode(_)
                | sqlx::Error::Decode(_)
                | sqlx::Error::ColumnDecode { .. } => true,
                sqlx::Error::Database(db) => {
                    let code = db.code();
                    let code = code.as_deref().unwrap_or("");
                    // Told apart by the driver, not by the code's shape: most
                    // SQLSTATEs are digits too (23505 would read as SQLite's
                    // 209 and pass for transient).
                    if db
                        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                        .is_some()
                    {
                        // PostgreSQL's SQLSTATE: class 22 (data exception)
                        // and 23 (integrity constraint violation). Classes
                        // 08 (connection), 53 (resources), 57 (operator
                        // intervention, "cannot connect now"), 40 (deadlock,
                        // serialization) and the rest are transient.
                        code.starts_with("22") || code.starts_with("23")
                    } else {
                        // SQLite: the primary result code is the low byte of
                        // the extended one. CONSTRAINT, TOOBIG, MISMATCH,
                        // RANGE.
                        code.parse::<i64>()
                            .is_ok_and(|extended| matches!(extended & 0xff, 18 | 19 | 20 | 25))
                    }
                }
                _ => false,
            },
            _ => false,
        }
    }

    /// True when the database server (or the way to it) is unavailable,
    /// not the statement or the data wrong: PostgreSQL's SQLSTATE classes
    /// 08 (connection), 53 (insufficient resources), 57 (operator
    /// intervention, "cannot connect now"), 55000 ("database is not
    /// currently accepting connections"), and the client's own I/O and pool
    /// errors.
    pub fn is_unavailable(&self) -> bool {
        if matches!(self, StoreError::TimedOut) {
            return true;
        }
        match self.driver() {
            Some(
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed,
            ) => true,
            Some(sqlx::Error::Database(db)) => db.code().is_some_and(|c| {
                c.starts_with("08") || c.starts_with("53") || c.starts_with("57") || c == "55000"
            }),
            _ => false,
        }
    }

    /// "relation does not exist" (PostgreSQL 42P01) or "no such table"
    /// (SQLite).
    fn is_undefined_table(&self) -> bool {
        match self.driver() {
            Some(sqlx::Error::Database(e)) => {
                e.code().as_deref() == Some("42P01") || e.message().starts_with("no such table")
            }
            _ => false,
        }
    }
}

// For the store's own `?`. Written by hand rather than with `#[from]`: the
// inner error is already in the message, and marking it as the source too
// would print it twice.
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Query(DbError(e))
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(Box::new(e))
    }
}

/// Every table of beacon's schema (restore drops exactly these).
pub const BEACON_TABLES: &[&str] = &[
    "_sqlx_migrations",
    "services",
    "check_results",
    "check_result_hours",
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
    "cluster_members",
    "cluster_leases",
    "cluster_runs",
    "store_changes",
    "location_results",
    "subscribers",
    "subscriber_tokens",
    "subscriber_deliveries",
    "admin_sessions",
    "beacon_keys",
];

/// Rows per multi-row INSERT: well under SQLite's 32,766 bound parameters.
pub(crate) const INSERT_CHUNK: usize = 1000;

/// `items` in chunks of `max`, then the rest in chunks of falling powers of
/// two (a rest of 300 of 500 is 256, 32, 8 and 4): a multi-row statement's
/// text depends only on its row count, so every batch's statements come
/// from about a dozen texts per kind, which stay prepared in the
/// connection's cache instead of being parsed again for every batch (at
/// 5,000 probes a second, parsing was 5 % of beacon's CPU; one text per
/// batch size, cached, held 56 MB at 10,000 services). A few more, small
/// statements per batch cost less than one parse of a large one.
pub(crate) fn prepared_chunks<T>(items: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    let max = max.max(1);
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let size = if rest.len() >= max {
            max
        } else {
            1 << rest.len().ilog2()
        };
        let (chunk, after) = rest.split_at(size);
        rest = after;
        Some(chunk)
    })
}

/// Binds `ids` into `qb` as the comma-separated list inside an `IN (…)`
/// (the caller writes the parentheses).
pub(crate) fn push_ids<'args, DB: sqlx::Database>(
    qb: &mut sqlx::QueryBuilder<'args, DB>,
    ids: &[i64],
) where
    i64: 'args + sqlx::Encode<'args, DB> + sqlx::Type<DB>,
{
    let mut list = qb.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
}

impl Store {
    /// How a transaction that reads before it writes begins: on SQLite
    /// with the write lock taken at once (`BEGIN IMMEDIATE`), or another
    /// writer committing between its read and its first write (the
    /// notifier routing an event, a batch of results) makes that write fail
    /// at once on a stale read snapshot, instead of waiting its turn: a
    /// maintenance window cancelled from the console was refused so.
    pub(crate) fn write_begin(&self) -> &'static str {
        match &self.0 {
            Pools::Sqlite(_) => "BEGIN IMMEDIATE",
            Pools::Postgres(_) => "BEGIN",
        }
    }

    /// Waits for this process's turn to write on SQLite ([`WriteTurn`]),
    /// held until the guard is dropped after the commit; on PostgreSQL at
    /// once, without a guard. Taken before the transaction begins, and
    /// never again while held: a write that takes it, called under it,
    /// would wait for itself.
    pub(crate) async fn write_turn(&self) -> Turn<'_> {
        match &self.0 {
            Pools::Sqlite(_) => Some(self.2 .0.lock().await),
            Pools::Postgres(_) => None,
        }
    }

    /// Begins a transaction that writes, and on SQLite one that comes
    /// back to back or that someone waits on: this process's turn first
    /// ([`Store::write_turn`]), then the write lock at once
    /// ([`Store::write_begin`]). Bound as `let (_turn, mut tx) =`, so the
    /// transaction ends before the turn is handed on.
    pub(crate) async fn begin_write<DB: sqlx::Database>(
        &self,
        pool: &sqlx::Pool<DB>,
    ) -> Result<(Turn<'_>, sqlx::Transaction<'static, DB>), StoreError> {
        let turn = self.write_turn().await;
        let tx = pool.begin_with(self.write_begin()).await?;
        Ok((turn, tx))
    }

    /// Opens the store named by `url` (`sqlite://…` or `postgres://…`).
    pub async fn connect(url: &DatabaseUrl) -> Result<Store, StoreError> {
        if url.expose().starts_with("sqlite:") {
            sqlite::connect(url)
                .await
                .map(|p| Store(Pools::Sqlite(p), Session::default(), WriteTurn::default()))
        } else {
            postgres::connect(url)
                .await
                .map(|p| Store(Pools::Postgres(p), Session::default(), WriteTurn::default()))
        }
    }

    /// Opens the store `[storage]` names: its `url`, with `direct_url`
    /// (when set) for the work that needs a session of its own.
    pub async fn open(storage: &crate::config::StorageConfig) -> Result<Store, StoreError> {
        let mut store = Self::connect(&storage.url).await?;
        if store.is_postgres() {
            store.1 = Session(storage.direct_url.clone().map(std::sync::Arc::new));
        }
        Ok(store)
    }

    /// A connection that is a session of its own, taken out of the pool
    /// or opened on `storage.direct_url`; the caller closes it.
    pub(super) async fn session(
        pool: &sqlx::PgPool,
        session: &Session,
    ) -> Result<sqlx::PgConnection, StoreError> {
        match &session.0 {
            None => Ok(pool.acquire().await?.detach()),
            Some(url) => postgres::connect_one(url).await,
        }
    }

    pub fn kind(&self) -> &'static str {
        match &self.0 {
            Pools::Sqlite(_) => "sqlite",
            Pools::Postgres(_) => "postgres",
        }
    }

    /// PostgreSQL (advisory locks, `pg_dump`), not SQLite (files).
    pub fn is_postgres(&self) -> bool {
        matches!(self.0, Pools::Postgres(_))
    }

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        match &self.0 {
            Pools::Sqlite(_) => &sqlite::MIGRATOR,
            Pools::Postgres(_) => &postgres::MIGRATOR,
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

    /// Applies the migrations this binary knows, under sqlx's lock (a
    /// session advisory lock on PostgreSQL: on `storage.direct_url` when
    /// set, see [`Session`]), so replicas starting together migrate once.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match (&self.0, &self.1 .0) {
            (Pools::Postgres(_), Some(url)) => {
                let mut conn = postgres::connect_one(url).await?;
                let ran = self.migrator().run(&mut conn).await;
                let _ = sqlx::Connection::close(conn).await;
                ran?;
            }
            _ => on_pool!(self, pool, _Db => self.migrator().run(pool).await?),
        }
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
            Err(e) if e.is_undefined_table() => None,
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

    /// Counts rows of a table (for tests, backups' manifests and tools).
    /// `table` must be one of beacon's own tables.
    pub async fn count_rows(&self, table: &str) -> Result<i64, StoreError> {
        let Some(table) = BEACON_TABLES.iter().find(|t| **t == table) else {
            return Err(StoreError::invalid(
                "table",
                format!("unknown table {table}"),
            ));
        };
        let n: i64 = on_pool!(self, pool, _Db => {
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(pool)
                .await?
        });
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepared_chunks_cover_every_item_once_in_few_sizes() {
        let sizes = |n: usize, max: usize| -> Vec<usize> {
            let items: Vec<usize> = (0..n).collect();
            let chunks: Vec<&[usize]> = prepared_chunks(&items, max).collect();
            let flat: Vec<usize> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
            assert_eq!(flat, items, "{n} of {max}: each once, in order");
            chunks.iter().map(|c| c.len()).collect()
        };
        assert_eq!(sizes(0, 500), Vec::<usize>::new());
        assert_eq!(sizes(1, 500), [1]);
        assert_eq!(sizes(500, 500), [500]);
        assert_eq!(sizes(1300, 500), [500, 500, 256, 32, 8, 4]);
        assert_eq!(sizes(7, 4), [4, 2, 1]);
        // Every size any count can take: the full chunk and powers of two.
        let mut seen = std::collections::BTreeSet::new();
        for n in 0..=2_000 {
            seen.extend(sizes(n, 1000));
        }
        assert_eq!(seen.len(), 11, "{seen:?}");
    }

    #[test]
    fn store_errors_say_whether_to_retry() {
        // (case, error, permanent, unavailable)
        let cases = [
            (
                "a pool timeout",
                StoreError::from(sqlx::Error::PoolTimedOut),
                false,
                true,
            ),
            (
                "the caller's deadline",
                StoreError::timed_out(),
                false,
                true,
            ),
            (
                "a closed pool",
                StoreError::from(sqlx::Error::PoolClosed),
                false,
                true,
            ),
            (
                "an undecodable row",
                StoreError::from(sqlx::Error::Decode("bad".into())),
                true,
                false,
            ),
            (
                "unknown input",
                StoreError::invalid("service", "no such service"),
                true,
                false,
            ),
            (
                "a corrupt row",
                StoreError::Corrupt {
                    table: "check_results",
                    column: "state",
                    value: "9".into(),
                },
                true,
                false,
            ),
        ];
        for (name, e, permanent, unavailable) in cases {
            assert_eq!(e.is_permanent(), permanent, "{name}: permanent");
            assert_eq!(e.is_unavailable(), unavailable, "{name}: unavailable");
        }
    }
}
