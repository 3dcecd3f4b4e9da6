//! /api/v2/: Atlassian Statuspage's public API, key for key, from a known
//! state: a group with a service up and one down, a service in maintenance,
//! a private service, incidents open and resolved, maintenance now and later.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{closed_port, eventually, test_config, Target, TestApp, TestDb};
use crate::store_test;

const TOKEN: &str = "statuspage-admin-token-0123";

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

const PAGE: &[&str] = &["id", "name", "url", "time_zone", "updated_at"];
const COMPONENT: &[&str] = &[
    "id",
    "name",
    "status",
    "created_at",
    "updated_at",
    "position",
    "description",
    "showcase",
    "start_date",
    "group_id",
    "page_id",
    "group",
    "only_show_if_degraded",
];
const INCIDENT: &[&str] = &[
    "id",
    "name",
    "status",
    "created_at",
    "updated_at",
    "monitoring_at",
    "resolved_at",
    "impact",
    "shortlink",
    "started_at",
    "page_id",
    "incident_updates",
    "components",
];
const UPDATE: &[&str] = &[
    "id",
    "status",
    "body",
    "incident_id",
    "created_at",
    "updated_at",
    "display_at",
    "affected_components",
    "deliver_notifications",
    "custom_tweet",
    "tweet_id",
];

async fn admin(app: &TestApp, method: reqwest::Method, path: &str, body: &str) -> Value {
    let response = app
        .client
        .request(method, app.url(path))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("admin");
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    serde_json::from_str(&response.text().await.expect("body")).expect("json")
}

