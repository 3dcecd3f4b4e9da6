//! What an HTTP probe sends and accepts: statuses, how to read the health
//! body, the method, headers and body.

use super::super::problems::Problems;
use crate::config::raw::RawService;
use crate::config::HttpOptions;
use crate::domain::Format;

/// `expected_status`: HTTP statuses (100-599); empty means any 2xx.
pub fn expected_status(s: &RawService, place: &str, problems: &mut Problems) -> Vec<u16> {
    let mut expected = Vec::new();
    for code in s.expected_status.iter().flatten() {
        match u16::try_from(*code) {
            Ok(c) if (100..=599).contains(&c) => expected.push(c),
            _ => problems.push(format!(
                "{place}: expected_status {code} is not an HTTP status (100-599)"
            )),
        }
    }
    expected
}

/// `format`: how the health body is read (`auto` detects it).
pub fn format(s: &RawService, place: &str, problems: &mut Problems) -> Format {
    match s.format.as_deref() {
        None => Format::Auto,
        Some(name) => Format::parse(name).unwrap_or_else(|| {
            problems.push(format!(
                "{place}: format \"{name}\" is not one of {}",
                Format::NAMES.join(", ")
            ));
            Format::Auto
        }),
    }
}

/// `method`, `headers`, `body`, `follow_redirects`, `tls_verify`,
/// `keep_alive`.
pub fn options(s: &RawService, place: &str, problems: &mut Problems) -> HttpOptions {
    let mut http = HttpOptions::default();
    if let Some(method) = &s.method {
        match reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()) {
            Ok(m) => http.method = m,
            Err(_) => problems.push(format!(
                "{place}: method \"{method}\" is not an HTTP method"
            )),
        }
    }
    for (name, value) in s.headers.iter().flatten() {
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            problems.push(format!(
                "{place}: headers: \"{name}\" is not a valid header name"
            ));
        } else if reqwest::header::HeaderValue::from_str(value).is_err() {
            // The value may be a secret: name the header, not the value.
            problems.push(format!(
                "{place}: headers: the value of \"{name}\" is not a valid header value"
            ));
        } else {
            http.headers.push((name.clone(), value.clone()));
        }
    }
    http.body = s.body.clone();
    http.follow_redirects = s.follow_redirects.unwrap_or(true);
    http.tls_verify = s.tls_verify.unwrap_or(true);
    http.keep_alive = s.keep_alive.unwrap_or(HttpOptions::DEFAULT_KEEP_ALIVE);
    http
}
