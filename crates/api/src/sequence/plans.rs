//! `/plans`: Sequence's plans. `POST` makes version 1 a DRAFT; `PUT` edits a DRAFT in place
//! (and publishes it when it carries `versionChangeBehaviour`), and on a LIVE plan publishes
//! version N+1 at once, answering the new Plan with the migration task's id in `X-Task-Id`.
//! `PUT` honours `Idempotency-Key`: the same key with the same body answers the same Plan and
//! the same task, and does nothing twice.

use super::views;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{entity_id, Json, KnownQuery, PageQuery, Pagination, Path};
use crate::openapi::{List, SEQUENCE};
use crate::stigg::plans::idempotency_key;
use crate::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use domain::{Currency, EnvironmentId, ErrorCode, TaskId, VersionChangeBehaviour};
use serde::Deserialize;
use serde_json::Value;
use sqlx::PgConnection;
use store::idempotency::{self, KeyState};
use store::movers::Scope;
use store::plans::{self as plan_rows, PlanFilter, PlanVersion};
use store::prices;
use store::sequence_plans::{self, PlanInput};
use utoipa::ToSchema;

/// The body of `POST /plans` and `PUT /plans/{planId}`: the contract's fields, nothing else.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlanBody {
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$")]
    id: Option<String>,
    #[schema(pattern = "\\S")]
    name: String,
    #[schema(pattern = "\\S")]
    label: String,
    currency: Currency,
    /// A non-negative decimal number, as a string.
    #[schema(pattern = "^[0-9]+(\\.[0-9]+)?$")]
    minimum: Option<String>,
    price_ids: Vec<String>,
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$")]
    parent_id: Option<String>,
    /// Customer ids; empty: every customer.
    eligible_customer_ids: Vec<String>,
    version_effective_from: Option<DateTime<Utc>>,
    version_change_behaviour: Option<VersionChangeBehaviour>,
    make_version_effective_from_outset: Option<bool>,
}

/// Parses and checks a body; every refusal is 400 `BadUserInput` (or 404 for a price that
/// does not exist; 400 naming a price in another currency than the plan's) and happens before
/// anything is written.
async fn input(
    conn: &mut PgConnection,
    env: EnvironmentId,
    raw: Value,
) -> Result<(Option<String>, PlanInput), ApiError> {
    if !raw.is_object() {
        return Err(ApiError::bad_input("expected a JSON object"));
    }
    let body: PlanBody = serde_json::from_value(raw).map_err(|e| ApiError::bad_input(e.to_string()))?;
    if body.name.trim().is_empty() {
        return Err(ApiError::bad_input("name must not be empty"));
    }
    if body.label.trim().is_empty() {
        return Err(ApiError::bad_input("label must not be empty"));
    }
    if let Some(minimum) = &body.minimum {
        if minimum.trim().parse::<f64>().map_or(true, |m| !m.is_finite() || m < 0.0) {
            return Err(ApiError::bad_input("minimum must be a non-negative decimal number, as a string"));
        }
    }
    for (i, id) in body.price_ids.iter().enumerate() {
        entity_id(id, &format!("priceIds[{i}]"))?;
    }
    if let Some(parent) = &body.parent_id {
        entity_id(parent, "parentId")?;
    }
    prices::require_all(conn, env, &body.price_ids).await?;
    let currency = body.currency.as_str();
    if let Some(other) = prices::many(conn, env, &body.price_ids).await?.into_iter().find(|p| p.currency != currency) {
        return Err(ApiError::bad_input(format!(
            "price `{}` is in {}, not in the plan's currency {currency}",
            other.id, other.currency
        )));
    }
    let id = body.id.map(|id| entity_id(&id, "plan id").map(|i| i.into_string())).transpose()?;
    Ok((
        id,
        PlanInput {
            name: body.name,
            label: body.label,
            currency: body.currency.as_str().to_owned(),
            minimum: body.minimum,
            price_ids: body.price_ids,
            parent_id: body.parent_id,
            eligible_customer_ids: Value::Array(body.eligible_customer_ids.into_iter().map(Value::String).collect()),
            version_effective_from: body.version_effective_from,
            behaviour: body.version_change_behaviour,
            effective_from_outset: body.make_version_effective_from_outset.unwrap_or(false),
        },
    ))
}

/// 404 `PlanNotFound` unless the plan exists in this environment. `PUT` and its preview look
/// the plan up before the body's prices, so another environment's plan is not found whatever
/// the body lists.
async fn require_plan(conn: &mut PgConnection, env: EnvironmentId, plan_id: &str) -> Result<(), ApiError> {
    match plan_rows::current(conn, env, plan_id).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::new(ErrorCode::PlanNotFound, format!("plan `{plan_id}` not found"))),
    }
}

