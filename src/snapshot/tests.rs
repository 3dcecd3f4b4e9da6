//! The snapshot's tests: history windows, days, views, reuse.

use std::collections::HashMap;
use std::sync::Arc;

use super::*;
use crate::clock::ms_to_datetime;
use crate::config::GroupConfig;
use crate::domain::State;
use crate::store::rollup::Rollup;
use crate::store::ServiceSummary;
use State::*;

fn summary(id: i64, name: &str, group: Option<&str>, public: bool) -> ServiceSummary {
    ServiceSummary {
        id,
        slug: name.to_lowercase(),
        name: name.to_string(),
        group: group.map(str::to_string),
        description: None,
        public,
        position: id,
        state: Up,
        state_since: None,
        last_checked_at: None,
        created_at: 0,
        checks_24h: 0,
        ok_24h: 0,
        dependencies: Vec::new(),
        certificate_expires_at: None,
    }
}

/// Inputs of `summaries` alone: no history, incidents, maintenance or
/// locations, and each view's last check from its row.
fn inputs_of(summaries: Vec<Arc<ServiceSummary>>) -> Inputs {
    Inputs {
        summaries: Arc::new(summaries),
        last_checks: Arc::default(),
        history: Arc::new(Histories::default()),
        incidents: Vec::new(),
        maintenances: Vec::new(),
        recent_incidents: Vec::new(),
        recent_maintenances: Vec::new(),
        locations: Vec::new(),
    }
}

fn counts(up: i64, down: i64, maintenance: i64) -> Rollup {
    Rollup {
        up,
        down,
        maintenance,
        ..Rollup::default()
    }
}

#[test]
fn a_day_of_a_bar_stays_small() {
    // The figures in the docs of Day and Point: 90 and up to 24 of
    // them per service.
    assert_eq!(std::mem::size_of::<Day>(), 24);
    assert_eq!(std::mem::size_of::<Point>(), 16);
}

