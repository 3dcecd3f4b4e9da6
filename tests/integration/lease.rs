//! What replicas share in the store, on both backends: membership, the
//! leader's lease and its epoch, fenced singleton claims, the change
//! counter, and state changes that two writers cannot both record.

use std::time::Duration;

use beacon::domain::{Outcome, State};
use beacon::store::{Batch, Fence, StatusChange, StoreError, LEADER_LEASE};

use crate::helpers::{eventually, one_result, test_config, Raw, TestDb};
use crate::store_test;

store_test!(one_leader_at_a_time_and_epochs_only_grow, lease);
async fn lease(db: TestDb) {
    let store = db.store().await;
    let a = store
        .acquire_lease(LEADER_LEASE, "a", 60_000)
        .await
        .expect("lease")
        .expect("a free lease is taken");
    assert_eq!(a.epoch, 1);
    assert!(a.expires_at > a.now, "{a:?}");
    assert_eq!(
        store
            .acquire_lease(LEADER_LEASE, "b", 60_000)
            .await
            .expect("lease"),
        None,
        "a live lease is not taken"
    );
    let renewed = store
        .acquire_lease(LEADER_LEASE, "a", 60_000)
        .await
        .expect("lease")
        .expect("renewed");
    assert_eq!(renewed.epoch, 1, "renewing keeps the epoch");

    // Fenced claims: once per tick, and only under the live epoch.
    let fence_a = Fence {
        member: "a".into(),
        epoch: 1,
    };
    assert!(store
        .claim_run("backup", 1_000, &fence_a)
        .await
        .expect("claim"));
    assert!(
        !store
            .claim_run("backup", 1_000, &fence_a)
            .await
            .expect("claim"),
        "a tick runs once"
    );

    // A clean stop gives the lease up: b takes it at once, at epoch 2.
    store
        .release_lease(LEADER_LEASE, "a", 1)
        .await
        .expect("release");
    let b = store
        .acquire_lease(LEADER_LEASE, "b", 60_000)
        .await
        .expect("lease")
        .expect("a released lease is taken");
    assert_eq!(b.epoch, 2);
    let holder = store
        .lease_holder(LEADER_LEASE)
        .await
        .expect("holder")
        .expect("held");
    assert_eq!((holder.member.as_str(), holder.epoch), ("b", 2));

    // a, with its old epoch, is refused: the claim and the fence check.
    let refused = store.claim_run("backup", 2_000, &fence_a).await;
    assert!(
        matches!(refused, Err(StoreError::Fenced { epoch: 1 })),
        "{refused:?}"
    );
    assert!(store.check_fence(&fence_a).await.is_err());
    assert_eq!(
        store.runs("backup").await.expect("runs"),
        vec![(1_000, "a".to_string(), 1)],
        "the stale leader's claim left nothing"
    );
    assert_eq!(
        store
            .acquire_lease(LEADER_LEASE, "a", 60_000)
            .await
            .expect("lease"),
        None,
        "a stale leader cannot renew b's lease"
    );

    // A lease that runs out (b's holder died) is taken at the next epoch.
    let short = store
        .acquire_lease(LEADER_LEASE, "b", 300)
        .await
        .expect("lease")
        .expect("b renews");
    assert_eq!(short.epoch, 2);
    eventually("b's lease runs out", Duration::from_secs(5), || async {
        store
            .lease_holder(LEADER_LEASE)
            .await
            .expect("holder")
            .is_none()
    })
    .await;
    let c = store
        .acquire_lease(LEADER_LEASE, "c", 60_000)
        .await
        .expect("lease")
        .expect("an expired lease is taken");
    assert_eq!(c.epoch, 3);
    assert_eq!(store.lease_epoch(LEADER_LEASE).await.expect("epoch"), 3);
}

store_test!(members_are_seen_while_they_heartbeat, members);
async fn members(db: TestDb) {
    let store = db.store().await;
    store
        .heartbeat("m1", "host-1", "1.0.0")
        .await
        .expect("beat");
    store
        .heartbeat("m2", "host-2", "1.0.0")
        .await
        .expect("beat");
    let live = store.live_members(60_000).await.expect("members");
    let ids: Vec<&str> = live.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["m1", "m2"]);
    assert_eq!(live[0].host, "host-1");
    assert!(live[0].last_seen >= live[0].started_at);
    // m2 left cleanly; m1 stops beating and falls out after the ttl.
    store.leave("m2").await.expect("leave");
    let ids: Vec<String> = store
        .live_members(60_000)
        .await
        .expect("members")
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, ["m1"]);
    eventually(
        "m1 is past a 300 ms ttl",
        Duration::from_secs(5),
        || async { store.live_members(300).await.expect("members").is_empty() },
    )
    .await;
}

