//! Maker-checker approval of tasks whose migration policy requires it (`requireApproval`):
//! such a task is accepted PENDING with `approval_state` PENDING, and no worker starts it
//! until an admin other than the one who asked approves it; a rejection ends it CANCELED
//! before anything was published or moved. Each step is one transaction that writes its
//! timeline line and its webhook event (`task.awaiting_approval`, `task.approved`,
//! `task.rejected`) with it. While it waits, the task holds its plan like any other.

use crate::work::{Announcement, Work};
use crate::{actions, events, tasks, Result, StoreError};
use domain::{EnvironmentId, ErrorCode, Job, TaskId, TaskStatus, WebhookEventType};
use serde_json::json;

/// Announces, once, that a claimed task waits for approval: its timeline says so and
/// `task.awaiting_approval` is sent. Answers whether this call announced it.
pub async fn announce_waiting(conn: &mut Work, task: &tasks::Task) -> Result<bool> {
    if task.approval_announced {
        return Ok(false);
    }
    let task: tasks::Task =
        sqlx::query_as("UPDATE tasks SET approval_announced = true, updated_at = now() WHERE id = $1 RETURNING *")
            .bind(task.id)
            .fetch_one(&mut **conn)
            .await?;
    let requested_by = task.approval_requested_by.clone().unwrap_or_default();
    events::record(
        conn,
        task.environment(),
        task.id(),
        "awaiting_approval",
        &format!("waits for an admin other than {requested_by} to approve it"),
        None,
        json!({ "requestedBy": requested_by }),
    );
    conn.announce(Announcement::Approval(WebhookEventType::TaskAwaitingApproval, Box::new(task)));
    Ok(true)
}

/// Why a decision on `task` cannot be made by `actor`, if it cannot.
fn refuse(task: &tasks::Task, actor: &str, verb: &str) -> Option<StoreError> {
    let id = task.id;
    if !task.awaits_approval() || task.status() != TaskStatus::Pending {
        let why = match task.approval_state.as_deref() {
            None => "needs no approval".to_owned(),
            Some(state) => format!("is {} (approval {})", task.status, state.to_ascii_lowercase()),
        };
        return Some(StoreError::rejected(
            ErrorCode::BadUserInput,
            format!("task `{id}` {why}; there is nothing to {verb}"),
        ));
    }
    if task.approval_requested_by.as_deref() == Some(actor) {
        return Some(StoreError::rejected(
            ErrorCode::AccessDeniedError,
            format!("task `{id}` was requested with this API key; an admin with another key must {verb} it"),
        ));
    }
    None
}

/// Approves a task that waits for approval: it is announced to the workers and starts.
pub async fn approve(conn: &mut Work, env: EnvironmentId, id: TaskId, actor: &str) -> Result<tasks::Task> {
    let task = actions::lock_in(conn, env, id).await?;
    if let Some(refusal) = refuse(&task, actor, "approve") {
        return Err(refusal);
    }
    let task: tasks::Task = sqlx::query_as(
        "UPDATE tasks SET approval_state = 'APPROVED', approval_decided_by = $2, approval_decided_at = now(),
            updated_at = now()
         WHERE id = $1 RETURNING *",
    )
    .bind(id.0)
    .bind(actor)
    .fetch_one(&mut **conn)
    .await?;
    events::record(conn, env, id, "approved", &format!("approved by {actor}"), Some(actor), json!({}));
    conn.enqueue(Job::Task { task_id: id });
    conn.announce(Announcement::Approval(WebhookEventType::TaskApproved, Box::new(task.clone())));
    Ok(task)
}

/// Rejects a task that waits for approval: it ends CANCELED, having published and moved
/// nothing (a draft it would have published stays a draft).
pub async fn reject(conn: &mut Work, env: EnvironmentId, id: TaskId, actor: &str) -> Result<tasks::Task> {
    let task = actions::lock_in(conn, env, id).await?;
    if let Some(refusal) = refuse(&task, actor, "reject") {
        return Err(refusal);
    }
    sqlx::query(
        "UPDATE tasks SET approval_state = 'REJECTED', approval_decided_by = $2, approval_decided_at = now(),
            last_error = $3
         WHERE id = $1",
    )
    .bind(id.0)
    .bind(actor)
    .bind(format!("rejected by {actor}"))
    .execute(&mut **conn)
    .await?;
    let task = tasks::finish(conn, id, TaskStatus::Canceled, None).await?;
    events::record(conn, env, id, "rejected", &format!("rejected by {actor}"), Some(actor), json!({}));
    conn.announce(Announcement::Approval(WebhookEventType::TaskRejected, Box::new(task.clone())));
    Ok(task)
}
