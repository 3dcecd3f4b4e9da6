//! Probing from several locations (issue 20): a real main server and two
//! real `beacon agent` processes (three locations: local, eu, us), 20
//! services on a target that answers according to the location in each
//! probe's `User-Agent`. What one location sees alone changes nothing
//! public; a quorum does, once; a killed agent is silent and said so; a
//! main server stopped while agents probe gets their buffered results,
//! with their original times, once.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode, Uri};
use serde_json::Value;

use crate::cluster::harness::{client, hold, json, until, Replica, Webhook, SLACK};
use crate::helpers::TestDb;

const SERVICES: usize = 20;
const INTERVAL: Duration = Duration::from_secs(1);
const EU_TOKEN: &str = "eu-token-0123456789abcdef0123456789abcdef";
const US_TOKEN: &str = "us-token-0123456789abcdef0123456789abcdef";

/// A target whose `/svc/N` fails (503) for the locations listed for it,
/// and which keeps, per location, how many probes it got.
#[derive(Clone, Default)]
struct Target {
    failing: Arc<Mutex<HashMap<String, HashSet<String>>>>,
    seen: Arc<Mutex<HashMap<String, u64>>>,
    addr: Arc<Mutex<Option<std::net::SocketAddr>>>,
}

impl Target {
    async fn start() -> Target {
        let target = Target::default();
        let state = target.clone();
        let app = axum::Router::new()
            .fallback(
                |axum::extract::State(t): axum::extract::State<Target>,
                 uri: Uri,
                 headers: HeaderMap| async move {
                    let agent = headers
                        .get("user-agent")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    // beacon/<version> (location <name>)
                    let location = agent
                        .split("(location ")
                        .nth(1)
                        .and_then(|rest| rest.strip_suffix(')'))
                        .unwrap_or("")
                        .to_string();
                    *t.seen.lock().expect("seen").entry(agent).or_default() += 1;
                    let path = uri.path().trim_start_matches('/').to_string();
                    let fails = t
                        .failing
                        .lock()
                        .expect("failing")
                        .get(&path)
                        .is_some_and(|l| l.contains(&location));
                    if fails {
                        (StatusCode::SERVICE_UNAVAILABLE, "{\"status\":\"fail\"}")
                    } else {
                        (StatusCode::OK, "{\"status\":\"pass\"}")
                    }
                },
            )
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind target");
        *target.addr.lock().expect("addr") = Some(listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        target
    }

    fn url(&self, path: &str) -> String {
        let addr = self.addr.lock().expect("addr").expect("started");
        format!("http://{addr}/{path}")
    }

    fn fail(&self, path: &str, locations: &[&str]) {
        self.failing.lock().expect("failing").insert(
            path.to_string(),
            locations.iter().map(|l| l.to_string()).collect(),
        );
    }

    fn user_agents(&self) -> Vec<String> {
        self.seen.lock().expect("seen").keys().cloned().collect()
    }
}

/// A port free now, for a main server that must come back on the same one.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn main_config(db: &TestDb, port: u16, target: &Target, hook: &Webhook) -> String {
    let services: String = (0..SERVICES)
        .map(|n| {
            format!(
                "[[service]]\nname = \"Svc {n}\"\nurl = \"{}\"\ninterval = \"1s\"\ntimeout = \"800ms\"\n\
                 failure_threshold = 2\nlocations = [\"local\", \"eu\", \"us\"]\n",
                target.url(&format!("svc/{n}"))
            )
        })
        .collect();
    format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\ntitle = \"Locations test\"\n\
         public_url = \"https://status.example.com\"\n\
         [storage]\nurl = \"{}\"\n\
         [monitor]\nflush_interval = \"100ms\"\n\
         [[location]]\nname = \"eu\"\ntoken = \"${{EU_TOKEN}}\"\n\
         [[location]]\nname = \"us\"\ntoken = \"${{US_TOKEN}}\"\n\
         {}{services}",
        db.url,
        hook.toml()
    )
}

fn start_main(dir: &Path) -> Replica {
    Replica::spawn(
        "main",
        dir,
        &[
            "serve",
            "--config",
            &dir.join("beacon.toml").display().to_string(),
        ],
        &[("EU_TOKEN", EU_TOKEN), ("US_TOKEN", US_TOKEN)],
    )
}

