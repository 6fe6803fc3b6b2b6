//! What operators and callers do to tasks after accepting them: cancel, retry, and the
//! rescue of work that stalled. Each is one transaction that also announces any work it
//! re-opens through the outbox.

use crate::work::Work;
use crate::{events, outbox, tasks, Result, StoreError};
use domain::{EnvironmentId, ErrorCode, Job, TaskId, TaskStatus, TaskType};
use sqlx::PgConnection;

fn not_found(id: TaskId) -> StoreError {
    StoreError::rejected(ErrorCode::NotFound, format!("task `{id}` not found"))
}

pub(crate) async fn lock_in(conn: &mut PgConnection, env: EnvironmentId, id: TaskId) -> Result<tasks::Task> {
    let task = tasks::lock(conn, id).await?.ok_or_else(|| not_found(id))?;
    if task.environment() != env {
        return Err(not_found(id));
    }
    Ok(task)
}

/// Cancels a task that has not finished. A running migration stops between batches: moves
/// already made stay and are counted; batches not yet run are canceled.
///
/// Locks are taken in the order a running batch takes them — batch rows, then the task row —
/// so a cancel that lands mid-batch waits for that batch to commit instead of deadlocking.
pub async fn cancel(conn: &mut Work, env: EnvironmentId, id: TaskId, actor: &str) -> Result<tasks::Task> {
    let refuse = |task: &tasks::Task| {
        StoreError::rejected(
            ErrorCode::BadUserInput,
            format!("task `{id}` is already {} and cannot be canceled", task.status),
        )
    };
    let seen = tasks::read(conn, id).await?.filter(|t| t.environment() == env).ok_or_else(|| not_found(id))?;
    if seen.status().is_terminal() {
        return Err(refuse(&seen));
    }
    let canceled = sqlx::query(
        "UPDATE task_batches SET status = 'CANCELED', updated_at = now() WHERE task_id = $1 AND status = 'PENDING'",
    )
    .bind(id.0)
    .execute(&mut **conn)
    .await?
    .rows_affected();
    sqlx::query(
        "UPDATE subscription_version_changes SET status = 'CANCELED', updated_at = now()
         WHERE task_id = $1 AND status = 'SCHEDULED'",
    )
    .bind(id.0)
    .execute(&mut **conn)
    .await?;
    let task = lock_in(conn, env, id).await?;
    if task.status().is_terminal() {
        return Err(refuse(&task));
    }
    let task = tasks::finish(conn, id, TaskStatus::Canceled, None).await?;
    events::record(
        conn,
        env,
        id,
        "canceled",
        &format!("canceled; {canceled} batches not run"),
        Some(actor),
        serde_json::json!({ "batchesCanceled": canceled, "processed": task.processed }),
    );
    Ok(task)
}

/// Re-runs what failed, and only that. A task that failed before its work was planned starts
/// over; a migration re-opens just the batches that had failures (their successful moves are
/// not repeated: those subscriptions are on the target already); an import re-runs its items,
/// which skips the ones that exist.
pub async fn retry(conn: &mut Work, env: EnvironmentId, id: TaskId, actor: &str) -> Result<tasks::Task> {
    let task = lock_in(conn, env, id).await?;
    let reopened = reopen(conn, env, task).await?;
    events::record(conn, env, id, "retried", "retry requested", Some(actor), serde_json::json!({}));
    Ok(reopened)
}

/// What a retry does, without its timeline row: re-opens a `FAILED` or `PARTIALLY_FAILED`
/// task (locked by the caller) and announces its work again through the outbox. A replayed
/// dead letter re-opens its task the same way.
pub(crate) async fn reopen(conn: &mut Work, env: EnvironmentId, task: tasks::Task) -> Result<tasks::Task> {
    let id = task.id();
    if let Some(by) = task.rolled_back_by {
        return Err(StoreError::rejected(
            ErrorCode::BadUserInput,
            format!("task `{id}` was rolled back by task `{by}`; it cannot be retried"),
        ));
    }
    if !matches!(task.status(), TaskStatus::Failed | TaskStatus::PartiallyFailed) {
        return Err(StoreError::rejected(
            ErrorCode::BadUserInput,
            format!("task `{id}` is {}; only FAILED or PARTIALLY_FAILED tasks can be retried", task.status),
        ));
    }
    let batches: i64 = sqlx::query_scalar("SELECT count(*) FROM task_batches WHERE task_id = $1")
        .bind(id.0)
        .fetch_one(&mut **conn)
        .await?;
    let migration =
        matches!(task.task_type(), TaskType::PublishPlan | TaskType::StagedRollout | TaskType::RollbackMigration)
            && batches > 0;
    if migration {
        if let (Some(plan), Some(target)) = (&task.plan_id, task.target_version_number) {
            let newer: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM plan_versions WHERE environment_id = $1 AND plan_id = $2
                    AND status = 'PUBLISHED' AND version_number > $3)",
            )
            .bind(env.0)
            .bind(plan)
            .bind(target)
            .fetch_one(&mut **conn)
            .await?;
            if newer {
                return Err(StoreError::rejected(
                    ErrorCode::BadUserInput,
                    format!("a version newer than {target} has been published since; publish again instead"),
                ));
            }
        }
        reopen_failed_batches(conn, id).await?;
    } else {
        sqlx::query("DELETE FROM task_item_failures WHERE task_id = $1").bind(id.0).execute(&mut **conn).await?;
        sqlx::query(
            "UPDATE tasks SET status = 'PENDING', planned_at = NULL, processed = 0, failed = 0, attempts = 0
             WHERE id = $1",
        )
        .bind(id.0)
        .execute(&mut **conn)
        .await?;
    }
    let reopened = sqlx::query_as::<_, tasks::Task>(
        "UPDATE tasks SET status = CASE WHEN planned_at IS NULL THEN 'PENDING' ELSE 'IN_PROGRESS' END,
            error_code = NULL, last_error = NULL, finished_at = NULL, lease_owner = NULL, lease_expires_at = NULL,
            updated_at = now()
         WHERE id = $1 RETURNING *",
    )
    .bind(id.0)
    .fetch_one(&mut **conn)
    .await
    .map_err(|e| {
        if crate::is_unique_violation(&e, tasks::HOLDER_PER_PLAN) {
            StoreError::rejected(
                ErrorCode::ObjectAlreadyBeingUsedByAnotherRequestError,
                "another task holds this plan (a publish, rollout, rollback or migration); retry when it ends",
            )
        } else {
            e.into()
        }
    })?;
    if reopened.planned_at.is_some() {
        outbox::enqueue_pending_batches(conn, id).await?;
    } else {
        conn.enqueue(Job::Task { task_id: id });
    }
    Ok(reopened)
}

