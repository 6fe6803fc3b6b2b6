//! Planning a ROLLBACK_MIGRATION task, in one transaction: the moves of the rolled-back task
//! still SCHEDULED are canceled, and its history rows are cut into batches announced through
//! the outbox. The batches themselves run like a migration's (`batch.rs`); this moves no
//! subscription itself.

use super::JobError;
use crate::Context;
use domain::{ErrorCode, TaskId, TaskStatus};
use serde_json::json;
use store::tasks::Task;
use store::{events, outbox, rollbacks, tasks};

#[tracing::instrument(skip_all, fields(task_id = %task.id, environment_id = %task.environment_id), err)]
pub async fn run(ctx: &Context, mut tx: store::Work, task: Task, rollback_of: TaskId) -> Result<(), JobError> {
    let env = task.environment();
    let task_id = task.id();
    if task.rollback_of != Some(rollback_of.0) {
        return Err(JobError::Permanent {
            code: ErrorCode::InvalidTaskSpec,
            message: format!("invalid task spec: `rollbackOf` {rollback_of} is not the task this one rolls back"),
        });
    }
    let plan = rollbacks::plan(&mut tx, &task, ctx.settings.batch_size).await?;
    tasks::set_totals(&mut tx, task_id, plan.total, plan.affected_customers).await?;
    events::record(
        &mut tx,
        env,
        task_id,
        "planned",
        &format!("{} subscriptions to move back in {} batches", plan.total, plan.batches),
        None,
        json!({ "total": plan.total, "batches": plan.batches, "scheduledCanceled": plan.canceled }),
    );
    let finished = if plan.batches == 0 {
        Some(TaskStatus::Completed)
    } else {
        outbox::enqueue_pending_batches(&mut tx, task_id).await?;
        None
    };
    super::end_planning(&mut tx, &task, finished).await?;
    tx.commit(&ctx.hooks).await?;
    tracing::info!(total = plan.total, batches = plan.batches, "rollback planned");
    Ok(())
}
