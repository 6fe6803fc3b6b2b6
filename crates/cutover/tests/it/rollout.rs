//! Staged rollouts end to end, on the real binaries: cohorts move in order and each holds the
//! one before it, the wait between cohorts survives a SIGKILLed worker (it lives in Postgres),
//! every subscription moves exactly once, and pause/resume over HTTP stop and restart the
//! moves. Assertions read what a user sees: the task over HTTP, subscriptions and history rows.

use crate::client::ApiClient;
use crate::harness::{wait_for, Deployment};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Subscriptions of `plan` on its version 2.
async fn on_new_version(d: &Deployment, plan: &str) -> BTreeSet<String> {
    sqlx::query_scalar::<_, String>(
        "SELECT s.id FROM subscriptions s JOIN plan_versions v ON v.id = s.plan_version_id
         WHERE s.plan_id = $1 AND v.version_number = 2",
    )
    .bind(plan)
    .fetch_all(&d.pool)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

/// Subscriptions the task's history rows say it moved, and how many rows there are.
async fn moved_by(d: &Deployment, task: &str) -> (BTreeSet<String>, usize) {
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT subscription_id FROM subscription_version_history WHERE task_id = $1::uuid")
            .bind(task)
            .fetch_all(&d.pool)
            .await
            .unwrap();
    let n = rows.len();
    (rows.into_iter().collect(), n)
}

async fn rollout(api: &ApiClient, plan: &str, body: Value) -> String {
    let answer = api.post(&format!("/api/v1/plans/{plan}/rollouts"), body).await;
    answer["data"]["taskId"].as_str().unwrap().to_owned()
}

/// Waits until cohort `index` has finished and the next one is scheduled; answers the task.
async fn wait_cohort_done(api: &ApiClient, id: &str, index: i64) -> Value {
    let start = Instant::now();
    loop {
        let task = api.task(id).await;
        let rollout = &task["rollout"];
        if rollout["currentCohort"]["index"] == index && rollout["nextCohortAt"].is_string() {
            return task;
        }
        assert!(
            matches!(task["status"].as_str(), Some("PENDING" | "IN_PROGRESS")),
            "the rollout ended before cohort {index} was done: {task}"
        );
        assert!(start.elapsed() < Duration::from_secs(90), "cohort {index} not done in time: {task}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn at(value: &Value) -> chrono::DateTime<chrono::Utc> {
    value.as_str().unwrap_or_else(|| panic!("not a time: {value}")).parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_three_cohort_rollout_moves_1_10_100_percent_in_order_and_survives_a_sigkill_between_cohorts() {
    let mut d = Deployment::with_env(&[
        ("CUTOVER_BATCH_SIZE", "50"),
        ("CUTOVER_SCHEDULER_TICK_MS", "200"),
        ("CUTOVER_RESCUE_AFTER_SECS", "10"),
    ])
    .await;
    let api = d.api().await;
    d.start_worker("a");
    api.plan_with_subscriptions("roll", 3000).await;
    api.draft("roll", json!({"displayName": "Roll v2"})).await;

    let accepted = Instant::now();
    let id = rollout(&api, "roll", json!({"cohorts": [1, 10, 100], "interval": "PT2S"})).await;

    // cohort 1: about 1 %
    let task = wait_cohort_done(&api, &id, 0).await;
    assert_eq!(task["taskType"], "STAGED_ROLLOUT");
    assert_eq!(task["rollout"]["currentCohort"]["percentage"], 1);
    assert_eq!(task["rollout"]["cohorts"], json!([1, 10, 100]));
    let first = on_new_version(&d, "roll").await;
    assert!((10..=60).contains(&first.len()), "1 % of 3,000 moved {} subscriptions", first.len());
    assert_eq!(moved_by(&d, &id).await, (first.clone(), first.len()));
    assert_eq!(task["counts"]["processed"], first.len());
    assert_eq!(task["counts"]["total"], 3000);
    let second_due = at(&task["rollout"]["nextCohortAt"]);

    // the worker dies while the rollout waits between cohorts; nothing else may move meanwhile
    d.kill("a").await;
    let after_kill = api.task(&id).await;
    assert_eq!(after_kill["rollout"]["currentCohort"]["index"], 0, "the kill did not land between cohorts");
    assert_eq!(on_new_version(&d, "roll").await, first);
    d.start_worker("b");

    // cohort 2: about 10 %, holding cohort 1, started no earlier than its durable time
    let task = wait_cohort_done(&api, &id, 1).await;
    assert_eq!(task["rollout"]["currentCohort"]["percentage"], 10);
    assert!(at(&task["rollout"]["currentCohort"]["startedAt"]) >= second_due, "{task}");
    let second = on_new_version(&d, "roll").await;
    assert!((230..=370).contains(&second.len()), "10 % of 3,000 moved {} subscriptions", second.len());
    assert!(second.is_superset(&first), "cohort 2 lost members of cohort 1");
    assert_eq!(moved_by(&d, &id).await, (second.clone(), second.len()));
    let third_due = at(&task["rollout"]["nextCohortAt"]);

    // cohort 3: everyone, with a SIGKILL as soon as its batches start
    wait_for("the last cohort to start", Duration::from_secs(30), || async {
        api.task(&id).await["rollout"]["currentCohort"]["index"] == 2
    })
    .await;
    d.kill("b").await;
    d.start_worker("c");
    let task = api.wait_task_within(&id, Duration::from_secs(180)).await;
    assert_eq!(task["status"], "COMPLETED", "{task}");
    assert_eq!(task["progress"], 100);
    assert_eq!(task["counts"], json!({"total": 3000, "processed": 3000, "failed": 0}));
    assert_eq!(task["rollout"]["currentCohort"]["percentage"], 100);
    assert!(at(&task["rollout"]["currentCohort"]["startedAt"]) >= third_due, "{task}");
    assert_eq!(task["rollout"]["nextCohortAt"], Value::Null);

    eprintln!(
        "cohorts of 3,000 moved {} / {} / 3000; accepted to COMPLETED in {:?} with two SIGKILLs",
        first.len(),
        second.len(),
        accepted.elapsed()
    );
    let all = on_new_version(&d, "roll").await;
    assert_eq!(all.len(), 3000);
    assert!(all.is_superset(&second));
    // every subscription moved exactly once, by this task
    let (moved, rows) = moved_by(&d, &id).await;
    assert_eq!((moved.len(), rows), (3000, 3000));
    assert_eq!(d.scalar("SELECT count(*) FROM subscription_version_history").await, 3000);
    assert_eq!(
        d.scalar(&format!("SELECT count(*) FROM task_events WHERE task_id = '{id}' AND kind = 'cohort'")).await,
        3
    );
    assert_eq!(
        d.scalar(
            "SELECT count(*) FROM plan_versions WHERE plan_id = 'roll' AND version_number = 2 AND status = 'PUBLISHED'"
        )
        .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_rollout_moves_nothing_until_it_is_resumed() {
    let mut d = Deployment::with_env(&[("CUTOVER_BATCH_SIZE", "25"), ("CUTOVER_SCHEDULER_TICK_MS", "200")]).await;
    let api = d.api().await;
    let admin = ApiClient::new(api.base.clone(), d.create_key("admin").await);
    d.start_worker("a");
    api.plan_with_subscriptions("hold", 600).await;
    api.draft("hold", json!({"displayName": "Hold v2"})).await;
    // no worker while the rollout is accepted and paused, so that nothing can move before it
    d.kill("a").await;

    let id = rollout(&api, "hold", json!({"cohorts": [10, 100], "interval": "PT2S"})).await;
    let (status, body) = api.call(Method::POST, &format!("/api/v1/tasks/{id}/pause"), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a server key may not pause: {body}");
    let paused = admin.post(&format!("/api/v1/tasks/{id}/pause"), json!({})).await;
    assert_eq!(paused["data"]["rollout"]["paused"], true);
    d.start_worker("b");

    // the worker publishes the draft and plans cohort 1, but moves nobody
    wait_for("the first cohort to be planned", Duration::from_secs(30), || async {
        api.task(&id).await["rollout"]["currentCohort"]["index"] == 0
    })
    .await;
    let (_, plan) = api.call(Method::GET, "/api/v1/plans/hold", None).await;
    assert_eq!(plan["data"]["versionNumber"], 2, "{plan}");
    assert_eq!(plan["data"]["status"], "PUBLISHED");
    let held_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < held_until {
        assert_eq!(on_new_version(&d, "hold").await.len(), 0, "a paused rollout moved subscriptions");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        d.scalar(&format!("SELECT count(*) FROM task_batches WHERE task_id = '{id}' AND status = 'PENDING'")).await > 0
    );

    // resume: cohort 1 moves; pause again while the rollout waits for cohort 2
    let resumed = admin.post(&format!("/api/v1/tasks/{id}/resume"), json!({})).await;
    assert_eq!(resumed["data"]["rollout"]["paused"], false);
    let task = wait_cohort_done(&api, &id, 0).await;
    admin.post(&format!("/api/v1/tasks/{id}/pause"), json!({})).await;
    let first = on_new_version(&d, "hold").await;
    assert!((20..=100).contains(&first.len()), "10 % of 600 moved {}", first.len());
    let due = at(&task["rollout"]["nextCohortAt"]);
    // well past the time cohort 2 was due, nothing more has moved
    while chrono::Utc::now() < due + chrono::Duration::seconds(2) {
        assert_eq!(on_new_version(&d, "hold").await, first, "a paused rollout started its next cohort");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let task = api.task(&id).await;
    assert_eq!(task["rollout"]["currentCohort"]["index"], 0, "{task}");
    assert_eq!(task["rollout"]["paused"], true);

    admin.post(&format!("/api/v1/tasks/{id}/resume"), json!({})).await;
    let task = api.wait_task_within(&id, Duration::from_secs(60)).await;
    assert_eq!(task["status"], "COMPLETED", "{task}");
    assert_eq!(task["counts"], json!({"total": 600, "processed": 600, "failed": 0}));
    let (moved, rows) = moved_by(&d, &id).await;
    assert_eq!((moved.len(), rows), (600, 600));
    assert!(moved.is_superset(&first));
    let audited: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT kind, actor FROM task_events WHERE task_id = $1::uuid AND kind IN ('paused', 'resumed') ORDER BY id",
    )
    .bind(&id)
    .fetch_all(&d.pool)
    .await
    .unwrap();
    let who = Some(admin.key[..12].to_owned());
    assert_eq!(
        audited,
        vec![
            ("paused".to_owned(), who.clone()),
            ("resumed".to_owned(), who.clone()),
            ("paused".to_owned(), who.clone()),
            ("resumed".to_owned(), who),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn named_customers_move_first_then_the_percentages() {
    let mut d = Deployment::with_env(&[("CUTOVER_SCHEDULER_TICK_MS", "200")]).await;
    let api = d.api().await;
    d.start_worker("a");
    api.plan_with_subscriptions("pilot", 200).await;
    api.draft("pilot", json!({"displayName": "Pilot v2"})).await;

    let id = rollout(
        &api,
        "pilot",
        json!({"customerIds": ["pilot-c7", "pilot-c42"], "cohorts": [50, 100], "interval": "PT1S"}),
    )
    .await;

    let task = wait_cohort_done(&api, &id, 0).await;
    assert_eq!(task["rollout"]["currentCohort"]["percentage"], Value::Null);
    let pilots: BTreeSet<String> = ["pilot-s7", "pilot-s42"].iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(on_new_version(&d, "pilot").await, pilots);
    let half = wait_cohort_done(&api, &id, 1).await;
    assert_eq!(half["rollout"]["currentCohort"]["percentage"], 50);
    let second = on_new_version(&d, "pilot").await;
    assert!(second.is_superset(&pilots));
    assert!((60..=140).contains(&(second.len() - 2)), "50 % of 200 moved {}", second.len());
    let task = api.wait_task(&id).await;
    assert_eq!(task["status"], "COMPLETED", "{task}");
    assert_eq!(on_new_version(&d, "pilot").await.len(), 200);
    assert_eq!(moved_by(&d, &id).await.1, 200);
}
