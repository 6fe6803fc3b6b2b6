//! `/api/v1/addons`: add-ons as packages of their own, versioned like plans (create, edit the
//! draft, start or remove a draft) and their publish, which is the plan publish's contract
//! (`migrationType` → `{"data":{"taskId"}}`, same error codes): with ALL_CUSTOMERS its task
//! moves every live subscription holding an older version of the add-on.

use super::plans::{idempotency_key, PublishPlan, TaskRef};
use super::views;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{
    comma_list, double_option, entity_id, page_body, CreatedAtQuery, Json, KnownQuery, PageQuery, Pagination, Path,
    QueryNames,
};
use crate::openapi::{Data, List, STIGG};
use crate::{preview, AppState};
use axum::extract::State;
use axum::http::HeaderMap;
use domain::{BillingPeriod, MigrationType, PlanVersionStatus, PricingType, SubscriptionStatus, TaskId, TaskSpec};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use store::addons::{self, AddonFields, AddonFilter, AddonPatch};
use store::tasks;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateAddon {
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$")]
    id: String,
    #[schema(pattern = "\\S")]
    display_name: String,
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$")]
    product_id: String,
    billing_id: Option<String>,
    description: Option<String>,
    /// No upper bound when absent; at least 1.
    #[schema(minimum = 1)]
    max_quantity: Option<i32>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<Map<String, Value>>,
    pricing_type: Option<PricingType>,
    status: Option<PlanVersionStatus>,
}

fn check_max_quantity(max: Option<i32>) -> Result<(), ApiError> {
    match max {
        Some(max) if max < 1 => Err(ApiError::bad_input("maxQuantity must be at least 1")),
        _ => Ok(()),
    }
}

#[utoipa::path(post, path = "/api/v1/addons", operation_id = "AddonController_createAddon", tag = STIGG, request_body = CreateAddon,
    responses((status = 200, description = "The add-on", body = Data<views::Addon>),
        (status = 400, description = "Bad input, or the add-on exists already", body = ErrorBody,
            extensions(("x-error-codes" = json!(["BadUserInput"])))),
        (status = 404, description = "No such product (`ProductNotFoundError`)", body = ErrorBody,
            extensions(("x-error-codes" = json!(["ProductNotFoundError"]))))))]
pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Json(body): Json<CreateAddon>,
) -> Result<Json<Data<views::Addon>>, ApiError> {
    let id = entity_id(&body.id, "addon id")?;
    let product = entity_id(&body.product_id, "productId")?;
    if body.display_name.trim().is_empty() {
        return Err(ApiError::bad_input("displayName must not be empty"));
    }
    check_max_quantity(body.max_quantity)?;
    let fields = AddonFields {
        display_name: body.display_name,
        description: body.description,
        billing_id: body.billing_id,
        pricing_type: body.pricing_type.map(|p| p.as_str().to_owned()),
        metadata: Value::Object(body.metadata.unwrap_or_default()),
        max_quantity: body.max_quantity,
        dependencies: Vec::new(),
        charges: None,
    };
    let status = body.status.unwrap_or(PlanVersionStatus::Draft);
    let mut tx = state.begin().await?;
    let version =
        addons::create(&mut tx, caller.environment_id, id.as_str(), product.as_str(), status, &fields).await?;
    tx.commit(&state.hooks()).await?;
    Ok(Json(Data { data: views::addon(&version) }))
}

#[utoipa::path(get, path = "/api/v1/addons/{id}", operation_id = "AddonController_getAddon", tag = STIGG, params(("id" = String, Path)),
    responses((status = 200, description = "The add-on, as of its current version", body = Data<views::Addon>),
        (status = 404, description = "No such add-on (`AddonNotFound`)", body = ErrorBody,
            extensions(("x-error-codes" = json!(["AddonNotFound"]))))))]
pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Data<views::Addon>>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let version =
        addons::current(&mut conn, caller.environment_id, &id).await?.ok_or_else(|| addons::not_found(&id))?;
    Ok(Json(Data { data: views::addon(&version) }))
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

#[utoipa::path(get, path = "/api/v1/addons", operation_id = "AddonController_listAddons", tag = STIGG, params(ListQuery, CreatedAtQuery, PageQuery),
    responses((status = 200, description = "A page of add-ons", body = List<views::Addon>)))]
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    KnownQuery(query): KnownQuery<ListQuery>,
) -> Result<Json<List<views::Addon>>, ApiError> {
    let filter = AddonFilter {
        product_id: query.product_id,
        statuses: comma_list(query.status.as_deref(), "status", &["DRAFT", "PUBLISHED", "ARCHIVED"])?,
        created: query.created_at.range()?,
        after: query.page.after()?,
        limit: query.page.limit()?,
    };
    let page = addons::list(&state.pool, caller.environment_id, &filter).await?;
    Ok(Json(page_body(&page, views::addon)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateAddon {
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    billing_id: Option<Option<String>>,
    /// A full replace of the draft's pricing; must carry `pricingType` (FREE, PAID or CUSTOM).
    #[schema(value_type = Option<Object>)]
    charges: Option<Value>,
    /// Ids of the add-ons this one depends on; each must exist.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Vec<String>>)]
    dependencies: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    description: Option<Option<String>>,
    display_name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i32>, minimum = 1)]
    max_quantity: Option<Option<i32>>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<Map<String, Value>>,
    /// Only DRAFT, the status of what this edits: a version is published through `publish`.
    status: Option<PlanVersionStatus>,
}

#[utoipa::path(patch, path = "/api/v1/addons/{id}", operation_id = "AddonController_updateAddon", tag = STIGG, params(("id" = String, Path)), request_body = UpdateAddon,
    responses((status = 200, description = "The edited draft", body = Data<views::Addon>),
        (status = 400, description = "Bad input, the add-on has no draft (`EditAllowedOnDraftPackageOnlyError`), or a publish of it is in flight", body = ErrorBody,
            extensions(("x-error-codes" = json!(["BadUserInput", "EditAllowedOnDraftPackageOnlyError", "ObjectAlreadyBeingUsedByAnotherRequestError"])))),
        (status = 404, description = "No such add-on (`AddonNotFound`), or a dependency names none (`AddonsNotFound`)", body = ErrorBody,
            extensions(("x-error-codes" = json!(["AddonNotFound", "AddonsNotFound"]))))))]
pub async fn update(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    Json(body): Json<UpdateAddon>,
) -> Result<Json<Data<views::Addon>>, ApiError> {
    if body.display_name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        return Err(ApiError::bad_input("displayName must not be empty"));
    }
    if let Some(status) = body.status.filter(|s| *s != PlanVersionStatus::Draft) {
        return Err(ApiError::bad_input(format!(
            "status {status} cannot be set by an edit; publish the draft (POST /api/v1/addons/{{id}}/publish)"
        )));
    }
    check_max_quantity(body.max_quantity.flatten())?;
    for dependency in body.dependencies.iter().flatten().flatten() {
        entity_id(dependency, "dependencies item")?;
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
    let patch = AddonPatch {
        display_name: body.display_name,
        description: body.description,
        billing_id: body.billing_id,
        metadata: body.metadata.map(Value::Object),
        max_quantity: body.max_quantity,
        dependencies: body.dependencies,
        charges: body.charges,
        pricing_type,
    };
    let mut tx = state.begin().await?;
    let version = addons::update_draft(&mut tx, caller.environment_id, &id, patch).await?;
    tx.commit(&state.hooks()).await?;
    Ok(Json(Data { data: views::addon(&version) }))
}

