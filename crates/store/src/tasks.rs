//! Tasks: one row per accepted publish, migration or import, from PENDING to a terminal state.
//! Status changes are conditional UPDATEs, so two workers racing on one task cannot both win.
//! Every move to a terminal status goes through `finish`, `finish_planning` or `fail`, which
//! announce the end to the unit of work (`Announcement::TaskEnded`), whose commit writes the
//! webhook event in the same transaction.

use crate::outbox::JOB_OF_EACH_TASK;
pub use crate::policies::PolicyPin;
use crate::policies::{pinned_cte, pinned_policy, APPROVAL_STATE};
pub use crate::task_row::Task;
use crate::work::{Announcement, Work};
use crate::{is_unique_violation, page, Hooks, Page, Result, StoreError};
use domain::{EnvironmentId, ErrorCode, TaskId, TaskSpec, TaskStatus};
use serde_json::Value;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct NewTask {
    pub id: TaskId,
    pub environment: EnvironmentId,
    pub plan_id: Option<String>,
    /// What the task is to do; its type and whether it holds its plan follow from it.
    pub spec: TaskSpec,
    pub target_version_id: Option<Uuid>,
    pub target_version_number: Option<i32>,
    pub idempotency_key: Option<String>,
    pub max_attempts: i32,
    pub total: i64,
    /// Which migration policy the task pins.
    pub policy: PolicyPin,
    /// Who asked for it (an API key's prefix): the one admin who may not approve it.
    pub requested_by: Option<String>,
}

/// The index that lets one task at a time hold a plan.
pub(crate) const HOLDER_PER_PLAN: &str = "tasks_one_holder_per_plan";

/// The refusal of a request that would move a plan's subscriptions while a task holds it.
pub fn plan_held(plan_id: &str) -> StoreError {
    StoreError::rejected(
        ErrorCode::ObjectAlreadyBeingUsedByAnotherRequestError,
        format!("plan `{plan_id}` is already being published or migrated by another request; retry when it ends"),
    )
}

/// Inserts a task. A task that holds its plan (`TaskSpec::holds_plan`) is refused with
/// `ObjectAlreadyBeingUsedByAnotherRequestError` while another one holds it.
pub async fn insert(conn: &mut PgConnection, new: &NewTask) -> Result<Task> {
    sqlx::query_as::<_, Task>(&format!(
        "WITH {} INSERT INTO tasks (id, environment_id, task_type, status, plan_id, payload, target_version_id,
            target_version_number, idempotency_key, max_attempts, total, holds_plan,
            policy, approval_state, approval_requested_by)
         SELECT $1, $2, $3, 'PENDING', $4, $5, $6, $7, $8, $9, $10, $11, pinned.policy, {APPROVAL_STATE}, $14
         FROM pinned
         RETURNING *",
        pinned_cte("$2", "$4", "$12", "$13")
    ))
    .bind(new.id.0)
    .bind(new.environment.0)
    .bind(new.spec.task_type().as_str())
    .bind(&new.plan_id)
    .bind(new.spec.to_payload())
    .bind(new.target_version_id)
    .bind(new.target_version_number)
    .bind(&new.idempotency_key)
    .bind(new.max_attempts)
    .bind(new.total)
    .bind(new.spec.holds_plan() && new.plan_id.is_some())
    .bind(new.policy.mode())
    .bind(new.policy.given())
    .bind(&new.requested_by)
    .fetch_one(conn)
    .await
    .map_err(|e| refusal(e, new))
}

/// What the caller's accepted request says happened, for the task's timeline.
#[derive(Debug, Clone)]
pub struct Accepted<'a> {
    pub message: &'a str,
    pub actor: Option<&'a str>,
    pub data: Value,
}

