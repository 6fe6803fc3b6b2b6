//! Who may call: 401 without a live key, 403 for a read-only key on anything but a read.

use crate::harness::{assert_error, list_data, TestApp, ENV_A};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;
use store::api_keys::Scope;

const PUBLISH_BODY: &str = r#"{"migrationType":"NEW_CUSTOMERS"}"#;

fn publish_request(app: &TestApp, plan: &str) -> reqwest::RequestBuilder {
    app.anonymous(Method::POST, &format!("/api/v1/plans/{plan}/publish"))
        .header("Content-Type", "application/json")
        .body(PUBLISH_BODY)
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn publish_without_a_key_is_unauthenticated(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.draft_plan("plan-auth").await;

    let answer = TestApp::send(publish_request(&app, "plan-auth")).await;

    assert_error(&answer, StatusCode::UNAUTHORIZED, "Unauthenticated");
    assert_eq!(app.task_count().await, 0);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn publish_with_a_wrong_key_is_unauthenticated(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.draft_plan("plan-auth").await;

    let answer = TestApp::send(publish_request(&app, "plan-auth").header("X-API-KEY", "cut_sk_not-a-real-key")).await;

    assert_error(&answer, StatusCode::UNAUTHORIZED, "Unauthenticated");
    assert_eq!(app.task_count().await, 0);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn an_unauthenticated_caller_learns_nothing_about_the_plan(pool: PgPool) {
    let app = TestApp::spawn(pool).await;

    // the plan does not exist and the body is bad, yet the answer is about the key
    let answer = TestApp::send(
        app.anonymous(Method::POST, "/api/v1/plans/no-such-plan/publish").header("X-API-KEY", "wrong").body("{"),
    )
    .await;

    assert_error(&answer, StatusCode::UNAUTHORIZED, "Unauthenticated");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn malformed_credentials_are_unauthenticated(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let path = "/api/v1/plans";

    let cases = [
        app.anonymous(Method::GET, path),
        app.anonymous(Method::GET, path).header("X-API-KEY", ""),
        app.anonymous(Method::GET, path).header("X-API-KEY", "   "),
        app.anonymous(Method::GET, path).header("Authorization", "Bearer wrong"),
        app.anonymous(Method::GET, path).header("Authorization", "Basic !!!not-base64"),
        app.anonymous(Method::GET, path).header("Authorization", "Digest whatever"),
        // the key of another service's shape, passed as a query parameter, is no key
        app.anonymous(Method::GET, &format!("{path}?apiKey={}", app.key)),
    ];
    for (i, request) in cases.into_iter().enumerate() {
        let answer = TestApp::send(request).await;
        assert_eq!(answer.0, StatusCode::UNAUTHORIZED, "case {i}: {}", answer.1);
        assert_error(&answer, StatusCode::UNAUTHORIZED, "Unauthenticated");
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_key_works_as_basic_user_or_bearer_token(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.draft_plan("plan-basic-auth").await;

    let basic = TestApp::send(app.anonymous(Method::GET, "/api/v1/plans").basic_auth(&app.key, None::<&str>)).await;
    assert_eq!(list_data(&basic).len(), 1);
    let password = TestApp::send(app.anonymous(Method::GET, "/api/v1/plans").basic_auth("", Some(&app.key))).await;
    assert_eq!(list_data(&password).len(), 1);
    let bearer = TestApp::send(app.anonymous(Method::GET, "/api/v1/plans").bearer_auth(&app.key)).await;
    assert_eq!(list_data(&bearer).len(), 1);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_revoked_key_is_unauthenticated(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let key = store::api_keys::create_key(&app.pool, ENV_A, Scope::Server, None).await.unwrap();
    let revoked = app.with_key(&key.secret);
    assert_eq!(revoked.list_plans("").await.0, StatusCode::OK);

    store::api_keys::revoke(&app.pool, &key.prefix).await.unwrap();

    assert_error(&revoked.list_plans("").await, StatusCode::UNAUTHORIZED, "Unauthenticated");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn an_expired_key_is_unauthenticated(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let past = chrono::Utc::now() - chrono::Duration::hours(1);
    let key = store::api_keys::create_key(&app.pool, ENV_A, Scope::Server, Some(past)).await.unwrap();

    assert_error(&app.with_key(key.secret).list_plans("").await, StatusCode::UNAUTHORIZED, "Unauthenticated");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_read_only_key_cannot_publish(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.draft_plan("plan-ro").await;
    let reader = app.read_only().await;
    let before = app.snapshot().await;

    let answer = reader.publish("plan-ro", &json!({ "migrationType": "NEW_CUSTOMERS" })).await;

    assert_error(&answer, StatusCode::FORBIDDEN, "AccessDeniedError");
    assert_eq!(app.snapshot().await, before);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_read_only_key_cannot_write_anything(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.published_plan("plan-ro").await;
    let reader = app.read_only().await;

    let answers = [
        reader.create_product("ro-product").await,
        reader.create_plan("ro-plan", "plan-ro-product").await,
        reader.update_plan("plan-ro", &json!({ "displayName": "x" })).await,
        reader.create_draft("plan-ro").await,
        reader.remove_draft("plan-ro").await,
        reader.archive_plan("plan-ro").await,
        reader.create_customer("ro-customer").await,
        reader.import_customers(&["ro-imported"]).await,
        reader.create_subscription(&json!({ "customerId": "c", "planId": "plan-ro" })).await,
        reader.import_subscriptions(&json!({ "subscriptions": [] })).await,
    ];
    for answer in &answers {
        assert_error(answer, StatusCode::FORBIDDEN, "AccessDeniedError");
    }
    assert_eq!(app.count("SELECT count(*) FROM products").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM plan_versions").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM customers").await, 0);
    assert_eq!(app.task_count().await, 0);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_read_only_key_can_read(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.draft_plan("plan-ro").await;
    let task_id = app.publish_ok("plan-ro").await;
    let reader = app.read_only().await;

    let (status, plan) = reader.get_plan("plan-ro").await;
    assert_eq!(status, StatusCode::OK, "{plan}");
    assert_eq!(plan["data"]["id"], "plan-ro");
    assert_eq!(list_data(&reader.list_plans("").await).len(), 1);
    assert_eq!(list_data(&reader.list_products("").await).len(), 1);
    let (status, task) = reader.get_task(&task_id.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{task}");
    assert_eq!(task["data"]["status"], "PENDING");
    assert_eq!(list_data(&reader.list_tasks("").await).len(), 1);
    assert!(list_data(&reader.list_customers("").await).is_empty());
    assert!(list_data(&reader.list_subscriptions("").await).is_empty());
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn probes_need_no_key(pool: PgPool) {
    let app = TestApp::spawn(pool).await;

    let (status, body) = TestApp::send(app.anonymous(Method::GET, "/healthz")).await;
    assert_eq!((status, body), (StatusCode::OK, json!({ "status": "ok" })));
    let (status, body) = TestApp::send(app.anonymous(Method::GET, "/readyz")).await;
    assert_eq!((status, body), (StatusCode::OK, json!({ "database": true, "broker": true })));
}
