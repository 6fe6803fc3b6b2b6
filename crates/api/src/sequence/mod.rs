//! Sequence's dialect: `/prices`, `/plans` and `/billing-schedules`, over the same rows as
//! Stigg's (a Sequence plan is a plan and its versions, a billing schedule is a subscription).
//! Objects are answered bare, lists as `{"data": [...], "pagination"}`, errors as
//! `{"message", "code"}`. An optional `Sequence-Version` header must name the one version this
//! dialect speaks. Handlers parse and check; the rules live in `store` and `domain`.

pub mod plans;
pub mod prices;
pub mod schedules;
pub mod views;

use crate::error::ApiError;
use crate::AppState;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The one `Sequence-Version` this dialect speaks.
pub const SEQUENCE_VERSION: &str = "2024-05-09";

/// Each `routes!` names the handlers of one path (see `crate::openapi` for adding one).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(prices::create))
        .routes(routes!(prices::get))
        .routes(routes!(plans::create, plans::list))
        .routes(routes!(plans::get, plans::update))
        .routes(routes!(plans::preview))
        .routes(routes!(schedules::create, schedules::list))
        .routes(routes!(schedules::get))
        .route_layer(axum::middleware::from_fn(check_version))
}

/// Refuses a `Sequence-Version` other than the one spoken here; its absence is fine.
async fn check_version(request: Request, next: Next) -> Result<Response, ApiError> {
    if let Some(raw) = request.headers().get("sequence-version") {
        if raw.to_str().ok().map(str::trim) != Some(SEQUENCE_VERSION) {
            return Err(ApiError::bad_input(format!(
                "unsupported Sequence-Version `{}`; this api speaks {SEQUENCE_VERSION}",
                String::from_utf8_lossy(raw.as_bytes())
            )));
        }
    }
    Ok(next.run(request).await)
}
