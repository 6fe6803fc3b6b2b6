//! Add-ons and their versions, stored like plans (`plans`): an add-on is an identity, what a
//! caller sees of it lives on a version, at most one version is a DRAFT and the newest
//! PUBLISHED one is what new subscriptions get. Also the add-ons a subscription holds, with
//! their quantity, and what an add-on publish does to them: accepting the task (one
//! statement), cutting its holders into batches and moving one batch, with history rows in
//! `subscription_addon_history`.

use crate::outbox::JOB_OF_EACH_TASK;
use crate::policies::{self, PolicyPin};
use crate::task_row::Task;
use crate::{is_unique_violation, page, Page, Result, StoreError};
use chrono::{DateTime, Utc};
use domain::{EnvironmentId, ErrorCode, PlanVersionStatus, TaskId, TaskSpec};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AddonVersion {
    pub id: Uuid,
    pub addon_id: String,
    pub product_id: Option<String>,
    pub version_number: i32,
    #[sqlx(try_from = "String")]
    pub status: PlanVersionStatus,
    pub is_latest: bool,
    pub display_name: String,
    pub description: Option<String>,
    pub billing_id: Option<String>,
    pub pricing_type: Option<String>,
    pub metadata: Value,
    pub max_quantity: Option<i32>,
    pub dependencies: Value,
    pub charges: Option<Value>,
    pub entitlements: Value,
    pub published_at: Option<DateTime<Utc>>,
    pub addon_seq: i64,
    pub addon_created_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Selects versions joined with their add-on, with `is_latest` derived, never stored.
const SELECT: &str = "SELECT v.id, v.addon_id, a.product_id, v.version_number, v.status,
        (v.status = 'PUBLISHED' AND v.version_number = (
            SELECT max(l.version_number) FROM addon_versions l
            WHERE l.environment_id = v.environment_id AND l.addon_id = v.addon_id AND l.status = 'PUBLISHED'
        )) AS is_latest,
        v.display_name, v.description, v.billing_id, v.pricing_type, v.metadata, v.max_quantity, v.dependencies,
        v.charges, v.entitlements, v.published_at, a.seq AS addon_seq, a.created_at AS addon_created_at,
        v.created_at, v.updated_at
    FROM addon_versions v JOIN addons a ON a.environment_id = v.environment_id AND a.id = v.addon_id";

/// Everything a version holds that a caller may set.
#[derive(Debug, Clone)]
pub struct AddonFields {
    pub display_name: String,
    pub description: Option<String>,
    pub billing_id: Option<String>,
    pub pricing_type: Option<String>,
    pub metadata: Value,
    pub max_quantity: Option<i32>,
    pub dependencies: Vec<String>,
    pub charges: Option<Value>,
}

impl AddonFields {
    fn from_version(v: &AddonVersion) -> Result<Self> {
        let dependencies = serde_json::from_value(v.dependencies.clone()).map_err(|e| {
            StoreError::rejected(
                ErrorCode::InternalError,
                format!("stored dependencies of add-on `{}` are not a list of ids: {e}", v.addon_id),
            )
        })?;
        Ok(Self {
            display_name: v.display_name.clone(),
            description: v.description.clone(),
            billing_id: v.billing_id.clone(),
            pricing_type: v.pricing_type.clone(),
            metadata: v.metadata.clone(),
            max_quantity: v.max_quantity,
            dependencies,
            charges: v.charges.clone(),
        })
    }
}

/// A change to a draft: `None` leaves a field as it is; `Some(None)` clears a nullable one.
#[derive(Debug, Clone, Default)]
pub struct AddonPatch {
    pub display_name: Option<String>,
    pub description: Option<Option<String>>,
    pub billing_id: Option<Option<String>>,
    pub metadata: Option<Value>,
    pub max_quantity: Option<Option<i32>>,
    pub dependencies: Option<Option<Vec<String>>>,
    pub charges: Option<Value>,
    pub pricing_type: Option<String>,
}

impl AddonPatch {
    fn apply(self, f: &mut AddonFields) {
        if let Some(v) = self.display_name {
            f.display_name = v;
        }
        if let Some(v) = self.description {
            f.description = v;
        }
        if let Some(v) = self.billing_id {
            f.billing_id = v;
        }
        if let Some(v) = self.metadata {
            f.metadata = v;
        }
        if let Some(v) = self.max_quantity {
            f.max_quantity = v;
        }
        if let Some(v) = self.dependencies {
            f.dependencies = v.unwrap_or_default();
        }
        if let Some(v) = self.charges {
            f.charges = Some(v);
        }
        if let Some(v) = self.pricing_type {
            f.pricing_type = Some(v);
        }
    }
}

pub fn not_found(addon_id: &str) -> StoreError {
    StoreError::rejected(ErrorCode::AddonNotFound, format!("add-on `{addon_id}` not found"))
}

/// Creates an add-on with its first version, a DRAFT unless `status` says PUBLISHED.
pub async fn create(
    conn: &mut PgConnection,
    env: EnvironmentId,
    addon_id: &str,
    product_id: &str,
    status: PlanVersionStatus,
    fields: &AddonFields,
) -> Result<AddonVersion> {
    let product: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM products WHERE environment_id = $1 AND id = $2)")
            .bind(env.0)
            .bind(product_id)
            .fetch_one(&mut *conn)
            .await?;
    if !product {
        return Err(StoreError::rejected(ErrorCode::ProductNotFoundError, format!("product `{product_id}` not found")));
    }
    if status == PlanVersionStatus::Archived {
        return Err(StoreError::rejected(ErrorCode::BadUserInput, "an add-on cannot be created archived"));
    }
    refuse_missing_dependencies(conn, env, addon_id, &fields.dependencies).await?;
    sqlx::query("INSERT INTO addons (environment_id, id, product_id) VALUES ($1, $2, $3)")
        .bind(env.0)
        .bind(addon_id)
        .bind(product_id)
        .execute(&mut *conn)
        .await
        .map_err(|e| {
            if is_unique_violation(&e, "addons_pkey") {
                StoreError::rejected(ErrorCode::BadUserInput, format!("an add-on with id `{addon_id}` already exists"))
            } else {
                e.into()
            }
        })?;
    let id = insert_version(conn, env, addon_id, 1, status, fields).await?;
    get_version(conn, env, id).await
}

