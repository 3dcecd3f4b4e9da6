//! Time units and the two figures every page, feed, alert and API writes the
//! same way: a duration in words and an uptime percentage.

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;

/// "12 min", "1 h 5 min", "2 days 3 h".
pub fn human_minutes(minutes: i64) -> String {
    let (days, hours, mins) = (minutes / 1440, (minutes % 1440) / 60, minutes % 60);
    match (days, hours, mins) {
        (0, 0, m) => format!("{m} min"),
        (0, h, 0) => format!("{h} h"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, 0, _) => format!("{d} day{}", if d == 1 { "" } else { "s" }),
        (d, h, _) => format!("{d} day{} {h} h", if d == 1 { "" } else { "s" }),
    }
}

/// The one rounding rule for uptime: down, to two decimals, so 99.996 %
/// never shows (or is served in JSON) as a perfect 100 %.
pub fn uptime_shown(percent: f64) -> f64 {
    (percent * 100.0).floor() / 100.0
}

/// Uptime with two decimals, rounded down so 99.996 % never shows as 100 %.
pub fn format_uptime(percent: Option<f64>) -> String {
    match percent {
        None => "No data".to_string(),
        Some(p) => format!("{:.2} %", uptime_shown(p)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        for (minutes, text) in [
            (1, "1 min"),
            (12, "12 min"),
            (60, "1 h"),
            (65, "1 h 5 min"),
            (1440, "1 day"),
            (3 * 1440 + 125, "3 days 2 h"),
        ] {
            assert_eq!(human_minutes(minutes), text);
        }
    }

    #[test]
    fn uptime_never_rounds_up_to_a_perfect_score() {
        assert_eq!(format_uptime(Some(99.996)), "99.99 %");
        assert_eq!(format_uptime(Some(100.0)), "100.00 %");
        assert_eq!(format_uptime(Some(0.0)), "0.00 %");
        assert_eq!(format_uptime(None), "No data");
        assert_eq!(uptime_shown(99.999), 99.99);
    }
}
