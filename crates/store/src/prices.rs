//! Prices, the Sequence dialect's building block of a plan: a plan version lists the ids of
//! the prices it includes (`plan_versions.price_ids`). This module stores and reads them; it
//! knows nothing of plans beyond answering which of a list of ids exist.

use crate::{is_unique_violation, Result, StoreError};
use chrono::{DateTime, Utc};
use domain::{EnvironmentId, ErrorCode};
use serde_json::Value;
use sqlx::PgConnection;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Price {
    pub id: String,
    pub name: String,
    pub currency: String,
    pub amount: Option<String>,
    pub billing_frequency: Option<String>,
    pub structure: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewPrice {
    pub id: String,
    pub name: String,
    pub currency: String,
    pub amount: Option<String>,
    pub billing_frequency: Option<String>,
    pub structure: Value,
}

const SELECT: &str =
    "SELECT id, name, currency, amount, billing_frequency, structure, created_at, updated_at FROM prices";

pub async fn create(conn: &mut PgConnection, env: EnvironmentId, new: &NewPrice) -> Result<Price> {
    sqlx::query_as::<_, Price>(
        "INSERT INTO prices (environment_id, id, name, currency, amount, billing_frequency, structure)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         RETURNING id, name, currency, amount, billing_frequency, structure, created_at, updated_at",
    )
    .bind(env.0)
    .bind(&new.id)
    .bind(&new.name)
    .bind(&new.currency)
    .bind(&new.amount)
    .bind(&new.billing_frequency)
    .bind(&new.structure)
    .fetch_one(conn)
    .await
    .map_err(|e| {
        if is_unique_violation(&e, "prices_pkey") {
            StoreError::rejected(ErrorCode::BadUserInput, format!("a price with id `{}` already exists", new.id))
        } else {
            e.into()
        }
    })
}

pub async fn get(conn: &mut PgConnection, env: EnvironmentId, id: &str) -> Result<Option<Price>> {
    Ok(sqlx::query_as::<_, Price>(&format!("{SELECT} WHERE environment_id = $1 AND id = $2"))
        .bind(env.0)
        .bind(id)
        .fetch_optional(conn)
        .await?)
}

/// The prices with these ids, in the order given; ids that name nothing are left out.
pub async fn many(conn: &mut PgConnection, env: EnvironmentId, ids: &[String]) -> Result<Vec<Price>> {
    Ok(sqlx::query_as::<_, Price>(
        "SELECT p.id, p.name, p.currency, p.amount, p.billing_frequency, p.structure, p.created_at, p.updated_at
         FROM unnest($2::text[]) WITH ORDINALITY AS u (id, ord)
         JOIN prices p ON p.environment_id = $1 AND p.id = u.id
         ORDER BY u.ord",
    )
    .bind(env.0)
    .bind(ids)
    .fetch_all(conn)
    .await?)
}

/// Refuses a list of price ids when one of them names no price (404 `PriceNotFound`).
pub async fn require_all(conn: &mut PgConnection, env: EnvironmentId, ids: &[String]) -> Result<()> {
    let missing: Option<String> = sqlx::query_scalar(
        "SELECT u.id FROM unnest($2::text[]) AS u (id)
         WHERE NOT EXISTS (SELECT 1 FROM prices p WHERE p.environment_id = $1 AND p.id = u.id)
         LIMIT 1",
    )
    .bind(env.0)
    .bind(ids)
    .fetch_optional(conn)
    .await?;
    match missing {
        Some(id) => Err(StoreError::rejected(ErrorCode::PriceNotFound, format!("price `{id}` not found"))),
        None => Ok(()),
    }
}