async fn insert_version(
    conn: &mut PgConnection,
    env: EnvironmentId,
    addon_id: &str,
    version_number: i32,
    status: PlanVersionStatus,
    f: &AddonFields,
) -> Result<Uuid> {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO addon_versions (id, environment_id, addon_id, version_number, status, display_name, description,
            billing_id, pricing_type, metadata, max_quantity, dependencies, charges, published_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, CASE WHEN $5 = 'PUBLISHED' THEN now() END)",
    )
    .bind(id)
    .bind(env.0)
    .bind(addon_id)
    .bind(version_number)
    .bind(status.as_str())
    .bind(&f.display_name)
    .bind(&f.description)
    .bind(&f.billing_id)
    .bind(&f.pricing_type)
    .bind(&f.metadata)
    .bind(f.max_quantity)
    .bind(serde_json::json!(f.dependencies))
    .bind(&f.charges)
    .execute(conn)
    .await
    .map_err(|e| {
        if is_unique_violation(&e, "addon_versions_one_draft") {
            StoreError::rejected(ErrorCode::DraftAlreadyExists, format!("add-on `{addon_id}` already has a draft"))
        } else {
            e.into()
        }
    })?;
    Ok(id)
}

pub async fn get_version(conn: &mut PgConnection, env: EnvironmentId, version_id: Uuid) -> Result<AddonVersion> {
    Ok(sqlx::query_as::<_, AddonVersion>(&format!("{SELECT} WHERE v.environment_id = $1 AND v.id = $2"))
        .bind(env.0)
        .bind(version_id)
        .fetch_one(conn)
        .await?)
}

/// The version a caller sees for the add-on: its draft if it has one, else its newest version.
pub async fn current(conn: &mut PgConnection, env: EnvironmentId, addon_id: &str) -> Result<Option<AddonVersion>> {
    Ok(sqlx::query_as::<_, AddonVersion>(&format!(
        "{SELECT} WHERE v.environment_id = $1 AND v.addon_id = $2 ORDER BY v.version_number DESC LIMIT 1"
    ))
    .bind(env.0)
    .bind(addon_id)
    .fetch_optional(conn)
    .await?)
}

async fn draft(conn: &mut PgConnection, env: EnvironmentId, addon_id: &str) -> Result<Option<AddonVersion>> {
    Ok(sqlx::query_as::<_, AddonVersion>(&format!(
        "{SELECT} WHERE v.environment_id = $1 AND v.addon_id = $2 AND v.status = 'DRAFT'"
    ))
    .bind(env.0)
    .bind(addon_id)
    .fetch_optional(conn)
    .await?)
}

/// Locks the add-on row so that changes to one add-on's versions happen one at a time.
async fn lock_addon(conn: &mut PgConnection, env: EnvironmentId, addon_id: &str) -> Result<()> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT id FROM addons WHERE environment_id = $1 AND id = $2 FOR UPDATE")
            .bind(env.0)
            .bind(addon_id)
            .fetch_optional(&mut *conn)
            .await?;
    found.map(|_| ()).ok_or_else(|| not_found(addon_id))
}

/// A draft cannot change while a publish of it is in flight.
async fn refuse_while_publishing(conn: &mut PgConnection, env: EnvironmentId, addon_id: &str) -> Result<()> {
    let busy: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM tasks WHERE environment_id = $1 AND addon_id = $2
            AND task_type = 'PUBLISH_ADDON' AND status IN ('PENDING', 'IN_PROGRESS'))",
    )
    .bind(env.0)
    .bind(addon_id)
    .fetch_one(&mut *conn)
    .await?;
    if busy {
        return Err(StoreError::rejected(
            ErrorCode::ObjectAlreadyBeingUsedByAnotherRequestError,
            format!("add-on `{addon_id}` is being published by another request"),
        ));
    }
    Ok(())
}

/// Every dependency must be another existing add-on.
async fn refuse_missing_dependencies(
    conn: &mut PgConnection,
    env: EnvironmentId,
    addon_id: &str,
    dependencies: &[String],
) -> Result<()> {
    if dependencies.iter().any(|d| d == addon_id) {
        return Err(StoreError::rejected(
            ErrorCode::BadUserInput,
            format!("add-on `{addon_id}` cannot depend on itself"),
        ));
    }
    let missing = missing(conn, env, dependencies).await?;
    if !missing.is_empty() {
        return Err(StoreError::rejected(
            ErrorCode::AddonsNotFound,
            format!("dependencies name unknown add-ons: {}", missing.join(", ")),
        ));
    }
    Ok(())
}

/// Which of `addon_ids` name no add-on, in the order given.
pub async fn missing(conn: &mut PgConnection, env: EnvironmentId, addon_ids: &[String]) -> Result<Vec<String>> {
    if addon_ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_scalar(
        "SELECT u.id FROM unnest($2::text[]) WITH ORDINALITY AS u (id, ord)
         WHERE NOT EXISTS (SELECT 1 FROM addons a WHERE a.environment_id = $1 AND a.id = u.id)
         ORDER BY u.ord",
    )
    .bind(env.0)
    .bind(addon_ids)
    .fetch_all(conn)
    .await?)
}

