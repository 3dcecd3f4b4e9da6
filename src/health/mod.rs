//! Reading what a service says about itself in its `/health` body.
//!
//! Four formats are understood, detected from the Content-Type and the body
//! (or forced with `format = "…"` in the service's config):
//! - the IETF draft "Health Check Response Format for HTTP APIs"
//!   (`application/health+json`): `status` and `checks` keyed
//!   `component:measurement`;
//! - Spring Boot Actuator: `status` UP/DOWN/OUT_OF_SERVICE/UNKNOWN with
//!   nested `components` (or `details` in Spring Boot 1);
//! - the common simple form `{"status": "ok", "checks": {"db": true}}`;
//! - Kubernetes verbose text (`[+]etcd ok`, `[-]informer failed: …`).
//!
//! A body in no known format is not an error: the probe falls back to the
//! status code. A body that claims a format and breaks it is reported with a
//! short reason, never a panic.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::domain::{Dependency, Format, Health, HealthDoc, MAX_DEPENDENCIES};

/// How much of a body the HTTP probe reads. Health documents are small; a target that
/// sends more is not allowed to make us buffer it.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Reads `body` as a health document. `Ok(None)`: no known format (judge by
/// status code). `Err`: the body claims a format and breaks it.
/// Dependencies are capped: see [`MAX_DEPENDENCIES`].
pub fn parse(
    content_type: Option<&str>,
    body: &[u8],
    format: Format,
) -> Result<Option<HealthDoc>, String> {
    parse_uncapped(content_type, body, format).map(|doc| doc.map(cap))
}

/// Cuts long names (to [`crate::domain::text::MAX_NAME_BYTES`], "…" marking the
/// cut, as the probe stores them), then keeps the [`MAX_DEPENDENCIES`]
/// worst dependencies (the first of equals), in the document's order.
fn cap(mut doc: HealthDoc) -> HealthDoc {
    for d in &mut doc.dependencies {
        if d.name.len() > crate::domain::text::MAX_NAME_BYTES {
            d.name = crate::domain::text::clean_text(&d.name, crate::domain::text::MAX_NAME_BYTES);
        }
    }
    let count = doc.dependencies.len();
    if count > MAX_DEPENDENCIES {
        let mut order: Vec<usize> = (0..count).collect();
        // Stable: among equals, the earlier in the document is kept.
        order.sort_by_key(|&i| std::cmp::Reverse(doc.dependencies[i].health));
        let mut keep = vec![false; count];
        for &i in &order[..MAX_DEPENDENCIES] {
            keep[i] = true;
        }
        let mut flags = keep.into_iter();
        doc.dependencies.retain(|_| flags.next().unwrap_or(false));
        doc.omitted += count - MAX_DEPENDENCIES;
    }
    doc
}

fn parse_uncapped(
    content_type: Option<&str>,
    body: &[u8],
    format: Format,
) -> Result<Option<HealthDoc>, String> {
    let ct = content_type
        .map(|c| {
            c.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    match format {
        Format::None => Ok(None),
        Format::Kubernetes => parse_kubernetes(body).map(Some).ok_or_else(|| {
            "not Kubernetes health text ([+]name ok / [-]name failed lines)".to_string()
        }),
        Format::HealthJson | Format::Actuator | Format::Simple => {
            let json = parse_json(body)?;
            let doc = match format {
                Format::HealthJson => from_health_json(&json),
                Format::Actuator => from_actuator(&json),
                _ => from_simple(&json),
            };
            doc.map(Some).ok_or_else(|| missing_status(&json))
        }
        Format::Auto => {
            let looks_json = ct.ends_with("json")
                || body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
            if looks_json {
                let json = match parse_json(body) {
                    Ok(json) => json,
                    // Declared JSON that is not: say so. Undeclared: not ours to judge.
                    Err(e) if ct.ends_with("json") => return Err(e),
                    Err(_) => return Ok(None),
                };
                let doc = if ct == "application/health+json" {
                    from_health_json(&json)
                } else if ct.contains("spring-boot.actuator") || is_actuator(&json) {
                    from_actuator(&json)
                } else if is_health_json(&json) {
                    from_health_json(&json)
                } else {
                    from_simple(&json)
                };
                match doc {
                    Some(doc) => Ok(Some(doc)),
                    None if ct == "application/health+json" => Err(missing_status(&json)),
                    None => Ok(None),
                }
            } else {
                Ok(parse_kubernetes(body))
            }
        }
    }
}

fn parse_json(body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| {
        let shown = if body.len() >= MAX_BODY_BYTES {
            format!("body over {} KiB is cut short", MAX_BODY_BYTES / 1024)
        } else {
            e.to_string()
        };
        format!("malformed health JSON: {shown}")
    })
}

fn missing_status(json: &Value) -> String {
    match json.get("status") {
        None => "health document has no \"status\"".to_string(),
        Some(v) => format!(
            "health document has an unknown status {}",
            short(&v.to_string())
        ),
    }
}

fn short(text: &str) -> String {
    const MAX: usize = 80;
    if text.chars().count() <= MAX {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(MAX).collect::<String>())
    }
}

