//! Property tests: arbitrary bytes and arbitrary JSON-shaped documents
//! thrown at the health-document parser and at the conditions parser and
//! evaluator. No panic, each case done in bounded time, bounded output, and
//! every refusal a message that says what is wrong.
//!
//! `PROPTEST_CASES` sets the number of cases (proptest reads it; 256 by
//! default, as in CI); `PROPTEST_CASES=20000 cargo test --lib proptests`
//! runs many more by hand.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::Value;

use super::*;
use crate::domain::condition::{failing, Condition, Observed};

/// A case slower than this is a bug (the largest inputs take milliseconds,
/// even unoptimised).
const CASE_DEADLINE: Duration = Duration::from_secs(2);

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    assert!(
        start.elapsed() < CASE_DEADLINE,
        "{what} took {:?}",
        start.elapsed()
    );
    out
}

const FORMATS: [Format; 6] = [
    Format::Auto,
    Format::HealthJson,
    Format::Actuator,
    Format::Simple,
    Format::Kubernetes,
    Format::None,
];

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("application/health+json".to_string())),
        Just(Some("application/json; charset=utf-8".to_string())),
        Just(Some(
            "application/vnd.spring-boot.actuator.v3+json".to_string()
        )),
        Just(Some("text/plain".to_string())),
        "[ -~]{0,40}".prop_map(Some),
    ]
}

/// Words a health document uses, so that generated documents reach deep.
const WORDS: &[&str] = &[
    "status",
    "checks",
    "components",
    "details",
    "dependencies",
    "services",
    "name",
    "component",
    "healthy",
    "state",
    "output",
    "message",
    "error",
    "reason",
    "observedValue",
    "observedUnit",
    "componentId",
    "db:responseTime",
    "cpu:utilization",
    "pass",
    "warn",
    "fail",
    "UP",
    "DOWN",
    "OUT_OF_SERVICE",
    "UNKNOWN",
    "ok",
    "degraded",
    "",
];

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(WORDS).prop_map(str::to_string),
        1 => "\\PC{0,12}",
        1 => "[a-z:]{1,200}",
    ]
}

/// JSON values whose keys and strings are mostly health-document words.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        word().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 300, 12, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..12).prop_map(Value::Array),
            prop::collection::vec((word(), inner), 0..12)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// Kubernetes-style lines, mixed with noise.
fn kubernetes_text() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        "\\[\\+\\][a-z-]{0,20}( ok)?",
        "\\[-\\][a-z-]{0,20}( failed: [ -~]{0,30})?",
        Just("healthz check passed".to_string()),
        Just("livez check failed".to_string()),
        "\\PC{0,30}",
    ];
    prop::collection::vec(line, 0..40).prop_map(|lines| lines.join("\n"))
}

/// What every document the parser returns must be, whatever the input.
fn check_doc(doc: &HealthDoc) {
    assert!(doc.dependencies.len() <= MAX_DEPENDENCIES);
    for d in &doc.dependencies {
        // Cut at a character boundary, "…" (3 bytes) marking the cut.
        assert!(
            d.name.len() <= crate::domain::text::MAX_NAME_BYTES + 3,
            "{d:?}"
        );
        if let Some(output) = &d.output {
            assert!(output.chars().count() <= 81, "{d:?}");
        }
    }
    // The verdict is never better than what the document says.
    assert!(doc.effective() >= doc.health);
}

fn check_refusal(message: &str) {
    assert!(!message.trim().is_empty(), "an empty refusal");
    assert!(
        message.contains("health")
            || message.contains("JSON")
            || message.contains("Kubernetes")
            || message.contains("status"),
        "a refusal that does not say what: {message}"
    );
    assert!(message.chars().count() < 400, "{message}");
}

