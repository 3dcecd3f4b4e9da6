//! The services beacon watches: the config's list made the store's, and
//! what the status page needs to know of each.

use std::collections::HashMap;

use sqlx::Row;

use super::rollup::Period;
use super::scan::Scan;
use super::{Store, StoreError};
use crate::config::ServiceConfig;
use crate::domain::time::HOUR_MS;
use crate::domain::{Dependency, State};

/// A configured service as the store knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredService {
    pub id: i64,
    pub slug: String,
    pub state: State,
    pub state_since: Option<i64>,
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

/// A `services` row (the columns [`SUMMARY_COLUMNS`] names) as a
/// [`ServiceSummary`], with its 24 h counts. A macro because each backend's
/// row is its own type.
macro_rules! summary_of_row {
    ($row:expr, $id:expr, $checks:expr, $ok:expr) => {{
        let row = &$row;
        let state: String = row.try_get("state")?;
        ServiceSummary {
            id: $id,
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
            checks_24h: $checks,
            ok_24h: $ok,
            dependencies: row
                .try_get::<Option<String>, _>("dependencies")?
                .and_then(|json| serde_json::from_str(&json).ok())
                .unwrap_or_default(),
            certificate_expires_at: row.try_get("certificate_expires_at")?,
        }
    }};
}

/// What [`summary_of_row`] reads.
const SUMMARY_COLUMNS: &str = "id, slug, name, group_name, description, public, position, state, \
     state_since, last_checked_at, dependencies, certificate_expires_at, created_at";

/// Ids per `IN (…)` list: well under either database's limit on binds.
const IDS_PER_QUERY: usize = 500;

