//! End-to-end tests: the real app on 127.0.0.1:0, real HTTP targets, real
//! SQLite and PostgreSQL. One binary (faster to link than one per file).

mod helpers;

mod admin;
mod alerts;
mod backup_faults;
mod backups;
mod binary;
mod browser;
mod clients;
mod cluster;
mod config_props;
mod deploy;
mod drill;
mod hardening;
mod health_docs;
mod image;
mod incidents;
mod input_hygiene;
mod kubernetes;
mod lease;
mod locations;
mod maintenance;
mod metrics;
mod monitor;
mod own_health;
mod page;
mod probes;
mod reload;
mod restore;
mod rollups;
mod secrets;
mod services_sync;
mod statuspage;
mod subscriptions;
mod supervision;
