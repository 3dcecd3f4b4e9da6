//! `[[service.dependency]]`: service-shaped probes shown under their
//! service, probed at its interval; some fields belong to services only.

use std::collections::HashMap;

use super::super::diagnostics::item_place;
use super::super::problems::Problems;
use super::timing::Parent;
use crate::config::raw::RawService;
use crate::config::{GroupConfig, ServiceConfig};

/// A dependency that sets a field only a service has.
pub fn check_service_only_fields(s: &RawService, place: &str, problems: &mut Problems) {
    let service_only = [
        ("slug", s.slug.is_some()),
        ("group", s.group.is_some()),
        ("description", s.description.is_some()),
        ("public", s.public.is_some()),
        ("interval", s.interval.is_some()),
        ("failure_threshold", s.failure_threshold.is_some()),
        ("success_threshold", s.success_threshold.is_some()),
        ("dependency", !s.dependencies.is_empty()),
        ("locations", s.locations.is_some()),
        ("quorum", s.quorum.is_some()),
    ];
    for (field, set) in service_only {
        if set {
            problems.push(format!(
                "{place}: {field} applies to services, not to a dependency (it follows its service)"
            ));
        }
    }
}

/// The dependencies of the service at `place`; names are unique within it.
pub fn dependencies(
    raw: &[RawService],
    place: &str,
    groups: &[GroupConfig],
    parent: Parent,
    problems: &mut Problems,
) -> Vec<ServiceConfig> {
    let mut dependencies = Vec::new();
    let mut names = HashMap::new();
    for (i, d) in raw.iter().enumerate() {
        let dep_place = format!(
            "{place}: {}",
            item_place("dependency", i, d.name.as_deref())
        );
        if let Some(name) = d.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
            if let Some(first) = names.insert(name.to_string(), i) {
                problems.push(format!(
                    "{dep_place}: name \"{name}\" is already used by dependency[{}]",
                    first + 1
                ));
            }
        }
        if let Some(dep) = super::service(d, &dep_place, groups, Some(parent), problems) {
            dependencies.push(dep);
        }
    }
    dependencies
}
