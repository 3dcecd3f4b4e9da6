//! Several replicas on one database: who is alive, who leads, who probes
//! what. The database is the only coordinator (no etcd, no Redis): each
//! replica heartbeats its row, the leader renews a lease whose epoch is the
//! fencing token of every singleton write, and services are divided among
//! the live members by rendezvous hashing of their slugs.
//!
//! Timing, with `lease` L and `heartbeat` H (at most L/3):
//! - every H a replica upserts its row, tries to take or renew the lease,
//!   and reads the live members (seen within L, by the database's clock);
//! - the leader counts its lease good until the moment it *sent* its last
//!   successful renewal plus L − H (the database granted L from a later
//!   instant), so a leader that cannot renew steps down at least H before
//!   its lease runs out, whatever the database then does;
//! - a leader that stops cleanly gives the lease up at once; one that dies
//!   is replaced within L + H.
//!
//! On SQLite (one process) the same code runs and the one replica leads.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::ClusterConfig;
use crate::metrics::Metrics;
use crate::store::{Fence, Member, Store, StoreError, LEADER_LEASE};

/// A replica's role, as it may act on it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
        }
    }
}

/// What this replica knows of the cluster, published after every
/// heartbeat.
#[derive(Debug, Clone)]
pub struct View {
    pub member: Arc<str>,
    /// The leader's epoch as last seen (this replica's own when it leads).
    pub epoch: i64,
    /// Who holds the lease, as last seen.
    pub leader: Option<String>,
    /// Live members by id, this replica included.
    pub members: Arc<Vec<Member>>,
    /// Until when this replica may act as leader (its own clock).
    leading_until: Option<Instant>,
}

impl View {
    /// Leader only while the lease, counted from this replica's own
    /// clock with the safety margin, has not run out: a paused process
    /// that wakes up finds itself follower before it does anything.
    pub fn role(&self) -> Role {
        match self.leading_until {
            Some(until) if Instant::now() < until => Role::Leader,
            _ => Role::Follower,
        }
    }

    /// The fence a singleton write carries, while this replica leads.
    pub fn fence(&self) -> Option<Fence> {
        (self.role() == Role::Leader).then(|| Fence {
            member: self.member.to_string(),
            epoch: self.epoch,
        })
    }

    /// The member ids services are divided among: the live members, or
    /// this replica alone when it has seen none yet (the database was
    /// away at start).
    pub fn shares(&self) -> Vec<Arc<str>> {
        if self.members.is_empty() {
            return vec![self.member.clone()];
        }
        self.members
            .iter()
            .map(|m| Arc::<str>::from(m.id.as_str()))
            .collect()
    }
}

/// This replica's membership, lease and view.
pub struct Cluster {
    member: Arc<str>,
    host: String,
    store: Store,
    config: ClusterConfig,
    metrics: Arc<Metrics>,
    view: watch::Sender<View>,
}

impl Cluster {
    pub fn new(store: Store, config: ClusterConfig, metrics: Arc<Metrics>) -> Cluster {
        let host = hostname();
        let member: Arc<str> =
            format!("{host}-{}-{:06x}", std::process::id(), random() & 0xff_ffff).into();
        let (view, _) = watch::channel(View {
            member: member.clone(),
            epoch: 0,
            leader: None,
            members: Arc::new(Vec::new()),
            leading_until: None,
        });
        Cluster {
            member,
            host,
            store,
            config,
            metrics,
            view,
        }
    }

