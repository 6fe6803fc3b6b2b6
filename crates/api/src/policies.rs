//! Migration policies (Cutover's extension): `GET/PUT/DELETE /api/v1/plans/{id}/migration-policy`
//! for one plan, `/api/v1/addons/{id}/migration-policy` for one add-on, and
//! `GET/PUT/DELETE /api/v1/migration-policy` for the environment's default.
//! Any key reads; admin keys write. A policy applies to tasks accepted after it is written:
//! each task pins the policy in force when it is accepted (see `domain::policy`).

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{entity_id, Json, Path};
use crate::openapi::{Data, STIGG};
use crate::AppState;
use axum::extract::State;
use chrono::{DateTime, Utc};
use domain::{ErrorCode, MigrationPolicy};
use serde::Serialize;
use serde_json::Value;
use store::api_keys::{Principal, Scope};
use store::policies::{self, Package};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_plan_policy, put_plan_policy, delete_plan_policy))
        .routes(routes!(get_addon_policy, put_addon_policy, delete_addon_policy))
        .routes(routes!(get_default_policy, put_default_policy, delete_default_policy))
}

/// A migration policy as the API shows it: the policy in force for the plan (or the
/// environment's default), where it comes from, and who wrote it last.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyView {
    /// The plan, or null.
    plan_id: Option<String>,
    /// The add-on, or null; both null for the environment's default.
    addon_id: Option<String>,
    /// `PLAN` or `ADDON` (the package's own), `ENVIRONMENT` (the default applies) or `NONE`.
    source: &'static str,
    /// `{"statuses", "customerIds", "metadata", "renewingWithin"}`: who tasks leave alone.
    #[schema(value_type = Object)]
    exclude: Value,
    /// ISO-8601 duration; no subscription moves before acceptance + this.
    notice_period: Option<String>,
    /// Whether an admin other than the requester must approve each task.
    require_approval: bool,
    updated_at: Option<DateTime<Utc>>,
    updated_by: Option<String>,
}

fn view(package: Package<'_>, stored: Option<policies::Stored>) -> PolicyView {
    let source = match &stored {
        None => "NONE",
        Some(s) if s.is_default() => "ENVIRONMENT",
        Some(s) if s.addon_id.is_some() => "ADDON",
        Some(_) => "PLAN",
    };
    let (policy, updated_at, updated_by) = match stored {
        Some(s) => (s.policy, Some(s.updated_at), s.updated_by),
        None => (MigrationPolicy::default(), None, None),
    };
    let (plan_id, addon_id) = match package {
        Package::Plan(id) => (Some(id.to_owned()), None),
        Package::Addon(id) => (None, Some(id.to_owned())),
        Package::Default => (None, None),
    };
    PolicyView {
        plan_id,
        addon_id,
        source,
        exclude: serde_json::to_value(&policy.exclude).unwrap_or(Value::Null),
        notice_period: policy.notice_period,
        require_approval: policy.require_approval,
        updated_at,
        updated_by,
    }
}

fn require_admin(caller: &Principal) -> Result<(), ApiError> {
    if caller.scope != Scope::Admin {
        return Err(ApiError::new(ErrorCode::AccessDeniedError, "changing a migration policy needs an admin API key"));
    }
    Ok(())
}

fn parse(body: &Value) -> Result<MigrationPolicy, ApiError> {
    MigrationPolicy::from_json(body).map_err(|why| ApiError::bad_input(format!("migration policy: {why}")))
}

/// 404 for a package the environment does not have.
async fn require(conn: &mut sqlx::PgConnection, caller: &Principal, package: Package<'_>) -> Result<(), ApiError> {
    let env = caller.environment_id;
    match package {
        Package::Plan(id) => store::plans::require(conn, env, id).await?,
        Package::Addon(id) => {
            if !store::addons::missing(conn, env, &[id.to_owned()]).await?.is_empty() {
                return Err(store::addons::not_found(id).into());
            }
        }
        Package::Default => {}
    }
    Ok(())
}