/// Changes the add-on's draft.
pub async fn update_draft(
    conn: &mut PgConnection,
    env: EnvironmentId,
    addon_id: &str,
    patch: AddonPatch,
) -> Result<AddonVersion> {
    lock_addon(conn, env, addon_id).await?;
    refuse_while_publishing(conn, env, addon_id).await?;
    let Some(draft) = draft(conn, env, addon_id).await? else {
        return Err(StoreError::rejected(
            ErrorCode::EditAllowedOnDraftPackageOnlyError,
            format!("add-on `{addon_id}` has no draft; create one before editing"),
        ));
    };
    let mut fields = AddonFields::from_version(&draft)?;
    patch.apply(&mut fields);
    refuse_missing_dependencies(conn, env, addon_id, &fields.dependencies).await?;
    sqlx::query(
        "UPDATE addon_versions SET display_name = $2, description = $3, billing_id = $4, pricing_type = $5,
            metadata = $6, max_quantity = $7, dependencies = $8, charges = $9, updated_at = now()
         WHERE id = $1",
    )
    .bind(draft.id)
    .bind(&fields.display_name)
    .bind(&fields.description)
    .bind(&fields.billing_id)
    .bind(&fields.pricing_type)
    .bind(&fields.metadata)
    .bind(fields.max_quantity)
    .bind(serde_json::json!(fields.dependencies))
    .bind(&fields.charges)
    .execute(&mut *conn)
    .await?;
    get_version(conn, env, draft.id).await
}

/// Starts a new draft as a copy of the add-on's newest version.
pub async fn create_draft(conn: &mut PgConnection, env: EnvironmentId, addon_id: &str) -> Result<AddonVersion> {
    lock_addon(conn, env, addon_id).await?;
    let Some(newest) = current(conn, env, addon_id).await? else {
        return Err(not_found(addon_id));
    };
    if newest.status == PlanVersionStatus::Draft {
        return Err(StoreError::rejected(
            ErrorCode::DraftAlreadyExists,
            format!("add-on `{addon_id}` already has a draft"),
        ));
    }
    let fields = AddonFields::from_version(&newest)?;
    let id = insert_version(conn, env, addon_id, newest.version_number + 1, PlanVersionStatus::Draft, &fields).await?;
    get_version(conn, env, id).await
}

/// Deletes the add-on's draft. An add-on that was never published keeps its only version.
pub async fn remove_draft(conn: &mut PgConnection, env: EnvironmentId, addon_id: &str) -> Result<()> {
    lock_addon(conn, env, addon_id).await?;
    refuse_while_publishing(conn, env, addon_id).await?;
    let Some(draft) = draft(conn, env, addon_id).await? else {
        return Err(StoreError::rejected(ErrorCode::BadUserInput, format!("add-on `{addon_id}` has no draft")));
    };
    if draft.version_number == 1 {
        return Err(StoreError::rejected(
            ErrorCode::BadUserInput,
            format!("add-on `{addon_id}` was never published; its draft is its only version"),
        ));
    }
    sqlx::query("DELETE FROM addon_versions WHERE id = $1").bind(draft.id).execute(&mut *conn).await?;
    Ok(())
}

/// Archives every published version: the add-on is given to no new subscription (its holders
/// keep it). 400 `DraftAddonCantBeArchived` for one never published; 400 `BadUserInput` when
/// it is archived already.
pub async fn archive(conn: &mut PgConnection, env: EnvironmentId, addon_id: &str) -> Result<AddonVersion> {
    lock_addon(conn, env, addon_id).await?;
    refuse_while_publishing(conn, env, addon_id).await?;
    let archived = sqlx::query(
        "UPDATE addon_versions SET status = 'ARCHIVED', updated_at = now()
         WHERE environment_id = $1 AND addon_id = $2 AND status = 'PUBLISHED'",
    )
    .bind(env.0)
    .bind(addon_id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if archived == 0 {
        let has_archived: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM addon_versions WHERE environment_id = $1 AND addon_id = $2 AND status = 'ARCHIVED')",
        )
        .bind(env.0)
        .bind(addon_id)
        .fetch_one(&mut *conn)
        .await?;
        return Err(if has_archived {
            StoreError::rejected(ErrorCode::BadUserInput, format!("add-on `{addon_id}` is archived already"))
        } else {
            StoreError::rejected(
                ErrorCode::DraftAddonCantBeArchived,
                format!("add-on `{addon_id}` has never been published; a draft cannot be archived"),
            )
        });
    }
    Ok(sqlx::query_as::<_, AddonVersion>(&format!(
        "{SELECT} WHERE v.environment_id = $1 AND v.addon_id = $2 AND v.status <> 'DRAFT'
         ORDER BY v.version_number DESC LIMIT 1"
    ))
    .bind(env.0)
    .bind(addon_id)
    .fetch_one(&mut *conn)
    .await?)
}

#[derive(Debug, Default, Clone)]
pub struct AddonFilter {
    pub product_id: Option<String>,
    pub statuses: Vec<String>,
    pub created: crate::CreatedRange,
    pub after: Option<i64>,
    pub limit: i64,
}

