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
    assert!(
        html.contains("<h2>Shop <span class=\"meta\">100.00 % uptime (90 d)</span></h2>"),
        "group heading with the group's uptime: {html}"
    );
    assert!(html.contains("100.00 % uptime (24 h) · 100.00 % (90 d)"));
    assert_eq!(
        html.matches("<a class=\"bars\" ").count(),
        2,
        "a 90-day bar for each public service"
    );
    let today = chrono::Utc::now().format("%-d %b").to_string();
    assert!(
        html.contains(&format!(
            "<i class=\"up\" title=\"{today}: 100.00 % uptime, 0 incidents\"></i>"
        )),
        "today has its own bar: {html}"
    );
    assert!(
        html.contains("<i class=\"unknown\" style=\"--n:89\" title=\""),
        "the days before the first check are one run, striped by the page's CSS: {html}"
    );
    assert!(
        html.contains("aria-label=\"Last 90 days: 100.00 % uptime, no incidents\""),
        "the bar says what it shows as a whole: {html}"
    );
    assert!(
        html.contains("<details class=\"group\" open>"),
        "a short page shows its groups open: {html}"
    );
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

store_test!(the_page_carries_logo_links_and_announcement, site);
async fn site(db: TestDb) {
    let target = Target::start().await;
    let mut config = test_config(
        &db,
        &format!(
            "[[service]]\nname = \"Storefront\"\nurl = \"{}\"\ninterval = \"1s\"\n",
            target.url("ok")
        ),
    );
    config.server.logo_url = Some(url::Url::parse("https://example.com/logo.png").expect("url"));
    config.server.home_url = Some(url::Url::parse("https://example.com/").expect("url"));
    config.server.support_url = Some(url::Url::parse("https://example.com/support").expect("url"));
    config.server.announcement = Some("Read-only mode on <Sunday> & Monday".to_string());
    config.server.time_zone = "Asia/Tokyo".parse().expect("zone");
    let app = TestApp::spawn(config).await;
    for path in ["/", "/incidents", "/services/storefront"] {
        let (status, html) = app.get(path).await.expect("page");
        assert_eq!(status, 200, "{path}");
        assert!(
            html.contains("<img src=\"https://example.com/logo.png\" alt=\"Test status\""),
            "{path}: {html}"
        );
        assert!(
            html.contains("Read-only mode on &#60;Sunday&#62; &#38; Monday")
                || html.contains("Read-only mode on &lt;Sunday&gt; &amp; Monday"),
            "escaped announcement on {path}: {html}"
        );
        assert!(
            html.contains("<a href=\"https://example.com/support\">Support</a>"),
            "{path}"
        );
    }
    let (_, html) = app.get("/").await.expect("page");
    assert!(
        html.contains(" JST</time>"),
        "times in the configured zone: {html}"
    );
    app.stop().await.expect("stop");
}

#[test]
fn site_urls_are_validated_with_their_field() {
    let e = beacon::config::from_toml(
        "[server]\nlogo_url = \"ftp://x/logo.png\"\nsupport_url = \"not a url\"\n",
        beacon::config::ConfigSource::Embedded,
        &crate::helpers::no_env,
    )
    .expect_err("invalid");
    let problems = e.problems();
    assert!(
        problems.iter().any(|p| p
                // Shown as scheme and host only: a URL's path may hold a secret.
                == "server: logo_url \"ftp://x\" must start with http:// or https://"),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            // Text that is not a URL is not shown at all.
            .any(|p| p.starts_with("server: support_url is not a valid URL")
                && !p.contains("not a url\"")),
        "{problems:?}"
    );
}

store_test!(groups_fold_away_only_when_all_is_well, groups_fold_away);
async fn groups_fold_away(db: TestDb) {
    let target = Target::start().await;
    let closed = closed_port().await;
    let mut body = String::new();
    for (n, group) in ["Shop", "Search", "Accounts", "Billing"].iter().enumerate() {
        let url = if *group == "Billing" {
            format!("http://127.0.0.1:{closed}/health")
        } else {
            target.url("ok")
        };
        body.push_str(&format!(
            "[[group]]\nname = \"{group}\"\n[[service]]\nname = \"Service {n}\"\ngroup = \"{group}\"\n\
             url = \"{url}\"\ninterval = \"1s\"\ntimeout = \"500ms\"\nfailure_threshold = 1\n"
        ));
    }
    let app = TestApp::spawn(test_config(&db, &body)).await;
    eventually("every state is known", Duration::from_secs(10), || async {
        let (_, html) = app.get("/").await.expect("page");
        state_on_page(&html, "Service 0") == Some("up")
            && state_on_page(&html, "Service 3") == Some("down")
    })
    .await;
    let (_, html) = app.get("/").await.expect("page");
    assert_eq!(
        html.matches("<details class=\"group\">").count(),
        3,
        "the operational groups of a long page start folded: {html}"
    );
    let billing = html.find("<h2>Billing").expect("billing group");
    let opening = html[..billing].rfind("<details").expect("its details");
    assert!(
        html[opening..billing].contains(" open>"),
        "the group with a problem starts open"
    );
    // Folded or not, the summary names the group's worst state in words.
    assert!(html[billing..].contains("Down</span></summary>"), "{html}");
    app.stop().await.expect("stop");
}