async fn read_policy(
    state: &AppState,
    caller: &Principal,
    package: Package<'_>,
) -> Result<Json<Data<PolicyView>>, ApiError> {
    let mut conn = state.pool.acquire().await.map_err(store::StoreError::from)?;
    require(&mut conn, caller, package).await?;
    let stored = policies::in_force_stored(&mut conn, caller.environment_id, package).await?;
    Ok(Json(Data { data: view(package, stored) }))
}

async fn write_policy(
    state: &AppState,
    caller: &Principal,
    package: Package<'_>,
    body: &Value,
) -> Result<Json<Data<PolicyView>>, ApiError> {
    require_admin(caller)?;
    let policy = parse(body)?;
    let mut conn = state.pool.acquire().await.map_err(store::StoreError::from)?;
    require(&mut conn, caller, package).await?;
    let stored = policies::put(&mut conn, caller.environment_id, package, &policy, &caller.key_prefix).await?;
    tracing::info!(package = ?package, "migration policy written");
    Ok(Json(Data { data: view(package, Some(stored)) }))
}

async fn delete_policy(
    state: &AppState,
    caller: &Principal,
    package: Package<'_>,
) -> Result<Json<Data<PolicyView>>, ApiError> {
    require_admin(caller)?;
    let mut conn = state.pool.acquire().await.map_err(store::StoreError::from)?;
    require(&mut conn, caller, package).await?;
    policies::delete(&mut conn, caller.environment_id, package).await?;
    let stored = policies::in_force_stored(&mut conn, caller.environment_id, package).await?;
    Ok(Json(Data { data: view(package, stored) }))
}

#[utoipa::path(get, path = "/api/v1/plans/{id}/migration-policy", operation_id = "PlanController_getMigrationPolicy", tag = STIGG,
    params(("id" = String, Path, description = "The plan's id")),
    responses((status = 200, description = "The policy in force for the plan and where it comes from", body = Data<PolicyView>),
        (status = 404, description = "No such plan (`PlanNotFound`)", body = ErrorBody)))]
pub async fn get_plan_policy(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Data<PolicyView>>, ApiError> {
    let id = entity_id(&id, "plan id")?;
    read_policy(&state, &caller, Package::Plan(id.as_str())).await
}

#[utoipa::path(put, path = "/api/v1/plans/{id}/migration-policy", operation_id = "PlanController_putMigrationPolicy", tag = STIGG,
    params(("id" = String, Path, description = "The plan's id")),
    request_body(content = Object, description = "`{\"exclude\": {\"statuses\", \"customerIds\", \"metadata\", \"renewingWithin\"}, \"noticePeriod\", \"requireApproval\"}`"),
    responses((status = 200, description = "The plan's policy, stored", body = Data<PolicyView>),
        (status = 400, description = "Not a policy (`BadUserInput`)", body = ErrorBody),
        (status = 403, description = "Not an admin key (`AccessDeniedError`)", body = ErrorBody),
        (status = 404, description = "No such plan (`PlanNotFound`)", body = ErrorBody)))]
pub async fn put_plan_policy(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Result<Json<Data<PolicyView>>, ApiError> {
    let id = entity_id(&id, "plan id")?;
    write_policy(&state, &caller, Package::Plan(id.as_str()), &body).await
}

#[utoipa::path(delete, path = "/api/v1/plans/{id}/migration-policy", operation_id = "PlanController_deleteMigrationPolicy", tag = STIGG,
    params(("id" = String, Path, description = "The plan's id")),
    responses((status = 200, description = "The plan's own policy removed: the policy now in force (the default, or none)", body = Data<PolicyView>),
        (status = 403, description = "Not an admin key (`AccessDeniedError`)", body = ErrorBody),
        (status = 404, description = "No such plan (`PlanNotFound`)", body = ErrorBody)))]
