//! The admin JSON API under `/admin/api/`, behind bearer tokens from
//! `[admin] tokens` (compared in constant time, never logged). Every write
//! is one transaction: a request that fails writes nothing.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, MethodRouter};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::AppState;
use crate::clock::ms_to_datetime;
use crate::store::{Incident, IncidentPatch, Maintenance, MaintenanceInput, NewIncident};

use crate::domain::{INCIDENT_IMPACTS as IMPACTS, INCIDENT_STATUSES as STATUSES};

/// Request bodies over this many bytes are refused with 413. A postmortem
/// (100,000 bytes at most) fits even written all in `\uXXXX` escapes.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub fn routes(state: AppState) -> Router<AppState> {
    // Every answer of the admin API is its JSON, a wrong method and an
    // unknown path under /admin/api/ included.
    let json_405 = |methods: MethodRouter<AppState>| methods.fallback(method_not_allowed);
    Router::new()
        .route("/admin/api/incidents", json_405(get(list).post(create)))
        .route(
            "/admin/api/incidents/{id}",
            json_405(get(show).patch(edit).delete(remove)),
        )
        .route(
            "/admin/api/incidents/{id}/updates",
            json_405(post(add_update)),
        )
        .route(
            "/admin/api/maintenances",
            json_405(get(list_maintenances).post(create_maintenance)),
        )
        .route(
            "/admin/api/maintenances/{id}",
            json_405(
                get(show_maintenance)
                    .patch(edit_maintenance)
                    .delete(remove_maintenance),
            ),
        )
        .route("/admin/api/{*rest}", any(no_such_path))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(state, require_token))
}

async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({"error": "this method is not allowed here", "field": null})),
    )
        .into_response()
}

async fn no_such_path() -> ApiError {
    ApiError::NotFound("no such admin API path".into())
}

/// A JSON body, parsed so that every refusal is the API's JSON error
/// naming the field: 413 over [`MAX_BODY_BYTES`], 400 otherwise.
pub(crate) struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .is_some_and(|v| v == "application/json" || v.ends_with("+json"));
        if !json {
            return Err(ApiError::BadRequest {
                field: None,
                message: "expected a JSON body with Content-Type: application/json".into(),
            });
        }
        let bytes = Bytes::from_request(request, state).await?;
        parse_body(&bytes).map(Body)
    }
}

/// Reads an admin request body: 400 naming the field (`title`,
/// `services[2]`) or, for a body that is not JSON, the line and column.
pub(crate) fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut reader = serde_json::Deserializer::from_slice(bytes);
    let parsed: Result<T, _> = serde_path_to_error::deserialize(&mut reader);
    let value = parsed.map_err(|e| {
        let inner = e.inner();
        if !inner.is_data() {
            return ApiError::BadRequest {
                field: None,
                message: format!("the body is not JSON: {inner}"),
            };
        }
        let path = e.path().to_string();
        let text = inner.to_string();
        // A missing field is an error of the object around it: serde names
        // the field between backticks. (An unknown one is in the path.)
        let missing = text
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
            .map(|name| match path.as_str() {
                "." => name.to_string(),
                outer => format!("{outer}.{name}"),
            });
        let field = missing.or_else(|| (path != ".").then_some(path));
        let message = match &field {
            Some(field) => format!("{field}: {text}"),
            None => text,
        };
        ApiError::BadRequest { field, message }
    })?;
    reader.end().map_err(|e| ApiError::BadRequest {
        field: None,
        message: format!("the body is not one JSON value: {e}"),
    })?;
    Ok(value)
}

/// An incident or maintenance id from the path: plain digits (no sign,
/// no spaces), else 400 naming `id`.
pub(crate) struct Id(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest {
                field: Some("id".into()),
                message: format!("id: {}", e.body_text()),
            })?;
        parse_id(&raw).map(Id)
    }
}

