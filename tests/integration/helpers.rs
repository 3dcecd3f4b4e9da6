//! Shared test setup: databases (SQLite file or a fresh PostgreSQL database),
//! real HTTP targets, the real app on 127.0.0.1:0, and polling with deadlines.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use beacon::config::{self, Config, ConfigSource};
use beacon::startup::Application;
use beacon::store::Store;
use tokio::sync::oneshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// A database of its own for one test. PostgreSQL databases are dropped
/// when the test ends.
pub struct TestDb {
    pub kind: Kind,
    pub url: String,
    pub dir: tempfile::TempDir,
    pg_admin: Option<(String, String)>,
}

/// Hits per path on a [`Target`].
type Hits = Arc<Mutex<HashMap<String, u64>>>;

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// The PostgreSQL server tests use. `BEACON_TEST_POSTGRES_URL` (CI sets it);
/// else the machine's own server on 127.0.0.1:5432.
pub fn postgres_admin_url() -> String {
    std::env::var("BEACON_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/beacon.db", dir.path().display());
        TestDb {
            kind: Kind::Sqlite,
            url,
            dir,
            pg_admin: None,
        }
    }

    /// A fresh database on the test PostgreSQL server. `None` (test skipped,
    /// with a note) when the server is unreachable — except under CI=true,
    /// where an unreachable server fails the test.
    pub async fn postgres() -> Option<TestDb> {
        use sqlx::Connection;
        let admin = postgres_admin_url();
        let mut conn = match sqlx::PgConnection::connect(&admin).await {
            Ok(c) => c,
            Err(e) => {
                if std::env::var("CI").as_deref() == Ok("true") {
                    panic!("PostgreSQL at {admin} is unreachable under CI=true: {e}");
                }
                eprintln!("note: skipping a PostgreSQL test, {admin} is unreachable: {e}");
                return None;
            }
        };
        let name = format!("beacon_test_{}", unique_suffix());
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let _ = conn.close().await;
        let mut url = url::Url::parse(&admin).expect("BEACON_TEST_POSTGRES_URL is a URL");
        url.set_path(&name);
        Some(TestDb {
            kind: Kind::Postgres,
            url: url.to_string(),
            dir: tempfile::tempdir().expect("temp dir"),
            pg_admin: Some((admin, name)),
        })
    }

    pub async fn store(&self) -> Store {
        let store = Store::connect(&config::DatabaseUrl::new(self.url.clone()))
            .await
            .expect("connect to test store");
        store.migrate().await.expect("migrate test store");
        store
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg_admin.take() {
            // Drop runs outside async; a small runtime of its own does the work.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    use sqlx::Connection;
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                        let _ = sqlx::query(&format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        ))
                        .execute(&mut conn)
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

/// Defines `mod $name { sqlite(), postgres() }`, running `$body(TestDb)` on each.
#[macro_export]
macro_rules! store_test {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$body($crate::helpers::TestDb::sqlite().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = $crate::helpers::TestDb::postgres().await {
                    super::$body(db).await
                }
            }
        }
    };
}

/// A real HTTP server standing in for the services beacon watches:
/// `/ok` 200, `/fail` 500, `/hang` never answers, `/slow` answers after
/// 300 ms, `/switch` answers whatever status is set, `/echo` wants a POST
/// with a header and a body, `/redirect` sends to `/ok`. Counts hits per path.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub switch: Arc<AtomicU16>,
    hits: Arc<Mutex<HashMap<String, u64>>>,
}

