//! `/api/v1/customers`, including the synchronous bulk import.

use super::views;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{entity_id, page_body, Json, PageQuery, Path, Query};
use crate::AppState;
use axum::extract::State;
use domain::ErrorCode;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use store::customers::{self, CustomerFilter, NewCustomer};

/// Largest number of customers one import request may carry.
pub const MAX_IMPORT: usize = 50_000;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateCustomer {
    id: String,
    name: Option<String>,
    email: Option<String>,
    billing_id: Option<String>,
    metadata: Option<Map<String, Value>>,
    // accepted from the SDK, not acted on: Cutover keeps no billing integrations
    billing_currency: Option<Value>,
    coupon_id: Option<Value>,
    default_payment_method: Option<Value>,
    integrations: Option<Value>,
    language: Option<Value>,
    passthrough: Option<Value>,
    timezone: Option<Value>,
}

pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Json(body): Json<CreateCustomer>,
) -> Result<Json<Value>, ApiError> {
    let id = entity_id(&body.id, "customer id")?;
    let _ignored = (
        body.billing_currency,
        body.coupon_id,
        body.default_payment_method,
        body.integrations,
        body.language,
        body.passthrough,
        body.timezone,
    );
    let customer = customers::create(
        &state.pool,
        caller.environment_id,
        &NewCustomer {
            id: id.into_string(),
            name: body.name,
            email: body.email,
            billing_id: body.billing_id,
            metadata: Value::Object(body.metadata.unwrap_or_default()),
        },
    )
    .await?;
    Ok(Json(json!({ "data": views::customer(&customer) })))
}

pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let customer = customers::get(&state.pool, caller.environment_id, &id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::CustomerNotFound, format!("customer `{id}` not found")))?;
    Ok(Json(json!({ "data": views::customer(&customer) })))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    email: Option<String>,
    name: Option<String>,
    #[serde(flatten)]
    page: PageQuery,
}

pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let filter =
        CustomerFilter { email: query.email, name: query.name, after: query.page.after()?, limit: query.page.limit()? };
    let page = customers::list(&state.pool, caller.environment_id, &filter).await?;
    Ok(Json(page_body(&page, views::customer)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportCustomer {
    id: String,
    email: Option<String>,
    name: Option<String>,
    billing_id: Option<String>,
    metadata: Option<Map<String, Value>>,
    payment_method_id: Option<String>,
    salesforce_id: Option<String>,
    updated_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportCustomers {
    customers: Vec<ImportCustomer>,
    integration_id: Option<String>,
}

/// `POST /api/v1/customers/import`: inserts the customers that do not exist yet and answers
/// their ids when done. Existing ids are left as they are, so a retried import is harmless.
pub async fn import(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Json(body): Json<ImportCustomers>,
) -> Result<Json<Value>, ApiError> {
    let _ = body.integration_id;
    if body.customers.len() > MAX_IMPORT {
        return Err(ApiError::bad_input(format!("at most {MAX_IMPORT} customers per import")));
    }
    let mut seen = HashSet::new();
    let mut items = Vec::with_capacity(body.customers.len());
    for (i, c) in body.customers.into_iter().enumerate() {
        let id = entity_id(&c.id, &format!("customers[{i}].id"))?;
        if !seen.insert(id.as_str().to_owned()) {
            return Err(ApiError::bad_input(format!("customers[{i}].id `{id}` appears twice")));
        }
        let _ = (c.payment_method_id, c.salesforce_id, c.updated_at);
        items.push(NewCustomer {
            id: id.into_string(),
            name: c.name,
            email: c.email,
            billing_id: c.billing_id,
            metadata: Value::Object(c.metadata.unwrap_or_default()),
        });
    }
    let created = customers::import(&state.pool, caller.environment_id, &items).await?;
    Ok(Json(json!({ "data": { "newCustomers": created } })))
}