pub async fn delete_plan_policy(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Data<PolicyView>>, ApiError> {
    let id = entity_id(&id, "plan id")?;
    delete_policy(&state, &caller, Package::Plan(id.as_str())).await
}

#[utoipa::path(get, path = "/api/v1/addons/{id}/migration-policy", operation_id = "AddonController_getMigrationPolicy", tag = STIGG,
    params(("id" = String, Path, description = "The addon's id")),
    responses((status = 200, description = "The policy in force for the addon and where it comes from", body = Data<PolicyView>),
        (status = 404, description = "No such addon (`AddonNotFound`)", body = ErrorBody)))]
pub async fn get_addon_policy(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Data<PolicyView>>, ApiError> {
    let id = entity_id(&id, "add-on id")?;
    read_policy(&state, &caller, Package::Addon(id.as_str())).await
}

#[utoipa::path(put, path = "/api/v1/addons/{id}/migration-policy", operation_id = "AddonController_putMigrationPolicy", tag = STIGG,
    params(("id" = String, Path, description = "The addon's id")),
    request_body(content = Object, description = "`{\"exclude\": {\"statuses\", \"customerIds\", \"metadata\", \"renewingWithin\"}, \"noticePeriod\", \"requireApproval\"}`"),
    responses((status = 200, description = "The addon's policy, stored", body = Data<PolicyView>),
        (status = 400, description = "Not a policy (`BadUserInput`)", body = ErrorBody),
        (status = 403, description = "Not an admin key (`AccessDeniedError`)", body = ErrorBody),
        (status = 404, description = "No such addon (`AddonNotFound`)", body = ErrorBody)))]
pub async fn put_addon_policy(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Result<Json<Data<PolicyView>>, ApiError> {
    let id = entity_id(&id, "add-on id")?;
    write_policy(&state, &caller, Package::Addon(id.as_str()), &body).await
}

#[utoipa::path(delete, path = "/api/v1/addons/{id}/migration-policy", operation_id = "AddonController_deleteMigrationPolicy", tag = STIGG,
    params(("id" = String, Path, description = "The addon's id")),
    responses((status = 200, description = "The addon's own policy removed: the policy now in force (the default, or none)", body = Data<PolicyView>),
        (status = 403, description = "Not an admin key (`AccessDeniedError`)", body = ErrorBody),
        (status = 404, description = "No such addon (`AddonNotFound`)", body = ErrorBody)))]
pub async fn delete_addon_policy(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Data<PolicyView>>, ApiError> {
    let id = entity_id(&id, "add-on id")?;
    delete_policy(&state, &caller, Package::Addon(id.as_str())).await
}

#[utoipa::path(get, path = "/api/v1/migration-policy", operation_id = "EnvironmentController_getMigrationPolicy", tag = STIGG,
    responses((status = 200, description = "The environment's default policy (`source` NONE when there is none)", body = Data<PolicyView>)))]
pub async fn get_default_policy(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<Data<PolicyView>>, ApiError> {
    read_policy(&state, &caller, Package::Default).await
}

#[utoipa::path(put, path = "/api/v1/migration-policy", operation_id = "EnvironmentController_putMigrationPolicy", tag = STIGG,
    request_body(content = Object, description = "`{\"exclude\": {\"statuses\", \"customerIds\", \"metadata\", \"renewingWithin\"}, \"noticePeriod\", \"requireApproval\"}`"),
    responses((status = 200, description = "The environment's default policy, stored", body = Data<PolicyView>),
        (status = 400, description = "Not a policy (`BadUserInput`)", body = ErrorBody),
        (status = 403, description = "Not an admin key (`AccessDeniedError`)", body = ErrorBody)))]
pub async fn put_default_policy(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Json(body): Json<Value>,
) -> Result<Json<Data<PolicyView>>, ApiError> {
    write_policy(&state, &caller, Package::Default, &body).await
}

#[utoipa::path(delete, path = "/api/v1/migration-policy", operation_id = "EnvironmentController_deleteMigrationPolicy", tag = STIGG,
    responses((status = 200, description = "The default removed (`source` NONE)", body = Data<PolicyView>),
        (status = 403, description = "Not an admin key (`AccessDeniedError`)", body = ErrorBody)))]
pub async fn delete_default_policy(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<Data<PolicyView>>, ApiError> {
    delete_policy(&state, &caller, Package::Default).await
}