pub(crate) fn parse_id(raw: &str) -> Result<i64, ApiError> {
    let refuse = |why: &str| ApiError::BadRequest {
        field: Some("id".into()),
        message: format!("id: \"{}\" {why}", short(raw, 40)),
    };
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refuse("is not an id: ids are plain digits, like 42"));
    }
    raw.parse().map_err(|_| refuse("is not an id: too large"))
}

/// `text` cut to `max` characters, marked with "…" when cut.
fn short(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(max).collect::<String>())
    }
}

/// Equal in time whatever the contents, so a token cannot be guessed byte
/// by byte from response times.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `Authorization: Bearer` carries one of `tokens`. Every token is
/// compared, so timing does not tell which one came close.
pub(super) fn bearer_allowed(headers: &axum::http::HeaderMap, tokens: &[String]) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
    else {
        return false;
    };
    tokens.iter().fold(false, |found, token| {
        constant_time_eq(token.as_bytes(), given.as_bytes()) | found
    })
}

async fn require_token(State(app): State<AppState>, request: Request, next: Next) -> Response {
    if !bearer_allowed(request.headers(), &app.admin_tokens) {
        return ApiError::Unauthorized.into_response();
    }
    let writes = request.method() != axum::http::Method::GET;
    let response = next.run(request).await;
    if writes && response.status().is_success() {
        // The page shows the change within a second, not at the next timer.
        app.changed.notify_one();
    }
    response
}

fn time(ms: i64) -> Value {
    ms_to_datetime(ms).map_or(Value::Null, |t| json!(t.to_rfc3339()))
}

/// An incident as the admin API shows it (outputs and all).
pub fn incident_json(i: &Incident) -> Value {
    json!({
        "id": i.id,
        "title": i.title,
        "impact": i.impact,
        "status": i.status,
        "automatic": i.automatic,
        "postmortem": i.postmortem,
        "started_at": time(i.started_at),
        "updated_at": time(i.updated_at),
        "resolved_at": i.resolved_at.map_or(Value::Null, time),
        "services": i.services,
        "updates": i.updates.iter().map(|u| json!({
            "status": u.status,
            "message": u.message,
            "created_at": time(u.created_at),
        })).collect::<Vec<_>>(),
    })
}

fn one_of(field: &'static str, value: &str, allowed: &[&str]) -> Result<(), ApiError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!("\"{value}\" is not one of {}", allowed.join(", ")),
        ))
    }
}

/// Longest title, in bytes (after cleaning and trimming).
pub const MAX_TITLE_BYTES: usize = 200;
/// Longest message of an incident update or a maintenance window.
pub const MAX_MESSAGE_BYTES: usize = 10_000;
/// Longest postmortem.
pub const MAX_POSTMORTEM_BYTES: usize = 100_000;

/// The one rule for text written by hand, admin API and CLI alike:
/// - a NUL is refused (PostgreSQL cannot store one; SQLite would, so both
///   stores answer the same);
/// - the other characters XML 1.0 forbids (C0 controls but tab, LF and CR;
///   U+FFFE, U+FFFF) are removed: the text reaches the Atom and RSS feeds;
/// - what is left must not be blank, and at most `max` bytes.
///
/// Returns the text to store.
pub(crate) fn clean_text(field: &'static str, value: &str, max: usize) -> Result<String, ApiError> {
    if value.contains('\0') {
        return Err(ApiError::invalid(
            field,
            "must not contain a NUL character (U+0000)",
        ));
    }
    let cleaned: String = value
        .chars()
        .filter(|c| !super::feeds::xml_forbidden(*c))
        .collect();
    if cleaned.trim().is_empty() {
        Err(ApiError::invalid(field, "must not be empty"))
    } else if cleaned.len() > max {
        Err(ApiError::invalid(
            field,
            format!("is longer than {max} bytes"),
        ))
    } else {
        Ok(cleaned)
    }
}

