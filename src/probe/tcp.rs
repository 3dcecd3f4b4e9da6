//! TCP probe: can a connection be opened to host:port?

use std::time::Instant;

use super::resolve::Resolver;
use super::{finish, timed_out, ProbeReport};
use crate::config::ServiceConfig;

pub async fn probe(target: &ServiceConfig, resolver: &Resolver) -> ProbeReport {
    let host = target.url.host_str().unwrap_or_default();
    let port = target.url.port_or_known_default().unwrap_or(0);
    let started = Instant::now();
    match tokio::time::timeout(target.timeout, resolver.connect(host, port)).await {
        Ok(Ok(stream)) => {
            let mut report = finish(target, started.elapsed(), None);
            report.facts.ip = stream.peer_addr().ok().map(|a| a.ip().to_string());
            report
        }
        Ok(Err(e)) => ProbeReport::down(started.elapsed(), format!("connection failed: {e}")),
        Err(_) => timed_out(target, started),
    }
}
