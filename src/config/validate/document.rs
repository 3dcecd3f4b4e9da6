//! The TOML document before it is judged: parsing (syntax and type errors
//! with line and column), `${VAR}` secrets, `BEACON_*` overrides, and
//! reading it into the raw config while collecting unknown keys.

use super::diagnostics::{describe, segments, unknown_key_message, Seg};
use super::problems::{hide_substituted, Problems};
use crate::config::interpolate::interpolate;
use crate::config::raw::RawConfig;
use crate::config::{ConfigError, EnvLookup};

/// The text as a TOML document, or its syntax error.
pub fn parse(text: &str, source_name: &str) -> Result<toml::Value, ConfigError> {
    let syntax = |e: toml::de::Error| ConfigError::Syntax {
        source_name: source_name.to_string(),
        message: e.to_string().trim_end().to_string(),
    };
    // Syntax and type errors first: parsing the text itself gives toml's
    // messages with line and column. Interpolation only changes the content
    // of strings, never a type, so this check stays valid afterwards.
    toml::from_str::<RawConfig>(text).map_err(syntax)?;
    let table = toml::from_str::<toml::Table>(text).map_err(syntax)?;
    Ok(toml::Value::Table(table))
}

/// Substitutes `${VAR}` in every string, reporting each unset variable at
/// the place of the value that needs it. Returns the variables used with
/// their values, so that messages can hide them.
pub fn substitute_secrets(
    root: &mut toml::Value,
    env: EnvLookup<'_>,
    problems: &mut Problems,
) -> Vec<(String, String)> {
    let mut unset = Vec::new();
    let used = std::cell::RefCell::new(Vec::new());
    let recording = |name: &str| {
        let value = env(name);
        if let Some(value) = &value {
            used.borrow_mut().push((name.to_string(), value.clone()));
        }
        value
    };
    substitute(root, &mut Vec::new(), &recording, &mut unset);
    // A value from ${VAR} is never printed, by this process or in a message.
    let used = used.into_inner();
    crate::redact::remember(used.iter().map(|(_, value)| value.clone()));
    for (path, name) in unset {
        problems.push(format!(
            "{}: environment variable {name} is not set",
            describe(root, &path)
        ));
    }
    used
}

/// Walks every string in the document, substituting `${VAR}`.
fn substitute(
    value: &mut toml::Value,
    path: &mut Vec<Seg>,
    env: EnvLookup<'_>,
    unset: &mut Vec<(Vec<Seg>, String)>,
) {
    match value {
        toml::Value::String(s) => match interpolate(s, env) {
            Ok(new) => *s = new,
            Err(missing) => {
                for name in missing {
                    unset.push((path.clone(), name));
                }
            }
        },
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(Seg::Index(i));
                substitute(item, path, env, unset);
                path.pop();
            }
        }
        toml::Value::Table(table) => {
            for (key, item) in table.iter_mut() {
                path.push(Seg::Key(key.clone()));
                substitute(item, path, env, unset);
                path.pop();
            }
        }
        _ => {}
    }
}

/// The fields the environment set, which win over the file.
pub struct Overrides {
    fields: Vec<String>,
}

/// Each override: its variable, and the table and key it sets.
const OVERRIDES: [(&str, &str, &str); 4] = [
    ("BEACON_LISTEN", "server", "listen"),
    ("BEACON_STORAGE_URL", "storage", "url"),
    ("BEACON_STORAGE_DIRECT_URL", "storage", "direct_url"),
    ("BEACON_BACKUP_TARGET", "backup", "target"),
];

impl Overrides {
    /// Writes each `BEACON_*` override that is set into the document.
    pub fn apply(root: &mut toml::Value, env: EnvLookup<'_>) -> Overrides {
        let mut fields = Vec::new();
        for (var, table, key) in OVERRIDES {
            let Some(value) = env(var).filter(|v| !v.is_empty()) else {
                continue;
            };
            let Some(root) = root.as_table_mut() else {
                continue;
            };
            let entry = root
                .entry(table)
                .or_insert_with(|| toml::Value::Table(Default::default()));
            if let Some(t) = entry.as_table_mut() {
                t.insert(key.into(), toml::Value::String(value));
                fields.push(format!("{table}.{key}"));
            }
        }
        Overrides { fields }
    }

    /// ` (from BEACON_LISTEN)` when the environment set `field`
    /// (`server.listen`), to name it in a problem; else empty.
    pub fn note(&self, field: &str) -> &'static str {
        if !self.fields.iter().any(|f| f == field) {
            return "";
        }
        match field {
            "server.listen" => " (from BEACON_LISTEN)",
            "storage.url" => " (from BEACON_STORAGE_URL)",
            "storage.direct_url" => " (from BEACON_STORAGE_DIRECT_URL)",
            "backup.target" => " (from BEACON_BACKUP_TARGET)",
            _ => "",
        }
    }
}

/// The document as the raw config; each unknown key is a problem (with a
/// "did you mean"), a value of the wrong type an error.
pub fn read_raw(
    root: &toml::Value,
    source_name: &str,
    used: &[(String, String)],
    problems: &mut Problems,
) -> Result<RawConfig, ConfigError> {
    let mut unknown = Vec::new();
    let raw = serde_ignored::deserialize(root.clone(), |path| unknown.push(segments(&path)))
        .map_err(|e: toml::de::Error| ConfigError::Syntax {
            source_name: source_name.to_string(),
            message: hide_substituted(&e.to_string(), used),
        })?;
    for path in unknown {
        problems.push(unknown_key_message(root, &path));
    }
    Ok(raw)
}
