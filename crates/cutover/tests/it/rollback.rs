//! Rollback through HTTP with real workers: a rollback moves back exactly the subscriptions
//! its task moved and that are still where the task put them, leaves the ones someone else
//! moved meanwhile alone (counted as skipped), writes one history row per move back, and a
//! batch applied twice moves nobody twice.

use crate::stack::Stack;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Every subscription of the database with the version number it is on.
async fn versions(pool: &PgPool) -> BTreeMap<String, i32> {
    sqlx::query_as::<_, (String, i32)>(
        "SELECT s.id, v.version_number FROM subscriptions s JOIN plan_versions v ON v.id = s.plan_version_id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_rollback_restores_exactly_the_moved_subscriptions_and_leaves_others_alone(pool: PgPool) {
    let stack = Stack::start(pool, 2, 7).await;
    let api = &stack.api;
    api.plan_with_subscriptions("rb", 30).await;
    api.plan_with_subscriptions("untouched", 3).await;
    // not live when the publish runs: it does not move, so the rollback must not touch it
    sqlx::query("UPDATE subscriptions SET status = 'CANCELED' WHERE id = 'rb-s0'").execute(&stack.pool).await.unwrap();
    api.draft("rb", json!({"displayName": "v2"})).await;
    let original = api.publish("rb", "ALL_CUSTOMERS").await;
    let done = api.wait_task(&original).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(done["counts"]["processed"], 29);

    // meanwhile someone else moves three of them on to version 3, and one is canceled
    api.draft("rb", json!({"displayName": "v3"})).await;
    let v3 = api.publish("rb", "NEW_CUSTOMERS").await;
    assert_eq!(api.wait_task(&v3).await["status"], "COMPLETED");
    for id in ["rb-s1", "rb-s2", "rb-s3"] {
        api.post(&format!("/api/v1/subscriptions/{id}/migrate"), json!({"subscriptionMigrationTime": "IMMEDIATE"}))
            .await;
    }
    sqlx::query("UPDATE subscriptions SET status = 'CANCELED' WHERE id = 'rb-s4'").execute(&stack.pool).await.unwrap();
    let before = versions(&stack.pool).await;
    // an endpoint subscribed to moves hears of each subscription moved back
    let admin = store::api_keys::create_key(&stack.pool, "stack", store::api_keys::Scope::Admin, None).await.unwrap();
    let admin = crate::client::ApiClient::new(stack.api.base.clone(), admin.secret);
    admin
        .post(
            "/api/v1/webhooks",
            json!({"url": "http://unreachable.invalid/hook", "events": ["subscriptions.migrated"]}),
        )
        .await;

    let accepted = api.post(&format!("/api/v1/tasks/{original}/rollback"), json!({})).await;
    let rollback = accepted["data"]["taskId"].as_str().unwrap().to_owned();
    let task = api.wait_task(&rollback).await;

    assert_eq!(task["status"], "COMPLETED", "{task}");
    assert_eq!(task["taskType"], "ROLLBACK_MIGRATION");
    assert_eq!(task["rollbackOf"], original.as_str());
    assert_eq!(task["counts"], json!({"total": 29, "processed": 29, "failed": 0}));
    assert_eq!(task["skippedCount"], 3);
    assert_eq!(task["progress"], 100);
    assert_eq!(task["initiatedPackageId"], "rb");
    assert_eq!(api.task(&original).await["rolledBackBy"], rollback.as_str());

    let after = versions(&stack.pool).await;
    for (id, was) in &before {
        let expected = match id.as_str() {
            // moved by the publish and still on version 2 (a canceled one too): back to 1
            id if id.starts_with("rb-s") && !["rb-s0", "rb-s1", "rb-s2", "rb-s3"].contains(&id) => 1,
            // never moved by the publish, or moved on by someone else: left where they are
            _ => *was,
        };
        assert_eq!(after[id], expected, "{id} was on {was}");
    }
    assert_eq!(after["rb-s1"], 3);
    assert_eq!(after["rb-s0"], 1);
    let back: Vec<(String, i32, i32)> = sqlx::query_as(
        "SELECT h.subscription_id, f.version_number, t.version_number FROM subscription_version_history h
         JOIN plan_versions f ON f.id = h.from_version_id JOIN plan_versions t ON t.id = h.to_version_id
         WHERE h.task_id = $1::uuid ORDER BY h.subscription_id",
    )
    .bind(&rollback)
    .fetch_all(&stack.pool)
    .await
    .unwrap();
    assert_eq!(back.len(), 26, "{back:?}");
    assert!(back.iter().all(|(_, from, to)| (*from, *to) == (2, 1)), "{back:?}");
    let mut announced: Vec<String> = sqlx::query_scalar(
        "SELECT s ->> 'subscriptionId' FROM webhook_events e, jsonb_array_elements(e.body::jsonb -> 'data' -> 'subscriptions') s
         WHERE e.event_type = 'subscriptions.migrated' AND e.body::jsonb -> 'data' ->> 'taskId' = $1",
    )
    .bind(&rollback)
    .fetch_all(&stack.pool)
    .await
    .unwrap();
    announced.sort();
    let moved_back: Vec<String> = back.iter().map(|(id, ..)| id.clone()).collect();
    assert_eq!(announced, moved_back, "each subscription moved back is announced once");
    let kinds: Vec<String> = sqlx::query_scalar("SELECT kind FROM task_events WHERE task_id = $1::uuid ORDER BY id")
        .bind(&rollback)
        .fetch_all(&stack.pool)
        .await
        .unwrap();
    assert_eq!(kinds, ["accepted", "planned", "finished"]);

    // a batch applied twice moves nobody twice: reopen one and announce it again
    let batches = stack.scalar(&format!("SELECT count(*) FROM task_batches WHERE task_id = '{rollback}'")).await;
    assert_eq!(batches, 5, "29 history rows in batches of 7");
    sqlx::query("UPDATE task_batches SET status = 'PENDING' WHERE task_id = $1::uuid AND seq = 0")
        .bind(&rollback)
        .execute(&stack.pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO outbox (routing_key, payload) VALUES ('batch', $1)")
        .bind(json!({"kind": "batch", "taskId": rollback, "seq": 0}))
        .execute(&stack.pool)
        .await
        .unwrap();
    let start = Instant::now();
    while stack
        .scalar(&format!("SELECT count(*) FROM task_batches WHERE task_id = '{rollback}' AND attempts = 2"))
        .await
        == 0
    {
        assert!(start.elapsed() < Duration::from_secs(30), "the reopened batch did not run again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(versions(&stack.pool).await, after);
    assert_eq!(
        stack.scalar(&format!("SELECT count(*) FROM subscription_version_history WHERE task_id = '{rollback}'")).await,
        26
    );

    // once rolled back, a task is not rolled back again
    let (status, body) = api.call(Method::POST, &format!("/api/v1/tasks/{original}/rollback"), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "TaskAlreadyRolledBack");
}
