//! What the HTTP channels (webhook, Slack) share: the client, and how an
//! answer becomes a success, a retry or a refusal.

use std::time::Duration;

use super::error::SendError;

/// The HTTP client of every webhook and Slack attempt.
pub fn client() -> reqwest::Result<reqwest::Client> {
    crate::trust::with_system_roots(reqwest::Client::builder())
        .user_agent(concat!("beacon/", env!("CARGO_PKG_VERSION")))
        // A webhook that redirects is misconfigured; following it could
        // send the body (and signature) somewhere unintended.
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// Sends `request`: 2xx is success; 5xx, 408 and 429 (with its
/// `Retry-After` in seconds) are worth a retry; any other answer is final.
pub async fn post(request: reqwest::RequestBuilder) -> Result<(), SendError> {
    let response = request.send().await.map_err(|e| SendError::Transient {
        // Without the URL: a Slack webhook's path is its secret.
        error: e.without_url().to_string(),
        retry_after: None,
    })?;
    answer(response.status(), response.headers())
}

/// What an answer means: 2xx is success; 5xx, 408 and 429 (with its
/// `Retry-After` in seconds) are worth a retry; any other answer is final.
fn answer(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
) -> Result<(), SendError> {
    if status.is_success() {
        return Ok(());
    }
    let retry_after = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let error = format!("the receiver answered HTTP {}", status.as_u16());
    if status.is_server_error()
        || status == reqwest::StatusCode::REQUEST_TIMEOUT
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
    {
        Err(SendError::Transient { error, retry_after })
    } else {
        Err(SendError::Permanent(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
    use reqwest::StatusCode;

    /// What an answer became: `None` success, `Some((retry, after))`.
    type Meaning = Option<(bool, Option<u64>)>;

    #[test]
    fn each_answer_is_a_success_a_retry_or_a_refusal() {
        let cases: [(u16, Option<&str>, Meaning); 11] = [
            (200, None, None),
            (204, None, None),
            (202, Some("30"), None),
            (500, None, Some((true, None))),
            (503, Some("120"), Some((true, Some(120)))),
            (429, Some(" 7 "), Some((true, Some(7)))),
            // An HTTP date is not read: the notifier's own backoff applies.
            (
                429,
                Some("Wed, 21 Oct 2026 07:28:00 GMT"),
                Some((true, None)),
            ),
            (408, None, Some((true, None))),
            (400, None, Some((false, None))),
            (404, Some("30"), Some((false, None))),
            // A redirect is not followed (see `client`): refused for good.
            (301, None, Some((false, None))),
        ];
        for (code, retry_after, expected) in cases {
            let mut headers = HeaderMap::new();
            if let Some(v) = retry_after {
                headers.insert(RETRY_AFTER, HeaderValue::from_static(v));
            }
            let status = StatusCode::from_u16(code).expect("status");
            let got = match answer(status, &headers) {
                Ok(()) => None,
                Err(SendError::Transient { error, retry_after }) => {
                    assert_eq!(error, format!("the receiver answered HTTP {code}"));
                    Some((true, retry_after.map(|d| d.as_secs())))
                }
                Err(SendError::Permanent(error)) => {
                    assert_eq!(error, format!("the receiver answered HTTP {code}"));
                    Some((false, None))
                }
            };
            assert_eq!(got, expected, "HTTP {code}, Retry-After {retry_after:?}");
        }
    }
}