#[test]
fn groups_count_every_check_of_their_public_services_and_windows_split_by_time() {
    let now = ms_to_datetime(1_773_360_000_000).expect("time"); // 2026-03-13 00:00 UTC
    let hour = 3_600_000;
    let a = summary(1, "A", Some("Shop"), true);
    let b = summary(2, "B", Some("Shop"), true);
    let hidden = summary(3, "Hidden", Some("Shop"), false);
    let windows = HashMap::from([
        (
            1,
            [
                counts(9, 1, 0),
                counts(90, 10, 5),
                counts(90, 10, 5),
                counts(90, 10, 5),
            ],
        ),
        // B: only maintenance in 7 d, so no data there; data further back.
        (
            2,
            [
                counts(0, 0, 0),
                counts(0, 0, 8),
                counts(50, 50, 8),
                counts(50, 50, 8),
            ],
        ),
        (
            3,
            [
                counts(0, 10, 0),
                counts(0, 100, 0),
                counts(0, 100, 0),
                counts(0, 100, 0),
            ],
        ),
    ]);
    let maintenance = |id, from: i64, to: i64| crate::store::Maintenance {
        id,
        title: format!("w{id}"),
        message: String::new(),
        starts_at: now.timestamp_millis() + from * hour,
        ends_at: now.timestamp_millis() + to * hour,
        services: vec!["a".into(), "hidden".into()],
        created_at: 0,
        updated_at: 0,
    };
    let inputs = Inputs {
        summaries: Arc::new([a, b, hidden].map(Arc::new).to_vec()),
        last_checks: Arc::default(),
        history: Arc::new(Histories {
            hour: 0,
            services: windows
                .into_iter()
                .map(|(id, w)| {
                    let history = History {
                        counts: w.map(|r| (r.up + r.degraded, r.counted())),
                        ..History::default()
                    };
                    (id, history)
                })
                .collect(),
        }),
        incidents: Vec::new(),
        maintenances: vec![maintenance(1, 24, 26), maintenance(2, -1, 1)],
        recent_incidents: Vec::new(),
        recent_maintenances: Vec::new(),
        locations: Vec::new(),
    };
    let groups = [GroupConfig {
        name: "Shop".into(),
        description: None,
    }];
    let mut views = Views::default();
    let snap = Snapshot::from_inputs_reusing(inputs.clone(), "t", &groups, now, &mut views);
    assert_eq!(views.made(), 2, "the two public services' views are made");
    // Rebuilt from the same rows and history, every view is kept: the same
    // `Arc`, nothing laid out again.
    let again = Snapshot::from_inputs_reusing(inputs.clone(), "t", &groups, now, &mut views);
    assert_eq!(views.made(), 0);
    for (old, new) in snap.groups[0]
        .services
        .iter()
        .zip(&again.groups[0].services)
    {
        assert!(Arc::ptr_eq(old, new), "{} is kept", old.slug);
    }
    // A row read again (a state change): that view alone is made again.
    let mut moved = inputs.clone();
    let mut b = (*moved.summaries[1]).clone();
    b.state = State::Down;
    Arc::make_mut(&mut moved.summaries)[1] = Arc::new(b);
    let after = Snapshot::from_inputs_reusing(moved, "t", &groups, now, &mut views);
    assert_eq!(views.made(), 1);
    assert!(Arc::ptr_eq(
        &again.groups[0].services[0],
        &after.groups[0].services[0]
    ));
    assert_eq!(after.groups[0].services[1].state, State::Down);
    // A new read of the history makes every view again, sharing the 90
    // days where they are the same.
    let mut reread = inputs.clone();
    reread.history = Arc::new((*inputs.history).clone());
    let fresh = Snapshot::from_inputs_reusing(reread, "t", &groups, now, &mut views);
    assert_eq!(views.made(), 2);
    for (old, new) in after.groups[0]
        .services
        .iter()
        .zip(&fresh.groups[0].services)
    {
        assert!(!Arc::ptr_eq(old, new));
        assert!(
            Arc::ptr_eq(&old.past_days, &new.past_days),
            "{} shares its days",
            old.slug
        );
    }
    // So does a new day, and its 90 days are not the last ones.
    let tomorrow = now + chrono::Duration::days(1);
    let later = Snapshot::from_inputs_reusing(inputs, "t", &groups, tomorrow, &mut views);
    assert_eq!(views.made(), 2);
    assert!(!Arc::ptr_eq(
        &snap.groups[0].services[0].past_days,
        &later.groups[0].services[0].past_days
    ));
    assert_eq!(snap.groups.len(), 1);
    let shop = &snap.groups[0];
    assert_eq!(shop.services.len(), 2, "the private service is left out");
    assert_eq!(
        shop.services[0].uptime,
        [Some(90.0), Some(90.0), Some(90.0), Some(90.0)]
    );
    assert_eq!(
        shop.services[1].uptime,
        [None, None, Some(50.0), Some(50.0)]
    );
    // 24 h: A's 9 of 10, from its history (the summary's own 24 h counts
    // are not read for the page); 30 d: (90 + 50) of (100 + 100).
    assert_eq!(
        shop.uptime,
        [Some(90.0), Some(90.0), Some(70.0), Some(70.0)]
    );
    assert_eq!(
        (
            snap.active_maintenances.len(),
            snap.upcoming_maintenances.len()
        ),
        (1, 1)
    );
    assert_eq!(snap.active_maintenances[0].title, "w2");
    assert_eq!(
        snap.active_maintenances[0].services,
        ["A"],
        "private names stay off"
    );
}

