//! Starting a STAGED_ROLLOUT task, in one transaction: publish the draft exactly as a publish
//! does (same checks, same refusals), then plan the first cohort's batches. Later cohorts are
//! started by the scheduler when their `next_cohort_at` comes (see `store::rollouts`); nothing
//! here waits.

use super::JobError;
use crate::Context;
use store::rollouts;
use store::tasks::{self, Task};

#[tracing::instrument(skip_all, fields(task_id = %task.id, environment_id = %task.environment_id, plan_id = task.plan_id.as_deref().unwrap_or_default()), err)]
pub async fn run(ctx: &Context, mut tx: store::Work, task: Task) -> Result<(), JobError> {
    let task_id = task.id();
    let Some(target_number) = super::publish::publish_draft(&mut tx, &task).await? else {
        tx.commit(&ctx.hooks).await?;
        return Ok(());
    };
    // the policy's exclusions, counted over the whole rollout: every cohort leaves them alone
    let scope = store::movers::task_scope(&task, target_number, domain::VersionChangeBehaviour::Immediate, None)?;
    store::movers::record_exclusions(&mut tx, task.id, &scope).await?;
    let started = rollouts::start_cohort(&mut tx, &task, 0, ctx.settings.batch_size).await?;
    tasks::mark_planned(&mut tx, task_id).await?;
    tx.commit(&ctx.hooks).await?;
    tracing::info!(
        batches = started.batches,
        subscriptions = started.subscriptions,
        finished = started.finished.map_or("no", |status| status.as_str()),
        "rollout started its first cohort"
    );
    Ok(())
}
