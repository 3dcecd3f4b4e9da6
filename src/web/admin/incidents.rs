//! `/admin/api/incidents…`: open, list, show, edit, update and delete
//! incidents. The rules for what is written are `domain::input`'s, shared
//! with `beacon incident`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::body::{Body, Id};
use super::time;
use crate::domain::input::{
    incident_patch, incident_update, new_incident, IncidentEditForm, IncidentForm, UpdateForm,
};
use crate::store::Incident;
use crate::web::error::ApiError;
use crate::web::AppState;

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

pub(super) async fn create(
    State(app): State<AppState>,
    Body(form): Body<IncidentForm>,
) -> Result<Response, ApiError> {
    let id = app
        .store
        .create_incident(&new_incident(form, app.clock.now_ms())?)
        .await?;
    let incident = app.store.incident(id).await?.ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!("incident {id} vanished after creation"))
    })?;
    Ok((StatusCode::CREATED, Json(incident_json(&incident))).into_response())
}

pub(super) async fn list(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    let incidents = app.store.recent_incidents(500).await?;
    Ok(Json(json!(incidents
        .iter()
        .map(incident_json)
        .collect::<Vec<_>>())))
}

pub(super) async fn show(State(app): State<AppState>, Id(id): Id) -> Result<Json<Value>, ApiError> {
    let incident = incident_or_404(&app, id).await?;
    Ok(Json(incident_json(&incident)))
}

fn no_incident(id: i64) -> ApiError {
    ApiError::NotFound(format!("no incident {id}"))
}

async fn incident_or_404(app: &AppState, id: i64) -> Result<Incident, ApiError> {
    app.store.incident(id).await?.ok_or_else(|| no_incident(id))
}

pub(super) async fn add_update(
    State(app): State<AppState>,
    Id(id): Id,
    Body(form): Body<UpdateForm>,
) -> Result<Response, ApiError> {
    let update = incident_update(form)?;
    if !app
        .store
        .add_incident_update(
            id,
            &update.status,
            &update.message,
            app.clock.now_ms(),
            update.notify,
        )
        .await?
    {
        return Err(no_incident(id));
    }
    let incident = incident_or_404(&app, id).await?;
    Ok((StatusCode::CREATED, Json(incident_json(&incident))).into_response())
}

pub(super) async fn edit(
    State(app): State<AppState>,
    Id(id): Id,
    Body(form): Body<IncidentEditForm>,
) -> Result<Json<Value>, ApiError> {
    let patch = incident_patch(form)?;
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

pub(super) async fn remove(
    State(app): State<AppState>,
    Id(id): Id,
) -> Result<StatusCode, ApiError> {
    if app.store.delete_incident(id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_incident(id))
    }
}
