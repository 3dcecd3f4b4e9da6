//! `[cluster]`: the leader's lease and the heartbeat.

use std::time::Duration;

use super::fields::parse_duration;
use super::problems::Problems;
use crate::config::raw::RawCluster;
use crate::config::ClusterConfig;

pub fn cluster(raw: &RawCluster, problems: &mut Problems) -> ClusterConfig {
    let mut cluster = ClusterConfig::default();
    let mut read = |key: &str, text: &Option<String>| -> Option<Duration> {
        let text = text.as_ref()?;
        match parse_duration("cluster", key, text) {
            Ok(d) if d >= Duration::from_secs(1) && d <= Duration::from_secs(600) => Some(d),
            Ok(d) => {
                problems.push(format!(
                    "cluster: {key} ({}) must be between 1s and 10m",
                    humantime::format_duration(d)
                ));
                None
            }
            Err(p) => {
                problems.push(p);
                None
            }
        }
    };
    let lease = read("lease", &raw.lease);
    let heartbeat = read("heartbeat", &raw.heartbeat);
    if let Some(lease) = lease {
        cluster.lease = lease;
    }
    match heartbeat {
        Some(h) => cluster.heartbeat = h,
        // Unset: a third of the lease, so a shorter lease needs no second key.
        None if lease.is_some() => {
            cluster.heartbeat = (cluster.lease / 3).max(Duration::from_millis(300))
        }
        None => {}
    }
    if cluster.heartbeat * 3 > cluster.lease {
        problems.push(format!(
            "cluster: heartbeat ({}) must be at most a third of lease ({}), so a leader that misses two renewals still steps down before its lease runs out",
            humantime::format_duration(cluster.heartbeat),
            humantime::format_duration(cluster.lease)
        ));
    }
    cluster
}
