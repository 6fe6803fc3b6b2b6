//! Job handlers. Each says, through its error, whether trying again could help: the consumer
//! retries `Transient` with a delay and gives up on `Permanent` at once.

pub mod addon;
pub mod batch;
pub mod import;
pub mod migration;
pub mod publish;
pub mod rollback;
pub mod rollout;
pub mod set;

use crate::Context;
use domain::{ErrorCode, Job, TaskId, TaskSpec, TaskStatus};
use serde_json::Value;
use store::tasks::{self, Claim, Task};
use store::{batches, events, outbox, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// May succeed later: the database or broker hiccuped, a lock timed out, another worker
    /// holds the task.
    #[error("transient: {0}")]
    Transient(String),
    /// Another transaction holds the task (another worker planning it, an operator's action):
    /// look again later, without spending an attempt.
    #[error("busy: another worker holds this task")]
    Busy,
    /// Will never succeed; the task is failed with this code.
    #[error("{code}: {message}")]
    Permanent { code: ErrorCode, message: String },
}

impl From<StoreError> for JobError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Rejected { code, message } => JobError::Permanent { code, message },
            other if other.is_transient() => JobError::Transient(other.to_string()),
            other => JobError::Permanent { code: ErrorCode::InternalError, message: other.to_string() },
        }
    }
}

impl From<sqlx::Error> for JobError {
    fn from(error: sqlx::Error) -> Self {
        StoreError::from(error).into()
    }
}

/// Opens a task's planning transaction: lock timeout set and the task claimed — its row
/// locked for the rest of the transaction (see `tasks::claim`). `None` when there is nothing
/// left to plan — the task was planned by an earlier delivery or has finished — so a
/// redelivered message changes nothing. Claiming inside the transaction costs no commit of its
/// own, and a worker that dies mid-planning leaves nothing behind to clean up.
pub(crate) async fn open_planning(
    ctx: &Context,
    task_id: TaskId,
) -> Result<Option<(store::Work, tasks::Task)>, JobError> {
    let mut tx = store::Work::begin_planning(&ctx.pool, ctx.settings.lock_timeout).await?;
    match tasks::claim(&mut tx, task_id).await? {
        Claim::Claimed(task) => Ok(Some((tx, *task))),
        Claim::Busy => Err(JobError::Busy),
        Claim::Missing => Err(JobError::Permanent { code: ErrorCode::NotFound, message: format!("no task {task_id}") }),
        Claim::Nothing => {
            tracing::debug!("task already planned or finished; nothing to do");
            Ok(None)
        }
    }
}

/// Cuts an immediate version change of the task's plan into batches, in the planning
/// transaction: the task's totals, its `planned` event (`data` with `total` and `batches`
/// added), and a `batch` job per batch in the outbox. Answers `Completed` when nothing moves,
/// for `end_planning`.
pub(crate) async fn plan_batches(
    ctx: &Context,
    tx: &mut store::Work,
    task: &Task,
    target_number: i32,
    mut data: Value,
) -> Result<Option<TaskStatus>, JobError> {
    let task_id = task.id();
    let plan = batches::plan_migration(tx, task, target_number, ctx.settings.batch_size).await?;
    tasks::set_totals(tx, task_id, plan.total, plan.affected_customers).await?;
    record_planned_batches(tx, task, plan.total, plan.batches, &mut data);
    if plan.batches == 0 {
        return Ok(Some(TaskStatus::Completed));
    }
    outbox::enqueue_pending_batches(tx, task_id).await?;
    Ok(None)
}

/// The `planned` line of a task whose moves were cut into batches: `data` with `total` and
/// `batches` added.
pub(crate) fn record_planned_batches(tx: &mut store::Work, task: &Task, total: i64, batches: i64, data: &mut Value) {
    tx.record(planned_batches(task, total, batches, data));
}

/// The `planned` line of `task`'s timeline (`record_planned_batches`).
pub(crate) fn planned_batches(task: &Task, total: i64, batches: i64, data: &mut Value) -> store::TimelineEvent {
    if let Some(fields) = data.as_object_mut() {
        fields.insert("total".into(), total.into());
        fields.insert("batches".into(), batches.into());
    }
    let message = format!("{total} subscriptions in {batches} batches");
    events::line(task.environment(), task.id(), "planned", &message, None, data.take())
}

