//! Products: the containers plans belong to.

use crate::{is_unique_violation, page, Page, Result, StoreError};
use chrono::{DateTime, Utc};
use domain::{EnvironmentId, ErrorCode};
use serde_json::Value;
use sqlx::PgPool;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Product {
    pub id: String,
    pub display_name: String,
    pub description: Option<String>,
    pub metadata: Value,
    pub multiple_subscriptions: bool,
    pub status: String,
    pub seq: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewProduct {
    pub id: String,
    pub display_name: String,
    pub description: Option<String>,
    pub metadata: Value,
    pub multiple_subscriptions: bool,
}

const COLUMNS: &str =
    "id, display_name, description, metadata, multiple_subscriptions, status, seq, created_at, updated_at";

pub async fn create(pool: &PgPool, env: EnvironmentId, new: &NewProduct) -> Result<Product> {
    sqlx::query_as::<_, Product>(&format!(
        "INSERT INTO products (environment_id, id, display_name, description, metadata, multiple_subscriptions)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    ))
    .bind(env.0)
    .bind(&new.id)
    .bind(&new.display_name)
    .bind(&new.description)
    .bind(&new.metadata)
    .bind(new.multiple_subscriptions)
    .fetch_one(pool)
    .await
    .map_err(|e| {
        if is_unique_violation(&e, "products_pkey") {
            StoreError::rejected(
                ErrorCode::DuplicateProductValidationError,
                format!("a product with id `{}` already exists", new.id),
            )
        } else {
            e.into()
        }
    })
}

pub async fn get(pool: &PgPool, env: EnvironmentId, id: &str) -> Result<Option<Product>> {
    Ok(sqlx::query_as::<_, Product>(&format!("SELECT {COLUMNS} FROM products WHERE environment_id = $1 AND id = $2"))
        .bind(env.0)
        .bind(id)
        .fetch_optional(pool)
        .await?)
}

#[derive(Debug, Default, Clone)]
pub struct ProductFilter {
    pub id: Option<String>,
    pub statuses: Vec<String>,
    pub created: crate::CreatedRange,
    pub after: Option<i64>,
    pub limit: i64,
}

pub async fn list(pool: &PgPool, env: EnvironmentId, filter: &ProductFilter) -> Result<Page<Product>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM products
         WHERE environment_id = $1
           AND ($2::text IS NULL OR id = $2)
           AND (cardinality($3::text[]) = 0 OR status = ANY($3))
           AND ($4::bigint IS NULL OR seq > $4)
           {created}
         ORDER BY seq LIMIT $5",
        created = crate::created_range_sql("created_at", 6)
    );
    let rows = sqlx::query_as::<_, Product>(&sql);
    let rows = filter
        .created
        .bind(rows.bind(env.0).bind(&filter.id).bind(&filter.statuses).bind(filter.after).bind(filter.limit + 1))
        .fetch_all(pool)
        .await?;
    Ok(page(rows, filter.limit, |p| p.seq))
}
