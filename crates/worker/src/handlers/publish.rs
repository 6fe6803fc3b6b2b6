//! Publishing a plan's draft: the checks that need the whole catalog, the publish itself and
//! the migration plan, all in one transaction. Batches are announced through the outbox in
//! that same transaction, so a crash anywhere leaves either nothing done or everything
//! planned and on its way.

use super::JobError;
use crate::Context;
use domain::{ErrorCode, Job, MigrationType, TaskStatus, VersionChangeBehaviour};
use store::tasks::Task;
use store::{events, plans, tasks};

#[tracing::instrument(skip_all, fields(task_id = %task.id, environment_id = %task.environment_id, plan_id = task.plan_id.as_deref().unwrap_or_default()), err)]
pub async fn run(
    ctx: &Context,
    mut tx: store::Work,
    task: Task,
    migration_type: MigrationType,
) -> Result<(), JobError> {
    let behaviour = VersionChangeBehaviour::from(migration_type);

    let Some(target_number) = publish_draft(&mut tx, &task).await? else {
        tx.commit(&ctx.hooks).await?;
        return Ok(());
    };

    let finished = if behaviour == VersionChangeBehaviour::Never {
        Some(TaskStatus::Completed)
    } else {
        let scope = store::movers::task_scope(&task, target_number, behaviour, None)?;
        if scope.behaviour == VersionChangeBehaviour::Immediate {
            super::plan_batches(ctx, &mut tx, &task, target_number, serde_json::json!({})).await?
        } else {
            // a notice period: every move waits for it, scheduled at a billing date
            super::schedule_moves(&mut tx, &task, &scope, false, serde_json::json!({})).await?
        }
    };
    super::end_planning(&mut tx, &task, finished).await?;
    tx.commit(&ctx.hooks).await?;
    tracing::info!(ended_in_planning = finished.map_or("no", |status| status.as_str()), "publish planned");
    Ok(())
}

/// Publishes the task's pinned draft, inside its planning transaction: the catalog checks,
/// then the flip to PUBLISHED. Answers the version number published, or `None` when a check
/// refused or the draft was gone — the task is then FAILED and planned, and the caller
/// commits. Shared by every task that publishes a draft, so they refuse alike.
pub(crate) async fn publish_draft(tx: &mut store::Work, task: &Task) -> Result<Option<i32>, JobError> {
    let env = task.environment();
    let task_id = task.id();
    let plan_id = task.plan_id.clone().unwrap_or_default();
    let (Some(target), Some(target_number)) = (task.target_version_id, task.target_version_number) else {
        return Err(JobError::Permanent {
            code: ErrorCode::InternalError,
            message: "task has no target version".into(),
        });
    };
    if let Some((code, message)) = catalog_check(tx, task).await? {
        tasks::finish_planning(tx, task_id, TaskStatus::Failed, Some((code, &message))).await?;
        events::record(tx, env, task_id, "failed", &message, None, serde_json::json!({ "code": code.as_str() }));
        tracing::info!(code = %code, "publish refused");
        return Ok(None);
    }
    if !plans::publish_version(tx, target, Some(task_id)).await? {
        let message = format!("version {target_number} of plan `{plan_id}` is no longer a draft");
        tasks::finish_planning(tx, task_id, TaskStatus::Failed, Some((ErrorCode::PackageAlreadyPublished, &message)))
            .await?;
        return Ok(None);
    }
    record_published(tx, task, target_number);
    Ok(Some(target_number))
}

/// The `published` line of a task's timeline: version `target_number` of its plan published.
pub(crate) fn record_published(tx: &mut store::Work, task: &Task, target_number: i32) {
    tx.record(published(task, target_number));
}

/// The `published` line of `task`'s timeline, version `target_number` having been published.
pub(crate) fn published(task: &Task, target_number: i32) -> store::TimelineEvent {
    let plan_id = task.plan_id.as_deref().unwrap_or_default();
    let message = format!("version {target_number} of plan `{plan_id}` published");
    let data = serde_json::json!({ "versionNumber": target_number });
    events::line(task.environment(), task.id(), "published", &message, None, data)
}

/// Checks that need more than the plan itself: a child plan cannot be published while its
/// base plan is only a draft, nor while a compatible add-on is. They are
/// `store::catalog::publish_refusal`, which the previews run too.
async fn catalog_check(conn: &mut sqlx::PgConnection, task: &Task) -> Result<Option<(ErrorCode, String)>, JobError> {
    let Some(target) = task.target_version_id else {
        return Ok(None);
    };
    Ok(store::catalog::publish_refusal(conn, task.environment(), target).await?)
}

/// The job that starts a publish task.
pub fn job(task: domain::TaskId) -> Job {
    Job::Task { task_id: task }
}
