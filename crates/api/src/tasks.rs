//! `/api/v1/tasks`: what callers poll, and what they do to tasks (cancel, retry, pause,
//! resume, roll back). Field names are those of Stigg's SubscriptionMigrationTask, plus
//! Cutover's `rollbackOf`, `rolledBackBy` and `skippedCount`; progress is a whole percentage
//! derived from the counts.

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{comma_list, page_body, Json, KnownQuery, PageQuery, Path, QueryNames};
use crate::openapi::{Data, List, TASKS};
use crate::stigg::plans::TaskRef;
use crate::AppState;
use axum::extract::State;
use chrono::{DateTime, Utc};
use domain::task::TaskView;
use domain::{ErrorCode, TaskId, TaskStatus, TaskType};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use store::tasks::{self, Task, TaskFilter};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Each `routes!` names the handlers of one path (see `crate::openapi` for adding one).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get_one))
        .routes(routes!(cancel))
        .routes(routes!(retry))
        .routes(routes!(rollback))
        .routes(routes!(pause))
        .routes(routes!(resume))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .routes(routes!(events))
}

/// A task as `GET /api/v1/tasks/{id}` answers it: `view`, plus `rollout` (cohorts, the
/// current cohort, the next cohort's time, paused or not) for a STAGED_ROLLOUT task. The task
/// and its rollout are read again together, from one snapshot: the commit that ends a cohort
/// changes both (the counts and the next cohort's time), and two reads apart could show one
/// without the other.
pub async fn full_view(pool: &sqlx::PgPool, t: &Task) -> Result<TaskView, ApiError> {
    if t.task_type() != TaskType::StagedRollout {
        return Ok(views::task::task(t, None));
    }
    let mut snapshot = store::begin_read_only(pool).await?;
    let task = store::tasks::read(&mut snapshot, t.id()).await?.unwrap_or_else(|| t.clone());
    let rollout = store::rollouts::get(&mut snapshot, t.id()).await?;
    snapshot.commit().await?;
    Ok(views::task::task(&task, rollout.as_ref()))
}

pub(crate) fn parse_task_id(raw: &str) -> Result<TaskId, ApiError> {
    tracing::Span::current().record("task_id", raw);
    TaskId::parse(raw).map_err(|_| ApiError::new(ErrorCode::NotFound, format!("task `{raw}` not found")))
}

#[utoipa::path(get, path = "/api/v1/tasks/{id}", operation_id = "TaskController_getTask", tag = TASKS, params(("id" = String, Path, description = "The task's id (a UUID)")),
    responses((status = 200, description = "The task", body = Data<TaskView>), (status = 404, description = "No such task in this environment (`NotFound`)", body = ErrorBody,
            extensions(("x-error-codes" = json!(["NotFound"]))))))]
pub async fn get_one(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Data<TaskView>>, ApiError> {
    let task_id = parse_task_id(&id)?;
    let task = tasks::get(&state.pool, caller.environment_id, task_id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("task `{id}` not found")))?;
    Ok(Json(Data { data: full_view(&state.pool, &task).await? }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Comma-separated task statuses.
    status: Option<String>,
    /// Comma-separated task types.
    task_type: Option<String>,
    plan_id: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: PageQuery,
}

impl QueryNames for ListQuery {
    const NAMES: &'static [&'static str] = &["status", "taskType", "planId"];
}

#[utoipa::path(get, path = "/api/v1/tasks", operation_id = "TaskController_listTasks", tag = TASKS, params(ListQuery, PageQuery),
    responses((status = 200, description = "A page of tasks, newest first", body = List<TaskView>)))]
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    KnownQuery(query): KnownQuery<ListQuery>,
) -> Result<Json<List<TaskView>>, ApiError> {
    let statuses: Vec<&str> = TaskStatus::ALL.iter().map(|s| s.as_str()).collect();
    let types: Vec<&str> = TaskType::ALL.iter().map(|s| s.as_str()).collect();
    let filter = TaskFilter {
        statuses: comma_list(query.status.as_deref(), "status", &statuses)?,
        task_types: comma_list(query.task_type.as_deref(), "taskType", &types)?,
        plan_id: query.plan_id,
        after: query.page.after()?,
        limit: query.page.limit()?,
    };
    let page = tasks::list(&state.pool, caller.environment_id, &filter).await?;
    Ok(Json(page_body(&page, |t| views::task::task(t, None))))
}

