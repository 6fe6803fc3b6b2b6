//! `POST /api/v1/subscriptions/{id}/cancel` (Stigg's cancellation: now, or at the end of the
//! billing period or a given date, applied by the scheduler) and
//! `DELETE /api/v1/subscriptions/{id}/future-update/schedule` (withdraws what the subscription
//! has scheduled: version moves and a scheduled cancellation). Both change one subscription in
//! the request's transaction; cancel is not a move, so it composes with a task holding the
//! plan (ARCHITECTURE.md, "Tasks on the same plan").

use super::views;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Path};
use crate::openapi::{Data, STIGG};
use crate::AppState;
use axum::extract::State;
use chrono::{DateTime, Utc};
use domain::ErrorCode;
use serde::{Deserialize, Serialize};
use store::cancellations::{self, CancellationTime};
use store::{subscriptions, version_changes};
use utoipa::ToSchema;

/// The SDK's cancel body. `cancellationAction` and `prorate` concern entitlements and
/// billing, which Cutover does not do: they are checked and accepted.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CancelBody {
    /// When it ends: END_OF_BILLING_PERIOD (the default), IMMEDIATE or SPECIFIC_DATE.
    cancellation_time: Option<CancellationTimeName>,
    /// The instant it ends, with SPECIFIC_DATE only; must be in the future.
    end_date: Option<DateTime<Utc>>,
    /// DEFAULT or REVOKE_ENTITLEMENTS; accepted, not acted on.
    cancellation_action: Option<CancellationAction>,
    /// Accepted, not acted on.
    prorate: Option<bool>,
}

/// When a cancel takes effect.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CancellationTimeName {
    Immediate,
    EndOfBillingPeriod,
    SpecificDate,
}

/// What happens to entitlements on cancellation (not Cutover's concern).
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CancellationAction {
    Default,
    RevokeEntitlements,
}

#[utoipa::path(post, path = "/api/v1/subscriptions/{id}/cancel", operation_id = "SubscriptionController_cancelSubscription", tag = STIGG, params(("id" = String, Path)),
    request_body = CancelBody,
    responses((status = 200, description = "The subscription: CANCELED, or with its cancellation in `cancellationDate` and `futureUpdates`", body = Data<views::Subscription>),
        (status = 400, description = "Bad input, or the subscription is already canceled or expired", body = ErrorBody,
            extensions(("x-error-codes" = json!(["BadUserInput", "SubscriptionAlreadyCanceledOrExpired"])))),
        (status = 404, description = "No such subscription (`SubscriptionNotFound`)", body = ErrorBody,
            extensions(("x-error-codes" = json!(["SubscriptionNotFound"]))))))]
pub async fn cancel(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    Json(body): Json<CancelBody>,
) -> Result<Json<Data<views::Subscription>>, ApiError> {
    let _ = (body.cancellation_action, body.prorate);
    let when = match (body.cancellation_time.unwrap_or(CancellationTimeName::EndOfBillingPeriod), body.end_date) {
        (CancellationTimeName::SpecificDate, Some(at)) => CancellationTime::SpecificDate(at),
        (CancellationTimeName::SpecificDate, None) => {
            return Err(ApiError::bad_input("endDate is required with cancellationTime SPECIFIC_DATE"))
        }
        (_, Some(_)) => return Err(ApiError::bad_input("endDate is only allowed with cancellationTime SPECIFIC_DATE")),
        (CancellationTimeName::Immediate, None) => CancellationTime::Immediate,
        (CancellationTimeName::EndOfBillingPeriod, None) => CancellationTime::EndOfBillingPeriod,
    };
    let env = caller.environment_id;
    let mut tx = state.begin().await?;
    cancellations::cancel(&mut tx, env, &id, when, &caller.key_prefix).await?;
    let subscription = read(&mut tx, env, &id).await?;
    tx.commit(&state.hooks()).await?;
    Ok(Json(Data { data: subscription }))
}

/// What withdrawing a schedule answers (the SDK's `CancelSubscription`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Withdrawn {
    /// The subscription's id.
    id: String,
}

#[utoipa::path(delete, path = "/api/v1/subscriptions/{id}/future-update/schedule", operation_id = "SubscriptionController_cancelSubscriptionSchedule", tag = STIGG, params(("id" = String, Path)),
    responses((status = 200, description = "Its scheduled moves and scheduled cancellation are withdrawn (nothing scheduled is not an error)", body = Data<Withdrawn>),
        (status = 404, description = "No such subscription (`SubscriptionNotFound`)", body = ErrorBody,
            extensions(("x-error-codes" = json!(["SubscriptionNotFound"]))))))]
pub async fn cancel_schedule(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Data<Withdrawn>>, ApiError> {
    let mut tx = state.begin().await?;
    cancellations::withdraw(&mut tx, caller.environment_id, &id, &caller.key_prefix).await?;
    tx.commit(&state.hooks()).await?;
    Ok(Json(Data { data: Withdrawn { id } }))
}

async fn read(
    conn: &mut sqlx::PgConnection,
    env: domain::EnvironmentId,
    id: &str,
) -> Result<views::Subscription, ApiError> {
    let subscription = subscriptions::get(conn, env, id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::SubscriptionNotFound, format!("subscription `{id}` not found")))?;
    let changes = version_changes::for_subscription(conn, env, id).await?;
    Ok(views::subscription(&subscription, views::subscription_updates(&subscription, &changes)))
}
