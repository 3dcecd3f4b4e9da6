//! Readers of values that several sections share: durations and bearer
//! tokens, each reporting its problem at the field's place.

use std::time::Duration;

use super::problems::Problems;

/// A duration like `500ms`, `30s`, `5m` or `1h`; the problem names `field`
/// at `place`.
pub fn parse_duration(place: &str, field: &str, text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|_| {
        format!("{place}: {field} \"{text}\" is not a duration (write it like \"500ms\", \"30s\", \"5m\" or \"1h\")")
    })
}

/// A duration when the field is set; `None` when it is not or is wrong
/// (reported).
pub fn optional_duration(
    place: &str,
    field: &str,
    value: &Option<String>,
    problems: &mut Problems,
) -> Option<Duration> {
    let text = value.as_deref()?;
    match parse_duration(place, field, text) {
        Ok(d) => Some(d),
        Err(p) => {
            problems.push(p);
            None
        }
    }
}

/// A bearer token from the config: trimmed, at least 16 characters. `None`
/// (with the problem named at `place`) when too short, or when it still
/// holds an unset `${VAR}` (already reported).
pub fn bearer_token(place: &str, token: &str, problems: &mut Problems) -> Option<String> {
    if token.contains("${") {
        return None;
    }
    if token.trim().len() < 16 {
        problems.push(format!(
            "{place} is shorter than 16 characters; use a long random secret (openssl rand -hex 32)"
        ));
        return None;
    }
    Some(token.trim().to_string())
}