async fn doc(app: &TestApp, path: &str) -> Value {
    let (status, body) = app.get(path).await.expect("get");
    assert_eq!(status, 200, "{path}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

store_test!(statuspage_documents_have_its_shapes_and_enums, statuspage);
async fn statuspage(db: TestDb) {
    let target = Target::start().await;
    let closed = closed_port().await;
    let config = test_config(
        &db,
        &format!(
            "[admin]\ntokens = [\"{TOKEN}\"]\n[[group]]\nname = \"Shop\"\n\
             [[service]]\nname = \"Checkout\"\ngroup = \"Shop\"\nurl = \"{ok}\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n\
             [[service]]\nname = \"Cart\"\ngroup = \"Shop\"\nurl = \"http://127.0.0.1:{closed}/health\"\ninterval = \"1s\"\ntimeout = \"500ms\"\nfailure_threshold = 1\n\
             [[service]]\nname = \"Search\"\nurl = \"{ok}\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n\
             [[service]]\nname = \"Back office\"\npublic = false\nurl = \"{ok}\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n",
            ok = target.url("ok")
        )

    );
    let config = {
        let mut c = config;
        c.server.public_url = Some(url::Url::parse("https://status.example.com/").expect("url"));
        c
    };
    let app = TestApp::spawn(config).await;
    use reqwest::Method as M;
    let now = chrono::Utc::now();
    let rfc =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    admin(&app, M::POST, "/admin/api/incidents",
        r#"{"title":"Slow checkout","impact":"minor","message":"Looking into it.","services":["checkout","back-office"]}"#).await;
    let old = admin(&app, M::POST, "/admin/api/incidents",
        r#"{"title":"Search outage","impact":"major","message":"Search is down.","services":["search"]}"#).await;
    let old_path = format!("/admin/api/incidents/{}", old["id"]);
    admin(
        &app,
        M::POST,
        &format!("{old_path}/updates"),
        r#"{"status":"monitoring","message":"A fix is out."}"#,
    )
    .await;
    admin(
        &app,
        M::POST,
        &format!("{old_path}/updates"),
        r#"{"status":"resolved","message":"All good."}"#,
    )
    .await;
    admin(
        &app,
        M::PATCH,
        &old_path,
        r#"{"postmortem":"A full disk."}"#,
    )
    .await;
    let window = |title: &str, service: &str, from: chrono::DateTime<chrono::Utc>| {
        serde_json::json!({
            "title": title, "message": format!("{title}."), "starts_at": rfc(from),
            "ends_at": rfc(from + chrono::Duration::hours(2)), "services": [service],
        })
        .to_string()
    };
    admin(
        &app,
        M::POST,
        "/admin/api/maintenances",
        &window(
            "Index rebuild",
            "search",
            now - chrono::Duration::minutes(10),
        ),
    )
    .await;
    admin(
        &app,
        M::POST,
        "/admin/api/maintenances",
        &window(
            "Card vault upgrade",
            "checkout",
            now + chrono::Duration::days(1),
        ),
    )
    .await;

    eventually("states settle", Duration::from_secs(20), || async {
        let s = doc(&app, "/api/v2/components.json").await;
        let status = |id: &str| {
            s["components"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["id"] == id))
                .map(|c| c["status"].clone())
        };
        status("cart") == Some("major_outage".into())
            && status("checkout") == Some("operational".into())
            && status("search") == Some("under_maintenance".into())
    })
    .await;

    let summary = doc(&app, "/api/v2/summary.json").await;
    assert_eq!(
        keys(&summary),
        set(&[
            "page",
            "components",
            "incidents",
            "scheduled_maintenances",
            "status"
        ])
    );
    assert_eq!(keys(&summary["page"]), set(PAGE));
    assert_eq!(summary["page"]["name"], "Test status");
    assert_eq!(summary["page"]["url"], "https://status.example.com");
    assert_eq!(summary["page"]["time_zone"], "Etc/UTC");
    assert_eq!(
        (
            summary["status"]["indicator"].as_str(),
            summary["status"]["description"].as_str()
        ),
        (Some("major"), Some("Partial System Outage"))
    );

    let components = summary["components"].as_array().expect("components");
    let ids: Vec<&str> = components.iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(
        ids,
        ["search", "group-shop", "checkout", "cart"],
        "no private service"
    );
    for c in components {
        let mut expected = set(COMPONENT);
        if c["group"] == true {
            expected.insert("components".into());
        }
        assert_eq!(keys(c), expected, "{c}");
        assert_eq!(c["page_id"], "beacon");
        let status = c["status"].as_str().expect("status");
        assert!([
            "operational",
            "degraded_performance",
            "partial_outage",
            "major_outage",
            "under_maintenance"
        ]
        .contains(&status));
    }
    let shop = &components[1];
    assert_eq!(
        (shop["name"].as_str(), shop["status"].as_str()),
        (Some("Shop"), Some("partial_outage"))
    );
    assert_eq!(shop["components"], serde_json::json!(["checkout", "cart"]));
    assert_eq!(components[2]["group_id"], "group-shop");
    assert_eq!(components[0]["group_id"], Value::Null);
    let positions: Vec<i64> = components
        .iter()
        .filter_map(|c| c["position"].as_i64())
        .collect();
    assert_eq!(positions, [1, 2, 3, 4]);

    // Incidents: the open ones in the summary (the manual one and Cart's
    // automatic one), all of them in incidents.json.
    let open = doc(&app, "/api/v2/incidents/unresolved.json").await;
    let names: BTreeSet<&str> = open["incidents"]
        .as_array()
        .expect("incidents")
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["Cart is down", "Slow checkout"].into_iter().collect()
    );
    assert_eq!(summary["incidents"].as_array().map(Vec::len), Some(2));
    let all = doc(&app, "/api/v2/incidents.json").await;
    let incidents = all["incidents"].as_array().expect("incidents");
    assert_eq!(incidents.len(), 3);
    for i in incidents {
        assert_eq!(keys(i), set(INCIDENT), "{i}");
        assert!([
            "investigating",
            "identified",
            "monitoring",
            "resolved",
            "postmortem"
        ]
        .contains(&i["status"].as_str().unwrap_or("")));
        assert!(
            ["none", "minor", "major", "critical"].contains(&i["impact"].as_str().unwrap_or(""))
        );
        for u in i["incident_updates"].as_array().expect("updates") {
            assert_eq!(keys(u), set(UPDATE), "{u}");
            assert_eq!(u["incident_id"], i["id"]);
        }
    }
    let resolved = incidents
        .iter()
        .find(|i| i["name"] == "Search outage")
        .expect("resolved incident");
    assert_eq!(
        resolved["status"], "postmortem",
        "resolved with a postmortem"
    );
    assert!(resolved["resolved_at"].is_string() && resolved["monitoring_at"].is_string());
    let bodies: Vec<&str> = resolved["incident_updates"]
        .as_array()
        .expect("u")
        .iter()
        .filter_map(|u| u["body"].as_str())
        .collect();
    assert_eq!(
        bodies,
        ["All good.", "A fix is out.", "Search is down."],
        "newest first"
    );
    assert_eq!(
        resolved["shortlink"],
        format!(
            "https://status.example.com/incidents/{}",
            resolved["id"].as_str().unwrap_or("")
        )
    );
    let slow = incidents
        .iter()
        .find(|i| i["name"] == "Slow checkout")
        .expect("open incident");
    let affected: Vec<&str> = slow["components"]
        .as_array()
        .expect("c")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(affected, ["checkout"], "the private service is not named");

    // Maintenance: in progress now, scheduled later.
    let active = doc(&app, "/api/v2/scheduled-maintenances/active.json").await;
    let upcoming = doc(&app, "/api/v2/scheduled-maintenances/upcoming.json").await;
    let all = doc(&app, "/api/v2/scheduled-maintenances.json").await;
    assert_eq!(active["scheduled_maintenances"][0]["name"], "Index rebuild");
    assert_eq!(active["scheduled_maintenances"][0]["status"], "in_progress");
    assert_eq!(
        upcoming["scheduled_maintenances"][0]["name"],
        "Card vault upgrade"
    );
    assert_eq!(upcoming["scheduled_maintenances"][0]["status"], "scheduled");
    assert_eq!(
        all["scheduled_maintenances"].as_array().map(Vec::len),
        Some(2)
    );
    let mut maintenance_keys = set(INCIDENT);
    maintenance_keys.extend(["scheduled_for".to_string(), "scheduled_until".to_string()]);
    for m in all["scheduled_maintenances"].as_array().expect("m") {
        assert_eq!(keys(m), maintenance_keys, "{m}");
        assert_eq!(m["impact"], "maintenance");
    }
    assert_eq!(
        summary["scheduled_maintenances"].as_array().map(Vec::len),
        Some(2)
    );
    let status = doc(&app, "/api/v2/status.json").await;
    assert_eq!(keys(&status), set(&["page", "status"]));

    // Nothing internal in any of them.
    for path in [
        "/api/v2/summary.json",
        "/api/v2/status.json",
        "/api/v2/components.json",
        "/api/v2/incidents.json",
        "/api/v2/incidents/unresolved.json",
        "/api/v2/scheduled-maintenances.json",
        "/api/v2/scheduled-maintenances/upcoming.json",
        "/api/v2/scheduled-maintenances/active.json",
    ] {
        let (_, body) = app.get(path).await.expect("get");
        assert!(
            !body.contains("127.0.0.1")
                && !body.contains(&format!(":{closed}"))
                && !body.contains("Back office"),
            "{path}: {body}"
        );
    }
    app.stop().await.expect("stop");
}

store_test!(public_responses_revalidate_and_compress, caching);
async fn caching(db: TestDb) {
    let target = Target::start().await;
    let config = test_config(
        &db,
        &format!(
            "[[service]]\nname = \"Checkout\"\nurl = \"{}\"\ninterval = \"10s\"\n",
            target.url("ok")
        ),
    );
    let app = TestApp::spawn(config).await;
    app.wait_for_every_state().await;
    // The snapshot follows the store within a second.
    eventually(
        "the snapshot has the first check",
        Duration::from_secs(10),
        || async {
            app.get("/api/v2/summary.json")
                .await
                .is_ok_and(|(_, body)| body.contains("Checkout"))
        },
    )
    .await;
    for path in [
        "/",
        "/services/checkout",
        "/api/v1/services",
        "/api/v2/summary.json",
    ] {
        let first = app.client.get(app.url(path)).send().await.expect("get");
        assert_eq!(first.status(), 200);
        let etag = first.headers()["etag"].to_str().expect("etag").to_string();
        assert!(etag.starts_with("W/\""), "{path}: {etag}");
        assert_eq!(
            first.headers()["cache-control"],
            "public, max-age=10",
            "{path}"
        );
        let body = first.text().await.expect("body");

        // Revalidation: 304 and no body while the snapshot is the same.
        let again = app
            .client
            .get(app.url(path))
            .header("if-none-match", &etag)
            .send()
            .await
            .expect("get");
        if again.status() == 304 {
            assert_eq!(again.headers()["etag"].to_str().ok(), Some(etag.as_str()));
            assert!(again.text().await.expect("body").is_empty());
        } else {
            // The snapshot was rebuilt in between: a new entity, new tag.
            assert_eq!(again.status(), 200, "{path}");
            assert_ne!(again.headers()["etag"].to_str().ok(), Some(etag.as_str()));
        }
        let stale = app
            .client
            .get(app.url(path))
            .header("if-none-match", "W/\"0000\"")
            .send()
            .await
            .expect("get");
        assert_eq!(stale.status(), 200, "{path}: another tag gets the body");

        // Compression, when asked for.
        let gz = app
            .client
            .get(app.url(path))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .expect("get");
        assert_eq!(gz.headers()["content-encoding"], "gzip", "{path}");
        let compressed = gz.bytes().await.expect("bytes");
        assert!(
            compressed.len() < body.len(),
            "{path}: {} >= {}",
            compressed.len(),
            body.len()
        );
        let mut plain = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(&compressed[..]),
            &mut plain,
        )
        .expect("gunzip");
        assert!(plain.contains("Checkout"), "{path}");

        // Brotli first when both are accepted, as browsers send it.
        let br = app
            .client
            .get(app.url(path))
            .header("accept-encoding", "gzip, deflate, br")
            .send()
            .await
            .expect("get");
        assert_eq!(br.headers()["content-encoding"], "br", "{path}");
        assert!(
            br.headers().get_all("vary").iter().any(|v| v
                .to_str()
                .is_ok_and(|v| v.to_ascii_lowercase().contains("accept-encoding"))),
            "{path}: caches keep the codings apart"
        );
        let compressed = br.bytes().await.expect("bytes");
        let mut plain = Vec::new();
        brotli::BrotliDecompress(&mut &compressed[..], &mut plain).expect("unbrotli");
        let plain = String::from_utf8(plain).expect("utf-8");
        assert!(plain.contains("Checkout"), "{path}: {plain}");
    }
    app.stop().await.expect("stop");
}

store_test!(badges_and_feeds, badges_and_feeds_body);
async fn badges_and_feeds_body(db: TestDb) {
    let target = Target::start().await;
    let mut config = test_config(
        &db,
        &format!(
            "[admin]\ntokens = [\"{TOKEN}\"]\n\
             [[service]]\nname = \"Checkout\"\nurl = \"{ok}\"\ninterval = \"1s\"\n\
             [[service]]\nname = \"Back office\"\npublic = false\nurl = \"{ok}\"\ninterval = \"1s\"\n",
            ok = target.url("ok")
        ),
    );
    config.server.public_url = Some(url::Url::parse("https://status.example.com").expect("url"));
    let app = TestApp::spawn(config).await;
    app.wait_for_every_state().await;
    admin(
        &app,
        reqwest::Method::POST,
        "/admin/api/incidents",
        r#"{"title":"Payments <slow> & late","impact":"minor","message":"Looking into \"it\".","services":["checkout"]}"#,
    )
    .await;

    eventually("the badge says up", Duration::from_secs(10), || async {
        app.get("/badge/checkout.svg")
            .await
            .is_ok_and(|(status, body)| status == 200 && body.contains("Checkout: up"))
    })
    .await;
    let badge = app
        .client
        .get(app.url("/badge/checkout.svg"))
        .send()
        .await
        .expect("badge");
    assert_eq!(badge.headers()["content-type"], "image/svg+xml");
    let (status, body) = app
        .get("/badge/checkout/uptime/30d.svg")
        .await
        .expect("badge");
    assert_eq!(status, 200);
    assert!(body.contains("uptime 30d: 100.00%"), "{body}");
    // The median over 24 hours, from the rollups (re-read every 30 s).
    eventually(
        "the response-time badge has a figure",
        Duration::from_secs(40),
        || async {
            app.get("/badge/checkout/response-time.svg")
                .await
                .is_ok_and(|(status, body)| {
                    status == 200
                        && body.split("response time: ").nth(1).is_some_and(|rest| {
                            rest.split(" ms")
                                .next()
                                .is_some_and(|n| n.parse::<u64>().is_ok())
                        })
                })
        },
    )
    .await;
    for missing in [
        "/badge/back-office.svg",
        "/badge/back-office/response-time.svg",
        "/badge/nope.svg",
        "/badge/checkout/uptime/1y.svg",
        "/badge/checkout",
    ] {
        assert_eq!(app.get(missing).await.expect("get").0, 404, "{missing}");
    }

    eventually(
        "the feed has the incident",
        Duration::from_secs(10),
        || async {
            app.get("/feed.atom")
                .await
                .is_ok_and(|(_, b)| b.contains("Payments"))
        },
    )
    .await;
    let atom = app
        .client
        .get(app.url("/feed.atom"))
        .send()
        .await
        .expect("atom");
    assert_eq!(
        atom.headers()["content-type"],
        "application/atom+xml; charset=utf-8"
    );
    let atom = atom.text().await.expect("body");
    assert!(atom.starts_with(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">"
    ));
    assert!(
        atom.contains("<title>Payments &lt;slow&gt; &amp; late</title>"),
        "{atom}"
    );
    assert!(
        atom.contains("<summary>investigating: Looking into &quot;it&quot;.</summary>"),
        "{atom}"
    );
    assert!(
        atom.contains("<link href=\"https://status.example.com/incidents/1\"/>"),
        "{atom}"
    );
    let (_, rss) = app.get("/feed.rss").await.expect("rss");
    assert!(
        rss.contains("<rss version=\"2.0\">")
            && rss.contains("<title>Payments &lt;slow&gt; &amp; late</title>"),
        "{rss}"
    );
    assert!(!atom.contains("127.0.0.1") && !rss.contains("127.0.0.1"));
    app.stop().await.expect("stop");
}

store_test!(incident_pages_show_history_and_timeline, incident_pages);
async fn incident_pages(db: TestDb) {
    let target = Target::start().await;
    let config = test_config(
        &db,
        &format!(
            "[admin]\ntokens = [\"{TOKEN}\"]\n[[service]]\nname = \"Checkout\"\nurl = \"{}\"\ninterval = \"1s\"\n",
            target.url("ok")
        ),
    );
    let app = TestApp::spawn(config).await;
    use reqwest::Method as M;
    let created = admin(&app, M::POST, "/admin/api/incidents",
        r#"{"title":"Card payments <failing>","impact":"major","message":"We are looking into it.","services":["checkout"]}"#).await;
    let id = created["id"].as_i64().expect("id");
    let path = format!("/admin/api/incidents/{id}");
    admin(
        &app,
        M::POST,
        &format!("{path}/updates"),
        r#"{"status":"identified","message":"A certificate expired."}"#,
    )
    .await;
    admin(
        &app,
        M::POST,
        &format!("{path}/updates"),
        r#"{"status":"resolved","message":"Renewed."}"#,
    )
    .await;
    admin(
        &app,
        M::PATCH,
        &path,
        r#"{"postmortem":"Renewal was manual; it is automated now."}"#,
    )
    .await;

    // Until the snapshot holds the incident, its page comes from the store
    // (the fallback for incidents older than the snapshot's), which can be
    // a write ahead of the snapshot: wait for the snapshot first.
    let link = format!("href=\"/incidents/{id}\"");
    eventually("the history lists it", Duration::from_secs(10), || async {
        app.get("/incidents")
            .await
            .is_ok_and(|(status, body)| status == 200 && body.contains(&link))
    })
    .await;
    let page = format!("/incidents/{id}");
    eventually(
        "the incident page is there",
        Duration::from_secs(10),
        || async {
            app.get(&page)
                .await
                .is_ok_and(|(status, body)| status == 200 && body.contains("Postmortem"))
        },
    )
    .await;
    let (_, html) = app.get(&page).await.expect("page");
    assert!(
        html.contains("<h1>Card payments &#60;failing&#62;</h1>")
            || html.contains("<h1>Card payments &lt;failing&gt;</h1>"),
        "escaped: {html}"
    );
    assert!(html.contains(">Resolved</p>"), "{html}");
    let renewed = html.find("Renewed.").expect("latest update");
    let looking = html.find("We are looking into it.").expect("first update");
    assert!(renewed < looking, "newest first");
    assert!(html.contains("Renewal was manual; it is automated now."));
    assert!(
        html.contains("<dt>Affected</dt><dd>Checkout</dd>"),
        "{html}"
    );

    let (_, history) = app.get("/incidents").await.expect("history");
    let month = chrono::Utc::now().format("%B %Y").to_string();
    assert!(history.contains(&format!(">{month}</h2>")), "{history}");
    for missing in ["/incidents/999", "/incidents/abc"] {
        assert_eq!(app.get(missing).await.expect("get").0, 404, "{missing}");
    }
    app.stop().await.expect("stop");
}

store_test!(
    service_page_shows_uptime_bars_and_response_time,
    service_page
);
async fn service_page(db: TestDb) {
    let target = Target::start().await;
    let config = test_config(
        &db,
        &format!(
            "[admin]\ntokens = [\"{TOKEN}\"]\n\
             [[service]]\nname = \"Checkout\"\nurl = \"{ok}\"\ninterval = \"1s\"\n\
             [[service]]\nname = \"Back office\"\npublic = false\nurl = \"{ok}\"\ninterval = \"1s\"\n",
            ok = target.url("ok")
        ),
    );
    let app = TestApp::spawn(config).await;
    admin(
        &app,
        reqwest::Method::POST,
        "/admin/api/incidents",
        r#"{"title":"Slow card checks","impact":"minor","message":"Looking.","services":["checkout"]}"#,
    )
    .await;
    eventually("the chart has points", Duration::from_secs(15), || async {
        app.get("/services/checkout")
            .await
            .is_ok_and(|(status, body)| {
                status == 200 && body.contains("class=\"p50\"") && body.contains("Slow card checks")
            })
    })
    .await;
    let (_, html) = app.get("/services/checkout").await.expect("page");
    assert!(html.contains("<h1>Checkout</h1>"));
    for window in ["24 h", "7 d", "30 d", "90 d"] {
        assert!(
            html.contains(&format!("<dt>{window}</dt><dd>100.00 %</dd>")),
            "{window}: {html}"
        );
    }
    assert_eq!(html.matches("<i class=\"").count(), 90, "one bar a day");
    let today = chrono::Utc::now().format("%-d %b").to_string();
    assert!(
        html.contains(&format!(
            "<i class=\"up\" title=\"{today}: 100.00 % uptime, 1 incident\"></i>"
        )),
        "today's bar: {html}"
    );
    assert!(html.contains("latest p50 "), "{html}");
    // The same days as a table, newest first, for those who cannot hover.
    let table = &html[html
        .find("<details class=\"days\" id=\"days\">")
        .expect("day table")..];
    assert_eq!(table.matches("<tr><td>").count(), 90, "a row a day");
    let today_row = format!(
        "<tr><td>{}</td><td>Operational</td><td>100.00 %</td><td>1</td></tr>",
        chrono::Utc::now().format("%a %-d %b %Y")
    );
    assert!(table.contains(&today_row), "{table}");
    assert!(!html.contains("127.0.0.1"), "nothing internal");
    let (_, index) = app.get("/").await.expect("index");
    assert!(
        index.contains("<a href=\"/services/checkout\"><span class=\"name\">Checkout</span></a>")
    );
    assert!(
        index.contains(
            "<a class=\"bars\" href=\"/services/checkout#days\" aria-label=\"Last 90 days: 100.00 % uptime, 1 incident\">"
        ),
        "the front page's bar leads to the day-by-day table"
    );
    for missing in ["/services/back-office", "/services/nope"] {
        assert_eq!(app.get(missing).await.expect("get").0, 404, "{missing}");
    }
    app.stop().await.expect("stop");
}

store_test!(incident_history_pages_go_back_by_month, history_pages);
async fn history_pages(db: TestDb) {
    use chrono::Months;
    let target = Target::start().await;
    let config = test_config(
        &db,
        &format!(
            "[[service]]\nname = \"Checkout\"\nurl = \"{}\"\ninterval = \"1s\"\n",
            target.url("ok")
        ),
    );
    let app = TestApp::spawn(config).await;
    let now = chrono::Utc::now();
    // The snapshot holds the recent months; older incidents are read from
    // the store page by page.
    // Oldest first: once the newest is on the page, the snapshot that shows
    // it was read after the older ones were written (which decide whether
    // page 1 links to page 2).
    let mut ids = Vec::new();
    for (title, months_ago) in [
        ("Winter outage", 10),
        ("Summer outage", 4),
        ("Fresh outage", 0),
    ] {
        let at = now - Months::new(months_ago);
        let id = app
            .store
            .create_incident(&beacon::store::NewIncident {
                title: title.into(),
                impact: "minor".into(),
                status: "investigating".into(),
                message: "Looking.".into(),
                services: vec!["checkout".into()],
                at: at.timestamp_millis(),
                notify: true,
            })
            .await
            .expect("incident");
        ids.push((id, at));
    }
    // Newest first, as the pages list them.
    ids.reverse();
    let month = |t: chrono::DateTime<chrono::Utc>| format!(">{}</h2>", t.format("%B %Y"));
    eventually(
        "the history shows the new incident",
        Duration::from_secs(10),
        || async {
            app.get("/incidents")
                .await
                .is_ok_and(|(_, b)| b.contains("Fresh outage"))
        },
    )
    .await;

    let (status, first) = app.get("/incidents").await.expect("page 1");
    assert_eq!(status, 200);
    for back in 0..3 {
        assert!(first.contains(&month(now - Months::new(back))), "{first}");
    }
    assert!(!first.contains("Summer outage") && !first.contains("Winter outage"));
    assert!(
        first.contains("href=\"/incidents?page=2\" rel=\"next\""),
        "{first}"
    );
    assert!(!first.contains("rel=\"prev\""));

    let (status, second) = app.get("/incidents?page=2").await.expect("page 2");
    assert_eq!(status, 200);
    assert!(second.contains("Summer outage"), "{second}");
    assert!(second.contains(&month(ids[1].1)));
    assert!(
        second.contains("href=\"/incidents\" rel=\"prev\""),
        "{second}"
    );
    assert!(second.contains("href=\"/incidents?page=3\" rel=\"next\""));

    let (_, third) = app.get("/incidents?page=3").await.expect("page 3");
    assert!(
        third.contains("No incidents reported."),
        "empty months say so"
    );
    let (_, fourth) = app.get("/incidents?page=4").await.expect("page 4");
    assert!(fourth.contains("Winter outage"), "{fourth}");
    assert!(!fourth.contains("rel=\"next\""), "nothing older: {fourth}");

    // Out of bounds: before the first incident, zero, not a number.
    for path in [
        "/incidents?page=5",
        "/incidents?page=0",
        "/incidents?page=x",
        "/incidents?page=-1",
    ] {
        assert_eq!(app.get(path).await.expect("get").0, 404, "{path}");
    }
    // An incident older than the snapshot still has its page.
    let (status, old) = app
        .get(&format!("/incidents/{}", ids[2].0))
        .await
        .expect("old incident");
    assert_eq!(status, 200);
    assert!(old.contains("<h1>Winter outage</h1>"), "{old}");
    app.stop().await.expect("stop");
}
