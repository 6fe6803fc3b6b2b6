//! Subscriptions (Stigg's word) — billing schedules in the Sequence dialect: the same rows.
//! A subscription points at the exact plan version it is on.

use crate::{is_unique_violation, page, plans, Page, Result, StoreError};
use chrono::{DateTime, Utc};
use domain::{BillingPeriod, EnvironmentId, ErrorCode, SubscriptionStatus, TaskId};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Subscription {
    pub id: String,
    pub row_id: i64,
    pub customer_id: String,
    pub plan_id: String,
    pub plan_version_id: Uuid,
    pub version_number: i32,
    pub pricing_type: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: SubscriptionStatus,
    #[sqlx(try_from = "String")]
    pub billing_period: BillingPeriod,
    pub start_date: DateTime<Utc>,
    pub end_date: Option<DateTime<Utc>>,
    /// When it was canceled, or (while it is live) when a scheduled cancellation ends it.
    pub cancellation_date: Option<DateTime<Utc>>,
    pub billing_id: Option<String>,
    pub resource_id: Option<String>,
    pub metadata: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The add-ons it holds, by add-on id.
    pub addons: sqlx::types::Json<Vec<HeldAddon>>,
}

/// An add-on a subscription holds: how many, and on which version of the add-on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeldAddon {
    pub id: String,
    pub quantity: i32,
    pub version_number: i32,
}

impl Subscription {
    pub fn billing_period(&self) -> BillingPeriod {
        self.billing_period
    }
}

const SELECT: &str = "SELECT s.id, s.row_id, s.customer_id, s.plan_id, s.plan_version_id, v.version_number,
        v.pricing_type, s.status, s.billing_period, s.start_date, s.end_date, s.cancellation_date, s.billing_id, s.resource_id,
        s.metadata, s.created_at, s.updated_at,
        (SELECT coalesce(jsonb_agg(jsonb_build_object('id', sa.addon_id, 'quantity', sa.quantity,
                                                      'versionNumber', av.version_number) ORDER BY sa.addon_id), '[]')
         FROM subscription_addons sa JOIN addon_versions av ON av.id = sa.addon_version_id
         WHERE sa.environment_id = s.environment_id AND sa.subscription_id = s.id) AS addons
    FROM subscriptions s JOIN plan_versions v ON v.id = s.plan_version_id";

#[derive(Debug, Clone)]
pub struct NewSubscription {
    pub id: String,
    pub customer_id: String,
    pub plan_id: String,
    pub billing_period: BillingPeriod,
    /// `None`: it starts when it is created, by the database's clock (so it is ACTIVE, never
    /// NOT_STARTED because of a process clock ahead of the database's).
    pub start_date: Option<DateTime<Utc>>,
    pub end_date: Option<DateTime<Utc>>,
    pub status: Option<SubscriptionStatus>,
    pub billing_id: Option<String>,
    pub resource_id: Option<String>,
    pub metadata: Value,
}

impl NewSubscription {
    fn status(&self, now: DateTime<Utc>) -> SubscriptionStatus {
        self.status.unwrap_or(if self.start_date.is_some_and(|start| start > now) {
            SubscriptionStatus::NotStarted
        } else {
            SubscriptionStatus::Active
        })
    }
}

/// Creates a subscription on the plan's newest published version.
pub async fn create(conn: &mut PgConnection, env: EnvironmentId, new: &NewSubscription) -> Result<Subscription> {
    let customer: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM customers WHERE environment_id = $1 AND id = $2)")
            .bind(env.0)
            .bind(&new.customer_id)
            .fetch_one(&mut *conn)
            .await?;
    if !customer {
        return Err(StoreError::rejected(
            ErrorCode::CustomerNotFound,
            format!("customer `{}` not found", new.customer_id),
        ));
    }
    let version = subscribable_version(conn, env, &new.plan_id).await?;
    let now = crate::db_now(conn).await?;
    sqlx::query(
        "INSERT INTO subscriptions (environment_id, id, customer_id, plan_id, plan_version_id, status, billing_period,
            start_date, end_date, billing_id, resource_id, metadata)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(env.0)
    .bind(&new.id)
    .bind(&new.customer_id)
    .bind(&new.plan_id)
    .bind(version)
    .bind(new.status(now).as_str())
    .bind(new.billing_period.as_str())
    .bind(new.start_date.unwrap_or(now))
    .bind(new.end_date)
    .bind(&new.billing_id)
    .bind(&new.resource_id)
    .bind(&new.metadata)
    .execute(&mut *conn)
    .await
    .map_err(|e| {
        if is_unique_violation(&e, "subscriptions_pkey") {
            StoreError::rejected(ErrorCode::BadUserInput, format!("a subscription with id `{}` already exists", new.id))
        } else {
            e.into()
        }
    })?;
    get(conn, env, &new.id)
        .await?
        .ok_or_else(|| StoreError::rejected(ErrorCode::SubscriptionNotFound, "subscription vanished"))
}

