//! The in-memory view every public page is rendered from.
//!
//! Pages never query the store: a refresher rebuilds one immutable
//! [`Snapshot`] from the store after the monitor writes (debounced) and on a
//! timer, and handlers read the latest `Arc<Snapshot>`. Because it is built
//! from the store alone, a replica that does not run the monitor can serve
//! the same page (see docs/ARCHITECTURE.md).
//!
//! `history.rs` keeps the services' past compactly; `incidents.rs` the
//! incidents shown, between rebuilds; `views.rs` holds the
//! snapshot's types; `build.rs` reads the store and builds a snapshot;
//! `refresher.rs` rebuilds and publishes it.

mod build;
mod history;
mod incidents;
mod refresher;
#[cfg(test)]
mod tests;
mod views;

pub use build::*;
pub use history::*;
pub use incidents::*;
pub use refresher::*;
pub use views::*;
