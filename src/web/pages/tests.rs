//! The pages' pure parts: relative times, the 90-day bar, the charts.

use super::ago;
use super::bars::*;
use super::service::latency_svg;
use crate::domain::State;
use crate::snapshot::Day;
use chrono::TimeZone;
use chrono::Utc;

#[test]
fn relative_times_read_naturally() {
    let now = Utc
        .with_ymd_and_hms(2026, 3, 12, 12, 0, 0)
        .single()
        .expect("valid");
    let at = |secs: i64| now - chrono::Duration::seconds(secs);
    assert_eq!(ago(at(12), now), "12 s ago");
    assert_eq!(ago(at(180), now), "3 min ago");
    assert_eq!(ago(at(5 * 3600), now), "5 h ago");
    assert_eq!(ago(at(2 * 86_400), now), "2 days ago");
    assert_eq!(ago(at(-5), now), "0 s ago");
}

#[test]
fn quiet_runs_share_a_rect_and_eventful_days_keep_their_own() {
    let start = Utc
        .with_ymd_and_hms(2026, 3, 1, 0, 0, 0)
        .single()
        .expect("valid");
    // Uptime as (up, down) checks of the day.
    let day = |n: i64, worst: State, checks: Option<(i64, i64)>, incidents: u16| {
        let date = (start + chrono::Duration::days(n)).date_naive();
        let mut day = match checks {
            Some((up, down)) => Day::of(
                date,
                &crate::store::rollup::Rollup {
                    up,
                    down,
                    ..Default::default()
                },
            ),
            None => Day::empty(date),
        };
        day.worst = worst;
        day.incidents = incidents;
        day
    };
    let mut days: Vec<Day> = (0..5).map(|n| day(n, State::Unknown, None, 0)).collect();
    days.extend((5..15).map(|n| {
        day(
            n,
            State::Up,
            Some(if n == 9 { (199, 1) } else { (200, 0) }),
            0,
        )
    }));
    days.push(day(15, State::Down, Some((195, 5)), 1));
    days.push(day(16, State::Up, Some((200, 0)), 1));
    days.extend((17..20).map(|n| day(n, State::Up, Some((200, 0)), 0)));

    let compact = compact_bar_days(&days);
    assert_eq!(compact.matches("<i ").count(), 5, "{compact}");
    assert!(
        compact.contains(r#"<i class="unknown" style="--n:5" title="1 Mar – 5 Mar: no data"></i>"#)
    );
    assert!(compact.contains(
        r#"<i class="up" style="--n:10" title="6 Mar – 15 Mar: 99.50 % to 100.00 % uptime a day, no incidents"></i>"#
    ));
    assert!(compact.contains(r#"<i class="down" title="16 Mar: 97.50 % uptime, 1 incident"></i>"#));
    assert!(compact.contains(r#"<i class="up" title="17 Mar: 100.00 % uptime, 1 incident"></i>"#));
    assert!(compact.contains(
        r#"<i class="up" style="--n:3" title="18 Mar – 20 Mar: 100.00 % uptime, no incidents"></i>"#
    ));
    // Days that say the same are one run, eventful or not.
    let mut outage: Vec<Day> = (0..4)
        .map(|n| day(n, State::Down, Some((195, 5)), 1))
        .collect();
    outage.push(day(4, State::Down, Some((190, 10)), 1));
    let compact = compact_bar_days(&outage);
    assert_eq!(compact.matches("<i ").count(), 2, "{compact}");
    assert!(compact.contains(
        r#"<i class="down" style="--n:4" title="1 Mar – 4 Mar: each day 97.50 % uptime, 1 incident"></i>"#
    ), "{compact}");
    // The service page keeps an element a day.
    let full = bar_days(&days);
    assert_eq!(full.matches("<i ").count(), 20);
    assert!(!full.contains("style="), "{full}");
}

#[test]
fn the_bar_says_what_it_shows_as_a_whole() {
    let date = |n: u32| chrono::NaiveDate::from_ymd_opt(2026, 3, n).expect("date");
    let up = Day::of(
        date(1),
        &crate::store::rollup::Rollup {
            up: 10,
            ..Default::default()
        },
    );
    let mut down = Day::of(
        date(2),
        &crate::store::rollup::Rollup {
            up: 9,
            down: 1,
            ..Default::default()
        },
    );
    assert_eq!(
        bars_label(&[up], Some(100.0), 0),
        "Last 90 days: 100.00 % uptime, no incidents"
    );
    // One incident over several days is one incident.
    down.incidents = 1;
    assert_eq!(
        bars_label(&[up, down, down], Some(93.3), 1),
        "Last 90 days: 93.30 % uptime, 1 incident, 2 days with an outage"
    );
    assert_eq!(
        bars_label(&[Day::empty(date(3))], None, 2),
        "Last 90 days: no uptime data, 2 incidents"
    );
}

#[test]
fn a_single_point_is_a_dot_and_more_are_a_line() {
    let at = Utc
        .with_ymd_and_hms(2026, 3, 12, 12, 0, 0)
        .single()
        .expect("valid");
    let one = latency_svg(&[(at, Some(40), Some(90))], "chart");
    assert!(one.contains(r#"<circle class="p50""#), "{one}");
    assert!(one.contains(r#"<circle class="p95""#), "{one}");
    assert!(!one.contains("<polyline"));
    let two = latency_svg(
        &[(at, Some(40), Some(90)), (at, Some(50), Some(100))],
        "chart",
    );
    assert_eq!(two.matches("<polyline").count(), 2, "{two}");
    assert!(!two.contains("<circle"));
}