#[utoipa::path(post, path = "/api/v1/addons/{id}/draft", operation_id = "AddonController_createAddonDraft", tag = STIGG, params(("id" = String, Path)),
    responses((status = 200, description = "The new draft, a copy of the newest version", body = Data<views::Addon>),
        (status = 400, description = "The add-on has a draft already (`DraftAlreadyExists`)", body = ErrorBody,
            extensions(("x-error-codes" = json!(["DraftAlreadyExists"])))),
        (status = 404, description = "No such add-on (`AddonNotFound`)", body = ErrorBody,
            extensions(("x-error-codes" = json!(["AddonNotFound"]))))))]
pub async fn create_draft(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Data<views::Addon>>, ApiError> {
    let mut tx = state.begin().await?;
    let version = addons::create_draft(&mut tx, caller.environment_id, &id).await?;
    tx.commit(&state.hooks()).await?;
    Ok(Json(Data { data: views::addon(&version) }))
}

/// A removed draft's add-on id (the SDK's `AddonRemoveDraftResponse`).
#[derive(Debug, Serialize, ToSchema)]
pub struct AddonRef {
    pub id: String,
}

#[utoipa::path(delete, path = "/api/v1/addons/{id}/draft", operation_id = "AddonController_removeAddonDraft", tag = STIGG, params(("id" = String, Path)),
    responses((status = 200, description = "The draft is gone", body = Data<AddonRef>),
        (status = 400, description = "The add-on has no draft to remove, its draft is its only version, or a publish of it is in flight", body = ErrorBody,
            extensions(("x-error-codes" = json!(["BadUserInput", "ObjectAlreadyBeingUsedByAnotherRequestError"])))),
        (status = 404, description = "No such add-on (`AddonNotFound`)", body = ErrorBody,
            extensions(("x-error-codes" = json!(["AddonNotFound"]))))))]
pub async fn remove_draft(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Data<AddonRef>>, ApiError> {
    let mut tx = state.begin().await?;
    addons::remove_draft(&mut tx, caller.environment_id, &id).await?;
    tx.commit(&state.hooks()).await?;
    Ok(Json(Data { data: AddonRef { id } }))
}

#[utoipa::path(post, path = "/api/v1/addons/{id}/archive", operation_id = "AddonController_archiveAddon", tag = STIGG, params(("id" = String, Path)),
    responses((status = 200, description = "The archived add-on: new subscriptions cannot take it; its holders keep it", body = Data<views::Addon>),
        (status = 400, description = "Never published (`DraftAddonCantBeArchived`), archived already, or a publish of it is in flight", body = ErrorBody,
            extensions(("x-error-codes" = json!(["BadUserInput", "DraftAddonCantBeArchived", "ObjectAlreadyBeingUsedByAnotherRequestError"])))),
        (status = 404, description = "No such add-on (`AddonNotFound`)", body = ErrorBody,
            extensions(("x-error-codes" = json!(["AddonNotFound"]))))))]
pub async fn archive(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Data<views::Addon>>, ApiError> {
    let mut tx = state.begin().await?;
    let version = addons::archive(&mut tx, caller.environment_id, &id).await?;
    tx.commit(&state.hooks()).await?;
    Ok(Json(Data { data: views::addon(&version) }))
}

/// `POST /api/v1/addons/{id}/publish`: the plan publish's contract for an add-on. One
/// statement pins the draft and writes the task (holding the add-on), its outbox row and its
/// first event, and the handler answers the task id; the workers do the rest.
#[utoipa::path(post, path = "/api/v1/addons/{id}/publish", operation_id = "AddonController_publishAddon", tag = STIGG, params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible characters; a retry with the same key answers the same task")), request_body = PublishPlan,
    responses((status = 200, description = "Accepted: the publish task to poll", body = Data<TaskRef>),
        (status = 400, description = "Bad input, no draft to publish (`PackageAlreadyPublished`), a publish of the add-on in flight, or a reused Idempotency-Key", body = ErrorBody),
        (status = 404, description = "No such add-on (`AddonNotFound`)", body = ErrorBody,
            extensions(("x-error-codes" = json!(["AddonNotFound"]))))))]
