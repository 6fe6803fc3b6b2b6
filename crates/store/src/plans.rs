//! Plans and their versions. A plan is an identity; everything a caller sees of it lives on a
//! version. At most one version is a DRAFT (a partial unique index says so); the newest
//! PUBLISHED version is the one new subscriptions get.

use crate::work::{Announcement, Work};
use crate::{is_unique_violation, page, Page, Result, StoreError};
use chrono::{DateTime, Utc};
use domain::{EnvironmentId, ErrorCode, PlanVersionStatus, TaskId};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlanVersion {
    pub id: Uuid,
    pub plan_id: String,
    pub product_id: Option<String>,
    pub version_number: i32,
    #[sqlx(try_from = "String")]
    pub status: PlanVersionStatus,
    pub is_latest: bool,
    pub display_name: String,
    pub description: Option<String>,
    pub billing_id: Option<String>,
    pub parent_plan_id: Option<String>,
    pub pricing_type: Option<String>,
    pub metadata: Value,
    pub compatible_addon_ids: Option<Value>,
    pub default_trial_config: Option<Value>,
    pub charges: Option<Value>,
    pub entitlements: Value,
    pub label: Option<String>,
    pub currency: Option<String>,
    pub minimum: Option<String>,
    pub price_ids: Value,
    pub eligible_customer_ids: Value,
    pub version_change_behaviour: Option<String>,
    pub effective_from: Option<DateTime<Utc>>,
    pub published_at: Option<DateTime<Utc>>,
    pub plan_seq: i64,
    pub plan_created_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl PlanVersion {
    pub fn status(&self) -> PlanVersionStatus {
        self.status
    }
}

/// Selects versions joined with their plan, with `is_latest` derived, never stored.
const SELECT: &str = "SELECT v.id, v.plan_id, p.product_id, v.version_number, v.status,
        (v.status = 'PUBLISHED' AND v.version_number = (
            SELECT max(l.version_number) FROM plan_versions l
            WHERE l.environment_id = v.environment_id AND l.plan_id = v.plan_id AND l.status = 'PUBLISHED'
        )) AS is_latest,
        v.display_name, v.description, v.billing_id, v.parent_plan_id, v.pricing_type, v.metadata,
        v.compatible_addon_ids, v.default_trial_config, v.charges, v.entitlements, v.label, v.currency,
        v.minimum, v.price_ids, v.eligible_customer_ids, v.version_change_behaviour, v.effective_from,
        v.published_at, p.seq AS plan_seq, p.created_at AS plan_created_at, v.created_at, v.updated_at
    FROM plan_versions v JOIN plans p ON p.environment_id = v.environment_id AND p.id = v.plan_id";

/// Everything a version holds that a caller may set.
#[derive(Debug, Clone, Default)]
pub struct VersionFields {
    pub display_name: String,
    pub description: Option<String>,
    pub billing_id: Option<String>,
    pub parent_plan_id: Option<String>,
    pub pricing_type: Option<String>,
    pub metadata: Value,
    pub compatible_addon_ids: Option<Value>,
    pub default_trial_config: Option<Value>,
    pub charges: Option<Value>,
    pub label: Option<String>,
    pub currency: Option<String>,
    pub minimum: Option<String>,
    pub price_ids: Value,
    pub eligible_customer_ids: Value,
    pub version_change_behaviour: Option<String>,
    pub effective_from: Option<DateTime<Utc>>,
}

impl VersionFields {
    fn from_version(v: &PlanVersion) -> Self {
        Self {
            display_name: v.display_name.clone(),
            description: v.description.clone(),
            billing_id: v.billing_id.clone(),
            parent_plan_id: v.parent_plan_id.clone(),
            pricing_type: v.pricing_type.clone(),
            metadata: v.metadata.clone(),
            compatible_addon_ids: v.compatible_addon_ids.clone(),
            default_trial_config: v.default_trial_config.clone(),
            charges: v.charges.clone(),
            label: v.label.clone(),
            currency: v.currency.clone(),
            minimum: v.minimum.clone(),
            price_ids: v.price_ids.clone(),
            eligible_customer_ids: v.eligible_customer_ids.clone(),
            version_change_behaviour: v.version_change_behaviour.clone(),
            effective_from: v.effective_from,
        }
    }
}

/// A change to a draft: `None` leaves a field as it is; `Some(None)` clears a nullable one.
#[derive(Debug, Clone, Default)]
pub struct VersionPatch {
    pub display_name: Option<String>,
    pub description: Option<Option<String>>,
    pub billing_id: Option<Option<String>>,
    pub parent_plan_id: Option<Option<String>>,
    pub metadata: Option<Value>,
    pub compatible_addon_ids: Option<Option<Value>>,
    pub default_trial_config: Option<Option<Value>>,
    pub charges: Option<Value>,
    pub pricing_type: Option<String>,
}

impl VersionPatch {
    fn apply(self, fields: &mut VersionFields) {
        if let Some(v) = self.display_name {
            fields.display_name = v;
        }
        if let Some(v) = self.description {
            fields.description = v;
        }
        if let Some(v) = self.billing_id {
            fields.billing_id = v;
        }
        if let Some(v) = self.parent_plan_id {
            fields.parent_plan_id = v;
        }
        if let Some(v) = self.metadata {
            fields.metadata = v;
        }
        if let Some(v) = self.compatible_addon_ids {
            fields.compatible_addon_ids = v;
        }
        if let Some(v) = self.default_trial_config {
            fields.default_trial_config = v;
        }
        if let Some(v) = self.charges {
            fields.charges = Some(v);
        }
        if let Some(v) = self.pricing_type {
            fields.pricing_type = Some(v);
        }
    }
}

fn not_found(plan_id: &str) -> StoreError {
    StoreError::rejected(ErrorCode::PlanNotFound, format!("plan `{plan_id}` not found"))
}

/// Creates a plan with its first version, a DRAFT unless `status` says PUBLISHED.
pub async fn create(
    conn: &mut Work,
    env: EnvironmentId,
    plan_id: &str,
    product_id: Option<&str>,
    status: PlanVersionStatus,
    fields: &VersionFields,
) -> Result<PlanVersion> {
    if let Some(product_id) = product_id {
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM products WHERE environment_id = $1 AND id = $2)")
                .bind(env.0)
                .bind(product_id)
                .fetch_one(&mut **conn)
                .await?;
        if !exists {
            return Err(StoreError::rejected(
                ErrorCode::ProductNotFoundError,
                format!("product `{product_id}` not found"),
            ));
        }
    }
    if status == PlanVersionStatus::Archived {
        return Err(StoreError::rejected(ErrorCode::BadUserInput, "a plan cannot be created archived"));
    }
    sqlx::query("INSERT INTO plans (environment_id, id, product_id) VALUES ($1, $2, $3)")
        .bind(env.0)
        .bind(plan_id)
        .bind(product_id)
        .execute(&mut **conn)
        .await
        .map_err(|e| {
            if is_unique_violation(&e, "plans_pkey") {
                StoreError::rejected(ErrorCode::BadUserInput, format!("a plan with id `{plan_id}` already exists"))
            } else {
                e.into()
            }
        })?;
    let id = insert_version(conn, env, plan_id, 1, status, fields).await?;
    get_version(conn, env, id).await
}

