//! The compose topology without Docker: one api and three worker processes, all the same
//! `cutover` binary, on one database and one broker. A migration is shared across the three
//! workers (each moves at least one batch), and the outcome is exact.

use crate::harness::{log_dir, wait_for, Deployment};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

const SUBSCRIPTIONS: i64 = 6_000;
const BATCH_SIZE: i64 = 50;
const WORKERS: [&str; 3] = ["w1", "w2", "w3"];

#[tokio::test(flavor = "multi_thread")]
async fn three_workers_share_one_migration_and_move_each_subscription_once() {
    // small batches and one delivery at a time per worker, so the broker spreads the batches
    let batch_size = BATCH_SIZE.to_string();
    let mut d = Deployment::with_env(&[("CUTOVER_BATCH_SIZE", &batch_size), ("CUTOVER_PREFETCH", "1")]).await;
    let api = d.api().await;
    for name in WORKERS {
        d.start_worker(name);
    }
    let ids: Vec<String> = WORKERS.iter().map(|name| format!("{}-{name}", d.id)).collect();
    let id_list = ids.iter().map(|id| format!("'{id}'")).collect::<Vec<_>>().join(", ");

    // every worker has registered itself and its consumer is connected before any work exists
    wait_for("all three workers to register", Duration::from_secs(60), || {
        let sql = format!("SELECT count(*) FROM workers WHERE id IN ({id_list}) AND stopped_at IS NULL");
        let d = &d;
        async move { d.scalar(&sql).await == 3 }
    })
    .await;
    let logs: Vec<_> = WORKERS.iter().map(|name| log_dir().join(format!("{}-{name}.log", d.id))).collect();
    wait_for("all three consumers to connect", Duration::from_secs(60), || {
        let logs = logs.clone();
        async move {
            logs.iter()
                .all(|log| std::fs::read_to_string(log).map(|s| s.contains("consumer connected")).unwrap_or(false))
        }
    })
    .await;

    api.plan_with_subscriptions("scale", SUBSCRIPTIONS as usize).await;
    api.draft("scale", json!({"displayName": "Scale v2"})).await;
    let task_id = api.publish("scale", "ALL_CUSTOMERS").await;
    let task = api.wait_task_within(&task_id, Duration::from_secs(180)).await;
    assert_eq!(task["status"], "COMPLETED", "{task}");
    assert_eq!(task["counts"], json!({"total": SUBSCRIPTIONS, "processed": SUBSCRIPTIONS, "failed": 0}));

    // the work was shared: each of the three workers moved at least one batch
    let per_worker: BTreeMap<String, i64> = sqlx::query_as::<_, (String, i64)>(
        "SELECT worker, count(*) FROM task_batches WHERE task_id = $1::uuid AND worker IS NOT NULL GROUP BY worker",
    )
    .bind(&task_id)
    .fetch_all(&d.pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    eprintln!("batches per worker: {per_worker:?}");
    let batches = SUBSCRIPTIONS / BATCH_SIZE;
    assert_eq!(per_worker.values().sum::<i64>(), batches, "every batch names the worker that ran it");
    for id in &ids {
        assert!(per_worker.get(id).copied().unwrap_or(0) >= 1, "worker {id} ran no batch: {per_worker:?}");
    }
    assert_eq!(per_worker.len(), 3, "batches run by a worker other than the three: {per_worker:?}");

    // and nothing was moved twice or left behind
    let history =
        d.scalar(&format!("SELECT count(*) FROM subscription_version_history WHERE task_id = '{task_id}'")).await;
    let distinct = d
        .scalar(&format!(
            "SELECT count(DISTINCT subscription_id) FROM subscription_version_history WHERE task_id = '{task_id}'"
        ))
        .await;
    assert_eq!((history, distinct), (SUBSCRIPTIONS, SUBSCRIPTIONS), "history rows and distinct subscriptions");
    let behind = d
        .scalar(
            "SELECT count(*) FROM subscriptions s JOIN plan_versions v ON v.id = s.plan_version_id
             WHERE s.plan_id = 'scale' AND v.version_number <> 2",
        )
        .await;
    assert_eq!(behind, 0, "subscriptions left on the old version");

    // a rolling deploy's SIGTERM: each worker drains and exits 0, and says so in the registry
    for name in WORKERS {
        let (code, took) = d.terminate(name, Duration::from_secs(30)).await;
        assert_eq!(code, Some(0), "{name} exited with {code:?} after {took:?}");
    }
    assert_eq!(
        d.scalar(&format!("SELECT count(*) FROM workers WHERE id IN ({id_list}) AND stopped_at IS NOT NULL")).await,
        3
    );
}
