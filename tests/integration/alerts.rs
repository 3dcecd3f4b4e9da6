//! Alerts end to end: the real app, a real webhook receiver (that fails
//! when told to), a real SMTP listener speaking the protocol to lettre, on
//! SQLite and PostgreSQL.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use beacon::config::{self, Config, ConfigSource};
use beacon::domain::State;
use hmac::Mac;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::helpers::{eventually, Target, TestApp, TestDb};
use crate::store_test;

const SECRET: &str = "0123456789abcdef-webhook-secret";
const PUBLIC: &str = "https://status.example.com";

/// One request a [`Receiver`] got, and what it answered.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub raw: Vec<u8>,
    pub body: Value,
    pub answered: u16,
}

type Log = Arc<Mutex<Vec<Received>>>;

/// A webhook endpoint (also stands in for Slack): answers 500 to the next
/// `fail_next` requests, 200 after; keeps every request.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    fail_next: Arc<AtomicUsize>,
    got: Log,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let fail_next = Arc::new(AtomicUsize::new(0));
        let got: Log = Arc::default();
        let state = (fail_next.clone(), got.clone());
        async fn hook(
            axum::extract::State((fail_next, got)): axum::extract::State<(Arc<AtomicUsize>, Log)>,
            headers: HeaderMap,
            raw: axum::body::Bytes,
        ) -> StatusCode {
            let failing = fail_next
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            let answered = if failing {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::OK
            };
            got.lock().expect("lock").push(Received {
                headers,
                body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
                raw: raw.to_vec(),
                answered: answered.as_u16(),
            });
            answered
        }
        let app = Router::new().route("/hook", post(hook)).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url,
            fail_next,
            got,
        }
    }

    pub fn all(&self) -> Vec<Received> {
        self.got.lock().expect("lock").clone()
    }

    /// Bodies answered 200 whose `event` is `kind`.
    fn accepted(&self, kind: &str) -> Vec<Value> {
        self.all()
            .into_iter()
            .filter(|r| r.answered == 200 && r.body["event"] == kind)
            .map(|r| r.body)
            .collect()
    }
}

/// One email as an SMTP client handed it over.
#[derive(Debug, Clone, Default)]
pub struct Mail {
    /// `user:password` from AUTH PLAIN.
    pub auth: Option<String>,
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

/// A small SMTP server (RFC 5321: EHLO, AUTH PLAIN, MAIL, RCPT, DATA with
/// dot-unstuffing, RSET, QUIT), enough for a real client to deliver to.
pub struct SmtpServer {
    pub port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpServer {
    pub async fn start() -> SmtpServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind smtp");
        let port = listener.local_addr().expect("addr").port();
        let mails: Arc<Mutex<Vec<Mail>>> = Arc::default();
        let kept = mails.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    let _ = Self::session(stream, kept).await;
                });
            }
        });
        SmtpServer { port, mails }
    }

    async fn session(
        stream: tokio::net::TcpStream,
        mails: Arc<Mutex<Vec<Mail>>>,
    ) -> std::io::Result<()> {
        use base64::Engine;
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read);
        write.write_all(b"220 localhost ESMTP test\r\n").await?;
        let mut mail = Mail::default();
        let mut auth = None;
        loop {
            let mut line = String::new();
            if lines.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let command = line.trim_end().to_string();
            let upper = command.to_ascii_uppercase();
            let reply: &[u8] = if upper.starts_with("EHLO") {
                b"250-localhost\r\n250-AUTH PLAIN LOGIN\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
            } else if upper.starts_with("HELO") {
                b"250 localhost\r\n"
            } else if upper.starts_with("AUTH PLAIN") {
                let mut arg = command[10..].trim().to_string();
                if arg.is_empty() {
                    write.write_all(b"334 \r\n").await?;
                    let mut next = String::new();
                    lines.read_line(&mut next).await?;
                    arg = next.trim().to_string();
                }
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(arg)
                    .unwrap_or_default();
                let parts: Vec<String> = decoded
                    .split(|b| *b == 0)
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect();
                auth = parts.get(1..3).map(|p| p.join(":"));
                b"235 2.7.0 Authentication successful\r\n"
            } else if upper.starts_with("MAIL FROM:") {
                mail = Mail {
                    auth: auth.clone(),
                    from: command[10..].trim().to_string(),
                    ..Mail::default()
                };
                b"250 2.1.0 Ok\r\n"
            } else if upper.starts_with("RCPT TO:") {
                mail.to.push(command[8..].trim().to_string());
                b"250 2.1.5 Ok\r\n"
            } else if upper == "DATA" {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                loop {
                    let mut data = String::new();
                    if lines.read_line(&mut data).await? == 0 {
                        return Ok(());
                    }
                    if data == ".\r\n" {
                        break;
                    }
                    mail.data.push_str(data.strip_prefix('.').unwrap_or(&data));
                }
                mails.lock().expect("lock").push(std::mem::take(&mut mail));
                b"250 2.0.0 Ok: queued\r\n"
            } else if upper == "QUIT" {
                write.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            } else if upper == "RSET" || upper == "NOOP" {
                b"250 2.0.0 Ok\r\n"
            } else {
                b"502 5.5.2 Command not recognized\r\n"
            };
            write.write_all(reply).await?;
        }
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().expect("lock").clone()
    }
}

