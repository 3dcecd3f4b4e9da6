//! `/admin/api/subscribers…`: the webhooks and Slack channels (and email
//! addresses an operator vouches for) that are told about incidents and
//! maintenance; export (everything stored about one) and removal. The
//! rules are `domain::input`'s, shared with `beacon subscribers`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::body::{Body, Id};
use crate::domain::input::SubscriberForm;
use crate::notify::subscribers::{add, export, subscriber_json, AddRules};
use crate::store::Subscriber;
use crate::web::error::ApiError;
use crate::web::AppState;

pub(super) async fn create(
    State(app): State<AppState>,
    Body(form): Body<SubscriberForm>,
) -> Result<Response, ApiError> {
    let rules = AddRules {
        public_url: app.public_url.is_some(),
        email: app.subscriptions.config.is_some(),
    };
    let (s, made) = add(&app.store, form, rules, app.clock.now_ms()).await?;
    let mut body = subscriber_json(&s);
    if let Some(secret) = made {
        // Shown once: the receiver checks X-Beacon-Signature-256 with it.
        body["secret"] = json!(secret);
    }
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub(super) async fn list(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    let all = app.store.subscribers().await?;
    Ok(Json(json!(all
        .iter()
        .map(subscriber_json)
        .collect::<Vec<_>>())))
}

async fn subscriber_or_404(app: &AppState, id: i64) -> Result<Subscriber, ApiError> {
    app.store
        .subscriber(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no subscriber {id}")))
}

pub(super) async fn show(State(app): State<AppState>, Id(id): Id) -> Result<Json<Value>, ApiError> {
    let s = subscriber_or_404(&app, id).await?;
    Ok(Json(export(&app.store, &s).await?))
}

pub(super) async fn remove(
    State(app): State<AppState>,
    Id(id): Id,
) -> Result<StatusCode, ApiError> {
    if app.store.remove_subscriber(id).await? {
        app.metrics.subscribers_unsubscribed.inc();
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no subscriber {id}")))
    }
}