async fn insert_version(
    conn: &mut Work,
    env: EnvironmentId,
    plan_id: &str,
    version_number: i32,
    status: PlanVersionStatus,
    f: &VersionFields,
) -> Result<Uuid> {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO plan_versions (id, environment_id, plan_id, version_number, status, display_name,
            description, billing_id, parent_plan_id, pricing_type, metadata, compatible_addon_ids,
            default_trial_config, charges, label, currency, minimum, price_ids, eligible_customer_ids,
            version_change_behaviour, effective_from, published_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21,
            CASE WHEN $5 = 'PUBLISHED' THEN now() END)",
    )
    .bind(id)
    .bind(env.0)
    .bind(plan_id)
    .bind(version_number)
    .bind(status.as_str())
    .bind(&f.display_name)
    .bind(&f.description)
    .bind(&f.billing_id)
    .bind(&f.parent_plan_id)
    .bind(&f.pricing_type)
    .bind(&f.metadata)
    .bind(&f.compatible_addon_ids)
    .bind(&f.default_trial_config)
    .bind(&f.charges)
    .bind(&f.label)
    .bind(&f.currency)
    .bind(&f.minimum)
    .bind(&f.price_ids)
    .bind(&f.eligible_customer_ids)
    .bind(&f.version_change_behaviour)
    .bind(f.effective_from)
    .execute(&mut **conn)
    .await
    .map_err(|e| {
        if is_unique_violation(&e, "plan_versions_one_draft") {
            StoreError::rejected(ErrorCode::DraftAlreadyExists, format!("plan `{plan_id}` already has a draft"))
        } else {
            e.into()
        }
    })?;
    if status == PlanVersionStatus::Published {
        conn.announce(Announcement::VersionPublished { environment: env, version: id });
    }
    Ok(id)
}