/// `POST /api/v1/tasks/{id}/cancel`
#[utoipa::path(post, path = "/api/v1/tasks/{id}/cancel", operation_id = "TaskController_cancelTask", tag = TASKS, params(("id" = String, Path, description = "The task's id (a UUID)")),
    responses((status = 200, description = "The task, CANCELED", body = Data<TaskView>),
        (status = 400, description = "The task is finished already (`InvalidArgumentError`)", body = ErrorBody), (status = 404, description = "No such task in this environment (`NotFound`)", body = ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Data<TaskView>>, ApiError> {
    let task_id = parse_task_id(&id)?;
    let mut tx = state.begin().await?;
    let task = store::actions::cancel(&mut tx, caller.environment_id, task_id, &caller.key_prefix).await?;
    tx.commit(&state.hooks()).await?;
    tracing::info!(task_id = %task_id, "task canceled");
    Ok(Json(Data { data: views::task::task(&task, None) }))
}

/// `POST /api/v1/tasks/{id}/retry`
#[utoipa::path(post, path = "/api/v1/tasks/{id}/retry", operation_id = "TaskController_retryTask", tag = TASKS, params(("id" = String, Path, description = "The task's id (a UUID)")),
    responses((status = 200, description = "The task, PENDING again", body = Data<TaskView>),
        (status = 400, description = "Only a FAILED or PARTIALLY_FAILED task can be retried (`InvalidArgumentError`)", body = ErrorBody), (status = 404, description = "No such task in this environment (`NotFound`)", body = ErrorBody)))]
pub async fn retry(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Data<TaskView>>, ApiError> {
    let task_id = parse_task_id(&id)?;
    let mut tx = state.begin().await?;
    let task = store::actions::retry(&mut tx, caller.environment_id, task_id, &caller.key_prefix).await?;
    tx.commit(&state.hooks()).await?;
    tracing::info!(task_id = %task_id, "task retried");
    Ok(Json(Data { data: views::task::task(&task, None) }))
}

/// Pause and resume change what a rollout does next: an admin key's call only.
fn require_admin(caller: &store::api_keys::Principal, what: &str) -> Result<(), ApiError> {
    if caller.scope != store::api_keys::Scope::Admin {
        return Err(ApiError::new(ErrorCode::AccessDeniedError, format!("{what} a rollout needs an admin API key")));
    }
    Ok(())
}

/// `POST /api/v1/tasks/{id}/approve`: an admin other than the one who asked starts a task
/// whose migration policy requires approval.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/approve", operation_id = "TaskController_approveTask", tag = TASKS, params(("id" = String, Path, description = "The task's id (a UUID)")),
    responses((status = 200, description = "The task, approved and on its way", body = Data<TaskView>),
        (status = 400, description = "The task does not wait for approval (`BadUserInput`)", body = ErrorBody),
        (status = 403, description = "Not an admin key, or the key that requested the task (`AccessDeniedError`)", body = ErrorBody),
        (status = 404, description = "No such task in this environment (`NotFound`)", body = ErrorBody)))]
pub async fn approve(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Data<TaskView>>, ApiError> {
    decide(&state, &caller, &id, Decision::Approve).await
}

/// `POST /api/v1/tasks/{id}/reject`: an admin other than the one who asked ends a task that
/// waits for approval, CANCELED, with nothing published or moved.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/reject", operation_id = "TaskController_rejectTask", tag = TASKS, params(("id" = String, Path, description = "The task's id (a UUID)")),
    responses((status = 200, description = "The task, rejected and CANCELED", body = Data<TaskView>),
        (status = 400, description = "The task does not wait for approval (`BadUserInput`)", body = ErrorBody),
        (status = 403, description = "Not an admin key, or the key that requested the task (`AccessDeniedError`)", body = ErrorBody),
        (status = 404, description = "No such task in this environment (`NotFound`)", body = ErrorBody)))]