/// A title: [`clean_text`], trimmed.
pub(crate) fn clean_title(value: &str) -> Result<String, ApiError> {
    clean_text("title", value.trim(), MAX_TITLE_BYTES).map(|t| t.trim().to_string())
}

/// Service slugs as given; one with a NUL names no service (and
/// PostgreSQL could not even look it up).
fn clean_slugs(services: Vec<String>) -> Result<Vec<String>, ApiError> {
    if services.iter().any(|s| s.contains('\0')) {
        return Err(ApiError::invalid(
            "services",
            "a slug must not contain a NUL character (U+0000)",
        ));
    }
    Ok(services)
}

/// `POST /admin/api/incidents`, and `beacon incident open`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateIncident {
    pub title: String,
    pub impact: String,
    #[serde(default = "investigating")]
    pub status: String,
    pub message: String,
    #[serde(default)]
    pub services: Vec<String>,
}

fn investigating() -> String {
    "investigating".into()
}

/// Checks a new incident; the admin API and the CLI both call this.
pub(crate) fn new_incident(body: CreateIncident, at: i64) -> Result<NewIncident, ApiError> {
    let title = clean_title(&body.title)?;
    one_of("impact", &body.impact, IMPACTS)?;
    one_of("status", &body.status, STATUSES)?;
    let message = clean_text("message", &body.message, MAX_MESSAGE_BYTES)?;
    Ok(NewIncident {
        title,
        impact: body.impact,
        status: body.status,
        message,
        services: clean_slugs(body.services)?,
        at,
    })
}

async fn create(
    State(app): State<AppState>,
    Body(body): Body<CreateIncident>,
) -> Result<Response, ApiError> {
    let id = app
        .store
        .create_incident(&new_incident(body, app.clock.now_ms())?)
        .await?;
    let incident = app.store.incident(id).await?.ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!("incident {id} vanished after creation"))
    })?;
    Ok((StatusCode::CREATED, Json(incident_json(&incident))).into_response())
}

async fn list(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    let incidents = app.store.recent_incidents(500).await?;
    Ok(Json(json!(incidents
        .iter()
        .map(incident_json)
        .collect::<Vec<_>>())))
}

async fn show(State(app): State<AppState>, Id(id): Id) -> Result<Json<Value>, ApiError> {
    let incident = incident_or_404(&app, id).await?;
    Ok(Json(incident_json(&incident)))
}

fn no_incident(id: i64) -> ApiError {
    ApiError::NotFound(format!("no incident {id}"))
}

async fn incident_or_404(app: &AppState, id: i64) -> Result<Incident, ApiError> {
    app.store.incident(id).await?.ok_or_else(|| no_incident(id))
}

/// `POST /admin/api/incidents/{id}/updates`, and `beacon incident update`
/// and `resolve`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewUpdate {
    pub status: String,
    pub message: String,
}

/// Checks an update; returns it with its message cleaned.
pub(crate) fn incident_update(body: NewUpdate) -> Result<NewUpdate, ApiError> {
    one_of("status", &body.status, STATUSES)?;
    let message = clean_text("message", &body.message, MAX_MESSAGE_BYTES)?;
    Ok(NewUpdate {
        status: body.status,
        message,
    })
}

async fn add_update(
    State(app): State<AppState>,
    Id(id): Id,
    Body(body): Body<NewUpdate>,
) -> Result<Response, ApiError> {
    let body = incident_update(body)?;
    if !app
        .store
        .add_incident_update(id, &body.status, &body.message, app.clock.now_ms())
        .await?
    {
        return Err(no_incident(id));
    }
    let incident = incident_or_404(&app, id).await?;
    Ok((StatusCode::CREATED, Json(incident_json(&incident))).into_response())
}

/// `PATCH /admin/api/incidents/{id}`: absent fields keep their value.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EditIncident {
    pub title: Option<String>,
    pub impact: Option<String>,
    pub postmortem: Option<String>,
    pub services: Option<Vec<String>>,
}

