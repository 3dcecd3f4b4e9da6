//! `/admin/api/maintenances…`: schedule, list, show, edit and delete
//! maintenance windows. The rules for what is written are
//! `domain::input`'s, shared with `beacon maintenance`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::body::{Body, Id};
use super::time;
use crate::domain::input::{maintenance_input, MaintenanceForm};
use crate::store::Maintenance;
use crate::web::error::ApiError;
use crate::web::AppState;

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

fn no_maintenance(id: i64) -> ApiError {
    ApiError::NotFound(format!("no maintenance {id}"))
}

async fn maintenance_or_404(app: &AppState, id: i64) -> Result<Maintenance, ApiError> {
    app.store
        .maintenance(id)
        .await?
        .ok_or_else(|| no_maintenance(id))
}

pub(super) async fn create(
    State(app): State<AppState>,
    Body(form): Body<MaintenanceForm>,
) -> Result<Response, ApiError> {
    let input = maintenance_input(form, None)?;
    let id = app
        .store
        .save_maintenance(None, &input, app.clock.now_ms())
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a new maintenance got no id")))?;
    let saved = maintenance_or_404(&app, id).await?;
    Ok((StatusCode::CREATED, Json(maintenance_json(&saved))).into_response())
}

pub(super) async fn list(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    let all = app.store.maintenances().await?;
    Ok(Json(json!(all
        .iter()
        .map(maintenance_json)
        .collect::<Vec<_>>())))
}

pub(super) async fn show(State(app): State<AppState>, Id(id): Id) -> Result<Json<Value>, ApiError> {
    let m = maintenance_or_404(&app, id).await?;
    Ok(Json(maintenance_json(&m)))
}

pub(super) async fn edit(
    State(app): State<AppState>,
    Id(id): Id,
    Body(form): Body<MaintenanceForm>,
) -> Result<Json<Value>, ApiError> {
    let current = maintenance_or_404(&app, id).await?;
    let input = maintenance_input(form, Some(&current.input()))?;
    app.store
        .save_maintenance(Some(id), &input, app.clock.now_ms())
        .await?
        .ok_or_else(|| no_maintenance(id))?;
    let saved = maintenance_or_404(&app, id).await?;
    Ok(Json(maintenance_json(&saved)))
}

pub(super) async fn remove(
    State(app): State<AppState>,
    Id(id): Id,
) -> Result<StatusCode, ApiError> {
    if app.store.delete_maintenance(id, app.clock.now_ms()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_maintenance(id))
    }
}
