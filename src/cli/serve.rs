use std::path::Path;

use crate::config::ConfigSource;
use crate::startup::{shutdown_signal, Application, Listening};

pub async fn run(config_path: Option<&Path>) -> anyhow::Result<()> {
    // Before anything can say "up": a SIGTERM from then on must stop cleanly.
    let stop = shutdown_signal();
    // `/livez` answers while a large config is parsed (config::early).
    let listening = config_path
        .and_then(|path| std::fs::read_to_string(path).ok())
        .and_then(|text| crate::config::listen_address(&text, &crate::config::process_env))
        .and_then(Listening::early);
    let path = config_path.map(Path::to_path_buf);
    let config = tokio::task::spawn_blocking(move || super::load(path.as_deref())).await??;
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
    let app = Application::build_listening(config, listening).await?;
    app.run_until_stopped(stop).await
}
