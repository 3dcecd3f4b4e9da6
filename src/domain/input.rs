//! The rules for what people write by hand: incidents, their updates and
//! maintenance windows. The admin API and the CLI both check their input
//! here, so `beacon incident open` trims, limits and refuses exactly as
//! `POST /admin/api/incidents` does.
//!
//! A *form* is what was given, unchecked (the API deserialises its body
//! into one, the CLI fills one from its options); the functions below turn
//! a form into what the store writes, or name the field that is wrong.

use std::fmt;

use serde::Deserialize;

use super::state::{INCIDENT_IMPACTS as IMPACTS, INCIDENT_STATUSES as STATUSES};

/// Longest title, in bytes (after cleaning and trimming).
pub const MAX_TITLE_BYTES: usize = 200;
/// Longest message of an incident update or a maintenance window.
pub const MAX_MESSAGE_BYTES: usize = 10_000;
/// Longest postmortem.
pub const MAX_POSTMORTEM_BYTES: usize = 100_000;

/// A field's value is not accepted. `field` is the API's name for it
/// (`title`, `starts_at`, `services`); the CLI names it as its option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidInput {
    pub field: &'static str,
    pub message: String,
}

impl InvalidInput {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        InvalidInput {
            field,
            message: message.into(),
        }
    }
}

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for InvalidInput {}

/// A hand-made incident with its first update, checked.
#[derive(Debug, Clone)]
pub struct NewIncident {
    pub title: String,
    pub impact: String,
    pub status: String,
    pub message: String,
    pub services: Vec<String>,
    pub at: i64,
    /// Whether subscribers are told (alert channels are either way).
    pub notify: bool,
}

/// Fields an edit may change; `None` leaves one as it is.
#[derive(Debug, Clone, Default)]
pub struct IncidentPatch {
    pub title: Option<String>,
    pub impact: Option<String>,
    pub postmortem: Option<String>,
    pub services: Option<Vec<String>>,
}

/// A new maintenance window, or the full new content of an existing one.
#[derive(Debug, Clone)]
pub struct MaintenanceInput {
    pub title: String,
    pub message: String,
    pub starts_at: i64,
    pub ends_at: i64,
    pub services: Vec<String>,
}

/// An incident update, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUpdate {
    pub status: String,
    pub message: String,
    pub notify: bool,
}

/// `POST /admin/api/incidents`, and `beacon incident open`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentForm {
    pub title: String,
    pub impact: String,
    #[serde(default = "investigating")]
    pub status: String,
    pub message: String,
    #[serde(default)]
    pub services: Vec<String>,
    /// `false`: posted without telling subscribers ("do not notify").
    #[serde(default = "yes")]
    pub notify: bool,
}

fn yes() -> bool {
    true
}

fn investigating() -> String {
    "investigating".into()
}

/// `POST /admin/api/incidents/{id}/updates`, and `beacon incident update`
/// and `resolve`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateForm {
    pub status: String,
    pub message: String,
    /// `false`: posted without telling subscribers ("do not notify").
    #[serde(default = "yes")]
    pub notify: bool,
}

/// `PATCH /admin/api/incidents/{id}`: absent fields keep their value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentEditForm {
    pub title: Option<String>,
    pub impact: Option<String>,
    pub postmortem: Option<String>,
    pub services: Option<Vec<String>>,
}

/// A maintenance window. Every field is optional, so one form serves
/// create (all required, checked by [`maintenance_input`]) and edit
/// (absent fields keep their value): the API's POST and PATCH, and
/// `beacon maintenance schedule` and `edit`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceForm {
    pub title: Option<String>,
    pub message: Option<String>,
    pub starts_at: Option<String>,
    pub ends_at: Option<String>,
    pub services: Option<Vec<String>>,
}

/// `POST /admin/api/subscribers`, and `beacon subscribers add`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriberForm {
    /// email · webhook · slack
    pub kind: String,
    /// The email address, or the webhook's or Slack's URL.
    pub address: String,
    /// Service slugs and group names to follow; absent or empty: all.
    #[serde(default)]
    pub components: Vec<String>,
    /// A webhook's HMAC secret; made for it when not given.
    #[serde(default)]
    pub secret: Option<String>,
}

/// A subscriber an operator adds, checked (the components are checked
/// against the services by the caller, which has the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubscriber {
    pub kind: String,
    pub address: String,
    pub components: Option<Vec<String>>,
    pub secret: Option<String>,
}

