//! `beacon_probes_total{service,outcome}` and
//! `beacon_probe_duration_seconds{service}`: a counter per outcome and a
//! histogram per service, kept as 16 numbers a service (about 150 bytes
//! with its slug and hash entry, against 1.6 KB as the `prometheus`
//! crate's labelled children) and written as text when scraped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::text::Family;
use crate::domain::Outcome;

/// The histogram's upper bounds: in milliseconds (a probe's latency is
/// whole milliseconds) and as the `le` label writes them in seconds.
const BUCKETS_MS: [u32; 11] = [5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000];
const BUCKETS_LE: [&str; 11] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10",
];

const PROBES: &str = "beacon_probes_total";
const PROBES_HELP: &str = "Probe results written, by service and outcome.";
const DURATION: &str = "beacon_probe_duration_seconds";
const DURATION_HELP: &str = "How long probes took, by service.";

/// One service's numbers.
#[derive(Default)]
struct Counts {
    /// Degraded, down, up: the order the series are written in, by label.
    outcomes: [AtomicU64; 3],
    /// Latencies in each bucket and not in a lower one (made cumulative
    /// when written); above the last bound they are in `observed` only.
    buckets: [AtomicU64; 11],
    observed: AtomicU64,
    sum_ms: AtomicU64,
}

/// One probe result, as counted.
pub struct Probe<'a> {
    /// The `service` label: its slug, or `""` with `metrics.per_service`
    /// off.
    pub service: &'a str,
    pub outcome: Outcome,
    pub latency_ms: Option<u32>,
}

/// Every service's probe counts. Counting takes a shared lock (a write
/// lock only for a service's first result) and adds to atomics, so
/// scrapes and the monitor do not wait on each other.
#[derive(Default)]
pub struct ProbeSeries {
    services: parking_lot::RwLock<HashMap<Box<str>, Counts>>,
}

impl Counts {
    fn add(&self, probe: &Probe) {
        let i = match probe.outcome {
            Outcome::Degraded => 0,
            Outcome::Down => 1,
            Outcome::Up => 2,
        };
        self.outcomes[i].fetch_add(1, Relaxed);
        if let Some(ms) = probe.latency_ms {
            if let Some(b) = BUCKETS_MS.iter().position(|le| ms <= *le) {
                self.buckets[b].fetch_add(1, Relaxed);
            }
            self.observed.fetch_add(1, Relaxed);
            self.sum_ms.fetch_add(u64::from(ms), Relaxed);
        }
    }
}

impl ProbeSeries {
    /// Counts a batch of results.
    pub fn count<'a>(&self, probes: impl IntoIterator<Item = Probe<'a>>) {
        let mut new = Vec::new();
        {
            let services = self.services.read();
            for p in probes {
                match services.get(p.service) {
                    Some(c) => c.add(&p),
                    None => new.push(p),
                }
            }
        }
        if new.is_empty() {
            return;
        }
        let mut services = self.services.write();
        for p in new {
            match services.get(p.service) {
                Some(c) => c.add(&p),
                None => {
                    let c = Counts::default();
                    c.add(&p);
                    services.insert(p.service.into(), c);
                }
            }
        }
    }

    /// Forgets the series of every service `keep` does not take: those a
    /// config reload removed or renamed would otherwise stay in every
    /// scrape, and in memory, until a restart.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.services.write().retain(|slug, _| keep(slug));
    }

    /// The two families' text, services in slug order; a family with no
    /// series yet is left out.
    pub fn families(&self) -> Vec<(&'static str, String)> {
        let services = self.services.read();
        let mut slugs: Vec<(&str, &Counts)> =
            services.iter().map(|(s, c)| (s.as_ref(), c)).collect();
        slugs.sort_unstable_by_key(|(s, _)| *s);
        let mut probes = Family::new(PROBES, PROBES_HELP, "counter");
        let mut duration = Family::new(DURATION, DURATION_HELP, "histogram");
        for (slug, c) in slugs {
            for (n, outcome) in c.outcomes.iter().zip(["degraded", "down", "up"]) {
                let n = n.load(Relaxed);
                if n > 0 {
                    probes.series("", &[("outcome", outcome), ("service", slug)], n);
                }
            }
            let observed = c.observed.load(Relaxed);
            if observed == 0 {
                continue;
            }
            let mut below = 0u64;
            for (n, le) in c.buckets.iter().zip(BUCKETS_LE) {
                below += n.load(Relaxed);
                // Counted while this runs, a bucket can be read newer than
                // the count: never more than it, as Prometheus requires.
                duration.series(
                    "_bucket",
                    &[("service", slug), ("le", le)],
                    below.min(observed),
                );
            }
            duration.series("_bucket", &[("service", slug), ("le", "+Inf")], observed);
            let sum = c.sum_ms.load(Relaxed) as f64 / 1000.0;
            duration.series("_sum", &[("service", slug)], sum);
            duration.series("_count", &[("service", slug)], observed);
        }
        [probes.done(), duration.done()]
            .into_iter()
            .flatten()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(service: &str, outcome: Outcome, latency_ms: Option<u32>) -> Probe<'_> {
        Probe {
            service,
            outcome,
            latency_ms,
        }
    }

    #[test]
    fn a_service_not_kept_leaves_the_families() {
        let s = ProbeSeries::default();
        s.count([
            probe("a", Outcome::Up, Some(5)),
            probe("b", Outcome::Up, Some(5)),
        ]);
        s.retain(|slug| slug == "a");
        for (_, text) in s.families() {
            assert!(text.contains("service=\"a\""), "{text}");
            assert!(!text.contains("service=\"b\""), "{text}");
        }
        // Counted again, it starts from zero (a counter reset to Prometheus).
        s.count([probe("b", Outcome::Down, None)]);
        assert!(s.families()[0]
            .1
            .contains("beacon_probes_total{outcome=\"down\",service=\"b\"} 1"));
    }

    #[test]
    fn counts_by_service_and_outcome_with_cumulative_buckets() {
        let s = ProbeSeries::default();
        s.count([
            probe("b", Outcome::Up, Some(5)),
            probe("a", Outcome::Down, None),
            probe("b", Outcome::Up, Some(20)),
        ]);
        s.count([probe("b", Outcome::Degraded, Some(60_000))]);
        let families = s.families();
        let names: Vec<&str> = families.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, [PROBES, DURATION]);
        let probes = &families[0].1;
        let lines: Vec<&str> = probes.lines().skip(2).collect();
        assert_eq!(
            lines,
            [
                "beacon_probes_total{outcome=\"down\",service=\"a\"} 1",
                "beacon_probes_total{outcome=\"degraded\",service=\"b\"} 1",
                "beacon_probes_total{outcome=\"up\",service=\"b\"} 2",
            ]
        );
        let duration = &families[1].1;
        // "a" had no latency: no histogram.
        assert!(!duration.contains("service=\"a\""));
        for (le, n) in [
            ("0.005", 1),
            ("0.01", 1),
            ("0.025", 2),
            ("10", 2),
            ("+Inf", 3),
        ] {
            let line =
                format!("beacon_probe_duration_seconds_bucket{{service=\"b\",le=\"{le}\"}} {n}\n");
            assert!(duration.contains(&line), "{line} in {duration}");
        }
        assert!(duration.contains("beacon_probe_duration_seconds_sum{service=\"b\"} 60.025\n"));
        assert!(duration.contains("beacon_probe_duration_seconds_count{service=\"b\"} 3\n"));
    }

    #[test]
    fn nothing_counted_writes_no_family() {
        assert!(ProbeSeries::default().families().is_empty());
    }
}
