//! Bulk retry and cancel from the dashboard's task list: each task is acted on as its own
//! button would, audited with who did it; the ones that cannot be are refused with why, and
//! a malformed request changes nothing.

use crate::dashboard::session;
use crate::harness::TestApp;
use domain::{ErrorCode, TaskId};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;
use store::api_keys::Scope;

async fn bulk(app: &TestApp, cookie: &str, body: Value) -> (StatusCode, Value) {
    let request = app
        .anonymous(Method::POST, "/dashboard/api/tasks/bulk")
        .header("cookie", cookie)
        .header("X-Cutover-Dashboard", "1")
        .json(&body);
    TestApp::send(request).await
}

async fn status_of(app: &TestApp, id: &uuid::Uuid) -> Value {
    app.get_task(&id.to_string()).await.1["data"]["status"].clone()
}

async fn actors(pool: &PgPool, kind: &str) -> Vec<(uuid::Uuid, Option<String>)> {
    sqlx::query_as("SELECT task_id, actor FROM task_events WHERE kind = $1 ORDER BY task_id")
        .bind(kind)
        .fetch_all(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn bulk_cancel_and_retry_act_on_each_task_and_say_which_were_refused(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let mut tasks = Vec::new();
    for plan in ["bulk-a", "bulk-b", "bulk-c"] {
        app.draft_plan(plan).await;
        tasks.push(app.publish_ok(plan).await);
    }
    let (a, b, c) = (tasks[0], tasks[1], tasks[2]);
    store::tasks::fail(
        &pool,
        &store::Hooks::new(std::sync::Arc::new(views::Webhooks)),
        TaskId(c),
        ErrorCode::MaxAttemptsExceeded,
        "gave up",
    )
    .await
    .unwrap();
    let (admin, prefix) = session(&app, Scope::Admin).await;

    // a malformed request changes nothing
    for body in [
        json!({"action": "explode", "ids": [a]}),
        json!({"action": "cancel", "ids": []}),
        json!({"action": "cancel", "ids": [a, "not-a-task"]}),
        json!({"action": "cancel", "ids": vec![a; 201]}),
    ] {
        let (status, answer) = bulk(&app, &admin, body.clone()).await;
        assert_eq!((status, answer["code"].clone()), (StatusCode::BAD_REQUEST, json!("BadUserInput")), "{body}");
    }
    assert_eq!(status_of(&app, &a).await, "PENDING");
    // a read-only session may not
    let (read_only, _) = session(&app, Scope::ReadOnly).await;
    let (status, _) = bulk(&app, &read_only, json!({"action": "cancel", "ids": [a, b]})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(status_of(&app, &a).await, "PENDING");

    let (status, answer) = bulk(&app, &admin, json!({"action": "cancel", "ids": [a, b, c, a]})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let done: Vec<&Value> = answer["data"]["done"].as_array().unwrap().iter().map(|t| &t["status"]).collect();
    assert_eq!(done, vec!["CANCELED", "CANCELED"]);
    assert_eq!(answer["data"]["refused"].as_array().unwrap().len(), 1, "{answer}");
    assert_eq!(answer["data"]["refused"][0]["id"], c.to_string());
    assert_eq!(answer["data"]["refused"][0]["code"], "BadUserInput");
    assert_eq!((status_of(&app, &a).await, status_of(&app, &b).await), (json!("CANCELED"), json!("CANCELED")));
    let mut expected = vec![(a, Some(prefix.clone())), (b, Some(prefix.clone()))];
    expected.sort();
    assert_eq!(actors(&pool, "canceled").await, expected);

    let (status, answer) = bulk(&app, &admin, json!({"action": "retry", "ids": [c, a]})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["data"]["done"][0]["id"], c.to_string());
    assert_eq!(answer["data"]["refused"][0]["id"], a.to_string());
    assert_eq!(status_of(&app, &c).await, "PENDING");
    assert_eq!(actors(&pool, "retried").await, vec![(c, Some(prefix))]);
}
