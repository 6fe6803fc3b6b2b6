//! What operators look at: counts for `/metrics` (read at scrape time, across environments),
//! the dashboard's overview (per environment), a task's timeline for the SSE stream, and the
//! dashboard's sign-in sessions and their audit. Reads only, except for sessions.

use crate::{api_keys::Principal, api_keys::Scope, Result};
use chrono::{DateTime, Utc};
use domain::{EnvironmentId, TaskId};
use sqlx::PgPool;
use uuid::Uuid;

/// Tasks by `(task_type, status)` across every environment, for the `cutover_tasks` gauge.
pub async fn task_counts_all(pool: &PgPool) -> Result<Vec<(String, String, i64)>> {
    Ok(sqlx::query_as("SELECT task_type, status, count(*) FROM tasks GROUP BY task_type, status ORDER BY 1, 2")
        .fetch_all(pool)
        .await?)
}

/// Tasks by `(task_type, status)` in one environment.
pub async fn task_counts(pool: &PgPool, env: EnvironmentId) -> Result<Vec<(String, String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT task_type, status, count(*) FROM tasks WHERE environment_id = $1
         GROUP BY task_type, status ORDER BY 1, 2",
    )
    .bind(env.0)
    .fetch_all(pool)
    .await?)
}

/// One minute of the last hour: subscriptions moved (history rows written), and tasks that
/// finished COMPLETED, and FAILED or PARTIALLY_FAILED.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Minute {
    pub minute: DateTime<Utc>,
    pub moved: i64,
    pub completed: i64,
    pub failed: i64,
}

/// Sixty rows, oldest first, one per minute of the last hour (empty minutes included).
pub async fn throughput(pool: &PgPool, env: EnvironmentId) -> Result<Vec<Minute>> {
    Ok(sqlx::query_as::<_, Minute>(
        "WITH minutes AS (
            SELECT generate_series(date_trunc('minute', now()) - interval '59 minutes',
                                   date_trunc('minute', now()), interval '1 minute') AS minute
         ), finished AS (
            SELECT date_trunc('minute', finished_at) AS minute,
                   count(*) FILTER (WHERE status = 'COMPLETED') AS completed,
                   count(*) FILTER (WHERE status IN ('FAILED', 'PARTIALLY_FAILED')) AS failed
            FROM tasks WHERE environment_id = $1 AND finished_at >= date_trunc('minute', now()) - interval '59 minutes'
            GROUP BY 1
         ), moved AS (
            SELECT date_trunc('minute', moved_at) AS minute, count(*) AS moved
            FROM subscription_version_history
            WHERE environment_id = $1 AND moved_at >= date_trunc('minute', now()) - interval '59 minutes'
            GROUP BY 1
         )
         SELECT m.minute, coalesce(v.moved, 0) AS moved, coalesce(f.completed, 0) AS completed,
                coalesce(f.failed, 0) AS failed
         FROM minutes m LEFT JOIN finished f USING (minute) LEFT JOIN moved v USING (minute)
         ORDER BY m.minute",
    )
    .bind(env.0)
    .fetch_all(pool)
    .await?)
}

/// How long the live rate of a task looks back.
pub const RATE_WINDOW_SECS: i64 = 30;
/// The throughput sparkline: this many buckets of `SPARK_BUCKET_SECS` each.
pub const SPARK_BUCKETS: i64 = 30;
pub const SPARK_BUCKET_SECS: i64 = 10;

/// Where a task's batches stand and how fast they are going, read from its batches (one
/// index range of `task_batches`, a thousand rows for a million subscriptions).
#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    /// Batches by state: `PENDING` (queued or running), `DONE`, `FAILED`, `CANCELED`.
    pub pending: i64,
    pub done: i64,
    pub failed: i64,
    pub canceled: i64,
    /// Items of the batches finished in the last `RATE_WINDOW_SECS` (as the task's `processed`
    /// counts them: what a batch covered, moved or not), and the
    /// seconds of that window the task has been running (shorter at its start).
    pub window_items: i64,
    pub window_secs: f64,
    /// Items finished in each of the last `SPARK_BUCKETS` buckets, oldest first, ending when
    /// the task ended or now.
    pub spark: Vec<i64>,
}

impl Live {
    /// Items a second over the window; `None` before the task started.
    pub fn rate(&self) -> Option<f64> {
        (self.window_secs > 0.0).then(|| self.window_items as f64 / self.window_secs)
    }
}

/// When a task's figures end: now while it runs; once it ended, its end or its last batch's
/// update, whichever is later (a batch whose transaction began after the ending one's, and
/// committed before it counted, carries a later time).
const UNTIL: &str = "CASE WHEN finished_at IS NULL THEN now() ELSE greatest(finished_at,
    (SELECT max(updated_at) FROM task_batches WHERE task_id = $1)) END";

