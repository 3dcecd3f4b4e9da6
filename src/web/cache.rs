//! Public responses rendered once per snapshot and then served from memory,
//! with a validator (`ETag`, 304 on `If-None-Match`) and a `Cache-Control`
//! that matches how often the data can change. Under a traffic spike every
//! request after the first is a lookup and a copy of `Bytes`. Compressed
//! copies (brotli, gzip) are made once per rendering too, on the first
//! request that asks for each, instead of once per request: with a bar a
//! day for every service the front page is large, and compressing it per
//! request would cost more than everything else a request does.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

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
    gzip: OnceLock<Bytes>,
    br: OnceLock<Bytes>,
}

/// A content coding the client accepts and we keep a copy in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Brotli,
    Gzip,
    Identity,
}

/// The best coding `Accept-Encoding` allows: brotli, then gzip, else none.
/// Honours `q=0` (refused) and `*`.
pub fn negotiate(request: &HeaderMap) -> Coding {
    let mut br = None;
    let mut gzip = None;
    let mut any = None;
    for value in request.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match name.as_str() {
                "br" => br = Some(q > 0.0),
                "gzip" | "x-gzip" => gzip = Some(q > 0.0),
                "*" => any = Some(q > 0.0),
                _ => {}
            }
        }
    }
    if br.or(any).unwrap_or(false) {
        Coding::Brotli
    } else if gzip.or(any).unwrap_or(false) {
        Coding::Gzip
    } else {
        Coding::Identity
    }
}

impl Rendered {
    /// The body in `coding` and the `Content-Encoding` to send with it.
    fn body(&self, coding: Coding) -> (Bytes, Option<&'static str>) {
        match coding {
            Coding::Identity => (self.body.clone(), None),
            Coding::Gzip => (
                self.gzip.get_or_init(|| gzip(&self.body)).clone(),
                Some("gzip"),
            ),
            Coding::Brotli => (
                self.br.get_or_init(|| brotli(&self.body)).clone(),
                Some("br"),
            ),
        }
    }
}

fn gzip(body: &[u8]) -> Bytes {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::new(6),
    );
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    Bytes::from(encoder.finish().unwrap_or_default())
}

fn brotli(body: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(body.len() / 5);
    {
        // Quality 5: most of brotli's gain at a fraction of its top cost.
        let mut encoder = brotli::CompressorWriter::new(&mut out, 64 * 1024, 5, 22);
        let _ = encoder.write_all(body);
    }
    Bytes::from(out)
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
                gzip: OnceLock::new(),
                br: OnceLock::new(),
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
    let vary = (header::VARY, HeaderValue::from_static("accept-encoding"));
    if fresh {
        return (
            StatusCode::NOT_MODIFIED,
            [
                (header::ETAG, rendered.etag.clone()),
                (header::CACHE_CONTROL, cache_control),
                vary,
            ],
        )
            .into_response();
    }
    let (body, encoding) = rendered.body(negotiate(request));
    let mut response = (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(rendered.content_type),
            ),
            (header::ETAG, rendered.etag.clone()),
            (header::CACHE_CONTROL, cache_control),
            vary,
        ],
        body,
    )
        .into_response();
    if let Some(encoding) = encoding {
        // The compression layer leaves a response with this header alone.
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> Coding {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).expect("header"),
        );
        negotiate(&headers)
    }

    #[test]
    fn brotli_first_then_gzip_and_refusals_are_honoured() {
        assert_eq!(negotiate(&HeaderMap::new()), Coding::Identity);
        assert_eq!(accept("gzip, deflate, br, zstd"), Coding::Brotli);
        assert_eq!(accept("gzip"), Coding::Gzip);
        assert_eq!(accept("br;q=0, gzip;q=0.5"), Coding::Gzip);
        assert_eq!(accept("gzip;q=0"), Coding::Identity);
        assert_eq!(accept("*"), Coding::Brotli);
        assert_eq!(accept("*;q=0, gzip"), Coding::Gzip);
        assert_eq!(accept("identity"), Coding::Identity);
    }

    #[test]
    fn compressed_copies_decompress_to_the_body() {
        let body = "<li>Checkout Operational</li>\n".repeat(500);
        let gz = gzip(body.as_bytes());
        let mut plain = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut plain)
            .expect("gunzip");
        assert_eq!(plain, body);
        let br = brotli(body.as_bytes());
        let mut plain = Vec::new();
        brotli::BrotliDecompress(&mut &br[..], &mut plain).expect("unbrotli");
        assert_eq!(plain, body.as_bytes());
        assert!(br.len() < body.len() / 10 && gz.len() < body.len() / 10);
    }
}
