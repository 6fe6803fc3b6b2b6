//! `/api/v1/subscriptions`: create, read, list, and the bulk import, which answers a task id at
//! once and runs on the workers.

use super::views;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{comma_list, entity_id, page_body, CreatedAtQuery, Json, KnownQuery, PageQuery, Path, QueryNames};
use crate::openapi::{Data, List, STIGG};
use crate::stigg::plans::TaskRef;
use crate::AppState;
use axum::extract::State;
use chrono::{DateTime, Utc};
use domain::spec::{AddonQuantity, ImportItem};
use domain::{BillingPeriod, ErrorCode, SubscriptionStatus, TaskId, TaskSpec};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use store::subscriptions::{self, NewSubscription, SubscriptionFilter};
use store::tasks::{self, NewTask};
use utoipa::{IntoParams, ToSchema};

/// Largest number of subscriptions one import request may carry.
pub const MAX_IMPORT: usize = 100_000;

const STATUSES: [&str; 6] = ["PAYMENT_PENDING", "ACTIVE", "EXPIRED", "IN_TRIAL", "CANCELED", "NOT_STARTED"];

/// The SDK's provisioning options beyond these (coupons, checkout, trial overrides…) are
/// accepted and not acted on.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateSubscription {
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$")]
    id: Option<String>,
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$")]
    customer_id: String,
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$")]
    plan_id: String,
    billing_period: Option<BillingPeriod>,
    start_date: Option<DateTime<Utc>>,
    billing_id: Option<String>,
    resource_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<Map<String, Value>>,
    /// The add-ons it holds, each on the add-on's newest published version.
    addons: Option<Vec<AddonQuantity>>,
    // The SDK's remaining provisioning options (coupons, checkout, trial overrides…)
    // concern billing, which Cutover does not do; they are accepted and not acted on.
    #[serde(flatten)]
    #[schema(ignore)]
    _billing_options: Map<String, Value>,
}

#[utoipa::path(post, path = "/api/v1/subscriptions", operation_id = "SubscriptionController_provisionSubscription", tag = STIGG, request_body = CreateSubscription,
    responses((status = 200, description = "The subscription, on its plan's latest published version", body = Data<Provisioned>),
        (status = 400, description = "Bad input, the id is taken, or the plan has no published version", body = ErrorBody),
        (status = 404, description = "No such customer or plan", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Json(body): Json<CreateSubscription>,
) -> Result<Json<Data<Provisioned>>, ApiError> {
    let id = match &body.id {
        Some(id) => entity_id(id, "subscription id")?.into_string(),
        None => format!("subscription-{}", uuid::Uuid::new_v4().simple()),
    };
    let customer = entity_id(&body.customer_id, "customerId")?;
    let plan = entity_id(&body.plan_id, "planId")?;
    let holdings = holdings(body.addons.as_deref().unwrap_or_default(), "addons")?;
    let mut tx = state.begin().await?;
    let subscription = subscriptions::create(
        &mut tx,
        caller.environment_id,
        &NewSubscription {
            id,
            customer_id: customer.into_string(),
            plan_id: plan.into_string(),
            billing_period: body.billing_period.unwrap_or(BillingPeriod::Monthly),
            start_date: body.start_date,
            end_date: None,
            status: None,
            billing_id: body.billing_id,
            resource_id: body.resource_id,
            metadata: Value::Object(body.metadata.unwrap_or_default()),
        },
    )
    .await?;
    let subscription = if holdings.is_empty() {
        subscription
    } else {
        store::addons::attach(&mut tx, caller.environment_id, &subscription.id, &holdings).await?;
        subscriptions::get(&mut tx, caller.environment_id, &subscription.id)
            .await?
            .ok_or_else(|| ApiError::new(ErrorCode::SubscriptionNotFound, "subscription vanished"))?
    };
    tx.commit(&state.hooks()).await?;
    Ok(Json(Data {
        data: Provisioned {
            id: subscription.id.clone(),
            status: "SUCCESS",
            is_scheduled: false,
            subscription: views::subscription(&subscription, Vec::new()),
        },
    }))
}

/// Reads a subscription's `addons`: ids checked, quantities at least 1, no add-on twice
/// (400 `DuplicateAddonProvisionedError`).
fn holdings(items: &[AddonQuantity], what: &str) -> Result<Vec<store::addons::Holding>, ApiError> {
    let mut seen = HashSet::new();
    let mut holdings = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let id = entity_id(&item.id, &format!("{what}[{i}].id"))?;
        if item.quantity < 1 {
            return Err(ApiError::bad_input(format!("{what}[{i}].quantity must be at least 1")));
        }
        if !seen.insert(id.as_str().to_owned()) {
            return Err(ApiError::new(
                ErrorCode::DuplicateAddonProvisionedError,
                format!("{what}[{i}]: add-on `{id}` appears twice"),
            ));
        }
        holdings.push(store::addons::Holding { addon_id: id.into_string(), quantity: item.quantity });
    }
    Ok(holdings)
}

