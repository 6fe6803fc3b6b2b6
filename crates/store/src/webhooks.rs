//! Webhooks: endpoints, the events they subscribe to, deliveries and their attempts.
//!
//! An event is written by the transaction that makes the change it announces — a task moving
//! to a terminal status (`tasks::finish`, `finish_planning` and `fail` call `task_finished`),
//! a plan version becoming PUBLISHED (`plans` calls `plan_version_published`) — with one delivery
//! per endpoint of the environment that subscribed to its type. So an event exists exactly
//! when its change committed, and is never lost. Deliverers claim due deliveries with `FOR
//! UPDATE SKIP LOCKED`; a claim pushes the next attempt past the request's timeout, which is
//! the claim's lease. The event's id and body are fixed when it is written, so every attempt
//! and replay sends the same bytes and receivers can dedupe on the id.
//!
//! Signing secrets are generated here, answered once by `create_endpoint` or `rotate_secret`
//! (whose predecessor signs too until its overlap ends), and otherwise only
//! handed to a deliverer (`DueDelivery`, whose `Debug` hides it). Nothing here sends HTTP.

use crate::{page, Page, Result, StoreError};
use chrono::{DateTime, Utc};
use domain::{EnvironmentId, ErrorCode, WebhookEventType};
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// A registered endpoint, as callers see it (never with its secret), with its health as its
/// recorded attempts tell it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Endpoint {
    pub id: Uuid,
    pub seq: i64,
    pub url: String,
    pub events: Vec<String>,
    /// A disabled endpoint gets no new deliveries, and those already written wait.
    pub enabled: bool,
    pub created_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub secret_rotated_at: Option<DateTime<Utc>>,
    /// Until when deliveries are also signed with the secret before the last rotation; `None`
    /// once that overlap has passed.
    pub previous_secret_until: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    /// The last attempt the receiver accepted (a 2xx answer).
    pub last_success_at: Option<DateTime<Utc>>,
    /// Failed attempts since the last accepted one (all of them, if none was accepted).
    pub failing_streak: i64,
}

/// An endpoint with its health: the latest attempt, the latest accepted one, and the failed
/// attempts since.
const ENDPOINT: &str =
    "SELECT w.id, w.seq, w.url, w.events, w.enabled, w.created_by, w.created_at, w.secret_rotated_at,
        CASE WHEN w.previous_secret_until > now() THEN w.previous_secret_until END AS previous_secret_until,
        h.last_attempt_at, h.last_status_code, h.last_error, s.last_success_at, f.failing_streak
    FROM webhook_endpoints w
    LEFT JOIN LATERAL (
        SELECT max(a.started_at) AS last_success_at
        FROM webhook_deliveries d JOIN webhook_attempts a ON a.delivery_id = d.id
        WHERE d.endpoint_id = w.id AND a.status_code BETWEEN 200 AND 299
    ) s ON true
    LEFT JOIN LATERAL (
        SELECT a.started_at AS last_attempt_at, a.status_code AS last_status_code, a.error AS last_error
        FROM webhook_deliveries d JOIN webhook_attempts a ON a.delivery_id = d.id
        WHERE d.endpoint_id = w.id ORDER BY a.started_at DESC LIMIT 1
    ) h ON true
    LEFT JOIN LATERAL (
        SELECT count(*) AS failing_streak
        FROM webhook_deliveries d JOIN webhook_attempts a ON a.delivery_id = d.id
        WHERE d.endpoint_id = w.id AND (a.status_code IS NULL OR a.status_code NOT BETWEEN 200 AND 299)
          AND (s.last_success_at IS NULL OR a.started_at > s.last_success_at)
    ) f ON true";

/// An endpoint just created, with its signing secret: the only time the secret leaves here
/// for a caller.
pub struct CreatedEndpoint {
    pub endpoint: Endpoint,
    pub secret: String,
}

impl std::fmt::Debug for CreatedEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedEndpoint").field("endpoint", &self.endpoint).field("secret", &"[redacted]").finish()
    }
}

fn new_secret() -> String {
    let random: String = rand::thread_rng().sample_iter(&Alphanumeric).take(40).map(char::from).collect();
    format!("whsec_{random}")
}

