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