pub async fn live(pool: &PgPool, task: TaskId) -> Result<Live> {
    let (pending, done, failed, canceled, window_items, window_secs): (i64, i64, i64, i64, i64, f64) =
        sqlx::query_as(&format!(
            "WITH t AS (SELECT {UNTIL} AS until, started_at FROM tasks WHERE id = $1)
             SELECT count(b.seq) FILTER (WHERE b.status = 'PENDING'),
                    count(b.seq) FILTER (WHERE b.status = 'DONE'),
                    count(b.seq) FILTER (WHERE b.status = 'FAILED'),
                    count(b.seq) FILTER (WHERE b.status = 'CANCELED'),
                    coalesce(sum(greatest(b.expected, b.moved + b.failed)) FILTER (WHERE b.status IN ('DONE', 'FAILED')
                        AND b.updated_at > t.until - make_interval(secs => $2)), 0)::bigint,
                    CASE WHEN t.started_at IS NULL THEN 0
                         ELSE EXTRACT(EPOCH FROM least(make_interval(secs => $2), t.until - t.started_at)) END::float8
             FROM t LEFT JOIN task_batches b ON b.task_id = $1
             GROUP BY t.until, t.started_at"
        ))
        .bind(task.0)
        .bind(RATE_WINDOW_SECS as f64)
        .fetch_optional(pool)
        .await?
        .unwrap_or((0, 0, 0, 0, 0, 0.0));
    let spark: Vec<i64> = sqlx::query_scalar(&format!(
        "WITH t AS (SELECT {UNTIL} AS until FROM tasks WHERE id = $1),
              -- bucket i holds (until - ($2 - i) * $3 s, until - ($2 - 1 - i) * $3 s]: one pass
              -- over the task's batches, whatever their number
              filled AS (
                SELECT ($2 - 1 - floor(EXTRACT(EPOCH FROM t.until - b.updated_at) / $3))::int AS i,
                       sum(greatest(b.expected, b.moved + b.failed)) AS items
                FROM t JOIN task_batches b ON b.task_id = $1 AND b.status IN ('DONE', 'FAILED')
                     AND b.updated_at > t.until - make_interval(secs => $2 * $3) AND b.updated_at <= t.until
                GROUP BY 1)
         SELECT coalesce(f.items, 0)::bigint
         FROM generate_series(0, $2 - 1) AS i LEFT JOIN filled f USING (i)
         ORDER BY i"
    ))
    .bind(task.0)
    .bind(SPARK_BUCKETS as i32)
    .bind(SPARK_BUCKET_SECS as f64)
    .fetch_all(pool)
    .await?;
    Ok(Live { pending, done, failed, canceled, window_items, window_secs: window_secs.max(0.0), spark })
}

/// A batch as the task page lists it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BatchRow {
    pub seq: i32,
    pub expected: i64,
    pub status: String,
    pub attempts: i32,
    pub moved: i64,
    pub failed: i64,
    pub worker: Option<String>,
    pub last_error: Option<String>,
}

