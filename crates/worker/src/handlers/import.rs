//! Bulk import of subscriptions, Stigg-style: the request was accepted with its items as the
//! task's payload; here they are inserted in one transaction.

use super::JobError;
use crate::Context;
use domain::spec::ImportItem;
use domain::{ErrorCode, TaskStatus};
use store::subscriptions::{self, NewSubscription};
use store::tasks::{self, Task};
use store::{addons, events};

#[tracing::instrument(skip_all, fields(task_id = %task.id, environment_id = %task.environment_id), err)]
pub async fn run(
    ctx: &Context,
    mut tx: store::Work,
    task: Task,
    subscriptions: Vec<ImportItem>,
) -> Result<(), JobError> {
    // a task holding one of these plans may be planning its publish right now: wait for it,
    // so that every item lands either before its planning (and is moved by it) or on what it
    // published
    let mut plan_ids: Vec<String> = subscriptions.iter().map(|i| i.plan_id.clone()).collect();
    plan_ids.sort();
    plan_ids.dedup();
    tasks::share_holders(&mut tx, task.environment(), &plan_ids).await?;
    let mut addon_ids: Vec<String> = subscriptions.iter().flat_map(|i| i.addons.iter().map(|a| a.id.clone())).collect();
    addon_ids.sort();
    addon_ids.dedup();
    addons::share_holders(&mut tx, task.environment(), &addon_ids).await?;
    let holdings: Vec<(String, addons::Holding)> = subscriptions
        .iter()
        .flat_map(|i| {
            i.addons.iter().map(|a| (i.id.clone(), addons::Holding { addon_id: a.id.clone(), quantity: a.quantity }))
        })
        .collect();
    let items: Vec<NewSubscription> = subscriptions
        .into_iter()
        .map(|i| NewSubscription {
            id: i.id,
            customer_id: i.customer_id,
            plan_id: i.plan_id,
            billing_period: i.billing_period,
            start_date: Some(i.start_date),
            end_date: i.end_date,
            status: i.status,
            billing_id: i.billing_id,
            resource_id: i.resource_id,
            metadata: serde_json::Value::Object(i.metadata),
        })
        .collect();

    let task_id = task.id();
    let outcome = subscriptions::import(&mut tx, task.environment(), task_id, &items).await?;
    // the add-ons of the subscriptions this transaction inserted; a re-run attaches nothing
    addons::attach_imported(&mut tx, task.environment(), &holdings).await?;
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
    );
    tx.commit(&ctx.hooks).await?;
    Ok(())
}