pub async fn get_version(conn: &mut PgConnection, env: EnvironmentId, version_id: Uuid) -> Result<PlanVersion> {
    Ok(sqlx::query_as::<_, PlanVersion>(&format!("{SELECT} WHERE v.environment_id = $1 AND v.id = $2"))
        .bind(env.0)
        .bind(version_id)
        .fetch_one(conn)
        .await?)
}

/// The version a caller sees for the plan: its draft if it has one, else its newest version.
pub async fn current(conn: &mut PgConnection, env: EnvironmentId, plan_id: &str) -> Result<Option<PlanVersion>> {
    Ok(sqlx::query_as::<_, PlanVersion>(&format!(
        "{SELECT} WHERE v.environment_id = $1 AND v.plan_id = $2 ORDER BY v.version_number DESC LIMIT 1"
    ))
    .bind(env.0)
    .bind(plan_id)
    .fetch_optional(conn)
    .await?)
}

pub async fn draft(conn: &mut PgConnection, env: EnvironmentId, plan_id: &str) -> Result<Option<PlanVersion>> {
    Ok(sqlx::query_as::<_, PlanVersion>(&format!(
        "{SELECT} WHERE v.environment_id = $1 AND v.plan_id = $2 AND v.status = 'DRAFT'"
    ))
    .bind(env.0)
    .bind(plan_id)
    .fetch_optional(conn)
    .await?)
}

pub async fn latest_published(
    conn: &mut PgConnection,
    env: EnvironmentId,
    plan_id: &str,
) -> Result<Option<PlanVersion>> {
    Ok(sqlx::query_as::<_, PlanVersion>(&format!(
        "{SELECT} WHERE v.environment_id = $1 AND v.plan_id = $2 AND v.status = 'PUBLISHED'
         ORDER BY v.version_number DESC LIMIT 1"
    ))
    .bind(env.0)
    .bind(plan_id)
    .fetch_optional(conn)
    .await?)
}

pub async fn versions(pool: &PgPool, env: EnvironmentId, plan_id: &str) -> Result<Vec<PlanVersion>> {
    Ok(sqlx::query_as::<_, PlanVersion>(&format!(
        "{SELECT} WHERE v.environment_id = $1 AND v.plan_id = $2 ORDER BY v.version_number"
    ))
    .bind(env.0)
    .bind(plan_id)
    .fetch_all(pool)
    .await?)
}

/// Refuses with 404 `PlanNotFound` when the environment has no plan `plan_id`.
pub async fn require(conn: &mut PgConnection, env: EnvironmentId, plan_id: &str) -> Result<()> {
    if plan_exists(conn, env, plan_id).await? {
        Ok(())
    } else {
        Err(not_found(plan_id))
    }
}

async fn plan_exists(conn: &mut PgConnection, env: EnvironmentId, plan_id: &str) -> Result<bool> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM plans WHERE environment_id = $1 AND id = $2)")
        .bind(env.0)
        .bind(plan_id)
        .fetch_one(conn)
        .await?)
}

/// Locks the plan row so that changes to one plan's versions happen one at a time.
pub(crate) async fn lock_plan(conn: &mut PgConnection, env: EnvironmentId, plan_id: &str) -> Result<()> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT id FROM plans WHERE environment_id = $1 AND id = $2 FOR UPDATE")
            .bind(env.0)
            .bind(plan_id)
            .fetch_optional(&mut *conn)
            .await?;
    found.map(|_| ()).ok_or_else(|| not_found(plan_id))
}

pub async fn refuse_while_publishing(conn: &mut PgConnection, env: EnvironmentId, plan_id: &str) -> Result<()> {
    let busy: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM tasks WHERE environment_id = $1 AND plan_id = $2
            AND (task_type = 'PUBLISH_PLAN' OR (task_type = 'STAGED_ROLLOUT' AND planned_at IS NULL))
            AND status IN ('PENDING', 'IN_PROGRESS'))",
    )
    .bind(env.0)
    .bind(plan_id)
    .fetch_one(&mut *conn)
    .await?;
    if busy {
        return Err(StoreError::rejected(
            ErrorCode::ObjectAlreadyBeingUsedByAnotherRequestError,
            format!("plan `{plan_id}` is being published by another request"),
        ));
    }
    Ok(())
}