#[test]
fn a_full_history_is_shared_with_the_snapshot_not_copied() {
    use crate::domain::time::DAY_MS;
    use crate::store::rollup::Period;
    let now = ms_to_datetime(1_773_363_600_000).expect("time"); // 2026-03-13 01:00 UTC
    let today = Period::Day.bucket_start(now.timestamp_millis());
    let date = |ms: i64| ms_to_datetime(ms).expect("time").date_naive();
    let past: Arc<[Day]> = (1..90)
        .rev()
        .map(|back| Day::of(date(today - back * DAY_MS), &counts(100, 0, 0)))
        .collect();
    let history = History {
        past_days: past.clone(),
        today: Some(Day::of(now.date_naive(), &counts(10, 1, 0))),
        ..History::default()
    };
    let inputs = Inputs {
        summaries: Arc::new(vec![Arc::new(summary(1, "A", None, true))]),
        last_checks: Arc::default(),
        history: Arc::new(Histories {
            hour: 0,
            services: [(1, history)].into_iter().collect(),
        }),
        incidents: Vec::new(),
        maintenances: Vec::new(),
        recent_incidents: Vec::new(),
        recent_maintenances: Vec::new(),
        locations: Vec::new(),
    };
    let snap = Snapshot::from_inputs(inputs, "t", &[], now);
    let a = &snap.groups[0].services[0];
    assert!(
        Arc::ptr_eq(&a.past_days, &past),
        "the history's days, not a copy"
    );
    let days = a.days();
    assert_eq!(days.len(), 90);
    assert_eq!(days[0].date, date(today - 89 * DAY_MS));
    assert_eq!((days[89].date, days[89].worst), (now.date_naive(), Down));
    assert!(days[..89].iter().all(|d| d.uptime() == Some(100.0)));
}

#[test]
fn banner_is_the_worst_public_state() {
    let cases: &[(&[State], Overall)] = &[
        (&[Up, Up], Overall::Operational),
        (&[Up, Degraded], Overall::Degraded),
        (&[Up, Down, Degraded], Overall::PartialOutage),
        (&[Down, Down], Overall::MajorOutage),
        (&[Down, Unknown], Overall::MajorOutage),
        (&[Up, Maintenance], Overall::Maintenance),
        (&[Unknown], Overall::NoData),
        (&[], Overall::NoData),
        (&[Up, Unknown], Overall::Operational),
    ];
    for (states, expected) in cases {
        assert_eq!(Overall::of(states), *expected, "{states:?}");
    }
}

#[test]
fn views_are_kept_when_services_come_go_or_move() {
    // Views are kept by position while the services line up with the
    // last build's, and by id from the first that does not: a service
    // added, removed or moved makes no other view again.
    let now = ms_to_datetime(1_773_360_000_000).expect("time");
    let row = |id: i64, name: &str, group: Option<&str>| Arc::new(summary(id, name, group, true));
    let (a, b, c, d) = (
        row(1, "A", None),
        row(2, "B", Some("Shop")),
        row(3, "C", None),
        row(4, "D", Some("Shop")),
    );
    let history = inputs_of(Vec::new()).history;
    let with = |summaries: Vec<Arc<ServiceSummary>>| Inputs {
        history: Arc::clone(&history),
        ..inputs_of(summaries)
    };
    let groups = [GroupConfig {
        name: "Shop".into(),
        description: None,
    }];
    let mut views = Views::default();
    let by_slug = |snap: &Snapshot| -> HashMap<String, Arc<ServiceView>> {
        snap.groups
            .iter()
            .flat_map(|g| g.services.iter())
            .map(|s| (s.slug.clone(), Arc::clone(s)))
            .collect()
    };
    let order = |snap: &Snapshot| -> Vec<String> {
        snap.groups
            .iter()
            .flat_map(|g| g.services.iter().map(|s| s.slug.clone()))
            .collect()
    };
    let first = Snapshot::from_inputs_reusing(
        with(vec![a.clone(), b.clone(), c.clone()]),
        "t",
        &groups,
        now,
        &mut views,
    );
    assert_eq!(views.made(), 3);
    assert_eq!(order(&first), ["a", "c", "b"], "ungrouped first, then Shop");
    let kept = |before: &Snapshot, after: &Snapshot, slugs: &[&str]| {
        let (before, after) = (by_slug(before), by_slug(after));
        for slug in slugs {
            assert!(
                Arc::ptr_eq(&before[*slug], &after[*slug]),
                "{slug}'s view is kept"
            );
        }
    };
    // One added in the middle: only its view is made.
    let added = Snapshot::from_inputs_reusing(
        with(vec![a.clone(), d.clone(), b.clone(), c.clone()]),
        "t",
        &groups,
        now,
        &mut views,
    );
    assert_eq!(views.made(), 1);
    assert_eq!(order(&added), ["a", "c", "d", "b"]);
    kept(&first, &added, &["a", "b", "c"]);
    // A new order: nothing made.
    let moved = Snapshot::from_inputs_reusing(
        with(vec![c.clone(), b.clone(), a.clone(), d.clone()]),
        "t",
        &groups,
        now,
        &mut views,
    );
    assert_eq!(views.made(), 0);
    assert_eq!(order(&moved), ["c", "a", "b", "d"]);
    kept(&added, &moved, &["a", "b", "c", "d"]);
    // One removed: nothing made, and the rest kept in the same order.
    let removed = Snapshot::from_inputs_reusing(
        with(vec![c.clone(), a.clone(), d.clone()]),
        "t",
        &groups,
        now,
        &mut views,
    );
    assert_eq!(views.made(), 0);
    assert_eq!(order(&removed), ["c", "a", "d"]);
    kept(&moved, &removed, &["a", "c", "d"]);
    // Back again: made anew, not some stale entry of it.
    let mut b_down = (*b).clone();
    b_down.state = Down;
    let back = Snapshot::from_inputs_reusing(
        with(vec![c, a, Arc::new(b_down), d]),
        "t",
        &groups,
        now,
        &mut views,
    );
    assert_eq!(views.made(), 1);
    assert_eq!(by_slug(&back)["b"].state, Down);
    kept(&removed, &back, &["a", "c", "d"]);
}

