//! Property tests of the config loader (`beacon::config::from_toml`):
//! arbitrary bytes, and arbitrary TOML shaped like a config (its tables and
//! keys, values of every type, some right and most wrong). No panic, each
//! case done in bounded time, and every refusal a clear error: each problem
//! a non-empty line naming a key or a position.
//!
//! `PROPTEST_CASES` sets the number of cases (256 by default, as in CI).

use std::time::{Duration, Instant};

use beacon::config::{from_toml, ConfigError, ConfigSource};
use proptest::prelude::*;
use toml::Value;

/// Keys of every table of the config by the type they take, with a few
/// that are not keys at all.
const STRING_KEYS: &[&str] = &[
    "listen",
    "public_url",
    "logo_url",
    "home_url",
    "support_url",
    "announcement",
    "time_zone",
    "title",
    "header_read_timeout",
    "shutdown_timeout",
    "url",
    "raw_retention",
    "flush_interval",
    "incident_cooldown",
    "schedule",
    "target",
    "endpoint",
    "region",
    "checksums",
    "temp_dir",
    "token",
    "name",
    "kind",
    "secret",
    "min_state",
    "retry_backoff",
    "timeout",
    "smtp_host",
    "smtp_tls",
    "username",
    "password",
    "from",
    "description",
    "slug",
    "group",
    "interval",
    "degraded_latency",
    "format",
    "method",
    "body",
    "colour",
];
const INT_KEYS: &[&str] = &[
    "max_connections",
    "max_concurrency",
    "batch_size",
    "max_buffered_results",
    "part_size_mib",
    "last",
    "daily",
    "max_attempts",
    "smtp_port",
    "failure_threshold",
    "success_threshold",
    "tls_warn_days",
    "tls_fail_days",
];
const BOOL_KEYS: &[&str] = &[
    "watch_self",
    "path_style",
    "enabled",
    "send_on_resolved",
    "public",
    "follow_redirects",
    "tls_verify",
    "keep_alive",
];
const LIST_KEYS: &[&str] = &[
    "tokens",
    "services",
    "groups",
    "events",
    "to",
    "conditions",
    "degraded_conditions",
    "dns_expect",
];

/// Strings a config holds: durations, URLs of each probe kind, schedules,
/// conditions, variables, and noise.
fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(&[
            "30s", "1m", "0s", "1h 30m", "-5s", "999999999999999h", "1ns", "soon",
            "http://127.0.0.1:1/health", "https://example.com", "tcp://db:5432", "tls://x:443",
            "dns://example.com", "postgres://u:p@h/db", "redis://h:6379", "ftp://x", "http://",
            "sqlite://beacon.db", "sqlite::memory:", "s3://bucket/prefix", "",
            "${BEACON_TOKEN}", "${", "$${X}", "0 3 * * *", "@daily", "* * * * * * *",
            "[STATUS] == 200", "[BODY].status == pass", "len([BODY]) > 0", "no operator",
            "Europe/Paris", "Mars/Olympus", "GET", "POST", "webhook", "slack", "email",
            "health+json", "kubernetes", "down", "degraded", "127.0.0.1:0", "[::1]:80",
            "a-token-that-is-long-enough", "short",
        ][..])
        .prop_map(str::to_string),
        1 => "\\PC{0,30}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => string().prop_map(Value::String),
        2 => prop_oneof![
            Just(0i64),
            Just(-1),
            Just(1),
            Just(200),
            Just(i64::MAX),
            Just(i64::MIN),
            any::<i64>()
        ]
        .prop_map(Value::Integer),
        1 => any::<f64>().prop_map(Value::Float),
        1 => any::<bool>().prop_map(Value::Boolean),
    ]
}

fn int() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(0i64),
        Just(-1),
        Just(1),
        Just(3),
        Just(200),
        Just(65_536),
        Just(i64::MAX),
        Just(i64::MIN),
        any::<i64>()
    ]
}

/// A value of `key`'s own type.
fn typed(key: &str) -> BoxedStrategy<Value> {
    let strings = || prop::collection::vec(string().prop_map(Value::String), 0..4);
    if INT_KEYS.contains(&key) {
        int().prop_map(Value::Integer).boxed()
    } else if BOOL_KEYS.contains(&key) {
        any::<bool>().prop_map(Value::Boolean).boxed()
    } else if LIST_KEYS.contains(&key) {
        strings().prop_map(Value::Array).boxed()
    } else if key == "expected_status" {
        prop::collection::vec(int().prop_map(Value::Integer), 0..3)
            .prop_map(Value::Array)
            .boxed()
    } else if key == "headers" {
        prop::collection::vec(("\\PC{0,8}", string().prop_map(Value::String)), 0..3)
            .prop_map(|pairs| Value::Table(pairs.into_iter().collect()))
            .boxed()
    } else {
        string().prop_map(Value::String).boxed()
    }
}

/// A key of the table (now and then any key) and a value: mostly of the
/// key's own type, so that validation, past deserialisation, is reached.
fn entry(keys: &'static [&'static str]) -> impl Strategy<Value = (String, Value)> {
    let all_keys: Vec<&'static str> = [STRING_KEYS, INT_KEYS, BOOL_KEYS, LIST_KEYS].concat();
    let key = prop_oneof![
        16 => proptest::sample::select(keys).prop_map(str::to_string),
        2 => proptest::sample::select(all_keys).prop_map(str::to_string),
        1 => "\\PC{0,10}",
    ];
    key.prop_flat_map(|key| {
        let value = prop_oneof![12 => typed(&key), 1 => value()];
        (Just(key), value)
    })
}

