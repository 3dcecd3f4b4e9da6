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
