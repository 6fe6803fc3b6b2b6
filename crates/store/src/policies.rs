//! Stored migration policies (`migration_policies`): one per plan, one per add-on, and one
//! default per environment. The policy in force for a package is its own, else the default —
//! the SQL functions `effective_migration_policy` (plans) and
//! `effective_addon_migration_policy` (add-ons), which the accepting statements read to pin it
//! on a task (`PolicyPin`). Writing a policy changes no task already accepted.

use crate::{Result, StoreError};
use chrono::{DateTime, Utc};
use domain::{EnvironmentId, ErrorCode, MigrationPolicy};
use serde_json::Value;
use sqlx::PgConnection;

/// What a stored policy is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Package<'a> {
    Plan(&'a str),
    Addon(&'a str),
    /// The environment's default, for every package without its own.
    Default,
}

impl<'a> Package<'a> {
    fn plan(self) -> Option<&'a str> {
        match self {
            Package::Plan(id) => Some(id),
            _ => None,
        }
    }

    fn addon(self) -> Option<&'a str> {
        match self {
            Package::Addon(id) => Some(id),
            _ => None,
        }
    }
}

/// A stored policy: for a package, or the environment's default (both ids None).
#[derive(Debug, Clone)]
pub struct Stored {
    pub plan_id: Option<String>,
    pub addon_id: Option<String>,
    pub policy: MigrationPolicy,
    pub updated_by: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl Stored {
    /// Whether this is the environment's default rather than a package's own.
    pub fn is_default(&self) -> bool {
        self.plan_id.is_none() && self.addon_id.is_none()
    }
}

type Row = (Option<String>, Option<String>, Value, Option<String>, DateTime<Utc>);

const COLUMNS: &str = "plan_id, addon_id, policy, updated_by, updated_at";

fn read(row: Row) -> Result<Stored> {
    let (plan_id, addon_id, policy, updated_by, updated_at) = row;
    let policy = MigrationPolicy::from_json(&policy)
        .map_err(|why| StoreError::rejected(ErrorCode::InvalidTaskSpec, format!("stored migration policy: {why}")))?;
    Ok(Stored { plan_id, addon_id, policy, updated_by, updated_at })
}

/// The policy stored for `package` itself, if there is one.
pub async fn get(conn: &mut PgConnection, env: EnvironmentId, package: Package<'_>) -> Result<Option<Stored>> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM migration_policies
         WHERE environment_id = $1 AND plan_id IS NOT DISTINCT FROM $2 AND addon_id IS NOT DISTINCT FROM $3"
    ))
    .bind(env.0)
    .bind(package.plan())
    .bind(package.addon())
    .fetch_optional(conn)
    .await?;
    row.map(read).transpose()
}

/// The policy in force for `package`: its own, else the environment's default, else none.
pub async fn in_force_stored(
    conn: &mut PgConnection,
    env: EnvironmentId,
    package: Package<'_>,
) -> Result<Option<Stored>> {
    match get(conn, env, package).await? {
        Some(own) => Ok(Some(own)),
        None if package == Package::Default => Ok(None),
        None => get(conn, env, Package::Default).await,
    }
}

/// The policy a task on plan `plan_id` pins when nothing narrows it: the plan's own, else the
/// environment's default, else none.
pub async fn in_force(conn: &mut PgConnection, env: EnvironmentId, plan_id: &str) -> Result<Option<MigrationPolicy>> {
    Ok(in_force_stored(conn, env, Package::Plan(plan_id)).await?.map(|s| s.policy))
}

/// Stores the policy of `package`, replacing any before.
pub async fn put(
    conn: &mut PgConnection,
    env: EnvironmentId,
    package: Package<'_>,
    policy: &MigrationPolicy,
    actor: &str,
) -> Result<Stored> {
    let row: Row = sqlx::query_as(&format!(
        "INSERT INTO migration_policies (environment_id, plan_id, addon_id, policy, updated_by)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (environment_id, plan_id, addon_id)
         DO UPDATE SET policy = excluded.policy, updated_by = excluded.updated_by, updated_at = now()
         RETURNING {COLUMNS}"
    ))
    .bind(env.0)
    .bind(package.plan())
    .bind(package.addon())
    .bind(policy.to_json())
    .bind(actor)
    .fetch_one(conn)
    .await?;
    read(row)
}

/// Removes the policy of `package`. Answers whether there was one.
pub async fn delete(conn: &mut PgConnection, env: EnvironmentId, package: Package<'_>) -> Result<bool> {
    Ok(sqlx::query(
        "DELETE FROM migration_policies
         WHERE environment_id = $1 AND plan_id IS NOT DISTINCT FROM $2 AND addon_id IS NOT DISTINCT FROM $3",
    )
    .bind(env.0)
    .bind(package.plan())
    .bind(package.addon())
    .execute(conn)
    .await?
    .rows_affected()
        > 0)
}

