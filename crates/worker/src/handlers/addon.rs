//! Publishing an add-on's draft, in one transaction: the flip to PUBLISHED and, with
//! ALL_CUSTOMERS, the holders of older versions cut into batches announced through the outbox,
//! exactly as a plan publish plans its subscriptions. The batches run like a plan's
//! (`batch.rs`); `store::batches::run` sends an add-on task's batch to `store::addons`.

use super::JobError;
use crate::Context;
use domain::{ErrorCode, MigrationType, TaskStatus};
use serde_json::json;
use store::tasks::Task;
use store::{addons, events, outbox, tasks};

#[tracing::instrument(skip_all, fields(task_id = %task.id, environment_id = %task.environment_id, addon_id = tracing::field::Empty), err)]
pub async fn run(
    ctx: &Context,
    mut tx: store::Work,
    task: Task,
    migration_type: MigrationType,
) -> Result<(), JobError> {
    let env = task.environment();
    let task_id = task.id();
    let Some(addon_id) = task.addon_id.clone() else {
        return Err(JobError::Permanent {
            code: ErrorCode::InvalidTaskSpec,
            message: "invalid task spec: an add-on publish names no add-on".into(),
        });
    };
    tracing::Span::current().record("addon_id", addon_id.as_str());
    let (Some(target), Some(target_number)) = (task.target_version_id, task.target_version_number) else {
        return Err(JobError::Permanent {
            code: ErrorCode::InternalError,
            message: "task has no target version".into(),
        });
    };
    if !addons::publish_version(&mut tx, target, task_id).await? {
        let message = format!("version {target_number} of add-on `{addon_id}` is no longer a draft");
        tasks::finish_planning(
            &mut tx,
            task_id,
            TaskStatus::Failed,
            Some((ErrorCode::PackageAlreadyPublished, &message)),
        )
        .await?;
        let data = json!({ "code": ErrorCode::PackageAlreadyPublished.as_str() });
        events::record(&mut tx, env, task_id, "failed", &message, None, data);
        tx.commit(&ctx.hooks).await?;
        return Ok(());
    }
    events::record(
        &mut tx,
        env,
        task_id,
        "published",
        &format!("version {target_number} of add-on `{addon_id}` published"),
        None,
        json!({ "versionNumber": target_number, "addonId": addon_id }),
    );
    let finished = match migration_type {
        MigrationType::NewCustomers => Some(TaskStatus::Completed),
        MigrationType::AllCustomers => {
            let plan =
                addons::plan_migration(&mut tx, &task, &addon_id, target_number, ctx.settings.batch_size).await?;
            tasks::set_totals(&mut tx, task_id, plan.total, plan.affected_customers).await?;
            let message = format!("{} subscriptions in {} batches", plan.total, plan.batches);
            let data = json!({ "total": plan.total, "batches": plan.batches });
            events::record(&mut tx, env, task_id, "planned", &message, None, data);
            if plan.batches == 0 {
                Some(TaskStatus::Completed)
            } else {
                outbox::enqueue_pending_batches(&mut tx, task_id).await?;
                None
            }
        }
    };
    super::end_planning(&mut tx, &task, finished).await?;
    tx.commit(&ctx.hooks).await?;
    tracing::info!(ended_in_planning = finished.map_or("no", |status| status.as_str()), "add-on publish planned");
    Ok(())
}
