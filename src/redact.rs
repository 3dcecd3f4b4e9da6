//! What beacon shows of a secret: nothing.
//!
//! Two rules hold wherever text leaves the process (the command line, logs,
//! stored errors, `/health`, `/metrics`):
//! - a URL is shown as its scheme, host and port only ([`url`],
//!   [`url_text`]): a user name, a password, a path or a query may each be
//!   a credential (a Slack webhook's path is its token, `?sig=` signs a URL);
//! - a value that came from `${VAR}` in the config is never shown: the
//!   config loader [`remember`]s each one, and [`scrub`] replaces it with
//!   `***` in the command line's output and errors and in every log line.

use std::borrow::Cow;
use std::sync::{PoisonError, RwLock};

/// What a hidden value is replaced with.
pub const HIDDEN: &str = "***";

/// Values shorter than this are not hidden by [`scrub`]: a port, `true` or
/// `30s` is no secret, and replacing it everywhere would garble messages.
pub const MIN_SECRET_LEN: usize = 6;

/// `scheme://host[:port]`: the only part of a URL that is ever shown.
/// A URL without a host (`mailto:`, `file:///x`) shows its scheme only.
pub fn url(u: &url::Url) -> String {
    match (u.host(), u.port()) {
        (Some(host), Some(port)) => format!("{}://{host}:{port}", u.scheme()),
        (Some(host), None) => format!("{}://{host}", u.scheme()),
        (None, _) => format!("{}:", u.scheme()),
    }
}

/// [`url`] of a URL as written; text that is no URL is never shown, since
/// nobody can tell which part of it is the secret.
pub fn url_text(raw: &str) -> String {
    match url::Url::parse(raw.trim()) {
        Ok(u) => url(&u),
        Err(_) => "<not a valid URL>".to_string(),
    }
}

/// Every value hidden by [`scrub`], longest first (so that a secret holding
/// another is replaced whole). A lookup holds the lock, nothing more.
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Hides `values` (those from `${VAR}`) from now on, in this process. Also
/// hides them as `{:?}` and JSON write them, with quotes and backslashes
/// escaped.
pub fn remember<I: IntoIterator<Item = String>>(values: I) {
    let mut secrets = SECRETS.write().unwrap_or_else(PoisonError::into_inner);
    for value in values {
        let escaped = value.escape_debug().to_string();
        for form in [value, escaped] {
            if form.len() >= MIN_SECRET_LEN && !secrets.contains(&form) {
                secrets.push(form);
            }
        }
    }
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// `text` with every remembered secret replaced by `***`.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let secrets = SECRETS.read().unwrap_or_else(PoisonError::into_inner);
    hide(text, secrets.iter().map(String::as_str))
}

/// `text` with each of `secrets` (longest first) replaced by `***`.
fn hide<'t, 's>(text: &'t str, secrets: impl Iterator<Item = &'s str>) -> Cow<'t, str> {
    let mut out = Cow::Borrowed(text);
    for secret in secrets {
        if !secret.is_empty() && out.contains(secret) {
            out = Cow::Owned(out.replace(secret, HIDDEN));
        }
    }
    out
}

/// An error and its causes as beacon prints them: each cause once, then
/// [`scrub`]bed. `{:#}` repeats a cause whenever a message already ends with
/// its source's text (thiserror's `"cannot open {url}: {source}"`), and the
/// AWS SDK's `DisplayErrorContext` adds a `Debug` dump of them all. An
/// `anyhow::Error` is passed as `err.as_ref()`.
pub fn error_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut cause = Some(err);
    while let Some(e) = cause {
        let message = e.to_string();
        if !text.contains(&message) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&message);
        }
        cause = e.source();
    }
    scrub(&text).into_owned()
}

/// A writer that [`scrub`]s what goes through it: logs go to stderr through
/// one. Each write is scrubbed whole (the log formatter writes a line at
/// once).
pub struct Scrubbed<W>(pub W);

impl<W: std::io::Write> std::io::Write for Scrubbed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match std::str::from_utf8(buf).map(scrub) {
            Ok(Cow::Owned(clean)) => self.0.write_all(clean.as_bytes())?,
            _ => self.0.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_show_scheme_host_and_port_only() {
        for (raw, shown) in [
            (
                "https://user:pw@api.example.com:8443/v1/x?sig=abc#f",
                "https://api.example.com:8443",
            ),
            ("https://tok3n@api.example.com/", "https://api.example.com"),
            ("postgres://u:pw@db/orders?sslmode=require", "postgres://db"),
            ("http://[::1]:9000/p", "http://[::1]:9000"),
            ("redis://:pw@cache:6379", "redis://cache:6379"),
            ("mailto:ops@example.com", "mailto:"),
            ("http://exa mple.com/?key=secret", "<not a valid URL>"),
            ("not a url with s3cret", "<not a valid URL>"),
        ] {
            assert_eq!(url_text(raw), shown, "{raw}");
        }
    }

    #[test]
    fn secrets_are_hidden_longest_first() {
        let hidden = hide(
            "a token-123456 and token-1234567890",
            ["token-1234567890", "token-123456"].into_iter(),
        );
        assert_eq!(hidden, "a *** and ***");
        assert!(matches!(
            hide("nothing here", ["abcdefg"].into_iter()),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn each_cause_is_printed_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot open the store at x: {source}")]
        struct Open {
            #[source]
            source: std::io::Error,
        }
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let err = anyhow::Error::new(Open { source: io }).context("starting");
        assert_eq!(
            error_text(err.as_ref()),
            "starting: cannot open the store at x: no such file"
        );
        assert_eq!(
            format!("{err:#}"),
            "starting: cannot open the store at x: no such file: no such file",
            "what {{:#}} prints"
        );
    }
}