/// One row per add-on: the version `current` would answer.
pub async fn list(pool: &PgPool, env: EnvironmentId, filter: &AddonFilter) -> Result<Page<AddonVersion>> {
    let sql = format!(
        "{SELECT}
         WHERE v.environment_id = $1
           AND v.version_number = (SELECT max(m.version_number) FROM addon_versions m
                                   WHERE m.environment_id = v.environment_id AND m.addon_id = v.addon_id)
           AND ($2::text IS NULL OR a.product_id = $2)
           AND (cardinality($3::text[]) = 0 OR v.status = ANY($3))
           AND ($4::bigint IS NULL OR a.seq > $4)
           {created}
         ORDER BY a.seq LIMIT $5",
        created = crate::created_range_sql("a.created_at", 6)
    );
    let rows = sqlx::query_as::<_, AddonVersion>(&sql);
    let rows = filter
        .created
        .bind(
            rows.bind(env.0).bind(&filter.product_id).bind(&filter.statuses).bind(filter.after).bind(filter.limit + 1),
        )
        .fetch_all(pool)
        .await?;
    Ok(page(rows, filter.limit, |v| v.addon_seq))
}

/// A publish of an add-on's draft to accept: the task to insert, pinned to the add-on's
/// current draft, which the accepting statement finds itself.
#[derive(Debug, Clone)]
pub struct NewPublish<'a> {
    pub id: TaskId,
    pub environment: EnvironmentId,
    pub addon_id: &'a str,
    pub spec: TaskSpec,
    pub idempotency_key: Option<String>,
    pub max_attempts: i32,
    /// The `accepted` event's message (`{version}` becomes the draft's number) and actor.
    pub message: &'a str,
    pub actor: Option<&'a str>,
    pub data: Value,
    /// Which migration policy the task pins (the add-on's, else the environment's default).
    pub policy: PolicyPin,
}

/// The index that lets one task at a time hold an add-on.
const HOLDER_PER_ADDON: &str = "tasks_one_holder_per_addon";

/// Accepts a publish of the add-on's draft in one statement, as `tasks::accept_publish` does
/// for a plan: the task (holding the add-on), its outbox row and its `accepted` event. Answers
/// the draft's version number, or None (and writes nothing) when there is no draft; a second
/// publish while one holds the add-on is refused with
/// `ObjectAlreadyBeingUsedByAnotherRequestError`.
pub async fn accept_publish(conn: &mut PgConnection, new: &NewPublish<'_>) -> Result<Option<i32>> {
    sqlx::query_scalar(&format!(
        "WITH draft AS (
            SELECT id, version_number FROM addon_versions
            WHERE environment_id = $2 AND addon_id = $4 AND status = 'DRAFT'
        ), {}, task AS (
            INSERT INTO tasks (id, environment_id, task_type, status, addon_id, payload, target_version_id,
                target_version_number, idempotency_key, max_attempts, total, holds_plan,
                policy, approval_state, approval_requested_by)
            SELECT $1, $2, $3, 'PENDING', $4, $5, id, version_number, $6, $7, 0, $11,
                pinned.policy, {}, $9
            FROM draft, pinned
            RETURNING id, environment_id, target_version_number
        ), {JOB_OF_EACH_TASK}, event AS (
            INSERT INTO task_events (task_id, environment_id, kind, message, actor, data)
            SELECT id, environment_id, 'accepted', replace($8, '{{version}}', target_version_number::text), $9,
                $10::jsonb || jsonb_build_object('versionNumber', target_version_number, 'addonId', $4::text)
            FROM task
        )
        SELECT target_version_number FROM task",
        policies::pinned_cte_of("effective_addon_migration_policy", "$2", "$4", "$12", "$13"),
        policies::APPROVAL_STATE
    ))
    .bind(new.id.0)
    .bind(new.environment.0)
    .bind(new.spec.task_type().as_str())
    .bind(new.addon_id)
    .bind(new.spec.to_payload())
    .bind(&new.idempotency_key)
    .bind(new.max_attempts)
    .bind(new.message)
    .bind(new.actor)
    .bind(&new.data)
    .bind(new.spec.holds_plan())
    .bind(new.policy.mode())
    .bind(new.policy.given())
    .fetch_optional(conn)
    .await
    .map_err(|e| {
        if is_unique_violation(&e, HOLDER_PER_ADDON) {
            StoreError::rejected(
                ErrorCode::ObjectAlreadyBeingUsedByAnotherRequestError,
                format!("add-on `{}` is already being published by another request; retry when it ends", new.addon_id),
            )
        } else if is_unique_violation(&e, "tasks_idempotency") {
            StoreError::rejected(
                ErrorCode::ObjectAlreadyBeingUsedByAnotherRequestError,
                "a request with this Idempotency-Key is in progress",
            )
        } else {
            e.into()
        }
    })
}

/// Why an add-on has nothing to publish: 400 `PackageAlreadyPublished` when it exists, 404
/// `AddonNotFound` when it does not.
pub async fn no_draft(conn: &mut PgConnection, env: EnvironmentId, addon_id: &str) -> Result<StoreError> {
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM addons WHERE environment_id = $1 AND id = $2)")
        .bind(env.0)
        .bind(addon_id)
        .fetch_one(conn)
        .await?;
    Ok(if exists {
        StoreError::rejected(ErrorCode::PackageAlreadyPublished, format!("add-on `{addon_id}` has no draft to publish"))
    } else {
        not_found(addon_id)
    })
}

