//! The admin API's reading of bodies and ids, and the domain's input rules
//! as the handlers reach them (parsed from bytes, then checked).

use super::body::{parse_body, parse_id};
use crate::domain::input::*;
use crate::web::error::ApiError;

fn bad_request_field(e: ApiError) -> Option<String> {
    match e {
        ApiError::BadRequest { field, .. } => field,
        other => panic!("not a 400: {other:?}"),
    }
}

#[test]
fn body_errors_name_the_field() {
    let field = |body: &str| {
        bad_request_field(
            parse_body::<IncidentForm>(body.as_bytes())
                .err()
                .unwrap_or_else(|| panic!("{body} accepted")),
        )
    };
    assert_eq!(field(r#"{"title":5}"#).as_deref(), Some("title"));
    assert_eq!(
        field(r#"{"title":"t","impact":"minor","message":"m","services":["a",3]}"#).as_deref(),
        Some("services[1]")
    );
    assert_eq!(
        field(r#"{"impact":"minor","message":"m"}"#).as_deref(),
        Some("title")
    );
    assert_eq!(
        field(r#"{"title":"t","impact":"minor","message":"m","colour":1}"#).as_deref(),
        Some("colour")
    );
    assert_eq!(field("{not json"), None);
    assert_eq!(
        field(r#"{"title":"t","impact":"minor","message":"m"} {}"#),
        None
    );
}

#[test]
fn ids_are_plain_digits() {
    assert_eq!(parse_id("42").ok(), Some(42));
    assert_eq!(parse_id("007").ok(), Some(7));
    for bad in [
        "+1",
        "-1",
        " 1",
        "1 ",
        "",
        "1e3",
        "0x1",
        "１",
        "99999999999999999999",
    ] {
        assert_eq!(
            parse_id(bad).err().and_then(bad_request_field).as_deref(),
            Some("id"),
            "{bad:?}"
        );
    }
}

/// Property tests of the bodies' deserialise + validate functions, as
/// the handlers and the CLI call them. `PROPTEST_CASES` sets the count.
mod props {
    use std::time::{Duration, Instant};

    use proptest::prelude::*;
    // Not the `any` routing function of the module under test.
    use proptest::prelude::any;
    use serde_json::Value;

    use super::*;
    use crate::domain::INCIDENT_STATUSES as STATUSES;

    const FIELDS: &[&str] = &[
        "title",
        "impact",
        "status",
        "message",
        "services",
        "postmortem",
        "starts_at",
        "ends_at",
    ];

    /// Strings that reach every rule: words that pass, blanks, control
    /// and non-characters, NULs, lengths around the limits, times.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            proptest::sample::select(
                &[
                    "minor",
                    "critical",
                    "investigating",
                    "resolved",
                    "checkout-api",
                    "2026-03-12T22:00:00Z",
                    "2026-03-12T23:00:00+01:00",
                    "9999-12-31T23:59:59Z",
                    "",
                    " ",
                    "\u{0}",
                    "\u{FFFF}",
                    "\u{FFFE}\u{1}",
                    "a\u{0}b",
                    "\t\r\n",
                ][..]
            )
            .prop_map(str::to_string),
            "\\PC{0,40}",
            "[\\x00-\\x1f\\u{FFFE}\\u{FFFF} a]{0,40}",
            (1usize..12_000).prop_map(|n| "é".repeat(n / 2)),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            1 => Just(Value::Null),
            1 => any::<bool>().prop_map(Value::Bool),
            1 => any::<i64>().prop_map(Value::from),
            1 => any::<f64>().prop_map(Value::from),
            4 => text().prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 40, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec(
                    (
                        proptest::sample::select(FIELDS).prop_map(str::to_string),
                        inner
                    ),
                    0..6
                )
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
            ]
        })
    }

    /// Objects with the API's field names (and sometimes others).
    fn body() -> impl Strategy<Value = Vec<u8>> {
        let key = prop_oneof![
            6 => proptest::sample::select(FIELDS).prop_map(str::to_string),
            1 => "\\PC{0,8}",
        ];
        let field = prop_oneof![
            3 => text().prop_map(Value::String),
            1 => prop::collection::vec(text().prop_map(Value::String), 0..4).prop_map(Value::Array),
            1 => value(),
        ];
        prop_oneof![
            6 => prop::collection::vec((key, field), 0..8).prop_map(|pairs| {
                serde_json::to_vec(&Value::Object(pairs.into_iter().collect())).unwrap_or_default()
            }),
            1 => value().prop_map(|v| serde_json::to_vec(&v).unwrap_or_default()),
            1 => prop::collection::vec(any::<u8>(), 0..256),
        ]
    }

    /// Every refusal says what is wrong: a field, or where in the body.
    fn check_refusal(e: ApiError) -> Result<(), TestCaseError> {
        match e {
            ApiError::Invalid { field, message } => {
                prop_assert!(!field.is_empty() && !message.trim().is_empty());
            }
            ApiError::BadRequest { field, message } => {
                prop_assert!(!message.trim().is_empty());
                prop_assert!(
                    field.as_deref().is_some_and(|f| !f.is_empty()) || message.contains("line "),
                    "neither a field nor a position: {}",
                    message
                );
            }
            other => prop_assert!(false, "unexpected refusal {:?}", other),
        }
        Ok(())
    }

    fn check_text(text: &str, max: usize) -> Result<(), TestCaseError> {
        prop_assert!(!text.trim().is_empty() && text.len() <= max);
        prop_assert!(!text.chars().any(xml_forbidden), "{:?}", text);
        Ok(())
    }

    fn timed<T>(f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "took {:?}",
            start.elapsed()
        );
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::default())]

        #[test]
        fn new_incidents_are_clean_or_refused_clearly(bytes in body()) {
            match timed(|| parse_body::<IncidentForm>(&bytes).and_then(|b| Ok(new_incident(b, 0)?))) {
                Ok(new) => {
                    check_text(&new.title, MAX_TITLE_BYTES)?;
                    prop_assert_eq!(new.title.trim(), new.title.as_str());
                    check_text(&new.message, MAX_MESSAGE_BYTES)?;
                    prop_assert!(!new.services.iter().any(|s| s.contains('\0')));
                }
                Err(e) => check_refusal(e)?,
            }
        }

        #[test]
        fn updates_are_clean_or_refused_clearly(bytes in body()) {
            match timed(|| parse_body::<UpdateForm>(&bytes).and_then(|b| Ok(incident_update(b)?))) {
                Ok(update) => {
                    check_text(&update.message, MAX_MESSAGE_BYTES)?;
                    prop_assert!(STATUSES.contains(&update.status.as_str()));
                }
                Err(e) => check_refusal(e)?,
            }
        }

        #[test]
        fn incident_edits_are_clean_or_refused_clearly(bytes in body()) {
            match timed(|| parse_body::<IncidentEditForm>(&bytes).and_then(|b| Ok(incident_patch(b)?))) {
                Ok(patch) => {
                    if let Some(title) = &patch.title {
                        check_text(title, MAX_TITLE_BYTES)?;
                    }
                    if let Some(postmortem) = &patch.postmortem {
                        check_text(postmortem, MAX_POSTMORTEM_BYTES)?;
                    }
                }
                Err(e) => check_refusal(e)?,
            }
        }

        #[test]
        fn maintenances_are_clean_or_refused_clearly(bytes in body(), edit in any::<bool>()) {
            let current = MaintenanceInput {
                title: "Upgrade".into(),
                message: "Slow.".into(),
                starts_at: 0,
                ends_at: 3_600_000,
                services: vec!["db".into()],
            };
            let current = edit.then_some(&current);
            match timed(|| parse_body::<MaintenanceForm>(&bytes).and_then(|b| Ok(maintenance_input(b, current)?))) {
                Ok(input) => {
                    check_text(&input.title, MAX_TITLE_BYTES)?;
                    check_text(&input.message, MAX_MESSAGE_BYTES)?;
                    prop_assert!(input.ends_at > input.starts_at);
                    prop_assert!(!input.services.is_empty());
                }
                Err(e) => check_refusal(e)?,
            }
        }

        #[test]
        fn path_ids_are_plain_digits_or_refused(raw in "\\PC{0,24}|[+-]?[0-9]{0,22}") {
            match timed(|| parse_id(&raw)) {
                Ok(id) => {
                    prop_assert!(raw.bytes().all(|b| b.is_ascii_digit()));
                    prop_assert_eq!(raw.parse::<i64>().ok(), Some(id));
                }
                Err(e) => check_refusal(e)?,
            }
        }
    }
}
