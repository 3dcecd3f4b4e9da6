//! `/metrics`: beacon's numbers in the Prometheus text format (0.0.4, the
//! format `promtool check metrics` reads), for the Prometheus and Grafana
//! ops already run.
//!
//! Two kinds of series:
//! - counted as things happen (probes, batch writes, HTTP requests, backup
//!   failures of the schedule), in the registry below;
//! - read when scraped (service and dependency states, check age, monitor
//!   lag, the backups table's latest outcomes), so they are never stale and
//!   a service removed from the config leaves the output.
//!
//! Names follow Prometheus conventions: `beacon_` prefix, base units
//! (`_seconds`, `_bytes`), `_total` on counters, enums as one series per
//! value with 1 on the current one.

mod probes;
mod text;

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

pub use probes::{Probe, ProbeSeries};
use text::Family;

use crate::domain::State;
use crate::store::{BackupRecord, ServiceSummary};

const STATES: [State; 5] = [
    State::Unknown,
    State::Up,
    State::Degraded,
    State::Down,
    State::Maintenance,
];

pub struct Metrics {
    registry: Registry,
    /// `metrics.per_service`: off, probes are counted under `service=""`
    /// and a scrape leaves the per-service gauges out.
    per_service: std::sync::atomic::AtomicBool,
    /// `beacon_probes_total{service,outcome}` (up / degraded / down) and
    /// `beacon_probe_duration_seconds{service}`, counted when written.
    pub probes: ProbeSeries,
    pub schedule_lag: Histogram,
    pub write_batch_size: Histogram,
    pub write_duration: Histogram,
    pub write_failures: IntCounter,
    /// `reason`: refused (the store refused them as data) · shed (the
    /// buffer was full while the store was away).
    pub results_dropped: IntCounterVec,
    /// Probes that failed because beacon itself was out of resources (file
    /// descriptors, memory): not counted against the target.
    pub probe_resource_errors: IntCounter,
    /// `route` (the matched pattern, never the raw path), `status`.
    pub http_requests: IntCounterVec,
    /// Public requests answered 429: a client past `server.client_rate`.
    pub http_rate_limited: IntCounter,
    /// `step` of the scheduled run that failed.
    pub backup_failures: IntCounterVec,
    /// `task` that died (panicked or returned before the stop).
    pub task_failures: IntCounterVec,
    /// `channel`, `outcome`: sent · retry (failed, will try again) · failed
    /// (failed and given up).
    pub alert_deliveries: IntCounterVec,
    /// Events not routed because their service was in maintenance.
    pub alerts_silenced: IntCounter,
    /// `kind` (email, webhook, slack), `outcome`: sent · retry · failed ·
    /// suppressed (an update posted "do not notify").
    pub subscriber_notifications: IntCounterVec,
    /// Email subscribers who followed their confirmation link.
    pub subscribers_confirmed: IntCounter,
    /// Subscribers who left (one-click, the manage page, or an operator).
    pub subscribers_unsubscribed: IntCounter,
    /// `outcome` of a sign-up on /subscribe: sent (a confirmation email),
    /// limited (per address: nothing sent), refused (per client: 429),
    /// honeypot, failed (the SMTP server refused it).
    pub subscription_signups: IntCounterVec,
    /// Failed sign-ins to the incident console.
    pub console_signin_failures: IntCounter,
    /// `location`: results its agent sent that were stored (duplicates of
    /// a resent batch not counted).
    pub location_results: IntCounterVec,
    /// `location`: 1 while its agent has sent nothing for two intervals.
    pub location_silent: IntGaugeVec,
    /// `location`: when its agent's last batch arrived (Unix seconds).
    pub location_last_report: IntGaugeVec,
    /// `reason` a batch from an agent was refused for.
    pub location_refused: IntCounterVec,
    /// 1 while this replica holds the leader's lease, else 0.
    pub cluster_leader: IntGauge,
    /// The leader's lease epoch as this replica last saw it.
    pub cluster_epoch: IntGauge,
    /// Live members this replica sees, itself included.
    pub cluster_members: IntGauge,
    /// Singleton writes refused because this replica's lease had moved on.
    pub cluster_fenced: IntCounter,
    /// `result`: applied · invalid (refused, the running config stays) ·
    /// unchanged (a SIGHUP with nothing new).
    pub config_reloads: IntCounterVec,
    /// 1 on the SHA-256 of the config in force.
    pub config_loaded: IntGaugeVec,
    /// The last refused reload, for `/health`.
    pub config: ConfigStatus,
    /// The long-lived tasks and how they fared, for `/health`.
    pub tasks: Tasks,
}