/// An email address as stored: trimmed, lower-cased, checked.
pub fn clean_address(raw: &str) -> Result<String, InvalidInput> {
    let bad = |m: &str| InvalidInput::new("address", m);
    let address = raw.trim().to_lowercase();
    if address.is_empty() {
        return Err(bad("enter an email address"));
    }
    if address.len() > 254 {
        return Err(bad("an email address has at most 254 characters"));
    }
    let valid = address.parse::<lettre::Address>().is_ok()
        && address
            .rsplit_once('@')
            .is_some_and(|(_, domain)| domain.contains('.'))
        && !address.chars().any(|c| c.is_control() || c.is_whitespace());
    if !valid {
        return Err(bad("this is not an email address like name@example.com"));
    }
    Ok(address)
}

pub fn subscriber(form: SubscriberForm) -> Result<NewSubscriber, InvalidInput> {
    let kind = form.kind.trim().to_string();
    let address = match kind.as_str() {
        "email" => clean_address(&form.address)?,
        "webhook" | "slack" => {
            let url = url::Url::parse(form.address.trim()).map_err(|e| {
                InvalidInput::new(
                    "address",
                    format!("not a URL ({e}): give the full https:// URL"),
                )
            })?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(InvalidInput::new(
                    "address",
                    "must be an http:// or https:// URL",
                ));
            }
            if url.as_str().len() > 2000 {
                return Err(InvalidInput::new(
                    "address",
                    "a URL has at most 2000 characters",
                ));
            }
            url.to_string()
        }
        other => {
            return Err(InvalidInput::new(
                "kind",
                format!("\"{other}\" is not one of email, webhook, slack"),
            ))
        }
    };
    let secret = match form.secret {
        Some(s) if kind != "webhook" => {
            let _ = s;
            return Err(InvalidInput::new("secret", "only a webhook has a secret"));
        }
        Some(s) if s.trim().len() < 16 || s.len() > 200 => {
            return Err(InvalidInput::new("secret", "must be 16 to 200 characters"))
        }
        other => other.map(|s| s.trim().to_string()),
    };
    let mut components: Vec<String> = Vec::new();
    for c in form.components {
        let c = c.trim().to_string();
        if c.is_empty() || c.len() > 200 || c.contains('\0') {
            return Err(InvalidInput::new(
                "components",
                "a component is a service slug or a group name",
            ));
        }
        if !components.contains(&c) {
            components.push(c);
        }
    }
    Ok(NewSubscriber {
        kind,
        address,
        components: (!components.is_empty()).then_some(components),
        secret,
    })
}

/// Whether XML 1.0 forbids `c` anywhere in a document (its `Char`
/// production): the C0 controls but tab, LF and CR, and U+FFFE, U+FFFF.
/// Surrogates cannot occur in a Rust string. Text written by hand reaches
/// the Atom and RSS feeds, so it is cleaned of these.
pub fn xml_forbidden(c: char) -> bool {
    matches!(
        c,
        '\u{0}'..='\u{8}' | '\u{B}' | '\u{C}' | '\u{E}'..='\u{1F}' | '\u{FFFE}' | '\u{FFFF}'
    )
}

fn one_of(field: &'static str, value: &str, allowed: &[&str]) -> Result<(), InvalidInput> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(InvalidInput::new(
            field,
            format!("\"{value}\" is not one of {}", allowed.join(", ")),
        ))
    }
}

/// The one rule for text written by hand, admin API and CLI alike:
/// - a NUL is refused (PostgreSQL cannot store one; SQLite would, so both
///   stores answer the same);
/// - the other characters XML 1.0 forbids ([`xml_forbidden`]) are removed:
///   the text reaches the Atom and RSS feeds;
/// - what is left must not be blank, and at most `max` bytes.
///
/// Returns the text to store.
pub fn clean_text(field: &'static str, value: &str, max: usize) -> Result<String, InvalidInput> {
    if value.contains('\0') {
        return Err(InvalidInput::new(
            field,
            "must not contain a NUL character (U+0000)",
        ));
    }
    let cleaned: String = value.chars().filter(|c| !xml_forbidden(*c)).collect();
    if cleaned.trim().is_empty() {
        Err(InvalidInput::new(field, "must not be empty"))
    } else if cleaned.len() > max {
        Err(InvalidInput::new(
            field,
            format!("is longer than {max} bytes"),
        ))
    } else {
        Ok(cleaned)
    }
}