/// The version a new subscription of `plan_id` gets: its newest published one.
async fn subscribable_version(conn: &mut PgConnection, env: EnvironmentId, plan_id: &str) -> Result<Uuid> {
    if let Some(v) = plans::latest_published(conn, env, plan_id).await? {
        return Ok(v.id);
    }
    match plans::current(conn, env, plan_id).await? {
        None => Err(StoreError::rejected(ErrorCode::PlanNotFound, format!("plan `{plan_id}` not found"))),
        Some(v) if v.status == domain::PlanVersionStatus::Archived => {
            Err(StoreError::rejected(ErrorCode::EntityIsArchivedError, format!("plan `{plan_id}` is archived")))
        }
        Some(_) => Err(StoreError::rejected(
            ErrorCode::UnPublishedPackage,
            format!("plan `{plan_id}` has no published version"),
        )),
    }
}

/// Which of the `(environment, plan)` pairs have any subscription at all, whatever its status
/// or version, in one statement: a plan with none has nobody a migration could move.
pub async fn plans_with_subscriptions(
    conn: &mut PgConnection,
    plans: &[(EnvironmentId, String)],
) -> Result<std::collections::HashSet<(EnvironmentId, String)>> {
    let (envs, ids): (Vec<Uuid>, Vec<&str>) = plans.iter().map(|(env, plan)| (env.0, plan.as_str())).unzip();
    let held: Vec<(Uuid, String)> = sqlx::query_as(
        // a subquery per pair, which no plan can turn into a join over the whole table: a set
        // of publishes runs this on a plan cached once (`crate::begin_set_planning`)
        "SELECT p.environment_id, p.plan_id FROM unnest($1::uuid[], $2::text[]) AS p(environment_id, plan_id)
         WHERE (SELECT true FROM subscriptions s
                WHERE s.environment_id = p.environment_id AND s.plan_id = p.plan_id LIMIT 1)",
    )
    .bind(&envs)
    .bind(&ids)
    .fetch_all(conn)
    .await?;
    Ok(held.into_iter().map(|(env, plan)| (EnvironmentId(env), plan)).collect())
}

pub async fn get(conn: &mut PgConnection, env: EnvironmentId, id: &str) -> Result<Option<Subscription>> {
    Ok(sqlx::query_as::<_, Subscription>(&format!("{SELECT} WHERE s.environment_id = $1 AND s.id = $2"))
        .bind(env.0)
        .bind(id)
        .fetch_optional(conn)
        .await?)
}

#[derive(Debug, Default, Clone)]
pub struct SubscriptionFilter {
    pub customer_id: Option<String>,
    pub plan_id: Option<String>,
    pub statuses: Vec<String>,
    /// FREE, PAID or CUSTOM: the pricing type of the version it is on (none set counts as FREE).
    pub pricing_types: Vec<String>,
    pub resource_id: Option<String>,
    pub created: crate::CreatedRange,
    pub after: Option<i64>,
    pub limit: i64,
}

pub async fn list(pool: &PgPool, env: EnvironmentId, filter: &SubscriptionFilter) -> Result<Page<Subscription>> {
    let sql = format!(
        "{SELECT}
         WHERE s.environment_id = $1
           AND ($2::text IS NULL OR s.customer_id = $2)
           AND ($3::text IS NULL OR s.plan_id = $3)
           AND (cardinality($4::text[]) = 0 OR s.status = ANY($4))
           AND ($5::bigint IS NULL OR s.row_id > $5)
           AND (cardinality($7::text[]) = 0 OR coalesce(v.pricing_type, 'FREE') = ANY($7))
           AND ($8::text IS NULL OR s.resource_id = $8)
           {created}
         ORDER BY s.row_id LIMIT $6",
        created = crate::created_range_sql("s.created_at", 9)
    );
    let rows = sqlx::query_as::<_, Subscription>(&sql);
    let rows = filter
        .created
        .bind(
            rows.bind(env.0)
                .bind(&filter.customer_id)
                .bind(&filter.plan_id)
                .bind(&filter.statuses)
                .bind(filter.after)
                .bind(filter.limit + 1)
                .bind(&filter.pricing_types)
                .bind(&filter.resource_id),
        )
        .fetch_all(pool)
        .await?;
    Ok(page(rows, filter.limit, |s| s.row_id))
}