impl Store {
    /// Makes the `services` table match the config, in one transaction:
    /// services are matched by slug; those no longer configured are marked
    /// inactive (their history stays, the page stops showing them).
    ///
    /// Rows already as configured are not written at all: a restart of an
    /// unchanged config is one read, not a statement per service (3 s at
    /// 10,000 services on PostgreSQL, before probing could resume).
    pub async fn sync_services(
        &self,
        services: &[ServiceConfig],
        now: i64,
    ) -> Result<Vec<StoredService>, StoreError> {
        /// One write, in slug order.
        enum Write<'a> {
            Upsert(usize, &'a ServiceConfig),
            Deactivate(i64),
        }
        // It reads before it writes: on SQLite the write lock is taken at
        // once, or another writer committing in between would make the
        // first write fail (a stale read snapshot) instead of waiting.
        let begin = match &self.0 {
            super::Pools::Sqlite(_) => "BEGIN IMMEDIATE",
            super::Pools::Postgres(_) => "BEGIN",
        };
        let stored = on_pool!(self, pool, Db => {
            // A new row's revision too, so that a rebuild's read of the
            // rows written since its last (`page_changes`) finds it.
            let upsert = format!(
                "INSERT INTO services (slug, name, group_name, description, public, active, position, created_at, updated_at, revision) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, {next}) \
                 ON CONFLICT (slug) DO UPDATE SET name = excluded.name, group_name = excluded.group_name, \
                   description = excluded.description, public = excluded.public, active = excluded.active, \
                   position = excluded.position, updated_at = excluded.updated_at, \
                   revision = {moved} \
                 RETURNING id, state, state_since",
                next = <Db as crate::store::Revisions>::NEXT,
                moved = <Db as crate::store::Revisions>::MOVED
            );
            let mut tx = pool.begin_with(begin).await?;
            // Every row as it stands (active or not), by slug.
            let mut existing: HashMap<String, (bool, ServiceSummary)> = HashMap::new();
            for row in sqlx::query(&format!("SELECT active, {SUMMARY_COLUMNS} FROM services"))
                .fetch_all(&mut *tx)
                .await?
            {
                let id: i64 = row.try_get("id")?;
                let active: bool = row.try_get("active")?;
                let summary = summary_of_row!(row, id, 0, 0);
                existing.insert(summary.slug.clone(), (active, summary));
            }
            let mut stored: Vec<Option<StoredService>> = vec![None; services.len()];
            // Rows are written in slug order, whatever the config's order:
            // two beacons syncing at once (a rolling update, replicas) then
            // take their row locks in the same order and cannot deadlock.
            let mut writes: Vec<(&str, Write)> = Vec::new();
            for (position, s) in services.iter().enumerate() {
                match existing.get(&s.slug) {
                    Some((true, e))
                        if e.name == s.name
                            && e.group == s.group
                            && e.description == s.description
                            && e.public == s.public
                            && e.position == position as i64 =>
                    {
                        stored[position] = Some(StoredService {
                            id: e.id,
                            slug: s.slug.clone(),
                            state: e.state,
                            state_since: e.state_since,
                        });
                    }
                    _ => writes.push((s.slug.as_str(), Write::Upsert(position, s))),
                }
            }
            let configured: std::collections::HashSet<&str> =
                services.iter().map(|s| s.slug.as_str()).collect();
            for (slug, (active, e)) in &existing {
                if *active && !configured.contains(slug.as_str()) {
                    writes.push((slug.as_str(), Write::Deactivate(e.id)));
                }
            }
            writes.sort_unstable_by(|a, b| a.0.cmp(b.0));
            let wrote = !writes.is_empty();
            for (_, write) in writes {
                let (position, s) = match write {
                    Write::Deactivate(id) => {
                        sqlx::query(&format!(
                            "UPDATE services SET active = $1, updated_at = $2, revision = {} WHERE id = $3",
                            <Db as crate::store::Revisions>::MOVED
                        ))
                            .bind(false)
                            .bind(now)
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                        continue;
                    }
                    Write::Upsert(position, s) => (position, s),
                };
                let row = sqlx::query(&upsert)
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
                stored[position] = Some(StoredService {
                    id: row.try_get("id")?,
                    slug: s.slug.clone(),
                    state: State::parse(&state).unwrap_or(State::Unknown),
                    state_since: row.try_get("state_since")?,
                });
            }
            if wrote {
                bump_changes!(tx);
            }
            tx.commit().await?;
            stored
        });
        // Every position was filled: one row per configured service.
        Ok(stored.into_iter().flatten().collect())
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
            let rows = sqlx::query(&format!(
                "SELECT {SUMMARY_COLUMNS} FROM services WHERE active = $1 ORDER BY position, id"
            ))
            .bind(true)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let id: i64 = row.try_get("id")?;
                let (checks_24h, ok_24h) = counts.get(&id).copied().unwrap_or((0, 0));
                out.push(summary_of_row!(row, id, checks_24h, ok_24h));
            }
            out
        });
        Ok(summaries)
    }

    /// Every public, active service's revision and last check, by id: what
    /// the snapshot compares with what it last read, to read again only the
    /// rows that moved. Packed by the database into one value
    /// (`id:revision:last_checked_at,…`), so 10,000 services are one row to
    /// decode, not 10,000.
    ///
    /// A probe's `last_checked_at` does not move the revision (every probe
    /// would then have its whole row read again, which at 10,000 services
    /// every 30 s was a few hundred rows a second, and at 5,000 probes a
    /// second all of them on every rebuild): it comes with this read
    /// instead.
    ///
    /// In the database's order, as pairs: the snapshot looks each up in
    /// its own rows, so a map here would be built only to be walked.
    pub async fn page_versions(&self) -> Result<Vec<(i64, RowVersion)>, StoreError> {
        let aggregate = match &self.0 {
            super::Pools::Sqlite(_) => "group_concat",
            super::Pools::Postgres(_) => "string_agg",
        };
        let sql = format!(
            "SELECT {aggregate}(id || ':' || revision || ':' || coalesce(CAST(last_checked_at AS TEXT), ''), ',') \
             FROM services WHERE active = $1 AND public = $1"
        );
        let packed: Option<String> = on_pool!(self, pool, _Db => {
            sqlx::query_scalar(&sql).bind(true).fetch_one(pool).await?
        });
        let packed = packed.as_deref().unwrap_or("");
        let mut out = Vec::with_capacity(packed.len() / 24);
        let mut scan = Scan::new(packed);
        while !scan.at_end() {
            // Nothing between two commas: nothing to read.
            if scan.eat(b',') {
                continue;
            }
            let started = scan.position();
            let Some(version) = parse_version(&mut scan) else {
                scan.rewind(started);
                return Err(StoreError::Corrupt {
                    table: "services",
                    column: "revision",
                    value: scan.rest_of_part(b',').to_string(),
                });
            };
            out.push(version);
        }
        Ok(out)
    }

    /// Public, active services as the page shows them, each with its
    /// revision: all of them, or only those of `ids`. No 24 h counts (they
    /// are 0): the snapshot has them from the services' history.
    pub async fn page_summaries(
        &self,
        ids: Option<&[i64]>,
    ) -> Result<Vec<(i64, ServiceSummary)>, StoreError> {
        let all = [None];
        let chunks: Vec<Option<&[i64]>> = match ids {
            None => all.to_vec(),
            Some(ids) => ids.chunks(IDS_PER_QUERY).map(Some).collect(),
        };
        let mut out = Vec::new();
        // In one transaction: the lists are unnamed statements, which a
        // transaction-pooling PgBouncer may otherwise Parse on one server
        // connection and Bind on another (see `Store::load`).
        on_pool!(self, pool, Db => {
            let mut tx = pool.begin().await?;
            for chunk in chunks.iter().copied() {
                let mut qb = sqlx::QueryBuilder::<Db>::new(format!(
                    "SELECT revision, {SUMMARY_COLUMNS} FROM services WHERE active = "
                ));
                qb.push_bind(true).push(" AND public = ").push_bind(true);
                if let Some(chunk) = chunk {
                    qb.push(" AND id IN (");
                    crate::store::push_ids(&mut qb, chunk);
                    qb.push(")");
                }
                let rows = qb.build().persistent(false).fetch_all(&mut *tx).await?;
                out.reserve(rows.len());
                for row in rows {
                    let id: i64 = row.try_get("id")?;
                    let revision: i64 = row.try_get("revision")?;
                    out.push((revision, summary_of_row!(row, id, 0, 0)));
                }
            }
            tx.commit().await?;
        });
        Ok(out)
    }

    /// Every service row written since a read that saw revisions up to
    /// `since` (migration 0017): each with its revision and whether the
    /// page shows it (active and public; a row that left the page comes
    /// too, so that a reader drops it). Through the index on `revision`,
    /// so a rebuild between two full comparisons ([`Store::page_versions`])
    /// reads what was written, not the fleet.
    ///
    /// A transaction that took its revision before such a read and
    /// commits after it is below that read's highest revision: a reader
    /// asks from the highest of the read before (one read's overlap), and
    /// its next full comparison catches a write held open longer than that.
    pub async fn page_changes(&self, since: i64) -> Result<Vec<PageChange>, StoreError> {
        let sql =
            format!("SELECT revision, active, {SUMMARY_COLUMNS} FROM services WHERE revision > $1");
        let rows = on_pool!(self, pool, _Db => {
            let mut out = Vec::new();
            for row in sqlx::query(&sql).bind(since).fetch_all(pool).await? {
                let id: i64 = row.try_get("id")?;
                let active: bool = row.try_get("active")?;
                let summary = summary_of_row!(row, id, 0, 0);
                out.push(PageChange {
                    revision: row.try_get("revision")?,
                    shown: active && summary.public,
                    summary,
                });
            }
            out
        });
        Ok(rows)
    }

    /// The public, active services among `names`, each name a slug or a
    /// group's name, with their group names: what a subscriber may follow
    /// and be told about, read for the names an event or a sign-up gives
    /// rather than for the whole fleet (at 30,000 services every routed
    /// event read 30,000 rows; see docs/performance.md, issue 16).
    pub async fn public_components_named(
        &self,
        names: &[&str],
    ) -> Result<Vec<(String, Option<String>)>, StoreError> {
        let mut out = Vec::new();
        if names.is_empty() {
            return Ok(out);
        }
        // Two binds a name: a slug or a group's.
        let chunks: Vec<&[&str]> = names.chunks(IDS_PER_QUERY / 2).collect();
        // In one transaction, for the reason `page_summaries` gives.
        on_pool!(self, pool, Db => {
            let mut tx = pool.begin().await?;
            for chunk in chunks.iter().copied() {
                let mut qb = sqlx::QueryBuilder::<Db>::new(
                    "SELECT slug, group_name FROM services WHERE active = ",
                );
                qb.push_bind(true).push(" AND public = ").push_bind(true);
                for (column, first) in [(" AND (slug IN (", true), (" OR group_name IN (", false)] {
                    qb.push(column);
                    let mut list = qb.separated(", ");
                    for name in chunk {
                        list.push_bind(name.to_string());
                    }
                    qb.push(if first { ")" } else { "))" });
                }
                let rows = qb.build().persistent(false).fetch_all(&mut *tx).await?;
                for r in rows {
                    out.push((r.try_get("slug")?, r.try_get("group_name")?));
                }
            }
            tx.commit().await?;
        });
        Ok(out)
    }
}

