//! Subscriptions end to end: the real app, a real SMTP listener and a real
//! webhook receiver, on SQLite and PostgreSQL. A visitor signs up on
//! /subscribe, confirms from the email, gets what touches what they follow
//! once, leaves with one click; limits, a honeypot and a restart between an
//! event and its delivery; and the incident console's sign-in, sessions and
//! CSRF.

use std::time::Duration;

use serde_json::Value;

use crate::alerts::{alert_config, Receiver, SmtpServer};
use crate::helpers::{eventually, Target, TestApp, TestDb};
use crate::store_test;

const TOKEN: &str = "subscriptions-admin-token-0123456789";

fn config(db: &TestDb, target: &Target, smtp: &SmtpServer) -> beacon::config::Config {
    alert_config(
        db,
        &format!(
            "[admin]\ntokens = [\"{TOKEN}\"]\n\
             [subscriptions]\nenabled = true\nfrom = \"Status <status@example.com>\"\nchannel = \"mail\"\n\
             [[notify]]\nname = \"mail\"\nkind = \"email\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\n\
             smtp_tls = \"none\"\nfrom = \"Beacon <beacon@example.com>\"\nto = [\"ops@example.com\"]\n\
             events = [\"backup_failed\"]\n\
             [[group]]\nname = \"Shop\"\n\
             [[service]]\nname = \"API\"\ngroup = \"Shop\"\nurl = \"{ok}\"\ninterval = \"1s\"\n\
             [[service]]\nname = \"Web\"\nurl = \"{ok}\"\ninterval = \"1s\"\n",
            smtp.port,
            ok = target.url("ok")
        ),
    )
}

/// A mail's text as written: quoted-printable soft breaks joined, `=3D`
/// decoded.
fn unfolded(data: &str) -> String {
    data.replace("=\r\n", "").replace("=3D", "=")
}

fn mails_to(smtp: &SmtpServer, address: &str) -> Vec<String> {
    smtp.mails()
        .into_iter()
        .filter(|m| m.to.iter().any(|t| t == &format!("<{address}>")))
        .map(|m| unfolded(&m.data))
        .collect()
}

/// The first `https://status.example.com<prefix>…` link in `text`: its
/// path.
fn link(text: &str, prefix: &str) -> String {
    let start = text
        .find(&format!("https://status.example.com{prefix}"))
        .unwrap_or_else(|| panic!("no {prefix} link in:\n{text}"))
        + "https://status.example.com".len();
    text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "/-_".contains(*c))
        .collect()
}

async fn post_form(app: &TestApp, path: &str, body: &str) -> (u16, String) {
    let r = app
        .client
        .post(app.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_string())
        .send()
        .await
        .expect("post");
    (r.status().as_u16(), r.text().await.expect("body"))
}

async fn admin(app: &TestApp, path: &str, body: Value) -> Value {
    let r = app
        .client
        .post(app.url(path))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("admin");
    assert!(r.status().is_success(), "{path}: {}", r.status());
    serde_json::from_str(&r.text().await.expect("body")).expect("json")
}

/// Waits until every event so far has been routed (so "nothing was sent"
/// is a fact, not a guess).
async fn routed(app: &TestApp) {
    eventually("every event is routed", Duration::from_secs(15), || async {
        app.store
            .unrouted_alert_events(1)
            .await
            .is_ok_and(|e| e.is_empty())
    })
    .await;
}

/// Waits until no subscriber delivery is pending.
async fn delivered(app: &TestApp) {
    routed(app).await;
    eventually(
        "every subscriber message is sent",
        Duration::from_secs(15),
        || async {
            app.store
                .all_subscriber_deliveries()
                .await
                .is_ok_and(|d| d.iter().all(|d| d.status == "sent"))
        },
    )
    .await;
}

