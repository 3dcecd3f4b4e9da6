//! Rollups kept in the write path equal a brute-force count of the raw
//! results, on both stores.

use std::collections::BTreeMap;
use std::time::Duration;

use beacon::clock::{Clock, ManualClock};
use beacon::domain::time::format_uptime;
use beacon::domain::Outcome;
use beacon::monitor::ProbeResult;
use beacon::probe::ProbeReport;
use beacon::snapshot::{Histories, Inputs, Snapshot};
use beacon::store::rollup::{Period, Rollup};
use beacon::store::Store;
use chrono::TimeZone;

use crate::helpers::{fill_history, simulated_monitor, test_config, Kind, TestDb};
use crate::store_test;

store_test!(
    rollups_equal_a_brute_force_count_of_raw_results,
    rollups_match_raw
);
async fn rollups_match_raw(db: TestDb) {
    let config = test_config(
        &db,
        "[[service]]\nname = \"A\"\nurl = \"http://a.example/\"\ninterval = \"30s\"\n\
         [[service]]\nname = \"B\"\nurl = \"http://b.example/\"\ninterval = \"30s\"\n",
    );
    let store = db.store().await;
    // Starts just before midnight so results cross an hour and a day.
    let start = chrono::Utc
        .with_ymd_and_hms(2026, 3, 11, 22, 50, 0)
        .single()
        .expect("time");
    let clock = ManualClock::at(start);
    let monitor = simulated_monitor(&config, &store, &clock).await;
    let ids: Vec<i64> = monitor.services().iter().map(|w| w.id).collect();
    let mut recorder = monitor.recorder();

    // Three hours of probes every 30 s, written in batches of varying size,
    // with a pseudo-random mix of outcomes and latencies.
    let mut seed: u64 = 42;
    let mut next = || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        seed >> 33
    };
    let mut pending = Vec::new();
    for step in 0..360 {
        for id in &ids {
            let roll = next() % 100;
            let outcome = match roll {
                0..=84 => Outcome::Up,
                85..=92 => Outcome::Degraded,
                _ => Outcome::Down,
            };
            pending.push(ProbeResult {
                service_id: *id,
                own_fault: false,
                resume: false,
                window_edge: false,
                location: None,
                checked_at: clock.now_ms(),
                report: ProbeReport {
                    latency: Duration::from_millis(next() % 3000),
                    ..ProbeReport::down(Duration::ZERO, "x")
                }
                .with_outcome(outcome),
            });
        }
        if step % 17 == 0 {
            recorder
                .record(std::mem::take(&mut pending))
                .await
                .expect("record");
        }
        clock.advance(Duration::from_secs(30));
    }
    recorder.record(pending).await.expect("record");

    for slug in ["a", "b"] {
        let raw = store.check_results(slug).await.expect("raw");
        assert_eq!(raw.len(), 360);
        for period in [Period::Hour, Period::Day] {
            let mut expected: BTreeMap<i64, Rollup> = BTreeMap::new();
            for r in &raw {
                expected
                    .entry(period.bucket_start(r.checked_at))
                    .or_default()
                    .add(r);
            }
            let stored: BTreeMap<i64, Rollup> = store
                .rollups(slug, period)
                .await
                .expect("rollups")
                .into_iter()
                .collect();
            assert_eq!(stored, expected, "{slug} {period:?}");
        }
    }
    assert_eq!(
        store.rollups("a", Period::Day).await.expect("days").len(),
        2,
        "crosses midnight"
    );

    // The 24 h uptime of the page comes from the rollups and equals the raw count.
    let now = clock.now_ms();
    let since = Period::Hour.bucket_start(now) - 23 * 3_600_000;
    for summary in store.service_summaries(now).await.expect("summaries") {
        let raw = store.check_results(&summary.slug).await.expect("raw");
        let window: Vec<_> = raw.iter().filter(|r| r.checked_at >= since).collect();
        let ok = window.iter().filter(|r| r.outcome != Outcome::Down).count() as i64;
        assert_eq!(
            (summary.checks_24h, summary.ok_24h),
            (window.len() as i64, ok),
            "{}",
            summary.slug
        );
    }
}

