//! Subscriptions: create on a published plan, read, list, and the asynchronous bulk import.

use crate::harness::{assert_error, ids, list_data, task_id_of, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;

/// A published plan `plan-live`, a draft plan `plan-draft` and customers `cust-1`, `cust-2`.
async fn ready(pool: PgPool) -> TestApp {
    let app = TestApp::spawn(pool).await;
    app.published_plan("plan-live").await;
    app.draft_plan("plan-draft").await;
    let (status, body) = app.import_customers(&["cust-1", "cust-2"]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_subscription_is_created_on_the_published_version(pool: PgPool) {
    let app = ready(pool).await;

    let (status, body) = app
        .create_subscription(&json!({
            "id": "sub-1",
            "customerId": "cust-1",
            "planId": "plan-live",
            "billingPeriod": "ANNUALLY",
            "startDate": "2024-01-01T00:00:00Z",
            "metadata": { "k": "v" },
            // provisioning options Cutover does not act on
            "addons": [],
            "checkoutOptions": { "successUrl": "https://example.com" },
        }))
        .await;

    assert_eq!(status, StatusCode::OK, "{body}");
    let data = &body["data"];
    assert_eq!(data["id"], "sub-1");
    assert_eq!(data["status"], "SUCCESS");
    assert_eq!(data["isScheduled"], false);
    let subscription = &data["subscription"];
    assert_eq!(subscription["id"], "sub-1");
    assert_eq!(subscription["customerId"], "cust-1");
    assert_eq!(subscription["planId"], "plan-live");
    assert_eq!(subscription["planVersion"], 1);
    assert_eq!(subscription["status"], "ACTIVE");
    assert_eq!(subscription["billingPeriod"], "ANNUALLY");
    assert_eq!(subscription["metadata"], json!({ "k": "v" }));
    assert_eq!(subscription["futureUpdates"], json!([]));
    let version: i32 = sqlx::query_scalar(
        "SELECT v.version_number FROM subscriptions s JOIN plan_versions v ON v.id = s.plan_version_id WHERE s.id = 'sub-1'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(version, 1);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_subscription_without_an_id_gets_one(pool: PgPool) {
    let app = ready(pool).await;

    let (status, body) = app.create_subscription(&json!({ "customerId": "cust-1", "planId": "plan-live" })).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["data"]["id"].as_str().unwrap();
    assert!(!id.is_empty());
    assert_eq!(body["data"]["subscription"]["billingPeriod"], "MONTHLY");
    assert_eq!(app.get_subscription(id).await.0, StatusCode::OK);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_subscription_on_an_unpublished_plan_is_refused(pool: PgPool) {
    let app = ready(pool).await;

    let answer =
        app.create_subscription(&json!({ "id": "sub-x", "customerId": "cust-1", "planId": "plan-draft" })).await;

    assert_error(&answer, StatusCode::BAD_REQUEST, "UnPublishedPackage");
    assert_eq!(app.count("SELECT count(*) FROM subscriptions").await, 0);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_subscription_needs_a_known_customer_and_plan(pool: PgPool) {
    let app = ready(pool).await;

    let answer = app.create_subscription(&json!({ "customerId": "nobody", "planId": "plan-live" })).await;
    assert_error(&answer, StatusCode::NOT_FOUND, "CustomerNotFound");
    let answer = app.create_subscription(&json!({ "customerId": "cust-1", "planId": "no-plan" })).await;
    assert_error(&answer, StatusCode::NOT_FOUND, "PlanNotFound");
    assert_eq!(app.count("SELECT count(*) FROM subscriptions").await, 0);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn bad_subscriptions_are_refused(pool: PgPool) {
    let app = ready(pool).await;
    app.subscribe("sub-dup", "cust-1", "plan-live").await;

    let answer =
        app.create_subscription(&json!({ "id": "sub-dup", "customerId": "cust-2", "planId": "plan-live" })).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "BadUserInput");
    for body in [
        json!({ "planId": "plan-live" }),
        json!({ "customerId": "cust-1" }),
        json!({ "customerId": "", "planId": "plan-live" }),
        json!({ "customerId": "cust-1", "planId": "plan-live", "billingPeriod": "WEEKLY" }),
        json!({ "customerId": "cust-1", "planId": "plan-live", "startDate": "tomorrow" }),
    ] {
        assert_error(&app.create_subscription(&body).await, StatusCode::BAD_REQUEST, "BadUserInput");
    }
    assert_eq!(app.count("SELECT count(*) FROM subscriptions").await, 1);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_subscription_is_read_with_its_plan_version(pool: PgPool) {
    let app = ready(pool).await;
    let created = app.subscribe("sub-r", "cust-1", "plan-live").await;

    let (status, body) = app.get_subscription("sub-r").await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"], created["data"]["subscription"]);
    assert_eq!(body["data"]["planVersion"], 1);
    assert_error(&app.get_subscription("sub-none").await, StatusCode::NOT_FOUND, "SubscriptionNotFound");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_new_subscription_takes_the_newest_published_version(pool: PgPool) {
    let app = ready(pool).await;
    app.subscribe("sub-old", "cust-1", "plan-live").await;
    assert_eq!(app.create_draft("plan-live").await.0, StatusCode::OK);

    // a draft is not subscribable: new subscriptions still get version 1
    let created = app.subscribe("sub-new", "cust-2", "plan-live").await;
    assert_eq!(created["data"]["subscription"]["planVersion"], 1);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn subscriptions_are_listed_by_plan_and_customer(pool: PgPool) {
    let app = ready(pool).await;
    app.published_plan("plan-other").await;
    app.subscribe("sub-1", "cust-1", "plan-live").await;
    app.subscribe("sub-2", "cust-2", "plan-other").await;
    app.subscribe("sub-3", "cust-2", "plan-live").await;

    assert_eq!(ids(&app.list_subscriptions("").await), ["sub-1", "sub-2", "sub-3"]);
    assert_eq!(ids(&app.list_subscriptions("?planId=plan-live").await), ["sub-1", "sub-3"]);
    assert_eq!(ids(&app.list_subscriptions("?planId=plan-other").await), ["sub-2"]);
    assert!(ids(&app.list_subscriptions("?planId=plan-draft").await).is_empty());
    assert_eq!(ids(&app.list_subscriptions("?customerId=cust-2").await), ["sub-2", "sub-3"]);
    assert_eq!(ids(&app.list_subscriptions("?status=ACTIVE").await).len(), 3);
    assert!(ids(&app.list_subscriptions("?status=CANCELED").await).is_empty());
    assert_error(&app.list_subscriptions("?status=LIVE").await, StatusCode::BAD_REQUEST, "BadUserInput");
    let first = app.list_subscriptions("?planId=plan-live&limit=1").await;
    assert_eq!(ids(&first), ["sub-1"]);
    let next = first.1["pagination"]["next"].as_str().unwrap().to_owned();
    assert_eq!(ids(&app.list_subscriptions(&format!("?planId=plan-live&limit=1&after={next}")).await), ["sub-3"]);
}

// ---- import ----

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn an_import_answers_a_task_id(pool: PgPool) {
    let app = ready(pool).await;

    let (status, body) = app
        .import_subscriptions(&json!({ "subscriptions": [
            { "id": "imp-1", "customerId": "cust-1", "planId": "plan-live" },
            { "id": "imp-2", "customerId": "cust-2", "planId": "plan-live", "billingPeriod": "ANNUALLY",
              "startDate": "2024-01-01T00:00:00Z", "endDate": "2024-06-01T00:00:00Z", "metadata": { "a": 1 } },
        ]}))
        .await;

    assert_eq!(status, StatusCode::OK, "{body}");
    let task_id = task_id_of(&body);
    assert_eq!(
        app.task_row(task_id).await,
        Some(("IMPORT_SUBSCRIPTIONS".to_owned(), "PENDING".to_owned(), None, None))
    );
    assert_eq!(app.outbox_count().await, 1);
    let payload: Value =
        sqlx::query_scalar("SELECT payload FROM tasks WHERE id = $1").bind(task_id).fetch_one(&app.pool).await.unwrap();
    let items = payload["subscriptions"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[1]["status"], "EXPIRED", "an import that ended in the past arrives expired");
    // no worker ran: nothing is imported yet
    assert_eq!(app.count("SELECT count(*) FROM subscriptions").await, 0);

    let (status, task) = app.get_task(&task_id.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{task}");
    let task = &task["data"];
    assert_eq!(task["taskType"], "IMPORT_SUBSCRIPTIONS");
    assert_eq!(task["status"], "PENDING");
    assert_eq!(task["counts"], json!({ "total": 2, "processed": 0, "failed": 0 }));
    assert_eq!(task["progress"], 0);
    assert_eq!(task["initiatedPackageId"], Value::Null);
    assert_eq!(task["targetVersion"], Value::Null);
    assert_eq!(list_data(&app.list_tasks("?taskType=IMPORT_SUBSCRIPTIONS").await).len(), 1);
}

/// Imports `body` and checks it was refused with nothing written.
async fn assert_import_refused(app: &TestApp, body: Value) {
    let before = app.snapshot().await;
    let answer = app.import_subscriptions(&body).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "BadUserInput");
    assert_eq!(app.snapshot().await, before, "a refused import changed rows: {body}");
    assert_eq!(app.task_count().await, 0);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn an_import_with_a_bad_date_is_refused(pool: PgPool) {
    let app = ready(pool).await;
    assert_import_refused(
        &app,
        json!({ "subscriptions": [
            { "id": "ok", "customerId": "cust-1", "planId": "plan-live" },
            { "id": "bad", "customerId": "cust-1", "planId": "plan-live", "startDate": "not a date" },
        ]}),
    )
    .await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn an_import_missing_a_customer_id_is_refused(pool: PgPool) {
    let app = ready(pool).await;
    assert_import_refused(&app, json!({ "subscriptions": [{ "id": "no-customer", "planId": "plan-live" }] })).await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn other_bad_imports_are_refused(pool: PgPool) {
    let app = ready(pool).await;
    let item = |extra: Value| {
        let mut item = json!({ "id": "s", "customerId": "cust-1", "planId": "plan-live" });
        if let (Some(item), Value::Object(extra)) = (item.as_object_mut(), extra) {
            item.extend(extra);
        }
        item
    };

    for body in [
        json!({ "subscriptions": [] }),
        json!({}),
        json!({ "subscriptions": [item(json!({})), item(json!({}))] }),
        json!({ "subscriptions": [item(json!({ "id": "" }))] }),
        json!({ "subscriptions": [item(json!({ "planId": "" }))] }),
        json!({ "subscriptions": [item(json!({ "billingPeriod": "WEEKLY" }))] }),
        json!({ "subscriptions": [item(json!({ "unknown": true }))] }),
        json!({ "subscriptions": [item(json!({ "startDate": "2024-06-01T00:00:00Z", "endDate": "2024-01-01T00:00:00Z" }))] }),
        json!({ "subscriptions": [item(json!({}))], "extra": 1 }),
    ] {
        assert_import_refused(&app, body).await;
    }
}

/// Every list refuses a query parameter it does not take, and a malformed filter, naming it,
/// rather than answering as if it had not been sent.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn lists_refuse_unknown_and_malformed_filters(pool: PgPool) {
    let app = ready(pool).await;
    for (path, name) in [
        ("/api/v1/subscriptions?resourceID=r", "resourceID"),
        ("/api/v1/subscriptions?createdAt[after]=2024-01-01T00:00:00Z", "createdAt[after]"),
        ("/api/v1/subscriptions?createdAt=2024-01-01T00:00:00Z", "createdAt"),
        ("/api/v1/subscriptions?pricingType=GRATIS", "GRATIS"),
        ("/api/v1/subscriptions?createdAt[gt]=yesterday", "createdAt[gt]"),
        ("/api/v1/plans?pricingType=PAID", "pricingType"),
        ("/api/v1/plans?createdAt[lte]=2024-13-01T00:00:00Z", "createdAt[lte]"),
        ("/api/v1/customers?planId=plan-live", "planId"),
        ("/api/v1/products?productId=x", "productId"),
        ("/api/v1/tasks?createdAt[gt]=2024-01-01T00:00:00Z", "createdAt[gt]"),
        ("/billing-schedules?status=ACTIVE", "status"),
        ("/plans?status=LIVE", "status"),
    ] {
        let answer = app.get(path).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "BadUserInput");
        let message = answer.1["message"].as_str().unwrap();
        assert!(message.contains(name), "{path}: the message should name `{name}`: {message}");
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn subscriptions_are_filtered_by_resource_pricing_type_and_creation_time(pool: PgPool) {
    let app = ready(pool).await;
    for (id, resource) in [("sub-a", "res-1"), ("sub-b", "res-2")] {
        let body = json!({"id": id, "customerId": "cust-1", "planId": "plan-live", "resourceId": resource});
        let (status, body) = app.create_subscription(&body).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    sqlx::query("UPDATE subscriptions SET created_at = '2024-01-01T00:00:00Z' WHERE id = 'sub-a'")
        .execute(&app.pool)
        .await
        .unwrap();

    let answer = app.list_subscriptions("?resourceId=res-2").await;
    assert_eq!(ids(&answer), ["sub-b"]);
    let answer = app.list_subscriptions("?createdAt[lt]=2025-01-01T00:00:00Z").await;
    assert_eq!(ids(&answer), ["sub-a"]);
    let answer = app.list_subscriptions("?createdAt[gte]=2025-01-01T00:00:00Z").await;
    assert_eq!(ids(&answer), ["sub-b"]);
    let answer =
        app.list_subscriptions("?createdAt[gt]=2024-01-01T00:00:00Z&createdAt[lte]=2024-01-01T00:00:00Z").await;
    assert_eq!(ids(&answer), Vec::<String>::new());
    // the plan's version has no pricing type: it counts as FREE
    let answer = app.list_subscriptions("?pricingType=FREE,CUSTOM").await;
    assert_eq!(ids(&answer), ["sub-a", "sub-b"]);
    let answer = app.list_subscriptions("?pricingType=PAID").await;
    assert_eq!(ids(&answer), Vec::<String>::new());
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn paged_lists_without_filters_refuse_any_other_parameter(pool: PgPool) {
    let app = ready(pool).await;
    for path in ["/api/v1/webhooks?status=FAILED", "/plans?name=x", "/api/v1/webhooks?limit=5&sort=desc"] {
        let answer = app.get(path).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "BadUserInput");
    }
    assert_eq!(app.get("/api/v1/webhooks?limit=5").await.0, StatusCode::OK);
}
