//! A real multi-node broker: three RabbitMQ nodes of the test's own, clustered on local ports,
//! with Cutover's quorum work queues across them. The node leading the work queues is stopped
//! mid-migration; the processes connected to it reconnect to the next URL of
//! `CUTOVER_AMQP_URL`, the queues elect another leader, and the migration completes with every
//! subscription moved exactly once. And a node of its own under a memory alarm: the broker
//! link is reported `blocked`, and work accepted meanwhile completes once the alarm clears.

use crate::harness::Deployment;
use crate::servers::RabbitCluster;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn stopping_the_node_that_leads_the_work_queues_mid_migration_loses_and_repeats_nothing() {
    let booting = Instant::now();
    let mut cluster = RabbitCluster::start(3).await;
    let booted = booting.elapsed();
    let mut d = Deployment::with_env(&[("CUTOVER_BATCH_SIZE", "10"), ("CUTOVER_PREFETCH", "1")]).await;
    // every process lists the nodes in the same order, as the pods of a deployment do: all of
    // them connect to the first, which declares the queues and so leads them
    let api = d.api_with(&[("CUTOVER_AMQP_URL", cluster.urls_from(0))]).await;
    d.start_worker_with("a", &[("CUTOVER_AMQP_URL", cluster.urls_from(0))]);
    d.start_worker_with("b", &[("CUTOVER_AMQP_URL", cluster.urls_from(0))]);
    api.plan_with_subscriptions("clustered", 5000).await;
    let batch_queue = format!("{}.work.batch", d.prefix);
    let members = cluster.ctl(1, &["list_queues", "name", "type", "members", "--formatter", "json"]);
    let queues: serde_json::Value = serde_json::from_str(&members).unwrap();
    let batch = queues.as_array().unwrap().iter().find(|q| q["name"] == batch_queue.as_str()).unwrap();
    assert_eq!(batch["type"], "quorum", "{batch}");
    assert_eq!(batch["members"].as_array().map(Vec::len), Some(3), "the batch queue is not on every node: {batch}");
    let leader = cluster.leader_of(&batch_queue, 1);
    let survivor = (leader + 1) % 3;

    api.draft("clustered", json!({"displayName": "v2"})).await;
    let id = api.publish("clustered", "ALL_CUSTOMERS").await;
    let started = Instant::now();
    loop {
        let task = api.task(&id).await;
        if task["counts"]["processed"].as_i64().unwrap_or(0) >= 500 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the migration did not get going: {task}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let processed_at_stop = api.task(&id).await["counts"]["processed"].as_i64().unwrap();
    let stopping = Instant::now();
    cluster.stop(leader);
    let stopped = Instant::now();
    // the node is gone with most of the migration still to do
    let after_stop = api.task(&id).await;
    let processed_after_stop = after_stop["counts"]["processed"].as_i64().unwrap();
    assert!(processed_after_stop < 5000 && after_stop["status"] == "IN_PROGRESS", "{after_stop}");
    let task = api.wait_task_within(&id, Duration::from_secs(120)).await;
    let completed = stopped.elapsed();
    assert_eq!(task["status"], "COMPLETED", "{task}");
    assert_eq!(task["counts"], json!({"total": 5000, "processed": 5000, "failed": 0}));
    let new_leader = cluster.leader_of(&batch_queue, survivor);
    assert_ne!(new_leader, leader);

    let history = d.scalar(&format!("SELECT count(*) FROM subscription_version_history WHERE task_id = '{id}'")).await;
    let distinct = d
        .scalar(&format!(
            "SELECT count(DISTINCT subscription_id) FROM subscription_version_history WHERE task_id = '{id}'"
        ))
        .await;
    assert_eq!((history, distinct), (5000, 5000), "history rows and distinct subscriptions");
    let behind = d
        .scalar(
            "SELECT count(*) FROM subscriptions s JOIN plan_versions v ON v.id = s.plan_version_id
             WHERE s.plan_id = 'clustered' AND v.version_number = 1",
        )
        .await;
    assert_eq!(behind, 0, "subscriptions left on the old version");
    assert_eq!(
        d.scalar(&format!("SELECT count(*) FROM task_batches WHERE task_id = '{id}' AND status <> 'DONE'")).await,
        0
    );
    assert_eq!(d.scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL").await, 0);
    assert_eq!(d.scalar("SELECT count(*) FROM dead_letters").await, 0);
    eprintln!(
        "cluster: 3 nodes up in {booted:?}; stopped the leader (node {leader}) at {processed_at_stop} of 5000 moved, \
         which took {:?} ({processed_after_stop} moved once it was down); COMPLETED {completed:?} after it was down; the batch queue's new leader is node {new_leader}",
        stopped - stopping
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_memory_alarm_is_reported_as_blocked_and_work_accepted_during_it_completes_after() {
    let broker = RabbitCluster::start(1).await;
    let mut d = Deployment::with_env(&[("CUTOVER_AMQP_URL", &broker.urls_from(0))]).await;
    let base = d.start_api_with(&[("CUTOVER_PUBLISH_TIMEOUT_MS", "2000".to_owned())]).await;
    let api = crate::client::ApiClient::new(base.clone(), d.key.clone());
    let readyz = || async {
        let answer = reqwest::get(format!("{base}/readyz")).await.unwrap();
        assert_eq!(answer.status(), 200, "the api stays ready while its database answers");
        answer.json::<serde_json::Value>().await.unwrap()
    };
    d.start_worker("w");
    api.plan_with_subscriptions("alarmed", 100).await;
    api.draft("alarmed", json!({"displayName": "v2"})).await;
    assert_eq!(readyz().await["brokerState"], "connected");

    // a memory alarm: the broker blocks every publishing connection
    broker.ctl(0, &["set_vm_memory_high_watermark", "absolute", "1"]);
    let raised = Instant::now();
    let id = api.publish("alarmed", "ALL_CUSTOMERS").await;
    crate::harness::wait_for("/readyz to say the broker is blocked", Duration::from_secs(15), || async {
        readyz().await == json!({"database": true, "broker": false, "brokerState": "blocked"})
    })
    .await;
    let blocked = raised.elapsed();
    assert_eq!(api.task(&id).await["status"], "PENDING", "nothing can be published during the alarm");

    broker.ctl(0, &["set_vm_memory_high_watermark", "0.4"]);
    let cleared = Instant::now();
    let task = api.wait_task_within(&id, Duration::from_secs(30)).await;
    let completed = cleared.elapsed();
    assert_eq!(task["status"], "COMPLETED", "{task}");
    assert_eq!(task["counts"], json!({"total": 100, "processed": 100, "failed": 0}));
    let history = d.scalar(&format!("SELECT count(*) FROM subscription_version_history WHERE task_id = '{id}'")).await;
    let distinct = d
        .scalar(&format!(
            "SELECT count(DISTINCT subscription_id) FROM subscription_version_history WHERE task_id = '{id}'"
        ))
        .await;
    assert_eq!((history, distinct), (100, 100));
    crate::harness::wait_for("/readyz to say connected again", Duration::from_secs(15), || async {
        readyz().await["brokerState"] == "connected"
    })
    .await;
    eprintln!(
        "memory alarm: /readyz blocked {blocked:?} after it was raised; the publish accepted during it COMPLETED \
         {completed:?} after it cleared"
    );
}
