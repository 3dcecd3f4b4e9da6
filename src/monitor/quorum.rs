//! A service checked from several locations: each location's results go
//! through its own thresholds, and a quorum of the locations still
//! reporting decides the service's state.
//!
//! The rule (README: "Probing from several locations"):
//! - a location is **reporting** when its latest result is at most two of
//!   the service's intervals old and its thresholds have reached a state;
//!   a location that has gone quiet is silent, not down;
//! - of the reporting locations, `q = min(quorum, reporting)` decide, so a
//!   service is never left undecided while anyone still checks it;
//! - **down** when at least `q` see it down; else **degraded** when at
//!   least `q` see it degraded or down (slow or failing from most places
//!   is the service's problem); else **up**. One region's failure among
//!   healthy ones is that region's path, not the service: the public state
//!   stays as the majority says, and the service page shows the region.

use std::sync::Arc;

use super::Tracker;
use crate::config::{Locations, ServiceConfig};
use crate::domain::{Outcome, State};

/// What one location last saw of a service.
#[derive(Debug, Clone)]
struct Seen {
    tracker: Tracker,
    /// When its latest result was taken (epoch ms).
    last_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Quorum {
    names: Vec<Arc<str>>,
    seen: Vec<Seen>,
    quorum: usize,
    /// Silent past this long without a result: two intervals.
    silent_after_ms: i64,
}

impl Quorum {
    /// Starts each location from the service's stored state (`state`, what
    /// the quorum last decided), with its latest stored result (`stored`:
    /// name, taken at, outcome) counted toward its thresholds but not acted
    /// on: a restart neither announces a location's one blip nor forgets
    /// when it last reported.
    pub fn new(
        locations: &Locations,
        service: &ServiceConfig,
        state: State,
        stored: &[(String, i64, Outcome)],
    ) -> Quorum {
        let seen = locations
            .names
            .iter()
            .map(|name| {
                let last = stored.iter().find(|(n, _, _)| n == name);
                let mut tracker =
                    Tracker::new(state, service.failure_threshold, service.success_threshold);
                if let Some((_, _, outcome)) = last {
                    tracker.resume(state, &[*outcome]);
                }
                Seen {
                    tracker,
                    last_at: last.map(|(_, at, _)| *at),
                }
            })
            .collect();
        Quorum {
            names: locations
                .names
                .iter()
                .map(|n| Arc::from(n.as_str()))
                .collect(),
            seen,
            quorum: locations.quorum.max(1) as usize,
            silent_after_ms: (service.interval.as_millis() as i64).saturating_mul(2),
        }
    }

    /// Steps `location`'s thresholds with a result taken at `at`. `false`:
    /// not one of its locations, or not newer than what it last saw (a
    /// late result is stored, but does not step the state back).
    pub fn observe(&mut self, location: &str, at: i64, outcome: Outcome) -> bool {
        let Some(i) = self.names.iter().position(|n| &**n == location) else {
            return false;
        };
        let seen = &mut self.seen[i];
        if seen.last_at.is_some_and(|last| at <= last) {
            return false;
        }
        seen.last_at = Some(at);
        seen.tracker.observe(outcome);
        true
    }

    /// The state the reporting locations decide at `now`; `None` when no
    /// location reports (the state stays as it was).
    pub fn decide(&self, now: i64) -> Option<State> {
        let reporting: Vec<State> = self
            .seen
            .iter()
            .filter(|s| {
                s.last_at
                    .is_some_and(|at| now.saturating_sub(at) <= self.silent_after_ms)
            })
            .map(|s| s.tracker.state())
            .filter(|s| matches!(s, State::Up | State::Degraded | State::Down))
            .collect();
        if reporting.is_empty() {
            return None;
        }
        let q = self.quorum.min(reporting.len());
        let down = reporting.iter().filter(|s| **s == State::Down).count();
        let failing = reporting
            .iter()
            .filter(|s| matches!(s, State::Down | State::Degraded))
            .count();
        Some(if down >= q {
            State::Down
        } else if failing >= q {
            State::Degraded
        } else {
            State::Up
        })
    }