// A probe's new last check is moved on in place: the views already made
// (and the snapshots holding them) show it, and a rebuild keeps every
// view; it never goes back.
#[test]
fn a_new_last_check_moves_in_place_and_keeps_the_views() {
    let now = ms_to_datetime(1_773_360_000_000).expect("time");
    let mut a = summary(1, "A", None, true);
    a.last_checked_at = Some(1_773_359_990_000);
    let b = summary(2, "B", None, true);
    let hidden = summary(3, "Hidden", None, false);
    // The hidden one first: each check must stay with its own service.
    let checks: Vec<LastCheck> = [&hidden, &a, &b]
        .iter()
        .map(|s| LastCheck::new(s.last_checked_at))
        .collect();
    let inputs = Inputs {
        last_checks: Arc::new(checks.clone()),
        ..inputs_of([hidden, a, b].map(Arc::new).to_vec())
    };
    let mut views = Views::default();
    let first = Snapshot::from_inputs_reusing(inputs.clone(), "t", &[], now, &mut views);
    let shown = &first.groups[0].services;
    assert_eq!(shown.len(), 2, "the hidden service is not shown");
    assert_eq!(
        shown[0].last_checked_at(),
        ms_to_datetime(1_773_359_990_000)
    );
    assert_eq!(shown[1].last_checked_at(), None);

    checks[1].advance(Some(1_773_359_995_000));
    checks[2].advance(Some(1_773_359_996_000));
    // An older one (a result that arrived late) does not move it back.
    checks[1].advance(Some(1_773_359_991_000));
    checks[2].advance(None);
    assert_eq!(
        shown[0].last_checked_at(),
        ms_to_datetime(1_773_359_995_000)
    );
    assert_eq!(
        shown[1].last_checked_at(),
        ms_to_datetime(1_773_359_996_000)
    );
    let again = Snapshot::from_inputs_reusing(inputs, "t", &[], now, &mut views);
    assert_eq!(views.made(), 0, "no view is made again for a last check");
    for (old, new) in shown.iter().zip(&again.groups[0].services) {
        assert!(Arc::ptr_eq(old, new), "{} is kept", old.slug);
    }
}