fn start_agent(dir: &Path, port: u16, location: &str, token: &str) -> Replica {
    Replica::spawn(
        &format!("agent {location}"),
        dir,
        &[
            "agent",
            "--server",
            &format!("http://127.0.0.1:{port}"),
            "--location",
            location,
            "--listen",
            "127.0.0.1:0",
            "--refresh",
            "1s",
        ],
        &[("BEACON_AGENT_TOKEN", token)],
    )
}

/// `/api/v1/services` as slug → (state, location → state).
async fn states(
    main: &Replica,
) -> Result<HashMap<String, (String, HashMap<String, String>)>, String> {
    let doc = json(&client(), &main.url("/api/v1/services")).await?;
    let mut out = HashMap::new();
    for s in doc["services"].as_array().ok_or("no services")? {
        let locations = s["locations"]
            .as_array()
            .map(|ls| {
                ls.iter()
                    .map(|l| {
                        (
                            l["name"].as_str().unwrap_or("").to_string(),
                            l["state"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.insert(
            s["slug"].as_str().unwrap_or("").to_string(),
            (s["state"].as_str().unwrap_or("").to_string(), locations),
        );
    }
    Ok(out)
}

async fn open_incidents(main: &Replica) -> Result<Vec<Value>, String> {
    let doc = json(&client(), &main.url("/api/v2/incidents/unresolved.json")).await?;
    Ok(doc["incidents"].as_array().cloned().unwrap_or_default())
}

async fn health(main: &Replica) -> Result<Value, String> {
    json(&client(), &main.url("/health")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quorum_of_locations_decides_and_one_failing_alone_changes_nothing() {
    let db = TestDb::sqlite().await;
    let dir = db.dir.path().to_path_buf();
    let target = Target::start().await;
    let hook = Webhook::start().await;
    let port = free_port();
    std::fs::write(
        dir.join("beacon.toml"),
        main_config(&db, port, &target, &hook),
    )
    .expect("write config");
    let mut main = start_main(&dir);
    main.serving().await;
    let mut eu = start_agent(&dir, port, "eu", EU_TOKEN);
    let mut us = start_agent(&dir, port, "us", US_TOKEN);
    eu.serving().await;
    us.serving().await;

    // Every service up, seen from all three places; each probe says where
    // it comes from.
    until(
        "every service is up and reported by local, eu and us",
        Duration::from_secs(30),
        || async {
            let states = states(&main).await?;
            let ready = states.values().filter(|(state, locations)| {
                state == "up"
                    && ["local", "eu", "us"]
                        .iter()
                        .all(|l| locations.get(*l).map(String::as_str) == Some("up"))
            });
            match ready.count() {
                n if n == SERVICES => Ok(()),
                n => Err(format!("{n} of {SERVICES} ready: {states:?}")),
            }
        },
    )
    .await;
    let version = env!("CARGO_PKG_VERSION");
    for location in ["local", "eu", "us"] {
        let ua = format!("beacon/{version} (location {location})");
        assert!(
            target.user_agents().contains(&ua),
            "a probe with User-Agent {ua:?}; seen {:?}",
            target.user_agents()
        );
    }

    // svc/0 fails for eu alone: eu sees it down, the page keeps it up,
    // no incident, no alert.
    target.fail("svc/0", &["eu"]);
    until("eu sees svc-0 down", Duration::from_secs(10), || async {
        let states = states(&main).await?;
        let (_, locations) = states.get("svc-0").ok_or("no svc-0")?;
        match locations.get("eu").map(String::as_str) {
            Some("down") => Ok(()),
            other => Err(format!("eu sees {other:?}")),
        }
    })
    .await;
    hold(
        "svc-0 stays up while only eu fails (for several failure thresholds)",
        INTERVAL * 5,
        || async {
            let states = states(&main).await?;
            match states.get("svc-0").map(|(s, _)| s.as_str()) {
                Some("up") => Ok(()),
                other => Err(format!("svc-0 is {other:?}")),
            }
        },
    )
    .await;
    let page = client()
        .get(main.url("/services/svc-0"))
        .send()
        .await
        .expect("service page")
        .text()
        .await
        .expect("page text");
    assert!(
        page.contains("Checked from") && page.contains("Sees it down") && page.contains(">eu<"),
        "the service page shows eu failing:\n{page}"
    );
    assert!(
        !page.contains(&target.url("svc/0")) && !page.contains("127.0.0.1"),
        "the page names no internal URL"
    );
    assert!(
        open_incidents(&main).await.expect("incidents").is_empty(),
        "one location failing opens no incident"
    );
    assert!(hook.of("service_down").is_empty(), "and sends no alert");

    // svc/1 fails for eu and us: two of three, past the threshold: down,
    // one incident, one alert.
    let since = Instant::now();
    target.fail("svc/1", &["eu", "us"]);
    until("svc-1 is down", Duration::from_secs(15), || async {
        let states = states(&main).await?;
        match states.get("svc-1").map(|(s, _)| s.as_str()) {
            Some("down") => Ok(()),
            other => Err(format!("svc-1 is {other:?}")),
        }
    })
    .await;
    eprintln!("svc-1 down after {} ms", since.elapsed().as_millis());
    until(
        "one alert for svc-1 and one incident",
        Duration::from_secs(15),
        || async {
            let alerts = hook
                .of("service_down")
                .into_iter()
                .filter(|a| a["service"]["slug"] == "svc-1")
                .count();
            let incidents = open_incidents(&main).await?;
            if alerts == 1 && incidents.len() == 1 {
                Ok(())
            } else {
                Err(format!("{alerts} alerts, incidents {incidents:?}"))
            }
        },
    )
    .await;
    hold("still one alert and one incident", INTERVAL * 3, || async {
        let alerts = hook.of("service_down").len();
        let incidents = open_incidents(&main).await?.len();
        if alerts == 1 && incidents == 1 {
            Ok(())
        } else {
            Err(format!("{alerts} alerts, {incidents} incidents"))
        }
    })
    .await;

    // The us agent killed: within two intervals (plus slack) us is silent,
    // /health warns, an alert says so, and svc-1 is decided by local (up)
    // and eu (down) without it: no majority for down.
    let killed = Instant::now();
    us.kill9();
    until(
        "us is silent on /health and in an alert",
        INTERVAL * 2 + SLACK * 2,
        || async {
            let health = health(&main).await?;
            let checks = health["checks"]["locations:silent"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let silent = checks
                .iter()
                .any(|c| c["componentId"] == "us" && c["status"] == "warn");
            let alerted = hook
                .of("location_silent")
                .iter()
                .any(|a| a["location"]["name"] == "us");
            if silent && alerted {
                Ok(())
            } else {
                Err(format!("silent {silent}, alerted {alerted}: {checks:?}"))
            }
        },
    )
    .await;
    eprintln!("us silent after {} ms", killed.elapsed().as_millis());
    let metrics = client()
        .get(main.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(
        metrics.contains("beacon_location_silent{location=\"us\"} 1"),
        "/metrics shows us silent"
    );
    until(
        "svc-1 decided by local and eu without us: up",
        Duration::from_secs(15),
        || async {
            let states = states(&main).await?;
            match states.get("svc-1") {
                Some((state, locations)) if state == "up" => {
                    Ok(locations.get("us").cloned().unwrap_or_default())
                }
                other => Err(format!("svc-1 is {other:?}")),
            }
        },
    )
    .await;

    // Restarted, it resumes: back in an alert, and svc-1 down again.
    let mut us = start_agent(&dir, port, "us", US_TOKEN);
    us.serving().await;
    until("us is back", Duration::from_secs(15), || async {
        let back = hook
            .of("location_back")
            .iter()
            .any(|a| a["location"]["name"] == "us");
        let states = states(&main).await?;
        let svc1 = states.get("svc-1").map(|(s, _)| s.clone());
        if back && svc1.as_deref() == Some("down") {
            Ok(())
        } else {
            Err(format!("back {back}, svc-1 {svc1:?}"))
        }
    })
    .await;

    // The main server stopped for a while as the agents probe on: their
    // buffered results arrive afterwards with their original times, each
    // once.
    main.signal("TERM");
    main.exit_within(Duration::from_secs(30))
        .await
        .expect("the main server stops");
    let stopped_at = chrono::Utc::now().timestamp_millis();
    let outage = Duration::from_secs(30);
    tokio::time::sleep(outage).await; // the outage itself, not a wait for an event
    let restarted_at = chrono::Utc::now().timestamp_millis();
    let mut main = start_main(&dir);
    main.serving().await;
    let store = db.store().await;
    let rows = until(
        "eu's and us's results from the outage are stored",
        Duration::from_secs(45),
        || async {
            let rows = store
                .location_results_since(stopped_at, 1_000_000)
                .await
                .map_err(|e| e.to_string())?;
            let during = |location: &str| {
                rows.iter()
                    .filter(|r| {
                        r.location == location
                            && r.checked_at > stopped_at + 1_000
                            && r.checked_at < restarted_at - 1_000
                    })
                    .count()
            };
            let (eu_n, us_n) = (during("eu"), during("us"));
            // Each agent probes 20 services a second: most of the outage's
            // probes (four in five), not just a few.
            let enough = SERVICES * (outage.as_secs() as usize - 2) * 4 / 5;
            if eu_n >= enough && us_n >= enough {
                Ok(rows)
            } else {
                Err(format!(
                    "eu {eu_n}, us {us_n} results from the outage (want {enough} each)"
                ))
            }
        },
    )
    .await;
    let mut keys = HashSet::new();
    for r in &rows {
        assert!(
            keys.insert((r.service_id, r.location.clone(), r.checked_at)),
            "a result stored twice: {r:?}"
        );
    }
    // And the decided history has them too, at their own times (written
    // by the recorder's next batch).
    until(
        "svc-2's decided history holds the agents' results from the outage",
        Duration::from_secs(10),
        || async {
            let decided = store
                .check_results("svc-2")
                .await
                .map_err(|e| e.to_string())?;
            let in_outage = decided
                .iter()
                .filter(|r| {
                    r.checked_at > stopped_at + 1_000 && r.checked_at < restarted_at - 1_000
                })
                .count();
            if in_outage >= 2 * (outage.as_secs() as usize - 2) * 4 / 5 {
                Ok(())
            } else {
                Err(format!("{in_outage} results from the outage"))
            }
        },
    )
    .await;
    for agent in [&eu, &us] {
        let text = client()
            .get(agent.url("/metrics"))
            .send()
            .await
            .expect("agent metrics")
            .text()
            .await
            .expect("text");
        assert!(
            text.contains("beacon_agent_results_dropped_total{reason=\"full\"} 0"),
            "{}: nothing dropped:\n{text}",
            agent.name
        );
        let livez = client()
            .get(agent.url("/livez"))
            .send()
            .await
            .expect("agent /livez");
        assert_eq!(livez.status(), 200);
    }
    drop(eu);
}

const TOKEN: &str = "eu-agent-token-0123456789abcdef0123456789";

/// The agents' routes on a real server: only a location's token opens
/// them; its assignment is its services only, with an ETag; a batch is
/// stored once however often it is sent, and a batch with one wrong
/// result is refused whole, saying which and why, with nothing stored.
async fn agent_routes_take_a_token_and_refuse_a_bad_batch_whole(db: TestDb) {
    use crate::helpers::{test_config, TestApp};
    let target = crate::helpers::Target::start().await;
    let config = test_config(
        &db,
        &format!(
            "[[location]]\nname = \"eu\"\ntoken = \"{TOKEN}\"\n\
             [[service]]\nname = \"Api\"\nurl = \"{}\"\ninterval = \"1s\"\nlocations = [\"local\", \"eu\"]\n\
             [[service]]\nname = \"Home\"\nurl = \"{}\"\ninterval = \"1s\"\n",
            target.url("/ok"),
            target.url("/ok")
        ),
    );
    let app = TestApp::spawn(config).await;
    let http = reqwest::Client::new();
    let get = |token: Option<&str>, etag: Option<&str>| {
        let mut request = http.get(app.url("/agent/api/v1/assignment"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(etag) = etag {
            request = request.header("if-none-match", etag);
        }
        request.send()
    };
    assert_eq!(get(None, None).await.expect("get").status(), 401);
    assert_eq!(
        get(Some("eu-agent-token-0123456789abcdef012345678X"), None)
            .await
            .expect("get")
            .status(),
        401
    );
    let response = get(Some(TOKEN), None).await.expect("get");
    assert_eq!(response.status(), 200);
    let etag = response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .expect("an ETag")
        .to_string();
    let text = response.text().await.expect("text");
    assert!(
        text.contains("name = \"Api\"") && !text.contains("Home"),
        "{text}"
    );
    assert_eq!(
        get(Some(TOKEN), Some(&etag)).await.expect("get").status(),
        304,
        "unchanged: 304"
    );

    let now = chrono::Utc::now().timestamp_millis();
    let result = |service: &str, at: i64, outcome: &str| {
        serde_json::json!({
            "service": service, "checked_at": at, "outcome": outcome,
            "latency_ms": 12, "status_code": 200,
        })
    };
    let post = |body: Value| {
        http.post(app.url("/agent/api/v1/results"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let good = serde_json::json!({ "results": [result("api", now - 2_000, "up"), result("api", now - 1_000, "down")] });
    let read = |r: reqwest::Response| async move {
        serde_json::from_str::<Value>(&r.text().await.expect("text")).expect("json")
    };
    let taken = read(post(good.clone()).await.expect("post")).await;
    assert_eq!(taken, serde_json::json!({ "stored": 2, "duplicates": 0 }));
    let again = read(post(good).await.expect("post")).await;
    assert_eq!(
        again,
        serde_json::json!({ "stored": 0, "duplicates": 2 }),
        "sent twice, stored once"
    );
    let stored = app
        .store
        .count_rows("location_results")
        .await
        .expect("count");

    let bad = [
        (
            serde_json::json!({ "results": [result("api", now, "up"), result("api", now + 60_000, "up")] }),
            "results[1].checked_at",
        ),
        (
            serde_json::json!({ "results": [result("api", now - 2 * 3_600_000, "up")] }),
            "results[0].checked_at",
        ),
        (
            serde_json::json!({ "results": [result("api", now - 3, "up"), result("api", now - 3, "down")] }),
            "results[1]: the same service and checked_at as results[0]",
        ),
        (
            serde_json::json!({ "results": [result("api", now - 5, "sideways")] }),
            "results[0].outcome",
        ),
        (
            serde_json::json!({ "results": (0..1001).map(|i| result("api", now - 10_000 - i, "up")).collect::<Vec<_>>() }),
            "results: 1001 in one batch",
        ),
        (
            serde_json::json!({ "results": [result("api", now - 7, "up")], "extra": 1 }),
            "unknown field",
        ),
    ];
    for (body, names) in bad {
        let response = post(body).await.expect("post");
        assert_eq!(response.status(), 422, "{names}");
        let error = read(response).await;
        let message = error["error"].as_str().unwrap_or("");
        assert!(message.contains(names), "{message:?} names {names}");
    }
    // A service this location does not check (a reload took it away): 409,
    // naming it, so the agent drops its results and fetches the assignment.
    let response = post(
        serde_json::json!({ "results": [result("api", now - 4, "up"), result("home", now, "up")] }),
    )
    .await
    .expect("post");
    assert_eq!(response.status(), 409);
    let conflict = read(response).await;
    assert_eq!(conflict["unassigned"], "home", "{conflict}");
    assert!(conflict["error"]
        .as_str()
        .is_some_and(|e| e.starts_with("results[1].service")));
    assert_eq!(
        app.store
            .count_rows("location_results")
            .await
            .expect("count"),
        stored,
        "nothing of a refused batch is stored"
    );
    let (_, metrics) = app.get("/metrics").await.expect("metrics");
    assert!(
        metrics.contains("beacon_location_batches_refused_total{reason=\"invalid\"} 6")
            && metrics.contains("beacon_location_batches_refused_total{reason=\"unassigned\"} 1"),
        "refusals counted:\n{metrics}"
    );
    assert!(metrics.contains("beacon_location_results_total{location=\"eu\"} 2"));
    app.stop().await.expect("stops");
}

crate::store_test!(
    agent_routes,
    agent_routes_take_a_token_and_refuse_a_bad_batch_whole
);
