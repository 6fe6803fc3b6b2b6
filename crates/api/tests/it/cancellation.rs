//! Stigg's subscription cancellation and the withdrawal of a subscription's schedule: what
//! each answers, what it writes, and that a refusal writes nothing.

use crate::harness::{assert_error, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;

/// A published plan `plan-live`, customer `cust-1` and its ACTIVE subscription `sub-1`.
async fn ready(pool: PgPool) -> TestApp {
    let app = TestApp::spawn(pool).await;
    app.published_plan("plan-live").await;
    let (status, body) = app.import_customers(&["cust-1"]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    subscribe(&app, "sub-1").await;
    app
}

/// An ACTIVE subscription of `cust-1` to `plan-live`, started in the past.
async fn subscribe(app: &TestApp, id: &str) {
    let body = json!({"id": id, "customerId": "cust-1", "planId": "plan-live", "startDate": "2024-01-15T00:00:00Z"});
    let (status, body) = app.create_subscription(&body).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["subscription"]["status"], "ACTIVE", "{body}");
}

/// The subscription's row as the tests compare it: status, cancellation date, updated_at.
async fn row(app: &TestApp, id: &str) -> (String, Option<String>, String) {
    sqlx::query_as("SELECT status, cancellation_date::text, updated_at::text FROM subscriptions WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn an_immediate_cancel_ends_the_subscription_now(pool: PgPool) {
    let app = ready(pool).await;

    let (status, body) = app
        .post(
            "/api/v1/subscriptions/sub-1/cancel",
            &json!({"cancellationTime": "IMMEDIATE", "cancellationAction": "DEFAULT", "prorate": true}),
        )
        .await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["id"], "sub-1");
    assert_eq!(body["data"]["status"], "CANCELED");
    assert!(body["data"]["cancellationDate"].is_string(), "{body}");
    assert_eq!(body["data"]["futureUpdates"], json!([]));
    let (_, listed) = app.list_subscriptions("?status=CANCELED").await;
    assert_eq!(listed["data"][0]["id"], "sub-1", "{listed}");

    // a second cancel finds it no longer live
    let again = app.post("/api/v1/subscriptions/sub-1/cancel", &json!({"cancellationTime": "IMMEDIATE"})).await;
    assert_error(&again, StatusCode::BAD_REQUEST, "SubscriptionAlreadyCanceledOrExpired");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_later_cancel_is_scheduled_and_can_be_withdrawn(pool: PgPool) {
    let app = ready(pool).await;

    // the default is the end of the billing period
    let (status, body) = app.post("/api/v1/subscriptions/sub-1/cancel", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let data = &body["data"];
    assert_eq!(data["status"], "ACTIVE");
    let at = data["cancellationDate"].as_str().unwrap().to_owned();
    assert_eq!(data["futureUpdates"].as_array().unwrap().len(), 1, "{body}");
    let update = &data["futureUpdates"][0];
    assert_eq!(update["subscriptionScheduleType"], "DOWNGRADE");
    assert_eq!(update["scheduleStatus"], "SCHEDULED");
    assert_eq!(update["scheduledExecutionTime"], at.as_str());
    assert_eq!(update["targetPackage"], Value::Null);

    // a specific date replaces it
    let (status, body) = app
        .post(
            "/api/v1/subscriptions/sub-1/cancel",
            &json!({"cancellationTime": "SPECIFIC_DATE", "endDate": "2999-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["futureUpdates"][0]["scheduledExecutionTime"], "2999-01-01T00:00:00Z", "{body}");
    let (_, read) = app.get_subscription("sub-1").await;
    assert_eq!(read["data"]["cancellationDate"], "2999-01-01T00:00:00Z", "{read}");

    let (status, body) = app.delete("/api/v1/subscriptions/sub-1/future-update/schedule").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"data": {"id": "sub-1"}}));
    let (_, read) = app.get_subscription("sub-1").await;
    assert_eq!(read["data"]["status"], "ACTIVE");
    assert_eq!(read["data"]["cancellationDate"], Value::Null, "{read}");
    assert_eq!(read["data"]["futureUpdates"], json!([]), "{read}");
    assert_eq!(row(&app, "sub-1").await.1, None);

    // nothing left to withdraw is not an error; an unknown subscription is
    let (status, _) = app.delete("/api/v1/subscriptions/sub-1/future-update/schedule").await;
    assert_eq!(status, StatusCode::OK);
    let unknown = app.delete("/api/v1/subscriptions/nobody/future-update/schedule").await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "SubscriptionNotFound");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn bad_cancels_are_refused_and_change_nothing(pool: PgPool) {
    let app = ready(pool).await;
    let before = row(&app, "sub-1").await;

    for body in [
        json!({"cancellationTime": "TOMORROW"}),
        json!({"cancellationTime": "SPECIFIC_DATE"}),
        json!({"cancellationTime": "SPECIFIC_DATE", "endDate": "2001-01-01T00:00:00Z"}),
        json!({"cancellationTime": "SPECIFIC_DATE", "endDate": "not a date"}),
        json!({"cancellationTime": "IMMEDIATE", "endDate": "2999-01-01T00:00:00Z"}),
        json!({"cancellationAction": "SHRUG"}),
        json!({"prorate": "yes"}),
        json!({"cancellationTime": "IMMEDIATE", "reason": "unknown field"}),
        json!([]),
    ] {
        let answer = app.post("/api/v1/subscriptions/sub-1/cancel", &body).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "BadUserInput");
    }
    let unknown = app.post("/api/v1/subscriptions/nobody/cancel", &json!({"cancellationTime": "IMMEDIATE"})).await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "SubscriptionNotFound");
    let other = app.other_environment().await;
    let foreign = other.post("/api/v1/subscriptions/sub-1/cancel", &json!({"cancellationTime": "IMMEDIATE"})).await;
    assert_error(&foreign, StatusCode::NOT_FOUND, "SubscriptionNotFound");
    let read_only = app.read_only().await;
    let refused = read_only.post("/api/v1/subscriptions/sub-1/cancel", &json!({"cancellationTime": "IMMEDIATE"})).await;
    assert_error(&refused, StatusCode::FORBIDDEN, "AccessDeniedError");
    let refused = read_only.delete("/api/v1/subscriptions/sub-1/future-update/schedule").await;
    assert_error(&refused, StatusCode::FORBIDDEN, "AccessDeniedError");

    assert_eq!(row(&app, "sub-1").await, before, "a refused cancel changed the subscription");
}

/// Cancel is not a move: it composes with a task that holds the plan (ARCHITECTURE.md, "Tasks
/// on the same plan"), where a per-subscription migrate is refused.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_cancel_composes_with_a_publish_in_flight(pool: PgPool) {
    let app = ready(pool).await;
    subscribe(&app, "sub-2").await;
    let (status, body) = app.create_draft("plan-live").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.publish_ok("plan-live").await; // PENDING: no worker runs here, so it holds the plan

    let migrate =
        app.post("/api/v1/subscriptions/sub-1/migrate", &json!({"subscriptionMigrationTime": "IMMEDIATE"})).await;
    assert_error(&migrate, StatusCode::BAD_REQUEST, "ObjectAlreadyBeingUsedByAnotherRequestError");
    let (status, body) =
        app.post("/api/v1/subscriptions/sub-1/cancel", &json!({"cancellationTime": "IMMEDIATE"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["status"], "CANCELED");
    let (status, body) = app.post("/api/v1/subscriptions/sub-2/cancel", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["status"], "ACTIVE");
}
