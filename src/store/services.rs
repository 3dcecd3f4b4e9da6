//! The services beacon watches: the config's list made the store's, and
//! what the status page needs to know of each.

use std::collections::HashMap;

use sqlx::Row;

use super::rollup::Period;
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

impl Store {
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
            // Rows are written in slug order, whatever the config's order:
            // two beacons syncing at once (a rolling update, replicas) then
            // take their row locks in the same order and cannot deadlock.
            let mut by_slug: Vec<(usize, &ServiceConfig)> = services.iter().enumerate().collect();
            by_slug.sort_unstable_by(|a, b| a.1.slug.cmp(&b.1.slug));
            let mut stored: Vec<Option<StoredService>> = vec![None; services.len()];
            for (position, s) in by_slug {
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
                stored[position] = Some(StoredService {
                    id: row.try_get("id")?,
                    slug: s.slug.clone(),
                    state: State::parse(&state).unwrap_or(State::Unknown),
                    state_since: row.try_get("state_since")?,
                });
            }
            bump_changes!(tx);
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
}
