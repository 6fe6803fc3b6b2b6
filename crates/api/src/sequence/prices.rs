//! `/prices`: create and read the prices a Sequence plan lists by id.

use super::views;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{entity_id, Json, Path};
use crate::AppState;
use axum::extract::State;
use domain::{Currency, ErrorCode};
use serde::Deserialize;
use serde_json::Value;
use store::prices::{self, NewPrice};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreatePrice {
    id: Option<String>,
    name: String,
    currency: Currency,
    amount: Option<String>,
    billing_frequency: Option<String>,
    structure: Option<Value>,
}

pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Json(body): Json<CreatePrice>,
) -> Result<Json<Value>, ApiError> {
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
    let mut tx = state.pool.begin().await?;
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
    tx.commit().await?;
    Ok(Json(views::price(&price)))
}

pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let price = prices::get(&mut conn, caller.environment_id, &id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::PriceNotFound, format!("price `{id}` not found")))?;
    Ok(Json(views::price(&price)))
}