/// Checks an edit (all but "a postmortem needs a resolved incident",
/// which needs the store).
pub(crate) fn incident_patch(body: EditIncident) -> Result<IncidentPatch, ApiError> {
    if let Some(impact) = &body.impact {
        one_of("impact", impact, IMPACTS)?;
    }
    Ok(IncidentPatch {
        title: body.title.as_deref().map(clean_title).transpose()?,
        impact: body.impact,
        postmortem: body
            .postmortem
            .as_deref()
            .map(|p| clean_text("postmortem", p, MAX_POSTMORTEM_BYTES))
            .transpose()?,
        services: body.services.map(clean_slugs).transpose()?,
    })
}

async fn edit(
    State(app): State<AppState>,
    Id(id): Id,
    Body(body): Body<EditIncident>,
) -> Result<Json<Value>, ApiError> {
    let patch = incident_patch(body)?;
    if patch.postmortem.is_some() {
        let current = incident_or_404(&app, id).await?;
        if current.status != "resolved" {
            return Err(ApiError::invalid(
                "postmortem",
                "only a resolved incident has a postmortem",
            ));
        }
    }
    if !app
        .store
        .patch_incident(id, &patch, app.clock.now_ms())
        .await?
    {
        return Err(no_incident(id));
    }
    let incident = incident_or_404(&app, id).await?;
    Ok(Json(incident_json(&incident)))
}

async fn remove(State(app): State<AppState>, Id(id): Id) -> Result<StatusCode, ApiError> {
    if app.store.delete_incident(id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_incident(id))
    }
}

pub fn maintenance_json(m: &Maintenance) -> Value {
    json!({
        "id": m.id,
        "title": m.title,
        "message": m.message,
        "starts_at": time(m.starts_at),
        "ends_at": time(m.ends_at),
        "services": m.services,
    })
}

/// Every field optional, so one type serves create (all required, checked
/// below) and PATCH (absent fields keep their value).
/// The CLI builds one too, so both follow the same rules.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct MaintenanceBody {
    pub title: Option<String>,
    pub message: Option<String>,
    pub starts_at: Option<String>,
    pub ends_at: Option<String>,
    pub services: Option<Vec<String>>,
}

fn rfc3339(field: &'static str, value: &str) -> Result<i64, ApiError> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            ApiError::invalid(
                field,
                format!("\"{value}\" is not an RFC 3339 time like 2026-03-12T22:00:00Z"),
            )
        })
}

/// Merges `body` over `current` (if any) and checks the result.
pub(crate) fn maintenance_input(
    body: MaintenanceBody,
    current: Option<&Maintenance>,
) -> Result<MaintenanceInput, ApiError> {
    let required = |field: &'static str, value: Option<String>, current: Option<String>| {
        value
            .or(current)
            .ok_or_else(|| ApiError::invalid(field, "is required"))
    };
    let title = required("title", body.title, current.map(|m| m.title.clone()))?;
    let message = required("message", body.message, current.map(|m| m.message.clone()))?;
    let title = clean_title(&title)?;
    let message = clean_text("message", &message, MAX_MESSAGE_BYTES)?;
    let starts_at = match body.starts_at {
        Some(t) => rfc3339("starts_at", &t)?,
        None => current
            .map(|m| m.starts_at)
            .ok_or_else(|| ApiError::invalid("starts_at", "is required"))?,
    };
    let ends_at = match body.ends_at {
        Some(t) => rfc3339("ends_at", &t)?,
        None => current
            .map(|m| m.ends_at)
            .ok_or_else(|| ApiError::invalid("ends_at", "is required"))?,
    };
    if ends_at <= starts_at {
        return Err(ApiError::invalid("ends_at", "must be after starts_at"));
    }
    let services = clean_slugs(
        body.services
            .or_else(|| current.map(|m| m.services.clone()))
            .unwrap_or_default(),
    )?;
    if services.is_empty() {
        return Err(ApiError::invalid("services", "name at least one service"));
    }
    Ok(MaintenanceInput {
        title,
        message,
        starts_at,
        ends_at,
        services,
    })
}