/// Registers an endpoint for `events` (already checked against the fixed set).
pub async fn create_endpoint(
    pool: &PgPool,
    env: EnvironmentId,
    url: &str,
    events: &[WebhookEventType],
    created_by: &str,
) -> Result<CreatedEndpoint> {
    let secret = new_secret();
    let events: Vec<&str> = events.iter().map(|e| e.as_str()).collect();
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, environment_id, url, events, secret, created_by)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(env.0)
    .bind(url)
    .bind(&events)
    .bind(&secret)
    .bind(created_by)
    .execute(pool)
    .await?;
    let endpoint =
        sqlx::query_as::<_, Endpoint>(&format!("{ENDPOINT} WHERE w.id = $1")).bind(id).fetch_one(pool).await?;
    Ok(CreatedEndpoint { endpoint, secret })
}

/// Oldest first, a page at a time.
pub async fn list_endpoints(
    pool: &PgPool,
    env: EnvironmentId,
    after: Option<i64>,
    limit: i64,
) -> Result<Page<Endpoint>> {
    let rows = sqlx::query_as::<_, Endpoint>(&format!(
        "{ENDPOINT} WHERE w.environment_id = $1 AND ($2::bigint IS NULL OR w.seq > $2)
         ORDER BY w.seq LIMIT $3"
    ))
    .bind(env.0)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    Ok(page(rows, limit, |e| e.seq))
}

pub async fn get_endpoint(pool: &PgPool, env: EnvironmentId, id: Uuid) -> Result<Option<Endpoint>> {
    Ok(sqlx::query_as::<_, Endpoint>(&format!("{ENDPOINT} WHERE w.environment_id = $1 AND w.id = $2"))
        .bind(env.0)
        .bind(id)
        .fetch_optional(pool)
        .await?)
}

/// Changes what is given of `url`, `events` (already checked) and `enabled`. `None` when there
/// is no such endpoint in `env`.
pub async fn update_endpoint(
    pool: &PgPool,
    env: EnvironmentId,
    id: Uuid,
    url: Option<&str>,
    events: Option<&[WebhookEventType]>,
    enabled: Option<bool>,
) -> Result<Option<Endpoint>> {
    let events: Option<Vec<&str>> = events.map(|events| events.iter().map(|e| e.as_str()).collect());
    let updated = sqlx::query(
        "UPDATE webhook_endpoints SET url = coalesce($3, url), events = coalesce($4, events),
            enabled = coalesce($5, enabled)
         WHERE environment_id = $1 AND id = $2",
    )
    .bind(env.0)
    .bind(id)
    .bind(url)
    .bind(events)
    .bind(enabled)
    .execute(pool)
    .await?
    .rows_affected();
    if updated == 0 {
        return Ok(None);
    }
    get_endpoint(pool, env, id).await
}

/// Gives an endpoint a new signing secret, answered here once. Until `overlap` has passed,
/// deliveries are signed with the new secret and the one it replaces (a second rotation within
/// the overlap drops the oldest). `None` when there is no such endpoint in `env`.
pub async fn rotate_secret(
    pool: &PgPool,
    env: EnvironmentId,
    id: Uuid,
    overlap: std::time::Duration,
) -> Result<Option<CreatedEndpoint>> {
    let secret = new_secret();
    let updated = sqlx::query(
        "UPDATE webhook_endpoints SET previous_secret = secret, secret = $3, secret_rotated_at = now(),
            previous_secret_until = now() + make_interval(secs => $4)
         WHERE environment_id = $1 AND id = $2",
    )
    .bind(env.0)
    .bind(id)
    .bind(&secret)
    .bind(overlap.as_secs_f64())
    .execute(pool)
    .await?
    .rows_affected();
    if updated == 0 {
        return Ok(None);
    }
    Ok(get_endpoint(pool, env, id).await?.map(|endpoint| CreatedEndpoint { endpoint, secret }))
}

