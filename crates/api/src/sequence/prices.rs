//! `/prices`: create and read the prices a Sequence plan lists by id.

use super::views;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{entity_id, Json, Path};
use crate::openapi::SEQUENCE;
use crate::AppState;
use axum::extract::State;
use domain::{Currency, ErrorCode};
use serde::Deserialize;
use serde_json::Value;
use store::prices::{self, NewPrice};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreatePrice {
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$")]
    id: Option<String>,
    #[schema(pattern = "\\S")]
    name: String,
    currency: Currency,
    /// A decimal number, as a string.
    #[schema(pattern = "^-?[0-9]+(\\.[0-9]+)?$")]
    amount: Option<String>,
    billing_frequency: Option<String>,
    #[schema(value_type = Option<Object>)]
    structure: Option<Value>,
}

#[utoipa::path(post, path = "/prices", operation_id = "SequencePriceController_createPrice", tag = SEQUENCE, request_body = CreatePrice,
    responses((status = 200, description = "The price", body = views::Price),
        (status = 400, description = "Bad input, or the id is taken", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Json(body): Json<CreatePrice>,
) -> Result<Json<views::Price>, ApiError> {
    let id = match &body.id {
        Some(id) => entity_id(id, "price id")?.into_string(),
        None => uuid::Uuid::new_v4().to_string(),
    };
    if body.name.trim().is_empty() {
        return Err(ApiError::bad_input("name must not be empty"));
    }
    if let Some(amount) = &body.amount {
        if amount.trim().parse::<f64>().map_or(true, |a| !a.is_finite()) {
            return Err(ApiError::bad_input("amount must be a decimal number, as a string"));
        }
    }
    let mut tx = state.begin().await?;
    let price = prices::create(
        &mut tx,
        caller.environment_id,
        &NewPrice {
            id,
            name: body.name,
            currency: body.currency.as_str().to_owned(),
            amount: body.amount,
            billing_frequency: body.billing_frequency,
            structure: body.structure.unwrap_or_else(|| serde_json::json!({})),
        },
    )
    .await?;
    tx.commit(&state.hooks()).await?;
    Ok(Json(views::price(&price)))
}

#[utoipa::path(get, path = "/prices/{id}", operation_id = "SequencePriceController_getPrice", tag = SEQUENCE, params(("id" = String, Path)),
    responses((status = 200, description = "The price", body = views::Price),
        (status = 404, description = "No such price (`PriceNotFound`)", body = ErrorBody,
            extensions(("x-error-codes" = json!(["PriceNotFound"]))))))]
pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<views::Price>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let price = prices::get(&mut conn, caller.environment_id, &id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::PriceNotFound, format!("price `{id}` not found")))?;
    Ok(Json(views::price(&price)))
}
