//! `POST /api/v1/subscriptions/{id}/migrate`: Stigg's per-subscription move to the plan's
//! latest version, now (`IMMEDIATE`, the default: answered after the move, with its history
//! row) or at the subscription's next billing date (`END_OF_BILLING_PERIOD`: scheduled, shown
//! in `futureUpdates`). Both are recorded as a SUBSCRIPTION_MIGRATION task.

use super::views;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::Path;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use domain::ErrorCode;
use serde::Deserialize;
use serde_json::{json, Value};
use store::subscriptions;
use store::version_changes::{self, FutureUpdate, MigrationTime};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MigrateBody {
    subscription_migration_time: Option<String>,
}

/// `futureUpdates[]` of a subscription: its scheduled (and once-scheduled) version moves.
pub fn future_updates(changes: &[FutureUpdate]) -> Value {
    Value::Array(
        changes
            .iter()
            .map(|c| {
                json!({
                    "subscriptionScheduleType": "MIGRATE_TO_LATEST",
                    "scheduleStatus": c.status,
                    "scheduledExecutionTime": c.apply_at,
                    "targetPackage": { "id": c.plan_id, "versionNumber": c.version_number },
                })
            })
            .collect(),
    )
}

pub async fn migrate(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
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
    let mut tx = state.pool.begin().await?;
    version_changes::migrate_subscription(&mut tx, env, &id, when, state.settings.max_attempts, &caller.key_prefix)
        .await?;
    let subscription = subscriptions::get(&mut tx, env, &id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::SubscriptionNotFound, format!("subscription `{id}` not found")))?;
    let changes = version_changes::for_subscription(&mut tx, env, &id).await?;
    tx.commit().await?;
    Ok(Json(json!({ "data": views::subscription(&subscription, future_updates(&changes)) })))
}
