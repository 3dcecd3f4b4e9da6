//! The layers of docs/ARCHITECTURE.md, held by a test rather than by memory.
//!
//! It reads every file under `src/` (and the templates, which belong to
//! `web`) and fails when
//! - a top-level module names one above it in the order the architecture
//!   document writes between `<!-- layers -->` and `<!-- /layers -->`
//!   (so no two top-level modules can import each other, directly or around
//!   a circle);
//! - a top-level module is missing from that order;
//! - an edge the document forbids by name (`forbidden: a → b`) is there;
//! - two files of one folder import each other (a `mod.rs` and its children
//!   aside: children use what their parent declares);
//! - anything outside `src/store/` (and the PostgreSQL probe, which connects
//!   to a *target's* database) names `sqlx`.
//!
//! Comments and string literals are not read: a doc link to a module above
//! is no dependency. The checker's own tests below feed it the edges this
//! test was written to catch.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What the architecture document says.
#[derive(Debug)]
struct Rules {
    /// Bottom first: a module may import only those before it.
    order: Vec<String>,
    forbidden: Vec<(String, String)>,
}

fn rules_of(architecture: &str) -> Result<Rules, String> {
    let start = architecture
        .find("<!-- layers -->")
        .ok_or("docs/ARCHITECTURE.md: no <!-- layers --> block")?;
    let end = architecture[start..]
        .find("<!-- /layers -->")
        .ok_or("docs/ARCHITECTURE.md: <!-- layers --> is not closed by <!-- /layers -->")?;
    let block = &architecture[start + "<!-- layers -->".len()..start + end];
    let mut order = Vec::new();
    let mut forbidden = Vec::new();
    for line in block.lines().map(str::trim) {
        let line = line.trim_matches('`');
        if let Some(edge) = line.strip_prefix("forbidden:") {
            let (from, to) = edge.split_once('→').ok_or_else(|| {
                format!("docs/ARCHITECTURE.md: \"{line}\" is not \"forbidden: a → b\"")
            })?;
            forbidden.push((from.trim().to_string(), to.trim().to_string()));
        } else if line.contains('→') {
            order.extend(
                line.split('→')
                    .map(|m| m.trim().to_string())
                    .filter(|m| !m.is_empty()),
            );
        }
    }
    if order.is_empty() {
        return Err("docs/ARCHITECTURE.md: the layers block names no modules".into());
    }
    Ok(Rules { order, forbidden })
}

/// A file's text without comments, string and char literals (newlines kept,
/// so line numbers stay true).
fn code_of(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |s: &str, out: &mut String| {
        out.push_str(&"\n".repeat(s.matches('\n').count()));
    };
    while i < b.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            let end = rest.find('\n').unwrap_or(rest.len());
            i += end;
            continue;
        }
        if rest.starts_with("/*") {
            let end = rest.find("*/").map_or(rest.len(), |e| e + 2);
            blank(&rest[..end], &mut out);
            i += end;
            continue;
        }
        let prev_ident = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if !prev_ident && (rest.starts_with("r\"") || rest.starts_with("r#")) {
            let hashes = rest[1..].bytes().take_while(|&c| c == b'#').count();
            if rest[1 + hashes..].starts_with('"') {
                let close = format!("\"{}", "#".repeat(hashes));
                let body = 2 + hashes;
                let end = rest[body..]
                    .find(&close)
                    .map_or(rest.len(), |e| body + e + close.len());
                blank(&rest[..end], &mut out);
                i += end;
                continue;
            }
        }
        if b[i] == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(b.len());
            blank(&text[i..end], &mut out);
            i = end;
            continue;
        }
        if b[i] == b'\'' {
            // A char literal ('x', '\n', '\u{..}'), not a lifetime.
            let lit = if rest[1..].starts_with('\\') {
                rest[2..].find('\'').map(|e| e + 3)
            } else {
                rest[1..].chars().next().and_then(|c| {
                    let n = 1 + c.len_utf8();
                    rest[n..].starts_with('\'').then_some(n + 1)
                })
            };
            if let Some(n) = lit {
                i += n;
                continue;
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// The top-level module a file of `src/` belongs to (`None`: the crate root).
fn module_of(path: &str) -> Option<String> {
    let rel = path.strip_prefix("src/")?;
    match rel.split_once('/') {
        Some((dir, _)) => Some(dir.to_string()),
        None => {
            let name = rel.strip_suffix(".rs")?;
            (name != "lib" && name != "main").then(|| name.to_string())
        }
    }
}

/// `crate::a`, `crate::{a, b::c}`: the top-level modules a line names,
/// with the item path after each.
fn crate_paths(code: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let prev = rest[..at].chars().next_back();
            let after = &rest[at + "crate::".len()..];
            rest = after;
            if prev.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue; // `mycrate::`
            }
            if let Some(group) = after.strip_prefix('{') {
                let inner = group.split('}').next().unwrap_or("");
                for part in inner.split(',') {
                    let part = part.trim();
                    if !part.is_empty() {
                        found.push((n + 1, part.to_string()));
                    }
                }
            } else {
                let path: String = after
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                found.push((n + 1, path));
            }
        }
    }
    found
}