/// Publishes a draft inside the caller's transaction. False when it is no longer a draft.
pub async fn publish_version(conn: &mut PgConnection, version_id: Uuid, task: TaskId) -> Result<bool> {
    Ok(sqlx::query(
        "UPDATE addon_versions SET status = 'PUBLISHED', published_at = now(), published_by_task = $2, updated_at = now()
         WHERE id = $1 AND status = 'DRAFT'",
    )
    .bind(version_id)
    .bind(task.0)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// The holders an add-on publish moves, as a SELECT to wrap in a CTE: every live subscription
/// holding the add-on on a version older than the target, with why the task's migration policy
/// leaves it alone (`exclusion`, NULL for those that move). Binds $1 environment, $2 add-on
/// id, $3 target version number, $4 live statuses, $5 the pinned policy (nullable), $6 when it
/// is read (the task's acceptance; now for a preview).
const HOLDERS: &str =
    "SELECT s.row_id, s.id, s.customer_id, s.status, s.billing_period, v.version_number AS from_version,
            CASE WHEN $5::jsonb IS NULL THEN NULL
                 ELSE policy_exclusion($5::jsonb, $6::timestamptz, s.status, s.customer_id, s.metadata,
                                       s.start_date, s.billing_period) END AS exclusion
        FROM subscription_addons sa
        JOIN subscriptions s ON s.environment_id = sa.environment_id AND s.id = sa.subscription_id
        JOIN addon_versions v ON v.id = sa.addon_version_id
        WHERE sa.environment_id = $1 AND sa.addon_id = $2 AND v.version_number < $3 AND s.status = ANY($4)";

fn live_statuses() -> Vec<&'static str> {
    domain::SubscriptionStatus::LIVE.iter().map(|s| s.as_str()).collect()
}

/// The holders an add-on publish moves, cut into batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddonMigrationPlan {
    pub batches: i64,
    pub total: i64,
    pub affected_customers: i64,
}

/// Plans the moves of an add-on publish: its holders cut into batches of at most `batch_size`
/// (ranges `[lo, hi)` of `subscriptions.row_id`, like a plan's), in one statement.
pub async fn plan_migration(
    conn: &mut PgConnection,
    task: &Task,
    addon_id: &str,
    target_version_number: i32,
    batch_size: i64,
) -> Result<AddonMigrationPlan> {
    // what the task's policy leaves alone, counted on the task by reason
    if task.policy.is_some() {
        sqlx::query(&policies::record_exclusions_sql(HOLDERS, "$7"))
            .bind(task.environment_id)
            .bind(addon_id)
            .bind(target_version_number)
            .bind(live_statuses())
            .bind(&task.policy)
            .bind(task.created_at)
            .bind(task.id)
            .execute(&mut *conn)
            .await?;
    }
    let sql = format!(
        "WITH movers AS NOT MATERIALIZED (SELECT * FROM ({HOLDERS}) h WHERE exclusion IS NULL), planned AS (
            INSERT INTO task_batches (task_id, seq, lo, hi, expected, status)
            SELECT $7, bucket, min(row_id), max(row_id) + 1, count(*), 'PENDING'
            FROM (SELECT row_id, ((row_number() OVER (ORDER BY row_id)) - 1) / $8 AS bucket FROM movers) numbered
            GROUP BY bucket
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM planned), count(*), count(DISTINCT customer_id) FROM movers"
    );
    let (batches, total, affected): (i64, i64, i64) = sqlx::query_as(&sql)
        .bind(task.environment_id)
        .bind(addon_id)
        .bind(target_version_number)
        .bind(live_statuses())
        .bind(&task.policy)
        .bind(task.created_at)
        .bind(task.id)
        .bind(batch_size.max(1))
        .fetch_one(&mut *conn)
        .await?;
    Ok(AddonMigrationPlan { batches, total, affected_customers: affected })
}

/// Moves one batch of an add-on publish: the live holders in `[lo, hi)` still on an older
/// version go to the task's target, one history row each; holders that stopped being live
/// since the task was planned are recorded as failed items. Answers (moved, failed).
pub(crate) async fn move_batch(conn: &mut PgConnection, task: &Task, lo: i64, hi: i64) -> Result<(i64, i64)> {
    let Some(addon_id) = task.addon_id.clone() else {
        return Err(StoreError::rejected(ErrorCode::InvalidTaskSpec, "an add-on publish task names no add-on"));
    };
    let (Some(target), Some(target_number)) = (task.target_version_id, task.target_version_number) else {
        return Err(StoreError::rejected(ErrorCode::InternalError, "task has no target version"));
    };
    let moved = sqlx::query(&format!(
        "WITH candidates AS (
            SELECT sa.subscription_id, sa.addon_version_id AS from_version
            FROM subscription_addons sa
            JOIN subscriptions s ON s.environment_id = sa.environment_id AND s.id = sa.subscription_id
            JOIN addon_versions v ON v.id = sa.addon_version_id
            WHERE sa.environment_id = $1 AND sa.addon_id = $2 AND s.row_id >= $3 AND s.row_id < $4
              AND v.version_number < $5 AND s.status = ANY($6) AND {}
            ORDER BY sa.subscription_id
            FOR UPDATE OF sa, s
        ), moved AS (
            UPDATE subscription_addons sa SET addon_version_id = $7, updated_at = now()
            FROM candidates c
            WHERE sa.environment_id = $1 AND sa.subscription_id = c.subscription_id AND sa.addon_id = $2
            RETURNING sa.subscription_id, c.from_version
        )
        INSERT INTO subscription_addon_history
            (environment_id, task_id, subscription_id, addon_id, from_version_id, to_version_id)
        SELECT $1, $8, subscription_id, $2, from_version, $7 FROM moved
        ON CONFLICT (task_id, subscription_id) DO NOTHING",
        policies::not_excluded("$9", "$10")
    ))
    .bind(task.environment_id)
    .bind(&addon_id)
    .bind(lo)
    .bind(hi)
    .bind(target_number)
    .bind(live_statuses())
    .bind(target)
    .bind(task.id)
    .bind(&task.policy)
    .bind(task.created_at)
    .execute(&mut *conn)
    .await?
    .rows_affected() as i64;

    let planned_at = task.started_at.unwrap_or(task.created_at);
    let failed = sqlx::query(&format!(
        "INSERT INTO task_item_failures (task_id, subscription_id, code, message)
         SELECT $7, s.id, $8, 'subscription is ' || s.status || ' and its add-on was not moved'
         FROM subscription_addons sa
         JOIN subscriptions s ON s.environment_id = sa.environment_id AND s.id = sa.subscription_id
         JOIN addon_versions v ON v.id = sa.addon_version_id
         WHERE sa.environment_id = $1 AND sa.addon_id = $2 AND s.row_id >= $3 AND s.row_id < $4
           AND v.version_number < $5 AND NOT (s.status = ANY($6)) AND s.updated_at >= $9 AND {}
         ON CONFLICT (task_id, subscription_id) DO NOTHING",
        policies::not_excluded("$10", "$11")
    ))
    .bind(task.environment_id)
    .bind(&addon_id)
    .bind(lo)
    .bind(hi)
    .bind(target_number)
    .bind(live_statuses())
    .bind(task.id)
    .bind(ErrorCode::SubscriptionAlreadyCanceledOrExpired.as_str())
    .bind(planned_at)
    .bind(&task.policy)
    .bind(task.created_at)
    .execute(&mut *conn)
    .await?
    .rows_affected() as i64;
    Ok((moved, failed))
}

