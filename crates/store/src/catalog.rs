//! The checks a publish must pass that need more of the catalog than the plan itself: a plan
//! cannot be published while its base plan (`parent_plan_id`) is only a draft, nor while one of
//! its compatible add-ons is. They live here once: the worker runs them while it plans a
//! publish (`handlers::publish::publish_draft`, in the planning transaction) and both dialects'
//! previews run them to answer `wouldFail`, so a preview's verdict is the worker's.
//!
//! This module reads `plans`, `plan_versions`, `addons` and `addon_versions` only; it depends
//! on no other store module.

use crate::{Result, StoreError};
use domain::{EnvironmentId, ErrorCode, TaskType};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

/// Why the publish of version `version_id` (a draft) would be refused by these checks, as the
/// task's error code and message; `None` when it would go through. A version that does not
/// exist meets no refusal here (the publish then finds no draft to flip).
pub async fn publish_refusal(
    conn: &mut PgConnection,
    env: EnvironmentId,
    version_id: Uuid,
) -> Result<Option<(ErrorCode, String)>> {
    let refs: Option<(Option<String>, Option<Value>)> = sqlx::query_as(
        "SELECT parent_plan_id, compatible_addon_ids FROM plan_versions WHERE environment_id = $1 AND id = $2",
    )
    .bind(env.0)
    .bind(version_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((parent, addons)) = refs else {
        return Ok(None);
    };
    let addons: Vec<String> = match addons {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => serde_json::from_value(v).map_err(|e| {
            StoreError::rejected(
                ErrorCode::InternalError,
                format!("stored compatibleAddonIds are not a list of ids: {e}"),
            )
        })?,
    };
    let parents: Vec<&str> = parent.iter().map(String::as_str).collect();
    let unpublished_parent = if parents.is_empty() { Vec::new() } else { unpublished(conn, env, &parents).await? };
    if let Some(parent) = parent.filter(|p| unpublished_parent.contains(p)) {
        return Ok(Some((
            ErrorCode::PlanCannotBePublishWhenBasePlanIsDraft,
            format!("base plan `{parent}` is still a draft"),
        )));
    }
    let unpublished_addons =
        if addons.is_empty() { Vec::new() } else { unpublished_addons(conn, env, &addons).await? };
    if let Some(addon) = addons.into_iter().find(|a| unpublished_addons.contains(a)) {
        return Ok(Some((
            ErrorCode::PlanCannotBePublishWhenCompatibleAddonIsDraft,
            format!("compatible add-on `{addon}` is still a draft"),
        )));
    }
    Ok(None)
}

/// The catalog refusal the planning of a task of `task_type` would meet for the version it
/// publishes (`version_id`; `None` when that version does not exist yet, as for a Sequence
/// update of a LIVE plan, which creates it), or `None` when the planning would go through.
/// What the previews ask, so that each dialect's preview runs exactly the checks its own
/// request's planning runs:
/// - a publish (`PUBLISH_PLAN`) or a staged rollout (`STAGED_ROLLOUT`): the worker publishes
///   the pinned draft after `publish_refusal`;
/// - a Sequence update (`SUBSCRIPTION_MIGRATION`): the `PUT` publishes its version in the
///   request, after its own synchronous checks, and its planning only moves schedules — it
///   meets no catalog refusal;
/// - the other tasks publish nothing.
pub async fn planning_refusal(
    conn: &mut PgConnection,
    env: EnvironmentId,
    task_type: TaskType,
    version_id: Option<Uuid>,
) -> Result<Option<(ErrorCode, String)>> {
    match (task_type, version_id) {
        (TaskType::PublishPlan | TaskType::StagedRollout, Some(version_id)) => {
            publish_refusal(conn, env, version_id).await
        }
        (TaskType::PublishPlan | TaskType::StagedRollout, None) => Ok(None),
        (
            TaskType::SubscriptionMigration
            | TaskType::ImportSubscriptions
            | TaskType::RollbackMigration
            | TaskType::PublishAddon,
            _,
        ) => Ok(None),
    }
}

/// Which of `plan_ids` exist and have no published (or archived) version: a plan cannot be
/// published on top of them.
async fn unpublished(conn: &mut PgConnection, env: EnvironmentId, plan_ids: &[&str]) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT p.id FROM plans p WHERE p.environment_id = $1 AND p.id = ANY($2)
            AND NOT EXISTS (SELECT 1 FROM plan_versions v
                            WHERE v.environment_id = $1 AND v.plan_id = p.id AND v.status <> 'DRAFT')",
    )
    .bind(env.0)
    .bind(plan_ids)
    .fetch_all(conn)
    .await?)
}

/// Which of `addon_ids` exist with no published (or archived) version: a plan naming them as
/// compatible add-ons cannot be published.
async fn unpublished_addons(conn: &mut PgConnection, env: EnvironmentId, addon_ids: &[String]) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT a.id FROM addons a WHERE a.environment_id = $1 AND a.id = ANY($2)
            AND NOT EXISTS (SELECT 1 FROM addon_versions v
                            WHERE v.environment_id = $1 AND v.addon_id = a.id AND v.status <> 'DRAFT')",
    )
    .bind(env.0)
    .bind(addon_ids)
    .fetch_all(conn)
    .await?)
}
