//! `/api/v1/webhooks`: endpoints registered per environment, their deliveries (with every
//! attempt and what the receiver answered), and replay. Reading takes any key of the
//! environment; registering, deleting and replaying take an `admin` key (a `read-only` key is
//! refused by `auth` already, a `server` key here), since a webhook sends the environment's
//! data to a URL of the caller's choosing. The signing secret is answered once, on create.
//! The dashboard mounts the same handlers under `/dashboard/api` (`dashboard_routes`).

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{page_body, Json, PageQuery, Path, Query};
use crate::openapi::{Data, List, WEBHOOKS};
use crate::AppState;
use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use domain::{ErrorCode, WebhookEventType};
use serde::{Deserialize, Serialize};
use store::api_keys::{Principal, Scope};
use store::webhooks::{Attempt, Delivery, Endpoint};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// Each `routes!` names the handlers of one path (see `crate::openapi` for adding one).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_one, delete))
        .routes(routes!(deliveries))
        .routes(routes!(replay))
}

/// The same handlers for the dashboard's session (which `dashboard::require_session` checks).
pub fn dashboard_routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard/api/webhooks", get(list))
        .route("/dashboard/api/webhooks/{id}/deliveries", get(deliveries))
        .route("/dashboard/api/webhooks/deliveries/{id}/replay", post(replay))
}

/// A registered endpoint (its secret is answered only on create).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookView {
    id: Uuid,
    url: String,
    #[schema(value_type = Vec<WebhookEventType>)]
    events: Vec<String>,
    /// The prefix of the key that registered it.
    created_by: Option<String>,
    created_at: DateTime<Utc>,
}

/// The endpoint just registered, with the secret its deliveries are signed with. Shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    webhook: WebhookView,
    secret: String,
}

/// What `DELETE` answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedWebhook {
    id: Uuid,
    deleted: bool,
}

/// One try at sending a delivery, with what the receiver answered (or why nothing came back).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    attempt: i32,
    started_at: DateTime<Utc>,
    duration_ms: i32,
    status_code: Option<i32>,
    response_body: Option<String>,
    error: Option<String>,
}

/// The event a delivery carries.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventRef {
    id: Uuid,
    #[serde(rename = "type")]
    #[schema(value_type = WebhookEventType)]
    event_type: String,
    created_at: DateTime<Utc>,
}

/// One event sent (or being sent) to one endpoint.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    id: Uuid,
    webhook_id: Uuid,
    event: EventRef,
    /// PENDING (being sent, or waiting to be retried), DELIVERED or FAILED.
    #[schema(pattern = "^(PENDING|DELIVERED|FAILED)$")]
    status: String,
    /// When the next attempt is due, while PENDING.
    next_attempt_at: Option<DateTime<Utc>>,
    attempts: Vec<AttemptView>,
    /// The delivery this one replays, if it is a replay.
    replay_of: Option<Uuid>,
    /// The prefix of the key that asked for the replay.
    replayed_by: Option<String>,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

/// Longest URL accepted.
const MAX_URL: usize = 2048;

fn require_admin(caller: &Principal) -> Result<(), ApiError> {
    if caller.scope != Scope::Admin {
        return Err(ApiError::new(ErrorCode::AccessDeniedError, "managing webhooks needs an admin API key"));
    }
    Ok(())
}

fn endpoint_view(e: &Endpoint) -> WebhookView {
    WebhookView {
        id: e.id,
        url: e.url.clone(),
        events: e.events.clone(),
        created_by: e.created_by.clone(),
        created_at: e.created_at,
    }
}

fn attempt_view(a: &Attempt) -> AttemptView {
    AttemptView {
        attempt: a.attempt,
        started_at: a.started_at,
        duration_ms: a.duration_ms,
        status_code: a.status_code,
        response_body: a.response_body.clone(),
        error: a.error.clone(),
    }
}

fn delivery_view(d: &Delivery, attempts: &[Attempt]) -> DeliveryView {
    DeliveryView {
        id: d.id,
        webhook_id: d.endpoint_id,
        event: EventRef { id: d.event_id, event_type: d.event_type.clone(), created_at: d.event_created_at },
        status: d.status.clone(),
        next_attempt_at: (d.status == "PENDING").then_some(d.next_attempt_at),
        attempts: attempts.iter().filter(|a| a.delivery_id == d.id).map(attempt_view).collect(),
        replay_of: d.replay_of,
        replayed_by: d.replayed_by.clone(),
        created_at: d.created_at,
        finished_at: d.finished_at,
    }
}

/// An id in a path: anything that is not a UUID names nothing.
fn parse_id(raw: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::new(ErrorCode::NotFound, format!("{what} `{raw}` not found")))
}