store_test!(two_writers_never_record_one_transition_twice, transitions);
async fn transitions(db: TestDb) {
    let config = test_config(
        &db,
        "[[service]]\nname = \"API\"\nurl = \"http://127.0.0.1:9/health\"\n",
    );
    let store = db.store().await;
    let stored = store
        .sync_services(&config.services, 1_000)
        .await
        .expect("sync");
    let id = stored[0].id;
    let before = store.change_counter().await.expect("counter");
    // Two replicas saw the same outage (a hand-over) and both send the
    // change from unknown to down, each with its own results.
    let batch = |at: i64| Batch {
        results: vec![one_result(id, at, Outcome::Down)],
        changes: vec![StatusChange {
            service_id: id,
            changed_at: at,
            from: State::Unknown,
            to: State::Down,
            reason: Some("HTTP 500".into()),
        }],
        incident_cooldown_ms: 600_000,
        ..Batch::default()
    };
    let (first, second) = (batch(10_000), batch(10_001));
    let (one, two) = tokio::join!(
        store.write_batch_checked(&first),
        store.write_batch_checked(&second)
    );
    let (one, two) = (one.expect("write"), two.expect("write"));
    let mut stale = [one, two].concat();
    stale.sort();
    assert_eq!(stale, [id], "exactly one writer's change was refused");
    let changes = store.status_changes("api").await.expect("changes");
    assert_eq!(changes.len(), 1, "one transition recorded");
    assert_eq!(
        store.check_results("api").await.expect("results").len(),
        2,
        "both writers' results are kept"
    );
    let incidents = store.incidents_of("api").await.expect("incidents");
    assert_eq!(incidents.len(), 1, "one automatic incident");
    // One event of the change, one of its automatic incident.
    assert_eq!(store.count_rows("alert_events").await.expect("events"), 2);
    // A state change is urgent: replicas show it without waiting out their
    // rationed rebuild. Results alone move only the routine counter.
    let after = store.change_counter().await.expect("counter");
    assert!(after.all > before.all && after.urgent > before.urgent);

    // Where a new owner resumes: down as stored, with the outcomes since.
    store
        .write_batch(&Batch {
            results: vec![one_result(id, 20_000, Outcome::Up)],
            ..Batch::default()
        })
        .await
        .expect("write");
    let last = store.change_counter().await.expect("counter");
    assert!(last.all > after.all, "{last:?} after {after:?}");
    assert_eq!(last.urgent, after.urgent, "results alone are not urgent");
    let (state, since) = store.resume_point(id, 5).await.expect("resume");
    assert_eq!(state, State::Down);
    // The results after the recorded change: the other writer's down, if
    // it came later, then the up.
    let expected: &[Outcome] = if changes[0].changed_at == 10_000 {
        &[Outcome::Down, Outcome::Up]
    } else {
        &[Outcome::Up]
    };
    assert_eq!(since, expected);

    // The down event goes to three channels; two senders claiming at once
    // (two replicas' notifiers) each get other deliveries, never the same.
    let event = store.alert_events().await.expect("events")[0].id;
    let kind = beacon::domain::EventKind::ServiceDown;
    let channels: Vec<(String, beacon::domain::EventKind)> = ["a", "b", "c"]
        .iter()
        .map(|c| (c.to_string(), kind))
        .collect();
    store
        .route_alert_event(event, &channels, 30_000)
        .await
        .expect("route");
    let (one, two) = tokio::join!(
        store.claim_due_alert_deliveries(40_000, 2, 100_000),
        store.claim_due_alert_deliveries(40_000, 2, 100_000)
    );
    let mut claimed: Vec<i64> = one
        .expect("claim")
        .iter()
        .chain(two.expect("claim").iter())
        .map(|d| d.id)
        .collect();
    claimed.sort();
    claimed.dedup();
    assert_eq!(claimed.len(), 3, "every delivery claimed once: {claimed:?}");
    assert!(
        store
            .claim_due_alert_deliveries(50_000, 10, 100_000)
            .await
            .expect("claim")
            .is_empty(),
        "claimed deliveries are leased until their lease runs out"
    );
    assert_eq!(
        store
            .claim_due_alert_deliveries(100_000, 10, 200_000)
            .await
            .expect("claim")
            .len(),
        3,
        "and claimed again after it"
    );
}