/// A config with a public URL (alerts link to it) and `${SMTP_*}` set.
pub fn alert_config(db: &TestDb, body: &str) -> Config {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ntitle = \"Test status\"\npublic_url = \"{PUBLIC}\"\n\
         [storage]\nurl = \"{}\"\n[monitor]\nflush_interval = \"50ms\"\n{body}",
        db.url
    );
    let env = |name: &str| match name {
        "SMTP_USERNAME" => Some("beacon".to_string()),
        "SMTP_PASSWORD" => Some("hunter2-smtp-password".to_string()),
        _ => None,
    };
    config::from_toml(&text, ConfigSource::Embedded, &env).expect("alert test config is valid")
}

/// One service on `target`'s `/switch`, changing state on every probe.
fn api_service(target: &Target) -> String {
    format!(
        "[[group]]\nname = \"Shop\"\n\
         [[service]]\nname = \"API\"\ngroup = \"Shop\"\nurl = \"{}\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n\
         failure_threshold = 1\nsuccess_threshold = 1\n",
        target.url("switch")
    )
}

fn webhook(receiver: &Receiver, extra: &str) -> String {
    format!(
        "[[notify]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\nsecret = \"{SECRET}\"\nretry_backoff = \"100ms\"\n{extra}",
        receiver.url
    )
}

/// [`api_service`] with the signed [`webhook`] channel.
fn api_with_webhook(db: &TestDb, target: &Target, receiver: &Receiver) -> Config {
    alert_config(
        db,
        &format!("{}{}", api_service(target), webhook(receiver, "")),
    )
}

async fn wait_for_state(app: &TestApp, state: State) {
    eventually(
        &format!("the service is {state}"),
        Duration::from_secs(15),
        || async { app.summaries().await.iter().all(|s| s.state == state) },
    )
    .await;
}