/// How the last config reload went, for `/health`.
#[derive(Debug, Default)]
pub struct ConfigStatus {
    /// Why the last reload was refused (`None`: the file in force is the
    /// file on disk).
    pub refused: parking_lot::Mutex<Option<String>>,
}

impl Metrics {
    /// Marks `sha256` as the config in force.
    pub fn config_in_force(&self, sha256: &str) {
        self.config_loaded.reset();
        self.config_loaded.with_label_values(&[sha256]).set(1);
    }
}

/// The series read when scraped, made afresh in a registry of their own
/// for each scrape: concurrent scrapes share no lock and no series, only
/// the counters' atomics (an HA pair of Prometheus servers scrapes at once).
/// Those there is one of per service are written as text directly (see
/// [`service_families`]).
struct Scraped {
    registry: Registry,
    alert_pending: IntGaugeVec,
    monitor_lag: Gauge,
    backup_last_success: Gauge,
    backup_last_verified: Gauge,
    backup_last_duration: Gauge,
    backup_last_size: Gauge,
    backup_last_failed: IntGauge,
    backup_period: Gauge,
}

/// What a scrape reads besides the registry.
pub struct Readings<'a> {
    pub now_ms: i64,
    pub services: &'a [ServiceSummary],
    pub monitor_lag_secs: f64,
    /// Newest first, as `Store::backup_records` returns them.
    pub backups: &'a [BackupRecord],
    /// The backup schedule's period, when `beacon serve` runs one.
    pub backup_period_secs: Option<f64>,
    /// Every configured channel with its pending deliveries.
    pub alerts_pending: &'a [(String, i64)],
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: T) -> T {
    r.register(Box::new(m.clone()))
        .expect("metric names are valid and unique");
    m
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
}

impl Metrics {
    /// The names and labels below are constants: registering them cannot
    /// fail unless this code is wrong, which the unit test below catches.
    /// Sets `metrics.per_service` (at start; a change needs a restart).
    pub fn set_per_service(&self, on: bool) {
        self.per_service
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether series are kept per service (`metrics.per_service`).
    pub fn per_service(&self) -> bool {
        self.per_service.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The `service` label of a probe's series: its slug, or `""` (all
    /// services summed) when `metrics.per_service` is off.
    pub fn service_label<'a>(&self, slug: &'a str) -> &'a str {
        if self.per_service() {
            slug
        } else {
            ""
        }
    }

