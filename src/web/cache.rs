//! Public responses rendered once per snapshot and then served from memory,
//! with a validator (`ETag`, 304 on `If-None-Match`) and a `Cache-Control`
//! that matches how often the data can change. Under a traffic spike every
//! request after the first is a lookup and a copy of `Bytes`. Compressed
//! copies (brotli, gzip) are made once per rendering, not per request
//! (compressing the front page costs more than everything else a request
//! does), and only in the codings clients have asked for: with the
//! rendering for a key some client asked in that coding before, or else by
//! the first request that asks. A document only API pollers read (plain,
//! or gzip) never pays for brotli, whose encoder zeroes most of a megabyte
//! for any body, however small.
//!
//! Rendering, hashing and compressing run on a background thread (below
//! the workers' priority, see [`crate::background`]), at most one per core and one per key at a time (single flight). While a key renders
//! for a new snapshot, requests that arrive meanwhile get the previous
//! rendering (at most one snapshot old) instead of queueing behind it; only
//! a key never rendered before makes them wait, for that one rendering.
//! The runtime's workers only ever look up and copy, so a burst of visitors
//! at the moment the page changes (an outage) cannot stop probing or
//! `/livez`.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tokio::sync::{watch, OnceCell, Semaphore};

use crate::snapshot::Snapshot;

pub const HTML: &str = "text/html; charset=utf-8";
pub const JSON: &str = "application/json";

struct Rendered {
    /// The snapshot it was rendered from.
    generation: DateTime<Utc>,
    body: Encoded,
    etag: HeaderValue,
    content_type: &'static str,
}

/// A body and its compressed copies, each made the first time it is
/// wanted, once (on a background thread), then shared by every request.
pub struct Encoded {
    body: Bytes,
    gzip: OnceCell<Bytes>,
    br: OnceCell<Bytes>,
}

impl Encoded {
    pub fn new(body: Bytes) -> Encoded {
        Encoded {
            body,
            gzip: OnceCell::new(),
            br: OnceCell::new(),
        }
    }

    fn cell(&self, coding: Coding) -> Option<(&OnceCell<Bytes>, &'static str)> {
        match coding {
            Coding::Identity => None,
            Coding::Gzip => Some((&self.gzip, "gzip")),
            Coding::Brotli => Some((&self.br, "br")),
        }
    }

    /// Makes the copy in `coding` now, on this thread (a background one),
    /// unless it is made.
    fn prepare(&self, coding: Coding) {
        if let Some((cell, _)) = self.cell(coding) {
            if !cell.initialized() {
                let _ = cell.set(encode(coding, &self.body).0);
            }
        }
    }

    /// The body in `coding` and the `Content-Encoding` to send it with. The
    /// first to ask for a coding not made yet compresses it on a
    /// background thread; the others wait for that copy without holding a
    /// thread.
    pub async fn get(
        &self,
        coding: Coding,
    ) -> Result<(Bytes, Option<&'static str>), crate::background::Lost> {
        let Some((cell, name)) = self.cell(coding) else {
            return Ok((self.body.clone(), None));
        };
        let body = cell
            .get_or_try_init(|| {
                let body = self.body.clone();
                crate::background::run(move || encode(coding, &body).0)
            })
            .await?;
        Ok((body.clone(), Some(name)))
    }
}

/// A content coding the client accepts and we keep a copy in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Brotli,
    Gzip,
    Identity,
}

impl Coding {
    /// Its bit in a set of codings (see [`Slot::wanted`]).
    fn bit(self) -> u8 {
        match self {
            Coding::Identity => 0,
            Coding::Gzip => 1,
            Coding::Brotli => 2,
        }
    }

    /// The compressed codings in `set`.
    fn in_set(set: u8) -> impl Iterator<Item = Coding> {
        [Coding::Gzip, Coding::Brotli]
            .into_iter()
            .filter(move |c| set & c.bit() != 0)
    }
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

fn gzip(body: &[u8]) -> Bytes {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::new(6),
    );
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    Bytes::from(encoder.finish().unwrap_or_default())
}

