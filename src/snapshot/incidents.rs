//! The incidents a snapshot shows, kept between rebuilds: a rebuild reads
//! every open and recent incident's version and loads again only those
//! that moved.

use std::time::{Duration, Instant};

use super::history::FastMap;
use crate::store::{Incident, IncidentVersion, Store, StoreError};

/// Every incident shown is loaded again at least this often, as every
/// service's row is (the refresher's `FULL_READ_EVERY`).
pub const LOAD_ALL_EVERY: Duration = Duration::from_secs(300);

/// The open and recent incidents as last loaded, each with the version it
/// was loaded at.
///
/// Loading an incident is three queries' rows (the incident, its services,
/// its timeline) decoded and assembled; at 30,000 services with 600 open
/// automatic incidents, loading all of them on every rebuild, about once a
/// second on every replica, was a fifth of the snapshot's cost (the
/// profile of three replicas in docs/performance.md, issue 16). A rebuild
/// now reads the versions (id, revision, `updated_at`: one short row an
/// incident) and loads only the incidents that are new or moved.
///
/// An incident written between the two reads is loaded at its newer
/// version and kept under the older one, so it is loaded once more next
/// time: never missed, at worst loaded twice. Every incident is loaded
/// again every [`LOAD_ALL_EVERY`] anyway, which bounds how long a write
/// that moved neither (none does today) could go unseen.
#[derive(Debug, Default)]
pub struct KeptIncidents {
    inner: parking_lot::Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    by_id: FastMap<i64, (IncidentVersion, Incident)>,
    /// When every incident shown was last loaded.
    full_at: Option<Instant>,
    /// Incidents loaded by the last read (for tests and the debug log).
    loaded: usize,
}

impl KeptIncidents {
    /// The unresolved incidents and those since `since` (at least the
    /// newest `at_least`, at most `cap`), newest first, as
    /// [`Store::unresolved_incidents`] and [`Store::incidents_since`]
    /// return them, loading only what moved since the last call.
    pub async fn read(
        &self,
        store: &Store,
        since: i64,
        at_least: i64,
        cap: i64,
    ) -> Result<(Vec<Incident>, Vec<Incident>), StoreError> {
        let (open, recent) = store.incident_versions(since, at_least, cap).await?;
        let (stale, moved) = {
            let kept = self.inner.lock();
            let stale = kept.full_at.is_none_or(|t| t.elapsed() >= LOAD_ALL_EVERY);
            let mut moved: Vec<i64> = open
                .iter()
                .chain(&recent)
                .filter(|v| stale || kept.by_id.get(&v.id).is_none_or(|(was, _)| was != *v))
                .map(|v| v.id)
                .collect();
            // An open incident is usually among the recent ones too.
            moved.sort_unstable();
            moved.dedup();
            (stale, moved)
        };
        let loaded = if moved.is_empty() {
            Vec::new()
        } else {
            store.incidents_by_id(&moved).await?
        };
        let mut kept = self.inner.lock();
        let versions: FastMap<i64, IncidentVersion> =
            open.iter().chain(&recent).map(|v| (v.id, *v)).collect();
        kept.loaded = loaded.len();
        if stale {
            kept.full_at = Some(Instant::now());
        }
        // Deleted between the two reads: not shown, whatever was kept.
        for id in &moved {
            kept.by_id.remove(id);
        }
        for incident in loaded {
            if let Some(version) = versions.get(&incident.id) {
                kept.by_id.insert(incident.id, (*version, incident));
            }
        }
        // No longer open or recent: dropped.
        if kept.by_id.len() > versions.len() {
            kept.by_id.retain(|id, _| versions.contains_key(id));
        }
        let pick = |list: &[IncidentVersion]| -> Vec<Incident> {
            list.iter()
                .filter_map(|v| kept.by_id.get(&v.id).map(|(_, i)| i.clone()))
                .collect()
        };
        Ok((pick(&open), pick(&recent)))
    }

    /// How many incidents the last [`KeptIncidents::read`] loaded.
    pub fn loaded(&self) -> usize {
        self.inner.lock().loaded
    }
}
