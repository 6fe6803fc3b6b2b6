//! A migration's batches: ranges of subscription `row_id` planned once, when the task starts,
//! and each moved in one transaction that also writes history, marks the batch done and adds
//! to the task's progress. A batch that is already DONE is never applied again, and the
//! history's UNIQUE (task_id, subscription_id) makes a double move impossible even so.

use crate::movers::{bind_scope, Scope, MOVERS};
use crate::policies::not_excluded;
use crate::version_changes::{self, MOVED_FROM_HISTORY};
use crate::work::Work;
use crate::{rollbacks, rollouts, tasks, webhooks, Result, StoreError};
use domain::{ErrorCode, TaskId, TaskStatus, TaskType, VersionChangeBehaviour, WebhookEventType};
use sqlx::PgConnection;
use uuid::Uuid;

fn live_statuses() -> Vec<&'static str> {
    Scope::live_statuses()
}

/// The subscriptions a migration covers, cut into batches of at most `batch_size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrationPlan {
    pub batches: i64,
    pub total: i64,
    pub affected_customers: i64,
}

/// Plans the migration of every live subscription of `plan_id` on a version older than
/// `target_version_number` (the selection of `movers::MOVERS`, the one a preview counts),
/// writing its batches. Set-based: one statement whatever the size.
pub async fn plan_migration(
    conn: &mut PgConnection,
    task: &tasks::Task,
    target_version_number: i32,
    batch_size: i64,
) -> Result<MigrationPlan> {
    let mut scope = crate::movers::task_scope(task, target_version_number, VersionChangeBehaviour::Immediate, None)?;
    // a policy with a notice never reaches here (its moves are scheduled); its exclusions do
    scope.behaviour = VersionChangeBehaviour::Immediate;
    scope.effective_from = None;
    crate::movers::record_exclusions(conn, task.id, &scope).await?;
    let sql = format!(
        "WITH movers AS NOT MATERIALIZED (SELECT * FROM ({MOVERS}) c WHERE exclusion IS NULL), planned AS (
            INSERT INTO task_batches (task_id, seq, lo, hi, expected, status)
            SELECT $9, bucket, min(row_id), max(row_id) + 1, count(*), 'PENDING'
            FROM (SELECT row_id, ((row_number() OVER (ORDER BY row_id)) - 1) / $10 AS bucket FROM movers) numbered
            GROUP BY bucket
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM planned), count(*), count(DISTINCT customer_id) FROM movers"
    );
    let (batches, total, affected): (i64, i64, i64) =
        bind_scope!(sqlx::query_as(&sql), scope).bind(task.id).bind(batch_size.max(1)).fetch_one(&mut *conn).await?;
    Ok(MigrationPlan { batches, total, affected_customers: affected })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOutcome {
    /// No such batch: the message names work that does not exist.
    Missing,
    /// The batch was done before (a redelivered or rescued message): nothing changed.
    AlreadyDone,
    /// The batch belongs to a paused rollout: it stays pending, and resuming announces it again.
    Paused,
    /// The batch ran now.
    Ran { moved: i64, failed: i64, task_finished: Option<TaskStatus> },
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct BatchRow {
    lo: i64,
    hi: i64,
    expected: i64,
    status: String,
    cohort: Option<i32>,
}

/// Moves one batch. Runs inside the caller's transaction, which it expects to commit.
pub async fn run(conn: &mut Work, task_id: TaskId, seq: i32, worker: &str) -> Result<BatchOutcome> {
    let Some(batch) = sqlx::query_as::<_, BatchRow>(
        "SELECT lo, hi, expected, status, cohort FROM task_batches WHERE task_id = $1 AND seq = $2 FOR UPDATE",
    )
    .bind(task_id.0)
    .bind(seq)
    .fetch_optional(&mut **conn)
    .await?
    else {
        return Ok(BatchOutcome::Missing);
    };
    if batch.status != "PENDING" {
        return Ok(BatchOutcome::AlreadyDone);
    }
    let Some(task) = tasks::read(conn, task_id).await? else {
        return Ok(BatchOutcome::AlreadyDone);
    };
    if task.status() == TaskStatus::Canceled {
        sqlx::query("UPDATE task_batches SET status = 'CANCELED', updated_at = now() WHERE task_id = $1 AND seq = $2")
            .bind(task_id.0)
            .bind(seq)
            .execute(&mut **conn)
            .await?;
        return Ok(BatchOutcome::Ran { moved: 0, failed: 0, task_finished: None });
    }
    if task.task_type() == TaskType::RollbackMigration {
        // a rollback moves back what its task moved; whoever is no longer where that task put
        // them is left alone and counted as skipped
        let moved = rollbacks::move_back(conn, &task, batch.lo, batch.hi).await?;
        // a plan's subscriptions moved back are announced like any move (an add-on's holders
        // are in the add-on history, which `subscriptions.migrated` does not describe)
        if moved > 0
            && task.addon_id.is_none()
            && webhooks::subscribed(conn, task.environment(), WebhookEventType::SubscriptionsMigrated).await?
        {
            let sql = format!(
                "{MOVED_FROM_HISTORY} WHERE h.task_id = $1 AND h.subscription_id IN (
                    SELECT o.subscription_id FROM subscription_version_history o
                    WHERE o.task_id = $2 AND o.id >= $3 AND o.id < $4)
                 ORDER BY h.subscription_id"
            );
            let moved: Vec<version_changes::MovedSubscription> = sqlx::query_as(&sql)
                .bind(task.id)
                .bind(task.rollback_of)
                .bind(batch.lo)
                .bind(batch.hi)
                .fetch_all(&mut **conn)
                .await?;
            version_changes::announce_migrated(conn, &task, &moved).await?;
        }
        let skipped = (batch.expected - moved).max(0);
        return settle(conn, task_id, seq, worker, &batch, (moved, 0, skipped)).await;
    }
    if task.task_type() == TaskType::PublishAddon {
        // an add-on publish moves the add-on its live holders in the range hold
        let (moved, failed) = crate::addons::move_batch(conn, &task, batch.lo, batch.hi).await?;
        if moved > 0 && webhooks::subscribed(conn, task.environment(), WebhookEventType::SubscriptionsMigrated).await? {
            // the holders it moved, with the add-on versions they went from and to
            let moved: Vec<version_changes::MovedSubscription> = sqlx::query_as(
                "SELECT h.subscription_id, s.customer_id, fv.version_number AS from_version,
                        tv.version_number AS to_version, h.moved_at AS effective_date
                 FROM subscription_addon_history h
                 JOIN subscriptions s ON s.environment_id = h.environment_id AND s.id = h.subscription_id
                 JOIN addon_versions fv ON fv.id = h.from_version_id
                 JOIN addon_versions tv ON tv.id = h.to_version_id
                 WHERE h.task_id = $1 AND s.row_id >= $2 AND s.row_id < $3 ORDER BY h.subscription_id",
            )
            .bind(task.id)
            .bind(batch.lo)
            .bind(batch.hi)
            .fetch_all(&mut **conn)
            .await?;
            version_changes::announce_migrated(conn, &task, &moved).await?;
        }
        return settle(conn, task_id, seq, worker, &batch, (moved, failed, 0)).await;
    }
    let (Some(target), Some(target_number)) = (task.target_version_id, task.target_version_number) else {
        return Ok(BatchOutcome::AlreadyDone);
    };
    // a rollout's batch moves only the members of its cohort, and nothing while paused
    let cohort = match batch.cohort {
        Some(cohort) => rollouts::cohort_filter(conn, task_id, cohort).await?,
        None => None,
    };
    if cohort.as_ref().is_some_and(|c| c.paused) {
        return Ok(BatchOutcome::Paused);
    }
    let (threshold, customers, salt) = match cohort {
        Some(c) => (Some(c.threshold), c.customer_ids, c.salt),
        None => (None, Vec::new(), String::new()),
    };
    let planned_at = task.started_at.unwrap_or(task.created_at);
    // a Sequence update with `makeVersionEffectiveFromOutset`: the version counts from each
    // subscription's start
    let outset = task
        .spec()
        .map_err(|invalid| StoreError::rejected(ErrorCode::InvalidTaskSpec, invalid.to_string()))?
        .effective_from_outset();

    let moved = sqlx::query(&format!(
        "WITH candidates AS (
            SELECT s.environment_id, s.id, s.plan_version_id AS from_version
            FROM subscriptions s JOIN plan_versions v ON v.id = s.plan_version_id
            WHERE s.environment_id = $1 AND s.plan_id = $2 AND s.row_id >= $3 AND s.row_id < $4
              AND v.version_number < $5 AND s.status = ANY($6)
              AND ($10::int IS NULL OR s.customer_id = ANY($11) OR rollout_bucket($12, s.id) < $10)
              AND {}
            FOR UPDATE OF s
        ), moved AS (
            UPDATE subscriptions s SET plan_version_id = $7, updated_at = now()
            FROM candidates c
            WHERE s.environment_id = c.environment_id AND s.id = c.id
            RETURNING s.id, s.start_date, c.from_version
        )
        INSERT INTO subscription_version_history
            (environment_id, task_id, subscription_id, from_version_id, to_version_id, effective_from)
        SELECT $1, $8, id, from_version, $7, CASE WHEN $9 THEN start_date ELSE now() END FROM moved
        ON CONFLICT (task_id, subscription_id) DO NOTHING",
        not_excluded("$13", "$14")
    ))
    .bind(task.environment_id)
    .bind(&task.plan_id)
    .bind(batch.lo)
    .bind(batch.hi)
    .bind(target_number)
    .bind(live_statuses())
    .bind(target)
    .bind(task.id)
    .bind(outset)
    .bind(threshold)
    .bind(&customers)
    .bind(&salt)
    .bind(&task.policy)
    .bind(task.created_at)
    .execute(&mut **conn)
    .await?
    .rows_affected() as i64;

    // Subscriptions that were live when the task was planned but no longer are: recorded
    // with their reason rather than silently skipped.
    let failed = sqlx::query(&format!(
        "INSERT INTO task_item_failures (task_id, subscription_id, code, message)
         SELECT $8, s.id, $9, 'subscription is ' || s.status || ' and was not moved'
         FROM subscriptions s JOIN plan_versions v ON v.id = s.plan_version_id
         WHERE s.environment_id = $1 AND s.plan_id = $2 AND s.row_id >= $3 AND s.row_id < $4
           AND v.version_number < $5 AND NOT (s.status = ANY($6)) AND s.updated_at >= $7
           AND ($10::int IS NULL OR s.customer_id = ANY($11) OR rollout_bucket($12, s.id) < $10)
           AND {}
         ON CONFLICT (task_id, subscription_id) DO NOTHING",
        not_excluded("$13", "$14")
    ))
    .bind(task.environment_id)
    .bind(&task.plan_id)
    .bind(batch.lo)
    .bind(batch.hi)
    .bind(target_number)
    .bind(live_statuses())
    .bind(planned_at)
    .bind(task.id)
    .bind(ErrorCode::SubscriptionAlreadyCanceledOrExpired.as_str())
    .bind(threshold)
    .bind(&customers)
    .bind(&salt)
    .bind(&task.policy)
    .bind(task.created_at)
    .execute(&mut **conn)
    .await?
    .rows_affected() as i64;

    if moved > 0 && webhooks::subscribed(conn, task.environment(), WebhookEventType::SubscriptionsMigrated).await? {
        let sql = format!(
            "{MOVED_FROM_HISTORY} WHERE h.task_id = $1 AND s.row_id >= $2 AND s.row_id < $3 ORDER BY h.subscription_id"
        );
        let moved: Vec<version_changes::MovedSubscription> =
            sqlx::query_as(&sql).bind(task.id).bind(batch.lo).bind(batch.hi).fetch_all(&mut **conn).await?;
        version_changes::announce_migrated(conn, &task, &moved).await?;
    }
    settle(conn, task_id, seq, worker, &batch, (moved, failed, 0)).await
}