fn signature_of(raw: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(raw);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The JSON example under "### Webhook body" in the README.
fn readme_webhook_example() -> Value {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let section = readme
        .split("### Webhook body")
        .nth(1)
        .expect("the README has a Webhook body section");
    let json = section
        .split("```json")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a json block");
    serde_json::from_str(json).expect("the README's example is JSON")
}

/// Lets an hour pass for the outbox, without waiting for it: once the
/// app's own notifier has routed every event (so that this pass takes
/// none of its work, nor its metrics), one notifier pass runs on a clock
/// an hour ahead, past every retry backoff (at most 15 min) and every
/// claim's lease. A delivery it does not send, the app never would.
async fn an_hour_later(app: &TestApp, config: &Config) {
    eventually(
        "the app's notifier has routed every event",
        Duration::from_secs(15),
        || async {
            app.store
                .unrouted_alert_events(1)
                .await
                .expect("outbox")
                .is_empty()
        },
    )
    .await;
    let clock = beacon::clock::ManualClock::at(chrono::Utc::now() + chrono::Duration::hours(1));
    let notifier = beacon::notify::Notifier::new(
        app.store.clone(),
        Arc::new(config.notify.clone()),
        beacon::notify::Site::of(&config.server, PUBLIC),
        Arc::new(clock),
        Arc::new(beacon::metrics::Metrics::new()),
    )
    .expect("notifier");
    notifier.tick().await.expect("one notifier pass");
}

/// Waits until the store holds `more` results beyond `since` (counted
/// with [`results`]): that many probes have run and been written, with
/// any event they raised. (Not the summaries' 24 h counts: they come from
/// rollups, which leave maintenance out.)
async fn probed(app: &TestApp, since: i64, more: i64) {
    eventually(
        &format!("{more} more probe(s) are recorded"),
        Duration::from_secs(15),
        || async { results(app).await >= since + more },
    )
    .await;
}

async fn results(app: &TestApp) -> i64 {
    app.store
        .count_rows("check_results")
        .await
        .expect("count results")
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

store_test!(
    webhook_alerts_are_signed_retried_and_sent_once,
    webhook_retries
);
async fn webhook_retries(db: TestDb) {
    let target = Target::start().await;
    let receiver = Receiver::start().await;
    let config = api_with_webhook(&db, &target, &receiver);
    let app = TestApp::spawn(config.clone()).await;
    wait_for_state(&app, State::Up).await;
    assert!(receiver.all().is_empty(), "unknown → up is not an alert");

    // The receiver fails twice; the third attempt gets through.
    receiver.fail_next.store(2, Ordering::SeqCst);
    target.switch.store(500, Ordering::SeqCst);
    eventually(
        "the down alert arrives",
        Duration::from_secs(15),
        || async { receiver.accepted("service_down").len() == 1 },
    )
    .await;
    let tries = receiver.all();
    assert_eq!(
        tries.iter().map(|r| r.answered).collect::<Vec<_>>(),
        [500, 500, 200],
        "two failures, then success"
    );
    for r in &tries {
        assert_eq!(r.body, tries[0].body, "every attempt sends the same alert");
        let signature = r
            .headers
            .get("x-beacon-signature-256")
            .and_then(|v| v.to_str().ok());
        assert_eq!(signature, Some(signature_of(&r.raw).as_str()));
        assert_eq!(
            r.headers
                .get("x-beacon-event")
                .and_then(|v| v.to_str().ok()),
            Some("service_down")
        );
    }
    let down = &tries[2].body;
    assert_eq!(down["title"], "API is down");
    assert_eq!(down["url"], format!("{PUBLIC}/services/api"));
    assert_eq!(down["service"]["state"], "down");
    assert_eq!(down["service"]["previous_state"], "up");
    assert_eq!(down["service"]["group"], "Shop");
    assert_eq!(down["page"]["url"], PUBLIC);
    let text = down["text"].as_str().expect("text");
    assert!(text.starts_with("API is down since "), "{text}");
    assert!(text.ends_with(" UTC."), "{text}");
    assert!(
        !text.contains("127.0.0.1"),
        "the text holds no internal address: {text}"
    );

    // The README documents exactly this body.
    let documented = readme_webhook_example();
    let keys = |v: &Value| {
        let mut k: Vec<String> = v
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        k.sort();
        k
    };
    assert_eq!(keys(&documented), keys(down), "top-level keys");
    assert_eq!(keys(&documented["service"]), keys(&down["service"]));
    assert_eq!(keys(&documented["page"]), keys(&down["page"]));

    target.switch.store(200, Ordering::SeqCst);
    eventually(
        "the recovery alert arrives",
        Duration::from_secs(15),
        || async { receiver.accepted("service_recovered").len() == 1 },
    )
    .await;
    let back = &receiver.accepted("service_recovered")[0];
    assert_eq!(back["title"], "API has recovered");
    assert!(back["text"]
        .as_str()
        .is_some_and(|t| t.contains("operational again") && t.contains("after being down")));

    // Nothing is sent twice, however long we wait.
    an_hour_later(&app, &config).await;
    assert_eq!(receiver.accepted("service_down").len(), 1);
    assert_eq!(
        receiver.all().len(),
        4,
        "3 tries of the down alert, 1 recovery"
    );
    let deliveries = app.store.alert_deliveries().await.expect("deliveries");
    let summary: Vec<(&str, &str, i64)> = deliveries
        .iter()
        .map(|d| (d.kind.as_str(), d.status.as_str(), d.attempts))
        .collect();
    assert_eq!(
        summary,
        [
            ("service_down", "sent", 3),
            ("service_recovered", "sent", 1)
        ]
    );

    let (_, metrics) = app.get("/metrics").await.expect("metrics");
    let series = |outcome: &str| {
        metric(
            &metrics,
            &format!("beacon_alert_deliveries_total{{channel=\"hook\",outcome=\"{outcome}\"}}"),
        )
    };
    assert_eq!(series("sent"), Some(2.0));
    assert_eq!(series("retry"), Some(2.0));
    assert_eq!(series("failed"), Some(0.0));
    assert_eq!(
        metric(
            &metrics,
            "beacon_alert_deliveries_pending{channel=\"hook\"}"
        ),
        Some(0.0)
    );
    app.stop().await.expect("stop");
}

store_test!(
    an_alert_in_the_middle_of_its_retries_survives_a_restart,
    restart_mid_retry
);
async fn restart_mid_retry(db: TestDb) {
    let target = Target::start().await;
    let receiver = Receiver::start().await;
    let config = || api_with_webhook(&db, &target, &receiver);
    let app = TestApp::spawn(config()).await;
    wait_for_state(&app, State::Up).await;
    receiver.fail_next.store(usize::MAX, Ordering::SeqCst);
    target.switch.store(500, Ordering::SeqCst);
    eventually(
        "the alert has failed twice",
        Duration::from_secs(15),
        || async {
            app.store
                .alert_deliveries()
                .await
                .expect("deliveries")
                .iter()
                .any(|d| d.status == "pending" && d.attempts >= 2)
        },
    )
    .await;
    app.stop().await.expect("stop");
    assert!(receiver.accepted("service_down").is_empty());

    // A new process on the same store picks the retry up.
    receiver.fail_next.store(0, Ordering::SeqCst);
    let app = TestApp::spawn(config()).await;
    eventually(
        "the alert arrives after the restart",
        Duration::from_secs(15),
        || async { receiver.accepted("service_down").len() == 1 },
    )
    .await;
    an_hour_later(&app, &config()).await;
    assert_eq!(receiver.accepted("service_down").len(), 1, "sent once");
    let events = app.store.alert_events().await.expect("events");
    let kinds: Vec<&str> = events.iter().map(|e| e.event.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["service_down", "incident_opened"],
        "the restart raises no second event (the automatic incident's is for subscribers): {events:?}"
    );
    let deliveries = app.store.alert_deliveries().await.expect("deliveries");
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].status, "sent");
    assert!(deliveries[0].attempts >= 3);
    app.stop().await.expect("stop");
}

