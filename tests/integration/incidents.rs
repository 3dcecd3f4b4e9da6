//! Automatic incidents: opened when a service goes down, kept across a
//! restart, reopened when it flaps, resolved on recovery.

use std::sync::atomic::Ordering;
use std::time::Duration;

use beacon::clock::{Clock, ManualClock};
use beacon::monitor::{Monitor, Recorder};
use chrono::TimeZone;

use crate::helpers::{simulated_monitor, test_config, Target, TestDb};
use crate::store_test;

struct Rig {
    monitor: Monitor,
    recorder: Recorder,
    clock: ManualClock,
    target: Target,
}

impl Rig {
    /// Sets the target's answer, moves the clock 30 s, probes and records.
    async fn step(&mut self, slug: &str, status: u16) {
        self.target.switch.store(status, Ordering::SeqCst);
        self.clock.advance(Duration::from_secs(30));
        let result = self.monitor.probe(slug).await.expect("service");
        self.recorder.record(vec![result]).await.expect("recorded");
    }
}

store_test!(
    automatic_incidents_follow_outages_restarts_and_flapping,
    lifecycle
);
async fn lifecycle(db: TestDb) {
    let target = Target::start().await;
    let mut config = test_config(
        &db,
        &format!(
            "[[group]]\nname = \"Shop\"\n\
             [[service]]\nname = \"Checkout API\"\ngroup = \"Shop\"\nurl = \"{url}\"\ninterval = \"30s\"\ntimeout = \"2s\"\n\
             [[service]]\nname = \"Search\"\nurl = \"{url}\"\ninterval = \"30s\"\ntimeout = \"2s\"\nfailure_threshold = 1\n",
            url = target.url("switch")
        ),
    );
    config.monitor.incident_cooldown = Duration::from_secs(600);
    let store = db.store().await;
    let clock = ManualClock::at(
        chrono::Utc
            .with_ymd_and_hms(2026, 3, 12, 9, 0, 0)
            .single()
            .expect("time"),
    );
    let build = || simulated_monitor(&config, &store, &clock);
    let monitor = build().await;
    let recorder = monitor.recorder();
    let mut rig = Rig {
        monitor,
        recorder,
        clock: clock.clone(),
        target: target.clone(),
    };

    rig.step("checkout-api", 200).await;
    for _ in 0..3 {
        rig.step("checkout-api", 503).await;
    }
    let incidents = store.incidents_of("checkout-api").await.expect("incidents");
    assert_eq!(incidents.len(), 1);
    let first = &incidents[0];
    assert_eq!(
        (first.title.as_str(), first.status.as_str()),
        ("Checkout API is down", "investigating")
    );
    assert_eq!(first.impact, "major", "a service down shows major_outage");
    assert!(first.automatic);
    assert_eq!(
        first.updates,
        [beacon::store::IncidentUpdate {
            status: "investigating".to_string(),
            message: "Checkout API is not responding as expected. We are looking into it."
                .to_string(),
            created_at: first.started_at,
        }]
    );

    // A restart in the middle of the outage: the stored state is down, so
    // nothing new is opened however long it stays down.
    let monitor = build().await;
    rig.recorder = monitor.recorder();
    rig.monitor = monitor;
    for _ in 0..4 {
        rig.step("checkout-api", 503).await;
    }
    assert_eq!(
        store
            .incidents_of("checkout-api")
            .await
            .expect("incidents")
            .len(),
        1
    );

    // Recovery resolves it, with how long it lasted (down at the third
    // failure, 2.5 min before the recovery: "3 min").
    rig.step("checkout-api", 200).await;
    let resolved = store
        .incidents_of("checkout-api")
        .await
        .expect("incidents")
        .remove(0);
    assert_eq!(resolved.status, "resolved");
    assert_eq!(resolved.resolved_at, Some(clock.now_ms()));
    let last = resolved.updates.last().expect("update");
    assert_eq!(
        (last.status.as_str(), last.message.as_str()),
        ("resolved", "Resolved automatically after 3 min.")
    );

    // Flapping: down again within the 10 min cooldown reopens the same one.
    for _ in 0..3 {
        rig.step("checkout-api", 503).await;
    }
    let incidents = store.incidents_of("checkout-api").await.expect("incidents");
    assert_eq!(incidents.len(), 1, "no second incident for a flap");
    assert_eq!(incidents[0].status, "investigating");
    assert_eq!(incidents[0].resolved_at, None);
    assert_eq!(
        incidents[0].updates.last().map(|u| u.message.as_str()),
        Some("Checkout API is down again, shortly after recovering.")
    );
    rig.step("checkout-api", 200).await;

    // Past the cooldown, a new outage is a new incident.
    rig.clock.advance(Duration::from_secs(11 * 60));
    for _ in 0..3 {
        rig.step("checkout-api", 503).await;
    }
    let incidents = store.incidents_of("checkout-api").await.expect("incidents");
    assert_eq!(incidents.len(), 2);
    assert_eq!(incidents[0].status, "resolved");
    assert_eq!(incidents[1].status, "investigating");

    // Any service's outage is major, as its component (major_outage) and
    // the page's indicator say: here one service of two is down, so
    // status.json says "major" (a partial outage), not "minor".
    rig.step("checkout-api", 200).await;
    rig.step("search", 503).await;
    let search = store.incidents_of("search").await.expect("incidents");
    assert_eq!(search.len(), 1);
    assert_eq!(search[0].impact, "major");
    let states: Vec<_> = store
        .service_summaries(rig.clock.now_ms())
        .await
        .expect("summaries")
        .iter()
        .map(|s| s.state)
        .collect();
    let overall = beacon::snapshot::Overall::of(&states);
    assert_eq!(
        beacon::web::indicator(overall).0,
        search[0].impact,
        "the page's indicator and the incident's impact agree"
    );
    for message in incidents
        .iter()
        .chain(&search)
        .flat_map(|i| i.updates.iter().map(|u| &u.message))
    {
        assert!(
            !message.contains("503") && !message.contains("127.0.0.1"),
            "public text only: {message}"
        );
    }
}

