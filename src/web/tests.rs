//! The route tier: the real `router` with `oneshot`, on a state built for
//! the test (a temporary SQLite store and a hand-made snapshot), for the
//! handlers that need no running monitor. No listener, no monitor, no
//! refresher: each test is a few requests.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use tower::ServiceExt;

use super::{router, AppState};
use crate::clock::ManualClock;
use crate::domain::State;
use crate::monitor::MonitorStats;
use crate::snapshot::{Day, GroupView, Overall, ServiceView, Snapshot};
use crate::store::Store;

const TOKEN: &str = "route-test-token-0123456789";

impl AppState {
    /// A state over `store` serving `snapshot`, with admin `tokens`: what
    /// `startup` builds, without a monitor or a refresher behind it.
    pub(crate) fn for_tests(store: Store, snapshot: Snapshot, tokens: &[&str]) -> AppState {
        let now = snapshot.generated_at;
        let (_, receiver) = tokio::sync::watch::channel(Arc::new(snapshot));
        AppState {
            snapshot: receiver,
            store,
            stats: Arc::new(MonitorStats::default()),
            metrics: Arc::new(crate::metrics::Metrics::new()),
            clock: Arc::new(ManualClock::at(now)),
            admin_tokens: Arc::new(tokens.iter().map(|t| t.to_string()).collect()),
            changed: Default::default(),
            render_cache: Default::default(),
            scrapes: Default::default(),
            first_incident: Default::default(),
            max_age_secs: 30,
            site: Default::default(),
            public_url: None,
            backup_watch: None,
            metrics_enabled: true,
            metrics_token: None,
            alert_channels: Default::default(),
            server_stats: Default::default(),
            store_reads: Arc::new(tokio::sync::Semaphore::new(super::STORE_READERS)),
            clients: Arc::new(super::clients::Clients::new(Default::default())),
            store_checks: Default::default(),
            cluster: None,
            agents: Arc::new(super::agent::Agents::new(
                Default::default(),
                Default::default(),
                0,
            )),
            subscriptions: Default::default(),
            console: Default::default(),
        }
    }
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 12, 14, 5, 0)
        .single()
        .expect("a valid time")
}

/// One public service, up, in no group.
fn snapshot() -> Snapshot {
    let at = now();
    let service = ServiceView {
        slug: "checkout-api".into(),
        name: "Checkout API".into(),
        description: None,
        state: State::Up,
        state_since: Some(at - chrono::Duration::hours(2)),
        last_check: crate::snapshot::LastCheck::new(Some(
            (at - chrono::Duration::seconds(12)).timestamp_millis(),
        )),
        created_at: at - chrono::Duration::days(3),
        uptime: [Some(100.0), Some(99.5), None, None],
        hours: Arc::from(Vec::new()),
        past_days: Arc::from(Vec::new()),
        today: Day::empty(at.date_naive()),
        incidents_90d: 0,
        p50_24h: Some(42),
        dependencies: vec![],
        locations: vec![],
    };
    Snapshot {
        generated_at: at,
        title: "Acme status".into(),
        overall: Overall::of(&[State::Up]),
        groups: vec![GroupView {
            name: None,
            description: None,
            uptime: service.uptime,
            services: vec![Arc::new(service)],
        }],
        incidents: vec![],
        recent_incidents: vec![],
        recent_maintenances: vec![],
        active_maintenances: vec![],
        upcoming_maintenances: vec![],
        loading: false,
    }
}

/// A fresh, migrated SQLite store (kept alive by the returned folder).
async fn temp_store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/beacon.db", dir.path().display());
    let store = Store::connect(&crate::config::DatabaseUrl::new(url))
        .await
        .expect("store");
    store.migrate().await.expect("migrate");
    (store, dir)
}

/// The router over a fresh store (kept alive by the returned folder).
async fn app() -> (Router, AppState, tempfile::TempDir) {
    let (store, dir) = temp_store().await;
    let state = AppState::for_tests(store, snapshot(), &[TOKEN]);
    (router(state.clone()), state, dir)
}

struct Answer {
    status: StatusCode,
    content_type: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

async fn send(router: &Router, request: Request<Body>) -> Answer {
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    Answer {
        status,
        content_type,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).expect("request")
}

fn admin(method: Method, path: &str, token: Option<&str>, json: Option<Value>) -> Request<Body> {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = match json {
        Some(json) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(json.to_string())
        }
        None => Body::empty(),
    };
    request.body(body).expect("request")
}

