//! Rollback (Cutover's extension): a ROLLBACK_MIGRATION task moves back exactly the
//! subscriptions another task moved, read from that task's `subscription_version_history`
//! rows, and only those still on the version it moved them to; the others are left alone and
//! counted as skipped. Accepting one, planning its batches (ranges of the history rows' ids)
//! and moving one batch back each take one transaction. What runs when is the workers'
//! business, not this module's.

use crate::work::Work;
use crate::{addons, events, is_unique_violation, tasks, Result, StoreError};
use domain::{EnvironmentId, ErrorCode, TaskId, TaskSpec};
use serde_json::json;
use sqlx::PgConnection;

fn not_found(id: TaskId) -> StoreError {
    StoreError::rejected(ErrorCode::NotFound, format!("task `{id}` not found"))
}

fn already(id: TaskId, by: impl std::fmt::Display) -> StoreError {
    StoreError::rejected(
        ErrorCode::TaskAlreadyRolledBack,
        format!("task `{id}` was already rolled back by task `{by}`; retry that task if it failed"),
    )
}

/// Accepts the rollback of `original` in the caller's transaction: the new task, its outbox
/// row and its `accepted` event, both tasks naming each other, and a `rollback` event on the
/// original's timeline. Refuses an unknown task (404), one that has not finished, one whose
/// type moves nothing or that moved nobody (400 `BadUserInput`), and one already rolled back
/// (409 `TaskAlreadyRolledBack`).
pub async fn accept(
    conn: &mut Work,
    env: EnvironmentId,
    original: TaskId,
    max_attempts: i32,
    actor: &str,
) -> Result<TaskId> {
    // the lock makes a second rollback of the same task wait for the first and then see it
    let task =
        tasks::lock(conn, original).await?.filter(|t| t.environment() == env).ok_or_else(|| not_found(original))?;
    if let Some(by) = task.rolled_back_by {
        return Err(already(original, by));
    }
    if !task.status().is_terminal() {
        return Err(StoreError::rejected(
            ErrorCode::BadUserInput,
            format!("task `{original}` is {}; only a finished task can be rolled back", task.status),
        ));
    }
    if !task.task_type().moves_subscriptions() {
        return Err(StoreError::rejected(
            ErrorCode::BadUserInput,
            format!("{} tasks move no subscriptions; there is nothing to roll back", task.task_type),
        ));
    }
    // an add-on task's moves are in the add-on history
    let moved: bool = if task.addon_id.is_some() {
        addons::moved_any(conn, original.0).await?
    } else {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM subscription_version_history WHERE task_id = $1)")
            .bind(original.0)
            .fetch_one(&mut **conn)
            .await?
    };
    if !moved {
        return Err(StoreError::rejected(
            ErrorCode::BadUserInput,
            format!("task `{original}` moved no subscriptions; there is nothing to roll back"),
        ));
    }

    let rollback = TaskId::new();
    let new = tasks::NewTask {
        id: rollback,
        environment: env,
        plan_id: task.plan_id.clone(),
        spec: TaskSpec::RollbackMigration { rollback_of: original },
        target_version_id: None,
        target_version_number: None,
        idempotency_key: None,
        max_attempts,
        total: 0,
        policy: tasks::PolicyPin::ApprovalOnly,
        requested_by: Some(actor.to_owned()),
    };
    let message = format!("rollback of task {original}");
    let event = tasks::Accepted { message: &message, actor: Some(actor), data: json!({ "rollbackOf": original }) };
    tasks::accept(conn, &new, &event).await?;
    if let Some(addon_id) = &task.addon_id {
        // the rollback of an add-on task holds that add-on, as the task did
        addons::hold_for_rollback(conn, rollback, addon_id).await?;
    }
    sqlx::query(
        "UPDATE tasks SET rollback_of = CASE WHEN id = $1 THEN $2 ELSE rollback_of END,
                          rolled_back_by = CASE WHEN id = $2 THEN $1 ELSE rolled_back_by END
         WHERE id IN ($1, $2)",
    )
    .bind(rollback.0)
    .bind(original.0)
    .execute(&mut **conn)
    .await
    .map_err(|e| {
        if is_unique_violation(&e, "tasks_one_rollback") {
            already(original, "another request")
        } else {
            e.into()
        }
    })?;
    events::record(
        conn,
        env,
        original,
        "rollback",
        &format!("rollback accepted as task {rollback}"),
        Some(actor),
        json!({ "rollbackTask": rollback }),
    );
    Ok(rollback)
}

/// What planning a rollback found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollbackPlan {
    pub batches: i64,
    /// Subscriptions the original task moved.
    pub total: i64,
    pub affected_customers: i64,
    /// Moves of the original task still SCHEDULED, now canceled.
    pub canceled: i64,
}

