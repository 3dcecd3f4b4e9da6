//! `beacon check-config`: validate, then say what would be monitored. It
//! never prints a secret: URLs appear as scheme, host and port, and values
//! from `${VAR}` as `***` (see [`crate::redact`]).

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use crate::config::{ChannelKind, Config};
use crate::redact;

pub fn run(config_path: Option<&Path>) -> ExitCode {
    match super::load(config_path) {
        Ok(config) if super::print_stdout(&summary(&config)) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            super::print_stderr(&format!(
                "error: {e}\nTry: fix the lines above, then run `beacon check-config --config FILE` again.\n"
            ));
            ExitCode::FAILURE
        }
    }
}

/// What would be monitored, and where results and alerts go.
fn summary(config: &Config) -> String {
    let mut out = String::new();
    // (Writing to a String cannot fail.)
    let _ = writeln!(out, "{}: OK", config.source);
    let _ = writeln!(out, "  listen:  {}", config.server.listen);
    let _ = writeln!(out, "  store:   {}", config.storage.url);
    if let Some(direct) = &config.storage.direct_url {
        let _ = writeln!(out, "  direct:  {direct} (migrations, locks, pg_dump)");
    }
    if let Some(b) = &config.backup {
        let _ = writeln!(
            out,
            "  backups: {}{}, {}",
            b.target,
            b.endpoint
                .as_deref()
                .map(|e| format!(" at {}", redact::url_text(e)))
                .unwrap_or_default(),
            b.schedule
                .as_deref()
                .map(|s| format!("schedule \"{s}\""))
                .unwrap_or_else(|| "no schedule (beacon backup run)".to_string()),
        );
    }
    if config.server.watch_self {
        let _ = writeln!(out, "  watching itself at /readyz (watch_self = true)");
    }
    if !config.locations.is_empty() {
        let agents: Vec<String> = config
            .locations
            .iter()
            .map(|l| {
                let n = config
                    .assignments
                    .by_location
                    .get(&l.name)
                    .map_or(0, |a| a.services);
                format!("{} ({n} service(s))", l.name)
            })
            .collect();
        let _ = writeln!(
            out,
            "  locations: {} (this server), agents at {}",
            config.server.location,
            agents.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "  {} service(s), {} group(s):",
        config.services.len(),
        config.groups.len()
    );
    for s in &config.services {
        let _ = writeln!(
            out,
            "  - {} [{}]{}{} {} every {}, timeout {}, down after {} failure(s), up after {} success(es)\n      {}",
            s.name,
            s.slug,
            s.group.as_deref().map(|g| format!(" in {g}")).unwrap_or_default(),
            if s.public { "" } else { " (private)" },
            s.kind.as_str(),
            humantime::format_duration(s.interval),
            humantime::format_duration(s.timeout),
            s.failure_threshold,
            s.success_threshold,
            redact::url(&s.url),
        );
        if let Some(l) = &s.locations {
            let _ = writeln!(
                out,
                "      checked from {}; down when {} of them agree",
                l.names.join(", "),
                l.quorum
            );
        }
        for d in &s.dependencies {
            let _ = writeln!(
                out,
                "      depends on {} ({}, timeout {}): {}",
                d.name,
                d.kind.as_str(),
                humantime::format_duration(d.timeout),
                redact::url(&d.url)
            );
        }
    }
    for c in &config.notify {
        let target = match &c.kind {
            ChannelKind::Webhook { url, .. } | ChannelKind::Slack { url } => redact::url(url),
            ChannelKind::Email(e) => format!("{} to {}", e.host, e.to.join(", ")),
        };
        let _ = writeln!(
            out,
            "  alerts: {} ({} → {target}), {} event(s){}, min state {}",
            c.name,
            c.kind.as_str(),
            c.events.len(),
            if c.services.is_empty() && c.groups.is_empty() {
                String::new()
            } else {
                format!(
                    " for {}",
                    c.services
                        .iter()
                        .chain(c.groups.iter())
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
            c.min_state
        );
    }
    out
}
