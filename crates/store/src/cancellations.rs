//! Stigg's subscription cancellation and the withdrawal of what a subscription has scheduled.
//! An IMMEDIATE cancel makes the subscription CANCELED in the caller's transaction; a later one
//! writes its `cancellation_date`, which the scheduler applies once the database's clock
//! reaches it (`apply_due`). A subscription that stops being live this way has its SCHEDULED
//! version moves CANCELED, and `withdraw` cancels them (and a scheduled cancellation) on
//! request; either way a task left with nothing scheduled ends as a superseded one does
//! (`version_changes::end_if_settled`, CANCELED). It decides nothing about HTTP.

use crate::version_changes::end_if_settled;
use crate::work::Work;
use crate::{events, Result, StoreError};
use chrono::{DateTime, Utc};
use domain::{EnvironmentId, ErrorCode, SubscriptionStatus, TaskId, TaskStatus};
use serde_json::json;
use uuid::Uuid;

/// When a cancel takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancellationTime {
    Immediate,
    /// At the subscription's next billing date (`next_billing_date()` from now).
    EndOfBillingPeriod,
    /// At this instant, which must be later than the database's now.
    SpecificDate(DateTime<Utc>),
}

fn live_statuses() -> Vec<&'static str> {
    SubscriptionStatus::LIVE.iter().map(|s| s.as_str()).collect()
}

/// Locks the subscription; answers whether it is live. 404 when it is not there.
async fn lock(work: &mut Work, env: EnvironmentId, id: &str) -> Result<bool> {
    let status: Option<String> =
        sqlx::query_scalar("SELECT status FROM subscriptions WHERE environment_id = $1 AND id = $2 FOR UPDATE")
            .bind(env.0)
            .bind(id)
            .fetch_optional(&mut **work)
            .await?;
    let Some(status) = status else {
        return Err(StoreError::rejected(ErrorCode::SubscriptionNotFound, format!("subscription `{id}` not found")));
    };
    Ok(SubscriptionStatus::parse(&status).map_err(crate::unreadable)?.is_live())
}

/// Cancels a live subscription now or schedules its cancellation. A cancel while one is
/// scheduled replaces it. Refuses a subscription that is not live
/// (`SubscriptionAlreadyCanceledOrExpired`) and a date that is not in the future.
pub async fn cancel(work: &mut Work, env: EnvironmentId, id: &str, when: CancellationTime, actor: &str) -> Result<()> {
    if !lock(work, env, id).await? {
        return Err(StoreError::rejected(
            ErrorCode::SubscriptionAlreadyCanceledOrExpired,
            format!("subscription `{id}` is already canceled or expired"),
        ));
    }
    match when {
        CancellationTime::Immediate => {
            sqlx::query(
                "UPDATE subscriptions SET status = 'CANCELED', cancellation_date = now(), end_date = now(),
                    updated_at = now()
                 WHERE environment_id = $1 AND id = $2",
            )
            .bind(env.0)
            .bind(id)
            .execute(&mut **work)
            .await?;
            withdraw_moves(work, env, &[id.to_owned()], "canceled", actor).await?;
        }
        CancellationTime::EndOfBillingPeriod => {
            sqlx::query(
                "UPDATE subscriptions SET cancellation_date = next_billing_date(start_date, billing_period, now()),
                    updated_at = now()
                 WHERE environment_id = $1 AND id = $2",
            )
            .bind(env.0)
            .bind(id)
            .execute(&mut **work)
            .await?;
        }
        CancellationTime::SpecificDate(at) => {
            let now = crate::db_now(work).await?;
            if at <= now {
                return Err(StoreError::rejected(
                    ErrorCode::BadUserInput,
                    format!("endDate {} is not in the future; cancel IMMEDIATE instead", at.to_rfc3339()),
                ));
            }
            sqlx::query(
                "UPDATE subscriptions SET cancellation_date = $3, updated_at = now()
                 WHERE environment_id = $1 AND id = $2",
            )
            .bind(env.0)
            .bind(id)
            .bind(at)
            .execute(&mut **work)
            .await?;
        }
    }
    Ok(())
}