/// Changes the plan's draft.
pub async fn update_draft(
    conn: &mut PgConnection,
    env: EnvironmentId,
    plan_id: &str,
    patch: VersionPatch,
) -> Result<PlanVersion> {
    lock_plan(conn, env, plan_id).await?;
    refuse_while_publishing(conn, env, plan_id).await?;
    let Some(draft) = draft(conn, env, plan_id).await? else {
        return Err(StoreError::rejected(
            ErrorCode::EditAllowedOnDraftPackageOnlyError,
            format!("plan `{plan_id}` has no draft; create one before editing"),
        ));
    };
    if let Some(Some(named)) = &patch.compatible_addon_ids {
        refuse_unknown_addons(conn, env, named).await?;
    }
    let mut fields = VersionFields::from_version(&draft);
    patch.apply(&mut fields);
    write_fields(conn, draft.id, &fields).await?;
    get_version(conn, env, draft.id).await
}

/// A plan's `compatibleAddonIds` name add-ons (`addons`): 404 `AddonsNotFound` naming those
/// that do not exist.
async fn refuse_unknown_addons(conn: &mut PgConnection, env: EnvironmentId, named: &Value) -> Result<()> {
    let ids: Vec<String> = serde_json::from_value(named.clone())
        .map_err(|_| StoreError::rejected(ErrorCode::BadUserInput, "compatibleAddonIds must be a list of ids"))?;
    let missing = crate::addons::missing(conn, env, &ids).await?;
    if missing.is_empty() {
        return Ok(());
    }
    Err(StoreError::rejected(
        ErrorCode::AddonsNotFound,
        format!("compatibleAddonIds name unknown add-ons: {}", missing.join(", ")),
    ))
}

/// Overwrites every caller-settable field of a version.
pub async fn write_fields(conn: &mut PgConnection, version_id: Uuid, f: &VersionFields) -> Result<()> {
    sqlx::query(
        "UPDATE plan_versions SET display_name = $2, description = $3, billing_id = $4, parent_plan_id = $5,
            pricing_type = $6, metadata = $7, compatible_addon_ids = $8, default_trial_config = $9, charges = $10,
            label = $11, currency = $12, minimum = $13, price_ids = $14, eligible_customer_ids = $15,
            version_change_behaviour = $16, effective_from = $17, updated_at = now()
         WHERE id = $1",
    )
    .bind(version_id)
    .bind(&f.display_name)
    .bind(&f.description)
    .bind(&f.billing_id)
    .bind(&f.parent_plan_id)
    .bind(&f.pricing_type)
    .bind(&f.metadata)
    .bind(&f.compatible_addon_ids)
    .bind(&f.default_trial_config)
    .bind(&f.charges)
    .bind(&f.label)
    .bind(&f.currency)
    .bind(&f.minimum)
    .bind(&f.price_ids)
    .bind(&f.eligible_customer_ids)
    .bind(&f.version_change_behaviour)
    .bind(f.effective_from)
    .execute(conn)
    .await?;
    Ok(())
}

/// Starts a new draft as a copy of the plan's newest version.
pub async fn create_draft(conn: &mut Work, env: EnvironmentId, plan_id: &str) -> Result<PlanVersion> {
    lock_plan(conn, env, plan_id).await?;
    let Some(newest) = current(conn, env, plan_id).await? else {
        return Err(not_found(plan_id));
    };
    if newest.status() == PlanVersionStatus::Draft {
        return Err(StoreError::rejected(
            ErrorCode::DraftAlreadyExists,
            format!("plan `{plan_id}` already has a draft"),
        ));
    }
    let fields = VersionFields::from_version(&newest);
    let id = insert_version(conn, env, plan_id, newest.version_number + 1, PlanVersionStatus::Draft, &fields).await?;
    get_version(conn, env, id).await
}

/// Like `create_draft`, with the caller's fields instead of a copy: the Sequence dialect's
/// "update a LIVE plan" makes version N+1 this way.
pub async fn create_version(
    conn: &mut Work,
    env: EnvironmentId,
    plan_id: &str,
    status: PlanVersionStatus,
    fields: &VersionFields,
) -> Result<PlanVersion> {
    lock_plan(conn, env, plan_id).await?;
    let newest: i32 = sqlx::query_scalar(
        "SELECT coalesce(max(version_number), 0) FROM plan_versions WHERE environment_id = $1 AND plan_id = $2",
    )
    .bind(env.0)
    .bind(plan_id)
    .fetch_one(&mut **conn)
    .await?;
    let id = insert_version(conn, env, plan_id, newest + 1, status, fields).await?;
    get_version(conn, env, id).await
}