pub async fn publish(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<PublishPlan>,
) -> Result<Json<Data<TaskRef>>, ApiError> {
    let addon_id = entity_id(&id, "addon id")?;
    let key = idempotency_key(&headers)?;
    let env = caller.environment_id;
    let migration_type = body.migration_type;
    let spec = TaskSpec::PublishAddon { migration_type };
    let mut work = store::Work::single(&state.pool).await?;
    if let Some(key) = &key {
        if let Some(existing) = tasks::by_idempotency_key(&mut work, env, key).await? {
            let same =
                existing.addon_id.as_deref() == Some(addon_id.as_str()) && existing.task_type == spec.task_type();
            if !same {
                return Err(ApiError::bad_input("this Idempotency-Key was used for a different request"));
            }
            return Ok(Json(Data { data: TaskRef { task_id: TaskId(existing.id) } }));
        }
    }
    // a publish that moves holders obeys the add-on's migration policy; its moves cannot wait
    // for a notice (an add-on's moves are never scheduled), so a notice is refused, not ignored
    let policy = match migration_type {
        MigrationType::NewCustomers => tasks::PolicyPin::None,
        MigrationType::AllCustomers => {
            let package = store::policies::Package::Addon(addon_id.as_str());
            let in_force = store::policies::in_force_stored(&mut work, env, package).await?;
            if let Some(notice) = in_force.as_ref().and_then(|s| s.policy.notice_period.as_ref()) {
                return Err(ApiError::bad_input(format!(
                    "the migration policy in force for add-on `{addon_id}` has a noticePeriod ({notice}): an add-on \
                     publish moves its holders at once and cannot wait for notice; remove the notice from the \
                     add-on's policy, or publish with NEW_CUSTOMERS"
                )));
            }
            tasks::PolicyPin::InForce
        }
    };
    let task_id = TaskId::new();
    let message = format!("publish of add-on version {{version}} with {migration_type}");
    let new = addons::NewPublish {
        id: task_id,
        environment: env,
        addon_id: addon_id.as_str(),
        spec,
        idempotency_key: key,
        max_attempts: state.settings.max_attempts,
        message: &message,
        actor: Some(&caller.key_prefix),
        data: json!({ "migrationType": migration_type }),
        policy,
    };
    if addons::accept_publish(&mut work, &new).await?.is_none() {
        return Err(addons::no_draft(&mut work, env, addon_id.as_str()).await?.into());
    }
    work.commit(&state.hooks()).await?;
    tracing::info!(task_id = %task_id, addon_id = %addon_id, "add-on publish accepted");
    Ok(Json(Data { data: TaskRef { task_id } }))
}

/// `POST /api/v1/addons/{id}/publish/preview`'s answer: what the publish would move.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddonPublishPreview {
    pub addon_id: String,
    /// The version the publish would publish (the add-on's draft).
    pub target_version: i32,
    pub migration_type: MigrationType,
    /// How many live subscriptions holding an older version of the add-on would move (none
    /// with NEW_CUSTOMERS).
    pub affected_subscriptions_count: i64,
    /// The distinct customers of those.
    pub affected_customers_count: i64,
    /// How many of each live status would move (0 where none).
    pub by_status: BTreeMap<String, i64>,
    /// How many of each billing period would move (0 where none).
    pub by_billing_period: BTreeMap<String, i64>,
    /// How many would move from each older version of the add-on, in version order.
    pub by_from_version: Vec<preview::FromVersion>,
    /// One page of those that would move, in creation order.
    pub subscription_ids: Vec<String>,
    /// The cursor (`after`) of the next page of ids.
    pub pagination: Pagination,
    /// Why the task would fail once a worker plans it; an add-on publish has no catalog
    /// checks beyond the draft itself, so this is null.
    #[schema(required = true)]
    pub would_fail: Option<preview::WouldFail>,
    /// Holders the add-on's migration policy in force would leave alone (not counted above),
    /// and by reason: `status`, `customer`, `metadata`, `renewingWithin` (0 where none).
    pub excluded_count: i64,
    pub excluded_by_reason: BTreeMap<String, i64>,
    /// Whether the task would wait for an admin other than the requester to approve it.
    pub requires_approval: bool,
}

