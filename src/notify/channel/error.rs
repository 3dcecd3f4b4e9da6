//! The one way a channel fails, shared by every channel and read by the
//! notifier to decide between a retry and giving up.

use std::time::Duration;

/// Why an attempt failed, and whether another could succeed.
#[derive(Debug)]
pub enum SendError {
    /// The receiver refused it for good (HTTP 4xx other than 408/429, an
    /// SMTP 5xx, an address it rejects): retrying cannot help.
    Permanent(String),
    /// Worth another try: a connection failure, a timeout, 5xx, 429.
    Transient {
        error: String,
        retry_after: Option<Duration>,
    },
}

impl SendError {
    /// The receiver's or the transport's words, whichever kind it is.
    pub fn into_message(self) -> String {
        match self {
            SendError::Permanent(error) | SendError::Transient { error, .. } => error,
        }
    }
}
