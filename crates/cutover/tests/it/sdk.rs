//! Stigg's official Python SDK, unmodified, drives the Stigg dialect of the real binary: a
//! plan, a draft, 2,000 subscriptions by bulk import, a publish, a poll to COMPLETED. Then the
//! test counts rows in Postgres.

use crate::harness::Deployment;
use serde_json::Value;

const SUBSCRIPTIONS: i64 = 2000;

async fn run_sdk_flow(base: &str, key: &str, migration_type: &str) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/publish_flow.py");
    let output = tokio::process::Command::new("python3")
        .arg(script)
        .env("CUTOVER_URL", base)
        .env("CUTOVER_KEY", key)
        .env("MIGRATION_TYPE", migration_type)
        .env("SUBSCRIPTIONS", SUBSCRIPTIONS.to_string())
        .output()
        .await
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "the SDK flow failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let last = stdout.lines().last().expect("the flow prints its result");
    serde_json::from_str(last).expect("the result is JSON")
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_publish_all_customers_moves_every_subscription_once() {
    let mut deployment = Deployment::new().await;
    let base = deployment.start_api().await;
    deployment.start_worker("worker-1");

    let result = run_sdk_flow(&base, &deployment.key, "ALL_CUSTOMERS").await;
    let task_id = result["taskId"].as_str().unwrap().to_owned();
    assert_eq!(result["status"], "COMPLETED", "{result}");
    eprintln!(
        "publish of {SUBSCRIPTIONS} subscriptions, request to COMPLETED: {} ms (progress seen: {})",
        result["elapsedMs"], result["progressSeen"]
    );

    let on_v2 = deployment
        .scalar(
            "SELECT count(*) FROM subscriptions s JOIN plan_versions v ON v.id = s.plan_version_id
             WHERE s.plan_id = 'sdk-plan' AND v.version_number = 2",
        )
        .await;
    assert_eq!(on_v2, SUBSCRIPTIONS);
    let left_behind = deployment
        .scalar(
            "SELECT count(*) FROM subscriptions s JOIN plan_versions v ON v.id = s.plan_version_id
             WHERE s.plan_id = 'sdk-plan' AND v.version_number <> 2",
        )
        .await;
    assert_eq!(left_behind, 0);
    let history = deployment
        .scalar(&format!("SELECT count(*) FROM subscription_version_history WHERE task_id = '{task_id}'"))
        .await;
    let distinct = deployment
        .scalar(&format!(
            "SELECT count(DISTINCT subscription_id) FROM subscription_version_history WHERE task_id = '{task_id}'"
        ))
        .await;
    assert_eq!((history, distinct), (SUBSCRIPTIONS, SUBSCRIPTIONS));
    let counts: (i64, i64, i64) =
        sqlx::query_as(&format!("SELECT total, processed, failed FROM tasks WHERE id = '{task_id}'"))
            .fetch_one(&deployment.pool)
            .await
            .unwrap();
    assert_eq!(counts, (SUBSCRIPTIONS, SUBSCRIPTIONS, 0));
    let unsent = deployment.scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL").await;
    assert_eq!(unsent, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_publish_new_customers_grandfathers_existing_subscriptions() {
    let mut deployment = Deployment::new().await;
    let base = deployment.start_api().await;
    deployment.start_worker("worker-1");

    let result = run_sdk_flow(&base, &deployment.key, "NEW_CUSTOMERS").await;
    let task_id = result["taskId"].as_str().unwrap().to_owned();
    assert_eq!(result["status"], "COMPLETED", "{result}");

    let on_v1 = deployment
        .scalar(
            "SELECT count(*) FROM subscriptions s JOIN plan_versions v ON v.id = s.plan_version_id
             WHERE s.plan_id = 'sdk-plan' AND v.version_number = 1",
        )
        .await;
    assert_eq!(on_v1, SUBSCRIPTIONS, "existing subscriptions stay on version 1");
    let history = deployment
        .scalar(&format!("SELECT count(*) FROM subscription_version_history WHERE task_id = '{task_id}'"))
        .await;
    assert_eq!(history, 0);
    // the subscription created after the publish is on the new version, as the SDK saw it
    assert_eq!(result["newSubscriptionPlanVersion"], 2, "{result}");
    let new_on_v2 = deployment
        .scalar(
            "SELECT count(*) FROM subscriptions s JOIN plan_versions v ON v.id = s.plan_version_id
             WHERE s.id = 'sdk-sub-new' AND v.version_number = 2",
        )
        .await;
    assert_eq!(new_on_v2, 1);
}