store_test!(
    pruning_raw_results_leaves_the_page_figures_unchanged,
    retention
);
async fn retention(db: TestDb) {
    let config = test_config(
        &db,
        "[[service]]\nname = \"A\"\nurl = \"http://a.example/\"\ninterval = \"10m\"\n",
    );
    let store = db.store().await;
    let start = chrono::Utc
        .with_ymd_and_hms(2026, 3, 1, 0, 0, 0)
        .single()
        .expect("time");
    let clock = ManualClock::at(start);
    let monitor = simulated_monitor(&config, &store, &clock).await;
    let id = monitor.services()[0].id;
    let mut recorder = monitor.recorder();
    // Ten days, one probe every 10 minutes, down for a spell each day.
    let mut batch = Vec::new();
    for step in 0..(10 * 144) {
        let outcome = if step % 144 < 6 {
            Outcome::Down
        } else {
            Outcome::Up
        };
        batch.push(ProbeResult {
            service_id: id,
            own_fault: false,
            resume: false,
            window_edge: false,
            location: None,
            checked_at: clock.now_ms(),
            report: ProbeReport::down(Duration::from_millis(20), "x").with_outcome(outcome),
        });
        clock.advance(Duration::from_secs(600));
    }
    recorder.record(batch).await.expect("record");
    let now = clock.now_ms();
    let before = Histories::read(&store, now).await.expect("history");
    let seven_days = 7 * 86_400_000;

    let pruned = store.prune(now, seven_days).await.expect("prune");
    assert_eq!(
        pruned.results,
        3 * 144,
        "three days of raw results are past 7 days"
    );
    let raw = store.check_results("a").await.expect("raw");
    assert_eq!(raw.len(), 7 * 144);
    assert!(raw.iter().all(|r| r.checked_at >= now - seven_days));
    let after = Histories::read(&store, now).await.expect("history");
    assert_eq!(
        before.services, after.services,
        "24 h / 7 d / 30 d / 90 d figures come from rollups"
    );
    let (ok, counted) = after.services[&id].counts[3];
    assert_eq!(
        counted,
        10 * 144,
        "the 90-day window still counts all ten days"
    );
    assert_eq!(ok, 10 * 138);
    assert_eq!(
        store.prune(now, seven_days).await.expect("again"),
        Default::default(),
        "idempotent"
    );
}

/// The page's uptime text for a window counted by brute force, by the
/// page's own rounding rule.
fn shown(r: &Rollup) -> String {
    format_uptime(r.uptime())
}

/// The page's four windows counted from the raw results by brute force: the
/// last 24 hours (this hour and the 23 before), and the last 7, 30 and 90
/// days (today and the days before).
async fn brute_force_windows(store: &Store, slug: &str, now: i64) -> [Rollup; 4] {
    let hour_since = Period::Hour.bucket_start(now) - 23 * 3_600_000;
    let today = Period::Day.bucket_start(now);
    let raw = store.check_results(slug).await.expect("raw");
    let mut windows: [Rollup; 4] = Default::default();
    for r in &raw {
        if r.checked_at >= hour_since {
            windows[0].add(r);
        }
        for (i, days) in [(1, 7), (2, 30), (3, 90)] {
            if Period::Day.bucket_start(r.checked_at) > today - days * 86_400_000 {
                windows[i].add(r);
            }
        }
    }
    windows
}

/// What the snapshot keeps of a window: checks up or degraded, checks counted.
fn counts(r: &Rollup) -> (i64, i64) {
    (r.up + r.degraded, r.counted())
}

