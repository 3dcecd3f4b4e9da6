//! Services follow the config; history stays with the store.

use std::time::Duration;

use crate::helpers::{eventually, one_result, test_config, Target, TestApp, TestDb};
use crate::page::state_on_page;
use crate::store_test;

store_test!(
    renamed_or_removed_services_keep_history_and_leave_the_page,
    sync
);
async fn sync(db: TestDb) {
    let target = Target::start().await;
    let service = |name: &str, extra: &str| {
        format!(
            "[[service]]\nname = \"{name}\"\nurl = \"{}\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n{extra}\n",
            target.url("ok")
        )
    };
    let first = test_config(
        &db,
        &format!(
            "{}{}",
            service("Alpha", "slug = \"alpha\""),
            service("Beta", "")
        ),
    );
    let app = TestApp::spawn(first).await;
    let store = app.store.clone();
    eventually(
        "both services have results",
        Duration::from_secs(10),
        || async {
            !store.check_results("alpha").await.expect("r").is_empty()
                && !store.check_results("beta").await.expect("r").is_empty()
        },
    )
    .await;
    app.stop().await.expect("clean stop");
    let store = db.store().await;
    let alpha_before = store.check_results("alpha").await.expect("r").len();
    let beta_before = store.check_results("beta").await.expect("r").len();

    // Alpha renamed (its slug pinned), Beta removed.
    let second = test_config(&db, &service("Alpha One", "slug = \"alpha\""));
    let app = TestApp::spawn(second).await;
    eventually(
        "the renamed service is up on the page",
        Duration::from_secs(10),
        || async {
            let (_, html) = app.get("/").await.expect("page");
            state_on_page(&html, "Alpha One") == Some("up")
        },
    )
    .await;
    let (_, html) = app.get("/").await.expect("page");
    assert!(!html.contains("Beta"), "a removed service leaves the page");
    assert!(!html.contains(">Alpha<"), "the old name is gone");
    let store = app.store.clone();
    assert!(store.check_results("alpha").await.expect("r").len() >= alpha_before);
    assert_eq!(
        store.check_results("beta").await.expect("r").len(),
        beta_before,
        "history kept"
    );
    let slugs: Vec<String> = store
        .service_summaries(chrono::Utc::now().timestamp_millis())
        .await
        .expect("summaries")
        .into_iter()
        .map(|s| s.slug)
        .collect();
    assert_eq!(slugs, ["alpha"]);
    assert_eq!(store.count_rows("services").await.expect("count"), 2);
    app.stop().await.expect("clean stop");
}

store_test!(
    two_replicas_syncing_the_services_in_opposite_orders_never_deadlock,
    opposite_orders
);
/// Two beacons starting at once against one database (a rolling update, or
/// replicas) each make the `services` table match their config in one
/// transaction. With the services listed in opposite orders they must not
/// lock rows in opposite orders: on PostgreSQL that is a deadlock (40P01),
/// which fails a start-up.
async fn opposite_orders(db: TestDb) {
    let (one, two) = (db.store().await, db.store().await);
    for round in 0..8 {
        let mut body = String::new();
        for i in 0..40 {
            body.push_str(&format!(
                "[[service]]\nname = \"S{i}\"\nslug = \"r{round}-{i}\"\nurl = \"http://s{i}.example/\"\n"
            ));
        }
        let config = test_config(&db, &body);
        let forward = config.services.clone();
        let mut backward = config.services;
        backward.reverse();
        let now = 1_700_000_000_000 + round;
        let (a, b) = tokio::join!(
            one.sync_services(&forward, now),
            two.sync_services(&backward, now)
        );
        let (a, b) = (
            a.unwrap_or_else(|e| panic!("round {round}, forward: {e}")),
            b.unwrap_or_else(|e| panic!("round {round}, backward: {e}")),
        );
        // Each answers in its own config's order, and both name the same rows.
        let slugs = |s: &[beacon::store::StoredService]| {
            s.iter().map(|s| s.slug.clone()).collect::<Vec<_>>()
        };
        assert_eq!(
            slugs(&a),
            forward.iter().map(|s| s.slug.clone()).collect::<Vec<_>>()
        );
        assert_eq!(
            slugs(&b),
            backward.iter().map(|s| s.slug.clone()).collect::<Vec<_>>()
        );
        let ids_a: std::collections::HashMap<_, _> =
            a.iter().map(|s| (s.slug.clone(), s.id)).collect();
        assert!(b.iter().all(|s| ids_a[&s.slug] == s.id), "round {round}");
    }
}

