//! `/api/v1/plans`: the catalog side of a plan (create, edit its draft, archive) and the
//! publish contract, which answers a task id at once and leaves the work to the workers.

use super::views;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{
    comma_list, double_option, entity_id, page_body, CreatedAtQuery, Json, KnownQuery, PageQuery, Path, QueryNames,
};
use crate::openapi::{Data, List, STIGG};
use crate::{preview, AppState};
use axum::extract::State;
use axum::http::HeaderMap;
use domain::{ErrorCode, MigrationType, PlanVersionStatus, PricingType, TaskId, TaskSpec, VersionChangeBehaviour};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use store::movers::Scope;
use store::plans::{self, PlanFilter, VersionFields, VersionPatch};
use store::tasks;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreatePlan {
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$")]
    id: String,
    #[schema(pattern = "\\S")]
    display_name: String,
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$")]
    product_id: String,
    billing_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    default_trial_config: Option<Map<String, Value>>,
    description: Option<String>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<Map<String, Value>>,
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$")]
    parent_plan_id: Option<String>,
    pricing_type: Option<PricingType>,
    status: Option<PlanVersionStatus>,
}

#[utoipa::path(post, path = "/api/v1/plans", operation_id = "PlanController_createPlan", tag = STIGG, request_body = CreatePlan,
    responses((status = 200, description = "The plan", body = Data<views::Plan>),
        (status = 400, description = "Bad input, or the plan exists already", body = ErrorBody),
        (status = 404, description = "No such product (`ProductNotFoundError`)", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Json(body): Json<CreatePlan>,
) -> Result<Json<Data<views::Plan>>, ApiError> {
    let id = entity_id(&body.id, "plan id")?;
    let product = entity_id(&body.product_id, "productId")?;
    if body.display_name.trim().is_empty() {
        return Err(ApiError::bad_input("displayName must not be empty"));
    }
    if let Some(parent) = &body.parent_plan_id {
        entity_id(parent, "parentPlanId")?;
    }
    let fields = VersionFields {
        display_name: body.display_name,
        description: body.description,
        billing_id: body.billing_id,
        parent_plan_id: body.parent_plan_id,
        pricing_type: body.pricing_type.map(|p| p.as_str().to_owned()),
        metadata: Value::Object(body.metadata.unwrap_or_default()),
        default_trial_config: body.default_trial_config.map(Value::Object),
        ..VersionFields::default()
    };
    let status = body.status.unwrap_or(PlanVersionStatus::Draft);
    let mut tx = state.begin().await?;
    let version =
        plans::create(&mut tx, caller.environment_id, id.as_str(), Some(product.as_str()), status, &fields).await?;
    tx.commit(&state.hooks()).await?;
    Ok(Json(Data { data: views::plan(&version) }))
}

#[utoipa::path(get, path = "/api/v1/plans/{id}", operation_id = "PlanController_getPlan", tag = STIGG, params(("id" = String, Path)),
    responses((status = 200, description = "The plan, as of its current version", body = Data<views::Plan>),
        (status = 404, description = "No such plan (`PlanNotFound`)", body = ErrorBody,
            extensions(("x-error-codes" = json!(["PlanNotFound"]))))))]
pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Data<views::Plan>>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let version = plans::current(&mut conn, caller.environment_id, &id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::PlanNotFound, format!("plan `{id}` not found")))?;
    Ok(Json(Data { data: views::plan(&version) }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    product_id: Option<String>,
    /// Comma-separated: DRAFT, PUBLISHED, ARCHIVED.
    status: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: PageQuery,
    #[serde(flatten)]
    #[param(ignore)]
    created_at: CreatedAtQuery,
}

impl QueryNames for ListQuery {
    const NAMES: &'static [&'static str] =
        &["productId", "status", "createdAt[gt]", "createdAt[gte]", "createdAt[lt]", "createdAt[lte]"];
}

