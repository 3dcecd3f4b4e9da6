//! Per-service state machine: a service changes state only after enough
//! consecutive outcomes agree, so one lost packet does not page anybody.

use crate::domain::{Outcome, State};

#[derive(Debug, Clone)]
pub struct Tracker {
    state: State,
    failure_threshold: u32,
    success_threshold: u32,
    /// Consecutive `Down` outcomes.
    downs: u32,
    /// Consecutive `Up`-or-`Degraded` outcomes.
    oks: u32,
    /// The last outcome and how many times in a row it came.
    last: Option<Outcome>,
    same: u32,
}

impl Tracker {
    /// Starts from `state` (as stored, so a restart does not re-announce it).
    pub fn new(state: State, failure_threshold: u32, success_threshold: u32) -> Self {
        Tracker {
            state,
            failure_threshold: failure_threshold.max(1),
            success_threshold: success_threshold.max(1),
            downs: 0,
            oks: 0,
            last: None,
            same: 0,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Puts the service in `state` whatever its outcomes (a maintenance
    /// window), starting the counts afresh.
    pub fn force(&mut self, state: State) {
        self.state = state;
        self.downs = 0;
        self.oks = 0;
        self.last = None;
        self.same = 0;
    }

    /// Feeds one outcome; returns `Some(new_state)` when the state changes.
    ///
    /// - `failure_threshold` consecutive downs make the service down;
    /// - out of down (or unknown), `success_threshold` consecutive non-down
    ///   outcomes bring it back, to the state of the latest one;
    /// - between up and degraded, `success_threshold` consecutive outcomes of
    ///   the new kind are needed.
    pub fn observe(&mut self, outcome: Outcome) -> Option<State> {
        if self.last == Some(outcome) {
            self.same += 1;
        } else {
            self.last = Some(outcome);
            self.same = 1;
        }
        let target = outcome.state();
        let change = match outcome {
            Outcome::Down => {
                self.downs += 1;
                self.oks = 0;
                self.state != State::Down && self.downs >= self.failure_threshold
            }
            Outcome::Up | Outcome::Degraded => {
                self.oks += 1;
                self.downs = 0;
                match self.state {
                    // Out of down, unknown or a maintenance window.
                    State::Down | State::Unknown | State::Maintenance => {
                        self.oks >= self.success_threshold
                    }
                    s if s == target => false,
                    _ => self.same >= self.success_threshold,
                }
            }
        };
        if change {
            self.state = target;
            Some(target)
        } else {
            None
        }
    }

    /// Starts again from `state` with the outcomes seen since it was
    /// reached (oldest first) counted but not acted on: a replica taking a
    /// service over from another continues its thresholds where the store
    /// says they were, so a failure the other replica saw still counts and
    /// a state it recorded is not announced again.
    pub fn resume(&mut self, state: State, since: &[Outcome]) {
        self.force(state);
        for outcome in since {
            if self.last == Some(*outcome) {
                self.same += 1;
            } else {
                self.last = Some(*outcome);
                self.same = 1;
            }
            if *outcome == Outcome::Down {
                self.downs += 1;
                self.oks = 0;
            } else {
                self.oks += 1;
                self.downs = 0;
            }
        }
    }

    /// How many recent outcomes can matter to the thresholds.
    pub fn memory(&self) -> u32 {
        self.failure_threshold.max(self.success_threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Outcome::{Degraded as G, Down as D, Up as U};

    /// Feeds `outcomes` and returns the state after each.
    fn run(start: State, failure: u32, success: u32, outcomes: &[Outcome]) -> Vec<State> {
        let mut t = Tracker::new(start, failure, success);
        outcomes
            .iter()
            .map(|o| {
                t.observe(*o);
                t.state()
            })
            .collect()
    }

    use State::{Degraded as SG, Down as SD, Unknown as SX, Up as SU};

    #[test]
    fn a_resumed_tracker_continues_the_other_replicas_count() {
        // Two failures seen by the replica that had the service: the
        // third here makes it down, not the fifth.
        let mut t = Tracker::new(SX, 3, 2);
        t.resume(SU, &[U, D, D]);
        assert_eq!(t.observe(D), Some(SD));
        // Down as stored, with one success since: one more brings it back.
        let mut t = Tracker::new(SU, 3, 2);
        t.resume(SD, &[D, U]);
        assert_eq!(t.state(), SD, "resuming announces nothing");
        assert_eq!(t.observe(U), Some(SU));
        // Nothing since: thresholds count afresh from the stored state.
        let mut t = Tracker::new(SD, 3, 2);
        t.resume(SU, &[]);
        assert_eq!(t.observe(D), None);
        assert_eq!(t.observe(D), None);
        assert_eq!(t.observe(D), Some(SD));
    }

    #[test]
    fn state_changes_only_after_thresholds() {
        // (what, start, failure_threshold, success_threshold, outcomes, states after each)
        type Case<'a> = (&'a str, State, u32, u32, &'a [Outcome], &'a [State]);
        let cases: &[Case] = &[
            (
                "first success counts with threshold 1",
                SX,
                3,
                1,
                &[U],
                &[SU],
            ),
            (
                "down needs three failures",
                SU,
                3,
                1,
                &[D, D, D],
                &[SU, SU, SD],
            ),
            (
                "a success resets the failure count",
                SU,
                3,
                1,
                &[D, D, U, D, D],
                &[SU; 5],
            ),
            (
                "unknown goes down after the threshold too",
                SX,
                3,
                1,
                &[D, D, D],
                &[SX, SX, SD],
            ),
            (
                "recovery needs success_threshold",
                SD,
                3,
                2,
                &[U, D, U, U],
                &[SD, SD, SD, SU],
            ),
            (
                "mixed up and degraded still recover",
                SD,
                1,
                2,
                &[U, G],
                &[SD, SG],
            ),
            (
                "degraded needs consecutive degraded",
                SU,
                3,
                2,
                &[G, U, G, G],
                &[SU, SU, SU, SG],
            ),
            ("back to up from degraded", SG, 3, 1, &[U], &[SU]),
            (
                "failure threshold 1 is immediate",
                SU,
                1,
                1,
                &[D, U],
                &[SD, SU],
            ),
            (
                "staying down records nothing new",
                SD,
                3,
                1,
                &[D, D],
                &[SD, SD],
            ),
        ];
        for (name, start, f, s, outcomes, expected) in cases {
            assert_eq!(&run(*start, *f, *s, outcomes), expected, "{name}");
        }
    }

    #[test]
    fn observe_reports_each_change_once() {
        let mut t = Tracker::new(State::Up, 2, 1);
        let changes: Vec<_> = [D, D, D, D, U, U]
            .iter()
            .filter_map(|o| t.observe(*o))
            .collect();
        assert_eq!(changes, [State::Down, State::Up]);
    }
}
