//! Slack's incoming webhooks (and Mattermost's and Rocket.Chat's, which
//! take the same `{"text": …}`).

use url::Url;

use super::error::SendError;
use super::http::post;
use crate::notify::Message;

pub async fn send(http: &reqwest::Client, url: &Url, m: &Message) -> Result<(), SendError> {
    // Plain text with the link last: Slack, Mattermost and Rocket.Chat all
    // render it, and all unfurl the link.
    let body = serde_json::json!({ "text": format!("*{}*\n{}\n{}", m.title, m.text, m.url) });
    post(
        http.post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string()),
    )
    .await
}
