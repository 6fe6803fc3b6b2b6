//! `/metrics` in Prometheus' text format. Request latency is recorded by a middleware into a
//! registry that belongs to this router (so two apis in one test process do not mix their
//! counts); task counts and the outbox backlog are read from Postgres at scrape time; whatever
//! else this process recorded in the process-wide default registry (the relay's broker state;
//! the worker's batch durations and queue depth when the worker runs in this process)
//! is appended. Each process serves only what it records itself.

use crate::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntGaugeVec, Opts, Registry, TextEncoder};
use std::time::Instant;

/// The api's own series.
pub struct ApiMetrics {
    registry: Registry,
    requests: HistogramVec,
    tasks: IntGaugeVec,
    outbox: GaugeVec,
    /// Publishes written per set by the acceptor (`accepting`).
    pub(crate) accept_sets: Histogram,
}

impl ApiMetrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = HistogramVec::new(
            HistogramOpts::new("cutover_http_request_duration_seconds", "HTTP request latency by route and status")
                .buckets(vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["method", "route", "status"],
        )
        .unwrap_or_else(|_| unreachable!("static metric definition"));
        let tasks = IntGaugeVec::new(Opts::new("cutover_tasks", "Tasks by type and status"), &["type", "status"])
            .unwrap_or_else(|_| unreachable!("static metric definition"));
        let outbox = GaugeVec::new(
            Opts::new("cutover_outbox", "Outbox rows not yet sent (unsent) and the oldest one's age in seconds"),
            &["measure"],
        )
        .unwrap_or_else(|_| unreachable!("static metric definition"));
        let accept_sets = Histogram::with_opts(
            HistogramOpts::new("cutover_accept_set_size", "Publishes the api wrote together, per set")
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]),
        )
        .unwrap_or_else(|_| unreachable!("static metric definition"));
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(tasks.clone()),
            Box::new(outbox.clone()),
            Box::new(accept_sets.clone()),
        ] {
            if let Err(e) = registry.register(collector) {
                tracing::warn!(error = %e, "could not register a metric");
            }
        }
        Self { registry, requests, tasks, outbox, accept_sets }
    }
}

impl Default for ApiMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Records every answered request by its route template (`/api/v1/tasks/{id}`, never the raw
/// path, so the series stay few).
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    state.metrics.requests.with_label_values(&[&method, &route, &status]).observe(started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`
pub async fn serve(State(state): State<AppState>) -> Response {
    let metrics = &state.metrics;
    // both reads at once, each bounded: a scrape answers within a second, database or not
    let bound = crate::health::PROBE_DATABASE_TIMEOUT;
    let (counts, backlog) = tokio::join!(
        tokio::time::timeout(bound, store::dashboard::task_counts_all(&state.pool)),
        tokio::time::timeout(bound, store::outbox::backlog(&state.pool)),
    );
    let timed_out = |_| store::StoreError::Database(sqlx::Error::PoolTimedOut);
    match counts.map_err(timed_out).and_then(|r| r) {
        Ok(rows) => {
            metrics.tasks.reset();
            for (task_type, status, n) in rows {
                metrics.tasks.with_label_values(&[&task_type, &status]).set(n);
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: could not count tasks"),
    }
    match backlog.map_err(timed_out).and_then(|r| r) {
        Ok((unsent, oldest)) => {
            metrics.outbox.with_label_values(&["unsent"]).set(unsent as f64);
            metrics.outbox.with_label_values(&["oldest_age_seconds"]).set(oldest);
        }
        Err(e) => tracing::warn!(error = %e, "metrics: could not read the outbox backlog"),
    }
    let mut families = metrics.registry.gather();
    families.extend(prometheus::gather());
    encode(&families)
}

/// Encodes metric families as Prometheus text.
pub fn encode(families: &[prometheus::proto::MetricFamily]) -> Response {
    let mut buffer = Vec::new();
    match TextEncoder::new().encode(families, &mut buffer) {
        Ok(()) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], buffer).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "could not encode metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// What a process without the api (`cutover worker`) serves on its metrics listener: the
/// process-wide registry only.
pub fn process_router() -> axum::Router {
    axum::Router::new().route("/metrics", axum::routing::get(|| async { encode(&prometheus::gather()) }))
}