fn checked_url(raw: &str) -> Result<String, ApiError> {
    let bad = |why: &str| ApiError::bad_input(format!("invalid url: {why}"));
    if raw.chars().count() > MAX_URL {
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// An http or https URL with a host, at most 2048 characters.
    #[schema(min_length = 1, max_length = 2048, pattern = "^[hH][tT][tT][pP][sS]?://[^\\s/?#]")]
    url: String,
    #[schema(value_type = Vec<WebhookEventType>, min_items = 1)]
    events: Vec<String>,
}

/// `POST /api/v1/webhooks` `{"url", "events"}` → the endpoint with its `secret`, shown once.
#[utoipa::path(post, path = "/api/v1/webhooks", operation_id = "WebhookController_createWebhook", tag = WEBHOOKS, request_body = CreateWebhook,
    responses((status = 200, description = "The endpoint, with its signing secret (shown only here)", body = Data<CreatedWebhook>),
        (status = 400, description = "Bad input: a URL that is not http(s) with a host, or an unknown event type (`BadUserInput`)", body = ErrorBody),
        (status = 403, description = "Not an admin key: a read-only one (refused by `auth`) or a server one (`AccessDeniedError`)", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Json(body): Json<CreateWebhook>,
) -> Result<Json<Data<CreatedWebhook>>, ApiError> {
    require_admin(&caller)?;
    let url = checked_url(&body.url)?;
    let events = checked_events(&body.events)?;
    let created =
        store::webhooks::create_endpoint(&state.pool, caller.environment_id, &url, &events, &caller.key_prefix).await?;
    tracing::info!(webhook_id = %created.endpoint.id, "webhook registered");
    Ok(Json(Data { data: CreatedWebhook { webhook: endpoint_view(&created.endpoint), secret: created.secret } }))
}

/// `GET /api/v1/webhooks`: oldest first.
#[utoipa::path(get, path = "/api/v1/webhooks", operation_id = "WebhookController_listWebhooks", tag = WEBHOOKS, params(PageQuery),
    responses((status = 200, description = "A page of endpoints, oldest first", body = List<WebhookView>)))]
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(query): Query<PageQuery>,
) -> Result<Json<List<WebhookView>>, ApiError> {
    let page =
        store::webhooks::list_endpoints(&state.pool, caller.environment_id, query.after()?, query.limit()?).await?;
    Ok(Json(page_body(&page, endpoint_view)))
}

/// `GET /api/v1/webhooks/{id}`
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", operation_id = "WebhookController_getWebhook", tag = WEBHOOKS, params(("id" = String, Path)),
    responses((status = 200, description = "The endpoint", body = Data<WebhookView>),
        (status = 404, description = "No such webhook (`NotFound`)", body = ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Data<WebhookView>>, ApiError> {
    let endpoint = store::webhooks::get_endpoint(&state.pool, caller.environment_id, parse_id(&id, "webhook")?)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("webhook `{id}` not found")))?;
    Ok(Json(Data { data: endpoint_view(&endpoint) }))
}

/// `DELETE /api/v1/webhooks/{id}`: nothing more is sent to it; its deliveries go with it.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", operation_id = "WebhookController_deleteWebhook", tag = WEBHOOKS, params(("id" = String, Path)),
    responses((status = 200, description = "Deleted", body = Data<DeletedWebhook>),
        (status = 403, description = "Not an admin key: a read-only one (refused by `auth`) or a server one (`AccessDeniedError`)", body = ErrorBody),
        (status = 404, description = "No such webhook (`NotFound`)", body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Data<DeletedWebhook>>, ApiError> {
    require_admin(&caller)?;
    let webhook = parse_id(&id, "webhook")?;
    if !store::webhooks::delete_endpoint(&state.pool, caller.environment_id, webhook).await? {
        return Err(ApiError::new(ErrorCode::NotFound, format!("webhook `{id}` not found")));
    }
    tracing::info!(webhook_id = %webhook, "webhook deleted");
    Ok(Json(Data { data: DeletedWebhook { id: webhook, deleted: true } }))
}

/// `GET /api/v1/webhooks/{id}/deliveries`: newest first, each with its attempts.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", operation_id = "WebhookController_listWebhookDeliveries", tag = WEBHOOKS, params(("id" = String, Path), PageQuery),
    responses((status = 200, description = "A page of the endpoint's deliveries, newest first", body = List<DeliveryView>),
        (status = 404, description = "No such webhook (`NotFound`)", body = ErrorBody)))]
pub async fn deliveries(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Json<List<DeliveryView>>, ApiError> {
    let webhook = parse_id(&id, "webhook")?;
    let (page, attempts) =
        store::webhooks::deliveries(&state.pool, caller.environment_id, webhook, query.after()?, query.limit()?)
            .await?
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("webhook `{id}` not found")))?;
    Ok(Json(page_body(&page, |d| delivery_view(d, &attempts))))
}

/// `POST /api/v1/webhooks/deliveries/{id}/replay`: sends the same event (same id, same body)
/// to the same endpoint again, as a new delivery that records who asked.
#[utoipa::path(post, path = "/api/v1/webhooks/deliveries/{id}/replay", operation_id = "WebhookController_replayWebhookDelivery", tag = WEBHOOKS, params(("id" = String, Path)),
    responses((status = 200, description = "The new delivery, due now", body = Data<DeliveryView>),
        (status = 400, description = "The delivery is still PENDING (`BadUserInput`)", body = ErrorBody),
        (status = 403, description = "Not an admin key: a read-only one (refused by `auth`) or a server one (`AccessDeniedError`)", body = ErrorBody),
        (status = 404, description = "No such delivery (`NotFound`)", body = ErrorBody)))]
pub async fn replay(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Data<DeliveryView>>, ApiError> {
    require_admin(&caller)?;
    let delivery = parse_id(&id, "delivery")?;
    let mut tx = state.begin().await?;
    let replayed = store::webhooks::replay(&mut tx, caller.environment_id, delivery, &caller.key_prefix).await?;
    tx.commit(&state.hooks()).await?;
    tracing::info!(delivery_id = %delivery, replay_id = %replayed.id, "webhook delivery replayed");
    Ok(Json(Data { data: delivery_view(&replayed, &[]) }))
}
