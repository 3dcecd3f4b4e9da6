//! What an agent and the main server say to each other under
//! `/agent/api/v1/`: the results batch and its answer. The assignment is
//! TOML (`[[group]]` and `[[service]]` tables), read like a config file.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Results in one batch, at most.
pub const MAX_BATCH: usize = 1000;
/// A batch's body, at most.
pub const MAX_BODY: usize = 1024 * 1024;
/// How far back a result may be taken: an agent's buffer reaches at most
/// this far (`beacon agent` drops older results itself, counted).
pub const REACH: Duration = Duration::from_secs(3600);
/// How far ahead of the main server's clock a result's time may be (clocks
/// differ a little; more is a wrong clock, and refused).
pub const SKEW: Duration = Duration::from_secs(5);
/// A result's reason, at most (bytes).
pub const MAX_REASON: usize = 1000;

/// One result as an agent sends it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WireResult {
    /// The service's slug.
    pub service: String,
    /// When the probe started (epoch ms), by the agent's clock.
    pub checked_at: i64,
    /// `up`, `degraded` or `down`.
    pub outcome: String,
    #[serde(default)]
    pub latency_ms: Option<i64>,
    #[serde(default)]
    pub status_code: Option<i64>,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireBatch {
    pub results: Vec<WireResult>,
}

/// The answer to a batch taken.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Taken {
    /// New results stored.
    pub stored: usize,
    /// Results already stored (a batch sent again).
    pub duplicates: usize,
}
