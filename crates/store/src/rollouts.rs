//! Staged rollouts (`task_rollouts`): the cohorts of a STAGED_ROLLOUT task, where it stands,
//! and pause/resume. A cohort's members are a pure function of the task and the subscription
//! — the named customers' subscriptions, plus those whose `rollout_bucket(task, id)` is below
//! the cohort's threshold — so membership never changes between retries, redeliveries or
//! workers, and each cohort holds the one before it. A cohort is planned as ordinary batches
//! (tagged with their cohort); when its last batch commits, the next cohort is given a
//! `next_cohort_at`, and the scheduler starts it once that time has come. Nothing waits in
//! memory. It decides nothing about HTTP or queues.

pub use crate::cohorts::{get, percentage_json, Rollout};
use crate::policies::not_excluded;
use crate::work::Work;
use crate::{events, outbox, tasks, Result, StoreError};
use chrono::{DateTime, Utc};
use domain::rollout::threshold_percentage;
use domain::{EnvironmentId, ErrorCode, RolloutSpec, SubscriptionStatus, TaskId, TaskStatus, TaskType};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

fn live_statuses() -> Vec<&'static str> {
    SubscriptionStatus::LIVE.iter().map(|s| s.as_str()).collect()
}

/// Writes a rollout's row, in the transaction that accepts its task.
pub async fn insert(conn: &mut PgConnection, env: EnvironmentId, task: TaskId, spec: &RolloutSpec) -> Result<()> {
    sqlx::query(
        "INSERT INTO task_rollouts (task_id, environment_id, thresholds, customer_ids, interval_text, interval_ms)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(task.0)
    .bind(env.0)
    .bind(&spec.thresholds)
    .bind(&spec.customer_ids)
    .bind(&spec.interval_text)
    .bind(i64::try_from(spec.interval.as_millis()).unwrap_or(i64::MAX))
    .execute(conn)
    .await?;
    Ok(())
}

/// The ids of `ids` that name no customer of the environment.
pub async fn unknown_customers(conn: &mut PgConnection, env: EnvironmentId, ids: &[String]) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM unnest($2::text[]) AS given (id)
         WHERE NOT EXISTS (SELECT 1 FROM customers c WHERE c.environment_id = $1 AND c.id = given.id)
         ORDER BY id LIMIT 10",
    )
    .bind(env.0)
    .bind(ids)
    .fetch_all(conn)
    .await?)
}

async fn lock(conn: &mut PgConnection, task: TaskId) -> Result<Option<Rollout>> {
    Ok(sqlx::query_as::<_, Rollout>("SELECT * FROM task_rollouts WHERE task_id = $1 FOR UPDATE")
        .bind(task.0)
        .fetch_optional(conn)
        .await?)
}

/// The members of one cohort, for a batch of it: the threshold, the named customers and the
/// salt its bucket predicate needs. `None` when the batch is no rollout's.
#[derive(Debug, Clone)]
pub struct CohortFilter {
    pub threshold: i32,
    pub customer_ids: Vec<String>,
    pub salt: String,
    pub paused: bool,
}

pub async fn cohort_filter(conn: &mut PgConnection, task: TaskId, cohort: i32) -> Result<Option<CohortFilter>> {
    let Some(rollout) = get(conn, task).await? else {
        return Ok(None);
    };
    Ok(rollout.threshold(cohort).map(|threshold| CohortFilter {
        threshold,
        salt: rollout.salt(),
        paused: rollout.paused_at.is_some(),
        customer_ids: rollout.customer_ids,
    }))
}

/// What starting a cohort did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CohortStart {
    pub task_id: TaskId,
    pub cohort: i32,
    pub batches: i64,
    pub subscriptions: i64,
    /// The task ended here: the last cohort had nobody left to move.
    pub finished: Option<TaskStatus>,
}