store_test!(
    ninety_days_of_twenty_services_give_the_brute_force_figures,
    ninety_days
);
async fn ninety_days(db: TestDb) {
    let mut body = String::new();
    for g in 0..4 {
        body.push_str(&format!("[[group]]\nname = \"G{g}\"\n"));
    }
    for s in 0..20 {
        body.push_str(&format!(
            "[[service]]\nname = \"S{s}\"\ngroup = \"G{}\"\nurl = \"http://s{s}.example/\"\ninterval = \"30m\"\ntimeout = \"5s\"\n",
            s / 5
        ));
    }
    let config = test_config(&db, &body);
    let store = db.store().await;
    let end = chrono::Utc
        .with_ymd_and_hms(2026, 6, 1, 12, 7, 0)
        .single()
        .expect("time");
    let start = end - chrono::Duration::days(90);
    let clock = ManualClock::at(start);
    let monitor = simulated_monitor(&config, &store, &clock).await;
    let ids: Vec<i64> = monitor.services().iter().map(|w| w.id).collect();
    let mut recorder = monitor.recorder();
    // A six-hour maintenance window for group G1 on day 45.
    let window_start = start + chrono::Duration::days(45);
    store
        .save_maintenance(
            None,
            &beacon::store::MaintenanceInput {
                title: "Upgrade".into(),
                message: "Planned.".into(),
                starts_at: window_start.timestamp_millis(),
                ends_at: (window_start + chrono::Duration::hours(6)).timestamp_millis(),
                services: (5..10).map(|s| format!("s{s}")).collect(),
            },
            start.timestamp_millis(),
        )
        .await
        .expect("window");

    let mut seed: u64 = 7;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1442695040888963407);
        seed >> 33
    };
    let steps = 90 * 48;
    let mut pending = Vec::new();
    for step in 0..steps {
        for (s, id) in ids.iter().enumerate() {
            let day = step / 48;
            // Gaps: service 3 sends nothing for days 10-19, service 17 for the last 2 days.
            if (s == 3 && (10..20).contains(&day)) || (s == 17 && day >= 88) {
                continue;
            }
            // Outage spells: service s is down for two hours every (s + 3) days.
            let outage = day % (s + 3) == 0 && (step % 48) < 4;
            let roll = next() % 100;
            let outcome = if outage || roll < 2 {
                Outcome::Down
            } else if roll < 7 {
                Outcome::Degraded
            } else {
                Outcome::Up
            };
            pending.push(ProbeResult {
                service_id: *id,
                own_fault: false,
                resume: false,
                window_edge: false,
                location: None,
                checked_at: clock.now_ms() + s as i64 * 1000,
                report: ProbeReport::down(Duration::from_millis(next() % 2000), "x")
                    .with_outcome(outcome),
            });
        }
        if step % 24 == 23 {
            recorder
                .record(std::mem::take(&mut pending))
                .await
                .expect("record");
        }
        clock.advance(Duration::from_secs(30 * 60));
    }
    recorder.record(pending).await.expect("record");

    // Brute force over the raw rows against what the page shows: the
    // snapshot's histories and its groups.
    let now = clock.now_ms();
    let histories = Histories::read(&store, now).await.expect("histories");
    let on_page = store.page_summaries(None).await.expect("page summaries");
    let on_page: Vec<_> = on_page
        .into_iter()
        .map(|(_, s)| std::sync::Arc::new(s))
        .collect();
    let inputs = Inputs::read(&store, now, on_page, std::sync::Arc::new(histories.clone()))
        .await
        .expect("inputs");
    let snapshot = Snapshot::from_inputs(inputs, "Status", &config.groups, clock.now());
    let summaries = store.service_summaries(now).await.expect("summaries");
    let mut expected_of: BTreeMap<String, [Rollup; 4]> = BTreeMap::new();
    let mut group_expected: BTreeMap<String, [Rollup; 4]> = BTreeMap::new();
    for summary in &summaries {
        let expected = brute_force_windows(&store, &summary.slug, now).await;
        let got = histories
            .services
            .get(&summary.id)
            .map_or([(0, 0); 4], |h| h.counts);
        for i in 0..4 {
            assert_eq!(got[i], counts(&expected[i]), "{} window {i}", summary.slug);
        }
        let group = group_expected
            .entry(summary.group.clone().expect("grouped"))
            .or_default();
        for (total, w) in group.iter_mut().zip(&expected) {
            total.merge(w);
        }
        expected_of.insert(summary.slug.clone(), expected);
    }
    for group in &snapshot.groups {
        let name = group.name.clone().expect("named group");
        let expected = &group_expected[&name];
        for (i, (uptime, expected)) in group.uptime.iter().zip(expected).enumerate() {
            assert_eq!(
                format_uptime(*uptime),
                shown(expected),
                "group {name} window {i}"
            );
        }
    }
    assert_eq!(snapshot.groups.len(), 4, "every group is on the page");
    // The scenario's features are really in the data.
    assert_eq!(
        expected_of["s6"][3].maintenance, 12,
        "six hours at 30 min in the window"
    );
    assert_eq!(
        shown(&expected_of["s17"][0]),
        "No data",
        "a gap is no data, not up"
    );
    assert_eq!(
        histories.services[&summaries[17].id].counts[0],
        (0, 0),
        "the page counts nothing for the gap either"
    );
    assert!(expected_of["s0"][3].uptime().expect("data") < 99.0);
}