/// Outcome of a bulk import.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOutcome {
    pub total: i64,
    pub created: i64,
    pub failed: i64,
}

/// Inserts subscriptions in one statement, each on its plan's newest published version.
/// Rows that already exist are left as they are (so a re-run is harmless); rows whose customer
/// or plan is missing are recorded as the task's failures with their reason.
pub async fn import(
    conn: &mut PgConnection,
    env: EnvironmentId,
    task: TaskId,
    items: &[NewSubscription],
) -> Result<ImportOutcome> {
    let now = crate::db_now(conn).await?;
    let ids: Vec<&str> = items.iter().map(|s| s.id.as_str()).collect();
    let customers: Vec<&str> = items.iter().map(|s| s.customer_id.as_str()).collect();
    let plan_ids: Vec<&str> = items.iter().map(|s| s.plan_id.as_str()).collect();
    let statuses: Vec<&str> = items.iter().map(|s| s.status(now).as_str()).collect();
    let periods: Vec<&str> = items.iter().map(|s| s.billing_period.as_str()).collect();
    let starts: Vec<DateTime<Utc>> = items.iter().map(|s| s.start_date.unwrap_or(now)).collect();
    let ends: Vec<Option<DateTime<Utc>>> = items.iter().map(|s| s.end_date).collect();
    let billing: Vec<Option<&str>> = items.iter().map(|s| s.billing_id.as_deref()).collect();
    let resources: Vec<Option<&str>> = items.iter().map(|s| s.resource_id.as_deref()).collect();
    let metadata: Vec<&Value> = items.iter().map(|s| &s.metadata).collect();

    let created = sqlx::query(
        "WITH input AS (
            SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[],
                                 $8::timestamptz[], $9::text[], $10::text[], $11::jsonb[])
                 WITH ORDINALITY AS u (id, customer_id, plan_id, status, billing_period, start_date, end_date,
                                       billing_id, resource_id, metadata, ord)
        ), latest AS (
            SELECT DISTINCT ON (plan_id) plan_id, id FROM plan_versions
            WHERE environment_id = $1 AND status = 'PUBLISHED' AND plan_id IN (SELECT plan_id FROM input)
            ORDER BY plan_id, version_number DESC
        )
        INSERT INTO subscriptions (environment_id, id, customer_id, plan_id, plan_version_id, status, billing_period,
                                   start_date, end_date, billing_id, resource_id, metadata)
        SELECT $1, i.id, i.customer_id, i.plan_id, l.id, i.status, i.billing_period, i.start_date, i.end_date,
               i.billing_id, i.resource_id, i.metadata
        FROM input i
        JOIN latest l ON l.plan_id = i.plan_id
        JOIN customers c ON c.environment_id = $1 AND c.id = i.customer_id
        ORDER BY i.ord
        ON CONFLICT (environment_id, id) DO NOTHING",
    )
    .bind(env.0)
    .bind(&ids)
    .bind(&customers)
    .bind(&plan_ids)
    .bind(&statuses)
    .bind(&periods)
    .bind(&starts)
    .bind(&ends)
    .bind(&billing)
    .bind(&resources)
    .bind(&metadata)
    .execute(&mut *conn)
    .await?
    .rows_affected();

    let failed = sqlx::query(
        "INSERT INTO task_item_failures (task_id, subscription_id, code, message)
         SELECT $2, u.id,
                CASE WHEN c.id IS NULL THEN 'CustomerNotFound'
                     WHEN p.id IS NULL THEN 'PlanNotFound'
                     ELSE 'UnPublishedPackage' END,
                CASE WHEN c.id IS NULL THEN 'customer `' || u.customer_id || '` not found'
                     WHEN p.id IS NULL THEN 'plan `' || u.plan_id || '` not found'
                     ELSE 'plan `' || u.plan_id || '` has no published version' END
         FROM unnest($3::text[], $4::text[], $5::text[]) AS u (id, customer_id, plan_id)
         LEFT JOIN customers c ON c.environment_id = $1 AND c.id = u.customer_id
         LEFT JOIN plans p ON p.environment_id = $1 AND p.id = u.plan_id
         WHERE NOT EXISTS (SELECT 1 FROM subscriptions s WHERE s.environment_id = $1 AND s.id = u.id)
         ON CONFLICT (task_id, subscription_id) DO NOTHING",
    )
    .bind(env.0)
    .bind(task.0)
    .bind(&ids)
    .bind(&customers)
    .bind(&plan_ids)
    .execute(&mut *conn)
    .await?
    .rows_affected();

    Ok(ImportOutcome { total: items.len() as i64, created: created as i64, failed: failed as i64 })
}
