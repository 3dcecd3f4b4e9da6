//! Logging setup, in one place: human-readable by default, one JSON object a
//! line with `BEACON_LOG_FORMAT=json` (for Logstash, Loki, Elasticsearch).
//! Filter with `RUST_LOG` (default `info`). Logs go to stderr so that
//! commands with `--json` output keep stdout clean.

use tracing_subscriber::EnvFilter;

/// `extra` adds directives to the default filter (the store's, so this
/// module need not know its database driver: `store::LOG_DIRECTIVES`).
pub fn init(extra: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "info,{extra},tower_http=info,hyper=warn,reqwest=warn"
        ))
    });
    let json = std::env::var("BEACON_LOG_FORMAT")
        .map(|f| f.eq_ignore_ascii_case("json"))
        .unwrap_or(false);
    // Colours only for a person at a terminal, never into a log file.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        // Values from ${VAR} never reach a log line (see crate::redact).
        .with_writer(|| crate::redact::Scrubbed(std::io::stderr()));
    // A second init (tests) is harmless: the first subscriber stays.
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder.try_init()
    };
}
