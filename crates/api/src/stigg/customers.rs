//! `/api/v1/customers`, including the synchronous bulk import.

use super::views;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{entity_id, page_body, CreatedAtQuery, Json, KnownQuery, PageQuery, Path, QueryNames};
use crate::openapi::{Data, List, STIGG};
use crate::AppState;
use axum::extract::State;
use domain::ErrorCode;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::HashSet;
use store::customers::{self, CustomerFilter, NewCustomer};
use utoipa::{IntoParams, ToSchema};

/// Largest number of customers one import request may carry.
pub const MAX_IMPORT: usize = 50_000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateCustomer {
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$")]
    id: String,
    name: Option<String>,
    email: Option<String>,
    billing_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<Map<String, Value>>,
    // accepted from the SDK, not acted on: Cutover keeps no billing integrations
    #[schema(value_type = Option<Object>)]
    billing_currency: Option<Value>,
    #[schema(value_type = Option<Object>)]
    coupon_id: Option<Value>,
    #[schema(value_type = Option<Object>)]
    default_payment_method: Option<Value>,
    #[schema(value_type = Option<Object>)]
    integrations: Option<Value>,
    #[schema(value_type = Option<Object>)]
    language: Option<Value>,
    #[schema(value_type = Option<Object>)]
    passthrough: Option<Value>,
    #[schema(value_type = Option<Object>)]
    timezone: Option<Value>,
}

#[utoipa::path(post, path = "/api/v1/customers", operation_id = "CustomerController_createCustomer", tag = STIGG, request_body = CreateCustomer,
    responses((status = 200, description = "The customer", body = Data<views::Customer>),
        (status = 400, description = "Bad input, or the id is taken", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Json(body): Json<CreateCustomer>,
) -> Result<Json<Data<views::Customer>>, ApiError> {
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
    Ok(Json(Data { data: views::customer(&customer) }))
}

#[utoipa::path(get, path = "/api/v1/customers/{id}", operation_id = "CustomerController_getCustomer", tag = STIGG, params(("id" = String, Path)),
    responses((status = 200, description = "The customer", body = Data<views::Customer>),
        (status = 404, description = "No such customer (`CustomerNotFound`)", body = ErrorBody,
            extensions(("x-error-codes" = json!(["CustomerNotFound"]))))))]
pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Data<views::Customer>>, ApiError> {
    let customer = customers::get(&state.pool, caller.environment_id, &id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::CustomerNotFound, format!("customer `{id}` not found")))?;
    Ok(Json(Data { data: views::customer(&customer) }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    email: Option<String>,
    name: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: PageQuery,
    #[serde(flatten)]
    #[param(ignore)]
    created_at: CreatedAtQuery,
}

impl QueryNames for ListQuery {
    const NAMES: &'static [&'static str] =
        &["email", "name", "createdAt[gt]", "createdAt[gte]", "createdAt[lt]", "createdAt[lte]"];
}

#[utoipa::path(get, path = "/api/v1/customers", operation_id = "CustomerController_listCustomers", tag = STIGG, params(ListQuery, CreatedAtQuery, PageQuery),
    responses((status = 200, description = "A page of customers", body = List<views::Customer>)))]
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    KnownQuery(query): KnownQuery<ListQuery>,
) -> Result<Json<List<views::Customer>>, ApiError> {
    let filter = CustomerFilter {
        email: query.email,
        name: query.name,
        created: query.created_at.range()?,
        after: query.page.after()?,
        limit: query.page.limit()?,
    };
    let page = customers::list(&state.pool, caller.environment_id, &filter).await?;
    Ok(Json(page_body(&page, views::customer)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportCustomer {
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$")]
    id: String,
    email: Option<String>,
    name: Option<String>,
    billing_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<Map<String, Value>>,
    payment_method_id: Option<String>,
    salesforce_id: Option<String>,
    updated_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportCustomers {
    customers: Vec<ImportCustomer>,
    integration_id: Option<String>,
}

/// What the import answers: the ids it inserted (those that existed are left alone).
#[derive(Debug, serde::Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Imported {
    new_customers: Vec<String>,
}

/// `POST /api/v1/customers/import`: inserts the customers that do not exist yet and answers
/// their ids when done. Existing ids are left as they are, so a retried import is harmless.
#[utoipa::path(post, path = "/api/v1/customers/import", operation_id = "ImportController_importCustomers", tag = STIGG, request_body = ImportCustomers,
    responses((status = 200, description = "Done: the ids inserted", body = Data<Imported>),
        (status = 400, description = "Bad input: a bad or repeated id, too many customers", body = ErrorBody)))]
pub async fn import(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Json(body): Json<ImportCustomers>,
) -> Result<Json<Data<Imported>>, ApiError> {
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
    Ok(Json(Data { data: Imported { new_customers: created } }))
}