/// The IETF draft's marks: `checks` whose values are arrays of objects.
fn is_health_json(json: &Value) -> bool {
    json.get("checks")
        .and_then(Value::as_object)
        .is_some_and(|checks| !checks.is_empty() && checks.values().all(Value::is_array))
}

/// Actuator's marks: an upper-case status and `components` (v2+) or
/// `details` objects (v1).
fn is_actuator(json: &Value) -> bool {
    let upper = json
        .get("status")
        .and_then(Value::as_str)
        .is_some_and(|s| matches!(s, "UP" | "DOWN" | "OUT_OF_SERVICE" | "UNKNOWN"));
    let boot1 = json.as_object().is_some_and(|o| {
        o.iter()
            .filter(|(k, _)| k.as_str() != "status")
            .all(|(_, v)| v.get("status").is_some())
    });
    upper && (json.get("components").is_some() || json.get("details").is_some() || boot1)
}

fn from_health_json(json: &Value) -> Option<HealthDoc> {
    let health = json.get("status").and_then(Health::from_value)?;
    let mut dependencies: Vec<Dependency> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    if let Some(checks) = json.get("checks").and_then(Value::as_object) {
        for (key, entries) in checks {
            let component = key.split(':').next().unwrap_or(key).to_string();
            let entries: Vec<&Value> = match entries {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            for entry in entries {
                // One name per component, never its componentId: ids are
                // often hosts or instances, and names reach the public page.
                // Several entries (nodes, measurements) merge to the worst.
                let name = component.clone();
                let entry_health = entry
                    .get("status")
                    .and_then(Health::from_value)
                    .unwrap_or(Health::Warn);
                let observed = entry.get("observedValue").map(|v| {
                    let value = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    match entry.get("observedUnit").and_then(Value::as_str) {
                        Some(unit) => format!("{value} {unit}"),
                        None => value,
                    }
                });
                let output = entry
                    .get("output")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(short);
                merge(
                    &mut dependencies,
                    &mut index,
                    Dependency {
                        name,
                        health: entry_health,
                        output,
                        observed,
                    },
                );
            }
        }
    }
    Some(HealthDoc {
        format: Format::HealthJson,
        health,
        dependencies,
        omitted: 0,
    })
}

/// Keeps one entry per dependency name: the worst, with its details.
/// `index` finds a name's entry (a document may list thousands).
fn merge(deps: &mut Vec<Dependency>, index: &mut HashMap<String, usize>, dep: Dependency) {
    match index.get(&dep.name).and_then(|&i| deps.get_mut(i)) {
        Some(existing) if dep.health > existing.health => *existing = dep,
        Some(_) => {}
        None => {
            index.insert(dep.name.clone(), deps.len());
            deps.push(dep);
        }
    }
}

fn from_actuator(json: &Value) -> Option<HealthDoc> {
    let health = actuator_status(json)?;
    let mut dependencies = Vec::new();
    // Spring Boot 2.2+: "components"; 2.0-2.1: "details"; 1.x: the
    // components sit beside "status" at the top level.
    let components = json
        .get("components")
        .or_else(|| json.get("details"))
        .and_then(Value::as_object)
        .or_else(|| json.as_object());
    if let Some(components) = components {
        for (name, component) in components.iter().filter(|(k, _)| k.as_str() != "status") {
            let Some(component_health) = actuator_status(component) else {
                continue;
            };
            let output = component
                .get("details")
                .filter(|d| d.as_object().is_some_and(|o| !o.is_empty()))
                .map(|d| short(&d.to_string()));
            dependencies.push(Dependency {
                name: name.clone(),
                health: component_health,
                output,
                observed: None,
            });
        }
    }
    Some(HealthDoc {
        format: Format::Actuator,
        health,
        dependencies,
        omitted: 0,
    })
}

fn actuator_status(value: &Value) -> Option<Health> {
    Some(match value.get("status")?.as_str()? {
        "UP" => Health::Pass,
        "DOWN" | "OUT_OF_SERVICE" => Health::Fail,
        "UNKNOWN" => Health::Warn,
        other => Health::from_word(other)?,
    })
}

fn from_simple(json: &Value) -> Option<HealthDoc> {
    let obj: &Map<String, Value> = json.as_object()?;
    let health = obj
        .get("status")
        .or_else(|| obj.get("healthy"))
        .or_else(|| obj.get("state"))
        .and_then(Health::from_value)?;
    let mut dependencies = Vec::new();
    let checks = obj
        .get("checks")
        .or_else(|| obj.get("dependencies"))
        .or_else(|| obj.get("services"))
        .or_else(|| obj.get("details"));
    match checks {
        Some(Value::Object(map)) => {
            for (name, v) in map {
                if let Some(h) = Health::from_value(v) {
                    dependencies.push(Dependency {
                        name: name.clone(),
                        health: h,
                        output: detail(v),
                        observed: None,
                    });
                }
            }
        }
        Some(Value::Array(items)) => {
            for item in items {
                let name = item
                    .get("name")
                    .or_else(|| item.get("component"))
                    .and_then(Value::as_str);
                if let (Some(name), Some(h)) = (name, Health::from_value(item)) {
                    dependencies.push(Dependency {
                        name: name.to_string(),
                        health: h,
                        output: detail(item),
                        observed: None,
                    });
                }
            }
        }
        _ => {}
    }
    Some(HealthDoc {
        format: Format::Simple,
        health,
        dependencies,
        omitted: 0,
    })
}

fn detail(v: &Value) -> Option<String> {
    ["output", "message", "error", "reason"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str))
        .map(short)
}