/// Withdraws what the subscription has scheduled: its SCHEDULED version moves become CANCELED
/// (a task left with nothing scheduled ends CANCELED, as a superseded one does) and a scheduled
/// cancellation is cleared. Nothing scheduled is not an error. 404 when it is not there.
pub async fn withdraw(work: &mut Work, env: EnvironmentId, id: &str, actor: &str) -> Result<()> {
    if lock(work, env, id).await? {
        sqlx::query(
            "UPDATE subscriptions SET cancellation_date = NULL, updated_at = now()
             WHERE environment_id = $1 AND id = $2 AND cancellation_date IS NOT NULL",
        )
        .bind(env.0)
        .bind(id)
        .execute(&mut **work)
        .await?;
    }
    withdraw_moves(work, env, &[id.to_owned()], "withdrawn", actor).await?;
    Ok(())
}

/// CANCELs the SCHEDULED moves of these subscriptions. A withdrawn move leaves its task: the
/// task's `total` drops by one, so its progress still reaches 100 % with what it did move. A
/// task left with nothing scheduled ends from its counts — or CANCELED, with the reason, when
/// it moved nobody at all. Each task that lost a move gets a timeline event.
async fn withdraw_moves(work: &mut Work, env: EnvironmentId, ids: &[String], why: &str, actor: &str) -> Result<()> {
    let touched: Vec<(Option<Uuid>, String)> = sqlx::query_as(
        "UPDATE subscription_version_changes SET status = 'CANCELED', updated_at = now()
         WHERE environment_id = $1 AND subscription_id = ANY($2) AND status = 'SCHEDULED'
         RETURNING task_id, subscription_id",
    )
    .bind(env.0)
    .bind(ids)
    .fetch_all(&mut **work)
    .await?;
    let mut tasks: Vec<(Uuid, String)> = touched.into_iter().filter_map(|(t, s)| Some((t?, s))).collect();
    // task rows in id order, as the scheduler takes them
    tasks.sort();
    for (task, subscription) in tasks {
        let task = TaskId(task);
        let message = match why {
            "canceled" => format!("subscription `{subscription}` was canceled; its scheduled move will not happen"),
            _ => format!("the scheduled move of subscription `{subscription}` was withdrawn"),
        };
        events::record(
            work,
            env,
            task,
            "move-withdrawn",
            &message,
            Some(actor),
            json!({ "subscriptionId": subscription }),
        );
        let processed: Option<i64> = sqlx::query_scalar(
            "UPDATE tasks SET total = greatest(total - 1, 0), updated_at = now() WHERE id = $1 RETURNING processed",
        )
        .bind(task.0)
        .fetch_optional(&mut **work)
        .await?;
        let nobody_moved = processed.is_some_and(|p| p == 0);
        end_if_settled(work, task, nobody_moved.then_some((TaskStatus::Canceled, message.as_str()))).await?;
    }
    Ok(())
}

/// Cancels up to `limit` live subscriptions whose `cancellation_date` has come (by the
/// database's clock), in the caller's transaction, and withdraws their scheduled moves.
/// `FOR UPDATE SKIP LOCKED` gives each scheduler its own rows. Answers how many it canceled.
pub async fn apply_due(work: &mut Work, limit: i64) -> Result<usize> {
    let canceled: Vec<(Uuid, String)> = sqlx::query_as(
        "WITH due AS (
            SELECT environment_id, id FROM subscriptions
            WHERE cancellation_date IS NOT NULL AND cancellation_date <= now() AND status = ANY($1)
            ORDER BY cancellation_date, environment_id, id LIMIT $2
            FOR UPDATE SKIP LOCKED
        )
        UPDATE subscriptions s SET status = 'CANCELED', end_date = s.cancellation_date, updated_at = now()
        FROM due WHERE s.environment_id = due.environment_id AND s.id = due.id
        RETURNING s.environment_id, s.id",
    )
    .bind(live_statuses())
    .bind(limit)
    .fetch_all(&mut **work)
    .await?;
    let count = canceled.len();
    let mut by_env: std::collections::BTreeMap<Uuid, Vec<String>> = std::collections::BTreeMap::new();
    for (env, id) in canceled {
        by_env.entry(env).or_default().push(id);
    }
    for (env, ids) in by_env {
        withdraw_moves(work, EnvironmentId(env), &ids, "canceled", "scheduler").await?;
    }
    Ok(count)
}