    pub fn new() -> Metrics {
        let registry = Registry::new();
        let hist = |name: &str, help: &str, buckets: &[f64]| {
            HistogramOpts::new(name, help).buckets(buckets.to_vec())
        };
        const LATENCY: &[f64] = &[
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        let r = &registry;
        Metrics {
            per_service: std::sync::atomic::AtomicBool::new(true),
            probes: ProbeSeries::default(),
            schedule_lag: reg(
                r,
                Histogram::with_opts(hist(
                    "beacon_probe_schedule_lag_seconds",
                    "How late probes started behind their plan.",
                    &[0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0],
                ))
                .expect("valid"),
            ),
            write_batch_size: reg(
                r,
                Histogram::with_opts(hist(
                    "beacon_store_write_batch_results",
                    "Results per batch written to the store.",
                    &[1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0],
                ))
                .expect("valid"),
            ),
            write_duration: reg(
                r,
                Histogram::with_opts(hist(
                    "beacon_store_write_duration_seconds",
                    "How long writing one batch took.",
                    LATENCY,
                ))
                .expect("valid"),
            ),
            write_failures: reg(
                r,
                IntCounter::with_opts(opts(
                    "beacon_store_write_failures_total",
                    "Batch writes that failed (each is retried).",
                ))
                .expect("valid"),
            ),
            results_dropped: reg(
                r,
                IntCounterVec::new(
                    opts(
                        "beacon_results_dropped_total",
                        "Raw probe results given up: refused by the store as data, or shed from a full buffer while the store was away. State changes are never shed.",
                    ),
                    &["reason"],
                )
                .expect("valid"),
            ),
            probe_resource_errors: reg(
                r,
                IntCounter::with_opts(opts(
                    "beacon_probe_resource_errors_total",
                    "Probes that failed because beacon itself ran out of resources (file descriptors, memory); they never change a service's state.",
                ))
                .expect("valid"),
            ),
            location_results: reg(
                r,
                IntCounterVec::new(
                    opts(
                        "beacon_location_results_total",
                        "Results stored from each agent's location (a resent duplicate is not counted).",
                    ),
                    &["location"],
                )
                .expect("valid"),
            ),
            location_silent: reg(
                r,
                IntGaugeVec::new(
                    opts(
                        "beacon_location_silent",
                        "1 while a location's agent has sent nothing for two intervals of its services.",
                    ),
                    &["location"],
                )
                .expect("valid"),
            ),
            location_last_report: reg(
                r,
                IntGaugeVec::new(
                    opts(
                        "beacon_location_last_report_timestamp_seconds",
                        "When each location's agent last sent a batch (Unix time; 0: not since beacon started).",
                    ),
                    &["location"],
                )
                .expect("valid"),
            ),
            location_refused: reg(
                r,
                IntCounterVec::new(
                    opts(
                        "beacon_location_batches_refused_total",
                        "Batches from agents refused, by reason (token, invalid, unavailable).",
                    ),
                    &["reason"],
                )
                .expect("valid"),
            ),
            http_rate_limited: reg(
                r,
                IntCounter::with_opts(opts(
                    "beacon_http_rate_limited_total",
                    "Public requests answered 429 because their client went past server.client_rate (and client_burst).",
                ))
                .expect("valid"),
            ),
            http_requests: reg(
                r,
                IntCounterVec::new(
                    opts(
                        "beacon_http_requests_total",
                        "HTTP requests served, by route pattern and status.",
                    ),
                    &["route", "status"],
                )
                .expect("valid"),
            ),
            backup_failures: reg(
                r,
                IntCounterVec::new(
                    opts(
                        "beacon_backup_failures_total",
                        "Scheduled backup runs of this process that failed, by step.",
                    ),
                    &["step"],
                )
                .expect("valid"),
            ),
            task_failures: reg(
                r,
                IntCounterVec::new(
                    opts(
                        "beacon_task_failures_total",
                        "Deaths of beacon's long-lived tasks (panics, or returns before the stop), by task.",
                    ),
                    &["task"],
                )
                .expect("valid"),
            ),
            alert_deliveries: reg(
                r,
                IntCounterVec::new(
                    opts(
                        "beacon_alert_deliveries_total",
                        "Alert delivery attempts by channel and outcome (sent, retry, failed: given up).",
                    ),
                    &["channel", "outcome"],
                )
                .expect("valid"),
            ),
            alerts_silenced: reg(
                r,
                IntCounter::with_opts(opts(
                    "beacon_alerts_silenced_total",
                    "Alert events not sent because their service was in a maintenance window.",
                ))
                .expect("valid"),
            ),
            subscriber_notifications: reg(
                r,
                IntCounterVec::new(
                    opts(
                        "beacon_subscriber_notifications_total",
                        "Messages to subscribers by kind and outcome (sent, retry, failed: given up, suppressed: posted without notifying).",
                    ),
                    &["kind", "outcome"],
                )
                .expect("valid"),
            ),
            subscribers_confirmed: reg(
                r,
                IntCounter::with_opts(opts(
                    "beacon_subscribers_confirmed_total",
                    "Email subscribers who confirmed their address.",
                ))
                .expect("valid"),
            ),
            subscribers_unsubscribed: reg(
                r,
                IntCounter::with_opts(opts(
                    "beacon_subscribers_unsubscribed_total",
                    "Subscribers who left or were removed.",
                ))
                .expect("valid"),
            ),
            subscription_signups: reg(
                r,
                IntCounterVec::new(
                    opts(
                        "beacon_subscription_signups_total",
                        "Sign-ups on /subscribe by outcome (sent, limited, refused, honeypot, failed).",
                    ),
                    &["outcome"],
                )
                .expect("valid"),
            ),
            console_signin_failures: reg(
                r,
                IntCounter::with_opts(opts(
                    "beacon_console_signin_failures_total",
                    "Failed sign-ins to the incident console (wrong token or rate-limited).",
                ))
                .expect("valid"),
            ),
            cluster_leader: reg(
                r,
                IntGauge::with_opts(opts(
                    "beacon_cluster_leader",
                    "1 while this replica holds the leader's lease (it runs retention and the backup schedule), else 0.",
                ))
                .expect("valid"),
            ),
            cluster_epoch: reg(
                r,
                IntGauge::with_opts(opts(
                    "beacon_cluster_epoch",
                    "The leader's lease epoch (fencing token) as this replica last saw it.",
                ))
                .expect("valid"),
            ),
            cluster_members: reg(
                r,
                IntGauge::with_opts(opts(
                    "beacon_cluster_members",
                    "Live replicas this replica sees on its database, itself included.",
                ))
                .expect("valid"),
            ),
            cluster_fenced: reg(
                r,
                IntCounter::with_opts(opts(
                    "beacon_cluster_fenced_writes_total",
                    "Singleton writes refused because this replica's leadership had moved on.",
                ))
                .expect("valid"),
            ),
            config_reloads: reg(
                r,
                IntCounterVec::new(
                    opts(
                        "beacon_config_reloads_total",
                        "Config reloads (SIGHUP or a change of the file) by result: applied, invalid (refused; the running config stays), unchanged.",
                    ),
                    &["result"],
                )
                .expect("valid"),
            ),
            config_loaded: reg(
                r,
                IntGaugeVec::new(
                    opts(
                        "beacon_config_info",
                        "1 on the SHA-256 of the config file in force.",
                    ),
                    &["sha256"],
                )
                .expect("valid"),
            ),
            config: ConfigStatus::default(),
            tasks: Tasks::default(),
            registry,
        }
    }

    /// Everything, in the Prometheus text format. Takes no lock: the
    /// counters are read as they are, the scrape-time series are built for
    /// this scrape alone. CPU-bound at many services: call it off the async
    /// runtime's workers.
    pub fn render(&self, readings: &Readings) -> String {
        let mut families = self.registry.gather();
        families.extend(Scraped::new().fill(readings).registry.gather());
        let mut texts: Vec<(String, String)> = Vec::with_capacity(families.len() + 6);
        for family in &families {
            let mut out = Vec::new();
            if let Err(e) = TextEncoder::new().encode(std::slice::from_ref(family), &mut out) {
                tracing::error!(error = %e, family = family.name(), "encoding a metric failed");
                continue;
            }
            texts.push((
                family.name().to_string(),
                String::from_utf8(out).unwrap_or_default(),
            ));
        }
        let per_service = self.probes.families().into_iter();
        let per_service = per_service.chain(service_families(readings));
        texts.extend(per_service.map(|(name, text)| (name.to_string(), text)));
        // One registry would have sorted them by name.
        texts.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut out = String::with_capacity(texts.iter().map(|(_, t)| t.len()).sum());
        for (_, text) in texts {
            out.push_str(&text);
        }
        out
    }
}

impl Scraped {
    /// As [`Metrics::new`]: constant names and labels.
    fn new() -> Scraped {
        let registry = Registry::new();
        let r = &registry;
        Scraped {
            alert_pending: reg(
                r,
                IntGaugeVec::new(
                    opts(
                        "beacon_alert_deliveries_pending",
                        "Alerts waiting to be sent or retried, by channel.",
                    ),
                    &["channel"],
                )
                .expect("valid"),
            ),
            monitor_lag: reg(
                r,
                Gauge::with_opts(opts(
                    "beacon_monitor_lag_seconds",
                    "How far the monitor runs behind its schedule now.",
                ))
                .expect("valid"),
            ),
            backup_last_success: reg(
                r,
                Gauge::with_opts(opts(
                    "beacon_backup_last_success_timestamp_seconds",
                    "When the newest backup that was uploaded was taken (Unix time).",
                ))
                .expect("valid"),
            ),
            backup_last_verified: reg(
                r,
                Gauge::with_opts(opts(
                    "beacon_backup_last_verified_timestamp_seconds",
                    "When the newest verified backup was verified (Unix time).",
                ))
                .expect("valid"),
            ),
            backup_last_duration: reg(
                r,
                Gauge::with_opts(opts(
                    "beacon_backup_last_duration_seconds",
                    "How long the newest finished backup took, upload and verification.",
                ))
                .expect("valid"),
            ),
            backup_last_size: reg(
                r,
                Gauge::with_opts(opts(
                    "beacon_backup_last_size_bytes",
                    "Size of the newest uploaded backup archive.",
                ))
                .expect("valid"),
            ),
            backup_last_failed: reg(
                r,
                IntGauge::with_opts(opts(
                    "beacon_backup_last_run_failed",
                    "1 when the newest backup run failed (any process: serve or cron).",
                ))
                .expect("valid"),
            ),
            backup_period: reg(
                r,
                Gauge::with_opts(opts(
                    "beacon_backup_schedule_period_seconds",
                    "Time between two scheduled backups (0: serve runs no schedule).",
                ))
                .expect("valid"),
            ),
            registry,
        }
    }

