//! `POST /api/v1/plans/{id}/rollouts`, a Cutover extension beside the Stigg and Sequence
//! contracts: publish the plan's draft (the publish endpoint's own checks and refusals) and
//! move its subscriptions cohort by cohort as a STAGED_ROLLOUT task. The body is checked whole
//! (`domain::RolloutSpec`) before anything is written, so a refused request changes nothing.
//! Pause and resume are task actions (`crate::tasks`).

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{entity_id, Json, Path};
use crate::openapi::{Data, STIGG};
use crate::stigg::plans::{accept_publish, idempotency_key, Accepted, PublishRequest, TaskRef};
use crate::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use domain::{MigrationPolicy, RolloutSpec, TaskId, TaskSpec};
use serde::Deserialize;
use serde_json::json;
use store::tasks;
use utoipa::ToSchema;

/// The rollout body: `cohorts` (cumulative percentages) with `interval` (an ISO-8601
/// duration), `customerIds`, or both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateRollout {
    /// Cumulative percentages of the subscriptions, rising, ending at 100.
    cohorts: Option<Vec<f64>>,
    /// Time between cohorts, an ISO-8601 duration such as `PT1H`.
    interval: Option<String>,
    /// Customers that move first, as a cohort of their own.
    customer_ids: Option<Vec<String>>,
    /// A migration policy that narrows the plan's (or the environment's default) for this
    /// rollout only: more exclusions, a longer notice, approval.
    #[schema(value_type = Option<Object>)]
    policy: Option<serde_json::Value>,
}

/// `POST /api/v1/plans/{id}/rollouts` → `{"data": {"taskId"}}`; honours `Idempotency-Key`.
#[utoipa::path(post, path = "/api/v1/plans/{id}/rollouts", operation_id = "PlanController_createRollout", tag = STIGG,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible characters; a retry with the same key answers the same task")),
    request_body = CreateRollout,
    responses((status = 200, description = "Accepted: the STAGED_ROLLOUT task to poll", body = Data<TaskRef>),
        (status = 400, description = "Bad input (cohorts, interval, unknown customers), no draft to publish, or a publish in flight", body = ErrorBody),
        (status = 404, description = "No such plan (`PlanNotFound`)", body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<CreateRollout>,
) -> Result<Json<Data<TaskRef>>, ApiError> {
    let plan_id = entity_id(&id, "plan id")?;
    let spec = RolloutSpec::new(body.cohorts.as_deref(), body.interval.as_deref(), body.customer_ids.as_deref())
        .map_err(ApiError::bad_input)?;
    let key = idempotency_key(&headers)?;
    let summary = json!({
        "cohorts": body.cohorts,
        "interval": spec.interval_text,
        "customerCount": spec.customer_ids.len(),
    });
    let mut describe = format!("staged rollout of version {{version}} in {} cohorts", spec.thresholds.len());
    if let Some(interval) = &spec.interval_text {
        describe.push_str(&format!(", {interval} apart"));
    }
    let task_spec = TaskSpec::StagedRollout {
        cohorts: body.cohorts.clone(),
        interval: spec.interval_text.clone(),
        customer_ids: spec.customer_ids.clone(),
    };
    let narrowing = body
        .policy
        .as_ref()
        .map(|p| MigrationPolicy::from_json(p).map_err(|why| ApiError::bad_input(format!("policy: {why}"))))
        .transpose()?;
    let env = caller.environment_id;
    let mut tx = state.begin().await?;
    let in_force = store::policies::in_force(&mut tx, env, plan_id.as_str()).await?.unwrap_or_default();
    let pinned = match &narrowing {
        Some(narrowing) => in_force.narrowed_by(narrowing),
        None => in_force,
    };
    // cohorts pace moves over hours; a notice period makes every move wait for a billing date
    // weeks away, which no cohort could pace: refused rather than ignored
    if let Some(notice) = &pinned.notice_period {
        return Err(ApiError::bad_input(format!(
            "the migration policy in force has a noticePeriod ({notice}): a staged rollout cannot pace moves \
             that wait for notice; publish with ALL_CUSTOMERS, whose moves are scheduled after the notice"
        )));
    }
    let policy = tasks::PolicyPin::Given(pinned);
    let request = PublishRequest { spec: task_spec, describe, data: summary, policy };
    let task_id = match accept_publish(&mut tx, &state, &caller, &plan_id, key, request).await? {
        Accepted::Existing(task_id) => return Ok(Json(Data { data: TaskRef { task_id: TaskId(task_id) } })),
        Accepted::New(task_id) => task_id,
    };
    if !spec.customer_ids.is_empty() {
        let unknown = store::rollouts::unknown_customers(&mut tx, env, &spec.customer_ids).await?;
        if !unknown.is_empty() {
            return Err(ApiError::bad_input(format!("customerIds names unknown customers: {}", unknown.join(", "))));
        }
    }
    store::rollouts::insert(&mut tx, env, task_id, &spec).await?;
    tx.commit(&state.hooks()).await?;
    tracing::info!(task_id = %task_id, plan_id = %plan_id, cohorts = spec.thresholds.len(), "rollout accepted");
    Ok(Json(Data { data: TaskRef { task_id } }))
}