store_test!(
    a_visitor_subscribes_confirms_is_told_once_and_leaves_with_one_click,
    subscribe_confirm_notify_leave
);
async fn subscribe_confirm_notify_leave(db: TestDb) {
    let target = Target::start().await;
    let smtp = SmtpServer::start().await;
    let hook = Receiver::start().await;
    let app = TestApp::spawn(config(&db, &target, &smtp)).await;
    app.wait_for_every_state().await;

    // The form is linked from the page and lists what can be followed.
    let (_, index) = app.get("/").await.expect("index");
    assert!(
        index.contains("href=\"/subscribe\""),
        "linked from the page"
    );
    let (status, form) = app.get("/subscribe").await.expect("form");
    assert_eq!(status, 200);
    assert!(form.contains("value=\"api\"") && form.contains("value=\"Shop\""));

    // Bad input is named and stores nothing.
    let (status, page) = post_form(&app, "/subscribe", "email=not-an-address").await;
    assert_eq!(status, 422);
    assert!(page.contains("not an email address"), "{page}");
    let (status, _) = post_form(&app, "/subscribe", "email=x%40example.com&components=nope").await;
    assert_eq!(status, 422);
    assert!(app.store.subscribers().await.expect("list").is_empty());

    // Sign up for the API only.
    let (status, page) =
        post_form(&app, "/subscribe", "email=Ann%40Example.com&components=api").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Check your inbox"));
    eventually(
        "the confirmation email",
        Duration::from_secs(15),
        || async { mails_to(&smtp, "ann@example.com").len() == 1 },
    )
    .await;
    let confirmation = &mails_to(&smtp, "ann@example.com")[0];
    assert!(confirmation.contains("Subject: [Test status] Confirm your subscription"));
    assert!(
        confirmation.contains("Content-Type: text/plain")
            && confirmation.contains("Content-Type: text/html")
    );
    let confirm = link(confirmation, "/subscribe/confirm/");
    let token = confirm.trim_start_matches("/subscribe/confirm/");
    let stored = app.store.subscribers().await.expect("list");
    assert_eq!(stored.len(), 1);
    let tokens = app
        .store
        .subscriber_tokens(stored[0].id)
        .await
        .expect("tokens");
    assert_eq!(tokens.len(), 1);
    assert_ne!(tokens[0].token_hash, token, "only the hash is stored");
    assert!(stored[0].confirmed_at.is_none());

    // Unconfirmed: an incident on the API sends it nothing.
    admin(
        &app,
        "/admin/api/incidents",
        serde_json::json!({"title": "Early", "impact": "minor", "message": "Before confirming.", "services": ["api"]}),
    )
    .await;
    routed(&app).await;
    assert!(app
        .store
        .all_subscriber_deliveries()
        .await
        .expect("d")
        .is_empty());

    // Signing up again re-sends a link and says the same.
    let (status, again) =
        post_form(&app, "/subscribe", "email=ann%40example.com&components=api").await;
    assert_eq!((status, again.contains("Check your inbox")), (200, true));
    eventually("a second link", Duration::from_secs(15), || async {
        mails_to(&smtp, "ann@example.com").len() == 2
    })
    .await;

    // Opening the link (as a mail scanner would) confirms nothing: it shows
    // a button. Pressing it confirms, once.
    let (status, page) = app.get(&confirm).await.expect("open");
    assert_eq!(status, 200);
    assert!(
        page.contains("<button type=\"submit\">Confirm</button>"),
        "{page}"
    );
    assert!(app.store.subscribers().await.expect("list")[0]
        .confirmed_at
        .is_none());
    let (status, page) = post_form(&app, &confirm, "").await;
    assert_eq!(status, 200);
    assert!(page.contains("Your subscription is confirmed"), "{page}");
    let (status, _) = post_form(&app, &confirm, "").await;
    assert_eq!(status, 404, "a link is single-use");

    // A webhook subscriber that follows everything, added by an operator.
    let added = admin(
        &app,
        "/admin/api/subscribers",
        serde_json::json!({"kind": "webhook", "address": hook.url}),
    )
    .await;
    let secret = added["secret"]
        .as_str()
        .expect("a secret, shown once")
        .to_string();

    // An incident on the API reaches Ann once; one on Web does not.
    let api = admin(
        &app,
        "/admin/api/incidents",
        serde_json::json!({"title": "Slow API", "impact": "major", "message": "Requests <b>time out</b>.", "services": ["api"]}),
    )
    .await;
    admin(
        &app,
        "/admin/api/incidents",
        serde_json::json!({"title": "Slow web", "impact": "minor", "message": "Pages are slow.", "services": ["web"]}),
    )
    .await;
    delivered(&app).await;
    let told: Vec<String> = mails_to(&smtp, "ann@example.com")
        .into_iter()
        .filter(|m| !m.contains("Confirm your subscription"))
        .collect();
    assert_eq!(told.len(), 1, "one email, for the API only");
    let mail = &told[0];
    assert!(
        mail.contains("Subject: [Test status] Incident: Slow API"),
        "{mail}"
    );
    assert!(mail.contains("Content-Type: text/plain") && mail.contains("Content-Type: text/html"));
    assert!(
        mail.contains("Requests &lt;b&gt;time out&lt;/b&gt;"),
        "escaped in HTML: {mail}"
    );
    assert!(mail.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
    assert!(mail.contains(&format!(
        "https://status.example.com/incidents/{}",
        api["id"]
    )));
    assert!(!mail.contains("127.0.0.1"), "no internal address");
    let unsubscribe = link(mail, "/subscribe/unsubscribe/");
    let manage = link(mail, "/subscribe/manage/");
    assert!(mail.contains(&format!(
        "List-Unsubscribe: <https://status.example.com{unsubscribe}>"
    )));

    // The webhook got both, Statuspage-shaped and signed.
    let bodies: Vec<_> = hook
        .all()
        .into_iter()
        .filter(|r| r.body.get("incident").is_some())
        .collect();
    assert_eq!(bodies.len(), 2, "both incidents, once each");
    // Sent at once, in any order.
    let first = bodies
        .iter()
        .find(|r| r.body["incident"]["name"] == "Slow API")
        .expect("the API's incident");
    assert_eq!(first.body["incident"]["name"], "Slow API");
    assert_eq!(first.body["incident"]["impact"], "major");
    assert!(first.body["incident"]["incident_updates"].is_array());
    assert!(first.body["page"]["status_indicator"].is_string());
    assert!(first.body["meta"]["unsubscribe"]
        .as_str()
        .is_some_and(|u| u.contains("/subscribe/unsubscribe/")));
    assert_eq!(
        first.headers["x-beacon-signature-256"]
            .to_str()
            .expect("ascii"),
        {
            use hmac::Mac;
            let mut mac =
                hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
            mac.update(&first.raw);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        }
    );

    // An update posted "do not notify" reaches nobody, and is counted.
    let r = app
        .client
        .post(app.url(&format!("/admin/api/incidents/{}/updates", api["id"])))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(
            serde_json::json!({"status": "identified", "message": "Quietly.", "notify": false})
                .to_string(),
        )
        .send()
        .await
        .expect("update");
    assert_eq!(r.status(), 201);
    delivered(&app).await;
    assert_eq!(mails_to(&smtp, "ann@example.com").len(), 3);
    let (_, metrics) = app.get("/metrics").await.expect("metrics");
    assert!(
        metrics.contains(
            "beacon_subscriber_notifications_total{kind=\"email\",outcome=\"suppressed\"} 1"
        ),
        "{metrics}"
    );
    assert!(metrics
        .contains("beacon_subscriber_notifications_total{kind=\"email\",outcome=\"sent\"} 1"));
    assert!(metrics.contains("beacon_subscribers_confirmed_total 1"));

    // The manage page shows what is followed and changes it; one click leaves.
    let (status, page) = app.get(&manage).await.expect("manage");
    assert_eq!(status, 200);
    assert!(page.contains("ann@example.com"));
    let (status, page) = post_form(&app, &manage, "components=web&components=Shop").await;
    assert_eq!(status, 200);
    assert!(page.contains("Saved."), "{page}");
    let (status, page) = post_form(&app, &manage, "components=nope").await;
    assert_eq!(status, 200);
    assert!(page.contains("Not saved"), "{page}");
    let ann = app
        .store
        .subscriber_by_address("email", "ann@example.com")
        .await
        .expect("read")
        .expect("ann");
    assert_eq!(
        ann.components.as_deref(),
        Some(&["web".to_string(), "Shop".to_string()][..]),
        "saved once, the refused change left it"
    );
    let (status, _) = post_form(
        &app,
        "/subscribe/manage/1-0123456789abcdef0123456789abcdef",
        "",
    )
    .await;
    assert_eq!(status, 404, "a forged token opens nothing");
    let (status, _) = app.get(&unsubscribe).await.expect("get does not act");
    assert_eq!(status, 200);
    assert_eq!(app.store.subscribers().await.expect("list").len(), 2);
    let (status, page) = post_form(&app, &unsubscribe, "List-Unsubscribe=One-Click").await;
    assert_eq!(status, 200, "{page}");
    let left = app.store.subscribers().await.expect("list");
    assert_eq!(left.len(), 1, "only the webhook stays");
    assert_eq!(left[0].kind, "webhook");
    admin(
        &app,
        "/admin/api/incidents",
        serde_json::json!({"title": "Slow API again", "impact": "minor", "message": "Again.", "services": ["api"]}),
    )
    .await;
    delivered(&app).await;
    assert_eq!(
        hook.all()
            .iter()
            .filter(|r| r.body.get("incident").is_some())
            .count(),
        3,
        "the quiet update was not sent; the new incident was"
    );
    assert_eq!(
        mails_to(&smtp, "ann@example.com").len(),
        3,
        "nothing after leaving"
    );
    let (_, metrics) = app.get("/metrics").await.expect("metrics");
    assert!(metrics.contains("beacon_subscribers_unsubscribed_total 1"));
    app.stop().await.expect("stop");
}

store_test!(
    sign_ups_are_limited_per_client_and_address_and_a_honeypot_sends_nothing,
    sign_up_limits
);
async fn sign_up_limits(db: TestDb) {
    let target = Target::start().await;
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn(config(&db, &target, &smtp)).await;
    // The honeypot: told the same, nothing stored, nothing sent.
    let (status, page) = post_form(
        &app,
        "/subscribe",
        "email=bot%40example.com&website=http%3A%2F%2Fspam",
    )
    .await;
    assert_eq!((status, page.contains("Check your inbox")), (200, true));
    // Three links a day per address; the fourth sign-up sends nothing.
    for _ in 0..4 {
        let (status, _) = post_form(&app, "/subscribe", "email=cat%40example.com").await;
        assert_eq!(status, 200);
    }
    eventually("three links", Duration::from_secs(15), || async {
        mails_to(&smtp, "cat@example.com").len() == 3
    })
    .await;
    // That was five sign-ups from this client: the sixth is refused.
    let (status, page) = post_form(&app, "/subscribe", "email=dan%40example.com").await;
    assert_eq!(status, 429, "{page}");
    assert!(mails_to(&smtp, "bot@example.com").is_empty());
    assert!(mails_to(&smtp, "dan@example.com").is_empty());
    let addresses: Vec<String> = app
        .store
        .subscribers()
        .await
        .expect("list")
        .into_iter()
        .map(|s| s.address)
        .collect();
    assert_eq!(addresses, ["cat@example.com"]);
    assert_eq!(mails_to(&smtp, "cat@example.com").len(), 3);
    app.stop().await.expect("stop");
}

store_test!(
    a_restart_between_an_event_and_its_delivery_loses_nothing_and_sends_once,
    restart_between
);
async fn restart_between(db: TestDb) {
    let target = Target::start().await;
    let smtp = SmtpServer::start().await;
    let store = db.store().await;
    store.migrate().await.expect("migrate");
    // A subscriber an operator vouches for, and an incident written while
    // no beacon runs: its event waits in the outbox.
    let app = TestApp::spawn(config(&db, &target, &smtp)).await;
    app.wait_for_every_state().await;
    admin(
        &app,
        "/admin/api/subscribers",
        serde_json::json!({"kind": "email", "address": "eve@example.com", "components": ["Shop"]}),
    )
    .await;
    app.stop().await.expect("stop");
    store
        .create_incident(&beacon::store::NewIncident {
            title: "While stopped".into(),
            impact: "minor".into(),
            status: "investigating".into(),
            message: "Written with beacon down.".into(),
            services: vec!["api".into()],
            at: chrono::Utc::now().timestamp_millis(),
            notify: true,
        })
        .await
        .expect("incident");
    assert!(mails_to(&smtp, "eve@example.com").is_empty());
    let app = TestApp::spawn(config(&db, &target, &smtp)).await;
    delivered(&app).await;
    assert_eq!(mails_to(&smtp, "eve@example.com").len(), 1);
    app.stop().await.expect("stop");
    // Started again: the sent message is not sent twice.
    let app = TestApp::spawn(config(&db, &target, &smtp)).await;
    admin(
        &app,
        "/admin/api/incidents",
        serde_json::json!({"title": "After", "impact": "minor", "message": "Later.", "services": ["api"]}),
    )
    .await;
    delivered(&app).await;
    let mails = mails_to(&smtp, "eve@example.com");
    assert_eq!(mails.len(), 2);
    assert_eq!(
        mails.iter().filter(|m| m.contains("While stopped")).count(),
        1
    );
    // Export shows everything stored; remove deletes it.
    let id = app.store.subscribers().await.expect("list")[0].id;
    let export: Value = app
        .client
        .get(app.url(&format!("/admin/api/subscribers/{id}")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("export")
        .text()
        .await
        .map(|t| serde_json::from_str(&t).expect("json"))
        .expect("body");
    assert_eq!(export["address"], "eve@example.com");
    assert_eq!(export["messages"].as_array().map(Vec::len), Some(2));
    let r = app
        .client
        .delete(app.url(&format!("/admin/api/subscribers/{id}")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);
    assert!(app.store.subscribers().await.expect("list").is_empty());
    assert!(app
        .store
        .all_subscriber_deliveries()
        .await
        .expect("d")
        .is_empty());
    app.stop().await.expect("stop");
}

/// The session cookie a sign-in set, and the cookie header to send back.
async fn sign_in(app: &TestApp, client: &reqwest::Client) -> (String, String) {
    let r = client
        .post(app.url("/admin/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={TOKEN}"))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 303);
    let set = r.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_string();
    let pair = set.split(';').next().expect("pair").to_string();
    (set, pair)
}

fn csrf_of(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[start..start + 64].to_string()
}

store_test!(
    the_console_signs_in_keeps_a_session_and_refuses_forms_without_its_csrf_token,
    console
);
async fn console(db: TestDb) {
    let target = Target::start().await;
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn(config(&db, &target, &smtp)).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let r = client.get(app.url("/admin")).send().await.expect("admin");
    assert_eq!(r.status(), 303, "signed out: to the sign-in page");
    assert_eq!(r.headers()["location"], "/admin/login");

    // A wrong token: 401, no cookie.
    let r = client
        .post(app.url("/admin/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=wrong")
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("set-cookie").is_none());

    let (set, cookie) = sign_in(&app, &client).await;
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Secure",
        "Max-Age=28800",
        "Path=/admin",
    ] {
        assert!(set.contains(attribute), "{attribute} in {set}");
    }
    let page = client
        .get(app.url("/admin"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("console")
        .text()
        .await
        .expect("html");
    assert!(page.contains("Open an incident"), "{page}");
    let csrf = csrf_of(&page);

    let open = |csrf: Option<&str>, action: &str| {
        let mut body = format!(
            "title=Checkout+errors&impact=major&status=investigating&message=Some+payments+fail.&services=api&notify=yes&action={action}"
        );
        if let Some(c) = csrf {
            body.push_str(&format!("&csrf={c}"));
        }
        client
            .post(app.url("/admin/incidents"))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let before = app.store.recent_incidents(10).await.expect("list").len();
    assert_eq!(open(None, "open").await.expect("post").status(), 403);
    assert_eq!(
        open(Some(&"0".repeat(64)), "open")
            .await
            .expect("post")
            .status(),
        403
    );
    assert_eq!(
        app.store.recent_incidents(10).await.expect("list").len(),
        before,
        "nothing written"
    );
    // A preview writes nothing and shows the update as it will read.
    let r = open(Some(&csrf), "preview").await.expect("preview");
    assert_eq!(r.status(), 200);
    assert!(r
        .text()
        .await
        .expect("html")
        .contains("Preview: how it reads on the page"));
    assert_eq!(
        app.store.recent_incidents(10).await.expect("list").len(),
        before
    );
    // Opened for real.
    let r = open(Some(&csrf), "open").await.expect("open");
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().expect("ascii").to_string();
    // Its page names the services as the dashboard does, not by slug.
    let html = client
        .get(app.url(&location))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("incident page")
        .text()
        .await
        .expect("html");
    assert!(html.contains("<dt>Services</dt><dd>API</dd>"), "{html}");
    let incidents = app.store.recent_incidents(10).await.expect("list");
    assert_eq!(incidents.len(), before + 1);
    assert_eq!(incidents[0].title, "Checkout errors");
    assert_eq!(incidents[0].impact, "major");
    // Same validation as the API: an empty message is refused, named.
    let r = client
        .post(app.url(&location))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}&status=resolved&message=+&action=post"))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 422);
    assert!(r.text().await.expect("html").contains("message"));
    let r = client
        .post(app.url(&location))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "csrf={csrf}&status=resolved&message=Fixed.&notify=yes&action=post"
        ))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 303);
    assert_eq!(
        app.store
            .incident(incidents[0].id)
            .await
            .expect("get")
            .expect("one")
            .status,
        "resolved"
    );

    // Schedule maintenance: raised as an event for channels and subscribers.
    let starts = (chrono::Utc::now() + chrono::Duration::hours(2)).format("%Y-%m-%dT%H:%M");
    let ends = (chrono::Utc::now() + chrono::Duration::hours(3)).format("%Y-%m-%dT%H:%M");
    // Refused (it ends before it starts): the maintenance form comes back
    // filled as sent, and the incident form stays empty.
    let r = client
        .post(app.url("/admin/maintenance"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}&title=Cache+flush&message=Kept+as+typed.&starts_at={ends}&ends_at={starts}&services=api"))
        .send()
        .await
        .expect("schedule");
    assert_eq!(r.status(), 422);
    let html = r.text().await.expect("html");
    assert!(
        html.contains(r#"id="m-title" name="title" value="Cache flush""#),
        "{html}"
    );
    assert!(html.contains(">Kept as typed.</textarea>"), "{html}");
    assert!(
        html.contains(r#"id="i-title" name="title" value="""#),
        "{html}"
    );
    assert!(app.store.maintenances().await.expect("list").is_empty());
    let r = client
        .post(app.url("/admin/maintenance"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}&title=Database+upgrade&message=A+short+pause.&starts_at={starts}&ends_at={ends}&services=api"))
        .send()
        .await
        .expect("schedule");
    assert_eq!(r.status(), 303);
    let windows = app.store.maintenances().await.expect("list");
    assert_eq!(windows.len(), 1);
    // Edited: the same rules as the API (an end before the start is refused).
    let edit = |body: String| {
        client
            .post(app.url(&format!("/admin/maintenance/{}", windows[0].id)))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let r = edit(format!("csrf={csrf}&title=Database+upgrade&message=A+short+pause.&starts_at={ends}&ends_at={starts}&services=api&action=save")).await.expect("edit");
    assert_eq!(r.status(), 422);
    assert!(r.text().await.expect("html").contains("ends_at"));
    let r = edit(format!("csrf={csrf}&title=Database+upgrade+v2&message=A+short+pause.&starts_at={starts}&ends_at={ends}&services=api&action=save")).await.expect("edit");
    assert_eq!(r.status(), 303);
    assert_eq!(
        app.store.maintenances().await.expect("list")[0].title,
        "Database upgrade v2"
    );
    let events = app.store.alert_events().await.expect("events");
    assert!(events
        .iter()
        .any(|e| e.event.kind == beacon::domain::EventKind::MaintenanceScheduled));
    // Cancelled before it starts: withdrawn.
    let r = client
        .post(app.url(&format!("/admin/maintenance/{}", windows[0].id)))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}&action=cancel"))
        .send()
        .await
        .expect("cancel");
    assert_eq!(r.status(), 303);
    assert!(app.store.maintenances().await.expect("list").is_empty());
    let events = app.store.alert_events().await.expect("events");
    assert!(
        events
            .iter()
            .any(|e| e.event.kind == beacon::domain::EventKind::MaintenanceCancelled),
        "an announced window withdrawn is told as cancelled"
    );

    // Signed out: the session no longer opens the console.
    let r = client
        .post(app.url("/admin/logout"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), 303);
    let r = client
        .get(app.url("/admin"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("admin");
    assert_eq!(r.status(), 303);

    // Failed sign-ins are limited: five wrong, then 429 even for the right one.
    for _ in 0..4 {
        let r = client
            .post(app.url("/admin/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("token=nope")
            .send()
            .await
            .expect("login");
        assert_eq!(r.status(), 401);
    }
    let r = client
        .post(app.url("/admin/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={TOKEN}"))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 429);
    let (_, metrics) = app.get("/metrics").await.expect("metrics");
    assert!(
        metrics.contains("beacon_console_signin_failures_total 6"),
        "{metrics}"
    );
    app.stop().await.expect("stop");
}

store_test!(
    outages_and_maintenance_edges_reach_subscribers_by_email_slack_and_webhook,
    outages_and_edges
);
async fn outages_and_edges(db: TestDb) {
    use std::sync::atomic::Ordering;
    let target = Target::start().await;
    let smtp = SmtpServer::start().await;
    let hook = Receiver::start().await;
    let slack = Receiver::start().await;
    let config = alert_config(
        &db,
        &format!(
            "[admin]\ntokens = [\"{TOKEN}\"]\n\
             [subscriptions]\nenabled = true\nfrom = \"Status <status@example.com>\"\nchannel = \"mail\"\n\
             [[notify]]\nname = \"mail\"\nkind = \"email\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\n\
             smtp_tls = \"none\"\nfrom = \"Beacon <beacon@example.com>\"\nto = [\"ops@example.com\"]\n\
             events = [\"backup_failed\"]\n\
             [[group]]\nname = \"Shop\"\n\
             [[service]]\nname = \"API\"\ngroup = \"Shop\"\nurl = \"{}\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n\
             failure_threshold = 1\nsuccess_threshold = 1\n\
             [[service]]\nname = \"Web\"\nurl = \"{}\"\ninterval = \"1s\"\n\
             [[service]]\nname = \"Internal\"\nurl = \"{}\"\ninterval = \"1s\"\npublic = false\n",
            smtp.port,
            target.url("switch"),
            target.url("ok"),
            target.url("ok"),
        ),
    );
    let app = TestApp::spawn(config).await;
    app.wait_for_every_state().await;
    admin(
        &app,
        "/admin/api/subscribers",
        serde_json::json!({"kind": "email", "address": "fay@example.com"}),
    )
    .await;
    admin(
        &app,
        "/admin/api/subscribers",
        serde_json::json!({"kind": "webhook", "address": hook.url, "components": ["api"], "secret": "a-receivers-own-secret-0123"}),
    )
    .await;
    admin(
        &app,
        "/admin/api/subscribers",
        serde_json::json!({"kind": "slack", "address": slack.url}),
    )
    .await;
    // Following a private service is refused, naming the field.
    let r = app
        .client
        .post(app.url("/admin/api/subscribers"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(serde_json::json!({"kind": "webhook", "address": "https://hooks.example.com/x", "components": ["internal"]}).to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 422);
    assert!(r
        .text()
        .await
        .expect("body")
        .contains("\"field\":\"components\""));

    // The API goes down and comes back: the automatic incident is told.
    target.switch.store(500, Ordering::SeqCst);
    eventually(
        "the outage reaches the email subscriber",
        Duration::from_secs(20),
        || async {
            mails_to(&smtp, "fay@example.com")
                .iter()
                .any(|m| m.contains("Subject: [Test status] Incident:"))
        },
    )
    .await;
    target.switch.store(200, Ordering::SeqCst);
    eventually("the recovery too", Duration::from_secs(20), || async {
        mails_to(&smtp, "fay@example.com")
            .iter()
            .any(|m| m.contains("Subject: [Test status] Resolved:"))
    })
    .await;
    delivered(&app).await;
    let updates: Vec<(String, String)> = hook
        .all()
        .iter()
        .filter_map(|r| {
            let u = r.body.get("component_update")?;
            Some((
                u["old_status"].as_str()?.to_string(),
                u["new_status"].as_str()?.to_string(),
            ))
        })
        .collect();
    assert_eq!(
        updates,
        [
            ("operational".to_string(), "major_outage".to_string()),
            ("major_outage".to_string(), "operational".to_string())
        ],
        "the webhook follows the API's component"
    );
    assert!(hook
        .all()
        .iter()
        .all(|r| r.body.get("component_update").is_none() || r.body["component"]["id"] == "api"));
    let slack_texts: Vec<String> = slack
        .all()
        .iter()
        .filter_map(|r| r.body["text"].as_str().map(str::to_string))
        .collect();
    assert!(
        slack_texts.iter().any(|t| t.starts_with("*Incident: ")),
        "{slack_texts:?}"
    );
    assert!(
        slack_texts.iter().all(|t| !t.contains("127.0.0.1")),
        "no internal address"
    );
    assert!(
        slack
            .all()
            .iter()
            .all(|r| r.body.get("component_update").is_none()),
        "component changes go to webhooks only"
    );

    // A window on Web, starting in 2 s and ending 2 s later: scheduled,
    // started and completed, each once; the webhook follows the API only.
    let now = chrono::Utc::now();
    let window = admin(
        &app,
        "/admin/api/maintenances",
        serde_json::json!({
            "title": "Web deploy",
            "message": "New pages go live.",
            "starts_at": (now + chrono::Duration::seconds(2)).to_rfc3339(),
            "ends_at": (now + chrono::Duration::seconds(4)).to_rfc3339(),
            "services": ["web"],
        }),
    )
    .await;
    eventually(
        "the window's three emails",
        Duration::from_secs(20),
        || async {
            let mails = mails_to(&smtp, "fay@example.com");
            [
                "Scheduled maintenance: Web deploy",
                "Maintenance in progress: Web deploy",
                "Maintenance completed: Web deploy",
            ]
            .iter()
            .all(|s| {
                mails
                    .iter()
                    .filter(|m| m.contains(&format!("Subject: [Test status] {s}")))
                    .count()
                    == 1
            })
        },
    )
    .await;
    delivered(&app).await;
    let kinds: Vec<String> = app
        .store
        .alert_events()
        .await
        .expect("events")
        .iter()
        .filter(|e| {
            e.event
                .maintenance
                .as_ref()
                .is_some_and(|m| m.id == window["id"])
        })
        .map(|e| e.event.kind.as_str().to_string())
        .collect();
    assert_eq!(
        kinds,
        [
            "maintenance_scheduled",
            "maintenance_started",
            "maintenance_completed"
        ]
    );
    assert!(
        hook.all()
            .iter()
            .all(|r| r.body["incident"]["impact"] != "maintenance"),
        "a window on Web is not for a webhook following the API"
    );
    assert_eq!(
        slack_texts.len() + 3,
        slack.all().len(),
        "Slack got the window's three steps"
    );
    eventually(
        "the feed tells the window's end",
        Duration::from_secs(20),
        || async {
            app.get("/feed.atom")
                .await
                .is_ok_and(|(_, feed)| feed.contains("Maintenance completed: Web deploy"))
        },
    )
    .await;

    // The email as a subscriber receives it, kept for the docs.
    let mail = mails_to(&smtp, "fay@example.com")
        .into_iter()
        .find(|m| m.contains("Incident:"))
        .expect("the incident email");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/subscriber-email.eml");
    let _ = std::fs::write(out, &mail);
    app.stop().await.expect("stop");
}
