//! The operations dashboard at `/dashboard`: plain HTML, JavaScript and CSS compiled into the
//! binary (no CDN, no build step), and JSON endpoints under `/dashboard/api` that it calls.
//! Sign-in trades an `admin` or `read-only` API key for a session in an HttpOnly,
//! SameSite=Strict cookie (the key itself never stays in the browser). A read-only session
//! sees everything and changes nothing: the page hides the buttons and the server refuses
//! with 403 `AccessDeniedError`. Changes must also carry `X-Cutover-Dashboard: 1`, which a
//! cross-site form cannot send. Retry, cancel, and a rollout's pause and resume are recorded
//! in the task's timeline with the key prefix of whoever did them.

mod bulk;
mod dead_letters;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::tasks::{event_view, parse_task_id};
use crate::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use domain::{ErrorCode, TaskStatus, TaskType};
use serde::Deserialize;
use serde_json::{json, Value};
use store::api_keys::{Principal, Scope};
use store::tasks::TaskFilter;

const COOKIE: &str = "cutover_session";
/// How long a session lasts.
pub const SESSION_SECS: i64 = 8 * 3600;
const CSRF_HEADER: &str = "x-cutover-dashboard";

const INDEX_HTML: &str = include_str!("../assets/dashboard/index.html");
const APP_JS: &str = include_str!("../assets/dashboard/app.js");
const APP_CSS: &str = include_str!("../assets/dashboard/app.css");
const DEAD_LETTERS_JS: &str = include_str!("../assets/dashboard/dead-letters.js");
const WEBHOOKS_JS: &str = include_str!("../assets/dashboard/webhooks.js");
const CHARTS_JS: &str = include_str!("../assets/dashboard/charts.js");

pub fn routes(state: AppState) -> Router<AppState> {
    let session = Router::new()
        .route("/dashboard/api/me", get(me))
        .route("/dashboard/api/overview", get(overview))
        .route("/dashboard/api/tasks", get(tasks))
        .route("/dashboard/api/tasks/{id}", get(task))
        .route("/dashboard/api/tasks/{id}/events", get(crate::tasks::events))
        .route("/dashboard/api/tasks/{id}/batches", get(task_batches))
        .route("/dashboard/api/tasks/{id}/retry", post(crate::tasks::retry))
        .route("/dashboard/api/tasks/{id}/cancel", post(crate::tasks::cancel))
        .route("/dashboard/api/tasks/{id}/pause", post(crate::tasks::pause))
        .route("/dashboard/api/tasks/{id}/resume", post(crate::tasks::resume))
        .route("/dashboard/api/tasks/{id}/rollback", post(crate::tasks::rollback))
        .route("/dashboard/api/tasks/{id}/approve", post(crate::tasks::approve))
        .route("/dashboard/api/tasks/{id}/reject", post(crate::tasks::reject))
        .route("/dashboard/api/tasks/bulk", post(bulk::bulk))
        .route("/dashboard/api/plans", get(plans))
        .route("/dashboard/api/plans/{id}/publish/preview", post(crate::stigg::plans::publish_preview))
        .route("/dashboard/api/dead-letters", get(dead_letters::list))
        .route("/dashboard/api/dead-letters/{id}", get(dead_letters::get))
        .route("/dashboard/api/dead-letters/{id}/replay", post(dead_letters::replay))
        .route("/dashboard/api/dead-letters/{id}/discard", post(dead_letters::discard))
        .route("/dashboard/api/sign-out", post(sign_out))
        .merge(crate::webhooks::dashboard_routes())
        .layer(axum::middleware::from_fn_with_state(state, require_session));
    Router::new()
        // the root has nothing of its own to show; a person who opens it wants the dashboard
        .route("/", get(|| async { axum::response::Redirect::to("/dashboard") }))
        .route("/dashboard", get(|| asset("text/html; charset=utf-8", INDEX_HTML)))
        .route("/dashboard/", get(|| asset("text/html; charset=utf-8", INDEX_HTML)))
        .route("/dashboard/app.js", get(|| asset("text/javascript; charset=utf-8", APP_JS)))
        .route("/dashboard/app.css", get(|| asset("text/css; charset=utf-8", APP_CSS)))
        .route("/dashboard/dead-letters.js", get(|| asset("text/javascript; charset=utf-8", DEAD_LETTERS_JS)))
        .route("/dashboard/webhooks.js", get(|| asset("text/javascript; charset=utf-8", WEBHOOKS_JS)))
        .route("/dashboard/charts.js", get(|| asset("text/javascript; charset=utf-8", CHARTS_JS)))
        .route("/dashboard/api/sign-in", post(sign_in))
        .merge(session)
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"),
        ],
        body,
    )
        .into_response()
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == COOKIE && !value.is_empty()).then(|| value.to_owned())
    })
}