/// Deletes the plan's draft. A plan that was never published keeps its only version.
pub async fn remove_draft(conn: &mut PgConnection, env: EnvironmentId, plan_id: &str) -> Result<()> {
    lock_plan(conn, env, plan_id).await?;
    refuse_while_publishing(conn, env, plan_id).await?;
    let Some(draft) = draft(conn, env, plan_id).await? else {
        return Err(StoreError::rejected(ErrorCode::BadUserInput, format!("plan `{plan_id}` has no draft")));
    };
    if draft.version_number == 1 {
        return Err(StoreError::rejected(
            ErrorCode::BadUserInput,
            format!("plan `{plan_id}` was never published; its draft is its only version"),
        ));
    }
    sqlx::query("DELETE FROM plan_versions WHERE id = $1").bind(draft.id).execute(&mut *conn).await?;
    Ok(())
}

/// Archives every published version: the plan takes no new subscriptions.
pub async fn archive(conn: &mut PgConnection, env: EnvironmentId, plan_id: &str) -> Result<PlanVersion> {
    lock_plan(conn, env, plan_id).await?;
    refuse_while_publishing(conn, env, plan_id).await?;
    let archived = sqlx::query(
        "UPDATE plan_versions SET status = 'ARCHIVED', updated_at = now()
         WHERE environment_id = $1 AND plan_id = $2 AND status = 'PUBLISHED'",
    )
    .bind(env.0)
    .bind(plan_id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if archived == 0 {
        let has_archived: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM plan_versions WHERE environment_id = $1 AND plan_id = $2 AND status = 'ARCHIVED')",
        )
        .bind(env.0)
        .bind(plan_id)
        .fetch_one(&mut *conn)
        .await?;
        if !has_archived {
            return Err(StoreError::rejected(
                ErrorCode::DraftPlanCantBeArchived,
                format!("plan `{plan_id}` has never been published; a draft cannot be archived"),
            ));
        }
    }
    let newest: PlanVersion = sqlx::query_as::<_, PlanVersion>(&format!(
        "{SELECT} WHERE v.environment_id = $1 AND v.plan_id = $2 AND v.status <> 'DRAFT'
         ORDER BY v.version_number DESC LIMIT 1"
    ))
    .bind(env.0)
    .bind(plan_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(newest)
}

/// A draft's identity: what a publish request pins as its target.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct DraftRef {
    pub id: Uuid,
    pub version_number: i32,
}

/// The draft a publish request would publish: 404 without the plan, 400 without a draft.
/// One indexed lookup on the hot path of accepting a publish.
pub async fn draft_to_publish(conn: &mut PgConnection, env: EnvironmentId, plan_id: &str) -> Result<DraftRef> {
    let draft = sqlx::query_as::<_, DraftRef>(
        "SELECT id, version_number FROM plan_versions WHERE environment_id = $1 AND plan_id = $2 AND status = 'DRAFT'",
    )
    .bind(env.0)
    .bind(plan_id)
    .fetch_optional(&mut *conn)
    .await?;
    match draft {
        Some(draft) => Ok(draft),
        None => Err(no_draft(conn, env, plan_id).await?),
    }
}

/// Why a plan has nothing to publish: 400 `PackageAlreadyPublished` when it exists (all its
/// versions are published), 404 `PlanNotFound` when it does not.
pub async fn no_draft(conn: &mut PgConnection, env: EnvironmentId, plan_id: &str) -> Result<StoreError> {
    Ok(if plan_exists(conn, env, plan_id).await? {
        StoreError::rejected(ErrorCode::PackageAlreadyPublished, format!("plan `{plan_id}` has no draft to publish"))
    } else {
        not_found(plan_id)
    })
}

/// Publishes a draft, announcing it to webhooks in the same transaction. False when it is no
/// longer a draft.
pub async fn publish_version(conn: &mut Work, version_id: Uuid, task: Option<TaskId>) -> Result<bool> {
    Ok(!publish_versions(conn, &[(version_id, task)]).await?.is_empty())
}