/// `POST /api/v1/addons/{id}/publish/preview` (Cutover's extension, as the plan publish's
/// preview): the publish's body, validation and refusals, answered with what it would move and
/// nothing done, from the selection its task plans from. Runs in a read-only transaction.
#[utoipa::path(post, path = "/api/v1/addons/{id}/publish/preview", operation_id = "AddonController_previewPublishAddon", tag = STIGG, params(("id" = String, Path), PageQuery),
    request_body = PublishPlan,
    responses((status = 200, description = "What the publish would move, done nothing", body = Data<AddonPublishPreview>),
        (status = 400, description = "Bad input, no draft to publish, or a publish of the add-on in flight", body = ErrorBody,
            extensions(("x-error-codes" = json!(["BadUserInput", "PackageAlreadyPublished", "ObjectAlreadyBeingUsedByAnotherRequestError"])))),
        (status = 404, description = "No such add-on (`AddonNotFound`)", body = ErrorBody,
            extensions(("x-error-codes" = json!(["AddonNotFound"]))))))]
pub async fn publish_preview(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    KnownQuery(page): KnownQuery<PageQuery>,
    Json(body): Json<PublishPlan>,
) -> Result<Json<Data<AddonPublishPreview>>, ApiError> {
    let addon_id = entity_id(&id, "addon id")?;
    let env = caller.environment_id;
    let (after, limit) = (page.after()?, page.limit()?);
    let mut tx = store::begin_read_only(&state.pool).await?;
    let (_, target_version) = addons::draft_to_publish(&mut tx, env, addon_id.as_str()).await?;
    let counted = match body.migration_type {
        MigrationType::AllCustomers => {
            let package = store::policies::Package::Addon(addon_id.as_str());
            let in_force = store::policies::in_force_stored(&mut tx, env, package).await?.map(|s| s.policy);
            let counted =
                addons::preview(&mut tx, env, addon_id.as_str(), target_version, in_force.as_ref(), after, limit)
                    .await?;
            (counted, in_force)
        }
        MigrationType::NewCustomers => (addons::AddonPreview::default(), None),
    };
    let (counted, in_force) = counted;
    tx.rollback().await?;
    let by_status = SubscriptionStatus::LIVE
        .iter()
        .map(|status| {
            let n = counted.by_status.iter().find(|(s, _)| s == status.as_str()).map_or(0, |(_, n)| *n);
            (status.as_str().to_owned(), n)
        })
        .collect();
    let by_billing_period = BillingPeriod::ALL
        .iter()
        .map(|period| {
            let n = counted.by_billing_period.iter().find(|(p, _)| p == period.as_str()).map_or(0, |(_, n)| *n);
            (period.as_str().to_owned(), n)
        })
        .collect();
    Ok(Json(Data {
        data: AddonPublishPreview {
            addon_id: addon_id.into_string(),
            target_version,
            migration_type: body.migration_type,
            affected_subscriptions_count: counted.total,
            affected_customers_count: counted.affected_customers,
            by_status,
            by_billing_period,
            by_from_version: counted
                .by_version
                .iter()
                .map(|(version, count)| preview::FromVersion { version: *version, count: *count })
                .collect(),
            subscription_ids: counted.ids.items,
            pagination: Pagination { next: counted.ids.next, prev: None },
            would_fail: None,
            excluded_count: counted.excluded,
            excluded_by_reason: domain::policy::by_reason(|reason| {
                counted.excluded_by_reason.iter().find(|(r, _)| r == reason).map(|(_, n)| *n)
            }),
            requires_approval: in_force.is_some_and(|p| p.require_approval),
        },
    }))
}