store_test!(
    maintenance_silences_alerts_until_it_ends,
    maintenance_silence
);
async fn maintenance_silence(db: TestDb) {
    let target = Target::start().await;
    let receiver = Receiver::start().await;
    let config = api_with_webhook(&db, &target, &receiver);
    let app = TestApp::spawn(config.clone()).await;
    wait_for_state(&app, State::Up).await;
    let now = chrono::Utc::now().timestamp_millis();
    let window = app
        .store
        .save_maintenance(
            None,
            &beacon::store::MaintenanceInput {
                title: "Database upgrade".into(),
                message: "Planned.".into(),
                starts_at: now - 1_000,
                ends_at: now + 3_600_000,
                services: vec!["api".into()],
            },
            now,
        )
        .await
        .expect("save window")
        .expect("created");
    wait_for_state(&app, State::Maintenance).await;
    let before = results(&app).await;
    target.switch.store(500, Ordering::SeqCst);
    // Failing probes during the window: several, and not one alert.
    probed(&app, before, 3).await;
    an_hour_later(&app, &config).await;
    // The window's own start (and, an hour on, its end) are events;
    // nothing about the service is.
    let about_the_service = || {
        receiver
            .all()
            .into_iter()
            .filter(|r| {
                !r.body["event"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("maintenance_"))
            })
            .collect::<Vec<_>>()
    };
    assert!(
        about_the_service().is_empty(),
        "nothing is sent during maintenance: {:?}",
        about_the_service()
    );
    assert_eq!(receiver.accepted("maintenance_started").len(), 1);
    // A change written by a replica that had not yet read the window (it
    // still thinks the service up): the stored state is maintenance, so
    // the compare-and-swap refuses it, and nothing of it is recorded.
    let service = app.summaries().await[0].id;
    let changes_before = app.store.count_rows("status_changes").await.expect("count");
    let events_before = app.store.count_rows("alert_events").await.expect("count");
    let stale = app
        .store
        .write_batch_checked(&beacon::store::Batch {
            changes: vec![beacon::store::StatusChange {
                service_id: service,
                changed_at: chrono::Utc::now().timestamp_millis(),
                from: State::Up,
                to: State::Down,
                reason: None,
            }],
            ..Default::default()
        })
        .await
        .expect("write a change");
    assert_eq!(stale, [service], "the stale change is refused");
    assert_eq!(
        app.store.count_rows("status_changes").await.expect("count"),
        changes_before
    );
    assert_eq!(
        app.store.count_rows("alert_events").await.expect("count"),
        events_before
    );
    assert!(about_the_service().is_empty());

    // The window ends with the service still failing: now it is told,
    // as down since the window ended, compared with before the window.
    app.store
        .delete_maintenance(window, chrono::Utc::now().timestamp_millis())
        .await
        .expect("delete window");
    eventually(
        "the down alert arrives",
        Duration::from_secs(15),
        || async { receiver.accepted("service_down").len() == 1 },
    )
    .await;
    let down = &receiver.accepted("service_down")[0];
    assert_eq!(down["service"]["previous_state"], "up");
    assert_eq!(about_the_service().len(), 1);
    app.stop().await.expect("stop");
}