fn refuse_forged(headers: &HeaderMap) -> Result<(), ApiError> {
    if headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()) != Some("1") {
        return Err(ApiError::new(
            ErrorCode::AccessDeniedError,
            "dashboard changes need the `X-Cutover-Dashboard: 1` header",
        ));
    }
    Ok(())
}

/// Puts the session's principal where `Caller` finds it; refuses changes from read-only
/// sessions and changes without the dashboard's header.
pub async fn require_session(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    let Some(token) = cookie_token(&parts.headers) else {
        return Err(ApiError::new(ErrorCode::Unauthenticated, "sign in to the dashboard first"));
    };
    let Some(principal) = store::dashboard::session(&state.pool, &token).await? else {
        return Err(ApiError::new(ErrorCode::Unauthenticated, "the dashboard session has ended; sign in again"));
    };
    if parts.method != Method::GET && parts.method != Method::HEAD {
        refuse_forged(&parts.headers)?;
        let signing_out = parts.uri.path() == "/dashboard/api/sign-out";
        if !principal.scope.can_write() && !signing_out {
            return Err(ApiError::new(ErrorCode::AccessDeniedError, "this dashboard session is read-only"));
        }
    }
    let span = tracing::Span::current();
    span.record("environment_id", tracing::field::display(principal.environment_id.0));
    span.record("key_prefix", principal.key_prefix.as_str());
    parts.extensions.insert(principal);
    Ok(next.run(Request::from_parts(parts, body)).await)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    key: String,
}

fn who(p: &Principal) -> Value {
    json!({ "keyPrefix": p.key_prefix, "scope": p.scope.as_str(), "canWrite": p.scope.can_write(),
            "environmentId": p.environment_id.0 })
}

/// `POST /dashboard/api/sign-in` `{"key"}`: an admin or read-only key opens a session.
pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<SignIn>,
) -> Result<Response, ApiError> {
    refuse_forged(&headers)?;
    let principal = store::api_keys::authenticate(&state.pool, body.key.trim())
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated, "invalid API key"))?;
    if principal.scope == Scope::Server {
        return Err(ApiError::new(
            ErrorCode::AccessDeniedError,
            "the dashboard takes an admin or read-only key, not a server key",
        ));
    }
    let token = store::dashboard::create_session(&state.pool, principal.key_id, SESSION_SECS).await?;
    store::dashboard::record_sign_in(&state.pool, &principal).await?;
    tracing::info!(key_prefix = %principal.key_prefix, scope = principal.scope.as_str(), "dashboard sign-in");
    let secure = if served_over_https(&state, &headers) { "; Secure" } else { "" };
    let cookie =
        format!("{COOKIE}={token}; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECS}{secure}");
    let mut response = axum::Json(json!({ "data": who(&principal) })).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// Whether the browser reached us over https: `CUTOVER_PUBLIC_URL` says so, or the proxy in
/// front set `X-Forwarded-Proto: https`. The header is honoured from anyone: it can only add
/// `Secure` to the caller's own cookie, never take it away from someone else's.
fn served_over_https(state: &AppState, headers: &HeaderMap) -> bool {
    state.settings.https
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').next().unwrap_or("").trim().eq_ignore_ascii_case("https"))
}

pub async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(token) = cookie_token(&headers) {
        store::dashboard::end_session(&state.pool, &token).await?;
    }
    // cleared with the attributes it was set with: a browser keeps a `Secure` cookie that a
    // clearing cookie without `Secure` does not match
    let secure = if served_over_https(&state, &headers) { "; Secure" } else { "" };
    let cookie = format!("{COOKIE}=; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age=0{secure}");
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

pub async fn me(Caller(caller): Caller) -> axum::Json<Value> {
    axum::Json(json!({ "data": who(&caller) }))
}

