//! The publish pipeline in one process: worker-side checks, batching across consumers,
//! redelivery, and messages that are not ours.

use crate::stack::{Stack, AMQP_URL};
use queue::publisher::Outgoing;
use serde_json::json;
use sqlx::PgPool;

async fn draft(stack: &Stack, plan: &str, patch: serde_json::Value) {
    stack.api.draft(plan, patch).await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn publishing_on_top_of_a_draft_base_plan_fails_the_task(pool: PgPool) {
    let stack = Stack::start(pool, 1, 100).await;
    stack.api.plan_with_subscriptions("child", 3).await;
    // the base plan exists only as a draft
    stack.api.post("/api/v1/plans", json!({"id": "base", "displayName": "Base", "productId": "product"})).await;
    draft(&stack, "child", json!({"parentPlanId": "base"})).await;

    let accepted = stack.api.post("/api/v1/plans/child/publish", json!({"migrationType": "ALL_CUSTOMERS"})).await;
    let task = stack.api.wait_task(accepted["data"]["taskId"].as_str().unwrap()).await;
    assert_eq!(task["status"], "FAILED");
    assert_eq!(task["error"]["code"], "PlanCannotBePublishWhenBasePlanIsDraft");
    assert!(!task["error"]["message"].as_str().unwrap().is_empty());
    // nothing changed: the draft is still a draft and nobody moved
    let (_, plan) = stack.api.call(reqwest::Method::GET, "/api/v1/plans/child", None).await;
    assert_eq!(plan["data"]["status"], "DRAFT");
    assert_eq!(stack.scalar("SELECT count(*) FROM subscription_version_history").await, 0);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn publishing_with_a_draft_compatible_addon_fails_the_task(pool: PgPool) {
    let stack = Stack::start(pool, 1, 100).await;
    stack.api.plan_with_subscriptions("main", 0).await;
    stack.api.post("/api/v1/addons", json!({"id": "addon-x", "displayName": "Add-on", "productId": "product"})).await;
    draft(&stack, "main", json!({"compatibleAddonIds": ["addon-x"]})).await;

    let accepted = stack.api.post("/api/v1/plans/main/publish", json!({"migrationType": "NEW_CUSTOMERS"})).await;
    let task = stack.api.wait_task(accepted["data"]["taskId"].as_str().unwrap()).await;
    assert_eq!(task["status"], "FAILED");
    assert_eq!(task["error"]["code"], "PlanCannotBePublishWhenCompatibleAddonIsDraft");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn two_consumers_share_a_migration_and_progress_is_exact(pool: PgPool) {
    let stack = Stack::start(pool, 2, 25).await;
    stack.api.plan_with_subscriptions("shared", 500).await;
    // a canceled subscription is not live: it is neither moved nor counted
    sqlx::query("UPDATE subscriptions SET status = 'CANCELED' WHERE id = 'shared-s0'")
        .execute(&stack.pool)
        .await
        .unwrap();
    draft(&stack, "shared", json!({"displayName": "v2"})).await;

    let accepted = stack.api.post("/api/v1/plans/shared/publish", json!({"migrationType": "ALL_CUSTOMERS"})).await;
    let id = accepted["data"]["taskId"].as_str().unwrap().to_owned();
    let task = stack.api.wait_task(&id).await;
    assert_eq!(task["status"], "COMPLETED", "{task}");
    assert_eq!(task["counts"], json!({"total": 499, "processed": 499, "failed": 0}));
    assert_eq!(task["progress"], 100);
    assert_eq!(task["affectedCustomersCount"], 499);
    assert_eq!(task["targetVersion"], 2);
    assert_eq!(stack.scalar(&format!("SELECT count(*) FROM task_batches WHERE task_id = '{id}'")).await, 20);
    assert_eq!(
        stack
            .scalar(&format!(
                "SELECT count(DISTINCT subscription_id) FROM subscription_version_history WHERE task_id = '{id}'"
            ))
            .await,
        499
    );
    assert_eq!(
        stack
            .scalar(
                "SELECT count(*) FROM subscriptions s JOIN plan_versions v ON v.id = s.plan_version_id
                 WHERE v.version_number = 1 AND s.id <> 'shared-s0'"
            )
            .await,
        0
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn redelivered_and_foreign_messages_change_nothing(pool: PgPool) {
    let stack = Stack::start(pool, 1, 50).await;
    stack.api.plan_with_subscriptions("redo", 200).await;
    draft(&stack, "redo", json!({"displayName": "v2"})).await;
    let accepted = stack.api.post("/api/v1/plans/redo/publish", json!({"migrationType": "ALL_CUSTOMERS"})).await;
    let id = accepted["data"]["taskId"].as_str().unwrap().to_owned();
    assert_eq!(stack.api.wait_task(&id).await["status"], "COMPLETED");

    // replay every message the task ever sent, plus garbage, straight into the work queues
    let connection = queue::connect(AMQP_URL).await.unwrap();
    let publisher = queue::Publisher::open(&connection).await.unwrap();
    let exchange = stack.topology.exchange();
    let mut payloads: Vec<(String, Vec<u8>)> =
        vec![("task".into(), json!({"kind": "task", "taskId": id}).to_string().into_bytes())];
    for seq in 0..4 {
        payloads.push(("batch".into(), json!({"kind": "batch", "taskId": id, "seq": seq}).to_string().into_bytes()));
    }
    payloads.push(("task".into(), b"{not json".to_vec()));
    payloads.push((
        "batch".into(),
        json!({"kind": "batch", "taskId": uuid::Uuid::new_v4(), "seq": 0}).to_string().into_bytes(),
    ));
    let messages: Vec<Outgoing<'_>> = payloads
        .iter()
        .map(|(key, payload)| Outgoing { exchange: &exchange, routing_key: key, payload, attempt: 1 })
        .collect();
    publisher.publish_all(&messages).await.unwrap();

    // the two foreign messages end up dead-lettered — stored by the worker as dead letters, one
    // unreadable, one naming no task — and by then the replays were handled too
    let channel = publisher.channel();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let work = channel
            .queue_declare(
                &stack.topology.work_queue("batch"),
                queue::lapin::options::QueueDeclareOptions { passive: true, ..Default::default() },
                Default::default(),
            )
            .await
            .unwrap();
        let stored = stack.scalar("SELECT count(*) FROM dead_letters").await;
        if stored == 2 && work.message_count() == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "dead letters stored: {stored}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        stack.scalar("SELECT count(*) FROM dead_letters WHERE cause_code IN ('Malformed', 'NotFound')").await,
        2
    );
    let task = stack.api.wait_task(&id).await;
    assert_eq!(task["counts"], json!({"total": 200, "processed": 200, "failed": 0}));
    assert_eq!(
        stack.scalar(&format!("SELECT count(*) FROM subscription_version_history WHERE task_id = '{id}'")).await,
        200
    );
    assert_eq!(stack.scalar("SELECT count(*) FROM subscription_version_history").await, 200);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_batch_out_of_attempts_leaves_the_task_partially_failed_and_retry_moves_only_those(pool: PgPool) {
    let stack = Stack::start_with(pool, 1, 10, 2, |w| w.lock_timeout = std::time::Duration::from_millis(200)).await;
    stack.api.plan_with_subscriptions("partial", 100).await;
    draft(&stack, "partial", json!({"displayName": "v2"})).await;

    // one subscription is held locked: its batch can never take it
    let mut blocker = stack.pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM subscriptions WHERE id = 'partial-s55' FOR UPDATE")
        .fetch_one(&mut *blocker)
        .await
        .unwrap();
    let accepted = stack.api.post("/api/v1/plans/partial/publish", json!({"migrationType": "ALL_CUSTOMERS"})).await;
    let id = accepted["data"]["taskId"].as_str().unwrap().to_owned();
    let task = stack.api.wait_task(&id).await;
    assert_eq!(task["status"], "PARTIALLY_FAILED", "{task}");
    assert_eq!(task["counts"], json!({"total": 100, "processed": 100, "failed": 10}));
    assert_eq!(task["error"]["code"], "MaxAttemptsExceeded");
    assert_eq!(
        stack.scalar(&format!("SELECT count(*) FROM subscription_version_history WHERE task_id = '{id}'")).await,
        90
    );
    blocker.rollback().await.unwrap();

    let retried = stack.api.post(&format!("/api/v1/tasks/{id}/retry"), json!({})).await;
    assert_eq!(retried["data"]["status"], "IN_PROGRESS");
    assert_eq!(retried["data"]["counts"], json!({"total": 100, "processed": 90, "failed": 0}));
    let task = stack.api.wait_task(&id).await;
    assert_eq!(task["status"], "COMPLETED", "{task}");
    assert_eq!(task["counts"], json!({"total": 100, "processed": 100, "failed": 0}));
    assert_eq!(task["error"], serde_json::Value::Null);
    assert_eq!(
        stack
            .scalar(&format!(
                "SELECT count(DISTINCT subscription_id) FROM subscription_version_history WHERE task_id = '{id}'"
            ))
            .await,
        100
    );
    assert_eq!(
        stack.scalar(&format!("SELECT count(*) FROM subscription_version_history WHERE task_id = '{id}'")).await,
        100
    );
    // a finished task cannot be retried again
    let (status, body) =
        stack.api.call(reqwest::Method::POST, &format!("/api/v1/tasks/{id}/retry"), Some(json!({}))).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "BadUserInput");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn cancel_stops_a_migration_between_batches_and_keeps_what_moved(pool: PgPool) {
    let stack = Stack::start_with(pool, 1, 10, 5, |w| w.prefetch = 1).await;
    stack.api.plan_with_subscriptions("stop", 3000).await;
    draft(&stack, "stop", json!({"displayName": "v2"})).await;
    let accepted = stack.api.post("/api/v1/plans/stop/publish", json!({"migrationType": "ALL_CUSTOMERS"})).await;
    let id = accepted["data"]["taskId"].as_str().unwrap().to_owned();
    crate::harness::wait_for("the migration to start moving", std::time::Duration::from_secs(30), || async {
        stack.api.task(&id).await["counts"]["processed"].as_i64().unwrap_or(0) > 0
    })
    .await;

    let canceled = stack.api.post(&format!("/api/v1/tasks/{id}/cancel"), json!({})).await;
    assert_eq!(canceled["data"]["status"], "CANCELED");
    // a batch that was running when the cancel landed still commits and is counted
    crate::harness::wait_for("moves and counts to agree", std::time::Duration::from_secs(30), || async {
        let processed = stack.api.task(&id).await["counts"]["processed"].as_i64().unwrap();
        let moved =
            stack.scalar(&format!("SELECT count(*) FROM subscription_version_history WHERE task_id = '{id}'")).await;
        let running = stack
            .scalar(&format!("SELECT count(*) FROM task_batches WHERE task_id = '{id}' AND status = 'PENDING'"))
            .await;
        processed == moved && running == 0
    })
    .await;
    let task = stack.api.task(&id).await;
    let processed = task["counts"]["processed"].as_i64().unwrap();
    assert!(processed > 0 && processed < 3000, "{task}");
    assert_eq!(task["status"], "CANCELED");
    let on_v2 = stack
        .scalar("SELECT count(*) FROM subscriptions s JOIN plan_versions v ON v.id = s.plan_version_id WHERE s.plan_id = 'stop' AND v.version_number = 2")
        .await;
    assert_eq!(on_v2, processed);
    // the plan is free again: the next publish is accepted
    draft(&stack, "stop", json!({"displayName": "v3"})).await;
    let next = stack.api.post("/api/v1/plans/stop/publish", json!({"migrationType": "NEW_CUSTOMERS"})).await;
    assert!(next["data"]["taskId"].is_string());
    // canceling a finished task is refused
    let (status, body) =
        stack.api.call(reqwest::Method::POST, &format!("/api/v1/tasks/{id}/cancel"), Some(json!({}))).await;
    assert_eq!((status.as_u16(), body["code"].as_str()), (400, Some("BadUserInput")));
}