store_test!(
    the_page_reads_again_only_the_rows_whose_revision_moved,
    revisions
);
async fn revisions(db: TestDb) {
    use beacon::domain::{Outcome, State};
    use beacon::store::{Batch, StatusChange};
    let service = |name: &str, extra: &str| {
        format!("[[service]]\nname = \"{name}\"\nurl = \"http://{name}.example/health\"\n{extra}\n")
    };
    let config = test_config(
        &db,
        &format!(
            "{}{}{}",
            service("alpha", ""),
            service("beta", ""),
            service("hidden", "public = false")
        ),
    );
    let store = db.store().await;
    let stored = store
        .sync_services(&config.services, 1_000)
        .await
        .expect("sync");
    let id = |slug: &str| stored.iter().find(|s| s.slug == slug).expect("synced").id;
    let (alpha, beta) = (id("alpha"), id("beta"));

    // Only shown services: a private one has no revision to follow.
    let first = store.page_versions().await.map(by_id).expect("revisions");
    let mut ids: Vec<i64> = first.keys().copied().collect();
    ids.sort_unstable();
    assert_eq!(ids, [alpha, beta]);
    let all = store.page_summaries(None).await.expect("summaries");
    assert_eq!(all.len(), 2);
    for (revision, summary) in &all {
        assert_eq!(
            first.get(&summary.id).map(|v| v.revision),
            Some(*revision),
            "{}",
            summary.slug
        );
        assert_eq!(first[&summary.id].last_checked_at, None);
    }

    // A probe of alpha, and its state changing: alpha's revision moves,
    // beta's does not.
    let batch = Batch {
        results: vec![one_result(alpha, 2_000, Outcome::Down)],
        changes: vec![StatusChange {
            service_id: alpha,
            changed_at: 2_000,
            from: State::Unknown,
            to: State::Down,
            reason: Some("HTTP 500".into()),
        }],
        ..Batch::default()
    };
    store.write_batch(&batch).await.expect("write");
    let second = store.page_versions().await.map(by_id).expect("revisions");
    assert!(
        second[&alpha].revision > first[&alpha].revision,
        "a row whose state changed moves"
    );
    assert_eq!(second[&alpha].last_checked_at, Some(2_000));
    assert_eq!(second[&beta], first[&beta], "an untouched row stays");

    // A probe alone (no change) is seen in the last check, without moving
    // the row's revision: the page does not read the row again for it.
    let probe = |service_id, checked_at| Batch {
        results: vec![one_result(service_id, checked_at, Outcome::Down)],
        ..Batch::default()
    };
    store
        .write_batch(&probe(alpha, 2_100))
        .await
        .expect("write");
    let probed = store.page_versions().await.map(by_id).expect("revisions");
    assert_eq!(probed[&alpha].revision, second[&alpha].revision);
    assert_eq!(probed[&alpha].last_checked_at, Some(2_100));
    // An older result arriving late (a held batch) does not go back.
    store
        .write_batch(&probe(alpha, 2_050))
        .await
        .expect("write");
    assert_eq!(
        store.page_versions().await.map(by_id).expect("revisions")[&alpha].last_checked_at,
        Some(2_100)
    );
    let read = store
        .page_summaries(Some(&[alpha]))
        .await
        .expect("summaries");
    assert_eq!(read.len(), 1, "only the rows asked for");
    let (revision, summary) = &read[0];
    assert_eq!(*revision, second[&alpha].revision);
    assert_eq!(summary.state, State::Down);
    assert_eq!(summary.last_checked_at, Some(2_100));

    // A restart with the same config writes nothing: no revision moves,
    // no change is counted, and the states come back as stored.
    let counters = store.change_counter().await.expect("counters");
    let again = store
        .sync_services(&config.services, 2_500)
        .await
        .expect("sync");
    assert_eq!(
        store.page_versions().await.map(by_id).expect("revisions"),
        probed
    );
    assert_eq!(store.change_counter().await.expect("counters"), counters);
    assert_eq!(
        again.iter().map(|s| (s.id, s.state)).collect::<Vec<_>>(),
        [
            (alpha, State::Down),
            (beta, State::Unknown),
            (id("hidden"), State::Unknown)
        ]
    );

    // A config reload renaming beta moves it; one making alpha private
    // takes it off the list.
    let renamed = test_config(
        &db,
        &format!(
            "{}{}",
            service("alpha", "public = false"),
            service("beta", "slug = \"beta\"\ndescription = \"Now described\"")
        ),
    );
    store
        .sync_services(&renamed.services, 3_000)
        .await
        .expect("sync");
    let third = store.page_versions().await.map(by_id).expect("revisions");
    assert_eq!(third.keys().copied().collect::<Vec<_>>(), [beta]);
    assert!(third[&beta].revision > second[&beta].revision);
    let read = store
        .page_summaries(Some(&[alpha, beta]))
        .await
        .expect("summaries");
    assert_eq!(read.len(), 1, "a private row is not read for the page");
    assert_eq!(read[0].1.description.as_deref(), Some("Now described"));
}