pub async fn overview(State(state): State<AppState>, Caller(caller): Caller) -> Result<axum::Json<Value>, ApiError> {
    let env = caller.environment_id;
    let counts = store::dashboard::task_counts(&state.pool, env).await?;
    let mut by_status = serde_json::Map::new();
    for status in TaskStatus::ALL {
        let n: i64 = counts.iter().filter(|(_, s, _)| s == status.as_str()).map(|(_, _, n)| n).sum();
        by_status.insert(status.as_str().to_owned(), json!(n));
    }
    let minutes = store::dashboard::throughput(&state.pool, env).await?;
    let workers = store::dashboard::workers(&state.pool).await?;
    let (unsent, oldest) = store::outbox::backlog(&state.pool).await?;
    let queues = store::queues::observed(&state.pool, &state.settings.queue_prefix).await?;
    let operator = dead_letters::is_operator(&state, env).await?;
    let dead_letters = store::dead_letters::count_dead(&state.pool, env, operator).await?;
    let audit = store::dashboard::audit(&state.pool, env, 20).await?;
    let running = store::dashboard::running_tasks(&state.pool, env, RUNNING_SHOWN + 1).await?;
    Ok(axum::Json(json!({ "data": {
        "tasksByStatus": by_status,
        "tasksByType": counts.iter().map(|(t, s, n)| json!({"taskType": t, "status": s, "count": n})).collect::<Vec<_>>(),
        "perMinute": minutes.iter().map(|m| json!({"minute": m.minute, "moved": m.moved, "completed": m.completed, "failed": m.failed})).collect::<Vec<_>>(),
        "running": running.iter().take(RUNNING_SHOWN as usize).map(|t| views::task::task(t, None)).collect::<Vec<_>>(),
        "moreRunning": running.len() as i64 > RUNNING_SHOWN,
        "workers": workers.iter().map(|w| json!({
            "id": w.id, "hostname": w.hostname, "pid": w.pid, "startedAt": w.started_at,
            "heartbeatAgeSecs": w.heartbeat_age_secs, "inFlight": w.in_flight, "stoppedAt": w.stopped_at,
        })).collect::<Vec<_>>(),
        "outbox": { "unsent": unsent, "oldestAgeSecs": oldest },
        "queues": queues.iter().map(|q| json!({
            "queue": q.queue, "ready": q.ready, "unacked": q.unacked, "consumers": q.consumers,
            "observedBy": q.observed_by, "observedAt": q.observed_at, "ageSecs": q.age_secs,
        })).collect::<Vec<_>>(),
        "deadLetters": dead_letters,
        "signIns": audit.iter().map(|(k, a, at)| json!({"keyPrefix": k, "action": a, "at": at})).collect::<Vec<_>>(),
    }})))
}

/// Running tasks the overview lists (the rest are a click away, in the filtered task list).
const RUNNING_SHOWN: i64 = 10;

#[derive(Debug, Deserialize)]
pub struct TasksQuery {
    status: Option<String>,
    #[serde(rename = "type")]
    task_type: Option<String>,
    plan: Option<String>,
    q: Option<String>,
    after: Option<String>,
    limit: Option<i64>,
}

/// A page (200 unless `limit` says fewer) of the newest tasks matching the filters, with the
/// cursor of the next page in `next` and every task type in `taskTypes`; `q` finds one by id.
pub async fn tasks(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(query): Query<TasksQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let types: Vec<&str> = TaskType::ALL.iter().map(|s| s.as_str()).collect();
    if let Some(q) = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        let found = match domain::TaskId::parse(q) {
            Ok(id) => store::tasks::get(&state.pool, caller.environment_id, id).await?,
            Err(_) => None,
        };
        return Ok(axum::Json(json!({ "data": found.iter().map(|t| views::task::task(t, None)).collect::<Vec<_>>(),
                                     "next": null, "taskTypes": types })));
    }
    let statuses: Vec<&str> = TaskStatus::ALL.iter().map(|s| s.as_str()).collect();
    let filter = TaskFilter {
        statuses: crate::extract::comma_list(query.status.as_deref(), "status", &statuses)?,
        task_types: crate::extract::comma_list(query.task_type.as_deref(), "type", &types)?,
        plan_id: query.plan.filter(|p| !p.trim().is_empty()),
        after: store::parse_cursor(query.after.as_deref())?,
        limit: query.limit.unwrap_or(200).clamp(1, 200),
    };
    let page = store::tasks::list(&state.pool, caller.environment_id, &filter).await?;
    Ok(axum::Json(json!({ "data": page.items.iter().map(|t| views::task::task(t, None)).collect::<Vec<_>>(),
                          "next": page.next, "taskTypes": types })))
}

