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

/// Runs `tests/sdk/<script>` against the deployment; answers its last line, as JSON.
async fn run_sdk_script(script: &str, base: &str, key: &str) -> Value {
    let path = format!("{}/tests/sdk/{script}", env!("CARGO_MANIFEST_DIR"));
    let output = tokio::process::Command::new("python3")
        .arg(path)
        .env("CUTOVER_URL", base)
        .env("CUTOVER_KEY", key)
        .output()
        .await
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    serde_json::from_str(stdout.lines().last().expect("the flow prints its result")).expect("the result is JSON")
}

/// Polls `sql` (one bigint) until it answers `want`, for up to 30 s.
async fn eventually(deployment: &Deployment, sql: &str, want: i64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let got = deployment.scalar(sql).await;
        if got == want {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "`{sql}` stayed {got}, wanted {want}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_cancel_keeps_a_subscription_out_of_a_publish_and_a_withdrawn_move_never_happens() {
    let mut deployment = Deployment::new().await;
    let base = deployment.start_api().await;
    deployment.start_worker("worker-1");

    let result = run_sdk_script("cancel_flow.py", &base, &deployment.key).await;
    let all_customers = result["allCustomersTaskId"].as_str().unwrap().to_owned();

    // the IMMEDIATE cancel kept sdk-sub-0 out of the ALL_CUSTOMERS publish; everyone else moved
    let moved = |id: &str| {
        format!("SELECT count(*) FROM subscription_version_history WHERE task_id = '{all_customers}' AND subscription_id = '{id}'")
    };
    assert_eq!(deployment.scalar(&moved("sdk-sub-0")).await, 0);
    assert_eq!(deployment.scalar(&moved("sdk-sub-5")).await, 1);
    let history = deployment
        .scalar(&format!("SELECT count(*) FROM subscription_version_history WHERE task_id = '{all_customers}'"))
        .await;
    assert_eq!(history, 19);
    let sub0: (String, i32) = sqlx::query_as(
        "SELECT s.status, v.version_number FROM subscriptions s JOIN plan_versions v ON v.id = s.plan_version_id
         WHERE s.id = 'sdk-sub-0'",
    )
    .fetch_one(&deployment.pool)
    .await
    .unwrap();
    assert_eq!(sub0, ("CANCELED".to_owned(), 1));

    // make both END_OF_BILLING_PERIOD moves due: the scheduler applies sdk-sub-2's, never the
    // withdrawn one of sdk-sub-1
    sqlx::query(
        "UPDATE subscription_version_changes SET apply_at = now() - interval '1 second'
         WHERE subscription_id IN ('sdk-sub-1', 'sdk-sub-2')",
    )
    .execute(&deployment.pool)
    .await
    .unwrap();
    let on_v3 = |id: &str| {
        format!(
            "SELECT count(*) FROM subscriptions s JOIN plan_versions v ON v.id = s.plan_version_id
             WHERE s.id = '{id}' AND v.version_number = 3"
        )
    };
    eventually(&deployment, &on_v3("sdk-sub-2"), 1).await;
    // a few more ticks for the withdrawn one to (not) happen
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(deployment.scalar(&on_v3("sdk-sub-1")).await, 0);
    let withdrawn: (String, String, i64) = sqlx::query_as(
        "SELECT c.status, t.status, (SELECT count(*) FROM subscription_version_history h WHERE h.task_id = t.id)
         FROM subscription_version_changes c JOIN tasks t ON t.id = c.task_id WHERE c.subscription_id = 'sdk-sub-1'",
    )
    .fetch_one(&deployment.pool)
    .await
    .unwrap();
    assert_eq!(withdrawn, ("CANCELED".to_owned(), "CANCELED".to_owned(), 0), "the withdrawn move's task");
    let applied: (String, String) = sqlx::query_as(
        "SELECT c.status, t.status FROM subscription_version_changes c JOIN tasks t ON t.id = c.task_id
         WHERE c.subscription_id = 'sdk-sub-2'",
    )
    .fetch_one(&deployment.pool)
    .await
    .unwrap();
    assert_eq!(applied, ("DONE".to_owned(), "COMPLETED".to_owned()));

    // the scheduled cancellation came due and the scheduler applied it; the withdrawn one not
    eventually(&deployment, "SELECT count(*) FROM subscriptions WHERE id = 'sdk-sub-3' AND status = 'CANCELED'", 1)
        .await;
    let sub4 = deployment
        .scalar("SELECT count(*) FROM subscriptions WHERE id = 'sdk-sub-4' AND status <> 'CANCELED' AND cancellation_date IS NULL")
        .await;
    assert_eq!(sub4, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_list_filters_narrow_the_answer_or_are_refused() {
    let mut deployment = Deployment::new().await;
    let base = deployment.start_api().await;

    let result = run_sdk_script("list_filters.py", &base, &deployment.key).await;
    assert!(result["checks"].as_i64().unwrap() >= 30, "{result}");
}