/// Plans the task's moves as SCHEDULED moves for the scheduler (a NEXT_BILLING_DATE change, a
/// future effective date, or a policy's notice period), in the planning transaction: the older
/// versions' scheduled moves superseded, the plan let go of (a later task supersedes the moves
/// not yet made), the totals and exclusions, the `planned` event (`data` with `total` added)
/// and the `subscriptions.migration_scheduled` events. Answers `Completed` when nothing moves.
pub(crate) async fn schedule_moves(
    tx: &mut store::Work,
    task: &Task,
    scope: &store::movers::Scope,
    outset: bool,
    mut data: Value,
) -> Result<Option<TaskStatus>, JobError> {
    let (env, task_id) = (task.environment(), task.id());
    if task.task_type() != domain::TaskType::SubscriptionMigration {
        store::version_changes::supersede(tx, env, &scope.plan_id, scope.target_version_number, Some(task_id)).await?;
    }
    tasks::release_plan(tx, task_id).await?;
    let started = std::time::Instant::now();
    let planned = store::version_changes::plan(tx, task, scope, outset).await?;
    tasks::set_totals(tx, task_id, planned.total, planned.affected_customers).await?;
    if let Some(fields) = data.as_object_mut() {
        fields.insert("total".into(), planned.total.into());
        fields.insert("planningMs".into(), (started.elapsed().as_millis() as u64).into());
        if let Some(from) = scope.effective_from {
            fields.insert("effectiveFrom".into(), serde_json::json!(from));
        }
    }
    let message = format!("{} moves scheduled ({})", planned.total, scope.behaviour);
    events::record(tx, env, task_id, "planned", &message, None, data);
    tracing::info!(total = planned.total, elapsed_ms = started.elapsed().as_millis() as u64, "moves scheduled");
    Ok((planned.total == 0).then_some(TaskStatus::Completed))
}

/// Ends a planning transaction's work on the task: `finished` ends it now, with its
/// `finished` event; `None` marks it planned, for the batches or moves it planned to finish.
pub(crate) async fn end_planning(
    tx: &mut store::Work,
    task: &Task,
    finished: Option<TaskStatus>,
) -> Result<(), JobError> {
    match finished {
        Some(status) => {
            tasks::finish_planning(tx, task.id(), status, None).await?;
            record_finished(tx, task, status);
        }
        None => tasks::mark_planned(tx, task.id()).await?,
    }
    Ok(())
}

/// The `finished` line of a task's timeline, for a task that ended in its planning.
pub(crate) fn record_finished(tx: &mut store::Work, task: &Task, status: TaskStatus) {
    events::record(tx, task.environment(), task.id(), "finished", status.as_str(), None, serde_json::json!({}));
}

/// Runs one job to its end (or to an error that says what to do next).
pub async fn run(ctx: &Context, job: Job) -> Result<(), JobError> {
    match job {
        Job::Task { task_id } => run_task(ctx, task_id).await,
        Job::Batch { task_id, seq } => batch::run(ctx, task_id, seq).await,
    }
}

pub(crate) async fn run_task(ctx: &Context, task_id: TaskId) -> Result<(), JobError> {
    let Some((mut tx, task)) = open_planning(ctx, task_id).await? else {
        return Ok(());
    };
    // a task whose policy requires approval waits, published nothing and moved nobody, until
    // an admin approves it (which announces it again)
    if task.awaits_approval() {
        if store::approvals::announce_waiting(&mut tx, &task).await? {
            tracing::info!(task_id = %task_id, "task waits for approval");
        }
        tx.commit(&ctx.hooks).await?;
        return Ok(());
    }
    // a spec that does not parse is permanent: the task fails, nothing is published or moved
    let spec = match task.spec() {
        Ok(spec) => spec,
        Err(invalid) => {
            let message = invalid.to_string();
            tracing::error!(task_id = %task_id, error = %message, "task spec unreadable; failing the task");
            tasks::finish_planning(&mut tx, task_id, TaskStatus::Failed, Some((ErrorCode::InvalidTaskSpec, &message)))
                .await?;
            let data = serde_json::json!({ "code": ErrorCode::InvalidTaskSpec.as_str() });
            events::record(&mut tx, task.environment(), task_id, "failed", &message, None, data);
            tx.commit(&ctx.hooks).await?;
            return Ok(());
        }
    };
    // a failed planning rolls its transaction back; the consumer counts the attempt
    match spec {
        TaskSpec::PublishPlan { migration_type } => publish::run(ctx, tx, task, migration_type).await,
        TaskSpec::PublishAddon { migration_type } => addon::run(ctx, tx, task, migration_type).await,
        TaskSpec::ImportSubscriptions { subscriptions } => import::run(ctx, tx, task, subscriptions).await,
        TaskSpec::SequenceMigration {
            version_change_behaviour,
            version_effective_from,
            make_version_effective_from_outset,
        } => {
            let asked = migration::Asked {
                behaviour: version_change_behaviour,
                effective_from: version_effective_from,
                outset: make_version_effective_from_outset,
            };
            migration::run(ctx, tx, task, asked).await
        }
        TaskSpec::StagedRollout { .. } => rollout::run(ctx, tx, task).await,
        TaskSpec::RollbackMigration { rollback_of } => rollback::run(ctx, tx, task, rollback_of).await,
        // accepted already planned (moved in its request's transaction, or scheduled): there
        // is nothing to plan, and `claim` answers Nothing for it
        TaskSpec::SubscriptionMigrate { .. } => Ok(()),
    }
}