pub async fn reject(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Data<TaskView>>, ApiError> {
    decide(&state, &caller, &id, Decision::Reject).await
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Decision {
    Approve,
    Reject,
}

/// Approves or rejects a task, as `caller`: the one rule for the API and the dashboard.
pub(crate) async fn decide(
    state: &AppState,
    caller: &store::api_keys::Principal,
    id: &str,
    decision: Decision,
) -> Result<Json<Data<TaskView>>, ApiError> {
    if caller.scope != store::api_keys::Scope::Admin {
        return Err(ApiError::new(
            ErrorCode::AccessDeniedError,
            "approving or rejecting a task needs an admin API key",
        ));
    }
    let task_id = parse_task_id(id)?;
    let mut tx = state.begin().await?;
    let (env, who) = (caller.environment_id, caller.key_prefix.as_str());
    let task = match decision {
        Decision::Approve => store::approvals::approve(&mut tx, env, task_id, who).await?,
        Decision::Reject => store::approvals::reject(&mut tx, env, task_id, who).await?,
    };
    tx.commit(&state.hooks()).await?;
    tracing::info!(task_id = %task_id, decision = ?decision, "task approval decided");
    Ok(Json(Data { data: full_view(&state.pool, &task).await? }))
}

/// `POST /api/v1/tasks/{id}/pause`: a STAGED_ROLLOUT finishes the batches it is running and
/// moves nothing more until resumed. Admin keys only.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/pause", operation_id = "TaskController_pauseTask", tag = TASKS, params(("id" = String, Path, description = "The task's id (a UUID)")),
    responses((status = 200, description = "The task, with its rollout paused", body = Data<TaskView>),
        (status = 400, description = "Not a running STAGED_ROLLOUT, or paused already", body = ErrorBody),
        (status = 403, description = "Not an admin key (`AccessDeniedError`)", body = ErrorBody), (status = 404, description = "No such task in this environment (`NotFound`)", body = ErrorBody)))]
pub async fn pause(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Data<TaskView>>, ApiError> {
    require_admin(&caller, "pausing")?;
    let task_id = parse_task_id(&id)?;
    let mut tx = state.begin().await?;
    let (task, rollout) = store::rollouts::pause(&mut tx, caller.environment_id, task_id, &caller.key_prefix).await?;
    tx.commit(&state.hooks()).await?;
    tracing::info!(task_id = %task_id, "rollout paused");
    Ok(Json(Data { data: views::task::task(&task, Some(&rollout)) }))
}

/// `POST /api/v1/tasks/{id}/resume`: a paused STAGED_ROLLOUT carries on where it stopped.
/// Admin keys only.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/resume", operation_id = "TaskController_resumeTask", tag = TASKS, params(("id" = String, Path, description = "The task's id (a UUID)")),
    responses((status = 200, description = "The task, with its rollout carrying on", body = Data<TaskView>),
        (status = 400, description = "Not a paused STAGED_ROLLOUT", body = ErrorBody),
        (status = 403, description = "Not an admin key (`AccessDeniedError`)", body = ErrorBody), (status = 404, description = "No such task in this environment (`NotFound`)", body = ErrorBody)))]
pub async fn resume(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Data<TaskView>>, ApiError> {
    require_admin(&caller, "resuming")?;
    let task_id = parse_task_id(&id)?;
    let mut tx = state.begin().await?;
    let (task, rollout) = store::rollouts::resume(&mut tx, caller.environment_id, task_id, &caller.key_prefix).await?;
    tx.commit(&state.hooks()).await?;
    tracing::info!(task_id = %task_id, "rollout resumed");
    Ok(Json(Data { data: views::task::task(&task, Some(&rollout)) }))
}

/// `POST /api/v1/tasks/{id}/rollback` (Cutover's extension): accepts a ROLLBACK_MIGRATION task
/// that moves back what this task moved, committed with its outbox row and event like every
/// task, and answers its id at once.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/rollback", operation_id = "TaskController_rollbackTask", tag = TASKS, params(("id" = String, Path, description = "The task's id (a UUID)")),
    responses((status = 200, description = "Accepted: the ROLLBACK_MIGRATION task to poll", body = Data<TaskRef>),
        (status = 400, description = "The task cannot be rolled back: not finished, or it moved no subscriptions (`BadUserInput`)", body = ErrorBody),
        (status = 404, description = "No such task in this environment (`NotFound`)", body = ErrorBody),
        (status = 409, description = "The task was rolled back already (`TaskAlreadyRolledBack`)", body = ErrorBody)))]
pub async fn rollback(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Data<TaskRef>>, ApiError> {
    let task_id = parse_task_id(&id)?;
    let mut tx = state.begin().await?;
    let rollback = store::rollbacks::accept(
        &mut tx,
        caller.environment_id,
        task_id,
        state.settings.max_attempts,
        &caller.key_prefix,
    )
    .await?;
    tx.commit(&state.hooks()).await?;
    tracing::info!(task_id = %task_id, rollback_task_id = %rollback, "rollback accepted");
    Ok(Json(Data { data: TaskRef { task_id: rollback } }))
}

/// How often the stream looks at the task and its timeline.
const STREAM_POLL: std::time::Duration = std::time::Duration::from_millis(250);
/// A `task` event that only `live` (rate, sparkline) would change is sent at most this often.
const LIVE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// One row of a task's timeline, as the stream and the dashboard show it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimelineEvent {
    /// The row's id, also the stream's SSE `id` (for `Last-Event-ID`).
    id: i64,
    /// What happened: `accepted`, `planned`, `batch`, `completed`, ...
    kind: String,
    message: String,
    /// Who did it, for what people do (retry, cancel, pause, ...).
    actor: Option<String>,
    /// Details of the kind (an object).
    data: Value,
    created_at: DateTime<Utc>,
}

