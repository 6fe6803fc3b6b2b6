//! Bulk import of subscriptions, Stigg-style: the request was accepted with its items as the
//! task's payload; here they are inserted in one transaction.

use super::JobError;
use crate::Context;
use domain::{BillingPeriod, ErrorCode, SubscriptionStatus, TaskStatus};
use serde::Deserialize;
use store::events;
use store::subscriptions::{self, NewSubscription};
use store::tasks::{self, Task};

/// One item as the api stored it (already validated there).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportItem {
    pub id: String,
    pub customer_id: String,
    pub plan_id: String,
    pub billing_period: BillingPeriod,
    pub start_date: chrono::DateTime<chrono::Utc>,
    pub end_date: Option<chrono::DateTime<chrono::Utc>>,
    pub status: Option<SubscriptionStatus>,
    pub billing_id: Option<String>,
    pub resource_id: Option<String>,
    #[serde(default)]
    pub metadata: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct Payload {
    subscriptions: Vec<ImportItem>,
}

#[tracing::instrument(skip_all, fields(task_id = %task.id, environment_id = %task.environment_id), err)]
pub async fn run(_ctx: &Context, mut tx: store::Tx<'static>, task: Task) -> Result<(), JobError> {
    let payload: Payload = serde_json::from_value(task.payload.clone()).map_err(|e| JobError::Permanent {
        code: ErrorCode::FailedToImportSubscriptions,
        message: format!("unreadable import payload: {e}"),
    })?;
    let items: Vec<NewSubscription> = payload
        .subscriptions
        .into_iter()
        .map(|i| NewSubscription {
            id: i.id,
            customer_id: i.customer_id,
            plan_id: i.plan_id,
            billing_period: i.billing_period,
            start_date: i.start_date,
            end_date: i.end_date,
            status: i.status,
            billing_id: i.billing_id,
            resource_id: i.resource_id,
            metadata: if i.metadata.is_null() { serde_json::json!({}) } else { i.metadata },
        })
        .collect();

    let task_id = task.id();
    let outcome = subscriptions::import(&mut tx, task.environment(), task_id, &items).await?;
    tasks::set_counts(&mut tx, task_id, outcome.total, outcome.total, outcome.failed).await?;
    let status = TaskStatus::from_counts(outcome.total, outcome.failed);
    let message = format!("{} of {} subscriptions could not be imported", outcome.failed, outcome.total);
    let error = (outcome.failed > 0).then_some((ErrorCode::FailedToImportSubscriptions, message.as_str()));
    tasks::finish_planning(&mut tx, task_id, status, error).await?;
    events::record(
        &mut tx,
        task.environment(),
        task_id,
        "finished",
        status.as_str(),
        None,
        serde_json::json!({
            "total": outcome.total, "created": outcome.created, "failed": outcome.failed,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
