//! What several replicas on one database share: membership, the leader's
//! lease and its epoch (the fencing token), one claim per singleton tick,
//! and the change counter replicas poll to follow each other's writes.
//!
//! Every time here is the database's clock (`NOW_*` below), never a
//! replica's: two machines whose clocks disagree still agree on who holds
//! the lease. Nothing relies on session state (advisory locks, LISTEN), so
//! it holds through a transaction-pooling PgBouncer: each call is one
//! statement.

use sqlx::Row;

use super::{Pools, Store, StoreError};

/// The database's clock in epoch ms, per dialect.
const NOW_POSTGRES: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";
const NOW_SQLITE: &str = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)";

/// The one lease the leader holds.
pub const LEADER_LEASE: &str = "leader";

/// A replica's row, as the database last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub host: String,
    pub version: String,
    /// Epoch ms, the database's clock.
    pub started_at: i64,
    pub last_seen: i64,
}

/// A lease as held: its epoch and when it runs out (the database's clock),
/// with the database's time of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub epoch: i64,
    pub expires_at: i64,
    pub now: i64,
}

/// Who holds the leader's lease now, if anyone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub member: String,
    pub epoch: i64,
    pub expires_at: i64,
}

/// What a singleton write carries: the holder and the epoch it was given.
/// The store refuses the write ([`StoreError::Fenced`]) once the lease has
/// moved on (another epoch, or expired).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub member: String,
    pub epoch: i64,
}

