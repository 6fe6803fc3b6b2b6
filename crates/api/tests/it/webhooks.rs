//! `/api/v1/webhooks`: registration and its validation, who may do what, environment isolation,
//! events written by the transactions that finish tasks and publish versions, and replay
//! (also from the dashboard). No deliverer runs here; the end-to-end test in
//! `crates/cutover/tests/it/webhooks.rs` delivers for real.

use crate::harness::{assert_error, ids, list_data, TestApp, ENV_A, ENV_B};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::time::Duration;
use store::api_keys::Scope;
use uuid::Uuid;

async fn key(app: &TestApp, env: &str, scope: Scope) -> TestApp {
    app.with_key(store::api_keys::create_key(&app.pool, env, scope, None).await.unwrap().secret)
}

async fn register(admin: &TestApp, url: &str, events: &[&str]) -> Value {
    let (status, body) = admin.post("/api/v1/webhooks", &json!({ "url": url, "events": events })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].clone()
}

async fn deliveries(app: &TestApp, webhook: &str) -> Vec<Value> {
    let answer = app.get(&format!("/api/v1/webhooks/{webhook}/deliveries")).await;
    list_data(&answer).clone()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn registration_refuses_bad_urls_and_unknown_events_and_stores_nothing(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = key(&app, ENV_A, Scope::Admin).await;
    let refused = [
        json!({ "url": "ftp://example.com/hook", "events": ["task.completed"] }),
        json!({ "url": "not a url", "events": ["task.completed"] }),
        json!({ "url": "http://", "events": ["task.completed"] }),
        json!({ "url": "javascript:alert(1)", "events": ["task.completed"] }),
        json!({ "url": format!("https://example.com/{}", "a".repeat(2100)), "events": ["task.completed"] }),
        json!({ "url": "https://example.com/hook", "events": ["task.started"] }),
        json!({ "url": "https://example.com/hook", "events": ["task.completed", "TASK.FAILED"] }),
        json!({ "url": "https://example.com/hook", "events": [] }),
        json!({ "url": "https://example.com/hook" }),
        json!({ "url": "https://example.com/hook", "events": ["task.completed"], "secret": "mine" }),
        json!({ "url": 42, "events": ["task.completed"] }),
    ];
    for body in &refused {
        let answer = admin.post("/api/v1/webhooks", body).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "BadUserInput");
    }
    let answer = TestApp::send(admin.request(Method::POST, "/api/v1/webhooks").body("[]")).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "BadUserInput");
    assert_eq!(app.count("SELECT count(*) FROM webhook_endpoints").await, 0);
    assert!(list_data(&admin.get("/api/v1/webhooks").await).is_empty());

    // every event of the fixed set is accepted, duplicates once
    let all = ["task.completed", "task.failed", "task.partially_failed", "task.canceled", "plan.version_published"];
    let mut twice = all.to_vec();
    twice.push("task.failed");
    let created = register(&admin, "https://hooks.example.com/cutover?x=1", &twice).await;
    assert_eq!(created["events"], json!(all));
    assert_eq!(created["url"], "https://hooks.example.com/cutover?x=1");
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_") && secret.len() > 30, "{secret}");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_secret_is_shown_once_and_reads_show_the_endpoint(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = key(&app, ENV_A, Scope::Admin).await;
    let created = register(&admin, "http://127.0.0.1:9/hook", &["task.completed"]).await;
    let id = created["id"].as_str().unwrap();

    let (status, one) = app.get(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    let mut expected = created.clone();
    expected.as_object_mut().unwrap().remove("secret");
    assert_eq!(one["data"], expected);
    assert_eq!(ids(&app.get("/api/v1/webhooks").await), [id]);
    assert!(!one.to_string().contains("whsec_"));

    let (status, body) = admin.delete(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!((status, body["data"]["deleted"].clone()), (StatusCode::OK, json!(true)), "{body}");
    assert_error(&app.get(&format!("/api/v1/webhooks/{id}")).await, StatusCode::NOT_FOUND, "NotFound");
    assert_error(&admin.delete(&format!("/api/v1/webhooks/{id}")).await, StatusCode::NOT_FOUND, "NotFound");
    assert_error(&app.get("/api/v1/webhooks/not-a-uuid").await, StatusCode::NOT_FOUND, "NotFound");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn only_admin_keys_change_webhooks(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = key(&app, ENV_A, Scope::Admin).await;
    let read_only = app.read_only().await;
    let body = json!({ "url": "https://example.com/hook", "events": ["task.completed"] });

    assert_error(&read_only.post("/api/v1/webhooks", &body).await, StatusCode::FORBIDDEN, "AccessDeniedError");
    assert_error(&app.post("/api/v1/webhooks", &body).await, StatusCode::FORBIDDEN, "AccessDeniedError");
    assert_eq!(app.count("SELECT count(*) FROM webhook_endpoints").await, 0);

    let created = register(&admin, "https://example.com/hook", &["task.canceled"]).await;
    let id = created["id"].as_str().unwrap();
    // reading is for every key of the environment
    assert_eq!(ids(&read_only.get("/api/v1/webhooks").await), [id]);
    assert_eq!(read_only.get(&format!("/api/v1/webhooks/{id}/deliveries")).await.0, StatusCode::OK);
    let delete = format!("/api/v1/webhooks/{id}");
    assert_error(&read_only.delete(&delete).await, StatusCode::FORBIDDEN, "AccessDeniedError");
    assert_error(&app.delete(&delete).await, StatusCode::FORBIDDEN, "AccessDeniedError");

    // a delivery to replay: cancel a task, settle its delivery as a receiver would
    app.draft_plan("plan-ro").await;
    let task = app.publish_ok("plan-ro").await;
    assert_eq!(app.post_empty(&format!("/api/v1/tasks/{task}/cancel")).await.0, StatusCode::OK);
    let delivery = settle_first(&app, true).await;
    let replay = format!("/api/v1/webhooks/deliveries/{delivery}/replay");
    assert_error(&read_only.post_empty(&replay).await, StatusCode::FORBIDDEN, "AccessDeniedError");
    assert_error(&app.post_empty(&replay).await, StatusCode::FORBIDDEN, "AccessDeniedError");
    assert_eq!(app.count("SELECT count(*) FROM webhook_deliveries").await, 1);
    assert_eq!(app.get(&delete).await.0, StatusCode::OK);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn another_environments_webhook_is_not_found(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin_a = key(&app, ENV_A, Scope::Admin).await;
    let admin_b = key(&app, ENV_B, Scope::Admin).await;
    let created = register(&admin_a, "https://a.example.com/hook", &["task.canceled"]).await;
    let id = created["id"].as_str().unwrap();

    assert!(list_data(&admin_b.get("/api/v1/webhooks").await).is_empty());
    for path in [format!("/api/v1/webhooks/{id}"), format!("/api/v1/webhooks/{id}/deliveries")] {
        assert_error(&admin_b.get(&path).await, StatusCode::NOT_FOUND, "NotFound");
    }
    assert_error(&admin_b.delete(&format!("/api/v1/webhooks/{id}")).await, StatusCode::NOT_FOUND, "NotFound");
    assert_eq!(app.get(&format!("/api/v1/webhooks/{id}")).await.0, StatusCode::OK);

    // B's tasks announce nothing to A's endpoint, and A's deliveries cannot be replayed by B
    let b = app.other_environment().await;
    b.draft_plan("plan-b").await;
    let task_b = b.publish_ok("plan-b").await;
    assert_eq!(b.post_empty(&format!("/api/v1/tasks/{task_b}/cancel")).await.0, StatusCode::OK);
    assert!(deliveries(&app, id).await.is_empty());
    app.draft_plan("plan-a").await;
    let task_a = app.publish_ok("plan-a").await;
    assert_eq!(app.post_empty(&format!("/api/v1/tasks/{task_a}/cancel")).await.0, StatusCode::OK);
    let delivery = settle_first(&app, false).await;
    let answer = admin_b.post_empty(&format!("/api/v1/webhooks/deliveries/{delivery}/replay")).await;
    assert_error(&answer, StatusCode::NOT_FOUND, "NotFound");
    assert_eq!(app.count("SELECT count(*) FROM webhook_deliveries").await, 1);
}

/// Claims the one due delivery and records an attempt that the receiver accepted (or refused
/// with 500, ending it with a single attempt allowed); answers its id.
async fn settle_first(app: &TestApp, accepted: bool) -> Uuid {
    let due = store::webhooks::claim_due(&app.pool, 10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(due.len(), 1, "{due:?}");
    let outcome = store::webhooks::AttemptOutcome {
        started_at: chrono::Utc::now(),
        duration_ms: 3,
        status_code: Some(if accepted { 200 } else { 500 }),
        response_body: Some(if accepted { "ok" } else { "boom" }.into()),
        error: (!accepted).then(|| "answered 500".to_owned()),
        delivered: accepted,
    };
    store::webhooks::record_attempt(&app.pool, due[0].id, due[0].attempt, &outcome, 1, Duration::ZERO).await.unwrap();
    due[0].id
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn finishing_a_task_and_publishing_a_version_write_one_delivery_per_subscribed_endpoint(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = key(&app, ENV_A, Scope::Admin).await;
    let canceled = register(&admin, "https://one.example.com/", &["task.canceled", "plan.version_published"]).await;
    let completed = register(&admin, "https://two.example.com/", &["task.completed"]).await;
    let (canceled, completed) = (canceled["id"].as_str().unwrap(), completed["id"].as_str().unwrap());

    // a plan created PUBLISHED publishes version 1 in the request's transaction
    app.published_plan("plan-w").await;
    assert_eq!(app.create_draft("plan-w").await.0, StatusCode::OK);
    let task = app.publish_ok("plan-w").await;
    let (status, body) = app.post_empty(&format!("/api/v1/tasks/{task}/cancel")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // a refused cancel (already canceled) announces nothing more
    assert_eq!(app.post_empty(&format!("/api/v1/tasks/{task}/cancel")).await.0, StatusCode::BAD_REQUEST);

    let seen = deliveries(&app, canceled).await;
    let types: Vec<&str> = seen.iter().map(|d| d["event"]["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["task.canceled", "plan.version_published"], "newest first: {seen:?}");
    for d in &seen {
        assert_eq!((d["status"].clone(), d["attempts"].clone()), (json!("PENDING"), json!([])));
        assert!(d["nextAttemptAt"].is_string());
    }
    assert!(deliveries(&app, completed).await.is_empty());

    // the body that will be sent is the task as the tasks API answers it
    let event_id = seen[0]["event"]["id"].as_str().unwrap();
    let body: String = sqlx::query_scalar("SELECT body FROM webhook_events WHERE id = $1::uuid")
        .bind(event_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let body: Value = serde_json::from_str(&body).unwrap();
    let (_, task_answer) = app.get_task(&task.to_string()).await;
    assert_eq!(body["id"], event_id);
    assert_eq!(body["type"], "task.canceled");
    assert_eq!(body["data"], task_answer["data"]);
    let plan: String =
        sqlx::query_scalar("SELECT body FROM webhook_events WHERE event_type = 'plan.version_published'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let plan: Value = serde_json::from_str(&plan).unwrap();
    assert_eq!((plan["data"]["id"].clone(), plan["data"]["versionNumber"].clone()), (json!("plan-w"), json!(1)));
    assert_eq!(plan["data"]["status"], "PUBLISHED");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn replay_sends_the_same_event_again_and_records_who_asked(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = key(&app, ENV_A, Scope::Admin).await;
    let webhook = register(&admin, "https://example.com/hook", &["task.canceled"]).await;
    let webhook = webhook["id"].as_str().unwrap();
    app.draft_plan("plan-p").await;
    let task = app.publish_ok("plan-p").await;
    assert_eq!(app.post_empty(&format!("/api/v1/tasks/{task}/cancel")).await.0, StatusCode::OK);

    // still pending: nothing to replay yet
    let pending = deliveries(&app, webhook).await[0]["id"].as_str().unwrap().to_owned();
    let answer = admin.post_empty(&format!("/api/v1/webhooks/deliveries/{pending}/replay")).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "BadUserInput");
    let unknown = Uuid::new_v4();
    let answer = admin.post_empty(&format!("/api/v1/webhooks/deliveries/{unknown}/replay")).await;
    assert_error(&answer, StatusCode::NOT_FOUND, "NotFound");

    let failed = settle_first(&app, false).await;
    let original = deliveries(&app, webhook).await;
    assert_eq!(original[0]["status"], "FAILED");
    let attempt = &original[0]["attempts"][0];
    assert_eq!((attempt["attempt"].clone(), attempt["statusCode"].clone()), (json!(1), json!(500)));
    assert_eq!((attempt["responseBody"].clone(), attempt["error"].clone()), (json!("boom"), json!("answered 500")));

    let (status, body) = admin.post_empty(&format!("/api/v1/webhooks/deliveries/{failed}/replay")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let admin_prefix: String =
        sqlx::query_scalar("SELECT prefix FROM api_keys WHERE scope = 'admin' ORDER BY created_at LIMIT 1")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let now = deliveries(&app, webhook).await;
    assert_eq!(now.len(), 2);
    assert_eq!(now[0]["id"], body["data"]["id"]);
    assert_eq!(now[0]["replayOf"], failed.to_string());
    assert_eq!(now[0]["replayedBy"], admin_prefix);
    assert_eq!(now[0]["status"], "PENDING");
    assert_eq!(now[0]["event"], original[0]["event"], "a replay carries the same event");

    // from the dashboard: an admin session replays, a read-only session may look but not replay
    let ended = settle_first(&app, true).await;
    let replay = format!("/dashboard/api/webhooks/deliveries/{ended}/replay");
    let (read_only, _) = dashboard_session(&app, Scope::ReadOnly).await;
    let (status, listed) =
        dashboard(&app, &read_only, Method::GET, &format!("/dashboard/api/webhooks/{webhook}/deliveries")).await;
    assert_eq!((status, listed["data"].as_array().unwrap().len()), (StatusCode::OK, 2));
    let answer = dashboard(&app, &read_only, Method::POST, &replay).await;
    assert_error(&answer, StatusCode::FORBIDDEN, "AccessDeniedError");
    let (admin_session, admin_session_prefix) = dashboard_session(&app, Scope::Admin).await;
    let (status, body) = dashboard(&app, &admin_session, Method::POST, &replay).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let newest = &deliveries(&app, webhook).await[0];
    assert_eq!(newest["replayOf"], ended.to_string());
    assert_eq!(newest["replayedBy"], admin_session_prefix);
}

/// A dashboard session cookie for a new key of `scope`, and that key's prefix.
async fn dashboard_session(app: &TestApp, scope: Scope) -> (String, String) {
    let key = store::api_keys::create_key(&app.pool, ENV_A, scope, None).await.unwrap();
    let response = app
        .anonymous(Method::POST, "/dashboard/api/sign-in")
        .header("X-Cutover-Dashboard", "1")
        .json(&json!({ "key": key.secret }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    (cookie, key.prefix)
}

async fn dashboard(app: &TestApp, cookie: &str, method: Method, path: &str) -> (StatusCode, Value) {
    TestApp::send(app.anonymous(method, path).header("cookie", cookie).header("X-Cutover-Dashboard", "1")).await
}
