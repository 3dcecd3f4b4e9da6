//! Scheduled maintenance windows: written by the admin API and CLI, read by
//! the recorder (which services are in maintenance now) and the pages.

use sqlx::Row;

use super::{Store, StoreError};
// The checked input of the admin API and the CLI (see `domain::input`).
pub use crate::domain::input::MaintenanceInput;

/// One service's share of a maintenance window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceWindow {
    pub service_id: i64,
    pub starts_at: i64,
    pub ends_at: i64,
}

impl ServiceWindow {
    pub fn covers(&self, service_id: i64, at: i64) -> bool {
        self.service_id == service_id && self.starts_at <= at && at < self.ends_at
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Maintenance {
    pub id: i64,
    pub title: String,
    pub message: String,
    pub starts_at: i64,
    pub ends_at: i64,
    /// Slugs of the affected services.
    pub services: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Maintenance {
    /// The window as input, for an edit to merge over.
    pub fn input(&self) -> MaintenanceInput {
        MaintenanceInput {
            title: self.title.clone(),
            message: self.message.clone(),
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            services: self.services.clone(),
        }
    }
}

impl Store {
    /// Every (service, window) that has not ended by `since`, future ones
    /// included, so each result can be judged at its own time.
    pub async fn maintenance_windows(&self, since: i64) -> Result<Vec<ServiceWindow>, StoreError> {
        let rows = on_pool!(self, pool, _Db => {
            sqlx::query(
                "SELECT ms.service_id, m.starts_at, m.ends_at FROM maintenance_services ms \
                 JOIN maintenances m ON m.id = ms.maintenance_id WHERE m.ends_at > $1",
            )
            .bind(since)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| {
                Ok(ServiceWindow {
                    service_id: r.try_get("service_id")?,
                    starts_at: r.try_get("starts_at")?,
                    ends_at: r.try_get("ends_at")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        Ok(rows)
    }

    /// Every window, the latest start first.
    pub async fn maintenances(&self) -> Result<Vec<Maintenance>, StoreError> {
        let ids: Vec<i64> = on_pool!(self, pool, _Db => {
            sqlx::query_scalar("SELECT id FROM maintenances ORDER BY starts_at DESC, id DESC")
                .fetch_all(pool)
                .await?
        });
        self.load_maintenances(ids).await
    }

    /// The `limit` windows that start latest, the latest first.
    pub async fn recent_maintenances(&self, limit: i64) -> Result<Vec<Maintenance>, StoreError> {
        let ids: Vec<i64> = on_pool!(self, pool, _Db => {
            sqlx::query_scalar("SELECT id FROM maintenances ORDER BY starts_at DESC, id DESC LIMIT $1")
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        self.load_maintenances(ids).await
    }

    /// Windows that have not ended at `now` (active and upcoming), the
    /// soonest start first.
    pub async fn current_maintenances(&self, now: i64) -> Result<Vec<Maintenance>, StoreError> {
        let ids: Vec<i64> = on_pool!(self, pool, _Db => {
            sqlx::query_scalar(
                "SELECT id FROM maintenances WHERE ends_at > $1 ORDER BY starts_at, id",
            )
            .bind(now)
            .fetch_all(pool)
            .await?
        });
        self.load_maintenances(ids).await
    }

    async fn load_maintenances(&self, ids: Vec<i64>) -> Result<Vec<Maintenance>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(m) = self.maintenance(id).await? {
                out.push(m);
            }
        }
        Ok(out)
    }

    pub async fn maintenance(&self, id: i64) -> Result<Option<Maintenance>, StoreError> {
        let found = on_pool!(self, pool, _Db => {
            let row = sqlx::query("SELECT id, title, message, starts_at, ends_at, created_at, updated_at FROM maintenances WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?;
            match row {
                None => None,
                Some(row) => {
                    let services: Vec<String> = sqlx::query_scalar(
                        "SELECT s.slug FROM maintenance_services ms JOIN services s ON s.id = ms.service_id \
                         WHERE ms.maintenance_id = $1 ORDER BY s.position, s.id",
                    )
                    .bind(id)
                    .fetch_all(pool)
                    .await?;
                    Some(Maintenance {
                        id: row.try_get("id")?,
                        title: row.try_get("title")?,
                        message: row.try_get("message")?,
                        starts_at: row.try_get("starts_at")?,
                        ends_at: row.try_get("ends_at")?,
                        services,
                        created_at: row.try_get("created_at")?,
                        updated_at: row.try_get("updated_at")?,
                    })
                }
            }
        });
        Ok(found)
    }

    /// Creates a window (`id` None) or replaces one; one transaction.
    /// Unknown slugs write nothing (`StoreError::Invalid`); `Ok(None)`: no
    /// window with that id.
    pub async fn save_maintenance(
        &self,
        id: Option<i64>,
        input: &MaintenanceInput,
        at: i64,
    ) -> Result<Option<i64>, StoreError> {
        super::incidents::no_nul("title", &input.title)?;
        super::incidents::no_nul("message", &input.message)?;
        let service_ids = self.service_ids(&input.services).await?;
        let created = id.is_none();
        let saved = on_pool!(self, pool, _Db => {
            let (_turn, mut tx) = self.begin_write(pool).await?;
            let id = match id {
                None => Some(
                    sqlx::query_scalar::<_, i64>(
                        "INSERT INTO maintenances (title, message, starts_at, ends_at, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
                    )
                    .bind(&input.title)
                    .bind(&input.message)
                    .bind(input.starts_at)
                    .bind(input.ends_at)
                    .bind(at)
                    .fetch_one(&mut *tx)
                    .await?,
                ),
                Some(id) => {
                    let n = sqlx::query(
                        "UPDATE maintenances SET title = $1, message = $2, starts_at = $3, ends_at = $4, \
                         updated_at = $5 WHERE id = $6",
                    )
                    .bind(&input.title)
                    .bind(&input.message)
                    .bind(input.starts_at)
                    .bind(input.ends_at)
                    .bind(at)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    (n == 1).then_some(id)
                }
            };
            if let Some(id) = id {
                sqlx::query("DELETE FROM maintenance_services WHERE maintenance_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                for service in &service_ids {
                    sqlx::query(
                        "INSERT INTO maintenance_services (maintenance_id, service_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    )
                    .bind(id)
                    .bind(*service)
                    .execute(&mut *tx)
                    .await?;
                }
                if created && input.starts_at > at {
                    // Subscribers and channels hear of a window ahead of it.
                    insert_maintenance_event!(
                        tx,
                        id,
                        crate::domain::EventKind::MaintenanceScheduled,
                        at,
                        Some(format!("maintenance:{id}:scheduled"))
                    );
                }
                bump_changes!(tx);
                tx.commit().await?;
            }
            id
        });
        Ok(saved)
    }

    /// The windows that started or ended in `(since, now]`: each edge as
    /// (window id, event kind, when).
    pub async fn maintenance_edges(
        &self,
        since: i64,
        now: i64,
    ) -> Result<Vec<(i64, crate::domain::EventKind, i64)>, StoreError> {
        use crate::domain::EventKind;
        let rows: Vec<(i64, i64, i64)> = on_pool!(self, pool, _Db => {
            sqlx::query(
                "SELECT id, starts_at, ends_at FROM maintenances WHERE (starts_at > $1 AND starts_at <= $2) \
                 OR (ends_at > $1 AND ends_at <= $2) ORDER BY id",
            )
            .bind(since)
            .bind(now)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("starts_at")?, r.try_get("ends_at")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        let mut edges = Vec::new();
        for (id, starts, ends) in rows {
            if starts > since && starts <= now {
                edges.push((id, EventKind::MaintenanceStarted, starts));
            }
            if ends > since && ends <= now {
                edges.push((id, EventKind::MaintenanceCompleted, ends));
            }
        }
        Ok(edges)
    }

    /// Raises the event of a window's edge, once per window and time
    /// (`dedupe`): replicas, and a restart, raise it once.
    pub async fn raise_maintenance_event(
        &self,
        id: i64,
        kind: crate::domain::EventKind,
        at: i64,
        dedupe: String,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool, _Db => {
            let (_turn, mut tx) = self.begin_write(pool).await?;
            let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM maintenances WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_some() {
                insert_maintenance_event!(tx, id, kind, at, Some(dedupe));
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Deletes a window at `at`. One announced ahead and not started is
    /// told as cancelled; one under way as completed now.
    pub async fn delete_maintenance(&self, id: i64, at: i64) -> Result<bool, StoreError> {
        use crate::domain::EventKind;
        let deleted = on_pool!(self, pool, _Db => {
            let (_turn, mut tx) = self.begin_write(pool).await?;
            let times = sqlx::query("SELECT starts_at, ends_at FROM maintenances WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(row) = times {
                let starts_at: i64 = row.try_get("starts_at")?;
                let ends_at: i64 = row.try_get("ends_at")?;
                if at < starts_at {
                    let announced: Option<i64> = sqlx::query_scalar("SELECT id FROM alert_events WHERE dedupe_key = $1")
                        .bind(format!("maintenance:{id}:scheduled"))
                        .fetch_optional(&mut *tx)
                        .await?;
                    if announced.is_some() {
                        insert_maintenance_event!(tx, id, EventKind::MaintenanceCancelled, at, Some(format!("maintenance:{id}:cancelled")));
                    }
                } else if at < ends_at {
                    insert_maintenance_event!(tx, id, EventKind::MaintenanceCompleted, at, Some(format!("maintenance:{id}:maintenance_completed:{at}")));
                }
            }
            sqlx::query("DELETE FROM maintenance_services WHERE maintenance_id = $1").bind(id).execute(&mut *tx).await?;
            let n = sqlx::query("DELETE FROM maintenances WHERE id = $1").bind(id).execute(&mut *tx).await?.rows_affected();
            bump_changes!(tx);
            tx.commit().await?;
            n == 1
        });
        Ok(deleted)
    }
}