store_test!(
    histories_updated_or_turned_an_hour_equal_a_full_read,
    history_updates
);
async fn history_updates(db: TestDb) {
    let config = test_config(
        &db,
        "[[service]]\nname = \"A\"\nurl = \"http://a.example/\"\ninterval = \"30s\"\n\
         [[service]]\nname = \"B\"\nurl = \"http://b.example/\"\ninterval = \"30s\"\n",
    );
    let store = db.store().await;
    // From 21:00 to 00:40 the next day, then on within that hour.
    let start = chrono::Utc
        .with_ymd_and_hms(2026, 3, 11, 21, 0, 0)
        .single()
        .expect("time");
    let clock = ManualClock::at(start);
    let monitor = simulated_monitor(&config, &store, &clock).await;
    let ids: Vec<i64> = monitor.services().iter().map(|w| w.id).collect();
    let mut recorder = monitor.recorder();
    let mut step = 0u64;
    let mut probe = |clock: &ManualClock| {
        let results: Vec<ProbeResult> = ids
            .iter()
            .map(|id| {
                step += 1;
                let outcome = match step % 23 {
                    0 => Outcome::Down,
                    1 | 2 => Outcome::Degraded,
                    _ => Outcome::Up,
                };
                ProbeResult {
                    service_id: *id,
                    own_fault: false,
                    resume: false,
                    window_edge: false,
                    location: None,
                    checked_at: clock.now_ms(),
                    report: ProbeReport {
                        latency: Duration::from_millis(step * 37 % 900),
                        ..ProbeReport::down(Duration::ZERO, "x")
                    }
                    .with_outcome(outcome),
                }
            })
            .collect();
        clock.advance(Duration::from_secs(30));
        results
    };
    let mut batch = Vec::new();
    for _ in 0..(220 * 2) {
        batch.extend(probe(&clock));
    }
    recorder
        .record(std::mem::take(&mut batch))
        .await
        .expect("record");
    let first = Histories::read(&store, clock.now_ms())
        .await
        .expect("full read");
    for _ in 0..30 {
        batch.extend(probe(&clock));
    }
    recorder.record(batch).await.expect("record");
    let now = clock.now_ms();
    assert_eq!(
        Period::Hour.bucket_start(now),
        first.hour,
        "still the hour of the full read"
    );
    let updated = first.update(&store, now).await.expect("update");
    let full = Histories::read(&store, now).await.expect("full read");
    assert_eq!(updated.services, full.services);
    assert_ne!(
        first.services, full.services,
        "the later probes changed this hour and today"
    );

    // The same figures as a brute-force count of the raw results.
    for summary in store.service_summaries(now).await.expect("summaries") {
        let expected = brute_force_windows(&store, &summary.slug, now).await;
        let history = &full.services[&summary.id];
        assert_eq!(
            history.counts,
            expected.each_ref().map(counts),
            "{}",
            summary.slug
        );
        assert_eq!(history.p50_24h, expected[0].percentile_ms(0.5));
        assert_eq!(history.past_days.len(), 1, "yesterday");
        let today = history.today.expect("today has data");
        assert_eq!(today.date, clock.now().date_naive());
        assert!(today.uptime().is_some_and(|u| u < 100.0));
        assert_eq!(history.hours.len(), 4, "21:00, 22:00, 23:00 and this hour");
    }

    // The next hour of the same day: the 24 hours, yesterday and today
    // read again, the days before kept, equal a full read, a result for
    // yesterday held by the monitor and written late (as after a store
    // outage) included.
    let mut batch = Vec::new();
    for _ in 0..120 {
        batch.extend(probe(&clock));
    }
    let mut late = probe(&clock);
    for r in &mut late {
        r.checked_at = start.timestamp_millis() + (3 * 60 - 1) * 60_000;
    }
    batch.extend(late);
    recorder.record(batch).await.expect("record");
    let later = clock.now_ms();
    assert_ne!(Period::Hour.bucket_start(later), full.hour, "a new hour");
    assert_eq!(
        Period::Day.bucket_start(later),
        Period::Day.bucket_start(full.hour),
        "of the same day"
    );
    let turned = full.turn_hour(&store, later).await.expect("turn");
    let read = Histories::read(&store, later).await.expect("full read");
    assert_eq!(turned.hour, read.hour);
    assert_eq!(turned.services, read.services);
    let yesterday = |h: &Histories| {
        h.services
            .iter()
            .map(|(id, h)| (*id, h.past_days.last().map(|d| d.uptime())))
            .collect::<BTreeMap<_, _>>()
    };
    assert_ne!(
        yesterday(&full),
        yesterday(&read),
        "the late results moved yesterday's figures"
    );
    // And again an hour on, from the turned histories.
    let mut batch = Vec::new();
    for _ in 0..120 {
        batch.extend(probe(&clock));
    }
    recorder.record(batch).await.expect("record");
    let later = clock.now_ms();
    assert_ne!(Period::Hour.bucket_start(later), turned.hour, "a new hour");
    let again = turned.turn_hour(&store, later).await.expect("turn");
    let read = Histories::read(&store, later).await.expect("full read");
    assert_eq!(again.services, read.services);
    // At a new day it is a full read (the days kept would be another
    // day's).
    let tomorrow = later + 86_400_000;
    let next_day = again.turn_hour(&store, tomorrow).await.expect("turn");
    let read = Histories::read(&store, tomorrow).await.expect("full read");
    assert_eq!(next_day.services, read.services);
}

