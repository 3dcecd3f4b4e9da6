//! `/admin`: the incident console, for the people who post updates (often
//! not shell users). Server-rendered like the public page, no JavaScript.
//!
//! Sign-in takes an `[admin] tokens` token once; the browser then holds a
//! session cookie (`HttpOnly`, `SameSite=Strict`, `Secure` when the page
//! is served over HTTPS, 8 hours). Sessions live in the store, as a hash
//! of their id, so every replica knows them. Every form carries the
//! session's CSRF token, compared in constant time; a missing or wrong one
//! is refused with 403 and writes nothing. Failed sign-ins are limited to
//! 5 per client per 15 minutes (then 429) and logged. What a form may hold
//! is `domain::input`'s, exactly as the admin API and the CLI.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use askama::Template;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use super::attempts::{client_of, Attempts};
use super::AppState;
use crate::clock::ms_to_datetime;
use crate::domain::input::{
    incident_update, maintenance_input, new_incident, IncidentForm, MaintenanceForm, UpdateForm,
};
use crate::domain::state::{INCIDENT_IMPACTS, INCIDENT_STATUSES};
use crate::notify::subscribers::{hash_token, random_hex};

const COOKIE: &str = "beacon_console";
const SESSION_MS: i64 = 8 * 3_600_000;
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The console's shared state: failed sign-ins per client.
pub struct Console {
    pub signins: Attempts,
}

impl Default for Console {
    fn default() -> Self {
        Console {
            signins: Attempts::new(5, Duration::from_secs(15 * 60)),
        }
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(dashboard))
        .route("/admin/", get(|| async { Redirect::to("/admin") }))
        .route("/admin/login", get(login_page).post(login))
        .route("/admin/logout", axum::routing::post(logout))
        .route("/admin/incidents", axum::routing::post(open_incident))
        .route(
            "/admin/incidents/{id}",
            get(incident_page).post(update_incident),
        )
        .route("/admin/maintenance", axum::routing::post(schedule))
        .route(
            "/admin/maintenance/{id}",
            get(maintenance_page).post(edit_maintenance),
        )
}

/// A signed-in request: its CSRF token.
struct Session {
    csrf: String,
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

async fn session(app: &AppState, headers: &HeaderMap) -> Option<Session> {
    let id = cookie_value(headers)?;
    if id.len() != 64 {
        return None;
    }
    let csrf = app
        .store
        .console_session(&hash_token(&id), app.clock.now_ms())
        .await
        .ok()??;
    Some(Session { csrf })
}

fn equal(a: &str, b: &str) -> bool {
    crate::domain::secret::equal(a.as_bytes(), b.as_bytes())
}

fn secure(app: &AppState, headers: &HeaderMap) -> bool {
    app.public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"))
        || headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

fn page(status: StatusCode, rendered: Result<String, askama::Error>) -> Response {
    match rendered {
        Ok(body) => (
            status,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
                (header::X_FRAME_OPTIONS, "DENY"),
                (header::REFERRER_POLICY, "no-referrer"),
            ],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a console page failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong\n").into_response()
        }
    }
}

fn to_login() -> Response {
    Redirect::to("/admin/login").into_response()
}

fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "This form has expired or did not come from the console: go back, reload the page and try again.\n",
    )
        .into_response()
}

async fn form_of(request: Request) -> HashMap<String, Vec<String>> {
    let (parts, body) = request.into_parts();
    let bytes = crate::web::capped::read(&parts.headers, body, MAX_FORM_BYTES)
        .await
        .unwrap_or_default();
    let mut fields: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(&bytes) {
        fields
            .entry(k.into_owned())
            .or_default()
            .push(v.into_owned());
    }
    fields
}

fn field(fields: &HashMap<String, Vec<String>>, name: &str) -> String {
    fields
        .get(name)
        .and_then(|v| v.first())
        .cloned()
        .unwrap_or_default()
}