store_test!(
    maintenance_windows_silence_incidents_and_leave_uptime_alone,
    maintenance
);
async fn maintenance(db: TestDb) {
    let target = Target::start().await;
    let config = test_config(
        &db,
        &format!(
            "[[service]]\nname = \"Checkout API\"\nurl = \"{}\"\ninterval = \"30s\"\ntimeout = \"2s\"\nfailure_threshold = 1\n",
            target.url("switch")
        ),
    );
    let store = db.store().await;
    let start = chrono::Utc
        .with_ymd_and_hms(2026, 3, 12, 22, 0, 0)
        .single()
        .expect("time");
    let clock = ManualClock::at(start);
    let monitor = simulated_monitor(&config, &store, &clock).await;
    let recorder = monitor.recorder();
    let mut rig = Rig {
        monitor,
        recorder,
        clock: clock.clone(),
        target: target.clone(),
    };
    rig.step("checkout-api", 200).await;

    // A window from 22:10 to 22:20.
    let at = |minutes: i64| start.timestamp_millis() + minutes * 60_000;
    store
        .save_maintenance(
            None,
            &beacon::store::MaintenanceInput {
                title: "Database upgrade".into(),
                message: "Checkout may be unavailable.".into(),
                starts_at: at(10),
                ends_at: at(20),
                services: vec!["checkout-api".into()],
            },
            at(0),
        )
        .await
        .expect("saved");
    rig.clock.set(start + chrono::Duration::minutes(10));
    // Down for the whole window: maintenance, no incident.
    for _ in 0..19 {
        rig.step("checkout-api", 503).await;
    }
    let summary = store
        .service_summaries(rig.clock.now_ms())
        .await
        .expect("summaries")
        .remove(0);
    assert_eq!(summary.state, beacon::domain::State::Maintenance);
    assert!(store
        .incidents_of("checkout-api")
        .await
        .expect("incidents")
        .is_empty());
    // After the window, still down: now it is an outage.
    rig.step("checkout-api", 503).await;
    rig.step("checkout-api", 503).await;
    let incidents = store.incidents_of("checkout-api").await.expect("incidents");
    assert_eq!(incidents.len(), 1);
    assert!(incidents[0].started_at >= at(20));

    let changes: Vec<_> = store
        .status_changes("checkout-api")
        .await
        .expect("changes")
        .iter()
        .map(|c| (c.from, c.to))
        .collect();
    use beacon::domain::State::*;
    assert_eq!(
        changes,
        [(Unknown, Up), (Up, Maintenance), (Maintenance, Down)]
    );
    // Probes in the window count as maintenance, out of uptime.
    let hour = store
        .rollups("checkout-api", beacon::store::rollup::Period::Hour)
        .await
        .expect("rollups");
    let total: beacon::store::rollup::Rollup =
        hour.iter().fold(Default::default(), |mut acc, (_, r)| {
            acc.merge(r);
            acc
        });
    assert_eq!((total.up, total.down, total.maintenance), (1, 2, 19));
}

