//! `[[location]]` and a service's `locations`: probing from several places,
//! with a quorum deciding the state.

use std::fmt;

/// The name of the main server's own location unless `server.location`
/// says otherwise.
pub const DEFAULT_LOCATION: &str = "local";

/// A place an agent probes from (`beacon agent --location NAME`), and the
/// token it proves itself with (from the environment, never printed).
#[derive(Clone, PartialEq, Eq)]
pub struct LocationConfig {
    pub name: String,
    pub token: String,
}

impl fmt::Debug for LocationConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocationConfig")
            .field("name", &self.name)
            .field("token", &"***")
            .finish()
    }
}

/// Where one service is checked from, and how many must agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locations {
    /// Every location that probes it, in the order configured.
    pub names: Vec<String>,
    /// Locations that must see it down (of those reporting) for it to be
    /// down; by default a majority.
    pub quorum: u32,
    /// The index in `names` of the main server's own location, when it
    /// probes the service too.
    pub local: Option<usize>,
}

impl Locations {
    /// A majority of `n` locations.
    pub fn majority(n: usize) -> u32 {
        (n / 2 + 1) as u32
    }
}

/// The services each agent is given, as TOML the agent validates the same
/// way `serve` does (`[[group]]` and `[[service]]` tables, secrets already
/// substituted). Built once per config.
#[derive(Clone, Default, PartialEq)]
pub struct Assignments {
    /// By location name: the document's text, and its ETag.
    pub by_location: std::collections::BTreeMap<String, Assignment>,
}

#[derive(Clone, PartialEq)]
pub struct Assignment {
    pub etag: String,
    /// TOML holding credentials: never logged, sent only to the location's
    /// agent over its token.
    pub toml: String,
    pub services: usize,
}

impl fmt::Debug for Assignments {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.by_location
                    .iter()
                    .map(|(name, a)| (name, format!("{} services, {}", a.services, a.etag))),
            )
            .finish()
    }
}
