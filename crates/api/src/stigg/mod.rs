//! Stigg's v1 REST dialect, shaped so that Stigg's own SDK drives it unmodified: bodies and
//! answers in camelCase, single objects wrapped in `{"data": ...}`, lists as
//! `{"data": [...], "pagination": {"next", "prev"}}`.

pub mod customers;
pub mod migrate;
pub mod plans;
pub mod products;
pub mod subscriptions;
pub mod views;

use crate::AppState;
use axum::routing::{get, post};
use axum::Router;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/products", post(products::create).get(products::list))
        .route("/api/v1/products/{id}", get(products::get))
        .route("/api/v1/plans", post(plans::create).get(plans::list))
        .route("/api/v1/plans/{id}", get(plans::get).patch(plans::update))
        .route("/api/v1/plans/{id}/draft", post(plans::create_draft).delete(plans::remove_draft))
        .route("/api/v1/plans/{id}/archive", post(plans::archive))
        .route("/api/v1/plans/{id}/publish", post(plans::publish))
        .route(crate::preview::STIGG_ROUTE, post(plans::publish_preview))
        .route("/api/v1/customers", post(customers::create).get(customers::list))
        .route("/api/v1/customers/import", post(customers::import))
        .route("/api/v1/customers/{id}", get(customers::get))
        .route("/api/v1/subscriptions", post(subscriptions::create).get(subscriptions::list))
        .route("/api/v1/subscriptions/import", post(subscriptions::import))
        .route("/api/v1/subscriptions/{id}", get(subscriptions::get))
        .route("/api/v1/subscriptions/{id}/migrate", post(migrate::migrate))
}
