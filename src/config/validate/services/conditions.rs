//! Gatus-style conditions, parsed at load so a mistake is reported with
//! its place instead of failing every probe.

use super::super::problems::Problems;
use crate::domain::condition::Condition;

/// `conditions` or `degraded_conditions` (`field`), each parsed.
pub fn conditions(
    place: &str,
    field: &str,
    list: &Option<Vec<String>>,
    problems: &mut Problems,
) -> Vec<Condition> {
    let mut parsed = Vec::new();
    for (i, text) in list.iter().flatten().enumerate() {
        match Condition::parse(text) {
            Ok(_) if text.contains("[DOMAIN_EXPIRATION]") => {
                problems.push(format!(
                    "{place}: {field}[{}]: [DOMAIN_EXPIRATION] is not supported (beacon makes no WHOIS lookups)",
                    i + 1
                ));
            }
            Ok(c) => parsed.push(c),
            Err(e) => problems.push(format!("{place}: {field}[{}]: {e}", i + 1)),
        }
    }
    parsed
}

/// A status is checked one way: by `expected_status` or as a condition.
pub fn check_not_both(
    place: &str,
    conditions: &[Condition],
    expected_status: &[u16],
    problems: &mut Problems,
) {
    if !conditions.is_empty() && !expected_status.is_empty() {
        problems.push(format!(
            "{place}: set either expected_status or conditions (write the status as a condition: \"[STATUS] == 200\")"
        ));
    }
}
