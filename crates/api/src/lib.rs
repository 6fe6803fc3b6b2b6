//! The HTTP layer: Stigg's v1 dialect under `/api/v1`, the tasks API, health probes. Handlers
//! parse and check input, call `store` inside one transaction, and map errors to the
//! contract's `{"message", "code"}` shape. `/openapi.json` describes both dialects, generated
//! from the handlers (see `openapi`). Accepting work means committing a task and its
//! outbox row together; the api never consumes from RabbitMQ.

mod accepting;
pub mod auth;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod policies;
pub mod preview;
pub mod rollouts;
pub mod sequence;
pub mod stigg;
pub mod tasks;
pub mod webhooks;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

pub use error::ApiError;

/// Settings the api reads at start.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Attempts a task gets before it is failed.
    pub max_attempts: i32,
    /// Largest request body accepted, in bytes (bulk imports are the big ones).
    pub body_limit: usize,
    /// Prefix of the queues whose depth the dashboard shows (as the workers recorded it).
    pub queue_prefix: String,
    /// Which internal addresses webhook URLs may resolve to (none by default).
    pub webhook_policy: domain::webhook::AddressPolicy,
    /// Whether the api is served over https (`CUTOVER_PUBLIC_URL` starts with `https://`): the
    /// dashboard session cookie then always carries `Secure`.
    pub https: bool,
    /// How often an open task event stream checks that its key is still good; a revoked or
    /// expired key ends the stream with a `revoked` event.
    pub stream_key_check: std::time::Duration,
    /// The environment (by name) whose keys see and resolve the dead letters that belong to no
    /// environment (`CUTOVER_OPERATOR_ENVIRONMENT`); unset, nobody's dashboard shows them.
    pub operator_environment: Option<String>,
    /// At most how many publishes waiting to be written are written together, by one
    /// statement (`accepting`); 1 writes each alone.
    pub accept_set_size: usize,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            body_limit: 32 * 1024 * 1024,
            queue_prefix: "cutover".into(),
            webhook_policy: domain::webhook::AddressPolicy::default(),
            https: false,
            stream_key_check: std::time::Duration::from_secs(30),
            operator_environment: None,
            accept_set_size: 32,
        }
    }
}

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub pool: sqlx::PgPool,
    pub settings: ApiSettings,
    /// The outbox relay's waker, handed to every unit of work (`store::Work`), whose commit
    /// wakes the relay so the message leaves at once.
    pub relay: Option<store::RelayWaker>,
    /// How this process's webhook events are rendered: with the views the API answers with.
    pub announcer: Arc<dyn store::Announcer>,
    /// Whether the broker answered lately; `/readyz` reports it.
    pub broker: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
    /// The relay's broker link as `/readyz` names it: `connected`, `blocked`, `stalled` or
    /// `disconnected`.
    pub broker_state: Option<Arc<dyn Fn() -> &'static str + Send + Sync>>,
    /// This router's Prometheus series (see `metrics`).
    pub metrics: Arc<metrics::ApiMetrics>,
    /// Per-key token buckets; `None` turns rate limiting off.
    pub limiter: Option<Arc<auth::RateLimiter>>,
    /// The writers of sets of publishes, started by the first publish (`acceptor`).
    acceptor: Arc<std::sync::OnceLock<accepting::Acceptor>>,
}

impl AppState {
    pub fn new(pool: sqlx::PgPool) -> Self {
        Self {
            pool,
            settings: ApiSettings::default(),
            relay: None,
            announcer: Arc::new(views::Webhooks),
            broker: None,
            broker_state: None,
            metrics: Arc::default(),
            limiter: None,
            acceptor: Arc::default(),
        }
    }

    /// The writers of sets of publishes, when `settings.accept_set_size` is above 1: started on
    /// first use, inside the runtime, with the hooks the state has by then.
    pub(crate) fn acceptor(&self) -> Option<&accepting::Acceptor> {
        (self.settings.accept_set_size > 1).then(|| {
            self.acceptor.get_or_init(|| {
                let sizes = self.metrics.accept_sets.clone();
                accepting::Acceptor::start(self.pool.clone(), self.hooks(), self.settings.accept_set_size, sizes)
            })
        })
    }

    /// Begins a unit of work (`store::Work`); commit it with `hooks()`.
    pub(crate) async fn begin(&self) -> Result<store::Work, store::StoreError> {
        store::Work::begin(&self.pool).await
    }

    /// What this process's units of work are committed with: webhook events rendered with the
    /// views the API answers with, and this process's relay woken.
    pub(crate) fn hooks(&self) -> store::Hooks {
        store::Hooks { relay: self.relay.clone(), announcer: self.announcer.clone() }
    }
}

/// The span every request runs in. `environment_id` and `key_prefix` are filled in by
/// `auth` once the caller is known; `task_id` by the task handlers.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let route = request.extensions().get::<axum::extract::MatchedPath>().map(|p| p.as_str().to_owned());
    tracing::info_span!(
        "request",
        method = %request.method(),
        uri = %request.uri(),
        route = route.as_deref().unwrap_or("unmatched"),
        environment_id = tracing::field::Empty,
        key_prefix = tracing::field::Empty,
        task_id = tracing::field::Empty,
    )
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    use utoipa::OpenApi;
    let (authenticated, spec) = utoipa_axum::router::OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(stigg::routes())
        .merge(tasks::routes())
        .routes(utoipa_axum::routes!(rollouts::create))
        .merge(sequence::routes())
        .merge(webhooks::routes())
        .merge(policies::routes())
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_key))
        .split_for_parts();
    Router::new()
        .route("/openapi.json", openapi::serve(openapi::finish(spec)))
        .route("/metrics", get(metrics::serve))
        .merge(dashboard::routes(state.clone()))
        .merge(authenticated)
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.settings.body_limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(request_span))
        .merge(probes(state.clone()))
        .with_state(state)
}

/// The probes, traced and measured like every route, except that a failing `/readyz` is not
/// an ERROR on every poll: it says why itself, once per change (`health::readyz`).
fn probes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state, metrics::track))
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(request_span).on_failure(()))
}
