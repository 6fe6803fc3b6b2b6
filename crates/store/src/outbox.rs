//! The transactional outbox: a job is written in the same transaction as the state it refers
//! to, and the relay sends it to RabbitMQ afterwards. Rows with `published_at` NULL are still to
//! be sent; a crash between commit and send only delays the message.

use crate::Result;
use domain::{Job, TaskId};
use sqlx::{PgConnection, PgPool};

/// A CTE `job` that writes the outbox row starting each task the statement's CTE `task`
/// inserted (its `id`): what every accepting statement writes with its task.
pub(crate) const JOB_OF_EACH_TASK: &str = "job AS (
            INSERT INTO outbox (routing_key, payload)
            SELECT 'task', jsonb_build_object('kind', 'task', 'taskId', id::text) FROM task
        )";

/// Adds `jobs` to the outbox in one statement, in their order (`Work::commit` writes the jobs
/// pushed into a unit of work with it).
pub async fn enqueue_all(conn: &mut PgConnection, jobs: &[Job]) -> Result<()> {
    let keys: Vec<&str> = jobs.iter().map(Job::routing_key).collect();
    let payloads: Vec<sqlx::types::Json<&Job>> = jobs.iter().map(sqlx::types::Json).collect();
    sqlx::query(
        "INSERT INTO outbox (routing_key, payload)
         SELECT key, payload FROM unnest($1::text[], $2::jsonb[]) WITH ORDINALITY AS j (key, payload, n) ORDER BY n",
    )
    .bind(keys)
    .bind(payloads)
    .execute(conn)
    .await?;
    Ok(())
}

/// Adds one `batch` job per pending batch of `task`, in batch order.
pub async fn enqueue_pending_batches(conn: &mut PgConnection, task: TaskId) -> Result<u64> {
    let done = sqlx::query(
        "INSERT INTO outbox (routing_key, payload)
         SELECT 'batch', jsonb_build_object('kind', 'batch', 'taskId', task_id::text, 'seq', seq)
         FROM task_batches WHERE task_id = $1 AND status = 'PENDING' ORDER BY seq",
    )
    .bind(task.0)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub routing_key: String,
    pub payload: serde_json::Value,
}

/// Locks up to `limit` unsent rows for this relay; other relays skip them.
pub async fn lock_unsent(conn: &mut PgConnection, limit: i64) -> Result<Vec<OutboxRow>> {
    let rows = sqlx::query_as::<_, OutboxRow>(
        "SELECT id, routing_key, payload FROM outbox WHERE published_at IS NULL
         ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows)
}

pub async fn mark_sent(conn: &mut PgConnection, ids: &[i64]) -> Result<()> {
    sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)").bind(ids).execute(conn).await?;
    Ok(())
}

/// Rows waiting to be sent and the age in seconds of the oldest.
pub async fn backlog(pool: &PgPool) -> Result<(i64, f64)> {
    let row: (i64, Option<f64>) = sqlx::query_as(
        "SELECT count(*), EXTRACT(EPOCH FROM now() - min(created_at))::float8
         FROM outbox WHERE published_at IS NULL",
    )
    .fetch_one(pool)
    .await?;
    Ok((row.0, row.1.unwrap_or(0.0)))
}

/// Deletes sent rows older than `keep_seconds`.
pub async fn prune(pool: &PgPool, keep_seconds: i64) -> Result<u64> {
    let done = sqlx::query(
        "DELETE FROM outbox WHERE published_at IS NOT NULL AND published_at < now() - make_interval(secs => $1)",
    )
    .bind(keep_seconds as f64)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