/// Plans a rollback in the caller's transaction: cancels the original task's moves that are
/// still SCHEDULED, and cuts its history rows into batches of at most `batch_size` (ranges
/// `[lo, hi)` of the rows' ids). Set-based: two statements whatever the size.
pub async fn plan(conn: &mut PgConnection, task: &tasks::Task, batch_size: i64) -> Result<RollbackPlan> {
    let Some(original) = task.rollback_of else {
        return Err(StoreError::rejected(ErrorCode::InternalError, "rollback task names no task to roll back"));
    };
    let canceled = sqlx::query(
        "UPDATE subscription_version_changes SET status = 'CANCELED', updated_at = now()
         WHERE task_id = $1 AND status = 'SCHEDULED'",
    )
    .bind(original)
    .execute(&mut *conn)
    .await?
    .rows_affected() as i64;
    if task.addon_id.is_some() {
        let (batches, total, affected) = addons::plan_rollback(conn, original, task.id, batch_size).await?;
        return Ok(RollbackPlan { batches, total, affected_customers: affected, canceled });
    }
    let (batches, total, affected): (i64, i64, i64) = sqlx::query_as(
        "WITH planned AS (
            INSERT INTO task_batches (task_id, seq, lo, hi, expected, status)
            SELECT $2, bucket, min(id), max(id) + 1, count(*), 'PENDING'
            FROM (SELECT id, ((row_number() OVER (ORDER BY id)) - 1) / $3 AS bucket
                  FROM subscription_version_history WHERE task_id = $1) numbered
            GROUP BY bucket
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM planned), count(*), count(DISTINCT s.customer_id)
        FROM subscription_version_history h
        LEFT JOIN subscriptions s ON s.environment_id = h.environment_id AND s.id = h.subscription_id
        WHERE h.task_id = $1",
    )
    .bind(original)
    .bind(task.id)
    .bind(batch_size.max(1))
    .fetch_one(&mut *conn)
    .await?;
    Ok(RollbackPlan { batches, total, affected_customers: affected, canceled })
}

/// Moves back the subscriptions of one batch (history rows `[lo, hi)` of the original task)
/// that are still on the version the original moved them to, writing one history row each
/// under the rollback task. Subscriptions are locked in id order; one moved meanwhile by
/// someone else no longer matches once its lock is granted and is left alone. Answers how many
/// moved back.
pub(crate) async fn move_back(conn: &mut PgConnection, task: &tasks::Task, lo: i64, hi: i64) -> Result<i64> {
    let Some(original) = task.rollback_of else {
        return Err(StoreError::rejected(ErrorCode::InternalError, "rollback task names no task to roll back"));
    };
    if task.addon_id.is_some() {
        return addons::move_back(conn, task, original, lo, hi).await;
    }
    Ok(sqlx::query(
        "WITH candidates AS (
            SELECT h.subscription_id, h.from_version_id, h.to_version_id
            FROM subscription_version_history h
            JOIN subscriptions s ON s.environment_id = h.environment_id AND s.id = h.subscription_id
            WHERE h.task_id = $2 AND h.environment_id = $1 AND h.id >= $3 AND h.id < $4
              AND s.plan_version_id = h.to_version_id
            ORDER BY s.id
            FOR UPDATE OF s
        ), moved AS (
            UPDATE subscriptions s SET plan_version_id = c.from_version_id, updated_at = now()
            FROM candidates c
            WHERE s.environment_id = $1 AND s.id = c.subscription_id
            RETURNING s.id, c.to_version_id AS was_on, c.from_version_id AS now_on
        )
        INSERT INTO subscription_version_history
            (environment_id, task_id, subscription_id, from_version_id, to_version_id, effective_from)
        SELECT $1, $5, id, was_on, now_on, now() FROM moved
        ON CONFLICT (task_id, subscription_id) DO NOTHING",
    )
    .bind(task.environment_id)
    .bind(original)
    .bind(lo)
    .bind(hi)
    .bind(task.id)
    .execute(conn)
    .await?
    .rows_affected() as i64)
}

/// What a rollback of `task` would move, from the task's history: per version the
/// subscriptions came from, its number and how many went forward from it.
pub async fn history_counts(pool: &sqlx::PgPool, env: EnvironmentId, task: TaskId) -> Result<Vec<(i32, i64)>> {
    // a plan task's history, or an add-on task's (versions of the add-on)
    Ok(sqlx::query_as(
        "SELECT version_number, count(*) FROM (
            SELECT v.version_number
            FROM subscription_version_history h JOIN plan_versions v ON v.id = h.from_version_id
            WHERE h.environment_id = $1 AND h.task_id = $2
            UNION ALL
            SELECT v.version_number
            FROM subscription_addon_history h JOIN addon_versions v ON v.id = h.from_version_id
            WHERE h.environment_id = $1 AND h.task_id = $2
         ) moved
         GROUP BY version_number ORDER BY version_number",
    )
    .bind(env.0)
    .bind(task.0)
    .fetch_all(pool)
    .await?)
}
