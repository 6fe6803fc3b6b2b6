//! `/api/v1/webhooks`: endpoints registered per environment, their deliveries (with every
//! attempt and what the receiver answered), and replay. Reading takes any key of the
//! environment; registering, deleting and replaying take an `admin` key (a `read-only` key is
//! refused by `auth` already, a `server` key here), since a webhook sends the environment's
//! data to a URL of the caller's choosing. The signing secret is answered once, on create.
//! The dashboard mounts the same handlers under `/dashboard/api` (`dashboard_routes`).

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{page_body, Json, PageQuery, Path, Query};
use crate::openapi::List;
use crate::AppState;
use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use domain::{ErrorCode, WebhookEventType};
use serde::Deserialize;
use serde_json::{json, Value};
use store::api_keys::{Principal, Scope};
use store::webhooks::{Attempt, Delivery, Endpoint};
use uuid::Uuid;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/webhooks", get(list).post(create))
        .route("/api/v1/webhooks/{id}", get(get_one).delete(delete))
        .route("/api/v1/webhooks/{id}/deliveries", get(deliveries))
        .route("/api/v1/webhooks/deliveries/{id}/replay", post(replay))
}

/// The same handlers for the dashboard's session (which `dashboard::require_session` checks).
pub fn dashboard_routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard/api/webhooks", get(list))
        .route("/dashboard/api/webhooks/{id}/deliveries", get(deliveries))
        .route("/dashboard/api/webhooks/deliveries/{id}/replay", post(replay))
}

/// Longest URL accepted.
const MAX_URL: usize = 2048;

fn require_admin(caller: &Principal) -> Result<(), ApiError> {
    if caller.scope != Scope::Admin {
        return Err(ApiError::new(ErrorCode::AccessDeniedError, "managing webhooks needs an admin API key"));
    }
    Ok(())
}

fn endpoint_view(e: &Endpoint) -> Value {
    json!({ "id": e.id, "url": e.url, "events": e.events, "createdBy": e.created_by, "createdAt": e.created_at })
}

fn attempt_view(a: &Attempt) -> Value {
    json!({
        "attempt": a.attempt, "startedAt": a.started_at, "durationMs": a.duration_ms,
        "statusCode": a.status_code, "responseBody": a.response_body, "error": a.error,
    })
}

fn delivery_view(d: &Delivery, attempts: &[Attempt]) -> Value {
    json!({
        "id": d.id,
        "webhookId": d.endpoint_id,
        "event": { "id": d.event_id, "type": d.event_type, "createdAt": d.event_created_at },
        "status": d.status,
        "nextAttemptAt": (d.status == "PENDING").then_some(d.next_attempt_at),
        "attempts": attempts.iter().filter(|a| a.delivery_id == d.id).map(attempt_view).collect::<Vec<_>>(),
        "replayOf": d.replay_of,
        "replayedBy": d.replayed_by,
        "createdAt": d.created_at,
        "finishedAt": d.finished_at,
    })
}

/// An id in a path: anything that is not a UUID names nothing.
fn parse_id(raw: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::new(ErrorCode::NotFound, format!("{what} `{raw}` not found")))
}

fn checked_url(raw: &str) -> Result<String, ApiError> {
    let bad = |why: &str| ApiError::bad_input(format!("invalid url: {why}"));
    if raw.len() > MAX_URL {
        return Err(bad("longer than 2048 characters"));
    }
    let url = url::Url::parse(raw.trim()).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it has no host"));
    }
    Ok(url.to_string())
}

fn checked_events(raw: &[String]) -> Result<Vec<WebhookEventType>, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::bad_input("events must name at least one event type"));
    }
    let mut events = Vec::with_capacity(raw.len());
    for name in raw {
        let event = WebhookEventType::parse(name).map_err(|e| ApiError::bad_input(e.to_string()))?;
        if !events.contains(&event) {
            events.push(event);
        }
    }
    Ok(events)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    url: String,
    events: Vec<String>,
}

/// `POST /api/v1/webhooks` `{"url", "events"}` → the endpoint with its `secret`, shown once.
pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Json(body): Json<CreateWebhook>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&caller)?;
    let url = checked_url(&body.url)?;
    let events = checked_events(&body.events)?;
    let created =
        store::webhooks::create_endpoint(&state.pool, caller.environment_id, &url, &events, &caller.key_prefix).await?;
    tracing::info!(webhook_id = %created.endpoint.id, "webhook registered");
    let mut view = endpoint_view(&created.endpoint);
    view["secret"] = json!(created.secret);
    Ok(Json(json!({ "data": view })))
}

/// `GET /api/v1/webhooks`: oldest first.
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(query): Query<PageQuery>,
) -> Result<Json<List<Value>>, ApiError> {
    let page =
        store::webhooks::list_endpoints(&state.pool, caller.environment_id, query.after()?, query.limit()?).await?;
    Ok(Json(page_body(&page, endpoint_view)))
}

/// `GET /api/v1/webhooks/{id}`
pub async fn get_one(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let endpoint = store::webhooks::get_endpoint(&state.pool, caller.environment_id, parse_id(&id, "webhook")?)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("webhook `{id}` not found")))?;
    Ok(Json(json!({ "data": endpoint_view(&endpoint) })))
}

/// `DELETE /api/v1/webhooks/{id}`: nothing more is sent to it; its deliveries go with it.
pub async fn delete(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&caller)?;
    let webhook = parse_id(&id, "webhook")?;
    if !store::webhooks::delete_endpoint(&state.pool, caller.environment_id, webhook).await? {
        return Err(ApiError::new(ErrorCode::NotFound, format!("webhook `{id}` not found")));
    }
    tracing::info!(webhook_id = %webhook, "webhook deleted");
    Ok(Json(json!({ "data": { "id": webhook, "deleted": true } })))
}

/// `GET /api/v1/webhooks/{id}/deliveries`: newest first, each with its attempts.
pub async fn deliveries(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Json<List<Value>>, ApiError> {
    let webhook = parse_id(&id, "webhook")?;
    let (page, attempts) =
        store::webhooks::deliveries(&state.pool, caller.environment_id, webhook, query.after()?, query.limit()?)
            .await?
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("webhook `{id}` not found")))?;
    Ok(Json(page_body(&page, |d| delivery_view(d, &attempts))))
}

/// `POST /api/v1/webhooks/deliveries/{id}/replay`: sends the same event (same id, same body)
/// to the same endpoint again, as a new delivery that records who asked.
pub async fn replay(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&caller)?;
    let delivery = parse_id(&id, "delivery")?;
    let mut tx = state.pool.begin().await?;
    let replayed = store::webhooks::replay(&mut tx, caller.environment_id, delivery, &caller.key_prefix).await?;
    tx.commit().await?;
    tracing::info!(delivery_id = %delivery, replay_id = %replayed.id, "webhook delivery replayed");
    Ok(Json(json!({ "data": delivery_view(&replayed, &[]) })))
}
