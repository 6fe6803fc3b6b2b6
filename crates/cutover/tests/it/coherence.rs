//! Task kinds agree with each other: a task's stored spec is read as a type, and one that does
//! not parse fails its task (`InvalidTaskSpec`) without publishing or moving anything; one task
//! at a time holds a plan, so a rollback during a running staged rollout of the same plan is
//! refused and moves nobody.

use crate::stack::{worker_context, Stack};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// A worker of the stack's queues, running until the answered token is canceled and awaited.
fn start_worker(stack: &Stack, name: &str) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let cancel = CancellationToken::new();
    let ctx = worker_context(&stack.pool, &stack.topology, name, 10);
    (cancel.clone(), tokio::spawn(worker::run_consumer(ctx, cancel)))
}

async fn history_rows(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM subscription_version_history").fetch_one(pool).await.unwrap()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_corrupted_spec_fails_its_task_and_publishes_or_moves_nothing(pool: PgPool) {
    let stack = Stack::start(pool, 0, 10).await;
    let api = &stack.api;
    let (stop, worker) = start_worker(&stack, "setup");
    api.plan_with_subscriptions("spec-missing", 15).await;
    api.plan_with_subscriptions("spec-unknown", 15).await;
    api.plan_with_subscriptions("spec-kind", 15).await;
    // the workers stop: what is accepted now stays PENDING
    stop.cancel();
    worker.await.unwrap();

    let mut tasks = Vec::new();
    for (plan, corruption) in [
        ("spec-missing", "payload - 'migrationType'"),
        ("spec-unknown", r#"payload || '{"migrationType": "SOME_CUSTOMERS"}'"#),
        // a readable spec of another kind of task
        ("spec-kind", r#"'{"kind": "IMPORT_SUBSCRIPTIONS", "specVersion": 1, "subscriptions": []}'"#),
    ] {
        api.draft(plan, json!({"displayName": format!("{plan} v2")})).await;
        let task = api.publish(plan, "ALL_CUSTOMERS").await;
        assert_eq!(api.task(&task).await["status"], "PENDING");
        let changed = sqlx::query(&format!("UPDATE tasks SET payload = {corruption} WHERE id = $1::uuid"))
            .bind(&task)
            .execute(&stack.pool)
            .await
            .unwrap()
            .rows_affected();
        assert_eq!(changed, 1);
        tasks.push((plan, task));
    }

    let (stop, worker) = start_worker(&stack, "after");
    for (plan, task) in &tasks {
        let done = api.wait_task(task).await;
        assert_eq!(done["status"], "FAILED", "{done}");
        assert_eq!(done["error"]["code"], "InvalidTaskSpec", "{done}");
        let message = done["error"]["message"].as_str().unwrap();
        let names = match *plan {
            "spec-missing" => "migrationType",
            "spec-unknown" => "SOME_CUSTOMERS",
            _ => "`kind` of a PUBLISH_PLAN task cannot be IMPORT_SUBSCRIPTIONS",
        };
        assert!(message.contains(names), "{plan}: the message names what is wrong: {message}");
        // nothing published: version 2 is still the draft, and everybody is on version 1
        let (status, plan_body) = api.call(Method::GET, &format!("/api/v1/plans/{plan}"), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(plan_body["data"]["status"], "DRAFT", "{plan_body}");
        assert_eq!(plan_body["data"]["versionNumber"], 2, "{plan_body}");
        let moved: i64 =
            sqlx::query_scalar("SELECT count(*) FROM subscription_version_history WHERE task_id = $1::uuid")
                .bind(task)
                .fetch_one(&stack.pool)
                .await
                .unwrap();
        assert_eq!(moved, 0);
    }
    assert_eq!(history_rows(&stack.pool).await, 0);
    let off_version_1: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM subscriptions s JOIN plan_versions v ON v.id = s.plan_version_id
         WHERE v.version_number <> 1",
    )
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    assert_eq!(off_version_1, 0);
    stop.cancel();
    worker.await.unwrap();
}

/// Polls `check` until it answers true; fails the test after `deadline`.
async fn wait_until(what: &str, deadline: Duration, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < deadline, "{what} did not happen within {deadline:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_rollback_during_a_running_rollout_of_the_same_plan_is_refused(pool: PgPool) {
    let stack = Stack::start(pool, 2, 10).await;
    let api = &stack.api;
    api.plan_with_subscriptions("held", 60).await;
    api.draft("held", json!({"displayName": "held v2"})).await;
    let publish = api.publish("held", "ALL_CUSTOMERS").await;
    assert_eq!(api.wait_task(&publish).await["status"], "COMPLETED");

    api.draft("held", json!({"displayName": "held v3"})).await;
    let accepted = api.post("/api/v1/plans/held/rollouts", json!({"cohorts": [10, 100], "interval": "PT1H"})).await;
    let rollout = accepted["data"]["taskId"].as_str().unwrap().to_owned();
    // the first cohort has moved; the rollout waits an hour for the next one, IN_PROGRESS
    wait_until("the rollout's first cohort", Duration::from_secs(60), async || {
        let task = api.task(&rollout).await;
        task["status"] == "IN_PROGRESS" && !task["rollout"]["nextCohortAt"].is_null()
    })
    .await;
    let rollout_task = api.task(&rollout).await;
    let moved_by_rollout = rollout_task["counts"]["processed"].as_i64().unwrap();
    assert!(moved_by_rollout > 0, "{rollout_task}");
    let history_before = history_rows(&stack.pool).await;
    let tasks_before: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks").fetch_one(&stack.pool).await.unwrap();
    let versions_before: Vec<(String, i32)> = versions(&stack.pool).await;

    let (status, body) = api.call(Method::POST, &format!("/api/v1/tasks/{publish}/rollback"), Some(json!({}))).await;

    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "ObjectAlreadyBeingUsedByAnotherRequestError", "{body}");
    assert!(body["message"].as_str().unwrap().contains("held"), "{body}");
    let tasks_after: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks").fetch_one(&stack.pool).await.unwrap();
    assert_eq!(tasks_after, tasks_before, "no rollback task was written");
    assert_eq!(api.task(&publish).await["rolledBackBy"], Value::Null);
    assert_eq!(history_rows(&stack.pool).await, history_before);
    assert_eq!(versions(&stack.pool).await, versions_before, "nothing moved");
    assert_eq!(api.task(&rollout).await["status"], "IN_PROGRESS");
}

async fn versions(pool: &PgPool) -> Vec<(String, i32)> {
    sqlx::query_as(
        "SELECT s.id, v.version_number FROM subscriptions s JOIN plan_versions v ON v.id = s.plan_version_id
         ORDER BY s.id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}