/// The plan as the contract shows it.
pub(crate) async fn render(
    conn: &mut PgConnection,
    env: EnvironmentId,
    v: &PlanVersion,
) -> Result<views::Plan, ApiError> {
    let ids: Vec<String> = serde_json::from_value(v.price_ids.clone()).unwrap_or_default();
    let prices = prices::many(conn, env, &ids).await?;
    let count = sequence_plans::schedules_count(conn, env, &v.plan_id).await?;
    Ok(views::plan(v, env, &prices, count))
}

#[utoipa::path(post, path = "/plans", operation_id = "SequencePlanController_createPlan", tag = SEQUENCE, request_body = PlanBody,
    responses((status = 200, description = "The plan: version 1, a DRAFT", body = views::Plan),
        (status = 400, description = "Bad input, the id is taken, or a price in another currency than the plan's", body = ErrorBody),
        (status = 404, description = "A listed price does not exist (`PriceNotFound`)", body = ErrorBody,
            extensions(("x-error-codes" = json!(["PriceNotFound"]))))))]
pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Json(raw): Json<Value>,
) -> Result<Json<views::Plan>, ApiError> {
    let env = caller.environment_id;
    let mut tx = state.begin().await?;
    let (id, input) = input(&mut tx, env, raw).await?;
    let id = id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let version = sequence_plans::create(&mut tx, env, &id, &input).await?;
    let body = render(&mut tx, env, &version).await?;
    tx.commit(&state.hooks()).await?;
    Ok(Json(body))
}

#[utoipa::path(get, path = "/plans/{id}", operation_id = "SequencePlanController_getPlan", tag = SEQUENCE, params(("id" = String, Path)),
    responses((status = 200, description = "The plan, as of its current version", body = views::Plan),
        (status = 404, description = "No such plan (`PlanNotFound`)", body = ErrorBody,
            extensions(("x-error-codes" = json!(["PlanNotFound"]))))))]
pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<views::Plan>, ApiError> {
    let env = caller.environment_id;
    let mut conn = state.pool.acquire().await?;
    let version = plan_rows::current(&mut conn, env, &id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::PlanNotFound, format!("plan `{id}` not found")))?;
    Ok(Json(render(&mut conn, env, &version).await?))
}

#[utoipa::path(get, path = "/plans", operation_id = "SequencePlanController_listPlans", tag = SEQUENCE, params(PageQuery),
    responses((status = 200, description = "A page of plans", body = List<views::Plan>)))]
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    KnownQuery(page): KnownQuery<PageQuery>,
) -> Result<Json<List<views::Plan>>, ApiError> {
    let env = caller.environment_id;
    let filter = PlanFilter { after: page.after()?, limit: page.limit()?, ..PlanFilter::default() };
    let rows = plan_rows::list(&state.pool, env, &filter).await?;
    let mut conn = state.pool.acquire().await?;
    let mut rendered = Vec::with_capacity(rows.items.len());
    for v in &rows.items {
        rendered.push(render(&mut conn, env, v).await?);
    }
    Ok(Json(List { data: rendered, pagination: Pagination { next: rows.next, prev: None } }))
}

fn answer(body: Value, task: Option<TaskId>) -> Response {
    let mut response = (StatusCode::OK, axum::Json(body)).into_response();
    if let Some(task) = task {
        if let Ok(value) = HeaderValue::from_str(&task.to_string()) {
            response.headers_mut().insert("x-task-id", value);
        }
    }
    response
}

/// `PUT /plans/{planId}`.
#[utoipa::path(put, path = "/plans/{id}", operation_id = "SequencePlanController_updatePlan", tag = SEQUENCE,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible characters; the same key with the same body answers the same plan and task")),
    request_body = PlanBody,
    responses((status = 200, description = "The plan as updated; when a version was published, `X-Task-Id` names the migration task", body = views::Plan,
            headers(("X-Task-Id" = String, description = "The migration task's id, when a version was published"))),
        (status = 400, description = "Bad input, the body's id differs, a price in another currency than the plan's, a retired plan, or a reused Idempotency-Key", body = ErrorBody),
        (status = 404, description = "No such plan in this environment (`PlanNotFound`, looked up first), or no such price (`PriceNotFound`)", body = ErrorBody,
            extensions(("x-error-codes" = json!(["PlanNotFound", "PriceNotFound"]))))))]