// A row not read again is not read at all (its group, state, public flag
// and slug are kept beside its view): what it was kept for must still
// follow the config's groups, a service's incidents and the names the
// incidents show.
#[test]
fn kept_rows_follow_the_groups_and_the_incidents() {
    let now = ms_to_datetime(1_773_360_000_000).expect("time");
    let row = |id: i64, name: &str, group: Option<&str>, public: bool| {
        Arc::new(summary(id, name, group, public))
    };
    let rows = vec![
        row(1, "A", None, true),
        row(2, "B", Some("Shop"), true),
        row(3, "X", Some("Later"), true),
        Arc::new(ServiceSummary {
            state: Down,
            ..summary(4, "Hidden", None, false)
        }),
    ];
    let history = inputs_of(Vec::new()).history;
    let group = |name: &str| GroupConfig {
        name: name.into(),
        description: None,
    };
    let incident = |id: i64, services: &[&str]| crate::store::Incident {
        id,
        title: format!("Incident {id}"),
        impact: "minor".into(),
        status: "investigating".into(),
        automatic: false,
        postmortem: None,
        started_at: now.timestamp_millis() - 60_000,
        updated_at: now.timestamp_millis() - 60_000,
        resolved_at: None,
        services: services.iter().map(|s| s.to_string()).collect(),
        updates: Vec::new(),
    };
    let with = |incidents: Vec<crate::store::Incident>| Inputs {
        history: Arc::clone(&history),
        recent_incidents: incidents.clone(),
        incidents,
        ..inputs_of(rows.clone())
    };
    let shown = |snap: &Snapshot| -> Vec<(Option<String>, Vec<String>)> {
        snap.groups
            .iter()
            .map(|g| {
                let slugs = g.services.iter().map(|s| s.slug.clone()).collect();
                (g.name.clone(), slugs)
            })
            .collect()
    };
    let mut views = Views::default();
    let first =
        Snapshot::from_inputs_reusing(with(Vec::new()), "t", &[group("Shop")], now, &mut views);
    // A group the config does not name is not shown, nor a private service.
    assert_eq!(
        shown(&first),
        [
            (None, vec!["a".into()]),
            (Some("Shop".into()), vec!["b".into()])
        ]
    );
    assert_eq!(views.made(), 2);
    // The same rows, a config that names X's group: X is shown, the
    // others' views are kept.
    let groups = [group("Later"), group("Shop")];
    let named = Snapshot::from_inputs_reusing(with(Vec::new()), "t", &groups, now, &mut views);
    assert_eq!(
        shown(&named),
        [
            (None, vec!["a".into()]),
            (Some("Later".into()), vec!["x".into()]),
            (Some("Shop".into()), vec!["b".into()])
        ]
    );
    assert_eq!(views.made(), 1);
    // An incident of B (and of the private service): B's view alone is
    // made again, and the incident names B, never the private one.
    let with_incident = Snapshot::from_inputs_reusing(
        with(vec![incident(7, &["b", "hidden"])]),
        "t",
        &groups,
        now,
        &mut views,
    );
    assert_eq!(views.made(), 1);
    assert_eq!(with_incident.incidents[0].services, ["B"]);
    assert_eq!(with_incident.groups[2].services[0].incidents_90d, 1);
    assert!(Arc::ptr_eq(
        &named.groups[0].services[0],
        &with_incident.groups[0].services[0]
    ));
    // The banner follows the public services' states, the private one's
    // left out.
    assert_eq!(with_incident.overall, Overall::Operational);
}

// This hour's and today's rollups are read again every 30 s up to 15,000
// shown services, then 2 ms a service: what every replica repeats stays a
// small, fixed share of a core however large the fleet.
#[test]
fn the_history_is_read_less_often_past_fifteen_thousand_services() {
    use super::refresher::windows_max_age_ms;
    assert_eq!(windows_max_age_ms(0), 30_000);
    assert_eq!(windows_max_age_ms(15_000), 30_000);
    assert_eq!(windows_max_age_ms(30_000), 60_000);
    assert_eq!(windows_max_age_ms(100_000), 200_000);
    assert_eq!(windows_max_age_ms(usize::MAX), i64::MAX);
}
