//! What a process without the api (`cutover worker`) serves on its metrics listener
//! (`CUTOVER_METRICS_LISTEN`): `/metrics`, `/healthz` (the process answers) and `/readyz`:
//! 200 while its database answers and it holds a consumer on each of its queues (task, batch,
//! dead), 503 otherwise, with what it found. Answered within a second, database or not.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

#[derive(Clone)]
struct Probed {
    pool: sqlx::PgPool,
    consuming: Arc<worker::Consuming>,
    /// What the last `/readyz` found (`READY`, `NOT_READY`, or 0 before the first), so that a
    /// change is logged once rather than on every probe.
    last: Arc<AtomicU8>,
}

const READY: u8 = 1;
const NOT_READY: u8 = 2;

/// The worker's listener: the process-wide metrics and its probes.
pub fn worker_router(pool: sqlx::PgPool, consuming: Arc<worker::Consuming>) -> Router {
    let probed = Probed { pool, consuming, last: Arc::default() };
    api::metrics::process_router().merge(
        Router::new()
            .route("/healthz", get(|| async { Json(json!({ "status": "ok" })) }))
            .route("/readyz", get(readyz))
            .with_state(probed),
    )
}

async fn readyz(State(probed): State<Probed>) -> (StatusCode, Json<Value>) {
    let timeout = api::health::PROBE_DATABASE_TIMEOUT;
    let database = matches!(tokio::time::timeout(timeout, store::ping(&probed.pool)).await, Ok(Ok(_)));
    let queues = probed.consuming.queues();
    let consuming = queues.iter().all(|(_, on)| *on);
    let ready = database && consuming;
    let now = if ready { READY } else { NOT_READY };
    if probed.last.swap(now, Ordering::Relaxed) != now {
        let missing: Vec<&str> = queues.iter().filter(|(_, on)| !on).map(|(queue, _)| *queue).collect();
        if ready {
            tracing::info!("worker ready: the database answers and every queue has its consumer");
        } else {
            tracing::warn!(database, ?missing, "worker not ready: /readyz answers 503");
        }
    }
    let consumers: Map<String, Value> = queues.into_iter().map(|(queue, on)| (queue.to_owned(), json!(on))).collect();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({ "database": database, "consumers": consumers })))
}
