//! Dead letters on the dashboard: what the workers stored is listed per environment,
//! inspected, replayed through the outbox (re-opening a failed task) and discarded, each with
//! who did it; a read-only session and a change without the dashboard's header are refused.
//! The queue figures the workers recorded show on the overview.

use crate::dashboard::{call, session};
use crate::harness::TestApp;
use domain::{ErrorCode, TaskId};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;
use store::api_keys::Scope;
use store::dead_letters::Incoming;

fn parked(task: &uuid::Uuid, message_id: Option<&str>) -> Incoming {
    let body = json!({ "kind": "task", "taskId": task }).to_string().into_bytes();
    Incoming {
        message_id: message_id.map(str::to_owned),
        body,
        headers: json!({ "x-death": [{ "reason": "rejected", "queue": "cutover.work.task", "count": 1,
                                       "routing-keys": ["task"], "time": "2026-11-23T10:00:00+00:00" }] }),
        reason: "rejected".into(),
        death_count: 1,
        original_queue: Some("cutover.work.task".into()),
        routing_key: Some("task".into()),
        dead_at: Some("2026-11-23T10:00:00Z".parse().unwrap()),
    }
}

/// Settings that make `ENV_A` the operator environment.
fn operator_settings() -> api::ApiSettings {
    api::ApiSettings { operator_environment: Some(crate::harness::ENV_A.into()), ..api::ApiSettings::default() }
}