/// Starts cohort `cohort` of a rollout: cuts its members still to move into batches, announces
/// them through the outbox and brings the task's total up to date. A cohort with nobody to
/// move is done at once: the next one is scheduled, or the task ends. Call with the task row
/// locked, inside the transaction that commits it.
pub async fn start_cohort(conn: &mut Work, task: &tasks::Task, cohort: i32, batch_size: i64) -> Result<CohortStart> {
    let task_id = task.id();
    let rollout = lock(conn, task_id)
        .await?
        .ok_or_else(|| StoreError::rejected(ErrorCode::InternalError, format!("task {task_id} has no rollout")))?;
    let (Some(threshold), Some(last)) = (rollout.threshold(cohort), rollout.thresholds.last().copied()) else {
        return Err(StoreError::rejected(
            ErrorCode::InternalError,
            format!("rollout {task_id} has no cohort {cohort}"),
        ));
    };
    let target = task.target_version_number.unwrap_or(i32::MAX);
    let (batches, subscriptions): (i64, i64) = sqlx::query_as(&format!(
        "WITH planned AS (
            INSERT INTO task_batches (task_id, seq, lo, hi, expected, status, cohort)
            SELECT $5, $7 + bucket, min(row_id), max(row_id) + 1, count(*), 'PENDING', $8
            FROM (
                SELECT s.row_id, ((row_number() OVER (ORDER BY s.row_id)) - 1) / $6 AS bucket
                FROM subscriptions s JOIN plan_versions v ON v.id = s.plan_version_id
                WHERE s.environment_id = $1 AND s.plan_id = $2 AND v.version_number < $3 AND s.status = ANY($4)
                  AND (s.customer_id = ANY($9) OR rollout_bucket($10, s.id) < $11)
                  AND {}
            ) numbered
            GROUP BY bucket
            RETURNING expected
        )
        SELECT count(*), coalesce(sum(expected), 0)::bigint FROM planned",
        not_excluded("$12", "$13")
    ))
    .bind(task.environment_id)
    .bind(&task.plan_id)
    .bind(target)
    .bind(live_statuses())
    .bind(task.id)
    .bind(batch_size.max(1))
    .bind(next_seq(conn, task_id).await?)
    .bind(cohort)
    .bind(&rollout.customer_ids)
    .bind(rollout.salt())
    .bind(threshold)
    .bind(&task.policy)
    .bind(task.created_at)
    .fetch_one(&mut **conn)
    .await?;

    // the total is what has been done plus what the whole rollout still has to move
    let (remaining, customers): (i64, i64) = sqlx::query_as(&format!(
        "SELECT count(*), count(DISTINCT s.customer_id)
         FROM subscriptions s JOIN plan_versions v ON v.id = s.plan_version_id
         WHERE s.environment_id = $1 AND s.plan_id = $2 AND v.version_number < $3 AND s.status = ANY($4)
           AND (s.customer_id = ANY($5) OR rollout_bucket($6, s.id) < $7)
           AND {}",
        not_excluded("$8", "$9")
    ))
    .bind(task.environment_id)
    .bind(&task.plan_id)
    .bind(target)
    .bind(live_statuses())
    .bind(&rollout.customer_ids)
    .bind(rollout.salt())
    .bind(last)
    .bind(&task.policy)
    .bind(task.created_at)
    .fetch_one(&mut **conn)
    .await?;
    sqlx::query(
        "UPDATE tasks SET total = processed + $2,
            affected_customers = CASE WHEN $3 THEN $4 ELSE affected_customers END, updated_at = now()
         WHERE id = $1",
    )
    .bind(task.id)
    .bind(remaining)
    .bind(cohort == 0)
    .bind(customers)
    .execute(&mut **conn)
    .await?;
    sqlx::query(
        "UPDATE task_rollouts SET current_cohort = $2, cohort_started_at = now(), next_cohort_at = NULL,
            updated_at = now()
         WHERE task_id = $1",
    )
    .bind(task.id)
    .bind(cohort)
    .execute(&mut **conn)
    .await?;
    let label = match threshold_percentage(threshold) {
        Some(p) => format!("{p} %"),
        None => "the named customers".to_owned(),
    };
    events::record(
        conn,
        task.environment(),
        task_id,
        "cohort",
        &format!(
            "cohort {} of {} ({label}): {subscriptions} subscriptions in {batches} batches",
            cohort + 1,
            rollout.thresholds.len()
        ),
        None,
        json!({
            "cohort": cohort, "percentage": percentage_json(threshold),
            "subscriptions": subscriptions, "batches": batches,
        }),
    );
    let mut finished = None;
    if batches == 0 {
        if !cohort_done(conn, task_id).await? {
            finished = Some(finish_from_counts(conn, task_id).await?);
        }
    } else {
        outbox::enqueue_pending_batches(conn, task_id).await?;
    }
    Ok(CohortStart { task_id, cohort, batches, subscriptions, finished })
}