pub fn event_view(e: &store::dashboard::Event) -> TimelineEvent {
    TimelineEvent {
        id: e.id,
        kind: e.kind.clone(),
        message: e.message.clone(),
        actor: e.actor.clone(),
        data: e.data.clone(),
        created_at: e.created_at,
    }
}

/// One Server-Sent Event of `GET /api/v1/tasks/{id}/events` as a client reads it: the event's
/// name, its `data` (JSON text) and, once a timeline row has been sent, the last `id`. Written by
/// hand because the generator has no `contentSchema`, the keyword that says what the JSON text of
/// `data` holds.
pub struct StreamEvent;

impl utoipa::PartialSchema for StreamEvent {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        let in_data = |schema: &str| {
            json!({
                "type": "object",
                "required": ["data"],
                "properties": {
                    "data": { "$ref": format!("#/components/schemas/{schema}") },
                    "live": { "$ref": format!("#/components/schemas/{}", views::task::LiveProgress::name()) },
                },
            })
        };
        let event = |name: &str, description: &str, payload: Value| {
            let mut data = ObjectBuilder::new()
                .schema_type(Type::String)
                .content_media_type("application/json")
                .description(Some("JSON text"))
                .build();
            data.extensions.get_or_insert_with(Default::default).insert("contentSchema".to_owned(), payload);
            ObjectBuilder::new()
                .description(Some(description))
                .property("event", ObjectBuilder::new().schema_type(Type::String).enum_values(Some([name])))
                .required("event")
                .property("data", data)
                .required("data")
                .property(
                    "id",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .description(Some("The id of the last timeline row sent so far")),
                )
                .build()
        };
        OneOfBuilder::new()
            .item(event(
                "task",
                "The task, sent first and whenever it changes, with `live`: its rate over a sliding window, ETA, batches by state and throughput (at most once a second when only `live` changed)",
                in_data(TaskView::name().as_ref()),
            ))
            .item(event(
                "event",
                "One timeline row, in order",
                json!({ "$ref": format!("#/components/schemas/{}", TimelineEvent::name()) }),
            ))
            .item(event("end", "The final task; the stream closes after it", in_data(TaskView::name().as_ref())))
            .item(event(
                "revoked",
                "The key was revoked or expired (checked every 30 s); the stream closes after it",
                json!({ "type": "object", "required": ["code", "message"],
                        "properties": { "code": { "type": "string" }, "message": { "type": "string" } } }),
            ))
            .into()
    }
}

impl ToSchema for StreamEvent {
    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        schemas.push((TaskView::name().into_owned(), <TaskView as utoipa::PartialSchema>::schema()));
        TaskView::schemas(schemas);
        schemas.push((TimelineEvent::name().into_owned(), <TimelineEvent as utoipa::PartialSchema>::schema()));
        TimelineEvent::schemas(schemas);
        use views::task::{BatchCounts, LiveProgress};
        schemas.push((LiveProgress::name().into_owned(), <LiveProgress as utoipa::PartialSchema>::schema()));
        LiveProgress::schemas(schemas);
        schemas.push((BatchCounts::name().into_owned(), <BatchCounts as utoipa::PartialSchema>::schema()));
    }
}

struct Stream {
    state: AppState,
    caller: store::api_keys::Principal,
    task_id: TaskId,
    last_event: i64,
    last_task: Option<TaskView>,
    last_live: Option<views::task::LiveProgress>,
    /// When `task` was last sent: a change of `live` alone waits `LIVE_EVERY` after it.
    task_sent: Option<tokio::time::Instant>,
    pending: std::collections::VecDeque<axum::response::sse::Event>,
    done: bool,
    /// When the caller's key was last found good.
    key_checked: tokio::time::Instant,
}

