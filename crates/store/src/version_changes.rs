//! Scheduled moves of subscriptions onto a newer plan version (`subscription_version_changes`):
//! planned set-based when a SUBSCRIPTION_MIGRATION task starts, applied by any number of
//! schedulers when due, superseded by a newer version, and the per-subscription migrate of
//! Stigg's dialect. At most one move per subscription is SCHEDULED (a partial unique index);
//! applying one writes exactly one history row (UNIQUE (task_id, subscription_id)) and never
//! moves a subscription backwards. It decides nothing about HTTP or queues.

use crate::movers::{bind_scope, Scope, MOVERS};
use crate::work::Work;
use crate::{events, plans, tasks, webhooks, Result, StoreError};
use chrono::{DateTime, Utc};
use domain::{EnvironmentId, ErrorCode, SubscriptionStatus, TaskId, TaskSpec, TaskStatus, WebhookEventType};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

fn live_statuses() -> Vec<&'static str> {
    SubscriptionStatus::LIVE.iter().map(|s| s.as_str()).collect()
}

/// Cancels the SCHEDULED moves of `plan_id`'s subscriptions to versions older than
/// `target_version_number`, and ends each task left with nothing scheduled: a task that lost
/// moves this way ends CANCELED (moves it already made stay). Answers the tasks it ended.
pub async fn supersede(
    conn: &mut Work,
    env: EnvironmentId,
    plan_id: &str,
    target_version_number: i32,
    by: Option<TaskId>,
) -> Result<Vec<TaskId>> {
    let touched: Vec<Uuid> = sqlx::query_scalar(
        "WITH canceled AS (
            UPDATE subscription_version_changes c SET status = 'CANCELED', updated_at = now()
            FROM plan_versions tv
            WHERE c.environment_id = $1 AND c.status = 'SCHEDULED' AND tv.id = c.target_version_id
              AND tv.plan_id = $2 AND tv.version_number < $3
            RETURNING c.task_id
        )
        SELECT DISTINCT task_id FROM canceled WHERE task_id IS NOT NULL ORDER BY task_id",
    )
    .bind(env.0)
    .bind(plan_id)
    .bind(target_version_number)
    .fetch_all(&mut **conn)
    .await?;
    let mut ended = Vec::new();
    for task in touched {
        let task = TaskId(task);
        let message = match by {
            Some(by) => format!("superseded by task {by} (version {target_version_number})"),
            None => format!("superseded by version {target_version_number}"),
        };
        if end_if_settled(conn, task, Some((TaskStatus::Canceled, &message))).await?.is_some() {
            events::record(conn, env, task, "superseded", &message, None, json!({ "by": by.map(|t| t.0) }));
            ended.push(task);
        }
    }
    Ok(ended)
}

/// Ends an IN_PROGRESS, planned task that has no SCHEDULED move and no pending batch left:
/// with `status` if given, else from its counts. Answers the status it ended with.
pub async fn end_if_settled(
    conn: &mut Work,
    task_id: TaskId,
    status: Option<(TaskStatus, &str)>,
) -> Result<Option<TaskStatus>> {
    let Some(task) = tasks::lock(conn, task_id).await? else {
        return Ok(None);
    };
    if task.status() != TaskStatus::InProgress || task.planned_at.is_none() {
        return Ok(None);
    }
    let open: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM subscription_version_changes WHERE task_id = $1 AND status = 'SCHEDULED')
             OR EXISTS (SELECT 1 FROM task_batches WHERE task_id = $1 AND status = 'PENDING')",
    )
    .bind(task_id.0)
    .fetch_one(&mut **conn)
    .await?;
    if open {
        return Ok(None);
    }
    let (status, message) = match status {
        Some((status, message)) => (status, Some(message.to_owned())),
        None => {
            let status = TaskStatus::from_counts(task.processed, task.failed);
            let message = (task.failed > 0)
                .then(|| format!("{} of {} subscriptions could not be moved", task.failed, task.processed));
            (status, message)
        }
    };
    let error = match (&message, status) {
        (Some(m), TaskStatus::Canceled) => {
            sqlx::query("UPDATE tasks SET last_error = $2 WHERE id = $1")
                .bind(task_id.0)
                .bind(m)
                .execute(&mut **conn)
                .await?;
            None
        }
        (Some(m), _) => Some((ErrorCode::SubscriptionAlreadyCanceledOrExpired, m.as_str())),
        (None, _) => None,
    };
    tasks::finish(conn, task_id, status, error).await?;
    Ok(Some(status))
}

