//! Dead letters: the messages RabbitMQ parked on the dead-letter queue, moved into Postgres by
//! a worker so that operators can read, replay and discard them without anyone but the
//! workers talking to the broker. A replay goes out through the outbox like any other job.
//!
//! A dead letter belongs to the environment of the task its body names. One whose body names
//! no known task (a malformed message, say) belongs to none: only the operator environment
//! (`CUTOVER_OPERATOR_ENVIRONMENT`) sees and resolves it, so that no tenant can discard what
//! may be another tenant's message. Every function here takes `operator`, whether the caller
//! is of that environment.

use crate::work::Work;
use crate::{actions, events, tasks, Result, StoreError};
use chrono::{DateTime, Utc};
use domain::{EnvironmentId, ErrorCode, Job, TaskId, TaskStatus};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// A message as the dead-letter queue delivered it, its headers already in JSON.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The AMQP `message_id` property, when the publisher set one.
    pub message_id: Option<String>,
    pub body: Vec<u8>,
    pub headers: serde_json::Value,
    /// From the newest `x-death` entry.
    pub reason: String,
    pub death_count: i32,
    pub original_queue: Option<String>,
    pub routing_key: Option<String>,
    pub dead_at: Option<DateTime<Utc>>,
}

impl Incoming {
    /// One message, however often it is delivered: its `message_id` when it has one, else its
    /// body with the death that parked it (queue, reason, time). Two messages without ids,
    /// with the same body and parked from the same queue in the same second, are one row;
    /// a Cutover message names work by id, so such twins ask for the same work.
    fn dedupe_key(&self) -> Vec<u8> {
        use sha2::Digest;
        let mut hash = sha2::Sha256::new();
        match &self.message_id {
            Some(id) => {
                hash.update(b"id\0");
                hash.update(id.as_bytes());
            }
            None => {
                hash.update(b"body\0");
                hash.update(&self.body);
                let death = serde_json::json!([self.original_queue, self.reason, self.dead_at.map(|t| t.timestamp())]);
                hash.update(death.to_string().as_bytes());
            }
        }
        hash.finalize().to_vec()
    }
}

/// Why a message died, in a code and a sentence, read from its death and its task's row.
fn cause(incoming: &Incoming, job: &std::result::Result<Job, String>, task: Option<&tasks::Task>) -> (String, String) {
    match (incoming.reason.as_str(), job, task) {
        ("delivery_limit", _, _) => (
            "DeliveryLimit".into(),
            format!(
                "delivered {} times without being settled: each time the worker holding it died, lost its connection, \
                 or panicked while settling it",
                incoming.death_count.max(1)
            ),
        ),
        ("rejected", Err(e), _) => ("Malformed".into(), format!("not a job Cutover knows: {e}")),
        ("rejected", Ok(job), None) => ("NotFound".into(), format!("no task {}", job.task_id())),
        ("rejected", Ok(_), Some(task)) => match (&task.error_code, &task.last_error) {
            (Some(code), message) => (code.clone(), message.clone().unwrap_or_default()),
            (None, _) => ("Rejected".into(), format!("a worker gave up on it; the task is {}", task.status)),
        },
        (reason, _, _) => ("Broker".into(), format!("dead-lettered by the broker: {reason}")),
    }
}

fn parse(body: &[u8]) -> std::result::Result<Job, String> {
    serde_json::from_slice::<Job>(body).map_err(|e| {
        let mut message = e.to_string();
        message.truncate(200);
        message
    })
}

/// A `taskId` the body names even when it is not a job we know (an unknown `kind`, say).
fn named_task(body: &[u8], job: &std::result::Result<Job, String>) -> Option<TaskId> {
    if let Ok(job) = job {
        return Some(job.task_id());
    }
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    TaskId::parse(value.get("taskId")?.as_str()?).ok()
}