store_test!(
    slack_and_email_carry_incidents_and_backup_failures,
    slack_and_email
);
async fn slack_and_email(db: TestDb) {
    let target = Target::start().await;
    let slack = Receiver::start().await;
    let smtp = SmtpServer::start().await;
    // Backups into a folder whose place a file takes: every run fails.
    let folder = db.dir.path().join("backups");
    std::fs::write(&folder, b"not a folder").expect("blocker");
    let config = alert_config(
        &db,
        &format!(
            "{}\
             [backup]\nschedule = \"*/2 * * * * *\"\ntarget = \"file://{}\"\n\
             [[notify]]\nname = \"chat\"\nkind = \"slack\"\nurl = \"{}\"\n\
             events = [\"incident_opened\", \"incident_resolved\", \"backup_failed\"]\n\
             [[notify]]\nname = \"mail\"\nkind = \"email\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\n\
             smtp_tls = \"none\"\nusername = \"${{SMTP_USERNAME}}\"\npassword = \"${{SMTP_PASSWORD}}\"\n\
             from = \"Beacon <beacon@example.com>\"\nto = [\"ops@example.com\", \"oncall@example.com\"]\n\
             groups = [\"Shop\"]\nevents = [\"incident_opened\"]\n",
            api_service(&target),
            folder.display(),
            slack.url,
            smtp.port
        ),
    );
    let app = TestApp::spawn(config.clone()).await;
    wait_for_state(&app, State::Up).await;
    let now = chrono::Utc::now().timestamp_millis();
    let id = app
        .store
        .create_incident(&beacon::store::NewIncident {
            title: "Slow checkouts".into(),
            impact: "minor".into(),
            status: "investigating".into(),
            message: "Payments take longer than usual.".into(),
            services: vec!["api".into()],
            at: now,
            notify: true,
        })
        .await
        .expect("incident");

    let slack_text = |kind: &str| {
        slack
            .all()
            .iter()
            .filter(|r| r.answered == 200)
            .filter_map(|r| r.body["text"].as_str().map(str::to_string))
            .filter(|t| match kind {
                "opened" => t.starts_with("*Incident: Slow checkouts*"),
                "resolved" => t.starts_with("*Resolved: Slow checkouts*"),
                _ => t.starts_with("*Backup "),
            })
            .collect::<Vec<_>>()
    };
    eventually(
        "Slack gets the incident",
        Duration::from_secs(15),
        || async { slack_text("opened").len() == 1 },
    )
    .await;
    let text = &slack_text("opened")[0];
    assert!(text.contains("Payments take longer than usual."), "{text}");
    assert!(text.contains("Affected: API."), "{text}");
    assert!(
        text.ends_with(&format!("{PUBLIC}/incidents/{id}")),
        "{text}"
    );

    eventually("the email arrives", Duration::from_secs(15), || async {
        smtp.mails().len() == 1
    })
    .await;
    let mail = &smtp.mails()[0];
    assert_eq!(
        mail.auth.as_deref(),
        Some("beacon:hunter2-smtp-password"),
        "credentials come from the environment"
    );
    assert_eq!(mail.from, "<beacon@example.com>");
    assert_eq!(mail.to, ["<ops@example.com>", "<oncall@example.com>"]);
    assert!(
        mail.data
            .contains("Subject: [Test status] Incident: Slow checkouts"),
        "{}",
        mail.data
    );
    assert!(mail.data.contains(&format!("{PUBLIC}/incidents/{id}")));

    eventually(
        "Slack gets the failed backup",
        Duration::from_secs(15),
        || async { !slack_text("backup").is_empty() },
    )
    .await;
    let text = &slack_text("backup")[0];
    assert!(text.contains("failed at step \"target\""), "{text}");

    app.store
        .add_incident_update(
            id,
            "resolved",
            "Payments are fast again.",
            chrono::Utc::now().timestamp_millis(),
            true,
        )
        .await
        .expect("resolve");
    eventually(
        "Slack gets the resolution",
        Duration::from_secs(15),
        || async { slack_text("resolved").len() == 1 },
    )
    .await;
    // The email channel wants openings only.
    an_hour_later(&app, &config).await;
    assert_eq!(smtp.mails().len(), 1);
    app.stop().await.expect("stop");
}