/// Writes a `ping` event for one endpoint and a delivery of it, due now: a test that goes the
/// way every delivery goes (claimed by a deliverer, signed, every attempt recorded). Refused for
/// a disabled endpoint, which gets no new deliveries.
pub async fn send_test(
    conn: &mut PgConnection,
    env: EnvironmentId,
    endpoint_id: Uuid,
    actor: &str,
) -> Result<Delivery> {
    let enabled: Option<bool> =
        sqlx::query_scalar("SELECT enabled FROM webhook_endpoints WHERE environment_id = $1 AND id = $2 FOR SHARE")
            .bind(env.0)
            .bind(endpoint_id)
            .fetch_optional(&mut *conn)
            .await?;
    match enabled {
        None => return Err(StoreError::rejected(ErrorCode::NotFound, format!("webhook `{endpoint_id}` not found"))),
        Some(false) => {
            return Err(StoreError::rejected(
                ErrorCode::BadUserInput,
                format!("webhook `{endpoint_id}` is disabled; enable it to send it a test event"),
            ))
        }
        Some(true) => {}
    }
    let event_id = Uuid::new_v4();
    let created_at = Utc::now();
    let body = json!({
        "id": event_id, "type": PING, "createdAt": created_at,
        "data": { "webhookId": endpoint_id, "requestedBy": actor },
    })
    .to_string();
    sqlx::query(
        "INSERT INTO webhook_events (id, environment_id, event_type, body, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(event_id)
    .bind(env.0)
    .bind(PING)
    .bind(&body)
    .bind(created_at)
    .execute(&mut *conn)
    .await?;
    let id = Uuid::new_v4();
    sqlx::query("INSERT INTO webhook_deliveries (id, environment_id, endpoint_id, event_id) VALUES ($1, $2, $3, $4)")
        .bind(id)
        .bind(env.0)
        .bind(endpoint_id)
        .bind(event_id)
        .execute(&mut *conn)
        .await?;
    Ok(sqlx::query_as::<_, Delivery>(&format!("{DELIVERY} WHERE d.id = $1")).bind(id).fetch_one(&mut *conn).await?)
}

/// The type of the event a test sends; no endpoint subscribes to it.
pub const PING: &str = "ping";

/// The event a delivery carries, with the exact body that is signed and sent.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Payload {
    pub delivery_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub body: String,
}

/// The payload of a delivery of `env`; `None` when there is no such delivery.
pub async fn payload(pool: &PgPool, env: EnvironmentId, delivery_id: Uuid) -> Result<Option<Payload>> {
    Ok(sqlx::query_as::<_, Payload>(
        "SELECT d.id AS delivery_id, e.id AS event_id, e.event_type, e.body
         FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id
         WHERE d.environment_id = $1 AND d.id = $2",
    )
    .bind(env.0)
    .bind(delivery_id)
    .fetch_optional(pool)
    .await?)
}

/// Deletes an endpoint with its deliveries and their attempts: nothing more is sent to it.
/// False when there is no such endpoint in `env`.
pub async fn delete_endpoint(pool: &PgPool, env: EnvironmentId, id: Uuid) -> Result<bool> {
    let deleted = sqlx::query("DELETE FROM webhook_endpoints WHERE environment_id = $1 AND id = $2")
        .bind(env.0)
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected();
    Ok(deleted == 1)
}

/// Writes an event of `event_type` with `data`, and one delivery for every endpoint of `env`
/// subscribed to it, in the caller's transaction. With no such endpoint nothing is written.
/// One statement, so the transactions that finish tasks pay one round trip for it.
pub async fn emit(
    conn: &mut PgConnection,
    env: EnvironmentId,
    event_type: WebhookEventType,
    data: Value,
) -> Result<()> {
    let id = Uuid::new_v4();
    let created_at = Utc::now();
    let body = json!({ "id": id, "type": event_type.as_str(), "createdAt": created_at, "data": data }).to_string();
    sqlx::query(
        "WITH endpoints AS (
            SELECT id FROM webhook_endpoints WHERE environment_id = $2 AND $3 = ANY(events) AND enabled
        ), event AS (
            INSERT INTO webhook_events (id, environment_id, event_type, body, created_at)
            SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM endpoints)
            RETURNING id
        )
        INSERT INTO webhook_deliveries (id, environment_id, endpoint_id, event_id)
        SELECT gen_random_uuid(), $2, endpoints.id, event.id FROM endpoints, event",
    )
    .bind(id)
    .bind(env.0)
    .bind(event_type.as_str())
    .bind(&body)
    .bind(created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether any enabled endpoint of `env` subscribes to `event_type`: most environments have none, and
/// one cheap look saves reading what the event would carry.
pub async fn subscribed(conn: &mut PgConnection, env: EnvironmentId, event_type: WebhookEventType) -> Result<bool> {
    Ok(subscriptions(conn, &[env]).await?.hears(env, event_type))
}

/// Which event types the enabled endpoints of `envs` subscribe to, as `(environment, event
/// type)` pairs, in one statement: what a unit of work asks once before announcing its changes.
pub async fn subscriptions(conn: &mut PgConnection, envs: &[EnvironmentId]) -> Result<Subscriptions> {
    let envs: Vec<Uuid> = envs.iter().map(|env| env.0).collect();
    let pairs: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT DISTINCT environment_id, unnest(events) FROM webhook_endpoints
         WHERE environment_id = ANY($1) AND enabled",
    )
    .bind(&envs)
    .fetch_all(conn)
    .await?;
    Ok(Subscriptions(pairs.into_iter().collect()))
}