/// A signed-in POST with a good CSRF token: its session's CSRF token (for
/// the page it answers with) and its fields. `Err`: the response (to sign
/// in, or 403).
async fn checked(
    app: &AppState,
    request: Request,
) -> Result<(String, HashMap<String, Vec<String>>), Response> {
    let Some(session) = session(app, request.headers()).await else {
        return Err(to_login());
    };
    let fields = form_of(request).await;
    if !equal(&field(&fields, "csrf"), &session.csrf) {
        tracing::warn!("console form refused: missing or wrong CSRF token");
        return Err(forbidden());
    }
    Ok((session.csrf, fields))
}

#[derive(Template)]
#[template(path = "console_login.html")]
struct LoginPage {
    site: Arc<super::Site>,
    title: String,
    error: Option<String>,
}

async fn login_page(State(app): State<AppState>) -> Response {
    let rendered = LoginPage {
        site: app.site.clone(),
        title: app.snapshot.borrow().title.clone(),
        error: None,
    }
    .render();
    page(StatusCode::OK, rendered)
}

async fn login(State(app): State<AppState>, request: Request) -> Response {
    let client = client_of(&app.clients, &request);
    let now = Instant::now();
    let login_error = |status: StatusCode, error: &str| {
        let rendered = LoginPage {
            site: app.site.clone(),
            title: app.snapshot.borrow().title.clone(),
            error: Some(error.into()),
        }
        .render();
        page(status, rendered)
    };
    // Counted before the token is looked at (and given back when it is
    // right): sign-ins sent at once cannot all slip under the limit.
    if let Err(wait) = app.console.signins.take(client, now) {
        app.metrics.console_signin_failures.inc();
        tracing::warn!(%client, "console sign-in refused: too many failed attempts from this client");
        let mut response = login_error(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed sign-ins from your address. Try again later.",
        );
        if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return response;
    }
    let https = secure(&app, request.headers());
    let fields = form_of(request).await;
    let given = field(&fields, "token");
    let known = app
        .admin_tokens
        .iter()
        .fold(false, |found, t| equal(t, given.trim()) | found);
    if given.is_empty() || !known {
        app.metrics.console_signin_failures.inc();
        tracing::warn!(%client, "console sign-in failed: wrong admin token");
        return login_error(
            StatusCode::UNAUTHORIZED,
            "That token is not an admin token.",
        );
    }
    app.console.signins.refund(client, now);
    let id = random_hex(32);
    let at = app.clock.now_ms();
    if let Err(e) = app
        .store
        .create_console_session(&hash_token(&id), &random_hex(32), at, at + SESSION_MS)
        .await
    {
        tracing::error!(error = %e, "opening a console session failed");
        return login_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Signing in failed just now; try again shortly.",
        );
    }
    tracing::info!(%client, "console sign-in");
    let cookie = format!(
        "{COOKIE}={id}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_MS / 1000,
        if https { "; Secure" } else { "" }
    );
    let mut response = Redirect::to("/admin").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

async fn logout(State(app): State<AppState>, request: Request) -> Response {
    let id = cookie_value(request.headers());
    if let Err(r) = checked(&app, request).await {
        return r;
    }
    if let Some(id) = id {
        let _ = app.store.end_console_session(&hash_token(&id)).await;
    }
    let mut response = to_login();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "beacon_console=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    response
}

struct Row {
    id: i64,
    title: String,
    detail: String,
}

struct Option_ {
    value: String,
    label: String,
    selected: bool,
}

fn options(values: &[&str], selected: &str) -> Vec<Option_> {
    values
        .iter()
        .map(|v| Option_ {
            value: v.to_string(),
            label: v.to_string(),
            selected: *v == selected,
        })
        .collect()
}

/// Every active service, for the forms (the console is for operators:
/// private services are listed too).
async fn service_options(app: &AppState, selected: &[String]) -> Vec<Option_> {
    options_of(&listed_services(app).await, selected)
}