/// Ends a batch that ran: marks it DONE with its counts, adds them to the task's progress
/// (`skipped` too: subscriptions a rollback left alone) and ends the task if this was its
/// last batch.
async fn settle(
    conn: &mut Work,
    task_id: TaskId,
    seq: i32,
    worker: &str,
    batch: &BatchRow,
    (moved, failed, skipped): (i64, i64, i64),
) -> Result<BatchOutcome> {
    sqlx::query(
        "UPDATE task_batches SET status = 'DONE', moved = $3, failed = $4, attempts = attempts + 1, worker = $5,
            updated_at = now()
         WHERE task_id = $1 AND seq = $2",
    )
    .bind(task_id.0)
    .bind(seq)
    .bind(moved)
    .bind(failed)
    .bind(worker)
    .execute(&mut **conn)
    .await?;

    // Taking the task row's lock last keeps batches of one task running in parallel; the
    // count below runs after the lock is held, so it sees every batch committed before us.
    sqlx::query(
        "UPDATE tasks SET processed = processed + $2, failed = failed + $3, skipped = skipped + $4, updated_at = now()
         WHERE id = $1",
    )
    .bind(task_id.0)
    .bind(batch.expected.max(moved + failed))
    .bind(failed)
    .bind(skipped)
    .execute(&mut **conn)
    .await?;
    let task_finished = finish_if_done(conn, task_id).await?;
    Ok(BatchOutcome::Ran { moved, failed, task_finished })
}

