//! Probes: one file per kind of target. A probe never fails as a Rust error:
//! whatever happens (refused, timed out, garbage) becomes a [`ProbeReport`]
//! with an outcome and a short reason, within the service's timeout.

pub mod http;

use std::time::Duration;

use crate::health::Dependency;
use crate::model::Outcome;

/// What one probe found.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeReport {
    pub outcome: Outcome,
    pub latency: Duration,
    pub status_code: Option<u16>,
    /// Why the outcome is not `Up`, for operators. Internal: it may name
    /// hosts and errors, so it never reaches the public page.
    pub reason: Option<String>,
    /// Dependencies the target's health document reported.
    pub dependencies: Vec<Dependency>,
}

impl ProbeReport {
    pub fn down(latency: Duration, reason: impl Into<String>) -> Self {
        ProbeReport {
            outcome: Outcome::Down,
            latency,
            status_code: None,
            reason: Some(reason.into()),
            dependencies: Vec::new(),
        }
    }
}

/// The innermost cause of an error, which is what says what went wrong
/// ("Connection refused (os error 111)") rather than a wrapper's summary.
pub fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