#[utoipa::path(get, path = "/api/v1/plans", operation_id = "PlanController_listPlans", tag = STIGG, params(ListQuery, CreatedAtQuery, PageQuery),
    responses((status = 200, description = "A page of plans", body = List<views::Plan>)))]
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    KnownQuery(query): KnownQuery<ListQuery>,
) -> Result<Json<List<views::Plan>>, ApiError> {
    let filter = PlanFilter {
        product_id: query.product_id,
        statuses: comma_list(query.status.as_deref(), "status", &["DRAFT", "PUBLISHED", "ARCHIVED"])?,
        created: query.created_at.range()?,
        after: query.page.after()?,
        limit: query.page.limit()?,
    };
    let page = plans::list(&state.pool, caller.environment_id, &filter).await?;
    Ok(Json(page_body(&page, views::plan)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdatePlan {
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    billing_id: Option<Option<String>>,
    /// Must carry `pricingType` (FREE, PAID or CUSTOM).
    #[schema(value_type = Option<Object>)]
    charges: Option<Value>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Vec<String>>)]
    compatible_addon_ids: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Object>)]
    default_trial_config: Option<Option<Map<String, Value>>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    description: Option<Option<String>>,
    display_name: Option<String>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    parent_plan_id: Option<Option<String>>,
}

#[utoipa::path(patch, path = "/api/v1/plans/{id}", operation_id = "PlanController_updatePlan", tag = STIGG, params(("id" = String, Path)), request_body = UpdatePlan,
    responses((status = 200, description = "The edited draft", body = Data<views::Plan>),
        (status = 400, description = "Bad input, or the plan has no draft (`EditAllowedOnDraftPackageOnlyError`)", body = ErrorBody),
        (status = 404, description = "No such plan (`PlanNotFound`)", body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    Json(body): Json<UpdatePlan>,
) -> Result<Json<Data<views::Plan>>, ApiError> {
    if body.display_name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        return Err(ApiError::bad_input("displayName must not be empty"));
    }
    let pricing_type = match &body.charges {
        Some(charges) => Some(
            charges
                .get("pricingType")
                .and_then(Value::as_str)
                .map(PricingType::parse)
                .transpose()
                .map_err(|e| ApiError::bad_input(e.to_string()))?
                .ok_or_else(|| ApiError::bad_input("charges.pricingType is required"))?
                .as_str()
                .to_owned(),
        ),
        None => None,
    };
    for addon in body.compatible_addon_ids.iter().flatten().flatten() {
        entity_id(addon, "compatibleAddonIds item")?;
    }
    let patch = VersionPatch {
        display_name: body.display_name,
        description: body.description,
        billing_id: body.billing_id,
        parent_plan_id: body.parent_plan_id,
        metadata: body.metadata.map(Value::Object),
        compatible_addon_ids: body.compatible_addon_ids.map(|o| o.map(|ids| json!(ids))),
        default_trial_config: body.default_trial_config.map(|o| o.map(Value::Object)),
        charges: body.charges,
        pricing_type,
    };
    let mut tx = state.begin().await?;
    let version = plans::update_draft(&mut tx, caller.environment_id, &id, patch).await?;
    tx.commit(&state.hooks()).await?;
    Ok(Json(Data { data: views::plan(&version) }))
}

#[utoipa::path(post, path = "/api/v1/plans/{id}/draft", operation_id = "PlanController_createPlanDraft", tag = STIGG, params(("id" = String, Path)),
    responses((status = 200, description = "The new draft", body = Data<views::Plan>),
        (status = 400, description = "The plan has a draft already (`DraftAlreadyExists`) or is archived", body = ErrorBody),
        (status = 404, description = "No such plan (`PlanNotFound`)", body = ErrorBody)))]
pub async fn create_draft(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Data<views::Plan>>, ApiError> {
    let mut tx = state.begin().await?;
    let version = plans::create_draft(&mut tx, caller.environment_id, &id).await?;
    tx.commit(&state.hooks()).await?;
    Ok(Json(Data { data: views::plan(&version) }))
}

#[utoipa::path(delete, path = "/api/v1/plans/{id}/draft", operation_id = "PlanController_removePlanDraft", tag = STIGG, params(("id" = String, Path)),
    responses((status = 200, description = "The draft is gone", body = Data<PlanRef>),
        (status = 400, description = "The plan has no draft to remove", body = ErrorBody),
        (status = 404, description = "No such plan (`PlanNotFound`)", body = ErrorBody)))]
