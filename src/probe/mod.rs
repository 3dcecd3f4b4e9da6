//! Probes: one file per kind of target. A probe never fails as a Rust error:
//! whatever happens (refused, timed out, garbage) becomes a [`ProbeReport`]
//! with an outcome and a short reason, within the target's timeout.
//!
//! [`run`] probes a service and its `[[service.dependency]]` targets at the
//! same time; a dependency that is not up makes an up service degraded.

pub mod dns;
pub mod http;
pub mod postgres;
pub mod redis;
pub mod resolve;
pub mod tcp;
pub mod tls;

use std::time::{Duration, Instant};

use crate::config::{HttpOptions, ProbeKind, ServiceConfig};
use crate::domain::condition::{failing, Condition, Observed};
use crate::domain::text::{clean_text, MAX_NAME_BYTES};
use crate::domain::Outcome;
use crate::domain::{Dependency, Health};

/// What one probe found.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeReport {
    pub outcome: Outcome,
    pub latency: Duration,
    pub status_code: Option<u16>,
    /// Why the outcome is not `Up`, for operators. Internal: it may name
    /// hosts and errors, so it never reaches the public page.
    pub reason: Option<String>,
    /// Dependencies the target reported, and those probed directly.
    pub dependencies: Vec<Dependency>,
    /// The server certificate's notAfter (epoch ms), on TLS and HTTPS probes.
    pub certificate_expires_at: Option<i64>,
    /// What conditions on a non-HTTP probe can look at.
    pub facts: Facts,
}

/// Values of a non-HTTP probe for conditions: `[CONNECTED]`, `[IP]`,
/// `[BODY]` (a DNS probe's first answer, as in Gatus) and `[DNS_RCODE]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    pub connected: bool,
    pub ip: Option<String>,
    pub answer: Option<String>,
    pub dns_rcode: Option<&'static str>,
}

/// Longest reason or dependency output kept, in bytes.
pub const MAX_REASON_BYTES: usize = 512;

impl ProbeReport {
    /// Cleans everything in the report that came from the target.
    pub fn sanitized(mut self) -> Self {
        if let Some(reason) = &self.reason {
            self.reason = Some(clean_text(reason, MAX_REASON_BYTES));
        }
        for d in &mut self.dependencies {
            d.name = clean_text(&d.name, MAX_NAME_BYTES);
            d.output = d.output.as_deref().map(|o| clean_text(o, MAX_REASON_BYTES));
            d.observed = d.observed.as_deref().map(|o| clean_text(o, MAX_NAME_BYTES));
        }
        self
    }

    /// The same report with another outcome (simulations and tests).
    pub fn with_outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    pub fn down(latency: Duration, reason: impl Into<String>) -> Self {
        ProbeReport {
            outcome: Outcome::Down,
            latency,
            status_code: None,
            reason: Some(reason.into()),
            dependencies: Vec::new(),
            certificate_expires_at: None,
            facts: Facts::default(),
        }
    }
}

/// Up, or degraded when slower than `degraded_latency`.
pub(crate) fn finish(
    target: &ServiceConfig,
    latency: Duration,
    status_code: Option<u16>,
) -> ProbeReport {
    let slow = target.degraded_latency.filter(|limit| latency > *limit);
    ProbeReport {
        outcome: if slow.is_some() {
            Outcome::Degraded
        } else {
            Outcome::Up
        },
        latency,
        status_code,
        reason: slow.map(|limit| {
            format!(
                "slow: {} ms, over degraded_latency {}",
                latency.as_millis(),
                humantime::format_duration(limit)
            )
        }),
        dependencies: Vec::new(),
        certificate_expires_at: None,
        facts: Facts {
            connected: true,
            ..Facts::default()
        },
    }
}

pub(crate) fn timed_out(target: &ServiceConfig, started: Instant) -> ProbeReport {
    ProbeReport::down(
        started.elapsed(),
        format!(
            "timed out after {}",
            humantime::format_duration(target.timeout)
        ),
    )
}

/// The HTTP clients every probe shares, one per verification and
/// keep-alive setting: connection pools, TLS sessions and DNS caches are
/// reused across probes instead of rebuilt each time. None follows
/// redirects or sends a `Referer`: the HTTP probe follows redirects itself,
/// so that a service's headers never reach another origin (see [`http`]).
#[derive(Clone)]
pub struct Clients {
    /// By (verify TLS, keep alive).
    clients: [reqwest::Client; 4],
    /// Every probe's name lookups, HTTP ones included, take turns here.
    pub resolver: resolve::Resolver,
}

impl Clients {
    pub fn new() -> reqwest::Result<Clients> {
        Self::identified(None, crate::config::DEFAULT_LOCATION)
    }

    /// Clients whose HTTP probes say where they come from: the location in
    /// the `User-Agent` (`beacon/<version> (location <name>)`, so a probed
    /// service's log tells which region checked it), and with replicas the
    /// one that sent them in a `Beacon-Member` header.
    pub fn identified(member: Option<&str>, location: &str) -> reqwest::Result<Clients> {
        let agent = format!("beacon/{} (location {location})", env!("CARGO_PKG_VERSION"));
        let resolver = resolve::Resolver::default();
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(value) = member.and_then(|m| reqwest::header::HeaderValue::from_str(m).ok()) {
            headers.insert("beacon-member", value);
        }
        let build = |verify: bool, keep_alive: bool| {
            crate::trust::with_system_roots(reqwest::Client::builder())
                .dns_resolver(std::sync::Arc::new(resolver.clone()))
                .user_agent(agent.clone())
                .default_headers(headers.clone())
                .redirect(reqwest::redirect::Policy::none())
                .referer(false)
                .danger_accept_invalid_certs(!verify)
                .tls_info(true)
                .pool_idle_timeout(Duration::from_secs(90))
                // No idle connection kept: every probe connects afresh.
                .pool_max_idle_per_host(if keep_alive { usize::MAX } else { 0 })
                .tcp_nodelay(true)
                .build()
        };
        Ok(Clients {
            clients: [
                build(true, true)?,
                build(false, true)?,
                build(true, false)?,
                build(false, false)?,
            ],
            resolver,
        })
    }