impl Target {
    pub async fn start() -> Target {
        let switch = Arc::new(AtomicU16::new(200));
        let hits: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
        let state = (switch.clone(), hits.clone());
        async fn answer(
            State((switch, hits)): State<(Arc<AtomicU16>, Hits)>,
            Path(path): Path<String>,
            method: axum::http::Method,
            headers: axum::http::HeaderMap,
            body: String,
        ) -> axum::response::Response {
            use axum::response::IntoResponse;
            *hits.lock().expect("lock").entry(path.clone()).or_default() += 1;
            let json = |ct: &'static str, body: &'static str| {
                ([(axum::http::header::CONTENT_TYPE, ct)], body).into_response()
            };
            match path.as_str() {
                // 200 only for POST with X-Token: s3cret and the body "ping".
                "echo" => {
                    let token = headers.get("x-token").and_then(|v| v.to_str().ok());
                    if method == axum::http::Method::POST
                        && token == Some("s3cret")
                        && body == "ping"
                    {
                        (StatusCode::OK, "pong").into_response()
                    } else {
                        (StatusCode::BAD_REQUEST, "wrong request").into_response()
                    }
                }
                "redirect" => axum::response::Redirect::to("/ok").into_response(),
                "ietf-db-fail" => json(
                    "application/health+json",
                    r#"{"status":"pass","checks":{"db:responseTime":[{"status":"fail","output":"db.internal:5432 refused"}]}}"#,
                ),
                "actuator-up" => json(
                    "application/vnd.spring-boot.actuator.v3+json",
                    r#"{"status":"UP","components":{"db":{"status":"UP"},"diskSpace":{"status":"UP"}}}"#,
                ),
                "garbage" => {
                    // 10 MB that claims to be JSON and is not.
                    let body: Vec<u8> = (0..10_000_000u32)
                        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
                        .collect();
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        body,
                    )
                        .into_response()
                }
                "endless" => {
                    let chunk = axum::body::Bytes::from_static(&[b'x'; 8192]);
                    let stream = futures_util::stream::repeat_with(move || {
                        Ok::<_, std::convert::Infallible>(chunk.clone())
                    });
                    axum::body::Body::from_stream(stream).into_response()
                }
                _ => plain(&path, &switch).await.into_response(),
            }
        }
        async fn plain(path: &str, switch: &AtomicU16) -> (StatusCode, &'static str) {
            match path {
                "ok" => (StatusCode::OK, "{\"status\":\"pass\"}"),
                "fail" => (StatusCode::INTERNAL_SERVER_ERROR, "boom"),
                "hang" => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    (StatusCode::OK, "late")
                }
                "slow" => {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    (StatusCode::OK, "slow")
                }
                "switch" => (
                    StatusCode::from_u16(switch.load(Ordering::SeqCst))
                        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    "switch",
                ),
                _ => (StatusCode::NOT_FOUND, "no such path"),
            }
        }
        let app = Router::new()
            .route("/{path}", get(answer).post(answer))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind target");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Target { addr, switch, hits }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    pub fn hits(&self, path: &str) -> u64 {
        self.hits
            .lock()
            .expect("lock")
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

/// A port on which nothing listens, and nothing will: a socket bound to it
/// but not listening is kept for the rest of the test process, so a
/// connection is refused and no other test's server (tests run in
/// parallel) can be given the same port. A port merely found free and let
/// go was once taken by another test's server, whose `/health` then
/// answered for the "closed" one.
pub async fn closed_port() -> u16 {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let port = socket.local_addr().expect("addr").port();
    // Held until the test process exits (one descriptor per call).
    std::mem::forget(socket);
    port
}

/// A port free a moment ago, for a server started next that takes a port
/// number rather than a listener.
pub async fn free_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}

pub fn no_env(_: &str) -> Option<String> {
    None
}

/// A monitor over `config`'s services on an injected clock, with no
/// scheduler: tests drive it with `probe` and `Recorder::record`. Built
/// again, it starts from the stored states, as after a restart.
pub async fn simulated_monitor(
    config: &Config,
    store: &Store,
    clock: &beacon::clock::ManualClock,
) -> beacon::monitor::Monitor {
    beacon::monitor::Monitor::for_services(
        &config.services,
        store.clone(),
        Arc::new(clock.clone()),
        config.monitor.clone(),
        Default::default(),
    )
    .await
    .expect("monitor")
}

/// Parses a config for tests; `listen` and `storage.url` come from `db`.
/// One HTTP probe's result as a store test writes it: up (200) or down
/// (500, "HTTP 500"), 5 ms.
pub fn one_result(
    service_id: i64,
    checked_at: i64,
    outcome: beacon::domain::Outcome,
) -> beacon::store::CheckResult {
    let up = outcome == beacon::domain::Outcome::Up;
    beacon::store::CheckResult {
        service_id,
        checked_at,
        outcome,
        maintenance: false,
        latency_ms: Some(5),
        status_code: Some(if up { 200 } else { 500 }),
        reason: (!up).then(|| "HTTP 500".into()),
    }
}

