//! `/api/v1/webhooks`: endpoints registered per environment, their deliveries (with every
//! attempt and what the receiver answered), each delivery's payload, replay, test events,
//! edits and secret rotation. Reading takes any key of the environment; every change takes an
//! `admin` key (a `read-only` key is refused by `auth` already, a `server` key here), since a
//! webhook sends the environment's data to a URL of the caller's choosing. A signing secret is
//! answered once: on create, and on rotation. URLs that resolve to internal addresses are
//! refused unless the allow-list lets them through (`ApiSettings::webhook_policy`); the
//! deliverer checks again at every attempt. The dashboard mounts the same handlers under
//! `/dashboard/api` (`dashboard_routes`).

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{page_body, Json, KnownQuery, PageQuery, Path};
use crate::openapi::{Data, List, WEBHOOKS};
use crate::AppState;
use axum::extract::State;
use axum::routing::{get, patch, post};
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
        .routes(routes!(get_one, update, delete))
        .routes(routes!(deliveries))
        .routes(routes!(replay))
        .routes(routes!(payload))
        .routes(routes!(send_test))
        .routes(routes!(rotate_secret))
}

/// The same handlers for the dashboard's session (which `dashboard::require_session` checks).
pub fn dashboard_routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard/api/webhooks", get(list))
        .route("/dashboard/api/webhooks/{id}/deliveries", get(deliveries))
        .route("/dashboard/api/webhooks/deliveries/{id}/replay", post(replay))
        .route("/dashboard/api/webhooks/deliveries/{id}/payload", get(payload))
        .route("/dashboard/api/webhooks/{id}", patch(update))
        .route("/dashboard/api/webhooks/{id}/test", post(send_test))
        .route("/dashboard/api/webhooks/{id}/rotate-secret", post(rotate_secret))
}

/// A registered endpoint (its secret is answered only on create and on rotation).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookView {
    id: Uuid,
    url: String,
    #[schema(value_type = Vec<WebhookEventType>)]
    events: Vec<String>,
    /// A disabled endpoint gets no new deliveries; those already written wait until it is
    /// enabled again.
    enabled: bool,
    health: WebhookHealth,
    /// When its secret was last rotated.
    secret_rotated_at: Option<DateTime<Utc>>,
    /// Until when deliveries also carry a signature with the secret before the last rotation;
    /// null once that overlap has passed.
    previous_secret_until: Option<DateTime<Utc>>,
    /// The prefix of the key that registered it.
    created_by: Option<String>,
    created_at: DateTime<Utc>,
}

/// How the endpoint's receiver has been answering, from the recorded attempts.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookHealth {
    /// The status code of the latest attempt; null if none has been made, or none came back.
    last_status_code: Option<i32>,
    /// Why the latest attempt failed, if it did.
    last_error: Option<String>,
    last_attempt_at: Option<DateTime<Utc>>,
    /// The latest attempt the receiver accepted (a 2xx answer).
    last_success_at: Option<DateTime<Utc>>,
    /// Failed attempts since the last accepted one (all of them if none was).
    failing_streak: i64,
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
    /// A `WebhookEventType`, or `ping` for a test event.
    #[serde(rename = "type")]
    #[schema(example = "task.completed")]
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
    /// PENDING (not attempted yet, or its first attempt is in flight), RETRYING (an attempt
    /// failed; the next is due at `nextAttemptAt`), DELIVERED or FAILED (out of attempts).
    #[schema(pattern = "^(PENDING|RETRYING|DELIVERED|FAILED)$")]
    status: &'static str,
    /// When the next attempt is due, while PENDING or RETRYING.
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
        enabled: e.enabled,
        health: WebhookHealth {
            last_status_code: e.last_status_code,
            last_error: e.last_error.clone(),
            last_attempt_at: e.last_attempt_at,
            last_success_at: e.last_success_at,
            failing_streak: e.failing_streak,
        },
        secret_rotated_at: e.secret_rotated_at,
        previous_secret_until: e.previous_secret_until,
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
        status: d.state.as_str(),
        next_attempt_at: d.state.is_open().then_some(d.next_attempt_at),
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