/// A shown service's revision (moved by every write to its row but a
/// probe's last check) and its last check (epoch ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowVersion {
    pub revision: i64,
    pub last_checked_at: Option<i64>,
}

/// A service row written since a read (see [`Store::page_changes`]).
#[derive(Debug, Clone)]
pub struct PageChange {
    pub revision: i64,
    /// Whether the page shows it (active and public).
    pub shown: bool,
    pub summary: ServiceSummary,
}

/// One `id:revision:last_checked_at` of [`Store::page_versions`], up to
/// and past the `,` that ends it or the end of the text.
fn parse_version(s: &mut Scan) -> Option<(i64, RowVersion)> {
    let id = s.int()?;
    s.expect(b':')?;
    let revision = s.int()?;
    s.expect(b':')?;
    let last_checked_at = if s.eat(b',') || s.at_end() {
        None
    } else {
        let at = s.int()?;
        if !(s.eat(b',') || s.at_end()) {
            return None;
        }
        Some(at)
    };
    Some((
        id,
        RowVersion {
            revision,
            last_checked_at,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_version_reads_back_and_garbage_does_not() {
        let parse_version = |text: &str| {
            let mut scan = Scan::new(text);
            parse_version(&mut scan).filter(|_| scan.at_end())
        };
        let version = |revision, last_checked_at| RowVersion {
            revision,
            last_checked_at,
        };
        assert_eq!(
            parse_version("12:3:1700000000123"),
            Some((12, version(3, Some(1_700_000_000_123))))
        );
        assert_eq!(parse_version("12:0:"), Some((12, version(0, None))));
        for garbage in ["12", "12:3", "12:x:", "12:3:5:6", ":3:", "12:3:1.5"] {
            assert_eq!(parse_version(garbage), None, "{garbage}");
        }
        // As the database joins them: each in turn.
        let mut scan = Scan::new("12:3:5,13:0:,14:1:9");
        let ids: Vec<_> = std::iter::from_fn(|| super::parse_version(&mut scan))
            .map(|(id, v)| (id, v.last_checked_at))
            .collect();
        assert_eq!(ids, [(12, Some(5)), (13, None), (14, Some(9))]);
        assert!(scan.at_end());
    }
}