/// Whether a migration of the same plan to a newer version was planned before this task: then
/// this one has nothing left to do (its moves would be superseded at once).
pub async fn newer_migration_planned(conn: &mut PgConnection, task: &tasks::Task) -> Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM tasks WHERE environment_id = $1 AND plan_id = $2
            AND task_type = 'SUBSCRIPTION_MIGRATION' AND planned_at IS NOT NULL AND target_version_number > $3
            AND id <> $4)",
    )
    .bind(task.environment_id)
    .bind(&task.plan_id)
    .bind(task.target_version_number.unwrap_or(0))
    .bind(task.id)
    .fetch_one(conn)
    .await?)
}

/// Ends a task that a newer version superseded before it was planned: CANCELED, planned, with
/// the reason.
pub async fn end_superseded(conn: &mut Work, task_id: TaskId, message: &str) -> Result<()> {
    sqlx::query("UPDATE tasks SET last_error = $2 WHERE id = $1")
        .bind(task_id.0)
        .bind(message)
        .execute(&mut **conn)
        .await?;
    tasks::finish_planning(conn, task_id, TaskStatus::Canceled, None).await?;
    Ok(())
}

/// Totals of a planned set of moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    pub total: i64,
    pub affected_customers: i64,
}

/// Plans one SCHEDULED move per subscription `scope` moves (its policy's exclusions left
/// where they are, and counted on the task), in one statement: IMMEDIATE at max(now,
/// effective_from), NEXT_BILLING_DATE at the subscription's first billing date on or after
/// effective_from (or now), computed in SQL by `next_billing_date`, the same rule as
/// `domain::BillingPeriod::next_billing_date`. The history row will say the version counts
/// from `apply_at`, or from the subscription's start with `outset`. A subscription that
/// already has a move SCHEDULED (to this version or a newer one) keeps it. Announces the moves
/// to webhook endpoints (`subscriptions.migration_scheduled`) in the same transaction.
pub async fn plan(conn: &mut PgConnection, task: &tasks::Task, scope: &Scope, outset: bool) -> Result<Planned> {
    let Some(target) = task.target_version_id else {
        return Err(StoreError::rejected(ErrorCode::InternalError, "task has no target version"));
    };
    crate::movers::record_exclusions(conn, task.id, scope).await?;
    let sql = format!(
        "WITH candidates AS (SELECT * FROM ({MOVERS}) c WHERE exclusion IS NULL), inserted AS (
            INSERT INTO subscription_version_changes
                (id, environment_id, subscription_id, target_version_id, apply_at, effective_from, status, task_id)
            SELECT gen_random_uuid(), $1, c.id, $9, c.apply_at, CASE WHEN $10 THEN c.start_date ELSE c.apply_at END,
                   'SCHEDULED', $11
            FROM candidates c
            ON CONFLICT (environment_id, subscription_id) WHERE status = 'SCHEDULED' DO NOTHING
            RETURNING subscription_id
        )
        SELECT count(*), count(DISTINCT c.customer_id)
        FROM inserted i JOIN candidates c ON c.id = i.subscription_id"
    );
    let (total, affected): (i64, i64) =
        bind_scope!(sqlx::query_as(&sql), scope).bind(target).bind(outset).bind(task.id).fetch_one(&mut *conn).await?;
    if total > 0 {
        announce_scheduled(conn, task).await?;
    }
    Ok(Planned { total, affected_customers: affected })
}

/// Subscriptions per `subscriptions.migration_scheduled` / `subscriptions.migrated` event.
pub const SUBSCRIPTIONS_PER_EVENT: i64 = 1000;

/// One subscription in a `subscriptions.*` webhook event.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MovedSubscription {
    pub subscription_id: String,
    pub customer_id: String,
    pub from_version: Option<i32>,
    pub to_version: i32,
    /// When the move takes (or took) effect.
    pub effective_date: DateTime<Utc>,
}