/// An add-on a subscription is to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    pub addon_id: String,
    pub quantity: i32,
}

/// The version a new holder of `h` gets: the add-on's newest published one. Refuses an
/// unknown add-on (404 `AddonNotFound`), one never published (400 `UnPublishedPackage`), an
/// archived one (400 `EntityIsArchivedError`) and a quantity above that version's
/// `maxQuantity` (400 `AddonQuantityExceedsLimitError`).
pub async fn holding_version(conn: &mut PgConnection, env: EnvironmentId, h: &Holding) -> Result<Uuid> {
    let latest: Option<(Uuid, Option<i32>)> = sqlx::query_as(
        "SELECT id, max_quantity FROM addon_versions
         WHERE environment_id = $1 AND addon_id = $2 AND status = 'PUBLISHED'
         ORDER BY version_number DESC LIMIT 1",
    )
    .bind(env.0)
    .bind(&h.addon_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((version, max)) = latest else {
        let archived: Option<bool> = sqlx::query_scalar(
            "SELECT bool_or(status = 'ARCHIVED') FROM addon_versions WHERE environment_id = $1 AND addon_id = $2",
        )
        .bind(env.0)
        .bind(&h.addon_id)
        .fetch_one(&mut *conn)
        .await?;
        return Err(match archived {
            None => not_found(&h.addon_id),
            Some(true) => {
                StoreError::rejected(ErrorCode::EntityIsArchivedError, format!("add-on `{}` is archived", h.addon_id))
            }
            Some(false) => StoreError::rejected(
                ErrorCode::UnPublishedPackage,
                format!("add-on `{}` has no published version", h.addon_id),
            ),
        });
    };
    if let Some(max) = max.filter(|max| h.quantity > *max) {
        return Err(StoreError::rejected(
            ErrorCode::AddonQuantityExceedsLimitError,
            format!("add-on `{}` allows at most {max} per subscription, not {}", h.addon_id, h.quantity),
        ));
    }
    Ok(version)
}

/// Waits for the planning transactions of the tasks holding any of `addon_ids` to end, and
/// keeps them from starting until the caller's transaction ends (as `tasks::share_holders`
/// does for plans): a holder given now lands either before an add-on publish is planned (and
/// is moved by it) or on the version it published, never between the two.
pub async fn share_holders(conn: &mut PgConnection, env: EnvironmentId, addon_ids: &[String]) -> Result<()> {
    sqlx::query(
        "SELECT id FROM tasks WHERE environment_id = $1 AND addon_id = ANY($2) AND holds_plan
            AND status IN ('PENDING', 'IN_PROGRESS') ORDER BY id FOR SHARE",
    )
    .bind(env.0)
    .bind(addon_ids)
    .execute(conn)
    .await?;
    Ok(())
}

/// Gives a new subscription its add-ons, each on the add-on's newest published version, with
/// the refusals of `holding_version`.
pub async fn attach(
    conn: &mut PgConnection,
    env: EnvironmentId,
    subscription_id: &str,
    holdings: &[Holding],
) -> Result<()> {
    let ids: Vec<String> = holdings.iter().map(|h| h.addon_id.clone()).collect();
    share_holders(conn, env, &ids).await?;
    for h in holdings {
        let version = holding_version(conn, env, h).await?;
        sqlx::query(
            "INSERT INTO subscription_addons (environment_id, subscription_id, addon_id, addon_version_id, quantity)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(env.0)
        .bind(subscription_id)
        .bind(&h.addon_id)
        .bind(version)
        .bind(h.quantity)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Gives imported subscriptions their add-ons in one statement, each on the add-on's newest
/// published version. Only subscriptions inserted by the caller's transaction get them (their
/// `created_at` is the transaction's `now()`), so a re-run of an import changes nothing; an
/// item whose add-on has no published version is left out. Answers how many were attached.
pub async fn attach_imported(conn: &mut PgConnection, env: EnvironmentId, items: &[(String, Holding)]) -> Result<u64> {
    if items.is_empty() {
        return Ok(0);
    }
    let subscriptions: Vec<&str> = items.iter().map(|(s, _)| s.as_str()).collect();
    let addons: Vec<&str> = items.iter().map(|(_, h)| h.addon_id.as_str()).collect();
    let quantities: Vec<i32> = items.iter().map(|(_, h)| h.quantity).collect();
    Ok(sqlx::query(
        "WITH input AS (
            SELECT * FROM unnest($2::text[], $3::text[], $4::int[]) AS u (subscription_id, addon_id, quantity)
        ), latest AS (
            SELECT DISTINCT ON (addon_id) addon_id, id FROM addon_versions
            WHERE environment_id = $1 AND status = 'PUBLISHED' AND addon_id IN (SELECT addon_id FROM input)
            ORDER BY addon_id, version_number DESC
        )
        INSERT INTO subscription_addons (environment_id, subscription_id, addon_id, addon_version_id, quantity)
        SELECT $1, i.subscription_id, i.addon_id, l.id, i.quantity
        FROM input i JOIN latest l ON l.addon_id = i.addon_id
        JOIN subscriptions s ON s.environment_id = $1 AND s.id = i.subscription_id AND s.created_at >= now()
        ON CONFLICT (environment_id, subscription_id, addon_id) DO NOTHING",
    )
    .bind(env.0)
    .bind(&subscriptions)
    .bind(&addons)
    .bind(&quantities)
    .execute(conn)
    .await?
    .rows_affected())
}

/// Whether the add-on task `task` moved anyone (has history rows): what a rollback needs.
pub(crate) async fn moved_any(conn: &mut PgConnection, task: Uuid) -> Result<bool> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM subscription_addon_history WHERE task_id = $1)")
        .bind(task)
        .fetch_one(conn)
        .await?)
}

