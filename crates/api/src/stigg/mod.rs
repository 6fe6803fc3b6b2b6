//! Stigg's v1 REST dialect, shaped so that Stigg's own SDK drives it unmodified: bodies and
//! answers in camelCase, single objects wrapped in `{"data": ...}`, lists as
//! `{"data": [...], "pagination": {"next", "prev"}}`.

pub mod addons;
pub mod cancel;
pub mod customers;
pub mod migrate;
pub mod plans;
pub mod products;
pub mod subscriptions;
pub mod views;

use crate::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Each `routes!` names the handlers of one path (see `crate::openapi` for adding one).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(products::create, products::list))
        .routes(routes!(products::get))
        .routes(routes!(plans::create, plans::list))
        .routes(routes!(plans::get, plans::update))
        .routes(routes!(plans::create_draft, plans::remove_draft))
        .routes(routes!(plans::archive))
        .routes(routes!(plans::publish))
        .routes(routes!(plans::publish_preview))
        .routes(routes!(addons::create, addons::list))
        .routes(routes!(addons::get, addons::update))
        .routes(routes!(addons::create_draft, addons::remove_draft))
        .routes(routes!(addons::archive))
        .routes(routes!(addons::publish))
        .routes(routes!(addons::publish_preview))
        .routes(routes!(customers::create, customers::list))
        .routes(routes!(customers::import))
        .routes(routes!(customers::get))
        .routes(routes!(subscriptions::create, subscriptions::list))
        .routes(routes!(subscriptions::import))
        .routes(routes!(subscriptions::get))
        .routes(routes!(migrate::migrate))
        .routes(routes!(cancel::cancel))
        .routes(routes!(cancel::cancel_schedule))
}