/// Writes the task's SCHEDULED moves as `subscriptions.migration_scheduled` events, one per
/// `SUBSCRIPTIONS_PER_EVENT` subscriptions, read in pages so memory stays bounded. Nothing when
/// no endpoint of the environment listens.
async fn announce_scheduled(conn: &mut PgConnection, task: &tasks::Task) -> Result<()> {
    let env = task.environment();
    let event = WebhookEventType::SubscriptionsMigrationScheduled;
    if !webhooks::subscribed(conn, env, event).await? {
        return Ok(());
    }
    let mut after = String::new();
    loop {
        let page: Vec<MovedSubscription> = sqlx::query_as(
            "SELECT c.subscription_id, s.customer_id, fv.version_number AS from_version,
                    tv.version_number AS to_version, c.apply_at AS effective_date
             FROM subscription_version_changes c
             JOIN subscriptions s ON s.environment_id = c.environment_id AND s.id = c.subscription_id
             JOIN plan_versions fv ON fv.id = s.plan_version_id
             JOIN plan_versions tv ON tv.id = c.target_version_id
             WHERE c.task_id = $1 AND c.status = 'SCHEDULED' AND c.subscription_id > $2
             ORDER BY c.subscription_id LIMIT $3",
        )
        .bind(task.id)
        .bind(&after)
        .bind(SUBSCRIPTIONS_PER_EVENT)
        .fetch_all(&mut *conn)
        .await?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = last.subscription_id.clone();
        let full = page.len() as i64 == SUBSCRIPTIONS_PER_EVENT;
        webhooks::emit(conn, env, event, subscriptions_event(task, &page)).await?;
        if !full {
            return Ok(());
        }
    }
}

/// Writes `subscriptions.migrated` events for the task's moves, one per
/// `SUBSCRIPTIONS_PER_EVENT` subscriptions (`moved` read from its history rows).
pub async fn announce_migrated(conn: &mut PgConnection, task: &tasks::Task, moved: &[MovedSubscription]) -> Result<()> {
    for chunk in moved.chunks(SUBSCRIPTIONS_PER_EVENT as usize) {
        let data = subscriptions_event(task, chunk);
        webhooks::emit(conn, task.environment(), WebhookEventType::SubscriptionsMigrated, data).await?;
    }
    Ok(())
}

/// The SELECT list and joins that read history rows `h` as `MovedSubscription`s.
pub(crate) const MOVED_FROM_HISTORY: &str =
    "SELECT h.subscription_id, s.customer_id, fv.version_number AS from_version,
        tv.version_number AS to_version, h.effective_from AS effective_date
    FROM subscription_version_history h
    JOIN subscriptions s ON s.environment_id = h.environment_id AND s.id = h.subscription_id
    LEFT JOIN plan_versions fv ON fv.id = h.from_version_id
    JOIN plan_versions tv ON tv.id = h.to_version_id";

/// The data of a `subscriptions.*` event: the task, its plan (or add-on), and the
/// subscriptions.
pub fn subscriptions_event(task: &tasks::Task, subscriptions: &[MovedSubscription]) -> serde_json::Value {
    json!({
        "taskId": task.id,
        "taskType": task.task_type.as_str(),
        "planId": task.plan_id,
        // set when the versions are an add-on's (an add-on publish and its rollback)
        "addonId": task.addon_id,
        "count": subscriptions.len(),
        "subscriptions": subscriptions,
    })
}

/// What one pass of a scheduler did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Due moves taken in this pass.
    pub taken: usize,
    /// Subscriptions moved (one history row each).
    pub moved: i64,
    /// Moves that could not happen: the subscription stopped being live.
    pub failed: i64,
    /// Tasks that ended in this pass.
    pub finished: Vec<(TaskId, TaskStatus)>,
}

