//! Environments are walls: a key sees and changes only its own environment's rows, and an
//! object of another environment answers exactly like one that does not exist.

use crate::harness::{assert_error, ids, list_data, TestApp};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;

/// Env A with a product, a published plan, a draft plan, a customer, a subscription and a
/// pending publish; answers the apps for env A and env B.
async fn populated(pool: PgPool) -> (TestApp, TestApp, String) {
    let a = TestApp::spawn(pool).await;
    a.published_plan("plan-live").await;
    a.draft_plan("plan-draft").await;
    assert_eq!(a.create_customer("customer-a").await.0, StatusCode::OK);
    a.subscribe("sub-a", "customer-a", "plan-live").await;
    let task = a.publish_ok("plan-draft").await;
    let b = a.other_environment().await;
    (a, b, task.to_string())
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn another_environment_cannot_read_the_objects(pool: PgPool) {
    let (_a, b, task) = populated(pool).await;

    assert_error(&b.get_plan("plan-live").await, StatusCode::NOT_FOUND, "PlanNotFound");
    assert_error(&b.get_plan("plan-draft").await, StatusCode::NOT_FOUND, "PlanNotFound");
    assert_error(&b.get_product("plan-live-product").await, StatusCode::NOT_FOUND, "ProductNotFoundError");
    assert_error(&b.get_customer("customer-a").await, StatusCode::NOT_FOUND, "CustomerNotFound");
    assert_error(&b.get_subscription("sub-a").await, StatusCode::NOT_FOUND, "SubscriptionNotFound");
    assert_error(&b.get_task(&task).await, StatusCode::NOT_FOUND, "NotFound");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn another_environment_lists_nothing(pool: PgPool) {
    let (a, b, _task) = populated(pool).await;

    assert!(list_data(&b.list_products("").await).is_empty());
    assert!(list_data(&b.list_products("?id=plan-live-product").await).is_empty());
    assert!(list_data(&b.list_plans("").await).is_empty());
    assert!(list_data(&b.list_customers("").await).is_empty());
    assert!(list_data(&b.list_subscriptions("").await).is_empty());
    assert!(list_data(&b.list_subscriptions("?planId=plan-live").await).is_empty());
    assert!(list_data(&b.list_tasks("").await).is_empty());
    // while env A sees its own
    assert_eq!(ids(&a.list_plans("").await), ["plan-live", "plan-draft"]);
    assert_eq!(list_data(&a.list_tasks("").await).len(), 1);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn another_environment_cannot_publish_the_plan(pool: PgPool) {
    let a = TestApp::spawn(pool).await;
    a.draft_plan("plan-walled").await;
    let b = a.other_environment().await;
    let before = a.snapshot().await;

    let answer = b.publish("plan-walled", &json!({ "migrationType": "NEW_CUSTOMERS" })).await;

    assert_error(&answer, StatusCode::NOT_FOUND, "PlanNotFound");
    assert_eq!(a.snapshot().await, before);
    assert_eq!(a.task_count().await, 0);
    // and env A still can
    a.publish_ok("plan-walled").await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn another_environment_cannot_change_the_plan(pool: PgPool) {
    let (a, b, _task) = populated(pool).await;
    let before = a.snapshot().await;

    assert_error(
        &b.update_plan("plan-draft", &json!({ "displayName": "x" })).await,
        StatusCode::NOT_FOUND,
        "PlanNotFound",
    );
    assert_error(&b.create_draft("plan-live").await, StatusCode::NOT_FOUND, "PlanNotFound");
    assert_error(&b.remove_draft("plan-draft").await, StatusCode::NOT_FOUND, "PlanNotFound");
    assert_error(&b.archive_plan("plan-live").await, StatusCode::NOT_FOUND, "PlanNotFound");

    assert_eq!(a.snapshot().await, before);
    assert_eq!(a.get_plan("plan-live").await.1["data"]["status"], "PUBLISHED");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn another_environment_cannot_use_the_customer_or_the_plan(pool: PgPool) {
    let (a, b, _task) = populated(pool).await;

    // env A's customer on env B's plan
    b.published_plan("plan-b").await;
    let answer = b.create_subscription(&json!({ "customerId": "customer-a", "planId": "plan-b" })).await;
    assert_error(&answer, StatusCode::NOT_FOUND, "CustomerNotFound");
    // env B's customer on env A's plan
    assert_eq!(b.create_customer("customer-b").await.0, StatusCode::OK);
    let answer = b.create_subscription(&json!({ "customerId": "customer-b", "planId": "plan-live" })).await;
    assert_error(&answer, StatusCode::NOT_FOUND, "PlanNotFound");
    // a plan on env A's product
    assert_error(&b.create_plan("plan-x", "plan-live-product").await, StatusCode::NOT_FOUND, "ProductNotFoundError");

    assert_eq!(a.count("SELECT count(*) FROM subscriptions").await, 1);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_same_ids_live_side_by_side_in_two_environments(pool: PgPool) {
    let (a, b, _task) = populated(pool).await;

    b.published_plan("plan-live").await;
    assert_eq!(b.create_customer("customer-a").await.0, StatusCode::OK);
    b.subscribe("sub-a", "customer-a", "plan-live").await;
    let (status, imported) = b.import_customers(&["customer-a", "customer-new"]).await;
    assert_eq!(status, StatusCode::OK, "{imported}");
    assert_eq!(imported, json!({ "data": { "newCustomers": ["customer-new"] } }));

    assert_eq!(b.get_plan("plan-live").await.1["data"]["displayName"], "Plan plan-live");
    assert_eq!(ids(&b.list_subscriptions("").await), ["sub-a"]);
    assert_eq!(ids(&a.list_customers("").await), ["customer-a"]);
    assert_eq!(ids(&b.list_customers("").await), ["customer-a", "customer-new"]);
    assert_eq!(a.count("SELECT count(*) FROM subscriptions").await, 2);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn an_idempotency_key_is_per_environment(pool: PgPool) {
    let a = TestApp::spawn(pool).await;
    let b = a.other_environment().await;
    a.draft_plan("plan-same").await;
    b.draft_plan("plan-same").await;
    let body = json!({ "migrationType": "NEW_CUSTOMERS" });

    let (status, first) = a.publish_with_idempotency_key("plan-same", &body, "same-key").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, second) = b.publish_with_idempotency_key("plan-same", &body, "same-key").await;
    assert_eq!(status, StatusCode::OK, "{second}");

    assert_ne!(first["data"]["taskId"], second["data"]["taskId"]);
    assert_eq!(a.task_count().await, 2);
}
