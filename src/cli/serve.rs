use std::path::Path;

use crate::config::ConfigSource;
use crate::startup::{shutdown_signal, Application};

pub async fn run(config_path: Option<&Path>) -> anyhow::Result<()> {
    // Before anything can say "up": a SIGTERM from then on must stop cleanly.
    let stop = shutdown_signal();
    let config = super::load(config_path)?;
    if config.source == ConfigSource::Embedded {
        tracing::info!(
            "no --config given: running the embedded default (SQLite in ./data, watching itself)"
        );
    }
    tracing::info!(
        config = %config.source,
        services = config.services.len(),
        store = %config.storage.url,
        "starting beacon {}",
        env!("CARGO_PKG_VERSION")
    );
    // Says "status page at http://…" once the page can be served.
    let app = Application::build(config).await?;
    app.run_until_stopped(stop).await
}
