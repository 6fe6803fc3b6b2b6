//! A subscription canceled through the api while a publish moves its plan: cancel composes with
//! the task that holds the plan, and the batch that meets the canceled subscription records it
//! as failed instead of moving it.

use crate::harness::Deployment;
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn a_subscription_canceled_while_a_publish_runs_is_not_moved_and_counts_as_failed() {
    // one subscription a batch, one batch at a time: the publish takes a while to reach the last
    let mut d = Deployment::with_env(&[("CUTOVER_BATCH_SIZE", "1"), ("CUTOVER_PREFETCH", "1")]).await;
    let api = d.api().await;
    d.start_worker("w");
    api.plan_with_subscriptions("racing", 300).await;
    api.draft("racing", json!({"displayName": "v2"})).await;
    let last: String =
        sqlx::query_scalar("SELECT id FROM subscriptions WHERE plan_id = 'racing' ORDER BY row_id DESC LIMIT 1")
            .fetch_one(&d.pool)
            .await
            .unwrap();

    let task = api.publish("racing", "ALL_CUSTOMERS").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let t = api.task(&task).await;
        assert_eq!(t["counts"]["failed"], 0, "{t}");
        if t["status"] == "IN_PROGRESS" {
            assert!(t["counts"]["processed"].as_i64().unwrap() < 250, "the publish ran too fast to cancel in: {t}");
            break;
        }
        assert_eq!(t["status"], "PENDING", "{t}");
        assert!(Instant::now() < deadline, "the publish was not planned: {t}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, body) = api
        .call(
            Method::POST,
            &format!("/api/v1/subscriptions/{last}/cancel"),
            Some(json!({"cancellationTime": "IMMEDIATE"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["status"], "CANCELED");

    let done = api.wait_task(&task).await;
    assert_eq!(done["status"], "PARTIALLY_FAILED", "{done}");
    assert_eq!(done["counts"], json!({"total": 300, "processed": 300, "failed": 1}), "{done}");
    let failure: (String, String) =
        sqlx::query_as(&format!("SELECT subscription_id, code FROM task_item_failures WHERE task_id = '{task}'"))
            .fetch_one(&d.pool)
            .await
            .unwrap();
    assert_eq!(failure, (last.clone(), "SubscriptionAlreadyCanceledOrExpired".to_owned()));
    let moved = d
        .scalar(&format!(
            "SELECT count(*) FROM subscription_version_history WHERE task_id = '{task}' AND subscription_id = '{last}'"
        ))
        .await;
    assert_eq!(moved, 0);
    let on_v1 = d
        .scalar(&format!(
            "SELECT count(*) FROM subscriptions s JOIN plan_versions v ON v.id = s.plan_version_id
             WHERE s.id = '{last}' AND v.version_number = 1 AND s.status = 'CANCELED'"
        ))
        .await;
    assert_eq!(on_v1, 1);
}
