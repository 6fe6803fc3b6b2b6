//! Planning a SUBSCRIPTION_MIGRATION task (a Sequence plan update), in one transaction: it
//! supersedes the SCHEDULED moves to older versions of the plan, then either cuts an immediate
//! move into batches (the publish path's machinery) or writes one SCHEDULED move per
//! subscription for the scheduler. A task older than one already planned for a newer version
//! is superseded whole. It moves no subscription itself.

use super::JobError;
use crate::Context;
use chrono::{DateTime, Utc};
use domain::{ErrorCode, TaskStatus, VersionChangeBehaviour};
use serde_json::json;
use store::tasks::Task;
use store::{events, version_changes};

/// What the Sequence update asked, from the task's spec.
#[derive(Debug, Clone, Copy)]
pub struct Asked {
    pub behaviour: VersionChangeBehaviour,
    pub effective_from: Option<DateTime<Utc>>,
    pub outset: bool,
}

#[tracing::instrument(skip_all, fields(task_id = %task.id, plan_id = task.plan_id.as_deref().unwrap_or_default()), err)]
pub async fn run(ctx: &Context, mut tx: store::Work, task: Task, asked: Asked) -> Result<(), JobError> {
    let env = task.environment();
    let task_id = task.id();
    let plan_id = task.plan_id.clone().unwrap_or_default();
    let Some(target_number) = task.target_version_number else {
        return Err(JobError::Permanent {
            code: ErrorCode::InternalError,
            message: "task has no target version".into(),
        });
    };
    let Asked { behaviour, effective_from, outset } = asked;

    if store::version_changes::newer_migration_planned(&mut tx, &task).await? {
        let message = "superseded: a newer version's migration was planned first".to_owned();
        version_changes::end_superseded(&mut tx, task_id, &message).await?;
        events::record(&mut tx, env, task_id, "superseded", &message, None, json!({}));
        tx.commit(&ctx.hooks).await?;
        return Ok(());
    }

    let superseded = version_changes::supersede(&mut tx, env, &plan_id, target_number, Some(task_id)).await?;
    // the task's policy may leave some alone and make every move wait for its notice
    let scope = store::movers::task_scope(&task, target_number, behaviour, effective_from)?;
    // the database's clock decides whether the version is already effective
    let now = store::db_now(&mut tx).await?;
    let immediate =
        scope.behaviour == VersionChangeBehaviour::Immediate && scope.effective_from.is_none_or(|e| e <= now);
    let data = json!({ "superseded": superseded.len() });
    let finished = if behaviour == VersionChangeBehaviour::Never {
        Some(TaskStatus::Completed)
    } else if immediate {
        super::plan_batches(ctx, &mut tx, &task, target_number, data).await?
    } else {
        super::schedule_moves(&mut tx, &task, &scope, outset, data).await?
    };
    super::end_planning(&mut tx, &task, finished).await?;
    tx.commit(&ctx.hooks).await?;
    Ok(())
}