store_test!(
    only_the_history_of_services_a_page_shows_is_read,
    public_history
);
/// Issue 18: at 100,000 services with 1,000 public, the history of the
/// 99,000 no page shows costs neither memory nor reading time. A service
/// made public (a config reload) has its history read again in full.
async fn public_history(db: TestDb) {
    let mut config = test_config(
        &db,
        "[[service]]\nname = \"Shown\"\nurl = \"http://a.example/\"\n\
         [[service]]\nname = \"Hidden\"\nurl = \"http://b.example/\"\npublic = false\n",
    );
    let store = db.store().await;
    fill_history(&store, &config, 2).await;
    let now = 1_773_000_000_000i64 + 2 * 86_400_000;
    let id = |slug: &'static str| {
        let store = store.clone();
        async move {
            store
                .service_summaries(now)
                .await
                .expect("summaries")
                .into_iter()
                .find(|s| s.slug == slug)
                .map(|s| s.id)
                .expect(slug)
        }
    };
    let (shown, hidden) = (id("shown").await, id("hidden").await);
    let histories = Histories::read(&store, now).await.expect("history");
    assert!(histories.services.contains_key(&shown));
    assert!(
        !histories.services.contains_key(&hidden),
        "a service no page shows has no history in memory"
    );
    let (ok, counted) = histories.services[&shown].counts[3];
    assert!(counted > 0 && ok > 0, "the public one's 90 days are read");
    let update = histories.update(&store, now).await.expect("update");
    assert!(!update.services.contains_key(&hidden));

    config.services[1].public = true;
    store
        .sync_services(&config.services, now)
        .await
        .expect("sync");
    let histories = Histories::read(&store, now).await.expect("history");
    let (_, counted) = histories.services[&hidden].counts[3];
    assert!(counted > 0, "made public, its history is read");
}