store_test!(
    the_snapshot_loads_again_only_the_incidents_that_moved,
    kept_incidents
);
/// The refresher keeps the open and recent incidents between rebuilds and
/// loads again only those a write moved: whatever is written (opened,
/// updated, edited, resolved, deleted; by hand or by the monitor), what it
/// returns is what loading every incident returns.
async fn kept_incidents(db: TestDb) {
    use beacon::snapshot::KeptIncidents;
    use beacon::store::{Incident, IncidentPatch, NewIncident};
    let target = Target::start().await;
    let config = test_config(
        &db,
        &format!(
            "[[service]]\nname = \"API\"\nurl = \"{url}\"\ninterval = \"30s\"\ntimeout = \"2s\"\nfailure_threshold = 1\n\
             [[service]]\nname = \"Search\"\nurl = \"{url}\"\ninterval = \"30s\"\ntimeout = \"2s\"\n",
            url = target.url("switch")
        ),
    );
    let store = db.store().await;
    let clock = ManualClock::at(
        chrono::Utc
            .with_ymd_and_hms(2026, 3, 12, 9, 0, 0)
            .single()
            .expect("time"),
    );
    let monitor = simulated_monitor(&config, &store, &clock).await;
    let recorder = monitor.recorder();
    let mut rig = Rig {
        monitor,
        recorder,
        clock: clock.clone(),
        target: target.clone(),
    };
    let kept = KeptIncidents::default();
    let since = || clock.now_ms() - 95 * 86_400_000;
    // Reads through `kept`, checks it against a load of every incident,
    // and says how many it loaded.
    let read = async || -> (Vec<Incident>, Vec<Incident>, usize) {
        let (open, recent) = kept
            .read(&store, since(), 50, 500)
            .await
            .expect("kept read");
        let all_open = store.unresolved_incidents().await.expect("open");
        let all_recent = store
            .incidents_since(since(), 50, 500)
            .await
            .expect("recent");
        assert_eq!(open, all_open, "the open incidents, as loading them all");
        assert_eq!(recent, all_recent, "the recent ones, as loading them all");
        (open, recent, kept.loaded())
    };
    let (open, recent, loaded) = read().await;
    assert!(open.is_empty() && recent.is_empty() && loaded == 0);

    let new = |title: &str, at: i64| NewIncident {
        title: title.to_string(),
        impact: "minor".to_string(),
        status: "investigating".to_string(),
        message: "Looking into it.".to_string(),
        services: vec!["search".to_string()],
        at,
        notify: false,
    };
    let first = store
        .create_incident(&new("Slow search", clock.now_ms()))
        .await
        .expect("create");
    assert_eq!(read().await.2, 1, "a new incident is loaded");
    assert_eq!(read().await.2, 0, "nothing moved: nothing loaded");
    let second = store
        .create_incident(&new("Search errors", clock.now_ms()))
        .await
        .expect("create");
    let (open, _, loaded) = read().await;
    assert_eq!((open.len(), loaded), (2, 1), "only the new one loaded");

    // Each kind of write loads that incident again, and only it; two in
    // the same millisecond too (the revision moves where the time would
    // not).
    let at = clock.now_ms();
    for (status, message) in [("identified", "Found it."), ("monitoring", "Fixed.")] {
        store
            .add_incident_update(first, status, message, at, false)
            .await
            .expect("update");
        let (open, _, loaded) = read().await;
        assert_eq!(loaded, 1);
        let shown = open.iter().find(|i| i.id == first).expect("open");
        assert_eq!(
            shown.updates.last().map(|u| u.message.as_str()),
            Some(message)
        );
    }
    let patch = IncidentPatch {
        title: Some("Search slow in one region".to_string()),
        services: Some(vec!["api".to_string(), "search".to_string()]),
        ..IncidentPatch::default()
    };
    store
        .patch_incident(first, &patch, at)
        .await
        .expect("patch");
    let (open, _, loaded) = read().await;
    assert_eq!(loaded, 1);
    let shown = open.iter().find(|i| i.id == first).expect("open");
    assert_eq!(shown.title, "Search slow in one region");
    assert_eq!(shown.services, ["api", "search"]);
    // A replica of the release before (a rolling upgrade) writes without
    // moving the revision; its write moves `updated_at`, compared too.
    let raw = crate::helpers::Raw::connect(&db.url).await;
    raw.exec(&format!(
        "UPDATE incidents SET title = 'Search slow', updated_at = updated_at + 1 WHERE id = {first}"
    ))
    .await
    .expect("the release before's write");
    raw.close().await;
    let (open, _, loaded) = read().await;
    assert_eq!(loaded, 1, "a write of the release before is loaded");
    let shown = open.iter().find(|i| i.id == first).expect("open");
    assert_eq!(shown.title, "Search slow");
    store
        .add_incident_update(second, "resolved", "Gone.", at, false)
        .await
        .expect("resolve");
    let (open, recent, loaded) = read().await;
    assert_eq!(loaded, 1);
    assert!(open.iter().all(|i| i.id != second), "resolved: not open");
    assert!(recent
        .iter()
        .any(|i| i.id == second && i.resolved_at == Some(at)));
    assert!(store.delete_incident(second).await.expect("delete"));
    let (_, recent, loaded) = read().await;
    assert_eq!(loaded, 0, "a deleted incident is dropped, nothing loaded");
    assert!(recent.iter().all(|i| i.id != second));

    // The monitor's own: opened when API goes down, resolved when it
    // recovers, reopened when it goes down again within the cooldown.
    rig.step("api", 200).await;
    rig.step("api", 503).await;
    let (open, _, loaded) = read().await;
    assert_eq!(loaded, 1, "the automatic incident loaded");
    assert!(open.iter().any(|i| i.automatic));
    rig.step("api", 200).await;
    let (open, _, loaded) = read().await;
    assert_eq!(loaded, 1, "its resolution loaded");
    assert!(open.iter().all(|i| !i.automatic));
    rig.step("api", 503).await;
    let (open, _, loaded) = read().await;
    assert_eq!(loaded, 1, "its reopening loaded");
    assert!(open
        .iter()
        .any(|i| i.automatic && i.status == "investigating"));
}
