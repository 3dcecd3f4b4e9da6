//! Reading a request body with a cap, so that a client sent over the cap
//! reads the refusal.
//!
//! Refusing as soon as the cap is passed and closing the connection with
//! the rest of the body unread makes the kernel answer the client's next
//! bytes with a reset, and a reset can overtake the 413 on its way: the
//! client then sees "connection reset" instead of the refusal, now and
//! then, under load (Rocket #2783; RFC 9112 §9.6 asks servers for a
//! "lingering close" for this reason). So the rest of a body is read and
//! dropped, up to [`DRAIN_FACTOR`] times the cap and for at most
//! [`DRAIN_WITHIN`]; only a body beyond that is cut off.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap};
use futures_util::StreamExt;

/// How much of an over-cap body is still read (and dropped), as a multiple
/// of the cap.
const DRAIN_FACTOR: usize = 8;
/// How long an over-cap body is still read.
const DRAIN_WITHIN: Duration = Duration::from_secs(5);

/// Why a body was not read.
#[derive(Debug)]
pub(crate) enum Refused {
    /// Over the cap (by its `Content-Length` or by what arrived).
    TooLarge,
    /// The connection failed or was cut mid-body.
    Broken(String),
}

/// The body, if it is at most `cap` bytes. One over the cap is drained
/// (see the module's note) before the refusal goes out.
pub(crate) async fn read(headers: &HeaderMap, body: Body, cap: usize) -> Result<Bytes, Refused> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let drain_cap = cap.saturating_mul(DRAIN_FACTOR);
    if declared.is_some_and(|n| n > drain_cap as u64) {
        // Too large to be worth reading: refused at once.
        return Err(Refused::TooLarge);
    }
    let mut stream = body.into_data_stream();
    let mut read = Vec::with_capacity(declared.map_or(0, |n| (n as usize).min(cap)));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Refused::Broken(e.to_string()))?;
        if read.len() + chunk.len() > cap {
            let mut seen = read.len() + chunk.len();
            drop(read);
            let _ = tokio::time::timeout(DRAIN_WITHIN, async {
                while seen <= drain_cap {
                    match stream.next().await {
                        Some(Ok(chunk)) => seen += chunk.len(),
                        _ => break,
                    }
                }
            })
            .await;
            return Err(Refused::TooLarge);
        }
        read.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(read))
}

/// Marks a refusal of an over-cap body as the connection's last answer:
/// a client must not send its next request on a connection the server may
/// close (one whose body was cut off rather than drained).
pub(crate) fn last_on_connection(response: &mut axum::response::Response) {
    response.headers_mut().insert(
        header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
}
