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
    stack.api.post("/api/v1/plans", json!({"id": "addon-x", "displayName": "Add-on", "productId": "product"})).await;
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

    // the two foreign messages end up dead-lettered; by then the replays were handled too
    let channel = publisher.channel();
    let dead = stack.topology.dead_queue();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let queue = channel
            .queue_declare(
                &dead,
                queue::lapin::options::QueueDeclareOptions { passive: true, ..Default::default() },
                Default::default(),
            )
            .await
            .unwrap();
        let work = channel
            .queue_declare(
                &stack.topology.work_queue("batch"),
                queue::lapin::options::QueueDeclareOptions { passive: true, ..Default::default() },
                Default::default(),
            )
            .await
            .unwrap();
        if queue.message_count() == 2 && work.message_count() == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "dead-lettered: {}", queue.message_count());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let task = stack.api.wait_task(&id).await;
    assert_eq!(task["counts"], json!({"total": 200, "processed": 200, "failed": 0}));
    assert_eq!(
        stack.scalar(&format!("SELECT count(*) FROM subscription_version_history WHERE task_id = '{id}'")).await,
        200
    );
    assert_eq!(stack.scalar("SELECT count(*) FROM subscription_version_history").await, 200);
}