/// Applies up to `limit` due moves in the caller's transaction. `FOR UPDATE SKIP LOCKED` gives
/// each scheduler its own rows, so any number run at once without applying one twice. A move
/// whose subscription is already on its target (or newer) is CANCELED and counted as done;
/// one whose subscription stopped being live is FAILED with the reason.
pub async fn apply_due(conn: &mut Work, limit: i64) -> Result<Applied> {
    let due: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM subscription_version_changes
         WHERE status = 'SCHEDULED' AND apply_at <= now()
         ORDER BY apply_at, id LIMIT $1
         FOR UPDATE SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(&mut **conn)
    .await?;
    if due.is_empty() {
        return Ok(Applied::default());
    }
    let outcomes: Vec<(Uuid, Option<Uuid>, String)> = sqlx::query_as(
        "WITH candidates AS (
            SELECT c.id AS change_id, c.environment_id, c.subscription_id, c.target_version_id, c.task_id,
                   coalesce(c.effective_from, c.apply_at) AS effective_from, s.plan_version_id AS from_version,
                   s.status = ANY($2) AS live, sv.version_number < tv.version_number AS behind
            FROM subscription_version_changes c
            JOIN subscriptions s ON s.environment_id = c.environment_id AND s.id = c.subscription_id
            JOIN plan_versions sv ON sv.id = s.plan_version_id
            JOIN plan_versions tv ON tv.id = c.target_version_id
            WHERE c.id = ANY($1)
            ORDER BY s.environment_id, s.id
            FOR UPDATE OF s
        ), moved AS (
            UPDATE subscriptions s SET plan_version_id = c.target_version_id, updated_at = now()
            FROM candidates c
            WHERE c.live AND c.behind AND s.environment_id = c.environment_id AND s.id = c.subscription_id
            RETURNING s.environment_id, s.id
        ), history AS (
            INSERT INTO subscription_version_history
                (environment_id, task_id, subscription_id, from_version_id, to_version_id, effective_from)
            SELECT c.environment_id, c.task_id, c.subscription_id, c.from_version, c.target_version_id, c.effective_from
            FROM candidates c JOIN moved m ON m.environment_id = c.environment_id AND m.id = c.subscription_id
            ON CONFLICT (task_id, subscription_id) DO NOTHING
        ), settled AS (
            UPDATE subscription_version_changes sc
            SET status = CASE WHEN m.id IS NOT NULL THEN 'DONE' WHEN NOT c.live THEN 'FAILED' ELSE 'CANCELED' END,
                updated_at = now()
            FROM candidates c LEFT JOIN moved m ON m.environment_id = c.environment_id AND m.id = c.subscription_id
            WHERE sc.id = c.change_id
            RETURNING sc.id, sc.task_id, sc.status, sc.subscription_id
        ), failures AS (
            INSERT INTO task_item_failures (task_id, subscription_id, code, message)
            SELECT task_id, subscription_id, $3, 'subscription is no longer live and was not moved'
            FROM settled WHERE status = 'FAILED' AND task_id IS NOT NULL
            ON CONFLICT (task_id, subscription_id) DO NOTHING
        )
        SELECT id, task_id, status FROM settled",
    )
    .bind(&due)
    .bind(live_statuses())
    .bind(ErrorCode::SubscriptionAlreadyCanceledOrExpired.as_str())
    .fetch_all(&mut **conn)
    .await?;

    let mut applied = Applied { taken: due.len(), ..Applied::default() };
    let mut per_task: std::collections::BTreeMap<Uuid, (i64, i64)> = std::collections::BTreeMap::new();
    for (_, task, status) in &outcomes {
        match status.as_str() {
            "DONE" => applied.moved += 1,
            "FAILED" => applied.failed += 1,
            _ => {}
        }
        if let Some(task) = task {
            let entry = per_task.entry(*task).or_default();
            entry.0 += 1;
            if status == "FAILED" {
                entry.1 += 1;
            }
        }
    }
    announce_applied(conn, &outcomes).await?;
    // task rows last and in id order, so that concurrent schedulers never deadlock on them
    for (task, (processed, failed)) in per_task {
        sqlx::query(
            "UPDATE tasks SET processed = processed + $2, failed = failed + $3, updated_at = now() WHERE id = $1",
        )
        .bind(task)
        .bind(processed)
        .bind(failed)
        .execute(&mut **conn)
        .await?;
        if let Some(status) = end_if_settled(conn, TaskId(task), None).await? {
            if let Some(t) = tasks::read(conn, TaskId(task)).await? {
                events::record(
                    conn,
                    t.environment(),
                    TaskId(task),
                    "finished",
                    status.as_str(),
                    Some("scheduler"),
                    json!({ "processed": t.processed, "failed": t.failed }),
                );
            }
            applied.finished.push((TaskId(task), status));
        }
    }
    Ok(applied)
}