/// The smallest brotli window (`lgwin`, 10 to 22 bits, 16 B short of
/// 2^bits) that holds all of a body of `len` bytes.
fn window_bits(len: usize) -> u32 {
    let needed = (len + 16).next_power_of_two().trailing_zeros();
    needed.clamp(10, 22)
}

fn brotli(body: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(body.len() / 5);
    {
        // Quality 5: most of brotli's gain at a fraction of its top cost.
        // A window no larger than the body (it cannot refer further back
        // anyway): the encoder allocates and zeroes the whole window for
        // every body, 4 MB at the largest, for pages of tens of KB.
        let mut encoder =
            brotli::CompressorWriter::new(&mut out, 64 * 1024, 5, window_bits(body.len()));
        let _ = encoder.write_all(body);
    }
    Bytes::from(out)
}

/// `body` in `coding`, and the `Content-Encoding` to send it with: for the
/// responses made per request (`/metrics`, older history pages), compressed
/// on a background thread like the cached ones, never by the compression
/// layer on a worker (megabytes of `/metrics` held a worker for most of a
/// second).
pub fn encode(coding: Coding, body: &[u8]) -> (Bytes, Option<&'static str>) {
    match coding {
        Coding::Identity => (Bytes::copy_from_slice(body), None),
        Coding::Gzip => (gzip(body), Some("gzip")),
        Coding::Brotli => (brotli(body), Some("br")),
    }
}

/// `response` with its `Content-Encoding`, when compressed. The compression
/// layer leaves a response with this header alone.
pub fn with_encoding(mut response: Response, encoding: Option<&'static str>) -> Response {
    if let Some(encoding) = encoding {
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    response
}

/// What a rendering ended with: the page, or `None` when it failed (logged
/// by the renderer, answered 500).
type Outcome = Option<Arc<Rendered>>;

#[derive(Default)]
struct Slot {
    /// The newest rendering of this key.
    latest: Option<Arc<Rendered>>,
    /// The rendering under way, if any: its result is published here.
    rendering: Option<watch::Receiver<Option<Outcome>>>,
    /// The compressed codings clients asked for this key in (a set of
    /// [`Coding::bit`]s): each rendering makes those copies with the body.
    wanted: u8,
}

/// Renderings by key. The lock is held for a lookup or an insert, never
/// across rendering, hashing or compression, and no `Drop` takes it: a
/// rendering is finished (stored, its waiters woken) by the blocking task
/// that did it, which runs to the end even when the request that started
/// it has gone.
pub struct RenderCache {
    slots: Mutex<HashMap<String, Slot>>,
    /// Renderings at once: one per core. Beyond that they queue here, off
    /// the runtime's workers, instead of taking every core from probing.
    renderers: Arc<Semaphore>,
}

impl Default for RenderCache {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        RenderCache {
            slots: Mutex::new(HashMap::new()),
            renderers: Arc::new(Semaphore::new(cores)),
        }
    }
}

/// What a request does after one look at the cache.
enum Plan {
    Serve(Arc<Rendered>),
    /// Nothing to serve yet, and another request is rendering it.
    Wait(watch::Receiver<Option<Outcome>>),
    /// This request renders; others wait on (or are served before) it.
    /// With the previous rendering, kept to answer with should this one
    /// take longer than [`WAIT_FOR_OWN_RENDERING`], and the codings to
    /// make copies in.
    Render(watch::Sender<Option<Outcome>>, Option<Arc<Rendered>>, u8),
}

/// Longest a request waits for another's first rendering of a key before it
/// is answered 503 (the page is being built; try again).
const WAIT_FOR_RENDERING: Duration = Duration::from_secs(10);

/// Longest the request that started a rendering waits for it when there
/// is a previous one to answer with. Renderings queue behind each other on
/// the cores (a mass outage changes every document every second); a
/// visitor gets the page one snapshot old rather than wait for the queue.
const WAIT_FOR_OWN_RENDERING: Duration = Duration::from_secs(1);

