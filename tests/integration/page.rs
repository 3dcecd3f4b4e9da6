//! The public page: what it shows, and what it never shows.

use std::time::Duration;

use crate::helpers::{closed_port, eventually, test_config, Target, TestApp, TestDb};
use crate::store_test;

/// The state class shown next to service `name` on the page.
pub fn state_on_page<'a>(html: &'a str, name: &str) -> Option<&'a str> {
    let at = html.find(&format!("<span class=\"name\">{name}</span>"))?;
    let rest = &html[at..];
    let start = rest.find("class=\"state ")? + "class=\"state ".len();
    let end = rest[start..].find('"')?;
    Some(&rest[start..start + end])
}

store_test!(page_shows_states_and_never_internal_addresses, page_states);
async fn page_states(db: TestDb) {
    let target = Target::start().await;
    let closed = closed_port().await;
    let config = test_config(
        &db,
        &format!(
            r#"
[[group]]
name = "Shop"

[[service]]
name = "Storefront"
group = "Shop"
url = "{ok}"
interval = "1s"
timeout = "500ms"

[[service]]
name = "Warehouse"
url = "http://127.0.0.1:{closed}/health"
interval = "1s"
timeout = "500ms"
failure_threshold = 1

[[service]]
name = "Secret admin"
url = "{ok}"
public = false
interval = "1s"
timeout = "500ms"
"#,
            ok = target.url("ok"),
        ),
    );
    let app = TestApp::spawn(config).await;
    eventually(
        "the page shows both states",
        Duration::from_secs(10),
        || async {
            let (_, html) = app.get("/").await.expect("page");
            state_on_page(&html, "Storefront") == Some("up")
                && state_on_page(&html, "Warehouse") == Some("down")
        },
    )
    .await;
    let (status, html) = app.get("/").await.expect("page");
    assert_eq!(status, 200);
    assert!(html.contains("Partial outage"), "banner: {html}");
    assert!(html.contains("<h2>Shop</h2>"));
    assert!(
        html.contains("Operational") && html.contains("Down"),
        "state in words, not colour alone"
    );
    assert!(html.contains("100.00 % uptime (24 h)"));
    assert!(html.contains("0.00 % uptime (24 h)"));
    assert!(
        !html.contains("Secret admin"),
        "private services stay off the page"
    );
    // Every public route, not just the page.
    let mut bodies = Vec::new();
    for route in [
        "/",
        "/api/v1/services",
        "/health",
        "/readyz",
        "/livez",
        "/no-such-page",
    ] {
        bodies.push((route, app.get(route).await.expect("route").1));
    }
    for (route, body) in &bodies {
        for internal in [
            target.addr.to_string(),
            // With the colon: bare digits could occur in a timestamp.
            format!(":{}", target.addr.port()),
            format!(":{closed}"),
            "127.0.0.1".to_string(),
            "connection failed".to_string(),
            "refused".to_string(),
            "/ok".to_string(),
            db.url.clone(),
            "Secret admin".to_string(),
        ] {
            assert!(
                !body.contains(&internal),
                "{route} leaks {internal:?}: {body}"
            );
        }
    }
    let (status, _) = app.get("/no-such-page").await.expect("404");
    assert_eq!(status, 404);
    app.stop().await.expect("clean stop");
}