/// Writes `subscriptions.migrated` for the moves a scheduler pass applied, per task, for the
/// environments that listen.
async fn announce_applied(conn: &mut PgConnection, outcomes: &[(Uuid, Option<Uuid>, String)]) -> Result<()> {
    let mut done: std::collections::BTreeMap<Uuid, Vec<Uuid>> = std::collections::BTreeMap::new();
    for (change, task, status) in outcomes {
        if let (Some(task), "DONE") = (task, status.as_str()) {
            done.entry(*task).or_default().push(*change);
        }
    }
    for (task, changes) in done {
        let Some(task) = tasks::read(conn, TaskId(task)).await? else {
            continue;
        };
        if !webhooks::subscribed(conn, task.environment(), WebhookEventType::SubscriptionsMigrated).await? {
            continue;
        }
        let sql = format!(
            "{MOVED_FROM_HISTORY}
             JOIN subscription_version_changes c ON c.task_id = h.task_id AND c.subscription_id = h.subscription_id
             WHERE c.id = ANY($1) AND h.task_id = $2 ORDER BY h.subscription_id"
        );
        let moved: Vec<MovedSubscription> =
            sqlx::query_as(&sql).bind(&changes).bind(task.id).fetch_all(&mut *conn).await?;
        announce_migrated(conn, &task, &moved).await?;
    }
    Ok(())
}

/// A subscription's scheduled (or once-scheduled) moves, newest first, as `futureUpdates`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FutureUpdate {
    pub status: String,
    pub apply_at: DateTime<Utc>,
    pub plan_id: String,
    pub version_number: i32,
}

pub async fn for_subscription(
    conn: &mut PgConnection,
    env: EnvironmentId,
    subscription_id: &str,
) -> Result<Vec<FutureUpdate>> {
    Ok(sqlx::query_as::<_, FutureUpdate>(
        "SELECT c.status, c.apply_at, v.plan_id, v.version_number
         FROM subscription_version_changes c JOIN plan_versions v ON v.id = c.target_version_id
         WHERE c.environment_id = $1 AND c.subscription_id = $2
         ORDER BY c.created_at DESC, c.id",
    )
    .bind(env.0)
    .bind(subscription_id)
    .fetch_all(conn)
    .await?)
}

/// When Stigg's per-subscription migrate moves the subscription.
pub use domain::spec::SubscriptionMigrationTime as MigrationTime;