    pub fn for_options(&self, http: &HttpOptions) -> &reqwest::Client {
        let index = usize::from(!http.keep_alive) * 2 + usize::from(!http.tls_verify);
        &self.clients[index]
    }
}

/// Probes one target by its kind. The HTTP probe applies conditions itself
/// (they replace its status check); for the other kinds they are applied
/// here to whatever answered.
pub async fn probe_target(clients: &Clients, target: &ServiceConfig, now_ms: i64) -> ProbeReport {
    let report = match target.kind {
        ProbeKind::Http => {
            return http::probe(clients.for_options(&target.http), target, now_ms).await
        }
        ProbeKind::Tcp => tcp::probe(target, &clients.resolver).await,
        ProbeKind::Tls => tls::probe(target, now_ms, &clients.resolver).await,
        ProbeKind::Dns => dns::probe(target, &clients.resolver).await,
        ProbeKind::Postgres => postgres::probe(target).await,
        ProbeKind::Redis => redis::probe(target, &clients.resolver).await,
    };
    apply_conditions(target, report, now_ms)
}

/// As in Gatus, `conditions` decide a non-HTTP probe on their own (so
/// `[CONNECTED] == false` can watch a port that must stay closed, and
/// `[DNS_RCODE] == NXDOMAIN` a name that must not resolve); the probe's own
/// reason is kept beside theirs. `degraded_conditions` apply to a probe that
/// is not down.
fn apply_conditions(target: &ServiceConfig, mut report: ProbeReport, now_ms: i64) -> ProbeReport {
    if target.conditions.is_empty() && target.degraded_conditions.is_empty() {
        return report;
    }
    let answer = report.facts.answer.clone().unwrap_or_default();
    let observed = Observed {
        status: 0,
        body: answer.as_bytes(),
        response_time_ms: report.latency.as_millis() as i64,
        ip: report.facts.ip.as_deref().unwrap_or(""),
        connected: report.facts.connected,
        certificate_expiration_ms: report.certificate_expires_at.map_or(0, |t| t - now_ms),
        domain_expiration_ms: 0,
        dns_rcode: report.facts.dns_rcode.unwrap_or(""),
    };
    let failed = |conditions: &[Condition]| failing(conditions, &observed);
    if !target.conditions.is_empty() {
        let down = failed(&target.conditions);
        let probe_reason = report.reason.take();
        if down.is_empty() {
            report.outcome = Outcome::Up;
        } else {
            report.outcome = Outcome::Down;
            report.reason = Some(match probe_reason {
                Some(why) => format!("{} ({why})", down.join("; ")),
                None => down.join("; "),
            });
        }
    }
    if report.outcome != Outcome::Down {
        let degraded = failed(&target.degraded_conditions);
        if !degraded.is_empty() {
            report.outcome = Outcome::Degraded;
            report.reason = Some(degraded.join("; "));
        }
    }
    report
}

/// Probes a service and, at the same time, its direct dependencies.
pub async fn run(clients: &Clients, service: &ServiceConfig, now_ms: i64) -> ProbeReport {
    let dependencies = futures_util::future::join_all(
        service
            .dependencies
            .iter()
            .map(|d| probe_target(clients, d, now_ms)),
    );
    let (mut report, dependency_reports) =
        tokio::join!(probe_target(clients, service, now_ms), dependencies);
    let mut failing = Vec::new();
    for (dep, r) in service.dependencies.iter().zip(dependency_reports) {
        let health = match r.outcome {
            Outcome::Up => Health::Pass,
            Outcome::Degraded => Health::Warn,
            Outcome::Down => Health::Fail,
        };
        if health != Health::Pass {
            failing.push(format!(
                "{}: {}",
                dep.name,
                r.reason.as_deref().unwrap_or("not passing")
            ));
        }
        report.dependencies.push(Dependency {
            name: dep.name.clone(),
            health,
            output: r.reason,
            observed: Some(format!("{} ms", r.latency.as_millis())),
        });
    }
    if report.outcome == Outcome::Up && !failing.is_empty() {
        report.outcome = Outcome::Degraded;
        report.reason = Some(format!("dependency {}", failing.join("; ")));
    }
    report.sanitized()
}

/// True when `report` failed because beacon itself ran out of resources
/// (file descriptors, socket buffers, memory) rather than because the
/// target did anything: such a probe says nothing about the target. Only
/// beacon's own errors are looked at: the main probe when no response came
/// back at all, and the dependencies beacon probed itself; text a target
/// sent (a health document's outputs) may say anything.
pub fn out_of_resources(service: &ServiceConfig, report: &ProbeReport) -> bool {
    // How std prints EMFILE, ENFILE, ENOBUFS and ENOMEM.
    const OWN: [&str; 4] = [
        "(os error 24)",
        "(os error 23)",
        "(os error 105)",
        "(os error 12)",
    ];
    let ours = |text: Option<&str>| text.is_some_and(|t| OWN.iter().any(|m| t.contains(m)));
    let main = report.outcome == Outcome::Down
        && report.status_code.is_none()
        && ours(report.reason.as_deref());
    // The output first: it is None for every passing dependency.
    let direct = report.dependencies.iter().any(|d| {
        ours(d.output.as_deref()) && service.dependencies.iter().any(|c| c.name == d.name)
    });
    main || direct
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
