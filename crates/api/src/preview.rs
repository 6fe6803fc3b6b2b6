//! The dry run both dialects offer before a version change (Cutover's extension:
//! `POST /api/v1/plans/{id}/publish/preview`, `POST /plans/{planId}/preview`): the answer's
//! shape, and running the count in a read-only transaction. Who moves is decided by
//! `store::movers`, the same selection the migration itself uses, and whether the worker would
//! then refuse the publish by `store::catalog`, the same checks the worker runs; this module
//! only renders them.

use crate::error::ApiError;
use crate::extract::{PageQuery, Pagination};
use chrono::{DateTime, NaiveDate, Utc};
use domain::{
    BillingPeriod, EnvironmentId, ErrorCode, MigrationType, SubscriptionStatus, TaskType, VersionChangeBehaviour,
};
use serde::Serialize;
use sqlx::PgConnection;
use std::collections::BTreeMap;
use store::movers::{self, Preview, Scope};
use store::revenue::{self, Impact, Mover, Pricing};
use utoipa::ToSchema;
use uuid::Uuid;

/// The preview routes. They only read, so a `read-only` key may call them although they are
/// POSTs (their bodies are the requests they preview).
pub const STIGG_ROUTE: &str = "/api/v1/plans/{id}/publish/preview";
pub const SEQUENCE_ROUTE: &str = "/plans/{id}/preview";
/// The add-on publish's preview (`stigg::addons::publish_preview`), a read like the others.
pub const ADDON_ROUTE: &str = "/api/v1/addons/{id}/publish/preview";

/// Why the request previewed would be accepted and its task then fail when a worker plans it:
/// the code and message the task would end `FAILED` with.
#[derive(Debug, Serialize, ToSchema)]
pub struct WouldFail {
    /// The task's error code.
    #[schema(value_type = ErrorCode)]
    pub code: &'static str,
    /// The task's error message.
    pub message: String,
}

/// How many move on one UTC day.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PreviewDay)]
pub struct Day {
    pub date: NaiveDate,
    pub count: i64,
}

/// How many move from one older version.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PreviewFromVersion)]
pub struct FromVersion {
    pub version: i32,
    pub count: i64,
}

/// What both dialects' previews answer alike.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PreviewMoves)]
pub struct Moves {
    pub plan_id: String,
    /// The version the request would publish.
    pub target_version: i32,
    /// How existing subscriptions would move: NEVER when nobody would.
    pub version_change_behaviour: VersionChangeBehaviour,
    pub version_effective_from: Option<DateTime<Utc>>,
    /// The distinct customers of those that would move.
    pub affected_customers_count: i64,
    /// The earliest instant one would move; null when nobody would.
    pub first_move_at: Option<DateTime<Utc>>,
    /// The latest instant one would move; null when nobody would.
    pub last_move_at: Option<DateTime<Utc>>,
    /// How many would move on each UTC day, in date order.
    pub by_day: Vec<Day>,
    /// How many of each live status would move (0 where none).
    pub by_status: BTreeMap<String, i64>,
    /// How many of each billing period would move (0 where none).
    pub by_billing_period: BTreeMap<String, i64>,
    /// How many would move from each older version, in version order.
    pub by_from_version: Vec<FromVersion>,
    /// The cursor (`after`) of the next page of ids.
    pub pagination: Pagination,
    /// Why the request would be accepted and its task then fail when a worker plans it (the
    /// worker's own catalog checks: a base plan or a compatible add-on still a draft); null
    /// when the task would go through.
    #[schema(required = true)]
    pub would_fail: Option<WouldFail>,
    /// How many live subscriptions on an older version the migration policy in force would
    /// leave where they are (not counted above).
    pub excluded_count: i64,
    /// The same, by reason: `status`, `customer`, `metadata`, `renewingWithin` (0 where none).
    pub excluded_by_reason: BTreeMap<String, i64>,
    /// The policy's notice period: nobody moves before acceptance + this (moves become
    /// scheduled at a billing date, `versionChangeBehaviour` NEXT_BILLING_DATE). Null without one.
    pub notice_period: Option<String>,
    /// Whether the task would wait for an admin other than the requester to approve it.
    pub requires_approval: bool,
    /// The monthly recurring revenue of those that would move, before and after.
    pub revenue: Revenue,
}

