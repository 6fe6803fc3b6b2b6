//! Bulk retry and cancel from the dashboard's task list. Each task is acted on in a
//! transaction of its own, exactly as its own button would (and recorded on its timeline
//! with who did it), so one task that cannot be retried or canceled does not hold back the
//! others; the answer says which were done and which were refused, and why. The whole
//! request is checked before anything changes.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::Json;
use crate::AppState;
use axum::extract::State;
use domain::{ErrorCode, TaskId};
use serde::Deserialize;
use serde_json::{json, Value};
use store::StoreError;

/// Tasks one request may name.
pub const MAX_TASKS: usize = 200;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Retry,
    Cancel,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bulk {
    action: Action,
    ids: Vec<String>,
}

/// `POST /dashboard/api/tasks/bulk` `{"action": "retry" | "cancel", "ids": [...]}` →
/// `{"data": {"done": [task], "refused": [{"id", "code", "message"}]}}`.
pub async fn bulk(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Json(body): Json<Bulk>,
) -> Result<axum::Json<Value>, ApiError> {
    if body.ids.is_empty() || body.ids.len() > MAX_TASKS {
        return Err(ApiError::new(ErrorCode::BadUserInput, format!("name between 1 and {MAX_TASKS} tasks")));
    }
    let mut ids = Vec::with_capacity(body.ids.len());
    for raw in &body.ids {
        let id = TaskId::parse(raw)
            .map_err(|_| ApiError::new(ErrorCode::BadUserInput, format!("`{raw}` is not a task id")))?;
        ids.push(id);
    }
    ids.sort_by_key(|id| id.0);
    ids.dedup();
    let (mut done, mut refused) = (Vec::new(), Vec::new());
    for id in ids {
        let mut tx = state.begin().await?;
        let outcome = match body.action {
            Action::Retry => store::actions::retry(&mut tx, caller.environment_id, id, &caller.key_prefix).await,
            Action::Cancel => store::actions::cancel(&mut tx, caller.environment_id, id, &caller.key_prefix).await,
        };
        match outcome {
            Ok(task) => {
                tx.commit(&state.hooks()).await?;
                done.push(views::task::task(&task, None));
            }
            Err(StoreError::Rejected { code, message }) => {
                tx.rollback();
                refused.push(json!({ "id": id.to_string(), "code": code.as_str(), "message": message }));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let action = match body.action {
        Action::Retry => "retry",
        Action::Cancel => "cancel",
    };
    tracing::info!(action, done = done.len(), refused = refused.len(), "bulk task action");
    Ok(axum::Json(json!({ "data": { "done": done, "refused": refused } })))
}
