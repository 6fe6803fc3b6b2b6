//! The fault suite: the real binaries, with workers killed (SIGKILL) or stopped (SIGTERM),
//! the broker or the database cut off through a TCP proxy, garbage in the queues, and rows
//! held locked. Every test ends by counting rows in Postgres: nothing lost, nothing twice.

use crate::harness::{wait_for, Deployment};
use crate::proxy::Proxy;
use futures::StreamExt;
use queue::publisher::Outgoing;
use rand::Rng;
use serde_json::json;
use std::time::{Duration, Instant};

async fn assert_moved_exactly_once(d: &Deployment, task_id: &str, plan: &str, expected: i64) {
    let history =
        d.scalar(&format!("SELECT count(*) FROM subscription_version_history WHERE task_id = '{task_id}'")).await;
    let distinct = d
        .scalar(&format!(
            "SELECT count(DISTINCT subscription_id) FROM subscription_version_history WHERE task_id = '{task_id}'"
        ))
        .await;
    assert_eq!((history, distinct), (expected, expected), "history rows and distinct subscriptions");
    let behind = d
        .scalar(&format!(
            "SELECT count(*) FROM subscriptions s JOIN plan_versions v ON v.id = s.plan_version_id
             WHERE s.plan_id = '{plan}' AND v.version_number = 1"
        ))
        .await;
    assert_eq!(behind, 0, "subscriptions left on the old version");
    let pending =
        d.scalar(&format!("SELECT count(*) FROM task_batches WHERE task_id = '{task_id}' AND status <> 'DONE'")).await;
    assert_eq!(pending, 0, "batches not done");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_of_workers_during_a_20000_subscription_migration_loses_and_repeats_nothing() {
    let mut d = Deployment::with_env(&[
        ("CUTOVER_BATCH_SIZE", "100"),
        ("CUTOVER_PREFETCH", "1"),
        ("CUTOVER_RESCUE_AFTER_SECS", "10"),
    ])
    .await;
    let api = d.api().await;
    d.start_worker("a");
    d.start_worker("b");
    api.plan_with_subscriptions("big", 20_000).await;
    api.draft("big", json!({"displayName": "v2"})).await;
    let id = api.publish("big", "ALL_CUSTOMERS").await;

    let mut kills_in_flight = 0;
    for i in 0..5 {
        let pause = rand::thread_rng().gen_range(30..250);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        if api.task(&id).await["status"] == "IN_PROGRESS" {
            kills_in_flight += 1;
        }
        let victim = if i % 2 == 0 { "a" } else { "b" };
        d.kill(victim).await;
        d.start_worker(victim);
    }
    let last_restart = Instant::now();
    let task = api.wait_task_within(&id, Duration::from_secs(240)).await;
    eprintln!(
        "{kills_in_flight} of 5 kills landed while the migration ran; COMPLETED {:?} after the last restart; final: {task}",
        last_restart.elapsed()
    );
    assert_eq!(task["status"], "COMPLETED", "{task}");
    assert_eq!(task["counts"], json!({"total": 20000, "processed": 20000, "failed": 0}));
    assert_moved_exactly_once(&d, &id, "big", 20_000).await;
    assert_eq!(d.scalar("SELECT count(*) FROM tasks WHERE status IN ('PENDING', 'IN_PROGRESS')").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn publishes_accepted_while_the_broker_is_cut_off_all_complete_once() {
    let proxy = Proxy::start("127.0.0.1:5672").await;
    let amqp = format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port);
    let mut d = Deployment::with_env(&[("CUTOVER_AMQP_URL", &amqp)]).await;
    let api = d.api().await;
    d.start_worker("w");
    api.plan_with_subscriptions("seed", 0).await;
    futures::stream::iter(0..500)
        .map(|i| {
            let api = api.clone();
            async move {
                api.post("/api/v1/plans", json!({"id": format!("p{i}"), "displayName": "P", "productId": "product"}))
                    .await
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;

    proxy.cut();
    let cut_at = Instant::now();
    let answers: Vec<(reqwest::StatusCode, serde_json::Value)> = futures::stream::iter(0..500)
        .map(|i| {
            let api = api.clone();
            async move {
                api.call(
                    reqwest::Method::POST,
                    &format!("/api/v1/plans/p{i}/publish"),
                    Some(json!({"migrationType": "ALL_CUSTOMERS"})),
                )
                .await
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert!(uuid::Uuid::parse_str(body["data"]["taskId"].as_str().unwrap()).is_ok());
    }
    eprintln!("500 publishes answered in {:?} with the broker cut off", cut_at.elapsed());
    // the outage lasts 10 s from the cut, whatever the requests took
    tokio::time::sleep_until((cut_at + Duration::from_secs(10)).into()).await;
    assert_eq!(
        d.scalar("SELECT count(*) FROM tasks WHERE task_type = 'PUBLISH_PLAN' AND status = 'COMPLETED'").await,
        0
    );
    proxy.restore();
    let restored = Instant::now();

    wait_for("all 500 publishes to complete", Duration::from_secs(180), || async {
        d.scalar("SELECT count(*) FROM tasks WHERE task_type = 'PUBLISH_PLAN' AND status = 'COMPLETED' AND plan_id <> 'seed'")
            .await
            == 500
    })
    .await;
    eprintln!("broker cut for 10 s: all 500 publishes COMPLETED {:?} after it came back", restored.elapsed());
    assert_eq!(d.scalar("SELECT count(*) FROM tasks WHERE plan_id LIKE 'p%'").await, 500);
    // each plan published once, by its own task, and each task published once
    assert_eq!(
        d.scalar(
            "SELECT count(*) FROM plan_versions v JOIN tasks t ON t.id = v.published_by_task
             WHERE v.plan_id LIKE 'p%' AND v.status = 'PUBLISHED' AND t.plan_id = v.plan_id"
        )
        .await,
        500
    );
    assert_eq!(d.scalar("SELECT count(*) FROM task_events WHERE kind = 'published'").await, 500);
    assert_eq!(d.scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_cut_mid_migration_still_ends_with_exact_counts() {
    let proxy = Proxy::start("127.0.0.1:5432").await;
    let mut d = Deployment::with_env(&[("CUTOVER_BATCH_SIZE", "100"), ("CUTOVER_PREFETCH", "1")]).await;
    let via_proxy = d.database_url.replace(":5432/", &format!(":{}/", proxy.port));
    let api = d.api().await;
    d.start_worker_with("w", &[("CUTOVER_DATABASE_URL", via_proxy)]);
    api.plan_with_subscriptions("pg", 5000).await;
    api.draft("pg", json!({"displayName": "v2"})).await;
    let id = api.publish("pg", "ALL_CUSTOMERS").await;

    wait_for("the migration to start moving", Duration::from_secs(60), || async {
        api.task(&id).await["counts"]["processed"].as_i64().unwrap_or(0) > 0
    })
    .await;
    proxy.cut();
    let processed_at_cut = api.task(&id).await["counts"]["processed"].clone();
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.restore();
    let restored = Instant::now();

    let task = api.wait_task_within(&id, Duration::from_secs(180)).await;
    eprintln!(
        "database cut for 3 s at processed = {processed_at_cut}; COMPLETED {:?} after it came back; final: {task}",
        restored.elapsed()
    );
    assert_eq!(task["status"], "COMPLETED", "{task}");
    assert_eq!(task["counts"], json!({"total": 5000, "processed": 5000, "failed": 0}));
    assert_moved_exactly_once(&d, &id, "pg", 5000).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_messages_are_dead_lettered_and_the_worker_carries_on() {
    let mut d = Deployment::new().await;
    let api = d.api().await;
    d.start_worker("w");
    api.plan_with_subscriptions("ok", 50).await;
    api.draft("ok", json!({"displayName": "v2"})).await;

    let connection = queue::connect("amqp://guest:guest@127.0.0.1:5672/%2f").await.unwrap();
    let publisher = queue::Publisher::open(&connection).await.unwrap();
    let garbage: Vec<Vec<u8>> = (0..100)
        .map(|i| match i % 4 {
            0 => format!("{{not json {i}").into_bytes(),
            1 => json!({"kind": "explode", "taskId": uuid::Uuid::new_v4()}).to_string().into_bytes(),
            2 => json!({"kind": "task", "taskId": uuid::Uuid::new_v4()}).to_string().into_bytes(),
            _ => vec![0xff, 0x00, 0xfe, i as u8],
        })
        .collect();
    let exchange = d.prefix.clone();
    let messages: Vec<Outgoing<'_>> = garbage
        .iter()
        .enumerate()
        .map(|(i, payload)| Outgoing {
            exchange: &exchange,
            routing_key: if i % 2 == 0 { "task" } else { "batch" },
            payload,
            attempt: 1,
        })
        .collect();
    publisher.publish_all(&messages).await.unwrap();

    let id = api.publish("ok", "ALL_CUSTOMERS").await;
    let task = api.wait_task(&id).await;
    assert_eq!(task["status"], "COMPLETED", "{task}");
    assert_moved_exactly_once(&d, &id, "ok", 50).await;

    // the worker moves each dead letter from the queue into Postgres, once, saying why
    wait_for("100 dead letters", Duration::from_secs(30), || async {
        d.scalar("SELECT count(*) FROM dead_letters").await == 100
    })
    .await;
    assert_eq!(d.scalar("SELECT count(*) FROM dead_letters WHERE cause_code = 'Malformed'").await, 75);
    assert_eq!(d.scalar("SELECT count(*) FROM dead_letters WHERE cause_code = 'NotFound'").await, 25);
    assert_eq!(d.scalar("SELECT count(*) FROM dead_letters WHERE environment_id IS NOT NULL").await, 0);
    let channel = publisher.channel();
    let dead = format!("{}.dead", d.prefix);
    let options = queue::lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
    assert_eq!(channel.queue_declare(&dead, options, Default::default()).await.unwrap().message_count(), 0);
    let (code, _) = d.terminate("w", Duration::from_secs(20)).await;
    assert_eq!(code, Some(0), "the worker was still up and stopped cleanly");
}

/// Holds a row lock on the plan's draft so that publishing it fails with a lock timeout.
pub(crate) async fn lock_draft(d: &Deployment, plan: &str) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut blocker = d.pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM plan_versions WHERE plan_id = $1 AND status = 'DRAFT' FOR UPDATE")
        .bind(plan)
        .fetch_one(&mut *blocker)
        .await
        .unwrap();
    blocker
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_that_fails_transiently_twice_completes_on_its_third_attempt() {
    let mut d = Deployment::with_env(&[("CUTOVER_LOCK_TIMEOUT_MS", "300")]).await;
    let api = d.api().await;
    d.start_worker("w");
    api.plan_with_subscriptions("flaky", 10).await;
    api.draft("flaky", json!({"displayName": "v2"})).await;

    let blocker = lock_draft(&d, "flaky").await;
    let id = api.publish("flaky", "ALL_CUSTOMERS").await;
    wait_for("two failed attempts", Duration::from_secs(30), || async {
        d.scalar(&format!("SELECT count(*) FROM tasks WHERE id = '{id}' AND attempts = 2 AND lease_owner IS NULL"))
            .await
            == 1
    })
    .await;
    blocker.rollback().await.unwrap();

    let task = api.wait_task(&id).await;
    assert_eq!(task["status"], "COMPLETED", "{task}");
    assert_eq!(task["attempts"], 3);
    // the attempts' errors are in the timeline, not on the completed task
    assert_eq!(task["error"], serde_json::Value::Null, "{task}");
    let attempt_errors =
        d.scalar(&format!("SELECT count(*) FROM task_events WHERE task_id = '{id}' AND kind = 'attempt_failed'")).await;
    assert_eq!(attempt_errors, 2);
    assert_eq!(task["counts"], json!({"total": 10, "processed": 10, "failed": 0}));
    assert_moved_exactly_once(&d, &id, "flaky", 10).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_that_always_fails_ends_failed_after_its_attempts_and_retry_reruns_it() {
    let mut d = Deployment::with_env(&[("CUTOVER_LOCK_TIMEOUT_MS", "200"), ("CUTOVER_MAX_ATTEMPTS", "3")]).await;
    let api = d.api().await;
    d.start_worker("w");
    api.plan_with_subscriptions("doomed", 10).await;
    api.draft("doomed", json!({"displayName": "v2"})).await;

    let blocker = lock_draft(&d, "doomed").await;
    let id = api.publish("doomed", "ALL_CUSTOMERS").await;
    let task = api.wait_task(&id).await;
    assert_eq!(task["status"], "FAILED", "{task}");
    assert_eq!(task["attempts"], 3);
    assert_eq!(task["error"]["code"], "MaxAttemptsExceeded");
    assert!(task["error"]["message"].as_str().unwrap().contains("lock"), "{task}");
    // nothing happened: the draft is still a draft, nobody moved
    assert_eq!(d.scalar("SELECT count(*) FROM plan_versions WHERE plan_id = 'doomed' AND status = 'DRAFT'").await, 1);
    assert_eq!(d.scalar("SELECT count(*) FROM subscription_version_history").await, 0);
    blocker.rollback().await.unwrap();

    let retried = api.post(&format!("/api/v1/tasks/{id}/retry"), json!({})).await;
    assert_eq!(retried["data"]["status"], "PENDING");
    let task = api.wait_task(&id).await;
    assert_eq!(task["status"], "COMPLETED", "{task}");
    assert_moved_exactly_once(&d, &id, "doomed", 10).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_publishes_get_one_task_per_plan_and_no_server_errors() {
    let mut d = Deployment::new().await;
    let api = d.api().await;
    api.plan_with_subscriptions("seed", 0).await;
    for i in 0..20 {
        api.post("/api/v1/plans", json!({"id": format!("c{i}"), "displayName": "C", "productId": "product"})).await;
    }
    // no worker yet: every task stays in flight, so later requests meet the first one's task
    let answers = futures::future::join_all((0..200).map(|i| {
        let api = api.clone();
        async move {
            api.call(
                reqwest::Method::POST,
                &format!("/api/v1/plans/c{}/publish", i % 20),
                Some(json!({"migrationType": "ALL_CUSTOMERS"})),
            )
            .await
        }
    }))
    .await;
    let accepted = answers.iter().filter(|(s, _)| *s == 200).count();
    let refused =
        answers.iter().filter(|(s, b)| *s == 400 && b["code"] == "ObjectAlreadyBeingUsedByAnotherRequestError").count();
    assert!(answers.iter().all(|(s, _)| !s.is_server_error()), "no 5xx");
    assert_eq!((accepted, refused), (20, 180));
    assert_eq!(d.scalar("SELECT count(*) FROM tasks").await, 20);
    assert_eq!(d.scalar("SELECT count(DISTINCT plan_id) FROM tasks").await, 20);

    d.start_worker("w");
    wait_for("the 20 tasks to complete", Duration::from_secs(60), || async {
        d.scalar("SELECT count(*) FROM tasks WHERE status = 'COMPLETED'").await == 20
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_migration_exits_cleanly_and_another_worker_finishes() {
    let mut d = Deployment::with_env(&[
        ("CUTOVER_BATCH_SIZE", "100"),
        ("CUTOVER_PREFETCH", "1"),
        ("CUTOVER_SHUTDOWN_GRACE_SECS", "10"),
    ])
    .await;
    let api = d.api().await;
    d.start_worker("a");
    api.plan_with_subscriptions("term", 5000).await;
    api.draft("term", json!({"displayName": "v2"})).await;
    let id = api.publish("term", "ALL_CUSTOMERS").await;
    wait_for("the migration to start moving", Duration::from_secs(60), || async {
        api.task(&id).await["counts"]["processed"].as_i64().unwrap_or(0) > 0
    })
    .await;
    d.start_worker("b");

    let (code, took) = d.terminate("a", Duration::from_secs(20)).await;
    eprintln!("worker a exited with {code:?} {took:?} after SIGTERM");
    assert_eq!(code, Some(0));
    let exited = Instant::now();
    let task = api.wait_task_within(&id, Duration::from_secs(120)).await;
    eprintln!("SIGTERM: COMPLETED by worker b {:?} after worker a exited", exited.elapsed());
    assert_eq!(task["status"], "COMPLETED", "{task}");
    assert_eq!(task["counts"], json!({"total": 5000, "processed": 5000, "failed": 0}));
    assert_moved_exactly_once(&d, &id, "term", 5000).await;
    assert!(d.scalar("SELECT count(DISTINCT worker) FROM task_batches").await >= 1);
}

/// Deletes a queue on the shared broker, as an operator would (`rabbitmqctl delete_queue`
/// does the same, a second later: the broker cancels the queue's consumers either way).
async fn delete_queue(connection: &queue::lapin::Connection, name: &str) {
    let channel = connection.create_channel().await.unwrap();
    channel.queue_delete(name, Default::default()).await.unwrap();
    let _ = channel.close(200, "done").await;
}

/// The consumers on `queue`, or `None` while it does not exist (a passive declare, on a
/// channel of its own since a failed one closes it).
async fn consumers_on(connection: &queue::lapin::Connection, queue: &str) -> Option<u32> {
    let channel = connection.create_channel().await.unwrap();
    let options = queue::lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
    let consumers = channel.queue_declare(queue, options, Default::default()).await.ok().map(|q| q.consumer_count());
    let _ = channel.close(200, "done").await;
    consumers
}

/// Deletes `queue` once a worker consumes it, calls `deleted`, and answers how long until a
/// worker consumes it again.
async fn delete_and_time_resubscription<F: std::future::Future<Output = ()>>(
    queue: &str,
    deleted: impl FnOnce() -> F,
) -> Duration {
    let connection = queue::connect("amqp://guest:guest@127.0.0.1:5672/%2f").await.unwrap();
    wait_for("a consumer on the queue", Duration::from_secs(30), || async {
        consumers_on(&connection, queue).await.unwrap_or(0) > 0
    })
    .await;
    delete_queue(&connection, queue).await;
    let at = Instant::now();
    deleted().await;
    wait_for("a consumer on the queue again", Duration::from_secs(30), || async {
        consumers_on(&connection, queue).await.unwrap_or(0) > 0
    })
    .await;
    let _ = connection.close(200, "done").await;
    at.elapsed()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_queue_deleted_mid_migration_is_consumed_again_and_the_migration_completes_once() {
    let mut d = Deployment::with_env(&[
        ("CUTOVER_BATCH_SIZE", "100"),
        ("CUTOVER_PREFETCH", "1"),
        ("CUTOVER_RESCUE_AFTER_SECS", "3"),
    ])
    .await;
    let api = d.api().await;
    d.start_worker("w");
    api.plan_with_subscriptions("gone", 5000).await;
    api.draft("gone", json!({"displayName": "v2"})).await;
    let id = api.publish("gone", "ALL_CUSTOMERS").await;
    wait_for("the migration to start moving", Duration::from_secs(60), || async {
        api.task(&id).await["counts"]["processed"].as_i64().unwrap_or(0) > 0
    })
    .await;
    let started = Instant::now();
    let resubscribed = delete_and_time_resubscription(&format!("{}.work.batch", d.prefix), || async {
        let at_deletion = api.task(&id).await;
        eprintln!("batch queue deleted at {}", at_deletion["counts"]);
        assert_eq!(at_deletion["status"], "IN_PROGRESS", "the queue is deleted mid-migration: {at_deletion}");
    })
    .await;
    let task = api.wait_task_within(&id, Duration::from_secs(60)).await;
    eprintln!(
        "batch queue consumed again {resubscribed:?} after its deletion; completed {:?} after; {task}",
        started.elapsed()
    );
    assert!(resubscribed < Duration::from_secs(10), "{resubscribed:?}");
    assert_eq!(task["status"], "COMPLETED", "{task}");
    assert_eq!(task["counts"], json!({"total": 5000, "processed": 5000, "failed": 0}));
    assert_moved_exactly_once(&d, &id, "gone", 5000).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_queue_deleted_before_a_publish_is_consumed_again_and_the_publish_completes_once() {
    let mut d = Deployment::with_env(&[("CUTOVER_RESCUE_AFTER_SECS", "3")]).await;
    let api = d.api().await;
    d.start_worker("w");
    api.plan_with_subscriptions("gone", 50).await;
    api.draft("gone", json!({"displayName": "v2"})).await;
    let resubscribed = delete_and_time_resubscription(&format!("{}.work.task", d.prefix), || async {}).await;
    let id = api.publish("gone", "ALL_CUSTOMERS").await;
    let task = api.wait_task_within(&id, Duration::from_secs(30)).await;
    eprintln!("task queue consumed again {resubscribed:?} after its deletion; {task}");
    assert!(resubscribed < Duration::from_secs(10), "{resubscribed:?}");
    assert_eq!(task["status"], "COMPLETED", "{task}");
    assert_moved_exactly_once(&d, &id, "gone", 50).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rescuer_announces_unconsumed_work_again_with_backoff_not_every_pass() {
    let proxy = Proxy::start("127.0.0.1:5672").await;
    let amqp = format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port);
    let mut d = Deployment::with_env(&[("CUTOVER_RESCUE_AFTER_SECS", "1")]).await;
    let api = d.api().await;
    d.start_worker_with("w", &[("CUTOVER_AMQP_URL", amqp)]);
    api.plan_with_subscriptions("idle", 20).await;
    api.draft("idle", json!({"displayName": "v2"})).await;
    // the worker's broker link is cut: its rescuer runs, nothing consumes the task queue
    proxy.cut();
    let id = api.publish("idle", "ALL_CUSTOMERS").await;
    tokio::time::sleep(Duration::from_secs(11)).await;

    // announced again after 1 s without progress, then after waits of 1, 2, 4 s: never every pass
    let rescues: Vec<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM created_at)::float8 FROM task_events
         WHERE task_id = $1::uuid AND kind = 'rescued' ORDER BY id",
    )
    .bind(&id)
    .fetch_all(&d.pool)
    .await
    .unwrap();
    let gaps: Vec<f64> = rescues.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!("{} announcements in 11 s, gaps {gaps:?}", rescues.len());
    assert!((2..=4).contains(&rescues.len()), "{rescues:?}");
    for (i, gap) in gaps.iter().enumerate() {
        assert!(*gap >= f64::from(1 << i) - 0.1, "wait {i} was {gap} s: {gaps:?}");
    }
    let announced = d.scalar(&format!("SELECT count(*) FROM outbox WHERE payload->>'taskId' = '{id}'")).await;
    assert_eq!(announced, 1 + rescues.len() as i64, "the publish's own message and one per rescue");

    // the worker reaches the broker again: the queued duplicates complete the task once
    proxy.restore();
    let task = api.wait_task_within(&id, Duration::from_secs(30)).await;
    assert_eq!(task["status"], "COMPLETED", "{task}");
    assert_moved_exactly_once(&d, &id, "idle", 20).await;
}

/// The deployment's database URL with its port replaced by `proxy`'s.
fn database_url_through(d: &Deployment, proxy: &crate::proxy::Port) -> String {
    d.database_url.replace(":5432/", &format!(":{}/", proxy.port))
}

/// A deployment whose api reaches its database through a proxy the test can stop (every
/// connection dropped, connecting refused, as with a stopped server) and restart.
async fn api_behind_a_database_proxy() -> (crate::proxy::Port, Deployment, crate::client::ApiClient) {
    let proxy = crate::proxy::Port::start("127.0.0.1:5432").await;
    let mut d = Deployment::new().await;
    let api = d.api_with(&[("CUTOVER_DATABASE_URL", database_url_through(&d, &proxy))]).await;
    (proxy, d, api)
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_database_cut_off_probes_answer_within_a_second_and_calls_answer_503_with_retry_after() {
    // the database's port goes away as a stopped server's does: connecting is refused
    let (mut proxy, _d, api) = api_behind_a_database_proxy().await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let tasks = format!("{}/api/v1/tasks", api.base);
    let list = || http.get(&tasks).header("X-API-KEY", &api.key).send();
    assert_eq!(list().await.unwrap().status(), 200);

    proxy.stop().await;
    for probe in ["/readyz", "/metrics"] {
        let started = Instant::now();
        let response = http.get(format!("{}{probe}", api.base)).send().await.unwrap();
        let took = started.elapsed();
        eprintln!("{probe} answered {} in {took:?} with the database cut off", response.status());
        assert!(took < Duration::from_secs(1), "{probe} took {took:?}");
        if probe == "/readyz" {
            assert_eq!(response.status(), 503);
            assert_eq!(response.json::<serde_json::Value>().await.unwrap()["database"], false);
        }
    }
    for _ in 0..3 {
        let started = Instant::now();
        let response = list().await.unwrap();
        let took = started.elapsed();
        eprintln!("GET /api/v1/tasks answered {} in {took:?} with the database cut off", response.status());
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "5");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], "ServiceUnavailable", "{body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
        assert!(took < Duration::from_secs(3), "took {took:?}");
    }

    proxy.restart().await;
    let restored = Instant::now();
    wait_for("the api to answer again", Duration::from_secs(30), || async { list().await.unwrap().status() == 200 })
        .await;
    eprintln!("answering 200 again {:?} after the database came back", restored.elapsed());
}

/// Connections left idle in the pool while the database was away are tested before they are
/// used again: once it is back, no call meets a connection the outage broke.
#[tokio::test(flavor = "multi_thread")]
async fn once_the_database_is_back_no_call_meets_a_connection_the_outage_broke() {
    let (mut proxy, _d, api) = api_behind_a_database_proxy().await;
    let http = reqwest::Client::new();
    let tasks = format!("{}/api/v1/tasks", api.base);
    // calls at once, each on a connection of its own: the pool keeps them all, idle, afterwards
    let calls = || {
        futures::future::join_all(
            (0..8).map(|_| async { http.get(&tasks).header("X-API-KEY", &api.key).send().await.unwrap().status() }),
        )
    };
    assert!(calls().await.iter().all(|s| *s == 200));

    // the database goes away while nothing calls, for longer than a connection idles untested
    proxy.stop().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.restart().await;
    let statuses = calls().await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_publish_accepted_during_a_silent_partition_of_the_relay_completes_within_seconds() {
    let proxy = Proxy::start("127.0.0.1:5672").await;
    let mut d = Deployment::new().await;
    let base = d
        .start_api_with(&[
            ("CUTOVER_AMQP_URL", format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port)),
            ("CUTOVER_PUBLISH_TIMEOUT_MS", "3000".to_owned()),
        ])
        .await;
    let api = crate::client::ApiClient::new(base.clone(), d.key.clone());
    let readyz = || async {
        let answer = reqwest::get(format!("{base}/readyz")).await.unwrap();
        assert_eq!(answer.status(), reqwest::StatusCode::OK, "the api stays ready while its database answers");
        answer.json::<serde_json::Value>().await.unwrap()
    };
    d.start_worker("w");
    api.plan_with_subscriptions("quiet", 200).await;
    api.draft("quiet", json!({"displayName": "v2"})).await;
    assert_eq!(readyz().await, json!({"database": true, "broker": true, "brokerState": "connected"}));
    // the only relay left is the api's, and its broker stops answering: no reset, no refusal
    d.terminate("w", Duration::from_secs(30)).await;
    proxy.stall();

    let accepted = Instant::now();
    let id = api.publish("quiet", "ALL_CUSTOMERS").await;
    wait_for("/readyz to say the broker link stalled", Duration::from_secs(10), || async {
        readyz().await == json!({"database": true, "broker": false, "brokerState": "stalled"})
    })
    .await;
    let stalled = accepted.elapsed();
    // the api's relay released the publish's rows: another process's relay sends them
    d.start_worker("w2");
    let task = api.wait_task_within(&id, Duration::from_secs(20)).await;
    let completed = accepted.elapsed();
    eprintln!(
        "silent partition: /readyz stalled {stalled:?} and the publish completed {completed:?} after it was accepted"
    );
    assert_eq!(task["status"], "COMPLETED", "{task}");
    assert_eq!(task["counts"], json!({"total": 200, "processed": 200, "failed": 0}));
    assert!(completed < Duration::from_secs(20), "{completed:?}");
    assert_moved_exactly_once(&d, &id, "quiet", 200).await;
    assert_eq!(d.scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL").await, 0);

    // the api's relay kept trying (each connection attempt bounded too): it is back once the
    // link forwards again
    assert_eq!(readyz().await["brokerState"], "stalled");
    proxy.restore();
    let restored = Instant::now();
    wait_for("the api's relay to connect again", Duration::from_secs(15), || async {
        readyz().await == json!({"database": true, "broker": true, "brokerState": "connected"})
    })
    .await;
    eprintln!("silent partition: the api's relay connected again {:?} after the link healed", restored.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_is_ready_only_with_its_database_and_a_consumer_on_each_queue() {
    let mut broker = crate::proxy::Port::start("127.0.0.1:5672").await;
    let mut database = crate::proxy::Port::start("127.0.0.1:5432").await;
    let d = &mut Deployment::new().await;
    let metrics = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    d.start_worker_with(
        "w",
        &[
            ("CUTOVER_AMQP_URL", format!("amqp://guest:guest@127.0.0.1:{}/%2f", broker.port)),
            ("CUTOVER_DATABASE_URL", database_url_through(d, &database)),
            ("CUTOVER_METRICS_LISTEN", format!("127.0.0.1:{metrics}")),
        ],
    );
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let probe = |path: &'static str| {
        let http = http.clone();
        async move {
            let started = Instant::now();
            let Ok(answer) = http.get(format!("http://127.0.0.1:{metrics}{path}")).send().await else {
                return (0, json!(null));
            };
            let took = started.elapsed();
            assert!(took < Duration::from_secs(1), "{path} took {took:?}");
            (answer.status().as_u16(), answer.json::<serde_json::Value>().await.unwrap_or(json!(null)))
        }
    };
    let all = json!({"task": true, "batch": true, "dead": true});
    let none = json!({"task": false, "batch": false, "dead": false});
    wait_for("the worker's /readyz to answer 200", Duration::from_secs(30), || async {
        probe("/readyz").await == (200, json!({"database": true, "consumers": all}))
    })
    .await;
    assert_eq!(probe("/healthz").await, (200, json!({"status": "ok"})));

    // the broker goes away: its consumers are gone, so is readiness; the process lives on
    broker.stop().await;
    let stopped = Instant::now();
    wait_for("/readyz to answer 503 without consumers", Duration::from_secs(10), || async {
        probe("/readyz").await == (503, json!({"database": true, "consumers": none}))
    })
    .await;
    let unready = stopped.elapsed();
    assert_eq!(probe("/healthz").await.0, 200);
    broker.restart().await;
    let restarted = Instant::now();
    wait_for("/readyz to answer 200 once the consumers are back", Duration::from_secs(30), || async {
        probe("/readyz").await == (200, json!({"database": true, "consumers": all}))
    })
    .await;
    let ready = restarted.elapsed();

    // the database goes away: not ready, answered within a second all the same
    database.stop().await;
    let (status, body) = probe("/readyz").await;
    assert_eq!((status, &body["database"]), (503, &json!(false)), "{body}");
    database.restart().await;
    wait_for("/readyz to answer 200 once the database is back", Duration::from_secs(30), || async {
        probe("/readyz").await.0 == 200
    })
    .await;
    eprintln!("worker readiness: 503 {unready:?} after the broker went away, 200 {ready:?} after it came back");
}