fn no_maintenance(id: i64) -> ApiError {
    ApiError::NotFound(format!("no maintenance {id}"))
}

async fn maintenance_or_404(app: &AppState, id: i64) -> Result<Maintenance, ApiError> {
    app.store
        .maintenance(id)
        .await?
        .ok_or_else(|| no_maintenance(id))
}

async fn create_maintenance(
    State(app): State<AppState>,
    Body(body): Body<MaintenanceBody>,
) -> Result<Response, ApiError> {
    let input = maintenance_input(body, None)?;
    let id = app
        .store
        .save_maintenance(None, &input, app.clock.now_ms())
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a new maintenance got no id")))?;
    let saved = maintenance_or_404(&app, id).await?;
    Ok((StatusCode::CREATED, Json(maintenance_json(&saved))).into_response())
}

async fn list_maintenances(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    let all = app.store.maintenances().await?;
    Ok(Json(json!(all
        .iter()
        .map(maintenance_json)
        .collect::<Vec<_>>())))
}

async fn show_maintenance(
    State(app): State<AppState>,
    Id(id): Id,
) -> Result<Json<Value>, ApiError> {
    let m = maintenance_or_404(&app, id).await?;
    Ok(Json(maintenance_json(&m)))
}

async fn edit_maintenance(
    State(app): State<AppState>,
    Id(id): Id,
    Body(body): Body<MaintenanceBody>,
) -> Result<Json<Value>, ApiError> {
    let current = maintenance_or_404(&app, id).await?;
    let input = maintenance_input(body, Some(&current))?;
    app.store
        .save_maintenance(Some(id), &input, app.clock.now_ms())
        .await?
        .ok_or_else(|| no_maintenance(id))?;
    let saved = maintenance_or_404(&app, id).await?;
    Ok(Json(maintenance_json(&saved)))
}

