//! The pages in a real browser: headless Chromium renders `/`, a service
//! page and an incident page from a running beacon, at phone width (360 px)
//! and desktop width, saving screenshots under target/screenshots/; axe-core
//! (tests/browser, from npm) runs inside each page and must report no
//! serious or critical accessibility violation; the Nu Html Checker
//! (vnu-jar, from npm) must find no HTML error.
//!
//! Chromium has no script hook from the command line, so each page's HTML
//! is served again from a small server of the test's with axe-core and a
//! runner appended; `--dump-dom` then returns the page with the results.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::helpers::{closed_port, eventually, test_config, Target, TestApp, TestDb};

const TOKEN: &str = "browser-admin-token-0123456789";

fn chromium() -> &'static str {
    if std::path::Path::new("/usr/bin/chromium").exists() {
        "/usr/bin/chromium"
    } else {
        "chromium"
    }
}

fn headless(args: &[&str]) -> String {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
        ])
        .args(args)
        .output()
        .expect("chromium (scripts/test.sh installs it: apt-get install chromium)");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Serves `pages` (path → HTML) on 127.0.0.1; returns the base URL.
async fn serve(pages: Vec<(String, String)>) -> String {
    let mut router = axum::Router::new();
    for (path, html) in pages {
        router = router.route(
            &path,
            axum::routing::get(move || async move { axum::response::Html(html) }),
        );
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_render_in_chromium_with_no_serious_accessibility_violation() {
    let db = TestDb::sqlite().await;
    let target = Target::start().await;
    let closed = closed_port().await;
    let config = test_config(
        &db,
        &format!(
            "[admin]\ntokens = [\"{TOKEN}\"]\n[[group]]\nname = \"Shop\"\n\
             [[service]]\nname = \"Checkout\"\ngroup = \"Shop\"\nurl = \"{ok}\"\ninterval = \"1s\"\n\
             [[service]]\nname = \"Cart\"\ngroup = \"Shop\"\nurl = \"http://127.0.0.1:{closed}/health\"\ninterval = \"1s\"\ntimeout = \"500ms\"\nfailure_threshold = 1\n\
             [[service]]\nname = \"Search\"\nurl = \"{ok}\"\ninterval = \"1s\"\n",
            ok = target.url("ok")
        ),
    );
    let app = TestApp::spawn(config).await;
    let created = app
        .client
        .post(app.url("/admin/api/incidents"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(r#"{"title":"Slow checkout","impact":"minor","message":"We are looking into it.","services":["checkout"]}"#)
        .send()
        .await
        .expect("incident");
    assert_eq!(created.status(), 201);
    eventually(
        "states and the incident are on the page",
        Duration::from_secs(15),
        || async {
            app.get("/").await.is_ok_and(|(_, html)| {
                html.contains("Slow checkout") && html.contains("Partial outage")
            })
        },
    )
    .await;

    let axe = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/browser/node_modules/axe-core/axe.min.js"
    ))
    .expect("axe-core (scripts/test.sh runs npm ci in tests/browser)");
    let runner = "<script>axe.run(document,{resultTypes:['violations']}).then(function(r){var p=document.createElement('pre');p.id='axe-result';p.textContent=JSON.stringify(r.violations.map(function(v){return {id:v.id,impact:v.impact,help:v.help,nodes:v.nodes.map(function(n){return n.html})}}));document.body.appendChild(p);});</script>";
    let shots = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/screenshots"));
    std::fs::create_dir_all(&shots).expect("screenshots folder");

    let paths = [
        ("index", "/"),
        ("service", "/services/checkout"),
        ("incident", "/incidents/1"),
    ];
    let mut wrapped = Vec::new();
    for (name, path) in paths {
        let (status, html) = app.get(path).await.expect("page");
        assert_eq!(status, 200, "{path}");
        std::fs::write(shots.join(format!("{name}.html")), &html).expect("save html");
        let with_axe = html.replace("</body>", &format!("<script>{axe}</script>{runner}</body>"));
        wrapped.push((format!("/{name}"), with_axe));
        for (label, size) in [("phone", "360,800"), ("desktop", "1280,900")] {
            let file = shots.join(format!("{name}-{label}.png"));
            headless(&[
                &format!("--window-size={size}"),
                &format!("--screenshot={}", file.display()),
                &app.url(path),
            ]);
            let bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
            assert!(
                bytes > 1000,
                "{name} at {label}: a screenshot ({bytes} bytes)"
            );
        }
    }
    // Valid HTML, by the Nu Html Checker (vnu-jar from npm; Java).
    let vnu = Command::new("java")
        .arg("-jar")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/browser/node_modules/vnu-jar/build/dist/vnu.jar"
        ))
        .args(["--errors-only", "--format", "text"])
        .args(
            paths
                .iter()
                .map(|(name, _)| shots.join(format!("{name}.html"))),
        )
        .output()
        .expect("java (scripts/test.sh installs a JRE when missing)");
    assert!(
        vnu.status.success(),
        "the Nu Html Checker found errors:\n{}{}",
        String::from_utf8_lossy(&vnu.stdout),
        String::from_utf8_lossy(&vnu.stderr)
    );
    let base = serve(wrapped).await;
    for (name, path) in paths {
        let dom = headless(&[
            "--virtual-time-budget=15000",
            "--dump-dom",
            &format!("{base}/{name}"),
        ]);
        let start = dom.find("<pre id=\"axe-result\">").unwrap_or_else(|| {
            panic!(
                "{path}: axe did not report; DOM: {}",
                &dom[..dom.len().min(500)]
            )
        }) + "<pre id=\"axe-result\">".len();
        let end = dom[start..].find("</pre>").expect("end") + start;
        let json = dom[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&amp;", "&");
        let violations: serde_json::Value = serde_json::from_str(&json).expect("axe json");
        let bad: Vec<&serde_json::Value> = violations
            .as_array()
            .expect("array")
            .iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .collect();
        assert!(
            bad.is_empty(),
            "{path}: serious or critical accessibility violations: {bad:#?}"
        );
    }
    app.stop().await.expect("stop");
}

/// Screenshots (phone and desktop), the Nu Html Checker and axe-core over
/// pages given as HTML: the console's pages need its cookie, so they are
/// fetched by the test and served again from its own server.
async fn audit(pages: Vec<(String, String)>) {
    let axe = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/browser/node_modules/axe-core/axe.min.js"
    ))
    .expect("axe-core (scripts/test.sh runs npm ci in tests/browser)");
    let runner = "<script>axe.run(document,{resultTypes:['violations']}).then(function(r){var p=document.createElement('pre');p.id='axe-result';p.textContent=JSON.stringify(r.violations.map(function(v){return {id:v.id,impact:v.impact,help:v.help,nodes:v.nodes.map(function(n){return n.html})}}));document.body.appendChild(p);});</script>";
    let shots = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/screenshots"));
    std::fs::create_dir_all(&shots).expect("screenshots folder");
    let mut plain = Vec::new();
    let mut wrapped = Vec::new();
    for (name, html) in &pages {
        std::fs::write(shots.join(format!("{name}.html")), html).expect("save html");
        plain.push((format!("/plain/{name}"), html.clone()));
        let with_axe = html.replace("</body>", &format!("<script>{axe}</script>{runner}</body>"));
        wrapped.push((format!("/{name}"), with_axe));
    }
    let vnu = Command::new("java")
        .arg("-jar")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/browser/node_modules/vnu-jar/build/dist/vnu.jar"
        ))
        .args(["--errors-only", "--format", "text"])
        .args(
            pages
                .iter()
                .map(|(name, _)| shots.join(format!("{name}.html"))),
        )
        .output()
        .expect("java (scripts/test.sh installs a JRE when missing)");
    assert!(
        vnu.status.success(),
        "the Nu Html Checker found errors:\n{}{}",
        String::from_utf8_lossy(&vnu.stdout),
        String::from_utf8_lossy(&vnu.stderr)
    );
    wrapped.extend(plain);
    let base = serve(wrapped).await;
    for (name, _) in &pages {
        for (label, size) in [("phone", "360,900"), ("desktop", "1280,1100")] {
            let file = shots.join(format!("{name}-{label}.png"));
            headless(&[
                &format!("--window-size={size}"),
                &format!("--screenshot={}", file.display()),
                &format!("{base}/plain/{name}"),
            ]);
            let bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
            assert!(
                bytes > 1000,
                "{name} at {label}: a screenshot ({bytes} bytes)"
            );
        }
        let dom = headless(&[
            "--virtual-time-budget=15000",
            "--dump-dom",
            &format!("{base}/{name}"),
        ]);
        let start = dom
            .find("<pre id=\"axe-result\">")
            .unwrap_or_else(|| panic!("{name}: axe did not report"))
            + "<pre id=\"axe-result\">".len();
        let end = dom[start..].find("</pre>").expect("end") + start;
        let json = dom[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&amp;", "&");
        let violations: serde_json::Value = serde_json::from_str(&json).expect("axe json");
        let bad: Vec<&serde_json::Value> = violations
            .as_array()
            .expect("array")
            .iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .collect();
        assert!(
            bad.is_empty(),
            "{name}: serious or critical accessibility violations: {bad:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_and_the_subscription_pages_pass_axe_and_the_nu_checker() {
    let db = TestDb::sqlite().await;
    let target = Target::start().await;
    let smtp = crate::alerts::SmtpServer::start().await;
    let config = crate::alerts::alert_config(
        &db,
        &format!(
            "[admin]\ntokens = [\"{TOKEN}\"]\n\
             [subscriptions]\nenabled = true\nfrom = \"Status <status@example.com>\"\nchannel = \"mail\"\n\
             [[notify]]\nname = \"mail\"\nkind = \"email\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\n\
             smtp_tls = \"none\"\nfrom = \"Beacon <beacon@example.com>\"\nto = [\"ops@example.com\"]\nevents = [\"backup_failed\"]\n\
             [[group]]\nname = \"Shop\"\n\
             [[service]]\nname = \"Checkout\"\ngroup = \"Shop\"\nurl = \"{ok}\"\ninterval = \"1s\"\n\
             [[service]]\nname = \"Search\"\nurl = \"{ok}\"\ninterval = \"1s\"\n",
            smtp.port,
            ok = target.url("ok")
        ),
    );
    let app = TestApp::spawn(config).await;
    app.wait_for_every_state().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let login = client
        .post(app.url("/admin/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={TOKEN}"))
        .send()
        .await
        .expect("login");
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .split(';')
        .next()
        .expect("pair")
        .to_string();
    let created = app
        .client
        .post(app.url("/admin/api/incidents"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(serde_json::json!({"title": "Slow checkout", "impact": "minor", "message": "We are looking into it.", "services": ["checkout"]}).to_string())
        .send()
        .await
        .expect("incident");
    assert_eq!(created.status(), 201);
    let window = app
        .client
        .post(app.url("/admin/api/maintenances"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(serde_json::json!({"title": "Database upgrade", "message": "A short pause.", "starts_at": "2099-01-01T10:00:00Z", "ends_at": "2099-01-01T11:00:00Z", "services": ["search"]}).to_string())
        .send()
        .await
        .expect("maintenance");
    assert_eq!(window.status(), 201);
    let fetch = |path: &'static str, with_cookie: bool| {
        let mut r = client.get(app.url(path));
        if with_cookie {
            r = r.header("cookie", &cookie);
        }
        async move {
            let r = r.send().await.expect("page");
            assert_eq!(r.status(), 200, "{path}");
            r.text().await.expect("html")
        }
    };
    let pages = vec![
        (
            "console-login".to_string(),
            fetch("/admin/login", false).await,
        ),
        ("console".to_string(), fetch("/admin", true).await),
        (
            "console-incident".to_string(),
            fetch("/admin/incidents/1", true).await,
        ),
        (
            "console-maintenance".to_string(),
            fetch("/admin/maintenance/1", true).await,
        ),
        ("subscribe".to_string(), fetch("/subscribe", false).await),
    ];
    audit(pages).await;
    app.stop().await.expect("stop");
}
