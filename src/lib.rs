//! beacon: health checks and a public status page in one process.
//!
//! Layers, from the outside in (docs/ARCHITECTURE.md has the order and the
//! rules; `tests/layers.rs` fails on an import that breaks them):
//! - [`cli`]: the `beacon` subcommands, a few lines each over the library;
//! - [`startup`]: builds the app from a [`config::Config`] and runs it;
//! - [`web`]: HTTP handlers, reading the in-memory [`snapshot`];
//! - [`agent`]: `beacon agent`, probing from another location for a main server;
//! - [`monitor`]: schedules [`probe`]s and records their results;
//! - [`backup`], [`notify`]: backups to object storage, alerts from the outbox;
//! - [`cluster`]: replicas on one database: members, the leader's lease, who probes what;
//! - [`store`]: SQLite or PostgreSQL behind one sealed type;
//! - [`config`]: the validated, typed configuration;
//! - [`domain`]: the words all of them speak; it imports nothing of beacon's;
//! - [`background`]: low-priority threads for renders and snapshot builds;
//! - [`trust`]: the certificate authorities outgoing TLS trusts.

/// The library's own tests allocate as the binary does (src/main.rs), so
/// what they time is what the server spends.
#[cfg(test)]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod agent;
pub mod background;
pub mod backup;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod domain;
pub mod health;
pub mod metrics;
pub mod monitor;
pub mod notify;
pub mod probe;
pub mod redact;
pub mod snapshot;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod trust;
pub mod watchdog;
pub mod web;