/// A dashboard session of an admin key of `environment`.
async fn admin_session(app: &TestApp, environment: &str) -> String {
    let key = store::api_keys::create_key(&app.pool, environment, Scope::Admin, None).await.unwrap();
    let response = app
        .anonymous(Method::POST, "/dashboard/api/sign-in")
        .header("X-Cutover-Dashboard", "1")
        .json(&json!({ "key": key.secret }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned()
}

async fn outbox_rows_for(pool: &PgPool, task: &uuid::Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox WHERE payload ->> 'taskId' = $1")
        .bind(task.to_string())
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn dead_letters_are_stored_once_listed_replayed_and_discarded_with_who_did_it(pool: PgPool) {
    let app = TestApp::spawn_with(pool.clone(), operator_settings()).await;
    app.draft_plan("plan-dl").await;
    let task = app.publish_ok("plan-dl").await;
    store::tasks::fail(
        &pool,
        &store::Hooks::new(std::sync::Arc::new(views::Webhooks)),
        TaskId(task),
        ErrorCode::MaxAttemptsExceeded,
        "gave up after 1 attempts: lock timeout",
    )
    .await
    .unwrap();
    // another environment's dead letter, which env-a must not see
    let other = app.other_environment().await;
    other.draft_plan("plan-b").await;
    let task_b = other.publish_ok("plan-b").await;

    // a redelivered copy is the same row
    assert!(store::dead_letters::ingest(&pool, &parked(&task, Some("m-1"))).await.unwrap());
    assert!(!store::dead_letters::ingest(&pool, &parked(&task, Some("m-1"))).await.unwrap());
    let malformed = Incoming { message_id: None, body: b"{not json".to_vec(), ..parked(&task, None) };
    assert!(store::dead_letters::ingest(&pool, &malformed).await.unwrap());
    assert!(!store::dead_letters::ingest(&pool, &malformed).await.unwrap());
    assert!(store::dead_letters::ingest(&pool, &parked(&task_b, Some("m-b"))).await.unwrap());
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM dead_letters").fetch_one(&pool).await.unwrap();
    assert_eq!(stored, 3);

    let (admin, prefix) = session(&app, Scope::Admin).await;
    let (status, list) = call(&app, &admin, Method::GET, "/dashboard/api/dead-letters", false).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let rows = list["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "env-a, the operator environment, sees its own and the one of no environment: {list}");
    let ours = rows.iter().find(|r| r["taskId"] == task.to_string()).unwrap().clone();
    assert_eq!(ours["causeCode"], "MaxAttemptsExceeded");
    assert_eq!(ours["cause"], "gave up after 1 attempts: lock timeout");
    assert_eq!(
        (ours["reason"].clone(), ours["originalQueue"].clone()),
        (json!("rejected"), json!("cutover.work.task"))
    );
    let junk = rows.iter().find(|r| r["causeCode"] == "Malformed").unwrap().clone();
    assert!(junk["taskId"].is_null());
    let b_id: i64 = sqlx::query_scalar("SELECT id FROM dead_letters WHERE task_id = $1")
        .bind(task_b)
        .fetch_one(&pool)
        .await
        .unwrap();
    let (status, _) = call(&app, &admin, Method::GET, &format!("/dashboard/api/dead-letters/{b_id}"), false).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let one = format!("/dashboard/api/dead-letters/{}", ours["id"]);
    let (status, detail) = call(&app, &admin, Method::GET, &one, false).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["data"]["body"], json!({ "kind": "task", "taskId": task }).to_string());
    assert_eq!(detail["data"]["headers"]["x-death"][0]["reason"], "rejected");

    // refused: a read-only session, and a change without the dashboard's header
    let (read_only, _) = session(&app, Scope::ReadOnly).await;
    let (status, body) = call(&app, &read_only, Method::POST, &format!("{one}/replay"), true).await;
    assert_eq!((status, body["code"].clone()), (StatusCode::FORBIDDEN, json!("AccessDeniedError")));
    let (status, _) = call(&app, &read_only, Method::POST, &format!("{one}/discard"), true).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(&app, &admin, Method::POST, &format!("{one}/replay"), false).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(outbox_rows_for(&pool, &task).await, 1, "only the publish's own message");

    // replay: the failed task is open again and its message is in the outbox, in one go
    let (status, replayed) = call(&app, &admin, Method::POST, &format!("{one}/replay"), true).await;
    assert_eq!(status, StatusCode::OK, "{replayed}");
    assert_eq!(replayed["data"]["reopened"], true);
    assert_eq!(replayed["data"]["task"]["status"], "PENDING");
    assert_eq!(replayed["data"]["deadLetter"]["status"], "REPLAYED");
    assert_eq!(replayed["data"]["deadLetter"]["resolvedBy"], prefix);
    assert_eq!(outbox_rows_for(&pool, &task).await, 2);
    let (_, after) = app.get_task(&task.to_string()).await;
    assert_eq!((after["data"]["status"].clone(), after["data"]["error"].clone()), (json!("PENDING"), Value::Null));
    let actor: Option<String> =
        sqlx::query_scalar("SELECT actor FROM task_events WHERE task_id = $1 AND kind = 'dead_letter_replayed'")
            .bind(task)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(actor.as_deref(), Some(prefix.as_str()));
    // once only
    let (status, body) = call(&app, &admin, Method::POST, &format!("{one}/replay"), true).await;
    assert_eq!((status, body["code"].clone()), (StatusCode::BAD_REQUEST, json!("BadUserInput")));
    assert_eq!(outbox_rows_for(&pool, &task).await, 2);

    // a malformed message cannot be replayed, only discarded
    let junk_path = format!("/dashboard/api/dead-letters/{}", junk["id"]);
    let (status, body) = call(&app, &admin, Method::POST, &format!("{junk_path}/replay"), true).await;
    assert_eq!((status, body["code"].clone()), (StatusCode::BAD_REQUEST, json!("BadUserInput")), "{body}");
    let (status, discarded) = call(&app, &admin, Method::POST, &format!("{junk_path}/discard"), true).await;
    assert_eq!(status, StatusCode::OK, "{discarded}");
    assert_eq!(
        (discarded["data"]["status"].clone(), discarded["data"]["resolvedBy"].clone()),
        (json!("DISCARDED"), json!(prefix))
    );
    let (_, dead) = call(&app, &admin, Method::GET, "/dashboard/api/dead-letters?status=DEAD", false).await;
    assert_eq!(dead["data"], json!([]));
    let (status, _) = call(&app, &admin, Method::GET, "/dashboard/api/dead-letters?status=ALIVE", false).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_overview_shows_what_the_workers_read_of_the_queues(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    store::workers::register(&pool, "w-1", "host", 1, "worker").await.unwrap();
    store::workers::heartbeat(&pool, "w-1", 5, &json!({"task": 1, "batch": 4, "dead": 0})).await.unwrap();
    store::workers::register(&pool, "w-2", "host", 2, "worker").await.unwrap();
    store::workers::heartbeat(&pool, "w-2", 2, &json!({"task": 0, "batch": 2, "dead": 0})).await.unwrap();
    store::queues::observe(&pool, "cutover.work.batch", 17, 2, "w-1").await.unwrap();
    store::queues::observe(&pool, "cutover.work.task", 3, 2, "w-2").await.unwrap();
    store::queues::observe(&pool, "cutover.dead", 0, 2, "w-2").await.unwrap();
    // another deployment's queues on the same database are not ours
    store::queues::observe(&pool, "other.work.task", 99, 1, "w-9").await.unwrap();
    // a stopped worker's deliveries are not counted
    store::workers::register(&pool, "w-3", "host", 3, "worker").await.unwrap();
    store::workers::heartbeat(&pool, "w-3", 9, &json!({"batch": 9})).await.unwrap();
    store::workers::stopped(&pool, "w-3").await.unwrap();

    let (admin, _) = session(&app, Scope::ReadOnly).await;
    let (status, overview) = call(&app, &admin, Method::GET, "/dashboard/api/overview", false).await;
    assert_eq!(status, StatusCode::OK, "{overview}");
    let queues: Vec<Value> = overview["data"]["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| json!([q["queue"], q["ready"], q["unacked"], q["consumers"]]))
        .collect();
    assert_eq!(
        queues,
        vec![
            json!(["cutover.dead", 0, 0, 2]),
            json!(["cutover.work.batch", 17, 6, 2]),
            json!(["cutover.work.task", 3, 1, 2]),
        ]
    );
    let age = overview["data"]["queues"][0]["ageSecs"].as_f64().unwrap();
    assert!((0.0..30.0).contains(&age), "{age}");
    assert_eq!(overview["data"]["deadLetters"], 0);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn dead_letters_of_no_environment_are_the_operator_environments_alone(pool: PgPool) {
    let app = TestApp::spawn_with(pool.clone(), operator_settings()).await;
    let malformed = Incoming { message_id: None, body: b"{not json".to_vec(), ..parked(&uuid::Uuid::new_v4(), None) };
    assert!(store::dead_letters::ingest(&pool, &malformed).await.unwrap());
    let id: i64 =
        sqlx::query_scalar("SELECT id FROM dead_letters WHERE environment_id IS NULL").fetch_one(&pool).await.unwrap();
    let path = format!("/dashboard/api/dead-letters/{id}");

    // another environment's admin neither sees it nor can act on it: 404, as for any letter not its own
    let other = admin_session(&app, crate::harness::ENV_B).await;
    let (_, list) = call(&app, &other, Method::GET, "/dashboard/api/dead-letters", false).await;
    assert_eq!(list["data"], json!([]));
    let (_, overview) = call(&app, &other, Method::GET, "/dashboard/api/overview", false).await;
    assert_eq!(overview["data"]["deadLetters"], 0, "{overview}");
    for action in ["", "/discard", "/replay"] {
        let method = if action.is_empty() { Method::GET } else { Method::POST };
        let (status, body) = call(&app, &other, method, &format!("{path}{action}"), true).await;
        assert_eq!((status, body["code"].clone()), (StatusCode::NOT_FOUND, json!("NotFound")), "{action}");
    }

    // with no operator environment set, nobody sees it
    let unset = TestApp::spawn(pool.clone()).await;
    let env_a = admin_session(&unset, crate::harness::ENV_A).await;
    let (status, _) = call(&unset, &env_a, Method::POST, &format!("{path}/discard"), true).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // the operator environment's admin sees and discards it
    let operator = admin_session(&app, crate::harness::ENV_A).await;
    let (_, overview) = call(&app, &operator, Method::GET, "/dashboard/api/overview", false).await;
    assert_eq!(overview["data"]["deadLetters"], 1, "{overview}");
    let (status, body) = call(&app, &operator, Method::POST, &format!("{path}/discard"), true).await;
    assert_eq!((status, body["data"]["status"].clone()), (StatusCode::OK, json!("DISCARDED")), "{body}");
}