/// A title: [`clean_text`], trimmed.
pub fn clean_title(value: &str) -> Result<String, InvalidInput> {
    clean_text("title", value.trim(), MAX_TITLE_BYTES).map(|t| t.trim().to_string())
}

/// Service slugs as given; one with a NUL names no service (and
/// PostgreSQL could not even look it up).
fn clean_slugs(services: Vec<String>) -> Result<Vec<String>, InvalidInput> {
    if services.iter().any(|s| s.contains('\0')) {
        return Err(InvalidInput::new(
            "services",
            "a slug must not contain a NUL character (U+0000)",
        ));
    }
    Ok(services)
}

/// Checks a new incident, opened at `at` (ms).
pub fn new_incident(form: IncidentForm, at: i64) -> Result<NewIncident, InvalidInput> {
    let title = clean_title(&form.title)?;
    one_of("impact", &form.impact, IMPACTS)?;
    one_of("status", &form.status, STATUSES)?;
    let message = clean_text("message", &form.message, MAX_MESSAGE_BYTES)?;
    Ok(NewIncident {
        title,
        impact: form.impact,
        status: form.status,
        message,
        services: clean_slugs(form.services)?,
        at,
        notify: form.notify,
    })
}

/// Checks an update; returns it with its message cleaned.
pub fn incident_update(form: UpdateForm) -> Result<NewUpdate, InvalidInput> {
    one_of("status", &form.status, STATUSES)?;
    let message = clean_text("message", &form.message, MAX_MESSAGE_BYTES)?;
    Ok(NewUpdate {
        status: form.status,
        message,
        notify: form.notify,
    })
}

/// Checks an edit (all but "a postmortem needs a resolved incident",
/// which needs the store).
pub fn incident_patch(form: IncidentEditForm) -> Result<IncidentPatch, InvalidInput> {
    if let Some(impact) = &form.impact {
        one_of("impact", impact, IMPACTS)?;
    }
    Ok(IncidentPatch {
        title: form.title.as_deref().map(clean_title).transpose()?,
        impact: form.impact,
        postmortem: form
            .postmortem
            .as_deref()
            .map(|p| clean_text("postmortem", p, MAX_POSTMORTEM_BYTES))
            .transpose()?,
        services: form.services.map(clean_slugs).transpose()?,
    })
}

fn rfc3339(field: &'static str, value: &str) -> Result<i64, InvalidInput> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            InvalidInput::new(
                field,
                format!("\"{value}\" is not an RFC 3339 time like 2026-03-12T22:00:00Z"),
            )
        })
}