/// Up to `limit` batches of the task in `status` with a `seq` above `after`, in order: the
/// task page lists the failed and the pending ones a page at a time, never all of them.
pub async fn batches_in(pool: &PgPool, task: TaskId, status: &str, after: i32, limit: i64) -> Result<Vec<BatchRow>> {
    Ok(sqlx::query_as::<_, BatchRow>(
        "SELECT seq, expected, status, attempts, moved, failed, worker, last_error FROM task_batches
         WHERE task_id = $1 AND status = $2 AND seq > $3 ORDER BY seq LIMIT $4",
    )
    .bind(task.0)
    .bind(status)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// The tasks of the environment still PENDING or IN_PROGRESS, oldest first (at most `limit`).
pub async fn running_tasks(pool: &PgPool, env: EnvironmentId, limit: i64) -> Result<Vec<crate::tasks::Task>> {
    Ok(sqlx::query_as::<_, crate::tasks::Task>(
        "SELECT * FROM tasks WHERE environment_id = $1 AND status IN ('PENDING', 'IN_PROGRESS')
         ORDER BY seq LIMIT $2",
    )
    .bind(env.0)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// A worker process and how long ago it last said it was alive.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WorkerRow {
    pub id: String,
    pub hostname: String,
    pub pid: i32,
    pub started_at: DateTime<Utc>,
    pub heartbeat_age_secs: f64,
    pub in_flight: i32,
    pub stopped_at: Option<DateTime<Utc>>,
}

/// Workers seen in the last day, most recent heartbeat first.
pub async fn workers(pool: &PgPool) -> Result<Vec<WorkerRow>> {
    Ok(sqlx::query_as::<_, WorkerRow>(
        "SELECT id, hostname, pid, started_at, EXTRACT(EPOCH FROM now() - heartbeat_at)::float8 AS heartbeat_age_secs,
                in_flight, stopped_at
         FROM workers WHERE heartbeat_at > now() - interval '1 day' ORDER BY heartbeat_at DESC LIMIT 100",
    )
    .fetch_all(pool)
    .await?)
}

/// A row of a task's timeline.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Event {
    pub id: i64,
    pub kind: String,
    pub message: String,
    pub actor: Option<String>,
    pub data: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// The task's events with an id above `after`, oldest first.
pub async fn events_after(pool: &PgPool, env: EnvironmentId, task: TaskId, after: i64) -> Result<Vec<Event>> {
    Ok(sqlx::query_as::<_, Event>(
        "SELECT id, kind, message, actor, data, created_at FROM task_events
         WHERE task_id = $1 AND environment_id = $2 AND id > $3 ORDER BY id LIMIT 1000",
    )
    .bind(task.0)
    .bind(env.0)
    .bind(after)
    .fetch_all(pool)
    .await?)
}

/// Subscriptions a task could not move, with why.
pub async fn item_failures(pool: &PgPool, task: TaskId) -> Result<Vec<(String, String, String)>> {
    Ok(sqlx::query_as(
        "SELECT subscription_id, code, message FROM task_item_failures WHERE task_id = $1
         ORDER BY subscription_id LIMIT 200",
    )
    .bind(task.0)
    .fetch_all(pool)
    .await?)
}

/// Plans of an environment with their versions: `(plan_id, version_number, status,
/// display_name, published_at, subscriptions on that version)`.
pub async fn plan_versions(
    pool: &PgPool,
    env: EnvironmentId,
) -> Result<Vec<(String, i32, String, String, Option<DateTime<Utc>>, i64)>> {
    Ok(sqlx::query_as(
        "SELECT v.plan_id, v.version_number, v.status, v.display_name, v.published_at,
                (SELECT count(*) FROM subscriptions s WHERE s.plan_version_id = v.id)
         FROM plan_versions v WHERE v.environment_id = $1
         ORDER BY v.plan_id, v.version_number DESC LIMIT 2000",
    )
    .bind(env.0)
    .fetch_all(pool)
    .await?)
}

/// Opens a dashboard session for a key; answers the session's secret token (only its hash
/// is stored).
pub async fn create_session(pool: &PgPool, key_id: Uuid, ttl_secs: i64) -> Result<String> {
    use rand::Rng;
    let token: String =
        rand::thread_rng().sample_iter(&rand::distributions::Alphanumeric).take(48).map(char::from).collect();
    sqlx::query(
        "INSERT INTO dashboard_sessions (token_sha256, key_id, expires_at)
         VALUES ($1, $2, now() + make_interval(secs => $3))",
    )
    .bind(hash(&token))
    .bind(key_id)
    .bind(ttl_secs as f64)
    .execute(pool)
    .await?;
    Ok(token)
}

fn hash(token: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).to_vec()
}

/// The principal behind a live session: the session and its key must both be live. Notes that
/// the key was used, as an api request does.
pub async fn session(pool: &PgPool, token: &str) -> Result<Option<Principal>> {
    let sql = format!(
        "WITH used AS (
            SELECT k.id, k.prefix, k.environment_id, k.scope
            FROM dashboard_sessions s JOIN api_keys k ON k.id = s.key_id
            WHERE s.token_sha256 = $1 AND s.expires_at > now()
              AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())
        ), {}
        SELECT id, prefix, environment_id, scope FROM used",
        crate::api_keys::TOUCH_LAST_USED
    );
    let row: Option<(Uuid, String, Uuid, String)> = sqlx::query_as(&sql).bind(hash(token)).fetch_optional(pool).await?;
    Ok(row.and_then(|(key_id, key_prefix, environment_id, scope)| {
        Some(Principal {
            key_id,
            key_prefix,
            environment_id: EnvironmentId(environment_id),
            scope: Scope::parse(&scope)?,
        })
    }))
}

/// Ends a session (sign-out), records who signed out, and sweeps expired sessions.
pub async fn end_session(pool: &PgPool, token: &str) -> Result<()> {
    sqlx::query(
        "WITH ended AS (
            DELETE FROM dashboard_sessions WHERE token_sha256 = $1 OR expires_at < now()
            RETURNING token_sha256, key_id
        )
        INSERT INTO dashboard_audit (environment_id, key_prefix, action)
        SELECT k.environment_id, k.prefix, 'sign_out' FROM ended e JOIN api_keys k ON k.id = e.key_id
        WHERE e.token_sha256 = $1",
    )
    .bind(hash(token))
    .execute(pool)
    .await?;
    Ok(())
}

/// Records a sign-in by `principal`.
pub async fn record_sign_in(pool: &PgPool, principal: &Principal) -> Result<()> {
    sqlx::query("INSERT INTO dashboard_audit (environment_id, key_prefix, action) VALUES ($1, $2, 'sign_in')")
        .bind(principal.environment_id.0)
        .bind(&principal.key_prefix)
        .execute(pool)
        .await?;
    Ok(())
}

/// An entry of the dashboard's audit: `(key_prefix, action, created_at)`, newest first.
pub async fn audit(pool: &PgPool, env: EnvironmentId, limit: i64) -> Result<Vec<(String, String, DateTime<Utc>)>> {
    Ok(sqlx::query_as(
        "SELECT key_prefix, action, created_at FROM dashboard_audit WHERE environment_id = $1
         ORDER BY id DESC LIMIT $2",
    )
    .bind(env.0)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
