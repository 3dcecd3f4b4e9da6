//! DNS probe: does the name resolve (to the expected addresses)?
//!
//! Uses the system resolver, as the services being watched do, taking
//! turns with every other lookup ([`super::resolve`]).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Instant;

use super::resolve::Resolver;
use super::{finish, timed_out, ProbeReport};
use crate::config::ServiceConfig;

pub async fn probe(target: &ServiceConfig, resolver: &Resolver) -> ProbeReport {
    let host = target
        .url
        .host_str()
        .unwrap_or_default()
        .trim_matches(|c| c == '[' || c == ']')
        .to_string();
    let started = Instant::now();
    let lookup = resolver.lookup(&host, 0);
    match tokio::time::timeout(target.timeout, lookup).await {
        Ok(Ok(addrs)) => {
            let found: BTreeSet<IpAddr> = addrs.iter().map(|a| a.ip()).collect();
            if found.is_empty() {
                return ProbeReport::down(started.elapsed(), format!("{host} has no address"));
            }
            let missing: Vec<String> = target
                .dns_expect
                .iter()
                .filter(|ip| !found.contains(ip))
                .map(IpAddr::to_string)
                .collect();
            if missing.is_empty() {
                let mut report = finish(target, started.elapsed(), None);
                // Gatus's [BODY] for DNS is the answer; IPv4 first, as an A query.
                let first = found.iter().find(|ip| ip.is_ipv4()).or(found.iter().next());
                report.facts.answer = first.map(IpAddr::to_string);
                report.facts.dns_rcode = Some("NOERROR");
                report
            } else {
                let got: Vec<String> = found.iter().map(IpAddr::to_string).collect();
                ProbeReport::down(
                    started.elapsed(),
                    format!(
                        "{host} resolved to {}, not to expected {}",
                        got.join(", "),
                        missing.join(", ")
                    ),
                )
            }
        }
        Ok(Err(e)) => {
            let mut report =
                ProbeReport::down(started.elapsed(), format!("lookup of {host} failed: {e}"));
            report.facts.dns_rcode = Some("NXDOMAIN");
            report
        }
        Err(_) => timed_out(target, started),
    }
}
