//! `server.location`, `[[location]]` and each service's `locations` and
//! `quorum`; and the assignment each location's agent is given.

use std::collections::{BTreeMap, HashMap};

use super::diagnostics::item_place;
use super::problems::Problems;
use crate::config::raw::{RawLocation, RawService};
use crate::config::{
    Assignment, Assignments, LocationConfig, Locations, ServiceConfig, DEFAULT_LOCATION,
};

/// The shortest token a location may have: guessing one must be hopeless.
pub const MIN_TOKEN_LEN: usize = 32;

/// A location's name goes into a header (`User-Agent`), a metric label
/// and the page: short, and letters, digits, `-`, `_` or `.` only.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

const NAME_RULE: &str = "1 to 40 letters, digits, '-', '_' or '.'";

/// `server.location`: this server's own location.
pub fn local(raw: Option<&str>, problems: &mut Problems) -> String {
    let name = raw.map(str::trim).unwrap_or(DEFAULT_LOCATION);
    if !valid_name(name) {
        problems.push(format!(
            "server: location \"{name}\" is not a valid location name ({NAME_RULE})"
        ));
    }
    name.to_string()
}

/// `[[location]]`: unique names other than this server's own, each with a
/// token of at least [`MIN_TOKEN_LEN`] characters, no two alike.
pub fn locations(raw: &[RawLocation], local: &str, problems: &mut Problems) -> Vec<LocationConfig> {
    let mut out: Vec<LocationConfig> = Vec::new();
    // Every name given, valid or not, so a second use is named either way.
    let mut names: Vec<&str> = Vec::new();
    for (i, l) in raw.iter().enumerate() {
        let place = item_place("location", i, l.name.as_deref());
        let name = l.name.as_deref().map(str::trim).unwrap_or("");
        let before = problems.mark();
        if name.is_empty() {
            problems.push(format!("{place}: name is required"));
        } else if !valid_name(name) {
            problems.push(format!(
                "{place}: name \"{name}\" is not a valid location name ({NAME_RULE})"
            ));
        } else if name == local {
            problems.push(format!(
                "{place}: name \"{name}\" is this server's own location (server.location); an agent's location needs a name of its own"
            ));
        } else if let Some(first) = names.iter().position(|n| *n == name) {
            problems.push(format!(
                "{place}: name \"{name}\" is already used by location[{}]",
                first + 1
            ));
        }
        names.push(name);
        let token = l.token.as_deref().unwrap_or("");
        if token.is_empty() {
            problems.push(format!(
                "{place}: token is required (set it from the environment: token = \"${{BEACON_LOCATION_TOKEN}}\")"
            ));
        } else if token.chars().count() < MIN_TOKEN_LEN {
            problems.push(format!(
                "{place}: token is shorter than {MIN_TOKEN_LEN} characters (e.g. `openssl rand -hex 32`)"
            ));
        } else if out.iter().any(|o| o.token == token) {
            problems.push(format!(
                "{place}: token is the same as another location's; each location needs its own"
            ));
        }
        if !problems.grew_since(before) {
            out.push(LocationConfig {
                name: name.to_string(),
                token: token.to_string(),
            });
        }
    }
    out
}

/// Where the main server and its agents probe from: the names a service's
/// `locations` may use.
pub struct Places<'a> {
    pub local: &'a str,
    pub agents: &'a [LocationConfig],
}

/// A service's `locations` and `quorum`; `None` when only this server
/// probes it (unset, or just its own location).
pub fn service_locations(
    s: &RawService,
    place: &str,
    places: &Places<'_>,
    problems: &mut Problems,
) -> Option<Locations> {
    let Some(names) = &s.locations else {
        if s.quorum.is_some() {
            problems.push(format!(
                "{place}: quorum is set but locations is not (a quorum counts locations)"
            ));
        }
        return None;
    };
    let before = problems.mark();
    if names.is_empty() {
        problems.push(format!(
            "{place}: locations is empty; list at least one (\"{}\" is this server's own)",
            places.local
        ));
    }
    let mut seen: Vec<String> = Vec::new();
    for name in names {
        let name = name.trim();
        if seen.iter().any(|n| n == name) {
            problems.push(format!("{place}: locations lists \"{name}\" twice"));
        } else if name != places.local && !places.agents.iter().any(|a| a.name == name) {
            let known: Vec<String> = std::iter::once(places.local)
                .chain(places.agents.iter().map(|a| a.name.as_str()))
                .map(|n| format!("\"{n}\""))
                .collect();
            problems.push(format!(
                "{place}: locations names \"{name}\", which is not a location (known: {}; add a [[location]] for it)",
                known.join(", ")
            ));
        }
        seen.push(name.to_string());
    }
    let quorum = match s.quorum {
        None => Locations::majority(seen.len()),
        Some(q) if q >= 1 && (q as usize) <= seen.len().max(1) => q as u32,
        Some(q) => {
            problems.push(format!(
                "{place}: quorum = {q}, but it must be between 1 and the number of locations ({})",
                seen.len()
            ));
            1
        }
    };
    if problems.grew_since(before) || (seen.len() == 1 && seen[0] == places.local) {
        return None;
    }
    let local = seen.iter().position(|n| n == places.local);
    Some(Locations {
        names: seen,
        quorum,
        local,
    })
}

/// What each agent is given: the `[[group]]` tables and the `[[service]]`
/// tables of the services that list its location, as the file has them
/// after `${VAR}` substitution (so the agent needs no secrets of its own),
/// without `locations` and `quorum`. A `${` left in a value (from a
/// secret) is written `$${`, so the agent reads it back unchanged.
pub fn assignments(
    root: &toml::Value,
    services: &[ServiceConfig],
    agents: &[LocationConfig],
) -> Assignments {
    let empty = Vec::new();
    let tables = root
        .get("service")
        .and_then(toml::Value::as_array)
        .unwrap_or(&empty);
    let groups = root
        .get("group")
        .and_then(toml::Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut per: HashMap<&str, Vec<toml::Value>> = HashMap::new();
    // Valid config: the i-th table is the i-th service.
    for (table, service) in tables.iter().zip(services) {
        let Some(locations) = &service.locations else {
            continue;
        };
        let mut table = table.clone();
        if let Some(t) = table.as_table_mut() {
            t.remove("locations");
            t.remove("quorum");
        }
        escape(&mut table);
        for name in &locations.names {
            per.entry(name.as_str()).or_default().push(table.clone());
        }
    }
    let mut by_location = BTreeMap::new();
    for agent in agents {
        let services = per.remove(agent.name.as_str()).unwrap_or_default();
        let mut doc = toml::Table::new();
        let count = services.len();
        let mut groups = groups.clone();
        groups.iter_mut().for_each(escape);
        doc.insert("group".into(), toml::Value::Array(groups));
        doc.insert("service".into(), toml::Value::Array(services));
        let text = toml::to_string(&doc).unwrap_or_default();
        let etag = {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(text.as_bytes());
            format!("\"{}\"", hex::encode(&digest[..12]))
        };
        by_location.insert(
            agent.name.clone(),
            Assignment {
                etag,
                toml: text,
                services: count,
            },
        );
    }
    Assignments { by_location }
}

fn escape(value: &mut toml::Value) {
    match value {
        toml::Value::String(s) if s.contains("${") => *s = s.replace("${", "$${"),
        toml::Value::Array(items) => items.iter_mut().for_each(escape),
        toml::Value::Table(t) => t.iter_mut().for_each(|(_, v)| escape(v)),
        _ => {}
    }
}
