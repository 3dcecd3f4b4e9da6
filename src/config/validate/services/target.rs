//! What a service probes: its name and slug, its group, its probe kind and
//! URL (the kind, given or named by the URL's scheme, must fit the URL).

use super::super::problems::Problems;
use crate::config::raw::RawService;
use crate::config::{GroupConfig, ProbeKind};
use crate::domain::text::slugify;

/// A service's identity and target, each part `None` (or empty) when wrong.
pub struct Target {
    pub name: String,
    pub slug: String,
    pub kind: Option<ProbeKind>,
    pub url: Option<url::Url>,
}

pub fn target(
    s: &RawService,
    place: &str,
    groups: &[GroupConfig],
    problems: &mut Problems,
) -> Target {
    let name = s.name.as_deref().map(str::trim).unwrap_or("");
    if name.is_empty() {
        problems.push(format!("{place}: name is required"));
    }
    let slug = slug(s.slug.as_deref(), name, place, problems);
    if let Some(group) = &s.group {
        check_group(group, place, groups, problems);
    }
    let kind = match s.kind.as_deref() {
        None => None,
        Some(k) => ProbeKind::parse(k).or_else(|| {
            problems.push(format!(
                "{place}: kind \"{k}\" is not one of {}",
                ProbeKind::NAMES.join(", ")
            ));
            None
        }),
    };
    let url = url(s.url.as_deref(), place, kind, problems);
    Target {
        name: name.to_string(),
        slug,
        kind,
        url,
    }
}

/// The slug as written (a-z, 0-9, -), or made from the name.
fn slug(written: Option<&str>, name: &str, place: &str, problems: &mut Problems) -> String {
    match written {
        Some(slug) => {
            let valid = !slug.is_empty()
                && slug
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !valid {
                problems.push(format!(
                    "{place}: slug \"{slug}\" may hold only a-z, 0-9 and -"
                ));
            }
            slug.to_string()
        }
        None => {
            let slug = slugify(name);
            if slug.is_empty() && !name.is_empty() {
                problems.push(format!(
                    "{place}: name gives an empty slug; set slug = \"…\" (a-z, 0-9, -)"
                ));
            }
            slug
        }
    }
}

fn check_group(group: &str, place: &str, groups: &[GroupConfig], problems: &mut Problems) {
    if groups.iter().any(|g| g.name == group) {
        return;
    }
    let known: Vec<String> = groups.iter().map(|g| format!("\"{}\"", g.name)).collect();
    problems.push(format!(
        "{place}: group \"{group}\" is not defined by any [[group]]{}",
        if known.is_empty() {
            String::new()
        } else {
            format!(" (defined: {})", known.join(", "))
        }
    ));
}

fn url(
    text: Option<&str>,
    place: &str,
    kind: Option<ProbeKind>,
    problems: &mut Problems,
) -> Option<url::Url> {
    match text {
        // An unset ${VAR} is already reported; the text left is no URL to judge.
        Some(text) if text.contains("${") => {
            let reported = format!("{place}: url: environment variable");
            if !problems.any_starts_with(&reported) {
                problems.push(format!("{place}: url is not a valid URL"));
            }
            None
        }
        None => {
            problems.push(format!("{place}: url is required"));
            None
        }
        Some(text) => match url::Url::parse(text) {
            Ok(url) => check_target_url(place, url, kind, problems),
            Err(e) => {
                problems.push(format!("{place}: url is not a valid URL ({e})"));
                None
            }
        },
    }
}

/// Checks a URL against the probe kind (given, or named by its scheme).
fn check_target_url(
    place: &str,
    url: url::Url,
    kind: Option<ProbeKind>,
    problems: &mut Problems,
) -> Option<url::Url> {
    let shown = crate::redact::url(&url);
    let Some(scheme_kind) = ProbeKind::parse(url.scheme()) else {
        problems.push(format!(
            "{place}: url \"{shown}\" must start with http://, https://, tcp://, tls://, dns://, postgres:// or redis://"
        ));
        return None;
    };
    if let Some(kind) = kind {
        if kind != scheme_kind {
            problems.push(format!(
                "{place}: kind \"{}\" does not match the url's scheme \"{}\"",
                kind.as_str(),
                url.scheme()
            ));
            return None;
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        problems.push(format!("{place}: url \"{shown}\" has no host"));
        return None;
    }
    if scheme_kind == ProbeKind::Tcp && url.port().is_none() {
        problems.push(format!(
            "{place}: url \"{shown}\" needs a port (tcp://host:port)"
        ));
        return None;
    }
    Some(url)
}