impl Store {
    fn now_sql(&self) -> &'static str {
        match &self.0 {
            Pools::Sqlite(_) => NOW_SQLITE,
            Pools::Postgres(_) => NOW_POSTGRES,
        }
    }

    /// `sql` with `{now}` replaced by the database's clock.
    fn with_now(&self, sql: &str) -> String {
        sql.replace("{now}", self.now_sql())
    }

    /// The database's clock, epoch ms.
    pub async fn database_now(&self) -> Result<i64, StoreError> {
        let sql = self.with_now("SELECT {now}");
        let now: i64 = on_pool!(self, pool, _Db => {
            sqlx::query_scalar(&sql).fetch_one(pool).await?
        });
        Ok(now)
    }

    /// Upserts this replica's row: first seen now, or seen again.
    pub async fn heartbeat(
        &self,
        member: &str,
        host: &str,
        version: &str,
    ) -> Result<(), StoreError> {
        let sql = self.with_now(
            "INSERT INTO cluster_members (id, host, version, started_at, last_seen) \
             VALUES ($1, $2, $3, {now}, {now}) \
             ON CONFLICT (id) DO UPDATE SET last_seen = {now}",
        );
        on_pool!(self, pool, _Db => {
            sqlx::query(&sql)
                .bind(member)
                .bind(host)
                .bind(version)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Members seen within `ttl_ms` (the database's clock), by id.
    pub async fn live_members(&self, ttl_ms: i64) -> Result<Vec<Member>, StoreError> {
        let sql = self.with_now(
            "SELECT id, host, version, started_at, last_seen FROM cluster_members \
             WHERE last_seen > {now} - $1 ORDER BY id",
        );
        let members = on_pool!(self, pool, _Db => {
            let rows = sqlx::query(&sql).bind(ttl_ms).fetch_all(pool).await?;
            let mut members = Vec::with_capacity(rows.len());
            for row in rows {
                members.push(Member {
                    id: row.try_get("id")?,
                    host: row.try_get("host")?,
                    version: row.try_get("version")?,
                    started_at: row.try_get("started_at")?,
                    last_seen: row.try_get("last_seen")?,
                });
            }
            members
        });
        Ok(members)
    }

    /// Removes this replica's row (a clean stop), and rows not seen for a
    /// day (replicas that died), so the table stays the size of the fleet.
    pub async fn leave(&self, member: &str) -> Result<(), StoreError> {
        let sql = self
            .with_now("DELETE FROM cluster_members WHERE id = $1 OR last_seen < {now} - 86400000");
        on_pool!(self, pool, _Db => {
            sqlx::query(&sql).bind(member).execute(pool).await?;
        });
        Ok(())
    }

    /// Takes lease `name` for `member` for `lease_ms`, or renews it:
    /// `Some` when `member` holds it now. Taking a lease someone else held,
    /// or one's own after it ran out, increments the epoch; renewing a live
    /// one keeps it. One statement: two replicas racing for an expired
    /// lease are serialised on its row, and the second finds it taken.
    pub async fn acquire_lease(
        &self,
        name: &str,
        member: &str,
        lease_ms: i64,
    ) -> Result<Option<Lease>, StoreError> {
        let sql = self.with_now(
            "INSERT INTO cluster_leases (name, holder, epoch, expires_at) VALUES ($1, $2, 1, {now} + $3) \
             ON CONFLICT (name) DO UPDATE SET \
               epoch = CASE WHEN cluster_leases.holder = excluded.holder \
                             AND cluster_leases.expires_at > {now} \
                            THEN cluster_leases.epoch ELSE cluster_leases.epoch + 1 END, \
               holder = excluded.holder, \
               expires_at = excluded.expires_at \
             WHERE cluster_leases.holder = excluded.holder OR cluster_leases.expires_at <= {now} \
             RETURNING epoch, expires_at, {now} AS now",
        );
        let lease = on_pool!(self, pool, _Db => {
            let row = sqlx::query(&sql)
                .bind(name)
                .bind(member)
                .bind(lease_ms)
                .fetch_optional(pool)
                .await?;
            match row {
                None => None,
                Some(row) => Some(Lease {
                    epoch: row.try_get("epoch")?,
                    expires_at: row.try_get("expires_at")?,
                    now: row.try_get("now")?,
                }),
            }
        });
        Ok(lease)
    }

    /// Gives lease `name` up at once (a clean stop), if `member` still
    /// holds it at `epoch`: the next taker need not wait for it to run out.
    pub async fn release_lease(
        &self,
        name: &str,
        member: &str,
        epoch: i64,
    ) -> Result<(), StoreError> {
        let sql = self.with_now(
            "UPDATE cluster_leases SET expires_at = {now} \
             WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at > {now}",
        );
        on_pool!(self, pool, _Db => {
            sqlx::query(&sql)
                .bind(name)
                .bind(member)
                .bind(epoch)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Who holds lease `name` now (an expired lease is held by nobody).
    pub async fn lease_holder(&self, name: &str) -> Result<Option<Holder>, StoreError> {
        let sql = self.with_now(
            "SELECT holder, epoch, expires_at FROM cluster_leases \
             WHERE name = $1 AND expires_at > {now}",
        );
        let holder = on_pool!(self, pool, _Db => {
            let row = sqlx::query(&sql).bind(name).fetch_optional(pool).await?;
            match row {
                None => None,
                Some(row) => Some(Holder {
                    member: row.try_get("holder")?,
                    epoch: row.try_get("epoch")?,
                    expires_at: row.try_get("expires_at")?,
                }),
            }
        });
        Ok(holder)
    }

    /// The highest epoch the leader's lease has reached (0: never taken).
    pub async fn lease_epoch(&self, name: &str) -> Result<i64, StoreError> {
        let epoch: Option<i64> = on_pool!(self, pool, _Db => {
            sqlx::query_scalar("SELECT epoch FROM cluster_leases WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await?
        });
        Ok(epoch.unwrap_or(0))
    }

    /// Claims tick `tick` of singleton job `job` under `fence`: `Ok(true)`
    /// to run it, `Ok(false)` when it was claimed already (by this replica
    /// or another), [`StoreError::Fenced`] when the fence's lease has moved
    /// on. The claim and the lease check are one statement.
    pub async fn claim_run(&self, job: &str, tick: i64, fence: &Fence) -> Result<bool, StoreError> {
        let sql = self.with_now(
            "INSERT INTO cluster_runs (job, tick, holder, epoch, claimed_at) \
             SELECT $1, $2, holder, epoch, {now} FROM cluster_leases \
             WHERE name = $3 AND holder = $4 AND epoch = $5 AND expires_at > {now} \
             ON CONFLICT (job, tick) DO NOTHING",
        );
        let claimed = on_pool!(self, pool, _Db => {
            sqlx::query(&sql)
                .bind(job)
                .bind(tick)
                .bind(LEADER_LEASE)
                .bind(&fence.member)
                .bind(fence.epoch)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if claimed == 1 {
            return Ok(true);
        }
        self.check_fence(fence).await?;
        Ok(false)
    }

    /// `Ok` while `fence` still holds the leader's lease, else
    /// [`StoreError::Fenced`].
    pub async fn check_fence(&self, fence: &Fence) -> Result<(), StoreError> {
        match self.lease_holder(LEADER_LEASE).await? {
            Some(h) if h.member == fence.member && h.epoch == fence.epoch => Ok(()),
            _ => Err(StoreError::Fenced { epoch: fence.epoch }),
        }
    }

    /// Claims of job `job`, oldest first: (tick, holder, epoch). Tests and tools.
    pub async fn runs(&self, job: &str) -> Result<Vec<(i64, String, i64)>, StoreError> {
        let runs = on_pool!(self, pool, _Db => {
            let rows = sqlx::query(
                "SELECT tick, holder, epoch FROM cluster_runs WHERE job = $1 ORDER BY tick",
            )
            .bind(job)
            .fetch_all(pool)
            .await?;
            let mut runs = Vec::with_capacity(rows.len());
            for row in rows {
                runs.push((row.try_get("tick")?, row.try_get("holder")?, row.try_get("epoch")?));
            }
            runs
        });
        Ok(runs)
    }

    /// The change counters: whenever something the page shows was written,
    /// by any replica or the CLI, `all` moves, and `urgent` too when a
    /// reader must see it at once.
    pub async fn change_counter(&self) -> Result<Changes, StoreError> {
        let rows: Vec<(i32, i64)> = on_pool!(self, pool, _Db => {
            sqlx::query_as("SELECT id, counter FROM store_changes WHERE id IN (1, 2)")
                .fetch_all(pool)
                .await?
        });
        let of = |id: i32| rows.iter().find(|(i, _)| *i == id).map_or(0, |(_, n)| *n);
        Ok(Changes {
            all: of(1),
            urgent: of(2),
        })
    }
}

/// The store's change counters (see [`Store::change_counter`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Changes {
    /// Every write that changes the page: results and last checks too.
    pub all: i64,
    /// Writes a reader must see at once: incidents, maintenance, state
    /// changes, the services' sync.
    pub urgent: i64,
}