store_test!(
    an_expiring_certificate_alerts_once_across_restarts,
    certificate_once
);
async fn certificate_once(db: TestDb) {
    let port = crate::probes::tls_server(5).await;
    let receiver = Receiver::start().await;
    let config = || {
        alert_config(
            &db,
            &format!(
                "[[service]]\nname = \"Cert\"\nurl = \"tls://localhost:{port}\"\ntls_verify = false\ninterval = \"1s\"\n{}",
                webhook(&receiver, "events = [\"certificate_expiring\"]\n")
            ),
        )
    };
    let app = TestApp::spawn(config()).await;
    eventually(
        "the certificate alert arrives",
        Duration::from_secs(15),
        || async { receiver.accepted("certificate_expiring").len() == 1 },
    )
    .await;
    let alert = &receiver.accepted("certificate_expiring")[0];
    assert_eq!(alert["certificate"]["days_left"], 5);
    assert_eq!(alert["title"], "Cert: TLS certificate expires in 5 days");
    // Probed twice more, the certificate raises nothing new.
    probed(&app, results(&app).await, 2).await;
    app.stop().await.expect("stop");
    let app = TestApp::spawn(config()).await;
    // Nor twice after a restart, however long we wait.
    probed(&app, results(&app).await, 2).await;
    an_hour_later(&app, &config()).await;
    assert_eq!(
        receiver.accepted("certificate_expiring").len(),
        1,
        "one alert per certificate, however often it is probed"
    );
    let events = app.store.alert_events().await.expect("events");
    let expiring = events
        .iter()
        .filter(|e| e.event.kind == beacon::domain::EventKind::CertificateExpiring)
        .count();
    assert_eq!(expiring, 1, "one event: {events:?}");
    app.stop().await.expect("stop");
}