/// A URL a webhook may be sent to: http(s), with a host that resolves to no internal address
/// (loopback, private, link-local, cloud metadata, …) unless the allow-list lets it through. A
/// host that does not resolve now (within 3 s) is accepted; the deliverer checks again at
/// every attempt.
async fn checked_url(raw: &str, policy: &domain::webhook::AddressPolicy) -> Result<String, ApiError> {
    let bad = |why: &str| ApiError::bad_input(format!("invalid url: {why}"));
    if raw.chars().count() > MAX_URL {
        return Err(bad("longer than 2048 characters"));
    }
    let url = url::Url::parse(raw.trim()).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return Err(bad("it has no host"));
    };
    let bare = host.trim_matches(['[', ']']);
    let addresses: Vec<std::net::IpAddr> = match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) if policy.allows_host(bare) => vec![],
        // bounded, so that a slow resolver cannot hold the request
        Err(_) => tokio::time::timeout(
            std::time::Duration::from_secs(3),
            tokio::net::lookup_host((bare, url.port_or_known_default().unwrap_or(443))),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .map(|found| found.map(|a| a.ip()).collect())
        .unwrap_or_default(),
    };
    for ip in addresses {
        if let Some(why) = policy.refusal(ip) {
            return Err(bad(&format!(
                "`{bare}` resolves to {ip}, {why}; webhooks are not sent to internal addresses unless \
                 CUTOVER_WEBHOOK_ALLOW_HOSTS allows them"
            )));
        }
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
        (status = 400, description = "Bad input: a URL that is not http(s) with a host, or that resolves to a loopback, private, link-local or metadata address not allowed by `CUTOVER_WEBHOOK_ALLOW_HOSTS`, or an unknown event type (`BadUserInput`)", body = ErrorBody),
        (status = 403, description = "Not an admin key: a read-only one (refused by `auth`) or a server one (`AccessDeniedError`)", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Json(body): Json<CreateWebhook>,
) -> Result<Json<Data<CreatedWebhook>>, ApiError> {
    require_admin(&caller)?;
    let url = checked_url(&body.url, &state.settings.webhook_policy).await?;
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
    KnownQuery(query): KnownQuery<PageQuery>,
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
    KnownQuery(query): KnownQuery<PageQuery>,
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    /// An http or https URL with a host, at most 2048 characters.
    #[schema(min_length = 1, max_length = 2048, pattern = "^[hH][tT][tT][pP][sS]?://[^\\s/?#]")]
    url: Option<String>,
    #[schema(value_type = Option<Vec<WebhookEventType>>, min_items = 1)]
    events: Option<Vec<String>>,
    /// False: no new deliveries; those already written wait until it is enabled again.
    enabled: Option<bool>,
}

/// `PATCH /api/v1/webhooks/{id}` `{"url"?, "events"?, "enabled"?}`: what is given changes.
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", operation_id = "WebhookController_updateWebhook", tag = WEBHOOKS, params(("id" = String, Path)), request_body = UpdateWebhook,
    responses((status = 200, description = "The endpoint as it now is", body = Data<WebhookView>),
        (status = 400, description = "Bad input: nothing to change, a URL refused as on create, or an unknown event type (`BadUserInput`); nothing changes", body = ErrorBody),
        (status = 403, description = "Not an admin key: a read-only one (refused by `auth`) or a server one (`AccessDeniedError`)", body = ErrorBody),
        (status = 404, description = "No such webhook (`NotFound`)", body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    Json(body): Json<UpdateWebhook>,
) -> Result<Json<Data<WebhookView>>, ApiError> {
    require_admin(&caller)?;
    let webhook = parse_id(&id, "webhook")?;
    if body.url.is_none() && body.events.is_none() && body.enabled.is_none() {
        return Err(ApiError::bad_input("nothing to change: give url, events or enabled"));
    }
    let url = match &body.url {
        Some(url) => Some(checked_url(url, &state.settings.webhook_policy).await?),
        None => None,
    };
    let events = body.events.as_deref().map(checked_events).transpose()?;
    let endpoint = store::webhooks::update_endpoint(
        &state.pool,
        caller.environment_id,
        webhook,
        url.as_deref(),
        events.as_deref(),
        body.enabled,
    )
    .await?
    .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("webhook `{id}` not found")))?;
    tracing::info!(webhook_id = %webhook, enabled = endpoint.enabled, "webhook updated");
    Ok(Json(Data { data: endpoint_view(&endpoint) }))
}

/// The exact body a delivery sends (and signs), with its event's id and type.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PayloadView {
    delivery_id: Uuid,
    event_id: Uuid,
    /// A `WebhookEventType`, or `ping` for a test event.
    #[serde(rename = "type")]
    event_type: String,
    /// The raw request body, byte for byte as sent and signed.
    body: String,
}

/// `GET /api/v1/webhooks/deliveries/{id}/payload`: the exact body sent and signed.
#[utoipa::path(get, path = "/api/v1/webhooks/deliveries/{id}/payload", operation_id = "WebhookController_getWebhookDeliveryPayload", tag = WEBHOOKS, params(("id" = String, Path)),
    responses((status = 200, description = "The delivery's event body, as sent", body = Data<PayloadView>),
        (status = 404, description = "No such delivery (`NotFound`)", body = ErrorBody)))]
