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
    // its base plan if that has no published (or archived) version, whether its
    // compatibleAddonIds are a list of ids, and the first of them with no published version
    let row: Option<(Option<String>, bool, Option<String>)> = sqlx::query_as(
        "SELECT
            (SELECT p.id FROM plans p
             WHERE p.environment_id = v.environment_id AND p.id = v.parent_plan_id
               AND NOT EXISTS (SELECT 1 FROM plan_versions pv
                               WHERE pv.environment_id = p.environment_id AND pv.plan_id = p.id
                                 AND pv.status <> 'DRAFT')),
            coalesce(jsonb_typeof(v.compatible_addon_ids), 'null') = 'null'
              OR (jsonb_typeof(v.compatible_addon_ids) = 'array'
                  AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(v.compatible_addon_ids) e
                                  WHERE jsonb_typeof(e) <> 'string')),
            (SELECT a.id FROM jsonb_array_elements_text(
                        CASE WHEN jsonb_typeof(v.compatible_addon_ids) = 'array'
                             THEN v.compatible_addon_ids ELSE '[]' END) WITH ORDINALITY AS c(id, n)
             JOIN addons a ON a.environment_id = v.environment_id AND a.id = c.id
             WHERE NOT EXISTS (SELECT 1 FROM addon_versions av
                               WHERE av.environment_id = a.environment_id AND av.addon_id = a.id
                                 AND av.status <> 'DRAFT')
             ORDER BY c.n LIMIT 1)
         FROM plan_versions v WHERE v.environment_id = $1 AND v.id = $2",
    )
    .bind(env.0)
    .bind(version_id)
    .fetch_optional(conn)
    .await?;
    let Some((draft_parent, addons_readable, draft_addon)) = row else { return Ok(None) };
    if let Some(parent) = draft_parent {
        Ok(Some((ErrorCode::PlanCannotBePublishWhenBasePlanIsDraft, format!("base plan `{parent}` is still a draft"))))
    } else if !addons_readable {
        // stored data that does not read is an error, never "no add-ons"
        Err(StoreError::rejected(
            ErrorCode::InternalError,
            format!("stored compatibleAddonIds of version {version_id} are not a list of ids"),
        ))
    } else if let Some(addon) = draft_addon {
        let message = format!("compatible add-on `{addon}` is still a draft");
        Ok(Some((ErrorCode::PlanCannotBePublishWhenCompatibleAddonIsDraft, message)))
    } else {
        Ok(None)
    }
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
