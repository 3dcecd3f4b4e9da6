//! From TOML text to a trusted [`Config`], collecting every problem.
//!
//! [`from_toml`] reads the document (`document.rs`), then hands each
//! section to its own file, all writing into one [`Problems`]; places and
//! "did you mean" are in `diagnostics.rs`. Sections are judged in the
//! order of the file, so problems are listed as a person reads it.

mod admin;
mod backup;
mod cluster;
mod diagnostics;
mod document;
mod fields;
mod groups;
pub mod locations;
mod monitor;
mod notify;
mod problems;
mod server;
pub(crate) use server::DEFAULT_LISTEN;
mod services;
mod storage;
mod subscriptions;

#[cfg(test)]
mod tests;

use document::Overrides;
use problems::Problems;

use crate::config::{Config, ConfigError, ConfigSource, EnvLookup};

pub(super) fn from_toml(
    text: &str,
    source: ConfigSource,
    env: EnvLookup<'_>,
) -> Result<Config, ConfigError> {
    let source_name = source.to_string();
    let mut root = document::parse(text, &source_name)?;
    let mut problems = Problems::default();
    let used = document::substitute_secrets(&mut root, env, &mut problems);
    let overrides = Overrides::apply(&mut root, env);
    let raw = document::read_raw(&mut root, &source_name, &used, &mut problems)?;

    let mut server = server::server(&raw.server, &overrides, &mut problems);
    let storage = storage::storage(&raw.storage, &overrides, &mut problems);
    server.limits = server::limits(&raw.server, &mut problems);
    let monitor = monitor::monitor(&raw.monitor, &mut problems);
    let admin = admin::admin(&raw.admin, &mut problems);
    let metrics = admin::metrics(&raw.metrics, &mut problems);
    let cluster = cluster::cluster(&raw.cluster, &mut problems);
    let backup = raw
        .backup
        .as_ref()
        .and_then(|b| backup::backup(b, env, overrides.note("backup.target"), &mut problems));
    server.location = locations::local(raw.server.location.as_deref(), &mut problems);
    let agents = locations::locations(&raw.locations, &server.location, &mut problems);
    let groups = groups::groups(&raw.groups, &mut problems);
    let places = locations::Places {
        local: &server.location,
        agents: &agents,
    };
    let services = services::services(
        &raw.services,
        &groups,
        &places,
        server.watch_self,
        &mut problems,
    );
    let has_public_url = server.public_url.is_some();
    let notify = notify::channels(
        &raw.notify,
        &services,
        &groups,
        has_public_url,
        &mut problems,
    );
    let subscriptions = raw
        .subscriptions
        .as_ref()
        .and_then(|raw| subscriptions::subscriptions(raw, &notify, has_public_url, &mut problems));

    if !problems.is_empty() {
        return Err(ConfigError::Invalid {
            source_name,
            problems: problems.into_messages(&used),
        });
    }
    let assignments = std::sync::Arc::new(locations::assignments(&root, &services, &agents));
    Ok(Config {
        server,
        storage,
        monitor,
        admin,
        metrics,
        cluster,
        backup,
        notify,
        groups,
        services,
        locations: agents,
        assignments,
        subscriptions,
        source,
    })
}
