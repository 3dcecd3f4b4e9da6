//! HTTP(S) probe: sends the request, judges by status, by the health
//! document in the body (`crate::health`) and by the service's conditions.

use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::{root_cause, ProbeReport};
use crate::config::ServiceConfig;
use crate::domain::condition::{failing, Condition, Observed};
use crate::domain::Outcome;
use crate::domain::{Format, Health};
use crate::health::{self, MAX_BODY_BYTES};

/// Redirects followed at most, within the probe's one timeout.
pub const MAX_REDIRECTS: usize = 10;

pub async fn probe(client: &reqwest::Client, service: &ServiceConfig, now_ms: i64) -> ProbeReport {
    let started = Instant::now();
    match tokio::time::timeout(service.timeout, fetch(client, service)).await {
        Ok(Ok(fetched)) => judge(service, fetched, started.elapsed(), now_ms),
        Ok(Err(reason)) => ProbeReport::down(started.elapsed(), reason),
        Err(_) => ProbeReport::down(
            started.elapsed(),
            format!(
                "timed out after {}",
                humantime::format_duration(service.timeout)
            ),
        ),
    }
}

struct Fetched {
    status: reqwest::StatusCode,
    ip: String,
    certificate_expires_at: Option<i64>,
    content_type: Option<String>,
    body: Vec<u8>,
}

/// Sends the request, following redirects (unless `follow_redirects` is
/// off), and reads at most [`MAX_BODY_BYTES`] of the body; the rest is
/// never read (the connection is dropped instead), so a huge or endless
/// body costs nothing. `Err`: why no answer came, for the report.
async fn fetch(client: &reqwest::Client, service: &ServiceConfig) -> Result<Fetched, String> {
    let response = send(client, service).await?;
    read(service, response).await.map_err(describe_error)
}

/// The final response, redirects followed as browsers and curl do, with one
/// rule for secrets: the configured headers go to the service's own origin
/// (scheme, host and port) only. After a redirect to another origin they
/// are dropped, and stay dropped for the rest of the chain; and no
/// `Referer` is ever sent (it would carry the URL and its query).
/// (The clients follow no redirect themselves; reqwest would keep custom
/// headers across origins and send a `Referer`.)
async fn send(
    client: &reqwest::Client,
    service: &ServiceConfig,
) -> Result<reqwest::Response, String> {
    use reqwest::{Method, StatusCode};
    let mut url = service.url.clone();
    let mut method = service.http.method.clone();
    let mut body = service.http.body.clone();
    let mut own_origin = true;
    let mut redirects = 0;
    loop {
        let mut request = client.request(method.clone(), url.clone());
        if own_origin {
            for (name, value) in &service.http.headers {
                request = request.header(name, value);
            }
        }
        if let Some(body) = &body {
            request = request.body(body.clone());
        }
        let response = request.send().await.map_err(describe_error)?;
        let status = response.status();
        let followed = matches!(
            status,
            StatusCode::MOVED_PERMANENTLY
                | StatusCode::FOUND
                | StatusCode::SEE_OTHER
                | StatusCode::TEMPORARY_REDIRECT
                | StatusCode::PERMANENT_REDIRECT
        );
        if !service.http.follow_redirects || !followed {
            return Ok(response);
        }
        // Without a usable Location, the redirect itself is the answer.
        let Some(next) = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| url.join(l).ok())
        else {
            return Ok(response);
        };
        if redirects == MAX_REDIRECTS {
            return Err(format!("too many redirects (more than {MAX_REDIRECTS})"));
        }
        redirects += 1;
        if !matches!(next.scheme(), "http" | "https") {
            return Err(format!(
                "redirected to a {}: URL, which is not HTTP",
                next.scheme()
            ));
        }
        // As the Fetch standard: 303 turns any method but HEAD into GET,
        // 301 and 302 turn POST into GET; the body goes with it.
        let to_get = match status {
            StatusCode::SEE_OTHER => method != Method::HEAD,
            StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND => method == Method::POST,
            _ => false,
        };
        if to_get {
            method = Method::GET;
            body = None;
        }
        own_origin = own_origin && next.origin() == service.url.origin();
        url = next;
    }
}