fn parse_all_formats(ct: Option<&str>, body: &[u8]) {
    for format in FORMATS {
        match timed("parse", || parse(ct, body, format)) {
            Ok(Some(doc)) => check_doc(&doc),
            Ok(None) => {}
            Err(message) => check_refusal(&message),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn any_bytes_parse_or_are_refused_clearly(
        ct in content_type(),
        body in prop::collection::vec(any::<u8>(), 0..4096),
    ) {
        parse_all_formats(ct.as_deref(), &body);
    }

    #[test]
    fn json_shaped_documents_parse_or_are_refused_clearly(
        ct in content_type(),
        doc in json_value(),
    ) {
        let body = serde_json::to_vec(&doc).unwrap_or_default();
        parse_all_formats(ct.as_deref(), &body);
        // Cut anywhere, as the 64 KiB read limit cuts a body.
        let cut = body.len() / 2;
        parse_all_formats(ct.as_deref(), &body[..cut]);
    }

    #[test]
    fn kubernetes_text_parses_or_is_refused_clearly(text in kubernetes_text()) {
        parse_all_formats(Some("text/plain"), text.as_bytes());
    }

    /// However many a document reports, at most MAX_DEPENDENCIES are kept,
    /// and they are the worst: every failing one while there is room.
    #[test]
    fn the_worst_dependencies_are_the_ones_kept(
        healths in prop::collection::vec(prop::sample::select(&Health::ALL[..]), 0..400),
        long_names in any::<bool>(),
    ) {
        let checks: serde_json::Map<String, Value> = healths
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let name = if long_names { format!("{i}-{}", "n".repeat(150)) } else { format!("dep{i}") };
                (name, Value::String(h.as_str().into()))
            })
            .collect();
        let body = serde_json::json!({"status": "pass", "checks": checks}).to_string();
        let doc = parse(None, body.as_bytes(), Format::Simple)
            .map_err(TestCaseError::fail)?
            .ok_or_else(|| TestCaseError::fail("no document"))?;
        check_doc(&doc);
        prop_assert_eq!(doc.dependencies.len(), healths.len().min(MAX_DEPENDENCIES));
        prop_assert_eq!(doc.omitted, healths.len().saturating_sub(MAX_DEPENDENCIES));
        for worst in [Health::Fail, Health::Warn] {
            let reported = healths.iter().filter(|h| **h >= worst).count();
            let kept = doc.dependencies.iter().filter(|d| d.health >= worst).count();
            prop_assert_eq!(kept, reported.min(MAX_DEPENDENCIES));
        }
        let worst_reported = healths.iter().max().copied();
        prop_assert_eq!(doc.dependencies.iter().map(|d| d.health).max(), worst_reported);
    }
}

/// Condition texts built from Gatus's vocabulary, and noise.
fn condition_text() -> impl Strategy<Value = String> {
    let operand = prop_oneof![
        Just("[STATUS]".to_string()),
        Just("[BODY]".to_string()),
        Just("[RESPONSE_TIME]".to_string()),
        Just("[IP]".to_string()),
        Just("[CONNECTED]".to_string()),
        Just("[CERTIFICATE_EXPIRATION]".to_string()),
        Just("[DOMAIN_EXPIRATION]".to_string()),
        Just("[DNS_RCODE]".to_string()),
        "\\[BODY\\](\\.[a-z]{0,4}(\\[-?[0-9]{0,3}\\])?){0,4}",
        "len\\(\\[BODY\\][.a-z\\[\\]0-9]{0,12}\\)",
        "has\\(\\[BODY\\][.a-z]{0,8}\\)",
        "pat\\([*?\\[\\]^a-z\\\\-]{0,12}\\)",
        "any\\(([0-9a-z]{0,4}, ){0,3}[0-9a-z]{0,4}\\)",
        "-?[0-9]{0,20}",
        "0[xob][0-9a-f_]{0,20}",
        "-?[0-9]{0,12}(ns|us|µs|ms|s|m|h){1,3}",
        "\\PC{0,16}",
    ];
    let op =
        proptest::sample::select(&[" == ", " != ", " <= ", " >= ", " < ", " > ", " ", "=="][..]);
    prop_oneof![
        4 => (operand.clone(), op, operand).prop_map(|(l, o, r)| format!("{l}{o}{r}")),
        1 => "\\PC{0,60}",
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap_or_default()),
        prop::collection::vec(any::<u8>(), 0..512),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn conditions_parse_and_evaluate_without_panic(
        text in condition_text(),
        body in body(),
        status in any::<u16>(),
        response_time_ms in any::<i64>(),
        cert in any::<i64>(),
        flags in any::<(bool, bool, bool)>(),
    ) {
        let condition = match timed("condition parse", || Condition::parse(&text)) {
            Ok(c) => c,
            Err(message) => {
                prop_assert!(message.contains("condition") && message.contains("operator"), "{}", message);
                return Ok(());
            }
        };
        let observed = Observed {
            status,
            body: &body,
            response_time_ms,
            ip: "127.0.0.1",
            connected: flags.0,
            certificate_expiration_ms: cert,
            domain_expiration_ms: cert,
            dns_rcode: "NOERROR",
        };
        let outcome = timed("condition evaluate", || {
            condition.evaluate_with(&observed, flags.1, flags.2)
        });
        prop_assert!(!outcome.text.is_empty());
        timed("failing", || failing(std::slice::from_ref(&condition), &observed));
    }
}