pub async fn remove_draft(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Data<PlanRef>>, ApiError> {
    let mut tx = state.begin().await?;
    plans::remove_draft(&mut tx, caller.environment_id, &id).await?;
    tx.commit(&state.hooks()).await?;
    Ok(Json(Data { data: PlanRef { id } }))
}

#[utoipa::path(post, path = "/api/v1/plans/{id}/archive", operation_id = "PlanController_archivePlan", tag = STIGG, params(("id" = String, Path)),
    responses((status = 200, description = "The archived plan", body = Data<views::Plan>),
        (status = 400, description = "A draft cannot be archived (`DraftPlanCantBeArchived`), or it is archived already", body = ErrorBody),
        (status = 404, description = "No such plan (`PlanNotFound`)", body = ErrorBody)))]
pub async fn archive(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Data<views::Plan>>, ApiError> {
    let mut tx = state.begin().await?;
    let version = plans::archive(&mut tx, caller.environment_id, &id).await?;
    tx.commit(&state.hooks()).await?;
    Ok(Json(Data { data: views::plan(&version) }))
}

/// The publish body: exactly `migrationType`, nothing else.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublishPlan {
    pub(crate) migration_type: MigrationType,
}

/// A removed draft's plan id.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanRef {
    pub id: String,
}

/// What publish (and the bulk import) answer: the id of the task to poll.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskRef {
    pub task_id: TaskId,
}

/// Reads an `Idempotency-Key` header: 1 to 255 visible characters.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(raw) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = raw
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .ok_or_else(|| ApiError::bad_input("Idempotency-Key must be 1 to 255 visible characters"))?;
    Ok(Some(key.to_owned()))
}

/// `POST /api/v1/plans/{id}/publish`: checks what is cheap to check, then commits the task and
/// its outbox row together and answers the task id.
#[utoipa::path(post, path = "/api/v1/plans/{id}/publish", operation_id = "PlanController_publishPlan", tag = STIGG, params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible characters; a retry with the same key answers the same task")), request_body = PublishPlan,
    responses((status = 200, description = "Accepted: the publish task to poll", body = Data<TaskRef>),
        (status = 400, description = "Bad input, no draft to publish (`PackageAlreadyPublished`), a draft parent or add-on, or a reused Idempotency-Key", body = ErrorBody),
        (status = 404, description = "No such plan (`PlanNotFound`)", body = ErrorBody,
            extensions(("x-error-codes" = json!(["PlanNotFound"]))))))]
pub async fn publish(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<PublishPlan>,
) -> Result<Json<Data<TaskRef>>, ApiError> {
    let plan_id = entity_id(&id, "plan id")?;
    let key = idempotency_key(&headers)?;
    let request = PublishRequest {
        spec: TaskSpec::PublishPlan { migration_type: body.migration_type },
        describe: format!("publish of version {{version}} with {}", body.migration_type),
        data: json!({ "migrationType": body.migration_type }),
        // a publish that moves nobody obeys no migration policy
        policy: match body.migration_type {
            domain::MigrationType::AllCustomers => tasks::PolicyPin::InForce,
            domain::MigrationType::NewCustomers => tasks::PolicyPin::None,
        },
    };
    // no transaction: what is written is written by one statement, with others' or alone
    let task_id = match crate::accepting::publish(&state, &caller, &plan_id, key, request).await? {
        Accepted::Existing(task_id) => return Ok(Json(Data { data: TaskRef { task_id: TaskId(task_id) } })),
        Accepted::New(task_id) => task_id,
    };
    tracing::info!(task_id = %task_id, plan_id = %plan_id, "publish accepted");
    Ok(Json(Data { data: TaskRef { task_id } }))
}

/// A task that publishes a plan's draft, as its handler describes it.
#[derive(Clone)]
pub(crate) struct PublishRequest {
    pub spec: TaskSpec,
    /// The timeline's first line; `{version}` in it becomes the draft's version number.
    pub describe: String,
    /// Added to the `accepted` event's data, with the version number.
    pub data: Value,
    /// The migration policy the task pins.
    pub policy: tasks::PolicyPin,
}

pub(crate) enum Accepted {
    /// An earlier request with the same `Idempotency-Key` was accepted as this task.
    Existing(uuid::Uuid),
    /// Inserted in the caller's transaction, with its outbox row; the caller commits.
    New(TaskId),
}