/// Sibling files a file names: `super::x::…` / `super::{x, …}` from a child
/// file, `crate::<top>::x` from anywhere in the folder.
fn siblings_named(code: &str, top: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in code.lines() {
        for (prefix, text) in [("super::", line), ("crate::", line)] {
            let mut rest = text;
            while let Some(at) = rest.find(prefix) {
                let mut after = &rest[at + prefix.len()..];
                rest = after;
                if prefix == "crate::" {
                    match after.strip_prefix(top).and_then(|a| a.strip_prefix("::")) {
                        Some(a) => after = a,
                        None => continue,
                    }
                }
                let items: Vec<&str> = match after.strip_prefix('{') {
                    Some(group) => group.split('}').next().unwrap_or("").split(',').collect(),
                    None => vec![after],
                };
                for item in items {
                    // `x::…` or a lowercase `x` may name a sibling module (it
                    // counts only if a sibling file has that name);
                    // `super::Thing` is an item of the parent.
                    let first: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if first.starts_with(|c: char| c.is_ascii_lowercase()) && first != "self" {
                        names.insert(first);
                    }
                }
            }
        }
    }
    names
}

fn violations(files: &[(String, String)], rules: &Rules) -> Vec<String> {
    let rank: BTreeMap<&str, usize> = rules
        .order
        .iter()
        .enumerate()
        .map(|(i, m)| (m.as_str(), i))
        .collect();
    let mut problems = Vec::new();
    let tops: BTreeSet<String> = files.iter().filter_map(|(p, _)| module_of(p)).collect();
    for top in &tops {
        if !rank.contains_key(top.as_str()) {
            problems.push(format!(
                "src/{top}: a top-level module the layers of docs/ARCHITECTURE.md do not place"
            ));
        }
    }
    // folder → file stem → siblings it names
    let mut folders: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (path, text) in files {
        let code = code_of(text);
        let owner = if path.starts_with("templates/") {
            Some("web".to_string())
        } else {
            module_of(path)
        };
        let Some(me) = owner else { continue };
        if code.contains("sqlx")
            && !path.starts_with("src/store/")
            && path != "src/probe/postgres.rs"
        {
            let line = code
                .lines()
                .position(|l| l.contains("sqlx"))
                .map_or(0, |n| n + 1);
            problems.push(format!(
                "{path}:{line}: names sqlx outside src/store/ (go through a Store method)"
            ));
        }
        for (line, item) in crate_paths(&code) {
            let target = item.split("::").next().unwrap_or("").to_string();
            if target == me || !tops.contains(&target) {
                continue;
            }
            let (Some(&mine), Some(&theirs)) = (rank.get(me.as_str()), rank.get(target.as_str()))
            else {
                continue;
            };
            if theirs > mine {
                problems.push(format!(
                    "{path}:{line}: {me} imports crate::{item}, but {target} is above {me} in docs/ARCHITECTURE.md"
                ));
            }
            if rules
                .forbidden
                .iter()
                .any(|(a, b)| *a == me && *b == target)
            {
                problems.push(format!(
                    "{path}:{line}: {me} imports crate::{item}; docs/ARCHITECTURE.md forbids {me} → {target}"
                ));
            }
        }
        // Sibling files in a folder module (mod.rs is the parent, not a sibling).
        if let Some(rel) = path.strip_prefix("src/") {
            let parts: Vec<&str> = rel.split('/').collect();
            if parts.len() >= 2 {
                let file = parts[parts.len() - 1].trim_end_matches(".rs");
                if file != "mod" {
                    let folder = parts[..parts.len() - 1].join("/");
                    let top_path = parts[..parts.len() - 1].join("::");
                    folders
                        .entry(folder)
                        .or_default()
                        .insert(file.to_string(), siblings_named(&code, &top_path));
                }
            }
        }
    }
    for (folder, files) in &folders {
        for (a, names) in files {
            for b in names {
                if a < b && files.get(b).is_some_and(|theirs| theirs.contains(a)) {
                    problems.push(format!(
                        "src/{folder}: {a}.rs and {b}.rs import each other (move what they share into a module of its own)"
                    ));
                }
            }
        }
    }
    problems
}

