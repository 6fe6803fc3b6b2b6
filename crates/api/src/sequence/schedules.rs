//! `/billing-schedules`: Sequence's billing schedules, which are Stigg's subscriptions — the
//! same rows. A schedule is created on its plan's newest LIVE version and shows its next
//! billing date and its scheduled version change, if any.

use super::views;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{entity_id, Json, KnownQuery, PageQuery, Pagination, Path, QueryNames};
use crate::openapi::{List, SEQUENCE};
use crate::AppState;
use axum::extract::State;
use chrono::{DateTime, Utc};
use domain::{BillingPeriod, ErrorCode};
use serde::Deserialize;
use serde_json::{Map, Value};
use store::subscriptions::{self, NewSubscription, Subscription, SubscriptionFilter};
use store::version_changes;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSchedule {
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$")]
    id: Option<String>,
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$")]
    customer_id: String,
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$")]
    plan_id: String,
    billing_period: Option<BillingPeriod>,
    start_date: Option<DateTime<Utc>>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<Map<String, Value>>,
}

async fn render(
    conn: &mut sqlx::PgConnection,
    env: domain::EnvironmentId,
    s: &Subscription,
) -> Result<views::BillingSchedule, ApiError> {
    let changes = version_changes::for_subscription(conn, env, &s.id).await?;
    let scheduled = changes.iter().find(|c| c.status == "SCHEDULED");
    Ok(views::schedule(s, scheduled))
}

#[utoipa::path(post, path = "/billing-schedules", operation_id = "SequenceBillingScheduleController_createBillingSchedule", tag = SEQUENCE, request_body = CreateSchedule,
    responses((status = 200, description = "The billing schedule, on its plan's newest LIVE version", body = views::BillingSchedule),
        (status = 400, description = "Bad input, the id is taken, or the plan has no LIVE version", body = ErrorBody),
        (status = 404, description = "No such customer or plan", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Json(body): Json<CreateSchedule>,
) -> Result<Json<views::BillingSchedule>, ApiError> {
    let env = caller.environment_id;
    let id = match &body.id {
        Some(id) => entity_id(id, "billing schedule id")?.into_string(),
        None => uuid::Uuid::new_v4().to_string(),
    };
    let customer = entity_id(&body.customer_id, "customerId")?;
    let plan = entity_id(&body.plan_id, "planId")?;
    let mut tx = state.begin().await?;
    let schedule = subscriptions::create(
        &mut tx,
        env,
        &NewSubscription {
            id,
            customer_id: customer.into_string(),
            plan_id: plan.into_string(),
            billing_period: body.billing_period.unwrap_or(BillingPeriod::Monthly),
            start_date: body.start_date,
            end_date: None,
            status: None,
            billing_id: None,
            resource_id: None,
            metadata: Value::Object(body.metadata.unwrap_or_default()),
        },
    )
    .await?;
    let rendered = render(&mut tx, env, &schedule).await?;
    tx.commit(&state.hooks()).await?;
    Ok(Json(rendered))
}

#[utoipa::path(get, path = "/billing-schedules/{id}", operation_id = "SequenceBillingScheduleController_getBillingSchedule", tag = SEQUENCE, params(("id" = String, Path)),
    responses((status = 200, description = "The billing schedule", body = views::BillingSchedule),
        (status = 404, description = "No such billing schedule (`SubscriptionNotFound`)", body = ErrorBody,
            extensions(("x-error-codes" = json!(["SubscriptionNotFound"]))))))]
pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<views::BillingSchedule>, ApiError> {
    let env = caller.environment_id;
    let mut conn = state.pool.acquire().await?;
    let schedule = subscriptions::get(&mut conn, env, &id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::SubscriptionNotFound, format!("billing schedule `{id}` not found")))?;
    Ok(Json(render(&mut conn, env, &schedule).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    plan_id: Option<String>,
    customer_id: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: PageQuery,
}

impl QueryNames for ListQuery {
    const NAMES: &'static [&'static str] = &["planId", "customerId"];
}

#[utoipa::path(get, path = "/billing-schedules", operation_id = "SequenceBillingScheduleController_listBillingSchedules", tag = SEQUENCE, params(ListQuery, PageQuery),
    responses((status = 200, description = "A page of billing schedules", body = List<views::BillingSchedule>)))]
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    KnownQuery(query): KnownQuery<ListQuery>,
) -> Result<Json<List<views::BillingSchedule>>, ApiError> {
    let env = caller.environment_id;
    let filter = SubscriptionFilter {
        customer_id: query.customer_id,
        plan_id: query.plan_id,
        after: query.page.after()?,
        limit: query.page.limit()?,
        ..SubscriptionFilter::default()
    };
    let rows = subscriptions::list(&state.pool, env, &filter).await?;
    let mut conn = state.pool.acquire().await?;
    let mut rendered = Vec::with_capacity(rows.items.len());
    for s in &rows.items {
        rendered.push(render(&mut conn, env, s).await?);
    }
    Ok(Json(List { data: rendered, pagination: Pagination { next: rows.next, prev: None } }))
}
