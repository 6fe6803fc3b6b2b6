//! An add-on publish through the real pipeline: subscriptions are given an add-on by a bulk
//! import, a draft of the add-on is published with `ALL_CUSTOMERS` by workers in batches (its
//! live holders move, with history rows; a canceled one and the subscriptions without it stay
//! where they are), then with `NEW_CUSTOMERS` (nobody moves). And the same flow driven by
//! Stigg's unmodified Python SDK against the real binary.

use crate::harness::Deployment;
use crate::stack::Stack;
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::PgPool;

async fn publish_addon(stack: &Stack, addon: &str, migration_type: &str) -> Value {
    let accepted =
        stack.api.post(&format!("/api/v1/addons/{addon}/publish"), json!({ "migrationType": migration_type })).await;
    stack.api.wait_task(accepted["data"]["taskId"].as_str().unwrap()).await
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn an_addon_publish_moves_exactly_its_live_holders_in_batches(pool: PgPool) {
    let stack = Stack::start(pool, 2, 7).await;
    stack.api.plan_with_subscriptions("main", 0).await;
    let seats = json!({"id": "seats", "displayName": "Seats", "productId": "product", "status": "PUBLISHED"});
    stack.api.post("/api/v1/addons", seats).await;
    let customers: Vec<Value> = (0..40).map(|i| json!({"id": format!("c{i}")})).collect();
    stack.api.post("/api/v1/customers/import", json!({ "customers": customers })).await;
    // 30 holders (quantity i % 3 + 1) and 10 subscriptions without the add-on, by bulk import
    let subscriptions: Vec<Value> = (0..40)
        .map(|i| {
            let addons = if i < 30 { json!([{"id": "seats", "quantity": i % 3 + 1}]) } else { json!([]) };
            json!({"id": format!("s{i}"), "customerId": format!("c{i}"), "planId": "main", "addons": addons})
        })
        .collect();
    let import = stack.api.post("/api/v1/subscriptions/import", json!({ "subscriptions": subscriptions })).await;
    let imported = stack.api.wait_task(import["data"]["taskId"].as_str().unwrap()).await;
    assert_eq!(imported["status"], "COMPLETED", "{imported}");
    assert_eq!(stack.scalar("SELECT count(*) FROM subscription_addons").await, 30);
    // a holder that stopped being live is not moved
    sqlx::query("UPDATE subscriptions SET status = 'CANCELED' WHERE id = 's0'").execute(&stack.pool).await.unwrap();

    // an endpoint subscribed to moves, so that each batch announces its holders
    let admin = store::api_keys::create_key(&stack.pool, "stack", store::api_keys::Scope::Admin, None).await.unwrap();
    let admin = crate::client::ApiClient::new(stack.api.base.clone(), admin.secret);
    let hook = json!({"url": "http://unreachable.invalid/hook", "events": ["subscriptions.migrated"]});
    admin.post("/api/v1/webhooks", hook).await;
    stack.api.post("/api/v1/addons/seats/draft", json!({})).await;
    stack.api.patch("/api/v1/addons/seats", json!({"displayName": "Seats (2026)"})).await;
    // the preview counts what the publish then moves
    let preview =
        stack.api.post("/api/v1/addons/seats/publish/preview", json!({"migrationType": "ALL_CUSTOMERS"})).await;
    assert_eq!(preview["data"]["affectedSubscriptionsCount"], 29, "{preview}");
    let task = publish_addon(&stack, "seats", "ALL_CUSTOMERS").await;
    assert_eq!(task["status"], "COMPLETED", "{task}");
    assert_eq!(task["taskType"], "PUBLISH_ADDON");
    assert_eq!(task["initiatedPackageId"], "seats");
    let all_task = task["id"].as_str().unwrap().to_owned();
    assert_eq!(task["counts"]["total"], 29, "{task}");
    assert_eq!(task["counts"]["processed"], 29, "{task}");
    assert_eq!(task["progress"], 100);
    let task_id = task["id"].as_str().unwrap();
    let batches = stack.scalar(&format!("SELECT count(*) FROM task_batches WHERE task_id = '{task_id}'")).await;
    assert_eq!(batches, 5, "29 holders in batches of 7");
    let history = stack
        .scalar(&format!(
            "SELECT count(DISTINCT subscription_id) FROM subscription_addon_history h
             JOIN addon_versions f ON f.id = h.from_version_id JOIN addon_versions t ON t.id = h.to_version_id
             WHERE h.task_id = '{task_id}' AND f.version_number = 1 AND t.version_number = 2"
        ))
        .await;
    assert_eq!(history, 29);
    let announced: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT body::jsonb FROM webhook_events WHERE event_type = 'subscriptions.migrated' ORDER BY created_at",
    )
    .fetch_all(&stack.pool)
    .await
    .unwrap();
    let mut announced_ids: Vec<&str> = Vec::new();
    for event in &announced {
        let data = &event["data"];
        assert_eq!(
            (&data["addonId"], &data["planId"], &data["taskId"]),
            (&json!("seats"), &Value::Null, &json!(all_task))
        );
        for moved in data["subscriptions"].as_array().unwrap() {
            assert_eq!((&moved["fromVersion"], &moved["toVersion"]), (&json!(1), &json!(2)), "{moved}");
            announced_ids.push(moved["subscriptionId"].as_str().unwrap());
        }
    }
    announced_ids.sort_unstable();
    announced_ids.dedup();
    assert_eq!(announced_ids.len(), 29, "every moved holder announced once");

    let (_, moved) = stack.api.call(Method::GET, "/api/v1/subscriptions/s4", None).await;
    assert_eq!(moved["data"]["addons"], json!([{"id": "seats", "quantity": 2, "versionNumber": 2}]), "{moved}");
    assert_eq!(moved["data"]["planVersion"], 1, "the plan is not touched");
    let (_, canceled) = stack.api.call(Method::GET, "/api/v1/subscriptions/s0", None).await;
    assert_eq!(canceled["data"]["addons"][0]["versionNumber"], 1, "{canceled}");
    let (_, without) = stack.api.call(Method::GET, "/api/v1/subscriptions/s35", None).await;
    assert_eq!(without["data"]["addons"], json!([]));
    let (_, addon) = stack.api.call(Method::GET, "/api/v1/addons/seats", None).await;
    assert_eq!(addon["data"]["status"], "PUBLISHED");
    assert_eq!(addon["data"]["versionNumber"], 2);

    // NEW_CUSTOMERS publishes version 3 and moves nobody
    stack.api.post("/api/v1/addons/seats/draft", json!({})).await;
    let task = publish_addon(&stack, "seats", "NEW_CUSTOMERS").await;
    assert_eq!(task["status"], "COMPLETED", "{task}");
    assert_eq!(task["counts"]["total"], 0, "{task}");
    let task_id = task["id"].as_str().unwrap();
    let history =
        stack.scalar(&format!("SELECT count(*) FROM subscription_addon_history WHERE task_id = '{task_id}'")).await;
    assert_eq!(history, 0);
    let on_v2 = stack
        .scalar(
            "SELECT count(*) FROM subscription_addons sa JOIN addon_versions v ON v.id = sa.addon_version_id
             WHERE v.version_number = 2",
        )
        .await;
    assert_eq!(on_v2, 29);
    // a new holder gets version 3
    let body = json!({"id": "late", "customerId": "c39", "planId": "main", "addons": [{"id": "seats", "quantity": 1}]});
    let late = stack.api.post("/api/v1/subscriptions", body).await;
    assert_eq!(late["data"]["subscription"]["addons"][0]["versionNumber"], 3, "{late}");

    // the ALL_CUSTOMERS publish rolled back: its 29 holders go back to version 1, in batches,
    // with history rows; the late holder, which it never moved, stays on version 3
    let rollback = stack.api.post(&format!("/api/v1/tasks/{all_task}/rollback"), json!({})).await;
    let rollback = stack.api.wait_task(rollback["data"]["taskId"].as_str().unwrap()).await;
    assert_eq!(rollback["status"], "COMPLETED", "{rollback}");
    assert_eq!(rollback["initiatedPackageId"], "seats");
    assert_eq!(rollback["counts"]["processed"], 29, "{rollback}");
    let rollback_id = rollback["id"].as_str().unwrap();
    let back = stack
        .scalar(&format!(
            "SELECT count(*) FROM subscription_addon_history h JOIN addon_versions t ON t.id = h.to_version_id
             WHERE h.task_id = '{rollback_id}' AND t.version_number = 1"
        ))
        .await;
    assert_eq!(back, 29);
    let (_, moved_back) = stack.api.call(Method::GET, "/api/v1/subscriptions/s4", None).await;
    assert_eq!(moved_back["data"]["addons"][0]["versionNumber"], 1, "{moved_back}");
    let (_, late) = stack.api.call(Method::GET, "/api/v1/subscriptions/late", None).await;
    assert_eq!(late["data"]["addons"][0]["versionNumber"], 3, "{late}");
}

