//! The few domain types every layer speaks: a service's state and the
//! outcome of one probe.

use std::fmt;

/// The state of a service as shown to people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// No result yet (new service, or not enough results to pass a threshold).
    Unknown,
    Up,
    Degraded,
    Down,
    Maintenance,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Unknown => "unknown",
            State::Up => "up",
            State::Degraded => "degraded",
            State::Down => "down",
            State::Maintenance => "maintenance",
        }
    }

    pub fn parse(text: &str) -> Option<State> {
        Some(match text {
            "unknown" => State::Unknown,
            "up" => State::Up,
            "degraded" => State::Degraded,
            "down" => State::Down,
            "maintenance" => State::Maintenance,
            _ => return None,
        })
    }

    /// How a person reads it on the page.
    pub fn label(self) -> &'static str {
        match self {
            State::Unknown => "No data yet",
            State::Up => "Operational",
            State::Degraded => "Degraded performance",
            State::Down => "Down",
            State::Maintenance => "Under maintenance",
        }
    }

    /// Severity for the banner: the worst public service decides.
    pub fn severity(self) -> u8 {
        match self {
            State::Unknown => 0,
            State::Up => 1,
            State::Maintenance => 2,
            State::Degraded => 3,
            State::Down => 4,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An incident's impact, as Statuspage names it.
pub const INCIDENT_IMPACTS: &[&str] = &["none", "minor", "major", "critical"];
/// An incident's status, as Statuspage names it.
pub const INCIDENT_STATUSES: &[&str] = &["investigating", "identified", "monitoring", "resolved"];

/// What one probe found, before thresholds are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Up,
    Degraded,
    Down,
}

impl Outcome {
    /// Stored in `check_results.state`.
    pub fn code(self) -> i16 {
        match self {
            Outcome::Up => 1,
            Outcome::Degraded => 2,
            Outcome::Down => 3,
        }
    }

    pub fn from_code(code: i16) -> Option<Outcome> {
        match code {
            1 => Some(Outcome::Up),
            2 => Some(Outcome::Degraded),
            3 => Some(Outcome::Down),
            _ => None,
        }
    }

    pub fn state(self) -> State {
        match self {
            Outcome::Up => State::Up,
            Outcome::Degraded => State::Degraded,
            Outcome::Down => State::Down,
        }
    }
}
