//! The typed, validated config, one file per section. Everything here is
//! re-exported from [`crate::config`]; callers name `config::ServiceConfig`.
//! Nothing that can hold a secret (a URL with a password, a token, a
//! header value) prints it: those types have their own `Debug`.

pub mod access;
pub mod backup;
pub mod cluster;
pub mod location;
pub mod monitor;
pub mod notify;
pub mod server;
pub mod service;
pub mod storage;
pub mod subscriptions;