/// Makes a just-accepted rollback of an add-on task hold that add-on, in the accepting
/// transaction: refused with `ObjectAlreadyBeingUsedByAnotherRequestError` while another task
/// holds it (a publish of it in flight), which rolls the whole acceptance back.
pub(crate) async fn hold_for_rollback(conn: &mut PgConnection, rollback: TaskId, addon_id: &str) -> Result<()> {
    sqlx::query("UPDATE tasks SET addon_id = $2, holds_plan = true WHERE id = $1")
        .bind(rollback.0)
        .bind(addon_id)
        .execute(conn)
        .await
        .map_err(|e| {
            if is_unique_violation(&e, HOLDER_PER_ADDON) {
                StoreError::rejected(
                    ErrorCode::ObjectAlreadyBeingUsedByAnotherRequestError,
                    format!("add-on `{addon_id}` is already being published by another request; retry when it ends"),
                )
            } else {
                e.into()
            }
        })?;
    Ok(())
}

/// Cuts the history rows of the add-on task `original` into the batches of the rollback
/// `rollback` (ranges `[lo, hi)` of the rows' ids), as `rollbacks::plan` does for a plan's.
/// Answers (batches, total, affected customers).
pub(crate) async fn plan_rollback(
    conn: &mut PgConnection,
    original: Uuid,
    rollback: Uuid,
    batch_size: i64,
) -> Result<(i64, i64, i64)> {
    Ok(sqlx::query_as(
        "WITH planned AS (
            INSERT INTO task_batches (task_id, seq, lo, hi, expected, status)
            SELECT $2, bucket, min(id), max(id) + 1, count(*), 'PENDING'
            FROM (SELECT id, ((row_number() OVER (ORDER BY id)) - 1) / $3 AS bucket
                  FROM subscription_addon_history WHERE task_id = $1) numbered
            GROUP BY bucket
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM planned), count(*), count(DISTINCT s.customer_id)
        FROM subscription_addon_history h
        LEFT JOIN subscriptions s ON s.environment_id = h.environment_id AND s.id = h.subscription_id
        WHERE h.task_id = $1",
    )
    .bind(original)
    .bind(rollback)
    .bind(batch_size.max(1))
    .fetch_one(conn)
    .await?)
}

/// Moves back one batch of an add-on task's moves (its history rows `[lo, hi)`): each holder
/// still on the version the task gave it goes back to the one it had, with a history row under
/// the rollback; one moved meanwhile is left alone. Answers how many moved back.
pub(crate) async fn move_back(
    conn: &mut PgConnection,
    rollback: &Task,
    original: Uuid,
    lo: i64,
    hi: i64,
) -> Result<i64> {
    Ok(sqlx::query(
        "WITH candidates AS (
            SELECT h.subscription_id, h.addon_id, h.from_version_id, h.to_version_id
            FROM subscription_addon_history h
            JOIN subscription_addons sa ON sa.environment_id = h.environment_id
                AND sa.subscription_id = h.subscription_id AND sa.addon_id = h.addon_id
            WHERE h.task_id = $2 AND h.environment_id = $1 AND h.id >= $3 AND h.id < $4
              AND sa.addon_version_id = h.to_version_id
            ORDER BY h.subscription_id
            FOR UPDATE OF sa
        ), moved AS (
            UPDATE subscription_addons sa SET addon_version_id = c.from_version_id, updated_at = now()
            FROM candidates c
            WHERE sa.environment_id = $1 AND sa.subscription_id = c.subscription_id AND sa.addon_id = c.addon_id
            RETURNING sa.subscription_id, sa.addon_id, c.to_version_id AS was_on, c.from_version_id AS now_on
        )
        INSERT INTO subscription_addon_history
            (environment_id, task_id, subscription_id, addon_id, from_version_id, to_version_id)
        SELECT $1, $5, subscription_id, addon_id, was_on, now_on FROM moved
        ON CONFLICT (task_id, subscription_id) DO NOTHING",
    )
    .bind(rollback.environment_id)
    .bind(original)
    .bind(lo)
    .bind(hi)
    .bind(rollback.id)
    .execute(conn)
    .await?
    .rows_affected() as i64)
}