    pub fn member(&self) -> &str {
        &self.member
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The view as it changes.
    pub fn subscribe(&self) -> watch::Receiver<View> {
        self.view.subscribe()
    }

    /// The view now.
    pub fn view(&self) -> View {
        self.view.borrow().clone()
    }

    /// Joins before anything is probed, so the first division of the
    /// services already counts the members alive. A database that does
    /// not answer is no reason not to start: the heartbeat tries again.
    pub async fn join(&self) {
        if let Err(e) = self.beat().await {
            tracing::warn!(error = %e, "joining the cluster failed; retrying at the next heartbeat");
        }
        let view = self.view();
        tracing::info!(
            member = %self.member,
            role = view.role().as_str(),
            epoch = view.epoch,
            members = view.members.len(),
            "joined the cluster"
        );
    }

    /// Heartbeats until `stop` resolves, then leaves: gives the lease up
    /// (so the next leader need not wait for it to run out) and removes
    /// this replica's row (so its services move at once).
    pub async fn run(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut every = tokio::time::interval(self.config.heartbeat);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = stop.as_mut() => break,
            }
            if let Err(e) = self.beat().await {
                tracing::warn!(error = %e, role = self.view().role().as_str(), "cluster heartbeat failed; a leader steps down if it cannot renew in time");
                self.publish_role();
            }
        }
        self.leave().await;
    }

    /// One heartbeat: the row, the lease, the members.
    async fn beat(&self) -> Result<(), StoreError> {
        let limit = self.config.heartbeat;
        let lease_ms = self.config.lease.as_millis() as i64;
        let sent = Instant::now();
        within(
            limit,
            self.store
                .heartbeat(&self.member, &self.host, env!("CARGO_PKG_VERSION")),
        )
        .await?;
        let lease = within(
            limit,
            self.store
                .acquire_lease(LEADER_LEASE, &self.member, lease_ms),
        )
        .await?;
        let (epoch, leader, leading_until) = match lease {
            Some(lease) => {
                // Granted for L from when the database ran it, which is
                // after `sent`: counting from `sent`, less one heartbeat of
                // margin, errs on the side of stepping down early.
                let until = sent + self.config.lease.saturating_sub(self.config.heartbeat);
                (lease.epoch, Some(self.member.to_string()), Some(until))
            }
            None => {
                let holder = within(limit, self.store.lease_holder(LEADER_LEASE)).await?;
                match holder {
                    Some(h) => (h.epoch, Some(h.member), None),
                    None => (
                        within(limit, self.store.lease_epoch(LEADER_LEASE)).await?,
                        None,
                        None,
                    ),
                }
            }
        };
        let members = within(limit, self.store.live_members(lease_ms)).await?;
        let before = self.view();
        if before.role() == Role::Leader && leading_until.is_none() {
            tracing::warn!(
                epoch = before.epoch,
                leader = leader.as_deref(),
                "lost the leader's lease"
            );
        }
        if before.role() == Role::Follower && leading_until.is_some() {
            tracing::info!(epoch, "took the leader's lease");
        }
        if before
            .members
            .iter()
            .map(|m| &m.id)
            .ne(members.iter().map(|m| &m.id))
        {
            tracing::info!(
                members = members.len(),
                ids = %members.iter().map(|m| m.id.as_str()).collect::<Vec<_>>().join(","),
                "cluster membership changed"
            );
        }
        self.view.send_modify(|view| {
            view.epoch = epoch;
            view.leader = leader;
            view.leading_until = leading_until;
            if view.members.iter().ne(members.iter()) {
                view.members = Arc::new(members);
            }
        });
        self.publish_role();
        Ok(())
    }

    fn publish_role(&self) {
        let view = self.view.borrow();
        let leading = view.role() == Role::Leader;
        if !leading && view.leading_until.is_some() {
            tracing::warn!(
                epoch = view.epoch,
                "stepping down: the lease could not be renewed in time"
            );
        }
        self.metrics.cluster_leader.set(i64::from(leading));
        self.metrics.cluster_epoch.set(view.epoch);
        self.metrics
            .cluster_members
            .set(view.members.len().max(1) as i64);
    }

    async fn leave(&self) {
        let view = self.view();
        if view.role() == Role::Leader {
            let _ = within(
                Duration::from_secs(2),
                self.store
                    .release_lease(LEADER_LEASE, &self.member, view.epoch),
            )
            .await;
        }
        self.view.send_modify(|v| v.leading_until = None);
        self.metrics.cluster_leader.set(0);
        match within(Duration::from_secs(2), self.store.leave(&self.member)).await {
            Ok(()) => tracing::info!(member = %self.member, "left the cluster"),
            Err(e) => {
                tracing::warn!(error = %e, "leaving the cluster failed; the others notice within the lease")
            }
        }
    }
}

async fn within<T>(
    limit: Duration,
    f: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(limit, f)
        .await
        .unwrap_or_else(|_| Err(StoreError::timed_out()))
}

/// Which of `members` probes the service `slug`: the one with the highest
/// score (rendezvous hashing). A member joining or leaving moves only the
/// services it wins or held, about 1/N of them.
pub fn owner<'a>(members: &'a [Arc<str>], slug: &str) -> Option<&'a Arc<str>> {
    members
        .iter()
        .max_by(|a, b| score(a, slug).cmp(&score(b, slug)).then_with(|| a.cmp(b)))
}

/// A hash of (member, slug) every replica computes alike: FNV-1a over
/// both, finished with SplitMix64 so near-identical ids spread evenly.
pub fn score(member: &str, slug: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in member.bytes().chain([0xff]).chain(slug.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

fn hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let name: String = name
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        .take(63)
        .collect();
    if name.is_empty() {
        "beacon".to_string()
    } else {
        name
    }
}

/// A random number for the member id: a restarted replica (same host, same
/// pid 1 in a container) must never take its previous life's row or lease.
fn random() -> u64 {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_ok()
    {
        return u64::from_le_bytes(bytes);
    }
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<Arc<str>> {
        (0..n)
            .map(|i| Arc::from(format!("host-{i}-1-abcdef")))
            .collect()
    }

    #[test]
    fn services_are_shared_about_evenly() {
        let members = ids(3);
        let mut counts = [0usize; 3];
        for s in 0..30_000 {
            let slug = format!("service-{s}");
            let owner = owner(&members, &slug).expect("an owner");
            counts[members.iter().position(|m| m == owner).expect("a member")] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn a_member_leaving_moves_only_its_own_services() {
        let three = ids(3);
        let two: Vec<Arc<str>> = three[..2].to_vec();
        let mut moved = 0;
        for s in 0..10_000 {
            let slug = format!("svc-{s}");
            let before = owner(&three, &slug).expect("owner");
            let after = owner(&two, &slug).expect("owner");
            if before != after {
                assert_eq!(before, &three[2], "{slug} moved though its owner stayed");
                moved += 1;
            }
        }
        assert!((2_800..3_900).contains(&moved), "{moved}");
    }

    #[test]
    fn every_replica_computes_the_same_owner() {
        // The hash is ours, not the standard library's per-process one.
        assert_eq!(score("a", "b"), score("a", "b"));
        assert_ne!(score("a", "b"), score("b", "a"));
        // Pinned: replicas of two releases must agree on every owner during a
        // rolling upgrade, so the hash never changes.
        assert_eq!(
            score("host-1-1-abcdef", "checkout"),
            7_345_221_791_083_085_467
        );
    }
}