/// Publishes many drafts in one statement — each version with the task that publishes it —
/// announcing each to webhooks in the same transaction. Answers the versions published; the
/// others were no longer drafts.
pub async fn publish_versions(conn: &mut Work, versions: &[(Uuid, Option<TaskId>)]) -> Result<Vec<Uuid>> {
    flip(conn, versions, "").await
}

/// `publish_versions` for the drafts no catalog check could refuse — no base plan, no
/// compatible add-on (`catalog::publish_refusal` reads nothing else) — leaving the others
/// drafts. What a set of publishes flips without running the checks: a draft it leaves is
/// planned alone, checks and all.
pub async fn publish_unchecked_versions(conn: &mut Work, versions: &[(Uuid, Option<TaskId>)]) -> Result<Vec<Uuid>> {
    flip(conn, versions, "AND v.parent_plan_id IS NULL AND coalesce(v.compatible_addon_ids, 'null') IN ('null', '[]')")
        .await
}

/// The statement of `publish_versions`, with `also` added to its condition. Versions by
/// primary key alone, their status compared with a parameter: a set of publishes runs it on a
/// plan cached once (`crate::begin_set_planning`), which a join with the ids, or `status =
/// 'DRAFT'` written out (the predicate of the partial index of drafts), would let walk every
/// draft instead, had the plan been made while there were few.
async fn flip(conn: &mut Work, versions: &[(Uuid, Option<TaskId>)], also: &str) -> Result<Vec<Uuid>> {
    let (ids, tasks): (Vec<Uuid>, Vec<Option<Uuid>>) =
        versions.iter().map(|(version, task)| (*version, task.map(|t| t.0))).unzip();
    let published: Vec<(Uuid, Uuid)> = sqlx::query_as(&format!(
        "UPDATE plan_versions v SET status = 'PUBLISHED', published_at = now(),
            published_by_task = ($2::uuid[])[array_position($1::uuid[], v.id)], updated_at = now()
         WHERE v.id = ANY($1) AND v.status = $3 {also} RETURNING v.id, v.environment_id"
    ))
    .bind(&ids)
    .bind(&tasks)
    .bind(PlanVersionStatus::Draft.as_str())
    .fetch_all(&mut **conn)
    .await?;
    for &(version, env) in &published {
        conn.announce(Announcement::VersionPublished { environment: EnvironmentId(env), version });
    }
    Ok(published.into_iter().map(|(version, _)| version).collect())
}

#[derive(Debug, Default, Clone)]
pub struct PlanFilter {
    pub product_id: Option<String>,
    pub statuses: Vec<String>,
    pub created: crate::CreatedRange,
    pub after: Option<i64>,
    pub limit: i64,
}

/// One row per plan: the version `current` would answer.
pub async fn list(pool: &PgPool, env: EnvironmentId, filter: &PlanFilter) -> Result<Page<PlanVersion>> {
    let sql = format!(
        "{SELECT}
         WHERE v.environment_id = $1
           AND v.version_number = (SELECT max(m.version_number) FROM plan_versions m
                                   WHERE m.environment_id = v.environment_id AND m.plan_id = v.plan_id)
           AND ($2::text IS NULL OR p.product_id = $2)
           AND (cardinality($3::text[]) = 0 OR v.status = ANY($3))
           AND ($4::bigint IS NULL OR p.seq > $4)
           {created}
         ORDER BY p.seq LIMIT $5",
        created = crate::created_range_sql("p.created_at", 6)
    );
    let rows = sqlx::query_as::<_, PlanVersion>(&sql);
    let rows = filter
        .created
        .bind(
            rows.bind(env.0).bind(&filter.product_id).bind(&filter.statuses).bind(filter.after).bind(filter.limit + 1),
        )
        .fetch_all(pool)
        .await?;
    Ok(page(rows, filter.limit, |v| v.plan_seq))
}

/// How many subscriptions are on each version of a plan.
pub async fn subscription_counts(pool: &PgPool, env: EnvironmentId, plan_id: &str) -> Result<Vec<(i32, i64)>> {
    Ok(sqlx::query_as(
        "SELECT v.version_number, count(s.id)
         FROM plan_versions v LEFT JOIN subscriptions s ON s.plan_version_id = v.id
         WHERE v.environment_id = $1 AND v.plan_id = $2
         GROUP BY v.version_number ORDER BY v.version_number",
    )
    .bind(env.0)
    .bind(plan_id)
    .fetch_all(pool)
    .await?)
}