/// Values of any type, in tables keyed by config words.
fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(
                (
                    proptest::sample::select(STRING_KEYS).prop_map(str::to_string),
                    inner
                ),
                0..8
            )
            .prop_map(|pairs| Value::Table(pairs.into_iter().collect())),
        ]
    })
}

/// A table of `0..n` of `keys` with (mostly right-typed) values.
fn table(keys: &'static [&'static str], n: usize) -> impl Strategy<Value = Value> {
    prop::collection::vec(entry(keys), 0..n)
        .prop_map(|pairs| Value::Table(pairs.into_iter().collect()))
}

/// The keys beacon knows in `table`: the loader's own list, so a key added
/// to the config is thrown at the loader here too.
fn keys(table: &str) -> &'static [&'static str] {
    beacon::config::known_keys(table)
}

/// Of `[backup.keep]`, two: enough to reach the keep policy's checks.
const KEEP: &[&str] = &["last", "daily"];

/// A service: most have a name and a URL (so that the rest is checked),
/// some have dependencies.
fn service() -> impl Strategy<Value = Value> {
    (
        table(keys("service"), 8),
        prop::option::weighted(0.9, "[A-Za-z][A-Za-z0-9 ]{0,12}"),
        prop::option::weighted(0.9, string()),
        prop::collection::vec(table(keys("service"), 5), 0..3),
    )
        .prop_map(|(mut service, name, url, deps)| {
            if let Value::Table(t) = &mut service {
                if let Some(name) = name {
                    t.entry("name").or_insert(Value::String(name));
                }
                if let Some(url) = url {
                    t.entry("url").or_insert(Value::String(url));
                }
                if !deps.is_empty() {
                    t.insert("dependency".into(), Value::Array(deps));
                }
            }
            service
        })
}

/// A whole config: each section, sometimes missing, sometimes of a wrong
/// type; services, groups and channels as arrays of tables.
fn config() -> impl Strategy<Value = Value> {
    let section = |keys: &'static [&'static str]| prop_oneof![12 => table(keys, 5), 1 => leaf()];
    let backup =
        (section(keys("backup")), prop::option::of(table(KEEP, 3))).prop_map(|(mut b, keep)| {
            if let (Value::Table(t), Some(keep)) = (&mut b, keep) {
                t.insert("keep".into(), keep);
            }
            b
        });
    (
        (
            prop::option::of(section(keys("server"))),
            prop::option::of(section(keys("storage"))),
            prop::option::of(section(keys("monitor"))),
            prop::option::of(section(keys("admin"))),
            prop::option::of(section(keys("metrics"))),
            prop::option::weighted(0.3, backup),
            prop::option::weighted(0.1, value()),
        ),
        prop::collection::vec(service(), 0..4),
        prop::collection::vec(table(keys("group"), 3), 0..3),
        prop::collection::vec(table(keys("notify"), 8), 0..3),
    )
        .prop_map(|(sections, services, groups, notify)| {
            let (server, storage, monitor, admin, metrics, backup, other) = sections;
            let mut root = toml::map::Map::new();
            for (name, section) in [
                ("server", server),
                ("storage", storage),
                ("monitor", monitor),
                ("admin", admin),
                ("metrics", metrics),
                ("backup", backup),
                ("other", other),
            ] {
                if let Some(section) = section {
                    root.insert(name.to_string(), section);
                }
            }
            for (name, list) in [("service", services), ("group", groups), ("notify", notify)] {
                if !list.is_empty() {
                    root.insert(name.into(), Value::Array(list));
                }
            }
            Value::Table(root)
        })
}

fn env(name: &str) -> Option<String> {
    (name == "BEACON_TOKEN").then(|| "a-token-from-the-environment".to_string())
}

fn load(text: &str) {
    let start = Instant::now();
    let result = from_toml(text, ConfigSource::Embedded, &env);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(2), "took {took:?} on:\n{text}");
    let Err(e) = result else { return };
    let shown = e.to_string();
    assert!(!shown.trim().is_empty());
    match &e {
        ConfigError::Syntax { message, .. } => {
            // toml names the line and column.
            assert!(message.contains("line"), "no position: {message}");
        }
        ConfigError::Invalid { problems, .. } => {
            assert!(!problems.is_empty(), "invalid, with no problem named");
            for p in problems {
                assert!(!p.trim().is_empty(), "an empty problem in {shown}");
                assert!(
                    p.contains('`')
                        || p.contains('"')
                        || p.contains('[')
                        || p.contains('.')
                        || p.split_whitespace().next().is_some_and(|w| {
                            w.trim_end_matches(':')
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || "_.[]".contains(c))
                        }),
                    "a problem that names no key: {p}"
                );
            }
        }
        ConfigError::Read { .. } => panic!("from_toml read a file: {shown}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn any_bytes_load_or_are_refused_clearly(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        load(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn config_shaped_toml_loads_or_is_refused_clearly(doc in config()) {
        // Some shapes have no TOML text (a table after plain values…).
        if let Ok(text) = toml::to_string(&doc) {
            load(&text);
            // Cut short, as an editor's half-saved file is.
            let cut = text.char_indices().nth(text.chars().count() / 2).map_or(0, |(i, _)| i);
            load(&text[..cut]);
        }
    }
}
