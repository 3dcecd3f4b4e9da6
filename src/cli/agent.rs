//! `beacon agent`: probe from another location for a main server.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;

use crate::agent::{self, Options};
use crate::startup::shutdown_signal;

#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// The main server's URL, e.g. https://status.example.com
    #[arg(long)]
    pub server: String,
    /// This agent's location: a [[location]] name in the main server's config.
    #[arg(long)]
    pub location: String,
    /// Where the agent's own /livez and /metrics listen.
    #[arg(long, default_value = "127.0.0.1:9465")]
    pub listen: SocketAddr,
    /// Results held at most while the main server cannot take them (the
    /// oldest are dropped past it, and counted).
    #[arg(long, default_value_t = 10_000)]
    pub buffer: usize,
    /// How often the assignment is asked for again, e.g. 10s.
    #[arg(long, default_value = "10s")]
    pub refresh: String,
}

pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let stop = shutdown_signal();
    let token = std::env::var("BEACON_AGENT_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .context("BEACON_AGENT_TOKEN is not set: the agent needs its location's token (the `token` of its [[location]] in the main server's config)")?;
    crate::redact::remember([token.clone()]);
    let server = url::Url::parse(&args.server)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .with_context(|| format!("--server \"{}\" is not an http(s) URL", args.server))?;
    let refresh: Duration = humantime::parse_duration(&args.refresh)
        .with_context(|| format!("--refresh \"{}\" is not a duration like 10s", args.refresh))?;
    if args.location.trim().is_empty() {
        anyhow::bail!("--location is empty: give the name of this agent's [[location]]");
    }
    if args.buffer == 0 {
        anyhow::bail!("--buffer must be at least 1");
    }
    tracing::info!(
        location = %args.location,
        server = %crate::redact::url(&server),
        buffer = args.buffer,
        "starting beacon agent {}",
        env!("CARGO_PKG_VERSION")
    );
    agent::run(
        Options {
            server,
            location: args.location.trim().to_string(),
            token,
            listen: args.listen,
            buffer: args.buffer,
            refresh: refresh.max(Duration::from_secs(1)),
        },
        stop,
    )
    .await
}
