//! A database whose disk fills mid-migration: a Postgres cluster of the test's own whose tables
//! live in a tablespace on a 64 MB tmpfs, filled to the last byte for 20 s while a migration
//! runs. Writes fail with SQLSTATE 53100 (disk full) meanwhile; the batches wait it out through
//! the delay tiers, and the task ends COMPLETED with every subscription moved once.

use crate::harness::Deployment;
use crate::servers::{fill, PrivatePostgres};
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn a_disk_full_for_20_seconds_mid_migration_is_waited_out_and_the_migration_completes_once() {
    let mut pg = PrivatePostgres::start().await;
    let mount = pg.small_tablespace("small", 64).await;
    let mut d = Deployment::on_server(
        pg.options("postgres"),
        &[("CUTOVER_BATCH_SIZE", "100"), ("CUTOVER_PREFETCH", "1"), ("CUTOVER_DB_MAX_CONNECTIONS", "10")],
    )
    .await;
    let in_small = d
        .scalar("SELECT count(*) FROM pg_tables t JOIN pg_tablespace s ON s.spcname = t.tablespace WHERE t.tablename = 'subscriptions' AND s.spcname = 'small'")
        .await;
    assert_eq!(in_small, 1, "the subscriptions table is not on the small tablespace");
    let api = d.api().await;
    d.start_worker("a");
    d.start_worker("b");
    api.plan_with_subscriptions("full", 10_000).await;
    api.draft("full", json!({"displayName": "v2"})).await;
    let id = api.publish("full", "ALL_CUSTOMERS").await;

    // mid-migration: once some batches are done, nothing more fits for 20 s
    let started = Instant::now();
    loop {
        let task = api.task(&id).await;
        if task["counts"]["processed"].as_i64().unwrap_or(0) > 0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the migration did not start: {task}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let filler = fill(&mount);
    let filled = Instant::now();
    let processed_at_fill = api.task(&id).await["counts"]["processed"].as_i64().unwrap();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let processed_when_freed = api.task(&id).await["counts"]["processed"].as_i64().unwrap();
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();

    let task = api.wait_task_within(&id, Duration::from_secs(120)).await;
    let recovered = freed.elapsed();
    assert_eq!(task["status"], "COMPLETED", "{task}");
    assert_eq!(task["counts"], json!({"total": 10000, "processed": 10000, "failed": 0}));
    assert_eq!(task["error"], json!(null), "{task}");
    let history = d.scalar(&format!("SELECT count(*) FROM subscription_version_history WHERE task_id = '{id}'")).await;
    let distinct = d
        .scalar(&format!(
            "SELECT count(DISTINCT subscription_id) FROM subscription_version_history WHERE task_id = '{id}'"
        ))
        .await;
    assert_eq!((history, distinct), (10_000, 10_000));
    let behind = d
        .scalar(
            "SELECT count(*) FROM subscriptions s JOIN plan_versions v ON v.id = s.plan_version_id
             WHERE s.plan_id = 'full' AND v.version_number = 1",
        )
        .await;
    assert_eq!(behind, 0);
    assert_eq!(
        d.scalar(&format!("SELECT count(*) FROM task_batches WHERE task_id = '{id}' AND status <> 'DONE'")).await,
        0
    );
    // nothing went to the dead-letter queue as if a worker had died holding it
    assert_eq!(d.scalar("SELECT count(*) FROM dead_letters").await, 0);
    // the workers met the full disk (and said so) rather than missing it
    let logs: String = ["a", "b"]
        .iter()
        .map(|name| {
            std::fs::read_to_string(crate::harness::log_dir().join(format!("{}-{name}.log", d.id))).unwrap_or_default()
        })
        .collect();
    assert!(logs.contains("No space left on device"), "no worker met the full disk");
    eprintln!(
        "disk full: {processed_at_fill} of 10000 moved when the tablespace filled, {processed_when_freed} when it was \
         freed {:?} later; COMPLETED {recovered:?} after the space came back",
        freed - filled
    );
    drop(d);
    drop(pg);
}