/// The monthly recurring revenue a version change moves, of the subscriptions that would move
/// only (excluded ones are not counted). Amounts are decimal strings in the currency's major
/// unit: annual charges count as 1/12, each total is rounded half away from zero to 4 decimal
/// places (trailing zeros dropped), and a delta is `mrrAfter − mrrBefore` of those figures. The
/// Stigg dialect values the versions' `charges` (recurring flat fees for the subscription's
/// billing period), the Sequence dialect their prices (fixed amounts by billing frequency);
/// any other charge is not valued and is counted in `unvaluedCount`, never as 0.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PreviewRevenue)]
pub struct Revenue {
    /// One entry per currency a subscription that would move pays in, before or after, in
    /// currency order.
    pub by_currency: Vec<CurrencyRevenue>,
    /// How many of those that would move carry a charge that cannot be valued (usage-based,
    /// per-unit, tiered, custom…), before or after; their valued charges still count in the
    /// amounts above (see `withUnvaluedChargesCount`).
    pub unvalued_count: i64,
    /// The same by reason (one subscription may have several): `NO_PRICING`,
    /// `CUSTOM_PRICING`, `UNKNOWN_PRICING`, `NO_PRICE_FOR_PERIOD`, `AMBIGUOUS_PRICE`,
    /// `INVALID_PRICE`, `TIERED`, `PER_UNIT`, `USAGE_BASED`, `CREDIT_BASED`, `OVERAGE`,
    /// `MINIMUM_SPEND`, `UNKNOWN_MODEL`, `PRICE_NOT_FOUND`, `NO_AMOUNT`, `UNKNOWN_FREQUENCY`;
    /// only those that occur.
    pub unvalued_by_reason: BTreeMap<String, i64>,
}

/// What the subscriptions that would move pay a month in one currency.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PreviewCurrencyRevenue)]
pub struct CurrencyRevenue {
    /// As the dialect writes it: lower case in the Stigg dialect, upper case in Sequence's.
    pub currency: String,
    /// How many that would move pay in this currency, before or after.
    pub subscriptions_count: i64,
    /// Their monthly recurring revenue on the versions they are on (decimal string).
    #[schema(example = "1250.5")]
    pub mrr_before: String,
    /// The same on the version they would move to (decimal string).
    #[schema(example = "1375")]
    pub mrr_after: String,
    /// `mrrAfter − mrrBefore` (decimal string, negative for a fall).
    #[schema(example = "124.5")]
    pub mrr_delta: String,
    /// How many of them, all of whose charges are valued, would pay more in this currency.
    pub up_count: i64,
    /// … less.
    pub down_count: i64,
    /// … the same.
    pub same_count: i64,
    /// How many of them also carry a charge that cannot be valued: their valued charges count
    /// in the amounts, and they are in none of `upCount`, `downCount`, `sameCount`.
    pub with_unvalued_charges_count: i64,
}

/// One subscription (billing schedule) that would move: what it pays a month before and after,
/// and when it would move.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PreviewMover)]
pub struct MoverView {
    pub id: String,
    /// The version it is on.
    pub from_version: i32,
    /// When it would move to the target version.
    pub effective_at: DateTime<Utc>,
    /// What it pays a month in each currency, before and after, in currency order (empty when
    /// it pays nothing that can be valued).
    pub mrr: Vec<MoverAmount>,
    /// Why some of its charges cannot be valued (see `revenue.unvaluedByReason`); empty when
    /// all are.
    pub unvalued_reasons: Vec<String>,
}

/// What one subscription pays a month in one currency (decimal strings).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = PreviewMoverAmount)]
pub struct MoverAmount {
    pub currency: String,
    #[schema(example = "10")]
    pub before: String,
    #[schema(example = "8.3333")]
    pub after: String,
}

/// What moving `scope` would do to revenue, and the page of movers the ids page holds, with
/// their amounts: nothing under NEVER (nobody moves).
pub async fn revenue(
    conn: &mut PgConnection,
    scope: &Scope,
    pricing: Pricing<'_>,
    page: &PageQuery,
) -> Result<(Impact, Vec<Mover>), ApiError> {
    let after = page.after()?;
    let limit = page.limit()?;
    if scope.behaviour == VersionChangeBehaviour::Never {
        return Ok((Impact::default(), Vec::new()));
    }
    let impact = revenue::impact(conn, scope, pricing).await?;
    let movers = revenue::page(conn, scope, pricing, after, limit).await?;
    Ok((impact, movers))
}

/// The page's movers as the answer lists them.
pub fn movers(movers: &[Mover]) -> Vec<MoverView> {
    movers
        .iter()
        .map(|m| MoverView {
            id: m.id.clone(),
            from_version: m.from_version,
            effective_at: m.effective_at,
            mrr: m
                .amounts
                .iter()
                .map(|a| MoverAmount { currency: a.currency.clone(), before: a.before.clone(), after: a.after.clone() })
                .collect(),
            unvalued_reasons: m.unvalued.clone(),
        })
        .collect()
}

/// `POST /api/v1/plans/{id}/publish/preview`'s answer (in `{"data"}`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = StiggPublishPreview)]
pub struct StiggPreview {
    #[serde(flatten)]
    pub moves: Moves,
    pub migration_type: MigrationType,
    /// How many live subscriptions of the plan on an older version would move.
    pub affected_subscriptions_count: i64,
    /// One page of them, in creation order.
    pub subscription_ids: Vec<String>,
    /// The same page, each with what it pays a month before and after and when it moves.
    pub subscriptions: Vec<MoverView>,
}

