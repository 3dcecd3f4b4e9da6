//! The words beacon speaks in every layer: a service's state and a probe's
//! outcome, health documents and their dependencies, events, slugs, time
//! units and how durations and uptimes are written.
//!
//! This is the leaf of the house: it imports nothing of beacon's, and every
//! other module may import it (docs/ARCHITECTURE.md; `tests/layers.rs`
//! holds both to it).

pub mod condition;
pub mod event;
pub mod health;
pub mod input;
pub mod policy;
pub mod secret;
pub mod state;
pub mod text;
pub mod time;

pub use event::{
    BackupFacts, CertificateFacts, Event, EventKind, IncidentFacts, LocationFacts,
    MaintenanceFacts, ServiceFacts, ServiceRef,
};
pub use health::{Dependency, Format, Health, HealthDoc, MAX_DEPENDENCIES};
pub use state::{Outcome, State, INCIDENT_IMPACTS, INCIDENT_STATUSES};