/// Puts every batch that had failures back to PENDING and takes its counts off the task.
async fn reopen_failed_batches(conn: &mut PgConnection, id: TaskId) -> Result<()> {
    sqlx::query(
        "WITH reopened AS (
            UPDATE task_batches b SET status = 'PENDING', attempts = 0, moved = 0, failed = 0, last_error = NULL,
                updated_at = now()
            FROM (SELECT seq, status AS was, expected, moved, failed FROM task_batches
                  WHERE task_id = $1 AND (status = 'FAILED' OR (status = 'DONE' AND failed > 0)) FOR UPDATE) old
            WHERE b.task_id = $1 AND b.seq = old.seq
            RETURNING b.lo, b.hi,
                CASE WHEN old.was = 'FAILED' THEN old.expected ELSE greatest(old.expected, old.moved + old.failed) END
                    AS counted,
                old.failed AS failed
        ), cleared AS (
            DELETE FROM task_item_failures f
            USING subscriptions s, reopened r
            WHERE f.task_id = $1 AND s.id = f.subscription_id AND s.row_id >= r.lo AND s.row_id < r.hi
        )
        UPDATE tasks SET processed = processed - (SELECT coalesce(sum(counted), 0) FROM reopened),
                         failed = failed - (SELECT coalesce(sum(failed), 0) FROM reopened)
        WHERE id = $1",
    )
    .bind(id.0)
    .execute(conn)
    .await?;
    Ok(())
}

/// The longest wait between two announcements of a task's stalled work, in rescue periods.
pub const RESCUE_BACKOFF_MAX: f64 = 8.0;

/// Work that stalled: a task not yet planned, not being planned (its row not locked), that nobody touched for
/// `after_secs` (its message was lost to a dead-letter, say), or a planned migration with
/// pending batches and no progress for as long. Its work is announced again; duplicates are
/// harmless. Rescuers in several workers skip each other's rows.
///
/// A task announced again and still making no progress waits before the next announcement:
/// `after_secs`, then twice, four and at most `RESCUE_BACKOFF_MAX` times as long, so work that
/// sits queued with nobody consuming it (a queue without a consumer) is not announced again
/// and again; progress since the last announcement starts the count afresh.
pub async fn rescue_stalled(conn: &mut Work, after_secs: i64) -> Result<Vec<TaskId>> {
    let stalled: Vec<(uuid::Uuid, uuid::Uuid, bool)> = sqlx::query_as(
        "WITH stalled AS (
            SELECT id FROM tasks
            WHERE status IN ('PENDING', 'IN_PROGRESS') AND updated_at < now() - make_interval(secs => $1)
              AND (rescued_at IS NULL OR updated_at > rescued_at
                   OR rescued_at < now() - make_interval(secs => $1 * least(power(2, rescues - 1), $2)))
              AND (lease_expires_at IS NULL OR lease_expires_at < now())
              -- a task that waits for approval, and said so, waits for an admin
              AND (approval_state IS DISTINCT FROM 'PENDING' OR NOT approval_announced)
              -- a planned task whose only open work is scheduled moves waits for the scheduler
              AND (planned_at IS NULL OR EXISTS (SELECT 1 FROM task_batches b
                                                 WHERE b.task_id = tasks.id AND b.status = 'PENDING'))
              -- a paused rollout's pending batches wait for its resume
              AND NOT EXISTS (SELECT 1 FROM task_rollouts r WHERE r.task_id = tasks.id AND r.paused_at IS NOT NULL)
            ORDER BY updated_at LIMIT 100
            FOR UPDATE SKIP LOCKED
        )
        UPDATE tasks t SET rescued_at = now(),
            rescues = CASE WHEN t.rescued_at IS NULL OR t.updated_at > t.rescued_at THEN 1 ELSE t.rescues + 1 END
        FROM stalled s WHERE t.id = s.id
        RETURNING t.id, t.environment_id, t.planned_at IS NOT NULL",
    )
    .bind(after_secs as f64)
    .bind(RESCUE_BACKOFF_MAX)
    .fetch_all(&mut **conn)
    .await?;
    let mut rescued = Vec::with_capacity(stalled.len());
    for (id, env, planned) in stalled {
        let id = TaskId(id);
        let what = if planned {
            let n = outbox::enqueue_pending_batches(conn, id).await?;
            format!("{n} pending batches announced again")
        } else {
            conn.enqueue(Job::Task { task_id: id });
            "task announced again".to_owned()
        };
        events::record(conn, EnvironmentId(env), id, "rescued", &what, Some("rescuer"), serde_json::json!({}));
        rescued.push(id);
    }
    Ok(rescued)
}