/// `POST /plans/{planId}/preview`'s answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = SequencePlanPreview)]
pub struct SequencePreview {
    #[serde(flatten)]
    pub moves: Moves,
    /// Whether the `PUT` would publish a version (false for a draft edited without
    /// `versionChangeBehaviour`).
    pub publishes: bool,
    /// How many live billing schedules of the plan on an older version would move.
    pub affected_schedules_count: i64,
    /// One page of them, in creation order.
    pub billing_schedule_ids: Vec<String>,
    /// The same page, each with what it pays a month before and after and when it moves.
    pub billing_schedules: Vec<MoverView>,
}

/// Counts what moving `scope` would do, or nothing under NEVER (nobody moves).
pub async fn run(conn: &mut PgConnection, scope: &Scope, page: &PageQuery) -> Result<Preview, ApiError> {
    let after = page.after()?;
    let limit = page.limit()?;
    if scope.behaviour == VersionChangeBehaviour::Never {
        return Ok(Preview::default());
    }
    Ok(movers::preview(conn, scope, after, limit).await?)
}

/// What the planning of the request's task would refuse: `store::catalog::planning_refusal`,
/// the checks the worker runs, for a task of `task_type` publishing `version_id`.
pub async fn would_fail(
    conn: &mut PgConnection,
    env: EnvironmentId,
    task_type: TaskType,
    version_id: Option<Uuid>,
) -> Result<Option<WouldFail>, ApiError> {
    let refusal = store::catalog::planning_refusal(conn, env, task_type, version_id).await?;
    Ok(refusal.map(|(code, message)| WouldFail { code: code.as_str(), message }))
}

/// The answer's shared part: counts, when the moves happen, and the cursor of the next page.
/// Every live status and billing period is listed, with 0 where nobody is.
pub fn moves(scope: &Scope, p: &Preview, impact: &Impact, would_fail: Option<WouldFail>) -> Moves {
    let by_status = SubscriptionStatus::LIVE
        .iter()
        .map(|status| {
            let n = p.by_status.iter().find(|b| b.key == status.as_str()).map_or(0, |b| b.count);
            (status.as_str().to_owned(), n)
        })
        .collect();
    let by_billing_period = BillingPeriod::ALL
        .iter()
        .map(|period| {
            let n = p.by_billing_period.iter().find(|b| b.key == period.as_str()).map_or(0, |b| b.count);
            (period.as_str().to_owned(), n)
        })
        .collect();
    Moves {
        plan_id: scope.plan_id.clone(),
        target_version: scope.target_version_number,
        version_change_behaviour: scope.behaviour,
        version_effective_from: scope.effective_from,
        affected_customers_count: p.affected_customers,
        first_move_at: p.first_move_at,
        last_move_at: p.last_move_at,
        by_day: p.by_day.iter().map(|b| Day { date: b.key, count: b.count }).collect(),
        by_status,
        by_billing_period,
        by_from_version: p.by_version.iter().map(|b| FromVersion { version: b.key, count: b.count }).collect(),
        pagination: Pagination { next: p.ids.next.clone(), prev: None },
        would_fail,
        excluded_count: p.excluded,
        excluded_by_reason: domain::policy::by_reason(|reason| {
            p.excluded_by_reason.iter().find(|b| b.key == reason).map(|b| b.count)
        }),
        notice_period: scope.policy.as_ref().and_then(|p| p.notice_period.clone()),
        requires_approval: scope.policy.as_ref().is_some_and(|p| p.require_approval),
        revenue: Revenue {
            by_currency: impact
                .by_currency
                .iter()
                .map(|c| CurrencyRevenue {
                    currency: c.currency.clone(),
                    subscriptions_count: c.subscriptions,
                    mrr_before: c.mrr_before.clone(),
                    mrr_after: c.mrr_after.clone(),
                    mrr_delta: c.mrr_delta.clone(),
                    up_count: c.up,
                    down_count: c.down,
                    same_count: c.same,
                    with_unvalued_charges_count: c.with_unvalued,
                })
                .collect(),
            unvalued_count: impact.unvalued,
            unvalued_by_reason: impact.unvalued_by_reason.iter().map(|b| (b.key.clone(), b.count)).collect(),
        },
    }
}

/// The scope under the migration policy a task accepted now would pin (the plan's, else the
/// environment's default), read at the database's now, as the task would read it.
pub async fn under_policy(conn: &mut PgConnection, scope: Scope) -> Result<Scope, ApiError> {
    if scope.behaviour == VersionChangeBehaviour::Never {
        return Ok(scope);
    }
    let policy = store::policies::in_force(conn, scope.environment, &scope.plan_id).await?;
    let now = store::db_now(conn).await?;
    Ok(scope.under_policy(policy, now))
}