pub fn test_config(db: &TestDb, body: &str) -> Config {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntitle = \"Test status\"\n[storage]\nurl = \"{}\"\n[monitor]\nflush_interval = \"50ms\"\n{body}",
        db.url
    );
    config::from_toml(&text, ConfigSource::Embedded, &no_env).expect("test config is valid")
}

/// The real app, running on 127.0.0.1 at a random port.
pub struct TestApp {
    pub addr: SocketAddr,
    pub store: Store,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub async fn spawn(config: Config) -> TestApp {
        let app = Application::build(config).await.expect("app builds");
        let addr = app.local_addr();
        let store = app.store().clone();
        let snapshot = app.snapshot();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::new();
        let test_app = TestApp {
            addr,
            store,
            client,
            stop: Some(stop),
            task: Some(task),
        };
        eventually(
            "the app answers /livez",
            Duration::from_secs(10),
            || async {
                test_app
                    .get("/livez")
                    .await
                    .map(|(s, _)| s == 200)
                    .unwrap_or(false)
            },
        )
        .await;
        first_snapshot_built(snapshot).await;
        test_app
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// GET `path`, returning the status and the body.
    pub async fn get(&self, path: &str) -> reqwest::Result<(u16, String)> {
        let response = self.client.get(self.url(path)).send().await?;
        let status = response.status().as_u16();
        Ok((status, response.text().await?))
    }

    /// Every active service, as the store has it now.
    pub async fn summaries(&self) -> Vec<beacon::store::ServiceSummary> {
        self.store
            .service_summaries(chrono::Utc::now().timestamp_millis())
            .await
            .expect("summaries")
    }

    /// Waits until every service has left `unknown`.
    pub async fn wait_for_every_state(&self) {
        eventually(
            "every service has a state",
            Duration::from_secs(15),
            || async {
                self.summaries()
                    .await
                    .iter()
                    .all(|s| s.state != beacon::domain::State::Unknown)
            },
        )
        .await;
    }

    /// Stops the app as SIGTERM would, and returns how `run_until_stopped` ended.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.expect("app task"),
            None => Ok(()),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Waits until a started app has built its first snapshot (its public
/// routes answer 503 until then).
pub async fn first_snapshot_built(
    mut snapshot: tokio::sync::watch::Receiver<Arc<beacon::snapshot::Snapshot>>,
) {
    tokio::time::timeout(Duration::from_secs(30), snapshot.wait_for(|s| !s.loading))
        .await
        .expect("the first snapshot is built within 30 s")
        .expect("the app is running");
}

/// Polls `check` every 50 ms until it holds; fails the test after `deadline`.
pub async fn eventually<F, Fut>(what: &str, deadline: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() > end {
            panic!("timed out after {deadline:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A real S3-compatible server (s3s-fs, which checks SigV4 signatures) on
/// 127.0.0.1, with one bucket, for the life of the test.
pub struct S3Server {
    pub endpoint: String,
    pub dir: tempfile::TempDir,
    pub bucket: String,
    child: std::process::Child,
}

pub const S3_ACCESS_KEY: &str = "beacon-test-access";
pub const S3_SECRET_KEY: &str = "beacon-test-secret-0123456789";

impl S3Server {
    pub async fn start() -> S3Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let bucket = "beacon-backups".to_string();
        std::fs::create_dir_all(dir.path().join(&bucket)).expect("bucket folder");
        let port = free_port().await;
        let child = std::process::Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET_KEY])
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("s3s-fs is installed (scripts/test.sh installs it: cargo install s3s-fs --version 0.14.1 --features binary --locked)");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(std::time::Instant::now() < deadline, "s3s-fs did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        S3Server {
            endpoint: format!("http://127.0.0.1:{port}"),
            dir,
            bucket,
            child,
        }
    }

    /// Where s3s-fs keeps the object `key` of the bucket.
    pub fn object_path(&self, key: &str) -> std::path::PathBuf {
        self.dir.path().join(&self.bucket).join(key)
    }

    /// A `[backup]` section for this server, under `prefix`.
    pub fn backup_toml(&self, prefix: &str, extra: &str) -> String {
        format!(
            "[backup]\ntarget = \"s3://{}/{prefix}\"\nendpoint = \"{}\"\n{extra}\n",
            self.bucket, self.endpoint
        )
    }

    pub fn env(name: &str) -> Option<String> {
        match name {
            "AWS_ACCESS_KEY_ID" => Some(S3_ACCESS_KEY.to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some(S3_SECRET_KEY.to_string()),
            _ => None,
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Like [`test_config`], with the S3 test credentials in the environment.
pub fn test_config_with_s3(db: &TestDb, body: &str) -> Config {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntitle = \"Test status\"\n[storage]\nurl = \"{}\"\n[monitor]\nflush_interval = \"50ms\"\n{body}",
        db.url
    );
    config::from_toml(&text, ConfigSource::Embedded, &S3Server::env).expect("test config is valid")
}

/// Writes `days` of history for `services` services (a result every 10
/// minutes, some down) and an incident, through the real write path.
pub async fn fill_history(store: &Store, config: &Config, days: i64) {
    use beacon::domain::Outcome;
    use beacon::store::{Batch, CheckResult, NewIncident};
    let start = 1_773_000_000_000i64;
    let stored = store
        .sync_services(&config.services, start)
        .await
        .expect("sync");
    let mut batch = Batch::default();
    for step in 0..days * 144 {
        let at = start + step * 600_000;
        for (i, s) in stored.iter().enumerate() {
            batch.results.push(CheckResult {
                service_id: s.id,
                checked_at: at,
                outcome: if (step + i as i64) % 37 == 0 {
                    Outcome::Down
                } else {
                    Outcome::Up
                },
                maintenance: false,
                latency_ms: Some(20 + (step % 50) as i32),
                status_code: Some(200),
                reason: None,
            });
        }
        if batch.results.len() >= 2000 {
            store.write_batch(&batch).await.expect("write");
            batch.results.clear();
        }
    }
    store.write_batch(&batch).await.expect("write");
    if let Some(s) = stored.first() {
        store
            .create_incident(&NewIncident {
                title: "Payments delayed".into(),
                impact: "minor".into(),
                status: "investigating".into(),
                message: "Looking into it.".into(),
                services: vec![s.slug.clone()],
                at: start,
                notify: true,
            })
            .await
            .expect("incident");
    }
}

/// The shell block after `<!-- drill: NAME -->` in docs/runbook.md, each
/// line trimmed: the runbook's commands, as the tests run them.
pub fn runbook_block(name: &str) -> String {
    doc_block("docs/runbook.md", "drill", name)
}

/// The shell block after `<!-- deploy: NAME -->` in docs/deploy.md, each
/// line trimmed.
pub fn deploy_block(name: &str) -> String {
    doc_block("docs/deploy.md", "deploy", name)
}

/// The ```sh block after `<!-- KIND: NAME -->` in `doc`, each line
/// trimmed.
pub fn doc_block(doc: &str, kind: &str, name: &str) -> String {
    let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(doc))
        .unwrap_or_else(|e| panic!("{doc}: {e}"));
    let marker = format!("<!-- {kind}: {name} -->");
    let at = text
        .find(&marker)
        .unwrap_or_else(|| panic!("no block {marker} in {doc}"));
    let rest = &text[at..];
    let start = rest.find("```sh\n").expect("a ```sh block") + "```sh\n".len();
    let end = rest[start..].find("```").expect("the block's end");
    rest[start..start + end]
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A test's own connection to its database, for SQL the store does not
/// offer (dropping tables, ballast, integrity checks): the store keeps its
/// pools to itself.
pub enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Raw {
    pub async fn connect(url: &str) -> Raw {
        if let Some(path) = url.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or(path);
            let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
            Raw::Sqlite(
                sqlx::SqlitePool::connect_with(options)
                    .await
                    .expect("connect to SQLite"),
            )
        } else {
            Raw::Postgres(
                sqlx::PgPool::connect(url)
                    .await
                    .expect("connect to PostgreSQL"),
            )
        }
    }

    pub async fn exec(&self, sql: &str) -> Result<(), sqlx::Error> {
        match self {
            Raw::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
            Raw::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
        }
    }

    pub async fn close(&self) {
        match self {
            Raw::Sqlite(pool) => pool.close().await,
            Raw::Postgres(pool) => pool.close().await,
        }
    }
}

/// A TLS server on 127.0.0.1 presenting `cert` (with `key`); answers any
/// request with a small health+json "pass", then closes. Returns its port.
pub async fn tls_health_server(cert: &rcgen::Certificate, key: &rcgen::KeyPair) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let body = r#"{"status":"pass"}"#;
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/health+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    port
}
