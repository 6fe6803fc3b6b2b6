//! Moving one batch of a migration, in one transaction.

use super::JobError;
use crate::Context;
use domain::TaskId;
use store::batches::{self, BatchOutcome};
use store::events;

/// Runs one batch and records how long it took in `cutover_batch_duration_seconds`.
pub async fn run(ctx: &Context, task_id: TaskId, seq: i32) -> Result<(), JobError> {
    let started = std::time::Instant::now();
    let result = run_batch(ctx, task_id, seq).await;
    if let Some(metrics) = crate::metrics::get() {
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics.batch_duration.with_label_values(&[outcome]).observe(started.elapsed().as_secs_f64());
    }
    result
}

#[tracing::instrument(skip_all, fields(task_id = %task_id, seq, environment_id = tracing::field::Empty), err)]
async fn run_batch(ctx: &Context, task_id: TaskId, seq: i32) -> Result<(), JobError> {
    let mut tx = store::Work::begin_with_lock_timeout(&ctx.pool, ctx.settings.lock_timeout).await?;
    let outcome = batches::run(&mut tx, task_id, seq, &ctx.settings.worker_id).await?;
    if outcome == BatchOutcome::Missing {
        return Err(JobError::Permanent {
            code: domain::ErrorCode::NotFound,
            message: format!("no batch {seq} of task {task_id}"),
        });
    }
    if let BatchOutcome::Ran { task_finished: Some(status), .. } = outcome {
        if let Some(task) = store::tasks::read(&mut tx, task_id).await? {
            tracing::Span::current().record("environment_id", tracing::field::display(task.environment_id));
            events::record(
                &mut tx,
                task.environment(),
                task_id,
                "finished",
                status.as_str(),
                None,
                serde_json::json!({
                    "processed": task.processed, "failed": task.failed,
                }),
            );
        }
    }
    tx.commit(&ctx.hooks).await?;
    tracing::debug!(?outcome, "batch done");
    Ok(())
}

/// Gives up on a batch after its last attempt.
pub async fn give_up(ctx: &Context, task_id: TaskId, seq: i32, message: &str) -> Result<(), JobError> {
    let mut tx = store::Work::begin(&ctx.pool).await?;
    batches::give_up(&mut tx, task_id, seq, message).await?;
    tx.commit(&ctx.hooks).await?;
    Ok(())
}
