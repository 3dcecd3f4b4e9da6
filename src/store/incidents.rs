//! Incidents and their timelines: read by the pages, written by the
//! monitor (automatic ones, in `write_batch`) and by the admin API and CLI.
//! Each write is one transaction, with the alert event it raises (hand
//! writes only: the monitor's own incident steps are told by the service
//! events of the change that causes them).

use std::collections::HashMap;

use sqlx::Row;

use super::{Store, StoreError};
use crate::domain::EventKind;
// The checked input of the admin API and the CLI: its rules are the
// domain's, the store only writes it.
pub use crate::domain::input::{IncidentPatch, NewIncident};

/// The unresolved incidents, newest first, and those since `$1` (at least
/// the newest `$2`, at most `$3`): one text each for the incidents' reads
/// and their versions' (`Store::incident_versions`), which the snapshot
/// needs to name exactly the same incidents.
const UNRESOLVED: &str =
    "FROM incidents WHERE resolved_at IS NULL ORDER BY started_at DESC, id DESC";
const RECENT: &str = "FROM incidents WHERE started_at >= $1 OR id IN \
     (SELECT id FROM incidents ORDER BY started_at DESC, id DESC LIMIT $2) \
     ORDER BY started_at DESC, id DESC LIMIT $3";

/// Incidents read per `IN (...)` list: well under SQLite's 32,766 binds.
const LOAD_CHUNK: usize = 500;

/// An incident with its timeline, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub id: i64,
    pub title: String,
    pub impact: String,
    pub status: String,
    pub automatic: bool,
    pub postmortem: Option<String>,
    pub started_at: i64,
    pub updated_at: i64,
    pub resolved_at: Option<i64>,
    /// Slugs of the affected services.
    pub services: Vec<String>,
    /// Oldest first.
    pub updates: Vec<IncidentUpdate>,
}

/// Where an incident stands: its revision moves with every write to it,
/// its services or its timeline (migration 0016), and `updated_at` too,
/// which a replica of the release before (a rolling upgrade) also moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncidentVersion {
    pub id: i64,
    pub revision: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IncidentUpdate {
    pub status: String,
    pub message: String,
    pub created_at: i64,
}

/// Refuses a NUL in text written by hand, naming the field: PostgreSQL
/// cannot store one in text (it would fail the whole write as a query
/// error) while SQLite would, so both stores refuse it alike, before
/// anything is written. The admin API and the CLI refuse it first, in the
/// same words.
pub(super) fn no_nul(field: &'static str, value: &str) -> Result<(), StoreError> {
    if value.contains('\0') {
        return Err(StoreError::Invalid {
            field,
            message: "must not contain a NUL character (U+0000)".into(),
        });
    }
    Ok(())
}

impl Store {
    /// The ids of active services by slug, in order. An unknown slug is
    /// the caller's mistake (`StoreError::Invalid` naming it), checked before
    /// any write so that a refused request writes nothing.
    pub async fn service_ids(&self, slugs: &[String]) -> Result<Vec<i64>, StoreError> {
        let mut ids = Vec::with_capacity(slugs.len());
        for slug in slugs {
            if slug.contains('\0') {
                return Err(StoreError::Invalid {
                    field: "services",
                    message: "a slug must not contain a NUL character (U+0000)".into(),
                });
            }
            let id: Option<i64> = on_pool!(self, pool, _Db => {
                sqlx::query_scalar("SELECT id FROM services WHERE slug = $1 AND active = $2")
                    .bind(slug)
                    .bind(true)
                    .fetch_optional(pool)
                    .await?
            });
            match id {
                Some(id) => ids.push(id),
                None => {
                    return Err(StoreError::Invalid {
                        field: "services",
                        message: format!("no service with the slug \"{slug}\""),
                    })
                }
            }
        }
        Ok(ids)
    }

    /// Every incident that names the service `slug`, oldest first.
    pub async fn incidents_of(&self, slug: &str) -> Result<Vec<Incident>, StoreError> {
        let ids: Vec<i64> = on_pool!(self, pool, _Db => {
            sqlx::query_scalar(
                "SELECT i.id FROM incidents i JOIN incident_services x ON x.incident_id = i.id \
                 JOIN services s ON s.id = x.service_id WHERE s.slug = $1 ORDER BY i.started_at, i.id",
            )
            .bind(slug)
            .fetch_all(pool)
            .await?
        });
        self.load(&ids).await
    }

