//! The 90-day bar, as the front page (compact) and a service page draw it:
//! one element a day (or a run of days), coloured by state, with its text.

use crate::domain::time::{format_uptime, uptime_shown};
use crate::domain::State;
use crate::snapshot::Day;
use crate::web::format::xml;

/// What the 90-day bar says as a whole, for screen readers and keyboards
/// (the per-day text is a hover tooltip; the service page's "Day by day"
/// table, which the bar links to, has it for everyone): "Last 90 days:
/// 99.95 % uptime, 2 incidents, 1 day with an outage". Outage days are
/// named only when there were some.
pub(super) fn bars_label(days: &[Day], uptime: Option<f64>, incidents: u32) -> String {
    let outages = days.iter().filter(|d| d.worst == State::Down).count();
    let mut label = format!(
        "Last 90 days: {}, {}",
        match uptime {
            Some(_) => format!("{} uptime", format_uptime(uptime)),
            None => "no uptime data".to_string(),
        },
        match incidents {
            0 => "no incidents".to_string(),
            1 => "1 incident".to_string(),
            n => format!("{n} incidents"),
        }
    );
    match outages {
        0 => {}
        1 => label.push_str(", 1 day with an outage"),
        n => label.push_str(&format!(", {n} days with an outage")),
    }
    label
}

/// The 90-day bar's days: one `<i>` a day, coloured by the day's worst
/// state (its class), each with its text ("12 Mar: 99.20 % uptime, 1
/// incident") as a tooltip. The element around it (a link on the front
/// page, a `role="img"` on the service page) carries [`bars_label`].
///
/// HTML and CSS rather than SVG: a `title` attribute is half the markup of
/// an SVG `<rect>` with its `<title>`, and the front page has a bar for
/// every service (docs/performance.md).
pub(super) fn bar_days(days: &[Day]) -> String {
    bars(days, false)
}

/// The front page's 90-day bar: the same picture, but a run of quiet days
/// (all up with no incident, or all without data) is one element,
/// `style="--n:N"`, that the page's CSS stripes into N day bars, with one
/// tooltip for the run ("1 Mar – 20 Mar: 100.00 % uptime, no
/// incidents"). Days with anything to tell keep their own.
pub(super) fn compact_bar_days(days: &[Day]) -> String {
    bars(days, true)
}

/// A day whose bar is plain: up all day (the state never left up, though
/// a probe may have failed below the failure threshold) with no incident,
/// or no data at all.
fn quiet(d: &Day) -> bool {
    d.incidents == 0
        && match d.worst {
            State::Up => true,
            State::Unknown => d.uptime().is_none(),
            _ => false,
        }
}

/// Whether two days' texts differ only in their dates: the same worst
/// state, incidents and uptime as shown (the one rounding rule,
/// [`uptime_shown`]), compared without formatting either.
fn told_alike(a: &Day, b: &Day) -> bool {
    let shown = |d: &Day| d.uptime().map(uptime_shown);
    a.worst == b.worst && a.incidents == b.incidents && shown(a) == shown(b)
}

pub(super) fn bars(days: &[Day], compact: bool) -> String {
    let mut out = String::with_capacity(days.len() * 48);
    // What a day says, but its date.
    let figures = |d: &Day| {
        format!(
            "{}, {} incident{}",
            match d.uptime() {
                Some(u) => format!("{} uptime", format_uptime(Some(u))),
                None => "no data".to_string(),
            },
            d.incidents,
            if d.incidents == 1 { "" } else { "s" }
        )
    };
    let day_text = |d: &Day| format!("{}: {}", d.date.format("%-d %b"), figures(d));
    let mut n = 0;
    while n < days.len() {
        let d = &days[n];
        let run = if !compact {
            1
        } else if quiet(d) {
            days[n..]
                .iter()
                .take_while(|e| quiet(e) && e.worst == d.worst)
                .count()
        } else {
            // Days that would say the same (a long outage, maintenance,
            // an incident open for weeks) are one run too.
            days[n..].iter().take_while(|e| told_alike(e, d)).count()
        };
        if run > 1 {
            let last = &days[n + run - 1];
            let uptimes = days[n..n + run].iter().filter_map(|e| e.uptime());
            let lowest = uptimes.clone().fold(f64::INFINITY, f64::min);
            let highest = uptimes.fold(f64::NEG_INFINITY, f64::max);
            let what = match d.worst {
                _ if !quiet(d) => format!("each day {}", figures(d)),
                State::Up if lowest == highest => {
                    format!("{} uptime, no incidents", format_uptime(Some(lowest)))
                }
                State::Up if lowest.is_finite() => format!(
                    "{} to {} uptime a day, no incidents",
                    format_uptime(Some(lowest)),
                    format_uptime(Some(highest))
                ),
                _ => "no data".to_string(),
            };
            let text = format!(
                "{} – {}: {what}",
                d.date.format("%-d %b"),
                last.date.format("%-d %b"),
            );
            out.push_str(&format!(
                r#"<i class="{}" style="--n:{run}" title="{}"></i>"#,
                d.worst.as_str(),
                xml(&text)
            ));
        } else {
            out.push_str(&format!(
                r#"<i class="{}" title="{}"></i>"#,
                d.worst.as_str(),
                xml(&day_text(d))
            ));
        }
        n += run;
    }
    out
}