/// Accepts a task in one round trip: inserts it, its outbox row (the job that starts it) and
/// its first timeline event. Refusals are those of `insert`.
pub async fn accept(conn: &mut PgConnection, new: &NewTask, event: &Accepted<'_>) -> Result<()> {
    sqlx::query(&format!(
        "WITH {}, task AS (
            INSERT INTO tasks (id, environment_id, task_type, status, plan_id, payload, target_version_id,
                target_version_number, idempotency_key, max_attempts, total, holds_plan,
                policy, approval_state, approval_requested_by)
            SELECT $1, $2, $3, 'PENDING', $4, $5, $6, $7, $8, $9, $10, $14, pinned.policy, {APPROVAL_STATE}, $12
            FROM pinned
            RETURNING id, environment_id
        ), {JOB_OF_EACH_TASK}
        INSERT INTO task_events (task_id, environment_id, kind, message, actor, data)
        SELECT id, environment_id, 'accepted', $11, $12, $13 FROM task",
        pinned_cte("$2", "$4", "$15", "$16")
    ))
    .bind(new.id.0)
    .bind(new.environment.0)
    .bind(new.spec.task_type().as_str())
    .bind(&new.plan_id)
    .bind(new.spec.to_payload())
    .bind(new.target_version_id)
    .bind(new.target_version_number)
    .bind(&new.idempotency_key)
    .bind(new.max_attempts)
    .bind(new.total)
    .bind(event.message)
    .bind(event.actor)
    .bind(&event.data)
    .bind(new.spec.holds_plan() && new.plan_id.is_some())
    .bind(new.policy.mode())
    .bind(new.policy.given())
    .execute(conn)
    .await
    .map_err(|e| refusal(e, new))?;
    Ok(())
}

/// A request to publish a plan's draft (publish, staged rollout): the task to insert, whose
/// target is the plan's current draft, found by the accepting statement itself.
#[derive(Debug, Clone)]
pub struct NewPublish<'a> {
    pub id: TaskId,
    pub environment: EnvironmentId,
    pub plan_id: &'a str,
    pub spec: TaskSpec,
    pub idempotency_key: Option<String>,
    pub max_attempts: i32,
    /// Which migration policy it pins; the requester is the accepted event's actor.
    pub policy: PolicyPin,
}

/// Accepts a publish of `plan_id`'s draft in one statement, so that it needs neither a round
/// trip of its own to find the draft nor a transaction around it: the task pinned to the draft,
/// its outbox row and its `accepted` event, whose message has `{version}` replaced by the
/// draft's version number and whose data gains `versionNumber`. Answers the version number, or
/// None (and writes nothing) when the plan has no draft. Refusals are those of `insert`.
pub async fn accept_publish(
    conn: &mut PgConnection,
    new: &NewPublish<'_>,
    event: &Accepted<'_>,
) -> Result<Option<i32>> {
    sqlx::query_scalar(&format!(
        "WITH draft AS (
            SELECT id, version_number FROM plan_versions
            WHERE environment_id = $2 AND plan_id = $4 AND status = 'DRAFT'
        ), {}, task AS (
            INSERT INTO tasks (id, environment_id, task_type, status, plan_id, payload, target_version_id,
                target_version_number, idempotency_key, max_attempts, total, holds_plan,
                policy, approval_state, approval_requested_by)
            SELECT $1, $2, $3, 'PENDING', $4, $5, id, version_number, $6, $7, 0, $11,
                pinned.policy, {APPROVAL_STATE}, $9
            FROM draft, pinned
            RETURNING id, environment_id, target_version_number
        ), {JOB_OF_EACH_TASK}, event AS (
            INSERT INTO task_events (task_id, environment_id, kind, message, actor, data)
            SELECT id, environment_id, 'accepted', replace($8, '{{version}}', target_version_number::text), $9,
                $10::jsonb || jsonb_build_object('versionNumber', target_version_number)
            FROM task
        )
        SELECT target_version_number FROM task",
        pinned_cte("$2", "$4", "$12", "$13")
    ))
    .bind(new.id.0)
    .bind(new.environment.0)
    .bind(new.spec.task_type().as_str())
    .bind(new.plan_id)
    .bind(new.spec.to_payload())
    .bind(&new.idempotency_key)
    .bind(new.max_attempts)
    .bind(event.message)
    .bind(event.actor)
    .bind(&event.data)
    .bind(new.spec.holds_plan())
    .bind(new.policy.mode())
    .bind(new.policy.given())
    .fetch_optional(conn)
    .await
    .map_err(|e| refused(e, Some(new.plan_id)))
}