pub async fn payload(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Data<PayloadView>>, ApiError> {
    let found = store::webhooks::payload(&state.pool, caller.environment_id, parse_id(&id, "delivery")?)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("delivery `{id}` not found")))?;
    Ok(Json(Data {
        data: PayloadView {
            delivery_id: found.delivery_id,
            event_id: found.event_id,
            event_type: found.event_type,
            body: found.body,
        },
    }))
}

/// `POST /api/v1/webhooks/{id}/test`: a signed `ping` event, delivered like any other.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/test", operation_id = "WebhookController_testWebhook", tag = WEBHOOKS, params(("id" = String, Path)),
    responses((status = 200, description = "The `ping` event's delivery, due now", body = Data<DeliveryView>),
        (status = 400, description = "The webhook is disabled (`BadUserInput`)", body = ErrorBody),
        (status = 403, description = "Not an admin key: a read-only one (refused by `auth`) or a server one (`AccessDeniedError`)", body = ErrorBody),
        (status = 404, description = "No such webhook (`NotFound`)", body = ErrorBody)))]
pub async fn send_test(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Data<DeliveryView>>, ApiError> {
    require_admin(&caller)?;
    let webhook = parse_id(&id, "webhook")?;
    let mut tx = state.begin().await?;
    let delivery = store::webhooks::send_test(&mut tx, caller.environment_id, webhook, &caller.key_prefix).await?;
    tx.commit(&state.hooks()).await?;
    tracing::info!(webhook_id = %webhook, delivery_id = %delivery.id, "webhook test event written");
    Ok(Json(Data { data: delivery_view(&delivery, &[]) }))
}

/// Longest overlap a rotation may ask for: a week.
const MAX_OVERLAP_SECONDS: u64 = 7 * 24 * 3600;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RotateSecret {
    /// How long deliveries also carry a signature with the old secret: 0 to 604800 seconds,
    /// 86400 (a day) when not given.
    #[schema(minimum = 0, maximum = 604800)]
    overlap_seconds: Option<u64>,
}

/// What a rotation answers: the endpoint and its new secret, shown once.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotatedSecret {
    #[serde(flatten)]
    webhook: WebhookView,
    secret: String,
}

/// `POST /api/v1/webhooks/{id}/rotate-secret` `{"overlapSeconds"?}`: a new signing secret,
/// answered once; until the overlap ends deliveries carry both signatures
/// (`Cutover-Signature: v1=<new>,v1=<old>`), then only the new one.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/rotate-secret", operation_id = "WebhookController_rotateWebhookSecret", tag = WEBHOOKS, params(("id" = String, Path)), request_body(content = Option<RotateSecret>),
    responses((status = 200, description = "The endpoint with its new secret (shown only here)", body = Data<RotatedSecret>),
        (status = 400, description = "An overlap out of range (`BadUserInput`); nothing changes", body = ErrorBody),
        (status = 403, description = "Not an admin key: a read-only one (refused by `auth`) or a server one (`AccessDeniedError`)", body = ErrorBody),
        (status = 404, description = "No such webhook (`NotFound`)", body = ErrorBody)))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Data<RotatedSecret>>, ApiError> {
    require_admin(&caller)?;
    let webhook = parse_id(&id, "webhook")?;
    // the body is optional: none (or `null`, or `{}`) asks for the default overlap
    let body: RotateSecret = if body.iter().all(u8::is_ascii_whitespace) {
        RotateSecret::default()
    } else {
        serde_json::from_slice::<Option<RotateSecret>>(&body)
            .map_err(|e| ApiError::bad_input(format!("invalid body: {e}")))?
            .unwrap_or_default()
    };
    let overlap = body.overlap_seconds.unwrap_or(24 * 3600);
    if overlap > MAX_OVERLAP_SECONDS {
        return Err(ApiError::bad_input("overlapSeconds must be 0 to 604800 (a week)"));
    }
    let rotated = store::webhooks::rotate_secret(
        &state.pool,
        caller.environment_id,
        webhook,
        std::time::Duration::from_secs(overlap),
    )
    .await?
    .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("webhook `{id}` not found")))?;
    tracing::info!(webhook_id = %webhook, overlap_seconds = overlap, "webhook secret rotated");
    Ok(Json(Data { data: RotatedSecret { webhook: endpoint_view(&rotated.endpoint), secret: rotated.secret } }))
}
