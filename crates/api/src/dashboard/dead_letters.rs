//! The dashboard's dead letters: the messages the workers moved from the dead-letter queue
//! into Postgres, with why each died; replay (through the outbox, never over AMQP from here)
//! and discard, each recorded with who did it.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Path, Query};
use crate::AppState;
use axum::extract::State;
use axum::Json;
use domain::ErrorCode;
use serde::Deserialize;
use serde_json::{json, Value};
use store::dead_letters::DeadLetter;

const STATUSES: [&str; 3] = ["DEAD", "REPLAYED", "DISCARDED"];

fn summary(d: &DeadLetter) -> Value {
    json!({
        "id": d.id, "taskId": d.task_id, "jobKind": d.job_kind, "batchSeq": d.batch_seq,
        "reason": d.reason, "causeCode": d.cause_code, "cause": d.cause, "deathCount": d.death_count,
        "originalQueue": d.original_queue, "routingKey": d.routing_key, "deadAt": d.dead_at,
        "receivedAt": d.received_at, "status": d.status, "resolvedBy": d.resolved_by, "resolvedAt": d.resolved_at,
        "bytes": d.body.len(),
    })
}

fn detail(d: &DeadLetter) -> Value {
    let mut out = summary(d);
    // the body as received: as text when it is UTF-8, else each byte in hex
    let (body, encoding) = match std::str::from_utf8(&d.body) {
        Ok(text) => (text.to_owned(), "utf-8"),
        Err(_) => (d.body.iter().map(|b| format!("{b:02x}")).collect::<String>(), "hex"),
    };
    out["body"] = json!(body);
    out["bodyEncoding"] = json!(encoding);
    out["headers"] = d.headers.clone();
    out
}

/// Whether the caller is of the operator environment, the only one that sees and resolves the
/// dead letters that belong to no environment; others get 404 for them, as for any letter
/// that is not theirs.
pub(crate) async fn is_operator(state: &AppState, env: domain::EnvironmentId) -> Result<bool, ApiError> {
    let Some(name) = state.settings.operator_environment.as_deref() else { return Ok(false) };
    Ok(store::api_keys::environment_named(&state.pool, name).await? == Some(env))
}

fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse::<i64>().map_err(|_| ApiError::new(ErrorCode::BadUserInput, format!("`{id}` is not a dead letter id")))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    status: Option<String>,
}

/// `GET /dashboard/api/dead-letters[?status=DEAD]`: the newest 200.
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let status = query.status.as_deref().map(str::trim).filter(|s| !s.is_empty());
    if let Some(s) = status {
        if !STATUSES.contains(&s) {
            return Err(ApiError::new(
                ErrorCode::BadUserInput,
                format!("status must be one of {}", STATUSES.join(", ")),
            ));
        }
    }
    let operator = is_operator(&state, caller.environment_id).await?;
    let rows = store::dead_letters::list(&state.pool, caller.environment_id, operator, status, 200).await?;
    Ok(Json(json!({ "data": rows.iter().map(summary).collect::<Vec<_>>() })))
}

/// `GET /dashboard/api/dead-letters/{id}`: one message, body and headers included.
pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let operator = is_operator(&state, caller.environment_id).await?;
    let letter = store::dead_letters::get(&state.pool, caller.environment_id, operator, parse_id(&id)?)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("dead letter {id} not found")))?;
    Ok(Json(json!({ "data": detail(&letter) })))
}

/// `POST /dashboard/api/dead-letters/{id}/replay`
pub async fn replay(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let operator = is_operator(&state, caller.environment_id).await?;
    let mut tx = state.begin().await?;
    let done = store::dead_letters::replay(&mut tx, caller.environment_id, operator, id, &caller.key_prefix).await?;
    tx.commit(&state.hooks()).await?;
    tracing::info!(dead_letter = id, task_id = %done.task.id, reopened = done.reopened, "dead letter replayed");
    Ok(Json(
        json!({ "data": { "deadLetter": detail(&done.letter), "task": views::task::task(&done.task, None), "reopened": done.reopened } }),
    ))
}

/// `POST /dashboard/api/dead-letters/{id}/discard`
pub async fn discard(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let operator = is_operator(&state, caller.environment_id).await?;
    let mut tx = state.begin().await?;
    let letter = store::dead_letters::discard(&mut tx, caller.environment_id, operator, id, &caller.key_prefix).await?;
    tx.commit(&state.hooks()).await?;
    tracing::info!(dead_letter = id, "dead letter discarded");
    Ok(Json(json!({ "data": detail(&letter) })))
}