/// `[+]etcd ok` / `[-]informer-sync failed: reason withheld` lines, closed
/// by `healthz check passed` (or `… check failed`).
fn parse_kubernetes(body: &[u8]) -> Option<HealthDoc> {
    // A body cut at the read limit may end inside a character.
    let text = match std::str::from_utf8(body) {
        Ok(text) => text,
        Err(e) if e.valid_up_to() > 0 => std::str::from_utf8(&body[..e.valid_up_to()]).ok()?,
        Err(_) => return None,
    };
    let mut dependencies = Vec::new();
    let mut verdict = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("[+]") {
            let name = rest.split_whitespace().next().unwrap_or(rest);
            dependencies.push(Dependency {
                name: name.to_string(),
                health: Health::Pass,
                output: None,
                observed: None,
            });
        } else if let Some(rest) = line.strip_prefix("[-]") {
            let (name, reason) = match rest.split_once(' ') {
                Some((name, reason)) => (name, Some(reason.trim())),
                None => (rest, None),
            };
            let output = reason
                .map(|r| {
                    r.trim_start_matches("failed")
                        .trim_start_matches(':')
                        .trim()
                })
                .filter(|r| !r.is_empty())
                .map(short);
            dependencies.push(Dependency {
                name: name.to_string(),
                health: Health::Fail,
                output,
                observed: None,
            });
        } else if line.ends_with("check passed") {
            verdict = Some(Health::Pass);
        } else if line.ends_with("check failed") {
            verdict = Some(Health::Fail);
        }
    }
    let health = match verdict {
        // A closing "… check passed/failed" alone is any text's last line;
        // the [+]/[-] lines are what make it Kubernetes'.
        Some(_) if dependencies.is_empty() => return None,
        Some(v) => v,
        None if dependencies.is_empty() => return None,
        None if dependencies.iter().any(|d| d.health == Health::Fail) => Health::Fail,
        None => Health::Pass,
    };
    Some(HealthDoc {
        format: Format::Kubernetes,
        health,
        dependencies,
        omitted: 0,
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod proptests;
