//! Job handlers. Each says, through its error, whether trying again could help: the consumer
//! retries `Transient` with a delay and gives up on `Permanent` at once.

pub mod batch;
pub mod import;
pub mod migration;
pub mod publish;
pub mod rollback;
pub mod rollout;

use crate::Context;
use domain::{ErrorCode, Job, TaskId, TaskType};
use store::tasks::{self, Claim};
use store::StoreError;

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
) -> Result<Option<(store::Tx<'static>, tasks::Task)>, JobError> {
    let mut tx = store::begin_with_lock_timeout(&ctx.pool, ctx.settings.lock_timeout).await?;
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

/// Runs one job to its end (or to an error that says what to do next).
pub async fn run(ctx: &Context, job: Job) -> Result<(), JobError> {
    match job {
        Job::Task { task_id } => run_task(ctx, task_id).await,
        Job::Batch { task_id, seq } => batch::run(ctx, task_id, seq).await,
    }
}

async fn run_task(ctx: &Context, task_id: TaskId) -> Result<(), JobError> {
    let Some((tx, task)) = open_planning(ctx, task_id).await? else {
        return Ok(());
    };
    // a failed planning rolls its transaction back; the consumer counts the attempt
    match task.task_type() {
        Some(TaskType::PublishPlan) => publish::run(ctx, tx, task).await,
        Some(TaskType::ImportSubscriptions) => import::run(ctx, tx, task).await,
        Some(TaskType::SubscriptionMigration) => migration::run(ctx, tx, task).await,
        Some(TaskType::StagedRollout) => rollout::run(ctx, tx, task).await,
        Some(TaskType::RollbackMigration) => rollback::run(ctx, tx, task).await,
        None => Err(JobError::Permanent {
            code: ErrorCode::InternalError,
            message: format!("no handler for task type `{}`", task.task_type),
        }),
    }
}
