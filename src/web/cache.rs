//! Public responses rendered once per snapshot and then served from memory,
//! with a validator (`ETag`, 304 on `If-None-Match`) and a `Cache-Control`
//! that matches how often the data can change. Under a traffic spike every
//! request after the first is a lookup and a copy of `Bytes`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::snapshot::Snapshot;

pub const HTML: &str = "text/html; charset=utf-8";
pub const JSON: &str = "application/json";

struct Rendered {
    /// The snapshot it was rendered from.
    generation: DateTime<Utc>,
    body: Bytes,
    etag: HeaderValue,
    content_type: &'static str,
}

#[derive(Default)]
pub struct RenderCache {
    entries: Mutex<HashMap<&'static str, Arc<Rendered>>>,
}

impl RenderCache {
    fn get(&self, key: &'static str, generation: DateTime<Utc>) -> Option<Arc<Rendered>> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(key)
            .filter(|r| r.generation == generation)
            .cloned()
    }

    fn put(&self, key: &'static str, rendered: Arc<Rendered>) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(key, rendered);
        }
    }
}

/// Serves `key` from the cache if it was rendered from this snapshot, else
/// renders it (`None`: a rendering error, logged by `render`, answered 500).
pub fn respond(
    cache: &RenderCache,
    snapshot: &Snapshot,
    request: &HeaderMap,
    max_age_secs: u64,
    key: &'static str,
    content_type: &'static str,
    render: impl FnOnce(&Snapshot) -> Option<String>,
) -> Response {
    let generation = snapshot.generated_at;
    let rendered = match cache.get(key, generation) {
        Some(r) => r,
        None => {
            let Some(body) = render(snapshot) else {
                return (StatusCode::INTERNAL_SERVER_ERROR, "Internal error\n").into_response();
            };
            let digest = Sha256::digest(body.as_bytes());
            let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
            // Weak: the same entity may go out gzip'd, brotli'd or plain.
            let etag = HeaderValue::from_str(&format!("W/\"{hex}\""))
                .unwrap_or_else(|_| HeaderValue::from_static("W/\"0\""));
            let r = Arc::new(Rendered {
                generation,
                body: Bytes::from(body),
                etag,
                content_type,
            });
            cache.put(key, r.clone());
            r
        }
    };
    let cache_control = HeaderValue::from_str(&format!("public, max-age={max_age_secs}"))
        .unwrap_or_else(|_| HeaderValue::from_static("public, max-age=10"));
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| {
                    t == "*"
                        || t == rendered
                            .etag
                            .to_str()
                            .unwrap_or("")
                            .trim_start_matches("W/")
                })
        });
    if fresh {
        return (
            StatusCode::NOT_MODIFIED,
            [
                (header::ETAG, rendered.etag.clone()),
                (header::CACHE_CONTROL, cache_control),
            ],
        )
            .into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(rendered.content_type),
            ),
            (header::ETAG, rendered.etag.clone()),
            (header::CACHE_CONTROL, cache_control),
        ],
        rendered.body.clone(),
    )
        .into_response()
}
