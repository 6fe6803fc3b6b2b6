//! Customers.

use crate::{is_unique_violation, page, Page, Result, StoreError};
use chrono::{DateTime, Utc};
use domain::{EnvironmentId, ErrorCode};
use serde_json::Value;
use sqlx::PgPool;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Customer {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub billing_id: Option<String>,
    pub metadata: Value,
    pub seq: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewCustomer {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub billing_id: Option<String>,
    pub metadata: Value,
}

const COLUMNS: &str = "id, name, email, billing_id, metadata, seq, created_at, updated_at";

pub async fn create(pool: &PgPool, env: EnvironmentId, new: &NewCustomer) -> Result<Customer> {
    sqlx::query_as::<_, Customer>(&format!(
        "INSERT INTO customers (environment_id, id, name, email, billing_id, metadata)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    ))
    .bind(env.0)
    .bind(&new.id)
    .bind(&new.name)
    .bind(&new.email)
    .bind(&new.billing_id)
    .bind(&new.metadata)
    .fetch_one(pool)
    .await
    .map_err(|e| {
        if is_unique_violation(&e, "customers_pkey") {
            StoreError::rejected(ErrorCode::BadUserInput, format!("a customer with id `{}` already exists", new.id))
        } else {
            e.into()
        }
    })
}

/// Inserts the customers that do not exist yet, in one statement; answers the ids it created.
pub async fn import(pool: &PgPool, env: EnvironmentId, customers: &[NewCustomer]) -> Result<Vec<String>> {
    let ids: Vec<&str> = customers.iter().map(|c| c.id.as_str()).collect();
    let names: Vec<Option<&str>> = customers.iter().map(|c| c.name.as_deref()).collect();
    let emails: Vec<Option<&str>> = customers.iter().map(|c| c.email.as_deref()).collect();
    let billing: Vec<Option<&str>> = customers.iter().map(|c| c.billing_id.as_deref()).collect();
    let metadata: Vec<&Value> = customers.iter().map(|c| &c.metadata).collect();
    let created: Vec<String> = sqlx::query_scalar(
        "INSERT INTO customers (environment_id, id, name, email, billing_id, metadata)
         SELECT $1, u.id, u.name, u.email, u.billing_id, u.metadata
         FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[])
              WITH ORDINALITY AS u (id, name, email, billing_id, metadata, ord)
         ORDER BY u.ord
         ON CONFLICT (environment_id, id) DO NOTHING
         RETURNING id",
    )
    .bind(env.0)
    .bind(&ids)
    .bind(&names)
    .bind(&emails)
    .bind(&billing)
    .bind(&metadata)
    .fetch_all(pool)
    .await?;
    Ok(created)
}

pub async fn get(pool: &PgPool, env: EnvironmentId, id: &str) -> Result<Option<Customer>> {
    Ok(sqlx::query_as::<_, Customer>(&format!("SELECT {COLUMNS} FROM customers WHERE environment_id = $1 AND id = $2"))
        .bind(env.0)
        .bind(id)
        .fetch_optional(pool)
        .await?)
}

#[derive(Debug, Default, Clone)]
pub struct CustomerFilter {
    pub email: Option<String>,
    pub name: Option<String>,
    pub created: crate::CreatedRange,
    pub after: Option<i64>,
    pub limit: i64,
}

pub async fn list(pool: &PgPool, env: EnvironmentId, filter: &CustomerFilter) -> Result<Page<Customer>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM customers
         WHERE environment_id = $1
           AND ($2::text IS NULL OR email = $2)
           AND ($3::text IS NULL OR name = $3)
           AND ($4::bigint IS NULL OR seq > $4)
           {created}
         ORDER BY seq LIMIT $5",
        created = crate::created_range_sql("created_at", 6)
    );
    let rows = sqlx::query_as::<_, Customer>(&sql);
    let rows = filter
        .created
        .bind(rows.bind(env.0).bind(&filter.email).bind(&filter.name).bind(filter.after).bind(filter.limit + 1))
        .fetch_all(pool)
        .await?;
    Ok(page(rows, filter.limit, |c| c.seq))
}
