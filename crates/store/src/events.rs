//! A task's timeline: what happened to it, when, and who did it. The dashboard and the SSE
//! stream read it; nothing decides anything from it.

use crate::work::{TimelineEvent, Work};
use crate::Result;
use domain::{EnvironmentId, TaskId};
use serde_json::Value;
use sqlx::PgConnection;

/// Adds a line to a task's timeline: written when the unit of work commits, with the rest of
/// its effects (`Work::commit`), never if it rolls back.
pub fn record(
    work: &mut Work,
    environment: EnvironmentId,
    task: TaskId,
    kind: &str,
    message: &str,
    actor: Option<&str>,
    data: Value,
) {
    work.record(TimelineEvent {
        environment,
        task,
        kind: kind.to_owned(),
        message: message.to_owned(),
        actor: actor.map(str::to_owned),
        data,
    });
}

/// Writes `events` in one statement, in their order (`Work::commit` writes a unit's timeline
/// with it).
pub async fn record_all(conn: &mut PgConnection, events: &[TimelineEvent]) -> Result<()> {
    let tasks: Vec<uuid::Uuid> = events.iter().map(|e| e.task.0).collect();
    let environments: Vec<uuid::Uuid> = events.iter().map(|e| e.environment.0).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    let messages: Vec<&str> = events.iter().map(|e| e.message.as_str()).collect();
    let actors: Vec<Option<&str>> = events.iter().map(|e| e.actor.as_deref()).collect();
    let data: Vec<&Value> = events.iter().map(|e| &e.data).collect();
    sqlx::query(
        "INSERT INTO task_events (task_id, environment_id, kind, message, actor, data)
         SELECT t, e, k, m, a, d
         FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::jsonb[])
             WITH ORDINALITY AS x (t, e, k, m, a, d, n)
         ORDER BY n",
    )
    .bind(tasks)
    .bind(environments)
    .bind(kinds)
    .bind(messages)
    .bind(actors)
    .bind(data)
    .execute(conn)
    .await?;
    Ok(())
}
