use std::path::Path;
use std::process::ExitCode;

use crate::config::redact_url;

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
    ExitCode::SUCCESS
}
