//! The `backups` table: what this beacon did with each backup, and whether
//! it verified.

use sqlx::Row;

use super::{Store, StoreError};
use crate::domain::{BackupFacts, Event, EventKind};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupRecord {
    pub id: String,
    pub created_at: i64,
    pub target: String,
    pub archive_key: String,
    pub size_bytes: Option<i64>,
    pub sha256: Option<String>,
    /// running · uploaded · verified · failed · deleted
    pub status: String,
    pub failed_step: Option<String>,
    pub error: Option<String>,
    pub verified_at: Option<i64>,
    pub updated_at: i64,
}

impl Store {
    /// Inserts or replaces the record of one backup.
    /// A failed one raises an alert event in the same transaction, once per
    /// backup and failed step.
    pub async fn save_backup_record(&self, r: &BackupRecord) -> Result<(), StoreError> {
        on_pool!(self, pool, _Db => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO backups (id, created_at, target, archive_key, size_bytes, sha256, status, \
                 failed_step, error, verified_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (id) DO UPDATE SET target = excluded.target, archive_key = excluded.archive_key, \
                 size_bytes = excluded.size_bytes, sha256 = excluded.sha256, status = excluded.status, \
                 failed_step = excluded.failed_step, error = excluded.error, \
                 verified_at = excluded.verified_at, updated_at = excluded.updated_at",
            )
            .bind(&r.id)
            .bind(r.created_at)
            .bind(&r.target)
            .bind(&r.archive_key)
            .bind(r.size_bytes)
            .bind(&r.sha256)
            .bind(&r.status)
            .bind(&r.failed_step)
            .bind(&r.error)
            .bind(r.verified_at)
            .bind(r.updated_at)
            .execute(&mut *tx)
            .await?;
            if r.status == "failed" {
                let step = r.failed_step.clone().unwrap_or_default();
                let kind = if step.starts_with("verify") {
                    EventKind::BackupVerificationFailed
                } else {
                    EventKind::BackupFailed
                };
                let event = Event {
                    location: None,
            maintenance: None,
                    kind,
                    at: r.updated_at,
                    service: None,
                    incident: None,
                    backup: Some(BackupFacts {
                        id: r.id.clone(),
                        step: step.clone(),
                        error: r.error.clone(),
                    }),
                    certificate: None,
                };
                insert_alert_event!(tx, &event, None, Some(format!("backup:{}:{step}", r.id)));
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Every record, the newest first.
    pub async fn backup_records(&self) -> Result<Vec<BackupRecord>, StoreError> {
        let rows = on_pool!(self, pool, _Db => {
            sqlx::query("SELECT * FROM backups ORDER BY created_at DESC, id DESC")
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| {
                    Ok(BackupRecord {
                        id: r.try_get("id")?,
                        created_at: r.try_get("created_at")?,
                        target: r.try_get("target")?,
                        archive_key: r.try_get("archive_key")?,
                        size_bytes: r.try_get("size_bytes")?,
                        sha256: r.try_get("sha256")?,
                        status: r.try_get("status")?,
                        failed_step: r.try_get("failed_step")?,
                        error: r.try_get("error")?,
                        verified_at: r.try_get("verified_at")?,
                        updated_at: r.try_get("updated_at")?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        Ok(rows)
    }
}