/// Accepts a set of publishes, each as `accept_publish` would, in one statement: the tasks
/// whose plan has a draft and that no unique rule refuses (a task holding the plan — another
/// of the set included —, a taken `Idempotency-Key`), with their outbox rows and `accepted`
/// events. Answers the ids it accepted, each with its draft's version number. A request it
/// did not accept wrote nothing; `accept_publish` alone says why (no draft, the plan held, the
/// key taken). An error writes nothing of the set.
///
/// Run on a plan cached by key (`Work::begin_by_key`), made maybe while the tables were small,
/// so shaped to stay right as they grow: each request's draft is an index probe in a subquery
/// (`OFFSET 0` keeps it from being joined as a whole table), its policy one call, and the rest
/// reads only the set's own rows.
pub async fn accept_publishes(
    conn: &mut PgConnection,
    set: &[(NewPublish<'_>, Accepted<'_>)],
) -> Result<Vec<(Uuid, i32)>> {
    Ok(sqlx::query_as(&format!(
        "WITH asked AS (
            SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::jsonb[], $6::text[],
                $7::int4[], $8::text[], $9::text[], $10::jsonb[], $11::bool[], $12::text[], $13::jsonb[])
                AS a(id, environment_id, task_type, plan_id, payload, idempotency_key, max_attempts, message,
                     actor, data, holds_plan, mode, given)
        ), pinned AS (
            SELECT a.*, d.id AS version_id, d.version_number, p.policy
            FROM asked a
            CROSS JOIN LATERAL (
                SELECT id, version_number FROM plan_versions
                WHERE environment_id = a.environment_id AND plan_id = a.plan_id AND status = 'DRAFT' OFFSET 0
            ) d
            CROSS JOIN LATERAL ({}) p
        ), task AS (
            INSERT INTO tasks (id, environment_id, task_type, status, plan_id, payload, target_version_id,
                target_version_number, idempotency_key, max_attempts, total, holds_plan,
                policy, approval_state, approval_requested_by)
            SELECT id, environment_id, task_type, 'PENDING', plan_id, payload, version_id, version_number,
                idempotency_key, max_attempts, 0, holds_plan, policy, {APPROVAL_STATE}, actor
            FROM pinned
            ON CONFLICT DO NOTHING
            RETURNING id, environment_id, target_version_number
        ), {JOB_OF_EACH_TASK}, event AS (
            INSERT INTO task_events (task_id, environment_id, kind, message, actor, data)
            SELECT t.id, t.environment_id, 'accepted', replace(a.message, '{{version}}', t.target_version_number::text),
                a.actor, a.data || jsonb_build_object('versionNumber', t.target_version_number)
            FROM task t JOIN asked a ON a.id = t.id
        )
        SELECT id, target_version_number FROM task",
        pinned_policy("effective_migration_policy", "a.environment_id", "a.plan_id", "a.mode", "a.given")
    ))
    .bind(set.iter().map(|(new, _)| new.id.0).collect::<Vec<_>>())
    .bind(set.iter().map(|(new, _)| new.environment.0).collect::<Vec<_>>())
    .bind(set.iter().map(|(new, _)| new.spec.task_type().as_str()).collect::<Vec<_>>())
    .bind(set.iter().map(|(new, _)| new.plan_id).collect::<Vec<_>>())
    .bind(set.iter().map(|(new, _)| new.spec.to_payload()).collect::<Vec<_>>())
    .bind(set.iter().map(|(new, _)| new.idempotency_key.as_deref()).collect::<Vec<_>>())
    .bind(set.iter().map(|(new, _)| new.max_attempts).collect::<Vec<_>>())
    .bind(set.iter().map(|(_, event)| event.message).collect::<Vec<_>>())
    .bind(set.iter().map(|(_, event)| event.actor).collect::<Vec<_>>())
    .bind(set.iter().map(|(_, event)| &event.data).collect::<Vec<_>>())
    .bind(set.iter().map(|(new, _)| new.spec.holds_plan()).collect::<Vec<_>>())
    .bind(set.iter().map(|(new, _)| new.policy.mode()).collect::<Vec<_>>())
    .bind(set.iter().map(|(new, _)| new.policy.given()).collect::<Vec<_>>())
    .fetch_all(conn)
    .await?)
}

