use std::path::Path;
use std::process::ExitCode;

use crate::config::{redact_url, ChannelKind};

pub fn run(config_path: Option<&Path>) -> ExitCode {
    let config = match super::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!(
                "Try: fix the lines above, then run `beacon check-config --config FILE` again."
            );
            return ExitCode::FAILURE;
        }
    };
    println!("{}: OK", config.source);
    println!("  listen:  {}", config.server.listen);
    println!("  store:   {}", config.storage.url);
    if config.server.watch_self {
        println!("  watching itself at /readyz (watch_self = true)");
    }
    println!(
        "  {} service(s), {} group(s):",
        config.services.len(),
        config.groups.len()
    );
    for s in &config.services {
        println!(
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
            redact_url(s.url.as_str()),
        );
        for d in &s.dependencies {
            println!(
                "      depends on {} ({}, timeout {}): {}",
                d.name,
                d.kind.as_str(),
                humantime::format_duration(d.timeout),
                redact_url(d.url.as_str())
            );
        }
    }
    for c in &config.notify {
        // Only the host: a webhook URL's path may be its secret.
        let target = match &c.kind {
            ChannelKind::Webhook { url, .. } | ChannelKind::Slack { url } => {
                url.host_str().unwrap_or("").to_string()
            }
            ChannelKind::Email(e) => format!("{} to {}", e.host, e.to.join(", ")),
        };
        println!(
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
    ExitCode::SUCCESS
}