impl RenderCache {
    /// Serve what is there for `generation`, wait for the rendering under
    /// way, or claim the rendering. At most one rendering of a key at a
    /// time (single flight): while one runs, every other request gets the
    /// previous rendering, or waits for this one if there is none.
    fn plan(&self, key: &str, generation: DateTime<Utc>, coding: Coding) -> Plan {
        let mut slots = self.slots.lock();
        if let Some(slot) = slots.get_mut(key) {
            slot.wanted |= coding.bit();
            match (&slot.latest, &slot.rendering) {
                (Some(r), _) if r.generation >= generation => return Plan::Serve(r.clone()),
                (Some(previous), Some(_)) => return Plan::Serve(previous.clone()),
                (None, Some(rendering)) => return Plan::Wait(rendering.clone()),
                _ => {}
            }
        }
        let (publish, rendering) = watch::channel(None);
        let slot = slots.entry(key.to_owned()).or_default();
        slot.wanted |= coding.bit();
        slot.rendering = Some(rendering);
        Plan::Render(publish, slot.latest.clone(), slot.wanted)
    }

    /// Stores a finished rendering (unless a newer snapshot's is there) and
    /// frees the key for the next rendering.
    fn finish(&self, key: &str, outcome: &Outcome) {
        let mut slots = self.slots.lock();
        if let Some(rendered) = outcome {
            // Pages of services or incidents that left the snapshot are not
            // asked for again: forget what no snapshot of the last ten
            // minutes rendered.
            if slots.len() > 256 {
                let horizon = rendered.generation - chrono::Duration::minutes(10);
                slots.retain(|k, slot| {
                    k == key
                        || slot.rendering.is_some()
                        || slot
                            .latest
                            .as_ref()
                            .is_some_and(|r| r.generation >= horizon)
                });
            }
        }
        let slot = slots.entry(key.to_owned()).or_default();
        slot.rendering = None;
        if let Some(rendered) = outcome {
            if slot
                .latest
                .as_ref()
                .is_none_or(|r| r.generation <= rendered.generation)
            {
                slot.latest = Some(rendered.clone());
            }
        }
    }

    /// Renders `key` on a background thread: the page, its validator and its
    /// copies in the codings `wanted`. Finishing happens on that thread too, so the
    /// key is freed even if this request is cancelled or `render` panics.
    #[allow(clippy::too_many_arguments)]
    async fn render(
        self: &Arc<Self>,
        key: &str,
        snapshot: Arc<Snapshot>,
        content_type: &'static str,
        publish: watch::Sender<Option<Outcome>>,
        previous: Option<Arc<Rendered>>,
        wanted: u8,
        render: impl FnOnce(&Snapshot) -> Option<String> + Send + 'static,
    ) -> Option<Outcome> {
        let mut waiting = publish.subscribe();
        let cache = self.clone();
        let key = key.to_owned();
        // The permit is awaited in a task of its own, so a request that
        // goes away while queued still leaves the rendering to happen.
        tokio::spawn(async move {
            let permit = cache.renderers.clone().acquire_owned().await.ok();
            let job = {
                let cache = cache.clone();
                let key = key.clone();
                move || {
                    let rendered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        render(&snapshot).map(|body| {
                            let rendered = Rendered::new(snapshot.generated_at, body, content_type);
                            for coding in Coding::in_set(wanted) {
                                rendered.body.prepare(coding);
                            }
                            Arc::new(rendered)
                        })
                    }))
                    .unwrap_or_else(|_| {
                        tracing::error!(key = %key, "rendering panicked");
                        None
                    });
                    cache.finish(&key, &rendered);
                    let _ = publish.send(Some(rendered));
                    drop(permit);
                }
            };
            if let Err(e) = crate::background::run(job).await {
                // The job catches the render's own panic: only when the
                // threads are gone. Free the key.
                tracing::error!(error = %e, "rendering task failed");
                cache.finish(&key, &None);
            }
        });
        match previous {
            None => wait(&mut waiting).await,
            Some(previous) => {
                let outcome =
                    tokio::time::timeout(WAIT_FOR_OWN_RENDERING, waiting.wait_for(Option::is_some))
                        .await;
                match outcome.map(|o| o.map(|o| o.clone())) {
                    Ok(Ok(Some(Some(rendered)))) => Some(Some(rendered)),
                    // Still rendering, failed (logged) or lost: the
                    // previous one, which is there to serve.
                    _ => Some(Some(previous)),
                }
            }
        }
    }
}