fn refusal(e: sqlx::Error, new: &NewTask) -> StoreError {
    refused(e, new.plan_id.as_deref())
}

pub(crate) fn refused(e: sqlx::Error, plan_id: Option<&str>) -> StoreError {
    if is_unique_violation(&e, HOLDER_PER_PLAN) {
        plan_held(plan_id.unwrap_or_default())
    } else if is_unique_violation(&e, "tasks_idempotency") {
        StoreError::rejected(
            ErrorCode::ObjectAlreadyBeingUsedByAnotherRequestError,
            "a request with this Idempotency-Key is in progress",
        )
    } else {
        e.into()
    }
}

pub async fn by_idempotency_key(conn: &mut PgConnection, env: EnvironmentId, key: &str) -> Result<Option<Task>> {
    Ok(sqlx::query_as::<_, Task>("SELECT * FROM tasks WHERE environment_id = $1 AND idempotency_key = $2")
        .bind(env.0)
        .bind(key)
        .fetch_optional(conn)
        .await?)
}

pub async fn get(pool: &PgPool, env: EnvironmentId, id: TaskId) -> Result<Option<Task>> {
    Ok(sqlx::query_as::<_, Task>("SELECT * FROM tasks WHERE environment_id = $1 AND id = $2")
        .bind(env.0)
        .bind(id.0)
        .fetch_optional(pool)
        .await?)
}

/// Locks a task for the rest of the caller's transaction (worker side: the id came from our
/// own queue, the environment from the row).
pub async fn lock(conn: &mut PgConnection, id: TaskId) -> Result<Option<Task>> {
    Ok(sqlx::query_as::<_, Task>("SELECT * FROM tasks WHERE id = $1 FOR UPDATE")
        .bind(id.0)
        .fetch_optional(conn)
        .await?)
}

/// Reads a task without locking it.
pub async fn read(conn: &mut PgConnection, id: TaskId) -> Result<Option<Task>> {
    Ok(sqlx::query_as::<_, Task>("SELECT * FROM tasks WHERE id = $1").bind(id.0).fetch_optional(conn).await?)
}

/// What a worker found when it tried to take a task for planning.
#[derive(Debug, Clone)]
pub enum Claim {
    /// The task is ours for the rest of the transaction: locked, not yet planned, not finished.
    Claimed(Box<Task>),
    /// Another transaction holds the task (another worker is planning it, or an operator's
    /// action is under way); try again later.
    Busy,
    /// Nothing left to do: planned already, or finished.
    Nothing,
    /// No such task.
    Missing,
}

/// Takes a task for planning inside the caller's transaction: the row is locked until the
/// transaction ends, so nothing about the attempt is visible until it commits — a worker that
/// dies mid-planning leaves the task exactly as it found it. A row locked elsewhere answers
/// `Busy` at once rather than waiting. The attempt is counted, and the task marked started,
/// by `mark_planned` / `finish_planning` in the same transaction (or, when planning fails, by
/// `note_failed_attempt` / `fail`).
pub async fn claim(conn: &mut PgConnection, id: TaskId) -> Result<Claim> {
    let task = sqlx::query_as::<_, Task>("SELECT * FROM tasks WHERE id = $1 FOR UPDATE NOWAIT")
        .bind(id.0)
        .fetch_optional(conn)
        .await;
    let task = match task {
        Ok(task) => task,
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("55P03") => return Ok(Claim::Busy),
        Err(e) => return Err(e.into()),
    };
    Ok(match task {
        None => Claim::Missing,
        Some(task) if !task.left_to_plan() => Claim::Nothing,
        Some(task) => Claim::Claimed(Box::new(task)),
    })
}