/// What creating a subscription answers (the SDK's provisioning result).
#[derive(Debug, serde::Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Provisioned {
    id: String,
    /// Always SUCCESS.
    status: &'static str,
    is_scheduled: bool,
    subscription: views::Subscription,
}

#[utoipa::path(get, path = "/api/v1/subscriptions/{id}", operation_id = "SubscriptionController_getSubscription", tag = STIGG, params(("id" = String, Path)),
    responses((status = 200, description = "The subscription with its scheduled updates", body = Data<views::Subscription>),
        (status = 404, description = "No such subscription (`SubscriptionNotFound`)", body = ErrorBody,
            extensions(("x-error-codes" = json!(["SubscriptionNotFound"]))))))]
pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Data<views::Subscription>>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let subscription = subscriptions::get(&mut conn, caller.environment_id, &id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::SubscriptionNotFound, format!("subscription `{id}` not found")))?;
    let changes = store::version_changes::for_subscription(&mut conn, caller.environment_id, &id).await?;
    Ok(Json(Data { data: views::subscription(&subscription, views::subscription_updates(&subscription, &changes)) }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    customer_id: Option<String>,
    plan_id: Option<String>,
    /// Comma-separated subscription statuses.
    status: Option<String>,
    /// Comma-separated: FREE, PAID, CUSTOM (of the version it is on).
    pricing_type: Option<String>,
    resource_id: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: PageQuery,
    #[serde(flatten)]
    #[param(ignore)]
    created_at: CreatedAtQuery,
}

impl QueryNames for ListQuery {
    const NAMES: &'static [&'static str] = &[
        "customerId",
        "planId",
        "status",
        "pricingType",
        "resourceId",
        "createdAt[gt]",
        "createdAt[gte]",
        "createdAt[lt]",
        "createdAt[lte]",
    ];
}

#[utoipa::path(get, path = "/api/v1/subscriptions", operation_id = "SubscriptionController_listSubscriptions", tag = STIGG, params(ListQuery, CreatedAtQuery, PageQuery),
    responses((status = 200, description = "A page of subscriptions", body = List<views::Subscription>)))]
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    KnownQuery(query): KnownQuery<ListQuery>,
) -> Result<Json<List<views::Subscription>>, ApiError> {
    let filter = SubscriptionFilter {
        customer_id: query.customer_id,
        plan_id: query.plan_id,
        statuses: comma_list(query.status.as_deref(), "status", &STATUSES)?,
        pricing_types: comma_list(query.pricing_type.as_deref(), "pricingType", &["FREE", "PAID", "CUSTOM"])?,
        resource_id: query.resource_id,
        created: query.created_at.range()?,
        after: query.page.after()?,
        limit: query.page.limit()?,
    };
    let page = subscriptions::list(&state.pool, caller.environment_id, &filter).await?;
    Ok(Json(page_body(&page, |s| views::subscription(s, Vec::new()))))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportSubscription {
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$")]
    id: String,
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$")]
    customer_id: String,
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$")]
    plan_id: String,
    billing_period: Option<BillingPeriod>,
    start_date: Option<DateTime<Utc>>,
    end_date: Option<DateTime<Utc>>,
    billing_id: Option<String>,
    resource_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<Map<String, Value>>,
    /// The add-ons it holds, each on the add-on's newest published version.
    addons: Option<Vec<AddonQuantity>>,
    // charges belong to billing, which Cutover does not do
    #[schema(value_type = Option<Object>)]
    charges: Option<Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportSubscriptions {
    subscriptions: Vec<ImportSubscription>,
    integration_id: Option<String>,
}

/// `POST /api/v1/subscriptions/import`: checks every item, then commits an
/// IMPORT_SUBSCRIPTIONS task (items as its payload) with its outbox row and answers its id.
#[utoipa::path(post, path = "/api/v1/subscriptions/import", operation_id = "ImportController_importSubscriptions", tag = STIGG, request_body = ImportSubscriptions,
    responses((status = 200, description = "Accepted: the IMPORT_SUBSCRIPTIONS task to poll", body = Data<TaskRef>),
        (status = 400, description = "Bad input: empty, too many, a bad or repeated id, dates out of order", body = ErrorBody)))]