/// What an add-on publish with ALL_CUSTOMERS would move, computed without moving anyone: the
/// holders `plan_migration` would cut into batches (the same `HOLDERS` selection), counted.
#[derive(Debug, Clone, Default)]
pub struct AddonPreview {
    pub total: i64,
    pub affected_customers: i64,
    /// (status, count), by status.
    pub by_status: Vec<(String, i64)>,
    /// (billing period, count), by period.
    pub by_billing_period: Vec<(String, i64)>,
    /// (version moved from, count), in version order.
    pub by_version: Vec<(i32, i64)>,
    /// Holders the migration policy would leave alone, and (reason, count) by reason.
    pub excluded: i64,
    pub excluded_by_reason: Vec<(String, i64)>,
    /// A page of the holders that would move, in `row_id` order; `next` is the cursor.
    pub ids: Page<String>,
}

/// Counts what publishing version `target_version_number` of the add-on would move under
/// `policy` (the one a task accepted now would pin, read at the database's now), whom the
/// policy would leave alone, by reason, and one page of the holders after `after` (a
/// `row_id`). Run in one REPEATABLE READ transaction for a consistent answer.
pub async fn preview(
    conn: &mut PgConnection,
    env: EnvironmentId,
    addon_id: &str,
    target_version_number: i32,
    policy: Option<&domain::MigrationPolicy>,
    after: Option<i64>,
    limit: i64,
) -> Result<AddonPreview> {
    let policy = policy.filter(|p| !p.is_empty()).map(domain::MigrationPolicy::to_json);
    // the policy is read at the database's now, as a task accepted now would read it
    let now = crate::db_now(conn).await?;
    let all = format!("WITH holders AS ({HOLDERS}), movers AS (SELECT * FROM holders WHERE exclusion IS NULL)");
    let grouped = |select: &str| format!("{all} {select}");
    macro_rules! scoped {
        ($query:expr) => {
            $query.bind(env.0).bind(addon_id).bind(target_version_number).bind(live_statuses()).bind(&policy).bind(now)
        };
    }
    let (total, affected): (i64, i64) =
        scoped!(sqlx::query_as(&grouped("SELECT count(*), count(DISTINCT customer_id) FROM movers")))
            .fetch_one(&mut *conn)
            .await?;
    let by_status: Vec<(String, i64)> =
        scoped!(sqlx::query_as(&grouped("SELECT status, count(*) FROM movers GROUP BY status ORDER BY status")))
            .fetch_all(&mut *conn)
            .await?;
    let by_billing_period: Vec<(String, i64)> = scoped!(sqlx::query_as(&grouped(
        "SELECT billing_period, count(*) FROM movers GROUP BY billing_period ORDER BY billing_period",
    )))
    .fetch_all(&mut *conn)
    .await?;
    let by_version: Vec<(i32, i64)> = scoped!(sqlx::query_as(&grouped(
        "SELECT from_version, count(*) FROM movers GROUP BY from_version ORDER BY from_version",
    )))
    .fetch_all(&mut *conn)
    .await?;
    let excluded_by_reason: Vec<(String, i64)> = scoped!(sqlx::query_as(&grouped(
        "SELECT exclusion, count(*) FROM holders WHERE exclusion IS NOT NULL GROUP BY exclusion ORDER BY exclusion",
    )))
    .fetch_all(&mut *conn)
    .await?;
    let rows: Vec<(i64, String)> = scoped!(sqlx::query_as(&grouped(
        "SELECT row_id, id FROM movers WHERE ($7::bigint IS NULL OR row_id > $7) ORDER BY row_id LIMIT $8",
    )))
    .bind(after)
    .bind(limit + 1)
    .fetch_all(&mut *conn)
    .await?;
    let ids = page(rows, limit, |r| r.0);
    Ok(AddonPreview {
        total,
        affected_customers: affected,
        by_status,
        by_billing_period,
        by_version,
        excluded: excluded_by_reason.iter().map(|(_, n)| n).sum(),
        excluded_by_reason,
        ids: Page { items: ids.items.into_iter().map(|(_, id)| id).collect(), next: ids.next },
    })
}

/// The draft a publish of the add-on would publish: 404 `AddonNotFound` without the add-on,
/// 400 `PackageAlreadyPublished` without a draft; and 400
/// `ObjectAlreadyBeingUsedByAnotherRequestError` while a task holds the add-on, as the publish
/// itself would answer.
pub async fn draft_to_publish(conn: &mut PgConnection, env: EnvironmentId, addon_id: &str) -> Result<(Uuid, i32)> {
    let draft: Option<(Uuid, i32)> = sqlx::query_as(
        "SELECT id, version_number FROM addon_versions WHERE environment_id = $1 AND addon_id = $2 AND status = 'DRAFT'",
    )
    .bind(env.0)
    .bind(addon_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(draft) = draft else {
        return Err(no_draft(conn, env, addon_id).await?);
    };
    let held: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM tasks WHERE environment_id = $1 AND addon_id = $2 AND holds_plan
            AND status IN ('PENDING', 'IN_PROGRESS'))",
    )
    .bind(env.0)
    .bind(addon_id)
    .fetch_one(&mut *conn)
    .await?;
    if held {
        return Err(StoreError::rejected(
            ErrorCode::ObjectAlreadyBeingUsedByAnotherRequestError,
            format!("add-on `{addon_id}` is already being published by another request; retry when it ends"),
        ));
    }
    Ok(draft)
}