/// Merges `form` over `current` (the window as stored, when editing) and
/// checks the result.
pub fn maintenance_input(
    form: MaintenanceForm,
    current: Option<&MaintenanceInput>,
) -> Result<MaintenanceInput, InvalidInput> {
    let required = |field: &'static str, value: Option<String>, current: Option<String>| {
        value
            .or(current)
            .ok_or_else(|| InvalidInput::new(field, "is required"))
    };
    let title = required("title", form.title, current.map(|m| m.title.clone()))?;
    let message = required("message", form.message, current.map(|m| m.message.clone()))?;
    let title = clean_title(&title)?;
    let message = clean_text("message", &message, MAX_MESSAGE_BYTES)?;
    let starts_at = match form.starts_at {
        Some(t) => rfc3339("starts_at", &t)?,
        None => current
            .map(|m| m.starts_at)
            .ok_or_else(|| InvalidInput::new("starts_at", "is required"))?,
    };
    let ends_at = match form.ends_at {
        Some(t) => rfc3339("ends_at", &t)?,
        None => current
            .map(|m| m.ends_at)
            .ok_or_else(|| InvalidInput::new("ends_at", "is required"))?,
    };
    if ends_at <= starts_at {
        return Err(InvalidInput::new("ends_at", "must be after starts_at"));
    }
    let services = clean_slugs(
        form.services
            .or_else(|| current.map(|m| m.services.clone()))
            .unwrap_or_default(),
    )?;
    if services.is_empty() {
        return Err(InvalidInput::new("services", "name at least one service"));
    }
    Ok(MaintenanceInput {
        title,
        message,
        starts_at,
        ends_at,
        services,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of<T: fmt::Debug>(result: Result<T, InvalidInput>) -> &'static str {
        match result {
            Err(e) => e.field,
            Ok(v) => panic!("accepted: {v:?}"),
        }
    }

    #[test]
    fn text_written_by_hand_is_cleaned_of_what_xml_forbids_and_nul_is_refused() {
        assert_eq!(
            clean_title("  Payments\u{FFFE} delayed\u{FFFF}\u{1} ").ok(),
            Some("Payments delayed".to_string())
        );
        assert_eq!(
            clean_text("message", "a\tb\r\nc\u{B}", 100).ok(),
            Some("a\tb\r\nc".to_string())
        );
        for (field, result) in [
            ("title", clean_title("a\0b")),
            ("message", clean_text("message", "\0", 100)),
            ("title", clean_title("\u{FFFF}\u{FFFE} ")),
            ("title", clean_title(&"x".repeat(201))),
        ] {
            assert_eq!(field_of(result), field);
        }
    }

    #[test]
    fn a_title_of_exactly_the_limit_passes_after_trimming() {
        let title = format!("  {}  ", "x".repeat(MAX_TITLE_BYTES));
        assert_eq!(clean_title(&title).ok(), Some("x".repeat(MAX_TITLE_BYTES)));
    }

    fn form(title: &str, impact: &str, status: &str, message: &str) -> IncidentForm {
        IncidentForm {
            title: title.into(),
            impact: impact.into(),
            status: status.into(),
            message: message.into(),
            services: vec![],
            notify: true,
        }
    }

    #[test]
    fn a_new_incident_names_the_first_field_that_is_wrong() {
        for (f, field) in [
            (form(" ", "minor", "investigating", "m"), "title"),
            (form("t", "huge", "investigating", "m"), "impact"),
            (form("t", "minor", "fixed", "m"), "status"),
            (form("t", "minor", "investigating", "\u{1}"), "message"),
        ] {
            assert_eq!(field_of(new_incident(f, 0)), field);
        }
        let mut nul = form("t", "minor", "investigating", "m");
        nul.services = vec!["a\0".into()];
        assert_eq!(field_of(new_incident(nul, 0)), "services");
        let ok = new_incident(form("  Slow  ", "minor", "identified", "m"), 7);
        let ok = ok.expect("accepted");
        assert_eq!((ok.title.as_str(), ok.at), ("Slow", 7));
    }

    #[test]
    fn an_edit_checks_only_the_fields_it_gives() {
        let edit = |impact: Option<&str>, postmortem: Option<&str>| IncidentEditForm {
            title: None,
            impact: impact.map(str::to_string),
            postmortem: postmortem.map(str::to_string),
            services: None,
        };
        let patch = incident_patch(edit(None, None)).expect("empty edit");
        assert!(patch.title.is_none() && patch.impact.is_none());
        assert_eq!(field_of(incident_patch(edit(Some("bad"), None))), "impact");
        let long = "p".repeat(MAX_POSTMORTEM_BYTES + 1);
        assert_eq!(
            field_of(incident_patch(edit(None, Some(&long)))),
            "postmortem"
        );
    }

    #[test]
    fn maintenance_merges_over_the_current_window_and_checks_the_result() {
        let current = MaintenanceInput {
            title: "Upgrade".into(),
            message: "Slow.".into(),
            starts_at: 0,
            ends_at: 3_600_000,
            services: vec!["db".into()],
        };
        assert_eq!(
            field_of(maintenance_input(MaintenanceForm::default(), None)),
            "title"
        );
        let kept = maintenance_input(MaintenanceForm::default(), Some(&current)).expect("kept");
        assert_eq!(
            (kept.ends_at, kept.services),
            (3_600_000, vec!["db".into()])
        );
        let backwards = MaintenanceForm {
            ends_at: Some("1970-01-01T00:00:00Z".into()),
            ..MaintenanceForm::default()
        };
        assert_eq!(
            field_of(maintenance_input(backwards, Some(&current))),
            "ends_at"
        );
        let not_a_time = MaintenanceForm {
            starts_at: Some("tomorrow".into()),
            ..MaintenanceForm::default()
        };
        assert_eq!(
            field_of(maintenance_input(not_a_time, Some(&current))),
            "starts_at"
        );
        let no_services = MaintenanceForm {
            services: Some(vec![]),
            ..MaintenanceForm::default()
        };
        assert_eq!(
            field_of(maintenance_input(no_services, Some(&current))),
            "services"
        );
    }
}
