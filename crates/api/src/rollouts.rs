//! `POST /api/v1/plans/{id}/rollouts`, a Cutover extension beside the Stigg and Sequence
//! contracts: publish the plan's draft (the publish endpoint's own checks and refusals) and
//! move its subscriptions cohort by cohort as a STAGED_ROLLOUT task. The body is checked whole
//! (`domain::RolloutSpec`) before anything is written, so a refused request changes nothing.
//! Pause and resume are task actions (`crate::tasks`).

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{entity_id, Json, Path};
use crate::stigg::plans::{accept_publish, idempotency_key, Accepted, PublishRequest};
use crate::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use domain::{RolloutSpec, TaskType};
use serde::Deserialize;
use serde_json::{json, Value};

/// The rollout body: `cohorts` (cumulative percentages) with `interval` (an ISO-8601
/// duration), `customerIds`, or both.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateRollout {
    cohorts: Option<Vec<f64>>,
    interval: Option<String>,
    customer_ids: Option<Vec<String>>,
}

/// `POST /api/v1/plans/{id}/rollouts` → `{"data": {"taskId"}}`; honours `Idempotency-Key`.
pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<CreateRollout>,
) -> Result<Json<Value>, ApiError> {
    let plan_id = entity_id(&id, "plan id")?;
    let spec = RolloutSpec::new(body.cohorts.as_deref(), body.interval.as_deref(), body.customer_ids.as_deref())
        .map_err(ApiError::bad_input)?;
    let key = idempotency_key(&headers)?;
    let summary = json!({
        "cohorts": body.cohorts,
        "interval": spec.interval_text,
        "customerCount": spec.customer_ids.len(),
    });
    let describe = |version: i32| {
        let mut what = format!("staged rollout of version {version} in {} cohorts", spec.thresholds.len());
        if let Some(interval) = &spec.interval_text {
            what.push_str(&format!(", {interval} apart"));
        }
        what
    };
    let request = PublishRequest {
        task_type: TaskType::StagedRollout,
        payload: summary.clone(),
        describe: &describe,
        data: summary,
    };
    let env = caller.environment_id;
    let mut tx = state.pool.begin().await?;
    let task_id = match accept_publish(&mut tx, &state, &caller, &plan_id, key, request).await? {
        Accepted::Existing(task_id) => return Ok(Json(json!({ "data": { "taskId": task_id } }))),
        Accepted::New(task_id) => task_id,
    };
    if !spec.customer_ids.is_empty() {
        let unknown = store::rollouts::unknown_customers(&mut tx, env, &spec.customer_ids).await?;
        if !unknown.is_empty() {
            return Err(ApiError::bad_input(format!("customerIds names unknown customers: {}", unknown.join(", "))));
        }
    }
    store::rollouts::insert(&mut tx, env, task_id, &spec).await?;
    tx.commit().await?;
    state.wake_relay();
    tracing::info!(task_id = %task_id, plan_id = %plan_id, cohorts = spec.thresholds.len(), "rollout accepted");
    Ok(Json(json!({ "data": { "taskId": task_id } })))
}
