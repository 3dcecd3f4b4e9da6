//! `[monitor]`: probe concurrency and how results are batched.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// Probes in flight at once, across all services.
    pub max_concurrency: usize,
    /// Results written per transaction, at most.
    pub batch_size: usize,
    /// How long a result may wait in memory before its batch is written; a
    /// state change waits at most [`crate::monitor::CHANGE_FLUSH`].
    pub flush_interval: Duration,
    /// A service going down again within this long of its automatic
    /// incident's resolution reopens that incident (flapping).
    pub incident_cooldown: Duration,
    /// Raw results held in memory while the store cannot take them; past
    /// this the oldest are shed (counted). State changes are never shed.
    pub max_buffered_results: usize,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            max_concurrency: 1024,
            batch_size: 1000,
            flush_interval: Duration::from_secs(2),
            incident_cooldown: Duration::from_secs(15 * 60),
            max_buffered_results: 100_000,
        }
    }
}
