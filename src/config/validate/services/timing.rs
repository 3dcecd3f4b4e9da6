//! When and how long a service is probed, and how many results in a row
//! change its state. A dependency follows its service's timing.

use std::time::Duration;

use super::super::fields::optional_duration;
use super::super::problems::Problems;
use crate::config::raw::RawService;
use crate::config::ServiceConfig;

/// The interval and timeout a dependency inherits from its service.
#[derive(Clone, Copy)]
pub struct Parent {
    pub interval: Duration,
    pub timeout: Duration,
}

pub struct Timing {
    pub interval: Duration,
    pub timeout: Duration,
    pub degraded_latency: Option<Duration>,
    pub failure_threshold: u32,
    pub success_threshold: u32,
}

pub fn timing(
    s: &RawService,
    place: &str,
    parent: Option<Parent>,
    problems: &mut Problems,
) -> Timing {
    // A dependency is probed with its service, at the service's interval.
    let interval = match parent {
        Some(p) => p.interval,
        None => optional_duration(place, "interval", &s.interval, problems)
            .unwrap_or(ServiceConfig::DEFAULT_INTERVAL),
    };
    if interval < Duration::from_secs(1) {
        problems.push(format!(
            "{place}: interval ({}) must be at least 1s",
            humantime::format_duration(interval)
        ));
    }
    let timeout = timeout(s, place, parent, interval, problems);
    let degraded_latency =
        optional_duration(place, "degraded_latency", &s.degraded_latency, problems);
    if let Some(d) = degraded_latency {
        if d >= timeout {
            problems.push(format!(
                "{place}: degraded_latency ({}) must be shorter than timeout ({})",
                humantime::format_duration(d),
                humantime::format_duration(timeout)
            ));
        }
    }
    Timing {
        interval,
        timeout,
        degraded_latency,
        failure_threshold: threshold(
            place,
            "failure_threshold",
            s.failure_threshold,
            ServiceConfig::DEFAULT_FAILURE_THRESHOLD,
            problems,
        ),
        success_threshold: threshold(
            place,
            "success_threshold",
            s.success_threshold,
            ServiceConfig::DEFAULT_SUCCESS_THRESHOLD,
            problems,
        ),
    }
}

/// As written, else the service's (for a dependency), else the default
/// kept below the interval. It must be shorter than the interval.
fn timeout(
    s: &RawService,
    place: &str,
    parent: Option<Parent>,
    interval: Duration,
    problems: &mut Problems,
) -> Duration {
    let timeout = optional_duration(place, "timeout", &s.timeout, problems)
        .or(parent.map(|p| p.timeout))
        .unwrap_or(
            ServiceConfig::DEFAULT_TIMEOUT.min(interval.saturating_sub(Duration::from_millis(1))),
        );
    if timeout.is_zero() {
        problems.push(format!("{place}: timeout must be more than 0s"));
    } else if timeout >= interval && interval >= Duration::from_secs(1) {
        problems.push(format!(
            "{place}: timeout ({}) must be shorter than interval ({})",
            humantime::format_duration(timeout),
            humantime::format_duration(interval)
        ));
    }
    timeout
}

fn threshold(
    place: &str,
    field: &str,
    value: Option<i64>,
    default: u32,
    problems: &mut Problems,
) -> u32 {
    match value {
        None => default,
        Some(n) if (1..=100).contains(&n) => n as u32,
        Some(n) => {
            problems.push(format!("{place}: {field} ({n}) must be between 1 and 100"));
            default
        }
    }
}