store_test!(
    raw_results_packed_by_hour_read_back_the_same_and_are_pruned_whole,
    packed_hours
);
async fn packed_hours(db: TestDb) {
    use beacon::domain::State;
    use beacon::store::{Batch, CheckResult, StatusChange};
    const HOUR: i64 = 3_600_000;
    let config = test_config(
        &db,
        "[[service]]\nname = \"A\"\nurl = \"http://a.example/\"\n\
         [[service]]\nname = \"B\"\nurl = \"http://b.example/\"\n",
    );
    let store = db.store().await;
    let t0 = 1_773_360_000_000i64; // 2026-03-13 00:00 UTC, an hour's start
    let stored = store
        .sync_services(&config.services, t0)
        .await
        .expect("sync");
    let ids: Vec<i64> = stored.iter().map(|s| s.id).collect();
    // Five hours and a half every 30 s, of every kind a result can be:
    // down with a reason, degraded, in maintenance, without latency or
    // status. A goes down at 01:10 and stays down.
    let mut seed: u64 = 7;
    let mut next = move || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        seed >> 33
    };
    let end = t0 + 5 * HOUR + HOUR / 2;
    let mut at = t0;
    let mut batch = Batch::default();
    while at < end {
        for (i, id) in ids.iter().enumerate() {
            let roll = next() % 10;
            let down = i == 0 && at >= t0 + HOUR + 600_000;
            let outcome = match (down, roll) {
                (true, _) | (_, 0) => Outcome::Down,
                (_, 1) => Outcome::Degraded,
                _ => Outcome::Up,
            };
            batch.results.push(CheckResult {
                service_id: *id,
                checked_at: at + i as i64 * 7,
                outcome,
                maintenance: roll == 2 && !down,
                latency_ms: (roll != 3).then(|| (next() % 70_000) as i32),
                status_code: (roll != 4).then_some(if outcome == Outcome::Down {
                    503
                } else {
                    200
                }),
                reason: (outcome == Outcome::Down)
                    .then(|| format!("HTTP 503 at {at}, expected 2xx")),
            });
        }
        if at == t0 + HOUR + 600_000 {
            batch.changes.push(StatusChange {
                service_id: ids[0],
                changed_at: at,
                from: State::Unknown,
                to: State::Down,
                reason: Some("HTTP 503".into()),
            });
        }
        if batch.results.len() >= 500 {
            store.write_batch(&batch).await.expect("write");
            batch = Batch::default();
        }
        at += 30_000;
    }
    store.write_batch(&batch).await.expect("write");
    let before_a = store.check_results("a").await.expect("a");
    let before_b = store.check_results("b").await.expect("b");
    assert_eq!(before_a.len(), 660);
    let resume_3 = store.resume_point(ids[0], 3).await.expect("resume");
    let resume_all = store.resume_point(ids[0], 100_000).await.expect("resume");
    assert_eq!(resume_all.0, State::Down);
    assert_eq!(
        resume_all.1.len(),
        660 - 141,
        "every result after the change (01:10 itself is not)"
    );

    // At 05:40, the hours before 04:00 are packed: 00–03, four per service.
    let now = end + 600_000;
    let packed = store.compact_results(now).await.expect("compact");
    assert_eq!(packed.hours, 2 * 4);
    assert_eq!(packed.results, 2 * 4 * 120);
    assert_eq!(store.count_rows("check_result_hours").await.expect("n"), 8);
    assert_eq!(
        store.count_rows("check_results").await.expect("n"),
        2 * (660 - 480),
        "the last hour and a half stays a row per result"
    );
    assert_eq!(
        store.check_results("a").await.expect("a"),
        before_a,
        "A reads back the same"
    );
    assert_eq!(
        store.check_results("b").await.expect("b"),
        before_b,
        "B reads back the same"
    );
    assert_eq!(
        store.resume_point(ids[0], 3).await.expect("resume"),
        resume_3
    );
    assert_eq!(
        store.resume_point(ids[0], 100_000).await.expect("resume"),
        resume_all,
        "a resume point reaching back across packed hours"
    );
    assert_eq!(
        store.compact_results(now).await.expect("again"),
        Default::default(),
        "a second pass moves nothing"
    );

    // A result arriving late for an hour already packed (a batch held while
    // the store was away) is merged into that hour at the next pass.
    let late = CheckResult {
        service_id: ids[1],
        checked_at: t0 + 2 * HOUR + 15_001,
        outcome: Outcome::Down,
        maintenance: false,
        latency_ms: None,
        status_code: None,
        reason: Some("connection refused".into()),
    };
    store
        .write_batch(&Batch {
            results: vec![late.clone()],
            ..Batch::default()
        })
        .await
        .expect("late");
    let mut expected_b = before_b.clone();
    expected_b.push(late);
    expected_b.sort_by_key(|r| r.checked_at);
    assert_eq!(store.check_results("b").await.expect("b"), expected_b);
    // And a result sent again for a millisecond already packed (a batch
    // resent): read once, the packed one, before and after the next pass.
    let mut again = before_a[300].clone();
    again.outcome = Outcome::Up;
    again.reason = None;
    assert!(again.checked_at < t0 + 4 * HOUR);
    store
        .write_batch(&Batch {
            results: vec![again],
            ..Batch::default()
        })
        .await
        .expect("again");
    assert_eq!(store.check_results("a").await.expect("a"), before_a);
    assert_eq!(
        store.resume_point(ids[0], 100_000).await.expect("resume"),
        resume_all,
        "a millisecond counted once"
    );
    let merged = store.compact_results(now).await.expect("merge");
    assert_eq!((merged.results, merged.hours), (2, 2));
    assert_eq!(store.check_results("a").await.expect("a"), before_a);
    assert_eq!(store.count_rows("check_result_hours").await.expect("n"), 8);
    assert_eq!(store.check_results("b").await.expect("b"), expected_b);

    // Retention: a packed hour goes once all of it is past, and is counted
    // by the results it held. Keeping 3 h at 05:40 keeps 02:40 on: hour
    // 02 is kept whole, 00 and 01 go.
    let total: usize = 660 * 2 + 1;
    let pruned = store.prune(now, 3 * HOUR).await.expect("prune");
    assert_eq!(pruned.results, 2 * 2 * 120);
    let left = store.check_results("a").await.expect("a").len()
        + store.check_results("b").await.expect("b").len();
    assert_eq!(left as u64 + pruned.results, total as u64);
    assert_eq!(store.count_rows("check_result_hours").await.expect("n"), 4);
    assert_eq!(
        store.prune(now, 3 * HOUR).await.expect("again"),
        Default::default()
    );
}