/// Stigg's `POST /api/v1/subscriptions/{id}/migrate`: moves one live subscription to its plan's
/// newest published version now (a COMPLETED SUBSCRIPTION_MIGRATION task and a history row), or
/// schedules the move at its next billing date (an IN_PROGRESS task the scheduler finishes).
/// Answers the task.
pub async fn migrate_subscription(
    conn: &mut Work,
    env: EnvironmentId,
    subscription_id: &str,
    when: MigrationTime,
    max_attempts: i32,
    actor: &str,
) -> Result<TaskId> {
    let row: Option<(String, String, i32, DateTime<Utc>)> = sqlx::query_as(
        "SELECT s.plan_id, s.status, v.version_number, s.start_date
         FROM subscriptions s JOIN plan_versions v ON v.id = s.plan_version_id
         WHERE s.environment_id = $1 AND s.id = $2 FOR UPDATE OF s",
    )
    .bind(env.0)
    .bind(subscription_id)
    .fetch_optional(&mut **conn)
    .await?;
    let Some((plan_id, status, on_number, _start)) = row else {
        return Err(StoreError::rejected(
            ErrorCode::SubscriptionNotFound,
            format!("subscription `{subscription_id}` not found"),
        ));
    };
    if !SubscriptionStatus::parse(&status).map_err(crate::unreadable)?.is_live() {
        return Err(StoreError::rejected(
            ErrorCode::SubscriptionAlreadyCanceledOrExpired,
            format!("subscription `{subscription_id}` is {status}"),
        ));
    }
    // a task moving the plan's subscriptions (publish, rollout, rollback, Sequence migration)
    // decides where this one goes until it ends
    tasks::refuse_while_held(conn, env, &plan_id).await?;
    let latest = plans::latest_published(conn, env, &plan_id).await?;
    let Some(latest) = latest.filter(|l| l.version_number > on_number) else {
        return Err(StoreError::rejected(
            ErrorCode::SubscriptionAlreadyOnLatestPlan,
            format!("subscription `{subscription_id}` is already on the latest version of plan `{plan_id}`"),
        ));
    };
    let scheduled: Option<(Uuid, Option<Uuid>, i32)> = sqlx::query_as(
        "SELECT c.id, c.task_id, v.version_number FROM subscription_version_changes c
         JOIN plan_versions v ON v.id = c.target_version_id
         WHERE c.environment_id = $1 AND c.subscription_id = $2 AND c.status = 'SCHEDULED' FOR UPDATE OF c",
    )
    .bind(env.0)
    .bind(subscription_id)
    .fetch_optional(&mut **conn)
    .await?;
    if let Some((change, old_task, target_number)) = scheduled {
        if when == MigrationTime::EndOfBillingPeriod && target_number >= latest.version_number {
            return Err(StoreError::rejected(
                ErrorCode::ScheduledMigrationAlreadyExistsError,
                format!("subscription `{subscription_id}` already has a move to version {target_number} scheduled"),
            ));
        }
        sqlx::query("UPDATE subscription_version_changes SET status = 'CANCELED', updated_at = now() WHERE id = $1")
            .bind(change)
            .execute(&mut **conn)
            .await?;
        if let Some(old) = old_task {
            let message = format!("superseded by a migrate of subscription `{subscription_id}`");
            end_if_settled(conn, TaskId(old), Some((TaskStatus::Canceled, &message))).await?;
        }
    }

    let task_id = TaskId::new();
    tasks::insert(
        conn,
        &tasks::NewTask {
            id: task_id,
            environment: env,
            plan_id: Some(plan_id.clone()),
            spec: TaskSpec::SubscriptionMigrate {
                subscription_id: subscription_id.to_owned(),
                subscription_migration_time: when,
            },
            target_version_id: Some(latest.id),
            target_version_number: Some(latest.version_number),
            idempotency_key: None,
            max_attempts,
            total: 1,
            policy: tasks::PolicyPin::None,
            requested_by: None,
        },
    )
    .await?;
    sqlx::query(
        "UPDATE tasks SET status = 'IN_PROGRESS', started_at = now(), planned_at = now(), affected_customers = 1
         WHERE id = $1",
    )
    .bind(task_id.0)
    .execute(&mut **conn)
    .await?;
    match when {
        MigrationTime::Immediate => {
            sqlx::query(
                "WITH moved AS (
                    UPDATE subscriptions s SET plan_version_id = $3, updated_at = now()
                    FROM subscriptions old
                    WHERE s.environment_id = $1 AND s.id = $2 AND old.environment_id = s.environment_id AND old.id = s.id
                    RETURNING old.plan_version_id AS from_version
                )
                INSERT INTO subscription_version_history
                    (environment_id, task_id, subscription_id, from_version_id, to_version_id, effective_from)
                SELECT $1, $4, $2, from_version, $3, now() FROM moved",
            )
            .bind(env.0)
            .bind(subscription_id)
            .bind(latest.id)
            .bind(task_id.0)
            .execute(&mut **conn)
            .await?;
            sqlx::query("UPDATE tasks SET processed = 1 WHERE id = $1").bind(task_id.0).execute(&mut **conn).await?;
            tasks::finish(conn, task_id, TaskStatus::Completed, None).await?;
        }
        MigrationTime::EndOfBillingPeriod => {
            sqlx::query(
                "INSERT INTO subscription_version_changes
                    (id, environment_id, subscription_id, target_version_id, apply_at, effective_from, status, task_id)
                 SELECT gen_random_uuid(), $1, s.id, $3, nb, nb, 'SCHEDULED', $4
                 FROM subscriptions s, next_billing_date(s.start_date, s.billing_period, now()) AS nb
                 WHERE s.environment_id = $1 AND s.id = $2",
            )
            .bind(env.0)
            .bind(subscription_id)
            .bind(latest.id)
            .bind(task_id.0)
            .execute(&mut **conn)
            .await?;
        }
    }
    events::record(
        conn,
        env,
        task_id,
        "accepted",
        &format!("migrate of subscription `{subscription_id}` to version {} ({when})", latest.version_number),
        Some(actor),
        json!({ "subscriptionId": subscription_id, "subscriptionMigrationTime": when }),
    );
    Ok(task_id)
}