pub async fn import(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Json(body): Json<ImportSubscriptions>,
) -> Result<Json<Data<TaskRef>>, ApiError> {
    let _ = body.integration_id;
    if body.subscriptions.is_empty() {
        return Err(ApiError::bad_input("subscriptions must not be empty"));
    }
    if body.subscriptions.len() > MAX_IMPORT {
        return Err(ApiError::bad_input(format!("at most {MAX_IMPORT} subscriptions per import")));
    }
    let now = Utc::now();
    let mut seen = HashSet::new();
    let mut items = Vec::with_capacity(body.subscriptions.len());
    let mut addon_checks: Vec<store::addons::Holding> = Vec::new();
    for (i, s) in body.subscriptions.into_iter().enumerate() {
        let id = entity_id(&s.id, &format!("subscriptions[{i}].id"))?;
        entity_id(&s.customer_id, &format!("subscriptions[{i}].customerId"))?;
        entity_id(&s.plan_id, &format!("subscriptions[{i}].planId"))?;
        if !seen.insert(id.as_str().to_owned()) {
            return Err(ApiError::bad_input(format!("subscriptions[{i}].id `{id}` appears twice")));
        }
        let start = s.start_date.unwrap_or(now);
        if let Some(end) = s.end_date {
            if end <= start {
                return Err(ApiError::bad_input(format!("subscriptions[{i}].endDate must be after its startDate")));
            }
        }
        let status = match s.end_date {
            Some(end) if end <= now => Some(SubscriptionStatus::Expired),
            _ => None,
        };
        let _ = s.charges;
        let held = holdings(s.addons.as_deref().unwrap_or_default(), &format!("subscriptions[{i}].addons"))?;
        addon_checks.extend(held.iter().cloned());
        items.push(ImportItem {
            id: id.as_str().to_owned(),
            customer_id: s.customer_id,
            plan_id: s.plan_id,
            billing_period: s.billing_period.unwrap_or(BillingPeriod::Monthly),
            start_date: start,
            end_date: s.end_date,
            status,
            billing_id: s.billing_id,
            resource_id: s.resource_id,
            metadata: s.metadata.unwrap_or_default(),
            addons: held.into_iter().map(|h| AddonQuantity { id: h.addon_id, quantity: h.quantity }).collect(),
        });
    }
    let count = items.len();
    let env = caller.environment_id;
    let task_id = TaskId::new();
    let mut tx = state.begin().await?;
    // every add-on named must be published now (publication is never undone), within its
    // maxQuantity: refused here, before anything is written
    addon_checks.sort_by(|a, b| (&a.addon_id, b.quantity).cmp(&(&b.addon_id, a.quantity)));
    addon_checks.dedup_by(|a, b| a.addon_id == b.addon_id);
    for holding in &addon_checks {
        store::addons::holding_version(&mut tx, env, holding).await?;
    }
    let new = NewTask {
        id: task_id,
        environment: env,
        plan_id: None,
        spec: TaskSpec::ImportSubscriptions { subscriptions: items },
        target_version_id: None,
        target_version_number: None,
        idempotency_key: None,
        max_attempts: state.settings.max_attempts,
        total: count as i64,
        policy: tasks::PolicyPin::None,
        requested_by: Some(caller.key_prefix.clone()),
    };
    let message = format!("import of {count} subscriptions");
    let event = tasks::Accepted { message: &message, actor: Some(&caller.key_prefix), data: json!({ "count": count }) };
    tasks::accept(&mut tx, &new, &event).await?;
    tx.commit(&state.hooks()).await?;
    Ok(Json(Data { data: TaskRef { task_id } }))
}