/// The event types some enabled endpoint of an environment subscribes to (`subscriptions`).
#[derive(Debug, Default)]
pub struct Subscriptions(std::collections::HashSet<(Uuid, String)>);

impl Subscriptions {
    pub fn hears(&self, env: EnvironmentId, event_type: WebhookEventType) -> bool {
        self.0.contains(&(env.0, event_type.as_str().to_owned()))
    }
}

/// Where a delivery stands. Stored as PENDING, DELIVERED or FAILED; a PENDING delivery with a
/// recorded (failed) attempt is RETRYING.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Not attempted yet, or its first attempt is in flight.
    Pending,
    /// Failed at least once; due again at `next_attempt_at`.
    Retrying,
    Delivered,
    /// Out of attempts.
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "PENDING",
            DeliveryState::Retrying => "RETRYING",
            DeliveryState::Delivered => "DELIVERED",
            DeliveryState::Failed => "FAILED",
        }
    }

    /// The state of a delivery stored as `status` with `recorded` attempts on record. Any other
    /// stored status is an error, never read as some default.
    pub fn from_stored(status: &str, recorded: i64) -> std::result::Result<Self, String> {
        match status {
            "PENDING" if recorded == 0 => Ok(DeliveryState::Pending),
            "PENDING" => Ok(DeliveryState::Retrying),
            "DELIVERED" => Ok(DeliveryState::Delivered),
            "FAILED" => Ok(DeliveryState::Failed),
            other => Err(format!("unknown webhook delivery status `{other}`")),
        }
    }

    /// Whether it may still be attempted.
    pub fn is_open(self) -> bool {
        matches!(self, DeliveryState::Pending | DeliveryState::Retrying)
    }
}

/// One delivery of an event to an endpoint, with what the dashboard and the api show of it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: Uuid,
    pub seq: i64,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub event_created_at: DateTime<Utc>,
    pub state: DeliveryState,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub replay_of: Option<Uuid>,
    pub replayed_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl sqlx::FromRow<'_, sqlx::postgres::PgRow> for Delivery {
    fn from_row(row: &sqlx::postgres::PgRow) -> sqlx::Result<Self> {
        use sqlx::Row;
        let status: String = row.try_get("status")?;
        let state = DeliveryState::from_stored(&status, row.try_get("recorded_attempts")?)
            .map_err(|e| sqlx::Error::ColumnDecode { index: "status".into(), source: e.into() })?;
        Ok(Self {
            id: row.try_get("id")?,
            seq: row.try_get("seq")?,
            endpoint_id: row.try_get("endpoint_id")?,
            event_id: row.try_get("event_id")?,
            event_type: row.try_get("event_type")?,
            event_created_at: row.try_get("event_created_at")?,
            state,
            attempts: row.try_get("attempts")?,
            next_attempt_at: row.try_get("next_attempt_at")?,
            replay_of: row.try_get("replay_of")?,
            replayed_by: row.try_get("replayed_by")?,
            created_at: row.try_get("created_at")?,
            finished_at: row.try_get("finished_at")?,
        })
    }
}

const DELIVERY: &str = "SELECT d.id, d.seq, d.endpoint_id, d.event_id, e.event_type, e.created_at AS event_created_at,
        d.status, (SELECT count(*) FROM webhook_attempts a WHERE a.delivery_id = d.id) AS recorded_attempts,
        d.attempts, d.next_attempt_at, d.replay_of, d.replayed_by, d.created_at, d.finished_at
    FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id";

/// One attempt at a delivery: what was sent when, and what came back.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Attempt {
    pub delivery_id: Uuid,
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i32,
    pub status_code: Option<i32>,
    pub response_body: Option<String>,
    pub error: Option<String>,
}