/// Every active service as (slug, how the console names it), read once
/// per page.
async fn listed_services(app: &AppState) -> Vec<(String, String)> {
    app.store
        .service_summaries(app.clock.now_ms())
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|s| {
            let label = if s.public {
                s.name
            } else {
                format!("{} (not public)", s.name)
            };
            (s.slug, label)
        })
        .collect()
}

fn options_of(listed: &[(String, String)], selected: &[String]) -> Vec<Option_> {
    listed
        .iter()
        .map(|(slug, label)| Option_ {
            selected: selected.contains(slug),
            label: label.clone(),
            value: slug.clone(),
        })
        .collect()
}

fn when(ms: i64) -> String {
    ms_to_datetime(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// `datetime-local` input value, in UTC.
fn local_input(ms: i64) -> String {
    ms_to_datetime(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M").to_string())
        .unwrap_or_default()
}

/// A `datetime-local` value (taken as UTC) or RFC 3339, as RFC 3339.
fn rfc3339(value: &str) -> String {
    let v = value.trim();
    for format in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(v, format) {
            return t.and_utc().to_rfc3339();
        }
    }
    v.to_string()
}

#[derive(Template)]
#[template(path = "console.html")]
struct Dashboard {
    site: Arc<super::Site>,
    title: String,
    csrf: String,
    error: Option<String>,
    open: Vec<Row>,
    windows: Vec<Row>,
    services: Vec<Option_>,
    impacts: Vec<Option_>,
    statuses: Vec<Option_>,
    form_title: String,
    form_message: String,
    preview: Option<Preview>,
    /// The maintenance form, refilled only when it was the one refused.
    m_title: String,
    m_message: String,
    m_services: Vec<Option_>,
    starts: String,
    ends: String,
}

/// Which of the dashboard's two forms a refused or previewed submission
/// fills again (the other is shown empty).
#[derive(Clone, Copy, PartialEq)]
enum Form {
    Incident,
    Maintenance,
}

/// How an update will read on the page.
struct Preview {
    status: String,
    message: String,
}

async fn dashboard_page(
    app: &AppState,
    csrf: String,
    status: StatusCode,
    error: Option<String>,
    filled: Option<(Form, &HashMap<String, Vec<String>>)>,
    preview: Option<Preview>,
) -> Response {
    let now = app.clock.now_ms();
    let of = |form: Form| filled.filter(|(f, _)| *f == form).map(|(_, fields)| fields);
    let (incident, maintenance) = (of(Form::Incident), of(Form::Maintenance));
    let open = app
        .store
        .unresolved_incidents()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|i| Row {
            id: i.id,
            detail: format!(
                "{} · {} impact · since {}{}",
                i.status,
                i.impact,
                when(i.started_at),
                if i.automatic { " · automatic" } else { "" }
            ),
            title: i.title,
        })
        .collect();
    let windows = app
        .store
        .current_maintenances(now)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|m| Row {
            id: m.id,
            detail: format!("{} – {}", when(m.starts_at), when(m.ends_at)),
            title: m.title,
        })
        .collect();
    let get = |fields: Option<&HashMap<String, Vec<String>>>, name: &str| {
        fields.map(|f| field(f, name)).unwrap_or_default()
    };
    let selected = |fields: Option<&HashMap<String, Vec<String>>>| -> Vec<String> {
        fields
            .and_then(|f| f.get("services").cloned())
            .unwrap_or_default()
    };
    let impact = incident.map_or("minor".to_string(), |f| field(f, "impact"));
    let status_value = incident.map_or("investigating".to_string(), |f| field(f, "status"));
    let listed = listed_services(app).await;
    let services = options_of(&listed, &selected(incident));
    let m_services = options_of(&listed, &selected(maintenance));
    let title = app.snapshot.borrow().title.clone();
    let rendered = Dashboard {
        site: app.site.clone(),
        title,
        csrf,
        error,
        open,
        windows,
        services,
        impacts: options(INCIDENT_IMPACTS, &impact),
        statuses: options(INCIDENT_STATUSES, &status_value),
        form_title: get(incident, "title"),
        form_message: get(incident, "message"),
        preview,
        m_title: get(maintenance, "title"),
        m_message: get(maintenance, "message"),
        m_services,
        starts: maintenance.map_or_else(|| local_input(now + 3_600_000), |f| field(f, "starts_at")),
        ends: maintenance.map_or_else(|| local_input(now + 2 * 3_600_000), |f| field(f, "ends_at")),
    }
    .render();
    page(status, rendered)
}

