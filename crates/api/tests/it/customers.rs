//! Customers: create, read, list, and the synchronous bulk import.

use crate::harness::{assert_error, ids, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_customer_is_created_and_read(pool: PgPool) {
    let app = TestApp::spawn(pool).await;

    let (status, body) = app
        .post(
            "/api/v1/customers",
            &json!({
                "id": "cust-1",
                "name": "Ada",
                "email": "ada@example.com",
                "billingId": "b-1",
                "metadata": { "k": "v" },
                // the SDK's billing options are accepted and ignored
                "language": "en",
                "timezone": "UTC",
            }),
        )
        .await;

    assert_eq!(status, StatusCode::OK, "{body}");
    let customer = &body["data"];
    assert_eq!(customer["id"], "cust-1");
    assert_eq!(customer["name"], "Ada");
    assert_eq!(customer["email"], "ada@example.com");
    assert_eq!(customer["billingId"], "b-1");
    assert_eq!(customer["metadata"], json!({ "k": "v" }));
    assert!(customer["createdAt"].is_string());
    let (status, read) = app.get_customer("cust-1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read, body);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn bad_customers_are_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    assert_eq!(app.create_customer("cust-dup").await.0, StatusCode::OK);

    assert_error(&app.create_customer("cust-dup").await, StatusCode::BAD_REQUEST, "BadUserInput");
    for body in [json!({}), json!({ "id": "" }), json!({ "id": "c", "shoeSize": 42 }), json!({ "id": 7 })] {
        assert_error(&app.post("/api/v1/customers", &body).await, StatusCode::BAD_REQUEST, "BadUserInput");
    }
    assert_error(&app.get_customer("cust-none").await, StatusCode::NOT_FOUND, "CustomerNotFound");
    assert_eq!(app.count("SELECT count(*) FROM customers").await, 1);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn customers_are_listed_filtered_and_paged(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    for id in ["c-1", "c-2", "c-3"] {
        assert_eq!(app.create_customer(id).await.0, StatusCode::OK);
    }

    assert_eq!(ids(&app.list_customers("").await), ["c-1", "c-2", "c-3"]);
    assert_eq!(ids(&app.list_customers("?name=Customer%20c-2").await), ["c-2"]);
    let first = app.list_customers("?limit=2").await;
    assert_eq!(ids(&first), ["c-1", "c-2"]);
    let next = first.1["pagination"]["next"].as_str().unwrap().to_owned();
    let second = app.list_customers(&format!("?limit=2&after={next}")).await;
    assert_eq!(ids(&second), ["c-3"]);
    assert_eq!(second.1["pagination"]["next"], Value::Null);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn an_import_answers_the_new_customers(pool: PgPool) {
    let app = TestApp::spawn(pool).await;

    let (status, body) = app.import_customers(&["imp-1", "imp-2"]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({ "data": { "newCustomers": ["imp-1", "imp-2"] } }));

    // a re-import creates only what is new and leaves the rest as it was
    let (status, body) = app.import_customers(&["imp-2", "imp-3"]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({ "data": { "newCustomers": ["imp-3"] } }));
    let (status, body) = app.import_customers(&["imp-1", "imp-2", "imp-3"]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({ "data": { "newCustomers": [] } }));

    assert_eq!(ids(&app.list_customers("").await), ["imp-1", "imp-2", "imp-3"]);
    assert_eq!(app.get_customer("imp-3").await.0, StatusCode::OK);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn an_import_keeps_the_fields_it_was_given(pool: PgPool) {
    let app = TestApp::spawn(pool).await;

    let (status, body) = app
        .post(
            "/api/v1/customers/import",
            &json!({ "customers": [
                { "id": "full", "name": "Full", "email": "f@example.com", "billingId": "b", "metadata": { "x": 1 },
                  "updatedAt": "2024-01-01T00:00:00Z" }
            ], "integrationId": "none" }),
        )
        .await;

    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, customer) = app.get_customer("full").await;
    assert_eq!(customer["data"]["name"], "Full");
    assert_eq!(customer["data"]["email"], "f@example.com");
    assert_eq!(customer["data"]["metadata"], json!({ "x": 1 }));
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_bad_import_creates_nobody(pool: PgPool) {
    let app = TestApp::spawn(pool).await;

    for body in [
        json!({ "customers": [{ "id": "a" }, { "id": "a" }] }),
        json!({ "customers": [{ "id": "a" }, { "id": "" }] }),
        json!({ "customers": [{ "id": "a" }, { "name": "no id" }] }),
        json!({ "customers": [{ "id": "a", "unknown": 1 }] }),
        json!({ "customers": [{ "id": "a", "updatedAt": "yesterday" }] }),
        json!({ "customers": "a" }),
        json!({}),
    ] {
        let answer = app.post("/api/v1/customers/import", &body).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "BadUserInput");
    }
    assert_eq!(app.count("SELECT count(*) FROM customers").await, 0);
}
