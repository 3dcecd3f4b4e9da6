//! Where a problem is, said as a person reads the file: places
//! (`service[2] "Checkout": headers.X-Key`), and "did you mean" for a
//! mistyped key.

use crate::config::known_keys;

/// One step of a path into the TOML document.
#[derive(Debug, Clone)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// `service[2] "Checkout"` (1-based, as a person counts), or `service[2]`.
pub fn item_place(table: &str, index: usize, name: Option<&str>) -> String {
    match name.map(str::trim).filter(|n| !n.is_empty()) {
        Some(name) => format!("{table}[{}] \"{name}\"", index + 1),
        None => format!("{table}[{}]", index + 1),
    }
}

/// The path serde_ignored reports, as segments.
pub fn segments(path: &serde_ignored::Path<'_>) -> Vec<Seg> {
    use serde_ignored::Path;
    match path {
        Path::Root => Vec::new(),
        Path::Seq { parent, index } => {
            let mut v = segments(parent);
            v.push(Seg::Index(*index));
            v
        }
        Path::Map { parent, key } => {
            let mut v = segments(parent);
            v.push(Seg::Key(key.clone()));
            v
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => segments(parent),
    }
}

/// `service[2] "Checkout": url` for the path `service.1.url`.
pub fn describe(root: &toml::Value, path: &[Seg]) -> String {
    let (place, rest) = split_place(root, path);
    // `tokens[2]`, `headers.X-Key`: keys joined by dots, indices appended.
    let mut field = String::new();
    for seg in rest {
        match seg {
            Seg::Key(k) if field.is_empty() => field.push_str(k),
            Seg::Key(k) => {
                field.push('.');
                field.push_str(k);
            }
            Seg::Index(i) => field.push_str(&format!("[{}]", i + 1)),
        }
    }
    match (place.is_empty(), field.is_empty()) {
        (true, _) => field,
        (false, true) => place,
        (false, false) => format!("{place}: {field}"),
    }
}

/// Splits a path into its top-level item (`server`, `service[2] "Name"`) and
/// the field path inside it.
fn split_place<'p>(root: &toml::Value, path: &'p [Seg]) -> (String, &'p [Seg]) {
    match path {
        [Seg::Key(table), Seg::Index(i), rest @ ..] => {
            let name = root
                .get(table)
                .and_then(|t| t.get(*i))
                .and_then(|item| item.get("name"))
                .and_then(|n| n.as_str());
            (item_place(table, *i, name), rest)
        }
        [Seg::Key(table), rest @ ..] if !rest.is_empty() => (table.clone(), rest),
        _ => (String::new(), path),
    }
}

/// `backup: unknown key "taget" (did you mean "target"?)`.
pub fn unknown_key_message(root: &toml::Value, path: &[Seg]) -> String {
    let Some((Seg::Key(key), parent)) = path.split_last() else {
        return format!("unknown entry at {}", describe(root, path));
    };
    let table = match parent.first() {
        Some(Seg::Key(t)) => t.as_str(),
        _ => "",
    };
    // A nested table ("backup.keep") has keys of its own.
    let nested = match parent {
        [Seg::Key(a), Seg::Key(b)] => format!("{a}.{b}"),
        _ => String::new(),
    };
    let keys = match known_keys(&nested) {
        keys if !nested.is_empty() && !keys.is_empty() => keys,
        _ => known_keys(table),
    };
    let hint = did_you_mean(keys, key)
        .map(|k| format!(" (did you mean \"{k}\"?)"))
        .unwrap_or_default();
    let where_ = if parent.is_empty() {
        "top level".to_string()
    } else {
        describe(root, parent)
    };
    format!("{where_}: unknown key \"{key}\"{hint}")
}

/// The known word nearest to `typed`, if it is at most two edits away.
fn did_you_mean<'k>(known: &[&'k str], typed: &str) -> Option<&'k str> {
    known
        .iter()
        .filter(|k| levenshtein(k, typed) <= 2)
        .min_by_key(|k| levenshtein(k, typed))
        .copied()
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