#[tokio::test]
async fn the_admin_api_refuses_a_request_without_a_token_or_with_a_wrong_one() {
    let (router, state, _dir) = app().await;
    for token in [None, Some("route-test-token-012345678"), Some("")] {
        let answer = send(
            &router,
            admin(
                Method::POST,
                "/admin/api/incidents",
                token,
                Some(serde_json::json!({"title": "t", "impact": "minor", "message": "m"})),
            ),
        )
        .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{token:?}");
        let json = answer.json();
        assert!(
            json["error"].as_str().is_some_and(|e| e.contains("bearer")),
            "{json}"
        );
        assert!(json["field"].is_null(), "{json}");
    }
    assert!(state
        .store
        .recent_incidents(10)
        .await
        .expect("read")
        .is_empty());
    let answer = send(
        &router,
        admin(Method::GET, "/admin/api/incidents", Some(TOKEN), None),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json(), serde_json::json!([]));
}

#[tokio::test]
async fn admin_input_errors_name_the_field_and_write_nothing() {
    let (router, state, _dir) = app().await;
    let long = "x".repeat(201);
    for (body, status, field, words) in [
        (
            serde_json::json!({"title": long, "impact": "minor", "message": "m"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "title",
            "title: is longer than 200 bytes",
        ),
        (
            serde_json::json!({"title": "t", "impact": "huge", "message": "m"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "impact",
            "impact: \"huge\" is not one of none, minor, major, critical",
        ),
        (
            serde_json::json!({"title": "t", "impact": "minor", "message": " \u{1} "}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "message",
            "message: must not be empty",
        ),
        (
            serde_json::json!({"title": 5, "impact": "minor", "message": "m"}),
            StatusCode::BAD_REQUEST,
            "title",
            "title: invalid type",
        ),
        (
            serde_json::json!({"title": "t", "impact": "minor", "message": "m", "colour": 1}),
            StatusCode::BAD_REQUEST,
            "colour",
            "colour: unknown field",
        ),
    ] {
        let answer = send(
            &router,
            admin(
                Method::POST,
                "/admin/api/incidents",
                Some(TOKEN),
                Some(body),
            ),
        )
        .await;
        assert_eq!(answer.status, status, "{}", answer.body);
        let json = answer.json();
        assert_eq!(json["field"], field, "{json}");
        assert!(
            json["error"].as_str().is_some_and(|e| e.starts_with(words)),
            "{json}"
        );
    }
    assert!(state
        .store
        .recent_incidents(10)
        .await
        .expect("read")
        .is_empty());

    // The same rules let a good incident in, trimmed.
    let answer = send(
        &router,
        admin(
            Method::POST,
            "/admin/api/incidents",
            Some(TOKEN),
            Some(serde_json::json!({"title": "  Payments delayed \u{FFFF} ", "impact": "minor", "message": "Looking."})),
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    let json = answer.json();
    assert_eq!(json["title"], "Payments delayed");
    assert_eq!(json["status"], "investigating");
    assert_eq!(json["started_at"], "2026-03-12T14:05:00+00:00");
    let stored = state.store.recent_incidents(10).await.expect("read");
    assert_eq!(stored.len(), 1);
    assert_eq!(Some(stored[0].id), json["id"].as_i64());
}

#[tokio::test]
async fn the_admin_api_answers_json_to_a_bad_id_a_wrong_method_a_wrong_type_and_an_unknown_path() {
    let (router, _state, _dir) = app().await;
    let cases = [
        (
            admin(Method::GET, "/admin/api/incidents/+1", Some(TOKEN), None),
            StatusCode::BAD_REQUEST,
            Some("id"),
        ),
        (
            admin(Method::GET, "/admin/api/incidents/77", Some(TOKEN), None),
            StatusCode::NOT_FOUND,
            None,
        ),
        (
            admin(Method::PUT, "/admin/api/incidents", Some(TOKEN), None),
            StatusCode::METHOD_NOT_ALLOWED,
            None,
        ),
        (
            admin(Method::GET, "/admin/api/nothing/here", Some(TOKEN), None),
            StatusCode::NOT_FOUND,
            None,
        ),
        (
            Request::post("/admin/api/incidents")
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from("{}"))
                .expect("request"),
            StatusCode::BAD_REQUEST,
            None,
        ),
    ];
    for (request, status, field) in cases {
        let path = request.uri().to_string();
        let answer = send(&router, request).await;
        assert_eq!(answer.status, status, "{path}: {}", answer.body);
        assert!(
            answer.content_type.starts_with("application/json"),
            "{path}"
        );
        let json = answer.json();
        assert!(json["error"].is_string(), "{path}: {json}");
        assert_eq!(json["field"].as_str(), field, "{path}: {json}");
    }
}

#[tokio::test]
async fn the_public_json_lists_the_snapshot_s_services() {
    let (router, _state, _dir) = app().await;
    let answer = send(&router, get("/api/v1/services")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(answer.content_type.starts_with("application/json"));
    let json = answer.json();
    let services = json["services"].as_array().expect("services");
    assert_eq!(services.len(), 1, "{json}");
    assert_eq!(services[0]["slug"], "checkout-api", "{json}");
    assert_eq!(services[0]["name"], "Checkout API", "{json}");
    assert_eq!(services[0]["state"], "up", "{json}");
    assert_eq!(json["status"], "up", "{json}");
    assert_eq!(json["updated_at"], "2026-03-12T14:05:00+00:00", "{json}");
    assert_eq!(
        services[0]["uptime"],
        serde_json::json!({"24h": 100.0, "7d": 99.5, "30d": null, "90d": null}),
        "no data is null, never 100"
    );
    assert!(
        json["incidents"].as_array().is_some_and(Vec::is_empty),
        "{json}"
    );
}

#[tokio::test]
async fn livez_answers_and_an_unknown_page_is_a_plain_404() {
    let (router, _state, _dir) = app().await;
    let live = send(&router, get("/livez")).await;
    assert_eq!(live.status, StatusCode::OK, "{}", live.body);
    for path in [
        "/no/such/page",
        "/services/no-such-service",
        "/incidents/abc",
    ] {
        let answer = send(&router, get(path)).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(answer.content_type, "text/plain; charset=utf-8", "{path}");
        assert_eq!(answer.body, "Not found\n", "{path}");
    }
}

#[tokio::test]
async fn the_status_page_and_a_service_page_show_the_snapshot() {
    let (router, _state, _dir) = app().await;
    let index = send(&router, get("/")).await;
    assert_eq!(index.status, StatusCode::OK);
    assert!(
        index.content_type.starts_with("text/html"),
        "{}",
        index.content_type
    );
    assert!(index.body.contains("Acme status"));
    assert!(index.body.contains("href=\"/services/checkout-api\""));
    assert!(
        index.body.contains("checked 12 s ago"),
        "the clock is the state's"
    );
    let service = send(&router, get("/services/checkout-api")).await;
    assert_eq!(service.status, StatusCode::OK);
    assert!(service.body.contains("Checkout API"));
    assert!(service.body.contains("changed 2 h ago"));
}

#[tokio::test]
async fn concurrent_metrics_scrapes_are_answered_gzip_or_plain_with_the_same_series() {
    use std::io::Read;
    let (router, _state, _dir) = app().await;
    // An HA pair of Prometheus servers and a person with curl, at once.
    let mut scrapes = tokio::task::JoinSet::new();
    for n in 0..12 {
        let router = router.clone();
        scrapes.spawn(async move {
            let mut request = get("/metrics");
            if n % 3 != 0 {
                request
                    .headers_mut()
                    .insert(header::ACCEPT_ENCODING, "gzip".parse().expect("value"));
            }
            let response = router.oneshot(request).await.expect("infallible");
            let status = response.status();
            let encoding = response
                .headers()
                .get(header::CONTENT_ENCODING)
                .map(|v| v.to_str().unwrap_or_default().to_owned());
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("body");
            (n, status, encoding, bytes)
        });
    }
    while let Some(done) = scrapes.join_next().await {
        let (n, status, encoding, bytes) = done.expect("scrape");
        assert_eq!(status, StatusCode::OK);
        let text = if n % 3 != 0 {
            assert_eq!(encoding.as_deref(), Some("gzip"), "scrape {n}");
            let mut text = String::new();
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_string(&mut text)
                .expect("gzip");
            text
        } else {
            assert_eq!(encoding, None, "scrape {n}");
            String::from_utf8(bytes.to_vec()).expect("utf-8")
        };
        assert!(
            text.contains("beacon_monitor_lag_seconds"),
            "scrape {n}: {text}"
        );
    }
}

#[tokio::test]
async fn history_pages_past_the_first_incident_answer_404_without_the_store() {
    let (router, state, _dir) = app().await;
    // No incident on record: page 2 does not exist. That took one read.
    assert_eq!(
        send(&router, get("/incidents?page=2")).await.status,
        StatusCode::NOT_FOUND
    );
    // A crawler walking on past the end costs no read of the store for
    // this snapshot: with the store closed, still 404, not 503.
    state.store.close().await;
    for page in [2, 3, 40, 1200] {
        let answer = send(&router, get(&format!("/incidents?page={page}"))).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "page {page}");
    }
}

// Issue 18, start-up: until the first snapshot (with the history) is built,
// no public route shows a half-built page; /livez, /readyz, the admin API
// and /health answer as they always do.
#[tokio::test]
async fn while_loading_public_routes_answer_503_with_retry_after() {
    let (store, _dir) = temp_store().await;
    let loading = Snapshot::loading("Acme <status>", now());
    let (publish, receiver) = tokio::sync::watch::channel(Arc::new(loading));
    let mut state = AppState::for_tests(store, snapshot(), &[TOKEN]);
    state.snapshot = receiver;
    let router = router(state);
    for path in [
        "/",
        "/incidents",
        "/incidents/1",
        "/services/api",
        "/api/v1/services",
        "/api/v2/summary.json",
        "/api/v2/status.json",
        "/feed.atom",
        "/badge/api.svg",
    ] {
        let response = router.clone().oneshot(get(path)).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        let headers = response.headers();
        assert_eq!(headers[header::RETRY_AFTER], "5", "{path}");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store", "{path}");
    }
    let page = send(&router, get("/")).await;
    assert!(
        page.content_type.starts_with("text/html"),
        "{}",
        page.content_type
    );
    assert!(
        page.body.contains("<h1>Acme &#60;status&#62;</h1>"),
        "escaped: {}",
        page.body
    );
    assert!(page.body.contains("reading its history"), "{}", page.body);
    let summary = send(&router, get("/api/v2/summary.json")).await;
    assert_eq!(summary.json()["error"], "starting");
    assert_eq!(send(&router, get("/livez")).await.status, StatusCode::OK);
    let ready = send(&router, get("/readyz")).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(ready.body.contains("reading the history"), "{}", ready.body);
    let health = send(&router, get("/health")).await;
    assert!(
        health.body.contains("starting: reading the history"),
        "{}",
        health.body
    );
    let listed = send(
        &router,
        admin(Method::GET, "/admin/api/incidents", Some(TOKEN), None),
    )
    .await;
    assert_eq!(listed.status, StatusCode::OK, "the admin API works at once");
    // Once the first snapshot is published, the same router serves it.
    publish.send_replace(Arc::new(snapshot()));
    assert_eq!(send(&router, get("/")).await.status, StatusCode::OK);
    assert_eq!(send(&router, get("/readyz")).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_and_health_at_once_share_one_store_check() {
    let (router, state, _dir) = app().await;
    let requests = (0..100).map(|i| {
        let router = router.clone();
        async move {
            let path = if i % 2 == 0 { "/readyz" } else { "/health" };
            let status = router.oneshot(get(path)).await.expect("answer").status();
            (path, status)
        }
    });
    let statuses = futures_util::future::join_all(requests).await;
    assert!(
        statuses
            .iter()
            .all(|(path, s)| *path == "/health" || *s == StatusCode::OK),
        "{statuses:?}"
    );
    // One check, or two if the first ended as the others arrived: never
    // one per request.
    let runs = state.store_checks.runs();
    assert!(
        (1..=2).contains(&runs),
        "{runs} store checks for 100 requests"
    );
    // Later, a request checks the store again.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let answer = router
        .clone()
        .oneshot(get("/readyz"))
        .await
        .expect("answer");
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(state.store_checks.runs(), runs + 1);
}