/// Stores a dead letter. Answers false when this message is stored already (a redelivery).
pub async fn ingest(pool: &PgPool, incoming: &Incoming) -> Result<bool> {
    let job = parse(&incoming.body);
    let task_id = named_task(&incoming.body, &job);
    let mut conn = pool.acquire().await?;
    let task = match task_id {
        Some(id) => tasks::read(&mut conn, id).await?,
        None => None,
    };
    let (cause_code, cause) = cause(incoming, &job, task.as_ref());
    let (kind, seq) = match &job {
        Ok(Job::Task { .. }) => (Some("task"), None),
        Ok(Job::Batch { seq, .. }) => (Some("batch"), Some(*seq)),
        Err(_) => (None, None),
    };
    let stored = sqlx::query(
        "INSERT INTO dead_letters (dedupe_key, environment_id, task_id, job_kind, batch_seq, body, headers, reason,
             death_count, original_queue, routing_key, dead_at, cause_code, cause)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (dedupe_key) DO NOTHING",
    )
    .bind(incoming.dedupe_key())
    .bind(task.as_ref().map(|t| t.environment_id))
    .bind(task_id.map(|t| t.0))
    .bind(kind)
    .bind(seq)
    .bind(&incoming.body)
    .bind(&incoming.headers)
    .bind(&incoming.reason)
    .bind(incoming.death_count)
    .bind(&incoming.original_queue)
    .bind(&incoming.routing_key)
    .bind(incoming.dead_at)
    .bind(&cause_code)
    .bind(&cause)
    .execute(&mut *conn)
    .await?;
    Ok(stored.rows_affected() == 1)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeadLetter {
    pub id: i64,
    pub environment_id: Option<Uuid>,
    pub task_id: Option<Uuid>,
    pub job_kind: Option<String>,
    pub batch_seq: Option<i32>,
    pub body: Vec<u8>,
    pub headers: serde_json::Value,
    pub reason: String,
    pub death_count: i32,
    pub original_queue: Option<String>,
    pub routing_key: Option<String>,
    pub dead_at: Option<DateTime<Utc>>,
    pub cause_code: String,
    pub cause: String,
    pub received_at: DateTime<Utc>,
    pub status: String,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, environment_id, task_id, job_kind, batch_seq, body, headers, reason, death_count,
    original_queue, routing_key, dead_at, cause_code, cause, received_at, status, resolved_by, resolved_at";

/// Newest first, up to `limit`; `status` narrows to DEAD, REPLAYED or DISCARDED.
pub async fn list(
    pool: &PgPool,
    env: EnvironmentId,
    operator: bool,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<DeadLetter>> {
    Ok(sqlx::query_as::<_, DeadLetter>(&format!(
        "SELECT {COLUMNS} FROM dead_letters
         WHERE (environment_id = $1 OR ($4 AND environment_id IS NULL)) AND ($2::text IS NULL OR status = $2)
         ORDER BY id DESC LIMIT $3"
    ))
    .bind(env.0)
    .bind(status)
    .bind(limit)
    .bind(operator)
    .fetch_all(pool)
    .await?)
}

/// Dead letters still waiting for an operator, in this environment (and in none, for the
/// operator environment).
pub async fn count_dead(pool: &PgPool, env: EnvironmentId, operator: bool) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM dead_letters
         WHERE (environment_id = $1 OR ($2 AND environment_id IS NULL)) AND status = 'DEAD'",
    )
    .bind(env.0)
    .bind(operator)
    .fetch_one(pool)
    .await?)
}

pub async fn get(pool: &PgPool, env: EnvironmentId, operator: bool, id: i64) -> Result<Option<DeadLetter>> {
    Ok(sqlx::query_as::<_, DeadLetter>(&format!(
        "SELECT {COLUMNS} FROM dead_letters
         WHERE id = $1 AND (environment_id = $2 OR ($3 AND environment_id IS NULL))"
    ))
    .bind(id)
    .bind(env.0)
    .bind(operator)
    .fetch_optional(pool)
    .await?)
}