pub async fn update(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(raw): Json<Value>,
) -> Result<Response, ApiError> {
    let env = caller.environment_id;
    let plan_id = entity_id(&id, "plan id")?;
    let key = idempotency_key(&headers)?;
    let mut tx = state.begin().await?;
    if let Some(key) = &key {
        let fingerprint = idempotency::fingerprint("PUT", &format!("/plans/{plan_id}"), &raw);
        match idempotency::begin(&mut tx, env, key, &fingerprint).await? {
            KeyState::Fresh => {}
            KeyState::Replay { response, task_id, .. } => return Ok(answer(response, task_id)),
            KeyState::Mismatch => {
                return Err(ApiError::bad_input("this Idempotency-Key was used for a different request"))
            }
        }
    }
    require_plan(&mut tx, env, plan_id.as_str()).await?;
    let (body_id, input) = input(&mut tx, env, raw).await?;
    if body_id.as_deref().is_some_and(|b| b != plan_id.as_str()) {
        return Err(ApiError::bad_input("the body's id differs from the path's"));
    }
    let updated =
        sequence_plans::update(&mut tx, env, plan_id.as_str(), &input, state.settings.max_attempts, &caller.key_prefix)
            .await?;
    let body = serde_json::to_value(render(&mut tx, env, &updated.version).await?)
        .map_err(|e| ApiError::Unexpected(e.into()))?;
    if let Some(key) = &key {
        idempotency::record(&mut tx, env, key, 200, &body, updated.task).await?;
    }
    tx.commit(&state.hooks()).await?;
    if let Some(task) = updated.task {
        tracing::info!(task_id = %task, plan_id = %plan_id, version = updated.version.version_number, "plan update accepted");
    }
    Ok(answer(body, updated.task))
}

/// `POST /plans/{planId}/preview` (Cutover's extension): what the same `PUT /plans/{planId}`
/// would do to existing billing schedules, answered without doing it. The body, its checks and
/// the refusals are the `PUT`'s own; the counts come from the selection the migration itself
/// plans from, and `wouldFail` from `store::catalog::planning_refusal` for the migration task
/// (a Sequence update's planning meets no catalog refusal, so it is null). Runs in a read-only
/// transaction, so it changes nothing.
#[utoipa::path(post, path = "/plans/{id}/preview", operation_id = "SequencePlanController_previewUpdatePlan", tag = SEQUENCE, params(("id" = String, Path), PageQuery),
    request_body = PlanBody,
    responses((status = 200, description = "What the same PUT would do, done nothing: `publishes`, counts (`affectedSchedulesCount`, `affectedCustomersCount`, `byDay`, `byStatus`, `byBillingPeriod`, `byFromVersion`), `firstMoveAt`/`lastMoveAt`, a page of `billingScheduleIds` and of `billingSchedules` (each with its monthly amounts before and after and when it moves), `revenue` (the monthly recurring revenue that would move, per currency, before and after), and `wouldFail`: the code and message the migration task would fail with, or null", body = crate::preview::SequencePreview),
        (status = 400, description = "Bad input, the body's id differs, a price in another currency than the plan's, or a retired plan", body = ErrorBody),
        (status = 404, description = "No such plan in this environment (`PlanNotFound`, looked up first), or no such price (`PriceNotFound`)", body = ErrorBody,
            extensions(("x-error-codes" = json!(["PlanNotFound", "PriceNotFound"]))))))]
pub async fn preview(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    KnownQuery(page): KnownQuery<PageQuery>,
    Json(raw): Json<Value>,
) -> Result<Json<crate::preview::SequencePreview>, ApiError> {
    let env = caller.environment_id;
    let plan_id = entity_id(&id, "plan id")?;
    let mut tx = store::begin_read_only(&state.pool).await?;
    require_plan(&mut tx, env, plan_id.as_str()).await?;
    let (body_id, input) = input(&mut tx, env, raw).await?;
    if body_id.as_deref().is_some_and(|b| b != plan_id.as_str()) {
        return Err(ApiError::bad_input("the body's id differs from the path's"));
    }
    let intent = sequence_plans::intent(&mut tx, env, plan_id.as_str(), &input).await?;
    let scope = Scope {
        environment: env,
        plan_id: plan_id.as_str().to_owned(),
        target_version_number: intent.target_version_number,
        behaviour: intent.behaviour,
        effective_from: input.version_effective_from,
        policy: None,
        policy_at: None,
    };
    let scope = crate::preview::under_policy(&mut tx, scope).await?;
    let counted = crate::preview::run(&mut tx, &scope, &page).await?;
    let pricing = store::revenue::Pricing::Prices { price_ids: &input.price_ids, minimum: input.minimum.as_deref() };
    let (impact, movers) = crate::preview::revenue(&mut tx, &scope, pricing, &page).await?;
    // the version the PUT would publish: the draft itself, or N+1, which it would create
    let version = (intent.current.status() == domain::PlanVersionStatus::Draft).then_some(intent.current.id);
    let task_type = domain::TaskType::SubscriptionMigration;
    let would_fail = crate::preview::would_fail(&mut tx, env, task_type, version).await?;
    tx.rollback().await?;
    Ok(Json(crate::preview::SequencePreview {
        publishes: intent.publishes,
        affected_schedules_count: counted.total,
        billing_schedule_ids: counted.ids.items.clone(),
        billing_schedules: crate::preview::movers(&movers),
        moves: crate::preview::moves(&scope, &counted, &impact, would_fail),
    }))
}