/// The outcome of a rendering under way; `None` when it was lost or took
/// longer than [`WAIT_FOR_RENDERING`].
async fn wait(rendering: &mut watch::Receiver<Option<Outcome>>) -> Option<Outcome> {
    let outcome =
        tokio::time::timeout(WAIT_FOR_RENDERING, rendering.wait_for(Option::is_some)).await;
    match outcome {
        Ok(Ok(outcome)) => outcome.clone(),
        _ => None,
    }
}

impl Rendered {
    /// Hashes `body`: done once per rendering on a background thread,
    /// which then makes the copies clients want (see [`Slot::wanted`]).
    fn new(generation: DateTime<Utc>, body: String, content_type: &'static str) -> Rendered {
        let digest = Sha256::digest(body.as_bytes());
        let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        // Weak: the same entity may go out gzip'd, brotli'd or plain.
        let etag = HeaderValue::from_str(&format!("W/\"{hex}\""))
            .unwrap_or_else(|_| HeaderValue::from_static("W/\"0\""));
        Rendered {
            generation,
            body: Encoded::new(Bytes::from(body)),
            etag,
            content_type,
        }
    }
}

/// Serves `key` from the cache if it was rendered from this snapshot, else
/// renders it off the runtime's workers (see [`RenderCache::plan`]).
/// Answers 500 when the rendering failed (logged by `render`), 503 with
/// `Retry-After` when a first rendering takes too long.
pub async fn respond(
    cache: &Arc<RenderCache>,
    snapshot: Arc<Snapshot>,
    request: &HeaderMap,
    max_age_secs: u64,
    key: &str,
    content_type: &'static str,
    render: impl FnOnce(&Snapshot) -> Option<String> + Send + 'static,
) -> Response {
    let coding = negotiate(request);
    let outcome = match cache.plan(key, snapshot.generated_at, coding) {
        Plan::Serve(rendered) => Some(Some(rendered)),
        Plan::Wait(mut rendering) => wait(&mut rendering).await,
        Plan::Render(publish, previous, wanted) => {
            cache
                .render(
                    key,
                    snapshot,
                    content_type,
                    publish,
                    previous,
                    wanted,
                    render,
                )
                .await
        }
    };
    let rendered = match outcome {
        Some(Some(rendered)) => rendered,
        Some(None) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "Internal error\n").into_response()
        }
        None => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "2")],
                "The page is being built; try again shortly.\n",
            )
                .into_response()
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
    // Made with the rendering when a client asked this key in this coding
    // before; else now, once, by this request. Should that fail (the
    // background threads gone), the body as it is.
    let (body, encoding) = match rendered.body.get(coding).await {
        Ok(encoded) => encoded,
        Err(_) => (rendered.body.body.clone(), None),
    };
    let response = (
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
    with_encoding(response, encoding)
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
    fn the_brotli_window_holds_the_body_and_no_more() {
        assert_eq!(window_bits(0), 10);
        assert_eq!(window_bits(1_000), 10);
        assert_eq!(window_bits(1_009), 11);
        assert_eq!(window_bits(40_000), 16);
        assert_eq!(window_bits((1 << 16) - 16), 16);
        assert_eq!(window_bits((1 << 16) - 15), 17);
        assert_eq!(window_bits(50 << 20), 22);
        // And what it makes reads back whole, small and large.
        for len in [0usize, 100, 70_000, 5 << 20] {
            let body: Vec<u8> = (0..len)
                .map(|i| (i % 251) as u8 ^ (i / 7000) as u8)
                .collect();
            let mut back = Vec::new();
            brotli::BrotliDecompress(&mut &brotli(&body)[..], &mut back).expect("valid brotli");
            assert_eq!(back, body, "{len}");
        }
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
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn snapshot(at_secs: i64) -> Arc<Snapshot> {
        let inputs = Inputs {
            summaries: Default::default(),
            last_checks: Default::default(),
            history: Default::default(),
            incidents: Vec::new(),
            maintenances: Vec::new(),
            recent_incidents: Vec::new(),
            recent_maintenances: Vec::new(),
            locations: Vec::new(),
        };
        let at = DateTime::from_timestamp(at_secs, 0).expect("time");
        Arc::new(Snapshot::from_inputs(inputs, "t", &[], at))
    }

    fn etag(response: &Response) -> HeaderValue {
        response.headers()[header::ETAG].clone()
    }

    /// A cache holding `/` rendered from the first snapshot, and its tag.
    async fn first_page_rendered() -> (Arc<RenderCache>, HeaderValue) {
        let cache = Arc::new(RenderCache::default());
        let first = respond(&cache, snapshot(1), &HeaderMap::new(), 5, "/", HTML, |_| {
            Some("one".into())
        })
        .await;
        let tag = etag(&first);
        (cache, tag)
    }

    /// A render that takes a while and counts its calls.
    fn slow(
        calls: &Arc<AtomicUsize>,
        text: &'static str,
    ) -> impl FnOnce(&Snapshot) -> Option<String> + Send + 'static {
        let calls = calls.clone();
        move |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(100));
            Some(text.to_owned())
        }
    }

    // The deadlock of issue 21 needed two requests for a key that was being
    // rendered: dozens at once, on a cold cache and at a snapshot's turn.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_render_once_and_all_are_answered() {
        let cache = Arc::new(RenderCache::default());
        let calls = Arc::new(AtomicUsize::new(0));
        for (generation, text) in [(1, "one"), (2, "two")] {
            let before = calls.load(Ordering::SeqCst);
            let snap = snapshot(generation);
            let mut requests = tokio::task::JoinSet::new();
            for _ in 0..48 {
                let (cache, snap, render) = (cache.clone(), snap.clone(), slow(&calls, text));
                requests.spawn(async move {
                    respond(&cache, snap, &HeaderMap::new(), 5, "/", HTML, render).await
                });
            }
            let answered = tokio::time::timeout(Duration::from_secs(10), async {
                let mut codes = Vec::new();
                while let Some(r) = requests.join_next().await {
                    codes.push(r.expect("request task").status());
                }
                codes
            })
            .await
            .expect("every request is answered");
            assert_eq!(answered.len(), 48);
            assert!(
                answered.iter().all(|c| *c == StatusCode::OK),
                "{answered:?}"
            );
            assert_eq!(
                calls.load(Ordering::SeqCst) - before,
                1,
                "one rendering per snapshot"
            );
        }
    }

    /// The newest rendering of `key`.
    fn latest(cache: &RenderCache, key: &str) -> Arc<Rendered> {
        let slots = cache.slots.lock();
        slots[key].latest.clone().expect("rendered")
    }

    /// `/` asked for without compression from snapshot `at`, rendered as
    /// `page` if it must be.
    async fn rendered_plainly(cache: &Arc<RenderCache>, at: i64, page: &str) -> Response {
        let page = page.to_owned();
        respond(
            cache,
            snapshot(at),
            &HeaderMap::new(),
            5,
            "/",
            HTML,
            move |_| Some(page),
        )
        .await
    }

    #[tokio::test]
    async fn copies_are_made_in_the_codings_asked_for_and_then_with_each_rendering() {
        let cache = Arc::new(RenderCache::default());
        let page = "<li>Checkout Operational</li>\n".repeat(200);
        let plain = rendered_plainly(&cache, 1, &page).await;
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        let first = latest(&cache, "/");
        assert!(
            !first.body.br.initialized() && !first.body.gzip.initialized(),
            "nobody asked for a compressed copy"
        );
        // The first to ask for brotli makes it, once; it reads back whole.
        let mut br = HeaderMap::new();
        br.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("br"));
        let asked = respond(&cache, snapshot(1), &br, 5, "/", HTML, |_| {
            panic!("rendered already")
        })
        .await;
        assert_eq!(asked.headers()[header::CONTENT_ENCODING], "br");
        let body = axum::body::to_bytes(asked.into_body(), 1 << 20)
            .await
            .expect("body");
        let mut back = Vec::new();
        brotli::BrotliDecompress(&mut &body[..], &mut back).expect("valid brotli");
        assert_eq!(back, page.as_bytes());
        assert!(first.body.br.initialized() && !first.body.gzip.initialized());
        // The next snapshot's rendering makes the brotli copy with the body
        // (a client asked for it before), and still no gzip.
        let _ = rendered_plainly(&cache, 2, &page).await;
        let second = latest(&cache, "/");
        assert!(!Arc::ptr_eq(&first, &second));
        assert!(second.body.br.initialized() && !second.body.gzip.initialized());
    }

    #[tokio::test]
    async fn a_request_during_a_render_gets_the_previous_rendering() {
        let (cache, tag1) = first_page_rendered().await;
        let none = HeaderMap::new();
        // Another request is rendering the second snapshot right now.
        let Plan::Render(publish, _, _) =
            cache.plan("/", snapshot(2).generated_at, Coding::Identity)
        else {
            panic!("the key was free")
        };
        let during = respond(&cache, snapshot(2), &none, 5, "/", HTML, |_| {
            panic!("must not render twice at once")
        })
        .await;
        assert_eq!(etag(&during), tag1, "the previous rendering, not a wait");
        cache.finish("/", &None);
        drop(publish);
        let second = respond(&cache, snapshot(2), &none, 5, "/", HTML, |_| {
            Some("two".into())
        })
        .await;
        let tag2 = etag(&second);
        assert_ne!(tag2, tag1);
        // A request still holding the first snapshot gets the newer page,
        // and never puts the older one back.
        let late = respond(&cache, snapshot(1), &none, 5, "/", HTML, |_| {
            panic!("newer rendering is there")
        })
        .await;
        assert_eq!(etag(&late), tag2);
    }

    #[tokio::test]
    async fn the_request_that_renders_waits_at_most_a_second_when_it_has_a_previous_page() {
        let (cache, tag1) = first_page_rendered().await;
        let none = HeaderMap::new();
        // The next snapshot's rendering takes long (a queue of them during
        // a mass outage): its requester is answered with the previous one.
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let asked = std::time::Instant::now();
        let slow_one = respond(&cache, snapshot(2), &none, 5, "/", HTML, move |_| {
            let _ = hold.recv_timeout(Duration::from_secs(20));
            Some("two".into())
        })
        .await;
        assert_eq!(etag(&slow_one), tag1, "the previous page, not a wait");
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "{:?}",
            asked.elapsed()
        );
        // The rendering goes on, and is what the next requests get.
        release.send(()).expect("the rendering waits");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let next = respond(&cache, snapshot(2), &none, 5, "/", HTML, |_| {
                panic!("the second snapshot is rendered once")
            })
            .await;
            if etag(&next) != tag1 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "never finished");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_panicking_render_answers_500_and_frees_the_key() {
        let cache = Arc::new(RenderCache::default());
        let none = HeaderMap::new();
        let failed = respond(&cache, snapshot(1), &none, 5, "/", HTML, |_| panic!("bug")).await;
        assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let again = respond(&cache, snapshot(1), &none, 5, "/", HTML, |_| {
            Some("ok".into())
        })
        .await;
        assert_eq!(again.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_cancelled_request_still_finishes_its_rendering() {
        let cache = Arc::new(RenderCache::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let none = HeaderMap::new();
        let started = respond(&cache, snapshot(1), &none, 5, "/", HTML, slow(&calls, "x"));
        // The visitor goes away before the page is built.
        assert!(tokio::time::timeout(Duration::from_millis(10), started)
            .await
            .is_err());
        let next = respond(&cache, snapshot(1), &HeaderMap::new(), 5, "/", HTML, |_| {
            panic!("the first rendering is still under way or done")
        })
        .await;
        assert_eq!(next.status(), StatusCode::OK);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