    pub fn is_location(&self, location: &str) -> bool {
        self.names.iter().any(|n| &**n == location)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn quorum(n: usize, q: Option<u32>) -> Quorum {
        let names: Vec<String> = ["local", "eu", "us", "ap", "sa"][..n]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut service = ServiceConfig::watching_self("127.0.0.1:1".parse().expect("an address"));
        service.interval = Duration::from_secs(10);
        service.failure_threshold = 2;
        service.success_threshold = 1;
        let locations = Locations {
            quorum: q.unwrap_or(Locations::majority(n)),
            names,
            local: Some(0),
        };
        Quorum::new(&locations, &service, State::Unknown, &[])
    }

    fn feed(q: &mut Quorum, at: i64, outcomes: &[(&str, Outcome)]) {
        for (name, outcome) in outcomes {
            assert!(q.observe(name, at, *outcome), "{name} at {at}");
        }
    }

    use Outcome::{Degraded, Down, Up};

    #[test]
    fn one_location_failing_among_three_leaves_the_service_up() {
        let mut q = quorum(3, None);
        for at in [1_000, 11_000, 21_000] {
            feed(&mut q, at, &[("local", Up), ("eu", Down), ("us", Up)]);
        }
        assert_eq!(q.decide(21_000), Some(State::Up));
    }

    #[test]
    fn two_of_three_down_past_their_thresholds_make_it_down() {
        let mut q = quorum(3, None);
        feed(&mut q, 1_000, &[("local", Up), ("eu", Down), ("us", Down)]);
        // One failure each is under failure_threshold = 2.
        assert_eq!(q.decide(1_000), Some(State::Up));
        feed(&mut q, 11_000, &[("local", Up), ("eu", Down), ("us", Down)]);
        assert_eq!(q.decide(11_000), Some(State::Down));
    }

    #[test]
    fn a_silent_location_counts_neither_way_and_the_others_decide() {
        let mut q = quorum(3, None);
        for at in [1_000, 11_000] {
            feed(&mut q, at, &[("local", Up), ("eu", Down), ("us", Down)]);
        }
        assert_eq!(q.decide(11_000), Some(State::Down));
        // "us" stops reporting; 20 s (two intervals) later it is silent
        // and local and eu (one each) disagree: q = min(2, 2) = 2 down
        // needed, one seen: up.
        for at in [21_000, 31_000, 41_000] {
            feed(&mut q, at, &[("local", Up), ("eu", Down)]);
        }
        assert_eq!(q.decide(41_000), Some(State::Up));
        // Everyone silent: undecided, the state stays.
        assert_eq!(q.decide(100_000), None);
        // Only one location left reporting: it decides alone.
        for at in [101_000, 111_000] {
            feed(&mut q, at, &[("eu", Down)]);
        }
        assert_eq!(q.decide(111_000), Some(State::Down));
    }

    #[test]
    fn degraded_when_a_quorum_sees_it_degraded_or_down() {
        let mut q = quorum(3, None);
        feed(
            &mut q,
            1_000,
            &[("local", Degraded), ("eu", Up), ("us", Up)],
        );
        assert_eq!(q.decide(1_000), Some(State::Up));
        let mut q = quorum(3, None);
        for at in [1_000, 11_000] {
            feed(&mut q, at, &[("local", Degraded), ("eu", Down), ("us", Up)]);
        }
        assert_eq!(q.decide(11_000), Some(State::Degraded));
    }

    #[test]
    fn a_late_or_repeated_result_does_not_step_a_location_back() {
        let mut q = quorum(3, Some(1));
        feed(&mut q, 10_000, &[("eu", Up)]);
        assert!(!q.observe("eu", 10_000, Down), "the same result again");
        assert!(!q.observe("eu", 5_000, Down), "an older result");
        assert!(!q.observe("mars", 20_000, Down), "not one of its locations");
        assert_eq!(q.decide(10_000), Some(State::Up));
    }

    #[test]
    fn a_restart_counts_a_locations_last_blip_without_acting_on_it() {
        let mut service = ServiceConfig::watching_self("127.0.0.1:1".parse().expect("an address"));
        service.failure_threshold = 2;
        let locations = Locations {
            names: vec!["local".into(), "eu".into()],
            quorum: 1,
            local: Some(0),
        };
        let stored = [
            ("local".to_string(), 1_000, Up),
            ("eu".to_string(), 1_000, Down),
        ];
        let mut q = Quorum::new(&locations, &service, State::Up, &stored);
        // eu's one failure before the restart is not a down location…
        assert_eq!(q.decide(2_000), Some(State::Up));
        // …but it counts: one more makes eu down, and with a quorum of
        // one, the service.
        assert!(q.observe("eu", 2_000, Down));
        assert_eq!(q.decide(2_000), Some(State::Down));
    }

    #[test]
    fn a_quorum_of_one_is_down_when_any_location_is() {
        let mut q = quorum(3, Some(1));
        for at in [1_000, 11_000] {
            feed(&mut q, at, &[("local", Up), ("eu", Down), ("us", Up)]);
        }
        assert_eq!(q.decide(11_000), Some(State::Down));
    }
}
