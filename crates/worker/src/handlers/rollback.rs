//! Planning a ROLLBACK_MIGRATION task, in one transaction: the moves of the rolled-back task
//! still SCHEDULED are canceled, and its history rows are cut into batches announced through
//! the outbox. The batches themselves run like a migration's (`batch.rs`); this moves no
//! subscription itself.

use super::JobError;
use crate::Context;
use domain::TaskStatus;
use serde_json::json;
use store::tasks::Task;
use store::{events, outbox, rollbacks, tasks};

#[tracing::instrument(skip_all, fields(task_id = %task.id, environment_id = %task.environment_id), err)]
pub async fn run(ctx: &Context, task: &Task) -> Result<(), JobError> {
    let env = task.environment();
    let task_id = task.id();
    let Some((mut tx, task)) = super::open_planning(ctx, task_id).await? else {
        return Ok(());
    };
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
    )
    .await?;
    let finished = (plan.batches == 0).then_some(TaskStatus::Completed);
    if let Some(status) = finished {
        tasks::finish(&mut tx, task_id, status, None).await?;
    } else {
        outbox::enqueue_pending_batches(&mut tx, task_id).await?;
    }
    tasks::mark_planned(&mut tx, task_id).await?;
    if let Some(status) = finished {
        events::record(&mut tx, env, task_id, "finished", status.as_str(), None, json!({})).await?;
    }
    tx.commit().await?;
    tracing::info!(total = plan.total, batches = plan.batches, "rollback planned");
    Ok(())
}
