//! `Idempotency-Key`s of the Sequence dialect's writes: each key remembers a fingerprint of the
//! request that first used it and the answer that request got, so that the same request sent
//! again gets the same answer (and the same task) without doing anything twice. The key row is
//! written in the request's own transaction: a request that fails leaves no key behind, and a
//! concurrent twin waits on the key's unique index until the first commits, then replays it.

use crate::Result;
use domain::{EnvironmentId, TaskId};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;

/// A stable fingerprint of a request: its method, path and body (serde_json sorts object keys,
/// so key order in the body does not matter).
pub fn fingerprint(method: &str, path: &str, body: &Value) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update([0]);
    hasher.update(path.as_bytes());
    hasher.update([0]);
    hasher.update(body.to_string().as_bytes());
    hasher.finalize().to_vec()
}

/// What a key says about a request.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyState {
    /// First use: the key is now held by this transaction; call `record` before committing.
    Fresh,
    /// The same request was answered before: answer it again.
    Replay { status_code: i32, response: Value, task_id: Option<TaskId> },
    /// The key was used for a different request.
    Mismatch,
}

/// Takes the key for this request, or tells how it was used before.
pub async fn begin(conn: &mut PgConnection, env: EnvironmentId, key: &str, fingerprint: &[u8]) -> Result<KeyState> {
    let inserted: Option<String> = sqlx::query_scalar(
        "INSERT INTO idempotency_keys (environment_id, key, fingerprint) VALUES ($1, $2, $3)
         ON CONFLICT (environment_id, key) DO NOTHING RETURNING key",
    )
    .bind(env.0)
    .bind(key)
    .bind(fingerprint)
    .fetch_optional(&mut *conn)
    .await?;
    if inserted.is_some() {
        return Ok(KeyState::Fresh);
    }
    let (stored, status_code, response, task_id): (Vec<u8>, Option<i32>, Option<Value>, Option<uuid::Uuid>) =
        sqlx::query_as(
            "SELECT fingerprint, status_code, response, task_id FROM idempotency_keys
             WHERE environment_id = $1 AND key = $2",
        )
        .bind(env.0)
        .bind(key)
        .fetch_one(&mut *conn)
        .await?;
    if stored != fingerprint {
        return Ok(KeyState::Mismatch);
    }
    Ok(KeyState::Replay {
        status_code: status_code.unwrap_or(200),
        response: response.unwrap_or(Value::Null),
        task_id: task_id.map(TaskId),
    })
}

/// Stores the answer a fresh key's request got, in the request's transaction.
pub async fn record(
    conn: &mut PgConnection,
    env: EnvironmentId,
    key: &str,
    status_code: i32,
    response: &Value,
    task_id: Option<TaskId>,
) -> Result<()> {
    sqlx::query(
        "UPDATE idempotency_keys SET status_code = $3, response = $4, task_id = $5
         WHERE environment_id = $1 AND key = $2",
    )
    .bind(env.0)
    .bind(key)
    .bind(status_code)
    .bind(response)
    .bind(task_id.map(|t| t.0))
    .execute(conn)
    .await?;
    Ok(())
}