    fn fill(self, readings: &Readings) -> Scraped {
        for (channel, n) in readings.alerts_pending {
            self.alert_pending
                .with_label_values(&[channel.as_str()])
                .set(*n);
        }
        self.monitor_lag.set(readings.monitor_lag_secs);
        self.backup_period
            .set(readings.backup_period_secs.unwrap_or(0.0));
        let secs = |ms: i64| ms as f64 / 1000.0;
        let uploaded = readings
            .backups
            .iter()
            .find(|b| b.status == "uploaded" || b.status == "verified");
        self.backup_last_success
            .set(uploaded.map_or(0.0, |b| secs(b.created_at)));
        self.backup_last_size
            .set(uploaded.and_then(|b| b.size_bytes).unwrap_or(0) as f64);
        self.backup_last_verified.set(
            readings
                .backups
                .iter()
                .filter_map(|b| b.verified_at)
                .max()
                .map_or(0.0, secs),
        );
        let finished = readings
            .backups
            .iter()
            .find(|b| b.status == "verified" || b.status == "failed");
        self.backup_last_duration
            .set(finished.map_or(0.0, |b| secs((b.updated_at - b.created_at).max(0))));
        self.backup_last_failed.set(i64::from(
            readings
                .backups
                .first()
                .is_some_and(|b| b.status == "failed"),
        ));
        self
    }
}

/// The gauges there is one of per service (several per dependency),
/// written as text: `beacon_service_state`, `…_last_check_age_seconds`,
/// `beacon_dependency_state`, `beacon_certificate_expiry_timestamp_seconds`.
fn service_families(readings: &Readings) -> Vec<(&'static str, String)> {
    let mut state = Family::new(
        "beacon_service_state",
        "1 on the service's current state (unknown, up, degraded, down, maintenance).",
        "gauge",
    );
    let mut age = Family::new(
        "beacon_service_last_check_age_seconds",
        "Seconds since the service's last probe result.",
        "gauge",
    );
    let mut dependency = Family::new(
        "beacon_dependency_state",
        "1 on the reported dependency's current health (pass, warn, fail).",
        "gauge",
    );
    let mut certificate = Family::new(
        "beacon_certificate_expiry_timestamp_seconds",
        "notAfter of the certificate the service's latest TLS probe saw (Unix time).",
        "gauge",
    );
    let mut services: Vec<&ServiceSummary> = readings.services.iter().collect();
    services.sort_unstable_by(|a, b| a.slug.cmp(&b.slug));
    // Each series' labels in name order, and its values too, as the
    // registry writes them.
    let mut states = STATES;
    states.sort_unstable_by_key(|st| st.as_str());
    let mut healths = crate::domain::Health::ALL;
    healths.sort_unstable_by_key(|h| h.as_str());
    for s in services {
        let slug = s.slug.as_str();
        for st in states {
            let on = i64::from(s.state == st);
            state.series("", &[("service", slug), ("state", st.as_str())], on);
        }
        if let Some(at) = s.last_checked_at {
            let secs = (readings.now_ms - at).max(0) as f64 / 1000.0;
            age.series("", &[("service", slug)], secs);
        }
        if let Some(at) = s.certificate_expires_at {
            certificate.series("", &[("service", slug)], at as f64 / 1000.0);
        }
        let mut deps: Vec<_> = s.dependencies.iter().collect();
        deps.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        for d in deps {
            for health in healths {
                let labels = [
                    ("dependency", d.name.as_str()),
                    ("service", slug),
                    ("state", health.as_str()),
                ];
                dependency.series("", &labels, i64::from(d.health == health));
            }
        }
    }
    [state, age, dependency, certificate]
        .into_iter()
        .filter_map(Family::done)
        .collect()
}

/// How long a task's death stays `fail` on `/health` after it was
/// restarted, so a poll every few minutes still sees it.
pub const TASK_FAILURE_SHOWN_MS: i64 = 10 * 60 * 1000;

/// The supervised tasks: whether each runs now, and its deaths.
#[derive(Debug, Default)]
pub struct Tasks(std::sync::Mutex<std::collections::BTreeMap<&'static str, TaskStatus>>);

#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskStatus {
    pub running: bool,
    /// Deaths (panics, or returns before the stop) since the process started.
    pub failures: u64,
    /// The latest death: epoch ms and why (the panic message).
    pub last_failure: Option<(i64, String)>,
}

impl Tasks {
    fn with<T>(
        &self,
        f: impl FnOnce(&mut std::collections::BTreeMap<&'static str, TaskStatus>) -> T,
    ) -> T {
        // A panic elsewhere while holding this lock leaves the map usable.
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut map)
    }