async fn dashboard(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let Some(s) = session(&app, &headers).await else {
        return to_login();
    };
    dashboard_page(&app, s.csrf, StatusCode::OK, None, None, None).await
}

/// A form refused (422): the page again, filled as sent, with why.
async fn refused(
    app: &AppState,
    csrf: String,
    error: impl std::fmt::Display,
    form: Form,
    fields: &HashMap<String, Vec<String>>,
) -> Response {
    let error = Some(error.to_string());
    dashboard_page(
        app,
        csrf,
        StatusCode::UNPROCESSABLE_ENTITY,
        error,
        Some((form, fields)),
        None,
    )
    .await
}

async fn incident_refused(
    app: &AppState,
    id: i64,
    csrf: String,
    error: impl std::fmt::Display,
    fields: &HashMap<String, Vec<String>>,
) -> Response {
    let error = Some(error.to_string());
    incident_view(
        app,
        id,
        csrf,
        StatusCode::UNPROCESSABLE_ENTITY,
        error,
        Some(fields),
        None,
    )
    .await
}

async fn maintenance_refused(
    app: &AppState,
    id: i64,
    csrf: String,
    error: impl std::fmt::Display,
    fields: Option<&HashMap<String, Vec<String>>>,
) -> Response {
    let error = Some(error.to_string());
    maintenance_view(
        app,
        id,
        csrf,
        StatusCode::UNPROCESSABLE_ENTITY,
        error,
        fields,
    )
    .await
}

fn notify_of(fields: &HashMap<String, Vec<String>>) -> bool {
    field(fields, "notify") == "yes"
}

async fn open_incident(State(app): State<AppState>, request: Request) -> Response {
    let (csrf, fields) = match checked(&app, request).await {
        Ok(checked) => checked,
        Err(r) => return r,
    };
    let form = IncidentForm {
        title: field(&fields, "title"),
        impact: field(&fields, "impact"),
        status: field(&fields, "status"),
        message: field(&fields, "message"),
        services: fields.get("services").cloned().unwrap_or_default(),
        notify: notify_of(&fields),
    };
    let new = match new_incident(form, app.clock.now_ms()) {
        Ok(n) => n,
        Err(e) => return refused(&app, csrf, e, Form::Incident, &fields).await,
    };
    if field(&fields, "action") == "preview" {
        let preview = Preview {
            status: new.status.clone(),
            message: new.message.clone(),
        };
        return dashboard_page(
            &app,
            csrf,
            StatusCode::OK,
            None,
            Some((Form::Incident, &fields)),
            Some(preview),
        )
        .await;
    }
    match app.store.create_incident(&new).await {
        Ok(id) => {
            app.changed.notify_one();
            Redirect::to(&format!("/admin/incidents/{id}")).into_response()
        }
        Err(e) => refused(&app, csrf, e, Form::Incident, &fields).await,
    }
}

#[derive(Template)]
#[template(path = "console_incident.html")]
struct IncidentPage {
    site: Arc<super::Site>,
    title: String,
    csrf: String,
    error: Option<String>,
    incident: crate::store::Incident,
    /// Its services as the console names them (a removed one by slug).
    service_names: String,
    updates: Vec<(String, String, String)>,
    statuses: Vec<Option_>,
    message: String,
    preview: Option<Preview>,
}

