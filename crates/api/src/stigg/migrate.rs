//! `POST /api/v1/subscriptions/{id}/migrate`: Stigg's per-subscription move to the plan's
//! latest version, now (`IMMEDIATE`, the default: answered after the move, with its history
//! row) or at the subscription's next billing date (`END_OF_BILLING_PERIOD`: scheduled, shown
//! in `futureUpdates`). Both are recorded as a SUBSCRIPTION_MIGRATION task.

use super::views;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Path;
use crate::openapi::{Data, STIGG};
use crate::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use domain::ErrorCode;
use serde::Deserialize;
use store::subscriptions;
use store::version_changes::{self, MigrationTime};
use utoipa::ToSchema;

/// The body is optional; without it the move is IMMEDIATE.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MigrateBody {
    /// IMMEDIATE (the default) or END_OF_BILLING_PERIOD.
    #[schema(value_type = Option<MigrationTimeName>)]
    subscription_migration_time: Option<String>,
}

/// When a migrated subscription moves.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(dead_code)] // names the wire values for the schema; parsed from a string in `migrate`
enum MigrationTimeName {
    Immediate,
    EndOfBillingPeriod,
}

#[utoipa::path(post, path = "/api/v1/subscriptions/{id}/migrate", operation_id = "SubscriptionController_migrateSubscription", tag = STIGG, params(("id" = String, Path)),
    request_body(content = Option<MigrateBody>, content_type = "application/json"),
    responses((status = 200, description = "The subscription: moved, or with the move in `futureUpdates`", body = Data<views::Subscription>),
        (status = 400, description = "Bad input, already on the latest version, canceled or expired, or a move is scheduled already", body = ErrorBody),
        (status = 404, description = "No such subscription (`SubscriptionNotFound`)", body = ErrorBody)))]
pub async fn migrate(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Data<views::Subscription>>, ApiError> {
    let env = caller.environment_id;
    let body: MigrateBody = if body.iter().all(u8::is_ascii_whitespace) {
        MigrateBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_input(format!("invalid body: {e}")))?
    };
    let when = match body.subscription_migration_time.as_deref() {
        None | Some("IMMEDIATE") => MigrationTime::Immediate,
        Some("END_OF_BILLING_PERIOD") => MigrationTime::EndOfBillingPeriod,
        Some(other) => {
            return Err(ApiError::bad_input(format!(
                "`{other}` is not a valid subscriptionMigrationTime; expected IMMEDIATE or END_OF_BILLING_PERIOD"
            )))
        }
    };
    let mut tx = state.begin().await?;
    version_changes::migrate_subscription(&mut tx, env, &id, when, state.settings.max_attempts, &caller.key_prefix)
        .await?;
    let subscription = subscriptions::get(&mut tx, env, &id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::SubscriptionNotFound, format!("subscription `{id}` not found")))?;
    let changes = version_changes::for_subscription(&mut tx, env, &id).await?;
    tx.commit(&state.hooks()).await?;
    Ok(Json(Data { data: views::subscription(&subscription, views::subscription_updates(&subscription, &changes)) }))
}
