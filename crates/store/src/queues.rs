//! What the workers last read of RabbitMQ's queues, kept in Postgres so that the api can show
//! queue depth without talking to the broker. Workers write (ready and consumer counts per
//! queue, their own unacknowledged deliveries on their heartbeat); the dashboard reads.

use crate::Result;
use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// Records what `worker` just read of `queue`; the newest observation wins.
pub async fn observe(pool: &PgPool, queue: &str, ready: i64, consumers: i32, worker: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO queue_observations (queue, ready, consumers, observed_by, observed_at)
         VALUES ($1, $2, $3, $4, now())
         ON CONFLICT (queue) DO UPDATE SET ready = excluded.ready, consumers = excluded.consumers,
             observed_by = excluded.observed_by, observed_at = excluded.observed_at
         WHERE queue_observations.observed_at <= excluded.observed_at",
    )
    .bind(queue)
    .bind(ready)
    .bind(consumers)
    .bind(worker)
    .execute(pool)
    .await?;
    Ok(())
}

/// A queue as last observed, with the unacknowledged deliveries that live workers hold on it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct QueueRow {
    pub queue: String,
    pub ready: i64,
    /// Summed over workers that heartbeated in the last 30 seconds and have not stopped.
    pub unacked: i64,
    pub consumers: i32,
    pub observed_by: String,
    pub observed_at: DateTime<Utc>,
    pub age_secs: f64,
}

/// Queues whose name starts with `prefix.`, by name. `kind_of` a queue is the last part of
/// its name (`cutover.work.task` → `task`); the workers' heartbeats count unacknowledged
/// deliveries by kind.
pub async fn observed(pool: &PgPool, prefix: &str) -> Result<Vec<QueueRow>> {
    Ok(sqlx::query_as::<_, QueueRow>(
        "SELECT q.queue, q.ready,
                coalesce((SELECT sum((w.unacked ->> regexp_replace(q.queue, '^.*\\.', ''))::bigint)
                          FROM workers w
                          WHERE w.stopped_at IS NULL AND w.heartbeat_at > now() - interval '30 seconds'), 0)::bigint
                    AS unacked,
                q.consumers, q.observed_by, q.observed_at,
                EXTRACT(EPOCH FROM now() - q.observed_at)::float8 AS age_secs
         FROM queue_observations q
         WHERE starts_with(q.queue, $1 || '.')
         ORDER BY q.queue",
    )
    .bind(prefix)
    .fetch_all(pool)
    .await?)
}
