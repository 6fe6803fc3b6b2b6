//! Probes: `/healthz` says the process is up; `/readyz` says its database answers (ready) and
//! reports its outbox relay's broker link without requiring it: the api accepts work with the
//! broker away, and the outbox keeps it until a relay can send it. `brokerState` is
//! `connected`, `blocked` (a disk or memory alarm), `stalled` (a publish went unconfirmed past
//! `CUTOVER_PUBLISH_TIMEOUT_MS`) or `disconnected`; without a relay, as in the api tests,
//! `broker` is `true` and there is no state.

use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU8, Ordering};

/// How long a probe (`/readyz`, `/metrics`) waits on the database: a probe answers within a
/// second, database or not.
pub const PROBE_DATABASE_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(800);

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let database = matches!(tokio::time::timeout(PROBE_DATABASE_TIMEOUT, store::ping(&state.pool)).await, Ok(Ok(_)));
    let broker_state = state.broker_state.as_ref().map(|state| state());
    let broker = match broker_state {
        Some(name) => name == "connected",
        None => state.broker.as_ref().map(|up| up()).unwrap_or(true),
    };
    log_change(database, broker);
    let status = if database { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let mut body = json!({ "database": database, "broker": broker });
    if let Some(name) = broker_state {
        body["brokerState"] = json!(name);
    }
    (status, Json(body))
}

/// What the last probe found: `SEEN` once there was one, plus a bit per part that was down.
static LAST_PROBE: AtomicU8 = AtomicU8::new(0);
const SEEN: u8 = 1;
const DATABASE_DOWN: u8 = 2;
const BROKER_DOWN: u8 = 4;

/// Probes come every few seconds: a process that is not ready says so once, at WARN, when
/// what it lacks changes, and once more when it is ready again, instead of on every probe.
fn log_change(database: bool, broker: bool) {
    let now = SEEN | if database { 0 } else { DATABASE_DOWN } | if broker { 0 } else { BROKER_DOWN };
    let before = LAST_PROBE.swap(now, Ordering::Relaxed);
    if before == now {
        return;
    }
    if now == SEEN {
        if before != 0 {
            tracing::info!("ready again: the database and the broker answer");
        }
    } else if database {
        tracing::warn!(
            database,
            broker,
            "broker not connected: /readyz still answers 200, the outbox keeps what is accepted"
        );
    } else {
        tracing::warn!(database, broker, "not ready: /readyz answers 503 until the database answers");
    }
}
