//! Public responses rendered once per snapshot and then served from memory,
//! with a validator (`ETag`, 304 on `If-None-Match`) and a `Cache-Control`
//! that matches how often the data can change. Under a traffic spike every
//! request after the first is a lookup and a copy of `Bytes`. Compressed
//! copies (brotli, gzip) are made with each rendering, not per request:
//! compressing the front page costs more than everything else a request
//! does. While one request renders a new snapshot's page, requests that
//! arrive meanwhile get the previous rendering (at most one snapshot old)
//! instead of queueing behind it: under a spike the render is paid by one
//! request a snapshot, and the others never wait.

use std::collections::HashMap;
use std::collections::HashSet;
use std::io::Write;
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
    gzip: Bytes,
    br: Bytes,
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
            Coding::Gzip => (self.gzip.clone(), Some("gzip")),
            Coding::Brotli => (self.br.clone(), Some("br")),
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
    entries: Mutex<HashMap<String, Arc<Rendered>>>,
    /// Keys a request is rendering right now.
    rendering: Mutex<HashSet<String>>,
}

/// Marks `key` as being rendered until dropped.
struct Rendering<'a> {
    cache: &'a RenderCache,
    key: &'a str,
}

impl Drop for Rendering<'_> {
    fn drop(&mut self) {
        if let Ok(mut busy) = self.cache.rendering.lock() {
            busy.remove(self.key);
        }
    }
}

impl RenderCache {
    /// The latest rendering of `key`, whatever its snapshot.
    fn latest(&self, key: &str) -> Option<Arc<Rendered>> {
        self.entries.lock().ok()?.get(key).cloned()
    }

    /// Claims the rendering of `key`; `None` when a request already has it.
    fn claim<'a>(&'a self, key: &'a str) -> Option<Rendering<'a>> {
        let mut busy = self.rendering.lock().ok()?;
        busy.insert(key.to_owned())
            .then_some(Rendering { cache: self, key })
    }

    /// Keeps `rendered` unless a newer snapshot's rendering is there.
    fn put(&self, key: &str, rendered: Arc<Rendered>) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries
                .get(key)
                .is_none_or(|r| r.generation <= rendered.generation)
            {
                // Pages of services or incidents that left the snapshot
                // are not asked for again: forget what no snapshot of the
                // last ten minutes rendered.
                if entries.len() > 256 {
                    let horizon = rendered.generation - chrono::Duration::minutes(10);
                    entries.retain(|_, r| r.generation >= horizon);
                }
                entries.insert(key.to_owned(), rendered);
            }
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
    key: &str,
    content_type: &'static str,
    render: impl FnOnce(&Snapshot) -> Option<String>,
) -> Response {
    let generation = snapshot.generated_at;
    let latest = cache.latest(key);
    let rendered = match latest {
        Some(r) if r.generation >= generation => r,
        // Another request is rendering this snapshot: the previous one,
        // instead of waiting.
        Some(previous) if cache.rendering.lock().is_ok_and(|b| b.contains(key)) => previous,
        _ => {
            let _claim = cache.claim(key);
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
                gzip: gzip(body.as_bytes()),
                br: brotli(body.as_bytes()),
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

#[cfg(test)]
mod render_tests {
    use super::*;
    use crate::snapshot::Inputs;

    fn snapshot(at_secs: i64) -> Snapshot {
        let inputs = Inputs {
            summaries: Vec::new(),
            history: Default::default(),
            incidents: Vec::new(),
            maintenances: Vec::new(),
            recent_incidents: Vec::new(),
            recent_maintenances: Vec::new(),
        };
        let at = DateTime::from_timestamp(at_secs, 0).expect("time");
        Snapshot::from_inputs(inputs, "t", &[], at)
    }

    fn body(response: Response) -> HeaderValue {
        response.headers()[header::ETAG].clone()
    }

    #[test]
    fn a_request_during_a_render_gets_the_previous_rendering() {
        let cache = RenderCache::default();
        let none = HeaderMap::new();
        let first = snapshot(1);
        let tag1 = body(respond(&cache, &first, &none, 5, "/", HTML, |_| {
            Some("one".into())
        }));
        let second = snapshot(2);
        // Another request is rendering the second snapshot right now.
        let claim = cache.claim("/").expect("free");
        let during = respond(&cache, &second, &none, 5, "/", HTML, |_| {
            panic!("must not render twice at once")
        });
        assert_eq!(body(during), tag1, "the previous rendering, not a wait");
        drop(claim);
        let tag2 = body(respond(&cache, &second, &none, 5, "/", HTML, |_| {
            Some("two".into())
        }));
        assert_ne!(tag2, tag1);
        // A request still holding the first snapshot gets the newer page,
        // and never puts the older one back.
        let late = respond(&cache, &first, &none, 5, "/", HTML, |_| {
            panic!("newer rendering is there")
        });
        assert_eq!(body(late), tag2);
    }
}