/// Which migration policy a new task pins when it is accepted (`tasks.policy`).
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyPin {
    /// None: the task moves no plan's subscriptions as a whole (an import, one subscription).
    None,
    /// The policy in force for its plan: the plan's own, else the environment's default.
    InForce,
    /// Only the approval rule of the policy in force (a rollback).
    ApprovalOnly,
    /// This one, already narrowed from the policy in force by the request's own.
    Given(domain::MigrationPolicy),
}

impl PolicyPin {
    pub(crate) fn mode(&self) -> &'static str {
        match self {
            PolicyPin::None => "none",
            PolicyPin::InForce => "in_force",
            PolicyPin::ApprovalOnly => "approval",
            // a policy that changes nothing pins as none, as an empty stored one does
            PolicyPin::Given(policy) if policy.is_empty() => "none",
            PolicyPin::Given(_) => "given",
        }
    }

    pub(crate) fn given(&self) -> Option<Value> {
        match self {
            PolicyPin::Given(policy) if !policy.is_empty() => Some(policy.to_json()),
            _ => None,
        }
    }
}

/// A CTE `pinned (policy)` that computes the policy a new task pins, from the environment
/// (`env`), plan (`plan`), `PolicyPin::mode` (`mode`) and `PolicyPin::given` (`given`)
/// parameters of the statement it is part of. An empty policy (`{}`, or nothing but
/// `"requireApproval": false`) pins as none.
pub(crate) fn pinned_cte(env: &str, plan: &str, mode: &str, given: &str) -> String {
    pinned_cte_of("effective_migration_policy", env, plan, mode, given)
}

/// `pinned_cte` for a package whose policy in force the SQL function `function(env, id)` reads
/// (`effective_addon_migration_policy` for an add-on).
pub(crate) fn pinned_cte_of(function: &str, env: &str, plan: &str, mode: &str, given: &str) -> String {
    format!("pinned AS ({})", pinned_policy(function, env, plan, mode, given))
}

/// The query behind `pinned_cte_of`: one row, `policy`. `env`, `plan`, `mode` and `given` may
/// be parameters or, in a `LATERAL` subquery, columns of the row a task is accepted from.
/// `OFFSET 0` keeps the subquery from being folded into each use of `raw`, so the lookup runs
/// once per row, not once per use.
pub(crate) fn pinned_policy(function: &str, env: &str, plan: &str, mode: &str, given: &str) -> String {
    format!(
        "SELECT nullif(CASE WHEN raw ->> 'requireApproval' = 'false' THEN raw - 'requireApproval' ELSE raw END,
                          '{{}}'::jsonb) AS policy
            FROM (SELECT CASE {mode}::text
                WHEN 'none' THEN NULL
                WHEN 'given' THEN {given}::jsonb
                WHEN 'approval' THEN CASE WHEN coalesce(({function}({env}, {plan}) ->> 'requireApproval')::boolean, false)
                                          THEN '{{\"requireApproval\": true}}'::jsonb END
                ELSE {function}({env}, {plan}) END AS raw OFFSET 0) r"
    )
}

/// The approval state a task with `pinned.policy` starts in.
pub(crate) const APPROVAL_STATE: &str =
    "CASE WHEN coalesce((pinned.policy ->> 'requireApproval')::boolean, false) THEN 'PENDING' END";

/// The predicate that keeps out of a selection the subscriptions `s` a task's pinned policy
/// (the JSON parameter `policy`, read at the parameter `at`) leaves alone: `policy_exclusion`,
/// the one rule the movers selection, batch moves, rollout cohorts and add-on batches share.
pub(crate) fn not_excluded(policy: &str, at: &str) -> String {
    format!(
        "({policy}::jsonb IS NULL OR policy_exclusion({policy}::jsonb, {at}::timestamptz, s.status, s.customer_id,
            s.metadata, s.start_date, s.billing_period) IS NULL)"
    )
}

/// The statement that pins on task `task` (a parameter) what its policy left alone —
/// `tasks.excluded` and `excluded_by_reason` — counted from `selection`, a SELECT with an
/// `exclusion` column (the movers or an add-on's holders). Answers `excluded`.
pub(crate) fn record_exclusions_sql(selection: &str, task: &str) -> String {
    format!(
        "WITH counted AS (
            SELECT exclusion, count(*) AS n FROM ({selection}) c WHERE exclusion IS NOT NULL GROUP BY exclusion
        )
        UPDATE tasks SET excluded = coalesce((SELECT sum(n) FROM counted), 0),
            excluded_by_reason = (SELECT coalesce(jsonb_object_agg(exclusion, n), '{{}}') FROM counted)
        WHERE id = {task}
        RETURNING excluded"
    )
}