store_test!(
    the_previous_release_starts_on_a_database_a_newer_one_migrated,
    newer_schema
);
async fn newer_schema(db: TestDb) {
    let store = db.store().await;
    // A newer release applied a migration this binary does not have.
    let raw = Raw::connect(&db.url).await;
    raw.exec(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from a newer release', TRUE, X'00', 1)",
    )
    .await
    .ok();
    // PostgreSQL spells bytes differently (one of the two inserts works).
    raw.exec(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         SELECT 9999, 'from a newer release', TRUE, '\\x00'::bytea, 1 \
         WHERE NOT EXISTS (SELECT 1 FROM _sqlx_migrations WHERE version = 9999)",
    )
    .await
    .ok();
    raw.close().await;
    assert_eq!(store.schema_version().await.expect("version"), Some(9999));
    // This release (the previous one, to that database) still migrates,
    // finds nothing to do, and says it is ready.
    store
        .migrate()
        .await
        .expect("migrate accepts a newer schema");
    store.check_ready().await.expect("ready");
}

store_test!(two_notifiers_route_each_event_once, routing);
async fn routing(db: TestDb) {
    let config = test_config(
        &db,
        "[[service]]\nname = \"A\"\nurl = \"http://127.0.0.1:9/a\"\n\
         [[service]]\nname = \"B\"\nurl = \"http://127.0.0.1:9/b\"\n\
         [[service]]\nname = \"C\"\nurl = \"http://127.0.0.1:9/c\"\n",
    );
    let store = db.store().await;
    let stored = store
        .sync_services(&config.services, 1_000)
        .await
        .expect("sync");
    // Three services go down at once: a change and an incident each, six
    // events.
    let batch = Batch {
        results: stored
            .iter()
            .map(|s| one_result(s.id, 10_000, Outcome::Down))
            .collect(),
        changes: stored
            .iter()
            .map(|s| StatusChange {
                service_id: s.id,
                changed_at: 10_000,
                from: State::Unknown,
                to: State::Down,
                reason: Some("HTTP 500".into()),
            })
            .collect(),
        incident_cooldown_ms: 600_000,
        ..Batch::default()
    };
    store.write_batch(&batch).await.expect("write");
    let events = store.unrouted_alert_events(100).await.expect("events");
    assert_eq!(events.len(), 6, "{events:?}");
    let mut ids: Vec<i64> = events.iter().map(|e| e.id).collect();
    ids.sort();

    // Two replicas read the same unrouted events and route them at once,
    // each to a channel of its own name (to tell who routed what).
    let routing = |channel: &str| -> Vec<beacon::store::Routing> {
        events
            .iter()
            .map(|e| beacon::store::Routing {
                event_id: e.id,
                deliveries: vec![(channel.to_string(), e.event.kind)],
                subscribers: Vec::new(),
            })
            .collect()
    };
    let (a, b) = (routing("a"), routing("b"));
    let (one, two) = tokio::join!(
        store.route_events(&a, 20_000),
        store.route_events(&b, 20_000)
    );
    let (one, two) = (one.expect("route"), two.expect("route"));
    let mut both = [one.clone(), two.clone()].concat();
    both.sort();
    assert_eq!(
        both, ids,
        "every event routed by exactly one: {one:?} and {two:?}"
    );
    let deliveries = store.alert_deliveries().await.expect("deliveries");
    assert_eq!(deliveries.len(), 6, "one delivery an event: {deliveries:?}");
    for d in &deliveries {
        let by = if one.contains(&d.event_id) { "a" } else { "b" };
        assert_eq!(d.channel, by, "the delivery is the claimer's: {d:?}");
    }
    assert!(store
        .unrouted_alert_events(100)
        .await
        .expect("events")
        .is_empty());
    // Routed again (a replica that read them before they were routed):
    // nothing claimed, nothing added.
    assert!(store
        .route_events(&routing("c"), 30_000)
        .await
        .expect("route")
        .is_empty());
    assert_eq!(store.count_rows("alert_deliveries").await.expect("rows"), 6);
}