/// Claims many tasks at once, for a planning transaction that plans them as a set: locks and
/// answers those of `ids` left to plan (not planned, not finished), in one statement. A task
/// whose row another transaction holds is skipped (`SKIP LOCKED`) rather than waited for, as
/// is one missing, planned or finished: the caller plans what is not answered alone, with
/// `claim`, which tells those cases apart.
pub async fn claim_set(conn: &mut PgConnection, ids: &[TaskId]) -> Result<Vec<Task>> {
    let ids: Vec<Uuid> = ids.iter().map(|id| id.0).collect();
    // by the primary key alone: with a status predicate the planner may walk the index of
    // unfinished tasks instead, every one of them, while a backlog waits
    let locked = sqlx::query_as::<_, Task>("SELECT * FROM tasks WHERE id = ANY($1) ORDER BY id FOR UPDATE SKIP LOCKED")
        .bind(&ids)
        .fetch_all(conn)
        .await?;
    Ok(locked.into_iter().filter(Task::left_to_plan).collect())
}

/// Ends claimed tasks in their planning as COMPLETED, in one statement that also writes their
/// timeline: `timeline` (what their planning recorded, in its order), then a `finished` line
/// for each ended task — what `finish_planning` and the unit's commit write for one task, for
/// a set of them, with no statement of its own for the timeline. Each ended task announces its
/// end. Answers the ended rows; a task already planned or finished is left as it is.
///
/// Rows are addressed by primary key alone: a predicate on `status` would let the planner walk
/// the partial index of unfinished tasks (the whole backlog) instead. Run in a set's
/// transaction (`crate::begin_set_planning`), its text its own so that its cached plan is only
/// ever made there.
pub async fn complete_planned_set(
    work: &mut Work,
    ids: &[TaskId],
    timeline: &[crate::TimelineEvent],
) -> Result<Vec<Task>> {
    let ids: Vec<Uuid> = ids.iter().map(|id| id.0).collect();
    let sql = format!(
        "WITH ended AS (
            UPDATE tasks SET {PLANNED}, status = 'COMPLETED', finished_at = now(), updated_at = now()
            WHERE id = ANY($1) AND planned_at IS NULL AND finished_at IS NULL
            RETURNING *
        ), timeline AS (
            INSERT INTO task_events (task_id, environment_id, kind, message, actor, data)
            SELECT t, e, k, m, a, d FROM (
                SELECT t, e, k, m, a, d, n FROM {lines}
                UNION ALL
                SELECT id, environment_id, 'finished', status, NULL, '{{}}',
                    cardinality($2::uuid[]) + row_number() OVER (ORDER BY id)
                FROM ended
            ) written ORDER BY n
        )
        SELECT * FROM ended",
        lines = crate::events::Columns::unnest(2)
    );
    let rows = crate::events::Columns::of(timeline).bind(sqlx::query(&sql).bind(&ids)).fetch_all(&mut **work).await?;
    let mut ended = Vec::with_capacity(rows.len());
    for row in &rows {
        let task = <Task as sqlx::FromRow<'_, sqlx::postgres::PgRow>>::from_row(row)?;
        work.announce(Announcement::TaskEnded(Box::new(task.clone())));
        ended.push(task);
    }
    Ok(ended)
}

/// Marks a claimed task planned: the attempt counted, started, IN_PROGRESS (a status set
/// earlier in the same transaction stays). One statement, inside the planning transaction.
pub async fn mark_planned(conn: &mut PgConnection, id: TaskId) -> Result<()> {
    sqlx::query(&format!(
        "UPDATE tasks SET {PLANNED}, status = CASE WHEN status = 'PENDING' THEN 'IN_PROGRESS' ELSE status END,
            updated_at = now()
         WHERE id = $1"
    ))
    .bind(id.0)
    .execute(conn)
    .await?;
    Ok(())
}

/// What planning sets besides the status: planned, started, and the attempt that planned the
/// task counted.
const PLANNED: &str = "planned_at = now(), attempts = attempts + 1, started_at = coalesce(started_at, now()),
    lease_owner = NULL, lease_expires_at = NULL";

/// Lets go of the task's plan while it goes on: what is left of it (scheduled moves) composes
/// with later tasks, which supersede the moves not yet made. Inside the planning transaction.
pub async fn release_plan(conn: &mut PgConnection, id: TaskId) -> Result<()> {
    sqlx::query("UPDATE tasks SET holds_plan = false WHERE id = $1").bind(id.0).execute(conn).await?;
    Ok(())
}

