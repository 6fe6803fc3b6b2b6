//! `/api/v1/products`

use super::views;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{comma_list, entity_id, page_body, Json, PageQuery, Path, Query};
use crate::AppState;
use axum::extract::State;
use domain::ErrorCode;
use serde::Deserialize;
use serde_json::{json, Value};
use store::products::{self, NewProduct, ProductFilter};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateProduct {
    id: String,
    display_name: String,
    description: Option<String>,
    metadata: Option<serde_json::Map<String, Value>>,
    multiple_subscriptions: Option<bool>,
}

pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Json(body): Json<CreateProduct>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({ "data": views::product(&product) })))
}

pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let product = products::get(&state.pool, caller.environment_id, &id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::ProductNotFoundError, format!("product `{id}` not found")))?;
    Ok(Json(json!({ "data": views::product(&product) })))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    id: Option<String>,
    status: Option<String>,
    #[serde(flatten)]
    page: PageQuery,
}

pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let filter = ProductFilter {
        id: query.id,
        statuses: comma_list(query.status.as_deref(), "status", &["PUBLISHED", "ARCHIVED"])?,
        after: query.page.after()?,
        limit: query.page.limit()?,
    };
    let page = products::list(&state.pool, caller.environment_id, &filter).await?;
    Ok(Json(page_body(&page, views::product)))
}