/// The accepting half of every request that publishes a draft (publish, rollout): the
/// `Idempotency-Key` replay, then one statement that pins the draft and writes the task with
/// its outbox row and first event, refused while another publish or rollout of the plan is in
/// flight; without a draft, 404 `PlanNotFound` or 400 `PackageAlreadyPublished` and nothing
/// written. Needs no transaction of its own; a caller that writes more passes its transaction.
pub(crate) async fn accept_publish(
    tx: &mut sqlx::PgConnection,
    state: &AppState,
    caller: &store::api_keys::Principal,
    plan_id: &domain::EntityId,
    key: Option<String>,
    request: PublishRequest,
) -> Result<Accepted, ApiError> {
    let env = caller.environment_id;
    if let Some(key) = &key {
        if let Some(existing) = tasks::by_idempotency_key(tx, env, key).await? {
            if existing.plan_id.as_deref() != Some(plan_id.as_str()) || existing.task_type != request.spec.task_type() {
                return Err(ApiError::bad_input("this Idempotency-Key was used for a different request"));
            }
            return Ok(Accepted::Existing(existing.id));
        }
    }
    let task_id = TaskId::new();
    let new = tasks::NewPublish {
        id: task_id,
        environment: env,
        plan_id: plan_id.as_str(),
        spec: request.spec,
        idempotency_key: key,
        max_attempts: state.settings.max_attempts,
        policy: request.policy,
    };
    let event = tasks::Accepted { message: &request.describe, actor: Some(&caller.key_prefix), data: request.data };
    match tasks::accept_publish(tx, &new, &event).await? {
        Some(_) => Ok(Accepted::New(task_id)),
        None => Err(plans::no_draft(tx, env, plan_id.as_str()).await?.into()),
    }
}

/// `POST /api/v1/plans/{id}/publish/preview` (Cutover's extension): what the same publish
/// would do, answered without doing it. The body, its validation and the refusals are
/// publish's own; the counts come from the selection the migration itself plans from, and
/// `wouldFail` from the checks the worker runs on the draft before it publishes it. Runs in a
/// read-only transaction, so it changes nothing.
#[utoipa::path(post, path = "/api/v1/plans/{id}/publish/preview", operation_id = "PlanController_previewPublishPlan", tag = STIGG, params(("id" = String, Path), PageQuery),
    request_body = PublishPlan,
    responses((status = 200, description = "What the publish would do, done nothing: counts (`affectedSubscriptionsCount`, `affectedCustomersCount`, `byDay`, `byStatus`, `byBillingPeriod`, `byFromVersion`), `firstMoveAt`/`lastMoveAt`, a page of `subscriptionIds` and of `subscriptions` (each with its monthly amounts before and after and when it moves), `revenue` (the monthly recurring revenue that would move, per currency, before and after), and `wouldFail`: the code and message the task would fail with, or null", body = Data<preview::StiggPreview>),
        (status = 400, description = "Bad input, no draft to publish, or a publish in flight", body = ErrorBody),
        (status = 404, description = "No such plan (`PlanNotFound`)", body = ErrorBody)))]
pub async fn publish_preview(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    KnownQuery(page): KnownQuery<PageQuery>,
    Json(body): Json<PublishPlan>,
) -> Result<Json<Data<preview::StiggPreview>>, ApiError> {
    let plan_id = entity_id(&id, "plan id")?;
    let env = caller.environment_id;
    let mut tx = store::begin_read_only(&state.pool).await?;
    let draft = plans::draft_to_publish(&mut tx, env, plan_id.as_str()).await?;
    plans::refuse_while_publishing(&mut tx, env, plan_id.as_str()).await?;
    let scope = Scope {
        environment: env,
        plan_id: plan_id.as_str().to_owned(),
        target_version_number: draft.version_number,
        behaviour: VersionChangeBehaviour::from(body.migration_type),
        effective_from: None,
        policy: None,
        policy_at: None,
    };
    let scope = preview::under_policy(&mut tx, scope).await?;
    let counted = preview::run(&mut tx, &scope, &page).await?;
    let (impact, movers) = preview::revenue(&mut tx, &scope, store::revenue::Pricing::Charges, &page).await?;
    let would_fail = preview::would_fail(&mut tx, env, domain::TaskType::PublishPlan, Some(draft.id)).await?;
    tx.rollback().await?;
    Ok(Json(Data {
        data: preview::StiggPreview {
            migration_type: body.migration_type,
            affected_subscriptions_count: counted.total,
            subscription_ids: counted.ids.items.clone(),
            subscriptions: preview::movers(&movers),
            moves: preview::moves(&scope, &counted, &impact, would_fail),
        },
    }))
}