/// Refuses, with `ObjectAlreadyBeingUsedByAnotherRequestError`, while a task holds the plan.
pub async fn refuse_while_held(conn: &mut PgConnection, env: EnvironmentId, plan_id: &str) -> Result<()> {
    let held: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM tasks WHERE environment_id = $1 AND plan_id = $2 AND holds_plan
            AND status IN ('PENDING', 'IN_PROGRESS'))",
    )
    .bind(env.0)
    .bind(plan_id)
    .fetch_one(conn)
    .await?;
    if held {
        return Err(plan_held(plan_id));
    }
    Ok(())
}

/// Waits for the planning transactions of the tasks holding any of `plan_ids` to end, and keeps
/// them from starting until the caller's transaction ends (a share lock on their rows): what
/// the caller then reads of those plans' versions is what their planning left, never the
/// middle of it.
pub async fn share_holders(conn: &mut PgConnection, env: EnvironmentId, plan_ids: &[String]) -> Result<()> {
    sqlx::query(
        "SELECT id FROM tasks WHERE environment_id = $1 AND plan_id = ANY($2) AND holds_plan
            AND status IN ('PENDING', 'IN_PROGRESS') ORDER BY id FOR SHARE",
    )
    .bind(env.0)
    .bind(plan_ids)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records the migration plan: how many subscriptions (and customers) it covers.
pub async fn set_totals(conn: &mut PgConnection, id: TaskId, total: i64, affected_customers: i64) -> Result<()> {
    sqlx::query("UPDATE tasks SET total = $2, affected_customers = $3, updated_at = now() WHERE id = $1")
        .bind(id.0)
        .bind(total)
        .bind(affected_customers)
        .execute(conn)
        .await?;
    Ok(())
}

/// Ends a task: its status is decided from its counts unless `status` is given.
pub async fn finish(conn: &mut Work, id: TaskId, status: TaskStatus, error: Option<(ErrorCode, &str)>) -> Result<Task> {
    end(conn, "lease_owner = NULL, lease_expires_at = NULL", id, status, error).await
}

/// The one statement that ends a task: the status and error, `finished_at`, what `also` sets,
/// and its webhook event when it has just become terminal.
async fn end(
    conn: &mut Work,
    also: &str,
    id: TaskId,
    status: TaskStatus,
    error: Option<(ErrorCode, &str)>,
) -> Result<Task> {
    // the status the task had before comes back too, so that only a task that was not
    // already terminal announces its end
    let row = sqlx::query(&format!(
        "UPDATE tasks t SET {also}, status = $2, error_code = coalesce($3, t.error_code),
            last_error = coalesce($4, t.last_error), finished_at = now(), updated_at = now()
         FROM (SELECT id, status AS was FROM tasks WHERE id = $1 FOR UPDATE) previous
         WHERE t.id = previous.id RETURNING t.*, previous.was AS previous_status"
    ))
    .bind(id.0)
    .bind(status.as_str())
    .bind(error.map(|(code, _)| code.as_str()))
    .bind(error.map(|(_, message)| message))
    .fetch_optional(&mut **conn)
    .await?
    .ok_or(StoreError::Database(sqlx::Error::RowNotFound))?;
    announce_end(conn, &row).await
}

/// Reads the task the ending statement (`end`) answered and, if it has just reached a terminal
/// status, writes its webhook event in the same transaction.
async fn announce_end(work: &mut Work, row: &sqlx::postgres::PgRow) -> Result<Task> {
    let task = <Task as sqlx::FromRow<'_, sqlx::postgres::PgRow>>::from_row(row)?;
    let previous: String = row.try_get("previous_status")?;
    let previous = TaskStatus::parse(&previous).map_err(crate::unreadable)?;
    if !previous.is_terminal() {
        work.announce(Announcement::TaskEnded(Box::new(task.clone())));
    }
    Ok(task)
}

/// Ends a claimed task during its planning: `mark_planned` and `finish` in one statement.
pub async fn finish_planning(
    conn: &mut Work,
    id: TaskId,
    status: TaskStatus,
    error: Option<(ErrorCode, &str)>,
) -> Result<Task> {
    end(conn, PLANNED, id, status, error).await
}

/// Sets processed/failed counts outright (tasks done in one step, like an import).
pub async fn set_counts(conn: &mut PgConnection, id: TaskId, total: i64, processed: i64, failed: i64) -> Result<()> {
    sqlx::query("UPDATE tasks SET total = $2, processed = $3, failed = $4, updated_at = now() WHERE id = $1")
        .bind(id.0)
        .bind(total)
        .bind(processed)
        .bind(failed)
        .execute(conn)
        .await?;
    Ok(())
}

/// Notes an error that will be retried, with an `attempt_failed` event in the task's timeline
/// (where it stays once a later attempt gets past it).
pub async fn note_error(work: &mut Work, id: TaskId, code: ErrorCode, message: &str) -> Result<()> {
    let env: Option<Uuid> = sqlx::query_scalar(
        "UPDATE tasks SET error_code = $2, last_error = $3, updated_at = now() WHERE id = $1 RETURNING environment_id",
    )
    .bind(id.0)
    .bind(code.as_str())
    .bind(message)
    .fetch_optional(&mut **work)
    .await?;
    record_failed_attempt(work, env, id, code, message);
    Ok(())
}

/// Counts a planning attempt that failed and will be retried (its transaction rolled back,
/// so nothing else of it remains), noting the error as `note_error` does.
pub async fn note_failed_attempt(work: &mut Work, id: TaskId, code: ErrorCode, message: &str) -> Result<()> {
    let env: Option<Uuid> = sqlx::query_scalar(
        "UPDATE tasks SET attempts = attempts + 1, error_code = $2, last_error = $3, updated_at = now()
         WHERE id = $1 AND planned_at IS NULL RETURNING environment_id",
    )
    .bind(id.0)
    .bind(code.as_str())
    .bind(message)
    .fetch_optional(&mut **work)
    .await?;
    record_failed_attempt(work, env, id, code, message);
    Ok(())
}

fn record_failed_attempt(work: &mut Work, env: Option<Uuid>, id: TaskId, code: ErrorCode, message: &str) {
    if let Some(env) = env {
        let data = serde_json::json!({ "code": code.as_str() });
        crate::events::record(work, EnvironmentId(env), id, "attempt_failed", message, None, data);
    }
}

/// Ends a task that failed its planning as FAILED, counting that last attempt (out of
/// attempts, or a permanent error). A task already planned is left to its batches.
pub async fn fail(pool: &PgPool, hooks: &Hooks, id: TaskId, code: ErrorCode, message: &str) -> Result<()> {
    let mut tx = Work::begin(pool).await?;
    let failed = sqlx::query_as::<_, Task>(
        "UPDATE tasks SET status = 'FAILED', error_code = $2, last_error = $3, finished_at = now(),
            attempts = attempts + 1, lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
         WHERE id = $1 AND status IN ('PENDING', 'IN_PROGRESS') AND planned_at IS NULL RETURNING *",
    )
    .bind(id.0)
    .bind(code.as_str())
    .bind(message)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(task) = failed {
        tx.announce(Announcement::TaskEnded(Box::new(task)));
    }
    tx.commit(hooks).await?;
    Ok(())
}

#[derive(Debug, Default, Clone)]
pub struct TaskFilter {
    pub statuses: Vec<String>,
    pub task_types: Vec<String>,
    pub plan_id: Option<String>,
    pub after: Option<i64>,
    pub limit: i64,
}

/// Newest first.
pub async fn list(pool: &PgPool, env: EnvironmentId, filter: &TaskFilter) -> Result<Page<Task>> {
    let rows = sqlx::query_as::<_, Task>(
        "SELECT * FROM tasks
         WHERE environment_id = $1
           AND (cardinality($2::text[]) = 0 OR status = ANY($2))
           AND (cardinality($3::text[]) = 0 OR task_type = ANY($3))
           AND ($4::text IS NULL OR plan_id = $4)
           AND ($5::bigint IS NULL OR seq < $5)
         ORDER BY seq DESC LIMIT $6",
    )
    .bind(env.0)
    .bind(&filter.statuses)
    .bind(&filter.task_types)
    .bind(&filter.plan_id)
    .bind(filter.after)
    .bind(filter.limit + 1)
    .fetch_all(pool)
    .await?;
    Ok(page(rows, filter.limit, |t| t.seq))
}