store_test!(
    packing_goes_on_while_batches_of_results_are_written,
    packing_beside_writes
);
/// The retention pass packs raw results while the monitor writes batches
/// (every 2 s by default; here back to back): a pass reads the oldest
/// hour before it moves it, and a batch committed between the two must
/// neither fail the pass nor be lost. On SQLite a pass that read first
/// and asked for the write lock second failed at once ("database is
/// locked") when a batch committed in between; and SQLite, not fair,
/// let a pass that begins its next hour microseconds after committing
/// one keep the lock from a batch waiting in its busy handler until
/// the pass ended (a pass after an upgrade outlasts the busy timeout):
/// here a batch goes in between the pass's hours.
async fn packing_beside_writes(db: TestDb) {
    use beacon::store::{Batch, CheckResult};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    const HOUR: i64 = 3_600_000;
    const HOURS: i64 = 24;
    let services: String = (0..10)
        .map(|i| format!("[[service]]\nname = \"S{i}\"\nurl = \"http://s{i}.example/\"\n"))
        .collect();
    let config = test_config(&db, &services);
    let store = db.store().await;
    let t0 = 1_773_360_000_000i64; // 2026-03-13 00:00 UTC, an hour's start
    let ids: Vec<i64> = store
        .sync_services(&config.services, t0)
        .await
        .expect("sync")
        .iter()
        .map(|s| s.id)
        .collect();
    let result = |service_id: i64, checked_at: i64| CheckResult {
        service_id,
        checked_at,
        outcome: Outcome::Up,
        maintenance: false,
        latency_ms: Some(12),
        status_code: Some(200),
        reason: None,
    };
    // A day of results a minute apart: 24 hours to pack for each service.
    let mut batch = Batch::default();
    for minute in 0..HOURS * 60 {
        for id in &ids {
            batch.results.push(result(*id, t0 + minute * 60_000));
        }
        if batch.results.len() >= 2_000 {
            store.write_batch(&batch).await.expect("seed");
            batch = Batch::default();
        }
    }
    store.write_batch(&batch).await.expect("seed");
    let now = t0 + (HOURS + 1) * HOUR + 60_000;

    // Batches back to back, each a result a millisecond apart in the
    // current hour (not packed by this pass), until the pass ends; the
    // pass starts once the first is in, so the writer is already waiting
    // for its next turn when the pass begins.
    let done = Arc::new(AtomicBool::new(false));
    let (first_tx, first) = tokio::sync::oneshot::channel::<()>();
    let writer = {
        let (store, done, ids) = (store.clone(), done.clone(), ids.clone());
        tokio::spawn(async move {
            // All written, and those committed before the pass ended.
            let (mut written, mut during) = (0i64, 0i64);
            let mut first_tx = Some(first_tx);
            while !done.load(Ordering::Relaxed) {
                let at = now + written;
                let batch = Batch {
                    results: ids.iter().map(|id| result(*id, at)).collect(),
                    ..Batch::default()
                };
                store
                    .write_batch(&batch)
                    .await
                    .expect("a batch beside the pass");
                written += 1;
                during += i64::from(!done.load(Ordering::Relaxed));
                if let Some(tx) = first_tx.take() {
                    let _ = tx.send(());
                }
            }
            (written, during)
        })
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), first)
        .await
        .expect("the first batch within 30 s")
        .expect("the writer went on");
    let packed = store.compact_results(now).await;
    done.store(true, Ordering::Relaxed);
    let (written, during) = writer.await.expect("the writer");
    let packed = packed.expect("the pass, beside the batches");
    assert_eq!(packed.hours, HOURS as u64 * ids.len() as u64);
    assert_eq!(packed.results, (HOURS * 60) as u64 * ids.len() as u64);
    // The first batch went in before the pass (counted in `during`). On
    // SQLite the writer then waits for the turn the pass hands over after
    // each of its 24 hours; on PostgreSQL the two do not wait on each
    // other at all.
    let between = match db.kind {
        Kind::Sqlite => HOURS / 2,
        Kind::Postgres => 1,
    };
    assert!(
        during - 1 > between,
        "batches went in between the pass's hours: {during} of {written}"
    );
    assert_eq!(
        store.count_rows("check_results").await.expect("n"),
        written * ids.len() as i64,
        "every batch written beside the pass is kept, row by row"
    );
}
