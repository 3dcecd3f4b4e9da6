//! The admin JSON API under `/admin/api/`, behind bearer tokens from
//! `[admin] tokens` (compared in constant time, never logged). Every write
//! is one transaction: a request that fails writes nothing.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::AppState;
use crate::clock::ms_to_datetime;
use crate::store::{Incident, IncidentPatch, Maintenance, MaintenanceInput, NewIncident};

use crate::model::{INCIDENT_IMPACTS as IMPACTS, INCIDENT_STATUSES as STATUSES};

pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/admin/api/incidents", get(list).post(create))
        .route(
            "/admin/api/incidents/{id}",
            get(show).patch(edit).delete(remove),
        )
        .route("/admin/api/incidents/{id}/updates", post(add_update))
        .route(
            "/admin/api/maintenances",
            get(list_maintenances).post(create_maintenance),
        )
        .route(
            "/admin/api/maintenances/{id}",
            get(show_maintenance)
                .patch(edit_maintenance)
                .delete(remove_maintenance),
        )
        .layer(axum::middleware::from_fn_with_state(state, require_token))
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

fn text(field: &'static str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.trim().is_empty() {
        Err(ApiError::invalid(field, "must not be empty"))
    } else if value.len() > max {
        Err(ApiError::invalid(
            field,
            format!("is longer than {max} bytes"),
        ))
    } else {
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateIncident {
    title: String,
    impact: String,
    #[serde(default = "investigating")]
    status: String,
    message: String,
    #[serde(default)]
    services: Vec<String>,
}

fn investigating() -> String {
    "investigating".into()
}

async fn create(
    State(app): State<AppState>,
    body: Result<Json<CreateIncident>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    text("title", &body.title, 200)?;
    one_of("impact", &body.impact, IMPACTS)?;
    one_of("status", &body.status, STATUSES)?;
    text("message", &body.message, 10_000)?;
    let id = app
        .store
        .create_incident(&NewIncident {
            title: body.title.trim().to_string(),
            impact: body.impact,
            status: body.status,
            message: body.message,
            services: body.services,
            at: app.clock.now_ms(),
        })
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

async fn show(State(app): State<AppState>, Path(id): Path<i64>) -> Result<Json<Value>, ApiError> {
    let incident = incident_or_404(&app, id).await?;
    Ok(Json(incident_json(&incident)))
}

fn no_incident(id: i64) -> ApiError {
    ApiError::NotFound(format!("no incident {id}"))
}

async fn incident_or_404(app: &AppState, id: i64) -> Result<Incident, ApiError> {
    app.store.incident(id).await?.ok_or_else(|| no_incident(id))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUpdate {
    status: String,
    message: String,
}

async fn add_update(
    State(app): State<AppState>,
    Path(id): Path<i64>,
    body: Result<Json<NewUpdate>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    one_of("status", &body.status, STATUSES)?;
    text("message", &body.message, 10_000)?;
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EditIncident {
    title: Option<String>,
    impact: Option<String>,
    postmortem: Option<String>,
    services: Option<Vec<String>>,
}

async fn edit(
    State(app): State<AppState>,
    Path(id): Path<i64>,
    body: Result<Json<EditIncident>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body?;
    if let Some(title) = &body.title {
        text("title", title, 200)?;
    }
    if let Some(impact) = &body.impact {
        one_of("impact", impact, IMPACTS)?;
    }
    if let Some(postmortem) = &body.postmortem {
        text("postmortem", postmortem, 100_000)?;
        let current = incident_or_404(&app, id).await?;
        if current.status != "resolved" {
            return Err(ApiError::invalid(
                "postmortem",
                "only a resolved incident has a postmortem",
            ));
        }
    }
    let patch = IncidentPatch {
        title: body.title.map(|t| t.trim().to_string()),
        impact: body.impact,
        postmortem: body.postmortem,
        services: body.services,
    };
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

async fn remove(State(app): State<AppState>, Path(id): Path<i64>) -> Result<StatusCode, ApiError> {
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
    text("title", &title, 200)?;
    text("message", &message, 10_000)?;
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
    let services = body
        .services
        .or_else(|| current.map(|m| m.services.clone()))
        .unwrap_or_default();
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
    body: Result<Json<MaintenanceBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
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
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let m = maintenance_or_404(&app, id).await?;
    Ok(Json(maintenance_json(&m)))
}

async fn edit_maintenance(
    State(app): State<AppState>,
    Path(id): Path<i64>,
    body: Result<Json<MaintenanceBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body?;
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
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    if app.store.delete_maintenance(id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_maintenance(id))
    }
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cret", b"s3cre"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
