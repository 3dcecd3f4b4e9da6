use std::path::Path;

use anyhow::Context;

use crate::store::Store;

pub async fn run(config_path: Option<&Path>) -> anyhow::Result<()> {
    let config = super::load(config_path)?;
    let store = Store::open(&config.storage).await?;
    let before = store.schema_version().await.ok().flatten();
    store
        .migrate()
        .await
        .with_context(|| format!("migrating {}", config.storage.url))?;
    let after = store.schema_version().await?.unwrap_or_default();
    match before {
        Some(v) if v == after => {
            println!("{}: schema already at version {after}", config.storage.url)
        }
        _ => println!("{}: schema migrated to version {after}", config.storage.url),
    }
    store.close().await;
    Ok(())
}