async fn next_seq(conn: &mut PgConnection, task: TaskId) -> Result<i32> {
    Ok(sqlx::query_scalar("SELECT coalesce(max(seq) + 1, 0) FROM task_batches WHERE task_id = $1")
        .bind(task.0)
        .fetch_one(conn)
        .await?)
}

async fn finish_from_counts(conn: &mut Work, task: TaskId) -> Result<TaskStatus> {
    let t = tasks::lock(conn, task)
        .await?
        .ok_or_else(|| StoreError::rejected(ErrorCode::NotFound, format!("no task {task}")))?;
    let status = TaskStatus::from_counts(t.processed, t.failed);
    let message = format!("{} of {} subscriptions could not be moved", t.failed, t.processed);
    let error = (t.failed > 0).then_some((ErrorCode::SubscriptionAlreadyCanceledOrExpired, message.as_str()));
    tasks::finish(conn, task, status, error).await?;
    events::record(
        conn,
        t.environment(),
        task,
        "finished",
        status.as_str(),
        None,
        json!({ "processed": t.processed, "failed": t.failed }),
    );
    Ok(status)
}

/// The running cohort has no batch left. If another cohort follows, schedules it
/// (`next_cohort_at` = now + interval) and answers true; answers false when that was the last
/// cohort, and the caller ends the task. Call with the task row locked.
pub async fn cohort_done(conn: &mut Work, task: TaskId) -> Result<bool> {
    let Some(rollout) = lock(conn, task).await? else {
        return Ok(false);
    };
    if rollout.current_cohort < 0 || rollout.is_last(rollout.current_cohort) {
        return Ok(false);
    }
    let next_at: DateTime<Utc> = sqlx::query_scalar(
        "UPDATE task_rollouts SET next_cohort_at = now() + make_interval(secs => $2::float8 / 1000), updated_at = now()
         WHERE task_id = $1 RETURNING next_cohort_at",
    )
    .bind(task.0)
    .bind(rollout.interval_ms)
    .fetch_one(&mut **conn)
    .await?;
    events::record(
        conn,
        EnvironmentId(rollout.environment_id),
        task,
        "cohort-done",
        &format!(
            "cohort {} done; cohort {} starts at {next_at}",
            rollout.current_cohort + 1,
            rollout.current_cohort + 2
        ),
        None,
        json!({ "cohort": rollout.current_cohort, "nextCohortAt": next_at }),
    );
    Ok(true)
}

