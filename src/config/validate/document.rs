//! The TOML document before it is judged: parsing (syntax and type errors
//! with line and column), `${VAR}` secrets, `BEACON_*` overrides, and
//! reading it into the raw config while collecting unknown keys.

use super::diagnostics::{describe, segments, unknown_key_message, Seg};
use super::problems::{hide_substituted, Problems};
use crate::config::interpolate::interpolate;
use crate::config::raw::RawConfig;
use crate::config::{ConfigError, EnvLookup};

/// The text as a TOML document, or its syntax error.
///
/// A large file (a fleet of 100,000 services is 14 MB of TOML) is parsed a
/// piece at a time (see [`parse_in_pieces`]): toml's parser holds about 20
/// bytes for every byte of the text it parses, so the whole file at once
/// took beacon to 450 MB for a moment at every start and every reload,
/// more than it uses running.
pub fn parse(text: &str, source_name: &str) -> Result<toml::Value, ConfigError> {
    if let Some(table) = parse_in_pieces(text, PIECE_BYTES) {
        return Ok(toml::Value::Table(table));
    }
    parse_whole(text, source_name)
}

/// About how much of the text [`parse_in_pieces`] parses at a time.
const PIECE_BYTES: usize = 512 * 1024;

/// The whole text parsed at once: what decides, and says where, whenever a
/// piece does not parse alone.
fn parse_whole(text: &str, source_name: &str) -> Result<toml::Value, ConfigError> {
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

/// The document parsed in pieces of about `piece_bytes`, each beginning at
/// a top-level `[[name]]` header (`[[service]]`), and the pieces' tables
/// joined: the same table as a parse of the whole text, or `None` when
/// that cannot be shown piece by piece, and the whole text must be parsed
/// (which also says where an error is, in lines of the whole file):
///
/// - a piece that does not parse alone: an error, or a cut inside a
///   multi-line string (its piece then ends inside the string);
/// - a key that two pieces both define, unless it is the array of tables
///   the later piece begins with (`[[service]]` entries continued);
/// - the name of an array the pieces are cut at, written as a key before
///   the first header (`service = [...]`, which a `[[service]]` after it
///   contradicts): not told apart from the headers' array once parsed, so
///   the keys before the first header are parsed alone and looked at.
fn parse_in_pieces(text: &str, piece_bytes: usize) -> Option<toml::Table> {
    let mut cuts: Vec<(usize, &str)> = Vec::new();
    let (mut start, mut at) = (0, 0);
    for line in text.split_inclusive('\n') {
        if at - start >= piece_bytes {
            if let Some(name) = array_header(line) {
                cuts.push((at, name));
                start = at;
            }
        }
        at += line.len();
    }
    let first_end = cuts.first()?.0;
    let first = &text[..first_end];
    // The keys written before the first header: parsed alone, so a key
    // spelled any way TOML allows (quoted, escaped) is known as itself.
    let root_end = first
        .split_inclusive('\n')
        .scan(0, |at, line| {
            let start = *at;
            *at += line.len();
            Some((start, line))
        })
        .find(|(_, line)| {
            line.trim_start_matches(['\u{feff}', ' ', '\t'])
                .starts_with('[')
        })
        .map_or(first.len(), |(start, _)| start);
    let root = toml::from_str::<toml::Table>(&text[..root_end]).ok()?;
    if cuts.iter().any(|(_, name)| root.contains_key(*name)) {
        return None;
    }
    let mut joined = piece(first)?;
    for (k, &(from, name)) in cuts.iter().enumerate() {
        let to = cuts.get(k + 1).map_or(text.len(), |&(to, _)| to);
        for (key, value) in piece(&text[from..to])? {
            match (joined.get_mut(&key), value) {
                (None, value) => {
                    joined.insert(key, value);
                }
                (Some(toml::Value::Array(before)), toml::Value::Array(more)) if key == name => {
                    before.extend(more);
                }
                _ => return None,
            }
        }
    }
    Some(joined)
}

/// One piece: its types checked as [`parse_whole`] checks them (the first
/// error found is not reported from here), and its table.
fn piece(text: &str) -> Option<toml::Table> {
    toml::from_str::<RawConfig>(text).ok()?;
    toml::from_str::<toml::Table>(text).ok()
}

/// `service` for a line `[[service]]` (a top-level array of tables, its
/// name a bare key; a comment may follow); `None` for any other line.
fn array_header(line: &str) -> Option<&str> {
    let inner = line.trim_start().strip_prefix("[[")?;
    let (name, after) = inner.split_once("]]")?;
    let name = name.trim();
    let bare = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let after = after.trim_start();
    (bare && (after.is_empty() || after.starts_with('#'))).then_some(name)
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
///
/// The services are taken out of the document one at a time as they are
/// read, so the document and the raw config are not both held whole (each
/// is about 100 MB at 100,000 services). What stays of a service in the
/// document is its name, which places a problem in it (`service[3]
/// "Checkout"`), or all of it when it names `locations` (the agents are
/// handed their services' tables: `locations::assignments`).
pub fn read_raw(
    root: &mut toml::Value,
    source_name: &str,
    used: &[(String, String)],
    problems: &mut Problems,
) -> Result<RawConfig, ConfigError> {
    let mut unknown = Vec::new();
    let error = |e: toml::de::Error| ConfigError::Syntax {
        source_name: source_name.to_string(),
        message: hide_substituted(&e.to_string(), used),
    };
    let services = root
        .as_table_mut()
        .and_then(|table| table.get_mut("service"))
        .and_then(toml::Value::as_array_mut)
        .map(std::mem::take)
        .unwrap_or_default();
    // Everything but the services' array (now empty), read as before.
    let rest: toml::Table = root
        .as_table()
        .into_iter()
        .flatten()
        .filter(|(key, value)| !(*key == "service" && value.is_array()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let mut raw: RawConfig = serde_ignored::deserialize(toml::Value::Table(rest), |path| {
        unknown.push(segments(&path))
    })
    .map_err(error)?;
    raw.services = Vec::with_capacity(services.len());
    let mut kept = Vec::with_capacity(services.len());
    for (index, service) in services.into_iter().enumerate() {
        kept.push(if service.get("locations").is_some() {
            service.clone()
        } else {
            let mut named = toml::Table::new();
            if let Some(name) = service.get("name") {
                named.insert("name".into(), name.clone());
            }
            toml::Value::Table(named)
        });
        let service = serde_ignored::deserialize(service, |path| {
            let mut at = vec![Seg::Key("service".into()), Seg::Index(index)];
            at.extend(segments(&path));
            unknown.push(at);
        })
        .map_err(error)?;
        raw.services.push(service);
    }
    if let Some(slot) = root.get_mut("service").filter(|s| s.is_array()) {
        *slot = toml::Value::Array(kept);
    }
    // As a person reads the file: by the place of each top-level key
    // (the services were read after the rest).
    let order: Vec<&String> = root
        .as_table()
        .map(|t| t.keys().collect())
        .unwrap_or_default();
    let place = |path: &Vec<Seg>| match path.first() {
        Some(Seg::Key(key)) => order.iter().position(|k| *k == key),
        _ => None,
    };
    unknown.sort_by_key(place);
    for path in unknown {
        problems.push(unknown_key_message(root, &path));
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::{parse_in_pieces, parse_whole};

    /// Whatever the pieces' size, parsing in pieces gives the whole
    /// parse's table or gives way to it: never another table.
    fn agrees_with_whole(text: &str) -> usize {
        let whole = parse_whole(text, "t.toml").ok();
        let mut cut = 0;
        for size in 1..=text.len() {
            if let Some(table) = parse_in_pieces(text, size) {
                assert_eq!(
                    Some(toml::Value::Table(table)),
                    whole,
                    "pieces of {size} bytes"
                );
                cut += 1;
            }
        }
        cut
    }

    fn service(i: usize) -> String {
        format!("[[service]] # no. {i}\nname = \"S{i}\"\nurl = \"http://127.0.0.1/{i}\"\n")
    }

    #[test]
    fn pieces_join_to_the_whole_document() {
        let mut text = String::from("[server]\ntitle = \"T\"\n");
        for i in 0..4 {
            text.push_str(&service(i));
        }
        // Tables of the entry before, an array inside one, a group
        // between, a string that looks like a header, a table at the end.
        text.push_str("[service.headers]\nX-Key = \"k\"\n");
        text.push_str("[[service.dependency]]\nname = \"db\"\nkind = \"tcp\"\n");
        text.push_str("[[group]]\nname = \"G\"\n");
        text.push_str(&service(4));
        text.push_str("description = '''\n[[service]]\nname = \"not one\"\n'''\n");
        text.push_str(&service(5));
        text.push_str("[monitor]\nmax_concurrency = 8\n");
        assert!(agrees_with_whole(&text) > 0, "never cut");
        // Cut at every header, one in a string too: the whole parse decides.
        assert_eq!(parse_in_pieces(&text, 1), None);
        let joined = parse_whole(&text, "t.toml").expect("valid");
        let services = joined["service"].as_array().expect("services");
        assert_eq!(services.len(), 6);
        assert_eq!(services[3]["headers"]["X-Key"].as_str(), Some("k"));
        assert_eq!(services[3]["dependency"][0]["name"].as_str(), Some("db"));
        assert_eq!(joined["group"][0]["name"].as_str(), Some("G"));
    }

    #[test]
    fn what_pieces_cannot_show_is_left_to_the_whole_parse() {
        let services: String = (0..3).map(service).collect();
        // An array written as a key, then headers of the same name: an
        // error in the whole file, which joining pieces would not see.
        let inline = format!("service = [{{ name = \"A\", url = \"http://a\" }}]\n{services}");
        assert!(parse_whole(&inline, "t.toml").is_err());
        assert_eq!(agrees_with_whole(&inline), 0);
        // The same key escaped, after a byte-order mark.
        let escaped = format!("\u{feff}\"\\u0073ervice\" = []\n{services}");
        assert!(parse_whole(&escaped, "t.toml").is_err());
        assert_eq!(agrees_with_whole(&escaped), 0);
        // A table of that name, then its array; a sub-table of an earlier
        // piece's last entry; a cut inside a multi-line string.
        for text in [
            format!("[service]\nname = \"A\"\n{services}"),
            format!("[[group]]\nname = \"G\"\n{services}[group.x]\ny = 1\n"),
            format!("{}description = \"\"\"\n{services}\"\"\"\n", service(9)),
        ] {
            agrees_with_whole(&text);
        }
    }

    #[test]
    fn an_error_in_a_late_piece_is_placed_in_the_whole_file() {
        // More than a piece: without the error, it is parsed in pieces.
        let mut text: String = (0..12_000).map(service).collect();
        assert!(parse_in_pieces(&text, super::PIECE_BYTES).is_some());
        text.push_str("[[service]]\nname = \"Bad\"\ninterval = 5\n");
        text.push_str(&service(12_001));
        let lines_before = text
            .lines()
            .position(|l| l == "interval = 5")
            .expect("line")
            + 1;
        let message = super::parse(&text, "t.toml").expect_err("a number for a duration");
        let message = message.to_string();
        assert!(
            message.contains(&format!("line {lines_before}")),
            "{message}"
        );
    }
}
