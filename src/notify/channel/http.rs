//! What the HTTP channels (webhook, Slack) share: the client, and how an
//! answer becomes a success, a retry or a refusal.

use std::time::Duration;

use super::error::SendError;

/// The HTTP client of every webhook and Slack attempt.
pub fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
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
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = response
        .headers()
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