/// Gives up on a batch that ran out of attempts: its subscriptions count as failed with the
/// batch's last error, and the task ends if this was its last batch.
pub async fn give_up(conn: &mut Work, task_id: TaskId, seq: i32, message: &str) -> Result<Option<TaskStatus>> {
    let expected: Option<i64> = sqlx::query_scalar(
        "UPDATE task_batches SET status = 'FAILED', failed = expected, last_error = $3, updated_at = now()
         WHERE task_id = $1 AND seq = $2 AND status = 'PENDING' RETURNING expected",
    )
    .bind(task_id.0)
    .bind(seq)
    .bind(message)
    .fetch_optional(&mut **conn)
    .await?;
    let Some(expected) = expected else {
        return Ok(None);
    };
    sqlx::query("UPDATE tasks SET processed = processed + $2, failed = failed + $2, updated_at = now() WHERE id = $1")
        .bind(task_id.0)
        .bind(expected)
        .execute(&mut **conn)
        .await?;
    finish_if_done(conn, task_id).await
}

/// Ends an IN_PROGRESS task whose batches are all done — or, for a rollout with cohorts still
/// to come, schedules the next cohort instead. Call with the task row locked.
pub async fn finish_if_done(conn: &mut Work, task_id: TaskId) -> Result<Option<TaskStatus>> {
    let pending: i64 =
        sqlx::query_scalar("SELECT count(*) FROM task_batches WHERE task_id = $1 AND status = 'PENDING'")
            .bind(task_id.0)
            .fetch_one(&mut **conn)
            .await?;
    if pending > 0 {
        return Ok(None);
    }
    let Some(task) = tasks::lock(conn, task_id).await? else {
        return Ok(None);
    };
    if task.status() != TaskStatus::InProgress {
        return Ok(None);
    }
    if task.task_type() == TaskType::StagedRollout && rollouts::cohort_done(conn, task_id).await? {
        return Ok(None);
    }
    let status = TaskStatus::from_counts(task.processed, task.failed);
    let error = if task.failed > 0 {
        // a batch that ran out of attempts says why; otherwise subscriptions stopped being live
        let gave_up: Option<String> = sqlx::query_scalar(
            "SELECT last_error FROM task_batches WHERE task_id = $1 AND status = 'FAILED' ORDER BY seq LIMIT 1",
        )
        .bind(task_id.0)
        .fetch_optional(&mut **conn)
        .await?
        .flatten();
        let summary = format!("{} of {} subscriptions could not be moved", task.failed, task.processed);
        Some(match gave_up {
            Some(reason) => (ErrorCode::MaxAttemptsExceeded, format!("{summary}: {reason}")),
            None => (ErrorCode::SubscriptionAlreadyCanceledOrExpired, summary),
        })
    } else {
        None
    };
    tasks::finish(conn, task_id, status, error.as_ref().map(|(c, m)| (*c, m.as_str()))).await?;
    Ok(Some(status))
}

/// Batches of a task with their state, for the task page.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BatchSummary {
    pub seq: i32,
    pub lo: i64,
    pub hi: i64,
    pub expected: i64,
    pub status: String,
    pub attempts: i32,
    pub moved: i64,
    pub failed: i64,
    pub worker: Option<String>,
}

pub async fn list(conn: &mut PgConnection, task_id: Uuid) -> Result<Vec<BatchSummary>> {
    Ok(sqlx::query_as::<_, BatchSummary>(
        "SELECT seq, lo, hi, expected, status, attempts, moved, failed, worker FROM task_batches
         WHERE task_id = $1 ORDER BY seq",
    )
    .bind(task_id)
    .fetch_all(conn)
    .await?)
}