/// An endpoint's deliveries, newest first, with their attempts (oldest first).
pub async fn deliveries(
    pool: &PgPool,
    env: EnvironmentId,
    endpoint_id: Uuid,
    after: Option<i64>,
    limit: i64,
) -> Result<Option<(Page<Delivery>, Vec<Attempt>)>> {
    if get_endpoint(pool, env, endpoint_id).await?.is_none() {
        return Ok(None);
    }
    let rows = sqlx::query_as::<_, Delivery>(&format!(
        "{DELIVERY} WHERE d.environment_id = $1 AND d.endpoint_id = $2 AND ($3::bigint IS NULL OR d.seq < $3)
         ORDER BY d.seq DESC LIMIT $4"
    ))
    .bind(env.0)
    .bind(endpoint_id)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let page = page(rows, limit, |d| d.seq);
    let ids: Vec<Uuid> = page.items.iter().map(|d| d.id).collect();
    let attempts = sqlx::query_as::<_, Attempt>(
        "SELECT delivery_id, attempt, started_at, duration_ms, status_code, response_body, error
         FROM webhook_attempts WHERE delivery_id = ANY($1) ORDER BY delivery_id, attempt",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    Ok(Some((page, attempts)))
}

/// Sends a delivery's event to its endpoint again, as a new delivery due now (same event id,
/// same body) that records who asked for it. A delivery still PENDING is refused: it is being
/// delivered already.
pub async fn replay(conn: &mut PgConnection, env: EnvironmentId, delivery_id: Uuid, actor: &str) -> Result<Delivery> {
    let found: Option<(Uuid, Uuid, String)> = sqlx::query_as(
        "SELECT endpoint_id, event_id, status FROM webhook_deliveries
         WHERE environment_id = $1 AND id = $2 FOR SHARE",
    )
    .bind(env.0)
    .bind(delivery_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((endpoint_id, event_id, status)) = found else {
        return Err(StoreError::rejected(ErrorCode::NotFound, format!("delivery `{delivery_id}` not found")));
    };
    if status == "PENDING" {
        return Err(StoreError::rejected(
            ErrorCode::BadUserInput,
            format!("delivery `{delivery_id}` is still being delivered; replay it once it has ended"),
        ));
    }
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, environment_id, endpoint_id, event_id, replay_of, replayed_by)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(env.0)
    .bind(endpoint_id)
    .bind(event_id)
    .bind(delivery_id)
    .bind(actor)
    .execute(&mut *conn)
    .await?;
    Ok(sqlx::query_as::<_, Delivery>(&format!("{DELIVERY} WHERE d.id = $1")).bind(id).fetch_one(&mut *conn).await?)
}

/// A delivery a deliverer claimed: where to send what, signed with which secret.
pub struct DueDelivery {
    pub id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub endpoint_id: Uuid,
    /// 1 for the first attempt.
    pub attempt: i32,
    pub url: String,
    pub secret: String,
    /// The secret before the last rotation, while its overlap lasts: deliveries carry a
    /// signature with each.
    pub previous_secret: Option<String>,
    pub body: String,
}

impl std::fmt::Debug for DueDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DueDelivery")
            .field("id", &self.id)
            .field("event_id", &self.event_id)
            .field("event_type", &self.event_type)
            .field("endpoint_id", &self.endpoint_id)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl sqlx::FromRow<'_, sqlx::postgres::PgRow> for DueDelivery {
    fn from_row(row: &sqlx::postgres::PgRow) -> sqlx::Result<Self> {
        use sqlx::Row;
        Ok(Self {
            id: row.try_get("id")?,
            event_id: row.try_get("event_id")?,
            event_type: row.try_get("event_type")?,
            endpoint_id: row.try_get("endpoint_id")?,
            attempt: row.try_get("attempt")?,
            url: row.try_get("url")?,
            secret: row.try_get("secret")?,
            previous_secret: row.try_get("previous_secret")?,
            body: row.try_get("body")?,
        })
    }
}

/// Claims up to `limit` due deliveries of enabled endpoints (a disabled one's wait): counts the
/// attempt and moves the next one `lease` ahead,
/// so that no other deliverer sends them meanwhile. Committed on its own, before the request
/// goes out; should the deliverer die mid-request, the delivery is due again once the lease
/// has passed.
pub async fn claim_due(pool: &PgPool, limit: i64, lease: std::time::Duration) -> Result<Vec<DueDelivery>> {
    Ok(sqlx::query_as::<_, DueDelivery>(
        "WITH due AS (
            SELECT id FROM webhook_deliveries
            WHERE status = 'PENDING' AND next_attempt_at <= now()
              AND EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.id = endpoint_id AND w.enabled)
            ORDER BY next_attempt_at LIMIT $1
            FOR UPDATE SKIP LOCKED
        )
        UPDATE webhook_deliveries d
        SET attempts = d.attempts + 1, next_attempt_at = now() + make_interval(secs => $2), updated_at = now()
        FROM due, webhook_endpoints w, webhook_events e
        WHERE d.id = due.id AND w.id = d.endpoint_id AND e.id = d.event_id
        RETURNING d.id, d.event_id, e.event_type, d.endpoint_id, d.attempts AS attempt, w.url, w.secret,
            CASE WHEN w.previous_secret_until > now() THEN w.previous_secret END AS previous_secret, e.body",
    )
    .bind(limit)
    .bind(lease.as_secs_f64())
    .fetch_all(pool)
    .await?)
}

