//! What DNS and TLS probes expect: the addresses a name resolves to, and
//! the certificate days left under which a probe is degraded or down.

use super::super::problems::Problems;
use crate::config::raw::RawService;
use crate::config::ServiceConfig;

/// `dns_expect`: IP addresses.
pub fn dns_expect(s: &RawService, place: &str, problems: &mut Problems) -> Vec<std::net::IpAddr> {
    let mut expected = Vec::new();
    for text in s.dns_expect.iter().flatten() {
        match text.parse::<std::net::IpAddr>() {
            Ok(ip) => expected.push(ip),
            Err(_) => problems.push(format!(
                "{place}: dns_expect \"{text}\" is not an IP address"
            )),
        }
    }
    expected
}

/// `tls_warn_days` and `tls_fail_days`; failing comes no earlier than
/// warning.
pub fn tls_days(s: &RawService, place: &str, problems: &mut Problems) -> (i64, i64) {
    let warn = day_bound(
        place,
        "tls_warn_days",
        s.tls_warn_days,
        ServiceConfig::DEFAULT_TLS_WARN_DAYS,
        problems,
    );
    let fail = day_bound(
        place,
        "tls_fail_days",
        s.tls_fail_days,
        ServiceConfig::DEFAULT_TLS_FAIL_DAYS,
        problems,
    );
    if fail > warn {
        problems.push(format!(
            "{place}: tls_fail_days ({fail}) must not be more than tls_warn_days ({warn})"
        ));
    }
    (warn, fail)
}

fn day_bound(
    place: &str,
    field: &str,
    value: Option<i64>,
    default: i64,
    problems: &mut Problems,
) -> i64 {
    match value {
        None => default,
        Some(d) if (0..=3650).contains(&d) => d,
        Some(d) => {
            problems.push(format!("{place}: {field} ({d}) must be between 0 and 3650"));
            default
        }
    }
}