async fn lock_dead(
    conn: &mut PgConnection,
    env: EnvironmentId,
    operator: bool,
    id: i64,
    verb: &str,
) -> Result<DeadLetter> {
    let letter = sqlx::query_as::<_, DeadLetter>(&format!(
        "SELECT {COLUMNS} FROM dead_letters
         WHERE id = $1 AND (environment_id = $2 OR ($3 AND environment_id IS NULL))
         FOR UPDATE"
    ))
    .bind(id)
    .bind(env.0)
    .bind(operator)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| StoreError::rejected(ErrorCode::NotFound, format!("dead letter {id} not found")))?;
    if letter.status != "DEAD" {
        return Err(StoreError::rejected(
            ErrorCode::BadUserInput,
            format!("dead letter {id} is {} already and cannot be {verb}", letter.status),
        ));
    }
    Ok(letter)
}

async fn resolve(conn: &mut PgConnection, id: i64, status: &str, actor: &str) -> Result<DeadLetter> {
    Ok(sqlx::query_as::<_, DeadLetter>(&format!(
        "UPDATE dead_letters SET status = $2, resolved_by = $3, resolved_at = now() WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(status)
    .bind(actor)
    .fetch_one(conn)
    .await?)
}

/// What a replay did.
#[derive(Debug, Clone)]
pub struct Replayed {
    pub letter: DeadLetter,
    /// The task, after the replay.
    pub task: tasks::Task,
    /// Whether the task had failed and was re-opened (as a retry does).
    pub reopened: bool,
}

/// Sends the message again through the outbox and marks it replayed, in the caller's
/// transaction, with a row on its task's timeline naming `actor`. A task that had FAILED or
/// PARTIALLY_FAILED is re-opened the way a retry re-opens it, so the replayed work can run;
/// that re-opening announces the task's open work itself. Only a message that is a job of a
/// task of this environment can be replayed.
pub async fn replay(conn: &mut Work, env: EnvironmentId, operator: bool, id: i64, actor: &str) -> Result<Replayed> {
    let letter = lock_dead(conn, env, operator, id, "replayed").await?;
    let job = parse(&letter.body).map_err(|e| {
        StoreError::rejected(
            ErrorCode::BadUserInput,
            format!("dead letter {id} is not a job Cutover can run ({e}); discard it instead"),
        )
    })?;
    let task_id = job.task_id();
    let gone = || {
        StoreError::rejected(
            ErrorCode::BadUserInput,
            format!("dead letter {id} names task {task_id}, which does not exist here; discard it instead"),
        )
    };
    let task = tasks::lock(conn, task_id).await?.ok_or_else(gone)?;
    if task.environment() != env {
        return Err(gone());
    }
    let was = task.status();
    let reopened = matches!(was, TaskStatus::Failed | TaskStatus::PartiallyFailed);
    let task = if reopened {
        actions::reopen(conn, env, task).await?
    } else {
        conn.enqueue(job);
        task
    };
    let letter = resolve(conn, id, "REPLAYED", actor).await?;
    let message = if reopened {
        format!("dead letter {id} replayed; the {was} task is open again")
    } else {
        format!("dead letter {id} replayed")
    };
    events::record(
        conn,
        env,
        task_id,
        "dead_letter_replayed",
        &message,
        Some(actor),
        serde_json::json!({ "deadLetterId": id, "reopened": reopened, "job": job }),
    );
    Ok(Replayed { letter, task, reopened })
}

/// Marks the message discarded: it stays for the record and is never sent again. Recorded on
/// its task's timeline, when it names a task of this environment, with `actor`.
pub async fn discard(conn: &mut Work, env: EnvironmentId, operator: bool, id: i64, actor: &str) -> Result<DeadLetter> {
    lock_dead(conn, env, operator, id, "discarded").await?;
    let letter = resolve(conn, id, "DISCARDED", actor).await?;
    if let (Some(task), Some(owner)) = (letter.task_id, letter.environment_id) {
        if owner == env.0 {
            events::record(
                conn,
                env,
                TaskId(task),
                "dead_letter_discarded",
                &format!("dead letter {id} discarded"),
                Some(actor),
                serde_json::json!({ "deadLetterId": id }),
            );
        }
    }
    Ok(letter)
}
