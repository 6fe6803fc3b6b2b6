//! Probes: `/healthz` says the process is up; `/readyz` says its database answers and its
//! outbox relay holds a channel to the broker (without a relay, as in the api tests, the broker
//! is not part of readiness).

use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let database = store::ping(&state.pool).await.is_ok();
    let broker = state.broker.as_ref().map(|up| up()).unwrap_or(true);
    let status = if database && broker { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({ "database": database, "broker": broker })))
}