impl Stream {
    /// Reads what changed since the last look; queues `task` (when the task changed), one
    /// `event` per new timeline row, and `end` once the task is terminal.
    async fn poll(&mut self) -> Result<(), ApiError> {
        use axum::response::sse::Event;
        if self.key_checked.elapsed() >= self.state.settings.stream_key_check {
            if !store::api_keys::is_live(&self.state.pool, self.caller.key_id).await? {
                tracing::info!(key_prefix = %self.caller.key_prefix, task_id = %self.task_id,
                               "task stream ended: its key was revoked or expired");
                let body = json!({ "code": "Unauthenticated", "message": "the API key was revoked or has expired" });
                self.pending.push_back(Event::default().event("revoked").data(body.to_string()));
                self.done = true;
                return Ok(());
            }
            self.key_checked = tokio::time::Instant::now();
        }
        let task = tasks::get(&self.state.pool, self.caller.environment_id, self.task_id)
            .await?
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("task `{}` not found", self.task_id)))?;
        let events =
            store::dashboard::events_after(&self.state.pool, self.caller.environment_id, self.task_id, self.last_event)
                .await?;
        let view = full_view(&self.state.pool, &task).await?;
        let live = views::task::live(&task, &store::dashboard::live(&self.state.pool, self.task_id).await?);
        let live_due =
            self.last_live.as_ref() != Some(&live) && self.task_sent.is_none_or(|sent| sent.elapsed() >= LIVE_EVERY);
        if self.last_task.as_ref() != Some(&view) || live_due {
            self.pending
                .push_back(Event::default().event("task").data(json!({ "data": view, "live": live }).to_string()));
            self.last_task = Some(view.clone());
            self.last_live = Some(live.clone());
            self.task_sent = Some(tokio::time::Instant::now());
        }
        for e in &events {
            self.last_event = e.id;
            self.pending
                .push_back(Event::default().event("event").id(e.id.to_string()).data(json!(event_view(e)).to_string()));
        }
        if task.status().is_terminal() {
            self.pending
                .push_back(Event::default().event("end").data(json!({ "data": view, "live": live }).to_string()));
            self.done = true;
        }
        Ok(())
    }
}

/// `GET /api/v1/tasks/{id}/events`: Server-Sent Events. `task` carries the task (the same
/// JSON as `GET /api/v1/tasks/{id}`, under `data`) whenever it changes, and `live` beside it
/// (rate over a sliding window, ETA, batches by state, throughput); `event` carries each
/// new row of its timeline; `end` carries the final task, after which the stream closes.
/// The key is checked again every 30 s: once revoked or expired, a `revoked` event ends the stream.
/// Each `event` has its row's id as the SSE id; a client that reconnects with
/// `Last-Event-ID` (browsers do) gets only the rows after it.
#[utoipa::path(get, path = "/api/v1/tasks/{id}/events", operation_id = "TaskController_streamTaskEvents", tag = TASKS,
    params(("id" = String, Path, description = "The task's id (a UUID)"),
        ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this timeline row: only later `event`s are sent")),
    responses((status = 200, content_type = "text/event-stream",
        description = "Server-Sent Events: `task` (the task, under `data`) when it changes, `event` per timeline row, `end` with the final task, `revoked` when the key no longer holds", body = StreamEvent),
        (status = 400, description = "`Last-Event-ID` is not an event id (`BadUserInput`)", body = ErrorBody),
        (status = 404, description = "No such task in this environment (`NotFound`)", body = ErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<
    axum::response::sse::Sse<impl futures::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>>,
    ApiError,
> {
    let task_id = parse_task_id(&id)?;
    let last_event = match headers.get("last-event-id").map(|v| v.to_str().map(|v| v.trim().parse::<i64>())) {
        None => 0,
        Some(Ok(Ok(id))) if id >= 0 => id,
        Some(_) => return Err(ApiError::new(ErrorCode::BadUserInput, "Last-Event-ID must be an event id")),
    };
    let key_checked = tokio::time::Instant::now();
    let mut stream = Stream {
        state,
        caller,
        task_id,
        last_event,
        last_task: None,
        last_live: None,
        task_sent: None,
        pending: Default::default(),
        done: false,
        key_checked,
    };
    // a task that is not there answers 404 before the stream starts
    stream.poll().await?;
    let events = futures::stream::unfold(stream, |mut s| async move {
        loop {
            if let Some(event) = s.pending.pop_front() {
                return Some((Ok(event), s));
            }
            if s.done {
                return None;
            }
            tokio::time::sleep(STREAM_POLL).await;
            if let Err(e) = s.poll().await {
                tracing::warn!(error = %e, task_id = %s.task_id, "task stream stopped");
                return None;
            }
        }
    });
    Ok(axum::response::sse::Sse::new(events).keep_alive(axum::response::sse::KeepAlive::default()))
}