store_test!(alert_test_and_list_tell_ops_what_works, alert_cli);
async fn alert_cli(db: TestDb) {
    let target = Target::start().await;
    let receiver = Receiver::start().await;
    let closed = crate::helpers::closed_port().await;
    let body = format!(
        "{}{}[[notify]]\nname = \"dead\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{closed}/hook\"\nmax_attempts = 1\n",
        api_service(&target),
        webhook(&receiver, "")
    );
    let file = db.dir.path().join("beacon.toml");
    std::fs::write(
        &file,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ntitle = \"Test status\"\npublic_url = \"{PUBLIC}\"\n\
             [storage]\nurl = \"{}\"\n{body}",
            db.url
        ),
    )
    .expect("write config");
    let beacon = |args: &[&str]| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_beacon"));
        command.args(args).env("BEACON_CONFIG", &file);
        command
    };

    // `beacon alert test`: one channel works, one does not.
    let out = beacon(&["alert", "test"]).output().await.expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("hook (webhook): sent"), "{stdout}");
    assert!(stdout.contains("dead (webhook): FAILED: "), "{stdout}");
    assert!(stderr.contains("1 channel(s) failed"), "{stderr}");
    let test = &receiver.accepted("test")[0];
    assert_eq!(test["title"], "Test alert");
    assert!(receiver.all()[0]
        .headers
        .contains_key("x-beacon-signature-256"));
    let out = beacon(&["alert", "test", "--channel", "hook"])
        .output()
        .await
        .expect("run");
    assert_eq!(out.status.code(), Some(0));

    // A real alert, then `beacon alert list` shows both channels' fate.
    let app = TestApp::spawn(alert_config(&db, &body)).await;
    wait_for_state(&app, State::Up).await;
    target.switch.store(500, Ordering::SeqCst);
    eventually("both deliveries end", Duration::from_secs(15), || async {
        let d = app.store.alert_deliveries().await.expect("deliveries");
        d.len() == 2 && d.iter().all(|d| d.status != "pending")
    })
    .await;
    app.stop().await.expect("stop");
    let out = beacon(&["alert", "list"]).output().await.expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("service_down → hook: sent after 1 attempt(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("service_down → dead: failed after 1 attempt(s) (last error: gave up after 1 attempts: "),
        "{stdout}"
    );
}

store_test!(
    a_failed_backup_is_one_event_and_old_alerts_are_pruned,
    prune_alerts
);
async fn prune_alerts(db: TestDb) {
    let store = db.store().await;
    let day = 86_400_000;
    let now = chrono::Utc::now().timestamp_millis();
    let failed = |id: &str, at: i64| beacon::store::BackupRecord {
        id: id.into(),
        created_at: at,
        target: "file:///var/backups/beacon".into(),
        archive_key: format!("{id}.sqlite.gz"),
        size_bytes: None,
        sha256: None,
        status: "failed".into(),
        failed_step: Some("upload".into()),
        error: Some("disk full".into()),
        verified_at: None,
        updated_at: at,
    };
    for (id, at) in [
        ("old-sent", now - 40 * day),
        ("old-unrouted", now - 40 * day),
        ("new", now - day),
    ] {
        store
            .save_backup_record(&failed(id, at))
            .await
            .expect("save");
    }
    // Saved again (a retried record write): still one event per backup and step.
    store
        .save_backup_record(&failed("new", now - day))
        .await
        .expect("save again");
    let events = store.alert_events().await.expect("events");
    let ids: Vec<&str> = events
        .iter()
        .filter_map(|e| e.event.backup.as_ref().map(|b| b.id.as_str()))
        .collect();
    assert_eq!(ids, ["old-sent", "old-unrouted", "new"]);
    assert!(events
        .iter()
        .all(|e| e.event.kind == beacon::domain::EventKind::BackupFailed));
    for e in [&events[0], &events[2]] {
        store
            .route_alert_event(e.id, &[("hook".into(), e.event.kind)], e.created_at)
            .await
            .expect("route");
    }

    // A month on: the routed old event goes with its delivery; the one
    // never routed (nothing was sent of it yet) and the new one stay.
    let pruned = store.prune(now, 7 * day).await.expect("prune");
    assert_eq!(pruned.alert_events, 1);
    let left: Vec<i64> = store
        .alert_events()
        .await
        .expect("events")
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(left, [events[1].id, events[2].id]);
    let deliveries = store.alert_deliveries().await.expect("deliveries");
    assert_eq!(
        deliveries.iter().map(|d| d.event_id).collect::<Vec<_>>(),
        [events[2].id]
    );
}