async fn remove_maintenance(
    State(app): State<AppState>,
    Id(id): Id,
) -> Result<StatusCode, ApiError> {
    if app.store.delete_maintenance(id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_maintenance(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cret", b"s3cre"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    fn bad_request_field(e: ApiError) -> Option<String> {
        match e {
            ApiError::BadRequest { field, .. } => field,
            other => panic!("not a 400: {other:?}"),
        }
    }

    #[test]
    fn body_errors_name_the_field() {
        let field = |body: &str| {
            bad_request_field(
                parse_body::<CreateIncident>(body.as_bytes())
                    .err()
                    .unwrap_or_else(|| panic!("{body} accepted")),
            )
        };
        assert_eq!(field(r#"{"title":5}"#).as_deref(), Some("title"));
        assert_eq!(
            field(r#"{"title":"t","impact":"minor","message":"m","services":["a",3]}"#).as_deref(),
            Some("services[1]")
        );
        assert_eq!(
            field(r#"{"impact":"minor","message":"m"}"#).as_deref(),
            Some("title")
        );
        assert_eq!(
            field(r#"{"title":"t","impact":"minor","message":"m","colour":1}"#).as_deref(),
            Some("colour")
        );
        assert_eq!(field("{not json"), None);
        assert_eq!(
            field(r#"{"title":"t","impact":"minor","message":"m"} {}"#),
            None
        );
    }

    #[test]
    fn ids_are_plain_digits() {
        assert_eq!(parse_id("42").ok(), Some(42));
        assert_eq!(parse_id("007").ok(), Some(7));
        for bad in [
            "+1",
            "-1",
            " 1",
            "1 ",
            "",
            "1e3",
            "0x1",
            "１",
            "99999999999999999999",
        ] {
            assert_eq!(
                parse_id(bad).err().and_then(bad_request_field).as_deref(),
                Some("id"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn admin_text_is_cleaned_of_what_xml_forbids_and_refuses_nul() {
        assert_eq!(
            clean_title("  Payments\u{FFFE} delayed\u{FFFF}\u{1} ").ok(),
            Some("Payments delayed".to_string())
        );
        assert_eq!(
            clean_text("message", "a\tb\r\nc\u{B}", 100).ok(),
            Some("a\tb\r\nc".to_string())
        );
        for (field, e) in [
            ("title", clean_title("a\0b").err()),
            ("message", clean_text("message", "\0", 100).err()),
            ("title", clean_title("\u{FFFF}\u{FFFE} ").err()),
            ("title", clean_title(&"x".repeat(201)).err()),
        ] {
            match e {
                Some(ApiError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{other:?}"),
            }
        }
    }

    /// Property tests of the bodies' deserialise + validate functions, as
    /// the handlers and the CLI call them. `PROPTEST_CASES` sets the count.
    mod props {
        use std::time::{Duration, Instant};

        use proptest::prelude::*;
        // Not the `any` routing function of the module under test.
        use proptest::prelude::any;
        use serde_json::Value;

        use super::super::*;

        const FIELDS: &[&str] = &[
            "title",
            "impact",
            "status",
            "message",
            "services",
            "postmortem",
            "starts_at",
            "ends_at",
        ];

        /// Strings that reach every rule: words that pass, blanks, control
        /// and non-characters, NULs, lengths around the limits, times.
        fn text() -> impl Strategy<Value = String> {
            prop_oneof![
                proptest::sample::select(
                    &[
                        "minor",
                        "critical",
                        "investigating",
                        "resolved",
                        "checkout-api",
                        "2026-03-12T22:00:00Z",
                        "2026-03-12T23:00:00+01:00",
                        "9999-12-31T23:59:59Z",
                        "",
                        " ",
                        "\u{0}",
                        "\u{FFFF}",
                        "\u{FFFE}\u{1}",
                        "a\u{0}b",
                        "\t\r\n",
                    ][..]
                )
                .prop_map(str::to_string),
                "\\PC{0,40}",
                "[\\x00-\\x1f\\u{FFFE}\\u{FFFF} a]{0,40}",
                (1usize..12_000).prop_map(|n| "é".repeat(n / 2)),
            ]
        }

        fn value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                1 => Just(Value::Null),
                1 => any::<bool>().prop_map(Value::Bool),
                1 => any::<i64>().prop_map(Value::from),
                1 => any::<f64>().prop_map(Value::from),
                4 => text().prop_map(Value::String),
            ];
            leaf.prop_recursive(3, 40, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    prop::collection::vec(
                        (
                            proptest::sample::select(FIELDS).prop_map(str::to_string),
                            inner
                        ),
                        0..6
                    )
                    .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
                ]
            })
        }

        /// Objects with the API's field names (and sometimes others).
        fn body() -> impl Strategy<Value = Vec<u8>> {
            let key = prop_oneof![
                6 => proptest::sample::select(FIELDS).prop_map(str::to_string),
                1 => "\\PC{0,8}",
            ];
            let field = prop_oneof![
                3 => text().prop_map(Value::String),
                1 => prop::collection::vec(text().prop_map(Value::String), 0..4).prop_map(Value::Array),
                1 => value(),
            ];
            prop_oneof![
                6 => prop::collection::vec((key, field), 0..8).prop_map(|pairs| {
                    serde_json::to_vec(&Value::Object(pairs.into_iter().collect())).unwrap_or_default()
                }),
                1 => value().prop_map(|v| serde_json::to_vec(&v).unwrap_or_default()),
                1 => prop::collection::vec(any::<u8>(), 0..256),
            ]
        }

        /// Every refusal says what is wrong: a field, or where in the body.
        fn check_refusal(e: ApiError) -> Result<(), TestCaseError> {
            match e {
                ApiError::Invalid { field, message } => {
                    prop_assert!(!field.is_empty() && !message.trim().is_empty());
                }
                ApiError::BadRequest { field, message } => {
                    prop_assert!(!message.trim().is_empty());
                    prop_assert!(
                        field.as_deref().is_some_and(|f| !f.is_empty())
                            || message.contains("line "),
                        "neither a field nor a position: {}",
                        message
                    );
                }
                other => prop_assert!(false, "unexpected refusal {:?}", other),
            }
            Ok(())
        }

        fn check_text(text: &str, max: usize) -> Result<(), TestCaseError> {
            prop_assert!(!text.trim().is_empty() && text.len() <= max);
            prop_assert!(
                !text.chars().any(crate::web::feeds::xml_forbidden),
                "{:?}",
                text
            );
            Ok(())
        }

        fn timed<T>(f: impl FnOnce() -> T) -> T {
            let start = Instant::now();
            let out = f();
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "took {:?}",
                start.elapsed()
            );
            out
        }

        proptest! {
            #![proptest_config(ProptestConfig::default())]

            #[test]
            fn new_incidents_are_clean_or_refused_clearly(bytes in body()) {
                match timed(|| parse_body::<CreateIncident>(&bytes).and_then(|b| new_incident(b, 0))) {
                    Ok(new) => {
                        check_text(&new.title, MAX_TITLE_BYTES)?;
                        prop_assert_eq!(new.title.trim(), new.title.as_str());
                        check_text(&new.message, MAX_MESSAGE_BYTES)?;
                        prop_assert!(!new.services.iter().any(|s| s.contains('\0')));
                    }
                    Err(e) => check_refusal(e)?,
                }
            }

            #[test]
            fn updates_are_clean_or_refused_clearly(bytes in body()) {
                match timed(|| parse_body::<NewUpdate>(&bytes).and_then(incident_update)) {
                    Ok(update) => {
                        check_text(&update.message, MAX_MESSAGE_BYTES)?;
                        prop_assert!(STATUSES.contains(&update.status.as_str()));
                    }
                    Err(e) => check_refusal(e)?,
                }
            }

            #[test]
            fn incident_edits_are_clean_or_refused_clearly(bytes in body()) {
                match timed(|| parse_body::<EditIncident>(&bytes).and_then(incident_patch)) {
                    Ok(patch) => {
                        if let Some(title) = &patch.title {
                            check_text(title, MAX_TITLE_BYTES)?;
                        }
                        if let Some(postmortem) = &patch.postmortem {
                            check_text(postmortem, MAX_POSTMORTEM_BYTES)?;
                        }
                    }
                    Err(e) => check_refusal(e)?,
                }
            }

            #[test]
            fn maintenances_are_clean_or_refused_clearly(bytes in body(), edit in any::<bool>()) {
                let current = Maintenance {
                    id: 1,
                    title: "Upgrade".into(),
                    message: "Slow.".into(),
                    starts_at: 0,
                    ends_at: 3_600_000,
                    services: vec!["db".into()],
                    created_at: 0,
                    updated_at: 0,
                };
                let current = edit.then_some(&current);
                match timed(|| parse_body::<MaintenanceBody>(&bytes).and_then(|b| maintenance_input(b, current))) {
                    Ok(input) => {
                        check_text(&input.title, MAX_TITLE_BYTES)?;
                        check_text(&input.message, MAX_MESSAGE_BYTES)?;
                        prop_assert!(input.ends_at > input.starts_at);
                        prop_assert!(!input.services.is_empty());
                    }
                    Err(e) => check_refusal(e)?,
                }
            }

            #[test]
            fn path_ids_are_plain_digits_or_refused(raw in "\\PC{0,24}|[+-]?[0-9]{0,22}") {
                match timed(|| parse_id(&raw)) {
                    Ok(id) => {
                        prop_assert!(raw.bytes().all(|b| b.is_ascii_digit()));
                        prop_assert_eq!(raw.parse::<i64>().ok(), Some(id));
                    }
                    Err(e) => check_refusal(e)?,
                }
            }
        }
    }
}