/// Batches of one state the task page lists at a time.
const BATCH_PAGE: i64 = 20;

fn batch_view(b: &store::dashboard::BatchRow) -> Value {
    json!({ "seq": b.seq, "expected": b.expected, "status": b.status, "attempts": b.attempts,
            "moved": b.moved, "failed": b.failed, "worker": b.worker, "lastError": b.last_error })
}

/// A page of a task's batches in one state, with the cursor of the next.
async fn batch_page(state: &AppState, task: domain::TaskId, status: &str, after: i32) -> Result<Value, ApiError> {
    let mut rows = store::dashboard::batches_in(&state.pool, task, status, after, BATCH_PAGE + 1).await?;
    let next = (rows.len() as i64 > BATCH_PAGE).then(|| rows[BATCH_PAGE as usize - 1].seq);
    rows.truncate(BATCH_PAGE as usize);
    Ok(json!({ "data": rows.iter().map(batch_view).collect::<Vec<_>>(), "next": next }))
}

/// One task with everything its page shows: its live progress (rate over a sliding window,
/// ETA, batches by state, throughput), the first page of its failed and of its pending
/// batches, failed items, timeline.
pub async fn task(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let task_id = parse_task_id(&id)?;
    let task = store::tasks::get(&state.pool, caller.environment_id, task_id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("task `{id}` not found")))?;
    let live = views::task::live(&task, &store::dashboard::live(&state.pool, task_id).await?);
    let failed_batches = batch_page(&state, task_id, "FAILED", -1).await?;
    let pending_batches = batch_page(&state, task_id, "PENDING", -1).await?;
    let failures = store::dashboard::item_failures(&state.pool, task_id).await?;
    let events = store::dashboard::events_after(&state.pool, caller.environment_id, task_id, 0).await?;
    let moved = store::rollbacks::history_counts(&state.pool, caller.environment_id, task_id).await?;
    Ok(axum::Json(json!({ "data": {
        "task": crate::tasks::full_view(&state.pool, &task).await?,
        "live": live,
        "lastError": task.last_error,
        "failedBatches": failed_batches,
        "pendingBatches": pending_batches,
        "failures": failures.iter().map(|(s, c, m)| json!({"subscriptionId": s, "code": c, "message": m})).collect::<Vec<_>>(),
        "events": events.iter().map(event_view).collect::<Vec<_>>(),
        "movedFrom": moved.iter().map(|(v, n)| json!({"version": v, "count": n})).collect::<Vec<_>>(),
    }})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchesQuery {
    status: String,
    after: Option<i32>,
}

/// `GET /dashboard/api/tasks/{id}/batches?status=FAILED|PENDING&after=SEQ`: the next page of
/// the task's batches in that state.
pub async fn task_batches(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    Query(query): Query<BatchesQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let task_id = parse_task_id(&id)?;
    if store::tasks::get(&state.pool, caller.environment_id, task_id).await?.is_none() {
        return Err(ApiError::new(ErrorCode::NotFound, format!("task `{id}` not found")));
    }
    let status = match query.status.as_str() {
        s @ ("FAILED" | "PENDING" | "DONE" | "CANCELED") => s,
        other => {
            return Err(ApiError::new(
                ErrorCode::BadUserInput,
                format!("unknown batch status `{other}`; use PENDING, DONE, FAILED or CANCELED"),
            ))
        }
    };
    Ok(axum::Json(batch_page(&state, task_id, status, query.after.unwrap_or(-1)).await?))
}

pub async fn plans(State(state): State<AppState>, Caller(caller): Caller) -> Result<axum::Json<Value>, ApiError> {
    let rows = store::dashboard::plan_versions(&state.pool, caller.environment_id).await?;
    Ok(axum::Json(json!({ "data": rows.iter().map(|(plan, version, status, name, published, subs)| json!({
        "planId": plan, "version": version, "status": status, "displayName": name,
        "publishedAt": published, "subscriptions": subs,
    })).collect::<Vec<_>>() })))
}
