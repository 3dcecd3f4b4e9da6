//! HTTP(S) probe: GET the URL, judge by status (and later by the body).

use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::{root_cause, ProbeReport};
use crate::config::ServiceConfig;
use crate::model::Outcome;

/// How much of a body is read. Health documents are small; a target that
/// sends more is not allowed to make us buffer it.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The one HTTP client every probe shares: connection pools, TLS sessions
/// and DNS caches are reused across probes instead of rebuilt each time.
pub fn shared_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(concat!(
            "beacon/",
            env!("CARGO_PKG_VERSION"),
            " (health check)"
        ))
        .redirect(reqwest::redirect::Policy::limited(10))
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .build()
}

pub async fn probe(client: &reqwest::Client, service: &ServiceConfig) -> ProbeReport {
    let started = Instant::now();
    match tokio::time::timeout(service.timeout, fetch(client, service)).await {
        Ok(Ok((status, _body))) => judge(service, status, started.elapsed()),
        Ok(Err(e)) => ProbeReport::down(started.elapsed(), describe_error(&e)),
        Err(_) => ProbeReport::down(
            started.elapsed(),
            format!(
                "timed out after {}",
                humantime::format_duration(service.timeout)
            ),
        ),
    }
}

/// Sends the request and reads at most [`MAX_BODY_BYTES`] of the body.
async fn fetch(
    client: &reqwest::Client,
    service: &ServiceConfig,
) -> reqwest::Result<(reqwest::StatusCode, Vec<u8>)> {
    let response = client.get(service.url.clone()).send().await?;
    let status = response.status();
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        let room = MAX_BODY_BYTES - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_BODY_BYTES {
            break;
        }
    }
    Ok((status, body))
}

fn judge(service: &ServiceConfig, status: reqwest::StatusCode, latency: Duration) -> ProbeReport {
    let code = status.as_u16();
    let expected = if service.expected_status.is_empty() {
        status.is_success()
    } else {
        service.expected_status.contains(&code)
    };
    if !expected {
        let wanted = if service.expected_status.is_empty() {
            "2xx".to_string()
        } else {
            service
                .expected_status
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(" or ")
        };
        return ProbeReport {
            outcome: Outcome::Down,
            latency,
            status_code: Some(code),
            reason: Some(format!("HTTP {code}, expected {wanted}")),
        };
    }
    if let Some(limit) = service.degraded_latency {
        if latency > limit {
            return ProbeReport {
                outcome: Outcome::Degraded,
                latency,
                status_code: Some(code),
                reason: Some(format!(
                    "slow: {} ms, over degraded_latency {}",
                    latency.as_millis(),
                    humantime::format_duration(limit)
                )),
            };
        }
    }
    ProbeReport {
        outcome: Outcome::Up,
        latency,
        status_code: Some(code),
        reason: None,
    }
}

fn describe_error(e: &reqwest::Error) -> String {
    let cause = root_cause(e);
    if e.is_connect() {
        format!("connection failed: {cause}")
    } else if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_body() || e.is_decode() {
        format!("reading the body failed: {cause}")
    } else if e.is_redirect() {
        format!("too many redirects: {cause}")
    } else {
        format!("request failed: {cause}")
    }
}