store_test!(
    the_page_follows_each_probe_s_last_check_without_a_state_change,
    last_check_on_the_page
);
/// A steady service's probes move no revision (they would have the page
/// read its whole row again each time), yet the page and its API show the
/// newest check: it comes with the revisions.
async fn last_check_on_the_page(db: TestDb) {
    let target = Target::start().await;
    let config = test_config(
        &db,
        &format!(
            "[[service]]\nname = \"Steady\"\nslug = \"steady\"\nurl = \"{}\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n",
            target.url("ok")
        ),
    );
    let app = TestApp::spawn(config).await;
    app.wait_for_every_state().await;
    let api_last_check = || api_last_check(&app, "steady");
    let first = std::sync::Mutex::new(None);
    eventually(
        "the page shows a last check",
        Duration::from_secs(10),
        || async {
            let at = api_last_check().await;
            *first.lock().expect("lock") = at;
            at.is_some()
        },
    )
    .await;
    let first = first.into_inner().expect("lock").expect("a last check");
    let revision =
        |versions: Vec<(i64, beacon::store::RowVersion)>| versions.first().map(|(_, v)| v.revision);
    let before = revision(app.store.page_versions().await.expect("versions"));
    // Three probes later, the page's last check has moved on with them.
    eventually(
        "the page shows a newer check",
        Duration::from_secs(15),
        || async {
            api_last_check()
                .await
                .is_some_and(|at| at >= first + chrono::Duration::seconds(3))
        },
    )
    .await;
    let after = revision(app.store.page_versions().await.expect("versions"));
    assert_eq!(before, after, "probes of a steady service move no revision");
    let (_, html) = app.get("/").await.expect("page");
    assert!(html.contains("checked "), "{html}");
    app.stop().await.expect("clean stop");
}