/// What one attempt came to.
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    pub started_at: DateTime<Utc>,
    pub duration_ms: i32,
    pub status_code: Option<i32>,
    pub response_body: Option<String>,
    pub error: Option<String>,
    /// The receiver accepted it (a 2xx answer).
    pub delivered: bool,
}

/// What became of the delivery after an attempt was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    Delivered,
    /// Due again after the backoff.
    Retrying,
    /// Out of attempts.
    Failed,
    /// Nothing to settle: the delivery is gone (its endpoint was deleted), already ended, or
    /// another deliverer claimed a later attempt.
    Gone,
}

/// Records attempt number `attempt` of a delivery and settles it: DELIVERED on success, FAILED
/// when `attempt` reached `max_attempts`, else due again after `retry_in`. One transaction.
pub async fn record_attempt(
    pool: &PgPool,
    delivery_id: Uuid,
    attempt: i32,
    outcome: &AttemptOutcome,
    max_attempts: i32,
    retry_in: std::time::Duration,
) -> Result<Settled> {
    let mut tx = pool.begin().await?;
    let current: Option<(String, i32)> =
        sqlx::query_as("SELECT status, attempts FROM webhook_deliveries WHERE id = $1 FOR UPDATE")
            .bind(delivery_id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((status, claimed)) = current else {
        return Ok(Settled::Gone);
    };
    // the attempt happened, whoever settles the delivery
    sqlx::query(
        "INSERT INTO webhook_attempts (delivery_id, attempt, started_at, duration_ms, status_code, response_body, error)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (delivery_id, attempt) DO NOTHING",
    )
    .bind(delivery_id)
    .bind(attempt)
    .bind(outcome.started_at)
    .bind(outcome.duration_ms)
    .bind(outcome.status_code)
    .bind(&outcome.response_body)
    .bind(&outcome.error)
    .execute(&mut *tx)
    .await?;
    // a failure settles nothing once another deliverer has claimed a later attempt
    if status != "PENDING" || (claimed != attempt && !outcome.delivered) {
        tx.commit().await?;
        return Ok(Settled::Gone);
    }
    let settled = if outcome.delivered {
        Settled::Delivered
    } else if attempt >= max_attempts {
        Settled::Failed
    } else {
        Settled::Retrying
    };
    let status = match settled {
        Settled::Delivered => "DELIVERED",
        Settled::Failed => "FAILED",
        _ => "PENDING",
    };
    sqlx::query(
        "UPDATE webhook_deliveries SET status = $2,
            next_attempt_at = CASE WHEN $2 = 'PENDING' THEN now() + make_interval(secs => $3) ELSE next_attempt_at END,
            finished_at = CASE WHEN $2 = 'PENDING' THEN NULL ELSE now() END, updated_at = now()
         WHERE id = $1",
    )
    .bind(delivery_id)
    .bind(status)
    .bind(retry_in.as_secs_f64())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(settled)
}

#[cfg(test)]
mod tests {
    use super::DeliveryState;

    #[test]
    fn a_pending_delivery_with_a_recorded_attempt_is_retrying_and_unknown_states_are_errors() {
        assert_eq!(DeliveryState::from_stored("PENDING", 0), Ok(DeliveryState::Pending));
        assert_eq!(DeliveryState::from_stored("PENDING", 4), Ok(DeliveryState::Retrying));
        assert_eq!(DeliveryState::from_stored("DELIVERED", 2), Ok(DeliveryState::Delivered));
        assert_eq!(DeliveryState::from_stored("FAILED", 10), Ok(DeliveryState::Failed));
        assert!(DeliveryState::from_stored("RETRYING", 1).is_err());
        assert!(DeliveryState::from_stored("pending", 0).is_err());
    }
}