    /// `task` runs (again).
    pub fn running(&self, task: &'static str) {
        self.with(|m| m.entry(task).or_default().running = true);
    }

    /// `task` ended as it should (the process is stopping).
    pub fn stopped(&self, task: &'static str) {
        self.with(|m| m.entry(task).or_default().running = false);
    }

    /// `task` died at `at_ms` (epoch ms) because of `why`: see
    /// [`Metrics::task_died`].
    fn died(&self, task: &'static str, at_ms: i64, why: &str) {
        self.with(|m| {
            let status = m.entry(task).or_default();
            status.running = false;
            status.failures += 1;
            status.last_failure = Some((at_ms, why.to_string()));
        });
    }

    /// Every task known, by name.
    pub fn all(&self) -> Vec<(&'static str, TaskStatus)> {
        self.with(|m| m.iter().map(|(k, v)| (*k, v.clone())).collect())
    }
}

/// Why a task ended, from its join result: the panic's message when it
/// panicked.
pub fn join_failure(e: tokio::task::JoinError) -> String {
    if e.is_panic() {
        let payload = e.into_panic();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(a panic without a message)".to_string());
        format!("panicked: {message}")
    } else {
        "was cancelled".to_string()
    }
}

impl Metrics {
    /// `task` died at `at_ms` (epoch ms) because of `why`: logged, counted
    /// in `beacon_task_failures_total{task}`, shown on `/health`.
    pub fn task_died(&self, task: &'static str, at_ms: i64, why: &str) {
        tracing::error!(task, error = %why, "a supervised task died");
        self.task_failures.with_label_values(&[task]).inc();
        self.tasks.died(task, at_ms, why);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One probe of `service` counted up.
    fn up(m: &Metrics, service: &str, latency_ms: Option<u32>) {
        m.probes.count([Probe {
            service,
            outcome: crate::domain::Outcome::Up,
            latency_ms,
        }]);
    }

    #[test]
    fn every_family_registers_and_renders() {
        let m = Metrics::new();
        up(&m, "checkout", Some(20));
        let text = m.render(&Readings {
            now_ms: 0,
            services: &[],
            monitor_lag_secs: 0.25,
            backups: &[],
            backup_period_secs: None,
            alerts_pending: &[("ops".into(), 2)],
        });
        assert!(text.contains("beacon_probes_total{outcome=\"up\",service=\"checkout\"} 1"));
        assert!(text.contains("beacon_monitor_lag_seconds 0.25"));
        assert!(text.contains("# TYPE beacon_probe_duration_seconds histogram"));
        assert!(text.contains("beacon_backup_last_run_failed 0"));
        assert!(text.contains("beacon_alert_deliveries_pending{channel=\"ops\"} 2"));
    }

    fn summary(slug: &str, state: State) -> ServiceSummary {
        ServiceSummary {
            id: 1,
            slug: slug.into(),
            name: slug.into(),
            group: None,
            description: None,
            public: true,
            position: 1,
            state,
            state_since: None,
            last_checked_at: Some(1_000),
            created_at: 0,
            checks_24h: 0,
            ok_24h: 0,
            dependencies: Vec::new(),
            certificate_expires_at: None,
        }
    }

    /// Scrapes share no series: each one shows its own readings only, however
    /// many run at once (they used to take turns on one lock).
    #[test]
    fn concurrent_renders_do_not_mix() {
        let m = Metrics::new();
        up(&m, "a-0", None);
        std::thread::scope(|scope| {
            let renders: Vec<_> = (0..4)
                .map(|n| {
                    let m = &m;
                    scope.spawn(move || {
                        let services: Vec<ServiceSummary> = (0..300)
                            .map(|k| summary(&format!("s{n}-{k}"), State::Up))
                            .collect();
                        (0..5)
                            .map(|_| {
                                m.render(&Readings {
                                    now_ms: 2_000,
                                    services: &services,
                                    monitor_lag_secs: n as f64,
                                    backups: &[],
                                    backup_period_secs: None,
                                    alerts_pending: &[],
                                })
                            })
                            .collect::<Vec<String>>()
                    })
                })
                .collect();
            for (n, r) in renders.into_iter().enumerate() {
                for text in r.join().expect("render") {
                    let states = text
                        .lines()
                        .filter(|l| l.starts_with("beacon_service_state{"))
                        .count();
                    assert_eq!(states, 300 * STATES.len());
                    let own = format!("service=\"s{n}-");
                    assert!(text
                        .lines()
                        .filter(|l| l.starts_with("beacon_service_"))
                        .all(|l| l.contains(&own)));
                    assert!(text.contains(&format!("beacon_monitor_lag_seconds {n}\n")));
                    assert!(text.contains("beacon_probes_total{outcome=\"up\",service=\"a-0\"} 1"));
                }
            }
        });
    }

    /// Families come out sorted by name, as from one registry.
    #[test]
    fn families_in_name_order() {
        let m = Metrics::new();
        up(&m, "checkout", Some(3));
        let text = m.render(&Readings {
            now_ms: 0,
            services: &[summary("checkout", State::Down)],
            monitor_lag_secs: 0.0,
            backups: &[],
            backup_period_secs: Some(3600.0),
            alerts_pending: &[],
        });
        let names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        assert!(names.contains(&"beacon_service_state"));
        assert!(names.contains(&"beacon_probes_total"));
    }
}