    /// The newest `limit` incidents, newest first.
    pub async fn recent_incidents(&self, limit: i64) -> Result<Vec<Incident>, StoreError> {
        let ids: Vec<i64> = on_pool!(self, pool, _Db => {
            sqlx::query_scalar("SELECT id FROM incidents ORDER BY started_at DESC, id DESC LIMIT $1")
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        self.load(&ids).await
    }

    /// Every incident that started at or after `since` (ms), and at least
    /// the newest `at_least` whatever their age; at most `cap`, newest first.
    pub async fn incidents_since(
        &self,
        since: i64,
        at_least: i64,
        cap: i64,
    ) -> Result<Vec<Incident>, StoreError> {
        let ids: Vec<i64> = on_pool!(self, pool, _Db => {
            sqlx::query_scalar(&format!("SELECT id {RECENT}"))
            .bind(since)
            .bind(at_least)
            .bind(cap)
            .fetch_all(pool)
            .await?
        });
        self.load(&ids).await
    }

    /// Incidents that started in `[from, to)` (ms), newest first, at most
    /// `limit` of them.
    pub async fn incidents_between(
        &self,
        from: i64,
        to: i64,
        limit: i64,
    ) -> Result<Vec<Incident>, StoreError> {
        let ids: Vec<i64> = on_pool!(self, pool, _Db => {
            sqlx::query_scalar(
                "SELECT id FROM incidents WHERE started_at >= $1 AND started_at < $2 \
                 ORDER BY started_at DESC, id DESC LIMIT $3",
            )
            .bind(from)
            .bind(to)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        self.load(&ids).await
    }

    /// When the first incident on record started (ms), if any.
    pub async fn first_incident_start(&self) -> Result<Option<i64>, StoreError> {
        Ok(on_pool!(self, pool, _Db => {
            sqlx::query_scalar("SELECT MIN(started_at) FROM incidents")
                .fetch_one(pool)
                .await?
        }))
    }

    /// Every incident not yet resolved, the newest first.
    pub async fn unresolved_incidents(&self) -> Result<Vec<Incident>, StoreError> {
        let ids: Vec<i64> = on_pool!(self, pool, _Db => {
            sqlx::query_scalar(&format!("SELECT id {UNRESOLVED}"))
            .fetch_all(pool)
            .await?
        });
        self.load(&ids).await
    }

    /// The versions of what [`Store::unresolved_incidents`] and
    /// [`Store::incidents_since`] return, in the same order, without
    /// loading them: what the snapshot compares with the incidents it
    /// holds, to load again only those that moved (see
    /// [`IncidentVersion`]).
    pub async fn incident_versions(
        &self,
        since: i64,
        at_least: i64,
        cap: i64,
    ) -> Result<(Vec<IncidentVersion>, Vec<IncidentVersion>), StoreError> {
        let versions = on_pool!(self, pool, _Db => {
            let open: Vec<(i64, i64, i64)> =
                sqlx::query_as(&format!("SELECT id, revision, updated_at {UNRESOLVED}"))
            .fetch_all(pool)
            .await?;
            let recent: Vec<(i64, i64, i64)> =
                sqlx::query_as(&format!("SELECT id, revision, updated_at {RECENT}"))
            .bind(since)
            .bind(at_least)
            .bind(cap)
            .fetch_all(pool)
            .await?;
            (open, recent)
        });
        let of = |rows: Vec<(i64, i64, i64)>| {
            rows.into_iter()
                .map(|(id, revision, updated_at)| IncidentVersion {
                    id,
                    revision,
                    updated_at,
                })
                .collect()
        };
        Ok((of(versions.0), of(versions.1)))
    }

    /// The incidents `ids` that exist, in that order, with their services
    /// and timelines.
    pub async fn incidents_by_id(&self, ids: &[i64]) -> Result<Vec<Incident>, StoreError> {
        self.load(ids).await
    }

    pub async fn incident(&self, id: i64) -> Result<Option<Incident>, StoreError> {
        Ok(self.load(&[id]).await?.pop())
    }

    /// The incidents `ids`, in that order, with their services and
    /// timelines: three queries for all of them (the snapshot loads up to
    /// 500 every second), in chunks that stay under SQLite's bind limit.
    /// The lists are not kept as prepared statements (`persistent(false)`):
    /// every length is a statement of its own. An unnamed statement lives
    /// from its Parse to its Bind, which sqlx sends after a Sync: outside a
    /// transaction a transaction-pooling PgBouncer may hand the Bind to
    /// another server connection, so the three reads share one transaction
    /// (which also reads them from one snapshot on SQLite).
    async fn load(&self, ids: &[i64]) -> Result<Vec<Incident>, StoreError> {
        let mut found: HashMap<i64, Incident> = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(LOAD_CHUNK) {
            on_pool!(self, pool, Db => {
                let mut tx = pool.begin().await?;
                let in_list = |sql: &str| {
                    let mut qb = sqlx::QueryBuilder::<Db>::new(sql);
                    qb.push(" (");
                    crate::store::push_ids(&mut qb, chunk);
                    qb.push(")");
                    qb
                };
                let mut q = in_list(
                    "SELECT id, title, impact, status, automatic, postmortem, started_at, updated_at, resolved_at \
                     FROM incidents WHERE id IN",
                );
                for row in q.build().persistent(false).fetch_all(&mut *tx).await? {
                    let id: i64 = row.try_get("id")?;
                    found.insert(
                        id,
                        Incident {
                            id,
                            title: row.try_get("title")?,
                            impact: row.try_get("impact")?,
                            status: row.try_get("status")?,
                            automatic: row.try_get("automatic")?,
                            postmortem: row.try_get("postmortem")?,
                            started_at: row.try_get("started_at")?,
                            updated_at: row.try_get("updated_at")?,
                            resolved_at: row.try_get("resolved_at")?,
                            services: Vec::new(),
                            updates: Vec::new(),
                        },
                    );
                }
                let mut q = in_list(
                    "SELECT x.incident_id, s.slug FROM incident_services x \
                     JOIN services s ON s.id = x.service_id WHERE x.incident_id IN",
                );
                q.push(" ORDER BY x.incident_id, s.position, s.id");
                for row in q.build().persistent(false).fetch_all(&mut *tx).await? {
                    let id: i64 = row.try_get("incident_id")?;
                    if let Some(i) = found.get_mut(&id) {
                        i.services.push(row.try_get("slug")?);
                    }
                }
                let mut q = in_list(
                    "SELECT incident_id, status, message, created_at FROM incident_updates \
                     WHERE incident_id IN",
                );
                q.push(" ORDER BY incident_id, created_at, id");
                for row in q.build().persistent(false).fetch_all(&mut *tx).await? {
                    let id: i64 = row.try_get("incident_id")?;
                    if let Some(i) = found.get_mut(&id) {
                        i.updates.push(IncidentUpdate {
                            status: row.try_get("status")?,
                            message: row.try_get("message")?,
                            created_at: row.try_get("created_at")?,
                        });
                    }
                }
                tx.commit().await?;
            });
        }
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    /// Creates an incident with its first update, in one transaction.
    /// An unknown service slug writes nothing and is `StoreError::Invalid`.
    pub async fn create_incident(&self, new: &NewIncident) -> Result<i64, StoreError> {
        no_nul("title", &new.title)?;
        no_nul("impact", &new.impact)?;
        no_nul("status", &new.status)?;
        no_nul("message", &new.message)?;
        let service_ids = self.service_ids(&new.services).await?;
        let id = on_pool!(self, pool, _Db => {
            let (_turn, mut tx) = self.begin_write(pool).await?;
            let resolved_at = (new.status == "resolved").then_some(new.at);
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO incidents (title, impact, status, automatic, started_at, created_at, updated_at, resolved_at) \
                 VALUES ($1, $2, $3, $4, $5, $5, $5, $6) RETURNING id",
            )
            .bind(&new.title)
            .bind(&new.impact)
            .bind(&new.status)
            .bind(false)
            .bind(new.at)
            .bind(resolved_at)
            .fetch_one(&mut *tx)
            .await?;
            for service_id in service_ids {
                sqlx::query("INSERT INTO incident_services (incident_id, service_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(id)
                    .bind(service_id)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("INSERT INTO incident_updates (incident_id, status, message, created_at) VALUES ($1, $2, $3, $4)")
                .bind(id)
                .bind(&new.status)
                .bind(&new.message)
                .bind(new.at)
                .execute(&mut *tx)
                .await?;
            insert_incident_event!(tx, id, EventKind::IncidentOpened, &new.message, new.at, new.notify, false);
            bump_changes!(tx);
            tx.commit().await?;
            id
        });
        Ok(id)
    }

    /// Adds an update; its status becomes the incident's (resolved sets
    /// `resolved_at`, anything else clears it). `notify` false: subscribers
    /// are not told. `false` if no such incident.
    pub async fn add_incident_update(
        &self,
        id: i64,
        status: &str,
        message: &str,
        at: i64,
        notify: bool,
    ) -> Result<bool, StoreError> {
        no_nul("status", status)?;
        no_nul("message", message)?;
        let found = on_pool!(self, pool, _Db => {
            let (_turn, mut tx) = self.begin_write(pool).await?;
            let resolved_at = (status == "resolved").then_some(at);
            let changed = sqlx::query(
                "UPDATE incidents SET status = $1, updated_at = $2, resolved_at = $3, revision = revision + 1 WHERE id = $4",
            )
            .bind(status)
            .bind(at)
            .bind(resolved_at)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 1 {
                sqlx::query("INSERT INTO incident_updates (incident_id, status, message, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(id)
                    .bind(status)
                    .bind(message)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                let kind = if status == "resolved" {
                    EventKind::IncidentResolved
                } else {
                    EventKind::IncidentUpdated
                };
                insert_incident_event!(tx, id, kind, message, at, notify, false);
                bump_changes!(tx);
                tx.commit().await?;
            }
            changed == 1
        });
        Ok(found)
    }

    /// Edits title, impact, postmortem and affected services at once.
    /// `false` if no such incident.
    pub async fn patch_incident(
        &self,
        id: i64,
        patch: &IncidentPatch,
        at: i64,
    ) -> Result<bool, StoreError> {
        no_nul("title", patch.title.as_deref().unwrap_or(""))?;
        no_nul("impact", patch.impact.as_deref().unwrap_or(""))?;
        no_nul("postmortem", patch.postmortem.as_deref().unwrap_or(""))?;
        let service_ids = match &patch.services {
            Some(slugs) => Some(self.service_ids(slugs).await?),
            None => None,
        };
        let found = on_pool!(self, pool, _Db => {
            let (_turn, mut tx) = self.begin_write(pool).await?;
            let changed = sqlx::query(
                "UPDATE incidents SET title = COALESCE($1, title), impact = COALESCE($2, impact), \
                 postmortem = COALESCE($3, postmortem), updated_at = $4, revision = revision + 1 WHERE id = $5",
            )
            .bind(patch.title.as_deref())
            .bind(patch.impact.as_deref())
            .bind(patch.postmortem.as_deref())
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 0 {
                return Ok(false);
            }
            if let Some(service_ids) = &service_ids {
                sqlx::query("DELETE FROM incident_services WHERE incident_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                for service in service_ids {
                    sqlx::query("INSERT INTO incident_services (incident_id, service_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                        .bind(id)
                        .bind(service)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            bump_changes!(tx);
            tx.commit().await?;
            true
        });
        Ok(found)
    }

    /// Deletes an incident with its timeline. `false` if no such incident.
    pub async fn delete_incident(&self, id: i64) -> Result<bool, StoreError> {
        let deleted = on_pool!(self, pool, _Db => {
            let (_turn, mut tx) = self.begin_write(pool).await?;
            // Explicit rather than ON DELETE CASCADE alone: SQLite enforces
            // cascades only with foreign keys on, which a by-hand session
            // may not have.
            sqlx::query("DELETE FROM incident_updates WHERE incident_id = $1").bind(id).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM incident_services WHERE incident_id = $1").bind(id).execute(&mut *tx).await?;
            let n = sqlx::query("DELETE FROM incidents WHERE id = $1").bind(id).execute(&mut *tx).await?.rows_affected();
            bump_changes!(tx);
            tx.commit().await?;
            n == 1
        });
        Ok(deleted)
    }
}
