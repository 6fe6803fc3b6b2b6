//! A task's timeline: what happened to it, when, and who did it. The dashboard and the SSE
//! stream read it; nothing decides anything from it.

use crate::Result;
use domain::{EnvironmentId, TaskId};
use serde_json::Value;
use sqlx::PgConnection;

pub async fn record(
    conn: &mut PgConnection,
    environment: EnvironmentId,
    task: TaskId,
    kind: &str,
    message: &str,
    actor: Option<&str>,
    data: Value,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO task_events (task_id, environment_id, kind, message, actor, data)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(task.0)
    .bind(environment.0)
    .bind(kind)
    .bind(message)
    .bind(actor)
    .bind(data)
    .execute(conn)
    .await?;
    Ok(())
}