fn read_tree(root: &Path, dir: &str, out: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let rel = path
            .strip_prefix(root)
            .expect("under root")
            .to_string_lossy()
            .replace('\\', "/");
        if path.is_dir() {
            read_tree(root, &rel, out);
        } else if rel.ends_with(".rs") || rel.ends_with(".html") {
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
            out.push((rel, text));
        }
    }
}

#[test]
fn every_module_imports_only_the_layers_below_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let architecture =
        std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).expect("docs/ARCHITECTURE.md");
    let rules = rules_of(&architecture).unwrap_or_else(|e| panic!("{e}"));
    let mut files = Vec::new();
    read_tree(root, "src", &mut files);
    read_tree(root, "templates", &mut files);
    assert!(files.len() > 50, "read only {} files", files.len());
    let problems = violations(&files, &rules);
    assert!(
        problems.is_empty(),
        "the layers of docs/ARCHITECTURE.md are broken:\n  {}",
        problems.join("\n  ")
    );
}

fn rules() -> Rules {
    rules_of(
        "<!-- layers -->\n`domain → clock → config → health → probe → store → metrics → notify → backup → monitor → snapshot → web → startup → cli`\n`forbidden: cli → web`\n<!-- /layers -->",
    )
    .expect("rules")
}

fn check(files: &[(&str, &str)]) -> Vec<String> {
    let mut all: Vec<(String, String)> = files
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect();
    for top in [
        "domain", "clock", "config", "health", "probe", "store", "metrics", "notify", "backup",
        "monitor", "snapshot", "web", "startup", "cli",
    ] {
        all.push((format!("src/{top}/mod.rs"), String::new()));
    }
    violations(&all, &rules())
}

// The edges of the import circle issue 15 found: each one alone fails.
#[test]
fn the_edges_of_the_old_import_circle_each_fail() {
    for (file, line) in [
        ("src/config/mod.rs", "pub format: crate::health::Format,"),
        (
            "src/config/validate.rs",
            "match crate::notify::EventKind::parse(e) {",
        ),
        (
            "src/config/validate.rs",
            "use crate::store::sqlite_url as sqlite;",
        ),
        (
            "src/config/mod.rs",
            "pub keep: crate::backup::rotation::KeepPolicy,",
        ),
        (
            "src/health/mod.rs",
            "if body.len() >= crate::probe::http::MAX_BODY_BYTES {",
        ),
        (
            "src/store/alerts.rs",
            "use crate::notify::{Event, EventKind};",
        ),
        (
            "src/notify/mod.rs",
            "stats: Arc<crate::monitor::MonitorStats>,",
        ),
        ("src/backup/mod.rs", "use crate::monitor::MonitorStats;"),
        ("src/domain/state.rs", "use crate::clock::Clock;"),
        (
            "src/cli/maintenance.rs",
            "use crate::web::admin::{maintenance_input, MaintenanceBody};",
        ),
    ] {
        let problems = check(&[(file, line)]);
        assert_eq!(problems.len(), 1, "{file}: {line} → {problems:?}");
    }
}

#[test]
fn downward_imports_comments_and_strings_pass() {
    let problems = check(&[
        ("src/store/mod.rs", "use crate::domain::{Outcome, State};\nuse crate::config::DatabaseUrl;"),
        ("src/health/mod.rs", "/// Cuts names to [`crate::probe::MAX_NAME_BYTES`].\nlet s = \"crate::web\";\nlet c = '\"'; let d = crate::domain::X;"),
        ("src/web/pages.rs", "let t = r#\"crate::cli \"quoted\"\"#;"),
    ]);
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn siblings_that_import_each_other_fail() {
    let problems = check(&[
        (
            "src/web/feeds.rs",
            "use super::{cache, pages, AppState};\nlet s = pages::format_uptime(x);",
        ),
        ("src/web/pages.rs", "let x = super::feeds::xml(t);"),
    ]);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("feeds.rs and pages.rs"),
        "{problems:?}"
    );
    // One way only is a layering inside the folder, and fine.
    assert!(check(&[("src/web/pages.rs", "let x = super::feeds::xml(t);")]).is_empty());
}

#[test]
fn sqlx_outside_the_store_fails_and_a_missing_layer_is_named() {
    let problems = check(&[("src/backup/dump.rs", "use sqlx::SqlitePool;")]);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(check(&[("src/store/copy.rs", "use sqlx::SqlitePool;")]).is_empty());
    assert!(check(&[("src/probe/postgres.rs", "use sqlx::PgConnection;")]).is_empty());
    let problems = check(&[("src/newthing.rs", "")]);
    assert!(
        problems.iter().any(|p| p.contains("src/newthing")),
        "{problems:?}"
    );
}
