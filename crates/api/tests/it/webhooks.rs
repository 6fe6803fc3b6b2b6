//! `/api/v1/webhooks`: registration and its validation (internal addresses refused unless
//! allowed), who may do what, environment isolation, events written by the transactions that
//! finish tasks and publish versions, replay (also from the dashboard), edits and disabling,
//! test events, payloads, delivery states, endpoint health and secret rotation. No deliverer runs here; the end-to-end test in
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
    let created = register(&admin, "https://hooks.example.com/hook", &["task.completed"]).await;
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

/// The endpoint as the api answers it now.
async fn endpoint(app: &TestApp, webhook: &str) -> Value {
    let (status, body) = app.get(&format!("/api/v1/webhooks/{webhook}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["data"].clone()
}

/// Claims the one due delivery and records an attempt answered with `status_code`, of at most
/// `max_attempts`; answers what the deliverer was handed.
async fn attempt_first(app: &TestApp, status_code: i32, max_attempts: i32) -> store::webhooks::DueDelivery {
    let mut due = store::webhooks::claim_due(&app.pool, 10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(due.len(), 1, "{due:?}");
    let due = due.remove(0);
    let delivered = (200..300).contains(&status_code);
    let outcome = store::webhooks::AttemptOutcome {
        started_at: chrono::Utc::now(),
        duration_ms: 3,
        status_code: Some(status_code),
        response_body: Some("answer".into()),
        error: (!delivered).then(|| format!("answered {status_code}")),
        delivered,
    };
    store::webhooks::record_attempt(&app.pool, due.id, due.attempt, &outcome, max_attempts, Duration::ZERO)
        .await
        .unwrap();
    due
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn urls_resolving_to_internal_addresses_are_refused_unless_allowed(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let admin = key(&app, ENV_A, Scope::Admin).await;
    for (url, why) in [
        ("http://127.0.0.1:9/hook", "a loopback address"),
        ("http://localhost:8080/hook", "a loopback address"),
        ("http://[::1]/hook", "a loopback address"),
        ("http://10.1.2.3/hook", "a private address"),
        ("https://192.168.0.10/hook", "a private address"),
        ("http://169.254.169.254/latest/meta-data", "a cloud metadata address"),
        ("http://169.254.10.1/hook", "a link-local address"),
        ("http://0.0.0.0/hook", "an unspecified address"),
    ] {
        let answer = admin.post("/api/v1/webhooks", &json!({ "url": url, "events": ["task.completed"] })).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "BadUserInput");
        let message = answer.1.to_string();
        assert!(message.contains(why) && message.contains("CUTOVER_WEBHOOK_ALLOW_HOSTS"), "{url}: {message}");
    }
    assert_eq!(app.count("SELECT count(*) FROM webhook_endpoints").await, 0);

    // PATCH checks the same, and a refusal changes nothing
    let created = register(&admin, "https://hooks.example.com/hook", &["task.completed"]).await;
    let id = created["id"].as_str().unwrap();
    let answer = admin.patch(&format!("/api/v1/webhooks/{id}"), &json!({ "url": "http://127.0.0.1:9/hook" })).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "BadUserInput");
    assert_eq!(endpoint(&app, id).await["url"], "https://hooks.example.com/hook");

    // an allow-list lets named internal receivers through, and only those
    let settings = api::ApiSettings {
        webhook_policy: domain::webhook::AddressPolicy::parse("127.0.0.1,10.0.0.0/8").unwrap(),
        ..api::ApiSettings::default()
    };
    let allowing = TestApp::spawn_with(pool, settings).await;
    let admin = key(&allowing, ENV_A, Scope::Admin).await;
    register(&admin, "http://127.0.0.1:9/hook", &["task.completed"]).await;
    register(&admin, "http://10.1.2.3/hook", &["task.completed"]).await;
    let answer = admin
        .post("/api/v1/webhooks", &json!({ "url": "http://169.254.169.254/", "events": ["task.completed"] }))
        .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "BadUserInput");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn patch_edits_an_endpoint_and_a_disabled_one_gets_no_new_deliveries(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = key(&app, ENV_A, Scope::Admin).await;
    let created = register(&admin, "https://hooks.example.com/a", &["task.completed"]).await;
    let id = created["id"].as_str().unwrap();
    let path = format!("/api/v1/webhooks/{id}");
    assert_eq!(created["enabled"], true);

    // refusals, in the contract's shape, change nothing
    let read_only = app.read_only().await;
    let admin_b = key(&app, ENV_B, Scope::Admin).await;
    let disable = json!({ "enabled": false });
    assert_error(&read_only.patch(&path, &disable).await, StatusCode::FORBIDDEN, "AccessDeniedError");
    assert_error(&app.patch(&path, &disable).await, StatusCode::FORBIDDEN, "AccessDeniedError");
    assert_error(&admin_b.patch(&path, &disable).await, StatusCode::NOT_FOUND, "NotFound");
    for body in [
        json!({}),
        json!({ "events": [] }),
        json!({ "events": ["task.started"] }),
        json!({ "url": "ftp://example.com/" }),
        json!({ "enabled": "no" }),
        json!({ "secret": "mine" }),
    ] {
        assert_error(&admin.patch(&path, &body).await, StatusCode::BAD_REQUEST, "BadUserInput");
    }
    let unknown = format!("/api/v1/webhooks/{}", Uuid::new_v4());
    assert_error(&admin.patch(&unknown, &disable).await, StatusCode::NOT_FOUND, "NotFound");
    assert_eq!(
        endpoint(&app, id).await,
        { created.clone() }
            .as_object()
            .map(|o| {
                let mut o = o.clone();
                o.remove("secret");
                Value::Object(o)
            })
            .unwrap()
    );

    let (status, body) = admin
        .patch(&path, &json!({ "url": "https://hooks.example.com/b", "events": ["task.canceled"], "enabled": false }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["data"]["url"].clone(), body["data"]["events"].clone(), body["data"]["enabled"].clone()),
        (json!("https://hooks.example.com/b"), json!(["task.canceled"]), json!(false))
    );
    assert_eq!(endpoint(&app, id).await, body["data"]);

    // disabled: a canceled task announces nothing to it, and it takes no test event
    app.draft_plan("plan-d").await;
    let task = app.publish_ok("plan-d").await;
    assert_eq!(app.post_empty(&format!("/api/v1/tasks/{task}/cancel")).await.0, StatusCode::OK);
    assert!(deliveries(&app, id).await.is_empty());
    assert_error(&admin.post_empty(&format!("{path}/test")).await, StatusCode::BAD_REQUEST, "BadUserInput");
    assert_eq!(app.count("SELECT count(*) FROM webhook_deliveries").await, 0);

    // enabled again, it gets the next one
    let (status, _) = admin.patch(&path, &json!({ "enabled": true })).await;
    assert_eq!(status, StatusCode::OK);
    let task = app.publish_ok("plan-d").await;
    assert_eq!(app.post_empty(&format!("/api/v1/tasks/{task}/cancel")).await.0, StatusCode::OK);
    let seen = deliveries(&app, id).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["event"]["type"], "task.canceled");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_test_event_is_a_ping_delivered_like_any_other_with_its_states_payload_and_health(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = key(&app, ENV_A, Scope::Admin).await;
    let created = register(&admin, "https://hooks.example.com/ping", &["task.completed"]).await;
    let id = created["id"].as_str().unwrap();
    let health = &created["health"];
    assert_eq!(
        health,
        &json!({ "lastStatusCode": null, "lastError": null, "lastAttemptAt": null, "lastSuccessAt": null, "failingStreak": 0 })
    );

    let test = format!("/api/v1/webhooks/{id}/test");
    assert_error(&app.read_only().await.post_empty(&test).await, StatusCode::FORBIDDEN, "AccessDeniedError");
    assert_error(&app.post_empty(&test).await, StatusCode::FORBIDDEN, "AccessDeniedError");
    let other = format!("/api/v1/webhooks/{}/test", Uuid::new_v4());
    assert_error(&admin.post_empty(&other).await, StatusCode::NOT_FOUND, "NotFound");
    assert_eq!(app.count("SELECT count(*) FROM webhook_deliveries").await, 0);

    let (status, body) = admin.post_empty(&test).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let delivery = body["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (body["data"]["status"].clone(), body["data"]["event"]["type"].clone()),
        (json!("PENDING"), json!("ping"))
    );
    assert!(body["data"]["nextAttemptAt"].is_string());

    // the payload view shows the exact bytes the deliverer signs and sends
    let (status, payload) = app.get(&format!("/api/v1/webhooks/deliveries/{delivery}/payload")).await;
    assert_eq!(status, StatusCode::OK, "{payload}");
    let due = attempt_first(&app, 500, 3).await;
    assert_eq!(due.id.to_string(), delivery);
    assert_eq!(payload["data"]["body"], due.body);
    assert_eq!(payload["data"]["type"], "ping");
    let sent: Value = serde_json::from_str(&due.body).unwrap();
    assert_eq!((sent["type"].clone(), sent["data"]["webhookId"].clone()), (json!("ping"), json!(id)));
    assert_eq!(sent["id"], payload["data"]["eventId"]);
    let missing = format!("/api/v1/webhooks/deliveries/{}/payload", Uuid::new_v4());
    assert_error(&app.get(&missing).await, StatusCode::NOT_FOUND, "NotFound");
    let admin_b = key(&app, ENV_B, Scope::Admin).await;
    let theirs = format!("/api/v1/webhooks/deliveries/{delivery}/payload");
    assert_error(&admin_b.get(&theirs).await, StatusCode::NOT_FOUND, "NotFound");

    // one failed attempt: RETRYING with its next attempt time, and the endpoint failing
    let seen = deliveries(&app, id).await;
    assert_eq!(seen[0]["status"], "RETRYING", "{seen:?}");
    assert!(seen[0]["nextAttemptAt"].is_string());
    let health = endpoint(&app, id).await["health"].clone();
    assert_eq!((health["lastStatusCode"].clone(), health["failingStreak"].clone()), (json!(500), json!(1)));
    assert_eq!((health["lastSuccessAt"].clone(), health["lastError"].clone()), (Value::Null, json!("answered 500")));

    // accepted: DELIVERED, the streak over
    attempt_first(&app, 204, 3).await;
    let seen = deliveries(&app, id).await;
    assert_eq!((seen[0]["status"].clone(), seen[0]["nextAttemptAt"].clone()), (json!("DELIVERED"), Value::Null));
    let health = endpoint(&app, id).await["health"].clone();
    assert_eq!((health["lastStatusCode"].clone(), health["failingStreak"].clone()), (json!(204), json!(0)));
    assert_eq!(health["lastSuccessAt"], health["lastAttemptAt"]);

    // and from the dashboard, for admin sessions only
    let (read_only, _) = dashboard_session(&app, Scope::ReadOnly).await;
    let dashboard_test = format!("/dashboard/api/webhooks/{id}/test");
    assert_error(
        &dashboard(&app, &read_only, Method::POST, &dashboard_test).await,
        StatusCode::FORBIDDEN,
        "AccessDeniedError",
    );
    let (status, _) =
        dashboard(&app, &read_only, Method::GET, &format!("/dashboard/api/webhooks/deliveries/{delivery}/payload"))
            .await;
    assert_eq!(status, StatusCode::OK);
    let (admin_session, _) = dashboard_session(&app, Scope::Admin).await;
    let (status, body) = dashboard(&app, &admin_session, Method::POST, &dashboard_test).await;
    assert_eq!((status, body["data"]["event"]["type"].clone()), (StatusCode::OK, json!("ping")), "{body}");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_rotated_secret_is_answered_once_and_both_sign_during_the_overlap(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = key(&app, ENV_A, Scope::Admin).await;
    let created = register(&admin, "https://hooks.example.com/r", &["task.completed"]).await;
    let id = created["id"].as_str().unwrap();
    let old = created["secret"].as_str().unwrap().to_owned();
    let rotate = format!("/api/v1/webhooks/{id}/rotate-secret");
    let stored = || async {
        sqlx::query_scalar::<_, String>("SELECT secret FROM webhook_endpoints WHERE id = $1::uuid")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap()
    };

    // refusals change nothing
    assert_error(&app.read_only().await.post_empty(&rotate).await, StatusCode::FORBIDDEN, "AccessDeniedError");
    assert_error(&app.post_empty(&rotate).await, StatusCode::FORBIDDEN, "AccessDeniedError");
    let admin_b = key(&app, ENV_B, Scope::Admin).await;
    assert_error(&admin_b.post_empty(&rotate).await, StatusCode::NOT_FOUND, "NotFound");
    for body in [json!({ "overlapSeconds": 604_801 }), json!({ "overlapSeconds": -1 }), json!({ "overlap": 5 })] {
        assert_error(&admin.post(&rotate, &body).await, StatusCode::BAD_REQUEST, "BadUserInput");
    }
    assert_eq!(stored().await, old);

    // a day's overlap by default: the new secret signs first, the old one too
    let (status, body) = admin.post_empty(&rotate).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let new = body["data"]["secret"].as_str().unwrap().to_owned();
    assert!(new.starts_with("whsec_") && new != old);
    let until: chrono::DateTime<chrono::Utc> = body["data"]["previousSecretUntil"].as_str().unwrap().parse().unwrap();
    let in_a_day = chrono::Utc::now() + chrono::Duration::hours(24);
    assert!((until - in_a_day).num_seconds().abs() < 60, "{until}");
    let shown = endpoint(&app, id).await;
    assert!(!shown.to_string().contains("whsec_"), "{shown}");
    assert_eq!(shown["previousSecretUntil"], body["data"]["previousSecretUntil"]);
    assert!(shown["secretRotatedAt"].is_string());
    admin.post_empty(&format!("/api/v1/webhooks/{id}/test")).await;
    let due = attempt_first(&app, 200, 3).await;
    assert_eq!((due.secret.as_str(), due.previous_secret.as_deref()), (new.as_str(), Some(old.as_str())));

    // `null` is an empty body: a day's overlap
    let (status, body) = admin.post(&rotate, &Value::Null).await;
    assert_eq!((status, body["data"]["previousSecretUntil"].is_string()), (StatusCode::OK, true), "{body}");

    // no overlap: only the newest signs
    let (status, body) = admin.post(&rotate, &json!({ "overlapSeconds": 0 })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let newest = body["data"]["secret"].as_str().unwrap().to_owned();
    assert_eq!(body["data"]["previousSecretUntil"], Value::Null);
    admin.post_empty(&format!("/api/v1/webhooks/{id}/test")).await;
    let due = attempt_first(&app, 200, 3).await;
    assert_eq!((due.secret.as_str(), due.previous_secret.as_deref()), (newest.as_str(), None));
}
