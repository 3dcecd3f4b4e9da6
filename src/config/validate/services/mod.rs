//! `[[service]]`: what is probed, how often, and what counts as up. One
//! file per part of a service; a dependency is validated as a service that
//! follows its parent's timing.

mod checks;
mod conditions;
mod dependencies;
mod http;
mod target;
mod timing;

use std::collections::HashMap;

use super::diagnostics::item_place;
use super::locations::{service_locations, Places};
use super::problems::Problems;
use crate::config::raw::RawService;
use crate::config::{GroupConfig, ProbeKind, ServiceConfig};
use timing::Parent;

/// Every service; names and slugs are unique, and `watch_self` needs the
/// slug `beacon` free.
pub fn services(
    raw: &[RawService],
    groups: &[GroupConfig],
    places: &Places<'_>,
    watch_self: bool,
    problems: &mut Problems,
) -> Vec<ServiceConfig> {
    let mut services = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut slugs: HashMap<String, usize> = HashMap::new();
    for (i, s) in raw.iter().enumerate() {
        let place = item_place("service", i, s.name.as_deref());
        // Duplicates are checked on the raw names, so that a service with
        // other mistakes still counts as taking its name and slug.
        let name = s.name.as_deref().map(str::trim).unwrap_or("");
        let slug = s
            .slug
            .clone()
            .unwrap_or_else(|| crate::domain::text::slugify(name));
        let mut duplicate = false;
        if !name.is_empty() {
            if let Some(first) = names.get(name) {
                problems.push(format!(
                    "{place}: name \"{name}\" is already used by service[{}]",
                    first + 1
                ));
                duplicate = true;
            } else {
                names.insert(name.to_string(), i);
            }
        }
        if !slug.is_empty() && !duplicate {
            if let Some(first) = slugs.get(&slug) {
                problems.push(format!(
                    "{place}: slug \"{slug}\" is already used by {}",
                    item_place("service", *first, raw[*first].name.as_deref())
                ));
            } else {
                slugs.insert(slug, i);
            }
        }
        let before = problems.mark();
        let locations = service_locations(s, &place, places, problems);
        let valid = !problems.grew_since(before);
        if let Some(mut service) = service(s, &place, groups, None, problems).filter(|_| valid) {
            service.locations = locations;
            services.push(service);
        }
    }
    if watch_self && slugs.contains_key("beacon") {
        problems.push(
            "server: watch_self adds a service with slug \"beacon\", which a configured service already uses"
                .to_string(),
        );
    }
    services
}

/// One service, or one dependency of `parent`.
fn service(
    s: &RawService,
    place: &str,
    groups: &[GroupConfig],
    parent: Option<Parent>,
    problems: &mut Problems,
) -> Option<ServiceConfig> {
    let before = problems.mark();
    if parent.is_some() {
        dependencies::check_service_only_fields(s, place, problems);
    }
    let target = target::target(s, place, groups, problems);
    let timing = timing::timing(s, place, parent, problems);
    let expected_status = http::expected_status(s, place, problems);
    let format = http::format(s, place, problems);
    let conditions = conditions::conditions(place, "conditions", &s.conditions, problems);
    let degraded_conditions = conditions::conditions(
        place,
        "degraded_conditions",
        &s.degraded_conditions,
        problems,
    );
    conditions::check_not_both(place, &conditions, &expected_status, problems);
    let http = http::options(s, place, problems);
    let dns_expect = checks::dns_expect(s, place, problems);
    let (tls_warn_days, tls_fail_days) = checks::tls_days(s, place, problems);
    let parent = Parent {
        interval: timing.interval,
        timeout: timing.timeout,
    };
    let dependencies = dependencies::dependencies(&s.dependencies, place, groups, parent, problems);
    if problems.grew_since(before) {
        return None;
    }
    let url = target.url?;
    Some(ServiceConfig {
        name: target.name,
        slug: target.slug,
        group: s.group.clone(),
        description: s.description.clone(),
        public: s.public.unwrap_or(true),
        kind: target
            .kind
            .or_else(|| ProbeKind::parse(url.scheme()))
            .unwrap_or(ProbeKind::Http),
        url,
        interval: timing.interval,
        timeout: timing.timeout,
        failure_threshold: timing.failure_threshold,
        success_threshold: timing.success_threshold,
        degraded_latency: timing.degraded_latency,
        expected_status,
        format,
        conditions,
        degraded_conditions,
        http,
        dns_expect,
        tls_warn_days,
        tls_fail_days,
        dependencies,
        locations: None,
    })
}
