//! `[cluster]`: how replicas on one PostgreSQL database agree on who
//! leads and who probes what.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// How long the leader's lease, and a member's heartbeat, stay good:
    /// a dead leader is replaced, and a dead member's services probed by
    /// others, within about this long.
    pub lease: Duration,
    /// How often each replica renews its membership and, as leader, its
    /// lease. At most a third of the lease, so two missed renewals still
    /// leave the leader time to step down before the lease runs out.
    pub heartbeat: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            lease: Duration::from_secs(15),
            heartbeat: Duration::from_secs(5),
        }
    }
}