/// The scheduler's pass: starts the next cohort of every rollout whose `next_cohort_at` has
/// come, is not paused and is still running, each in the caller's transaction. Rollouts that
/// ended (canceled, say) stop being looked at. `SKIP LOCKED` on the task rows keeps
/// schedulers out of each other's way, and locks are taken in the order batches take them:
/// task row, then rollout row.
pub async fn start_due(conn: &mut Work, batch_size: i64, limit: i64) -> Result<Vec<CohortStart>> {
    sqlx::query(
        "UPDATE task_rollouts r SET next_cohort_at = NULL, updated_at = now()
         FROM tasks t
         WHERE t.id = r.task_id AND r.next_cohort_at IS NOT NULL AND t.status NOT IN ('PENDING', 'IN_PROGRESS')",
    )
    .execute(&mut **conn)
    .await?;
    let due: Vec<Uuid> = sqlx::query_scalar(
        "SELECT t.id FROM task_rollouts r JOIN tasks t ON t.id = r.task_id
         WHERE r.next_cohort_at <= now() AND r.paused_at IS NULL AND t.status = 'IN_PROGRESS'
         ORDER BY r.next_cohort_at LIMIT $1
         FOR UPDATE OF t SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(&mut **conn)
    .await?;
    let mut started = Vec::new();
    let now = crate::db_now(conn).await?;
    for id in due {
        let task_id = TaskId(id);
        let (Some(task), Some(rollout)) = (tasks::read(conn, task_id).await?, lock(conn, task_id).await?) else {
            continue;
        };
        let due_now = rollout.next_cohort_at.is_some_and(|at| at <= now) && rollout.paused_at.is_none();
        if !due_now || task.status() != TaskStatus::InProgress || rollout.is_last(rollout.current_cohort) {
            continue;
        }
        started.push(start_cohort(conn, &task, rollout.current_cohort + 1, batch_size).await?);
    }
    Ok(started)
}

fn not_found(id: TaskId) -> StoreError {
    StoreError::rejected(ErrorCode::NotFound, format!("task `{id}` not found"))
}

/// Locks a rollout task of the caller's environment for pause or resume.
async fn lock_rollout_task(
    conn: &mut PgConnection,
    env: EnvironmentId,
    id: TaskId,
    verb: &str,
) -> Result<(tasks::Task, Rollout)> {
    let task = tasks::lock(conn, id).await?.filter(|t| t.environment() == env).ok_or_else(|| not_found(id))?;
    if task.task_type() != TaskType::StagedRollout {
        return Err(StoreError::rejected(
            ErrorCode::BadUserInput,
            format!("task `{id}` is a {} task; only STAGED_ROLLOUT tasks can be {verb}", task.task_type),
        ));
    }
    if task.status().is_terminal() {
        return Err(StoreError::rejected(
            ErrorCode::BadUserInput,
            format!("task `{id}` is already {} and cannot be {verb}", task.status),
        ));
    }
    let rollout = lock(conn, id).await?.ok_or_else(|| not_found(id))?;
    Ok((task, rollout))
}

/// Pauses a rollout: batches already running finish, nothing more moves and no cohort starts
/// until it is resumed. Recorded in the task's timeline with who did it.
pub async fn pause(conn: &mut Work, env: EnvironmentId, id: TaskId, actor: &str) -> Result<(tasks::Task, Rollout)> {
    let (_, rollout) = lock_rollout_task(conn, env, id, "paused").await?;
    if rollout.paused_at.is_some() {
        return Err(StoreError::rejected(ErrorCode::BadUserInput, format!("rollout `{id}` is already paused")));
    }
    let rollout = sqlx::query_as::<_, Rollout>(
        "UPDATE task_rollouts SET paused_at = now(), paused_by = $2, updated_at = now() WHERE task_id = $1 RETURNING *",
    )
    .bind(id.0)
    .bind(actor)
    .fetch_one(&mut **conn)
    .await?;
    let task = touch(conn, id).await?;
    events::record(
        conn,
        env,
        id,
        "paused",
        &format!("paused during cohort {}", rollout.current_cohort + 1),
        Some(actor),
        json!({ "cohort": rollout.current_cohort }),
    );
    Ok((task, rollout))
}

/// Resumes a paused rollout: the running cohort's pending batches are announced again, and a
/// next cohort whose time has passed starts at the scheduler's next tick.
pub async fn resume(conn: &mut Work, env: EnvironmentId, id: TaskId, actor: &str) -> Result<(tasks::Task, Rollout)> {
    let (_, rollout) = lock_rollout_task(conn, env, id, "resumed").await?;
    if rollout.paused_at.is_none() {
        return Err(StoreError::rejected(ErrorCode::BadUserInput, format!("rollout `{id}` is not paused")));
    }
    let rollout = sqlx::query_as::<_, Rollout>(
        "UPDATE task_rollouts SET paused_at = NULL, paused_by = NULL, updated_at = now() WHERE task_id = $1 RETURNING *",
    )
    .bind(id.0)
    .fetch_one(&mut **conn)
    .await?;
    let announced = outbox::enqueue_pending_batches(conn, id).await?;
    let task = touch(conn, id).await?;
    events::record(
        conn,
        env,
        id,
        "resumed",
        &format!("resumed; {announced} pending batches announced again"),
        Some(actor),
        json!({ "cohort": rollout.current_cohort, "batchesAnnounced": announced }),
    );
    Ok((task, rollout))
}

async fn touch(conn: &mut PgConnection, id: TaskId) -> Result<tasks::Task> {
    Ok(sqlx::query_as::<_, tasks::Task>("UPDATE tasks SET updated_at = now() WHERE id = $1 RETURNING *")
        .bind(id.0)
        .fetch_one(conn)
        .await?)
}