async fn read(service: &ServiceConfig, response: reqwest::Response) -> reqwest::Result<Fetched> {
    let certificate_expires_at = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .and_then(super::tls::not_after_ms);
    let status = response.status();
    let ip = response
        .remote_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut body = Vec::new();
    let needs_body = service.format != Format::None
        || service
            .conditions
            .iter()
            .chain(&service.degraded_conditions)
            .any(Condition::needs_body);
    if needs_body {
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            let room = MAX_BODY_BYTES - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= MAX_BODY_BYTES {
                break;
            }
        }
    }
    Ok(Fetched {
        status,
        ip,
        certificate_expires_at,
        content_type,
        body,
    })
}

/// The outcome from the status code, the health document and the latency:
/// an unexpected status or a failing document is down; a document that
/// warns, passes while a dependency fails, or claims JSON and is malformed,
/// is degraded; so is an answer slower than `degraded_latency`.
fn judge(service: &ServiceConfig, fetched: Fetched, latency: Duration, now_ms: i64) -> ProbeReport {
    let code = fetched.status.as_u16();
    let doc = health::parse(
        fetched.content_type.as_deref(),
        &fetched.body,
        service.format,
    );
    let dependencies = match &doc {
        Ok(Some(doc)) => doc.dependencies.clone(),
        _ => Vec::new(),
    };
    let report = |outcome, reason: Option<String>| ProbeReport {
        outcome,
        latency,
        status_code: Some(code),
        reason,
        dependencies: dependencies.clone(),
        certificate_expires_at: fetched.certificate_expires_at,
        facts: super::Facts {
            connected: true,
            ip: Some(fetched.ip.clone()),
            ..super::Facts::default()
        },
    };
    let observed = Observed {
        status: code,
        body: &fetched.body,
        response_time_ms: latency.as_millis() as i64,
        ip: &fetched.ip,
        connected: true,
        certificate_expiration_ms: fetched.certificate_expires_at.map_or(0, |t| t - now_ms),
        ..Observed::default()
    };
    let failed = |conditions: &[Condition]| failing(conditions, &observed);
    if !service.conditions.is_empty() {
        // Conditions replace the status check, as in Gatus.
        let failed = failed(&service.conditions);
        if !failed.is_empty() {
            return report(Outcome::Down, Some(failed.join("; ")));
        }
    }
    let expected = if !service.conditions.is_empty() {
        true
    } else if service.expected_status.is_empty() {
        fetched.status.is_success()
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
        return report(
            Outcome::Down,
            Some(format!("HTTP {code}, expected {wanted}")),
        );
    }
    match &doc {
        Ok(Some(doc)) => {
            let failing: Vec<&str> = doc
                .dependencies
                .iter()
                .filter(|d| d.health != Health::Pass)
                .map(|d| d.name.as_str())
                .collect();
            match doc.effective() {
                Health::Fail => {
                    return report(
                        Outcome::Down,
                        Some(format!("health status fail{}", listing(&failing))),
                    )
                }
                Health::Warn => {
                    let why = if doc.health == Health::Warn {
                        "health status warn"
                    } else {
                        "health status pass"
                    };
                    return report(
                        Outcome::Degraded,
                        Some(format!("{why}{}", listing(&failing))),
                    );
                }
                Health::Pass => {}
            }
        }
        Ok(None) => {}
        Err(reason) => return report(Outcome::Degraded, Some(reason.clone())),
    }
    let failed = failed(&service.degraded_conditions);
    if !failed.is_empty() {
        return report(Outcome::Degraded, Some(failed.join("; ")));
    }
    if let Some(limit) = service.degraded_latency {
        if latency > limit {
            return report(
                Outcome::Degraded,
                Some(format!(
                    "slow: {} ms, over degraded_latency {}",
                    latency.as_millis(),
                    humantime::format_duration(limit)
                )),
            );
        }
    }
    report(Outcome::Up, None)
}

fn listing(failing: &[&str]) -> String {
    if failing.is_empty() {
        String::new()
    } else {
        format!("; not passing: {}", failing.join(", "))
    }
}

/// Why a request got no answer. Never the URL: reqwest's own message names
/// it whole, query included, and a reason is stored and logged.
fn describe_error(e: reqwest::Error) -> String {
    let e = e.without_url();
    let cause = root_cause(&e);
    if e.is_connect() {
        format!("connection failed: {cause}")
    } else if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_body() || e.is_decode() {
        format!("reading the body failed: {cause}")
    } else {
        format!("request failed: {cause}")
    }
}
