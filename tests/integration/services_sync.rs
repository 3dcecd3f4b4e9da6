//! Services follow the config; history stays with the store.

use std::time::Duration;

use crate::helpers::{eventually, test_config, Target, TestApp, TestDb};
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
