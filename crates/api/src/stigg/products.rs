//! `/api/v1/products`

use super::views;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{comma_list, entity_id, page_body, CreatedAtQuery, Json, KnownQuery, PageQuery, Path, QueryNames};
use crate::openapi::{Data, List, STIGG};
use crate::AppState;
use axum::extract::State;
use domain::ErrorCode;
use serde::Deserialize;
use serde_json::Value;
use store::products::{self, NewProduct, ProductFilter};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateProduct {
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$")]
    id: String,
    #[schema(pattern = "\\S")]
    display_name: String,
    description: Option<String>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<serde_json::Map<String, Value>>,
    multiple_subscriptions: Option<bool>,
}

#[utoipa::path(post, path = "/api/v1/products", operation_id = "ProductController_createProduct", tag = STIGG, request_body = CreateProduct,
    responses((status = 200, description = "The product", body = Data<views::Product>),
        (status = 400, description = "Bad input, or the id is taken (`DuplicateProductValidationError`)", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Json(body): Json<CreateProduct>,
) -> Result<Json<Data<views::Product>>, ApiError> {
    let id = entity_id(&body.id, "product id")?;
    if body.display_name.trim().is_empty() {
        return Err(ApiError::bad_input("displayName must not be empty"));
    }
    let product = products::create(
        &state.pool,
        caller.environment_id,
        &NewProduct {
            id: id.into_string(),
            display_name: body.display_name,
            description: body.description,
            metadata: Value::Object(body.metadata.unwrap_or_default()),
            multiple_subscriptions: body.multiple_subscriptions.unwrap_or(false),
        },
    )
    .await?;
    Ok(Json(Data { data: views::product(&product) }))
}

#[utoipa::path(get, path = "/api/v1/products/{id}", operation_id = "ProductController_getProduct", tag = STIGG, params(("id" = String, Path)),
    responses((status = 200, description = "The product", body = Data<views::Product>),
        (status = 404, description = "No such product (`ProductNotFoundError`)", body = ErrorBody,
            extensions(("x-error-codes" = json!(["ProductNotFoundError"]))))))]
pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Data<views::Product>>, ApiError> {
    let product = products::get(&state.pool, caller.environment_id, &id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::ProductNotFoundError, format!("product `{id}` not found")))?;
    Ok(Json(Data { data: views::product(&product) }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    id: Option<String>,
    /// Comma-separated: PUBLISHED, ARCHIVED.
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
        &["id", "status", "createdAt[gt]", "createdAt[gte]", "createdAt[lt]", "createdAt[lte]"];
}

#[utoipa::path(get, path = "/api/v1/products", operation_id = "ProductController_listProducts", tag = STIGG, params(ListQuery, CreatedAtQuery, PageQuery),
    responses((status = 200, description = "A page of products", body = List<views::Product>)))]
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    KnownQuery(query): KnownQuery<ListQuery>,
) -> Result<Json<List<views::Product>>, ApiError> {
    let filter = ProductFilter {
        id: query.id,
        statuses: comma_list(query.status.as_deref(), "status", &["PUBLISHED", "ARCHIVED"])?,
        created: query.created_at.range()?,
        after: query.page.after()?,
        limit: query.page.limit()?,
    };
    let page = products::list(&state.pool, caller.environment_id, &filter).await?;
    Ok(Json(page_body(&page, views::product)))
}
