//! Stored migration policies (`migration_policies`): one per plan and one default per
//! environment. The policy in force for a plan is the plan's own, else the default — the SQL
//! function `effective_migration_policy`, which the accepting statements read to pin it on a
//! task (`tasks::PolicyPin`). Writing a policy changes no task already accepted.

use crate::{Result, StoreError};
use chrono::{DateTime, Utc};
use domain::{EnvironmentId, ErrorCode, MigrationPolicy};
use serde_json::Value;
use sqlx::PgConnection;

/// A stored policy: for a plan, or the environment's default (`plan_id` None).
#[derive(Debug, Clone)]
pub struct Stored {
    pub plan_id: Option<String>,
    pub policy: MigrationPolicy,
    pub updated_by: Option<String>,
    pub updated_at: DateTime<Utc>,
}

type Row = (Option<String>, Value, Option<String>, DateTime<Utc>);

fn read(row: Row) -> Result<Stored> {
    let (plan_id, policy, updated_by, updated_at) = row;
    let policy = MigrationPolicy::from_json(&policy)
        .map_err(|why| StoreError::rejected(ErrorCode::InvalidTaskSpec, format!("stored migration policy: {why}")))?;
    Ok(Stored { plan_id, policy, updated_by, updated_at })
}

/// The policy stored for `plan_id` (None: the environment's default), if there is one.
pub async fn get(conn: &mut PgConnection, env: EnvironmentId, plan_id: Option<&str>) -> Result<Option<Stored>> {
    let row: Option<Row> = sqlx::query_as(
        "SELECT plan_id, policy, updated_by, updated_at FROM migration_policies
         WHERE environment_id = $1 AND plan_id IS NOT DISTINCT FROM $2",
    )
    .bind(env.0)
    .bind(plan_id)
    .fetch_optional(conn)
    .await?;
    row.map(read).transpose()
}

/// The policy a task on `plan_id` pins when nothing narrows it: the plan's own, else the
/// environment's default, else none.
pub async fn in_force(conn: &mut PgConnection, env: EnvironmentId, plan_id: &str) -> Result<Option<MigrationPolicy>> {
    let row: Option<Row> = sqlx::query_as(
        "SELECT plan_id, policy, updated_by, updated_at FROM migration_policies
         WHERE environment_id = $1 AND (plan_id = $2 OR plan_id IS NULL)
         ORDER BY plan_id NULLS LAST LIMIT 1",
    )
    .bind(env.0)
    .bind(plan_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(read).transpose()?.map(|s| s.policy))
}

/// Stores the policy of `plan_id` (None: the environment's default), replacing any before.
pub async fn put(
    conn: &mut PgConnection,
    env: EnvironmentId,
    plan_id: Option<&str>,
    policy: &MigrationPolicy,
    actor: &str,
) -> Result<Stored> {
    let row: Row = sqlx::query_as(
        "INSERT INTO migration_policies (environment_id, plan_id, policy, updated_by)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (environment_id, plan_id)
         DO UPDATE SET policy = excluded.policy, updated_by = excluded.updated_by, updated_at = now()
         RETURNING plan_id, policy, updated_by, updated_at",
    )
    .bind(env.0)
    .bind(plan_id)
    .bind(policy.to_json())
    .bind(actor)
    .fetch_one(conn)
    .await?;
    read(row)
}

/// Removes the policy of `plan_id` (None: the default). Answers whether there was one.
pub async fn delete(conn: &mut PgConnection, env: EnvironmentId, plan_id: Option<&str>) -> Result<bool> {
    Ok(sqlx::query("DELETE FROM migration_policies WHERE environment_id = $1 AND plan_id IS NOT DISTINCT FROM $2")
        .bind(env.0)
        .bind(plan_id)
        .execute(conn)
        .await?
        .rows_affected()
        > 0)
}

/// Refuses with 404 `PlanNotFound` when the environment has no plan `plan_id`.
pub async fn require_plan(conn: &mut PgConnection, env: EnvironmentId, plan_id: &str) -> Result<()> {
    let found: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM plans WHERE environment_id = $1 AND id = $2)")
        .bind(env.0)
        .bind(plan_id)
        .fetch_one(conn)
        .await?;
    if !found {
        return Err(StoreError::rejected(ErrorCode::PlanNotFound, format!("plan `{plan_id}` not found")));
    }
    Ok(())
}