const HOLDERS: i64 = 1000;

/// Runs `tests/sdk/addon_flow.py` against the binary with `migration_type`; answers its last
/// line of output, a JSON object.
async fn run_sdk_addon_flow(base: &str, key: &str, migration_type: &str) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/addon_flow.py");
    let output = tokio::process::Command::new("python3")
        .arg(script)
        .env("CUTOVER_URL", base)
        .env("CUTOVER_KEY", key)
        .env("MIGRATION_TYPE", migration_type)
        .env("HOLDERS", HOLDERS.to_string())
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
    serde_json::from_str(stdout.lines().last().expect("the flow prints its result")).expect("the result is JSON")
}

/// Stigg's Python SDK: an add-on created and published, held by 1,000 subscriptions; a draft
/// published with `ALL_CUSTOMERS` moves exactly those (history rows, `versionNumber` 2), then
/// a draft published with `NEW_CUSTOMERS` moves none.
#[tokio::test(flavor = "multi_thread")]
async fn sdk_addon_publish_moves_its_holders_with_all_customers_and_none_with_new_customers() {
    let mut deployment = Deployment::new().await;
    let base = deployment.start_api().await;
    deployment.start_worker("worker-1");

    let result = run_sdk_addon_flow(&base, &deployment.key, "ALL_CUSTOMERS").await;
    assert_eq!(result["status"], "COMPLETED", "{result}");
    assert_eq!(result["versionNumbers"], json!({"2": HOLDERS}), "{result}");
    let task_id = result["taskId"].as_str().unwrap().to_owned();
    let history = deployment
        .scalar(&format!(
            "SELECT count(DISTINCT h.subscription_id) FROM subscription_addon_history h
             JOIN addon_versions t ON t.id = h.to_version_id
             WHERE h.task_id = '{task_id}' AND h.addon_id = 'sdk-addon' AND t.version_number = 2"
        ))
        .await;
    assert_eq!(history, HOLDERS);
    // the plan's subscriptions that do not hold the add-on are untouched
    let others = deployment.scalar("SELECT count(*) FROM subscriptions WHERE id LIKE 'sdk-plain-%'").await;
    assert_eq!(others, 5);
    let counts: (i64, i64, i64) =
        sqlx::query_as(&format!("SELECT total, processed, failed FROM tasks WHERE id = '{task_id}'"))
            .fetch_one(&deployment.pool)
            .await
            .unwrap();
    assert_eq!(counts, (HOLDERS, HOLDERS, 0));

    let result = run_sdk_addon_flow(&base, &deployment.key, "NEW_CUSTOMERS").await;
    assert_eq!(result["status"], "COMPLETED", "{result}");
    assert_eq!(result["versionNumbers"], json!({"2": HOLDERS}), "{result}");
    let task_id = result["taskId"].as_str().unwrap().to_owned();
    let history = deployment
        .scalar(&format!("SELECT count(*) FROM subscription_addon_history WHERE task_id = '{task_id}'"))
        .await;
    assert_eq!(history, 0);
}
