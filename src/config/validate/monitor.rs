//! `[monitor]`: how many probes run at once and how results are batched.

use std::time::Duration;

use super::fields::parse_duration;
use super::problems::Problems;
use crate::config::raw::RawMonitor;
use crate::config::MonitorConfig;

pub fn monitor(raw: &RawMonitor, problems: &mut Problems) -> MonitorConfig {
    let mut monitor = MonitorConfig::default();
    if let Some(n) = raw.max_concurrency {
        match usize::try_from(n) {
            Ok(n) if n >= 1 => monitor.max_concurrency = n,
            _ => problems.push(format!("monitor: max_concurrency ({n}) must be at least 1")),
        }
    }
    if let Some(n) = raw.batch_size {
        match usize::try_from(n) {
            Ok(n) if (1..=50_000).contains(&n) => monitor.batch_size = n,
            _ => problems.push(format!(
                "monitor: batch_size ({n}) must be between 1 and 50000"
            )),
        }
    }
    if let Some(text) = &raw.flush_interval {
        match parse_duration("monitor", "flush_interval", text) {
            Ok(d) if d >= Duration::from_millis(10) && d <= Duration::from_secs(60) => {
                monitor.flush_interval = d
            }
            Ok(d) => problems.push(format!(
                "monitor: flush_interval ({}) must be between 10ms and 60s",
                humantime::format_duration(d)
            )),
            Err(p) => problems.push(p),
        }
    }
    if let Some(n) = raw.max_buffered_results {
        match usize::try_from(n) {
            Ok(n) if (1_000..=10_000_000).contains(&n) => monitor.max_buffered_results = n,
            _ => problems.push(format!(
                "monitor: max_buffered_results ({n}) must be between 1000 and 10000000"
            )),
        }
    }
    if let Some(text) = &raw.incident_cooldown {
        match parse_duration("monitor", "incident_cooldown", text) {
            Ok(d) => monitor.incident_cooldown = d,
            Err(p) => problems.push(p),
        }
    }
    monitor
}