async fn incident_view(
    app: &AppState,
    id: i64,
    csrf: String,
    status: StatusCode,
    error: Option<String>,
    filled: Option<&HashMap<String, Vec<String>>>,
    preview: Option<Preview>,
) -> Response {
    let incident = match app.store.incident(id).await {
        Ok(Some(i)) => i,
        _ => return (StatusCode::NOT_FOUND, "No such incident\n").into_response(),
    };
    let updates = incident
        .updates
        .iter()
        .rev()
        .map(|u| (u.status.clone(), u.message.clone(), when(u.created_at)))
        .collect();
    let chosen = filled.map_or_else(|| incident.status.clone(), |f| field(f, "status"));
    let listed: HashMap<String, String> = listed_services(app).await.into_iter().collect();
    let service_names = incident
        .services
        .iter()
        .map(|slug| listed.get(slug).unwrap_or(slug).as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let rendered = IncidentPage {
        service_names,
        site: app.site.clone(),
        title: app.snapshot.borrow().title.clone(),
        csrf,
        error,
        statuses: options(INCIDENT_STATUSES, &chosen),
        message: filled.map(|f| field(f, "message")).unwrap_or_default(),
        updates,
        incident,
        preview,
    }
    .render();
    page(status, rendered)
}

async fn incident_page(
    State(app): State<AppState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Response {
    let Some(s) = session(&app, &headers).await else {
        return to_login();
    };
    incident_view(&app, id, s.csrf, StatusCode::OK, None, None, None).await
}

async fn update_incident(
    State(app): State<AppState>,
    Path(id): Path<i64>,
    request: Request,
) -> Response {
    let (csrf, fields) = match checked(&app, request).await {
        Ok(checked) => checked,
        Err(r) => return r,
    };
    let update = match incident_update(UpdateForm {
        status: field(&fields, "status"),
        message: field(&fields, "message"),
        notify: notify_of(&fields),
    }) {
        Ok(u) => u,
        Err(e) => return incident_refused(&app, id, csrf, e, &fields).await,
    };
    if field(&fields, "action") == "preview" {
        let preview = Preview {
            status: update.status.clone(),
            message: update.message.clone(),
        };
        return incident_view(
            &app,
            id,
            csrf,
            StatusCode::OK,
            None,
            Some(&fields),
            Some(preview),
        )
        .await;
    }
    match app
        .store
        .add_incident_update(
            id,
            &update.status,
            &update.message,
            app.clock.now_ms(),
            update.notify,
        )
        .await
    {
        Ok(true) => {
            app.changed.notify_one();
            Redirect::to(&format!("/admin/incidents/{id}")).into_response()
        }
        Ok(false) => (StatusCode::NOT_FOUND, "No such incident\n").into_response(),
        Err(e) => incident_refused(&app, id, csrf, e, &fields).await,
    }
}

fn maintenance_form(fields: &HashMap<String, Vec<String>>) -> MaintenanceForm {
    MaintenanceForm {
        title: Some(field(fields, "title")),
        message: Some(field(fields, "message")),
        starts_at: Some(rfc3339(&field(fields, "starts_at"))),
        ends_at: Some(rfc3339(&field(fields, "ends_at"))),
        services: Some(fields.get("services").cloned().unwrap_or_default()),
    }
}

async fn schedule(State(app): State<AppState>, request: Request) -> Response {
    let (csrf, fields) = match checked(&app, request).await {
        Ok(checked) => checked,
        Err(r) => return r,
    };
    let input = match maintenance_input(maintenance_form(&fields), None) {
        Ok(i) => i,
        Err(e) => return refused(&app, csrf, e, Form::Maintenance, &fields).await,
    };
    match app
        .store
        .save_maintenance(None, &input, app.clock.now_ms())
        .await
    {
        Ok(Some(id)) => {
            app.changed.notify_one();
            Redirect::to(&format!("/admin/maintenance/{id}")).into_response()
        }
        Ok(None) => (StatusCode::NOT_FOUND, "No such window\n").into_response(),
        Err(e) => refused(&app, csrf, e, Form::Maintenance, &fields).await,
    }
}

#[derive(Template)]
#[template(path = "console_maintenance.html")]
struct MaintenancePage {
    site: Arc<super::Site>,
    title: String,
    csrf: String,
    error: Option<String>,
    id: i64,
    form_title: String,
    form_message: String,
    starts: String,
    ends: String,
    services: Vec<Option_>,
    window: String,
}

async fn maintenance_view(
    app: &AppState,
    id: i64,
    csrf: String,
    status: StatusCode,
    error: Option<String>,
    filled: Option<&HashMap<String, Vec<String>>>,
) -> Response {
    let m = match app.store.maintenance(id).await {
        Ok(Some(m)) => m,
        _ => return (StatusCode::NOT_FOUND, "No such maintenance window\n").into_response(),
    };
    let get = |name: &str, current: String| filled.map_or(current, |f| field(f, name));
    let selected = filled
        .and_then(|f| f.get("services").cloned())
        .unwrap_or_else(|| m.services.clone());
    let services = service_options(app, &selected).await;
    let title = app.snapshot.borrow().title.clone();
    let rendered = MaintenancePage {
        site: app.site.clone(),
        title,
        csrf,
        error,
        id,
        form_title: get("title", m.title.clone()),
        form_message: get("message", m.message.clone()),
        starts: get("starts_at", local_input(m.starts_at)),
        ends: get("ends_at", local_input(m.ends_at)),
        services,
        window: format!("{} – {}", when(m.starts_at), when(m.ends_at)),
    }
    .render();
    page(status, rendered)
}

async fn maintenance_page(
    State(app): State<AppState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Response {
    let Some(s) = session(&app, &headers).await else {
        return to_login();
    };
    maintenance_view(&app, id, s.csrf, StatusCode::OK, None, None).await
}

async fn edit_maintenance(
    State(app): State<AppState>,
    Path(id): Path<i64>,
    request: Request,
) -> Response {
    let (csrf, fields) = match checked(&app, request).await {
        Ok(checked) => checked,
        Err(r) => return r,
    };
    let now = app.clock.now_ms();
    if field(&fields, "action") == "cancel" {
        // A window not started is withdrawn; one under way ends now.
        let current = match app.store.maintenance(id).await {
            Ok(Some(m)) => m,
            _ => return (StatusCode::NOT_FOUND, "No such maintenance window\n").into_response(),
        };
        let done = if current.starts_at > now {
            app.store.delete_maintenance(id, now).await.map(|_| ())
        } else {
            let mut input = current.input();
            input.ends_at = now.max(input.starts_at + 1);
            app.store
                .save_maintenance(Some(id), &input, now)
                .await
                .map(|_| ())
        };
        return match done {
            Ok(()) => {
                app.changed.notify_one();
                Redirect::to("/admin").into_response()
            }
            Err(e) => maintenance_refused(&app, id, csrf, e, None).await,
        };
    }
    let current = match app.store.maintenance(id).await {
        Ok(Some(m)) => m.input(),
        _ => return (StatusCode::NOT_FOUND, "No such maintenance window\n").into_response(),
    };
    let input = match maintenance_input(maintenance_form(&fields), Some(&current)) {
        Ok(i) => i,
        Err(e) => return maintenance_refused(&app, id, csrf, e, Some(&fields)).await,
    };
    match app.store.save_maintenance(Some(id), &input, now).await {
        Ok(_) => {
            app.changed.notify_one();
            Redirect::to(&format!("/admin/maintenance/{id}")).into_response()
        }
        Err(e) => maintenance_refused(&app, id, csrf, e, Some(&fields)).await,
    }
}