store_test!(
    routine_writes_reach_the_page_every_few_seconds_an_incident_at_once,
    routine_gap
);
/// A probe's last check is routine: the page takes it with the next
/// rebuild at most every `ROUTINE_GAP` (5 s), not every second. An
/// incident is urgent: it is on the page within about a second, whenever
/// in that gap it is written.
async fn routine_gap(db: TestDb) {
    use beacon::snapshot::ROUTINE_GAP;
    const TOKEN: &str = "test-admin-token-0123456789";
    let target = Target::start().await;
    let config = test_config(
        &db,
        &format!(
            "[admin]\ntokens = [\"{TOKEN}\"]\n[[service]]\nname = \"Steady\"\nslug = \"steady\"\nurl = \"{}\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n",
            target.url("ok")
        ),
    );
    let app = TestApp::spawn(config).await;
    app.wait_for_every_state().await;
    let last_check = || api_last_check(&app, "steady");
    // Three moves of the page's last check, polled every 50 ms. The read
    // of the history after an hour's turn (within 35 s of it) rebuilds
    // in between when it ends: a watch near one is made again.
    let near_a_turn = |t: chrono::DateTime<chrono::Utc>| {
        use chrono::Timelike;
        t.minute() == 0 && t.second() < 50
    };
    let moves = loop {
        let began = chrono::Utc::now();
        let hour = began.format("%H").to_string();
        let seen: std::sync::Mutex<
            Vec<(std::time::Instant, chrono::DateTime<chrono::FixedOffset>)>,
        > = Default::default();
        eventually(
            "the page's last check moves three times",
            Duration::from_secs(30),
            || async {
                let now = last_check().await;
                let mut seen = seen.lock().expect("lock");
                if let Some(now) = now.filter(|n| seen.last().is_none_or(|(_, l)| l != n)) {
                    seen.push((std::time::Instant::now(), now));
                }
                seen.len() > 3
            },
        )
        .await;
        let ended = chrono::Utc::now();
        if ended.format("%H").to_string() == hour && !near_a_turn(began) && !near_a_turn(ended) {
            break seen.into_inner().expect("lock");
        }
    };
    let probed_every_second = app
        .store
        .check_results("steady")
        .await
        .expect("results")
        .len();
    for pair in moves[1..].windows(2) {
        let apart = pair[1].0 - pair[0].0;
        // Timed as answers arrive: a slow answer may shorten a gap as
        // measured, never to the second it was before.
        assert!(
            apart >= ROUTINE_GAP - Duration::from_secs(2),
            "the last check moved on the page {apart:?} after the one before: {moves:?}"
        );
    }
    assert!(probed_every_second >= 10, "{probed_every_second} probes");
    // An incident, written in the middle of a gap, is on the page at once.
    let written = std::time::Instant::now();
    let response = app
        .client
        .post(app.url("/admin/api/incidents"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(r#"{"title":"Queue delayed","impact":"minor","status":"investigating","message":"Looking.","services":[],"notify":false}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status().as_u16(), 201);
    eventually(
        "the incident is on the page",
        Duration::from_secs(3),
        || async {
            app.get("/api/v2/incidents/unresolved.json")
                .await
                .is_ok_and(|(_, body)| body.contains("Queue delayed"))
        },
    )
    .await;
    eprintln!(
        "an incident reached the page {:?} after it was written",
        written.elapsed()
    );
    app.stop().await.expect("clean stop");
}

store_test!(
    the_rows_written_since_a_read_are_read_alone,
    rows_written_since
);
/// `Store::page_changes`: revisions come from one sequence (migration
/// 0017), so the rows written since a read are those above the highest
/// revision it saw: a state change, a service made private (which comes
/// too, so that a reader drops it), a new service; a probe alone is not a
/// change of its row.
async fn rows_written_since(db: TestDb) {
    use beacon::domain::{Outcome, State};
    use beacon::store::Batch;
    let services = |names: &[&str], private: &str| named_services(&db, names, private);
    let store = db.store().await;
    let stored = store
        .sync_services(&services(&["a", "b", "c"], "c").services, 1_000)
        .await
        .expect("sync");
    let id = |slug: &str| stored.iter().find(|s| s.slug == slug).expect("synced").id;
    let (a, b) = (id("a"), id("b"));
    let since = async |revision: i64| {
        let mut read: Vec<(String, bool)> = store
            .page_changes(revision)
            .await
            .expect("changes")
            .into_iter()
            .map(|r| (r.summary.slug, r.shown))
            .collect();
        read.sort();
        read
    };
    let highest = async || {
        store
            .page_changes(-1)
            .await
            .expect("changes")
            .iter()
            .map(|r| r.revision)
            .max()
            .expect("rows")
    };
    // Every row has a revision of its own from the first write, the
    // private one too (shown: false).
    assert_eq!(
        since(-1).await,
        [("a".into(), true), ("b".into(), true), ("c".into(), false)]
    );
    let mark = highest().await;
    assert_eq!(since(mark).await, []);

    // A probe moves no revision; a state change does, above every other.
    let probe = Batch {
        results: vec![one_result(a, 2_000, Outcome::Up)],
        ..Batch::default()
    };
    store.write_batch(&probe).await.expect("write");
    assert_eq!(since(mark).await, []);
    store
        .write_batch(&went(b, 2_100, State::Unknown, State::Down))
        .await
        .expect("write");
    let read = store.page_changes(mark).await.expect("changes");
    assert_eq!(read.len(), 1);
    assert_eq!(
        (read[0].summary.id, read[0].summary.state),
        (b, State::Down)
    );
    assert!(read[0].revision > mark);
    let mark = read[0].revision;

    // A replica of the release before (a rolling upgrade) adds one to b's
    // revision, onto what this release's next write would take: that write
    // still moves b's revision, so no reader takes the row as unchanged.
    let raw = crate::helpers::Raw::connect(&db.url).await;
    raw.exec(&format!(
        "UPDATE services SET state = 'up', revision = revision + 1 WHERE id = {b}"
    ))
    .await
    .expect("an older replica's write");
    raw.close().await;
    let older = store.page_changes(mark).await.expect("changes");
    assert_eq!(older.len(), 1);
    store
        .write_batch(&went(b, 2_200, State::Up, State::Down))
        .await
        .expect("write");
    let after = store.page_changes(mark).await.expect("changes");
    assert_eq!(after.len(), 1);
    assert!(
        after[0].revision > older[0].revision,
        "{} after {}",
        after[0].revision,
        older[0].revision
    );
    let mark = after[0].revision;

    // b made private and c public, then a new service: each row written
    // is read, with whether the page shows it.
    store
        .sync_services(&services(&["a", "b", "c"], "b").services, 3_000)
        .await
        .expect("sync");
    assert_eq!(since(mark).await, [("b".into(), false), ("c".into(), true)]);
    let mark = highest().await;
    let stored = store
        .sync_services(&services(&["a", "b", "c", "d"], "b").services, 4_000)
        .await
        .expect("sync");
    assert_eq!(since(mark).await, [("d".into(), true)]);
    assert!(stored.iter().any(|s| s.slug == "d"));
    // A service gone from the config (the last: the others keep their
    // places): its row leaves the page.
    let mark = highest().await;
    store
        .sync_services(&services(&["a", "b", "c"], "b").services, 5_000)
        .await
        .expect("sync");
    assert_eq!(since(mark).await, [("d".into(), false)]);
}

/// A config of services `names` (`private` among them not public).
fn named_services(db: &TestDb, names: &[&str], private: &str) -> beacon::config::Config {
    let mut toml = String::new();
    for name in names {
        let public = if *name == private {
            "public = false\n"
        } else {
            ""
        };
        toml +=
            &format!("[[service]]\nname = \"{name}\"\nurl = \"http://{name}.example/\"\n{public}");
    }
    test_config(db, &toml)
}

/// A down result of `service_id` at `at` and its state going `from` → `to`.
fn went(
    service_id: i64,
    at: i64,
    from: beacon::domain::State,
    to: beacon::domain::State,
) -> beacon::store::Batch {
    beacon::store::Batch {
        results: vec![one_result(service_id, at, beacon::domain::Outcome::Down)],
        changes: vec![beacon::store::StatusChange {
            service_id,
            changed_at: at,
            from,
            to,
            reason: None,
        }],
        ..beacon::store::Batch::default()
    }
}

/// The last check `/api/v1/services` shows for the service `slug`.
async fn api_last_check(
    app: &TestApp,
    slug: &str,
) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    let (_, body) = app.get("/api/v1/services").await.ok()?;
    let doc: serde_json::Value = serde_json::from_str(&body).ok()?;
    let at = doc["services"]
        .as_array()?
        .iter()
        .find(|s| s["slug"] == slug)?["last_checked_at"]
        .as_str()?
        .to_string();
    chrono::DateTime::parse_from_rfc3339(&at).ok()
}

/// `Store::page_versions` as a map by service id.
fn by_id(
    versions: Vec<(i64, beacon::store::RowVersion)>,
) -> std::collections::HashMap<i64, beacon::store::RowVersion> {
    versions.into_iter().collect()
}

store_test!(
    the_snapshot_keeps_rows_that_did_not_move_and_follows_order_and_privacy,
    kept_rows
);
/// The refresher keeps the rows it read in page order and reads again only
/// those whose revision moved: a probe moves its last check in the view
/// already made, a new order and a service made private are followed.
async fn kept_rows(db: TestDb) {
    use beacon::domain::Outcome;
    use beacon::snapshot::{Layout, Refresher, Snapshot};
    use beacon::store::Batch;
    use std::sync::Arc;
    let services = |names: &[&str], private: &str| named_services(&db, names, private);
    let store = db.store().await;
    let now = chrono::Utc::now();
    let clock = Arc::new(beacon::clock::ManualClock::at(now));
    let config = services(&["a", "b", "c"], "");
    let stored = store
        .sync_services(&config.services, now.timestamp_millis())
        .await
        .expect("sync");
    let (publish, snapshot) = tokio::sync::watch::channel(Arc::new(Snapshot::loading("t", now)));
    let layout = Layout {
        title: "t".into(),
        groups: Vec::new(),
    };
    let changed = Arc::new(tokio::sync::Notify::new());
    let refresher = Refresher::new(
        store.clone(),
        clock.clone(),
        Arc::new(parking_lot::RwLock::new(Arc::new(layout))),
        publish,
        changed.clone(),
    );
    let shown = || {
        snapshot
            .borrow()
            .groups
            .iter()
            .flat_map(|g| g.services.iter().cloned())
            .collect::<Vec<_>>()
    };
    let slugs = |views: &[Arc<beacon::snapshot::ServiceView>]| {
        views.iter().map(|v| v.slug.clone()).collect::<Vec<_>>()
    };
    let b = stored.iter().find(|s| s.slug == "b").expect("b").id;
    let probe = |checked_at| Batch {
        results: vec![one_result(b, checked_at, Outcome::Up)],
        ..Batch::default()
    };
    // A first result, so the history read is not empty (an empty one is
    // read again on every rebuild, and makes every view again).
    store
        .write_batch(&probe(now.timestamp_millis() - 2_000))
        .await
        .expect("write");
    refresher.refresh().await;
    // The first walk over every version leaves the next rebuild a walk
    // too (a write in flight across it has no read before to overlap).
    refresher.refresh().await;
    let first = shown();
    assert_eq!(slugs(&first), ["a", "b", "c"]);

    // b goes down, within `WALK_EVERY` of that rebuild: the next reads
    // the rows written since (b's alone), makes b's view again and keeps
    // the others.
    let down_at = now.timestamp_millis() - 1_500;
    use beacon::domain::State;
    store
        .write_batch(&went(b, down_at, State::Unknown, State::Down))
        .await
        .expect("write");
    refresher.refresh().await;
    let went_down = shown();
    assert_eq!(slugs(&went_down), ["a", "b", "c"]);
    assert!(Arc::ptr_eq(&first[0], &went_down[0]), "a kept");
    assert!(Arc::ptr_eq(&first[2], &went_down[2]), "c kept");
    assert_eq!(went_down[1].state, beacon::domain::State::Down);

    // Another probe of b: its last check moves on at the next walk of
    // every version (`WALK_EVERY` after the last), in the view the last
    // rebuild made (a probe makes no new view); every view is kept.
    let checked_at = now.timestamp_millis() - 1_000;
    store.write_batch(&probe(checked_at)).await.expect("write");
    refresher.refresh().await;
    assert_eq!(
        shown()[1].last_checked_at().map(|t| t.timestamp_millis()),
        Some(down_at),
        "not before the walk"
    );
    clock.advance(beacon::snapshot::WALK_EVERY);
    refresher.refresh().await;
    let second = shown();
    assert_eq!(slugs(&second), ["a", "b", "c"]);
    for (before, after) in went_down.iter().zip(&second) {
        assert!(Arc::ptr_eq(before, after), "{} kept", before.slug);
    }
    assert_eq!(
        second[1].last_checked_at().map(|t| t.timestamp_millis()),
        Some(checked_at)
    );

    // Thirty seconds on (and no full read wanted yet: the privacy changes
    // below ask for one): this hour's and today's rollups are read again
    // beside the rebuilds too (at 30,000 services that read held a
    // rebuild, and an incident behind it, for more than a second); a
    // rebuild after it has ended takes it.
    use beacon::clock::Clock;
    let read_at = || {
        refresher
            .history
            .lock()
            .expect("history")
            .as_ref()
            .map(|(at, _)| *at)
    };
    let counted = || {
        let history = refresher.history.lock().expect("history").clone();
        history.map(|(_, h)| h.services.get(&b).map(|h| h.counts[0].1))
    };
    let (was_read_at, was_counted) = (read_at(), counted());
    let checked_at = clock.now().timestamp_millis();
    store.write_batch(&probe(checked_at)).await.expect("write");
    clock.advance(std::time::Duration::from_secs(31));
    refresher.refresh().await;
    assert_eq!(snapshot.borrow().generated_at, clock.now(), "rebuilt");
    assert_eq!(read_at(), was_read_at, "without waiting for the read");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while read_at() == was_read_at {
        assert!(
            std::time::Instant::now() < deadline,
            "the history was never read again"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        refresher.refresh().await;
    }
    assert_ne!(counted(), was_counted, "the new result counted");

    // The page after the store follows a config and the snapshot rebuilds.
    let page_after = async |names: &[&str], private: &str| {
        let config = services(names, private);
        store
            .sync_services(&config.services, now.timestamp_millis())
            .await
            .expect("sync");
        refresher.refresh().await;
        slugs(&shown())
    };
    // A new order in the config, then b made private, then public again
    // in its place.
    assert_eq!(page_after(&["c", "a", "b"], "").await, ["c", "a", "b"]);
    assert_eq!(page_after(&["c", "a", "b"], "b").await, ["c", "a"]);
    assert_eq!(page_after(&["c", "a", "b"], "").await, ["c", "a", "b"]);

    // A new hour: the history is read again (its 24 hours, or in full at
    // a new day) beside the rebuilds, which go on with the last read
    // meanwhile (at 30,000 services waiting for it held the page back
    // from an incident for 25 s); a rebuild after the read has ended
    // takes it.
    let hour_read = || {
        refresher
            .history
            .lock()
            .expect("history")
            .as_ref()
            .map(|(_, h)| h.hour)
    };
    let before = hour_read();
    assert!(before.is_some(), "read at the first rebuild");
    clock.advance(std::time::Duration::from_secs(3_600));
    refresher.refresh().await;
    assert_eq!(snapshot.borrow().generated_at, clock.now(), "rebuilt");
    assert_eq!(hour_read(), before, "without waiting for the read");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while hour_read() == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the hour's read never ended"
        );
        // Its end asks for a rebuild.
        let _ =
            tokio::time::timeout(std::time::Duration::from_millis(200), changed.notified()).await;
        refresher.refresh().await;
    }
    let this_hour =
        beacon::store::rollup::Period::Hour.bucket_start(clock.now().timestamp_millis());
    assert_eq!(hour_read(), Some(this_hour));
    assert_eq!(slugs(&shown()), ["c", "a", "b"]);
}

store_test!(
    public_components_are_read_for_the_names_asked_only,
    components_named
);
/// What a subscriber may follow, read for the names an event or a sign-up
/// gives: a slug or a group's name, public and active services only, and
/// more names than one statement binds.
async fn components_named(db: TestDb) {
    let mut body = String::from("[[group]]\nname = \"Shop\"\n");
    body += "[[service]]\nname = \"API\"\ngroup = \"Shop\"\nurl = \"http://api.example/\"\n";
    body += "[[service]]\nname = \"Cart\"\ngroup = \"Shop\"\nurl = \"http://cart.example/\"\n";
    body +=
        "[[service]]\nname = \"Internal\"\npublic = false\nurl = \"http://internal.example/\"\n";
    for i in 0..600 {
        body += &format!("[[service]]\nname = \"S{i}\"\nurl = \"http://s{i}.example/\"\n");
    }
    let config = test_config(&db, &body);
    let store = db.store().await;
    store
        .sync_services(&config.services, 1_700_000_000_000)
        .await
        .expect("sync");
    let named = async |names: &[&str]| {
        let mut got = store
            .public_components_named(names)
            .await
            .expect("components");
        got.sort();
        got
    };
    let shop = || Some("Shop".to_string());
    assert_eq!(named(&[]).await, []);
    assert_eq!(named(&["api"]).await, [("api".to_string(), shop())]);
    // A group's name gives its members; a private service and an unknown
    // name give nothing.
    assert_eq!(
        named(&["Shop", "internal", "nope"]).await,
        [("api".to_string(), shop()), ("cart".to_string(), shop())]
    );
    // 600 names: more than one statement's binds.
    let many: Vec<String> = (0..600).map(|i| format!("s{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let got = named(&many).await;
    assert_eq!(got.len(), 600);
    assert!(got
        .iter()
        .all(|(slug, group)| slug.starts_with('s') && group.is_none()));
}
